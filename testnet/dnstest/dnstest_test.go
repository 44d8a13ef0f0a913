package dnstest

import (
	"errors"
	"fmt"
	"github.com/dsep-project/dsep/testnet/testtool"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestMain checks that the package's tests leave no goroutines behind.
func TestMain(m *testing.M) { testtool.Main(m, 0, 5*time.Second) }

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("")
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

type queryOpts struct {
	tcp     bool
	edns    uint16 // 0: no EDNS0
	timeout time.Duration
}

func query(t *testing.T, s *Server, name string, qtype uint16, o queryOpts) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: o.timeout, UDPSize: 65535}
	if o.tcp {
		c.Net = "tcp"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if o.edns != 0 {
		m.SetEdns0(o.edns, false)
	}
	r, _, err := c.Exchange(m, s.Addr())
	return r, err
}

func mustQuery(t *testing.T, s *Server, name string, qtype uint16, o queryOpts) *dns.Msg {
	t.Helper()
	r, err := query(t, s, name, qtype, o)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r
}

// txts returns the raw strings of each TXT record in the answer.
func txts(t *testing.T, m *dns.Msg) [][]string {
	t.Helper()
	var out [][]string
	for _, rr := range m.Answer {
		txt, ok := rr.(*dns.TXT)
		if !ok {
			t.Fatalf("not a TXT record: %v", rr)
		}
		out = append(out, txt.Txt)
	}
	return out
}

func TestAddr(t *testing.T) {
	s := start(t)
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q, want 127.0.0.1:PORT", s.Addr())
	}
}

func TestStartBadAddress(t *testing.T) {
	if _, err := Start("127.0.0.1"); err == nil {
		t.Fatal("Start without port succeeded")
	}
	s := start(t)
	if _, err := Start(s.Addr()); err == nil {
		t.Fatal("Start on a port in use succeeded")
	}
}

func TestTXT(t *testing.T) {
	s := start(t)
	s.AddTXT("_dsep.Example.ORG", "v=DSEP1; fpr=aaaa")

	r := mustQuery(t, s, "_dsep.example.org.", dns.TypeTXT, queryOpts{})
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || !r.RecursionAvailable {
		t.Fatalf("rcode %s aa %v ra %v", dns.RcodeToString[r.Rcode], r.Authoritative, r.RecursionAvailable)
	}
	if got := txts(t, r); len(got) != 1 || len(got[0]) != 1 || got[0][0] != "v=DSEP1; fpr=aaaa" {
		t.Fatalf("answer %v", got)
	}
	if ttl := r.Answer[0].Header().Ttl; ttl != DefaultTTL {
		t.Errorf("TTL %d, want %d", ttl, DefaultTTL)
	}

	// A second record, several strings in one record.
	s.AddTXT("_dsep.example.org", "v=DSEP1; ", "fpr=bbbb")
	r = mustQuery(t, s, "_dsep.example.org.", dns.TypeTXT, queryOpts{tcp: true})
	got := txts(t, r)
	if len(got) != 2 || strings.Join(got[1], "") != "v=DSEP1; fpr=bbbb" || len(got[1]) != 2 {
		t.Fatalf("answer %v", got)
	}

	// SetTXT replaces.
	s.SetTXT("_DSEP.example.org.", []string{"one"}, []string{"two", "three"})
	got = txts(t, mustQuery(t, s, "_dsep.example.org.", dns.TypeTXT, queryOpts{}))
	if fmt.Sprint(got) != "[[one] [two three]]" {
		t.Fatalf("after SetTXT: %v", got)
	}

	// SetTTL.
	s.SetTTL(42)
	r = mustQuery(t, s, "_dsep.example.org.", dns.TypeTXT, queryOpts{})
	if ttl := r.Answer[0].Header().Ttl; ttl != 42 {
		t.Errorf("TTL %d after SetTTL(42)", ttl)
	}

	// RemoveTXT makes the name unknown.
	s.RemoveTXT("_dsep.example.org")
	r = mustQuery(t, s, "_dsep.example.org.", dns.TypeTXT, queryOpts{})
	if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		t.Fatalf("after RemoveTXT: rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
}

func TestRawBytes(t *testing.T) {
	s := start(t)
	raw := "quote\" backslash\\ nul\x00 high\xff;"
	s.AddTXT("raw.example.org", raw)
	r := mustQuery(t, s, "raw.example.org.", dns.TypeTXT, queryOpts{})
	// Pack the answer and read the character-string back as bytes.
	buf := make([]byte, 512)
	off, err := dns.PackRR(r.Answer[0], buf, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	rdata := buf[off-int(r.Answer[0].Header().Rdlength) : off]
	if int(rdata[0]) != len(raw) || string(rdata[1:]) != raw {
		t.Fatalf("rdata %q, want %q", rdata, raw)
	}
}

func TestLongStringSplit(t *testing.T) {
	s := start(t)
	long := strings.Repeat("0123456789", 60) // 600 bytes
	s.AddTXT("long.example.org", long)
	s.SetTXT("set.example.org", []string{"x", long})
	r := mustQuery(t, s, "long.example.org.", dns.TypeTXT, queryOpts{edns: 1232})
	got := txts(t, r)
	if len(got) != 1 || len(got[0]) != 3 {
		t.Fatalf("want one record of 3 strings, got %d records", len(got))
	}
	for i, want := range []int{255, 255, 90} {
		if len(got[0][i]) != want {
			t.Errorf("string %d: %d bytes, want %d", i, len(got[0][i]), want)
		}
	}
	if strings.Join(got[0], "") != long {
		t.Error("strings do not join back to the original")
	}
	got = txts(t, mustQuery(t, s, "set.example.org.", dns.TypeTXT, queryOpts{edns: 1232}))
	if len(got) != 1 || len(got[0]) != 4 || strings.Join(got[0], "") != "x"+long {
		t.Fatalf("SetTXT long: %v", got)
	}
}

func TestCaseOfAnswer(t *testing.T) {
	s := start(t)
	s.AddTXT("_dsep.example.org", "v=DSEP1")
	r := mustQuery(t, s, "_DsEp.ExAmPlE.oRg.", dns.TypeTXT, queryOpts{})
	if r.Question[0].Name != "_DsEp.ExAmPlE.oRg." {
		t.Errorf("question %q", r.Question[0].Name)
	}
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != "_DsEp.ExAmPlE.oRg." {
		t.Errorf("answer %v", r.Answer)
	}
}

func TestNXDomainAndNoData(t *testing.T) {
	s := start(t)
	s.AddTXT("_dsep.example.org", "v=DSEP1")
	s.AddRR(&dns.A{Hdr: dns.RR_Header{Name: "mx.Example.org.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 2)})
	s.SetNegativeTTL(30)

	tests := []struct {
		name  string
		qtype uint16
		rcode int
		n     int
	}{
		{"_dsep.example.org.", dns.TypeTXT, dns.RcodeSuccess, 1},
		{"_dsep.example.org.", dns.TypeA, dns.RcodeSuccess, 0}, // NODATA
		{"mx.example.org.", dns.TypeA, dns.RcodeSuccess, 1},    // AddRR
		{"mx.example.org.", dns.TypeTXT, dns.RcodeSuccess, 0},  // NODATA
		{"example.org.", dns.TypeTXT, dns.RcodeSuccess, 0},     // empty non-terminal
		{"nope.example.org.", dns.TypeTXT, dns.RcodeNameError, 0},
		{"_dsep.other.net.", dns.TypeTXT, dns.RcodeNameError, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.name, dns.TypeToString[tt.qtype]), func(t *testing.T) {
			r := mustQuery(t, s, tt.name, tt.qtype, queryOpts{})
			if r.Rcode != tt.rcode || len(r.Answer) != tt.n {
				t.Fatalf("rcode %s with %d answers, want %s with %d",
					dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tt.rcode], tt.n)
			}
			if !r.Authoritative {
				t.Error("AA not set")
			}
			if tt.n == 0 {
				if len(r.Ns) != 1 {
					t.Fatalf("want an SOA in authority, got %v", r.Ns)
				}
				soa, ok := r.Ns[0].(*dns.SOA)
				if !ok || soa.Minttl != 30 || soa.Hdr.Ttl != 30 {
					t.Fatalf("authority %v", r.Ns[0])
				}
			}
		})
	}

	s.RemoveAll("mx.example.org")
	if r := mustQuery(t, s, "mx.example.org.", dns.TypeA, queryOpts{}); r.Rcode != dns.RcodeNameError {
		t.Errorf("after RemoveAll: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestCNAME(t *testing.T) {
	s := start(t)
	s.AddRR(&dns.CNAME{Hdr: dns.RR_Header{Name: "_dsep.alias.org.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "_dsep.Target.org."})
	s.AddTXT("_dsep.target.org", "v=DSEP1")
	r := mustQuery(t, s, "_dsep.alias.org.", dns.TypeTXT, queryOpts{})
	if len(r.Answer) != 2 {
		t.Fatalf("answer %v", r.Answer)
	}
	if _, ok := r.Answer[0].(*dns.CNAME); !ok {
		t.Errorf("first answer %v", r.Answer[0])
	}
	if txt, ok := r.Answer[1].(*dns.TXT); !ok || txt.Hdr.Name != "_dsep.target.org." {
		t.Errorf("second answer %v", r.Answer[1])
	}

	// A CNAME to a name that does not exist: NXDOMAIN, with the CNAME.
	s.AddRR(&dns.CNAME{Hdr: dns.RR_Header{Name: "dangling.org.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "gone.org."})
	r = mustQuery(t, s, "dangling.org.", dns.TypeTXT, queryOpts{})
	if r.Rcode != dns.RcodeNameError || len(r.Answer) != 1 {
		t.Errorf("dangling CNAME: %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
}

func TestModes(t *testing.T) {
	s := start(t)
	s.AddTXT("a.example.org", "a")
	s.AddTXT("b.example.org", "b")

	s.SetMode("a.example.org", ServFail)
	if r := mustQuery(t, s, "a.example.org.", dns.TypeTXT, queryOpts{}); r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
		t.Errorf("ServFail: %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if r := mustQuery(t, s, "b.example.org.", dns.TypeTXT, queryOpts{}); r.Rcode != dns.RcodeSuccess {
		t.Errorf("other name: %s", dns.RcodeToString[r.Rcode])
	}

	s.SetMode("a.example.org", Refused)
	if r := mustQuery(t, s, "a.example.org.", dns.TypeTXT, queryOpts{tcp: true}); r.Rcode != dns.RcodeRefused {
		t.Errorf("Refused: %s", dns.RcodeToString[r.Rcode])
	}

	s.SetMode("a.example.org", Timeout)
	for _, tcp := range []bool{false, true} {
		_, err := query(t, s, "a.example.org.", dns.TypeTXT, queryOpts{tcp: tcp, timeout: 200 * time.Millisecond})
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("Timeout mode (tcp %v): err %v", tcp, err)
		}
	}

	s.SetMode("a.example.org", Truncate)
	r := mustQuery(t, s, "a.example.org.", dns.TypeTXT, queryOpts{edns: 1232})
	if !r.Truncated || len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
		t.Errorf("Truncate over UDP: tc %v, %d answers", r.Truncated, len(r.Answer))
	}
	r = mustQuery(t, s, "a.example.org.", dns.TypeTXT, queryOpts{tcp: true})
	if r.Truncated || len(r.Answer) != 1 {
		t.Errorf("Truncate over TCP: tc %v, %d answers", r.Truncated, len(r.Answer))
	}

	// Every name; a name's own mode wins.
	s.SetMode("", ServFail)
	if r := mustQuery(t, s, "b.example.org.", dns.TypeTXT, queryOpts{}); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("global ServFail: %s", dns.RcodeToString[r.Rcode])
	}
	if r := mustQuery(t, s, "unknown.example.org.", dns.TypeTXT, queryOpts{}); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("global ServFail, unknown name: %s", dns.RcodeToString[r.Rcode])
	}
	s.SetMode("a.example.org", Normal)
	if r := mustQuery(t, s, "a.example.org.", dns.TypeTXT, queryOpts{}); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("own Normal over global ServFail: %s", dns.RcodeToString[r.Rcode])
	}
	s.SetMode("", Normal)
	if r := mustQuery(t, s, "b.example.org.", dns.TypeTXT, queryOpts{}); r.Rcode != dns.RcodeSuccess {
		t.Errorf("back to Normal: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestAD(t *testing.T) {
	s := start(t)
	s.AddTXT("x.example.org", "x")
	if r := mustQuery(t, s, "x.example.org.", dns.TypeTXT, queryOpts{}); r.AuthenticatedData {
		t.Error("AD set by default")
	}
	s.SetAD(true)
	if r := mustQuery(t, s, "x.example.org.", dns.TypeTXT, queryOpts{}); !r.AuthenticatedData {
		t.Error("AD not set after SetAD(true)")
	}
	s.SetAD(false)
	if r := mustQuery(t, s, "x.example.org.", dns.TypeTXT, queryOpts{}); r.AuthenticatedData {
		t.Error("AD set after SetAD(false)")
	}
}

func TestQueries(t *testing.T) {
	s := start(t)
	s.AddTXT("c.example.org", "c")
	if u, c := s.Queries("c.example.org"); u != 0 || c != 0 {
		t.Fatalf("counters start at %d/%d", u, c)
	}
	mustQuery(t, s, "c.example.org.", dns.TypeTXT, queryOpts{})
	mustQuery(t, s, "C.EXAMPLE.ORG.", dns.TypeA, queryOpts{})
	mustQuery(t, s, "c.example.org.", dns.TypeTXT, queryOpts{tcp: true})
	mustQuery(t, s, "other.example.org.", dns.TypeTXT, queryOpts{})
	if u, c := s.Queries("C.example.org."); u != 2 || c != 1 {
		t.Fatalf("Queries = %d udp, %d tcp; want 2, 1", u, c)
	}
	// Failure modes count too.
	s.SetMode("c.example.org", Timeout)
	query(t, s, "c.example.org.", dns.TypeTXT, queryOpts{timeout: 100 * time.Millisecond})
	if u, _ := s.Queries("c.example.org"); u != 3 {
		t.Fatalf("udp count %d after a query in Timeout mode, want 3", u)
	}
}

func TestLargeAnswer(t *testing.T) {
	s := start(t)
	for i := 0; i < 20; i++ {
		s.AddTXT("big.example.org", fmt.Sprintf("record %02d %s", i, strings.Repeat("x", 100)))
	}
	// Plain UDP: 512 bytes.
	r := mustQuery(t, s, "big.example.org.", dns.TypeTXT, queryOpts{})
	if !r.Truncated || len(r.Answer) >= 20 {
		t.Fatalf("UDP 512: tc %v with %d answers", r.Truncated, len(r.Answer))
	}
	r.Compress = true // as sent
	if n := r.Len(); n > 512 {
		t.Errorf("UDP answer of %d bytes exceeds 512", n)
	}
	// EDNS0 1232: still too big, more records fit.
	r2 := mustQuery(t, s, "big.example.org.", dns.TypeTXT, queryOpts{edns: 1232})
	if !r2.Truncated || len(r2.Answer) <= len(r.Answer) || len(r2.Answer) >= 20 {
		t.Fatalf("UDP 1232: tc %v with %d answers", r2.Truncated, len(r2.Answer))
	}
	r2.Compress = true
	if n := r2.Len(); n > 1232 {
		t.Errorf("UDP answer of %d bytes exceeds 1232", n)
	}
	// EDNS0 4096: fits.
	r3 := mustQuery(t, s, "big.example.org.", dns.TypeTXT, queryOpts{edns: 4096})
	if r3.Truncated || len(r3.Answer) != 20 {
		t.Fatalf("UDP 4096: tc %v with %d answers", r3.Truncated, len(r3.Answer))
	}
	// TCP: complete.
	r4 := mustQuery(t, s, "big.example.org.", dns.TypeTXT, queryOpts{tcp: true})
	if r4.Truncated || len(r4.Answer) != 20 {
		t.Fatalf("TCP: tc %v with %d answers", r4.Truncated, len(r4.Answer))
	}
}

func TestCloseFreesPort(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	s.AddTXT("x.example.org", "x")
	mustQuery(t, s, "x.example.org.", dns.TypeTXT, queryOpts{})
	mustQuery(t, s, "x.example.org.", dns.TypeTXT, queryOpts{tcp: true})
	// Leave a TCP connection open with nothing sent back.
	s.SetMode("x.example.org", Timeout)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	co := &dns.Conn{Conn: conn}
	m := new(dns.Msg).SetQuestion("x.example.org.", dns.TypeTXT)
	if err := co.WriteMsg(m); err != nil {
		t.Fatal(err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s2, err := Start(addr)
	if err != nil {
		t.Fatalf("port not freed: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrent(t *testing.T) {
	s := start(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			s.AddTXT("conc.example.org", "x")
			s.SetMode("conc.example.org", Normal)
			s.SetAD(i%2 == 0)
			s.RemoveTXT("conc.example.org")
		}
	}()
	for i := 0; i < 20; i++ {
		if _, err := query(t, s, "conc.example.org.", dns.TypeTXT, queryOpts{}); err != nil {
			t.Fatal(err)
		}
		s.Queries("conc.example.org")
	}
	<-done
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{Normal: "Normal", Truncate: "Truncate", Timeout: "Timeout", ServFail: "ServFail", Refused: "Refused", 9: "Mode(9)"} {
		if m.String() != want {
			t.Errorf("%d: %q", int(m), m.String())
		}
	}
}
