package book

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/address"
)

// RevocationRecord is what the book remembers of a key's revocation: the
// strongest one seen, and when this node first saw any revocation of the
// key.
type RevocationRecord struct {
	Key address.Fingerprint
	// Kind is "compromised", "superseded" or "retired" (the strongest seen).
	Kind string
	// Successor is the successor a superseded revocation names.
	Successor *address.Fingerprint
	// Signed is the date the signer wrote: informative only.
	Signed time.Time
	// FirstSeen is when this node first saw a revocation of the key. It
	// never moves: soft revocations are judged by it.
	FirstSeen time.Time
	// Data is the revocation signature packet (address.Revocation.Bytes()).
	Data []byte
}

// ObserveRevocation records a verified revocation (one from
// address.ParseRevocation, address.Revoke or address.Key.Revocations).
//
// The time a revocation of the key is first seen is kept forever: neither a
// later sighting nor the date the signer wrote (which may be back- or
// forward-dated) moves it. A stronger revocation (compromised > superseded
// > retired, address.Revocation.Severity) replaces a weaker one's kind,
// successor and signature but keeps the first-seen time of the first: the
// key has been revoked since then either way. A weaker or equal one changes
// nothing.
//
// A compromised revocation then acts on the contacts: one that followed
// the key automatically (directly or through later automatic moves) has the
// moves from it undone — Key goes back to the compromised key, Pending is
// the key it had moved to, and it is in Conflict; one whose pinned Key it is
// goes to Conflict (nothing signed by it is trusted); one for which it is
// the pending key has a note added. A superseded revocation naming another
// successor than the one a contact followed automatically is a conflict of
// two successors. ObserveRevocation returns one event per contact it
// changed (Ignored for blocked contacts), none for a repeated sighting.
func (b *Book) ObserveRevocation(rev *address.Revocation, now time.Time) ([]Event, error) {
	if rev == nil {
		return nil, errors.New("book: no revocation given")
	}
	data, err := revocationBytes(rev)
	if err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	now = normTime(now)
	var events []Event
	err = b.update(func(txn *badger.Txn) error {
		var err error
		events, err = recordRevocation(txn, rev, data, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// recordRevocation is ObserveRevocation inside a transaction.
func recordRevocation(txn *badger.Txn, rev *address.Revocation, data []byte, now time.Time) ([]Event, error) {
	rr, err := getRevRecord(txn, rev.Key)
	changed := true
	switch {
	case errors.Is(err, ErrNotFound):
		rr = &revRecord{V: recordVersion, Key: rev.Key, FirstSeen: now}
		rr.set(rev, data)
	case err != nil:
		return nil, err
	case rev.Severity() > kindSeverity(rr.Kind):
		rr.set(rev, data)
	default:
		changed = false
	}
	if changed {
		if err := putRevRecord(txn, rr); err != nil {
			return nil, err
		}
	}
	switch rr.Kind {
	case "compromised":
		return compromisedEffects(txn, rr.Key, changed, now)
	case "superseded":
		return supersededEffects(txn, rr, now)
	}
	return nil, nil
}

// set takes the kind, successor, date and signature of rev.
func (r *revRecord) set(rev *address.Revocation, data []byte) {
	r.Kind = rev.Kind()
	r.Successor = nil
	if r.Kind == "superseded" && rev.Successor != nil {
		s := *rev.Successor
		r.Successor = &s
	}
	r.Signed = normTime(rev.Signed)
	r.Data = data
}

// revocationBytes serializes rev, which must carry its signature.
func revocationBytes(rev *address.Revocation) ([]byte, error) {
	b := rev.Bytes()
	if b == nil {
		return nil, errors.New("book: the revocation carries no signature (it must come from address.ParseRevocation or address.Revoke)")
	}
	return b, nil
}

// compromisedEffects applies a compromised revocation of f to the contacts
// that refer to f.
// Blocked contacts are left alone (an Ignored event says so, when the
// revocation is new).
func compromisedEffects(txn *badger.Txn, f address.Fingerprint, fresh bool, now time.Time) ([]Event, error) {
	owners, err := indexOwners(txn, f)
	if err != nil {
		return nil, err
	}
	var events []Event
	for _, o := range owners {
		rec, err := getRecord(txn, o)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		prev := rec.clone()
		name := rec.name()
		kind := ConflictRaised
		msg := ""
		i := slices.Index(rec.Auto, f)
		switch {
		case rec.State == Blocked:
			if !fresh {
				continue
			}
			c, err := contactOf(txn, rec)
			if err != nil {
				return nil, err
			}
			events = append(events, Event{Kind: Ignored, Contact: c,
				Message: fmt.Sprintf("%s is blocked; its key %s has been revoked as compromised", name, f)})
			continue
		case i >= 0 && rec.Key != f:
			// Undo the automatic moves from f on.
			cur := rec.Key
			for _, moved := range rec.Auto[i:] {
				if j := lastIndex(rec.Previous, moved); j >= 0 {
					rec.Previous = slices.Delete(rec.Previous, j, j+1)
				}
			}
			if len(rec.Previous) == 0 {
				rec.Previous = nil
			}
			dropped := ""
			if rec.Pending != nil && *rec.Pending != cur && *rec.Pending != f {
				dropped = fmt.Sprintf("; the key %s that was waiting for approval was set aside", *rec.Pending)
			}
			rec.Key = f
			rec.Pending = &cur
			rec.Auto = slices.Clone(rec.Auto[:i])
			if len(rec.Auto) == 0 {
				rec.Auto = nil
			}
			rec.State, rec.Cause = Conflict, CauseMoveUndone
			rec.Reason = cutReason(fmt.Sprintf("the key %s was revoked as compromised after %s followed it automatically to %s; the move is undone%s",
				f, name, cur, dropped))
		case rec.Key == f:
			if rec.State == Conflict && (rec.Cause == CausePinnedCompromised || rec.Cause == CauseMoveUndone) {
				continue // already seen
			}
			rec.State, rec.Cause = Conflict, CausePinnedCompromised
			rec.Reason = fmt.Sprintf("the pinned key %s is revoked as compromised: nothing signed by it is trusted", f)
			if rec.Pending != nil {
				rec.Reason += fmt.Sprintf("; a new key %s is waiting for approval", *rec.Pending)
			}
		case rec.Pending != nil && *rec.Pending == f:
			note := fmt.Sprintf("; the pending key %s has since been revoked as compromised: do not approve it", f)
			if strings.Contains(rec.Reason, note) {
				continue
			}
			rec.Reason = cutReason(strings.TrimSuffix(rec.Reason, ".") + note)
			kind = StillConflict
			msg = fmt.Sprintf("the key %s waiting for approval for %s has been revoked as compromised: do not approve it", f, name)
		default:
			continue // f is only an older link of the chain, already handled
		}
		rec.Updated = now
		if err := putRecord(txn, prev, rec); err != nil {
			return nil, err
		}
		c, err := contactOf(txn, rec)
		if err != nil {
			return nil, err
		}
		if kind == ConflictRaised {
			msg = HijackWarning(c)
		}
		events = append(events, Event{Kind: kind, Contact: c, Message: msg})
	}
	return events, nil
}

// supersededEffects raises a conflict for every contact that followed f
// automatically to another key than the successor f's revocation names.
func supersededEffects(txn *badger.Txn, rr *revRecord, now time.Time) ([]Event, error) {
	if rr.Successor == nil {
		return nil, nil
	}
	f, succ := rr.Key, *rr.Successor
	owners, err := indexOwners(txn, f)
	if err != nil {
		return nil, err
	}
	var events []Event
	for _, o := range owners {
		rec, err := getRecord(txn, o)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		i := slices.Index(rec.Auto, f)
		if i < 0 || rec.State == Blocked || (rec.State == Conflict && rec.Cause == CauseTwoSuccessors) {
			continue
		}
		movedTo := rec.Key
		if i+1 < len(rec.Auto) {
			movedTo = rec.Auto[i+1]
		}
		if movedTo == succ {
			continue
		}
		prev := rec.clone()
		rec.State, rec.Cause = Conflict, CauseTwoSuccessors
		rec.Reason = cutReason(fmt.Sprintf("the revocation of its old key %s names %s as its successor, but you followed it automatically to %s",
			f, succ, movedTo))
		rec.Updated = now
		if err := putRecord(txn, prev, rec); err != nil {
			return nil, err
		}
		c, err := contactOf(txn, rec)
		if err != nil {
			return nil, err
		}
		events = append(events, Event{Kind: ConflictRaised, Contact: c, Message: HijackWarning(c)})
	}
	return events, nil
}

func lastIndex(s []address.Fingerprint, f address.Fingerprint) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == f {
			return i
		}
	}
	return -1
}

// Revocation returns what the book has recorded about revocations of fpr,
// or an error wrapping ErrNotFound.
func (b *Book) Revocation(fpr address.Fingerprint) (*RevocationRecord, error) {
	var out *RevocationRecord
	err := b.view(func(txn *badger.Txn) error {
		rr, err := getRevRecord(txn, fpr)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: no revocation of %s has been seen", ErrNotFound, fpr)
		}
		if err != nil {
			return err
		}
		out = &RevocationRecord{Key: rr.Key, Kind: rr.Kind, Signed: rr.Signed, FirstSeen: rr.FirstSeen, Data: rr.Data}
		if rr.Successor != nil {
			s := *rr.Successor
			out.Successor = &s
		}
		return nil
	})
	return out, err
}

// TrustSignature reports whether a signature made at signedAt by the key
// fpr is to be trusted given the revocations seen (and only those: whether
// fpr is a trusted contact is another question). With no revocation of fpr
// it is; after a hard (compromised) one it never is, whatever the dates;
// after a soft one (superseded, retired) only if signedAt is before the
// time this node first saw the revocation — never the date its signer
// wrote (address.Revocation.ValidAt).
func (b *Book) TrustSignature(fpr address.Fingerprint, signedAt time.Time) (bool, error) {
	var ok bool
	err := b.view(func(txn *badger.Txn) error {
		rr, err := getRevRecord(txn, fpr)
		if errors.Is(err, ErrNotFound) {
			ok = true
			return nil
		}
		if err != nil {
			return err
		}
		rev := &address.Revocation{Key: fpr, Reason: reasonOfKind(rr.Kind), Successor: rr.Successor}
		ok = rev.ValidAt(signedAt, rr.FirstSeen)
		return nil
	})
	return ok, err
}

func reasonOfKind(kind string) address.RevocationReason {
	switch kind {
	case "superseded":
		return address.ReasonSuperseded
	case "retired":
		return address.ReasonRetired
	}
	return address.ReasonCompromised
}
