package record

import (
	"errors"
	"fmt"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Errors of Verify, Validate and the decoders. Each error returned wraps
// exactly one of them.
var (
	// ErrTooLarge: the value is over its namespace's size limit, or a field
	// over its own.
	ErrTooLarge = errors.New("record: value exceeds its size limit")
	// ErrMalformed: the value, the record or the body does not decode.
	ErrMalformed = errors.New("record: malformed record")
	// ErrWrongNamespace: the DHT key is not in a DSEP namespace, or the
	// record's type is not the namespace's.
	ErrWrongNamespace = errors.New("record: record type does not match the DHT namespace")
	// ErrVersion: the record's body format version is not 1.
	ErrVersion = errors.New("record: unsupported record version")
	// ErrUnsigned: the value carries no signature.
	ErrUnsigned = errors.New("record: record is not signed")
	// ErrExpired: eol is not after now.
	ErrExpired = errors.New("record: record has expired")
	// ErrFuture: not_before is more than MaxClockSkew after now.
	ErrFuture = errors.New("record: record is dated in the future")
	// ErrLifetime: eol is not after not_before, more than MaxLifetime after
	// it, or (email) after the certification's expiry.
	ErrLifetime = errors.New("record: record lifetime out of bounds")
	// ErrBadSignature: the record signature is not a valid signature by
	// the key the namespace names.
	ErrBadSignature = errors.New("record: record signature does not verify")
	// ErrNameMismatch: the DHT key's name is not the one the record's key
	// material gives.
	ErrNameMismatch = errors.New("record: DHT key name does not match the record")
	// ErrThirdParty: a key record carries a signature by another key or a
	// key revocation.
	ErrThirdParty = errors.New("record: key record carries third-party signatures or a key revocation")
	// ErrBadKey: a key record's key is not a valid DSEP key at now.
	ErrBadKey = errors.New("record: key record holds no valid DSEP key")
	// ErrBadRevocation: a rev record's revocation is not a valid key
	// revocation by the primary key it carries.
	ErrBadRevocation = errors.New("record: revocation does not verify")
	// ErrBadBinding: a reach record's signing subkey is not validly bound
	// to its primary key (binding and back-signature).
	ErrBadBinding = errors.New("record: signing subkey binding does not verify")
	// ErrBadCertification: an email record's certification is not a valid
	// certification of the User ID on the user's key by the domain key in
	// the record.
	ErrBadCertification = errors.New("record: certification by the domain key does not verify")
	// ErrCertificationExpired: an email record's certification has expired.
	ErrCertificationExpired = errors.New("record: the domain's certification has expired")
)

// Verified is a record that passed Verify, with what it proved. Exactly one
// of Key, Rev, Reach and Email is set, by Type.
type Verified struct {
	DHTKey string  // the DHT key it is valid for
	Type   Type    // the record type
	Signed *Signed // the value, decoded
	Seq    uint64  // Signed.Record.Seq

	Key   *KeyRecord
	Rev   *RevRecord
	Reach *ReachRecord
	Email *EmailRecord
}

// KeyRecord is a verified key record.
type KeyRecord struct {
	// Key is the public key: self-signed material only, valid at the
	// verification time.
	Key *address.Key
}

// RevRecord is a verified rev record.
type RevRecord struct {
	Primary    *address.KeyPacket  // the revoked key's primary
	Revocation *address.Revocation // verified against Primary
}

// ReachRecord is a verified reach record.
type ReachRecord struct {
	Identity address.Fingerprint
	// Signing is the signing subkey that signed the record, with its
	// binding to the identity's primary key.
	Signing *address.SigningSubkey
	// Delegations may include expired ones: check each with Valid.
	Delegations []address.Delegation
	// Addrs holds the multiaddrs listed for delegates.
	Addrs map[peer.ID][]multiaddr.Multiaddr
	// StampBits is the base hashcash price; 0 means DefaultStampBits.
	StampBits int
	// Hidden: no delegate of role device is listed with addresses.
	Hidden bool
}

// Delegate returns the delegation of p in role, and an error if there is
// none or it is not valid at now.
func (r *ReachRecord) Delegate(p peer.ID, role address.Role, now time.Time) (address.Delegation, error) {
	for _, d := range r.Delegations {
		if d.Peer == p && d.Role == role {
			return d, d.Valid(now)
		}
	}
	return address.Delegation{}, fmt.Errorf("record: peer %s is not delegated as %s by %s", p, role, r.Identity)
}

// Price returns the base stamp price in bits (StampBits, or
// DefaultStampBits when 0).
func (r *ReachRecord) Price() int {
	if r.StampBits == 0 {
		return DefaultStampBits
	}
	return r.StampBits
}

// EmailRecord is a verified email record: the domain key Domain binds
// Email to the key User by its certification of UserID.
type EmailRecord struct {
	Email         address.Email
	UserID        string
	User          address.Fingerprint
	Domain        address.Fingerprint
	UserPrimary   *address.KeyPacket
	DomainPrimary *address.KeyPacket
	Certification address.Certification
}

// Verify validates value as the DHT value of key at now (docs/protocol.md
// §9.2, §9.3) and returns what it proved. The checks, in order: key is in
// a DSEP namespace and its name has the right form; value is within the
// namespace's size limit; the value and record decode; the type is the
// namespace's; the version is 1; eol − not_before is in (0, MaxLifetime];
// not_before ≤ now + MaxClockSkew; eol > now; the body decodes and matches
// the name; the record signature verifies with the key the namespace names;
// the body's own signatures verify. It is a pure function of its
// arguments. Every error wraps one of the package's sentinels.
func Verify(key string, value []byte, now time.Time) (*Verified, error) {
	t, name, err := ParseDHTKey(key)
	if err != nil {
		return nil, err
	}
	if len(value) > t.MaxSize() {
		return nil, fmt.Errorf("%w: %s value of %d bytes, over %d", ErrTooLarge, t, len(value), t.MaxSize())
	}
	s, err := UnmarshalSigned(value)
	if err != nil {
		return nil, err
	}
	r := s.Record
	if r.Type != t {
		return nil, fmt.Errorf("%w: a %s record under /%s/", ErrWrongNamespace, r.Type, t.Namespace())
	}
	if r.Version != Version {
		return nil, fmt.Errorf("%w: version %d (this node reads %d)", ErrVersion, r.Version, Version)
	}
	if !r.EOL.After(r.NotBefore) || r.EOL.Sub(r.NotBefore) > MaxLifetime {
		return nil, fmt.Errorf("%w: from %s to %s (at most %s)", ErrLifetime, stamp(r.NotBefore), stamp(r.EOL), MaxLifetime)
	}
	if r.NotBefore.After(now.Add(MaxClockSkew)) {
		return nil, fmt.Errorf("%w: not before %s, now is %s", ErrFuture, stamp(r.NotBefore), stamp(now))
	}
	if !r.EOL.After(now) {
		return nil, fmt.Errorf("%w: at %s, now is %s", ErrExpired, stamp(r.EOL), stamp(now))
	}
	v := &Verified{DHTKey: key, Type: t, Signed: s, Seq: r.Seq}
	msg := SigningInput(t, s.Raw)
	switch t {
	case KeyType:
		v.Key, err = verifyKey(name, msg, s, now)
	case RevType:
		v.Rev, err = verifyRev(name, msg, s)
	case ReachType:
		v.Reach, err = verifyReach(name, msg, s, now)
	case EmailType:
		v.Email, err = verifyEmail(name, msg, s, now)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// signatureError wraps a failed record signature check.
func signatureError(err error) error {
	if errors.Is(err, address.ErrTooLarge) {
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return fmt.Errorf("%w: %v", ErrBadSignature, err)
}

func parsePrimary(what string, b []byte) (*address.KeyPacket, error) {
	p, err := address.ParsePrimaryKeyPacket(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	return p, nil
}

func verifyKey(name string, msg []byte, s *Signed, now time.Time) (*KeyRecord, error) {
	k, err := address.ReadSelfSignedKey(s.Record.Body)
	switch {
	case errors.Is(err, address.ErrThirdParty):
		return nil, fmt.Errorf("%w: %v", ErrThirdParty, err)
	case errors.Is(err, address.ErrNotDSEPKey):
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	case err != nil:
		return nil, fmt.Errorf("%w: key body: %v", ErrMalformed, err)
	}
	if k.Fingerprint().String() != name {
		return nil, fmt.Errorf("%w: key %s published under /%s/%s", ErrNameMismatch, k.Fingerprint(), KeyType.Namespace(), name)
	}
	if err := k.PrimaryPacket().VerifyBinary(msg, s.Signature); err != nil {
		return nil, signatureError(err)
	}
	// A key made on a clock a little ahead of ours is judged when it was
	// made (within the record's own skew).
	at := now
	if c := k.Created(); c.After(now) {
		if c.After(now.Add(MaxClockSkew)) {
			return nil, fmt.Errorf("%w: key %s created %s, in the future", ErrBadKey, k.Fingerprint(), stamp(c))
		}
		at = c
	}
	if err := k.Check(at); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return &KeyRecord{Key: k}, nil
}

func verifyRev(name string, msg []byte, s *Signed) (*RevRecord, error) {
	b, err := UnmarshalRevBody(s.Record.Body)
	if err != nil {
		return nil, err
	}
	p, err := parsePrimary("rev body primary", b.Primary)
	if err != nil {
		return nil, err
	}
	if p.Fingerprint().String() != name {
		return nil, fmt.Errorf("%w: revocation of %s published under /%s/%s", ErrNameMismatch, p.Fingerprint(), RevType.Namespace(), name)
	}
	if err := p.VerifyBinary(msg, s.Signature); err != nil {
		return nil, signatureError(err)
	}
	rev, err := p.ParseRevocation(b.Revocation)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRevocation, err)
	}
	return &RevRecord{Primary: p, Revocation: rev}, nil
}

func verifyReach(name string, msg []byte, s *Signed, now time.Time) (*ReachRecord, error) {
	b, err := UnmarshalReachBody(s.Record.Body)
	if err != nil {
		return nil, err
	}
	p, err := parsePrimary("reach body primary", b.Primary)
	if err != nil {
		return nil, err
	}
	if p.Fingerprint().String() != name {
		return nil, fmt.Errorf("%w: reach record of %s published under /%s/%s", ErrNameMismatch, p.Fingerprint(), ReachType.Namespace(), name)
	}
	ss, err := address.ParseSigningSubkey(p, b.Signing, b.Binding, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBinding, err)
	}
	if err := ss.Subkey.VerifyBinary(msg, s.Signature); err != nil {
		return nil, signatureError(err)
	}
	rr := &ReachRecord{
		Identity:    p.Fingerprint(),
		Signing:     ss,
		Delegations: b.Delegations,
		Addrs:       make(map[peer.ID][]multiaddr.Multiaddr, len(b.Addrs)),
		StampBits:   int(b.StampBits),
		Hidden:      b.Hidden,
	}
	for _, a := range b.Addrs {
		rr.Addrs[a.Peer] = a.Addrs
	}
	return rr, nil
}

func verifyEmail(name string, msg []byte, s *Signed, now time.Time) (*EmailRecord, error) {
	b, err := UnmarshalEmailBody(s.Record.Body)
	if err != nil {
		return nil, err
	}
	user, err := parsePrimary("email body user_primary", b.UserPrimary)
	if err != nil {
		return nil, err
	}
	dom, err := parsePrimary("email body domain_primary", b.DomainPrimary)
	if err != nil {
		return nil, err
	}
	email, err := address.EmailOfUserID(b.UserID)
	if err != nil {
		return nil, fmt.Errorf("%w: email body: %v", ErrMalformed, err)
	}
	if EmailSlot(email, dom.Fingerprint()) != name {
		return nil, fmt.Errorf("%w: the slot of %s under domain key %s is not %s", ErrNameMismatch, email, dom.Fingerprint(), name)
	}
	if err := dom.VerifyBinary(msg, s.Signature); err != nil {
		return nil, signatureError(err)
	}
	c, err := dom.VerifyCertification(user, b.UserID, b.Certification, now)
	switch {
	case errors.Is(err, address.ErrCertificationExpired):
		return nil, fmt.Errorf("%w: %q on %s by %s", ErrCertificationExpired, b.UserID, user.Fingerprint(), dom.Fingerprint())
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrBadCertification, err)
	}
	if !c.Expires.IsZero() && s.Record.EOL.After(c.Expires) {
		return nil, fmt.Errorf("%w: eol %s is after the certification's expiry %s", ErrLifetime, stamp(s.Record.EOL), stamp(c.Expires))
	}
	return &EmailRecord{
		Email:         email,
		UserID:        b.UserID,
		User:          user.Fingerprint(),
		Domain:        dom.Fingerprint(),
		UserPrimary:   user,
		DomainPrimary: dom,
		Certification: c,
	}, nil
}
