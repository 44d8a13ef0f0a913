package record

import (
	"bytes"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
)

// flipLast returns b with its last byte changed (inside the signature's
// last MPI, so the packet still parses).
func flipLast(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 0x01
	return c
}

// withSignature returns the value with its signature replaced.
func withSignature(t testing.TB, value, sig []byte) []byte {
	t.Helper()
	s, err := UnmarshalSigned(value)
	if err != nil {
		t.Fatal(err)
	}
	s.Signature = sig
	return s.Marshal()
}

func TestRejections(t *testing.T) {
	w := newWorld(t)
	aliceFpr := w.alice.Fingerprint()
	keyKey, keyVal, err := NewKey(w.alice, 1, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	emailKey, emailVal, err := NewEmail(w.dom, w.aliceCert, w.email, 1, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	reachKey := KeyOf(ReachType, aliceFpr)
	revKey := KeyOf(RevType, aliceFpr)
	selfSigned := w.alice.SelfSigned().Bytes()
	keyRecord := func(r Record) []byte { return mustSign(t, r, byPrimary(w.alice)) }

	// Alice's signing subkey and binding, Bob's, and a forged binding.
	ss, err := w.alice.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	bobSS, err := w.bob.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	reachBody := func(signing, binding []byte) []byte {
		return ReachBody{Primary: ss.Primary.Bytes(), Signing: signing, Binding: binding}.Marshal()
	}

	// Email bodies: a certification by another domain key, a short one.
	emailBody := func(cert []byte) []byte {
		return EmailBody{UserPrimary: w.alice.PrimaryPacket().Bytes(), UserID: w.uid, DomainPrimary: w.dom.PrimaryPacket().Bytes(), Certification: cert}.Marshal()
	}
	_, otherCert, err := certify(t, w.alice, w.dom2, "alice@example.org", 0).CertificationPacket(w.uid, w.dom2, testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, shortCert, err := certify(t, w.alice, w.dom, "alice@example.org", time.Hour).CertificationPacket(w.uid, w.dom, testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, goodCert, err := w.aliceCert.CertificationPacket(w.uid, w.dom, testNow)
	if err != nil {
		t.Fatal(err)
	}

	// Key material with third-party signatures or a revocation.
	revoked := newUser(t, "Carol", "carol@example.org", nil)
	carolRev, err := address.Revoke(revoked, address.ReasonRetired, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	bobRev, err := address.Revoke(w.bob.Clone(), address.ReasonCompromised, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	revBody := func(primary, rev []byte) []byte { return RevBody{Primary: primary, Revocation: rev}.Marshal() }

	for _, c := range []struct {
		name  string
		key   string
		value []byte
		now   time.Time // zero: checkAt
		want  error
	}{
		// Signatures.
		{"flipped signature byte", keyKey, withSignature(t, keyVal, flipLast(mustSignature(t, keyVal))), time.Time{}, ErrBadSignature},
		{"signed by another key", keyKey, keyRecord2(t, selfSigned, w.bob), time.Time{}, ErrBadSignature},
		{"signature of another record", keyKey, withSignature(t, keyVal, mustSignature(t, keyRecord(rec(KeyType, 2, selfSigned)))), time.Time{}, ErrBadSignature},
		{"signature for another namespace", revKey, revSignedAs(t, w.alice, aliceFpr, carolRev), time.Time{}, ErrBadSignature},
		{"unsigned", keyKey, withSignature(t, keyVal, nil), time.Time{}, ErrUnsigned},
		{"signature not a packet", keyKey, withSignature(t, keyVal, []byte("sig")), time.Time{}, ErrBadSignature},
		// Names.
		{"A's key under B's fingerprint", KeyOf(KeyType, w.bob.Fingerprint()), keyVal, time.Time{}, ErrNameMismatch},
		{"email under another email's slot", EmailKey(mustEmail(t, "bob@example.org"), w.dom.Fingerprint()), emailVal, time.Time{}, ErrNameMismatch},
		{"email under another domain's slot", EmailKey(w.email, w.dom2.Fingerprint()), emailVal, time.Time{}, ErrNameMismatch},
		{"reach under another name", KeyOf(ReachType, w.bob.Fingerprint()), mustSign(t, rec(ReachType, 1, reachBody(ss.Subkey.Bytes(), ss.Binding)), bySubkey(w.alice)), time.Time{}, ErrNameMismatch},
		{"upper-case name", "/dsep-key/" + upper(aliceFpr.String()), keyVal, time.Time{}, ErrNameMismatch},
		// Sizes.
		{"oversized key value", keyKey, keyRecord(rec(KeyType, 1, make([]byte, 16<<10))), time.Time{}, ErrTooLarge},
		{"oversized rev value", revKey, mustSign(t, rec(RevType, 1, make([]byte, 8<<10)), byPrimary(w.alice)), time.Time{}, ErrTooLarge},
		// Times.
		{"expired", keyKey, keyVal, testNow.Add(DefaultTTL), ErrExpired},
		{"expired long ago", keyKey, keyVal, testNow.Add(365 * 24 * time.Hour), ErrExpired},
		{"dated 11 minutes ahead", keyKey, keyVal, testNow.Add(-11 * time.Minute), ErrFuture},
		{"lifetime over 30 days", keyKey, keyRecord(Record{Type: KeyType, Version: 1, NotBefore: testNow, EOL: testNow.Add(MaxLifetime + time.Second), Body: selfSigned}), time.Time{}, ErrLifetime},
		{"eol before not_before", keyKey, keyRecord(Record{Type: KeyType, Version: 1, NotBefore: testNow, EOL: testNow.Add(-time.Second), Body: selfSigned}), testNow.Add(-time.Hour), ErrLifetime},
		{"eol equals not_before", keyKey, keyRecord(Record{Type: KeyType, Version: 1, NotBefore: testNow, EOL: testNow, Body: selfSigned}), testNow.Add(-time.Hour), ErrLifetime},
		// Envelope.
		{"wrong namespace", reachKey, keyVal, time.Time{}, ErrWrongNamespace},
		{"unknown type", keyKey, keyRecord(rec(9, 1, selfSigned)), time.Time{}, ErrWrongNamespace},
		{"foreign namespace", "/ipns/" + aliceFpr.String(), keyVal, time.Time{}, ErrWrongNamespace},
		{"version 2", keyKey, keyRecord(Record{Type: KeyType, Version: 2, NotBefore: testNow, EOL: testNow.Add(time.Hour * 24), Body: selfSigned}), time.Time{}, ErrVersion},
		{"version 0", keyKey, keyRecord(Record{Type: KeyType, Version: 0, NotBefore: testNow, EOL: testNow.Add(time.Hour * 24), Body: selfSigned}), time.Time{}, ErrVersion},
		{"garbage", keyKey, []byte("\x00\x01garbage\xff"), time.Time{}, ErrMalformed},
		{"empty value", keyKey, nil, time.Time{}, ErrMalformed},
		{"trailing bytes", keyKey, append(bytes.Clone(keyVal), 0), time.Time{}, ErrMalformed},
		{"repeated field", keyKey, cat(keyVal, field(2, mustSignature(t, keyVal))), time.Time{}, ErrMalformed},
		{"repeated body field", revKey, mustSign(t, rec(RevType, 1, cat(revBody(w.alice.PrimaryPacket().Bytes(), carolRev.Bytes()), field(1, w.alice.PrimaryPacket().Bytes()))), byPrimary(w.alice)), time.Time{}, ErrMalformed},
		// Key bodies.
		{"key with a third-party certification", keyKey, keyRecord(rec(KeyType, 1, w.aliceCert.Bytes())), time.Time{}, ErrThirdParty},
		{"key with a revocation", KeyOf(KeyType, revoked.Fingerprint()), mustSign(t, rec(KeyType, 1, revoked.Bytes()), byPrimary(revoked)), time.Time{}, ErrThirdParty},
		{"key body not a key", keyKey, keyRecord(rec(KeyType, 1, []byte("key"))), time.Time{}, ErrMalformed},
		{"key body armored", keyKey, keyRecord(rec(KeyType, 1, w.alice.Armored())), time.Time{}, ErrMalformed},
		{"two keys", keyKey, keyRecord(rec(KeyType, 1, cat(selfSigned, w.bob.SelfSigned().Bytes()))), time.Time{}, ErrMalformed},
		{"key with trailing junk", keyKey, keyRecord(rec(KeyType, 1, cat(selfSigned, []byte{0}))), time.Time{}, ErrMalformed},
		{"key without subkeys", keyKey, keyRecord(rec(KeyType, 1, withoutSubkeys(t, selfSigned))), time.Time{}, ErrBadKey},
		// Rev bodies.
		{"revocation by another key", revKey, mustSign(t, rec(RevType, 1, revBody(w.alice.PrimaryPacket().Bytes(), bobRev.Bytes())), byPrimary(w.alice)), time.Time{}, ErrBadRevocation},
		{"revocation not a revocation", revKey, mustSign(t, rec(RevType, 1, revBody(w.alice.PrimaryPacket().Bytes(), mustSignature(t, keyVal))), byPrimary(w.alice)), time.Time{}, ErrBadRevocation},
		{"rev body missing its revocation", revKey, mustSign(t, rec(RevType, 1, field(1, w.alice.PrimaryPacket().Bytes())), byPrimary(w.alice)), time.Time{}, ErrMalformed},
		{"rev primary is a subkey", revKey, mustSign(t, rec(RevType, 1, revBody(ss.Subkey.Bytes(), carolRev.Bytes())), byPrimary(w.alice)), time.Time{}, ErrMalformed},
		// Reach bodies.
		{"reach binding forged", reachKey, mustSign(t, rec(ReachType, 1, reachBody(ss.Subkey.Bytes(), flipLast(ss.Binding))), bySubkey(w.alice)), time.Time{}, ErrBadBinding},
		{"reach binding of another key", reachKey, mustSign(t, rec(ReachType, 1, reachBody(bobSS.Subkey.Bytes(), bobSS.Binding)), bySubkey(w.bob)), time.Time{}, ErrBadBinding},
		{"reach binding of another subkey", reachKey, mustSign(t, rec(ReachType, 1, reachBody(bobSS.Subkey.Bytes(), ss.Binding)), bySubkey(w.bob)), time.Time{}, ErrBadBinding},
		{"reach signed by the primary", reachKey, mustSign(t, rec(ReachType, 1, reachBody(ss.Subkey.Bytes(), ss.Binding)), byPrimary(w.alice)), time.Time{}, ErrBadSignature},
		{"reach signed by another subkey", reachKey, mustSign(t, rec(ReachType, 1, reachBody(ss.Subkey.Bytes(), ss.Binding)), bySubkey(w.bob)), time.Time{}, ErrBadSignature},
		{"reach hidden with a device address", reachKey, mustSign(t, rec(ReachType, 1, hiddenDevice(t, w, ss)), bySubkey(w.alice)), time.Time{}, ErrMalformed},
		// Email bodies.
		{"email certified by another domain key", emailKey, mustSign(t, rec(EmailType, 1, emailBody(otherCert)), byPrimary(w.dom)), time.Time{}, ErrBadCertification},
		{"email certification by the slot's key, record by another", emailKey, mustSign(t, rec(EmailType, 1, emailBody(goodCert)), byPrimary(w.dom2)), time.Time{}, ErrBadSignature},
		{"email certification expired", emailKey, mustSign(t, rec(EmailType, 1, emailBody(shortCert)), byPrimary(w.dom)), testNow.Add(2 * time.Hour), ErrCertificationExpired},
		{"email outliving its certification", emailKey, mustSign(t, rec(EmailType, 1, emailBody(shortCert)), byPrimary(w.dom)), testNow.Add(30 * time.Minute), ErrLifetime},
		{"email certification not a certification", emailKey, mustSign(t, rec(EmailType, 1, emailBody(ss.Binding)), byPrimary(w.dom)), time.Time{}, ErrBadCertification},
		{"email User ID changed", emailKey, mustSign(t, rec(EmailType, 1, EmailBody{UserPrimary: w.alice.PrimaryPacket().Bytes(), UserID: "Mallory <alice@example.org>", DomainPrimary: w.dom.PrimaryPacket().Bytes(), Certification: goodCert}.Marshal()), byPrimary(w.dom)), time.Time{}, ErrBadCertification},
		{"email for another user key", emailKey, mustSign(t, rec(EmailType, 1, EmailBody{UserPrimary: w.bob.PrimaryPacket().Bytes(), UserID: w.uid, DomainPrimary: w.dom.PrimaryPacket().Bytes(), Certification: goodCert}.Marshal()), byPrimary(w.dom)), time.Time{}, ErrBadCertification},
		{"email User ID without an address", emailKey, mustSign(t, rec(EmailType, 1, EmailBody{UserPrimary: w.alice.PrimaryPacket().Bytes(), UserID: "Alice", DomainPrimary: w.dom.PrimaryPacket().Bytes(), Certification: goodCert}.Marshal()), byPrimary(w.dom)), time.Time{}, ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := c.now
			if now.IsZero() {
				now = checkAt
			}
			_, err := Verify(c.key, c.value, now)
			wantErr(t, err, c.want)
			t.Log(err)
			if err := (Validator{Now: func() time.Time { return now }}).Validate(c.key, c.value); err == nil {
				t.Fatal("the validator accepted it")
			}
			if i, err := (Validator{Now: func() time.Time { return now }}).Select(c.key, [][]byte{c.value}); err == nil {
				t.Fatalf("Select picked the invalid value %d", i)
			}
		})
	}
	// The edges of the clock: exactly 10 minutes ahead is allowed, and the
	// last second before eol.
	mustVerify(t, keyKey, keyVal, testNow.Add(-MaxClockSkew))
	mustVerify(t, keyKey, keyVal, testNow.Add(DefaultTTL-time.Second))
	mustVerify(t, keyKey, keyRecord(Record{Type: KeyType, Version: 1, NotBefore: testNow, EOL: testNow.Add(MaxLifetime), Body: selfSigned}), checkAt)
}

func mustSignature(t testing.TB, value []byte) []byte {
	t.Helper()
	s, err := UnmarshalSigned(value)
	if err != nil {
		t.Fatal(err)
	}
	return s.Signature
}

// keyRecord2 signs a key record of body with k's primary.
func keyRecord2(t testing.TB, body []byte, k *address.Key) []byte {
	return mustSign(t, rec(KeyType, 1, body), byPrimary(k))
}

// revSignedAs returns a rev record of rev whose record signature covers
// the key namespace instead of the rev namespace.
func revSignedAs(t testing.TB, k *address.Key, _ address.Fingerprint, rev *address.Revocation) []byte {
	t.Helper()
	r := rec(RevType, 1, RevBody{Primary: k.PrimaryPacket().Bytes(), Revocation: rev.Bytes()}.Marshal())
	raw := r.Marshal()
	sig, err := k.SignWithPrimary(SigningInput(KeyType, raw), testNow)
	if err != nil {
		t.Fatal(err)
	}
	return (&Signed{Raw: raw, Signature: sig}).Marshal()
}

func upper(s string) string { return string(bytes.ToUpper([]byte(s))) }

// withoutSubkeys cuts a serialized key before its first subkey packet.
func withoutSubkeys(t testing.TB, key []byte) []byte {
	t.Helper()
	rest := key
	for len(rest) > 0 {
		n := packetLen(t, rest)
		if rest[0] == 0xce || rest[0]&0xbc == 0xb8 { // tag 14, new or old format
			return key[:len(key)-len(rest)]
		}
		rest = rest[n:]
	}
	t.Fatal("no subkey")
	return nil
}

// packetLen returns the length of the first packet (header included) for
// the lengths go-crypto writes.
func packetLen(t testing.TB, b []byte) int {
	t.Helper()
	if b[0]&0x40 != 0 {
		switch l := int(b[1]); {
		case l < 192:
			return 2 + l
		case l < 224:
			return 3 + (l-192)<<8 + int(b[2]) + 192
		case l == 255:
			return 6 + int(b[2])<<24 | int(b[3])<<16 | int(b[4])<<8 | int(b[5])
		}
		t.Fatal("partial length")
	}
	switch b[0] & 3 {
	case 0:
		return 2 + int(b[1])
	case 1:
		return 3 + int(b[1])<<8 | int(b[2])
	case 2:
		return 5 + int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4])
	}
	t.Fatal("indeterminate length")
	return 0
}

// hiddenDevice returns a reach body that says hidden yet lists a device's
// address (encoded by hand: the builder refuses it).
func hiddenDevice(t testing.TB, w *world, ss *address.SigningSubkey) []byte {
	r := w.reach()
	b := ReachBody{
		Primary: ss.Primary.Bytes(), Signing: ss.Subkey.Bytes(), Binding: ss.Binding,
		Delegations: r.Delegations, Hidden: true,
		Addrs: []DelegateAddrs{{Peer: w.dev, Addrs: r.Addrs[w.mbox]}},
	}
	return b.Marshal()
}
