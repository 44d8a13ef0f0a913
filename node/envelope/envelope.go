// Package envelope implements the DSEP envelope (docs/protocol.md §11.1):
// what a sender writes on a /dsep/deliver/1.0.0 stream — a version, the
// proof of payment (a hashcash stamp or a waiver proof) and the payload
// (one OpenPGP message), with its length up front so a receiver can refuse
// an oversized envelope before reading its body.
//
// The header is small and read whole; the payload is streamed, never held
// twice in memory, and hashed as it is read: its SHA-256 is the message ID.
package envelope

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Version is the envelope format version this package writes and reads.
const Version = 1

// Kind says how the envelope pays.
type Kind uint8

// The kinds of proof.
const (
	KindStamp  Kind = 1 // a hashcash stamp (ASCII)
	KindWaiver Kind = 2 // a waiver proof (48 bytes)
)

// Limits.
const (
	// MaxProof bounds the proof field (a stamp is at most 512 bytes).
	MaxProof = 512
	// DefaultMaxPayload is the default payload limit, 25 MiB.
	DefaultMaxPayload = 25 << 20
	// headerFixed is version, kind, proof length.
	headerFixed = 1 + 1 + 2
)

// Errors of ReadHeader.
var (
	ErrMalformed = errors.New("envelope: malformed envelope")
	ErrVersion   = errors.New("envelope: unsupported envelope version")
	ErrTooLarge  = errors.New("envelope: payload exceeds the size limit")
)

// ID is a message ID: the SHA-256 of the payload bytes, so nobody can
// claim an ID for other content.
type ID [32]byte

// String is the lower-case hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText is the hex form (JSON and other text encodings).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the hex form.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseID parses the hex form.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 64 {
		return id, fmt.Errorf("envelope: message ID %q is not 64 hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("envelope: message ID %q is not 64 hex digits", s)
	}
	return id, nil
}

// IDOf returns the message ID of payload.
func IDOf(payload []byte) ID { return sha256.Sum256(payload) }

// Header is an envelope without its payload.
type Header struct {
	Version    uint8
	Kind       Kind
	Proof      []byte
	PayloadLen uint64
}

// WriteHeader writes the header for a payload of n bytes.
func WriteHeader(w io.Writer, kind Kind, proof []byte, n uint64) error {
	if kind != KindStamp && kind != KindWaiver {
		return fmt.Errorf("envelope: unknown kind %d", kind)
	}
	if len(proof) == 0 || len(proof) > MaxProof {
		return fmt.Errorf("envelope: proof of %d bytes (1..%d allowed)", len(proof), MaxProof)
	}
	b := make([]byte, 0, headerFixed+len(proof)+8)
	b = append(b, Version, byte(kind))
	b = binary.BigEndian.AppendUint16(b, uint16(len(proof)))
	b = append(b, proof...)
	b = binary.BigEndian.AppendUint64(b, n)
	_, err := w.Write(b)
	return err
}

// ReadHeader reads a header, refusing a payload over maxPayload (0:
// DefaultMaxPayload) before any of it is read.
func ReadHeader(r io.Reader, maxPayload uint64) (Header, error) {
	if maxPayload == 0 {
		maxPayload = DefaultMaxPayload
	}
	var h Header
	var fixed [headerFixed]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return h, fmt.Errorf("%w: short header: %v", ErrMalformed, err)
	}
	h.Version, h.Kind = fixed[0], Kind(fixed[1])
	if h.Version != Version {
		return h, fmt.Errorf("%w %d (this node speaks %d)", ErrVersion, h.Version, Version)
	}
	if h.Kind != KindStamp && h.Kind != KindWaiver {
		return h, fmt.Errorf("%w: unknown kind %d", ErrMalformed, h.Kind)
	}
	n := binary.BigEndian.Uint16(fixed[2:])
	if n == 0 || n > MaxProof {
		return h, fmt.Errorf("%w: proof of %d bytes", ErrMalformed, n)
	}
	h.Proof = make([]byte, n)
	if _, err := io.ReadFull(r, h.Proof); err != nil {
		return h, fmt.Errorf("%w: short proof: %v", ErrMalformed, err)
	}
	var l [8]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return h, fmt.Errorf("%w: short length: %v", ErrMalformed, err)
	}
	h.PayloadLen = binary.BigEndian.Uint64(l[:])
	if h.PayloadLen == 0 {
		return h, fmt.Errorf("%w: empty payload", ErrMalformed)
	}
	if h.PayloadLen > maxPayload {
		return h, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, h.PayloadLen, maxPayload)
	}
	return h, nil
}

// Payload streams exactly h.PayloadLen bytes of r into w and returns the
// message ID computed on the way. A stream that ends early is an error.
func Payload(r io.Reader, h Header, w io.Writer) (ID, error) {
	var id ID
	d := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, d), io.LimitReader(r, int64(h.PayloadLen)))
	if err != nil {
		return id, err
	}
	if uint64(n) != h.PayloadLen {
		return id, fmt.Errorf("%w: payload ended after %d of %d bytes", ErrMalformed, n, h.PayloadLen)
	}
	copy(id[:], d.Sum(nil))
	return id, nil
}
