package address

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// RevocationReason is why a key was revoked. The numbers are OpenPGP's
// reason-for-revocation codes (RFC 9580 §5.2.3.31).
type RevocationReason uint8

// The reasons DSEP distinguishes. Compromised is a hard revocation: nothing
// signed by the key is trusted, whatever its date. Retired and Superseded
// are soft: the key stops being valid from when this node first saw the
// revocation. Superseded is written only by rotation and names the successor.
const (
	ReasonUnspecified RevocationReason = 0
	ReasonSuperseded  RevocationReason = 1
	ReasonCompromised RevocationReason = 2
	ReasonRetired     RevocationReason = 3
)

// SuccessorNotation is the name of the signed notation in a superseded
// revocation that carries the successor's fingerprint (40 hex digits).
const SuccessorNotation = "successor@dsep.alt"

// ParseRevocationReason parses "compromised", "retired" or "superseded".
func ParseRevocationReason(s string) (RevocationReason, error) {
	switch s {
	case "compromised":
		return ReasonCompromised, nil
	case "retired":
		return ReasonRetired, nil
	case "superseded":
		return ReasonSuperseded, nil
	}
	return 0, fmt.Errorf("address: unknown revocation reason %q (want compromised, retired or superseded)", s)
}

func (r RevocationReason) String() string {
	switch r {
	case ReasonSuperseded:
		return "superseded"
	case ReasonCompromised:
		return "compromised"
	case ReasonRetired:
		return "retired"
	}
	return fmt.Sprintf("unspecified(%d)", uint8(r))
}

// Revocation is a verified revocation of a key's primary.
type Revocation struct {
	Key       Fingerprint
	Reason    RevocationReason
	Successor *Fingerprint // set only for a superseded revocation naming one
	Text      string       // the human-readable reason the signer wrote
	Signed    time.Time    // the date the signer wrote: informative only
	sig       *packet.Signature
}

// Hard reports whether the revocation is hard. OpenPGP treats a revocation
// without a reason, or with a reason it does not know, as hard; so do we.
func (r *Revocation) Hard() bool {
	return r.Reason != ReasonRetired && r.Reason != ReasonSuperseded
}

// Kind returns "compromised", "retired" or "superseded" (a revocation with
// no or an unknown reason is "compromised"; a superseded one without a
// successor is "retired").
func (r *Revocation) Kind() string {
	switch {
	case r.Hard():
		return "compromised"
	case r.Reason == ReasonSuperseded && r.Successor != nil:
		return "superseded"
	}
	return "retired"
}

// Severity orders revocations for selection: compromised > superseded >
// retired.
func (r *Revocation) Severity() int {
	switch r.Kind() {
	case "compromised":
		return 3
	case "superseded":
		return 2
	}
	return 1
}

// ValidAt reports whether a signature made at t by the revoked key is
// still to be trusted, given when this node first saw the revocation.
// Soft revocations are judged by first-seen time, never by the date the
// signer wrote (which an attacker holding the key could back- or
// forward-date); hard revocations invalidate everything.
func (r *Revocation) ValidAt(t, firstSeen time.Time) bool {
	if r.Hard() {
		return false
	}
	return t.Before(firstSeen)
}

// Bytes returns the revocation signature packet (what /dsep-rev/ carries).
// It is nil for a Revocation not made by Revoke, Rotate or ParseRevocation.
func (r *Revocation) Bytes() []byte {
	if r.sig == nil {
		return nil
	}
	var b bytes.Buffer
	if err := r.sig.Serialize(&b); err != nil {
		panic("address: serialize revocation: " + err.Error())
	}
	return b.Bytes()
}

// maxRevocationBytes bounds a serialized revocation signature.
const maxRevocationBytes = 4096

// ParseRevocation parses and verifies a key revocation signature packet
// against the revoked key's primary. Its creation date is not checked
// against any clock: callers judge it by first-seen time.
func ParseRevocation(key *Key, data []byte) (r *Revocation, err error) {
	if len(data) > maxRevocationBytes {
		return nil, fmt.Errorf("%w: revocation over %d bytes", ErrTooLarge, maxRevocationBytes)
	}
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("address: malformed revocation: %v", p)
		}
	}()
	cr := &countingReader{r: bytes.NewReader(data)}
	p, err := packet.Read(cr)
	if err != nil {
		return nil, fmt.Errorf("address: malformed revocation: %w", err)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, errors.New("address: revocation is not a signature packet")
	}
	if cr.n != len(data) {
		return nil, errors.New("address: trailing data after revocation")
	}
	return verifyRevocation(key, sig)
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func verifyRevocation(key *Key, sig *packet.Signature) (*Revocation, error) {
	if sig.SigType != packet.SigTypeKeyRevocation {
		return nil, fmt.Errorf("address: signature type %#x is not a key revocation", uint8(sig.SigType))
	}
	if err := key.e.PrimaryKey.VerifyRevocationSignature(sig); err != nil {
		return nil, fmt.Errorf("address: revocation signature of %s does not verify: %w", key.fpr, err)
	}
	r := &Revocation{Key: key.fpr, Signed: sig.CreationTime, Text: sig.RevocationReasonText, sig: sig}
	if sig.RevocationReason != nil {
		r.Reason = RevocationReason(*sig.RevocationReason)
	}
	for _, n := range sig.Notations {
		if n.Name != SuccessorNotation || r.Reason != ReasonSuperseded {
			continue
		}
		f, err := ParseFingerprint(string(n.Value))
		if err != nil {
			return nil, fmt.Errorf("address: superseded revocation names a bad successor: %w", err)
		}
		if r.Successor != nil && *r.Successor != f {
			return nil, errors.New("address: superseded revocation names two successors")
		}
		r.Successor = &f
	}
	return r, nil
}

// Revocations returns the verified revocations carried by key, strongest
// first. Invalid revocation signatures are ignored.
func (k *Key) Revocations() []*Revocation {
	var out []*Revocation
	for _, vs := range k.e.Revocations {
		if r, err := verifyRevocation(k, vs.Packet); err == nil {
			out = append(out, r)
		}
	}
	sortRevocations(out)
	return out
}

// Revocation returns the strongest revocation key carries, or nil.
func (k *Key) Revocation() *Revocation {
	if rs := k.Revocations(); len(rs) > 0 {
		return rs[0]
	}
	return nil
}

func sortRevocations(rs []*Revocation) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Severity() > rs[j-1].Severity(); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// Revoke adds a revocation to k, whose primary private key must be
// unlocked, and returns it. reason must be ReasonCompromised or
// ReasonRetired: a superseded revocation is written only by Rotate, which
// names the successor.
func Revoke(k *Key, reason RevocationReason, text string, now time.Time) (*Revocation, error) {
	if reason != ReasonCompromised && reason != ReasonRetired {
		return nil, errors.New("address: only rotation writes a superseded revocation; use compromised or retired")
	}
	return revoke(k, reason, text, nil, now)
}

func revoke(k *Key, reason RevocationReason, text string, successor *Fingerprint, now time.Time) (*Revocation, error) {
	if k.e.PrivateKey == nil || k.e.PrivateKey.Encrypted {
		return nil, errors.New("address: revoking needs the unlocked primary key")
	}
	cfg := pgpConfig(now.Truncate(time.Second), nil)
	if successor != nil {
		cfg.SignatureNotations = []*packet.Notation{{
			Name:            SuccessorNotation,
			Value:           []byte(successor.String()),
			IsHumanReadable: true,
		}}
	}
	if err := k.e.Revoke(packet.ReasonForRevocation(reason), text, cfg); err != nil {
		return nil, fmt.Errorf("address: revoking: %w", err)
	}
	return verifyRevocation(k, k.e.Revocations[len(k.e.Revocations)-1].Packet)
}

// AddRevocation attaches a verified revocation of k to k (in place), as
// when a revocation from the DHT or a file is taken in.
func (k *Key) AddRevocation(r *Revocation) error {
	if r.Key != k.fpr {
		return fmt.Errorf("address: revocation is for %s, not %s", r.Key, k.fpr)
	}
	for _, vs := range k.e.Revocations {
		if sameSig(vs.Packet, r.sig) {
			return nil
		}
	}
	k.e.Revocations = append(k.e.Revocations, packet.NewVerifiableSig(r.sig))
	return nil
}

// WithoutRevocations returns a public copy of k without its key
// revocations (for stores that keep revocations apart, judged by
// first-seen time).
func (k *Key) WithoutRevocations() *Key {
	c := k.PublicOnly()
	c.e.Revocations = nil
	return c
}

func mergeRevocations(dst, src *Key) {
	for _, r := range src.Revocations() {
		_ = dst.AddRevocation(r)
	}
}
