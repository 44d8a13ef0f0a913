package address

import (
	"errors"
	"fmt"
	"time"
)

// Rotate replaces old (whose primary private key must be unlocked) by a new
// identity with the same User IDs, following DESIGN.md "Key rotation":
// the new key is generated; the old primary certifies each new User ID
// (without expiry: the vouching outlives the old key); the old key gets a
// superseded revocation naming the successor. The domain's certification of
// the new key is a separate step by the domain owner (dsep domain certify).
// old is modified in place (it gains the revocation).
func Rotate(old *Key, now time.Time, opt NewIdentityOptions) (successor *Key, rev *Revocation, err error) {
	if old.e.PrivateKey == nil || old.e.PrivateKey.Encrypted {
		return nil, nil, errors.New("address: rotating needs the unlocked primary key of the old identity")
	}
	if r := old.Revocation(); r != nil {
		return nil, nil, fmt.Errorf("address: key %s is already revoked (%s)", old.fpr, r.Kind())
	}
	uids := old.UserIDs(now)
	if len(uids) == 0 {
		return nil, nil, errors.New("address: the old key has no valid User ID to carry over")
	}
	if opt.Now.IsZero() {
		opt.Now = now
	}
	next, err := newIdentity(uids[0], opt)
	if err != nil {
		return nil, nil, err
	}
	cfg := pgpConfig(opt.Now.Truncate(time.Second), opt.Rand)
	for _, uid := range uids[1:] {
		name, email := splitUserID(uid)
		if err := next.e.AddUserId(name, "", email, cfg); err != nil {
			return nil, nil, fmt.Errorf("address: carrying over User ID %q: %w", uid, err)
		}
	}
	for _, uid := range uids {
		if next, err = Certify(next, uid, old, now, -1); err != nil {
			return nil, nil, err
		}
	}
	succ := next.fpr
	rev, err = revoke(old, ReasonSuperseded, "superseded by "+succ.String(), &succ, now)
	if err != nil {
		return nil, nil, err
	}
	return next, rev, nil
}

// SuccessionError says why a key was not accepted as a pinned key's
// successor. It is what lands a contact in the conflict state.
type SuccessionError struct {
	Old, New Fingerprint
	// MissingOld: the new key's User ID is not certified by the old key.
	MissingOld bool
	// MissingDomain: the new key's User ID is not certified by the domain.
	MissingDomain bool
	// Other describes any other failure (unusable key, no User ID, the old
	// key's revocation names a different successor, …).
	Other string
}

func (e *SuccessionError) Error() string {
	switch {
	case e.Other != "":
		return fmt.Sprintf("address: %s is not an accepted successor of %s: %s", e.New, e.Old, e.Other)
	case e.MissingOld && e.MissingDomain:
		return fmt.Sprintf("address: %s is signed neither by the pinned key %s nor by the domain", e.New, e.Old)
	case e.MissingOld:
		return fmt.Sprintf("address: %s is not signed by the pinned key %s", e.New, e.Old)
	}
	return fmt.Sprintf("address: %s (successor of %s) is not certified by the domain", e.New, e.Old)
}

// JudgeSuccessor decides whether a contact pinned to old may follow to
// next automatically. It may only if next is a usable key carrying a User
// ID for email that is certified both by old's primary (a hard-revoked old
// key vouches for nothing) and, when domain is not nil (an email-bound
// contact), by the domain key; and if old carries a superseded revocation,
// it names next. email may be zero for a contact pinned by key address, in
// which case any User ID of next certified by old counts.
func JudgeSuccessor(old, next, domain *Key, email Email, now time.Time) error {
	se := &SuccessionError{Old: old.fpr, New: next.fpr}
	if old.fpr == next.fpr {
		se.Other = "it is the same key"
		return se
	}
	if err := next.Check(now); err != nil {
		se.Other = err.Error()
		return se
	}
	for _, r := range old.Revocations() {
		if r.Hard() {
			se.Other = fmt.Sprintf("the old key %s is revoked as compromised, so its vouching counts for nothing", old.fpr)
			return se
		}
		if r.Successor != nil && *r.Successor != next.fpr {
			se.Other = fmt.Sprintf("the old key's revocation names %s as its successor", *r.Successor)
			return se
		}
	}
	var uids []string
	if email.IsZero() {
		uids = next.UserIDs(now)
	} else if uid, ok := next.UserIDFor(email, now); ok {
		uids = []string{uid}
	}
	if len(uids) == 0 {
		se.Other = fmt.Sprintf("it has no User ID for %s", email)
		return se
	}
	// A revoked or unusable domain key vouches for nothing.
	domainUsable := domain != nil && domain.Revocation() == nil && domain.Check(now) == nil
	se.MissingOld, se.MissingDomain = true, domain != nil
	for _, uid := range uids {
		if _, err := FindCertification(next, uid, old, now); err == nil {
			se.MissingOld = false
		}
		if domainUsable {
			if _, err := FindCertification(next, uid, domain, now); err == nil {
				se.MissingDomain = false
			}
		}
	}
	if se.MissingOld || se.MissingDomain {
		return se
	}
	return nil
}
