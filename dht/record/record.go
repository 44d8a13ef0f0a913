package record

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/dsep-project/dsep/address"
	"google.golang.org/protobuf/encoding/protowire"
)

// Type is the record type, field 1 of the envelope. Each type has its own
// DHT namespace.
type Type uint8

// The four record types of docs/protocol.md §9.
const (
	KeyType   Type = 1 // /dsep-key/<fpr>: a public key
	RevType   Type = 2 // /dsep-rev/<fpr>: a key revocation
	ReachType Type = 3 // /dsep-reach/<fpr>: how to reach an identity
	EmailType Type = 4 // /dsep-email/<slot>: a domain's binding of an email
)

var namespaces = [...]string{KeyType: "dsep-key", RevType: "dsep-rev", ReachType: "dsep-reach", EmailType: "dsep-email"}

// sizeLimits are the per-namespace limits on a whole DHT value (§9.2).
var sizeLimits = [...]int{KeyType: 16 << 10, RevType: 8 << 10, ReachType: 16 << 10, EmailType: 16 << 10}

// Namespace returns the DHT namespace of t ("dsep-key", "dsep-rev",
// "dsep-reach", "dsep-email"), or "" for an unknown type.
func (t Type) Namespace() string {
	if t.valid() {
		return namespaces[t]
	}
	return ""
}

// MaxSize returns the size limit of a DHT value of type t (0 for an unknown
// type).
func (t Type) MaxSize() int {
	if t.valid() {
		return sizeLimits[t]
	}
	return 0
}

func (t Type) valid() bool { return t >= KeyType && t <= EmailType }

// String returns the namespace, or "type(N)" for an unknown type.
func (t Type) String() string {
	if t.valid() {
		return namespaces[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Namespaces returns the four DHT namespaces, in type order; kad-dht needs
// a validator registered for each.
func Namespaces() []string {
	return []string{namespaces[KeyType], namespaces[RevType], namespaces[ReachType], namespaces[EmailType]}
}

func typeOfNamespace(ns string) (Type, bool) {
	for t := KeyType; t <= EmailType; t++ {
		if namespaces[t] == ns {
			return t, true
		}
	}
	return 0, false
}

// Limits and defaults of records (docs/protocol.md §9.2).
const (
	// Version is the only body format version this package reads and writes.
	Version = 1
	// MaxClockSkew is how far in the future not_before may lie.
	MaxClockSkew = address.MaxClockSkew
	// MaxLifetime bounds eol − not_before.
	MaxLifetime = 30 * 24 * time.Hour
	// DefaultTTL is the lifetime builders give a record when asked for 0.
	DefaultTTL = 7 * 24 * time.Hour
	// MaxValueBytes is the largest value of any namespace.
	MaxValueBytes = 16 << 10
	// MaxSignatureBytes bounds the signature field of the envelope.
	MaxSignatureBytes = 1024
	// maxUnix bounds the times of the envelope (about the year 36812), so
	// that every one converts to a time.Time and back.
	maxUnix = 1 << 40
)

// signingContext starts the bytes a record signature covers.
const signingContext = "dsep-record-v1"

// Record is the envelope a DHT value's signature covers:
//
//	1: type (varint) 2: version (varint) 3: seq (varint)
//	4: not_before (varint, Unix seconds) 5: eol (varint, Unix seconds)
//	6: body (bytes)
//
// Times have whole seconds.
type Record struct {
	Type      Type
	Version   uint32
	Seq       uint64    // the publisher's sequence number: higher wins
	NotBefore time.Time // not valid before (the publisher's clock)
	EOL       time.Time // end of life: invalid from this instant on
	Body      []byte    // the namespace's body, see the Body types
}

func unixField(t time.Time) uint64 {
	if t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix())
}

// Marshal returns the canonical encoding of r: all six fields, in order,
// each once, even when zero. Times before 1970 are written as 0.
func (r Record) Marshal() []byte {
	b := make([]byte, 0, 32+len(r.Body))
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.Type))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.Version))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, r.Seq)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, unixField(r.NotBefore))
	b = protowire.AppendTag(b, 5, protowire.VarintType)
	b = protowire.AppendVarint(b, unixField(r.EOL))
	b = protowire.AppendTag(b, 6, protowire.BytesType)
	b = protowire.AppendBytes(b, r.Body)
	return b
}

// Unmarshal decodes a Record. The envelope is strict: it must be exactly
// what Marshal writes (all six fields, in order, each once, minimal
// varints, no other field), so that a record has one encoding. type must
// fit a byte, version 32 bits, and the times 2^40. Errors wrap
// ErrMalformed or ErrTooLarge.
func Unmarshal(b []byte) (Record, error) {
	var r Record
	if len(b) > MaxValueBytes {
		return r, fmt.Errorf("%w: record over %d bytes", ErrTooLarge, MaxValueBytes)
	}
	rest := b
	var v [6]uint64
	for num := protowire.Number(1); num <= 6; num++ {
		got, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return Record{}, fmt.Errorf("%w: record field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		if got != num {
			return Record{}, fmt.Errorf("%w: record has field %d where field %d belongs", ErrMalformed, got, num)
		}
		rest = rest[n:]
		want := protowire.VarintType
		if num == 6 {
			want = protowire.BytesType
		}
		if typ != want {
			return Record{}, fmt.Errorf("%w: record field %d has wire type %d", ErrMalformed, num, typ)
		}
		if num == 6 {
			body, n := protowire.ConsumeBytes(rest)
			if n < 0 {
				return Record{}, fmt.Errorf("%w: record body: %v", ErrMalformed, protowire.ParseError(n))
			}
			r.Body = bytes.Clone(body)
			rest = rest[n:]
			continue
		}
		x, n := protowire.ConsumeVarint(rest)
		if n < 0 {
			return Record{}, fmt.Errorf("%w: record field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		v[num-1] = x
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return Record{}, fmt.Errorf("%w: %d bytes after the record's last field", ErrMalformed, len(rest))
	}
	switch {
	case v[0] > math.MaxUint8:
		return Record{}, fmt.Errorf("%w: record type %d out of range", ErrMalformed, v[0])
	case v[1] > math.MaxUint32:
		return Record{}, fmt.Errorf("%w: record version %d out of range", ErrMalformed, v[1])
	case v[3] > maxUnix || v[4] > maxUnix:
		return Record{}, fmt.Errorf("%w: record time out of range", ErrMalformed)
	}
	r.Type = Type(v[0])
	r.Version = uint32(v[1])
	r.Seq = v[2]
	r.NotBefore = time.Unix(int64(v[3]), 0).UTC()
	r.EOL = time.Unix(int64(v[4]), 0).UTC()
	if !bytes.Equal(r.Marshal(), b) {
		return Record{}, fmt.Errorf("%w: record is not in canonical form (non-minimal varint)", ErrMalformed)
	}
	return r, nil
}

// Signed is a DHT value: a record, exactly as signed, and its signature.
//
//	1: record (bytes) 2: signature (bytes, one OpenPGP v4 signature packet)
type Signed struct {
	Raw       []byte // the record's bytes exactly as signed and received
	Record    Record // Raw decoded
	Signature []byte // the OpenPGP signature packet
}

// Marshal returns the DHT value: Raw and Signature as fields 1 and 2.
func (s *Signed) Marshal() []byte {
	b := make([]byte, 0, len(s.Raw)+len(s.Signature)+8)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, s.Raw)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, s.Signature)
	return b
}

// UnmarshalSigned decodes a DHT value and the record in it, without
// checking the signature (Verify does). Like the record, the value must be
// in canonical form: field 1 then field 2, each once, nothing else. A value
// without a signature (field 2 absent or empty) wraps ErrUnsigned; a value
// over MaxValueBytes or a signature over MaxSignatureBytes wraps
// ErrTooLarge; anything else ErrMalformed.
func UnmarshalSigned(value []byte) (*Signed, error) {
	if len(value) > MaxValueBytes {
		return nil, fmt.Errorf("%w: value of %d bytes, over %d", ErrTooLarge, len(value), MaxValueBytes)
	}
	var fields [2][]byte
	var seen [2]bool
	rest := value
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, fmt.Errorf("%w: value: %v", ErrMalformed, protowire.ParseError(n))
		}
		rest = rest[n:]
		if num < 1 || num > 2 {
			return nil, fmt.Errorf("%w: value has unknown field %d", ErrMalformed, num)
		}
		if typ != protowire.BytesType {
			return nil, fmt.Errorf("%w: value field %d has wire type %d", ErrMalformed, num, typ)
		}
		if seen[num-1] {
			return nil, fmt.Errorf("%w: value field %d repeated", ErrMalformed, num)
		}
		if num == 1 && seen[1] {
			return nil, fmt.Errorf("%w: value fields out of order", ErrMalformed)
		}
		seen[num-1] = true
		v, n := protowire.ConsumeBytes(rest)
		if n < 0 {
			return nil, fmt.Errorf("%w: value field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		fields[num-1] = v
		rest = rest[n:]
	}
	if !seen[0] {
		return nil, fmt.Errorf("%w: value has no record", ErrMalformed)
	}
	if len(fields[1]) == 0 {
		return nil, ErrUnsigned
	}
	if len(fields[1]) > MaxSignatureBytes {
		return nil, fmt.Errorf("%w: signature of %d bytes, over %d", ErrTooLarge, len(fields[1]), MaxSignatureBytes)
	}
	s := &Signed{Raw: bytes.Clone(fields[0]), Signature: bytes.Clone(fields[1])}
	if !bytes.Equal(s.Marshal(), value) {
		return nil, fmt.Errorf("%w: value is not in canonical form (non-minimal varint)", ErrMalformed)
	}
	r, err := Unmarshal(s.Raw)
	if err != nil {
		return nil, err
	}
	s.Record = r
	return s, nil
}

// SigningInput returns the bytes a record signature covers:
// "dsep-record-v1" ‖ 0x00 ‖ namespace ‖ 0x00 ‖ record, where record is
// the record's exact bytes (field 1 of the value).
func SigningInput(t Type, record []byte) []byte {
	ns := t.Namespace()
	b := make([]byte, 0, len(signingContext)+len(ns)+2+len(record))
	b = append(b, signingContext...)
	b = append(b, 0)
	b = append(b, ns...)
	b = append(b, 0)
	return append(b, record...)
}
