package waiver

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
)

var bob, _ = address.ParseFingerprint("0123456789abcdef0123456789abcdef01234567")

func granted(toks ...Token) Lookup {
	return func(id [IDSize]byte) ([KeySize]byte, time.Time, bool) {
		for _, t := range toks {
			if t.ID == id {
				return t.Key, t.NotAfter, true
			}
		}
		return [KeySize]byte{}, time.Time{}, false
	}
}

func TestWaiver(t *testing.T) {
	now := time.Now()
	tok, err := New(bob, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	msg := sha256.Sum256([]byte("hello bob"))
	other := sha256.Sum256([]byte("buy now"))
	proof := tok.Prove(msg)
	if id, err := Verify(proof, bob, msg, now, granted(tok)); err != nil || id != tok.ID {
		t.Fatalf("valid proof: %v", err)
	}
	carol, _ := address.ParseFingerprint("ffffffffffffffffffffffffffffffffffffffff")
	bad := append([]byte(nil), proof...)
	bad[len(bad)-1] ^= 1
	tests := []struct {
		name   string
		proof  []byte
		to     address.Fingerprint
		digest [32]byte
		at     time.Time
		lookup Lookup
		want   error
	}{
		{"reused for other content", proof, bob, other, now, granted(tok), ErrBadMAC},
		{"sent to another recipient", proof, carol, msg, now, granted(tok), ErrBadMAC},
		{"flipped MAC bit", bad, bob, msg, now, granted(tok), ErrBadMAC},
		{"revoked", proof, bob, msg, now, granted(), ErrUnknown},
		{"expired", proof, bob, msg, now.Add(25 * time.Hour), granted(tok), ErrExpired},
		{"short", proof[:10], bob, msg, now, granted(tok), ErrMalformed},
		{"empty", nil, bob, msg, now, granted(tok), ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := Verify(tt.proof, tt.to, tt.digest, tt.at, tt.lookup); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestTokenText(t *testing.T) {
	tok, err := New(bob, time.Unix(1800000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseToken(tok.String())
	if err != nil || back != tok {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, tok)
	}
	never, _ := New(bob, time.Time{})
	if back, err := ParseToken(never.String()); err != nil || !back.NotAfter.IsZero() {
		t.Fatalf("no expiry: %v %v", back.NotAfter, err)
	}
	for _, s := range []string{"", "dsep-waiver-1:", tok.String() + ":x", "dsep-waiver-2:" + tok.String()[14:],
		"dsep-waiver-1:0123456789abcdef0123456789abcdef01234567:-1:AAAA", "dsep-waiver-1:0123456789abcdef0123456789abcdef01234567:01:" + tok.String()[len(tok.String())-64:]} {
		if _, err := ParseToken(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseToken(%q) = %v, want ErrMalformed", s, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	tok, _ := New(bob, time.Unix(1800000000, 0))
	f.Add(tok.String())
	f.Add("dsep-waiver-1:0123456789abcdef0123456789abcdef01234567:0:AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := ParseToken(s)
		if err != nil {
			return
		}
		back, err := ParseToken(tk.String())
		if err != nil || back != tk {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	tok, _ := New(bob, time.Time{})
	d := sha256.Sum256([]byte("x"))
	f.Add(tok.Prove(d))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, proof []byte) {
		// Never panics; accepts only the real proof.
		if _, err := Verify(proof, bob, d, time.Now(), granted(tok)); err == nil && string(proof) != string(tok.Prove(d)) {
			t.Fatalf("accepted a forged proof %x", proof)
		}
	})
}
