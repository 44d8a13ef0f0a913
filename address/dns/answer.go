package dns

import (
	"errors"
	"fmt"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// errNoData means an answer holds no TXT record for the name (NODATA).
var errNoData = errors.New("no TXT record in answer")

// extractTXT returns the TXT records for qname in the answer section of m,
// after following CNAMEs from qname (at most maxCNAMEs), and the smallest TTL
// among those records and CNAMEs. Each record is its character-strings
// unescaped to raw bytes and concatenated. It returns errNoData if there is no
// such record, and an error if the answer exceeds MaxRecords or MaxBytes or its
// CNAME chain is too long. Records of other names, types or classes are
// ignored.
func extractTXT(qname string, m *mdns.Msg) (records []string, ttl uint32, err error) {
	target := qname
	ttl = ^uint32(0)
	for hops := 0; ; hops++ {
		var cname *mdns.CNAME
		for _, rr := range m.Answer {
			c, ok := rr.(*mdns.CNAME)
			if ok && c.Hdr.Class == mdns.ClassINET && strings.EqualFold(c.Hdr.Name, target) {
				cname = c
				break
			}
		}
		if cname == nil {
			break
		}
		if hops == maxCNAMEs {
			return nil, 0, fmt.Errorf("bad answer: CNAME chain longer than %d", maxCNAMEs)
		}
		ttl = min(ttl, cname.Hdr.Ttl)
		target = cname.Target
	}

	total := 0
	for _, rr := range m.Answer {
		t, ok := rr.(*mdns.TXT)
		if !ok || t.Hdr.Class != mdns.ClassINET || !strings.EqualFold(t.Hdr.Name, target) {
			continue
		}
		if len(records) == MaxRecords {
			return nil, 0, fmt.Errorf("bad answer: more than %d TXT records", MaxRecords)
		}
		s := joinTXT(t.Txt)
		total += len(s)
		if total > MaxBytes {
			return nil, 0, fmt.Errorf("bad answer: more than %d bytes of TXT records", MaxBytes)
		}
		records = append(records, s)
		ttl = min(ttl, t.Hdr.Ttl)
	}
	if len(records) == 0 {
		return nil, 0, errNoData
	}
	return records, ttl, nil
}

// joinTXT concatenates the character-strings of a TXT record as raw bytes.
func joinTXT(strs []string) string {
	var b strings.Builder
	for _, s := range strs {
		unescapeTXT(&b, s)
	}
	return b.String()
}

// unescapeTXT writes to b the raw bytes of one character-string as miekg/dns
// holds it: in presentation form, where \DDD is the byte of decimal value DDD
// and a backslash before any other byte stands for that byte. It decodes the
// way miekg/dns packs strings, so the bytes are those on the wire.
func unescapeTXT(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			break // a lone trailing backslash stands for nothing
		}
		if i+2 < len(s) && isDigit(s[i]) && isDigit(s[i+1]) && isDigit(s[i+2]) {
			b.WriteByte(byte(int(s[i]-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0')))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// negativeTTL returns how long a not-found answer may be cached: the smaller
// of the TTL and the MINIMUM field of the SOA record in its authority section
// (RFC 2308 section 5), or DefaultNegativeTTL if there is none, capped at
// MaxCacheTTL.
func negativeTTL(m *mdns.Msg) time.Duration {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			ttl := time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
			return min(ttl, MaxCacheTTL)
		}
	}
	return DefaultNegativeTTL
}
