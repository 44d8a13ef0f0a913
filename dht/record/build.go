package record

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// window returns the not_before and eol of a record made at now that lives
// ttl (0 means DefaultTTL).
func window(now time.Time, ttl time.Duration) (nb, eol time.Time, err error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Second || ttl > MaxLifetime {
		return nb, eol, fmt.Errorf("record: lifetime %s out of range (1s to %s)", ttl, MaxLifetime)
	}
	nb = now.UTC().Truncate(time.Second)
	return nb, nb.Add(ttl).Truncate(time.Second), nil
}

// Sign encodes rec, signs it with sign (which gets SigningInput(rec.Type,
// record bytes) and returns one OpenPGP signature packet) and returns the
// DHT value. It checks nothing: the New… builders check their inputs and
// verify what they built. Tests and tools use it to build any record.
func Sign(rec Record, sign func(msg []byte) ([]byte, error)) ([]byte, error) {
	raw := rec.Marshal()
	sig, err := sign(SigningInput(rec.Type, raw))
	if err != nil {
		return nil, err
	}
	return (&Signed{Raw: raw, Record: rec, Signature: sig}).Marshal(), nil
}

// build makes, signs and verifies a record of type t: the builders never
// return a value that their own Verify would refuse.
func build(t Type, name string, body []byte, seq uint64, nb, eol time.Time, now time.Time, sign func([]byte) ([]byte, error)) (string, []byte, error) {
	key := DHTKey(t, name)
	value, err := Sign(Record{Type: t, Version: Version, Seq: seq, NotBefore: nb, EOL: eol, Body: body}, sign)
	if err != nil {
		return "", nil, err
	}
	if _, err := Verify(key, value, now); err != nil {
		return "", nil, fmt.Errorf("record: the %s record built does not verify: %w", t, err)
	}
	return key, value, nil
}

// NewKey builds the key record of k: its public key with self-signed
// material only (third-party certifications and key revocations are
// stripped, see address.Key.SelfSigned), signed by k's primary, which
// must hold unlocked private material. ttl 0 means DefaultTTL; at most
// MaxLifetime.
func NewKey(k *address.Key, seq uint64, now time.Time, ttl time.Duration) (key string, value []byte, err error) {
	nb, eol, err := window(now, ttl)
	if err != nil {
		return "", nil, err
	}
	pub := k.SelfSigned()
	if err := pub.Check(now); err != nil {
		return "", nil, fmt.Errorf("record: key %s cannot be published: %w", k.Fingerprint(), err)
	}
	sign := func(msg []byte) ([]byte, error) { return k.SignWithPrimary(msg, now) }
	return build(KeyType, k.Fingerprint().String(), pub.Bytes(), seq, nb, eol, now, sign)
}

// NewRev builds the rev record of k carrying rev, a revocation of k (as
// Revoke or Rotate return it), signed by k's primary, which must hold
// unlocked private material.
func NewRev(k *address.Key, rev *address.Revocation, seq uint64, now time.Time, ttl time.Duration) (string, []byte, error) {
	nb, eol, err := window(now, ttl)
	if err != nil {
		return "", nil, err
	}
	if rev == nil || rev.Key != k.Fingerprint() {
		return "", nil, fmt.Errorf("record: the revocation is not one of key %s", k.Fingerprint())
	}
	sig := rev.Bytes()
	if sig == nil {
		return "", nil, errors.New("record: the revocation carries no signature packet")
	}
	body := RevBody{Primary: k.PrimaryPacket().Bytes(), Revocation: sig}.Marshal()
	sign := func(msg []byte) ([]byte, error) { return k.SignWithPrimary(msg, now) }
	return build(RevType, k.Fingerprint().String(), body, seq, nb, eol, now, sign)
}

// Reach is what a reach record says about an identity.
type Reach struct {
	// Delegations authorise peers to act for the identity (at most
	// MaxDelegations; each valid at the build time, no (peer, role) twice).
	Delegations []address.Delegation
	// Addrs lists the network addresses of delegates (at most
	// MaxAddrsPerDelegate each); a peer here must be delegated. Peers with
	// no addresses are left out of the record.
	Addrs map[peer.ID][]multiaddr.Multiaddr
	// StampBits is the base hashcash price, 0 to MaxStampBits; 0 means
	// DefaultStampBits.
	StampBits int
	// Hidden says the identity's own devices are not to be reached
	// directly: no delegate of role device may be listed in Addrs.
	Hidden bool
}

// NewReach builds the reach record of k, signed by k's signing subkey,
// which must hold unlocked private material (the primary may be offline).
func NewReach(k *address.Key, r Reach, seq uint64, now time.Time, ttl time.Duration) (string, []byte, error) {
	nb, eol, err := window(now, ttl)
	if err != nil {
		return "", nil, err
	}
	if len(r.Delegations) > MaxDelegations {
		return "", nil, fmt.Errorf("record: %d delegations, at most %d", len(r.Delegations), MaxDelegations)
	}
	for _, d := range r.Delegations {
		if err := d.Valid(now); err != nil {
			return "", nil, err
		}
	}
	if r.StampBits < 0 || r.StampBits > MaxStampBits {
		return "", nil, fmt.Errorf("record: stamp price %d bits out of range (0 to %d)", r.StampBits, MaxStampBits)
	}
	ss, err := k.SigningSubkey(now)
	if err != nil {
		return "", nil, err
	}
	body := ReachBody{
		Primary:     ss.Primary.Bytes(),
		Signing:     ss.Subkey.Bytes(),
		Binding:     ss.Binding,
		Delegations: r.Delegations,
		StampBits:   uint32(r.StampBits),
		Hidden:      r.Hidden,
	}
	peers := make([]peer.ID, 0, len(r.Addrs))
	for p, as := range r.Addrs {
		if len(as) > 0 {
			peers = append(peers, p)
		}
	}
	slices.Sort(peers)
	for _, p := range peers {
		body.Addrs = append(body.Addrs, DelegateAddrs{Peer: p, Addrs: r.Addrs[p]})
	}
	enc := body.Marshal()
	// The decoder holds the structural rules (delegates, addresses,
	// hidden); apply them before signing.
	if _, err := UnmarshalReachBody(enc); err != nil {
		return "", nil, err
	}
	sign := func(msg []byte) ([]byte, error) { return k.SignWithSigningSubkey(msg, now) }
	return build(ReachType, k.Fingerprint().String(), enc, seq, nb, eol, now, sign)
}

// NewEmail builds the email record by which domain binds email to user.
// user must carry a valid, unexpired certification by domain's primary of
// its User ID for email (address.Certify); the record carries that
// certification and ends no later than it expires. It is signed by
// domain's primary, which must hold unlocked private material.
func NewEmail(domain *address.Key, user *address.Key, email address.Email, seq uint64, now time.Time, ttl time.Duration) (string, []byte, error) {
	nb, eol, err := window(now, ttl)
	if err != nil {
		return "", nil, err
	}
	uid, ok := user.UserIDFor(email, now)
	if !ok {
		return "", nil, fmt.Errorf("record: key %s has no valid User ID for %s", user.Fingerprint(), email)
	}
	c, cert, err := user.CertificationPacket(uid, domain, now)
	if err != nil {
		return "", nil, fmt.Errorf("record: %q on %s: %w", uid, user.Fingerprint(), err)
	}
	if !c.Expires.IsZero() && eol.After(c.Expires) {
		eol = c.Expires
	}
	if !eol.After(nb) {
		return "", nil, fmt.Errorf("record: the certification of %q expires at once", uid)
	}
	body := EmailBody{
		UserPrimary:   user.PrimaryPacket().Bytes(),
		UserID:        uid,
		DomainPrimary: domain.PrimaryPacket().Bytes(),
		Certification: cert,
	}.Marshal()
	sign := func(msg []byte) ([]byte, error) { return domain.SignWithPrimary(msg, now) }
	return build(EmailType, EmailSlot(email, domain.Fingerprint()), body, seq, nb, eol, now, sign)
}
