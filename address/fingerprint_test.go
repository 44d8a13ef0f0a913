package address

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	fprLower = "0123456789abcdef0123456789abcdef01234567"
	fprUpper = "0123456789ABCDEF0123456789ABCDEF01234567"
)

func TestParseFingerprint(t *testing.T) {
	want := Fingerprint{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67}
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"lower", fprLower, nil},
		{"upper", fprUpper, nil},
		{"mixed", "0123456789aBcDeF0123456789AbCdEf01234567", nil},
		{"gpg groups", "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567", nil},
		{"leading and trailing space", " " + fprLower + " ", nil},
		{"empty", "", ErrBadFingerprint},
		{"39 digits", fprLower[:39], ErrBadFingerprint},
		{"41 digits", fprLower + "8", ErrBadFingerprint},
		{"42 digits (21 bytes)", fprLower + "89", ErrBadFingerprint},
		{"32 digits (v3/MD5 length)", fprLower[:32], ErrBadFingerprint},
		{"64 digits (v6 length)", fprLower + fprLower[:24], ErrBadFingerprint},
		{"non-hex g", "g" + fprLower[1:], ErrBadFingerprint},
		{"non-hex at end", fprLower[:39] + "z", ErrBadFingerprint},
		{"0x prefix", "0x" + fprLower[2:], ErrBadFingerprint},
		{"colons", "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67", ErrBadFingerprint},
		{"tab is not a group separator", fprLower[:20] + "\t" + fprLower[20:], ErrBadFingerprint},
		{"non-ASCII digit", "０" + fprLower[1:], ErrBadFingerprint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFingerprint(tt.in)
			if !errors.Is(err, tt.err) || (tt.err != nil) != (err != nil) {
				t.Fatalf("ParseFingerprint(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if err != nil {
				return
			}
			if got != want {
				t.Fatalf("ParseFingerprint(%q) = %s, want %s", tt.in, got, want)
			}
			if got.String() != fprLower {
				t.Fatalf("String() = %q, want lower-case %q", got.String(), fprLower)
			}
		})
	}
}

func TestFingerprintFromBytes(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		err  error
	}{
		{"20 bytes", make([]byte, 20), nil},
		{"20 bytes pattern", []byte("abcdefghijklmnopqrst"), nil},
		{"nil", nil, ErrBadFingerprint},
		{"19 bytes", make([]byte, 19), ErrBadFingerprint},
		{"21 bytes", make([]byte, 21), ErrBadFingerprint},
		{"32 bytes (v6)", make([]byte, 32), ErrBadFingerprint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FingerprintFromBytes(tt.in)
			if !errors.Is(err, tt.err) || (tt.err != nil) != (err != nil) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if err == nil && string(got[:]) != string(tt.in) {
				t.Fatalf("got % x, want % x", got[:], tt.in)
			}
		})
	}
	// The result is a copy.
	b := []byte("abcdefghijklmnopqrst")
	f, _ := FingerprintFromBytes(b)
	b[0] = 'X'
	if f[0] != 'a' {
		t.Fatal("FingerprintFromBytes aliases its input")
	}
}

func TestFingerprintForms(t *testing.T) {
	f, err := ParseFingerprint(fprLower)
	if err != nil {
		t.Fatal(err)
	}
	const grouped = "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"
	if g := f.Grouped(); g != grouped {
		t.Fatalf("Grouped() = %q, want %q", g, grouped)
	}
	if g, err := ParseFingerprint(f.Grouped()); err != nil || g != f {
		t.Fatalf("ParseFingerprint(Grouped()) = %s, %v", g, err)
	}
	if f.IsZero() || !(Fingerprint{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
	// JSON uses the text form.
	j, err := json.Marshal(map[string]Fingerprint{"f": f})
	if err != nil {
		t.Fatal(err)
	}
	if string(j) != `{"f":"`+fprLower+`"}` {
		t.Fatalf("json = %s", j)
	}
	var back map[string]Fingerprint
	if err := json.Unmarshal(j, &back); err != nil || back["f"] != f {
		t.Fatalf("json round trip: %v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"f":"abc"}`), &back); !errors.Is(err, ErrBadFingerprint) {
		t.Fatalf("bad json fingerprint: %v", err)
	}
}

// zbase32Alphabet is the alphabet of
// https://philzimmermann.com/docs/human-oriented-base-32-encoding.txt.
const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// zbase32BitSlice encodes b five bits at a time, most significant bit
// first, independently of encoding/base32. A trailing partial group is
// padded with zero bits.
func zbase32BitSlice(b []byte) string {
	var out []byte
	nbits := 8 * len(b)
	for pos := 0; pos < nbits; pos += 5 {
		v := 0
		for i := 0; i < 5; i++ {
			v <<= 1
			if p := pos + i; p < nbits && b[p/8]&(0x80>>(p%8)) != 0 {
				v |= 1
			}
		}
		out = append(out, zbase32Alphabet[v])
	}
	return string(out)
}

func TestZBase32Reference(t *testing.T) {
	// Vectors from the z-base-32 specification (whole bytes).
	for in, want := range map[string]string{
		"\xf0\xbf\xc7": "6n9hq",
		"\xd4\x7a\x04": "4t7ye",
		"\x00":         "yy",
	} {
		if got := zbase32BitSlice([]byte(in)); got != want {
			t.Errorf("reference encoder(% x) = %q, want %q", in, got, want)
		}
	}
}

func TestKeyAddressKnownVector(t *testing.T) {
	f := fpr(0) // 00 01 02 … 13
	// Worked out by hand from the alphabet: 0x00 0x01 0x02 0x03 0x04 →
	// 00000 00000 00000 10000 00100 00000 11000 00100 → y y y o r y a r.
	const want = "yyyoryarywdyqnyjbefoadeqbhebnrou@dsep.alt"
	if got := zbase32BitSlice(f[:]) + "@" + KeyAddressDomain; got != want {
		t.Fatalf("reference encoder = %q, want %q", got, want)
	}
	if got := f.KeyAddress().String(); got != want {
		t.Fatalf("KeyAddress().String() = %q, want %q", got, want)
	}
	k, err := ParseKeyAddress(want)
	if err != nil || k.Fingerprint() != f {
		t.Fatalf("ParseKeyAddress(%q) = %s, %v", want, k.Fingerprint(), err)
	}
	// All-zero and all-one fingerprints.
	var ones Fingerprint
	for i := range ones {
		ones[i] = 0xff
	}
	if got := (Fingerprint{}).KeyAddress().String(); got != strings.Repeat("y", 32)+"@dsep.alt" {
		t.Fatalf("zero fingerprint: %q", got)
	}
	if got := ones.KeyAddress().String(); got != strings.Repeat("9", 32)+"@dsep.alt" {
		t.Fatalf("0xff fingerprint: %q", got)
	}
}

func TestKeyAddressRoundTrip(t *testing.T) {
	for seed := range 64 {
		f := fpr(byte(seed * 37))
		s := f.KeyAddress().String()
		if ref := zbase32BitSlice(f[:]) + "@dsep.alt"; s != ref {
			t.Fatalf("%s: String() = %q, reference %q", f, s, ref)
		}
		k, err := ParseKeyAddress(s)
		if err != nil || k.Fingerprint() != f {
			t.Fatalf("round trip of %s: %s, %v", f, k.Fingerprint(), err)
		}
	}
}

func TestParseKeyAddress(t *testing.T) {
	f := fpr(0)
	good := f.KeyAddress().String() // yyyoryarywdyqnyjbefoadeqbhebnrou@dsep.alt
	local := strings.TrimSuffix(good, "@dsep.alt")
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"canonical", good, nil},
		{"upper case", strings.ToUpper(good), nil},
		{"upper-case domain only", local + "@DSEP.ALT", nil},
		{"surrounding space", "  " + good + "\n", nil},
		{"empty", "", ErrBadKeyAddress},
		{"no @", local, ErrBadKeyAddress},
		{"wrong domain", local + "@dsep.org", ErrBadKeyAddress},
		{"ordinary domain", local + "@example.org", ErrBadKeyAddress},
		{"subdomain of dsep.alt", local + "@x.dsep.alt", ErrBadKeyAddress},
		{"trailing dot", good + ".", ErrBadKeyAddress},
		{"31 characters", local[:31] + "@dsep.alt", ErrBadKeyAddress},
		{"33 characters", local + "y@dsep.alt", ErrBadKeyAddress},
		{"hex fingerprint", f.String() + "@dsep.alt", ErrBadKeyAddress},
		{"0 not in alphabet", "0" + local[1:] + "@dsep.alt", ErrBadKeyAddress},
		{"2 not in alphabet", "2" + local[1:] + "@dsep.alt", ErrBadKeyAddress},
		{"l not in alphabet", "l" + local[1:] + "@dsep.alt", ErrBadKeyAddress},
		{"v not in alphabet", "v" + local[1:] + "@dsep.alt", ErrBadKeyAddress},
		{"padding", local[:30] + "==@dsep.alt", ErrBadKeyAddress},
		{"two @", local + "@dsep.alt@dsep.alt", ErrBadKeyAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyAddress(tt.in)
			if !errors.Is(err, tt.err) || (tt.err != nil) != (err != nil) {
				t.Fatalf("ParseKeyAddress(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if err == nil && (k.Fingerprint() != f || k.String() != good) {
				t.Fatalf("ParseKeyAddress(%q) = %s", tt.in, k)
			}
		})
	}
}

func TestKeyAddressJSON(t *testing.T) {
	f, err := ParseFingerprint("0123456789abcdef0123456789abcdef01234567")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(struct{ A KeyAddress }{f.KeyAddress()})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"A":"yrtwk3hjixg66yjdeiuauk6p7hy1gtm8@dsep.alt"}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var back struct{ A KeyAddress }
	if err := json.Unmarshal(b, &back); err != nil || back.A.Fingerprint() != f {
		t.Fatalf("round trip: %v %v", err, back.A)
	}
	if err := json.Unmarshal([]byte(`{"A":"nope@dsep.alt"}`), &back); err == nil {
		t.Fatal("bad key address accepted")
	}
}
