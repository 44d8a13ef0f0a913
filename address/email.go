package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Limits of RFC 5321 §4.5.3.1, applied to the canonical form.
const (
	maxLocalPart = 64
	maxDomain    = 253
	maxEmailIn   = 512 // longest input considered at all
)

// ErrBadEmail is wrapped by every error ParseEmail returns.
var ErrBadEmail = errors.New("address: bad email address")

// idnaProfile maps a domain the way a lookup does (UTS-46, non-transitional)
// and insists on a name that fits the DNS.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
	idna.StrictDomainName(true),
)

// Email is a canonical email address: the local part lower-cased and in
// Unicode NFC, the domain lower-cased in IDNA A-label form (UTS-46). Every
// hash or comparison of an email in DSEP uses this form. The zero value is
// not a valid address.
type Email struct {
	local, domain string
}

// ParseEmail canonicalises an email address ("Bob@Exämple.org" becomes
// "bob@xn--exmple-cua.org"). It accepts a bare addr-spec without quoting,
// comments or angle brackets; the local part may hold UTF-8 (RFC 6531).
func ParseEmail(s string) (Email, error) {
	if len(s) > maxEmailIn {
		return Email{}, fmt.Errorf("%w: longer than %d bytes", ErrBadEmail, maxEmailIn)
	}
	if !utf8.ValidString(s) {
		return Email{}, fmt.Errorf("%w: not UTF-8", ErrBadEmail)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Email{}, fmt.Errorf("%w: %q has no @", ErrBadEmail, s)
	}
	local, err := canonicalLocal(s[:at])
	if err != nil {
		return Email{}, err
	}
	domain, err := CanonicalDomain(s[at+1:])
	if err != nil {
		return Email{}, err
	}
	return Email{local: local, domain: domain}, nil
}

func canonicalLocal(l string) (string, error) {
	if l == "" {
		return "", fmt.Errorf("%w: empty local part", ErrBadEmail)
	}
	l = strings.ToLower(norm.NFC.String(l))
	// Lower-casing can change the form; normalise once more.
	l = norm.NFC.String(l)
	if len(l) > maxLocalPart {
		return "", fmt.Errorf("%w: local part longer than %d bytes", ErrBadEmail, maxLocalPart)
	}
	if l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, "..") {
		return "", fmt.Errorf("%w: misplaced dot in local part", ErrBadEmail)
	}
	for _, r := range l {
		if r < 0x80 {
			if !isAtext(byte(r)) && r != '.' {
				return "", fmt.Errorf("%w: character %q not allowed in local part", ErrBadEmail, r)
			}
			continue
		}
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return "", fmt.Errorf("%w: character %U not allowed in local part", ErrBadEmail, r)
		}
	}
	return l, nil
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// CanonicalDomain returns the lower-case IDNA A-label form of a domain name
// (UTS-46 lookup mapping). It refuses address literals, a trailing dot and
// names without a dot.
func CanonicalDomain(d string) (string, error) {
	if d == "" {
		return "", fmt.Errorf("%w: empty domain", ErrBadEmail)
	}
	if strings.HasPrefix(d, "[") {
		return "", fmt.Errorf("%w: address literals are not supported", ErrBadEmail)
	}
	if strings.HasSuffix(d, ".") {
		return "", fmt.Errorf("%w: domain %q ends with a dot", ErrBadEmail, d)
	}
	a, err := idnaProfile.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrBadEmail, d, err)
	}
	a = strings.ToLower(a)
	// UTS-46 maps other full stops (U+3002, U+FF0E, U+FF61) to ".": check
	// the trailing dot again on the mapped name.
	if strings.HasSuffix(a, ".") {
		return "", fmt.Errorf("%w: domain %q ends with a dot", ErrBadEmail, d)
	}
	if len(a) > maxDomain {
		return "", fmt.Errorf("%w: domain longer than %d bytes", ErrBadEmail, maxDomain)
	}
	if !strings.Contains(a, ".") {
		return "", fmt.Errorf("%w: domain %q has no dot", ErrBadEmail, d)
	}
	if tld := a[strings.LastIndexByte(a, '.')+1:]; strings.Trim(tld, "0123456789") == "" {
		// No top-level domain is numeric (RFC 3696 §2): this is an IP
		// address written without brackets.
		return "", fmt.Errorf("%w: domain %q is an IP address, not a name", ErrBadEmail, d)
	}
	return a, nil
}

// String returns local@domain in canonical form; ParseEmail(e.String()) == e.
func (e Email) String() string {
	if e.IsZero() {
		return ""
	}
	return e.local + "@" + e.domain
}

// Local returns the canonical local part.
func (e Email) Local() string { return e.local }

// Domain returns the canonical (A-label) domain.
func (e Email) Domain() string { return e.domain }

// IsZero reports whether e is the zero value.
func (e Email) IsZero() bool { return e.local == "" && e.domain == "" }

// IsKeyAddress reports whether e is in the dsep.alt pseudo-domain.
func (e Email) IsKeyAddress() bool { return e.domain == KeyAddressDomain }

// MarshalText implements encoding.TextMarshaler.
func (e Email) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (e *Email) UnmarshalText(b []byte) error {
	p, err := ParseEmail(string(b))
	if err != nil {
		return err
	}
	*e = p
	return nil
}

// Address is what a user types to name a correspondent: either an email
// address bound by its domain, or a key address naming a fingerprint.
// Exactly one of Email and Key is set.
type Address struct {
	Email Email
	Key   *KeyAddress
}

// ParseAddress parses an email address or a key address.
func ParseAddress(s string) (Address, error) {
	if strings.HasSuffix(strings.ToLower(strings.TrimSpace(s)), "@"+KeyAddressDomain) {
		k, err := ParseKeyAddress(s)
		if err != nil {
			return Address{}, err
		}
		return Address{Key: &k}, nil
	}
	e, err := ParseEmail(s)
	if err != nil {
		return Address{}, err
	}
	if e.IsKeyAddress() {
		// Spelled so that only UTS-46 mapping makes it dsep.alt (full-width
		// letters, another full stop): still a key address, never an email
		// to look up in the DNS.
		k, err := ParseKeyAddress(e.String())
		if err != nil {
			return Address{}, err
		}
		return Address{Key: &k}, nil
	}
	return Address{Email: e}, nil
}

// String returns the canonical form.
func (a Address) String() string {
	if a.Key != nil {
		return a.Key.String()
	}
	return a.Email.String()
}

// UserID returns the OpenPGP User ID DSEP writes for name and email:
// "Name <email>", or "<email>" when name is empty. It refuses names that
// would make the User ID ambiguous.
func UserID(name string, email Email) (string, error) {
	name = strings.TrimSpace(name)
	if strings.ContainsAny(name, "<>()\x00\r\n") {
		return "", fmt.Errorf("address: name %q may not contain <, >, (, ) or line breaks", name)
	}
	if !utf8.ValidString(name) {
		return "", errors.New("address: name is not UTF-8")
	}
	if name == "" {
		return "<" + email.String() + ">", nil
	}
	return name + " <" + email.String() + ">", nil
}

// EmailOfUserID extracts and canonicalises the address inside the last <…>
// of a User ID, or the whole User ID if it is a bare address.
func EmailOfUserID(uid string) (Email, error) {
	if i := strings.LastIndexByte(uid, '<'); i >= 0 {
		j := strings.LastIndexByte(uid, '>')
		if j < i {
			return Email{}, fmt.Errorf("%w: User ID %q has an unclosed <", ErrBadEmail, uid)
		}
		return ParseEmail(uid[i+1 : j])
	}
	return ParseEmail(strings.TrimSpace(uid))
}
