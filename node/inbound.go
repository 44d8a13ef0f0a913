package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/address/book"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/node/control"
	"github.com/dsep-project/dsep/node/deliver"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/message"
	"github.com/dsep-project/dsep/node/stamp"
	"github.com/dsep-project/dsep/node/store"
	"github.com/dsep-project/dsep/node/waiver"
	"github.com/emersion/go-message/mail"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Verification statuses of a received message (store.Verification.Status),
// the control API's names.
const (
	// VerifiedSender: signed by the key the sender's domain binds to the
	// From address (or the From is the signer's own key address).
	VerifiedSender = control.VerifyVerified
	// UnknownKey: validly signed, but no binding of the From address could
	// be found (no DSEP domain, no email record).
	UnknownKey = control.VerifyUnknownKey
	// BindingMismatch: validly signed by a key other than the one bound to
	// the From address: treat as a possible forgery.
	BindingMismatch = control.VerifyMismatch
	// Superseded: signed by a key its owner replaced (rotated): shown with
	// a prominent warning.
	Superseded = control.VerifySuperseded
	// Revoked: signed by a key revoked as compromised (or retired): the
	// message is rejected, never shown.
	Revoked = control.VerifyRevoked
	// Unchecked: validly signed, but the binding could not be checked now
	// (DNS or DHT failure).
	Unchecked = control.VerifyUnchecked
)

// inbound is a stored envelope waiting to be processed.
type inbound struct {
	id      envelope.ID
	payload []byte
}

// policy is the node's receive policy for the deliver server.
type policy Node

var _ deliver.Policy = (*policy)(nil)

func refuse(status deliver.Status, format string, args ...any) error {
	return &deliver.Refusal{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// Admit runs the checks that need no payload: the proof's form, price,
// resource and freshness, and whether a stamp is spent (unless its
// envelope is already stored: a retry is acknowledged again).
func (p *policy) Admit(remote peer.ID, h envelope.Header) error {
	n := (*Node)(p)
	now := n.now()
	switch h.Kind {
	case envelope.KindStamp:
		raw := string(h.Proof)
		price := stamp.Price(int64(h.PayloadLen), n.cfg.StampBits)
		st, err := stamp.Check(raw, stamp.CheckParams{Bits: price, Resource: n.fpr.String(), Now: now})
		if err != nil {
			n.stats.Refused.Add(1)
			return refuse(deliver.StatusRejected, "stamp refused: %v (price %d bits)", err, price)
		}
		id, ok := stampID(st)
		if !ok {
			n.stats.Refused.Add(1)
			return refuse(deliver.StatusRejected, "stamp refused: its ext does not name a payload digest")
		}
		if stored, err := n.store.Has(id); err == nil && stored {
			return nil
		}
		spent, err := n.spent.IsSpent(raw, now)
		if err != nil {
			return &deliver.Refusal{Status: deliver.StatusRetry, Reason: "temporary failure", RetryAfter: time.Minute}
		}
		if spent {
			n.stats.Refused.Add(1)
			return refuse(deliver.StatusRejected, "stamp refused: already spent")
		}
		return nil
	case envelope.KindWaiver:
		if len(h.Proof) != waiver.ProofSize {
			n.stats.Refused.Add(1)
			return refuse(deliver.StatusRejected, "waiver proof of %d bytes", len(h.Proof))
		}
		var wid [waiver.IDSize]byte
		copy(wid[:], h.Proof)
		if _, notAfter, ok := n.waivers.lookup(wid); !ok || (!notAfter.IsZero() && !now.Before(notAfter)) {
			n.stats.Refused.Add(1)
			return refuse(deliver.StatusRejected, "unknown, revoked or expired waiver")
		}
		return nil
	}
	n.stats.Refused.Add(1)
	return refuse(deliver.StatusRejected, "unknown proof kind")
}

// stampID reads the message ID a DSEP stamp pays for from its ext.
func stampID(st stamp.Stamp) (envelope.ID, bool) {
	var id envelope.ID
	ext := st.Ext
	if !strings.HasPrefix(ext, "d=") {
		return id, false
	}
	id, err := envelope.ParseID(ext[2:])
	return id, err == nil
}

// Accept checks the proof against the payload, stores the envelope
// durably and queues it for processing. It returns once the envelope is
// on disk.
func (p *policy) Accept(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
	n := (*Node)(p)
	now := n.now()
	var st stamp.Stamp
	switch h.Kind {
	case envelope.KindStamp:
		var err error
		st, err = stamp.Parse(string(h.Proof))
		if err != nil {
			return false, refuse(deliver.StatusRejected, "stamp refused: %v", err)
		}
		if want, ok := stampID(st); !ok || want != id {
			n.stats.Refused.Add(1)
			return false, refuse(deliver.StatusRejected, "stamp refused: it pays for another payload")
		}
	case envelope.KindWaiver:
		if _, err := waiver.Verify(h.Proof, n.fpr, id, now, n.waivers.lookup); err != nil {
			n.stats.Refused.Add(1)
			return false, refuse(deliver.StatusRejected, "waiver refused: %v", err)
		}
	}
	dup, err := n.store.Spool(ctx, store.Inbound{
		ID:       id,
		Kind:     uint8(h.Kind),
		Proof:    h.Proof,
		Payload:  payload,
		FromPeer: remote.String(),
		Received: now,
	})
	if err != nil {
		n.log.Error("spooling an envelope", "id", id.String(), "err", err)
		return false, err
	}
	if dup {
		n.stats.Duplicates.Add(1)
	} else {
		n.stats.Received.Add(1)
		if h.Kind == envelope.KindStamp {
			// The envelope is stored first: a crash in between leaves the
			// stamp unspent, but it pays only for this payload, whose ID
			// is now deduplicated.
			if err := n.spent.Spend(st, string(h.Proof), now); err != nil && !errors.Is(err, stamp.ErrSpent) {
				n.log.Warn("recording a spent stamp", "id", id.String(), "err", err)
			}
		}
		n.enqueue(inbound{id: id, payload: payload})
	}
	return dup, nil
}

// enqueue hands a stored envelope to the processing workers, or leaves it
// for the spool rescan when they are saturated.
func (n *Node) enqueue(in inbound) {
	n.mu.Lock()
	if n.processing[in.id] {
		n.mu.Unlock()
		return
	}
	n.processing[in.id] = true
	n.mu.Unlock()
	select {
	case n.incoming <- in:
	default:
		n.mu.Lock()
		delete(n.processing, in.id)
		n.overflow = true
		n.mu.Unlock()
	}
}

func (n *Node) processLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-n.incoming:
			n.process(ctx, in)
			n.mu.Lock()
			delete(n.processing, in.id)
			n.mu.Unlock()
		}
	}
}

// recoverSpool processes what was stored but not processed before a
// restart, and what overflowed the workers' queue since.
func (n *Node) recoverSpool(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	first := true
	for {
		n.mu.Lock()
		again := first || n.overflow
		n.overflow = false
		n.mu.Unlock()
		first = false
		if again {
			ids, err := n.store.Pending(0)
			if err != nil {
				n.log.Error("listing stored envelopes", "err", err)
			}
			for _, id := range ids {
				n.mu.Lock()
				busy := n.processing[id]
				if !busy {
					n.processing[id] = true
				}
				n.mu.Unlock()
				if busy {
					continue
				}
				raw, err := n.store.Raw(id)
				if err != nil {
					n.log.Error("reading a stored envelope", "id", id.String(), "err", err)
					n.mu.Lock()
					delete(n.processing, id)
					n.mu.Unlock()
					continue
				}
				select {
				case n.incoming <- inbound{id: id, payload: raw}:
				case <-ctx.Done():
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// process decrypts, verifies, classifies and files one stored envelope.
func (n *Node) process(ctx context.Context, in inbound) {
	now := n.now()
	n.stats.Decrypted.Add(1)
	op, err := message.Open(ctx, in.payload, message.OpenOptions{
		Own:     n.id,
		Lookup:  n.lookupKey,
		Now:     now,
		MaxMail: int64(n.maxPayload()) * 2,
	})
	if err != nil {
		if message.IsTemporary(err) && ctx.Err() == nil {
			// The sender's key could not be fetched: the envelope stays
			// stored and is retried by the spool rescan.
			n.log.Info("message waits for its sender's key", "id", in.id.String(), "err", err)
			n.mu.Lock()
			n.overflow = true
			n.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			return
		}
		n.reject(ctx, in.id, err.Error())
		return
	}
	// The header was parsed once, by Open: From is read from it.
	from, fromErr := headerFrom(op.Header)
	v := n.classify(ctx, op, from, fromErr)
	v = n.consultBook(from, v)
	if v.Status == Revoked {
		n.reject(ctx, in.id, v.Detail)
		return
	}
	mail, err := annotate(op.Mail, v, from)
	if err != nil {
		n.reject(ctx, in.id, err.Error())
		return
	}
	meta := summarize(mail)
	meta.ID = in.id
	meta.Folder = "INBOX"
	if v.Status == BindingMismatch {
		// Neither the binding nor a gateway vouches for the From: Junk,
		// with the reason in the header.
		meta.Folder = "Junk"
	}
	meta.Direction = "in"
	meta.Received = now
	meta.Size = int64(len(mail))
	meta.Verification = v
	filed, err := n.store.Deliver(ctx, meta, mail)
	if err != nil {
		n.log.Error("filing a message", "id", in.id.String(), "err", err)
		return
	}
	n.stats.Delivered.Add(1)
	if n.cfg.OnFiled != nil {
		n.cfg.OnFiled(filed)
	}
	n.log.Info("message received", "id", in.id.String(), "verification", v.Status)
	if !n.cfg.NoReceipts {
		if err := n.queueReceipt(ctx, in.id, op.SenderKey, now); err != nil {
			n.log.Warn("queueing a receipt", "id", in.id.String(), "err", err)
		}
	}
}

func (n *Node) reject(ctx context.Context, id envelope.ID, why string) {
	n.stats.Rejected.Add(1)
	n.log.Warn("message rejected", "id", id.String(), "reason", why)
	if err := n.store.Reject(ctx, id, why); err != nil {
		n.log.Error("rejecting a message", "id", id.String(), "err", err)
	}
}

func (n *Node) maxPayload() uint64 {
	if n.cfg.MaxPayload == 0 {
		return envelope.DefaultMaxPayload
	}
	return n.cfg.MaxPayload
}

// classify checks the sender's binding: is the signer the key the From
// address's domain binds, and is it revoked or replaced?
func (n *Node) classify(ctx context.Context, op *message.Opened, from string, fromErr error) store.Verification {
	signer := op.Sender
	v := store.Verification{Signer: signer.String()}
	if fromErr != nil {
		v.Status, v.Detail = BindingMismatch, "no usable From address: "+fromErr.Error()
		return v
	}
	// A key address names the key itself.
	if ka, err := address.ParseKeyAddress(from); err == nil {
		if address.Fingerprint(ka) == signer {
			return n.checkSignerRevocation(ctx, signer, store.Verification{Status: VerifiedSender, Signer: signer.String(), Detail: "signed by the key its key address names"})
		}
		v.Status, v.Detail = BindingMismatch, "From names another key than the signer's"
		return v
	}
	email, err := address.ParseEmail(from)
	if err != nil {
		v.Status, v.Detail = BindingMismatch, "From is not a usable address"
		return v
	}
	res, err := n.resolveEmail(ctx, email)
	switch {
	case res != nil && (err == nil || errors.Is(err, dht.ErrRevoked) || errors.Is(err, dht.ErrNoReach)):
		bound := res.Key.Fingerprint()
		if bound == signer {
			if rev := res.Revocation; rev != nil {
				return revokedVerdict(signer, rev)
			}
			v.Status, v.Detail = VerifiedSender, "bound to "+email.String()+" by "+email.Domain()+" over "+res.Verdict.Method()
			return v
		}
		// Signed by another key than the bound one: the sender's previous
		// key (rotated), or a forgery.
		if rev, _ := n.resolver.LookupRevocation(ctx, signer); rev != nil {
			if rev.Hard() {
				return revokedVerdict(signer, rev)
			}
			if rev.Successor != nil && *rev.Successor == bound {
				v.Status = Superseded
				v.Detail = "signed by " + email.String() + "'s previous key, replaced by " + bound.String()
				return v
			}
		}
		v.Status = BindingMismatch
		v.Detail = email.Domain() + " binds " + email.String() + " to another key (" + bound.String() + ")"
		return v
	case errors.Is(err, dht.ErrNoDomainRecord), errors.Is(err, dht.ErrNoEmailRecord), errors.Is(err, dht.ErrNoKeyRecord),
		errors.Is(err, dht.ErrNoDomainKey), errors.Is(err, dht.ErrBinding):
		v.Status, v.Detail = UnknownKey, "no binding of "+email.String()+" to the signing key: "+err.Error()
		return n.checkSignerRevocation(ctx, signer, v)
	default:
		v.Status, v.Detail = Unchecked, "the binding could not be checked: "+errString(err)
		return n.checkSignerRevocation(ctx, signer, v)
	}
}

// consultBook applies the user's address book (Config.Book) to the
// verdict of classify: a sender with no binding (UnknownKey) is verified
// when the user pinned exactly the signing key for the From address
// (`dsep verify --key`, `dsep contacts approve|verify`) and the contact is
// trusted; a sender verified over DNS whose address the book holds in
// conflict keeps its verdict, with the book's hijack warning added. Any
// other verdict is returned unchanged, as is every verdict without a book.
func (n *Node) consultBook(from string, v store.Verification) store.Verification {
	b := n.cfg.Book
	if b == nil || from == "" || (v.Status != UnknownKey && v.Status != VerifiedSender) {
		return v
	}
	if _, err := address.ParseKeyAddress(from); err == nil {
		return v
	}
	email, err := address.ParseEmail(from)
	if err != nil {
		return v
	}
	signer, err := address.ParseFingerprint(v.Signer)
	if err != nil {
		return v
	}
	c, err := b.Get(email)
	if err != nil {
		if !errors.Is(err, book.ErrNotFound) {
			n.log.Warn("reading the address book", "err", err)
		}
		return v
	}
	switch {
	case v.Status == UnknownKey && c.Key == signer && c.Trusted():
		v.Status = VerifiedSender
		v.Detail = "no binding of " + email.String() + " found over DNS and the DHT; its key is pinned in the address book (" +
			string(c.State) + "): verified out of band (approved in the address book)"
	case v.Status == VerifiedSender && c.Key != signer:
		if w := book.HijackWarning(c); w != "" {
			v.Detail += "; the address book pins another key for " + email.String() + ": " + strings.TrimSpace(w)
		}
	}
	return v
}

func errString(err error) string {
	if err == nil {
		return "no result"
	}
	return err.Error()
}

func (n *Node) checkSignerRevocation(ctx context.Context, signer address.Fingerprint, v store.Verification) store.Verification {
	rev, err := n.resolver.LookupRevocation(ctx, signer)
	if err != nil || rev == nil {
		return v
	}
	return revokedVerdict(signer, rev)
}

func revokedVerdict(signer address.Fingerprint, rev *address.Revocation) store.Verification {
	v := store.Verification{Signer: signer.String()}
	if rev.Hard() {
		v.Status = Revoked
		v.Detail = "signed by a key revoked as " + rev.Kind()
		return v
	}
	v.Status = Superseded
	v.Detail = "signed by a key its owner replaced"
	if rev.Successor != nil {
		v.Detail += " by " + rev.Successor.String()
	}
	return v
}

// fromAddress returns the address of the mail's first From mailbox.
func fromAddress(raw []byte) (string, error) {
	h, err := readHeader(raw)
	if err != nil {
		return "", err
	}
	return headerFrom(h)
}

// headerFrom returns the address of the first From mailbox of h.
func headerFrom(h mail.Header) (string, error) {
	list, err := h.AddressList("From")
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		return "", errors.New("no From")
	}
	return list[0].Address, nil
}

func readHeader(raw []byte) (mail.Header, error) {
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return mail.Header{}, err
	}
	defer r.Close()
	return r.Header, nil
}

// summarize extracts what the mailbox lists from the mail's header (the
// IMAP ENVELOPE fields).
func summarize(raw []byte) store.Meta {
	h, err := readHeader(raw)
	if err != nil {
		return store.Meta{}
	}
	return store.MetaFromHeader(h)
}
