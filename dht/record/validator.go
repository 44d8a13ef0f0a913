package record

import (
	"fmt"
	"time"

	librecord "github.com/libp2p/go-libp2p-record"
)

// Validator is the go-libp2p-record validator of all four DSEP
// namespaces: it dispatches on the key's namespace, so the same value can
// be registered for each of Namespaces() in a
// librecord.NamespacedValidator. The zero value is ready to use.
type Validator struct {
	// Now returns the current time; nil means time.Now. Tests fix it.
	Now func() time.Time
}

var _ librecord.Validator = Validator{}

func (v Validator) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// Validate reports whether value is a valid record for key now (Verify).
func (v Validator) Validate(key string, value []byte) error {
	_, err := Verify(key, value, v.now())
	return err
}

// Select returns the index of the best valid value for key (docs/protocol.md
// §9.2): for /dsep-rev/ the strongest revocation kind first (compromised >
// superseded > retired, address.Revocation.Severity), then for every
// namespace the highest seq. Among equally good values it returns the
// lowest index, so the record kad-dht already holds (index 0) stays and
// republishing identical bytes is accepted; no signer's clock decides.
// Invalid values are never selected; if none is valid, Select fails.
func (v Validator) Select(key string, values [][]byte) (int, error) {
	now := v.now()
	best, bestSev := -1, 0
	var bestSeq uint64
	var firstErr error
	for i, val := range values {
		ver, err := Verify(key, val, now)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		sev := 0
		if ver.Rev != nil {
			sev = ver.Rev.Revocation.Severity()
		}
		if best < 0 || sev > bestSev || sev == bestSev && ver.Seq > bestSeq {
			best, bestSev, bestSeq = i, sev, ver.Seq
		}
	}
	if best < 0 {
		if firstErr == nil {
			return 0, fmt.Errorf("%w: no value to select from for %.80q", ErrMalformed, key)
		}
		return 0, fmt.Errorf("record: none of %d values for %.80q is valid; the first: %w", len(values), key, firstErr)
	}
	return best, nil
}
