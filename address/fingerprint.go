package address

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// FingerprintSize is the length in bytes of an OpenPGP v4 fingerprint.
const FingerprintSize = 20

// KeyAddressDomain is the pseudo-domain of key addresses. The .alt TLD is
// reserved for names outside the DNS (RFC 9476), so no DNS lookup is ever
// made for it.
const KeyAddressDomain = "dsep.alt"

// zbase32 is the human-oriented base-32 encoding of
// https://philzimmermann.com/docs/human-oriented-base-32-encoding.txt. For
// whole bytes it is plain base-32 with another alphabet.
var zbase32 = base32.NewEncoding("ybndrfg8ejkmcpqxot1uwisza345h769").WithPadding(base32.NoPadding)

// ErrBadFingerprint is returned for a string that is not a v4 fingerprint.
var ErrBadFingerprint = errors.New("address: not a 40-hex-digit OpenPGP v4 fingerprint")

// Fingerprint is the 20-byte OpenPGP v4 fingerprint of a primary key. It is
// the root address of an identity.
type Fingerprint [FingerprintSize]byte

// ParseFingerprint parses 40 hexadecimal digits, in either case. Spaces, as
// gpg prints them in groups, are accepted and ignored.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	s = strings.ReplaceAll(s, " ", "")
	if len(s) != 2*FingerprintSize {
		return f, ErrBadFingerprint
	}
	if _, err := hex.Decode(f[:], []byte(s)); err != nil {
		return f, ErrBadFingerprint
	}
	return f, nil
}

// FingerprintFromBytes copies a 20-byte fingerprint.
func FingerprintFromBytes(b []byte) (Fingerprint, error) {
	var f Fingerprint
	if len(b) != FingerprintSize {
		return f, fmt.Errorf("%w (got %d bytes)", ErrBadFingerprint, len(b))
	}
	copy(f[:], b)
	return f, nil
}

// String returns the lower-case hex form used in DHT keys and TXT records.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// IsZero reports whether f is the zero value.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// Grouped returns the upper-case form in groups of four, as gpg prints it,
// for people comparing fingerprints out of band.
func (f Fingerprint) Grouped() string {
	h := strings.ToUpper(f.String())
	var b strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
			if i == len(h)/2 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(h[i : i+4])
	}
	return b.String()
}

// KeyAddress returns the key address form of f, usable in any mail client's
// To: field: <z-base-32 of the fingerprint>@dsep.alt.
func (f Fingerprint) KeyAddress() KeyAddress { return KeyAddress(f) }

// MarshalText implements encoding.TextMarshaler (lower-case hex).
func (f Fingerprint) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *Fingerprint) UnmarshalText(b []byte) error {
	p, err := ParseFingerprint(string(b))
	if err != nil {
		return err
	}
	*f = p
	return nil
}

// KeyAddress is an address that names a key directly:
// <z-base-32 of the 20-byte fingerprint>@dsep.alt.
type KeyAddress Fingerprint

// ErrBadKeyAddress is returned for a malformed key address.
var ErrBadKeyAddress = errors.New("address: not a key address (<32 z-base-32 characters>@dsep.alt)")

// ParseKeyAddress parses a key address. Case is ignored.
func ParseKeyAddress(s string) (KeyAddress, error) {
	var k KeyAddress
	s = strings.ToLower(strings.TrimSpace(s))
	local, domain, ok := strings.Cut(s, "@")
	if !ok || domain != KeyAddressDomain || len(local) != 32 {
		return k, ErrBadKeyAddress
	}
	b, err := zbase32.DecodeString(local)
	if err != nil || len(b) != FingerprintSize {
		return k, ErrBadKeyAddress
	}
	copy(k[:], b)
	return k, nil
}

// Fingerprint returns the fingerprint the address names.
func (k KeyAddress) Fingerprint() Fingerprint { return Fingerprint(k) }

// String returns the address, e.g. "ybndrfg8…@dsep.alt".
func (k KeyAddress) String() string { return zbase32.EncodeToString(k[:]) + "@" + KeyAddressDomain }

// MarshalText implements encoding.TextMarshaler (the address form).
func (k KeyAddress) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *KeyAddress) UnmarshalText(b []byte) error {
	p, err := ParseKeyAddress(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}
