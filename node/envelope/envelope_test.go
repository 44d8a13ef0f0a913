package envelope

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func encode(t testing.TB, kind Kind, proof, payload []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHeader(&b, kind, proof, uint64(len(payload))); err != nil {
		t.Fatal(err)
	}
	b.Write(payload)
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 100000)
	env := encode(t, KindStamp, []byte("1:20:261121:r::a:b"), payload)
	r := bytes.NewReader(env)
	h, err := ReadHeader(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kind != KindStamp || string(h.Proof) != "1:20:261121:r::a:b" || h.PayloadLen != 100000 {
		t.Fatalf("header %+v", h)
	}
	var out bytes.Buffer
	id, err := Payload(r, h, &out)
	if err != nil || !bytes.Equal(out.Bytes(), payload) || id != IDOf(payload) {
		t.Fatalf("payload: %v", err)
	}
	back, err := ParseID(id.String())
	if err != nil || back != id {
		t.Fatalf("ID round trip: %v", err)
	}
}

func TestRejects(t *testing.T) {
	good := encode(t, KindWaiver, bytes.Repeat([]byte{1}, 48), []byte("payload"))
	tests := []struct {
		name string
		in   []byte
		max  uint64
		want error
	}{
		{"empty", nil, 0, ErrMalformed},
		{"version 2", append([]byte{2}, good[1:]...), 0, ErrVersion},
		{"unknown kind", append([]byte{1, 9}, good[2:]...), 0, ErrMalformed},
		{"zero proof", []byte{1, 1, 0, 0}, 0, ErrMalformed},
		{"proof over limit", []byte{1, 1, 0x02, 0x01}, 0, ErrMalformed},
		{"short proof", good[:20], 0, ErrMalformed},
		{"short length", good[:4+48+3], 0, ErrMalformed},
		{"over the size limit", good, 3, ErrTooLarge},
		{"empty payload", encode(t, KindStamp, []byte("s"), nil), 0, ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := ReadHeader(bytes.NewReader(tt.in), tt.max); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// A payload cut short.
	r := bytes.NewReader(good[:len(good)-2])
	h, err := ReadHeader(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Payload(r, h, io.Discard); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated payload: %v", err)
	}
	// Writers refuse bad headers too.
	for _, p := range [][]byte{nil, bytes.Repeat([]byte{1}, MaxProof+1)} {
		if err := WriteHeader(io.Discard, KindStamp, p, 1); err == nil {
			t.Errorf("WriteHeader accepted a proof of %d bytes", len(p))
		}
	}
	if _, err := ParseID(strings.Repeat("g", 64)); err == nil {
		t.Error("ParseID accepted non-hex")
	}
}

// The size limit is enforced before the payload is read: a header
// claiming 1 TiB followed by nothing fails at once.
func TestLimitBeforeRead(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHeader(&b, KindStamp, []byte("s"), 1<<40); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHeader(&b, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("1 TiB claim: %v", err)
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add(encode(f, KindStamp, []byte("1:20:261121:r::a:b"), []byte("p")))
	f.Add(encode(f, KindWaiver, bytes.Repeat([]byte{7}, 48), []byte("payload")))
	f.Add([]byte{1, 1, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := ReadHeader(r, 1<<20)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := WriteHeader(&b, h.Kind, h.Proof, h.PayloadLen); err != nil {
			t.Fatalf("a header that read cannot be written: %v", err)
		}
		if !bytes.HasPrefix(in, b.Bytes()) {
			t.Fatalf("re-encoding differs: %x vs %x", b.Bytes(), in)
		}
		_, _ = Payload(r, h, io.Discard)
	})
}

// The test vector of docs/protocol.md §11.1.
func TestSpecVector(t *testing.T) {
	const want = "0101" + "0012" + "313a32303a3236313132313a723a3a613a62" + "0000000000000002" + "6869"
	got := encode(t, KindStamp, []byte("1:20:261121:r::a:b"), []byte("hi"))
	if hexs := strings.ToLower(fmtHex(got)); hexs != want {
		t.Fatalf("envelope %s, want %s", hexs, want)
	}
	if id := IDOf([]byte("hi")).String(); id != "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4" {
		t.Fatalf("ID %s", id)
	}
}

func fmtHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
