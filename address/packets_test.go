package address

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// reframe returns a signature packet with body under a new-format header.
func reframe(body []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(0xc2)
	switch n := len(body); {
	case n < 192:
		b.WriteByte(byte(n))
	case n < 8384:
		n -= 192
		b.WriteByte(byte(n>>8) + 192)
		b.WriteByte(byte(n))
	default:
		b.Write([]byte{255, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	b.Write(body)
	return b.Bytes()
}

func TestKeyPackets(t *testing.T) {
	alice := newUser(t, "Alice", "alice@example.org")
	p := alice.PrimaryPacket()
	if p.Fingerprint() != alice.Fingerprint() || !p.Created().Equal(testNow) || p.Packet() != alice.Entity().PrimaryKey {
		t.Fatal("PrimaryPacket")
	}
	back, err := ParsePrimaryKeyPacket(p.Bytes())
	if err != nil || back.Fingerprint() != alice.Fingerprint() || !bytes.Equal(back.Bytes(), p.Bytes()) {
		t.Fatalf("ParsePrimaryKeyPacket: %v", err)
	}
	ss, err := alice.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSubkeyPacket(ss.Subkey.Bytes()); err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	for _, s := range alice.Entity().Subkeys {
		if s.PublicKey.PubKeyAlgo == packet.PubKeyAlgoECDH {
			s.PublicKey.Serialize(&enc)
		}
	}
	for name, c := range map[string]struct {
		b      []byte
		subkey bool
	}{
		"subkey as primary":        {ss.Subkey.Bytes(), false},
		"primary as subkey":        {p.Bytes(), true},
		"encryption subkey":        {enc.Bytes(), true},
		"trailing byte":            {append(bytes.Clone(p.Bytes()), 0), false},
		"two packets":              {append(bytes.Clone(p.Bytes()), p.Bytes()...), false},
		"truncated":                {p.Bytes()[:len(p.Bytes())-1], false},
		"byte inside the packet":   {reframeKey(p.Bytes(), 6, 0), false},
		"empty":                    {nil, false},
		"oversized":                {make([]byte, MaxKeyPacketBytes+1), false},
		"a signature":              {ss.Binding, false},
		"partial length":           {append([]byte{0xc6, 0xe1}, p.Bytes()[2:]...), false},
		"old-format indeterminate": {append([]byte{0x9b}, p.Bytes()[2:]...), false},
	} {
		parse := ParsePrimaryKeyPacket
		if c.subkey {
			parse = ParseSubkeyPacket
		}
		if _, err := parse(c.b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Old-format headers are read too (GnuPG writes them).
	old := append([]byte{0x98, p.Bytes()[1]}, p.Bytes()[2:]...)
	if k, err := ParsePrimaryKeyPacket(old); err != nil || k.Fingerprint() != alice.Fingerprint() {
		t.Fatalf("old-format header: %v", err)
	}
}

// reframeKey returns a key packet with one byte appended to its body.
func reframeKey(pkt []byte, tag byte, extra byte) []byte {
	body := append(bytes.Clone(pkt[2:]), extra)
	return append([]byte{0xc0 | tag, byte(len(body))}, body...)
}

func TestSignBinary(t *testing.T) {
	alice, bob := newUser(t, "Alice", "alice@example.org"), newUser(t, "Bob", "bob@example.org")
	msg := []byte("context\x00message")
	byPrimary, err := alice.SignWithPrimary(msg, testNow)
	if err != nil {
		t.Fatal(err)
	}
	bySubkey, err := alice.SignWithSigningSubkey(msg, testNow)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := alice.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	p, sub := alice.PrimaryPacket(), ss.Subkey
	if err := p.VerifyBinary(msg, byPrimary); err != nil {
		t.Fatal(err)
	}
	if err := sub.VerifyBinary(msg, bySubkey); err != nil {
		t.Fatal(err)
	}
	s, err := readSignaturePacket(byPrimary)
	if err != nil || s.SigType != packet.SigTypeBinary || !s.CreationTime.Equal(testNow) || !s.CheckKeyIdOrFingerprint(p.pk) {
		t.Fatalf("signature packet: %v", err)
	}
	// An issuer key ID in the unhashed area: valid OpenPGP, refused here.
	body := byPrimary[2:]
	hashed := int(body[4])<<8 | int(body[5])
	unhashed := append([]byte{0, 10, 9, 16}, p.pk.Fingerprint[12:20]...)
	withUnhashed := reframe(cat(body[:6+hashed], unhashed, body[8+hashed:]))
	if _, err := readSignaturePacket(withUnhashed); err != nil {
		t.Fatalf("re-framed signature does not parse: %v", err)
	}
	oldFormat := append([]byte{0x88, byPrimary[1]}, byPrimary[2:]...) // old-format header, same body
	longLen := append([]byte{0xc2, 0xff, 0, 0, 0, byPrimary[1]}, byPrimary[2:]...)
	// The EdDSA R MPI, re-encoded with a leading zero octet: same value.
	rOff := 2 + 8 + hashed + 2
	rBits := int(byPrimary[rOff])<<8 | int(byPrimary[rOff+1])
	paddedR := reframe(cat(byPrimary[2:rOff], []byte{byte((rBits + 8 + 7) / 8 * 8 >> 8), byte((rBits + 8 + 7) / 8 * 8)}, []byte{0}, byPrimary[rOff+2:]))
	// A wrong bit count that reads the same octets.
	wrongBits := rBits - 1
	if rBits%8 == 1 {
		wrongBits = rBits + 1
	}
	lowBits := bytes.Clone(byPrimary)
	lowBits[rOff], lowBits[rOff+1] = byte(wrongBits>>8), byte(wrongBits)
	// Each re-encoding is the same signature, refused only for its form.
	for _, b := range [][]byte{oldFormat, longLen, paddedR, lowBits} {
		if _, err := readSignaturePacket(b); err != nil {
			t.Fatalf("re-encoded signature % x does not parse: %v", b[:16], err)
		}
		if err := p.VerifyBinary(msg, b); err == nil || !strings.Contains(err.Error(), "canonical") {
			t.Fatalf("re-encoded signature: %v", err)
		}
	}
	tag := bytes.Clone(byPrimary)
	tag[2+8+hashed] ^= 1 // the hash tag
	bobSig, err := bob.SignWithPrimary(msg, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		k   *KeyPacket
		msg []byte
		sig []byte
	}{
		"primary's signature, subkey":   {sub, msg, byPrimary},
		"subkey's signature, primary":   {p, msg, bySubkey},
		"another message":               {p, []byte("other"), byPrimary},
		"another key":                   {p, msg, bobSig},
		"unhashed subpackets":           {p, msg, withUnhashed},
		"hash tag":                      {p, msg, tag},
		"old-format header":             {p, msg, oldFormat},
		"long length":                   {p, msg, longLen},
		"MPI with a leading zero octet": {p, msg, paddedR},
		"MPI bit count wrong":           {p, msg, lowBits},
		"flipped":                       {p, msg, append(bytes.Clone(byPrimary[:len(byPrimary)-1]), byPrimary[len(byPrimary)-1]^1)},
		"trailing":                      {p, msg, append(bytes.Clone(byPrimary), 0)},
		"not a binary signature":        {ss.Primary, nil, ss.Binding},
		"empty":                         {p, msg, nil},
		"oversized":                     {p, msg, make([]byte, MaxSignaturePacketBytes+1)},
		"a key packet, not a signature": {p, msg, p.Bytes()},
	} {
		if err := c.k.VerifyBinary(c.msg, c.sig); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := alice.PublicOnly().SignWithPrimary(msg, testNow); err == nil {
		t.Fatal("signed without the private primary")
	}
	if _, err := alice.PublicOnly().SignWithSigningSubkey(msg, testNow); err == nil {
		t.Fatal("signed without the private subkey")
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestPacketRevocation(t *testing.T) {
	alice, bob := newUser(t, "Alice", "alice@example.org"), newUser(t, "Bob", "bob@example.org")
	rev, err := Revoke(alice, ReasonRetired, "moved on", testNow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := alice.PrimaryPacket().ParseRevocation(rev.Bytes())
	if err != nil || got.Key != alice.Fingerprint() || got.Kind() != "retired" || got.Text != "moved on" {
		t.Fatalf("ParseRevocation: %+v, %v", got, err)
	}
	if _, err := bob.PrimaryPacket().ParseRevocation(rev.Bytes()); err == nil {
		t.Fatal("alice's revocation verified as bob's")
	}
	ss, err := bob.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Subkey.ParseRevocation(rev.Bytes()); err == nil {
		t.Fatal("a subkey packet revoked as a key")
	}
}

func TestPacketCertification(t *testing.T) {
	alice, dom, dom2 := newUser(t, "Alice", "alice@example.org"), newDomain(t, "example.org"), newDomain(t, "example.org")
	const uid = "Alice <alice@example.org>"
	cert := certify(t, alice, dom, "alice@example.org", testNow, 48*time.Hour)
	c, sig, err := cert.CertificationPacket(uid, dom, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want, err := FindCertification(cert, uid, dom, testNow)
	if err != nil || !c.Created.Equal(want.Created) || !c.Expires.Equal(want.Expires) || c.Signer != dom.Fingerprint() {
		t.Fatalf("CertificationPacket %+v, FindCertification %+v", c, want)
	}
	dp, ap := dom.PrimaryPacket(), alice.PrimaryPacket()
	got, err := dp.VerifyCertification(ap, uid, sig, testNow.Add(time.Hour))
	if err != nil || !got.Expires.Equal(testNow.Add(48*time.Hour)) || got.UserID != uid || got.Signer != dom.Fingerprint() {
		t.Fatalf("VerifyCertification: %+v, %v", got, err)
	}
	for name, c := range map[string]struct {
		signer, user *KeyPacket
		uid          string
		now          time.Time
		want         error
	}{
		"another signer":  {dom2.PrimaryPacket(), ap, uid, testNow, ErrNoCertification},
		"another user":    {dp, dom2.PrimaryPacket(), uid, testNow, ErrNoCertification},
		"another User ID": {dp, ap, "Alice <alice@example.com>", testNow, ErrNoCertification},
		"self":            {ap, ap, uid, testNow, ErrNoCertification},
		"expired":         {dp, ap, uid, testNow.Add(48 * time.Hour), ErrCertificationExpired},
		"in the future":   {dp, ap, uid, testNow.Add(-MaxClockSkew - time.Second), ErrNoCertification},
	} {
		if _, err := c.signer.VerifyCertification(c.user, c.uid, sig, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if _, err := dp.VerifyCertification(ap, uid, bindingOf(t, alice), testNow); !errors.Is(err, ErrNoCertification) {
		t.Fatalf("a binding as certification: %v", err)
	}
	if _, _, err := alice.CertificationPacket(uid, dom, testNow); !errors.Is(err, ErrNoCertification) {
		t.Fatalf("uncertified: %v", err)
	}
}

// bindingOf returns k's signing subkey binding.
func bindingOf(t testing.TB, k *Key) []byte {
	ss, err := k.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	return ss.Binding
}

func TestPacketSigningSubkey(t *testing.T) {
	alice, bob := newUser(t, "Alice", "alice@example.org"), newUser(t, "Bob", "bob@example.org")
	ss, err := alice.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	if ss.Primary.Fingerprint() != alice.Fingerprint() || ss.Subkey.Fingerprint() == alice.Fingerprint() {
		t.Fatal("SigningSubkey")
	}
	got, err := ParseSigningSubkey(ss.Primary, ss.Subkey.Bytes(), ss.Binding, testNow.Add(time.Hour))
	if err != nil || got.Subkey.Fingerprint() != ss.Subkey.Fingerprint() {
		t.Fatalf("ParseSigningSubkey: %v", err)
	}
	bs, err := bob.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	var encBinding bytes.Buffer
	for _, s := range alice.Entity().Subkeys {
		if s.PublicKey.PubKeyAlgo == packet.PubKeyAlgoECDH {
			s.PublicKey.Serialize(&enc)
			s.Bindings[0].Packet.Serialize(&encBinding)
		}
	}
	flipped := bytes.Clone(ss.Binding)
	flipped[len(flipped)-1] ^= 1
	for name, c := range map[string]struct {
		primary         *KeyPacket
		subkey, binding []byte
		now             time.Time
	}{
		"another primary":       {bob.PrimaryPacket(), ss.Subkey.Bytes(), ss.Binding, testNow},
		"another subkey":        {ss.Primary, bs.Subkey.Bytes(), ss.Binding, testNow},
		"another binding":       {ss.Primary, ss.Subkey.Bytes(), bs.Binding, testNow},
		"forged binding":        {ss.Primary, ss.Subkey.Bytes(), flipped, testNow},
		"encryption subkey":     {ss.Primary, enc.Bytes(), encBinding.Bytes(), testNow},
		"binding in the future": {ss.Primary, ss.Subkey.Bytes(), ss.Binding, testNow.Add(-MaxClockSkew - time.Second)},
		"not a binding":         {ss.Primary, ss.Subkey.Bytes(), mustSign(t, alice, testNow), testNow},
	} {
		if _, err := ParseSigningSubkey(c.primary, c.subkey, c.binding, c.now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := alice.PublicOnly().SigningSubkey(testNow); err != nil {
		t.Fatalf("a public key has a signing subkey too: %v", err)
	}
}

func mustSign(t testing.TB, k *Key, now time.Time) []byte {
	t.Helper()
	s, err := k.SignWithPrimary([]byte("x"), now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSelfSigned(t *testing.T) {
	alice, dom := newUser(t, "Alice", "alice@example.org"), newDomain(t, "example.org")
	cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
	if _, err := ReadSelfSignedKey(cert.Bytes()); !errors.Is(err, ErrThirdParty) {
		t.Fatalf("certified key: %v", err)
	}
	self := cert.SelfSigned()
	if self.HasSecret() || self.Fingerprint() != alice.Fingerprint() {
		t.Fatal("SelfSigned")
	}
	if _, err := FindCertification(self, "Alice <alice@example.org>", dom, testNow); err != ErrNoCertification {
		t.Fatalf("certification survived: %v", err)
	}
	k, err := ReadSelfSignedKey(self.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if k.Check(testNow) != nil || !bytes.Equal(k.Bytes(), self.Bytes()) {
		t.Fatal("self-signed key read back")
	}
	// The source keeps its certification.
	if _, err := FindCertification(cert, "Alice <alice@example.org>", dom, testNow); err != nil {
		t.Fatal(err)
	}

	revoked := alice.Clone()
	if _, err := Revoke(revoked, ReasonCompromised, "", testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSelfSignedKey(revoked.Bytes()); !errors.Is(err, ErrThirdParty) {
		t.Fatalf("revoked key: %v", err)
	}
	if r := revoked.SelfSigned(); r.Revocation() != nil {
		t.Fatal("revocation survived SelfSigned")
	}

	// A subkey revocation is the key's own material.
	sub := alice.Clone()
	cfg := pgpConfig(testNow, nil)
	for i := range sub.Entity().Subkeys {
		if sub.Entity().Subkeys[i].PublicKey.PubKeyAlgo == packet.PubKeyAlgoECDH {
			if err := sub.Entity().Subkeys[i].Revoke(packet.KeySuperseded, "", cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := ReadSelfSignedKey(sub.SelfSigned().Bytes()); err != nil {
		t.Fatalf("subkey revocation: %v", err)
	}

	for name, b := range map[string][]byte{
		"armored":       alice.Armored(),
		"two keys":      cat(alice.Bytes(), dom.Bytes()),
		"trailing byte": cat(alice.PublicOnly().Bytes(), []byte{0}),
		"user ID first": alice.Bytes()[len(alice.PrimaryPacket().Bytes()):],
		"secret key":    secretBytes(t, alice),
		"empty":         nil,
		"oversized":     make([]byte, MaxKeyBytes+1),
		"lone primary":  alice.PrimaryPacket().Bytes(),
	} {
		if _, err := ReadSelfSignedKey(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else if errors.Is(err, ErrThirdParty) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func secretBytes(t testing.TB, k *Key) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := k.Entity().SerializePrivateWithoutSigning(&b, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzPackets runs the packet-level decoders on arbitrary bytes: none may
// panic, and a key ReadSelfSignedKey accepts reads back the same.
func FuzzPackets(f *testing.F) {
	alice, err := NewIdentity("Alice", mustEmail(f, "alice@example.org"), NewIdentityOptions{Now: testNow, Rand: detRand(5)})
	if err != nil {
		f.Fatal(err)
	}
	dom, err := NewDomainKey("example.org", NewIdentityOptions{Now: testNow, Rand: detRand(6)})
	if err != nil {
		f.Fatal(err)
	}
	const uid = "Alice <alice@example.org>"
	cert := certify(f, alice, dom, "alice@example.org", testNow, 0)
	_, certSig, err := cert.CertificationPacket(uid, dom, testNow)
	if err != nil {
		f.Fatal(err)
	}
	ss, err := alice.SigningSubkey(testNow)
	if err != nil {
		f.Fatal(err)
	}
	msg := []byte("message")
	sig, err := alice.SignWithPrimary(msg, testNow)
	if err != nil {
		f.Fatal(err)
	}
	rev, err := Revoke(alice.Clone(), ReasonRetired, "", testNow)
	if err != nil {
		f.Fatal(err)
	}
	for i, seed := range [][]byte{
		alice.PrimaryPacket().Bytes(), ss.Subkey.Bytes(), alice.SelfSigned().Bytes(), sig,
		ss.Binding, certSig, rev.Bytes(), cert.Bytes(),
	} {
		f.Add(uint8(i), seed)
	}
	primary, user, sub := alice.PrimaryPacket(), alice.PrimaryPacket(), ss.Subkey.Bytes()
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		switch kind % 8 {
		case 0:
			ParsePrimaryKeyPacket(b)
		case 1:
			ParseSubkeyPacket(b)
		case 2:
			k, err := ReadSelfSignedKey(b)
			if err != nil {
				return
			}
			again, err := ReadSelfSignedKey(k.Bytes())
			if err != nil {
				t.Fatalf("re-encoded key is refused: %v", err)
			}
			if again.Fingerprint() != k.Fingerprint() {
				t.Fatal("fingerprint changed")
			}
		case 3:
			if err := primary.VerifyBinary(msg, b); err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither ErrBadSignature nor ErrTooLarge", err)
			}
		case 4:
			ParseSigningSubkey(primary, sub, b, testNow)
		case 5:
			dom.PrimaryPacket().VerifyCertification(user, uid, b, testNow)
		case 6:
			primary.ParseRevocation(b)
		case 7:
			ParseSigningSubkey(primary, b, ss.Binding, testNow)
		}
	})
}
