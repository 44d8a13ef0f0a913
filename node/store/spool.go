package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/node/envelope"
)

// MaxPayloadSize bounds a spooled payload.
const MaxPayloadSize = 64 << 20

// Inbound is an envelope received over /dsep/deliver/1.0.0 that passed the
// cheap checks (size, rate, stamp or waiver, freshness) and is to be made
// durable before it is acknowledged.
type Inbound struct {
	ID       envelope.ID // SHA-256 of Payload
	Kind     uint8       // envelope.Kind of the proof
	Proof    []byte      // the stamp or waiver proof, at most envelope.MaxProof bytes
	Payload  []byte      // the OpenPGP message
	FromPeer string      // the libp2p peer ID that delivered it
	Received time.Time   // zero: now
}

// Spool makes e durable, to be processed (decrypted, verified, delivered
// into a folder) later: it stores the payload (r/<id>) and a pending marker
// (p/<id>) that Deliver or Reject clears.
//
// If the ID is already known — spooled, in the mailbox, or deleted or
// rejected since — Spool writes nothing and returns dup == true, so a
// retried envelope is acknowledged again without being stored twice. Either
// way Spool returns only once what it found or wrote is durable: a
// duplicate that arrives while the first copy is still waiting for its sync
// waits for that sync too. On error (ctx ended, store closed, sync failed)
// the envelope must not be acknowledged.
//
// Has reports the same knowledge without waiting for durability; only
// Spool's return allows an acknowledgement.
func (s *Store) Spool(ctx context.Context, e Inbound) (dup bool, err error) {
	switch {
	case len(e.Payload) == 0:
		return false, fmt.Errorf("%w: empty payload", ErrInvalid)
	case len(e.Payload) > MaxPayloadSize:
		return false, fmt.Errorf("%w: payload of %d bytes (limit %d)", ErrInvalid, len(e.Payload), MaxPayloadSize)
	case len(e.Proof) > envelope.MaxProof:
		return false, fmt.Errorf("%w: proof of %d bytes (limit %d)", ErrInvalid, len(e.Proof), envelope.MaxProof)
	case len(e.FromPeer) > maxPeerLen:
		return false, fmt.Errorf("%w: peer ID of %d bytes", ErrInvalid, len(e.FromPeer))
	case envelope.IDOf(e.Payload) != e.ID:
		return false, fmt.Errorf("%w: the payload does not hash to message ID %s", ErrInvalid, e.ID)
	}
	recv := e.Received
	if recv.IsZero() {
		recv = time.Now()
	}
	if !checkTime(recv) {
		return false, fmt.Errorf("%w: received time %v out of range", ErrInvalid, recv)
	}
	p := encodePending(&pending{Kind: e.Kind, Proof: e.Proof, FromPeer: e.FromPeer, Received: recv})
	var found bool
	err = s.Durable(ctx, func(txn *badger.Txn) error {
		found = false
		known, err := known(txn, e.ID)
		if err != nil || known {
			found = known
			return err
		}
		if err := txn.Set(idKey(prefixRaw, e.ID), e.Payload); err != nil {
			return fmt.Errorf("store: spooling %s: %w", e.ID, err)
		}
		if err := txn.Set(idKey(prefixPending, e.ID), p); err != nil {
			return fmt.Errorf("store: spooling %s: %w", e.ID, err)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return found, nil
}

// known reports whether id was spooled, is in the mailbox, or has a
// tombstone.
func known(txn *badger.Txn, id envelope.ID) (bool, error) {
	for _, p := range []string{prefixRaw, prefixPending, prefixIndex, prefixTombstone} {
		ok, err := exists(txn, idKey(p, id))
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// Has reports whether id is known: spooled, in the mailbox, or deleted or
// rejected. It may report true before that is durable (a Spool still
// waiting for its sync): acknowledge only after Spool returned.
func (s *Store) Has(id envelope.ID) (bool, error) {
	var ok bool
	err := s.view(func(txn *badger.Txn) error {
		var err error
		ok, err = known(txn, id)
		return err
	})
	return ok, err
}

// Pending returns up to limit (≤ 0: all) IDs of envelopes spooled but
// neither delivered nor rejected yet, in no particular order: after a
// restart, process each (Spooled gives the envelope) and Deliver or
// Reject it.
func (s *Store) Pending(limit int) ([]envelope.ID, error) {
	var ids []envelope.ID
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixPending)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			var id envelope.ID
			if len(k) != len(prefixPending)+len(id) {
				return fmt.Errorf("%w: spool key of %d bytes", ErrDamaged, len(k))
			}
			copy(id[:], k[len(prefixPending):])
			ids = append(ids, id)
			if limit > 0 && len(ids) == limit {
				break
			}
		}
		return nil
	})
	return ids, err
}

// Spooled returns the envelope spooled under id and not yet processed;
// ErrNotFound if there is none.
func (s *Store) Spooled(id envelope.ID) (Inbound, error) {
	var in Inbound
	err := s.view(func(txn *badger.Txn) error {
		b, err := getValue(txn, idKey(prefixPending, id), maxPendingSize)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %s is not in the spool", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		p, err := decodePending(b)
		if err != nil {
			return err
		}
		raw, err := getLarge(txn, idKey(prefixRaw, id), MaxPayloadSize)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %s is spooled without its payload", ErrDamaged, id)
		}
		if err != nil {
			return err
		}
		in = Inbound{ID: id, Kind: p.Kind, Proof: p.Proof, Payload: raw, FromPeer: p.FromPeer, Received: p.Received}
		return nil
	})
	return in, err
}

// Raw returns the payload of id as received (the OpenPGP message), kept
// from Spool until the message is deleted (or rejected); ErrNotFound if
// there is none (never spooled, a sent copy, deleted or rejected).
func (s *Store) Raw(id envelope.ID) ([]byte, error) {
	var raw []byte
	err := s.view(func(txn *badger.Txn) error {
		var err error
		raw, err = getLarge(txn, idKey(prefixRaw, id), MaxPayloadSize)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: no payload for %s", ErrNotFound, id)
		}
		return err
	})
	return raw, err
}

// Reject drops a spooled envelope that is not to be delivered (it does not
// decrypt, is not for this recipient…): it clears the pending marker,
// deletes the payload at once, and keeps a tombstone with reason (cut to
// MaxReasonLen bytes) so a retry of the same envelope is acknowledged as a
// duplicate and never stored again. Tombstones are kept forever (a few
// dozen bytes each): a waiver proof carries no date, so an old envelope can
// be replayed at any time. Rejecting an unknown ID just records the
// tombstone; rejecting one already rejected or deleted changes nothing; an
// ID in the mailbox gives ErrExists (Delete it instead). Mail the user
// should see despite a failed check goes to the Rejected folder with
// Deliver instead.
func (s *Store) Reject(ctx context.Context, id envelope.ID, reason string) error {
	if len(reason) > MaxReasonLen {
		reason = strings.ToValidUTF8(reason[:MaxReasonLen], "")
	}
	t := encodeTombstone(&tombstone{Why: whyRejected, When: time.Now(), Reason: reason})
	return s.Durable(ctx, func(txn *badger.Txn) error {
		if ok, err := exists(txn, idKey(prefixIndex, id)); err != nil || ok {
			if ok {
				err = fmt.Errorf("%w: %s is in the mailbox; delete it instead of rejecting it", ErrExists, id)
			}
			return err
		}
		if ok, err := exists(txn, idKey(prefixTombstone, id)); err != nil || ok {
			return err
		}
		if err := txn.Delete(idKey(prefixPending, id)); err != nil {
			return fmt.Errorf("store: rejecting %s: %w", id, err)
		}
		if ok, err := exists(txn, idKey(prefixRaw, id)); err != nil || ok {
			if ok {
				err = Erase(txn, idKey(prefixRaw, id))
			}
			if err != nil {
				return fmt.Errorf("store: rejecting %s: %w", id, err)
			}
		}
		if err := txn.Set(idKey(prefixTombstone, id), t); err != nil {
			return fmt.Errorf("store: rejecting %s: %w", id, err)
		}
		return nil
	})
}
