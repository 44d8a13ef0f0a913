package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/node/compose"
	"github.com/dsep-project/dsep/node/control"
	"github.com/dsep-project/dsep/node/deliver"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/message"
	"github.com/dsep-project/dsep/node/queue"
	"github.com/dsep-project/dsep/node/stamp"
	"github.com/dsep-project/dsep/node/store"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// Queued is the outcome of Send for one recipient.
type Queued struct {
	To string
	ID envelope.ID // the message ID (zero if not queued)
	// Err is set when the recipient was refused at once (no such address,
	// revoked key); the others are queued.
	Err error
}

// ErrNotOwnAddress is returned by Send when the mail's From is not one of
// the node's addresses.
var ErrNotOwnAddress = errors.New("node: From is not an address of this identity")

// Send queues mail (a complete RFC 5322 message from one of the node's
// addresses) for each recipient and files a copy in the Sent folder. A
// recipient whose address cannot exist (no DSEP domain, no binding, a key
// revoked as compromised) is refused at once with a reason; when the
// lookup fails for a passing cause (DNS, DHT) the mail is queued and
// resolved again later. Send returns once everything queued is on disk.
func (n *Node) Send(ctx context.Context, mail []byte, to []string) ([]Queued, error) {
	h, err := readHeader(mail)
	if err != nil {
		return nil, fmt.Errorf("node: the mail's header does not parse: %w", err)
	}
	from, err := headerFrom(h)
	if err != nil {
		return nil, fmt.Errorf("node: the mail has no usable From: %w", err)
	}
	if !n.ownAddress(from) {
		return nil, fmt.Errorf("%w: %s", ErrNotOwnAddress, from)
	}
	if len(to) == 0 {
		return nil, errors.New("node: no recipients")
	}
	now := n.now()
	meta := store.MetaFromHeader(h)
	meta.ID = sha256.Sum256(mail)
	meta.Folder = "Sent"
	meta.Direction = "out"
	meta.Received = now
	meta.Size = int64(len(mail))
	meta.Flags = []string{`\Seen`}
	meta.Verification = store.Verification{Status: control.VerifySent, Signer: n.fpr.String()}
	var out []Queued
	for _, rcpt := range to {
		q := Queued{To: rcpt}
		q.ID, q.Err = n.queueMail(ctx, mail, rcpt, meta, now)
		out = append(out, q)
	}
	queuedAny := false
	for _, q := range out {
		queuedAny = queuedAny || q.Err == nil
	}
	if queuedAny {
		if has, _ := n.store.Has(meta.ID); !has {
			if _, err := n.store.Deliver(ctx, meta, mail); err != nil {
				n.log.Warn("filing the sent copy", "err", err)
			}
		}
	}
	n.kick()
	return out, nil
}

func (n *Node) ownAddress(from string) bool {
	if ka, err := address.ParseKeyAddress(from); err == nil {
		return address.Fingerprint(ka) == n.fpr
	}
	e, err := address.ParseEmail(from)
	if err != nil {
		return false
	}
	for _, o := range n.emails {
		if o == e {
			return true
		}
	}
	return false
}

// queueMail seals mail for one recipient and queues it.
func (n *Node) queueMail(ctx context.Context, mail []byte, rcpt string, sent store.Meta, now time.Time) (envelope.ID, error) {
	it := &queue.Item{
		Kind:     queue.KindMessage,
		To:       rcpt,
		Created:  now,
		Expires:  now.Add(n.cfg.Lifetime),
		State:    queue.StatePending,
		Subject:  sent.Subject,
		SentCopy: sent.ID.String(),
	}
	key, reach, err := n.resolveRecipient(ctx, rcpt)
	switch {
	case err == nil:
		payload, err := n.seal(it, mail, key, now)
		if err != nil {
			return envelope.ID{}, err
		}
		if len(payload) > envelope.DefaultMaxPayload {
			// Nodes refuse more by default (the limit is not published):
			// say so now rather than bounce later.
			return envelope.ID{}, &permanentError{fmt.Errorf("the message is too large: %.1f MiB once encrypted, nodes accept %d MiB",
				float64(len(payload))/(1<<20), envelope.DefaultMaxPayload>>20)}
		}
		if reach != nil {
			// Usually known already: the item is ready at once (with a
			// waiver) or once its stamp is minted.
			it.Delegates = n.delegatesOf(reach, now)
		}
		return it.ID, n.queue.Add(ctx, it, payload)
	case isPermanent(err):
		return envelope.ID{}, err
	default:
		// Keep the mail and resolve again later.
		if _, err := rand.Read(it.ID[:]); err != nil {
			return envelope.ID{}, err
		}
		it.LastError = err.Error()
		it.Attempts = 1
		it.NextTry = now.Add(n.backoff.Delay(1))
		return envelope.ID{}, n.queue.Add(ctx, it, mail)
	}
}

// seal signs and encrypts mail to key and completes it (ID, recipient,
// waiver proof when the recipient gave us one).
func (n *Node) seal(it *queue.Item, mail []byte, key *address.Key, now time.Time) ([]byte, error) {
	payload, err := message.Seal(mail, message.SealOptions{From: n.id, To: key, Now: now})
	if err != nil {
		return nil, fmt.Errorf("node: sealing the message: %w", err)
	}
	it.ID = envelope.IDOf(payload)
	it.Sealed = true
	it.Recipient = key.Fingerprint().String()
	it.RecipientKey = key.Bytes()
	if tok, ok := n.waivers.tokenFor(key.Fingerprint(), now); ok {
		it.ProofKind = uint8(envelope.KindWaiver)
		it.Proof = tok.Prove(it.ID)
	}
	return payload, nil
}

// permanentError marks a recipient that cannot be delivered to.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// resolveRecipient finds the key to encrypt to: the key bound to an email
// address (its successor if it was rotated), or the key a key address
// names; and, when found, where that key's delegates are reached. Errors
// that no retry can mend are *permanentError.
func (n *Node) resolveRecipient(ctx context.Context, to string) (*address.Key, *record.ReachRecord, error) {
	if ka, err := address.ParseKeyAddress(to); err == nil {
		f := address.Fingerprint(ka)
		k, err := n.lookupKey(ctx, f)
		if errors.Is(err, dht.ErrNotFound) {
			return nil, nil, &permanentError{fmt.Errorf("no key %s in the DSEP network", f)}
		}
		if err != nil {
			return nil, nil, err
		}
		rev, err := n.resolver.LookupRevocation(ctx, f)
		if err != nil {
			return nil, nil, err
		}
		if rev != nil {
			return n.successorOf(ctx, rev, address.Email{})
		}
		reach, _ := n.resolver.LookupReach(ctx, f)
		return k, reach, nil
	}
	email, err := address.ParseEmail(to)
	if err != nil {
		return nil, nil, &permanentError{fmt.Errorf("%q is not an email or key address: %w", to, err)}
	}
	res, err := n.resolveEmail(ctx, email)
	switch {
	case err == nil, errors.Is(err, dht.ErrNoReach):
		return res.Key, res.Reach, nil
	case errors.Is(err, dht.ErrRevoked) && res != nil:
		return n.successorOf(ctx, res.Revocation, email)
	case errors.Is(err, dht.ErrNoDomainRecord), errors.Is(err, dht.ErrNoEmailRecord), errors.Is(err, dht.ErrBinding):
		return nil, nil, &permanentError{err}
	}
	return nil, nil, err
}

// successorOf follows a superseded key to its successor. The authority
// is the revocation itself: signed by the old primary (the resolver
// verified it), it names the successor. The successor must be usable and,
// for an email address, carry a User ID for it. Once the domain
// re-certifies, the email record names the successor and no following is
// needed.
func (n *Node) successorOf(ctx context.Context, rev *address.Revocation, email address.Email) (*address.Key, *record.ReachRecord, error) {
	if rev.Hard() || rev.Successor == nil {
		return nil, nil, &permanentError{fmt.Errorf("the recipient's key was revoked (%s) and names no successor", rev.Kind())}
	}
	next, err := n.lookupKey(ctx, *rev.Successor)
	if err != nil {
		return nil, nil, fmt.Errorf("fetching the successor key %s: %w", rev.Successor, err)
	}
	now := n.now()
	if err := next.Check(now); err != nil {
		return nil, nil, &permanentError{fmt.Errorf("the recipient's successor key is unusable: %w", err)}
	}
	if !email.IsZero() {
		if _, ok := next.UserIDFor(email, now); !ok {
			return nil, nil, &permanentError{fmt.Errorf("the recipient's successor key has no User ID for %s", email)}
		}
	}
	reach, _ := n.resolver.LookupReach(ctx, *rev.Successor)
	return next, reach, nil
}

// kick wakes the delivery loop.
func (n *Node) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// deliveryLoop runs the outbound queue: prepares items (resolve, seal,
// delegates, stamp) and delivers due ones, batched per delegate.
func (n *Node) deliveryLoop(ctx context.Context) {
	mintSem := make(chan struct{}, 1)
	prepSem := make(chan struct{}, 8)
	// Up to streamsPerPeer batches go to one delegate at once, each on
	// its own stream (the receiver syncs them in one group).
	const streamsPerPeer = 4
	busyPeer := map[peer.ID]int{}
	done := make(chan peer.ID, 64)
	for {
		now := n.now()
		due, next, err := n.queue.Due(now, 1024)
		if err != nil {
			n.log.Error("reading the queue", "err", err)
		}
		batches := map[peer.ID][]*queue.Item{}
		for _, it := range due {
			n.mu.Lock()
			busy := n.inflight[it.ID] > 0
			n.mu.Unlock()
			if busy {
				continue
			}
			switch {
			case !now.Before(it.Expires):
				n.hold(it.ID)
				go func(it *queue.Item) { defer n.release(it.ID); n.expire(ctx, it) }(it)
			case !it.Sealed || len(it.Delegates) == 0:
				n.hold(it.ID)
				go func(it *queue.Item) {
					defer n.release(it.ID)
					select {
					case prepSem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					defer func() { <-prepSem }()
					n.prepare(ctx, it)
				}(it)
			case !it.Ready():
				n.hold(it.ID)
				go func(it *queue.Item) {
					defer n.release(it.ID)
					select {
					case mintSem <- struct{}{}:
					case <-ctx.Done():
						return
					}
					defer func() { <-mintSem }()
					n.mint(ctx, it)
				}(it)
			default:
				for _, d := range it.Delegates {
					if d.State == queue.StatePending && !now.Before(d.NextTry) {
						p, err := peer.Decode(d.Peer)
						if err != nil {
							continue
						}
						batches[p] = append(batches[p], it)
					}
				}
			}
		}
		for p, items := range batches {
			const maxBatch = 128
			for len(items) > 0 && busyPeer[p] < streamsPerPeer {
				batch := items[:min(maxBatch, len(items))]
				items = items[len(batch):]
				busyPeer[p]++
				for _, it := range batch {
					n.hold(it.ID)
				}
				go func(p peer.ID, items []*queue.Item) {
					defer func() {
						for _, it := range items {
							n.release(it.ID)
						}
						done <- p
					}()
					n.sendBatch(ctx, p, items)
				}(p, batch)
			}
			// Left for a free stream: back on the schedule.
			for _, it := range items {
				n.queue.reschedule(it.ID)
			}
		}
		wait := time.Second
		if !next.IsZero() {
			if d := next.Sub(n.now()); d < wait {
				wait = max(d, 10*time.Millisecond)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			// Let the senders finish: their outcome must be recorded.
			for len(busyPeer) > 0 {
				p := <-done
				if busyPeer[p]--; busyPeer[p] <= 0 {
					delete(busyPeer, p)
				}
			}
			return
		case <-n.wake:
			// Let a burst of wake-ups coalesce into one pass: each pass
			// looks at every pending item.
			time.Sleep(10 * time.Millisecond)
		case p := <-done:
			if busyPeer[p]--; busyPeer[p] <= 0 {
				delete(busyPeer, p)
			}
		case <-t.C:
		}
		t.Stop()
	drain:
		for {
			select {
			case p := <-done:
				if busyPeer[p]--; busyPeer[p] <= 0 {
					delete(busyPeer, p)
				}
			default:
				break drain
			}
		}
	}
}

func (n *Node) hold(id envelope.ID) {
	n.mu.Lock()
	n.inflight[id]++
	n.mu.Unlock()
}

func (n *Node) release(id envelope.ID) {
	n.mu.Lock()
	n.inflight[id]--
	last := n.inflight[id] <= 0
	if last {
		delete(n.inflight, id)
	}
	n.mu.Unlock()
	if last {
		n.queue.reschedule(id)
	}
	n.kick()
}

// prepare resolves what an item lacks: the recipient key (then seals the
// mail) and the delegates to deliver to.
func (n *Node) prepare(ctx context.Context, it *queue.Item) {
	now := n.now()
	fail := func(err error, permanent bool) {
		n.log.Info("delivery waits", "to", it.To, "err", err)
		_, uerr := n.queue.Update(ctx, it.ID, func(q *queue.Item) error {
			q.Attempts++
			q.LastError = err.Error()
			q.NextTry = now.Add(n.backoff.Delay(q.Attempts))
			if permanent {
				q.Expires = now
			}
			return nil
		})
		if uerr != nil {
			n.log.Error("updating the queue", "err", uerr)
		}
	}
	if !it.Sealed {
		key, _, err := n.resolveRecipient(ctx, it.To)
		if err != nil {
			fail(err, isPermanent(err))
			return
		}
		mail, err := n.queue.Bytes(it.ID)
		if err != nil {
			fail(err, false)
			return
		}
		old := it.ID
		next := *it
		payload, err := n.seal(&next, mail, key, now)
		if err != nil {
			fail(err, true)
			return
		}
		next.LastError = ""
		if err := n.queue.Rekey(ctx, old, &next, payload); err != nil {
			n.log.Error("updating the queue", "err", err)
			return
		}
		it = &next
	}
	f, err := address.ParseFingerprint(it.Recipient)
	if err != nil {
		fail(err, true)
		return
	}
	reach, err := n.resolver.LookupReach(ctx, f)
	if err != nil {
		fail(fmt.Errorf("finding where %s is reached: %w", it.To, err), false)
		return
	}
	ds := n.delegatesOf(reach, now)
	if len(ds) == 0 {
		fail(fmt.Errorf("%s lists no delegate with an address", it.To), false)
		return
	}
	_, err = n.queue.Update(ctx, it.ID, func(q *queue.Item) error {
		q.Delegates = ds
		q.LastError = ""
		return nil
	})
	if err != nil {
		n.log.Error("updating the queue", "err", err)
	}
}

// delegatesOf lists the delegates to deliver to: every device and
// mailbox delegation valid now that has addresses, which it puts in the
// peerstore.
func (n *Node) delegatesOf(r *record.ReachRecord, now time.Time) []queue.Delegate {
	var out []queue.Delegate
	seen := map[peer.ID]bool{}
	for _, d := range r.Delegations {
		if d.Valid(now) != nil || seen[d.Peer] || len(out) >= queue.MaxDelegates {
			continue
		}
		if d.Role != address.RoleDevice && d.Role != address.RoleMailbox {
			continue
		}
		addrs := r.Addrs[d.Peer]
		if len(addrs) == 0 {
			continue
		}
		seen[d.Peer] = true
		n.host.Peerstore().AddAddrs(d.Peer, addrs, peerstore.TempAddrTTL)
		out = append(out, queue.Delegate{Peer: d.Peer.String(), Role: d.Role.String(), State: queue.StatePending, NextTry: now})
	}
	return out
}

// mint pays for a message with a stamp at the recipient's price.
func (n *Node) mint(ctx context.Context, it *queue.Item) {
	f, err := address.ParseFingerprint(it.Recipient)
	if err != nil {
		return
	}
	reach, err := n.resolver.LookupReach(ctx, f)
	bits := record.DefaultStampBits
	if err == nil {
		bits = reach.Price()
	}
	size, err := n.payloadSize(it.ID)
	if err != nil {
		n.log.Error("reading a queued payload", "err", err)
		return
	}
	price := stamp.Price(size, bits)
	n.log.Info("minting a stamp", "to", it.To, "bits", price)
	s, err := stamp.Mint(ctx, stamp.MintParams{Bits: price, Resource: it.Recipient, Ext: stamp.PayloadExt(it.ID), Workers: n.cfg.MintWorkers}, nil)
	if err != nil {
		return // cancelled
	}
	_, err = n.queue.Update(ctx, it.ID, func(q *queue.Item) error {
		q.ProofKind = uint8(envelope.KindStamp)
		q.Proof = []byte(s)
		return nil
	})
	if err != nil {
		n.log.Error("updating the queue", "err", err)
	}
}

func (n *Node) payloadSize(id envelope.ID) (int64, error) {
	b, err := n.queue.Bytes(id)
	return int64(len(b)), err
}

// sendBatch delivers items to one delegate over one stream and records
// each outcome.
func (n *Node) sendBatch(ctx context.Context, p peer.ID, items []*queue.Item) {
	now := n.now()
	if len(n.host.Peerstore().Addrs(p)) == 0 {
		// Addresses expired from the peerstore: look the reach up again.
		for _, it := range items {
			if f, err := address.ParseFingerprint(it.Recipient); err == nil {
				if r, err := n.resolver.LookupReach(ctx, f); err == nil {
					n.delegatesOf(r, now)
				}
			}
		}
	}
	var msgs, rcpts []*queue.Item
	for _, it := range items {
		if it.Kind == queue.KindReceipt {
			rcpts = append(rcpts, it)
		} else {
			msgs = append(msgs, it)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, DefaultDeliverTimeout)
	defer cancel()
	// The queue paces retries itself: libp2p's dial backoff (set by any
	// earlier failed dial, the DHT's included) must not skip an attempt.
	sctx = network.WithForceDirectDial(sctx, "dsep queue attempt")
	if len(msgs) > 0 {
		n.sendMessages(sctx, p, msgs)
	}
	if len(rcpts) > 0 {
		n.sendReceipts(sctx, p, rcpts)
	}
}

// outcome is what happened to one item at one delegate.
type outcome struct {
	delivered  bool
	permanent  bool
	retryAfter time.Duration
	err        string
}

func (n *Node) sendMessages(ctx context.Context, p peer.ID, items []*queue.Item) {
	outs := make([]deliver.Outgoing, 0, len(items))
	kept := items[:0]
	for _, it := range items {
		b, err := n.queue.Bytes(it.ID)
		if err != nil {
			n.log.Error("reading a queued payload", "id", it.ID.String(), "err", err)
			continue
		}
		outs = append(outs, deliver.Outgoing{Kind: envelope.Kind(it.ProofKind), Proof: it.Proof, Payload: b})
		kept = append(kept, it)
	}
	items = kept
	resps, err := deliver.Send(ctx, n.host, p, outs)
	results := map[envelope.ID]outcome{}
	for i, it := range items {
		if i >= len(resps) {
			msg := "not answered"
			if err != nil {
				msg = err.Error()
			}
			results[it.ID] = outcome{err: msg}
			continue
		}
		r := resps[i]
		switch r.Status {
		case deliver.StatusStored, deliver.StatusDuplicate:
			results[it.ID] = outcome{delivered: true}
			n.stats.Sent.Add(1)
		case deliver.StatusRejected:
			results[it.ID] = outcome{permanent: true, err: "refused: " + r.Reason}
		default:
			results[it.ID] = outcome{retryAfter: r.RetryAfter, err: "deferred: " + r.Reason}
		}
	}
	n.record(ctx, p, results)
}

func (n *Node) sendReceipts(ctx context.Context, p peer.ID, items []*queue.Item) {
	var blobs [][]byte
	kept := items[:0]
	for _, it := range items {
		b, err := n.queue.Bytes(it.ID)
		if err != nil {
			continue
		}
		blobs = append(blobs, b)
		kept = append(kept, it)
	}
	items = kept
	res, err := deliver.SendReceipts(ctx, n.host, p, blobs)
	results := map[envelope.ID]outcome{}
	for i, it := range items {
		switch {
		case i >= len(res):
			msg := "not answered"
			if err != nil {
				msg = err.Error()
			}
			results[it.ID] = outcome{err: msg}
		case res[i] == deliver.ReceiptAccepted:
			results[it.ID] = outcome{delivered: true}
		case res[i] == deliver.ReceiptRefused:
			results[it.ID] = outcome{permanent: true, err: "refused"}
		default:
			results[it.ID] = outcome{err: "deferred"}
		}
	}
	n.record(ctx, p, results)
}

// record writes the outcomes of one delivery attempt at delegate p, in
// one durable transaction.
func (n *Node) record(ctx context.Context, p peer.ID, results map[envelope.ID]outcome) {
	now := n.now()
	ids := make([]envelope.ID, 0, len(results))
	for id := range results {
		ids = append(ids, id)
	}
	done, err := n.queue.UpdateMany(context.WithoutCancel(ctx), ids, func(it *queue.Item) error {
		o := results[it.ID]
		for i := range it.Delegates {
			d := &it.Delegates[i]
			if d.Peer != p.String() || d.State != queue.StatePending {
				continue
			}
			d.Attempts++
			switch {
			case o.delivered:
				d.State, d.DeliveredAt, d.LastError = queue.StateDelivered, now, ""
			case o.permanent:
				d.State, d.LastError = queue.StateFailed, o.err
			default:
				d.LastError = o.err
				wait := n.backoff.Delay(d.Attempts)
				if o.retryAfter > wait {
					wait = o.retryAfter
				}
				d.NextTry = now.Add(wait)
			}
		}
		it.Settle(now)
		return nil
	})
	if err != nil {
		n.log.Error("recording delivery outcomes", "err", err)
		return
	}
	for _, it := range done {
		if it.State == queue.StateFailed && it.Kind == queue.KindMessage {
			n.bounce(ctx, it, "every delegate refused it")
		}
	}
}

// expire ends an item whose lifetime is over: delivered if some delegate
// took it, else failed, with a bounce for a message.
func (n *Node) expire(ctx context.Context, it *queue.Item) {
	now := n.now()
	why := it.LastError
	for _, d := range it.Delegates {
		if d.LastError != "" {
			why = d.LastError
		}
	}
	it2, err := n.queue.Update(ctx, it.ID, func(q *queue.Item) error {
		delivered := false
		for i := range q.Delegates {
			if q.Delegates[i].State == queue.StateDelivered {
				delivered = true
			} else if q.Delegates[i].State == queue.StatePending {
				q.Delegates[i].State = queue.StateFailed
			}
		}
		if delivered {
			q.State = queue.StateDelivered
		} else {
			q.State = queue.StateFailed
		}
		q.Done = now
		return nil
	})
	if err != nil {
		n.log.Error("expiring a queue item", "err", err)
		return
	}
	if it2.State == queue.StateFailed && it2.Kind == queue.KindMessage {
		if why == "" {
			why = "no delegate could be reached"
		}
		n.bounce(ctx, it2, "its lifetime ended: "+why)
	}
}

// bounce files a delivery failure notice for a queue item in the
// sender's own INBOX and marks the item bounced.
func (n *Node) bounce(ctx context.Context, it *queue.Item, why string) {
	if !n.bounceNow(ctx, it.To, it.Subject, why+"\r\nMessage ID: "+it.ID.String()+"\r\nQueued: "+it.Created.UTC().Format(time.RFC1123Z)) {
		return
	}
	_, _ = n.queue.Update(ctx, it.ID, func(q *queue.Item) error {
		q.State = queue.StateBounced
		return nil
	})
	n.log.Warn("message bounced", "to", it.To, "id", it.ID.String(), "reason", why)
}

// bounceNow files a notice that mail to "to" could not be delivered in
// the sender's own INBOX; it reports whether it was filed.
func (n *Node) bounceNow(ctx context.Context, to, subject, why string) bool {
	now := n.now()
	self := n.fpr.KeyAddress().String()
	if len(n.emails) > 0 {
		self = n.emails[0].String()
	}
	body := fmt.Sprintf("Your message could not be delivered to %s.\r\n\r\nSubject: %s\r\nReason: %s\r\n", to, subject, why)
	raw, err := compose.Build(compose.Draft{
		From:    "DSEP node <" + self + ">",
		To:      []string{self},
		Subject: "Undelivered: " + strings.TrimSpace(subject),
		Body:    []byte(body),
		Date:    now,
	})
	if err != nil {
		n.log.Error("building a bounce", "err", err)
		return false
	}
	meta := summarize(raw)
	meta.ID = sha256.Sum256(raw)
	meta.Folder = "INBOX"
	meta.Direction = "bounce"
	meta.Received = now
	meta.Size = int64(len(raw))
	meta.Verification = store.Verification{Status: control.VerifyLocal, Detail: "a delivery failure notice from this node"}
	if _, err := n.store.Deliver(ctx, meta, raw); err != nil {
		n.log.Error("filing a bounce", "err", err)
		return false
	}
	return true
}
