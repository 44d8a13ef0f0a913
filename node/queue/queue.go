// Package queue is the persistent outbound queue of a DSEP node
// (DESIGN.md "Outbound queue"): every message and receipt the node has to
// deliver, with the state of its delivery to each of the recipient's
// delegates, kept in the node's badger store under the key prefix "q/".
//
// The queue stores and schedules; it does not send. The node's delivery
// loop asks for due items, tries them and records the outcome. Every
// change is made durable (the store's group commit) before the call
// returns, so a node killed at any point resumes where it was: an item is
// never lost, and an item whose delivery was acknowledged is never sent
// again (the receiver would deduplicate it anyway: the message ID is the
// payload's hash).
//
// Keys:
//
//	q/i/<id>   the item: JSON (small; read when listing and scheduling)
//	q/p/<id>   the item's bytes: the sealed payload, or the plaintext mail
//	           until the recipient is resolved and the payload sealed;
//	           dropped with store.Erase (an empty value), which badger's
//	           value-log GC cannot undo
//	q/w/<id>   present while the item is pending: the scheduler reads
//	           only these, so finished items cost nothing
//	q/k/<fpr>  a recipient's public key (binary), shared by its items
//
// Items and bytes are removed with store.Erase (an empty value), which
// badger's value-log GC cannot undo.
package queue

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/store"
)

// Store is what the queue needs of the node's store: the badger DB and a
// durable (group-committed) write. *store.Store implements it.
type Store interface {
	DB() *badger.DB
	// Durable applies write in a transaction and returns once a sync
	// covering it has returned.
	Durable(ctx context.Context, write func(txn *badger.Txn) error) error
}

// Kinds of item.
const (
	KindMessage = "message"
	KindReceipt = "receipt"
)

// States of an item and of a delegate.
const (
	StatePending   = "pending"   // still trying
	StateDelivered = "delivered" // acknowledged (by every delegate, for an item)
	StateFailed    = "failed"    // given up: permanent refusal or lifetime over
	StateBounced   = "bounced"   // failed, and a bounce was put in the sender's mailbox
)

// Limits.
const (
	// MaxItemBytes bounds an item's JSON, so a damaged store cannot make
	// the scheduler allocate without limit.
	MaxItemBytes = 256 << 10
	// MaxDelegates bounds the delegates tracked per item.
	MaxDelegates = 16
)

// ErrNotFound is returned for an unknown item.
var ErrNotFound = errors.New("queue: no such item")

// Delegate is the delivery state towards one delegate of the recipient.
type Delegate struct {
	Peer        string    `json:"peer"` // libp2p peer ID (text form)
	Role        string    `json:"role"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts,omitempty"`
	NextTry     time.Time `json:"next_try,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
}

// Item is one message (or receipt) to one recipient identity.
type Item struct {
	// ID is the queue key: the message ID once sealed (SHA-256 of the
	// payload); before that, a random ID.
	ID   envelope.ID `json:"id"`
	Kind string      `json:"kind"`
	// To is the address the user wrote (email or key address).
	To string `json:"to"`
	// Recipient is the recipient's primary fingerprint (hex), once known.
	Recipient string `json:"recipient,omitempty"`
	// RecipientKey is the recipient's public key (binary), kept to verify
	// its receipt without a lookup. Add stores it once per recipient
	// (q/k/), not in the item; read it back with Queue.RecipientKey.
	RecipientKey []byte `json:"-"`
	// Sealed says the bytes under q/p/ are the payload (else the mail).
	Sealed bool `json:"sealed"`
	// ProofKind and Proof are the envelope's proof once made.
	ProofKind uint8  `json:"proof_kind,omitempty"`
	Proof     []byte `json:"proof,omitempty"`
	// SentCopy is the ID of the sender's copy in its Sent folder.
	SentCopy string `json:"sent_copy,omitempty"`
	// Subject is kept for the outbox listing and bounces.
	Subject string `json:"subject,omitempty"`

	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	State   string    `json:"state"`
	// Attempts, NextTry and LastError track the item-level steps
	// (resolving the recipient, sealing, minting the stamp).
	Attempts  int       `json:"attempts,omitempty"`
	NextTry   time.Time `json:"next_try,omitzero"`
	LastError string    `json:"last_error,omitempty"`

	Delegates []Delegate `json:"delegates,omitempty"`
	Receipt   time.Time  `json:"receipt,omitzero"`
	Done      time.Time  `json:"done,omitzero"`
}

// Due reports whether the item has work to do at now, and when it next
// will if not.
func (it *Item) Due(now time.Time) (bool, time.Time) {
	if it.State != StatePending {
		return false, time.Time{}
	}
	if !now.Before(it.Expires) {
		return true, now
	}
	if !it.Ready() {
		return !now.Before(it.NextTry), it.NextTry
	}
	next := time.Time{}
	for _, d := range it.Delegates {
		if d.State != StatePending {
			continue
		}
		if !now.Before(d.NextTry) {
			return true, now
		}
		if next.IsZero() || d.NextTry.Before(next) {
			next = d.NextTry
		}
	}
	return false, next
}

// When returns the earliest time the item has work to do (zero for a
// finished item): its lifetime's end, the next try of an item-level step,
// or the next try of a pending delegate.
func (it *Item) When() time.Time {
	if it.State != StatePending {
		return time.Time{}
	}
	at := it.Expires
	if !it.Ready() {
		if it.NextTry.Before(at) {
			at = it.NextTry
		}
		return at
	}
	for _, d := range it.Delegates {
		if d.State == StatePending && d.NextTry.Before(at) {
			at = d.NextTry
		}
	}
	return at
}

// Ready reports whether the item is prepared for delivery: sealed, its
// delegates known and (for a message) its proof made.
func (it *Item) Ready() bool {
	return it.Sealed && len(it.Delegates) > 0 && (it.Kind != KindMessage || len(it.Proof) > 0)
}

// Settle sets the item's state from its delegates': delivered once every
// delegate is delivered or failed with at least one delivered, failed
// once all failed.
func (it *Item) Settle(now time.Time) {
	if it.State != StatePending || len(it.Delegates) == 0 {
		return
	}
	delivered, pending := 0, 0
	for _, d := range it.Delegates {
		switch d.State {
		case StateDelivered:
			delivered++
		case StatePending:
			pending++
		}
	}
	switch {
	case pending > 0:
		return
	case delivered > 0:
		it.State = StateDelivered
	default:
		it.State = StateFailed
	}
	it.Done = now
}

// Backoff is the retry policy: the n-th retry (n ≥ 1) waits
// Min·2^(n-1), at most Max, with ±20 % jitter so many items failing
// together do not retry together.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before retry n.
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 30 * time.Second
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	if d > hi {
		d = hi
	}
	j := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	return d + j
}

// Queue is the outbound queue. Safe for concurrent use; callers that
// read-modify-write one item (Update) are serialised by badger's
// transaction conflict detection and retried.
type Queue struct {
	st Store
}

// New returns the queue kept in st.
func New(st Store) *Queue { return &Queue{st: st} }

var (
	prefixItem  = []byte("q/i/")
	prefixBytes = []byte("q/p/")
	prefixWork  = []byte("q/w/")
)

func itemKey(id envelope.ID) []byte  { return append(append([]byte(nil), prefixItem...), id[:]...) }
func bytesKey(id envelope.ID) []byte { return append(append([]byte(nil), prefixBytes...), id[:]...) }
func workKey(id envelope.ID) []byte  { return append(append([]byte(nil), prefixWork...), id[:]...) }

// DecodeItem decodes a stored item, refusing oversized or damaged ones.
func DecodeItem(b []byte) (*Item, error) {
	if len(b) > MaxItemBytes {
		return nil, fmt.Errorf("queue: item of %d bytes exceeds %d", len(b), MaxItemBytes)
	}
	var it Item
	if err := json.Unmarshal(b, &it); err != nil {
		return nil, fmt.Errorf("queue: damaged item: %w", err)
	}
	if len(it.Delegates) > MaxDelegates {
		return nil, fmt.Errorf("queue: damaged item: %d delegates", len(it.Delegates))
	}
	return &it, nil
}

func putItem(txn *badger.Txn, it *Item) error {
	b, err := json.Marshal(it)
	if err != nil {
		return err
	}
	if err := txn.Set(itemKey(it.ID), b); err != nil {
		return err
	}
	if it.State == StatePending {
		return txn.Set(workKey(it.ID), nil)
	}
	// Finished: the bytes go in the same transaction.
	if err := store.Erase(txn, bytesKey(it.ID)); err != nil {
		return err
	}
	return txn.Delete(workKey(it.ID))
}

func recipientKeyKey(fpr string) []byte { return append([]byte("q/k/"), fpr...) }

// RecipientKey returns the public key kept for the recipient fpr (hex).
func (q *Queue) RecipientKey(fpr string) ([]byte, error) {
	var b []byte
	err := q.st.DB().View(func(txn *badger.Txn) error {
		e, err := txn.Get(recipientKeyKey(fpr))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		b, err = e.ValueCopy(nil)
		return err
	})
	return b, err
}

// Add stores a new item with its bytes (payload or mail, not empty),
// durably.
func (q *Queue) Add(ctx context.Context, it *Item, data []byte) error {
	if len(data) == 0 {
		return errors.New("queue: an item needs its bytes")
	}
	if it.State == "" {
		it.State = StatePending
	}
	return q.st.Durable(ctx, func(txn *badger.Txn) error {
		if _, err := txn.Get(itemKey(it.ID)); err == nil {
			return fmt.Errorf("queue: item %s exists", it.ID)
		}
		if err := putItem(txn, it); err != nil {
			return err
		}
		if len(it.RecipientKey) > 0 && it.Recipient != "" {
			if err := txn.Set(recipientKeyKey(it.Recipient), it.RecipientKey); err != nil {
				return err
			}
		}
		return txn.Set(bytesKey(it.ID), data)
	})
}

// Get returns an item.
func (q *Queue) Get(id envelope.ID) (*Item, error) {
	var it *Item
	err := q.st.DB().View(func(txn *badger.Txn) error {
		var err error
		it, err = getItem(txn, id)
		return err
	})
	return it, err
}

func getItem(txn *badger.Txn, id envelope.ID) (*Item, error) {
	e, err := txn.Get(itemKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) || (err == nil && e.ValueSize() == 0) {
		return nil, ErrNotFound // never written, or erased
	}
	if err != nil {
		return nil, err
	}
	var it *Item
	err = e.Value(func(v []byte) error {
		it, err = DecodeItem(v)
		return err
	})
	return it, err
}

// Bytes returns an item's bytes.
func (q *Queue) Bytes(id envelope.ID) ([]byte, error) {
	var b []byte
	err := q.st.DB().View(func(txn *badger.Txn) error {
		e, err := txn.Get(bytesKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		b, err = e.ValueCopy(nil)
		if err == nil && len(b) == 0 {
			return ErrNotFound // erased (store.Erase)
		}
		return err
	})
	return b, err
}

// Update applies change to the stored item durably. change may return an
// error to abort. When the item's bytes change (sealing replaces the mail
// by the payload, under a new ID), use Rekey.
func (q *Queue) Update(ctx context.Context, id envelope.ID, change func(it *Item) error) (*Item, error) {
	items, err := q.UpdateMany(ctx, []envelope.ID{id}, change)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, ErrNotFound
	}
	return items[0], nil
}

// UpdateMany applies change to each of the stored items ids in one
// durable transaction (one sync for a whole batch of outcomes). Items that
// no longer exist are skipped.
func (q *Queue) UpdateMany(ctx context.Context, ids []envelope.ID, change func(it *Item) error) ([]*Item, error) {
	for attempt := 0; ; attempt++ {
		var out []*Item
		err := q.st.Durable(ctx, func(txn *badger.Txn) error {
			for _, id := range ids {
				it, err := getItem(txn, id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if err := change(it); err != nil {
					return err
				}
				if err := putItem(txn, it); err != nil {
					return err
				}
				out = append(out, it)
			}
			return nil
		})
		if errors.Is(err, badger.ErrConflict) && attempt < 10 {
			continue
		}
		return out, err
	}
}

// Rekey replaces the item old by it (with a new ID) and its bytes by
// data, in one durable transaction: sealing turns a queued mail into a
// payload whose hash is the message ID.
func (q *Queue) Rekey(ctx context.Context, old envelope.ID, it *Item, data []byte) error {
	return q.st.Durable(ctx, func(txn *badger.Txn) error {
		if err := store.Erase(txn, itemKey(old)); err != nil {
			return err
		}
		if err := txn.Delete(workKey(old)); err != nil {
			return err
		}
		if err := store.Erase(txn, bytesKey(old)); err != nil {
			return err
		}
		if err := putItem(txn, it); err != nil {
			return err
		}
		if len(it.RecipientKey) > 0 && it.Recipient != "" {
			if err := txn.Set(recipientKeyKey(it.Recipient), it.RecipientKey); err != nil {
				return err
			}
		}
		return txn.Set(bytesKey(it.ID), data)
	})
}

// DropBytes deletes the bytes of an item (writing a finished item drops
// them too, in the same transaction; the item itself stays for the
// outbox listing and for matching receipts).
func (q *Queue) DropBytes(ctx context.Context, id envelope.ID) error {
	return q.st.Durable(ctx, func(txn *badger.Txn) error {
		return store.Erase(txn, bytesKey(id))
	})
}

// Remove deletes an item and its bytes.
func (q *Queue) Remove(ctx context.Context, id envelope.ID) error {
	return q.st.Durable(ctx, func(txn *badger.Txn) error {
		if err := store.Erase(txn, itemKey(id)); err != nil {
			return err
		}
		if err := txn.Delete(workKey(id)); err != nil {
			return err
		}
		return store.Erase(txn, bytesKey(id))
	})
}

// List returns every item (newest first), reading no bytes.
func (q *Queue) List() ([]*Item, error) {
	var items []*Item
	err := q.scan(func(it *Item) bool { items = append(items, it); return true })
	sort.Slice(items, func(i, j int) bool { return items[i].Created.After(items[j].Created) })
	return items, err
}

// Due returns up to max pending items with work to do at now, and the
// earliest time a pending item not returned becomes due (zero if none).
func (q *Queue) Due(now time.Time, max int) ([]*Item, time.Time, error) {
	var due []*Item
	var next time.Time
	err := q.scanPending(func(it *Item) bool {
		ok, at := it.Due(now)
		if ok {
			due = append(due, it)
			return max <= 0 || len(due) < max
		}
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
		return true
	})
	return due, next, err
}

// Counts tallies the items by state, with the creation time of the
// oldest pending one.
func (q *Queue) Counts() (map[string]int, time.Time, error) {
	c := map[string]int{}
	var oldest time.Time
	err := q.scan(func(it *Item) bool {
		c[it.State]++
		if it.State == StatePending && (oldest.IsZero() || it.Created.Before(oldest)) {
			oldest = it.Created
		}
		return true
	})
	return c, oldest, err
}

// Prune removes finished items older than keep.
func (q *Queue) Prune(ctx context.Context, now time.Time, keep time.Duration) (int, error) {
	var old []envelope.ID
	if err := q.scan(func(it *Item) bool {
		if it.State != StatePending && !it.Done.IsZero() && now.Sub(it.Done) > keep {
			old = append(old, it.ID)
		}
		return true
	}); err != nil {
		return 0, err
	}
	for _, id := range old {
		if err := q.Remove(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

func (q *Queue) scan(f func(it *Item) bool) error {
	return q.st.DB().View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = prefixItem
		iter := txn.NewIterator(opt)
		defer iter.Close()
		for iter.Rewind(); iter.Valid(); iter.Next() {
			if iter.Item().ValueSize() == 0 {
				continue // erased
			}
			var it *Item
			err := iter.Item().Value(func(v []byte) error {
				var err error
				it, err = DecodeItem(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("%w (key %s)", err, hex.EncodeToString(iter.Item().Key()))
			}
			if !f(it) {
				return nil
			}
		}
		return nil
	})
}

// Pending returns every pending item, reading only the work index and
// those items.
func (q *Queue) Pending() ([]*Item, error) {
	var items []*Item
	err := q.scanPending(func(it *Item) bool { items = append(items, it); return true })
	return items, err
}

func (q *Queue) scanPending(f func(it *Item) bool) error {
	return q.st.DB().View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = prefixWork
		opt.PrefetchValues = false
		iter := txn.NewIterator(opt)
		defer iter.Close()
		for iter.Rewind(); iter.Valid(); iter.Next() {
			k := iter.Item().Key()
			var id envelope.ID
			if len(k) != len(prefixWork)+len(id) {
				continue
			}
			copy(id[:], k[len(prefixWork):])
			it, err := getItem(txn, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !f(it) {
				return nil
			}
		}
		return nil
	})
}
