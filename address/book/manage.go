package book

import (
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/address"
)

// change loads the contact email names, lets fn modify it, and stores it,
// all in one transaction; it returns the contact as stored.
func (b *Book) change(email address.Email, fn func(txn *badger.Txn, r *record) error) (*Contact, error) {
	var c *Contact
	err := b.update(func(txn *badger.Txn) error {
		r, err := loadContact(txn, email)
		if err != nil {
			return err
		}
		prev := r.clone()
		if err := fn(txn, r); err != nil {
			return err
		}
		if err := putRecord(txn, prev, r); err != nil {
			return err
		}
		c, err = contactOf(txn, r)
		return err
	})
	return c, err
}

// refuseCompromised returns an error if f is revoked as compromised.
func refuseCompromised(txn *badger.Txn, f address.Fingerprint, name, what string) error {
	bad, err := compromised(txn, f)
	if err != nil {
		return err
	}
	if bad {
		return fmt.Errorf("book: cannot %s key %s for %s: it is revoked as compromised; ask %s for their new key", what, f, name, name)
	}
	return nil
}

// now0 returns now, or time.Now() if it is zero, normalised.
func now0(now time.Time) time.Time {
	if now.IsZero() {
		now = time.Now()
	}
	return normTime(now)
}

// Verify records that the user compared fpr with the contact out of band.
// If fpr is the pinned Key the contact becomes Verified (leaving any
// conflict or block: the user has checked the key); if it is the Pending
// key, that key is taken (the old one goes to Previous) and Verified. Any
// other fingerprint is an error, as is a key revoked as compromised. email
// may be a key address (…@dsep.alt).
func (b *Book) Verify(email address.Email, fpr address.Fingerprint, now time.Time) (*Contact, error) {
	now = now0(now)
	return b.change(email, func(txn *badger.Txn, r *record) error {
		name := r.name()
		switch {
		case fpr == r.Key:
			if err := refuseCompromised(txn, fpr, name, "verify"); err != nil {
				return err
			}
		case r.Pending != nil && fpr == *r.Pending:
			if err := refuseCompromised(txn, fpr, name, "verify"); err != nil {
				return err
			}
			r.addPrevious(r.Key)
			r.Key = fpr
		default:
			msg := fmt.Sprintf("book: the fingerprint %s matches neither the pinned key %s", fpr.Grouped(), r.Key.Grouped())
			if r.Pending != nil {
				msg += fmt.Sprintf(" nor the pending key %s", r.Pending.Grouped())
			}
			return fmt.Errorf("%s of %s; check the fingerprint with %s again, and do not trust the key until it matches", msg, name, name)
		}
		r.resolve(Verified, now)
		return nil
	})
}

// Approve accepts, after the user saw the warning, the key waiting for
// approval: it becomes the pinned Key (the old one goes to Previous) in
// state FirstSeen. A Blocked contact with no pending key goes back to
// FirstSeen on its pinned key, as does one in Conflict with no pending key
// whose pinned key is not compromised. Anything else is an error: there is
// nothing to approve, or the key is revoked as compromised. email may be a
// key address (…@dsep.alt).
func (b *Book) Approve(email address.Email, now time.Time) (*Contact, error) {
	now = now0(now)
	return b.change(email, func(txn *badger.Txn, r *record) error {
		name := r.name()
		switch {
		case r.Pending != nil:
			if err := refuseCompromised(txn, *r.Pending, name, "approve"); err != nil {
				return err
			}
			r.addPrevious(r.Key)
			r.Key = *r.Pending
		case r.State == Blocked || r.State == Conflict:
			if err := refuseCompromised(txn, r.Key, name, "approve"); err != nil {
				return err
			}
		default:
			return fmt.Errorf("book: nothing to approve for %s: it is %s on key %s with no key waiting for approval", name, r.State, r.Key)
		}
		r.resolve(FirstSeen, now)
		return nil
	})
}

// Block marks the contact Blocked with the user's reason (cut to 2 KiB):
// observations of it are ignored and nothing from it is trusted until
// Approve or Verify. A pending key is kept, for Approve. An unknown contact
// gives an error wrapping ErrNotFound. email may be a key address.
func (b *Book) Block(email address.Email, reason string, now time.Time) (*Contact, error) {
	now = now0(now)
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "blocked by the user"
	}
	return b.change(email, func(_ *badger.Txn, r *record) error {
		r.State = Blocked
		r.Cause = ""
		r.Reason = cutReason(reason)
		r.Updated = now
		return nil
	})
}

// Remove deletes the contact email names (its index entries and the key
// material no other contact refers to go with it). The revocations seen
// are kept. An unknown contact gives an error wrapping ErrNotFound.
func (b *Book) Remove(email address.Email) error {
	return b.update(func(txn *badger.Txn) error {
		r, err := loadContact(txn, email)
		if err != nil {
			return err
		}
		owner := r.owner()
		if err := txn.Delete([]byte(owner)); err != nil {
			return fmt.Errorf("book: removing %s: %w", r.name(), err)
		}
		for _, f := range r.refs() {
			if err := txn.Delete([]byte(indexKey(f, owner))); err != nil {
				return fmt.Errorf("book: removing %s: %w", r.name(), err)
			}
			owners, err := indexOwners(txn, f)
			if err != nil {
				return err
			}
			if len(owners) == 0 {
				if err := txn.Delete([]byte(dataKey(f))); err != nil {
					return fmt.Errorf("book: removing %s: %w", r.name(), err)
				}
			}
		}
		return nil
	})
}
