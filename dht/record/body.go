package record

import (
	"bytes"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/dsep-project/dsep/address"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"
)

// Limits of the bodies (docs/protocol.md §9.3).
const (
	// MaxDelegations bounds the delegates of a reach record.
	MaxDelegations = address.MaxDelegations
	// MaxAddrsPerDelegate bounds the multiaddrs listed for one delegate.
	MaxAddrsPerDelegate = 8
	// MaxMultiaddrBytes bounds one multiaddr.
	MaxMultiaddrBytes = 256
	// MaxStampBits bounds a reach record's stamp price.
	MaxStampBits = 40
	// DefaultStampBits is the price a reach record's stamp_bits 0 means.
	DefaultStampBits = 20
	// MaxUserIDBytes bounds the User ID of an email record.
	MaxUserIDBytes = 1024
)

// fieldSpec describes the known fields of a body message.
type fieldSpec struct {
	typ      protowire.Type
	repeated bool
}

// decodeFields walks a body message. Known fields must have their wire
// type; a known field that does not repeat may appear once; unknown fields
// are skipped. visit gets each known field's value (v for varints, b for
// bytes).
func decodeFields(b []byte, what string, spec map[protowire.Number]fieldSpec, visit func(num protowire.Number, v uint64, b []byte) error) error {
	seen := make(map[protowire.Number]bool, len(spec))
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, what, protowire.ParseError(n))
		}
		b = b[n:]
		fs, known := spec[num]
		if !known {
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: %s field %d: %v", ErrMalformed, what, num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		if typ != fs.typ {
			return fmt.Errorf("%w: %s field %d has wire type %d", ErrMalformed, what, num, typ)
		}
		if seen[num] && !fs.repeated {
			return fmt.Errorf("%w: %s field %d repeated", ErrMalformed, what, num)
		}
		seen[num] = true
		var v uint64
		var bs []byte
		if typ == protowire.VarintType {
			v, n = protowire.ConsumeVarint(b)
		} else {
			bs, n = protowire.ConsumeBytes(b)
		}
		if n < 0 {
			return fmt.Errorf("%w: %s field %d: %v", ErrMalformed, what, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := visit(num, v, bs); err != nil {
			return err
		}
	}
	return nil
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// required returns an error naming the first of the fields that is empty.
func required(what string, fields ...[]byte) error {
	for i, f := range fields {
		if len(f) == 0 {
			return fmt.Errorf("%w: %s lacks field %d", ErrMalformed, what, i+1)
		}
	}
	return nil
}

// RevBody is the body of a rev record:
//
//	1: primary (bytes)     the revoked key's primary key packet
//	2: revocation (bytes)  its key revocation signature packet
type RevBody struct {
	Primary    []byte
	Revocation []byte
}

// Marshal encodes the body.
func (r RevBody) Marshal() []byte {
	b := appendBytesField(nil, 1, r.Primary)
	return appendBytesField(b, 2, r.Revocation)
}

// UnmarshalRevBody decodes a rev body (no signature is checked). Errors
// wrap ErrMalformed.
func UnmarshalRevBody(b []byte) (RevBody, error) {
	var r RevBody
	err := decodeFields(b, "rev body", map[protowire.Number]fieldSpec{
		1: {typ: protowire.BytesType}, 2: {typ: protowire.BytesType},
	}, func(num protowire.Number, _ uint64, v []byte) error {
		if num == 1 {
			r.Primary = bytes.Clone(v)
		} else {
			r.Revocation = bytes.Clone(v)
		}
		return nil
	})
	if err == nil {
		err = required("rev body", r.Primary, r.Revocation)
	}
	if err != nil {
		return RevBody{}, err
	}
	return r, nil
}

// DelegateAddrs lists the network addresses of one delegate.
//
//	1: peer (bytes)                       the delegate's peer ID
//	2: multiaddr (bytes, repeated ≤ 8)    binary multiaddrs
type DelegateAddrs struct {
	Peer  peer.ID
	Addrs []multiaddr.Multiaddr
}

// ReachBody is the body of a reach record:
//
//	1: primary (bytes)                the identity's primary key packet
//	2: signing (bytes)                its signing subkey packet
//	3: binding (bytes)                the subkey binding signature packet
//	4: delegates (bytes, repeated ≤ 16) one Delegation each (§7)
//	5: addrs (bytes, repeated ≤ 16)   one DelegateAddrs each
//	6: stamp_bits (varint)            base hashcash price, 0 = 20
//	7: hidden (varint)                1: no device delegate has addresses
//
// Decoding checks the structure: peer IDs are multihashes, no (peer, role)
// delegation repeats, every addrs entry names a delegate, once, with 1–8
// valid multiaddrs, stamp_bits ≤ MaxStampBits, hidden is 0 or 1 and, when
// 1, no delegate of role device has addresses.
type ReachBody struct {
	Primary, Signing, Binding []byte
	Delegations               []address.Delegation
	Addrs                     []DelegateAddrs
	StampBits                 uint32
	Hidden                    bool
}

// Marshal encodes the body, fields in order.
func (r ReachBody) Marshal() []byte {
	b := appendBytesField(nil, 1, r.Primary)
	b = appendBytesField(b, 2, r.Signing)
	b = appendBytesField(b, 3, r.Binding)
	for _, d := range r.Delegations {
		b = appendBytesField(b, 4, d.AppendBinary(nil))
	}
	for _, a := range r.Addrs {
		e := appendBytesField(nil, 1, []byte(a.Peer))
		for _, m := range a.Addrs {
			e = appendBytesField(e, 2, m.Bytes())
		}
		b = appendBytesField(b, 5, e)
	}
	if r.StampBits != 0 {
		b = appendVarintField(b, 6, uint64(r.StampBits))
	}
	if r.Hidden {
		b = appendVarintField(b, 7, 1)
	}
	return b
}

// UnmarshalReachBody decodes a reach body and checks its structure (see
// ReachBody); no signature is checked. Errors wrap ErrMalformed.
func UnmarshalReachBody(b []byte) (ReachBody, error) {
	var r ReachBody
	var hidden uint64
	err := decodeFields(b, "reach body", map[protowire.Number]fieldSpec{
		1: {typ: protowire.BytesType}, 2: {typ: protowire.BytesType}, 3: {typ: protowire.BytesType},
		4: {typ: protowire.BytesType, repeated: true}, 5: {typ: protowire.BytesType, repeated: true},
		6: {typ: protowire.VarintType}, 7: {typ: protowire.VarintType},
	}, func(num protowire.Number, v uint64, bs []byte) error {
		switch num {
		case 1:
			r.Primary = bytes.Clone(bs)
		case 2:
			r.Signing = bytes.Clone(bs)
		case 3:
			r.Binding = bytes.Clone(bs)
		case 4:
			if len(r.Delegations) == MaxDelegations {
				return fmt.Errorf("%w: reach body: more than %d delegates", ErrMalformed, MaxDelegations)
			}
			d, err := address.ParseDelegation(bs)
			if err != nil {
				return fmt.Errorf("%w: reach body: %v", ErrMalformed, err)
			}
			if _, err := peer.IDFromBytes([]byte(d.Peer)); err != nil {
				return fmt.Errorf("%w: reach body: delegate peer ID: %v", ErrMalformed, err)
			}
			r.Delegations = append(r.Delegations, d)
		case 5:
			if len(r.Addrs) == MaxDelegations {
				return fmt.Errorf("%w: reach body: more than %d addrs entries", ErrMalformed, MaxDelegations)
			}
			a, err := unmarshalDelegateAddrs(bs)
			if err != nil {
				return err
			}
			r.Addrs = append(r.Addrs, a)
		case 6:
			if v > MaxStampBits {
				return fmt.Errorf("%w: reach body: stamp_bits %d over %d", ErrMalformed, v, MaxStampBits)
			}
			r.StampBits = uint32(v)
		case 7:
			hidden = v
		}
		return nil
	})
	if err != nil {
		return ReachBody{}, err
	}
	if err := required("reach body", r.Primary, r.Signing, r.Binding); err != nil {
		return ReachBody{}, err
	}
	if hidden > 1 {
		return ReachBody{}, fmt.Errorf("%w: reach body: hidden is %d, not 0 or 1", ErrMalformed, hidden)
	}
	r.Hidden = hidden == 1
	if err := r.checkDelegates(); err != nil {
		return ReachBody{}, err
	}
	return r, nil
}

// checkDelegates checks the cross-field rules of a reach body.
func (r *ReachBody) checkDelegates() error {
	type pr struct {
		p peer.ID
		r address.Role
	}
	seen := make(map[pr]bool)
	roles := make(map[peer.ID][]address.Role)
	for _, d := range r.Delegations {
		if seen[pr{d.Peer, d.Role}] {
			return fmt.Errorf("%w: reach body: %s is delegated as %s twice", ErrMalformed, d.Peer, d.Role)
		}
		seen[pr{d.Peer, d.Role}] = true
		roles[d.Peer] = append(roles[d.Peer], d.Role)
	}
	listed := make(map[peer.ID]bool)
	for _, a := range r.Addrs {
		rs, ok := roles[a.Peer]
		if !ok {
			return fmt.Errorf("%w: reach body: addresses for %s, which is not a delegate", ErrMalformed, a.Peer)
		}
		if listed[a.Peer] {
			return fmt.Errorf("%w: reach body: addresses for %s listed twice", ErrMalformed, a.Peer)
		}
		listed[a.Peer] = true
		if r.Hidden && slices.Contains(rs, address.RoleDevice) {
			return fmt.Errorf("%w: reach body: hidden, but device %s has addresses", ErrMalformed, a.Peer)
		}
	}
	return nil
}

func unmarshalDelegateAddrs(b []byte) (DelegateAddrs, error) {
	var a DelegateAddrs
	err := decodeFields(b, "reach addrs", map[protowire.Number]fieldSpec{
		1: {typ: protowire.BytesType}, 2: {typ: protowire.BytesType, repeated: true},
	}, func(num protowire.Number, _ uint64, v []byte) error {
		if num == 1 {
			id, err := peer.IDFromBytes(v)
			if err != nil {
				return fmt.Errorf("%w: reach addrs: peer ID: %v", ErrMalformed, err)
			}
			a.Peer = id
			return nil
		}
		if len(a.Addrs) == MaxAddrsPerDelegate {
			return fmt.Errorf("%w: reach addrs: more than %d multiaddrs", ErrMalformed, MaxAddrsPerDelegate)
		}
		m, err := parseMultiaddr(v)
		if err != nil {
			return err
		}
		a.Addrs = append(a.Addrs, m)
		return nil
	})
	if err != nil {
		return DelegateAddrs{}, err
	}
	if a.Peer == "" {
		return DelegateAddrs{}, fmt.Errorf("%w: reach addrs entry lacks its peer", ErrMalformed)
	}
	if len(a.Addrs) == 0 {
		return DelegateAddrs{}, fmt.Errorf("%w: reach addrs entry for %s lists no multiaddr", ErrMalformed, a.Peer)
	}
	return a, nil
}

// parseMultiaddr parses a binary multiaddr of at most MaxMultiaddrBytes in
// canonical form.
func parseMultiaddr(b []byte) (m multiaddr.Multiaddr, err error) {
	if len(b) == 0 || len(b) > MaxMultiaddrBytes {
		return nil, fmt.Errorf("%w: multiaddr of %d bytes (1–%d)", ErrMalformed, len(b), MaxMultiaddrBytes)
	}
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("%w: multiaddr: %v", ErrMalformed, p)
		}
	}()
	m, err = multiaddr.NewMultiaddrBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: multiaddr: %v", ErrMalformed, err)
	}
	if len(m) == 0 || !bytes.Equal(m.Bytes(), b) {
		return nil, fmt.Errorf("%w: multiaddr is empty or not canonical", ErrMalformed)
	}
	return m, nil
}

// EmailBody is the body of an email record:
//
//	1: user_primary (bytes)    the user's primary key packet
//	2: user_id (bytes)         the certified User ID, UTF-8
//	3: domain_primary (bytes)  the domain key's primary key packet
//	4: certification (bytes)   the domain's certification packet of (1, 2)
type EmailBody struct {
	UserPrimary   []byte
	UserID        string
	DomainPrimary []byte
	Certification []byte
}

// Marshal encodes the body, fields in order.
func (e EmailBody) Marshal() []byte {
	b := appendBytesField(nil, 1, e.UserPrimary)
	b = appendBytesField(b, 2, []byte(e.UserID))
	b = appendBytesField(b, 3, e.DomainPrimary)
	return appendBytesField(b, 4, e.Certification)
}

// UnmarshalEmailBody decodes an email body (no signature is checked): all
// four fields are required, the User ID is UTF-8 of at most
// MaxUserIDBytes. Errors wrap ErrMalformed.
func UnmarshalEmailBody(b []byte) (EmailBody, error) {
	var e EmailBody
	var uid []byte
	err := decodeFields(b, "email body", map[protowire.Number]fieldSpec{
		1: {typ: protowire.BytesType}, 2: {typ: protowire.BytesType},
		3: {typ: protowire.BytesType}, 4: {typ: protowire.BytesType},
	}, func(num protowire.Number, _ uint64, v []byte) error {
		switch num {
		case 1:
			e.UserPrimary = bytes.Clone(v)
		case 2:
			uid = v
		case 3:
			e.DomainPrimary = bytes.Clone(v)
		case 4:
			e.Certification = bytes.Clone(v)
		}
		return nil
	})
	if err == nil {
		err = required("email body", e.UserPrimary, uid, e.DomainPrimary, e.Certification)
	}
	if err != nil {
		return EmailBody{}, err
	}
	if len(uid) > MaxUserIDBytes || !utf8.Valid(uid) {
		return EmailBody{}, fmt.Errorf("%w: email body: User ID is not UTF-8 of at most %d bytes", ErrMalformed, MaxUserIDBytes)
	}
	e.UserID = string(uid)
	return e, nil
}
