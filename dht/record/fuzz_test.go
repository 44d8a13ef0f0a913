package record

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzSeeds returns the golden vectors' keys and values by type, and some
// hand-made values.
func fuzzSeeds(t testing.TB) (keys map[Type]string, values map[Type][]byte) {
	keys, values = map[Type]string{}, map[Type][]byte{}
	for _, v := range readVectors(t) {
		typ, _, err := ParseDHTKey(v.fields["key"])
		if err != nil {
			t.Fatal(err)
		}
		keys[typ], values[typ] = v.fields["key"], v.value
	}
	return keys, values
}

// body returns the record body inside a value.
func body(t testing.TB, value []byte) []byte {
	s, err := UnmarshalSigned(value)
	if err != nil {
		t.Fatal(err)
	}
	return s.Record.Body
}

// isSentinel reports whether err wraps one of the package's sentinels.
func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzUnmarshalSigned(f *testing.F) {
	_, values := fuzzSeeds(f)
	for _, v := range values {
		f.Add(v)
	}
	f.Add([]byte{})
	f.Add(field(1, Record{}.Marshal()))
	f.Add(cat(field(1, Record{Type: KeyType, Version: 1}.Marshal()), field(2, "sig")))
	f.Fuzz(func(t *testing.T, value []byte) {
		s, err := UnmarshalSigned(value)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if !bytes.Equal(s.Marshal(), value) {
			t.Fatal("value does not re-encode to itself")
		}
		if !bytes.Equal(s.Record.Marshal(), s.Raw) {
			t.Fatal("record does not re-encode to itself")
		}
		r, err := Unmarshal(s.Raw)
		if err != nil || !bytes.Equal(r.Marshal(), s.Raw) {
			t.Fatalf("record round trip: %v", err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	keys, values := fuzzSeeds(f)
	for typ, v := range values {
		f.Add(uint8(typ), v)
		// A second seed per namespace: the value with its record body cut.
		s, _ := UnmarshalSigned(v)
		r := s.Record
		r.Body = r.Body[:len(r.Body)/2]
		f.Add(uint8(typ), (&Signed{Raw: r.Marshal(), Signature: s.Signature}).Marshal())
	}
	f.Fuzz(func(t *testing.T, ns uint8, value []byte) {
		typ := Type(ns%4 + 1)
		key := keys[typ]
		v, err := Verify(key, value, goldenAt)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if v.Type != typ || v.DHTKey != key || !bytes.Equal(v.Signed.Marshal(), value) || !bytes.Equal(v.Signed.Record.Marshal(), v.Signed.Raw) {
			t.Fatal("a verified value does not re-encode to itself")
		}
		switch typ {
		case RevType:
			b, err := UnmarshalRevBody(v.Signed.Record.Body)
			if err != nil || v.Rev == nil {
				t.Fatal(err)
			}
			if _, err := UnmarshalRevBody(b.Marshal()); err != nil {
				t.Fatal(err)
			}
		case ReachType:
			checkReachRoundTrip(t, v.Signed.Record.Body)
		case EmailType:
			checkEmailRoundTrip(t, v.Signed.Record.Body)
		}
	})
}

func checkReachRoundTrip(t *testing.T, b []byte) {
	r, err := UnmarshalReachBody(b)
	if err != nil {
		return
	}
	enc := r.Marshal()
	back, err := UnmarshalReachBody(enc)
	if err != nil {
		t.Fatalf("re-encoded reach body does not decode: %v", err)
	}
	if !bytes.Equal(back.Marshal(), enc) {
		t.Fatal("reach body encoding is not stable")
	}
	if len(back.Delegations) != len(r.Delegations) || len(back.Addrs) != len(r.Addrs) || back.Hidden != r.Hidden || back.StampBits != r.StampBits {
		t.Fatal("reach body changed in the round trip")
	}
}

func checkEmailRoundTrip(t *testing.T, b []byte) {
	e, err := UnmarshalEmailBody(b)
	if err != nil {
		return
	}
	enc := e.Marshal()
	back, err := UnmarshalEmailBody(enc)
	if err != nil {
		t.Fatalf("re-encoded email body does not decode: %v", err)
	}
	if back.UserID != e.UserID || !bytes.Equal(back.UserPrimary, e.UserPrimary) || !bytes.Equal(back.DomainPrimary, e.DomainPrimary) ||
		!bytes.Equal(back.Certification, e.Certification) || !bytes.Equal(back.Marshal(), enc) {
		t.Fatal("email body changed in the round trip")
	}
}

func FuzzReachBody(f *testing.F) {
	_, values := fuzzSeeds(f)
	f.Add(body(f, values[ReachType]))
	f.Add(ReachBody{Primary: []byte{1}, Signing: []byte{2}, Binding: []byte{3}, StampBits: 40, Hidden: true}.Marshal())
	f.Add(cat(field(1, "p"), field(2, "s"), field(3, "b"), field(5, cat(field(1, "x"), field(2, "y")))))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := UnmarshalReachBody(b)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
		checkReachRoundTrip(t, b)
	})
}

func FuzzEmailBody(f *testing.F) {
	_, values := fuzzSeeds(f)
	f.Add(body(f, values[EmailType]))
	f.Add(EmailBody{UserPrimary: []byte{1}, UserID: "<a@example.org>", DomainPrimary: []byte{2}, Certification: []byte{3}}.Marshal())
	f.Add(cat(field(2, "\xff"), field(1, "p"), field(3, "d"), field(4, "c"), field(9, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := UnmarshalEmailBody(b)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
		checkEmailRoundTrip(t, b)
	})
}

func FuzzRevBody(f *testing.F) {
	_, values := fuzzSeeds(f)
	f.Add(body(f, values[RevType]))
	f.Add(cat(field(1, "p"), field(2, "r"), field(3, 7)))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRevBody(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		back, err := UnmarshalRevBody(r.Marshal())
		if err != nil || !bytes.Equal(back.Primary, r.Primary) || !bytes.Equal(back.Revocation, r.Revocation) {
			t.Fatalf("rev body round trip: %v", err)
		}
	})
}
