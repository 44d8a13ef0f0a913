package book

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dsep-project/dsep/address"
)

// State is where a contact stands in the trust-on-first-use life cycle of
// DESIGN.md "Address book (TOFU)".
type State string

// The states of a contact.
const (
	// FirstSeen: pinned on first use, the binding checked over DNS.
	FirstSeen State = "first-seen"
	// Verified: the user compared the fingerprint out of band.
	Verified State = "verified"
	// Rotated: the contact followed a rotation automatically (the
	// successor carried the pinned key's and the domain's certification).
	Rotated State = "rotated"
	// Conflict: a key change that could not be followed automatically, or
	// a compromised pinned key. Nothing is trusted until the user decides.
	Conflict State = "conflict"
	// Blocked: the user blocked the contact; observations are ignored.
	Blocked State = "blocked"
)

func (s State) valid() bool {
	switch s {
	case FirstSeen, Verified, Rotated, Conflict, Blocked:
		return true
	}
	return false
}

// Cause says, machine-readably, why a contact is in Conflict. Contact.Reason
// says it for people.
type Cause string

// The causes of a conflict.
const (
	// CauseNotSignedByPinned: the new key is not signed by the pinned key
	// (the domain or its DNS may have been hijacked).
	CauseNotSignedByPinned Cause = "not-signed-by-pinned"
	// CauseDomainDoesNotVouch: the new key is signed by the pinned key but
	// the domain does not certify it (a stolen old key, or a domain that no
	// longer vouches).
	CauseDomainDoesNotVouch Cause = "domain-does-not-vouch"
	// CauseTwoSuccessors: the old key vouches for two different successors.
	CauseTwoSuccessors Cause = "two-successors"
	// CauseMoveUndone: a key the contact followed away from automatically
	// was revoked as compromised, which undid the move.
	CauseMoveUndone Cause = "move-undone"
	// CausePinnedCompromised: the pinned key itself is revoked as
	// compromised.
	CausePinnedCompromised Cause = "pinned-compromised"
	// CauseOther: any other reason a new key cannot be followed (unusable
	// key, a key change while a conflict was open, …); see Reason.
	CauseOther Cause = "other"
)

func (c Cause) valid() bool {
	switch c {
	case "", CauseNotSignedByPinned, CauseDomainDoesNotVouch, CauseTwoSuccessors,
		CauseMoveUndone, CausePinnedCompromised, CauseOther:
		return true
	}
	return false
}

// Contact is one pinned correspondent. A Contact returned by the Book is a
// copy: changing it changes nothing stored.
type Contact struct {
	// Email is the canonical address; zero for a contact pinned only by
	// key address.
	Email address.Email
	// Address is, for a contact pinned only by key address, the key
	// address it is known by (that of the first key pinned; it stays when
	// the contact rotates). Zero for email contacts.
	Address address.KeyAddress
	// Key is the pinned key: mail is encrypted to it and signatures by it
	// are trusted, unless State is Conflict or Blocked.
	Key   address.Fingerprint
	State State
	// Domain is the domain key that certified the binding (email contacts).
	Domain address.Fingerprint
	// DNSSEC reports whether the binding was last checked over DNSSEC.
	DNSSEC bool
	// FirstSeen is when the contact was first pinned; Updated when it last
	// changed or was last seen unchanged.
	FirstSeen time.Time
	Updated   time.Time
	// Previous lists the keys the contact moved away from, oldest first
	// (at most MaxPrevious; the oldest are dropped).
	Previous []address.Fingerprint
	// FollowedFrom is set while Key was reached by an automatic rotation
	// from this key, so that a later compromise of it can undo the move.
	FollowedFrom *address.Fingerprint
	// Pending is, in Conflict, the key waiting for the user's approval.
	Pending *address.Fingerprint
	// Cause and Reason say why the contact is in Conflict (Reason also why
	// it is Blocked).
	Cause  Cause
	Reason string
	// KeyData and PendingData are the public key material of Key and
	// Pending (address.Key.Bytes()), so successors can be judged offline.
	KeyData     []byte
	PendingData []byte
}

// Trusted reports whether mail may be encrypted to c.Key and signatures by
// it trusted: the state is FirstSeen, Verified or Rotated.
func (c *Contact) Trusted() bool {
	switch c.State {
	case FirstSeen, Verified, Rotated:
		return true
	}
	return false
}

// Name returns the address the contact is known by: its email, or its key
// address.
func (c *Contact) Name() string {
	if !c.Email.IsZero() {
		return c.Email.String()
	}
	return c.Address.String()
}

// Limits on what one contact record holds.
const (
	// MaxPrevious is how many earlier keys a contact remembers.
	MaxPrevious = 64
	// maxAuto bounds the chain of automatic moves that a compromise can
	// still undo; older links are forgotten (and the user was told of each
	// move when it happened).
	maxAuto = 16
	// maxReason bounds the human-readable reason (the user's block reason
	// is cut to it).
	maxReason = 2048
)

const recordVersion = 1

// record is the stored form of a contact (see the package doc).
type record struct {
	V         int                   `json:"v"`
	Email     address.Email         `json:"email,omitzero"`
	Address   address.Fingerprint   `json:"key_address,omitzero"`
	Key       address.Fingerprint   `json:"key"`
	State     State                 `json:"state"`
	Cause     Cause                 `json:"cause,omitempty"`
	Domain    address.Fingerprint   `json:"domain,omitzero"`
	DNSSEC    bool                  `json:"dnssec,omitempty"`
	FirstSeen time.Time             `json:"first_seen,omitzero"`
	Updated   time.Time             `json:"updated,omitzero"`
	Previous  []address.Fingerprint `json:"previous,omitempty"`
	Auto      []address.Fingerprint `json:"auto,omitempty"`
	Pending   *address.Fingerprint  `json:"pending,omitempty"`
	Reason    string                `json:"reason,omitempty"`
}

// owner returns the database key of the record.
func (r *record) owner() string {
	if !r.Email.IsZero() {
		return contactKey(r.Email)
	}
	return keyContactKey(r.Address)
}

// name is Contact.Name for a record.
func (r *record) name() string {
	if !r.Email.IsZero() {
		return r.Email.String()
	}
	return address.KeyAddress(r.Address).String()
}

// refs returns the fingerprints the record refers to and so indexes: Key,
// Pending and the keys of the automatic moves.
func (r *record) refs() []address.Fingerprint {
	out := []address.Fingerprint{r.Key}
	if r.Pending != nil {
		out = append(out, *r.Pending)
	}
	out = append(out, r.Auto...)
	slices.SortFunc(out, func(a, b address.Fingerprint) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

func (r *record) followedFrom() *address.Fingerprint {
	if len(r.Auto) == 0 {
		return nil
	}
	f := r.Auto[len(r.Auto)-1]
	return &f
}

// clone returns a deep copy.
func (r *record) clone() *record {
	c := *r
	c.Previous = slices.Clone(r.Previous)
	c.Auto = slices.Clone(r.Auto)
	if r.Pending != nil {
		p := *r.Pending
		c.Pending = &p
	}
	return &c
}

// addPrevious appends f to Previous, dropping the oldest beyond the limit.
func (r *record) addPrevious(f address.Fingerprint) {
	r.Previous = append(r.Previous, f)
	if n := len(r.Previous); n > MaxPrevious {
		r.Previous = slices.Clone(r.Previous[n-MaxPrevious:])
	}
}

// addAuto records an automatic move away from f.
func (r *record) addAuto(f address.Fingerprint) {
	r.Auto = append(r.Auto, f)
	if n := len(r.Auto); n > maxAuto {
		r.Auto = slices.Clone(r.Auto[n-maxAuto:])
	}
}

// resolve leaves the conflict: no pending key, no cause, no reason, and no
// automatic moves to undo (the user has decided).
func (r *record) resolve(state State, now time.Time) {
	r.State = state
	r.Pending = nil
	r.Cause = ""
	r.Reason = ""
	r.Auto = nil
	r.Updated = now
}

// encodeRecord returns the stored form of r.
func encodeRecord(r *record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("book: encoding the contact %s: %w", r.name(), err)
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("book: the record of %s would be %d bytes, over the %d-byte limit", r.name(), len(b), MaxRecordSize)
	}
	return b, nil
}

// decodeRecord parses and checks a stored contact record. It never panics.
func decodeRecord(b []byte) (*record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: contact record of %d bytes is over the %d-byte limit", ErrDamaged, len(b), MaxRecordSize)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: contact record: %v", ErrDamaged, err)
	}
	r.normalize()
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("%w: contact record: %v", ErrDamaged, err)
	}
	return &r, nil
}

// normalize puts decoded values in the form encoding produces, so that a
// decoded record encodes and decodes to itself.
func (r *record) normalize() {
	r.FirstSeen = normTime(r.FirstSeen)
	r.Updated = normTime(r.Updated)
	if len(r.Previous) == 0 {
		r.Previous = nil
	}
	if len(r.Auto) == 0 {
		r.Auto = nil
	}
}

// normTime returns t in UTC without a monotonic reading.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(0)
}

// check verifies the invariants every stored record holds.
func (r *record) check() error {
	switch {
	case r.V == 0:
		return fmt.Errorf("no version")
	case r.V > recordVersion:
		return fmt.Errorf("record version %d was written by a newer dsep; upgrade dsep", r.V)
	case r.V != recordVersion:
		return fmt.Errorf("unknown record version %d", r.V)
	case r.Email.IsZero() == r.Address.IsZero():
		return fmt.Errorf("a contact has either an email or a key address")
	case r.Email.IsKeyAddress():
		return fmt.Errorf("email %s is a key address", r.Email)
	case r.Key.IsZero():
		return fmt.Errorf("no key")
	case !r.State.valid():
		return fmt.Errorf("unknown state %q", r.State)
	case !r.Cause.valid():
		return fmt.Errorf("unknown conflict cause %q", r.Cause)
	case r.Pending != nil && r.Pending.IsZero():
		return fmt.Errorf("zero pending key")
	case len(r.Previous) > MaxPrevious:
		return fmt.Errorf("%d previous keys (limit %d)", len(r.Previous), MaxPrevious)
	case len(r.Auto) > maxAuto:
		return fmt.Errorf("%d automatic moves (limit %d)", len(r.Auto), maxAuto)
	case len(r.Reason) > maxReason:
		return fmt.Errorf("reason of %d bytes (limit %d)", len(r.Reason), maxReason)
	}
	for _, f := range append(slices.Clone(r.Previous), r.Auto...) {
		if f.IsZero() {
			return fmt.Errorf("zero fingerprint in a key list")
		}
	}
	for _, t := range []time.Time{r.FirstSeen, r.Updated} {
		if _, err := t.MarshalText(); err != nil {
			return fmt.Errorf("bad time: %v", err)
		}
	}
	return nil
}

// contact returns the Contact r describes, with the given key material.
func (r *record) contact(keyData, pendingData []byte) *Contact {
	c := &Contact{
		Email:        r.Email,
		Address:      address.KeyAddress(r.Address),
		Key:          r.Key,
		State:        r.State,
		Domain:       r.Domain,
		DNSSEC:       r.DNSSEC,
		FirstSeen:    r.FirstSeen,
		Updated:      r.Updated,
		Previous:     slices.Clone(r.Previous),
		FollowedFrom: r.followedFrom(),
		Cause:        r.Cause,
		Reason:       r.Reason,
		KeyData:      keyData,
		PendingData:  pendingData,
	}
	if r.Pending != nil {
		p := *r.Pending
		c.Pending = &p
	}
	return c
}

// cutReason bounds a reason to maxReason bytes, at a rune boundary.
func cutReason(s string) string {
	if len(s) <= maxReason {
		return s
	}
	s = s[:maxReason-len("…")]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// HijackWarning returns the warning to show the user for a contact in
// Conflict, several lines ending in a newline, tailored to why it is in
// conflict and naming the commands that resolve it. It returns "" for a
// contact not in Conflict.
func HijackWarning(c *Contact) string {
	if c == nil || c.State != Conflict {
		return ""
	}
	name := c.Name()
	domain := c.Email.Domain()
	var b strings.Builder
	pending := ""
	if c.Pending != nil {
		pending = c.Pending.Grouped()
	}
	from := ""
	if c.FollowedFrom != nil {
		from = c.FollowedFrom.Grouped()
	}
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	switch c.Cause {
	case CauseNotSignedByPinned:
		p("WARNING: the key for %s changed to\n    %s\n", name, pending)
		p("and the new key is not signed by the key you had pinned\n    %s\n", c.Key.Grouped())
		if domain != "" {
			p("If you did not expect this, the domain %s or its DNS may have been hijacked,\n", domain)
		} else {
			p("If you did not expect this, someone may be impersonating %s,\n", name)
		}
		p("and mail you send could be read by someone else.\n")
	case CauseDomainDoesNotVouch:
		p("WARNING: the key for %s changed to\n    %s\n", name, pending)
		p("The new key is signed by the key you had pinned\n    %s\n", c.Key.Grouped())
		p("but %s does not vouch for it. Someone may have stolen the old key, or\n", domainOr(domain))
		p("%s no longer vouches for %s; mail you send could be read by someone else.\n", domainOr(domain), name)
	case CauseTwoSuccessors:
		if from != "" && pending != "" {
			p("WARNING: the old key of %s\n    %s\n", name, from)
			p("vouches for two different successors:\n")
			p("    %s  (you followed it automatically)\n", c.Key.Grouped())
			p("    %s  (offered now)\n", pending)
		} else {
			p("WARNING: %s has two different successors of the same old key.\n", name)
			p("%s\n", sentence(c.Reason))
		}
		p("Only one can be genuine: whoever made the other holds the old key, which may\nhave been stolen. Mail you send could be read by someone else.\n")
	case CauseMoveUndone:
		p("WARNING: the key\n    %s\n", c.Key.Grouped())
		p("that %s rotated away from has been revoked as compromised. Its\n", name)
		p("signature is what let you follow %s automatically to\n    %s\n", name, pending)
		p("so that move is undone: whoever stole the old key may have made the new one,\n")
		p("and mail you send could be read by someone else.\n")
	case CausePinnedCompromised:
		p("WARNING: the key you had pinned for %s\n    %s\n", name, c.Key.Grouped())
		p("has been revoked as compromised: nothing signed by it is trusted and no mail\nis encrypted to it.\n")
		if pending != "" {
			p("A new key is waiting for your approval:\n    %s\n", pending)
		}
	default:
		p("WARNING: the key for %s changed", name)
		if pending != "" {
			p(" to\n    %s\n", pending)
		} else {
			p(".\n")
		}
		p("and it cannot be followed automatically: %s\n", strings.TrimSuffix(c.Reason, ".")+".")
		p("Mail you send could be read by someone else.\n")
	}
	p("Until you decide, no mail is encrypted to %s and nothing signed by its keys is trusted.\n", name)
	if c.Pending != nil {
		p("Compare the new fingerprint with %s out of band (phone, in person), then run\n", name)
		p("    dsep contacts approve %s\nor\n    dsep contacts block %s\n", name, name)
	} else {
		p("Ask %s out of band (phone, in person) for their new key; you will be asked\n", name)
		p("to approve it when the network offers it. Or run\n    dsep contacts block %s\n", name)
	}
	return b.String()
}

func domainOr(d string) string {
	if d == "" {
		return "the domain"
	}
	return d
}

// sentence returns s with its first letter upper-cased and a final period.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
