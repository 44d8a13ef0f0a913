package dns

import (
	"context"
	"errors"
	"fmt"
	"github.com/dsep-project/dsep/testnet/testtool"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/dsep-project/dsep/testnet/dnstest"
)

// TestMain checks that the package's tests leave no goroutines behind.
func TestMain(m *testing.M) { testtool.Main(m, 0, 5*time.Second) }

const dsepName = "_dsep.example.org"

func startServer(t *testing.T) *dnstest.Server {
	t.Helper()
	s, err := dnstest.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func newResolver(t *testing.T, cfg Config, servers ...*dnstest.Server) *Resolver {
	t.Helper()
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, s.Addr())
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func lookup(t *testing.T, r *Resolver, name string) *TXTAnswer {
	t.Helper()
	a, err := r.LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatalf("LookupTXT(%q): %v", name, err)
	}
	return a
}

// fakeClock is a settable clock for cache tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestLookup(t *testing.T) {
	s := startServer(t)
	s.AddTXT(dsepName, "v=DSEP1; fpr=aaaa")
	s.SetTTL(120)
	r := newResolver(t, Config{}, s)

	a := lookup(t, r, "_DSEP.Example.ORG") // no dot, mixed case
	want := &TXTAnswer{
		Name:    "_dsep.example.org.",
		Records: []string{"v=DSEP1; fpr=aaaa"},
		Server:  s.Addr(),
		TTL:     120 * time.Second,
	}
	if fmt.Sprint(a) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", a, want)
	}
	if udp, tcp := s.Queries(dsepName); udp != 1 || tcp != 0 {
		t.Errorf("queries: %d udp, %d tcp", udp, tcp)
	}
}

func TestRollover(t *testing.T) {
	s := startServer(t)
	s.AddTXT(dsepName, "v=DSEP1; fpr=old")
	s.AddTXT(dsepName, "v=DSEP1; ", "fpr=new") // two strings, one record
	r := newResolver(t, Config{}, s)
	a := lookup(t, r, dsepName)
	if !slices.Equal(a.Records, []string{"v=DSEP1; fpr=old", "v=DSEP1; fpr=new"}) {
		t.Fatalf("records %q", a.Records)
	}
}

func TestLongStringsJoined(t *testing.T) {
	s := startServer(t)
	long := "v=DSEP1; fpr=" + strings.Repeat("0123456789abcdef", 40) // 653 bytes
	s.AddTXT(dsepName, long)
	raw := "quote\" backslash\\ \x00\xff \\065"
	s.AddTXT(dsepName, raw)
	r := newResolver(t, Config{}, s)
	a := lookup(t, r, dsepName)
	if len(a.Records) != 2 || a.Records[0] != long || a.Records[1] != raw {
		t.Fatalf("records %q", a.Records)
	}
}

func TestNotFound(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *dnstest.Server)
	}{
		{"NXDOMAIN", func(s *dnstest.Server) {}},
		{"NODATA", func(s *dnstest.Server) {
			s.AddRR(&mdns.A{Hdr: mdns.RR_Header{Name: dsepName + ".", Rrtype: mdns.TypeA, Class: mdns.ClassINET}, A: []byte{127, 0, 0, 1}})
		}},
		{"CNAME to nothing", func(s *dnstest.Server) {
			s.AddRR(&mdns.CNAME{Hdr: mdns.RR_Header{Name: dsepName + ".", Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET}, Target: "gone.example.net."})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s1, s2 := startServer(t), startServer(t)
			tt.setup(s1)
			s2.AddTXT(dsepName, "v=DSEP1; fpr=other")
			r := newResolver(t, Config{}, s1, s2)
			_, err := r.LookupTXT(context.Background(), dsepName)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			var le *LookupError
			if !errors.As(err, &le) || le.Temporary() || le.Timeout || le.Server != s1.Addr() {
				t.Fatalf("err = %#v", err)
			}
			want := "dns: lookup _dsep.example.org TXT at " + s1.Addr() + ": no such record"
			if err.Error() != want {
				t.Errorf("Error() = %q, want %q", err, want)
			}
			if udp, tcp := s2.Queries(dsepName); udp+tcp != 0 {
				t.Error("second server asked after an authoritative not-found")
			}
		})
	}
}

func TestCNAME(t *testing.T) {
	s := startServer(t)
	s.AddRR(&mdns.CNAME{Hdr: mdns.RR_Header{Name: dsepName + ".", Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET}, Target: "_dsep.hosting.net."})
	s.AddTXT("_dsep.hosting.net", "v=DSEP1; fpr=hosted")
	r := newResolver(t, Config{}, s)
	a := lookup(t, r, dsepName)
	if !slices.Equal(a.Records, []string{"v=DSEP1; fpr=hosted"}) || a.Name != dsepName+"." {
		t.Fatalf("answer %+v", a)
	}
}

func TestFailover(t *testing.T) {
	for _, mode := range []dnstest.Mode{dnstest.ServFail, dnstest.Refused} {
		t.Run(mode.String(), func(t *testing.T) {
			bad, good := startServer(t), startServer(t)
			bad.SetMode("", mode)
			good.AddTXT(dsepName, "v=DSEP1; fpr=good")
			r := newResolver(t, Config{Attempts: 3}, bad, good)
			a := lookup(t, r, dsepName)
			if a.Server != good.Addr() || a.Records[0] != "v=DSEP1; fpr=good" {
				t.Fatalf("answer %+v", a)
			}
			// An RCODE failure moves on at once; it is not retried.
			if udp, _ := bad.Queries(dsepName); udp != 1 {
				t.Errorf("failing server asked %d times, want 1", udp)
			}
		})
	}
}

func TestAllFail(t *testing.T) {
	s := startServer(t)
	s.SetMode("", dnstest.ServFail)
	r := newResolver(t, Config{}, s)
	_, err := r.LookupTXT(context.Background(), dsepName)
	var le *LookupError
	if !errors.As(err, &le) || !le.Temporary() || le.Timeout || errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %#v", err)
	}
	want := "dns: lookup _dsep.example.org TXT at " + s.Addr() + ": server answered SERVFAIL"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	// Failures are not cached.
	s.SetMode("", dnstest.Normal)
	s.AddTXT(dsepName, "v=DSEP1")
	lookup(t, r, dsepName)
}

func TestTimeout(t *testing.T) {
	s := startServer(t)
	s.SetMode("", dnstest.Timeout)
	r := newResolver(t, Config{Timeout: 200 * time.Millisecond, Attempts: 1}, s)
	_, err := r.LookupTXT(context.Background(), dsepName)
	var le *LookupError
	if !errors.As(err, &le) || !le.Timeout || !le.Temporary() || le.Server != s.Addr() {
		t.Fatalf("err = %#v", err)
	}
	want := "dns: lookup _dsep.example.org TXT at " + s.Addr() + ": timed out"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	if udp, _ := s.Queries(dsepName); udp != 1 {
		t.Errorf("asked %d times with Attempts 1", udp)
	}
}

func TestAttemptsThenNextServer(t *testing.T) {
	slow, good := startServer(t), startServer(t)
	slow.SetMode("", dnstest.Timeout)
	good.AddTXT(dsepName, "v=DSEP1")
	r := newResolver(t, Config{Timeout: 250 * time.Millisecond, Attempts: 2}, slow, good)
	if a := lookup(t, r, dsepName); a.Server != good.Addr() {
		t.Fatalf("answered by %s", a.Server)
	}
	if udp, _ := slow.Queries(dsepName); udp != 2 {
		t.Errorf("silent server asked %d times, want 2", udp)
	}
}

func TestNetworkErrorNextServer(t *testing.T) {
	good := startServer(t)
	good.AddTXT(dsepName, "v=DSEP1")
	// A port where nothing listens any more: loopback UDP reports it at once.
	gone, err := dnstest.Start("")
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	r := newResolver(t, Config{Servers: []string{gone.Addr()}, Timeout: 500 * time.Millisecond}, good)
	if a := lookup(t, r, dsepName); a.Server != good.Addr() {
		t.Fatalf("answered by %s", a.Server)
	}
}

func TestTruncationRetriesOverTCP(t *testing.T) {
	t.Run("TC bit", func(t *testing.T) {
		s := startServer(t)
		s.AddTXT(dsepName, "v=DSEP1; fpr=aaaa")
		s.SetMode(dsepName, dnstest.Truncate)
		r := newResolver(t, Config{}, s)
		a := lookup(t, r, dsepName)
		if !slices.Equal(a.Records, []string{"v=DSEP1; fpr=aaaa"}) {
			t.Fatalf("records %q", a.Records)
		}
		if udp, tcp := s.Queries(dsepName); udp != 1 || tcp != 1 {
			t.Errorf("queries: %d udp, %d tcp; want 1, 1", udp, tcp)
		}
	})
	t.Run("large answer", func(t *testing.T) {
		s := startServer(t)
		var want []string
		for i := 0; i < 10; i++ { // ≈ 3 KB, over the 1232-byte EDNS0 size
			rec := fmt.Sprintf("v=DSEP1; n=%d; pad=%s", i, strings.Repeat("p", 300))
			s.AddTXT(dsepName, rec)
			want = append(want, rec)
		}
		r := newResolver(t, Config{}, s)
		a := lookup(t, r, dsepName)
		if !slices.Equal(a.Records, want) {
			t.Fatalf("got %d records, want %d", len(a.Records), len(want))
		}
		if udp, tcp := s.Queries(dsepName); udp != 1 || tcp != 1 {
			t.Errorf("queries: %d udp, %d tcp; want 1, 1", udp, tcp)
		}
	})
}

func TestTooManyRecords(t *testing.T) {
	s := startServer(t)
	for i := 0; i <= MaxRecords; i++ {
		s.AddTXT(dsepName, fmt.Sprint(i))
	}
	r := newResolver(t, Config{}, s)
	_, err := r.LookupTXT(context.Background(), dsepName)
	var le *LookupError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "more than 64 TXT records") {
		t.Fatalf("err = %v", err)
	}
}

func TestAD(t *testing.T) {
	s := startServer(t)
	s.AddTXT(dsepName, "v=DSEP1")
	s.SetAD(true)

	tests := []struct {
		name     string
		trustAD  bool
		loopback bool
		want     bool
	}{
		{"not trusted", false, true, false},
		{"trusted loopback", true, true, true},
		{"trusted remote", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t, Config{TrustAD: tt.trustAD}, s)
			if !tt.loopback {
				r.trusted = func(string) bool { return false }
			}
			if a := lookup(t, r, dsepName); a.Authenticated != tt.want {
				t.Fatalf("Authenticated = %v, want %v", a.Authenticated, tt.want)
			}
		})
	}

	s.SetAD(false)
	r := newResolver(t, Config{TrustAD: true}, s)
	if a := lookup(t, r, dsepName); a.Authenticated {
		t.Fatal("Authenticated without the AD bit")
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		server string
		want   bool
	}{
		{"127.0.0.1:53", true},
		{"127.9.9.9:53", true},
		{"[::1]:53", true},
		{"::1", true},
		{"127.0.0.1", true},
		{"[::ffff:127.0.0.1]:53", true},
		{"10.0.0.1:53", false},
		{"192.168.1.1:53", false},
		{"[2001:db8::1]:53", false},
		{"[::]:53", false},
		{"0.0.0.0:53", false},
		{"localhost:53", false},
		{"localhost", false},
		{"127.0.0.1.example.com:53", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isLoopback(tt.server); got != tt.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tt.server, got, tt.want)
		}
	}
}

func TestCache(t *testing.T) {
	s := startServer(t)
	s.AddTXT(dsepName, "v=DSEP1; fpr=aaaa")
	s.SetTTL(300)
	clock := newClock()
	r := newResolver(t, Config{Now: clock.Now}, s)

	a := lookup(t, r, dsepName)
	a.Records[0] = "mutated" // must not reach the cache
	clock.Advance(100 * time.Second)
	b := lookup(t, r, "_DSEP.EXAMPLE.ORG.")
	if udp, tcp := s.Queries(dsepName); udp+tcp != 1 {
		t.Fatalf("server asked %d times, want 1 (cached)", udp+tcp)
	}
	if b.Records[0] != "v=DSEP1; fpr=aaaa" || b.TTL != 200*time.Second || b.Server != s.Addr() {
		t.Fatalf("cached answer %+v", b)
	}

	clock.Advance(200 * time.Second) // expired
	lookup(t, r, dsepName)
	if udp, tcp := s.Queries(dsepName); udp+tcp != 2 {
		t.Fatalf("server asked %d times after expiry, want 2", udp+tcp)
	}

	r.FlushCache()
	lookup(t, r, dsepName)
	if udp, tcp := s.Queries(dsepName); udp+tcp != 3 {
		t.Fatalf("server asked %d times after FlushCache, want 3", udp+tcp)
	}
}

func TestCacheTTLCapped(t *testing.T) {
	s := startServer(t)
	s.AddTXT(dsepName, "v=DSEP1")
	s.SetTTL(86400)
	clock := newClock()
	r := newResolver(t, Config{Now: clock.Now}, s)
	lookup(t, r, dsepName)
	clock.Advance(MaxCacheTTL - time.Second)
	lookup(t, r, dsepName)
	if udp, _ := s.Queries(dsepName); udp != 1 {
		t.Fatalf("asked %d times within the hour", udp)
	}
	clock.Advance(time.Second)
	lookup(t, r, dsepName)
	if udp, _ := s.Queries(dsepName); udp != 2 {
		t.Fatalf("asked %d times after an hour, want 2", udp)
	}
}

func TestZeroTTLNotCached(t *testing.T) {
	s := startServer(t)
	s.AddTXT(dsepName, "v=DSEP1")
	s.SetTTL(0)
	r := newResolver(t, Config{Now: newClock().Now}, s)
	lookup(t, r, dsepName)
	lookup(t, r, dsepName)
	if udp, _ := s.Queries(dsepName); udp != 2 {
		t.Fatalf("asked %d times, want 2", udp)
	}
}

func TestNegativeCache(t *testing.T) {
	s := startServer(t)
	s.SetNegativeTTL(30)
	clock := newClock()
	r := newResolver(t, Config{Now: clock.Now}, s)

	if _, err := r.LookupTXT(context.Background(), dsepName); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	s.AddTXT(dsepName, "v=DSEP1") // published, but the negative answer is cached
	clock.Advance(29 * time.Second)
	_, err := r.LookupTXT(context.Background(), dsepName)
	var le *LookupError
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &le) || le.Server != s.Addr() {
		t.Fatalf("cached negative: %v", err)
	}
	if udp, _ := s.Queries(dsepName); udp != 1 {
		t.Fatalf("asked %d times, want 1", udp)
	}
	clock.Advance(time.Second)
	lookup(t, r, dsepName)
	if udp, _ := s.Queries(dsepName); udp != 2 {
		t.Fatalf("asked %d times after the negative TTL, want 2", udp)
	}
}

func TestCacheDisabled(t *testing.T) {
	s := startServer(t)
	s.AddTXT(dsepName, "v=DSEP1")
	r := newResolver(t, Config{CacheSize: -1}, s)
	lookup(t, r, dsepName)
	lookup(t, r, dsepName)
	r.FlushCache()
	if udp, _ := s.Queries(dsepName); udp != 2 {
		t.Fatalf("asked %d times, want 2", udp)
	}
}

func TestCacheEviction(t *testing.T) {
	s := startServer(t)
	for i := range 3 {
		s.AddTXT(fmt.Sprintf("_dsep.d%d.org", i), "v=DSEP1")
	}
	clock := newClock()
	r := newResolver(t, Config{CacheSize: 2, Now: clock.Now}, s)
	for i := range 3 {
		lookup(t, r, fmt.Sprintf("_dsep.d%d.org", i))
		clock.Advance(time.Second) // d0 expires first
	}
	if n := len(r.cache.entries); n != 2 {
		t.Fatalf("%d entries cached, want 2", n)
	}
	for _, i := range []int{2, 1, 0} { // the two cached, then the evicted one
		lookup(t, r, fmt.Sprintf("_dsep.d%d.org", i))
	}
	for i, want := range []int{2, 1, 1} {
		if udp, _ := s.Queries(fmt.Sprintf("_dsep.d%d.org", i)); udp != want {
			t.Errorf("d%d asked %d times, want %d", i, udp, want)
		}
	}
}

func TestCacheEvictsExpiredFirst(t *testing.T) {
	now := newClock().Now()
	c := newCache(2)
	c.put("a.", cacheEntry{server: "x"}, now, 10*time.Second)
	c.put("b.", cacheEntry{server: "x"}, now, time.Hour)
	later := now.Add(20 * time.Second) // a. has expired
	c.put("c.", cacheEntry{server: "x"}, later, 30*time.Minute)
	if _, ok := c.entries["b."]; !ok {
		t.Fatal("live entry evicted while an expired one was there")
	}
	c.put("d.", cacheEntry{server: "x"}, later, time.Hour)
	if _, ok := c.entries["c."]; ok {
		t.Fatal("entry closest to expiry kept")
	}
	if len(c.entries) != 2 {
		t.Fatalf("%d entries", len(c.entries))
	}
}

func TestContextCanceled(t *testing.T) {
	s := startServer(t)
	s.SetMode("", dnstest.Timeout)
	r := newResolver(t, Config{Timeout: time.Minute, Attempts: 5}, s)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		// Cancel once the query is in flight.
		for {
			if udp, _ := s.Queries(dsepName); udp > 0 {
				cancel()
				return
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	_, err := r.LookupTXT(ctx, dsepName)
	close(done)
	var le *LookupError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &le) || le.Timeout {
		t.Fatalf("err = %#v", err)
	}
	if udp, tcp := s.Queries(dsepName); udp != 1 || tcp != 0 {
		t.Errorf("queries after cancel: %d udp, %d tcp", udp, tcp)
	}

	// Already cancelled: nothing is sent.
	if _, err := r.LookupTXT(ctx, "_dsep.other.org"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if udp, _ := s.Queries("_dsep.other.org"); udp != 0 {
		t.Error("query sent with a cancelled context")
	}

	// A context deadline is a timeout.
	ctx, cancel = context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	_, err = r.LookupTXT(ctx, dsepName)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &le) || !le.Timeout {
		t.Fatalf("err = %#v", err)
	}
}

func TestInvalidName(t *testing.T) {
	s := startServer(t)
	r := newResolver(t, Config{}, s)
	for _, name := range []string{"", "a..b", strings.Repeat("x", 64) + ".org", strings.Repeat("abcdefghi.", 30)} {
		_, err := r.LookupTXT(context.Background(), name)
		var le *LookupError
		if err == nil || errors.As(err, &le) {
			t.Errorf("LookupTXT(%q) err = %v, want a plain error", name, err)
		}
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("# test\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(empty, []byte("search example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		servers []string
		conf    string
		want    []string
		wantErr string
	}{
		{"ports", []string{"127.0.0.1", "127.0.0.2:5353", "::1", "[::1]", "[::1]:5353", "[fe80::1%lo]:53"},
			"", []string{"127.0.0.1:53", "127.0.0.2:5353", "[::1]:53", "[::1]:53", "[::1]:5353", "[fe80::1%lo]:53"}, ""},
		{"resolv.conf", nil, conf, []string{"127.0.0.53:53", "[::1]:53"}, ""},
		{"name", []string{"localhost:53"}, "", nil, "not an IP address"},
		{"bad port", []string{"127.0.0.1:dns"}, "", nil, "bad port"},
		{"port 0", []string{"127.0.0.1:0"}, "", nil, "bad port"},
		{"port too big", []string{"127.0.0.1:65536"}, "", nil, "bad port"},
		{"no nameserver", nil, empty, nil, "no nameserver"},
		{"no resolv.conf", nil, filepath.Join(dir, "missing"), nil, "no resolver configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.conf != "" {
				old := resolvConfPath
				resolvConfPath = tt.conf
				defer func() { resolvConfPath = old }()
			}
			r, err := New(Config{Servers: tt.servers})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Servers(), tt.want) {
				t.Fatalf("servers %q, want %q", r.Servers(), tt.want)
			}
			if r.timeout != DefaultTimeout || r.attempts != DefaultAttempts || r.cache.max != DefaultCacheSize {
				t.Errorf("defaults: %v %d %d", r.timeout, r.attempts, r.cache.max)
			}
		})
	}
}

func TestLookupErrorString(t *testing.T) {
	tests := []struct {
		err  *LookupError
		want string
		temp bool
	}{
		{&LookupError{Name: "_dsep.example.org.", Server: "127.0.0.1:5353", Err: errors.New("i/o timeout"), Timeout: true},
			"dns: lookup _dsep.example.org TXT at 127.0.0.1:5353: timed out", true},
		{&LookupError{Name: "_dsep.example.org.", Server: "127.0.0.1:53", Err: ErrNotFound},
			"dns: lookup _dsep.example.org TXT at 127.0.0.1:53: no such record", false},
		{&LookupError{Name: "x.org.", Server: "[::1]:53", Err: rcodeError(mdns.RcodeRefused)},
			"dns: lookup x.org TXT at [::1]:53: server answered REFUSED", true},
		{&LookupError{Name: "x.org.", Err: rcodeError(99)},
			"dns: lookup x.org TXT: server answered RCODE 99", true},
		{&LookupError{Name: "x.org.", Server: "127.0.0.1:53", Err: context.Canceled},
			"dns: lookup x.org TXT at 127.0.0.1:53: context canceled", true},
		{&LookupError{Name: "x.org."}, "dns: lookup x.org TXT: failed", true},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if tt.err.Temporary() != tt.temp {
			t.Errorf("%q: Temporary() = %v", tt.want, !tt.temp)
		}
		if !errors.Is(tt.err, tt.err.Err) && tt.err.Err != nil {
			t.Errorf("%q: does not unwrap", tt.want)
		}
	}
}

func TestConcurrentLookups(t *testing.T) {
	s := startServer(t)
	s.AddTXT(dsepName, "v=DSEP1")
	r := newResolver(t, Config{}, s)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%5 == 0 {
				r.FlushCache()
			}
			a, err := r.LookupTXT(context.Background(), dsepName)
			if err != nil {
				t.Error(err)
				return
			}
			a.Records[0] = "mutated"
		}()
	}
	wg.Wait()
	if a := lookup(t, r, dsepName); a.Records[0] != "v=DSEP1" {
		t.Fatalf("cache mutated: %q", a.Records)
	}
}

// txtRR returns a TXT record in miekg/dns form.
func txtRR(name string, ttl uint32, strs ...string) *mdns.TXT {
	return &mdns.TXT{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: ttl}, Txt: strs}
}

func TestExtractTXT(t *testing.T) {
	const q = "_dsep.example.org."
	cname := func(from, to string, ttl uint32) mdns.RR {
		return &mdns.CNAME{Hdr: mdns.RR_Header{Name: from, Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET, Ttl: ttl}, Target: to}
	}
	var chain []mdns.RR
	for i := 0; i <= maxCNAMEs; i++ {
		from := q
		if i > 0 {
			from = fmt.Sprintf("c%d.org.", i)
		}
		chain = append(chain, cname(from, fmt.Sprintf("c%d.org.", i+1), 60))
	}
	manyBytes := []mdns.RR{}
	for i := 0; i < 20; i++ {
		manyBytes = append(manyBytes, txtRR(q, 60, slices.Repeat([]string{strings.Repeat("x", 255)}, 16)...))
	}

	tests := []struct {
		name    string
		answer  []mdns.RR
		want    []string
		ttl     uint32
		wantErr string
	}{
		{"one", []mdns.RR{txtRR(q, 60, "a", "b")}, []string{"ab"}, 60, ""},
		{"min TTL", []mdns.RR{txtRR(q, 60, "a"), txtRR(q, 30, "b")}, []string{"a", "b"}, 30, ""},
		{"case", []mdns.RR{txtRR("_DSEP.EXAMPLE.ORG.", 60, "a")}, []string{"a"}, 60, ""},
		{"escapes", []mdns.RR{txtRR(q, 60, `a\"b\\c\000\255\065\x`, `\`)}, []string{"a\"b\\c\x00\xffAx"}, 60, ""},
		{"other names and types ignored", []mdns.RR{
			txtRR("other.org.", 1, "no"),
			&mdns.A{Hdr: mdns.RR_Header{Name: q, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 1}, A: []byte{1, 2, 3, 4}},
			&mdns.TXT{Hdr: mdns.RR_Header{Name: q, Rrtype: mdns.TypeTXT, Class: mdns.ClassCHAOS, Ttl: 1}, Txt: []string{"chaos"}},
			txtRR(q, 60, "yes"),
		}, []string{"yes"}, 60, ""},
		{"CNAME", []mdns.RR{cname(q, "t.org.", 20), txtRR("t.org.", 60, "t")}, []string{"t"}, 20, ""},
		{"none", nil, nil, 0, errNoData.Error()},
		{"CNAME loop", []mdns.RR{cname(q, "a.org.", 1), cname("a.org.", q, 1)}, nil, 0, "CNAME chain"},
		{"CNAME chain too long", chain, nil, 0, "CNAME chain"},
		{"too many", slices.Repeat([]mdns.RR{txtRR(q, 60, "x")}, MaxRecords+1), nil, 0, "more than 64 TXT records"},
		{"max records", slices.Repeat([]mdns.RR{txtRR(q, 60, "x")}, MaxRecords), slices.Repeat([]string{"x"}, MaxRecords), 60, ""},
		{"too many bytes", manyBytes, nil, 0, "more than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &mdns.Msg{Answer: tt.answer}
			got, ttl, err := extractTXT(q, m)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || ttl != tt.ttl {
				t.Fatalf("got %q ttl %d, want %q ttl %d", got, ttl, tt.want, tt.ttl)
			}
		})
	}
}

func TestNegativeTTL(t *testing.T) {
	soa := func(ttl, minttl uint32) mdns.RR {
		return &mdns.SOA{Hdr: mdns.RR_Header{Name: "example.org.", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
			Ns: "ns.example.org.", Mbox: "h.example.org.", Minttl: minttl}
	}
	tests := []struct {
		ns   []mdns.RR
		want time.Duration
	}{
		{nil, DefaultNegativeTTL},
		{[]mdns.RR{txtRR("example.org.", 5, "x")}, DefaultNegativeTTL},
		{[]mdns.RR{soa(300, 30)}, 30 * time.Second},
		{[]mdns.RR{soa(20, 300)}, 20 * time.Second},
		{[]mdns.RR{soa(86400, 86400)}, MaxCacheTTL},
		{[]mdns.RR{soa(0, 0)}, 0},
	}
	for i, tt := range tests {
		if got := negativeTTL(&mdns.Msg{Ns: tt.ns}); got != tt.want {
			t.Errorf("%d: negativeTTL = %v, want %v", i, got, tt.want)
		}
	}
}

// wireTXT builds by hand a DNS response with one TXT record at name holding
// raw as its character-strings (split into 255-byte pieces).
func wireTXT(name string, raw []byte) []byte {
	var rdata []byte
	for first := true; first || len(raw) > 0; first = false {
		n := min(len(raw), 255)
		rdata = append(rdata, byte(n))
		rdata = append(rdata, raw[:n]...)
		raw = raw[n:]
	}
	var qname []byte
	for _, label := range mdns.SplitDomainName(name) {
		qname = append(qname, byte(len(label)))
		qname = append(qname, label...)
	}
	qname = append(qname, 0)

	msg := []byte{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0} // response, RD, RA; 1 question, 1 answer
	msg = append(msg, qname...)
	msg = append(msg, 0, 16, 0, 1)      // TXT IN
	msg = append(msg, 0xc0, 12)         // pointer to the question name
	msg = append(msg, 0, 16, 0, 1)      // TXT IN
	msg = append(msg, 0, 0, 0x0e, 0x10) // TTL 3600
	msg = append(msg, byte(len(rdata)>>8), byte(len(rdata)))
	return append(msg, rdata...)
}

// packed returns m packed, for seed corpora.
func packed(f *testing.F, m *mdns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzParseResponse unpacks arbitrary bytes as a DNS answer and extracts its
// TXT records: never a panic, the limits always hold, and the extraction
// survives a pack and unpack of the message.
func FuzzParseResponse(f *testing.F) {
	q := new(mdns.Msg).SetQuestion(dsepName+".", mdns.TypeTXT)
	ok := new(mdns.Msg).SetReply(q)
	ok.Answer = []mdns.RR{txtRR(dsepName+".", 300, "v=DSEP1; ", "fpr=aaaa"), txtRR(dsepName+".", 60, `\"q\"\000`)}
	f.Add(packed(f, ok))
	cn := new(mdns.Msg).SetReply(q)
	cn.Answer = []mdns.RR{
		&mdns.CNAME{Hdr: mdns.RR_Header{Name: dsepName + ".", Rrtype: mdns.TypeCNAME, Class: mdns.ClassINET, Ttl: 10}, Target: "t.org."},
		txtRR("t.org.", 300, "v=DSEP1"),
	}
	f.Add(packed(f, cn))
	nx := new(mdns.Msg).SetRcode(q, mdns.RcodeNameError)
	nx.Ns = []mdns.RR{&mdns.SOA{Hdr: mdns.RR_Header{Name: "example.org.", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: 60},
		Ns: "ns.example.org.", Mbox: "h.example.org.", Minttl: 30}}
	f.Add(packed(f, nx))
	f.Add(wireTXT(dsepName, []byte(strings.Repeat("z", 600))))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(mdns.Msg)
		if err := m.Unpack(data); err != nil || len(m.Question) == 0 {
			return
		}
		qname := m.Question[0].Name
		recs, ttl, err := extractTXT(qname, m)
		negativeTTL(m)
		if err != nil {
			return
		}
		total := 0
		for _, r := range recs {
			total += len(r)
		}
		if len(recs) == 0 || len(recs) > MaxRecords || total > MaxBytes {
			t.Fatalf("%d records, %d bytes accepted", len(recs), total)
		}

		b, err := m.Pack()
		if err != nil {
			return // miekg/dns unpacks some things it cannot pack
		}
		m2 := new(mdns.Msg)
		if err := m2.Unpack(b); err != nil {
			t.Fatalf("repacked message does not unpack: %v", err)
		}
		recs2, ttl2, err := extractTXT(qname, m2)
		if err != nil || !slices.Equal(recs, recs2) || ttl != ttl2 {
			t.Fatalf("round trip changed the answer: %q %d -> %q %d (%v)", recs, ttl, recs2, ttl2, err)
		}
	})
}

// FuzzTXTBytes checks that the bytes of a TXT record on the wire come back
// unchanged from extractTXT.
func FuzzTXTBytes(f *testing.F) {
	f.Add([]byte("v=DSEP1; fpr=aaaa"))
	f.Add([]byte("\\065\"\x00\xff\\"))
	f.Add([]byte(strings.Repeat("\\", 300)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 4000 {
			return
		}
		m := new(mdns.Msg)
		if err := m.Unpack(wireTXT(dsepName, raw)); err != nil {
			t.Fatal(err)
		}
		recs, ttl, err := extractTXT(dsepName+".", m)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0] != string(raw) || ttl != 3600 {
			t.Fatalf("got %q, want %q", recs, raw)
		}
	})
}
