package stamp

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrSpent is returned by Spend for a stamp already spent within its
// freshness window.
var ErrSpent = errors.New("stamp: already spent")

// Spent is the spent-stamp memory of a receiving node: every stamp it
// accepted, kept until the stamp would be rejected as stale anyway, so a
// stamp pays for one message only. It lives in the node's badger store
// (which the node opens, encrypted) under a key prefix; entries carry
// their own expiry and a badger TTL so they are collected after it.
// Safe for concurrent use.
type Spent struct {
	db     *badger.DB
	prefix []byte
	window time.Duration
}

// NewSpent returns the spent-stamp memory in db under prefix. window is
// the freshness window stamps are checked with (0: DefaultWindow).
func NewSpent(db *badger.DB, prefix []byte, window time.Duration) *Spent {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Spent{db: db, prefix: append([]byte(nil), prefix...), window: window}
}

func (sp *Spent) key(raw string) []byte {
	h := sha256.Sum256([]byte(raw))
	return append(append([]byte(nil), sp.prefix...), h[:]...)
}

// Spend records the stamp raw (parsed as st, already checked) as spent at
// now. It returns ErrSpent if the same stamp was spent before and is still
// remembered; of two concurrent Spends of one stamp, exactly one succeeds.
// The entry is written in the DB's own durability mode: a node that
// acknowledges only after a sync makes Spend durable with its envelope.
func (sp *Spent) Spend(st Stamp, raw string, now time.Time) error {
	exp := st.Expires(sp.window)
	if !now.Before(exp) {
		return fmt.Errorf("%w: stamp dated %s is past its window", ErrStale, st.Date.UTC().Format(time.RFC3339))
	}
	k := sp.key(raw)
	err := sp.db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		switch {
		case err == nil:
			var until int64
			if verr := it.Value(func(v []byte) error {
				if len(v) != 8 {
					return errors.New("stamp: damaged spent-stamp entry")
				}
				until = int64(binary.BigEndian.Uint64(v))
				return nil
			}); verr != nil {
				return verr
			}
			if now.Unix() < until {
				return ErrSpent
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(exp.Unix()))
		// Badger's TTL runs on the wall clock: keep a margin over exp.
		ttl := time.Until(exp) + time.Hour
		if ttl < time.Hour {
			ttl = time.Hour
		}
		return txn.SetEntry(badger.NewEntry(k, v[:]).WithTTL(ttl))
	})
	if errors.Is(err, badger.ErrConflict) {
		// Another Spend of a stamp with this key committed first.
		return ErrSpent
	}
	return err
}

// IsSpent reports whether raw is remembered as spent at now.
func (sp *Spent) IsSpent(raw string, now time.Time) (bool, error) {
	var spent bool
	err := sp.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(sp.key(raw))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return errors.New("stamp: damaged spent-stamp entry")
			}
			spent = now.Unix() < int64(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	return spent, err
}
