package address

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func FuzzParseTXT(f *testing.F) {
	k, g := fpr(0x10).String(), fpr(0x40).String()
	for _, s := range []string{
		"v=DSEP1; fpr=" + k,
		"v=DSEP1;fpr=" + strings.ToUpper(k) + ";",
		"  v = DSEP1 ;\tfpr=" + k + " ; gw=" + g + " ; x-new=1 ;",
		"v=DSEP1; gw=" + g + "; fpr=" + k + "; note=a=b",
		"v=DSEP1; fpr=" + k + "; fpr=" + k,
		"v=DSEP1; fpr=" + k[:39],
		"v=DSEP1",
		"v=spf1 -all",
		"fpr=" + k + "; v=DSEP1",
		"",
		";;;",
		"v=DSEP1; fpr=" + k + "; x=\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseTXT(s)
		if err != nil {
			if !errors.Is(err, ErrNotDSEP) && !errors.Is(err, ErrBadTXT) {
				t.Fatalf("ParseTXT(%q): error %v is neither ErrNotDSEP nor ErrBadTXT", s, err)
			}
			if errors.Is(err, ErrNotDSEP) && errors.Is(err, ErrBadTXT) {
				t.Fatalf("ParseTXT(%q): error %v is both", s, err)
			}
			return
		}
		if r.Key.IsZero() && !strings.Contains(s, strings.Repeat("0", 40)) {
			t.Fatalf("ParseTXT(%q) = zero fingerprint", s)
		}
		out := r.String()
		back, err := ParseTXT(out)
		if err != nil {
			t.Fatalf("ParseTXT(%q) (from %q): %v", out, s, err)
		}
		if !sameRecord(back, r) {
			t.Fatalf("round trip of %q: %+v, then %+v", s, r, back)
		}
		if back.String() != out {
			t.Fatalf("String is not stable: %q then %q", out, back.String())
		}
		// What String writes is a single ASCII line that zone files and
		// other parsers take as is.
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
				t.Fatalf("String() = %q contains %q", out, c)
			}
		}
	})
}

func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{
		"alice@example.org",
		"Alice@Example.ORG",
		"e\u0301@example.org",
		"user@bücher.example",
		"user@xn--bcher-kva.example",
		"user@ｅｘａｍｐｌｅ。org",
		"a..b@example.org",
		"\"a b\"@example.org",
		"a@[192.0.2.1]",
		"a@example.org.",
		"a@localhost",
		"@",
		"\xff@example.org",
		"a@faß.de",
		"İ@example.org",
		"ǅ@example.org",
		fpr(1).KeyAddress().String(),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEmail(s)
		if err != nil {
			if !errors.Is(err, ErrBadEmail) {
				t.Fatalf("ParseEmail(%q): error %v does not wrap ErrBadEmail", s, err)
			}
			if !e.IsZero() {
				t.Fatalf("ParseEmail(%q) failed but returned %q", s, e)
			}
			return
		}
		c := e.String()
		again, err := ParseEmail(c)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", c, s, err)
		}
		if again != e {
			t.Fatalf("canonical form is not a fixed point: %q → %q → %q", s, c, again)
		}
		// The canonical form: NFC, lower case, an ASCII domain, limits.
		if !utf8.ValidString(c) || !norm.NFC.IsNormalString(e.Local()) {
			t.Fatalf("local part %q is not NFC UTF-8", e.Local())
		}
		if len(e.Local()) > 64 || len(e.Domain()) > 253 || e.Local() == "" || e.Domain() == "" {
			t.Fatalf("%q exceeds the limits", c)
		}
		for i := 0; i < len(e.Domain()); i++ {
			if ch := e.Domain()[i]; ch >= 0x80 || ('A' <= ch && ch <= 'Z') {
				t.Fatalf("domain %q is not lower-case ASCII", e.Domain())
			}
		}
		if strings.ContainsAny(c, " \t\r\n\x00<>\"") {
			t.Fatalf("canonical %q holds a character that breaks a User ID or an SMTP command", c)
		}
		// A User ID made from it yields it back.
		uid, err := UserID("Name", e)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := EmailOfUserID(uid); err != nil || back != e {
			t.Fatalf("EmailOfUserID(%q) = %q, %v", uid, back, err)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		fpr(1).KeyAddress().String(),
		strings.ToUpper(fpr(2).KeyAddress().String()),
		"alice@dsep.alt",
		"alice@example.org",
		" yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy@DSEP.alt ",
		"alice@ｄｓｅｐ.alt",
		"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy@dsep。alt",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if (a.Key == nil) == a.Email.IsZero() {
			t.Fatalf("ParseAddress(%q) = %+v: not exactly one form", s, a)
		}
		if a.Email.IsKeyAddress() {
			t.Fatalf("ParseAddress(%q) = email %q in the key-address domain", s, a.Email)
		}
		back, err := ParseAddress(a.String())
		if err != nil || back.String() != a.String() || (back.Key == nil) != (a.Key == nil) {
			t.Fatalf("round trip of %q: %q → %+v, %v", s, a, back, err)
		}
		if a.Key != nil && (a.String() != a.Key.String() || len(a.String()) != 32+len("@dsep.alt")) {
			t.Fatalf("key address %q", a)
		}
	})
}

// fuzzKeySeeds returns real keys in the forms ReadKeys meets: armored and
// binary public keys, certified and revoked keys, a secret key, a keyring.
func fuzzKeySeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, name := range []string{"alice.pub.asc", "domain.pub.asc", "alice.certified.pub.asc"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
		k, err := ReadKey(bytes.NewReader(data))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, k.Bytes())
	}
	alice, err := NewIdentity("Alice", mustEmail(f, "alice@example.org"), NewIdentityOptions{Now: testNow, Rand: detRand(3)})
	if err != nil {
		f.Fatal(err)
	}
	dom, err := NewDomainKey("example.org", NewIdentityOptions{Now: testNow, Rand: detRand(4)})
	if err != nil {
		f.Fatal(err)
	}
	sec, err := alice.SealSecret(nil)
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, sec[9:]) // binary secret key packets
	revoked := alice.Clone()
	if _, err := Revoke(revoked, ReasonCompromised, "x", testNow); err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, revoked.Bytes(), append(alice.Bytes(), dom.Bytes()...), ArmorPublic(append(dom.Bytes(), alice.Bytes()...)))
	return seeds
}

func FuzzReadKeys(f *testing.F) {
	for _, s := range fuzzKeySeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Add([]byte{0x99, 0x00, 0x00})
	f.Add(dsaKey(32)) // refused: DSA verification cost is unbounded
	const limit = 16 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ReadKeys(bytes.NewReader(data), limit)
		if len(data) > limit {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes over the %d limit: %v", len(data), limit, err)
			}
			return
		}
		if err != nil {
			return
		}
		if len(keys) == 0 || len(keys) > MaxKeyringKeys {
			t.Fatalf("%d keys without an error", len(keys))
		}
		for _, k := range keys {
			// Nothing a parsed key offers panics.
			now := testNow
			_ = k.Check(now)
			_ = k.UserIDs(now)
			_ = k.Emails(now)
			_ = k.Revocations()
			_ = k.HasSecret()
			_ = k.Armored()
			_ = k.PublicOnly()
			_ = k.Clone()
			if k.HasSecret() {
				_, _ = k.SealSecret(nil)
			}
			// Round trip: the public serialization reads back as the same
			// key and serializes the same way again.
			b1 := k.Bytes()
			if len(b1) > MaxKeyBytes {
				continue
			}
			k2, err := ReadKey(bytes.NewReader(b1))
			if err != nil {
				t.Fatalf("re-reading a serialized key: %v", err)
			}
			if k2.Fingerprint() != k.Fingerprint() || k2.HasSecret() {
				t.Fatalf("round trip changed the key %s → %s (secret %v)", k.Fingerprint(), k2.Fingerprint(), k2.HasSecret())
			}
			if b2 := k2.Bytes(); !bytes.Equal(b1, b2) {
				t.Fatalf("serialization is not stable")
			}
		}
	})
}

func FuzzParseRevocation(f *testing.F) {
	old, err := NewIdentity("Bob", mustEmail(f, "bob@example.org"), NewIdentityOptions{Now: testNow, Rand: detRand(5)})
	if err != nil {
		f.Fatal(err)
	}
	retiredKey := old.Clone()
	retired, err := Revoke(retiredKey, ReasonRetired, "retired", testNow)
	if err != nil {
		f.Fatal(err)
	}
	compromisedKey := old.Clone()
	compromised, err := Revoke(compromisedKey, ReasonCompromised, "", testNow)
	if err != nil {
		f.Fatal(err)
	}
	_, superseded, err := Rotate(old.Clone(), testNow, NewIdentityOptions{Rand: detRand(6)})
	if err != nil {
		f.Fatal(err)
	}
	pub := old.PublicOnly()
	for _, r := range []*Revocation{retired, compromised, superseded} {
		f.Add(r.Bytes())
	}
	f.Add(append(retired.Bytes(), 0))
	f.Add(pub.Bytes()[:60])
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRevocation(pub, data)
		if len(data) > 4096 && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d bytes: %v", len(data), err)
		}
		if err != nil {
			return
		}
		if r.Key != pub.Fingerprint() {
			t.Fatal("revocation of another key")
		}
		if r.Successor != nil && r.Reason != ReasonSuperseded {
			t.Fatal("successor on a revocation that is not superseded")
		}
		_ = r.Kind()
		b := r.Bytes()
		back, err := ParseRevocation(pub, b)
		if err != nil {
			t.Fatalf("re-parsing: %v", err)
		}
		if back.Reason != r.Reason || back.Text != r.Text || !back.Signed.Equal(r.Signed) ||
			(back.Successor == nil) != (r.Successor == nil) || (r.Successor != nil && *back.Successor != *r.Successor) {
			t.Fatalf("round trip: %+v then %+v", r, back)
		}
		if !bytes.Equal(back.Bytes(), b) {
			t.Fatal("serialization is not stable")
		}
	})
}

func FuzzParseDelegation(f *testing.F) {
	p := newPeer(f)
	exp := testNow.Add(time.Hour)
	for _, d := range []Delegation{
		{Peer: p, Role: RoleDevice, NotAfter: exp},
		{Peer: p, Role: RoleGateway, NotAfter: time.Unix(0, 0)},
		{Peer: "x", Role: 255, NotAfter: time.Unix(1<<40, 0)},
	} {
		f.Add(d.AppendBinary(nil))
	}
	f.Add(append(Delegation{Peer: p, Role: RoleMailbox, NotAfter: exp}.AppendBinary(nil), 0x48, 0x01, 0x52, 0x01, 'z'))
	f.Add([]byte{0x0a, 0x00})
	f.Add([]byte{0x08, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDelegation(data)
		if err != nil {
			return
		}
		if d.Peer == "" || len(d.Peer) > 128 || d.NotAfter.Location() != time.UTC {
			t.Fatalf("parsed %+v", d)
		}
		_ = d.Valid(testNow)
		enc := d.AppendBinary(nil)
		back, err := ParseDelegation(enc)
		if err != nil {
			t.Fatalf("re-parsing %x: %v", enc, err)
		}
		if back.Peer != d.Peer || back.Role != d.Role || !back.NotAfter.Equal(d.NotAfter) {
			t.Fatalf("round trip: %+v then %+v", d, back)
		}
		if !bytes.Equal(back.AppendBinary(nil), enc) {
			t.Fatal("encoding is not stable")
		}
	})
}

func FuzzOpenSecret(f *testing.F) {
	alice, err := NewIdentity("Alice", mustEmail(f, "alice@example.org"), NewIdentityOptions{Now: testNow, Rand: detRand(7)})
	if err != nil {
		f.Fatal(err)
	}
	bare, err := alice.SealSecret(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bare, []byte(nil))
	f.Add(bare[:len(bare)/2], []byte(nil))
	f.Add(append([]byte("DSEPSEC1\x00"), alice.Bytes()...), []byte(nil))
	cheap := sealCheap(bare[9:], []byte("pw"), 1, 8, 1)
	f.Add(cheap, []byte("pw"))
	f.Add(cheap, []byte("wrong"))
	f.Add([]byte("DSEPSEC1\x01"), []byte("pw"))
	f.Fuzz(func(t *testing.T, sealed, pass []byte) {
		// Argon2 costs what the file asks (up to 4 GiB of memory); keep
		// the fuzzer to cheap parameters.
		if len(sealed) >= 18 && sealed[8] == kdfArgon2id {
			if tm, m := binary.BigEndian.Uint32(sealed[9:]), binary.BigEndian.Uint32(sealed[13:]); tm > 2 || m > 256 {
				t.Skip("expensive argon2 parameters")
			}
		}
		k, err := OpenSecret(sealed, pass, nil)
		if err != nil {
			return
		}
		if !k.HasSecret() || k.Entity().PrivateKey == nil {
			t.Fatal("opened a file without a private key")
		}
		// Round trip through the unprotected form.
		again, err := k.SealSecret(nil)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := OpenSecret(again, nil, nil)
		if err != nil || k2.Fingerprint() != k.Fingerprint() {
			t.Fatalf("round trip: %v", err)
		}
	})
}
