// Package stamp implements the hashcash version 1 stamps that DSEP charges
// for delivery (DESIGN.md, "Messages and delivery"), in the exact format the
// hashcash tool (http://www.hashcash.org/, Debian hashcash 1.22) writes and
// checks:
//
//	1:bits:date:resource:ext:rand:counter
//
// The SHA-1 digest of the whole string must begin with at least bits zero
// bits. date is UTC YYMMDD, YYMMDDhhmm or YYMMDDhhmmss (YY is 20YY); rand
// and counter use the base64 characters A-Z a-z 0-9 + /.
//
// In DSEP the resource is the recipient's OpenPGP fingerprint (40 hex
// digits, as the recipient publishes it) and ext binds the stamp to one
// payload: it is
//
//	d=<64 lowercase hex digits of the SHA-256 payload digest>
//
// (see PayloadExt), a single name=value field of hashcash's extension
// grammar (fields name[=value[,value...]] separated by ';'), which the tool
// carries without interpreting.
//
// Check verifies a stamp without any storage; remembering spent stamps for
// Stamp.Expires is the caller's job. Mint searches for a stamp with one
// SHA-1 compression per try (the state after the constant leading blocks
// and rounds is computed once), on several cores.
package stamp

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

//go:generate go run gen_sha1.go

// MaxLen is the longest stamp Parse accepts, in bytes.
const MaxLen = 512

// Errors returned by Parse and Check. Check wraps them with detail; test
// with errors.Is.
var (
	ErrMalformed     = errors.New("stamp: malformed hashcash stamp")
	ErrTooFewBits    = errors.New("stamp: stamp claims fewer bits than required")
	ErrWork          = errors.New("stamp: hash does not have the claimed zero bits")
	ErrWrongResource = errors.New("stamp: stamp is for another resource")
	ErrWrongExt      = errors.New("stamp: stamp is for other content (ext mismatch)")
	ErrStale         = errors.New("stamp: stamp is too old")
	ErrFuture        = errors.New("stamp: stamp is dated in the future")
)

// Stamp is a parsed hashcash v1 stamp.
type Stamp struct {
	Bits     int       // claimed leading zero bits, 0..160
	Date     time.Time // UTC start of the date field
	DateLen  int       // 6, 10 or 12: digits in the date field
	Resource string
	Ext      string
	Rand     string
	Counter  string
}

// String returns the stamp in its wire form; for a stamp from Parse it is
// the string that was parsed.
func (s Stamp) String() string {
	var b strings.Builder
	b.Grow(32 + len(s.Resource) + len(s.Ext) + len(s.Rand) + len(s.Counter))
	b.WriteString("1:")
	b.WriteString(strconv.Itoa(s.Bits))
	b.WriteByte(':')
	b.WriteString(formatDate(s.Date, s.DateLen))
	b.WriteByte(':')
	b.WriteString(s.Resource)
	b.WriteByte(':')
	b.WriteString(s.Ext)
	b.WriteByte(':')
	b.WriteString(s.Rand)
	b.WriteByte(':')
	b.WriteString(s.Counter)
	return b.String()
}

// Granularity is the span of time the date field covers: a day for
// YYMMDD, a minute for YYMMDDhhmm, a second for YYMMDDhhmmss.
func (s Stamp) Granularity() time.Duration {
	switch s.DateLen {
	case 6:
		return 24 * time.Hour
	case 10:
		return time.Minute
	default:
		return time.Second
	}
}

// Expires is the instant after which Check with this window rejects the
// stamp as stale: a spent-stamp memory must keep it at least until then.
func (s Stamp) Expires(window time.Duration) time.Time {
	if window <= 0 {
		window = DefaultWindow
	}
	return s.Date.Add(s.Granularity() + window)
}

func formatDate(t time.Time, n int) string {
	t = t.UTC()
	switch n {
	case 10:
		return t.Format("0601021504")
	case 12:
		return t.Format("060102150405")
	default:
		return t.Format("060102")
	}
}

// Parse parses a hashcash v1 stamp strictly: exactly seven fields, the
// version 1, bits a decimal 0..160 without leading zeros, a valid date,
// resource and ext of printable ASCII without ':' or spaces, and non-empty
// rand and counter of base64 characters. It does not check the work.
func Parse(s string) (Stamp, error) {
	if len(s) > MaxLen {
		return Stamp{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(s), MaxLen)
	}
	f := strings.Split(s, ":")
	if len(f) != 7 {
		return Stamp{}, fmt.Errorf("%w: %d fields, want 7", ErrMalformed, len(f))
	}
	if f[0] != "1" {
		return Stamp{}, fmt.Errorf("%w: version %q, want 1", ErrMalformed, f[0])
	}
	var st Stamp
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 0 || n > 160 || strconv.Itoa(n) != f[1] {
		return Stamp{}, fmt.Errorf("%w: bits %q is not a number 0..160", ErrMalformed, f[1])
	}
	st.Bits = n
	if st.Date, err = parseDate(f[2]); err != nil {
		return Stamp{}, err
	}
	st.DateLen = len(f[2])
	if !printable(f[3]) {
		return Stamp{}, fmt.Errorf("%w: resource has a character outside printable ASCII", ErrMalformed)
	}
	st.Resource = f[3]
	if !printable(f[4]) {
		return Stamp{}, fmt.Errorf("%w: ext has a character outside printable ASCII", ErrMalformed)
	}
	st.Ext = f[4]
	if f[5] == "" || !base64ish(f[5]) {
		return Stamp{}, fmt.Errorf("%w: rand %q is empty or not base64 characters", ErrMalformed, f[5])
	}
	st.Rand = f[5]
	if f[6] == "" || !base64ish(f[6]) {
		return Stamp{}, fmt.Errorf("%w: counter %q is empty or not base64 characters", ErrMalformed, f[6])
	}
	st.Counter = f[6]
	return st, nil
}

func parseDate(d string) (time.Time, error) {
	var layout string
	switch len(d) {
	case 6:
		layout = "060102"
	case 10:
		layout = "0601021504"
	case 12:
		layout = "060102150405"
	default:
		return time.Time{}, fmt.Errorf("%w: date %q is not YYMMDD, YYMMDDhhmm or YYMMDDhhmmss", ErrMalformed, d)
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return time.Time{}, fmt.Errorf("%w: date %q has a non-digit", ErrMalformed, d)
		}
	}
	t, err := time.Parse(layout, d)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: date %q: not a valid date", ErrMalformed, d)
	}
	// Go maps YY 69..99 to 19YY; hashcash stamps are from this century.
	if t.Year() < 2000 {
		t = t.AddDate(100, 0, 0)
	}
	return t.UTC(), nil
}

// asciiEqualFold is strings.EqualFold for ASCII letters only (so that, for
// instance, the Kelvin sign does not match 'k').
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func base64ish(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// PayloadExt returns the ext field DSEP puts in a stamp for the payload
// whose SHA-256 digest is digest: "d=" and 64 lowercase hex digits.
func PayloadExt(digest [32]byte) string {
	return "d=" + hex.EncodeToString(digest[:])
}

// DefaultWindow is how long after its date a stamp stays fresh.
const DefaultWindow = 48 * time.Hour

// DefaultSlack is how far in the future a stamp's date may start (clock skew).
const DefaultSlack = 10 * time.Minute

// CheckParams says what Check requires of a stamp. The zero values of
// Now, Window and Slack select their defaults.
type CheckParams struct {
	Bits     int    // minimum claimed bits (the price)
	Resource string // resource required, matched ignoring ASCII case

	Ext    string        // exact ext required; "" accepts any ext
	Now    time.Time     // default time.Now()
	Window time.Duration // freshness window after the date's end; default 48h
	Slack  time.Duration // allowed clock skew into the future; default 10m
}

// Check parses s and verifies it against want: enough claimed bits, the
// resource (ASCII case-insensitively, as the hashcash tool does by default
// and needs, since it lowercases the resources it mints), the ext (exactly),
// freshness, and finally that SHA-1(s) has the claimed
// leading zero bits. A date covers its whole granularity: a YYMMDD stamp
// is fresh until Window after the end of its day and is not in the future
// once its day has begun (less Slack). Check does not detect double
// spending.
func Check(s string, want CheckParams) (Stamp, error) {
	st, err := Parse(s)
	if err != nil {
		return Stamp{}, err
	}
	if st.Bits < want.Bits {
		return st, fmt.Errorf("%w: %d bits, %d required", ErrTooFewBits, st.Bits, want.Bits)
	}
	if !asciiEqualFold(st.Resource, want.Resource) {
		return st, fmt.Errorf("%w: %q", ErrWrongResource, st.Resource)
	}
	if want.Ext != "" && st.Ext != want.Ext {
		return st, fmt.Errorf("%w: %q", ErrWrongExt, st.Ext)
	}
	now := want.Now
	if now.IsZero() {
		now = time.Now()
	}
	window, slack := want.Window, want.Slack
	if window <= 0 {
		window = DefaultWindow
	}
	if slack <= 0 {
		slack = DefaultSlack
	}
	if st.Date.After(now.Add(slack)) {
		return st, fmt.Errorf("%w: dated %s, now %s", ErrFuture, st.Date.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(st.Expires(window)) {
		return st, fmt.Errorf("%w: dated %s, window %s", ErrStale, st.Date.Format(time.RFC3339), window)
	}
	if z := LeadingZeros(s); z < st.Bits {
		return st, fmt.Errorf("%w: %d zero bits, %d claimed", ErrWork, z, st.Bits)
	}
	return st, nil
}

// LeadingZeros returns the number of leading zero bits of SHA-1(s).
func LeadingZeros(s string) int {
	sum := sha1.Sum([]byte(s))
	n := 0
	for _, b := range sum {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// Price returns the bits DSEP charges for a payload of sizeBytes:
// base + max(0, ceil(log2(size / 64 KiB))); base 0 means 20.
func Price(sizeBytes int64, baseBits int) int {
	if baseBits <= 0 {
		baseBits = 20
	}
	const unit = 64 << 10
	if sizeBytes <= unit {
		return baseBits
	}
	// ceil(log2(size/unit)) is the least k with unit<<k >= size.
	q := (sizeBytes + unit - 1) / unit // ceil(size/unit) >= 2
	return baseBits + bits.Len64(uint64(q-1))
}
