package address

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// This file holds the packet-level helpers of formats that carry single
// OpenPGP packets rather than whole certificates: the DHT records of
// docs/protocol.md §9. A verifier of such a record holds no certificate,
// only a primary key packet (and perhaps a subkey with its binding), and
// checks each signature against exactly the key the format names.

// Size limits of single packets.
const (
	// MaxKeyPacketBytes bounds one public key packet with its header. An
	// Ed25519 key packet is 51 bytes, an RSA-4096 one about 530.
	MaxKeyPacketBytes = 1024
	// MaxSignaturePacketBytes bounds one signature packet with its header
	// (a subkey binding with its embedded back-signature is about 250
	// bytes; a record signature about 150).
	MaxSignaturePacketBytes = 2048
)

// ErrBadSignature is wrapped by errors about a signature packet that does
// not verify, is of the wrong type or was made by another key.
var ErrBadSignature = errors.New("address: bad signature")

// ErrThirdParty is wrapped by ReadSelfSignedKey when a key carries a
// signature not made by its own primary key, or a key revocation (which
// DSEP publishes apart, judged by first-seen time).
var ErrThirdParty = errors.New("address: key carries third-party signatures or a key revocation")

// KeyPacket is a lone OpenPGP v4 public key packet, a primary key or a
// subkey, without the rest of its certificate: enough to check signatures
// it made. It is immutable.
type KeyPacket struct {
	pk  *packet.PublicKey
	fpr Fingerprint
	raw []byte
}

// ParsePrimaryKeyPacket parses exactly one v4 public key packet (tag 6) of
// at most MaxKeyPacketBytes whose algorithm can sign (and is neither DSA
// nor ElGamal, see newKey). Trailing bytes, inside or after the packet, are
// refused. It never panics.
func ParsePrimaryKeyPacket(b []byte) (*KeyPacket, error) { return parseKeyPacket(b, false) }

// ParseSubkeyPacket is ParsePrimaryKeyPacket for a public subkey packet
// (tag 14).
func ParseSubkeyPacket(b []byte) (*KeyPacket, error) { return parseKeyPacket(b, true) }

func parseKeyPacket(b []byte, subkey bool) (kp *KeyPacket, err error) {
	what := "primary key"
	if subkey {
		what = "subkey"
	}
	if len(b) > MaxKeyPacketBytes {
		return nil, fmt.Errorf("%w: %s packet over %d bytes", ErrTooLarge, what, MaxKeyPacketBytes)
	}
	p, err := readOnePacket(b)
	if err != nil {
		return nil, fmt.Errorf("address: malformed %s packet: %w", what, err)
	}
	pk, ok := p.(*packet.PublicKey)
	if !ok || pk.IsSubkey != subkey {
		return nil, fmt.Errorf("address: not a public %s packet", what)
	}
	if err := checkPacketKey(pk); err != nil {
		return nil, err
	}
	f, err := FingerprintFromBytes(pk.Fingerprint)
	if err != nil {
		return nil, err
	}
	return &KeyPacket{pk: pk, fpr: f, raw: bytes.Clone(b)}, nil
}

// checkPacketKey refuses keys DSEP does not verify with: other versions
// than 4, algorithms that cannot sign, and DSA or ElGamal (whose cost the
// key chooses).
func checkPacketKey(pk *packet.PublicKey) error {
	if pk.Version != 4 {
		return fmt.Errorf("%w: version %d key packet (DSEP uses v4)", ErrNotDSEPKey, pk.Version)
	}
	if pk.PubKeyAlgo == packet.PubKeyAlgoDSA || pk.PubKeyAlgo == packet.PubKeyAlgoElGamal {
		return fmt.Errorf("%w: key packet uses DSA or ElGamal (algorithm %d)", ErrNotDSEPKey, pk.PubKeyAlgo)
	}
	if !pk.CanSign() {
		return fmt.Errorf("%w: key packet algorithm %d cannot sign", ErrNotDSEPKey, pk.PubKeyAlgo)
	}
	return nil
}

func newKeyPacket(pk *packet.PublicKey) *KeyPacket {
	var b bytes.Buffer
	if err := pk.Serialize(&b); err != nil {
		panic("address: serialize key packet: " + err.Error())
	}
	f, _ := FingerprintFromBytes(pk.Fingerprint)
	return &KeyPacket{pk: pk, fpr: f, raw: b.Bytes()}
}

// Fingerprint returns the v4 fingerprint of the key packet.
func (p *KeyPacket) Fingerprint() Fingerprint { return p.fpr }

// Created returns the key's creation time.
func (p *KeyPacket) Created() time.Time { return p.pk.CreationTime }

// Bytes returns the packet: the bytes it was parsed from, or its
// serialization when it came from a Key. Callers must not modify them.
func (p *KeyPacket) Bytes() []byte { return p.raw }

// Packet returns the go-crypto public key. Callers must not modify it.
func (p *KeyPacket) Packet() *packet.PublicKey { return p.pk }

// PrimaryPacket returns k's primary key as a lone key packet.
func (k *Key) PrimaryPacket() *KeyPacket { return newKeyPacket(k.e.PrimaryKey) }

// splitPacket splits the first OpenPGP packet (header and body) off data.
// Partial and indeterminate lengths are refused: no packet DSEP carries
// outside a message uses them.
func splitPacket(data []byte) (pkt, rest []byte, tag byte, err error) {
	if len(data) < 2 || data[0]&0x80 == 0 {
		return nil, nil, 0, errors.New("bad packet header")
	}
	var n, hdr int
	if data[0]&0x40 != 0 { // new format
		tag = data[0] & 0x3f
		switch l := data[1]; {
		case l < 192:
			n, hdr = int(l), 2
		case l < 224:
			if len(data) < 3 {
				return nil, nil, 0, errors.New("truncated packet header")
			}
			n, hdr = (int(l)-192)<<8+int(data[2])+192, 3
		case l == 255:
			if len(data) < 6 {
				return nil, nil, 0, errors.New("truncated packet header")
			}
			n, hdr = int(data[2])<<24|int(data[3])<<16|int(data[4])<<8|int(data[5]), 6
		default:
			return nil, nil, 0, errors.New("partial body length")
		}
	} else { // old format
		tag = (data[0] >> 2) & 0x0f
		switch data[0] & 3 {
		case 0:
			n, hdr = int(data[1]), 2
		case 1:
			if len(data) < 3 {
				return nil, nil, 0, errors.New("truncated packet header")
			}
			n, hdr = int(data[1])<<8|int(data[2]), 3
		case 2:
			if len(data) < 5 {
				return nil, nil, 0, errors.New("truncated packet header")
			}
			n, hdr = int(data[1])<<24|int(data[2])<<16|int(data[3])<<8|int(data[4]), 5
		default:
			return nil, nil, 0, errors.New("indeterminate packet length")
		}
	}
	if n < 0 || len(data)-hdr < n {
		return nil, nil, 0, errors.New("truncated packet")
	}
	return data[:hdr+n], data[hdr+n:], tag, nil
}

// parsePacket parses one whole packet as split by splitPacket and insists
// that go-crypto consumed all of its body. It never panics.
func parsePacket(pkt []byte) (p packet.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("malformed packet: %v", r)
		}
	}()
	r := bytes.NewReader(pkt)
	p, err = packet.Read(r)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, errors.New("packet has trailing bytes")
	}
	return p, nil
}

// readOnePacket parses b as exactly one packet.
func readOnePacket(b []byte) (packet.Packet, error) {
	pkt, rest, _, err := splitPacket(b)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing data after the packet")
	}
	return parsePacket(pkt)
}

// readSignaturePacket parses b as exactly one v4 signature packet of at
// most MaxSignaturePacketBytes.
func readSignaturePacket(b []byte) (*packet.Signature, error) {
	sig, _, err := readSignaturePacketBody(b)
	return sig, err
}

// readSignaturePacketBody is readSignaturePacket returning also the body of
// the packet (without its header).
func readSignaturePacketBody(b []byte) (*packet.Signature, []byte, error) {
	if len(b) > MaxSignaturePacketBytes {
		return nil, nil, fmt.Errorf("%w: signature packet over %d bytes", ErrTooLarge, MaxSignaturePacketBytes)
	}
	p, err := readOnePacket(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: malformed signature packet: %v", ErrBadSignature, err)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a signature packet", ErrBadSignature)
	}
	if sig.Version != 4 {
		return nil, nil, fmt.Errorf("%w: version %d signature (DSEP uses v4)", ErrBadSignature, sig.Version)
	}
	return sig, b[packetHeaderLen(b):], nil
}

// packetHeaderLen returns the header length of a packet splitPacket
// accepted.
func packetHeaderLen(pkt []byte) int {
	if pkt[0]&0x40 != 0 {
		switch l := pkt[1]; {
		case l < 192:
			return 2
		case l < 224:
			return 3
		}
		return 6
	}
	return [...]int{2, 3, 5}[pkt[0]&3]
}

// canonicalFraming reports whether pkt, a packet with a body of n bytes,
// has a new-format header with the shortest length encoding (as go-crypto
// and RFC 9580 writers produce).
func canonicalFraming(pkt []byte, n int) bool {
	want := 6
	switch {
	case n < 192:
		want = 2
	case n < 8384:
		want = 3
	}
	return pkt[0]&0x40 != 0 && packetHeaderLen(pkt) == want
}

// canonicalMPIs reports whether the MPIs of a signature have no leading
// zero bits: their bit count is the exact bit length of the value (RFC
// 9580 §3.2). Otherwise the same signature could be written several ways.
func canonicalMPIs(s *packet.Signature) bool {
	type mpi interface {
		Bytes() []byte
		BitLength() uint16
	}
	for _, f := range []mpi{s.RSASignature, s.DSASigR, s.DSASigS, s.ECDSASigR, s.ECDSASigS, s.EdDSASigR, s.EdDSASigS} {
		if f == nil {
			continue
		}
		b := f.Bytes()
		if len(b) == 0 {
			if f.BitLength() != 0 {
				return false
			}
			continue
		}
		if b[0] == 0 || int(f.BitLength()) != 8*(len(b)-1)+bits.Len8(b[0]) {
			return false
		}
	}
	return true
}

// unhashedLen returns the length of the unhashed subpacket area of the body
// of a v4 signature packet that go-crypto parsed.
func unhashedLen(body []byte) int {
	hashed := int(body[4])<<8 | int(body[5])
	return int(body[6+hashed])<<8 | int(body[7+hashed])
}

// weakHash reports hash algorithms no DSEP signature may use.
func weakHash(h crypto.Hash) bool {
	switch h {
	case crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.SHA3_512:
		return false
	}
	return true
}

// SignWithPrimary makes an OpenPGP v4 binary-document signature (type
// 0x00, SHA-256) over msg with k's primary key, which must hold unlocked
// private material, and returns the signature packet. A DSEP primary is
// certify-only, so such a signature means something only where a format
// says the primary signs (DHT records, docs/protocol.md §9); verify it with
// KeyPacket.VerifyBinary.
func (k *Key) SignWithPrimary(msg []byte, now time.Time) ([]byte, error) {
	priv := k.e.PrivateKey
	if priv == nil || priv.Dummy() || priv.Encrypted {
		return nil, errors.New("address: signing needs the unlocked primary key")
	}
	return signBinary(priv, msg, now)
}

// SignWithSigningSubkey is SignWithPrimary with k's signing subkey valid at
// now, which must hold unlocked private material.
func (k *Key) SignWithSigningSubkey(msg []byte, now time.Time) ([]byte, error) {
	k.mu.Lock()
	sk, ok := k.e.SigningKey(now, nil)
	k.mu.Unlock()
	if !ok || sk.PublicKey == k.e.PrimaryKey {
		return nil, fmt.Errorf("%w: key %s has no valid signing subkey", ErrNotDSEPKey, k.fpr)
	}
	if sk.PrivateKey == nil || sk.PrivateKey.Dummy() || sk.PrivateKey.Encrypted {
		return nil, errors.New("address: signing needs the unlocked signing subkey")
	}
	return signBinary(sk.PrivateKey, msg, now)
}

func signBinary(priv *packet.PrivateKey, msg []byte, now time.Time) ([]byte, error) {
	cfg := pgpConfig(now.Truncate(time.Second), nil)
	pub := &priv.PublicKey
	sig := &packet.Signature{
		Version:           pub.Version,
		SigType:           packet.SigTypeBinary,
		PubKeyAlgo:        pub.PubKeyAlgo,
		Hash:              crypto.SHA256,
		CreationTime:      cfg.Now(),
		IssuerKeyId:       &pub.KeyId,
		IssuerKeyVersion:  uint8(pub.Version),
		IssuerFingerprint: pub.Fingerprint,
	}
	h, err := sig.PrepareSign(cfg)
	if err != nil {
		return nil, fmt.Errorf("address: signing: %w", err)
	}
	h.Write(msg)
	if err := sig.Sign(h, priv, cfg); err != nil {
		return nil, fmt.Errorf("address: signing: %w", err)
	}
	var b bytes.Buffer
	if err := sig.Serialize(&b); err != nil {
		return nil, fmt.Errorf("address: signing: %w", err)
	}
	return b.Bytes(), nil
}

// VerifyBinary checks that sig is exactly one OpenPGP v4 binary-document
// signature packet (type 0x00) with SHA-256, naming p as its issuer (by
// issuer fingerprint or key ID), in canonical form (new-format header with
// the shortest length, empty unhashed subpacket area, minimal MPIs) and
// with a matching hash tag, that verifies over msg with p. No key-flag
// rules apply, and the signature's own creation and expiration times are
// not judged: the format that carries it has its own. Errors wrap
// ErrBadSignature (or ErrTooLarge).
func (p *KeyPacket) VerifyBinary(msg, sig []byte) error {
	s, err := canonicalBinary(msg, sig)
	if err != nil {
		return err
	}
	if !s.CheckKeyIdOrFingerprint(p.pk) {
		return fmt.Errorf("%w: signature is not issued by %s", ErrBadSignature, p.fpr)
	}
	h, err := s.PrepareVerify()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	h.Write(msg)
	if err := p.pk.VerifySignature(h, s); err != nil {
		return fmt.Errorf("%w: signature by %s does not verify: %v", ErrBadSignature, p.fpr, err)
	}
	return nil
}

// CheckCanonicalBinary checks that sig is one OpenPGP v4 binary-document
// signature packet (type 0x00) with SHA-256 over msg in the canonical form
// of docs/protocol.md §9.1 (new-format header with the shortest length,
// empty unhashed subpacket area, minimal MPIs, a hash tag matching msg),
// so that nobody but its signer can vary a bit of it. It does not check
// who signed: pair it with a signature check (VerifyBinary does both for
// one key packet). Errors wrap ErrBadSignature (or ErrTooLarge).
func CheckCanonicalBinary(msg, sig []byte) error {
	_, err := canonicalBinary(msg, sig)
	return err
}

func canonicalBinary(msg, sig []byte) (s *packet.Signature, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%w: malformed signature: %v", ErrBadSignature, r)
		}
	}()
	s, body, err := readSignaturePacketBody(sig)
	if err != nil {
		return nil, err
	}
	if unhashedLen(body) != 0 {
		return nil, fmt.Errorf("%w: the signature has unhashed subpackets", ErrBadSignature)
	}
	if !canonicalFraming(sig, len(body)) || !canonicalMPIs(s) {
		return nil, fmt.Errorf("%w: the signature packet is not in canonical form (new-format header, shortest length, minimal MPIs)", ErrBadSignature)
	}
	if s.SigType != packet.SigTypeBinary {
		return nil, fmt.Errorf("%w: signature type %#x, want a binary-document signature (0x00)", ErrBadSignature, uint8(s.SigType))
	}
	if s.Hash != crypto.SHA256 {
		return nil, fmt.Errorf("%w: signature hash is not SHA-256", ErrBadSignature)
	}
	// The hash tag (the digest's left 16 bits) must match too (go-crypto
	// checks it only for v5 and v6 signatures): with the unhashed area
	// empty, nobody but the signer can vary these bytes of a valid
	// signature.
	h, err := s.PrepareVerify()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	h.Write(msg)
	if err := packet.VerifyHashTag(h, s); err != nil {
		return nil, fmt.Errorf("%w: hash tag: %v", ErrBadSignature, err)
	}
	return s, nil
}

// ParseRevocation parses and verifies a key revocation signature packet
// made by the primary key p, as ParseRevocation does for a whole key.
func (p *KeyPacket) ParseRevocation(data []byte) (*Revocation, error) {
	if p.pk.IsSubkey {
		return nil, errors.New("address: a subkey packet cannot be revoked as a key")
	}
	return ParseRevocation(&Key{e: &openpgp.Entity{PrimaryKey: p.pk}, fpr: p.fpr}, data)
}

// VerifyCertification checks that sig is one signature packet by the
// primary key p certifying the User ID uid on the primary key user: a
// generic, persona, casual or positive certification with a strong hash,
// dated at most MaxClockSkew after now and not expired at now. Errors:
// ErrNoCertification (does not verify, wrong type or signer, dated in the
// future), ErrCertificationExpired, ErrTooLarge.
func (p *KeyPacket) VerifyCertification(user *KeyPacket, uid string, sig []byte, now time.Time) (c Certification, err error) {
	if p.fpr == user.fpr {
		return c, fmt.Errorf("%w: a key's self-signature is not a third-party certification", ErrNoCertification)
	}
	s, err := readSignaturePacket(sig)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return c, err
		}
		return c, fmt.Errorf("%w: %v", ErrNoCertification, err)
	}
	switch s.SigType {
	case packet.SigTypeGenericCert, packet.SigTypePersonaCert, packet.SigTypeCasualCert, packet.SigTypePositiveCert:
	default:
		return c, fmt.Errorf("%w: signature type %#x is not a certification", ErrNoCertification, uint8(s.SigType))
	}
	if weakHash(s.Hash) {
		return c, fmt.Errorf("%w: certification uses a weak hash", ErrNoCertification)
	}
	if !s.CheckKeyIdOrFingerprint(p.pk) {
		return c, fmt.Errorf("%w: certification is not issued by %s", ErrNoCertification, p.fpr)
	}
	if err := verifyUserIDSig(p.pk, uid, user.pk, s); err != nil {
		return c, fmt.Errorf("%w: certification of %q by %s does not verify: %v", ErrNoCertification, uid, p.fpr, err)
	}
	if s.CreationTime.After(now.Add(MaxClockSkew)) {
		return c, fmt.Errorf("%w: certification dated %s, in the future", ErrNoCertification, s.CreationTime.UTC().Format(time.RFC3339))
	}
	if sigExpiredAt(s, now) {
		return c, ErrCertificationExpired
	}
	c = Certification{UserID: uid, Signer: p.fpr, Created: s.CreationTime}
	if s.SigLifetimeSecs != nil && *s.SigLifetimeSecs != 0 {
		c.Expires = s.CreationTime.Add(time.Duration(*s.SigLifetimeSecs) * time.Second)
	}
	return c, nil
}

func verifyUserIDSig(signer *packet.PublicKey, uid string, user *packet.PublicKey, s *packet.Signature) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed signature: %v", r)
		}
	}()
	return signer.VerifyUserIdSignature(uid, user, s)
}

// CertificationPacket is FindCertification returning also the signature
// packet of the certification it found, as an email record carries it.
func (k *Key) CertificationPacket(uid string, signer *Key, now time.Time) (Certification, []byte, error) {
	c, err := FindCertification(k, uid, signer, now)
	if err != nil {
		return c, nil, err
	}
	for _, vs := range k.e.Identities[uid].OtherCertifications {
		s := vs.Packet
		if s.SigType == packet.SigTypeCertificationRevocation || !s.CreationTime.Equal(c.Created) ||
			!s.CheckKeyIdOrFingerprint(signer.e.PrimaryKey) {
			continue
		}
		var b bytes.Buffer
		if err := s.Serialize(&b); err != nil {
			continue
		}
		got, err := signer.PrimaryPacket().VerifyCertification(k.PrimaryPacket(), uid, b.Bytes(), now)
		if err == nil && got.Created.Equal(c.Created) && got.Expires.Equal(c.Expires) {
			return c, b.Bytes(), nil
		}
	}
	return Certification{}, nil, fmt.Errorf("%w: the certification of %q by %s cannot be exported", ErrNoCertification, uid, signer.fpr)
}

// SigningSubkey is an identity's signing subkey with the binding signature
// that ties it to the primary key (carrying the subkey's back-signature):
// what a reach record carries so that a verifier holding no certificate
// can check who signed (docs/protocol.md §9.3).
type SigningSubkey struct {
	Primary *KeyPacket
	Subkey  *KeyPacket
	Binding []byte // the subkey binding signature packet
}

// SigningSubkey returns k's signing subkey valid at now (the newest one)
// with its binding signature.
func (k *Key) SigningSubkey(now time.Time) (*SigningSubkey, error) {
	// go-crypto's Signature.Serialize writes into the signature (it
	// caches its encoding), so it runs under the lock too.
	k.mu.Lock()
	sk, ok := k.e.SigningKey(now, nil)
	if !ok || sk.PublicKey == k.e.PrimaryKey || sk.SelfSignature == nil {
		k.mu.Unlock()
		return nil, fmt.Errorf("%w: key %s has no valid signing subkey", ErrNotDSEPKey, k.fpr)
	}
	var b bytes.Buffer
	err := sk.SelfSignature.Serialize(&b)
	k.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("address: serialize binding: %w", err)
	}
	return &SigningSubkey{Primary: k.PrimaryPacket(), Subkey: newKeyPacket(sk.PublicKey), Binding: b.Bytes()}, nil
}

// ParseSigningSubkey parses a subkey packet and its binding signature
// packet and checks, at now, that binding is a subkey binding signature
// (type 0x18) by primary with a strong hash, granting the signing flag,
// that carries a valid primary-key binding (back-signature, type 0x19) by
// the subkey, is dated at most MaxClockSkew after now, and has not expired
// (neither the signature nor the subkey). Errors wrap ErrBadSignature,
// ErrNotDSEPKey or ErrTooLarge.
func ParseSigningSubkey(primary *KeyPacket, subkey, binding []byte, now time.Time) (ss *SigningSubkey, err error) {
	sub, err := ParseSubkeyPacket(subkey)
	if err != nil {
		return nil, err
	}
	s, err := readSignaturePacket(binding)
	if err != nil {
		return nil, err
	}
	if s.SigType != packet.SigTypeSubkeyBinding {
		return nil, fmt.Errorf("%w: signature type %#x is not a subkey binding", ErrBadSignature, uint8(s.SigType))
	}
	if !s.FlagsValid || !s.FlagSign {
		return nil, fmt.Errorf("%w: the binding does not grant the signing flag", ErrBadSignature)
	}
	if weakHash(s.Hash) || s.EmbeddedSignature == nil || weakHash(s.EmbeddedSignature.Hash) {
		return nil, fmt.Errorf("%w: the binding lacks a back-signature or uses a weak hash", ErrBadSignature)
	}
	if !s.CheckKeyIdOrFingerprint(primary.pk) {
		return nil, fmt.Errorf("%w: the binding is not issued by %s", ErrBadSignature, primary.fpr)
	}
	defer func() {
		if r := recover(); r != nil {
			ss, err = nil, fmt.Errorf("%w: malformed binding: %v", ErrBadSignature, r)
		}
	}()
	// VerifyKeySignature checks the binding and, the signing flag being
	// set, the embedded back-signature by the subkey.
	if err := primary.pk.VerifyKeySignature(sub.pk, s); err != nil {
		return nil, fmt.Errorf("%w: the binding of subkey %s to %s does not verify: %v", ErrBadSignature, sub.fpr, primary.fpr, err)
	}
	if s.CreationTime.After(now.Add(MaxClockSkew)) {
		return nil, fmt.Errorf("%w: the binding is dated in the future", ErrBadSignature)
	}
	if sigExpiredAt(s, now) {
		return nil, fmt.Errorf("%w: the binding of subkey %s has expired", ErrBadSignature, sub.fpr)
	}
	if s.KeyLifetimeSecs != nil && *s.KeyLifetimeSecs != 0 &&
		!now.Before(sub.pk.CreationTime.Add(time.Duration(*s.KeyLifetimeSecs)*time.Second)) {
		return nil, fmt.Errorf("%w: subkey %s has expired", ErrKeyExpired, sub.fpr)
	}
	return &SigningSubkey{Primary: primary, Subkey: sub, Binding: bytes.Clone(binding)}, nil
}

// SelfSigned returns a public copy of k carrying only its own signatures
// (User ID self-certifications and self-revocations, subkey bindings and
// subkey revocations, direct-key signatures): no third-party
// certification and no key revocation. It is what a key record publishes
// (docs/protocol.md §9.3), so that nobody can flood or strip
// certifications in the DHT; revocations travel in their own records.
func (k *Key) SelfSigned() *Key {
	c := k.PublicOnly()
	e := c.e
	pk := e.PrimaryKey
	e.Revocations = nil
	e.DirectSignatures = ownSigs(pk, e.DirectSignatures)
	for _, id := range e.Identities {
		id.OtherCertifications = nil
		id.SelfCertifications = ownSigs(pk, id.SelfCertifications)
		id.Revocations = ownSigs(pk, id.Revocations)
	}
	for i := range e.Subkeys {
		e.Subkeys[i].Bindings = ownSigs(pk, e.Subkeys[i].Bindings)
		e.Subkeys[i].Revocations = ownSigs(pk, e.Subkeys[i].Revocations)
	}
	return c
}

func ownSigs(pk *packet.PublicKey, sigs []*packet.VerifiableSignature) []*packet.VerifiableSignature {
	var out []*packet.VerifiableSignature
	for _, s := range sigs {
		if s.Packet.CheckKeyIdOrFingerprint(pk) {
			out = append(out, s)
		}
	}
	return out
}

// ReadSelfSignedKey reads one binary transferable public key that carries
// only self-signed material, as a key record does (docs/protocol.md §9.3).
// It walks the packets first: the first is a public key packet; the others
// are User ID (tag 13), public subkey (tag 14) and signature (tag 2)
// packets, no other; no packet has bytes go-crypto would not read. Every
// signature must name the primary as its issuer and be of a type that
// belongs where it stands: a direct-key signature (0x1f) after the
// primary; certifications (0x10–0x13) or certification revocations (0x30)
// after a User ID; subkey bindings (0x18) or subkey revocations (0x28)
// after a subkey. A signature by another key or a key revocation (0x20)
// wraps ErrThirdParty. The key is then read as ReadKey does; its validity
// is the caller's to check (Check).
func ReadSelfSignedKey(b []byte) (*Key, error) {
	if len(b) > MaxKeyBytes {
		return nil, fmt.Errorf("%w: key over %d bytes", ErrTooLarge, MaxKeyBytes)
	}
	var primary *packet.PublicKey
	var ctx byte // the tag of the packet signatures attach to
	for rest := b; len(rest) > 0; {
		pkt, next, tag, err := splitPacket(rest)
		if err != nil {
			return nil, fmt.Errorf("address: malformed key: %v", err)
		}
		rest = next
		if primary == nil && tag != 6 {
			return nil, errors.New("address: malformed key: the first packet is not a public key")
		}
		switch tag {
		case 6, 13, 14, 2:
		default:
			return nil, fmt.Errorf("address: malformed key: packet type %d has no place in a DSEP key", tag)
		}
		p, err := parsePacket(pkt)
		if err != nil {
			return nil, fmt.Errorf("address: malformed key: %v", err)
		}
		switch p := p.(type) {
		case *packet.PublicKey:
			if tag == 6 {
				if primary != nil {
					return nil, errors.New("address: more than one key")
				}
				primary = p
			}
			ctx = tag
		case *packet.UserId:
			ctx = tag
		case *packet.Signature:
			if err := checkOwnSig(primary, ctx, p); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("address: malformed key: unexpected packet type %d", tag)
		}
	}
	if primary == nil {
		return nil, ErrNoKey
	}
	return ReadKey(bytes.NewReader(b))
}

func checkOwnSig(primary *packet.PublicKey, ctx byte, s *packet.Signature) error {
	t := s.SigType
	var ok bool
	switch ctx {
	case 6:
		if t == packet.SigTypeKeyRevocation {
			return fmt.Errorf("%w: a key revocation (publish it in a revocation record)", ErrThirdParty)
		}
		ok = t == packet.SigTypeDirectSignature
	case 13:
		ok = t == packet.SigTypeGenericCert || t == packet.SigTypePersonaCert || t == packet.SigTypeCasualCert ||
			t == packet.SigTypePositiveCert || t == packet.SigTypeCertificationRevocation
	case 14:
		ok = t == packet.SigTypeSubkeyBinding || t == packet.SigTypeSubkeyRevocation
	}
	if !ok {
		return fmt.Errorf("address: malformed key: signature type %#x after packet type %d", uint8(t), ctx)
	}
	if !s.CheckKeyIdOrFingerprint(primary) {
		return fmt.Errorf("%w: a signature of type %#x by another key", ErrThirdParty, uint8(t))
	}
	return nil
}
