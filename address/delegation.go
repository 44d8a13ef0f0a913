package address

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
)

// Role is what a delegated peer may do for an identity.
type Role uint8

// The delegate roles of DESIGN.md.
const (
	RoleDevice  Role = 1 // one of the user's own nodes: receives and sends
	RoleMailbox Role = 2 // stores encrypted mail while the user is offline
	RoleGateway Role = 3 // a domain's SMTP gateway
)

var roleNames = map[Role]string{RoleDevice: "device", RoleMailbox: "mailbox", RoleGateway: "gateway"}

func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole parses "device", "mailbox" or "gateway".
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("address: unknown role %q (want device, mailbox or gateway)", s)
}

// Delegation authorises a libp2p peer to act for an identity in one role
// until NotAfter. It is the link identity → peer key in the chain identity →
// delegation → peer key → TLS session; the signature that makes it binding
// is the identity's signing subkey over the reach record (or a
// DelegationSet) that carries it.
type Delegation struct {
	Peer     peer.ID
	Role     Role
	NotAfter time.Time // seconds precision
}

// Limits of the delegation encoding.
const (
	MaxDelegations    = 16
	maxPeerIDBytes    = 128
	maxDelegationBody = 4096
)

// Valid reports whether d is usable at now.
func (d Delegation) Valid(now time.Time) error {
	if _, ok := roleNames[d.Role]; !ok {
		return fmt.Errorf("address: delegation has unknown role %d", d.Role)
	}
	// peer.ID.Validate only rejects the empty ID; IDFromBytes checks that
	// it is a multihash, as every real peer ID is.
	if _, err := peer.IDFromBytes([]byte(d.Peer)); err != nil {
		return fmt.Errorf("address: delegation names a bad peer ID: %w", err)
	}
	if !now.Before(d.NotAfter) {
		return fmt.Errorf("address: delegation of %s as %s expired at %s", d.Peer, d.Role, d.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// AppendBinary appends the protobuf encoding of d:
// 1: peer ID bytes, 2: role (varint), 3: not_after (varint, Unix seconds).
func (d Delegation) AppendBinary(b []byte) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte(d.Peer))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(d.Role))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(d.NotAfter.Unix()))
	return b
}

// ParseDelegation decodes one delegation. Unknown fields are skipped (for
// forward compatibility); fields 1–3 are required and may not repeat.
func ParseDelegation(b []byte) (Delegation, error) {
	var d Delegation
	var seen [4]bool
	if len(b) > maxDelegationBody {
		return d, fmt.Errorf("%w: delegation over %d bytes", ErrTooLarge, maxDelegationBody)
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return d, fmt.Errorf("address: delegation: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num >= 1 && num <= 3 {
			if seen[num] {
				return d, fmt.Errorf("address: delegation: field %d repeated", num)
			}
			seen[num] = true
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return d, fmt.Errorf("address: delegation peer: %w", protowire.ParseError(n))
			}
			if len(v) == 0 || len(v) > maxPeerIDBytes {
				return d, errors.New("address: delegation peer ID has a bad length")
			}
			d.Peer = peer.ID(v)
			b = b[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return d, fmt.Errorf("address: delegation role: %w", protowire.ParseError(n))
			}
			if v > 255 {
				return d, errors.New("address: delegation role out of range")
			}
			d.Role = Role(v)
			b = b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return d, fmt.Errorf("address: delegation expiry: %w", protowire.ParseError(n))
			}
			if v > 1<<40 {
				return d, errors.New("address: delegation expiry out of range")
			}
			d.NotAfter = time.Unix(int64(v), 0).UTC()
			b = b[n:]
		case num >= 1 && num <= 3:
			return d, fmt.Errorf("address: delegation field %d has wire type %d", num, typ)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return d, fmt.Errorf("address: delegation: %w", protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if !seen[1] || !seen[2] || !seen[3] {
		return d, errors.New("address: delegation lacks peer, role or expiry")
	}
	return d, nil
}

// DelegationSet is a list of delegations signed by an identity's signing
// subkey. The DHT's reach record carries the same list under its own
// signature; DelegationSet is the standalone form (docs/protocol.md).
type DelegationSet struct {
	Identity    Fingerprint
	Delegations []Delegation
	Body        []byte // the exact signed bytes
	Signature   []byte // OpenPGP detached signature packet
}

// delegationContext separates these signatures from every other DSEP use
// of the signing subkey.
const delegationContext = "dsep-delegation-v1\x00"

func encodeDelegationBody(id Fingerprint, ds []Delegation) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, id[:])
	for _, d := range ds {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, d.AppendBinary(nil))
	}
	return b
}

// SignDelegations signs ds with identity's signing subkey (which must be
// unlocked).
func SignDelegations(identity *Key, ds []Delegation, now time.Time) (*DelegationSet, error) {
	if len(ds) > MaxDelegations {
		return nil, fmt.Errorf("%w: more than %d delegations", ErrTooLarge, MaxDelegations)
	}
	for _, d := range ds {
		if err := d.Valid(now); err != nil {
			return nil, err
		}
	}
	body := encodeDelegationBody(identity.fpr, ds)
	sig, err := identity.SignDetached(delegationContext, body, now)
	if err != nil {
		return nil, err
	}
	return &DelegationSet{Identity: identity.fpr, Delegations: ds, Body: body, Signature: sig}, nil
}

// ParseDelegationSet decodes body and checks sig over it against identity.
// Expired delegations are kept (callers check each with Valid).
func ParseDelegationSet(identity *Key, body, sig []byte, now time.Time) (*DelegationSet, error) {
	if len(body) > MaxDelegations*maxDelegationBody {
		return nil, fmt.Errorf("%w: delegation set too large", ErrTooLarge)
	}
	if err := identity.VerifyDetached(delegationContext, body, sig, now); err != nil {
		return nil, err
	}
	set := &DelegationSet{Body: body, Signature: sig}
	b := body
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) {
			return nil, errors.New("address: malformed delegation set")
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, errors.New("address: malformed delegation set")
		}
		b = b[n:]
		if num == 1 {
			f, err := FingerprintFromBytes(v)
			if err != nil {
				return nil, err
			}
			set.Identity = f
			continue
		}
		if len(set.Delegations) == MaxDelegations {
			return nil, fmt.Errorf("%w: more than %d delegations", ErrTooLarge, MaxDelegations)
		}
		d, err := ParseDelegation(v)
		if err != nil {
			return nil, err
		}
		set.Delegations = append(set.Delegations, d)
	}
	if set.Identity != identity.fpr {
		return nil, errors.New("address: delegation set names another identity")
	}
	return set, nil
}

// Find returns the delegation of p in role that is valid at now.
func (s *DelegationSet) Find(p peer.ID, role Role, now time.Time) (Delegation, error) {
	for _, d := range s.Delegations {
		if d.Peer == p && d.Role == role {
			if err := d.Valid(now); err != nil {
				return d, err
			}
			return d, nil
		}
	}
	return Delegation{}, fmt.Errorf("address: peer %s is not delegated as %s by %s", p, role, s.Identity)
}

// SignDetached signs context ‖ data with k's signing subkey (unlocked) and
// returns the signature packet. context separates the uses of the key.
func (k *Key) SignDetached(context string, data []byte, now time.Time) ([]byte, error) {
	cfg := pgpConfig(now.Truncate(time.Second), nil)
	var b bytes.Buffer
	msg := append([]byte(context), data...)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := openpgp.DetachSign(&b, []*openpgp.Entity{k.e}, bytes.NewReader(msg), cfg); err != nil {
		return nil, fmt.Errorf("address: signing: %w", err)
	}
	return b.Bytes(), nil
}

// maxDetachedSig bounds a detached signature.
const maxDetachedSig = 1024

// VerifyDetached checks a signature made by SignDetached: by k's signing
// subkey, valid at now, over context ‖ data.
func (k *Key) VerifyDetached(context string, data, sig []byte, now time.Time) (err error) {
	if len(sig) > maxDetachedSig {
		return fmt.Errorf("%w: signature over %d bytes", ErrTooLarge, maxDetachedSig)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("address: malformed signature: %v", p)
		}
	}()
	msg := append([]byte(context), data...)
	cfg := pgpConfig(now, nil)
	k.mu.Lock()
	defer k.mu.Unlock()
	_, _, err = openpgp.VerifyDetachedSignature(openpgp.EntityList{k.e}, bytes.NewReader(msg), bytes.NewReader(sig), cfg)
	if err != nil {
		return fmt.Errorf("address: signature by %s does not verify: %w", k.fpr, err)
	}
	return nil
}
