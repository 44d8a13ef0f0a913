package address

import (
	"errors"
	"fmt"
	"strings"
)

// TXTPrefix is the label under which a domain publishes its DSEP keys:
// _dsep.<domain>. TXT "v=DSEP1; fpr=<40 hex>".
const TXTPrefix = "_dsep."

// TXTVersion is the value of the mandatory first tag v=.
const TXTVersion = "DSEP1"

// maxTXTRecord bounds one record's text (its strings already joined).
const maxTXTRecord = 4096

// ErrNotDSEP marks a TXT record that does not start with v=DSEP1 (it is
// someone else's record and is ignored, not an error in the zone).
var ErrNotDSEP = errors.New("address: not a DSEP TXT record (no leading v=DSEP1)")

// ErrBadTXT is wrapped by errors for records that claim v=DSEP1 but are
// malformed.
var ErrBadTXT = errors.New("address: malformed DSEP TXT record")

// DomainRecord is one _dsep TXT record: the fingerprint of a domain key and,
// optionally, of the domain's gateway key. Several records are published
// only during a key rollover.
type DomainRecord struct {
	Key     Fingerprint  // fpr=, required
	Gateway *Fingerprint // gw=, optional
}

// TXTName returns the owner name of the domain's record, with the trailing
// dot of a zone file ("_dsep.example.org.").
func TXTName(domain string) string { return TXTPrefix + domain + "." }

// String returns the record's text exactly as it is to be published:
// "v=DSEP1; fpr=<hex>" and "; gw=<hex>" when a gateway is named.
func (r DomainRecord) String() string {
	s := "v=" + TXTVersion + "; fpr=" + r.Key.String()
	if r.Gateway != nil {
		s += "; gw=" + r.Gateway.String()
	}
	return s
}

// ZoneLine returns the zone-file line that publishes r for domain, e.g.
//
//	_dsep.example.org. 3600 IN TXT "v=DSEP1; fpr=…"
func (r DomainRecord) ZoneLine(domain string, ttl uint32) string {
	return fmt.Sprintf("%s %d IN TXT %q", TXTName(domain), ttl, r.String())
}

// ParseTXT parses one TXT record (its character-strings already joined).
// The grammar is a list of tag=value pairs separated by ";" with optional
// white space around them, v=DSEP1 first; tags are lower-case ASCII letters
// and digits; unknown tags are ignored; a tag may not repeat; a trailing ";"
// is allowed. It returns ErrNotDSEP for records of other protocols and an
// error wrapping ErrBadTXT for malformed DSEP records.
func ParseTXT(txt string) (DomainRecord, error) {
	var r DomainRecord
	if len(txt) > maxTXTRecord {
		return r, fmt.Errorf("%w: longer than %d bytes", ErrBadTXT, maxTXTRecord)
	}
	parts := strings.Split(txt, ";")
	if n := len(parts); n > 1 && strings.TrimSpace(parts[n-1]) == "" {
		parts = parts[:n-1]
	}
	seen := make(map[string]bool, len(parts))
	for i, p := range parts {
		p = strings.Trim(p, " \t")
		tag, val, ok := strings.Cut(p, "=")
		tag = strings.TrimRight(tag, " \t")
		val = strings.TrimLeft(val, " \t")
		if i == 0 {
			if !ok || tag != "v" || val != TXTVersion {
				return r, ErrNotDSEP
			}
			seen["v"] = true
			continue
		}
		if !ok || !validTag(tag) {
			return r, fmt.Errorf("%w: %q is not tag=value", ErrBadTXT, p)
		}
		if seen[tag] {
			return r, fmt.Errorf("%w: tag %q repeated", ErrBadTXT, tag)
		}
		seen[tag] = true
		if !validValue(val) {
			return r, fmt.Errorf("%w: bad value for tag %q", ErrBadTXT, tag)
		}
		switch tag {
		case "fpr":
			f, err := parseLowerFingerprint(val)
			if err != nil {
				return r, fmt.Errorf("%w: fpr: %v", ErrBadTXT, err)
			}
			r.Key = f
		case "gw":
			f, err := parseLowerFingerprint(val)
			if err != nil {
				return r, fmt.Errorf("%w: gw: %v", ErrBadTXT, err)
			}
			r.Gateway = &f
		}
	}
	if !seen["fpr"] {
		return r, fmt.Errorf("%w: no fpr= tag", ErrBadTXT)
	}
	return r, nil
}

// parseLowerFingerprint accepts exactly 40 hex digits (either case) and no
// spaces: in a record, a looser fingerprint form is a sign of a typo.
func parseLowerFingerprint(s string) (Fingerprint, error) {
	if strings.ContainsAny(s, " ") {
		return Fingerprint{}, ErrBadFingerprint
	}
	return ParseFingerprint(s)
}

func validTag(t string) bool {
	if t == "" || len(t) > 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validValue allows visible ASCII other than ";" (values with spaces or
// control characters are rejected so that two parsers cannot disagree).
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == ';' {
			return false
		}
	}
	return true
}

// ParseTXTSet parses every TXT record found at _dsep.<domain>. Records of
// other protocols are skipped. It returns the valid DSEP records and, when
// some records claimed v=DSEP1 but were malformed, an error describing them
// (so a caller can tell "no DSEP record" from "a broken one"). Duplicate
// fingerprints are kept once.
func ParseTXTSet(records []string) ([]DomainRecord, error) {
	var out []DomainRecord
	var errs []error
	seen := make(map[Fingerprint]bool)
	for _, t := range records {
		r, err := ParseTXT(t)
		if errors.Is(err, ErrNotDSEP) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[r.Key] {
			continue
		}
		seen[r.Key] = true
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}
