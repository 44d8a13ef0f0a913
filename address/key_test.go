package address

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// newPacket frames body as a new-format OpenPGP packet.
func newPacket(tag byte, body []byte) []byte {
	h := binary.BigEndian.AppendUint32([]byte{0xc0 | tag, 255}, uint32(len(body)))
	return append(h, body...)
}

func mpiBytes(b []byte) []byte {
	bits := 8 * len(b)
	for i := 7; i >= 0 && b[0]&(1<<i) == 0; i-- {
		bits--
	}
	return append([]byte{byte(bits >> 8), byte(bits)}, b...)
}

// dsaKey builds a v4 DSA key with n-byte parameters, a User ID and a
// self-signature whose hash tag is right (so a verifier goes on to the
// expensive DSA arithmetic) but whose r, s are random.
func dsaKey(n int) []byte {
	rnd := rand.New(rand.NewChaCha8([32]byte{17}))
	num := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		b[0] |= 0x80
		return b
	}
	created := uint32(testNow.Add(-time.Hour).Unix())
	key := binary.BigEndian.AppendUint32([]byte{4}, created)
	key = append(key, byte(packet.PubKeyAlgoDSA))
	for range 4 { // p, q, g, y
		key = append(key, mpiBytes(num(n))...)
	}
	uid := []byte("Mallory <alice@example.org>")
	fh := sha1.New()
	fh.Write([]byte{0x99, byte(len(key) >> 8), byte(len(key))})
	fh.Write(key)
	hashed := binary.BigEndian.AppendUint32([]byte{5, 2}, created) // creation time
	hashed = append(hashed, 2, 27, 1)                              // key flags: certify
	hashed = append(append(hashed, 22, 33, 4), fh.Sum(nil)...)     // issuer fingerprint
	sig := append([]byte{4, 0x13, byte(packet.PubKeyAlgoDSA), 8, 0, byte(len(hashed))}, hashed...)
	h := sha256.New()
	h.Write([]byte{0x99, byte(len(key) >> 8), byte(len(key))})
	h.Write(key)
	h.Write(binary.BigEndian.AppendUint32([]byte{0xb4}, uint32(len(uid))))
	h.Write(uid)
	h.Write(sig)
	h.Write(binary.BigEndian.AppendUint32([]byte{4, 0xff}, uint32(len(sig))))
	d := h.Sum(nil)
	sig = append(sig, 0, 0, d[0], d[1])
	sig = append(append(sig, mpiBytes(num(n-1))...), mpiBytes(num(n-1))...)
	return append(append(newPacket(6, key), newPacket(13, uid)...), newPacket(2, sig)...)
}

// A DSA key with large parameters costs seconds of CPU per signature check
// (about 30 s at 4 KiB per parameter before the fix): it must be refused
// when read, before anything verifies it. The parameters here are small so
// that the test stays fast even if the check goes missing.
func TestReadKeyRefusesDSA(t *testing.T) {
	data := dsaKey(128)
	k, err := ReadKey(bytes.NewReader(data))
	if !errors.Is(err, ErrNotDSEPKey) {
		t.Fatalf("DSA key: %v, %v", k, err)
	}
	// The same check covers subkeys.
	alice := newUser(t, "Alice", "alice@example.org")
	e := reparse(t, alice).Entity()
	e.Subkeys[0].PublicKey.PubKeyAlgo = packet.PubKeyAlgoElGamal
	if _, err := newKey(e); !errors.Is(err, ErrNotDSEPKey) {
		t.Fatalf("ElGamal subkey: %v", err)
	}
}

func TestReadKeys(t *testing.T) {
	alice := newUser(t, "Alice", "alice@example.org")
	bob := newUser(t, "Bob", "bob@example.org")
	sec, err := alice.SealSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	secretPackets := sec[9:]
	exported, err := alice.ExportSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	v6, err := openpgp.NewEntity("V6", "", "v6@example.org", &packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoEd25519, Time: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	var v6b bytes.Buffer
	if err := v6.Serialize(&v6b); err != nil {
		t.Fatal(err)
	}
	// 33 User IDs; 65 signatures on one User ID.
	manyUIDs := alice.Clone()
	for i := range MaxUserIDs {
		if err := manyUIDs.e.AddUserId("A", "", "a"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+"@example.org", pgpConfig(testNow, nil)); err != nil {
			t.Fatal(err)
		}
	}
	manySigs := alice.PublicOnly()
	id := manySigs.e.Identities["Alice <alice@example.org>"]
	for len(id.OtherCertifications) <= MaxSignaturesPerUserID {
		id.OtherCertifications = append(id.OtherCertifications, id.SelfCertifications[0])
	}
	ring := func(keys ...*Key) []byte {
		var b []byte
		for _, k := range keys {
			b = append(b, k.Bytes()...)
		}
		return b
	}
	tooMany := make([]*Key, MaxKeyringKeys+1)
	for i := range tooMany {
		tooMany[i] = alice
	}
	tests := []struct {
		name   string
		data   []byte
		limit  int64
		n      int   // keys expected
		secret bool  // the first key carries secrets
		err    error // a specific error, errAny or nil
	}{
		{"binary", alice.Bytes(), MaxKeyBytes, 1, false, nil},
		{"armored", alice.Armored(), MaxKeyBytes, 1, false, nil},
		{"armored after blank lines", append([]byte("\n\r\n  "), alice.Armored()...), MaxKeyBytes, 1, false, nil},
		{"keyring", ring(alice, bob), MaxKeyBytes, 2, false, nil},
		{"armored keyring", ArmorPublic(ring(alice, bob)), MaxKeyBytes, 2, false, nil},
		{"secret key packets", secretPackets, MaxKeyBytes, 1, true, nil},
		{"armored secret key", exported, MaxKeyBytes, 1, true, nil},
		{"64 keys", ring(tooMany[:MaxKeyringKeys]...), 1 << 20, MaxKeyringKeys, false, nil},
		{"exactly at the limit", alice.Bytes(), int64(len(alice.Bytes())), 1, false, nil},

		{"empty", nil, MaxKeyBytes, 0, false, errAny},
		{"garbage", []byte("hello, world"), MaxKeyBytes, 0, false, errAny},
		{"truncated", alice.Bytes()[:100], MaxKeyBytes, 0, false, errAny},
		{"armor of a signature", bytes.Replace(alice.Armored(), []byte("PUBLIC KEY BLOCK"), []byte("SIGNATURE"), 2), MaxKeyBytes, 0, false, errAny},
		{"broken armor", []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"), MaxKeyBytes, 0, false, errAny},
		{"one byte over the limit", alice.Bytes(), int64(len(alice.Bytes()) - 1), 0, false, ErrTooLarge},
		{"65 keys", ring(tooMany...), 1 << 20, 0, false, ErrTooLarge},
		{"33 User IDs", manyUIDs.Bytes(), MaxKeyBytes, 0, false, ErrTooLarge},
		{"65 signatures on a User ID", manySigs.Bytes(), MaxKeyBytes, 0, false, ErrTooLarge},
		{"v6 key", v6b.Bytes(), MaxKeyBytes, 0, false, ErrNotDSEPKey},
		{"DSA key", dsaKey(64), MaxKeyBytes, 0, false, ErrNotDSEPKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ReadKeys(bytes.NewReader(tt.data), tt.limit)
			if tt.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(keys) != tt.n || keys[0].Fingerprint() != alice.Fingerprint() || keys[0].HasSecret() != tt.secret {
					t.Fatalf("%d keys, first %s (secret %v)", len(keys), keys[0].Fingerprint(), keys[0].HasSecret())
				}
				if tt.n == 2 && keys[1].Fingerprint() != bob.Fingerprint() {
					t.Fatal("second key")
				}
				return
			}
			if err == nil {
				t.Fatalf("read %d keys", len(keys))
			}
			if tt.err != errAny && !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
		})
	}
	// ReadKey wants exactly one.
	if _, err := ReadKey(bytes.NewReader(ring(alice, bob))); err == nil {
		t.Fatal("ReadKey accepted two keys")
	}
}

func TestMergeCertifications(t *testing.T) {
	dom := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
	pub := alice.PublicOnly()
	if n, err := MergeCertifications(pub, cert); err != nil || n != 1 {
		t.Fatalf("merge: %d, %v", n, err)
	}
	if n, err := MergeCertifications(pub, cert); err != nil || n != 0 {
		t.Fatalf("merging again: %d, %v", n, err)
	}
	if _, err := FindCertification(pub, "Alice <alice@example.org>", dom, testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := MergeCertifications(pub, dom); err == nil {
		t.Fatal("merged another key's certifications")
	}
	// The certification survives the secret's Clone and SealSecret/OpenSecret.
	if _, err := MergeCertifications(alice, cert); err != nil {
		t.Fatal(err)
	}
	if _, err := FindCertification(alice.Clone(), "Alice <alice@example.org>", dom, testNow); err != nil {
		t.Fatalf("Clone lost the certification: %v", err)
	}
}

func TestFindCertificationErrors(t *testing.T) {
	dom := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	const uid = "Alice <alice@example.org>"
	cert := certify(t, alice, dom, "alice@example.org", testNow, time.Hour)
	for _, c := range []struct {
		name string
		uid  string
		at   time.Time
		err  error
	}{
		{"valid", uid, testNow, nil},
		{"unknown User ID", "Alice <alice@other.example>", testNow, ErrNoUserID},
		{"expired", uid, testNow.Add(time.Hour), ErrCertificationExpired},
		{"before it was made, beyond the skew", uid, testNow.Add(-MaxClockSkew - time.Second), ErrNoCertification},
		{"before it was made, within the skew", uid, testNow.Add(-MaxClockSkew + time.Second), nil},
	} {
		_, err := FindCertification(cert, c.uid, dom, c.at)
		if !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	// The newest valid certification wins; an expired one beside a valid
	// one does not matter.
	renewed, err := Certify(cert, uid, dom, testNow.Add(30*time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := FindCertification(renewed, uid, dom, testNow.Add(2*time.Hour))
	if err != nil || !c.Created.Equal(testNow.Add(30*time.Minute)) {
		t.Fatalf("renewed: %+v %v", c, err)
	}
	// Certify's own refusals.
	if _, err := Certify(alice.PublicOnly(), uid, dom.PublicOnly(), testNow, 0); err == nil {
		t.Error("certified without the signer's secret")
	}
	if _, err := Certify(alice, uid, alice, testNow, 0); err == nil {
		t.Error("a key certified itself")
	}
	if _, err := Certify(alice.PublicOnly(), "Alice <nobody@example.org>", dom, testNow, 0); !errors.Is(err, ErrNoUserID) {
		t.Errorf("certifying a missing User ID: %v", err)
	}
	if _, err := RevokeCertification(cert, uid, dom.PublicOnly(), testNow); err == nil {
		t.Error("revoked a certification without the signer's secret")
	}
}

// bigKey returns alice's public key padded with copies of her self-signature
// to over MaxKeyBytes while staying within the User ID and signature
// limits.
func bigKey(t *testing.T, alice *Key) []byte {
	t.Helper()
	k := alice.Clone()
	for i := range 24 {
		if err := k.e.AddUserId("Alice", "", "alice"+strings.Repeat("x", i+1)+"@example.org", pgpConfig(testNow, nil)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range k.e.Identities {
		for len(id.OtherCertifications) < MaxSignaturesPerUserID-1 {
			id.OtherCertifications = append(id.OtherCertifications, id.SelfCertifications[0])
		}
	}
	b := k.Bytes()
	if len(b) <= MaxKeyBytes {
		t.Fatalf("key of %d bytes is not over the limit", len(b))
	}
	return b
}

// A key read with a limit above MaxKeyBytes (as dsep key import does) can
// still be copied: PublicOnly and Clone do not re-apply ReadKey's limit.
func TestCopyLargeKey(t *testing.T) {
	alice := newUser(t, "Alice", "alice@example.org")
	data := bigKey(t, alice)
	if _, err := ReadKey(bytes.NewReader(data)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ReadKey of %d bytes: %v", len(data), err)
	}
	keys, err := ReadKeys(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	k := keys[0]
	for name, f := range map[string]func() *Key{"PublicOnly": k.PublicOnly, "Clone": k.Clone} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s panics: %v", name, p)
				}
			}()
			if c := f(); !bytes.Equal(c.Bytes(), data) {
				t.Fatalf("%s changed the key", name)
			}
		}()
	}
}

// Certifying a User ID that already carries the most signatures a key may
// hold is refused, rather than producing a key that cannot be read back
// (or copied: Clone re-reads it).
func TestCertifyAtSignatureLimit(t *testing.T) {
	dom := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	const uid = "Alice <alice@example.org>"
	full := alice.PublicOnly()
	id := full.e.Identities[uid]
	for len(id.OtherCertifications)+len(id.SelfCertifications) < MaxSignaturesPerUserID {
		id.OtherCertifications = append(id.OtherCertifications, id.SelfCertifications[0])
	}
	full = reparse(t, full)
	for name, f := range map[string]func() (*Key, error){
		"Certify":             func() (*Key, error) { return Certify(full, uid, dom, testNow, 0) },
		"RevokeCertification": func() (*Key, error) { return RevokeCertification(full, uid, dom, testNow) },
	} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s: panic %v", name, p)
				}
			}()
			c, err := f()
			if err == nil {
				// If it is accepted, the result must be a usable key.
				_ = c.Clone()
				if _, err := ReadKey(bytes.NewReader(c.Bytes())); err != nil {
					t.Fatalf("%s produced a key that does not read back: %v", name, err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%s: %v", name, err)
			}
		}()
	}
}
