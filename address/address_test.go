package address

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// testNow is the clock of the tests: keys are made at it, checks run at it.
var testNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func mustEmail(t testing.TB, s string) Email {
	t.Helper()
	e, err := ParseEmail(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newUser(t testing.TB, name, email string) *Key {
	t.Helper()
	k, err := NewIdentity(name, mustEmail(t, email), NewIdentityOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newDomain(t testing.TB, d string) *Key {
	t.Helper()
	k, err := NewDomainKey(d, NewIdentityOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func certify(t testing.TB, user, domain *Key, email string, at time.Time, life time.Duration) *Key {
	t.Helper()
	uid, ok := user.UserIDFor(mustEmail(t, email), at)
	if !ok {
		t.Fatalf("no User ID for %s", email)
	}
	c, err := Certify(user.PublicOnly(), uid, domain, at, life)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func txtFor(keys ...*Key) DNSAnswer {
	var recs []string
	for _, k := range keys {
		recs = append(recs, DomainRecord{Key: k.Fingerprint()}.String())
	}
	return DNSAnswer{Records: recs}
}

func TestIdentityLayout(t *testing.T) {
	k := newUser(t, "Alice Example", "Alice@Example.org")
	if err := k.Check(testNow); err != nil {
		t.Fatal(err)
	}
	if got := k.UserIDs(testNow); len(got) != 1 || got[0] != "Alice Example <alice@example.org>" {
		t.Fatalf("User IDs = %q", got)
	}
	e := k.Entity()
	self, _ := e.PrimaryIdentity(testNow, nil)
	if self == nil || !self.FlagCertify || self.FlagSign || self.FlagEncryptCommunications {
		t.Fatalf("primary flags: %+v", self)
	}
	if len(e.Subkeys) != 2 {
		t.Fatalf("%d subkeys, want 2", len(e.Subkeys))
	}
	sk, ok := e.SigningKey(testNow, nil)
	if !ok || sk.PublicKey == e.PrimaryKey {
		t.Fatal("signing key is not a subkey")
	}
	ek, err := e.EncryptionKeyWithError(testNow, nil)
	if err != nil || ek.PublicKey == e.PrimaryKey {
		t.Fatalf("encryption key: %v", err)
	}
	// Round trip through the public serialization.
	p, err := ReadKey(bytes.NewReader(k.Armored()))
	if err != nil {
		t.Fatal(err)
	}
	if p.Fingerprint() != k.Fingerprint() || p.HasSecret() {
		t.Fatal("public round trip changed the key or leaked a secret")
	}
}

func TestSealSecret(t *testing.T) {
	k := newUser(t, "", "bob@example.org")
	sealed, err := k.SealSecret([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !SecretIsProtected(sealed) {
		t.Fatal("sealed secret not marked protected")
	}
	if _, err := OpenSecret(sealed, []byte("wrong"), nil); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	o, err := OpenSecret(sealed, []byte("correct horse"), k.PublicOnly())
	if err != nil {
		t.Fatal(err)
	}
	if o.Fingerprint() != k.Fingerprint() || !o.HasSecret() {
		t.Fatal("opened secret differs")
	}
	// Flipping any byte breaks it.
	sealed[len(sealed)-5] ^= 1
	if _, err := OpenSecret(sealed, []byte("correct horse"), nil); err == nil {
		t.Fatal("tampered secret opened")
	}
}

func TestBindingOK(t *testing.T) {
	dom := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
	v := VerifyBinding(BindingInput{Email: mustEmail(t, "alice@example.org"), DNS: txtFor(dom), Key: cert, DomainKey: dom.PublicOnly(), Now: testNow})
	if !v.OK() {
		t.Fatalf("verdict %v", v)
	}
	if want := testNow.Add(DefaultCertificationLifetime); !v.Expires.Equal(want) {
		t.Fatalf("expires %v want %v", v.Expires, want)
	}
}

func TestRotationJudgement(t *testing.T) {
	dom := newDomain(t, "example.org")
	bob := newUser(t, "Bob", "bob@example.org")
	email := mustEmail(t, "bob@example.org")
	next, rev, err := Rotate(bob, testNow.Add(time.Hour), NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rev.Kind() != "superseded" || *rev.Successor != next.Fingerprint() {
		t.Fatalf("revocation %+v", rev)
	}
	at := testNow.Add(2 * time.Hour)
	// Old key's certification only: conflict.
	var se *SuccessionError
	if err := JudgeSuccessor(bob.PublicOnly(), next.PublicOnly(), dom, email, at); !errors.As(err, &se) || !se.MissingDomain || se.MissingOld {
		t.Fatalf("without domain: %v", err)
	}
	both := certify(t, next, dom, "bob@example.org", at, 0)
	if err := JudgeSuccessor(bob.PublicOnly(), both, dom, email, at); err != nil {
		t.Fatalf("with both: %v", err)
	}
	// Domain only (a hijack): conflict.
	evil := newUser(t, "Bob", "bob@example.org")
	evilCert := certify(t, evil, dom, "bob@example.org", at, 0)
	if err := JudgeSuccessor(bob.PublicOnly(), evilCert, dom, email, at); !errors.As(err, &se) || se.Other == "" {
		t.Fatalf("successor other than the one named: %v", err)
	}
	carol := newUser(t, "Bob", "bob@example.org")
	if err := JudgeSuccessor(carol.PublicOnly(), evilCert, dom, email, at); !errors.As(err, &se) || !se.MissingOld || se.MissingDomain {
		t.Fatalf("hijack: %v", err)
	}
}
