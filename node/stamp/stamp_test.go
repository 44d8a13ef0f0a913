package stamp

import (
	"context"
	"crypto/sha256"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/testnet/testtool"
)

const fp = "0123456789abcdef0123456789abcdef01234567"

var (
	ext     = PayloadExt(sha256.Sum256([]byte("payload")))
	mintDay = time.Date(2026, 11, 21, 12, 30, 0, 0, time.UTC)
)

func mint(t testing.TB, bits int, resource, ext string, now time.Time) string {
	t.Helper()
	s, err := Mint(context.Background(), MintParams{Bits: bits, Resource: resource, Ext: ext, Now: now}, nil)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return s
}

func TestParse(t *testing.T) {
	long := "1:20:261121:" + strings.Repeat("a", MaxLen) + "::r:c"
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want Stamp
		err  error
	}{
		{in: "1:16:261121:abcdef::rw19k9nvMle7s5BV:0000000000003Jv",
			want: Stamp{Bits: 16, Date: day, DateLen: 6, Resource: "abcdef", Rand: "rw19k9nvMle7s5BV", Counter: "0000000000003Jv"}},
		{in: "1:20:2611211305:" + fp + ":d=ab;x=1,2:a+/Z:9",
			want: Stamp{Bits: 20, Date: day.Add(13*time.Hour + 5*time.Minute), DateLen: 10, Resource: fp, Ext: "d=ab;x=1,2", Rand: "a+/Z", Counter: "9"}},
		{in: "1:0:991231235959:::r:c",
			want: Stamp{Bits: 0, Date: time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC), DateLen: 12, Rand: "r", Counter: "c"}},
		{in: "1:160:000101:x::r:c", want: Stamp{Bits: 160, Date: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), DateLen: 6, Resource: "x", Rand: "r", Counter: "c"}},
		{in: long, err: ErrMalformed},
		{in: "", err: ErrMalformed},
		{in: "garbage", err: ErrMalformed},
		{in: "1:20:261121:a::r", err: ErrMalformed},
		{in: "1:20:261121:a::r:c:d", err: ErrMalformed},
		{in: "0:20:261121:a::r:c", err: ErrMalformed},
		{in: "2:20:261121:a::r:c", err: ErrMalformed},
		{in: "1:020:261121:a::r:c", err: ErrMalformed},
		{in: "1:-1:261121:a::r:c", err: ErrMalformed},
		{in: "1:+1:261121:a::r:c", err: ErrMalformed},
		{in: "1:161:261121:a::r:c", err: ErrMalformed},
		{in: "1::261121:a::r:c", err: ErrMalformed},
		{in: "1:20:2611:a::r:c", err: ErrMalformed},
		{in: "1:20:2611211:a::r:c", err: ErrMalformed},
		{in: "1:20:261321:a::r:c", err: ErrMalformed},
		{in: "1:20:261131:a::r:c", err: ErrMalformed},
		{in: "1:20:2611212400:a::r:c", err: ErrMalformed},
		{in: "1:20:26112a:a::r:c", err: ErrMalformed},
		{in: "1:20:+61121:a::r:c", err: ErrMalformed},
		{in: "1:20:261121:a b::r:c", err: ErrMalformed},
		{in: "1:20:261121:a:é:r:c", err: ErrMalformed},
		{in: "1:20:261121:a:x\ty:r:c", err: ErrMalformed},
		{in: "1:20:261121:a:::c", err: ErrMalformed},
		{in: "1:20:261121:a::r=:c", err: ErrMalformed},
		{in: "1:20:261121:a::r:", err: ErrMalformed},
		{in: "1:20:261121:a::r:c-d", err: ErrMalformed},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Parse(%.60q) error = %v, want %v", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !got.Date.Equal(tt.want.Date) || got.Date.Location() != time.UTC {
			t.Errorf("Parse(%q).Date = %v, want %v", tt.in, got.Date, tt.want.Date)
		}
		got.Date, tt.want.Date = time.Time{}, time.Time{}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if s, _ := Parse(tt.in); s.String() != tt.in {
			t.Errorf("Parse(%q).String() = %q", tt.in, s.String())
		}
	}
}

// forge returns s with its counter changed so it lacks the claimed work.
func forge(t *testing.T, s string) string {
	st, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"a", "b", "c", "d", "e", "f"} {
		st.Counter = c
		if f := st.String(); LeadingZeros(f) < st.Bits {
			return f
		}
	}
	t.Fatal("could not forge")
	return ""
}

func TestCheck(t *testing.T) {
	good := mint(t, 16, fp, ext, mintDay)
	day := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	want := CheckParams{Bits: 16, Resource: fp, Ext: ext, Now: mintDay}
	with := func(f func(*CheckParams)) CheckParams { p := want; f(&p); return p }
	tests := []struct {
		name string
		in   string
		p    CheckParams
		err  error
	}{
		{"ok", good, want, nil},
		{"fewer bits wanted", good, with(func(p *CheckParams) { p.Bits = 10 }), nil},
		{"any ext", good, with(func(p *CheckParams) { p.Ext = "" }), nil},
		{"resource case", good, with(func(p *CheckParams) { p.Resource = strings.ToUpper(fp) }), nil},
		{"start of day", good, with(func(p *CheckParams) { p.Now = day }), nil},
		{"within slack", good, with(func(p *CheckParams) { p.Now = day.Add(-DefaultSlack) }), nil},
		{"end of window", good, with(func(p *CheckParams) { p.Now = day.Add(24*time.Hour + DefaultWindow) }), nil},
		{"malformed", "1:16:261121", want, ErrMalformed},
		{"too few bits", good, with(func(p *CheckParams) { p.Bits = 17 }), ErrTooFewBits},
		{"no work", forge(t, good), want, ErrWork},
		{"kelvin sign", good, with(func(p *CheckParams) { p.Resource = strings.Replace(fp, "a", "\u212a", 1) }), ErrWrongResource},
		{"wrong resource", good, with(func(p *CheckParams) { p.Resource = strings.Repeat("f", 40) }), ErrWrongResource},
		{"wrong ext", good, with(func(p *CheckParams) { p.Ext = PayloadExt([32]byte{}) }), ErrWrongExt},
		{"stale", good, with(func(p *CheckParams) { p.Now = day.Add(24*time.Hour + DefaultWindow + time.Second) }), ErrStale},
		{"stale short window", good, with(func(p *CheckParams) { p.Now = day.Add(25*time.Hour + time.Second); p.Window = time.Hour }), ErrStale},
		{"future", good, with(func(p *CheckParams) { p.Now = day.Add(-DefaultSlack - time.Second) }), ErrFuture},
		{"future small slack", good, with(func(p *CheckParams) { p.Now = day.Add(-2 * time.Second); p.Slack = time.Second }), ErrFuture},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Check(tt.in, tt.p)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Check = %v, want %v", err, tt.err)
			}
			if err == nil && st.String() != tt.in {
				t.Fatalf("String() = %q, want %q", st.String(), tt.in)
			}
		})
	}
	// The sentinels are distinct.
	all := []error{ErrMalformed, ErrTooFewBits, ErrWork, ErrWrongResource, ErrWrongExt, ErrStale, ErrFuture}
	for i, a := range all {
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v is %v", a, b)
			}
		}
	}
}

func TestMintCheck(t *testing.T) {
	for _, res := range []string{fp, "", "x", strings.Repeat("r", 60), strings.Repeat("r", 300)} {
		for _, bits := range []int{0, 1, 8, 16} {
			s := mint(t, bits, res, ext, mintDay)
			st, err := Check(s, CheckParams{Bits: bits, Resource: res, Ext: ext, Now: mintDay})
			if err != nil {
				t.Fatalf("Check(%q): %v", s, err)
			}
			if st.DateLen != 6 || len(st.Rand) != randLen || st.String() != s {
				t.Fatalf("minted %q parses as %+v", s, st)
			}
			if len(s)%64 != 55 {
				t.Fatalf("minted %q is %d bytes, want 55 mod 64", s, len(s))
			}
		}
	}
	if _, err := Mint(context.Background(), MintParams{Bits: 8, Resource: strings.Repeat("r", MaxLen)}, nil); err == nil {
		t.Error("Mint with a too long resource succeeded")
	}
	// Fits before padding, not after: the counter would spill into a new block.
	if _, err := Mint(context.Background(), MintParams{Bits: 8, Resource: strings.Repeat("r", 470)}, nil); err == nil {
		t.Error("Mint with a 470-byte resource succeeded")
	}
	if _, err := Mint(context.Background(), MintParams{Bits: 8, Resource: "a:b"}, nil); err == nil {
		t.Error("Mint with ':' in resource succeeded")
	}
	if _, err := Mint(context.Background(), MintParams{Bits: 161, Resource: "a"}, nil); err == nil {
		t.Error("Mint with 161 bits succeeded")
	}
}

func TestMintCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error, 1)
	go func() {
		_, err := Mint(ctx, MintParams{Bits: 40, Resource: fp, Workers: 3}, func(uint64) { calls++ })
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Mint after cancel = %v, want context.Canceled", err)
	}
	t.Logf("progress called %d times", calls)
}

func TestPrice(t *testing.T) {
	const k = 64 << 10
	tests := []struct {
		size       int64
		base, bits int
	}{
		{0, 0, 20}, {1, 0, 20}, {k, 0, 20}, {k + 1, 0, 21}, {2 * k, 0, 21}, {2*k + 1, 0, 22},
		{4 * k, 0, 22}, {1 << 20, 0, 24}, {1<<20 + 1, 0, 25}, {k, 16, 16}, {3 * k, 16, 18},
		{1 << 62, 20, 20 + 46},
	}
	for _, tt := range tests {
		if got := Price(tt.size, tt.base); got != tt.bits {
			t.Errorf("Price(%d, %d) = %d, want %d", tt.size, tt.base, got, tt.bits)
		}
	}
}

func TestExpires(t *testing.T) {
	st, _ := Parse("1:16:261121:a::r:c")
	if got, want := st.Expires(0), time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Expires = %v, want %v", got, want)
	}
}

func TestHashcashChecksOurStamps(t *testing.T) {
	tool := testtool.Require(t, "hashcash")
	db := filepath.Join(t.TempDir(), "db")
	for _, e := range []string{ext, ""} {
		s := mint(t, 16, fp, e, time.Now())
		out, err := exec.Command(tool, "-c", "-d", "-f", db, "-b", "16", "-r", fp, s).CombinedOutput()
		if err != nil {
			t.Fatalf("hashcash -c %s: %v\n%s", s, err, out)
		}
		out, err = exec.Command(tool, "-c", "-d", "-f", db, "-b", "16", "-r", fp, s).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "spent") {
			t.Fatalf("second hashcash -c %s: %v, want spent\n%s", s, err, out)
		}
		out, err = exec.Command(tool, "-c", "-d", "-f", db, "-b", "17", "-r", fp, mint(t, 16, fp, e, time.Now())).CombinedOutput()
		if err == nil {
			t.Fatalf("hashcash -c -b 17 accepted a 16-bit stamp\n%s", out)
		}
	}
}

func TestWeCheckHashcashStamps(t *testing.T) {
	tool := testtool.Require(t, "hashcash")
	for _, args := range [][]string{
		{"-q", "-m", "-b", "16", fp},
		{"-q", "-m", "-b", "16", "-x", ext, strings.ToUpper(fp)},
		{"-q", "-m", "-b", "16", "-z", "12", fp},
		{"-q", "-m", "-b", "12", "-Z", "2", fp},
	} {
		out, err := exec.Command(tool, args...).Output()
		if err != nil {
			t.Fatalf("hashcash %v: %v", args, err)
		}
		s := strings.TrimSpace(string(out))
		want := CheckParams{Bits: 12, Resource: fp}
		if strings.Contains(s, ext) {
			want.Ext = ext
		}
		st, err := Check(s, want)
		if err != nil {
			t.Fatalf("Check(%q) from hashcash %v: %v", s, args, err)
		}
		if st.String() != s {
			t.Fatalf("round trip %q -> %q", s, st.String())
		}
		t.Logf("hashcash %v: %s", args, s)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"1:16:261121:abcdef::rw19k9nvMle7s5BV:0000000000003Jv",
		"1:20:2611211305:" + fp + ":" + ext + ":a+/Z:9",
		"1:0:991231235959:::r:c",
		"1:20:261321:a::r:c",
		"1:020:261121:a::r:c",
		"garbage",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v is not ErrMalformed", err)
			}
			return
		}
		if st.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, st.String())
		}
		st2, err := Parse(st.String())
		if err != nil || st2 != st {
			t.Fatalf("reparse: %+v, %v; want %+v", st2, err, st)
		}
		if _, err := Check(s, CheckParams{Resource: st.Resource, Now: st.Date}); err != nil && !errors.Is(err, ErrWork) {
			t.Fatalf("Check of a parsed stamp at its own date: %v", err)
		}
	})
}

// BenchmarkMintLoop measures one worker's minting loop on a DSEP-sized
// stamp (40-hex resource, d= ext), unreachable target. Compare with
// `hashcash -s` on the same machine.
func BenchmarkMintLoop(b *testing.B) {
	m := newMiner("1:160:261121:"+fp+":"+ext+":AAAAAAAAAAAAAAAA:", 160)
	m.prepare()
	d2 := 0
	for b.Loop() {
		if _, ok := m.scan(d2 & 63); ok {
			b.Fatal("found a 160-bit stamp")
		}
		d2++
	}
	b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "tries/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(b.N)*batch), "ns/try")
}

func BenchmarkBench(b *testing.B) {
	for b.Loop() {
		b.ReportMetric(Bench(context.Background(), 200*time.Millisecond, 1), "tries/s")
	}
}
