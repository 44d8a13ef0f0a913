// Package deliver implements the two stream protocols a DSEP node speaks to
// other nodes over libp2p (TLS 1.3, both sides authenticated):
//
//   - /dsep/deliver/1.0.0 (docs/protocol.md §11.3): a sender pipelines
//     envelopes (§11.1, package node/envelope) on one stream and reads one
//     response per envelope, in order;
//   - /dsep/receipt/1.0.0 (docs/protocol.md §11.5): a sender pipelines
//     length-prefixed receipts, opaque to this package, and reads one
//     status byte per receipt.
//
// The package is transport only. It frames, bounds and rate-limits; the node
// supplies the policy: a Policy decides which envelopes it admits and makes
// them durable, a ReceiptSink takes receipts. A response is written only
// after the policy returned, so an acknowledgement always means "on disk".
//
// Every limit is keyed by the authenticated peer ID of the stream's
// connection (s.Conn().RemotePeer()), never by a network address.
package deliver

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// The protocol IDs.
const (
	// Protocol is the deliver stream protocol (docs/protocol.md §11.3).
	Protocol protocol.ID = "/dsep/deliver/1.0.0"
	// ReceiptProtocol is the receipt stream protocol (docs/protocol.md §11.5).
	ReceiptProtocol protocol.ID = "/dsep/receipt/1.0.0"
)

// Status is the outcome of one envelope, the first byte of a response.
type Status uint8

// The statuses of a response (docs/protocol.md §11.3).
const (
	// StatusStored: the envelope is stored now (durably).
	StatusStored Status = 0
	// StatusDuplicate: the envelope was already stored; this acknowledges
	// it again (a retry after a lost acknowledgement).
	StatusDuplicate Status = 1
	// StatusRejected: refused for good; sending the same envelope again
	// will be refused again.
	StatusRejected Status = 2
	// StatusRetry: refused for now (rate limited, overloaded, a storage
	// failure); send it again later, after RetryAfter if it is set.
	StatusRetry Status = 3
)

// String names the status.
func (s Status) String() string {
	switch s {
	case StatusStored:
		return "stored"
	case StatusDuplicate:
		return "duplicate"
	case StatusRejected:
		return "rejected"
	case StatusRetry:
		return "retry"
	default:
		return "Status(" + strconv.Itoa(int(s)) + ")"
	}
}

// Delivered reports whether the status acknowledges the envelope: stored
// or duplicate.
func (s Status) Delivered() bool { return s == StatusStored || s == StatusDuplicate }

// Response is the receiver's answer to one envelope.
type Response struct {
	Status Status
	// ID is the message ID of the envelope, or all zero when the receiver
	// refused the envelope before reading its payload (after such a
	// response the receiver ends the stream).
	ID envelope.ID
	// Reason is a short text for the sending user ("stamp refused: already
	// spent"); empty for stored and duplicate.
	Reason string
	// RetryAfter is how long to wait before sending again, in whole
	// seconds; set only with StatusRetry, and 0 there means "use your own
	// backoff".
	RetryAfter time.Duration
}

// Err returns nil when the response acknowledges the envelope, and
// otherwise a *Refusal carrying its status, reason and retry delay.
func (r Response) Err() error {
	if r.Status.Delivered() {
		return nil
	}
	return &Refusal{Status: r.Status, Reason: r.Reason, RetryAfter: r.RetryAfter}
}

// Refusal is a refusal of an envelope or a receipt, with what to tell the
// sender. A Policy or ReceiptSink returns one to refuse; the client side
// returns one from Response.Err.
//
// Status is StatusRejected (permanent) or StatusRetry (temporary); the
// server treats any other status as a retry with a generic reason. Reason
// is sent to the sending user as is (cut to MaxReason bytes, control
// characters replaced): it must say what went wrong in terms the sender
// can act on and must never carry internals (paths, stack traces, store
// errors). RetryAfter is sent with StatusRetry only, rounded up to whole
// seconds (at most 65535).
type Refusal struct {
	Status     Status
	Reason     string
	RetryAfter time.Duration
}

// Error implements error.
func (r *Refusal) Error() string {
	s := "deliver: " + r.Status.String()
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	if r.Status == StatusRetry && r.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", r.RetryAfter)
	}
	return s
}

// Temporary reports whether sending again later may succeed.
func (r *Refusal) Temporary() bool { return r.Status != StatusRejected }

// Errors of the clients (Send, SendReceipts).
var (
	// ErrStreamEnded: the receiver ended the stream before answering
	// every envelope or receipt. The answered prefix was returned; the
	// rest were not processed and may be sent again.
	ErrStreamEnded = errors.New("deliver: the receiver ended the stream before answering everything")
	// ErrIDMismatch: the receiver acknowledged a message ID other than
	// the one of the envelope sent, a broken or lying receiver.
	ErrIDMismatch = errors.New("deliver: the receiver answered with another message ID than the envelope's")
	// ErrMalformedResponse: a response or receipt status does not follow
	// docs/protocol.md §11.3 or §11.5.
	ErrMalformedResponse = errors.New("deliver: malformed response")
)
