package receipt

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts re-encodes to the
// very bytes it read (one encoding per receipt); Verify never panics on
// it either.
func FuzzParse(f *testing.F) {
	alice, bob := newKey(f, "alice", 1), newKey(f, "bob", 2)
	pub := bob.PublicOnly()
	for _, r := range vectorReceipts(alice, bob) {
		w, err := r.Sign(bob, checkNow)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(w)
		f.Add(w[:len(w)-1])
		s, err := Parse(w)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.Body)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00, 0x12, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatalf("Marshal(Parse(b)) != b")
		}
		body, err := s.Receipt.Marshal()
		if err != nil || !bytes.Equal(body, s.Body) {
			t.Fatalf("the parsed receipt re-encodes to another body (%v)", err)
		}
		again, err := Parse(s.Marshal())
		if err != nil || again.Receipt != s.Receipt {
			t.Fatalf("parse → encode → parse: %+v, %v; want %+v", again, err, s.Receipt)
		}
		_ = s.Verify(pub, checkNow)
	})
}
