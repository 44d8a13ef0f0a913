package deliver

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dsep-project/dsep/node/envelope"
)

// unhex decodes hex written with spaces, as in the spec.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The test vectors of docs/protocol.md §11.3 and §11.5.
func TestSpecVectors(t *testing.T) {
	t.Run("stored", func(t *testing.T) {
		r := Response{Status: StatusStored, ID: envelope.IDOf([]byte("hi"))}
		want := unhex(t, "00 8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4 0000 0000")
		checkVector(t, r, want)
	})
	t.Run("retry", func(t *testing.T) {
		r := Response{Status: StatusRetry, Reason: "slow down", RetryAfter: 30 * time.Second}
		want := unhex(t, "03 0000000000000000000000000000000000000000000000000000000000000000 001e 0009 736c6f7720646f776e")
		checkVector(t, r, want)
	})
	t.Run("receipt", func(t *testing.T) {
		got, err := appendReceipt(nil, []byte("r1"))
		if err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, "0002 7231"); !bytes.Equal(got, want) {
			t.Fatalf("receipt frame %x, want %x", got, want)
		}
	})
}

func checkVector(t *testing.T, r Response, want []byte) {
	t.Helper()
	got := appendResponse(nil, r)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded %x\nwant    %x", got, want)
	}
	back, err := readResponse(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if back != r {
		t.Fatalf("decoded %+v, want %+v", back, r)
	}
}

func TestReadResponseErrors(t *testing.T) {
	good := appendResponse(nil, Response{Status: StatusRejected, Reason: "no"})
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"cut in the fixed part", good[:10], ErrMalformedResponse},
		{"cut in the reason", good[:len(good)-1], ErrMalformedResponse},
		{"unknown status", append([]byte{4}, good[1:]...), ErrMalformedResponse},
		{"reason over 512", append(append([]byte{}, good[:35]...), 0x02, 0x01), ErrMalformedResponse},
		{"reason not UTF-8", append(append([]byte{}, good[:35]...), 0, 1, 0xff), ErrMalformedResponse},
		{"reason with a newline", append(append([]byte{}, good[:35]...), 0, 2, 'a', '\n'), ErrMalformedResponse},
		{"reason with an escape", append(append([]byte{}, good[:35]...), 0, 2, 0x1b, '['), ErrMalformedResponse},
	}
	for _, tt := range tests {
		_, err := readResponse(bytes.NewReader(tt.in))
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestCleanReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{"stamp refused: already spent", "stamp refused: already spent"},
		{"two\nlines\x1b[31m", "two lines [31m"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{strings.Repeat("é", 300), strings.Repeat("é", 256)},
		{strings.Repeat("a", 511) + "é", strings.Repeat("a", 511)},
	}
	for _, tt := range tests {
		got := cleanReason(tt.in)
		if got != tt.want {
			t.Errorf("cleanReason(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if len(got) > MaxReason || !validReason([]byte(got)) {
			t.Errorf("cleanReason(%q) = %q is not a valid reason", tt.in, got)
		}
	}
	// Retry delays round up to seconds and saturate.
	for d, want := range map[time.Duration]uint16{0: 0, -time.Second: 0, time.Millisecond: 1, 1500 * time.Millisecond: 2, 1000 * time.Hour: 65535} {
		if got := retrySeconds(d); got != want {
			t.Errorf("retrySeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestReceiptFrames(t *testing.T) {
	var b []byte
	var err error
	for _, r := range []string{"a", strings.Repeat("x", MaxReceipt)} {
		if b, err = appendReceipt(b, []byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	rd := bytes.NewReader(b)
	for _, want := range []int{1, MaxReceipt} {
		r, err := readReceipt(rd)
		if err != nil || len(r) != want {
			t.Fatalf("read %d bytes, %v; want %d", len(r), err, want)
		}
	}
	if _, err := readReceipt(rd); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}
	for _, bad := range [][]byte{nil, make([]byte, MaxReceipt+1)} {
		if _, err := appendReceipt(nil, bad); err == nil {
			t.Errorf("appendReceipt accepted %d bytes", len(bad))
		}
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"zero length", []byte{0, 0}, errEmptyReceipt},
		{"over the limit", []byte{0x08, 0x01}, errReceiptTooLarge},
		{"cut short", []byte{0, 3, 'a'}, io.ErrUnexpectedEOF},
		{"cut in the length", []byte{0}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		if _, err := readReceipt(bytes.NewReader(tt.in)); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// FuzzReadResponse: the response decoder never panics, and what it
// accepts re-encodes to the same bytes.
func FuzzReadResponse(f *testing.F) {
	f.Add(appendResponse(nil, Response{Status: StatusStored, ID: envelope.IDOf([]byte("hi"))}))
	f.Add(appendResponse(nil, Response{Status: StatusDuplicate, ID: envelope.IDOf([]byte("x"))}))
	f.Add(appendResponse(nil, Response{Status: StatusRetry, Reason: "slow down", RetryAfter: 30 * time.Second}))
	f.Add(appendResponse(nil, Response{Status: StatusRejected, Reason: "stamp refused: already spent — é"}))
	f.Add([]byte{4})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := readResponse(bytes.NewReader(in))
		if err != nil {
			return
		}
		if r.Status > StatusRetry || len(r.Reason) > MaxReason || !utf8.ValidString(r.Reason) {
			t.Fatalf("accepted %+v", r)
		}
		out := appendResponse(nil, r)
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("re-encoding differs: %x vs %x", out, in)
		}
		back, err := readResponse(bytes.NewReader(out))
		if err != nil || back != r {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, r)
		}
	})
}

// FuzzReadReceipt: the receipt frame decoder never panics, bounds what it
// returns, and what it accepts re-encodes to the same bytes.
func FuzzReadReceipt(f *testing.F) {
	seed, _ := appendReceipt(nil, []byte("a receipt"))
	f.Add(seed)
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := readReceipt(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(r) == 0 || len(r) > MaxReceipt {
			t.Fatalf("accepted a receipt of %d bytes", len(r))
		}
		out, err := appendReceipt(nil, r)
		if err != nil || !bytes.HasPrefix(in, out) {
			t.Fatalf("re-encoding: %x, %v vs %x", out, err, in)
		}
	})
}
