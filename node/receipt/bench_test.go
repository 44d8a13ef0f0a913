package receipt

import "testing"

func BenchmarkReceiptSign(b *testing.B) {
	alice, bob := newKey(b, "alice", 1), newKey(b, "bob", 2)
	r := sample(alice, bob, StatusDelivered, "")
	for b.Loop() {
		if _, err := r.Sign(bob, checkNow); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "receipts/s")
}

func BenchmarkReceiptVerify(b *testing.B) {
	alice, bob := newKey(b, "alice", 1), newKey(b, "bob", 2)
	w, err := sample(alice, bob, StatusDelivered, "").Sign(bob, checkNow)
	if err != nil {
		b.Fatal(err)
	}
	pub := bob.PublicOnly()
	for b.Loop() {
		s, err := Parse(w)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Verify(pub, checkNow); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "receipts/s")
}
