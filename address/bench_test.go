package address

import (
	"bytes"
	"testing"
)

// benchBinding returns the input of a successful binding check with keys
// parsed from their published bytes, as a verifier holds them.
func benchBinding(b *testing.B) BindingInput {
	b.Helper()
	dom := newDomain(b, "example.org")
	alice := newUser(b, "Alice", "alice@example.org")
	cert := certify(b, alice, dom, "alice@example.org", testNow, 0)
	key, err := ReadKey(bytes.NewReader(cert.Armored()))
	if err != nil {
		b.Fatal(err)
	}
	domKey, err := ReadKey(bytes.NewReader(dom.Armored()))
	if err != nil {
		b.Fatal(err)
	}
	in := BindingInput{
		Email:     mustEmail(b, "alice@example.org"),
		DNS:       txtFor(dom),
		Key:       key,
		DomainKey: domKey,
		Now:       testNow,
	}
	if v := VerifyBinding(in); !v.OK() {
		b.Fatal(v)
	}
	return in
}

// BenchmarkVerifyBinding runs the whole check each time: TXT parsing, both
// keys' revocations and self-signatures as go-crypto judges them, and the
// domain's certification signature (Ed25519), which nothing caches.
func BenchmarkVerifyBinding(b *testing.B) {
	in := benchBinding(b)
	b.ReportAllocs()
	for b.Loop() {
		if v := VerifyBinding(in); !v.OK() {
			b.Fatal(v)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkVerifyBindingFresh parses the keys in every iteration, so no
// go-crypto validity cache helps: the cost of checking a key seen for the
// first time.
func BenchmarkVerifyBindingFresh(b *testing.B) {
	in := benchBinding(b)
	keyData, domData := in.Key.Bytes(), in.DomainKey.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		k, err := ReadKey(bytes.NewReader(keyData))
		if err != nil {
			b.Fatal(err)
		}
		d, err := ReadKey(bytes.NewReader(domData))
		if err != nil {
			b.Fatal(err)
		}
		in.Key, in.DomainKey = k, d
		if v := VerifyBinding(in); !v.OK() {
			b.Fatal(v)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

func BenchmarkFindCertification(b *testing.B) {
	in := benchBinding(b)
	const uid = "Alice <alice@example.org>"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FindCertification(in.Key, uid, in.DomainKey, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewIdentity(b *testing.B) {
	email := mustEmail(b, "alice@example.org")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewIdentity("Alice", email, NewIdentityOptions{Now: testNow}); err != nil {
			b.Fatal(err)
		}
	}
}
