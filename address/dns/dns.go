// Package dns looks up the DNS TXT records that anchor DSEP addresses,
// `_dsep.<domain>. TXT "v=DSEP1; fpr=..."`, by asking recursive resolvers
// (RFC 1034/1035 over UDP with EDNS0, RFC 6891, falling back to TCP on
// truncation, RFC 7766).
//
// The package does the I/O only: it returns each TXT record as one string, its
// character-strings concatenated as RFC 7208 does for SPF, and leaves the
// parsing of the DSEP record to its callers. Answers, including negative ones
// (RFC 2308), are cached in memory.
//
// DNSSEC is not validated here. A resolver can say it validated an answer by
// setting the AD bit; see Config.TrustAD for when that is believed.
//
// Callers import the package as dsepdns.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Defaults for the zero fields of Config.
const (
	// DefaultTimeout bounds each attempt when Config.Timeout is zero.
	DefaultTimeout = 2 * time.Second
	// DefaultAttempts is the tries per server when Config.Attempts is zero.
	DefaultAttempts = 2
	// DefaultCacheSize is the most names cached when Config.CacheSize is zero.
	DefaultCacheSize = 1024
	// DefaultPort is the port of a resolver address given without one.
	DefaultPort = "53"
)

// Limits on what one lookup accepts and caches.
const (
	// MaxRecords is the most TXT records accepted in one answer.
	MaxRecords = 64
	// MaxBytes is the most bytes of TXT data (all records together) accepted
	// in one answer.
	MaxBytes = 64 << 10
	// MaxCacheTTL caps how long any answer, positive or negative, is cached.
	MaxCacheTTL = time.Hour
	// DefaultNegativeTTL is how long a not-found answer without an SOA
	// record is cached.
	DefaultNegativeTTL = 60 * time.Second

	// ednsUDPSize is the EDNS0 UDP payload size we advertise, the DNS flag
	// day 2020 value that avoids IP fragmentation.
	ednsUDPSize = 1232
	// maxCNAMEs bounds the CNAME chain followed inside one answer.
	maxCNAMEs = 8
)

// resolvConfPath is the file read when Config.Servers is empty.
var resolvConfPath = "/etc/resolv.conf"

// Config configures a Resolver. The zero value works: it asks the resolvers
// of /etc/resolv.conf and believes no AD bit.
type Config struct {
	// Servers are the "host:port" addresses of the recursive resolvers to
	// ask, in order; the host must be an IP address and the port defaults to
	// 53. Empty means the nameservers of /etc/resolv.conf.
	Servers []string
	// Timeout bounds each attempt (one query and its TCP retry each get
	// it). Zero or negative means DefaultTimeout (2s).
	Timeout time.Duration
	// Attempts is how many times each server is tried on timeouts and
	// network errors before moving to the next. Zero or negative means
	// DefaultAttempts (2).
	Attempts int
	// TrustAD makes the resolver ask for DNSSEC validation (the DO bit) and
	// believe the AD (authenticated data) bit of answers, but only from a
	// server whose address is a loopback IP (127.0.0.0/8 or ::1); answers from
	// any other server are reported as not authenticated.
	//
	// Threat model: the AD bit is one unsigned header bit. From a remote
	// resolver it crosses an unauthenticated network, where anyone on the path
	// can set it on a forged answer; only a validating resolver on this host
	// (unbound, systemd-resolved, ...) is trusted to have set it. Default
	// false: no answer is reported as authenticated.
	TrustAD bool
	// CacheSize is the most names cached. Zero means DefaultCacheSize
	// (1024); negative disables the cache.
	CacheSize int
	// Now is the clock of the cache. Nil means time.Now. Network timeouts
	// always use the real clock.
	Now func() time.Time
}

// Resolver looks up TXT records. It is safe for concurrent use.
type Resolver struct {
	// All fields are set by New and read-only afterwards; cache has its
	// own lock.
	servers  []string
	timeout  time.Duration
	attempts int
	trustAD  bool
	now      func() time.Time
	cache    *cache
	// trusted reports whether the AD bit from a server is believed;
	// isLoopback unless a test replaces it.
	trusted func(server string) bool
}

// TXTAnswer is the answer to a TXT lookup.
type TXTAnswer struct {
	// Name is the queried name, fully qualified and lower-cased.
	Name string
	// Records holds one entry per TXT record, its character-strings
	// concatenated (RFC 7208 style), in the order received.
	Records []string
	// Authenticated is true if the answer had the AD bit set and
	// Config.TrustAD allowed believing it from that server.
	Authenticated bool
	// Server is the resolver that answered.
	Server string
	// TTL is the smallest TTL of the records (and of CNAMEs leading to
	// them); for an answer from the cache, the time it has left there.
	TTL time.Duration
}

// clone returns a deep copy of a.
func (a *TXTAnswer) clone() *TXTAnswer {
	c := *a
	c.Records = slices.Clone(a.Records)
	return &c
}

// ErrNotFound is the error (wrapped in a *LookupError) when the name does not
// exist (NXDOMAIN) or has no TXT record (NODATA).
var ErrNotFound = errors.New("dns: no such record")

// LookupError describes a failed lookup.
type LookupError struct {
	// Name is the queried name, fully qualified and lower-cased.
	Name string
	// Server is the resolver that gave the answer or the last one tried.
	Server string
	// Err is the cause: ErrNotFound, a network error, the context's error, or
	// an error describing a bad answer.
	Err error
	// Timeout is true if the lookup failed because the server did not answer
	// in time or the context's deadline passed.
	Timeout bool
}

// Error returns a short description such as
// "dns: lookup _dsep.example.org TXT at 127.0.0.1:53: timed out".
func (e *LookupError) Error() string {
	var detail string
	switch {
	case errors.Is(e.Err, ErrNotFound):
		detail = "no such record"
	case e.Timeout:
		detail = "timed out"
	case e.Err == nil:
		detail = "failed"
	default:
		detail = strings.TrimPrefix(e.Err.Error(), "dns: ")
	}
	name := strings.TrimSuffix(e.Name, ".")
	if name == "" {
		name = "."
	}
	s := "dns: lookup " + name + " TXT"
	if e.Server != "" {
		s += " at " + e.Server
	}
	return s + ": " + detail
}

// Unwrap returns Err.
func (e *LookupError) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed: true for every
// failure (timeouts, SERVFAIL, network errors, bad answers) except a name or
// record that does not exist.
func (e *LookupError) Temporary() bool { return !errors.Is(e.Err, ErrNotFound) }

// rcodeError is an answer whose RCODE is neither NOERROR nor NXDOMAIN.
type rcodeError int

func (e rcodeError) Error() string {
	if s, ok := mdns.RcodeToString[int(e)]; ok {
		return "server answered " + s
	}
	return "server answered RCODE " + strconv.Itoa(int(e))
}

// New returns a Resolver for cfg. It fails if a server address is not an IP
// address with an optional port, or if Servers is empty and /etc/resolv.conf
// cannot be read or lists no nameserver.
func New(cfg Config) (*Resolver, error) {
	servers := cfg.Servers
	if len(servers) == 0 {
		cc, err := mdns.ClientConfigFromFile(resolvConfPath)
		if err != nil {
			return nil, fmt.Errorf("dns: no resolver configured: %w", err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("dns: no resolver configured: no nameserver in %s", resolvConfPath)
		}
	}
	r := &Resolver{
		timeout:  cfg.Timeout,
		attempts: cfg.Attempts,
		trustAD:  cfg.TrustAD,
		now:      cfg.Now,
		trusted:  isLoopback,
	}
	for _, s := range servers {
		addr, err := normalizeServer(s)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, addr)
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.attempts <= 0 {
		r.attempts = DefaultAttempts
	}
	if r.now == nil {
		r.now = time.Now
	}
	switch {
	case cfg.CacheSize == 0:
		r.cache = newCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		r.cache = newCache(cfg.CacheSize)
	}
	return r, nil
}

// normalizeServer turns "ip", "[ipv6]", "ip:port" or "[ipv6]:port" into
// "ip:port", with DefaultPort when none is given.
func normalizeServer(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), DefaultPort
	}
	if port == "" {
		port = DefaultPort
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("dns: resolver address %q: host is not an IP address", s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("dns: resolver address %q: bad port", s)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// isLoopback reports whether server ("host:port" or a bare host) is a literal
// loopback IP address: 127.0.0.0/8, ::1, or ::ffff:127.x.y.z. Names, even
// "localhost", are not: what they resolve to is not known here.
func isLoopback(server string) bool {
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(server, "["), "]")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}

// Servers returns the addresses of the resolvers asked, in order.
func (r *Resolver) Servers() []string { return slices.Clone(r.servers) }

// FlushCache empties the cache.
func (r *Resolver) FlushCache() {
	if r.cache != nil {
		r.cache.flush()
	}
}

// LookupTXT returns the TXT records at name (a domain name with or without the
// trailing dot, case-insensitive), from the cache if there.
//
// The servers are asked in order. A timeout, a network error, SERVFAIL,
// REFUSED or a bad answer moves on to the next server (timeouts and network
// errors first use up Config.Attempts on the same server). An answer that the
// name does not exist or has no TXT record is final: the error wraps
// ErrNotFound and other servers are not asked. Every failure is a
// *LookupError. Cancelling ctx stops the lookup.
//
// The returned answer is the caller's to modify.
func (r *Resolver) LookupTXT(ctx context.Context, name string) (*TXTAnswer, error) {
	fqdn, err := canonicalName(name)
	if err != nil {
		return nil, err
	}
	if r.cache != nil {
		if a, lerr, ok := r.cache.get(fqdn, r.now()); ok {
			if lerr != nil {
				return nil, lerr
			}
			return a, nil
		}
	}

	var last *LookupError
	for _, server := range r.servers {
		resp, err := r.askServer(ctx, server, fqdn)
		if err != nil {
			last = &LookupError{Name: fqdn, Server: server, Err: err, Timeout: isTimeout(err)}
			if ctx.Err() != nil {
				return nil, last
			}
			continue
		}

		if resp.Rcode == mdns.RcodeNameError {
			return nil, r.notFound(fqdn, server, resp)
		}
		records, ttl, err := extractTXT(fqdn, resp)
		if errors.Is(err, errNoData) {
			return nil, r.notFound(fqdn, server, resp)
		}
		if err != nil {
			last = &LookupError{Name: fqdn, Server: server, Err: err}
			continue
		}
		a := &TXTAnswer{
			Name:          fqdn,
			Records:       records,
			Authenticated: resp.AuthenticatedData && r.trustAD && r.trusted(server),
			Server:        server,
			TTL:           time.Duration(ttl) * time.Second,
		}
		if r.cache != nil && a.TTL > 0 {
			r.cache.put(fqdn, cacheEntry{ans: a.clone(), server: server}, r.now(), a.TTL)
		}
		return a, nil
	}
	return nil, last
}

// notFound caches a not-found answer and returns its error.
func (r *Resolver) notFound(fqdn, server string, resp *mdns.Msg) error {
	if r.cache != nil {
		if ttl := negativeTTL(resp); ttl > 0 {
			r.cache.put(fqdn, cacheEntry{server: server}, r.now(), ttl)
		}
	}
	return &LookupError{Name: fqdn, Server: server, Err: ErrNotFound}
}

// canonicalName returns name fully qualified and lower-cased, or an error if
// it is not a valid domain name.
func canonicalName(name string) (string, error) {
	if _, ok := mdns.IsDomainName(name); !ok || name == "" {
		return "", fmt.Errorf("dns: lookup %q: not a valid domain name", name)
	}
	return strings.ToLower(mdns.Fqdn(name)), nil
}

// isTimeout reports whether err is a timeout or a passed deadline.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// askServer queries one server for the TXT records at fqdn, retrying over TCP
// when the UDP answer is truncated, and up to r.attempts times on timeouts and
// network errors. It returns an answer whose RCODE is NOERROR or NXDOMAIN, or
// an error; if ctx is done the error is ctx.Err().
func (r *Resolver) askServer(ctx context.Context, server, fqdn string) (*mdns.Msg, error) {
	var err error
	for attempt := 0; attempt < r.attempts; attempt++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		q := new(mdns.Msg)
		q.SetQuestion(fqdn, mdns.TypeTXT)
		q.SetEdns0(ednsUDPSize, r.trustAD)
		q.AuthenticatedData = r.trustAD // RFC 6840 5.7: we understand AD

		var resp *mdns.Msg
		resp, err = r.exchange(ctx, "udp", server, q)
		if err == nil && resp.Truncated {
			q.Id = mdns.Id()
			resp, err = r.exchange(ctx, "tcp", server, q)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			continue // timeout, network error or garbled answer: try again
		}
		switch resp.Rcode {
		case mdns.RcodeSuccess, mdns.RcodeNameError:
			return resp, nil
		default:
			return nil, rcodeError(resp.Rcode)
		}
	}
	return nil, err
}

// aLongTimeAgo is a deadline in the past, to unblock reads and writes.
var aLongTimeAgo = time.Unix(1, 0)

// exchange sends q to server over network ("udp" or "tcp") and reads its
// answer, within r.timeout and until ctx is done.
func (r *Resolver) exchange(ctx context.Context, network, server string, q *mdns.Msg) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	defer stop()

	co := &mdns.Conn{Conn: conn, UDPSize: mdns.MaxMsgSize}
	if err := co.WriteMsg(q); err != nil {
		return nil, err
	}
	for {
		var h mdns.Header
		p, err := co.ReadMsgHeader(&h)
		if err != nil {
			return nil, err
		}
		if h.Id != q.Id {
			if network == "udp" {
				continue // stray or forged datagram: keep waiting
			}
			return nil, errors.New("answer has the wrong ID")
		}
		resp := new(mdns.Msg)
		if err := resp.Unpack(p); err != nil {
			return nil, fmt.Errorf("malformed answer: %w", err)
		}
		if err := checkReply(q, resp); err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// checkReply checks that resp answers the question of q.
func checkReply(q, resp *mdns.Msg) error {
	if !resp.Response || resp.Opcode != mdns.OpcodeQuery {
		return errors.New("malformed answer: not a query response")
	}
	if len(resp.Question) != 1 {
		return errors.New("malformed answer: no question section")
	}
	a, b := resp.Question[0], q.Question[0]
	if a.Qtype != b.Qtype || a.Qclass != b.Qclass || !strings.EqualFold(a.Name, b.Name) {
		return errors.New("answer is for another question")
	}
	return nil
}
