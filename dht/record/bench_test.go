package record

import (
	"testing"
)

// benchVerify verifies the golden value of type typ at goldenAt in a
// loop. Nothing is cached between iterations: every one decodes the
// value, parses the key material and checks every signature.
func benchVerify(b *testing.B, typ Type) {
	keys, values := fuzzSeeds(b)
	key, value := keys[typ], values[typ]
	if _, err := Verify(key, value, goldenAt); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := Verify(key, value, goldenAt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkVerifyKey: the record signature, then the whole key as a
// verifier judges it (self-signatures, subkey bindings and back-signature).
func BenchmarkVerifyKey(b *testing.B) { benchVerify(b, KeyType) }

// BenchmarkVerifyEmail: the record signature and the domain's
// certification.
func BenchmarkVerifyEmail(b *testing.B) { benchVerify(b, EmailType) }

// BenchmarkVerifyReach: the subkey binding and back-signature, then the
// record signature by the subkey.
func BenchmarkVerifyReach(b *testing.B) { benchVerify(b, ReachType) }

// BenchmarkVerifyRev: the record signature and the revocation.
func BenchmarkVerifyRev(b *testing.B) { benchVerify(b, RevType) }
