package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// readAllLimit reads r up to limit bytes and fails beyond.
func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("input larger than %d bytes", limit)
	}
	return b, nil
}

// dearmor returns the binary content of one armored block.
func dearmor(b []byte) ([]byte, error) {
	blk, err := armor.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(blk.Body)
}

// parseLifetime parses a lifetime such as 1y, 6mo, 2w, 30d, 12h or any Go
// duration ("90m"). "never" means no expiry (returned as -1).
func parseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "never" || s == "0" {
		return -1, nil
	}
	units := []struct {
		suffix string
		d      time.Duration
	}{{"y", 365 * 24 * time.Hour}, {"mo", 30 * 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 || v > 100*365 {
				break
			}
			return time.Duration(v) * u.d, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad lifetime %q: use e.g. 1y, 6mo, 2w, 30d, 12h or never", s)
	}
	return d, nil
}
