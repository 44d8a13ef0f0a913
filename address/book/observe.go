package book

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/address"
)

// EventKind says what an observation did to the book.
type EventKind string

// The kinds of Event.
const (
	// Pinned: a new contact, pinned on first use.
	Pinned EventKind = "pinned"
	// Unchanged: the contact's pinned key was seen again.
	Unchanged EventKind = "unchanged"
	// Followed: the contact rotated and the book followed automatically.
	Followed EventKind = "followed"
	// ConflictRaised: a key change that cannot be followed automatically
	// (or a compromise); the contact is in Conflict and the user must be
	// shown Message (HijackWarning).
	ConflictRaised EventKind = "conflict-raised"
	// StillConflict: the contact was already in Conflict over the same key.
	StillConflict EventKind = "still-conflict"
	// Ignored: the contact is blocked; nothing changed.
	Ignored EventKind = "ignored"
	// Outdated: the network offered a key the contact has already moved
	// away from (a stale record); the pinned key stays.
	Outdated EventKind = "outdated"
)

// Observation is what the network (DNS and the DHT, or a key file the user
// gave) says about a contact's key.
type Observation struct {
	// Email is the address the key is bound to. It is zero for a contact
	// pinned by key address; it may also be a key address (…@dsep.alt)
	// naming such a contact when Key is a successor of the key it names.
	Email address.Email
	// Key is the key observed (its private material, if any, is never
	// stored).
	Key *address.Key
	// DomainKey is the domain key the binding was checked against; nil
	// for key-address contacts.
	DomainKey *address.Key
	// Verdict is the result of address.VerifyBinding for Email, Key and
	// DomainKey (ignored for key-address contacts). It must be OK to pin a
	// new contact or follow a rotation. For a contact already pinned, a
	// verdict of no-certification, expired or revoked is also taken, but
	// only for a key the pinned key has certified (a claimed successor
	// the domain does not vouch for): it can only raise a conflict. Any
	// other verdict is an error and records nothing.
	Verdict address.Verdict
	// Now is the time of the observation; zero means time.Now().
	Now time.Time
}

// Event is what an observation did: its kind, the contact as it now is,
// and what to tell the user (empty when there is nothing to say).
type Event struct {
	Kind    EventKind
	Contact *Contact
	Message string
}

// Observe records that the network now binds obs.Key to obs.Email, and
// applies the rules of DESIGN.md "Address book (TOFU)" and "Key rotation":
// an unknown contact is pinned (FirstSeen); a blocked one is Ignored; the
// same key is Unchanged; a different key is judged against the pinned key
// (with every revocation the book has recorded attached) by
// address.JudgeSuccessor: it is Followed (Rotated) when both the pinned key
// and, for email contacts, the domain vouch for it, and raises a Conflict
// otherwise — also when the key the contact last followed from vouches for
// a second, different successor, and when a retired pinned key certified
// the new key only after this node first saw the retirement. A contact
// already in Conflict stays there — unless the conflict was only that the
// domain did not vouch for a successor the pinned key certified, and now it
// does: then it is Followed. Otherwise the same pending key is StillConflict, a
// new one replaces it (ConflictRaised). A key the contact has already moved
// away from is Outdated and changes nothing.
func (b *Book) Observe(obs Observation) (Event, error) {
	if obs.Key == nil {
		return Event{}, errors.New("book: observation without a key")
	}
	now := obs.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = normTime(now)
	// Work on a public copy made from the bytes that will be stored (and
	// never on the caller's key, which may hold secrets).
	data := obs.Key.Bytes()
	if len(data) > address.MaxKeyBytes {
		return Event{}, fmt.Errorf("book: key %s is %d bytes, over the %d-byte limit", obs.Key.Fingerprint(), len(data), address.MaxKeyBytes)
	}
	pub, err := address.ReadKey(bytes.NewReader(data))
	if err != nil {
		return Event{}, fmt.Errorf("book: key %s: %w", obs.Key.Fingerprint(), err)
	}
	// Revocations the key carries are recorded as ObserveRevocation would
	// (their effects included), and kept out of the stored key material:
	// the book's revocation records are the one place it looks for them.
	carried := pub.Revocations()
	var revData [][]byte
	if len(carried) > 0 {
		for _, r := range carried {
			revData = append(revData, r.Bytes())
		}
		pub = pub.WithoutRevocations()
		data = pub.Bytes()
	}
	obs.Key = pub
	byKey := obs.Email.IsZero() || obs.Email.IsKeyAddress()
	if !byKey {
		if err := checkVerdict(obs); err != nil {
			return Event{}, err
		}
	}
	var ev Event
	err = b.update(func(txn *badger.Txn) error {
		for i, r := range carried {
			if _, err := recordRevocation(txn, r, revData[i], now); err != nil {
				return err
			}
		}
		var err error
		ev, err = observe(txn, obs, data, byKey, now)
		return err
	})
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// checkVerdict checks that obs.Verdict is about obs and is one Observe
// takes at all.
func checkVerdict(obs Observation) error {
	fpr := obs.Key.Fingerprint()
	if obs.DomainKey == nil {
		return fmt.Errorf("book: observation of key %s for %s without the domain key", fpr, obs.Email)
	}
	v := obs.Verdict
	if v.Email != obs.Email || v.Key != fpr || v.Domain != obs.DomainKey.Fingerprint() {
		return fmt.Errorf("book: the verdict given is about %s, key %s, domain key %s; not %s, key %s, domain key %s",
			v.Email, v.Key, v.Domain, obs.Email, fpr, obs.DomainKey.Fingerprint())
	}
	switch v.Reason {
	case address.BindingOK, address.NoCertification, address.Expired, address.Revoked:
		return nil
	}
	return fmt.Errorf("book: not recording key %s for %s: %s (%s)", fpr, obs.Email, v, v.Hint())
}

func observe(txn *badger.Txn, obs Observation, data []byte, byKey bool, now time.Time) (Event, error) {
	fpr := obs.Key.Fingerprint()
	rec, err := findObserved(txn, obs, byKey)
	if errors.Is(err, ErrNotFound) {
		return pin(txn, obs, data, byKey, now)
	}
	if err != nil {
		return Event{}, err
	}
	verdictOK := byKey || obs.Verdict.OK()
	prev := rec.clone()
	name := rec.name()
	event := func(kind EventKind, msg string) (Event, error) {
		c, err := contactOf(txn, rec)
		if err != nil {
			return Event{}, err
		}
		if kind == ConflictRaised || kind == StillConflict {
			msg = HijackWarning(c)
		}
		return Event{Kind: kind, Contact: c, Message: msg}, nil
	}
	// A conflict raised only because the domain did not vouch (yet) for a
	// successor the pinned key certified is resolved by the domain's
	// certification arriving: then both vouch, as for any rotation.
	completes := rec.State == Conflict && rec.Cause == CauseDomainDoesNotVouch &&
		rec.Pending != nil && *rec.Pending == fpr
	switch {
	case rec.State == Blocked:
		return event(Ignored, fmt.Sprintf("%s is blocked; ignored its key %s", name, fpr))

	case fpr == rec.Key:
		if rec.State == Conflict {
			return event(StillConflict, "")
		}
		rr, err := getRevRecord(txn, fpr)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Event{}, err
		}
		if rr != nil && rr.Kind == "compromised" {
			// ObserveRevocation moves such a contact to Conflict; this is
			// only a safety net.
			rec.State, rec.Cause = Conflict, CausePinnedCompromised
			rec.Reason = fmt.Sprintf("the pinned key %s is revoked as compromised: nothing signed by it is trusted", fpr)
			rec.Updated = now
			if err := putRecord(txn, prev, rec); err != nil {
				return Event{}, err
			}
			return event(ConflictRaised, "")
		}
		rec.Updated = now
		msg := ""
		if !byKey && verdictOK {
			rec.Domain = obs.DomainKey.Fingerprint()
			rec.DNSSEC = obs.Verdict.DNSSEC
		} else if !verdictOK {
			msg = fmt.Sprintf("%s still has key %s, but %s does not vouch for it now: %s",
				name, fpr, obs.Email.Domain(), obs.Verdict.Detail)
		}
		if rr != nil {
			msg = fmt.Sprintf("the key %s of %s was revoked (%s, first seen %s)",
				fpr, name, rr.Kind, rr.FirstSeen.Format(time.RFC3339))
			if rr.Successor != nil {
				msg += fmt.Sprintf("; its successor is %s", *rr.Successor)
			}
		}
		if err := putKeyData(txn, fpr, data); err != nil {
			return Event{}, err
		}
		if err := putRecord(txn, prev, rec); err != nil {
			return Event{}, err
		}
		return event(Unchanged, msg)

	case rec.State == Conflict && rec.Pending != nil && *rec.Pending == fpr && !(completes && verdictOK):
		rec.Updated = now
		if err := putKeyData(txn, fpr, data); err != nil {
			return Event{}, err
		}
		if err := putRecord(txn, prev, rec); err != nil {
			return Event{}, err
		}
		return event(StillConflict, "")

	case slices.Contains(rec.Previous, fpr):
		return event(Outdated, fmt.Sprintf("the network still offers the key %s for %s, which it has moved away from; keeping %s", fpr, name, rec.Key))
	}

	// A different key: may the contact follow it?
	pinned, err := loadKey(txn, rec.Key, true)
	if err != nil {
		return Event{}, err
	}
	next, err := address.ReadKey(bytes.NewReader(data))
	if err != nil {
		return Event{}, err
	}
	if err := attachRevocations(txn, next); err != nil {
		return Event{}, err
	}
	var dom *address.Key
	var email address.Email
	if !byKey {
		dom, email = obs.DomainKey, obs.Email
	}
	if !verdictOK {
		bare, err := loadKey(txn, rec.Key, false)
		if err != nil {
			return Event{}, err
		}
		if address.JudgeSuccessor(bare, next, nil, email, now) != nil {
			return Event{}, fmt.Errorf("book: not recording key %s for %s: the pinned key %s has not certified it and %s",
				fpr, name, rec.Key, obs.Verdict)
		}
	}
	jerr := address.JudgeSuccessor(pinned, next, dom, email, now)
	if jerr == nil {
		jerr = checkRetired(txn, rec.Key, next, email, now)
	}
	if jerr == nil && verdictOK && (rec.State != Conflict || completes) {
		old := rec.Key
		rec.addPrevious(old)
		rec.addAuto(old)
		rec.Key = fpr
		rec.State = Rotated
		rec.Pending, rec.Cause, rec.Reason = nil, "", ""
		if !byKey {
			rec.Domain = obs.DomainKey.Fingerprint()
			rec.DNSSEC = obs.Verdict.DNSSEC
		}
		rec.Updated = now
		if err := putKeyData(txn, fpr, data); err != nil {
			return Event{}, err
		}
		if err := putRecord(txn, prev, rec); err != nil {
			return Event{}, err
		}
		msg := fmt.Sprintf("%s rotated its key from %s to %s; both the old key and %s vouch for the new one", name, old, fpr, obs.Email.Domain())
		if byKey {
			msg = fmt.Sprintf("%s rotated its key from %s to %s; the old key vouches for the new one", name, old, fpr)
		}
		return event(Followed, msg)
	}
	cause, reason, err := conflictCause(txn, rec, pinned, next, dom, email, now, jerr, obs.Verdict, verdictOK)
	if err != nil {
		return Event{}, err
	}
	rec.State = Conflict
	rec.Pending = &fpr
	rec.Cause = cause
	rec.Reason = cutReason(reason)
	rec.Updated = now
	if err := putKeyData(txn, fpr, data); err != nil {
		return Event{}, err
	}
	if err := putRecord(txn, prev, rec); err != nil {
		return Event{}, err
	}
	return event(ConflictRaised, "")
}

// checkRetired refuses the vouching of a pinned key that was retired
// (soft-revoked without a successor) by a certification not dated before
// this node first saw the retirement: a soft revocation is judged by its
// first-seen time (address.JudgeSuccessor does not know it).
func checkRetired(txn *badger.Txn, old address.Fingerprint, next *address.Key, email address.Email, now time.Time) error {
	rr, err := getRevRecord(txn, old)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rr.Kind != "retired" {
		return nil
	}
	bare, err := loadKey(txn, old, false)
	if err != nil {
		return err
	}
	uids := next.UserIDs(now)
	if !email.IsZero() {
		uids = nil
		if uid, ok := next.UserIDFor(email, now); ok {
			uids = []string{uid}
		}
	}
	for _, uid := range uids {
		if c, err := address.FindCertification(next, uid, bare, now); err == nil && c.Created.Before(rr.FirstSeen) {
			return nil
		}
	}
	return fmt.Errorf("the pinned key %s was retired (first seen %s) and certified the new key %s only after that",
		old, rr.FirstSeen.Format(time.RFC3339), next.Fingerprint())
}

// findObserved returns the record of the contact obs is about, or
// ErrNotFound.
func findObserved(txn *badger.Txn, obs Observation, byKey bool) (*record, error) {
	if !byKey {
		return getRecord(txn, contactKey(obs.Email))
	}
	fpr := obs.Key.Fingerprint()
	addr := fpr
	if !obs.Email.IsZero() {
		ka, err := address.ParseKeyAddress(obs.Email.String())
		if err != nil {
			return nil, fmt.Errorf("book: %w", err)
		}
		addr = ka.Fingerprint()
	}
	r, err := getRecord(txn, keyContactKey(addr))
	if !errors.Is(err, ErrNotFound) || !obs.Email.IsZero() {
		return r, err
	}
	// A key-address contact that rotated to this key is known by the key
	// address of its first key.
	owners, err := indexOwners(txn, fpr)
	if err != nil {
		return nil, err
	}
	for _, o := range owners {
		if !strings.HasPrefix(o, prefixKey) {
			continue // an email contact
		}
		r, err := getRecord(txn, o)
		if err != nil {
			return nil, err
		}
		if r.Key == fpr || (r.Pending != nil && *r.Pending == fpr) {
			return r, nil
		}
	}
	return nil, ErrNotFound
}

// pin adds a new contact for obs.
func pin(txn *badger.Txn, obs Observation, data []byte, byKey bool, now time.Time) (Event, error) {
	fpr := obs.Key.Fingerprint()
	rec := &record{V: recordVersion, Key: fpr, State: FirstSeen, FirstSeen: now, Updated: now}
	if byKey {
		if !obs.Email.IsZero() {
			return Event{}, fmt.Errorf("book: no contact is pinned for %s, so its successor %s cannot be judged; pin the key it names first", obs.Email, fpr)
		}
		if err := obs.Key.Check(now); err != nil {
			return Event{}, fmt.Errorf("book: not pinning key %s: %w", fpr, err)
		}
		rec.Address = fpr
	} else {
		if !obs.Verdict.OK() {
			return Event{}, fmt.Errorf("book: not pinning key %s for %s: %s (%s)", fpr, obs.Email, obs.Verdict, obs.Verdict.Hint())
		}
		rec.Email = obs.Email
		rec.Domain = obs.DomainKey.Fingerprint()
		rec.DNSSEC = obs.Verdict.DNSSEC
	}
	rr, err := getRevRecord(txn, fpr)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return Event{}, err
	case rr.Kind == "compromised":
		return Event{}, fmt.Errorf("book: not pinning key %s for %s: it is revoked as compromised; look the address up again later for its new key", fpr, rec.name())
	case !rr.FirstSeen.After(now):
		hint := "look the address up again for its new key"
		if rr.Successor != nil {
			hint = fmt.Sprintf("look up its successor %s", *rr.Successor)
		}
		return Event{}, fmt.Errorf("book: not pinning key %s for %s: it was revoked (%s); %s", fpr, rec.name(), rr.Kind, hint)
	}
	if err := putKeyData(txn, fpr, data); err != nil {
		return Event{}, err
	}
	if err := putRecord(txn, nil, rec); err != nil {
		return Event{}, err
	}
	c, err := contactOf(txn, rec)
	if err != nil {
		return Event{}, err
	}
	msg := fmt.Sprintf("pinned %s to key %s on first use (checked over %s)", rec.name(), fpr, obs.Verdict.Method())
	if byKey {
		msg = fmt.Sprintf("pinned %s (key %s) on first use", rec.name(), fpr)
	}
	return Event{Kind: Pinned, Contact: c, Message: msg}, nil
}

// conflictCause says why next cannot be followed from the pinned key.
func conflictCause(txn *badger.Txn, rec *record, pinned, next, dom *address.Key, email address.Email,
	now time.Time, jerr error, v address.Verdict, verdictOK bool) (Cause, string, error) {
	fpr := next.Fingerprint()
	domainName := "the domain"
	if dom != nil {
		domainName = fmt.Sprintf("the domain key %s of %s", dom.Fingerprint(), email.Domain())
	}
	// The pinned key itself is compromised.
	if r := pinned.Revocation(); r != nil && r.Hard() {
		return CausePinnedCompromised, fmt.Sprintf("the pinned key %s is revoked as compromised; a new key %s is waiting for approval", rec.Key, fpr), nil
	}
	// Two different successors of one old key: the key the contact last
	// followed from vouches for next too, or the pinned key's own
	// superseded revocation names another successor but it vouches for
	// next as well.
	if from := rec.followedFrom(); from != nil && verdictOK {
		old, err := loadKey(txn, *from, false)
		if err != nil {
			return "", "", err
		}
		if address.JudgeSuccessor(old, next, dom, email, now) == nil {
			return CauseTwoSuccessors, fmt.Sprintf("its old key %s vouches for two different successors: %s, which you followed automatically, and %s",
				*from, rec.Key, fpr), nil
		}
	}
	if r := pinned.Revocation(); r != nil && r.Successor != nil && *r.Successor != fpr && verdictOK {
		bare, err := loadKey(txn, rec.Key, false)
		if err != nil {
			return "", "", err
		}
		if address.JudgeSuccessor(bare, next, dom, email, now) == nil {
			return CauseTwoSuccessors, fmt.Sprintf("its key %s names %s as its successor, but it also vouches for %s",
				rec.Key, *r.Successor, fpr), nil
		}
	}
	if jerr == nil {
		if !verdictOK {
			return CauseDomainDoesNotVouch, fmt.Sprintf("the new key %s is signed by the pinned key %s, but %s does not vouch for it: %s",
				fpr, rec.Key, domainName, v.Detail), nil
		}
		return CauseOther, fmt.Sprintf("the new key %s is signed by the pinned key %s and by %s, but it appeared while a conflict was open (%s)",
			fpr, rec.Key, domainName, rec.Reason), nil
	}
	// Classify by the certifications alone (the pinned key without its
	// revocations): a key the pinned key never signed is a possible
	// hijack even when the pinned key's revocation would refuse it anyway.
	bare, err := loadKey(txn, rec.Key, false)
	if err != nil {
		return "", "", err
	}
	var se *address.SuccessionError
	if !errors.As(address.JudgeSuccessor(bare, next, dom, email, now), &se) || se.Other != "" {
		if !errors.As(jerr, &se) {
			return CauseOther, jerr.Error(), nil
		}
	}
	switch {
	case se.Other != "":
		return CauseOther, se.Other, nil
	case se.MissingOld && se.MissingDomain:
		return CauseNotSignedByPinned, fmt.Sprintf("the new key %s is signed neither by the pinned key %s nor by %s", fpr, rec.Key, domainName), nil
	case se.MissingOld:
		return CauseNotSignedByPinned, fmt.Sprintf("the new key %s is not signed by the pinned key %s", fpr, rec.Key), nil
	case se.MissingDomain:
		reason := fmt.Sprintf("the new key %s is signed by the pinned key %s, but %s does not vouch for it", fpr, rec.Key, domainName)
		if !verdictOK && v.Detail != "" {
			reason += ": " + v.Detail
		}
		return CauseDomainDoesNotVouch, reason, nil
	}
	// The certifications are all there: the refusal comes from the pinned
	// key's revocation.
	if errors.As(jerr, &se) && se.Other != "" {
		return CauseOther, se.Other, nil
	}
	return CauseOther, jerr.Error(), nil
}
