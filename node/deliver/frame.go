package deliver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dsep-project/dsep/node/envelope"
)

// Frame limits.
const (
	// MaxReason bounds the reason of a response, in bytes of UTF-8.
	MaxReason = 512
	// MaxReceipt bounds one receipt on the receipt stream, in bytes.
	MaxReceipt = 2048
	// responseFixed is status, message ID, retry-after, reason length.
	responseFixed = 1 + 32 + 2 + 2
)

// appendResponse appends the wire form of r (docs/protocol.md §11.3) to b.
// The reason is cleaned (cleanReason) and RetryAfter rounded up to whole
// seconds and capped at 65535.
func appendResponse(b []byte, r Response) []byte {
	reason := cleanReason(r.Reason)
	b = append(b, byte(r.Status))
	b = append(b, r.ID[:]...)
	b = binary.BigEndian.AppendUint16(b, retrySeconds(r.RetryAfter))
	b = binary.BigEndian.AppendUint16(b, uint16(len(reason)))
	return append(b, reason...)
}

// retrySeconds rounds d up to whole seconds within a u16.
func retrySeconds(d time.Duration) uint16 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxUint16 {
		return math.MaxUint16
	}
	return uint16(s)
}

// readResponse reads one response. It returns io.EOF, unwrapped, when the
// stream ends before the first byte; an error wrapping
// ErrMalformedResponse for a frame that breaks §11.3 (including one cut
// short); and other read errors wrapped.
func readResponse(r io.Reader) (Response, error) {
	var resp Response
	var fixed [responseFixed]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		if err == io.EOF {
			return resp, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return resp, fmt.Errorf("%w: cut short", ErrMalformedResponse)
		}
		return resp, fmt.Errorf("deliver: reading a response: %w", err)
	}
	resp.Status = Status(fixed[0])
	if resp.Status > StatusRetry {
		return resp, fmt.Errorf("%w: unknown status %d", ErrMalformedResponse, fixed[0])
	}
	copy(resp.ID[:], fixed[1:33])
	resp.RetryAfter = time.Duration(binary.BigEndian.Uint16(fixed[33:])) * time.Second
	n := binary.BigEndian.Uint16(fixed[35:])
	if n > MaxReason {
		return resp, fmt.Errorf("%w: reason of %d bytes (at most %d)", ErrMalformedResponse, n, MaxReason)
	}
	if n > 0 {
		reason := make([]byte, n)
		if _, err := io.ReadFull(r, reason); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return resp, fmt.Errorf("%w: reason cut short", ErrMalformedResponse)
			}
			return resp, fmt.Errorf("deliver: reading a response: %w", err)
		}
		if !validReason(reason) {
			return resp, fmt.Errorf("%w: reason is not UTF-8 text without control characters", ErrMalformedResponse)
		}
		resp.Reason = string(reason)
	}
	return resp, nil
}

// validReason reports whether b is valid UTF-8 without control characters.
func validReason(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// cleanReason makes s a valid reason: invalid UTF-8 becomes U+FFFD,
// control characters (newlines, escapes) become spaces, and the result is
// cut at a character boundary to at most MaxReason bytes. A valid reason
// comes back unchanged.
func cleanReason(s string) string {
	if len(s) <= MaxReason && validReason([]byte(s)) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > MaxReason {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ReceiptStatus is the answer to one receipt (docs/protocol.md §11.5).
type ReceiptStatus uint8

// The receipt statuses.
const (
	// ReceiptAccepted: the receiver took the receipt.
	ReceiptAccepted ReceiptStatus = 0
	// ReceiptRefused: refused for good (malformed, unknown message, bad
	// signature); do not send it again.
	ReceiptRefused ReceiptStatus = 1
	// ReceiptRetry: refused for now (rate limited, a storage failure);
	// send it again later.
	ReceiptRetry ReceiptStatus = 2
)

// String names the status.
func (s ReceiptStatus) String() string {
	switch s {
	case ReceiptAccepted:
		return "accepted"
	case ReceiptRefused:
		return "refused"
	case ReceiptRetry:
		return "retry"
	default:
		return fmt.Sprintf("ReceiptStatus(%d)", uint8(s))
	}
}

// Errors of readReceipt.
var (
	errEmptyReceipt    = errors.New("deliver: empty receipt")
	errReceiptTooLarge = errors.New("deliver: receipt over 2048 bytes")
)

// appendReceipt appends the frame of one receipt (u16 length, bytes).
func appendReceipt(b, receipt []byte) ([]byte, error) {
	switch {
	case len(receipt) == 0:
		return b, errEmptyReceipt
	case len(receipt) > MaxReceipt:
		return b, fmt.Errorf("%w (%d bytes)", errReceiptTooLarge, len(receipt))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(receipt)))
	return append(b, receipt...), nil
}

// readReceipt reads one receipt frame. It returns io.EOF, unwrapped, when
// the stream ends before the first byte; errEmptyReceipt or
// errReceiptTooLarge for a bad length, before reading any receipt byte;
// io.ErrUnexpectedEOF for a frame cut short; other read errors as they are.
func readReceipt(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(l[:])
	switch {
	case n == 0:
		return nil, errEmptyReceipt
	case n > MaxReceipt:
		return nil, fmt.Errorf("%w (%d bytes)", errReceiptTooLarge, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// zeroID is the message ID of a response to an envelope whose payload was
// never read.
var zeroID envelope.ID
