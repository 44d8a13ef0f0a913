// Package receipt implements DSEP end-to-end delivery receipts
// (docs/protocol.md §11.4): after a receiving node has decrypted and
// verified a message (§11.2), it tells the sender, in a statement signed
// by the recipient identity's signing subkey, that the message with this
// ID reached the recipient's mailbox (or was refused, and why).
//
// A receipt is a protobuf-encoded body
//
//	1: version    (varint)  1
//	2: message_id (bytes)   32: SHA-256 of the payload (§11.1)
//	3: recipient  (bytes)   20: the recipient's primary fingerprint
//	4: sender     (bytes)   20: the sender's primary fingerprint
//	5: received   (varint)  Unix seconds
//	6: status     (varint)  1 delivered, 2 rejected
//	7: reason     (bytes)   with status 2 only: 1–64 bytes of [a-z0-9-]
//
// and an OpenPGP binary-document signature (SHA-256, written canonically:
// see Verify) by the recipient's signing subkey over
// "dsep-receipt-v1" ‖ 0x00 ‖ body, both carried in
//
//	1: body      (bytes)  the body exactly as signed
//	2: signature (bytes)  one OpenPGP v4 signature packet
//
// Encodings are canonical (fields in order, each once, minimal varints,
// nothing else), so a receipt has exactly one encoding, and small: at
// most MaxSize bytes in all. Parse decodes and checks the form only;
// Verify checks the signature against the recipient's key.
package receipt

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/node/envelope"
)

// Limits and constants of the format.
const (
	// Version is the body format version this package writes and reads.
	Version = 1
	// MaxSize bounds a whole receipt (body, signature and framing).
	MaxSize = 2048
	// MaxReason bounds the reason code of a rejection.
	MaxReason = 64
	// MaxSignature bounds the signature packet.
	MaxSignature = 1024
	// MaxClockSkew is how far in the future a receipt may be dated.
	MaxClockSkew = address.MaxClockSkew
	// maxUnix bounds the received time (about the year 36812), so that it
	// converts to a time.Time and back.
	maxUnix = 1 << 40
	// signingContext starts the bytes a receipt signature covers; it
	// separates receipts from every other use of the signing subkey.
	signingContext = "dsep-receipt-v1\x00"
)

// Errors. Each is wrapped with detail; test with errors.Is.
var (
	ErrTooLarge       = errors.New("receipt: receipt exceeds its size limit")
	ErrMalformed      = errors.New("receipt: malformed receipt")
	ErrVersion        = errors.New("receipt: unsupported receipt version")
	ErrBadSignature   = errors.New("receipt: receipt signature does not verify")
	ErrWrongRecipient = errors.New("receipt: receipt names another recipient")
	ErrFuture         = errors.New("receipt: receipt is dated in the future")
)

// Status is what became of the message.
type Status uint8

// The statuses.
const (
	// StatusDelivered: the message decrypted, verified, and is in the
	// recipient's mailbox.
	StatusDelivered Status = 1
	// StatusRejected: the message decrypted and verified, but the recipient's
	// node refused it; Reason says why.
	StatusRejected Status = 2
)

// String returns "delivered", "rejected" or "status(N)".
func (s Status) String() string {
	switch s {
	case StatusDelivered:
		return "delivered"
	case StatusRejected:
		return "rejected"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Reason codes a node may give with StatusRejected (others are allowed: a
// sender shows an unknown code as it is).
const (
	ReasonRevokedSender = "revoked-sender" // the sender's key is revoked
	ReasonBlocked       = "blocked"        // the recipient blocked the sender
	ReasonKeyConflict   = "key-conflict"   // the sender's key conflicts with the pinned one (address book)
	ReasonMailboxFull   = "mailbox-full"   // no room in the mailbox
	ReasonPolicy        = "policy"         // any other local policy
)

// Receipt is what a receipt says.
type Receipt struct {
	MessageID envelope.ID         // SHA-256 of the payload
	Recipient address.Fingerprint // the recipient's primary fingerprint (the signer)
	Sender    address.Fingerprint // the sender's primary fingerprint
	Received  time.Time           // when the recipient's node got it; whole seconds
	Status    Status
	Reason    string // with StatusRejected only: 1–MaxReason bytes of a-z, 0-9 and '-'
}

// check validates r against the format's rules.
func (r Receipt) check() error {
	switch r.Status {
	case StatusDelivered:
		if r.Reason != "" {
			return fmt.Errorf("%w: a delivered receipt carries a reason", ErrMalformed)
		}
	case StatusRejected:
		if err := checkReason(r.Reason); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown status %d", ErrMalformed, r.Status)
	}
	if u := r.Received.Unix(); u < 1 || u > maxUnix {
		return fmt.Errorf("%w: received time %s out of range", ErrMalformed, r.Received.UTC().Format(time.RFC3339))
	}
	if r.Recipient.IsZero() || r.Sender.IsZero() {
		return fmt.Errorf("%w: no recipient or sender fingerprint", ErrMalformed)
	}
	return nil
}

func checkReason(s string) error {
	if len(s) == 0 || len(s) > MaxReason {
		return fmt.Errorf("%w: reason of %d bytes (1..%d allowed)", ErrMalformed, len(s), MaxReason)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: reason %.70q has a byte outside a-z, 0-9 and '-'", ErrMalformed, s)
		}
	}
	return nil
}

// Marshal returns the canonical body of r (Received truncated to the
// second), or an error if r breaks a rule of the format.
func (r Receipt) Marshal() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return r.appendBody(make([]byte, 0, 128)), nil
}

func (r Receipt) appendBody(b []byte) []byte {
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, Version)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, r.MessageID[:])
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, r.Recipient[:])
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendBytes(b, r.Sender[:])
	b = protowire.AppendTag(b, 5, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.Received.Unix()))
	b = protowire.AppendTag(b, 6, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.Status))
	if r.Status == StatusRejected {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, []byte(r.Reason))
	}
	return b
}

// Sign returns the wire form of r signed by k, the recipient's own key
// (with its unlocked signing subkey). A zero Recipient is k's
// fingerprint, a zero Received is now; any other Recipient than k's is an
// error.
func (r Receipt) Sign(k *address.Key, now time.Time) ([]byte, error) {
	if k == nil || !k.HasSecret() {
		return nil, errors.New("receipt: signing needs the recipient's own key with its secret part")
	}
	if r.Recipient.IsZero() {
		r.Recipient = k.Fingerprint()
	}
	if r.Recipient != k.Fingerprint() {
		return nil, fmt.Errorf("%w: the receipt names %s, the signing key is %s", ErrWrongRecipient, r.Recipient, k.Fingerprint())
	}
	if r.Received.IsZero() {
		r.Received = now
	}
	r.Received = r.Received.Truncate(time.Second)
	body, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	// SignWithSigningSubkey writes the canonical form Verify requires
	// (SignDetached would add unhashed subpackets anyone can change).
	sig, err := k.SignWithSigningSubkey(SigningInput(body), now)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	s := Signed{Receipt: r, Body: body, Signature: sig}
	wire := s.Marshal()
	if len(wire) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(wire), MaxSize)
	}
	return wire, nil
}

// Signed is a receipt as received: its body exactly as signed, decoded,
// and the signature.
type Signed struct {
	Receipt   Receipt
	Body      []byte // the body's bytes exactly as signed and received
	Signature []byte // the OpenPGP signature packet
}

// Marshal returns the wire form: Body and Signature as fields 1 and 2.
func (s *Signed) Marshal() []byte {
	b := make([]byte, 0, len(s.Body)+len(s.Signature)+8)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, s.Body)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, s.Signature)
	return b
}

// Parse decodes a receipt without checking its signature (Verify does).
// Both the wire form and the body must be canonical: known fields only,
// in order, each once, minimal varints, nothing after. Errors wrap
// ErrTooLarge, ErrVersion or ErrMalformed.
func Parse(b []byte) (*Signed, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(b), MaxSize)
	}
	var f [2][]byte
	err := fields(b, "receipt", func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num > 2 || typ != protowire.BytesType {
			return fmt.Errorf("%w: receipt field %d of wire type %d", ErrMalformed, num, typ)
		}
		f[num-1] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f[0] == nil || f[1] == nil {
		return nil, fmt.Errorf("%w: receipt lacks its body or signature", ErrMalformed)
	}
	if len(f[1]) == 0 || len(f[1]) > MaxSignature {
		return nil, fmt.Errorf("%w: signature of %d bytes (1..%d allowed)", ErrMalformed, len(f[1]), MaxSignature)
	}
	s := &Signed{Body: bytes.Clone(f[0]), Signature: bytes.Clone(f[1])}
	if !bytes.Equal(s.Marshal(), b) {
		return nil, fmt.Errorf("%w: receipt is not in canonical form (non-minimal length)", ErrMalformed)
	}
	r, err := parseBody(s.Body)
	if err != nil {
		return nil, err
	}
	s.Receipt = r
	return s, nil
}

// bodyWire is each body field's wire type.
var bodyWire = [...]protowire.Type{1: protowire.VarintType, 2: protowire.BytesType, 3: protowire.BytesType,
	4: protowire.BytesType, 5: protowire.VarintType, 6: protowire.VarintType, 7: protowire.BytesType}

func parseBody(b []byte) (Receipt, error) {
	var r Receipt
	var seen [8]bool
	var version, received, status uint64
	err := fields(b, "body", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if num > 7 || typ != bodyWire[num] {
			return fmt.Errorf("%w: body field %d of wire type %d", ErrMalformed, num, typ)
		}
		seen[num] = true
		var err error
		switch num {
		case 1:
			version = x
		case 2:
			if len(v) != len(r.MessageID) {
				return fmt.Errorf("%w: message ID of %d bytes", ErrMalformed, len(v))
			}
			copy(r.MessageID[:], v)
		case 3:
			r.Recipient, err = address.FingerprintFromBytes(v)
		case 4:
			r.Sender, err = address.FingerprintFromBytes(v)
		case 5:
			received = x
		case 6:
			status = x
		case 7:
			r.Reason = string(v)
		}
		if err != nil {
			return fmt.Errorf("%w: body field %d: %v", ErrMalformed, num, err)
		}
		return nil
	})
	if err != nil {
		return Receipt{}, err
	}
	if !seen[1] {
		return Receipt{}, fmt.Errorf("%w: body has no version", ErrMalformed)
	}
	if version != Version {
		return Receipt{}, fmt.Errorf("%w %d (this node reads %d)", ErrVersion, version, Version)
	}
	for num := 2; num <= 6; num++ {
		if !seen[num] {
			return Receipt{}, fmt.Errorf("%w: body lacks field %d", ErrMalformed, num)
		}
	}
	if received > maxUnix || status > 255 {
		return Receipt{}, fmt.Errorf("%w: received time or status out of range", ErrMalformed)
	}
	r.Received = time.Unix(int64(received), 0).UTC()
	r.Status = Status(status)
	if seen[7] && r.Status != StatusRejected {
		return Receipt{}, fmt.Errorf("%w: a reason without status rejected", ErrMalformed)
	}
	if err := r.check(); err != nil {
		return Receipt{}, err
	}
	if !bytes.Equal(r.appendBody(nil), b) {
		return Receipt{}, fmt.Errorf("%w: body is not in canonical form (non-minimal varint)", ErrMalformed)
	}
	return r, nil
}

// fields walks the protobuf fields of b, refusing unknown wire types,
// field numbers out of order or repeated, and trailing garbage; each
// field's value goes to fn (v for bytes, x for varints).
func fields(b []byte, what string, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	last := protowire.Number(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, what, protowire.ParseError(n))
		}
		b = b[n:]
		if num <= last {
			return fmt.Errorf("%w: %s field %d repeated or out of order", ErrMalformed, what, num)
		}
		last = num
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			return fmt.Errorf("%w: %s field %d of wire type %d", ErrMalformed, what, num, typ)
		}
		if n < 0 {
			return fmt.Errorf("%w: %s field %d: %v", ErrMalformed, what, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// Verify checks that s is signed by recipient's signing subkey (valid at
// the signature's time, the signature not expired at now), that the
// receipt names recipient, and that it is not dated more than
// MaxClockSkew after now. The signature must be exactly one OpenPGP v4
// binary-document signature packet (type 0x00) with SHA-256, in canonical
// form — a new-format header with the shortest length, no unhashed
// subpackets, MPIs without leading zero bits, a hash tag that matches — so
// that nobody but the signer can change a bit of a valid receipt. The
// caller matches MessageID and Sender against what it sent. Errors wrap
// ErrWrongRecipient, ErrFuture or ErrBadSignature.
func (s *Signed) Verify(recipient *address.Key, now time.Time) error {
	if recipient == nil {
		return errors.New("receipt: Verify needs the recipient's key")
	}
	if s.Receipt.Recipient != recipient.Fingerprint() {
		return fmt.Errorf("%w: it names %s, not %s", ErrWrongRecipient, s.Receipt.Recipient, recipient.Fingerprint())
	}
	if s.Receipt.Received.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: received %s", ErrFuture, s.Receipt.Received.Format(time.RFC3339))
	}
	msg := SigningInput(s.Body)
	if err := address.CheckCanonicalBinary(msg, s.Signature); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	// VerifyDetached checks, under the key's lock, that a signing subkey
	// of recipient valid at the signature's time made it over msg, and
	// that the signature has not expired at now.
	if err := recipient.VerifyDetached("", msg, s.Signature, now); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// SigningInput returns the bytes a receipt signature covers:
// "dsep-receipt-v1" ‖ 0x00 ‖ body.
func SigningInput(body []byte) []byte {
	return append([]byte(signingContext), body...)
}
