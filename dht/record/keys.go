package record

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/dsep-project/dsep/address"
)

// emailSlotContext starts the hash input of an email slot.
const emailSlotContext = "dsep-email-v1"

// DHTKey returns the DHT key "/<namespace>/<name>" of a record of type t.
// name is a fingerprint's String() for key, rev and reach records and an
// EmailSlot for email records.
func DHTKey(t Type, name string) string { return "/" + t.Namespace() + "/" + name }

// KeyOf returns the DHT key of the key, rev or reach record of the
// identity f.
func KeyOf(t Type, f address.Fingerprint) string { return DHTKey(t, f.String()) }

// EmailSlot returns the name of the email record binding e under the
// domain key domain: the lower-case hex of SHA-256("dsep-email-v1" ‖ 0x00
// ‖ canonical email ‖ 0x00 ‖ the domain key's 20-byte fingerprint). A
// resolver learns the domain fingerprint from DNS first, so only a record
// certified by that key can be valid in the slot.
func EmailSlot(e address.Email, domain address.Fingerprint) string {
	h := sha256.New()
	h.Write([]byte(emailSlotContext))
	h.Write([]byte{0})
	h.Write([]byte(e.String()))
	h.Write([]byte{0})
	h.Write(domain[:])
	return hex.EncodeToString(h.Sum(nil))
}

// EmailKey returns the DHT key of the email record binding e under the
// domain key domain.
func EmailKey(e address.Email, domain address.Fingerprint) string {
	return DHTKey(EmailType, EmailSlot(e, domain))
}

// ParseDHTKey splits a DHT key "/<namespace>/<name>" into the record type
// and the name, and checks the name's form: 40 lower-case hex digits for
// key, rev and reach records, 64 for email records. An unknown namespace
// wraps ErrWrongNamespace; a name of the wrong form ErrNameMismatch.
func ParseDHTKey(key string) (Type, string, error) {
	rest, ok := strings.CutPrefix(key, "/")
	ns, name, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		return 0, "", fmt.Errorf("%w: DHT key %.80q is not /<namespace>/<name>", ErrWrongNamespace, key)
	}
	t, ok := typeOfNamespace(ns)
	if !ok {
		return 0, "", fmt.Errorf("%w: %.40q is not a DSEP namespace", ErrWrongNamespace, ns)
	}
	want := 2 * address.FingerprintSize
	if t == EmailType {
		want = 2 * sha256.Size
	}
	if len(name) != want || !isLowerHex(name) {
		return 0, "", fmt.Errorf("%w: name %.80q in /%s/ is not %d lower-case hex digits", ErrNameMismatch, name, ns, want)
	}
	return t, name, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
