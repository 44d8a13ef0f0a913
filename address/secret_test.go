package address

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/ecdh"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// sealCheap writes the kdf-1 secret file format of docs/protocol.md
// independently of the package, with cheap argon2 parameters so tests can
// open it many times:
//
//	"DSEPSEC1" | 1 | t u32 | m u32 | p u8 | salt (16) | nonce (24) | XChaCha20-Poly1305
func sealCheap(plain, pass []byte, t, m uint32, p uint8) []byte {
	out := []byte("DSEPSEC1\x01")
	out = binary.BigEndian.AppendUint32(out, t)
	out = binary.BigEndian.AppendUint32(out, m)
	out = append(out, p)
	salt := []byte("0123456789abcdef")
	nonce := []byte("nonce-nonce-nonce-nonce!")
	out = append(out, salt...)
	out = append(out, nonce...)
	key := argon2.IDKey(pass, salt, t, m, p, 32)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err)
	}
	return aead.Seal(out, nonce, plain, bytes.Clone(out))
}

// openIndependently reverses sealCheap's format for any parameters.
func openIndependently(sealed, pass []byte) ([]byte, error) {
	if len(sealed) < 9+9+16+24 || string(sealed[:9]) != "DSEPSEC1\x01" {
		return nil, errors.New("not a kdf-1 secret file")
	}
	h := sealed[9:]
	t, m, p := binary.BigEndian.Uint32(h), binary.BigEndian.Uint32(h[4:]), h[8]
	salt, nonce := h[9:25], h[25:49]
	aead, err := chacha20poly1305.NewX(argon2.IDKey(pass, salt, t, m, p, 32))
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, nonce, h[49:], sealed[:9+49])
}

// secretMaterial returns the private scalars and seeds of k's keys.
func secretMaterial(t *testing.T, k *Key) [][]byte {
	t.Helper()
	e := k.Entity()
	privs := []any{e.PrivateKey.PrivateKey}
	for _, s := range e.Subkeys {
		privs = append(privs, s.PrivateKey.PrivateKey)
	}
	var out [][]byte
	for _, p := range privs {
		switch p := p.(type) {
		case *eddsa.PrivateKey:
			out = append(out, bytes.Clone(p.D))
		case *ecdh.PrivateKey:
			// X25519 clamps the scalar; go-crypto clamps it when it reads
			// the key, not when it generates it. Compare clamped.
			d := bytes.Clone(p.D)
			if len(d) == 32 {
				d[0] &= 248
				d[31] = d[31]&127 | 64
			}
			out = append(out, d)
			r := bytes.Clone(d)
			slices.Reverse(r)
			out = append(out, r)
		default:
			t.Fatalf("unexpected private key type %T", p)
		}
	}
	return out
}

func TestPublicSerializationHasNoSecrets(t *testing.T) {
	alice := newUser(t, "Alice", "alice@example.org")
	if !alice.HasSecret() {
		t.Fatal("new identity has no secret")
	}
	secrets := secretMaterial(t, alice)
	if len(secrets) != 4 {
		t.Fatalf("%d secrets", len(secrets))
	}
	dearmored := func(b []byte) []byte {
		block, err := armor.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if block.Type != "PGP PUBLIC KEY BLOCK" {
			t.Fatalf("armor type %q", block.Type)
		}
		data, err := io.ReadAll(block.Body)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	dom := newDomain(t, "example.org")
	cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
	for name, data := range map[string][]byte{
		"Bytes":                              alice.Bytes(),
		"Armored":                            dearmored(alice.Armored()),
		"PublicOnly().Bytes":                 alice.PublicOnly().Bytes(),
		"Clone().Bytes":                      alice.Clone().Bytes(),
		"domain Bytes":                       dom.Bytes(),
		"certified (by a secret domain key)": cert.Bytes(),
	} {
		for i, s := range secrets {
			if bytes.Contains(data, s) {
				t.Errorf("%s contains secret %d", name, i)
			}
		}
		for rest := data; len(rest) > 0; {
			tag, _, r, err := rawPacket(rest)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if tag == 5 || tag == 7 {
				t.Errorf("%s holds a secret key packet (tag %d)", name, tag)
			}
			rest = r
		}
		k, err := ReadKey(bytes.NewReader(data))
		if err != nil || k.HasSecret() {
			t.Errorf("%s: re-read %v, HasSecret %v", name, err, k != nil && k.HasSecret())
		}
	}
	// The secret is kept where it belongs.
	if !alice.Clone().HasSecret() || alice.PublicOnly().HasSecret() {
		t.Error("Clone dropped or PublicOnly kept the secret")
	}
}

func TestSealSecretFormat(t *testing.T) {
	alice := newUser(t, "Alice", "alice@example.org")

	// Unprotected: magic, kdf 0, the OpenPGP secret key packets.
	bare, err := alice.SealSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(bare, []byte("DSEPSEC1\x00")) || SecretIsProtected(bare) {
		t.Fatalf("unprotected file starts % x", bare[:min(len(bare), 9)])
	}
	plain := bare[9:]
	if tag, _, _, err := rawPacket(plain); err != nil || tag != 5 {
		t.Fatalf("unprotected payload starts with tag %d: %v", tag, err)
	}
	for _, pass := range [][]byte{nil, []byte("ignored")} {
		o, err := OpenSecret(bare, pass, nil)
		if err != nil || o.Fingerprint() != alice.Fingerprint() || !o.HasSecret() || o.Entity().PrivateKey.Encrypted {
			t.Fatalf("opening the unprotected file: %v", err)
		}
	}

	// Protected (one real argon2id at 64 MiB for sealing and one for
	// opening it independently): the header holds the RFC 9106 parameters
	// and the file opens by the documented construction.
	sealed, err := alice.SealSecret([]byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	if !SecretIsProtected(sealed) || !bytes.HasPrefix(sealed, []byte("DSEPSEC1\x01")) {
		t.Fatal("protected header")
	}
	h := sealed[9:]
	if tm, mem, p := binary.BigEndian.Uint32(h), binary.BigEndian.Uint32(h[4:]), h[8]; tm != 3 || mem != 64<<10 || p != 4 {
		t.Fatalf("argon2 parameters t=%d m=%d p=%d", tm, mem, p)
	}
	if want := 9 + 9 + 16 + 24 + len(plain) + 16; len(sealed) != want {
		t.Fatalf("sealed length %d, want %d", len(sealed), want)
	}
	if bytes.Contains(sealed, plain[:64]) {
		t.Fatal("sealed file contains the plaintext")
	}
	got, err := openIndependently(sealed, []byte("pass"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("independent opening: %v", err)
	}
}

func TestOpenSecret(t *testing.T) {
	alice := newUser(t, "Alice", "alice@example.org")
	bare, err := alice.SealSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := bare[9:]
	pass := []byte("correct horse")
	cheap := sealCheap(plain, pass, 1, 64, 1)
	withParams := func(tm, m uint32, p uint8) []byte {
		b := bytes.Clone(cheap)
		binary.BigEndian.PutUint32(b[9:], tm)
		binary.BigEndian.PutUint32(b[13:], m)
		b[17] = p
		return b
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		return c
	}
	publicOnly := append([]byte("DSEPSEC1\x00"), alice.Bytes()...)
	storageKey, err := Seal(SealMagicStorageKey, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	const fixed = 9 + 9 + 16 + 24

	tests := []struct {
		name   string
		sealed []byte
		pass   []byte
		err    error // a specific error, errAny, or nil for success
	}{
		{"cheap parameters", cheap, pass, nil},
		{"unprotected", bare, nil, nil},
		{"wrong passphrase", cheap, []byte("wrong"), ErrWrongPassphrase},
		{"empty passphrase for a protected file", cheap, nil, ErrWrongPassphrase},
		{"ciphertext flipped", flip(cheap, len(cheap)-20), pass, ErrWrongPassphrase},
		{"tag flipped", flip(cheap, len(cheap)-1), pass, ErrWrongPassphrase},
		{"salt flipped", flip(cheap, 18), pass, ErrWrongPassphrase},
		{"nonce flipped", flip(cheap, 40), pass, ErrWrongPassphrase},
		{"parameters changed (authenticated)", withParams(2, 64, 1), pass, ErrWrongPassphrase},
		{"truncated ciphertext", cheap[:len(cheap)-1], pass, ErrWrongPassphrase},
		{"truncated to the header", cheap[:fixed+15], pass, errAny},
		{"truncated inside the header", cheap[:12], pass, errAny},
		{"magic only", []byte("DSEPSEC1"), pass, errAny},
		{"empty", nil, pass, errAny},
		{"bad magic", append([]byte("DSEPSEC2"), cheap[8:]...), pass, errAny},
		{"another kind of sealed file", storageKey, nil, errAny},
		{"unknown kdf", append([]byte("DSEPSEC1\x07"), cheap[9:]...), pass, errAny},
		{"argon2 t=0", withParams(0, 64, 1), pass, errAny},
		{"argon2 t=65", withParams(65, 64, 1), pass, errAny},
		{"argon2 p=0", withParams(1, 64, 0), pass, errAny},
		{"argon2 m below 8p", withParams(1, 31, 4), pass, errAny},
		{"argon2 m over 4 GiB", withParams(1, 4<<20+1, 1), pass, errAny},
		{"argon2 m=2^32-1", withParams(1, ^uint32(0), 1), pass, errAny},
		{"unprotected garbage", []byte("DSEPSEC1\x00garbage"), nil, errAny},
		{"unprotected public key only", publicOnly, nil, errAny},
		{"unprotected, nothing", []byte("DSEPSEC1\x00"), nil, errAny},
		{"protected public key only", sealCheap(alice.Bytes(), pass, 1, 64, 1), pass, errAny},
		{"over 1 MiB", append(bytes.Clone(bare), make([]byte, 1<<20)...), nil, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := OpenSecret(tt.sealed, tt.pass, nil)
			if tt.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				if k.Fingerprint() != alice.Fingerprint() || !k.HasSecret() || k.Entity().PrivateKey.Encrypted {
					t.Fatal("opened key differs or is locked")
				}
				if !slices.EqualFunc(secretMaterial(t, k), secretMaterial(t, alice), bytes.Equal) {
					t.Fatal("opened secret differs")
				}
				return
			}
			if err == nil {
				t.Fatal("opened")
			}
			if tt.err != errAny && !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
		})
	}

	t.Run("public certificate merged", func(t *testing.T) {
		dom := newDomain(t, "example.org")
		cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
		revoked := withRevocation(t, cert, alice, ReasonRetired)
		k, err := OpenSecret(cheap, pass, revoked)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := FindCertification(k, "Alice <alice@example.org>", dom, testNow); err != nil {
			t.Fatalf("domain certification not merged: %v", err)
		}
		if r := k.Revocation(); r == nil || r.Kind() != "retired" {
			t.Fatalf("revocation not merged: %v", r)
		}
		if _, err := OpenSecret(cheap, pass, dom.PublicOnly()); err == nil {
			t.Fatal("opened with another key's certificate")
		}
	})
}

func TestExportSecret(t *testing.T) {
	alice := newUser(t, "Alice", "alice@example.org")
	dom := newDomain(t, "example.org")
	cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
	if _, err := MergeCertifications(alice, cert); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.PublicOnly().ExportSecret([]byte("x")); err == nil {
		t.Fatal("exported a public key as secret")
	}
	const pass = "export passphrase"
	out, err := alice.ExportSecret([]byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")) {
		t.Fatalf("export starts %q", out[:min(len(out), 40)])
	}
	for i, s := range secretMaterial(t, alice) {
		if bytes.Contains(out, s) {
			t.Errorf("export contains secret %d in the clear", i)
		}
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(out))
	if err != nil || len(el) != 1 {
		t.Fatalf("go-crypto reads %d keys: %v", len(el), err)
	}
	e := el[0]
	if e.PrivateKey == nil || !e.PrivateKey.Encrypted || len(e.Subkeys) != 2 {
		t.Fatal("primary secret not protected")
	}
	for i, s := range e.Subkeys {
		if s.PrivateKey == nil || !s.PrivateKey.Encrypted {
			t.Fatalf("subkey %d secret not protected", i)
		}
	}
	// The protection gpg 2.2 reads, on every secret key packet: SHA-1
	// checked (254), AES-256 (9), iterated and salted S2K (3) with SHA-256
	// (8), count byte 255 (65011712).
	checkS2K(t, out)
	// The domain's certification travels with the secret.
	if id := e.Identities["Alice <alice@example.org>"]; id == nil || len(id.OtherCertifications) != 1 {
		t.Fatal("export lost the domain's certification")
	}
	if err := e.DecryptPrivateKeys([]byte("wrong")); err == nil {
		t.Fatal("decrypted with the wrong passphrase")
	}
	if err := e.DecryptPrivateKeys([]byte(pass)); err != nil {
		t.Fatal(err)
	}
	k, err := newKey(e)
	if err != nil {
		t.Fatal(err)
	}
	if k.Fingerprint() != alice.Fingerprint() || !slices.EqualFunc(secretMaterial(t, k), secretMaterial(t, alice), bytes.Equal) {
		t.Fatal("decrypted export differs from the identity")
	}
	// The unlocked export can sign a delegation as the identity.
	if _, err := SignDelegations(k, []Delegation{{Peer: newPeer(t), Role: RoleDevice, NotAfter: testNow.Add(time.Hour)}}, testNow); err != nil {
		t.Fatal(err)
	}
	// The original is untouched (still unlocked).
	if alice.Entity().PrivateKey.Encrypted {
		t.Fatal("ExportSecret locked the identity itself")
	}

	// An empty passphrase exports it unprotected.
	clear, err := alice.ExportSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(clear))
	if err != nil || el[0].PrivateKey.Encrypted {
		t.Fatalf("unprotected export: %v", err)
	}
	// A still-locked key is refused rather than exported under the old
	// protection.
	locked, err := ReadKey(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locked.ExportSecret([]byte("new")); err == nil {
		t.Fatal("exported a locked key")
	}
}

// checkS2K walks the secret key packets of an armored export.
func checkS2K(t *testing.T, armored []byte) {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for len(data) > 0 {
		tag, body, rest, err := rawPacket(data)
		if err != nil {
			t.Fatal(err)
		}
		data = rest
		if tag != 5 && tag != 7 {
			continue
		}
		n++
		// v4 | created (4) | algorithm | OID | point MPI | [ECDH KDF params]
		if len(body) < 7 || body[0] != 4 {
			t.Fatal("secret key packet is not v4")
		}
		algo := body[5]
		p := 6
		p += 1 + int(body[p]) // OID
		bits := int(body[p])<<8 | int(body[p+1])
		p += 2 + (bits+7)/8 // public point
		if algo == 18 {
			p += 1 + int(body[p]) // KDF parameters
		}
		s2k := body[p:min(len(body), p+6)]
		if !bytes.Equal(s2k[:4], []byte{254, 9, 3, 8}) {
			t.Fatalf("secret key packet %d (algorithm %d): S2K usage/cipher/type/hash % x, want fe 09 03 08", n, algo, s2k[:4])
		}
		if count := body[p+4+8]; count != 0xff {
			t.Fatalf("S2K count byte %#x, want 0xff", count)
		}
	}
	if n != 3 {
		t.Fatalf("%d secret key packets, want 3", n)
	}
}
