package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/node/deliver"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/queue"
	"github.com/dsep-project/dsep/node/receipt"
	"github.com/dsep-project/dsep/node/waiver"
	"github.com/libp2p/go-libp2p/core/peer"
)

// receiptLifetime is how long a receipt is retried: a receipt that cannot
// reach its sender for two days is of no more use.
const receiptLifetime = 48 * time.Hour

// queueReceipt signs a receipt for a message filed in the mailbox and
// queues it to the sender's identity.
func (n *Node) queueReceipt(ctx context.Context, id envelope.ID, sender *address.Key, now time.Time) error {
	r := receipt.Receipt{
		MessageID: id,
		Recipient: n.fpr,
		Sender:    sender.Fingerprint(),
		Received:  now,
		Status:    receipt.StatusDelivered,
	}
	b, err := r.Sign(n.id, now)
	if err != nil {
		return err
	}
	it := &queue.Item{
		ID:        sha256.Sum256(b),
		Kind:      queue.KindReceipt,
		To:        sender.KeyAddress().String(),
		Recipient: sender.Fingerprint().String(),
		Sealed:    true,
		Created:   now,
		Expires:   now.Add(receiptLifetime),
		State:     queue.StatePending,
	}
	if reach, err := n.resolver.LookupReach(ctx, sender.Fingerprint()); err == nil {
		it.Delegates = n.delegatesOf(reach, now)
	}
	if err := n.queue.Add(ctx, it, b); err != nil {
		return err
	}
	n.kick()
	return nil
}

// acceptReceipt takes a receipt for a message this node sent: it must
// name a queued message, be signed by the key the message was encrypted
// to, and be for this identity.
func (n *Node) acceptReceipt(ctx context.Context, remote peer.ID, b []byte) error {
	s, err := receipt.Parse(b)
	if err != nil {
		return &deliver.Refusal{Status: deliver.StatusRejected, Reason: "malformed receipt"}
	}
	if s.Receipt.Sender != n.fpr {
		return &deliver.Refusal{Status: deliver.StatusRejected, Reason: "receipt for another identity"}
	}
	it, err := n.queue.Get(s.Receipt.MessageID)
	if errors.Is(err, queue.ErrNotFound) || (err == nil && it.Kind != queue.KindMessage) {
		return &deliver.Refusal{Status: deliver.StatusRejected, Reason: "no such message"}
	}
	if err != nil {
		return &deliver.Refusal{Status: deliver.StatusRetry, Reason: "temporary failure", RetryAfter: time.Minute}
	}
	key, err := n.recipientKey(it.Recipient)
	if err != nil {
		return &deliver.Refusal{Status: deliver.StatusRejected, Reason: "no such message"}
	}
	if err := s.Verify(key, n.now()); err != nil {
		return &deliver.Refusal{Status: deliver.StatusRejected, Reason: "receipt signature does not verify"}
	}
	_, err = n.queue.Update(ctx, it.ID, func(q *queue.Item) error {
		if q.Receipt.IsZero() {
			q.Receipt = s.Receipt.Received
			if q.Receipt.IsZero() {
				q.Receipt = n.now()
			}
		}
		return nil
	})
	if err != nil {
		return &deliver.Refusal{Status: deliver.StatusRetry, Reason: "temporary failure", RetryAfter: time.Minute}
	}
	n.stats.Receipts.Add(1)
	return nil
}

// waiverBook keeps the waivers this identity issued (by ID, to check
// proofs) and the tokens contacts gave it (by recipient, to pay with).
//
//	w/i/<id>   issued: key (32) ‖ not-after (8, Unix seconds, 0 = none)
//	w/t/<fpr>  received: the token's text form
type waiverBook struct {
	db interface {
		DB() *badger.DB
		Durable(ctx context.Context, write func(txn *badger.Txn) error) error
	}
}

func (w *waiverBook) lookup(id [waiver.IDSize]byte) (key [waiver.KeySize]byte, notAfter time.Time, ok bool) {
	_ = w.db.DB().View(func(txn *badger.Txn) error {
		e, err := txn.Get(append([]byte("w/i/"), id[:]...))
		if err != nil {
			return err
		}
		return e.Value(func(v []byte) error {
			if len(v) != waiver.KeySize+8 {
				return errors.New("damaged waiver")
			}
			copy(key[:], v)
			var secs int64
			for _, c := range v[waiver.KeySize:] {
				secs = secs<<8 | int64(c)
			}
			if secs != 0 {
				notAfter = time.Unix(secs, 0)
			}
			ok = true
			return nil
		})
	})
	return key, notAfter, ok
}

// IssueWaiver makes a waiver token for a contact or list: whoever holds
// it may send this identity mail without a stamp until notAfter (zero:
// until revoked).
func (n *Node) IssueWaiver(ctx context.Context, notAfter time.Time) (waiver.Token, error) {
	tok, err := waiver.New(n.fpr, notAfter)
	if err != nil {
		return tok, err
	}
	v := make([]byte, waiver.KeySize+8)
	copy(v, tok.Key[:])
	if !notAfter.IsZero() {
		secs := notAfter.Unix()
		for i := 0; i < 8; i++ {
			v[waiver.KeySize+7-i] = byte(secs >> (8 * i))
		}
	}
	err = n.store.Durable(ctx, func(txn *badger.Txn) error {
		return txn.Set(append([]byte("w/i/"), tok.ID[:]...), v)
	})
	return tok, err
}

// AddWaiver keeps a token a contact gave this identity: messages to that
// contact then pay with it instead of a stamp.
func (n *Node) AddWaiver(ctx context.Context, tok waiver.Token) error {
	return n.store.Durable(ctx, func(txn *badger.Txn) error {
		return txn.Set(append([]byte("w/t/"), tok.Recipient[:]...), []byte(tok.String()))
	})
}

func (w *waiverBook) tokenFor(f address.Fingerprint, now time.Time) (waiver.Token, bool) {
	var tok waiver.Token
	var ok bool
	_ = w.db.DB().View(func(txn *badger.Txn) error {
		e, err := txn.Get(append([]byte("w/t/"), f[:]...))
		if err != nil {
			return err
		}
		return e.Value(func(v []byte) error {
			t, err := waiver.ParseToken(string(v))
			if err != nil {
				return err
			}
			if !t.NotAfter.IsZero() && !now.Before(t.NotAfter) {
				return nil
			}
			tok, ok = t, true
			return nil
		})
	})
	return tok, ok
}
