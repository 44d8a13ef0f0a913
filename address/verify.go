package address

import (
	"errors"
	"fmt"
	"time"
)

// Reason says why a binding does or does not hold. Each failure has its own
// value so tools and scripts can act on it.
type Reason int

const (
	// BindingOK: the domain's DNS names a domain key that certifies the
	// key's User ID for the address, and nothing is revoked or expired.
	BindingOK Reason = iota
	// NoTXT: the domain publishes no _dsep TXT record (NXDOMAIN or no
	// DSEP record there).
	NoTXT
	// BadTXT: a _dsep record claims v=DSEP1 but is malformed, and no valid
	// record exists beside it.
	BadTXT
	// UnknownDomainKey: the offered domain key is not one DNS names.
	UnknownDomainKey
	// NoCertification: the domain key has not certified this key's User ID
	// (or the certification does not verify).
	NoCertification
	// Expired: the certification, the key or the domain key has expired.
	Expired
	// Revoked: the key or the domain key is revoked, or the domain revoked
	// its certification.
	Revoked
	// WrongKey: the key carries no valid User ID for the address, is not a
	// usable DSEP key, or is not the key that was asked about.
	WrongKey
	// DNSFailure: the DNS lookup failed (timeout, SERVFAIL, network); the
	// binding is unknown, not false. Retry later.
	DNSFailure
)

var reasonNames = [...]string{"ok", "no-txt", "bad-txt", "unknown-domain-key", "no-certification", "expired", "revoked", "wrong-key", "dns-failure"}

// String returns the stable machine name ("ok", "no-txt", …) used in --json
// output.
func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// MarshalText implements encoding.TextMarshaler.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// DNSAnswer is what the DNS said about _dsep.<domain>, as address/dns
// reports it. Exactly one of Records (possibly empty), NotFound or Err
// describes the outcome.
type DNSAnswer struct {
	Records       []string // TXT records, each with its strings joined
	Authenticated bool     // AD bit from a resolver the user trusts to validate
	NotFound      bool     // NXDOMAIN or no TXT record
	Err           error    // lookup failure (not "not found")
}

// BindingInput is everything VerifyBinding judges.
type BindingInput struct {
	Email     Email
	DNS       DNSAnswer
	Key       *Key // the candidate user key
	DomainKey *Key // the domain key offered with it (from the email record)
	// Expected, if set, is the fingerprint the caller is checking for.
	Expected *Fingerprint
	// Now is the time of the check; zero means time.Now().
	Now time.Time
}

// Verdict is the result of a binding check.
type Verdict struct {
	Reason    Reason      `json:"reason"`
	Email     Email       `json:"email"`
	Key       Fingerprint `json:"key"`
	Domain    Fingerprint `json:"domain_key,omitzero"`
	UserID    string      `json:"user_id,omitempty"`
	DNSSEC    bool        `json:"dnssec"`
	Expires   time.Time   `json:"expires,omitzero"`
	Detail    string      `json:"detail,omitempty"`
	Temporary bool        `json:"temporary,omitempty"`
}

// OK reports whether the binding holds.
func (v Verdict) OK() bool { return v.Reason == BindingOK }

// Method names how the binding was established: "DNSSEC" or "DNS, not
// DNSSEC".
func (v Verdict) Method() string {
	if v.DNSSEC {
		return "DNSSEC"
	}
	return "DNS, not DNSSEC"
}

// String is a one-line human summary.
func (v Verdict) String() string {
	if v.OK() {
		s := fmt.Sprintf("%s is bound to key %s by domain key %s (%s)", v.Email, v.Key, v.Domain, v.Method())
		if !v.Expires.IsZero() {
			s += fmt.Sprintf("; certification valid until %s", v.Expires.UTC().Format("2006-01-02"))
		}
		return s
	}
	return fmt.Sprintf("%s is NOT bound to key %s: %s: %s", v.Email, v.Key, v.Reason, v.Detail)
}

// Hint says what a user can do about a failed verdict.
func (v Verdict) Hint() string {
	d := v.Email.Domain()
	switch v.Reason {
	case NoTXT:
		return fmt.Sprintf("ask the owner of %s to publish the record printed by `dsep domain txt`", d)
	case BadTXT:
		return fmt.Sprintf("the TXT record at %s is malformed; ask the owner of %s to republish it exactly as `dsep domain txt` prints it", TXTName(d), d)
	case UnknownDomainKey:
		return fmt.Sprintf("the domain key offered is not the one %s publishes; get the key from the DHT or the domain owner", d)
	case NoCertification:
		return fmt.Sprintf("ask the owner of %s to run `dsep domain certify` on this key", d)
	case Expired:
		return "ask the key owner or the domain owner to renew (re-certify) the key"
	case Revoked:
		return "do not use this key; look up the address again for its successor"
	case WrongKey:
		return "the key does not belong to this address; check the key file"
	case DNSFailure:
		return "DNS could not be asked; check --dns or the network and try again"
	}
	return ""
}

// VerifyBinding judges whether in.Key is bound to in.Email: the DNS answer
// for _dsep.<domain> names in.DomainKey, and that key has certified (not
// expired, not revoked) a User ID of in.Key whose address is in.Email, and
// neither key is revoked or expired. Every signature is checked; nothing is
// cached here. The checks run in a fixed order so each failure gets the
// most specific reason.
func VerifyBinding(in BindingInput) Verdict {
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	v := Verdict{Email: in.Email}
	fail := func(r Reason, format string, args ...any) Verdict {
		v.Reason = r
		v.Detail = fmt.Sprintf(format, args...)
		return v
	}
	if in.Key != nil {
		v.Key = in.Key.fpr
	}
	if in.DomainKey != nil {
		v.Domain = in.DomainKey.fpr
	}
	// 1. DNS.
	switch {
	case in.DNS.Err != nil:
		v.Temporary = true
		return fail(DNSFailure, "DNS lookup of %s failed: %v", TXTName(in.Email.Domain()), in.DNS.Err)
	case in.DNS.NotFound:
		return fail(NoTXT, "%s has no TXT record", TXTName(in.Email.Domain()))
	}
	recs, perr := ParseTXTSet(in.DNS.Records)
	if len(recs) == 0 {
		if perr != nil {
			return fail(BadTXT, "%v", perr)
		}
		return fail(NoTXT, "%s has no v=DSEP1 record", TXTName(in.Email.Domain()))
	}
	v.DNSSEC = in.DNS.Authenticated
	// 2. The domain key is one DNS names.
	if in.DomainKey == nil {
		return fail(UnknownDomainKey, "no domain key was offered")
	}
	named := false
	for _, r := range recs {
		if r.Key == in.DomainKey.fpr {
			named = true
		}
	}
	if !named {
		return fail(UnknownDomainKey, "domain key %s is not named by %s", in.DomainKey.fpr, TXTName(in.Email.Domain()))
	}
	// 3. The user key is the one asked about and carries the address.
	if in.Key == nil {
		return fail(WrongKey, "no key was offered")
	}
	if in.Expected != nil && *in.Expected != in.Key.fpr {
		return fail(WrongKey, "key %s is not the expected %s", in.Key.fpr, *in.Expected)
	}
	// 4. Revocations and expiry of both keys.
	if r := in.DomainKey.Revocation(); r != nil {
		return fail(Revoked, "domain key %s is revoked (%s)", in.DomainKey.fpr, r.Kind())
	}
	if r := in.Key.Revocation(); r != nil {
		return fail(Revoked, "key %s is revoked (%s)", in.Key.fpr, r.Kind())
	}
	if err := in.DomainKey.Check(now); err != nil {
		if errors.Is(err, ErrKeyExpired) {
			return fail(Expired, "domain key %s has expired", in.DomainKey.fpr)
		}
		return fail(UnknownDomainKey, "domain key %s is unusable: %v", in.DomainKey.fpr, err)
	}
	if err := in.Key.Check(now); err != nil {
		if errors.Is(err, ErrKeyExpired) {
			return fail(Expired, "key %s has expired", in.Key.fpr)
		}
		return fail(WrongKey, "%v", err)
	}
	uid, ok := in.Key.UserIDFor(in.Email, now)
	if !ok {
		return fail(WrongKey, "key %s has no valid User ID for %s", in.Key.fpr, in.Email)
	}
	v.UserID = uid
	// 5. The certification.
	c, err := FindCertification(in.Key, uid, in.DomainKey, now)
	switch {
	case errors.Is(err, ErrCertificationExpired):
		return fail(Expired, "the certification of %q by %s has expired", uid, in.DomainKey.fpr)
	case errors.Is(err, ErrCertificationRevoked):
		return fail(Revoked, "domain key %s revoked its certification of %q", in.DomainKey.fpr, uid)
	case err != nil:
		return fail(NoCertification, "domain key %s has not certified %q", in.DomainKey.fpr, uid)
	}
	v.Expires = c.Expires
	v.Reason = BindingOK
	return v
}
