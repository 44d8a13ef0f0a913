package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"google.golang.org/protobuf/encoding/protowire"
)

// Stored records are protobuf wire format written and read by hand with
// protowire (no generated code): fields are numbered below and never
// reused; a reader skips fields it does not know. The decoders refuse
// oversized records and malformed fields with ErrDamaged.

// Limits of stored records.
const (
	// MaxMetaSize bounds one message's encoded metadata (its To and Cc
	// lists included). Metadata of ValueThreshold or more lives in the
	// value log (and is erased, not deleted). Deliver refuses a Meta that
	// encodes larger: clip huge recipient lists before delivering.
	MaxMetaSize = 48 << 10
	// MaxFlags and MaxFlagLen bound a message's flags.
	MaxFlags   = 64
	MaxFlagLen = 128
	// MaxBodySize bounds a stored body.
	MaxBodySize = 64 << 20
	// MaxReasonLen bounds a tombstone's reason (longer ones are cut).
	MaxReasonLen = 1024
	// maxPeerLen bounds the sending peer's ID kept in the spool.
	maxPeerLen = 256

	maxPendingSize   = 2048
	maxFolderSize    = 128
	maxTombstoneSize = 2048
	maxOffset        = 24 * 3600
	// Unix times of 0001-01-01 and 9999-12-31T23:59:59Z: the range a
	// stored time may take.
	minUnix = -62135596800
	maxUnix = 253402300799
)

// Field numbers of Meta.
const (
	fmID           = 1
	fmFrom         = 2
	fmTo           = 3
	fmCc           = 4
	fmSubject      = 5
	fmDateUnix     = 6
	fmDateNanos    = 7
	fmDateOffset   = 8
	fmMessageID    = 9
	fmRecvUnix     = 10
	fmRecvNanos    = 11
	fmSize         = 12
	fmFlags        = 13
	fmVerStatus    = 14
	fmVerSigner    = 15
	fmVerDetail    = 16
	fmDirection    = 17
	fmRecvPresence = 18 // 1 when Received is set (Unix 0 is a valid time)
	fmDatePresence = 19 // 1 when Date is set
	fmSender       = 20
	fmReplyTo      = 21
	fmBcc          = 22
	fmInReplyTo    = 23
	fmCopyOf       = 24
)

// encodeMeta encodes m without its Folder and UID (the key holds them).
func encodeMeta(m *Meta) []byte {
	b := make([]byte, 0, 256)
	b = appendBytes(b, fmID, m.ID[:])
	b = appendString(b, fmFrom, m.From)
	for _, a := range m.To {
		b = appendBytesAlways(b, fmTo, []byte(a))
	}
	for _, a := range m.Cc {
		b = appendBytesAlways(b, fmCc, []byte(a))
	}
	b = appendString(b, fmSubject, m.Subject)
	if !m.Date.IsZero() {
		_, off := m.Date.Zone()
		b = appendVarint(b, fmDatePresence, 1)
		b = appendVarint(b, fmDateUnix, protowire.EncodeZigZag(m.Date.Unix()))
		b = appendVarint(b, fmDateNanos, uint64(m.Date.Nanosecond()))
		b = appendVarint(b, fmDateOffset, protowire.EncodeZigZag(int64(off)))
	}
	b = appendString(b, fmMessageID, m.MessageID)
	if !m.Received.IsZero() {
		b = appendVarint(b, fmRecvPresence, 1)
		b = appendVarint(b, fmRecvUnix, protowire.EncodeZigZag(m.Received.Unix()))
		b = appendVarint(b, fmRecvNanos, uint64(m.Received.Nanosecond()))
	}
	b = appendVarint(b, fmSize, uint64(m.Size))
	for _, f := range m.Flags {
		b = appendBytesAlways(b, fmFlags, []byte(f))
	}
	b = appendString(b, fmVerStatus, m.Verification.Status)
	b = appendString(b, fmVerSigner, m.Verification.Signer)
	b = appendString(b, fmVerDetail, m.Verification.Detail)
	b = appendString(b, fmDirection, m.Direction)
	b = appendString(b, fmSender, m.Sender)
	for _, a := range m.ReplyTo {
		b = appendBytesAlways(b, fmReplyTo, []byte(a))
	}
	for _, a := range m.Bcc {
		b = appendBytesAlways(b, fmBcc, []byte(a))
	}
	for _, id := range m.InReplyTo {
		b = appendBytesAlways(b, fmInReplyTo, []byte(id))
	}
	if m.CopyOf != (envelope.ID{}) {
		b = appendBytes(b, fmCopyOf, m.CopyOf[:])
	}
	return b
}

// decodeMeta decodes a stored Meta (Folder and UID are left empty).
func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > MaxMetaSize {
		return m, fmt.Errorf("%w: metadata of %d bytes (limit %d)", ErrDamaged, len(b), MaxMetaSize)
	}
	var hasID, hasDate, hasRecv bool
	var dateUnix, dateOff, recvUnix int64
	var dateNanos, recvNanos uint64
	err := decodeFields(b, func(num protowire.Number, typ protowire.Type, v uint64, s []byte) error {
		switch num {
		case fmID:
			if typ != protowire.BytesType || len(s) != len(m.ID) {
				return errors.New("bad message ID")
			}
			copy(m.ID[:], s)
			hasID = true
		case fmFrom:
			return str(typ, s, &m.From)
		case fmTo:
			return appendStr(typ, s, &m.To)
		case fmCc:
			return appendStr(typ, s, &m.Cc)
		case fmSubject:
			return str(typ, s, &m.Subject)
		case fmDatePresence:
			return presence(typ, v, &hasDate)
		case fmDateUnix:
			return zigzag(typ, v, &dateUnix)
		case fmDateNanos:
			return varint(typ, v, &dateNanos)
		case fmDateOffset:
			return zigzag(typ, v, &dateOff)
		case fmMessageID:
			return str(typ, s, &m.MessageID)
		case fmRecvPresence:
			return presence(typ, v, &hasRecv)
		case fmRecvUnix:
			return zigzag(typ, v, &recvUnix)
		case fmRecvNanos:
			return varint(typ, v, &recvNanos)
		case fmSize:
			var n uint64
			if err := varint(typ, v, &n); err != nil {
				return err
			}
			if n > 1<<62 {
				return errors.New("bad size")
			}
			m.Size = int64(n)
		case fmFlags:
			if len(m.Flags) == MaxFlags {
				return errors.New("too many flags")
			}
			return appendStr(typ, s, &m.Flags)
		case fmVerStatus:
			return str(typ, s, &m.Verification.Status)
		case fmVerSigner:
			return str(typ, s, &m.Verification.Signer)
		case fmVerDetail:
			return str(typ, s, &m.Verification.Detail)
		case fmDirection:
			return str(typ, s, &m.Direction)
		case fmSender:
			return str(typ, s, &m.Sender)
		case fmReplyTo:
			return appendStr(typ, s, &m.ReplyTo)
		case fmBcc:
			return appendStr(typ, s, &m.Bcc)
		case fmInReplyTo:
			return appendStr(typ, s, &m.InReplyTo)
		case fmCopyOf:
			if typ != protowire.BytesType || len(s) != len(m.CopyOf) {
				return errors.New("bad copy-of ID")
			}
			copy(m.CopyOf[:], s)
		}
		return nil
	})
	if err == nil && !hasID {
		err = errors.New("no message ID")
	}
	if err == nil && hasDate {
		m.Date, err = makeTime(dateUnix, dateNanos, dateOff)
	}
	if err == nil && hasRecv {
		m.Received, err = makeTime(recvUnix, recvNanos, 0)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("%w: metadata: %v", ErrDamaged, err)
	}
	return m, nil
}

// makeTime rebuilds a stored time: in UTC, or at a fixed offset.
func makeTime(sec int64, nsec uint64, off int64) (time.Time, error) {
	if sec < minUnix || sec > maxUnix || nsec >= 1e9 || off < -maxOffset || off > maxOffset {
		return time.Time{}, errors.New("time out of range")
	}
	t := time.Unix(sec, int64(nsec)).UTC()
	if t.IsZero() {
		return time.Time{}, nil
	}
	if off != 0 {
		t = t.In(time.FixedZone("", int(off)))
	}
	return t, nil
}

// checkTime reports whether t can be stored.
func checkTime(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	_, off := t.Zone()
	return t.Unix() >= minUnix && t.Unix() <= maxUnix && off >= -maxOffset && off <= maxOffset
}

// pending is the spool's marker of an envelope not yet processed.
type pending struct {
	Kind     uint8
	Proof    []byte
	FromPeer string
	Received time.Time
}

const (
	fpKind     = 1
	fpProof    = 2
	fpFromPeer = 3
	fpRecvUnix = 4
	fpRecvNano = 5
)

func encodePending(p *pending) []byte {
	b := appendVarint(nil, fpKind, uint64(p.Kind))
	b = appendBytes(b, fpProof, p.Proof)
	b = appendString(b, fpFromPeer, p.FromPeer)
	b = appendVarint(b, fpRecvUnix, protowire.EncodeZigZag(p.Received.Unix()))
	b = appendVarint(b, fpRecvNano, uint64(p.Received.Nanosecond()))
	return b
}

func decodePending(b []byte) (pending, error) {
	var p pending
	if len(b) > maxPendingSize {
		return p, fmt.Errorf("%w: spool record of %d bytes", ErrDamaged, len(b))
	}
	var kind, nsec uint64
	var sec int64
	err := decodeFields(b, func(num protowire.Number, typ protowire.Type, v uint64, s []byte) error {
		switch num {
		case fpKind:
			return varint(typ, v, &kind)
		case fpProof:
			if typ != protowire.BytesType || len(s) > envelope.MaxProof {
				return errors.New("bad proof")
			}
			p.Proof = append([]byte(nil), s...)
		case fpFromPeer:
			if len(s) > maxPeerLen {
				return errors.New("peer ID too long")
			}
			return str(typ, s, &p.FromPeer)
		case fpRecvUnix:
			return zigzag(typ, v, &sec)
		case fpRecvNano:
			return varint(typ, v, &nsec)
		}
		return nil
	})
	if err == nil && kind > 255 {
		err = errors.New("bad kind")
	}
	if err == nil {
		p.Kind = uint8(kind)
		p.Received, err = makeTime(sec, nsec, 0)
	}
	if err != nil {
		return pending{}, fmt.Errorf("%w: spool record: %v", ErrDamaged, err)
	}
	return p, nil
}

// folder is a folder's stored state (u/<name>).
type folder struct {
	Num         uint32 // internal number: the key prefix of its messages
	UIDValidity uint32
	UIDNext     uint32
	Messages    uint32
	Unseen      uint32
}

const (
	ffNum         = 1
	ffUIDValidity = 2
	ffUIDNext     = 3
	ffMessages    = 4
	ffUnseen      = 5
)

func encodeFolder(f *folder) []byte {
	b := appendVarint(nil, ffNum, uint64(f.Num))
	b = appendVarint(b, ffUIDValidity, uint64(f.UIDValidity))
	b = appendVarint(b, ffUIDNext, uint64(f.UIDNext))
	b = appendVarint(b, ffMessages, uint64(f.Messages))
	b = appendVarint(b, ffUnseen, uint64(f.Unseen))
	return b
}

func decodeFolder(b []byte) (folder, error) {
	var f folder
	if len(b) > maxFolderSize {
		return f, fmt.Errorf("%w: folder record of %d bytes", ErrDamaged, len(b))
	}
	err := decodeFields(b, func(num protowire.Number, typ protowire.Type, v uint64, s []byte) error {
		switch num {
		case ffNum:
			return uint32Field(typ, v, &f.Num)
		case ffUIDValidity:
			return uint32Field(typ, v, &f.UIDValidity)
		case ffUIDNext:
			return uint32Field(typ, v, &f.UIDNext)
		case ffMessages:
			return uint32Field(typ, v, &f.Messages)
		case ffUnseen:
			return uint32Field(typ, v, &f.Unseen)
		}
		return nil
	})
	if err == nil && (f.Num == 0 || f.UIDValidity == 0 || f.UIDNext == 0 || f.Unseen > f.Messages) {
		err = errors.New("inconsistent values")
	}
	if err != nil {
		return folder{}, fmt.Errorf("%w: folder record: %v", ErrDamaged, err)
	}
	return f, nil
}

// tombstone records why an ID is gone.
type tombstone struct {
	Why    uint8 // whyDeleted, whyRejected
	When   time.Time
	Reason string
}

const (
	whyDeleted  = 1
	whyRejected = 2

	ftWhy    = 1
	ftWhen   = 2
	ftReason = 3
)

func encodeTombstone(t *tombstone) []byte {
	b := appendVarint(nil, ftWhy, uint64(t.Why))
	b = appendVarint(b, ftWhen, protowire.EncodeZigZag(t.When.Unix()))
	return appendString(b, ftReason, t.Reason)
}

func decodeTombstone(b []byte) (tombstone, error) {
	var t tombstone
	if len(b) > maxTombstoneSize {
		return t, fmt.Errorf("%w: tombstone of %d bytes", ErrDamaged, len(b))
	}
	var why uint64
	var sec int64
	err := decodeFields(b, func(num protowire.Number, typ protowire.Type, v uint64, s []byte) error {
		switch num {
		case ftWhy:
			return varint(typ, v, &why)
		case ftWhen:
			return zigzag(typ, v, &sec)
		case ftReason:
			return str(typ, s, &t.Reason)
		}
		return nil
	})
	if err == nil && why != whyDeleted && why != whyRejected {
		err = errors.New("unknown kind")
	}
	if err == nil {
		t.Why = uint8(why)
		t.When, err = makeTime(sec, 0, 0)
	}
	if err != nil {
		return tombstone{}, fmt.Errorf("%w: tombstone: %v", ErrDamaged, err)
	}
	return t, nil
}

// loc is where a message is: its folder's number and its UID.
type loc struct{ Num, UID uint32 }

func encodeLoc(l loc) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, l.Num), l.UID)
}

func decodeLoc(b []byte) (loc, error) {
	if len(b) != 8 {
		return loc{}, fmt.Errorf("%w: message index entry of %d bytes", ErrDamaged, len(b))
	}
	return loc{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])}, nil
}

// decodeFields calls fn for each field of b: v holds a varint or fixed
// value, s a length-delimited one (aliasing b). Groups are refused.
func decodeFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, s []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var s []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			s, n = protowire.ConsumeBytes(b)
		default:
			return fmt.Errorf("field %d has wire type %d", num, typ)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, s); err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
	return nil
}

var errWireType = errors.New("wrong wire type")

func str(typ protowire.Type, s []byte, dst *string) error {
	if typ != protowire.BytesType {
		return errWireType
	}
	*dst = string(s)
	return nil
}

func appendStr(typ protowire.Type, s []byte, dst *[]string) error {
	if typ != protowire.BytesType {
		return errWireType
	}
	*dst = append(*dst, string(s))
	return nil
}

func varint(typ protowire.Type, v uint64, dst *uint64) error {
	if typ != protowire.VarintType {
		return errWireType
	}
	*dst = v
	return nil
}

func zigzag(typ protowire.Type, v uint64, dst *int64) error {
	if typ != protowire.VarintType {
		return errWireType
	}
	*dst = protowire.DecodeZigZag(v)
	return nil
}

func presence(typ protowire.Type, v uint64, dst *bool) error {
	if typ != protowire.VarintType || v != 1 {
		return errors.New("bad presence marker")
	}
	*dst = true
	return nil
}

func uint32Field(typ protowire.Type, v uint64, dst *uint32) error {
	if typ != protowire.VarintType {
		return errWireType
	}
	if v > 1<<32-1 {
		return errors.New("value out of range")
	}
	*dst = uint32(v)
	return nil
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendString appends a non-empty string (empty is the default).
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendBytes appends a non-empty byte string.
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return appendBytesAlways(b, num, v)
}

// appendBytesAlways appends an element of a repeated field, even empty.
func appendBytesAlways(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}
