// Package dnstest implements a small authoritative DNS server (RFC 1034/1035,
// EDNS0 per RFC 6891) on a loopback address whose records and failure modes
// are controlled by the caller.
//
// It is used by tests and by the `dsep testnet` command to stand in for the
// recursive resolver a DSEP node asks for `_dsep.<domain>` TXT records, MX
// records and so on. The server answers every name as if it were authoritative
// for it: names with no records answer NXDOMAIN, names with records but none of
// the asked type answer NOERROR with an empty answer (NODATA). Negative answers
// carry an SOA record in the authority section (RFC 2308) for the guessed zone
// (the last two labels of the name).
//
// The server also sets the RA (recursion available) bit so that stub resolvers,
// such as Go's net.Resolver, accept it as their recursive resolver.
//
// This package imports nothing of DSEP's and not the testing package.
package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Mode selects how the server answers queries for a name.
type Mode int

const (
	// Normal answers from the records the server holds.
	Normal Mode = iota
	// Truncate answers UDP queries with the TC bit set and no records, so the
	// client must retry over TCP; TCP queries get the complete answer.
	Truncate
	// Timeout sends no reply at all, over UDP or TCP.
	Timeout
	// ServFail answers with RCODE SERVFAIL.
	ServFail
	// Refused answers with RCODE REFUSED.
	Refused
)

// String returns the name of the mode.
func (m Mode) String() string {
	switch m {
	case Normal:
		return "Normal"
	case Truncate:
		return "Truncate"
	case Timeout:
		return "Timeout"
	case ServFail:
		return "ServFail"
	case Refused:
		return "Refused"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

const (
	// DefaultTTL is the TTL of answers until SetTTL changes it.
	DefaultTTL = 300
	// DefaultNegativeTTL is the TTL and MINIMUM of the SOA record sent with
	// negative answers until SetNegativeTTL changes it.
	DefaultNegativeTTL = 60

	// maxTXTString is the longest character-string a TXT record can hold.
	maxTXTString = 255
	// maxCNAMEChain bounds how many CNAMEs the server follows in its own data.
	maxCNAMEChain = 8
	// startTries is how many UDP ports Start tries when the TCP side of a
	// randomly chosen port turns out to be taken.
	startTries = 10
	// shutdownTimeout bounds how long Close waits for in-flight queries.
	shutdownTimeout = 5 * time.Second
)

type counter struct{ udp, tcp int }

// Server is an authoritative DNS server on a loopback UDP and TCP port. Create
// it with Start and stop it with Close. All methods are safe for concurrent use.
type Server struct {
	addr string // set by Start, read-only afterwards
	udp  *dns.Server
	tcp  *dns.Server
	wg   sync.WaitGroup // the two serving goroutines

	closeOnce sync.Once
	closeErr  error

	// mu guards records, modes, allMode, ttl, negTTL, ad and queries.
	mu      sync.RWMutex
	records map[string][]dns.RR // canonical owner name -> RRs (owner set to the key)
	modes   map[string]Mode     // canonical name -> mode for that name
	allMode Mode                // mode for names without one of their own
	ttl     uint32              // TTL of answers
	negTTL  uint32              // TTL and MINIMUM of the SOA in negative answers
	ad      bool                // set the AD bit in answers
	queries map[string]*counter // canonical name -> queries received
}

// Start listens on UDP and TCP on the same port of addr and serves until
// Close. An empty host means 127.0.0.1, an empty addr or port 0 picks a free
// port (UDP is bound first, then TCP on the same port, trying a few ports if
// that TCP port is taken). Start returns once both listeners serve.
func Start(addr string) (*Server, error) {
	host, port := "127.0.0.1", "0"
	if addr != "" {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dnstest: bad address %q: %w", addr, err)
		}
		if h != "" {
			host = h
		}
		if p != "" {
			port = p
		}
	}

	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for try := 0; try < startTries; try++ {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, fmt.Errorf("dnstest: %w", err)
		}
		udpPort := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(udpPort)))
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
		if port != "0" {
			break // a fixed port: nothing else to try
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dnstest: %w", err)
	}

	s := &Server{
		addr:    ln.Addr().String(),
		records: make(map[string][]dns.RR),
		modes:   make(map[string]Mode),
		ttl:     DefaultTTL,
		negTTL:  DefaultNegativeTTL,
		queries: make(map[string]*counter),
	}
	handler := dns.HandlerFunc(s.serveDNS)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: handler, NotifyStartedFunc: notify}

	errc := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			errc <- srv.ActivateAndServe()
		}()
	}
	for n := 0; n < 2; n++ {
		select {
		case <-started:
		case err := <-errc:
			// One side failed to start: stop the other and release the port.
			s.Close()
			if err == nil {
				err = errors.New("server stopped while starting")
			}
			return nil, fmt.Errorf("dnstest: %w", err)
		}
	}
	return s, nil
}

// Addr returns the address the server listens on, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// Close stops the server, waits for in-flight queries and frees the port.
// Calling it again returns the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		var errs []error
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			if err := srv.ShutdownContext(ctx); err != nil {
				// A server that never started still holds its socket.
				if srv.PacketConn != nil {
					srv.PacketConn.Close()
				}
				if srv.Listener != nil {
					srv.Listener.Close()
				}
				if ctx.Err() != nil {
					errs = append(errs, err)
				}
			}
		}
		s.wg.Wait()
		if len(errs) > 0 {
			s.closeErr = fmt.Errorf("dnstest: close: %w", errors.Join(errs...))
		}
	})
	return s.closeErr
}

// canonical returns name as a lower-cased fully qualified name.
func canonical(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}

// escapeTXT turns raw bytes into miekg/dns's presentation form of a TXT
// character-string, which its packer decodes: backslash and double quote are
// escaped, and bytes outside printable ASCII become \DDD.
func escapeTXT(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// txtStrings turns raw strings into the character-strings of one TXT record,
// splitting any longer than 255 bytes into 255-byte chunks.
func txtStrings(strs []string) []string {
	out := make([]string, 0, len(strs))
	for _, s := range strs {
		for len(s) > maxTXTString {
			out = append(out, escapeTXT(s[:maxTXTString]))
			s = s[maxTXTString:]
		}
		out = append(out, escapeTXT(s))
	}
	if len(out) == 0 {
		out = append(out, "") // a TXT record holds at least one string
	}
	return out
}

func newTXT(name string, strs []string) *dns.TXT {
	return &dns.TXT{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET},
		Txt: txtStrings(strs),
	}
}

// AddTXT adds one TXT record at name made of the given character-strings.
// The strings are raw bytes, not zone-file text; one longer than 255 bytes is
// split into 255-byte chunks. No strings at all make a record with one empty
// string. Names are case-insensitive, with or without the trailing dot.
func (s *Server) AddTXT(name string, strs ...string) {
	key := canonical(name)
	rr := newTXT(key, strs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[key] = append(s.records[key], rr)
}

// SetTXT replaces all TXT records at name; each element of records is one TXT
// record, given as for AddTXT. With no records it is RemoveTXT.
func (s *Server) SetTXT(name string, records ...[]string) {
	key := canonical(name)
	rrs := make([]dns.RR, 0, len(records))
	for _, r := range records {
		rrs = append(rrs, newTXT(key, r))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeTypeLocked(key, dns.TypeTXT)
	if len(rrs) > 0 {
		s.records[key] = append(s.records[key], rrs...)
	}
}

// RemoveTXT removes all TXT records at name. If nothing else is left there,
// the name answers NXDOMAIN again.
func (s *Server) RemoveTXT(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeTypeLocked(canonical(name), dns.TypeTXT)
}

// removeTypeLocked removes the records of type t at key. s.mu must be held.
func (s *Server) removeTypeLocked(key string, t uint16) {
	kept := s.records[key][:0]
	for _, rr := range s.records[key] {
		if rr.Header().Rrtype != t {
			kept = append(kept, rr)
		}
	}
	if len(kept) == 0 {
		delete(s.records, key)
		return
	}
	clear(s.records[key][len(kept):])
	s.records[key] = kept
}

// AddRR adds a copy of any record (A, MX, CNAME, TLSA, ...) at its owner name.
// Its TTL is replaced by the server's TTL in answers. TXT strings are in
// miekg/dns's presentation form (see AddTXT for raw strings).
func (s *Server) AddRR(rr dns.RR) {
	rr = dns.Copy(rr)
	key := canonical(rr.Header().Name)
	rr.Header().Name = key
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[key] = append(s.records[key], rr)
}

// RemoveAll removes every record at name (not its mode or query counters).
func (s *Server) RemoveAll(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, canonical(name))
}

// SetTTL sets the TTL of the records in answers. The default is DefaultTTL.
func (s *Server) SetTTL(ttl uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = ttl
}

// SetNegativeTTL sets the TTL and the MINIMUM field of the SOA record sent in
// the authority section of NXDOMAIN and NODATA answers, which resolvers use to
// cache the negative answer (RFC 2308). The default is DefaultNegativeTTL.
func (s *Server) SetNegativeTTL(ttl uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.negTTL = ttl
}

// SetMode sets how queries for name are answered. The name "" sets the mode
// for every name that has no mode of its own; a name's own mode, including
// Normal, takes precedence.
func (s *Server) SetMode(name string, m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		s.allMode = m
		return
	}
	s.modes[canonical(name)] = m
}

// SetAD sets or clears the AD (authenticated data) bit in every answer, as a
// validating resolver would, or one that lies about DNSSEC.
func (s *Server) SetAD(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ad = on
}

// Queries returns how many queries for name the server received over UDP and
// over TCP, in every mode, whatever the type asked.
func (s *Server) Queries(name string) (udp, tcp int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c := s.queries[canonical(name)]; c != nil {
		return c.udp, c.tcp
	}
	return 0, 0
}

// zoneOf guesses the zone a name belongs to: its last two labels.
func zoneOf(key string) string {
	labels := dns.SplitDomainName(key)
	if len(labels) <= 2 {
		return dns.Fqdn(key)
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
}

// answer is what the handler takes from the server state under the lock.
type answer struct {
	mode   Mode
	rcode  int
	rrs    []dns.RR // copies, owner names still canonical
	soa    *dns.SOA // for negative answers
	ad     bool
	ttl    uint32
	negTTL uint32
}

// lookupLocked builds the answer for a question. s.mu must be held (read).
func (s *Server) lookupLocked(key string, qtype uint16) answer {
	a := answer{ad: s.ad, ttl: s.ttl, negTTL: s.negTTL}
	name := key
	for hop := 0; ; hop++ {
		rrs, ok := s.records[name]
		if !ok {
			// The RCODE is that of the last name in a CNAME chain
			// (RFC 6604).
			if !s.hasBelowLocked(name) {
				a.rcode = dns.RcodeNameError
			}
			break
		}
		var cname *dns.CNAME
		found := false
		for _, rr := range rrs {
			t := rr.Header().Rrtype
			if t == qtype || qtype == dns.TypeANY {
				a.rrs = append(a.rrs, dns.Copy(rr))
				found = true
			} else if c, ok := rr.(*dns.CNAME); ok && cname == nil {
				cname = c
			}
		}
		if found || cname == nil || hop >= maxCNAMEChain {
			break
		}
		a.rrs = append(a.rrs, dns.Copy(cname))
		name = canonical(cname.Target)
	}
	if len(a.rrs) == 0 {
		a.soa = &dns.SOA{
			Hdr:     dns.RR_Header{Name: zoneOf(key), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: a.negTTL},
			Ns:      "ns." + zoneOf(key),
			Mbox:    "hostmaster." + zoneOf(key),
			Serial:  1,
			Refresh: 3600,
			Retry:   600,
			Expire:  86400,
			Minttl:  a.negTTL,
		}
	}
	return a
}

// hasBelowLocked reports whether some name below key holds records, which
// makes key an empty non-terminal (NODATA, not NXDOMAIN). s.mu must be held.
func (s *Server) hasBelowLocked(key string) bool {
	suffix := "." + key
	if key == "." {
		return len(s.records) > 0
	}
	for name := range s.records {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

func (s *Server) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcodeFormatError(r)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	key := canonical(q.Name)
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)

	s.mu.Lock()
	c := s.queries[key]
	if c == nil {
		c = new(counter)
		s.queries[key] = c
	}
	if isUDP {
		c.udp++
	} else {
		c.tcp++
	}
	mode, ok := s.modes[key]
	if !ok {
		mode = s.allMode
	}
	var a answer
	if mode == Normal || mode == Truncate {
		a = s.lookupLocked(key, q.Qtype)
	}
	s.mu.Unlock()

	m := new(dns.Msg)
	switch mode {
	case Timeout:
		return // no reply at all
	case ServFail:
		m.SetRcode(r, dns.RcodeServerFailure)
	case Refused:
		m.SetRcode(r, dns.RcodeRefused)
	default:
		m.SetRcode(r, a.rcode)
		m.Authoritative = true
		m.AuthenticatedData = a.ad
		for _, rr := range a.rrs {
			rr.Header().Ttl = a.ttl
			if canonical(rr.Header().Name) == key {
				rr.Header().Name = q.Name // answer in the question's case
			}
		}
		m.Answer = a.rrs
		if a.soa != nil {
			m.Ns = []dns.RR{a.soa}
		}
	}
	m.RecursionAvailable = true

	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(dns.DefaultMsgSize, opt.Do())
		if int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
	}
	if !isUDP {
		size = dns.MaxMsgSize
	}
	if isUDP && mode == Truncate {
		m.Truncated = true
		m.Answer, m.Ns = nil, nil
	}
	m.Truncate(size)
	w.WriteMsg(m)
}
