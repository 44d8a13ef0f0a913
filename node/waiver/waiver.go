// Package waiver implements DSEP stamp waivers (docs/protocol.md §10): a
// recipient lets a contact or a mailing list send without a hashcash
// stamp by giving it a waiver token; the sender proves, per message, that
// it holds the token with a MAC over the payload digest.
//
// Threat model. A token is a capability: whoever holds it may skip the
// stamp until the recipient revokes it or it expires, so it is given over
// an end-to-end encrypted channel and stored like a secret. The proof in
// an envelope names the token by an opaque ID and carries
// HMAC-SHA256(key, "dsep-waiver-v1" ‖ 0x00 ‖ recipient fingerprint ‖
// payload digest): a mailbox server or relay that sees envelopes learns
// proofs for those payloads only and cannot reuse one for other content;
// replaying the same envelope yields the same message ID, which the
// receiver deduplicates. The receiver checks the proof before any
// decryption, in constant time. Revoking a token (deleting its key) stops
// it at once; the ID says which contact leaked or abused it.
package waiver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dsep-project/dsep/address"
)

// Sizes of the parts of a token and a proof.
const (
	IDSize  = 16
	KeySize = 32
	MACSize = 32
	// ProofSize is the size of an encoded proof: ID ‖ MAC.
	ProofSize = IDSize + MACSize
)

// macContext separates waiver MACs from every other use of the key.
const macContext = "dsep-waiver-v1\x00"

// tokenPrefix starts the text form of a token.
const tokenPrefix = "dsep-waiver-1:"

// Errors of Verify and the parsers.
var (
	ErrMalformed = errors.New("waiver: malformed proof or token")
	ErrUnknown   = errors.New("waiver: unknown or revoked waiver")
	ErrExpired   = errors.New("waiver: waiver has expired")
	ErrBadMAC    = errors.New("waiver: proof does not match the message")
)

// Token is what the recipient gives a contact: the ID, the key, whom it
// is for (the recipient) and until when.
type Token struct {
	ID        [IDSize]byte
	Key       [KeySize]byte
	Recipient address.Fingerprint
	NotAfter  time.Time // zero: no expiry
}

// New makes a fresh token for recipient, valid until notAfter (zero: no
// expiry; kept to the second, in UTC).
func New(recipient address.Fingerprint, notAfter time.Time) (Token, error) {
	t := Token{Recipient: recipient}
	if !notAfter.IsZero() {
		t.NotAfter = time.Unix(notAfter.Unix(), 0).UTC() // seconds, as encoded
	}
	if _, err := rand.Read(t.ID[:]); err != nil {
		return t, err
	}
	if _, err := rand.Read(t.Key[:]); err != nil {
		return t, err
	}
	return t, nil
}

// String encodes the token as text for handing over:
// dsep-waiver-1:<recipient hex>:<not-after Unix seconds or 0>:<base64url(ID ‖ key)>.
// It is a secret.
func (t Token) String() string {
	var na int64
	if !t.NotAfter.IsZero() {
		na = t.NotAfter.Unix()
	}
	raw := append(append([]byte(nil), t.ID[:]...), t.Key[:]...)
	return fmt.Sprintf("%s%s:%d:%s", tokenPrefix, t.Recipient, na, base64.RawURLEncoding.EncodeToString(raw))
}

// ParseToken parses the text form.
func ParseToken(s string) (Token, error) {
	var t Token
	if len(s) > 256 || !strings.HasPrefix(s, tokenPrefix) {
		return t, ErrMalformed
	}
	parts := strings.Split(strings.TrimPrefix(s, tokenPrefix), ":")
	if len(parts) != 3 {
		return t, ErrMalformed
	}
	f, err := address.ParseFingerprint(parts[0])
	if err != nil || strings.ContainsRune(parts[0], ' ') {
		return t, ErrMalformed
	}
	var na int64
	if _, err := fmt.Sscanf(parts[1], "%d", &na); err != nil || na < 0 || fmt.Sprint(na) != parts[1] {
		return t, ErrMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != IDSize+KeySize {
		return t, ErrMalformed
	}
	t.Recipient = f
	if na != 0 {
		t.NotAfter = time.Unix(na, 0).UTC()
	}
	copy(t.ID[:], raw[:IDSize])
	copy(t.Key[:], raw[IDSize:])
	return t, nil
}

func mac(key [KeySize]byte, recipient address.Fingerprint, digest [32]byte) [MACSize]byte {
	h := hmac.New(sha256.New, key[:])
	h.Write([]byte(macContext))
	h.Write(recipient[:])
	h.Write(digest[:])
	var out [MACSize]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Prove returns the proof for a payload with SHA-256 digest: ID ‖ MAC.
func (t Token) Prove(digest [32]byte) []byte {
	m := mac(t.Key, t.Recipient, digest)
	return append(append(make([]byte, 0, ProofSize), t.ID[:]...), m[:]...)
}

// Lookup finds the key of a waiver the recipient granted, by ID. ok is
// false for an unknown or revoked waiver.
type Lookup func(id [IDSize]byte) (key [KeySize]byte, notAfter time.Time, ok bool)

// Verify checks proof for the payload digest addressed to recipient,
// before any decryption: the ID must name a live waiver and the MAC must
// match (compared in constant time). It returns the waiver's ID, so the
// caller can account use to the contact it was given to.
func Verify(proof []byte, recipient address.Fingerprint, digest [32]byte, now time.Time, lookup Lookup) ([IDSize]byte, error) {
	var id [IDSize]byte
	if len(proof) != ProofSize {
		return id, ErrMalformed
	}
	copy(id[:], proof[:IDSize])
	key, notAfter, ok := lookup(id)
	if !ok {
		return id, ErrUnknown
	}
	if !notAfter.IsZero() && !now.Before(notAfter) {
		return id, ErrExpired
	}
	want := mac(key, recipient, digest)
	if !hmac.Equal(want[:], proof[IDSize:]) {
		return id, ErrBadMAC
	}
	return id, nil
}
