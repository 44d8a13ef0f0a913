// Package control is the control API of a DSEP node: how the dsep command
// line (`dsep send`, `dsep inbox`, `dsep status`, …) talks to the running
// daemon (`dsep run`).
//
// The API is HTTP/1.1 over a unix socket in the node's data directory
// (SocketName, mode 0600 in a 0700 directory: only the node's owner can
// connect, and that is the whole of its authentication). Paths are
// versioned; responses are JSON:
//
//	GET  /v1/status                       Status
//	POST /v1/send?to=ADDR[&to=ADDR…]      SendResult; the body is the complete
//	                                      RFC 5322 message (Content-Type:
//	                                      message/rfc822), at most
//	                                      Server.MaxMailBytes
//	GET  /v1/messages?folder=F&limit=N    {"messages": [Summary…]}, newest first
//	GET  /v1/messages/{id}[?raw=true]     Message
//	GET  /v1/outbox                       {"entries": [OutboxEntry…]}
//	GET  /v1/contacts[/{email}], POST /v1/contacts/{email}/approve|block|verify
//	                                      the address book (ContactBook)
//
// A failure is a non-2xx status with an Error as its JSON body.
//
// The mail of /v1/send travels as the raw request body rather than inside
// JSON: base64 would grow a 25 MiB message past any sensible request limit.
// Requests are parsed strictly (unknown or repeated query parameters are
// refused). Responses are decoded with size limits but tolerate unknown
// fields, so a CLI one release apart from the running daemon still works.
//
// The daemon implements Backend; NewServer serves it, and Dial returns a
// Client, which implements Backend too.
package control

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SocketName is the file name of the control socket in a data directory.
const SocketName = "control.sock"

// Limits.
const (
	// DefaultMaxMailBytes is the default largest mail /v1/send accepts
	// (Server.MaxMailBytes): room for a 25 MiB message with its headers.
	DefaultMaxMailBytes = 32 << 20
	// MaxRecipients bounds the recipients of one Send.
	MaxRecipients = 100
	// MaxAddressBytes bounds one recipient address.
	MaxAddressBytes = 320
	// MaxFolderBytes bounds a folder name.
	MaxFolderBytes = 255
	// MinIDPrefix is the shortest message ID prefix (hex digits) accepted.
	MinIDPrefix = 8
	// IDLength is the length of a full message ID: 64 hex digits (SHA-256).
	IDLength = 64
)

// Backend is what the control API serves: the running node. Every method
// may be called concurrently. A method that fails for a reason the user
// can act on returns an *Error (its Message and Hint reach the user); any
// other error is logged by the server and reported as an internal error
// that reveals nothing of it.
type Backend interface {
	// Status reports the node's identity, network, queue, mailbox and
	// alert state.
	Status(ctx context.Context) (*Status, error)

	// Send queues req.Mail for every address of req.To (the server has
	// checked that there is at least one, at most MaxRecipients, and that
	// the mail is not empty nor larger than the server's MaxMailBytes).
	// The backend checks that the mail's From is the node's own address,
	// signs and encrypts it once per recipient, and queues it durably
	// before returning. It returns one Queued per recipient.
	Send(ctx context.Context, req *SendRequest) (*SendResult, error)

	// List returns at most limit message summaries of folder, newest
	// first; folder "" means "INBOX" and limit ≤ 0 means no limit. An
	// unknown folder is an *Error with Code 404.
	List(ctx context.Context, folder string, limit int) ([]Summary, error)

	// Message returns the message whose ID is id: 64 lower-case hex digits
	// or a prefix of at least MinIDPrefix of them (the server has checked
	// the form and lower-cased it). The backend resolves a prefix; no
	// match is an *Error with Code 404, several are an *Error with Code
	// 409. With raw set, an inbound message's Raw holds the armored
	// OpenPGP message as received.
	Message(ctx context.Context, id string, raw bool) (*Message, error)

	// Outbox returns the outbound queue: every message still pending and
	// those finished recently, newest first.
	Outbox(ctx context.Context) ([]OutboxEntry, error)
}

// Status is the state of a running node.
type Status struct {
	Version     string   `json:"version"`
	Fingerprint string   `json:"fingerprint"` // the identity's, 40 hex digits
	Emails      []string `json:"emails"`      // the identity's addresses
	PeerID      string   `json:"peer_id"`
	Listen      []string `json:"listen"` // multiaddrs, with /p2p/
	// IMAP and SMTP are the host:port of the servers for mail clients
	// ("" when off).
	IMAP      string    `json:"imap,omitempty"`
	SMTP      string    `json:"smtp,omitempty"`
	StartedAt time.Time `json:"started_at"`

	DHT      DHTStatus      `json:"dht"`
	Queue    QueueStatus    `json:"queue"`
	Mailbox  MailboxStatus  `json:"mailbox"`
	Delivery DeliveryStatus `json:"delivery"`

	// Alerts are what the owner must see: self-monitoring found another
	// key certified for one of their addresses, a contact's key changed
	// suspiciously, … The CLI shows them loudly.
	Alerts []Alert `json:"alerts"`
	// Warnings are lesser conditions (no DHT peers, republishing failing).
	Warnings []string `json:"warnings"`
}

// DHTStatus is the node's standing in the DHT.
type DHTStatus struct {
	RoutingTable      int       `json:"routing_table"` // peers in the routing table
	Republished       int       `json:"republished"`   // records republished in the last round
	LastRepublish     time.Time `json:"last_republish,omitzero"`
	RepublishFailures int       `json:"republish_failures"` // consecutive failed rounds
}

// QueueStatus counts the outbound queue's items by state.
type QueueStatus struct {
	Pending       int       `json:"pending"`
	Delivered     int       `json:"delivered"`
	Failed        int       `json:"failed"`
	Bounced       int       `json:"bounced"`
	OldestPending time.Time `json:"oldest_pending,omitzero"`
}

// MailboxStatus counts the mailbox's messages.
type MailboxStatus struct {
	Messages int `json:"messages"`
	Unseen   int `json:"unseen"`
}

// DeliveryStatus counts inbound deliveries since the node started.
type DeliveryStatus struct {
	Received   uint64 `json:"received"`   // envelopes accepted and stored
	Duplicates uint64 `json:"duplicates"` // retries of envelopes already stored
	Rejected   uint64 `json:"rejected"`   // refused (size, rate, stamp, …)
	Decrypted  uint64 `json:"decrypted"`  // opened and indexed
}

// Alert is something the node's owner must act on.
type Alert struct {
	Kind    string    `json:"kind"`            // e.g. "foreign_key" (self-monitoring), "contact_conflict"
	Email   string    `json:"email,omitempty"` // the address concerned
	Message string    `json:"message"`         // one sentence for the owner
	At      time.Time `json:"at"`
}

// SendRequest is a message to queue.
type SendRequest struct {
	// To are the addresses to deliver to (the envelope recipients: To,
	// Cc and Bcc of the mail together), email or key addresses.
	To []string `json:"to"`
	// Mail is the complete RFC 5322 message. Its From must be the node's
	// own address; the backend checks.
	Mail []byte `json:"-"`
}

// SendResult is what Send queued.
type SendResult struct {
	Queued []Queued `json:"queued"`
}

// Queued is the message queued for one recipient: each recipient gets its
// own encryption, so its own message ID.
type Queued struct {
	To        string `json:"to"`
	MessageID string `json:"message_id"` // 64 hex digits
	Status    string `json:"status"`     // normally "pending"
}

// Directions of a message.
const (
	DirectionIn  = "in"  // received
	DirectionOut = "out" // sent by this node
)

// Verification statuses of a message (Verification.Status).
const (
	// VerifyVerified: signed by the key the sender's address is bound to
	// (by its domain, or a key address), and that key is current.
	VerifyVerified = "verified"
	// VerifyUnknownKey: validly signed, but by a key this node could not
	// resolve or not yet check against the sender's address.
	VerifyUnknownKey = "unknown_key"
	// VerifySuperseded: signed by a key that has since been replaced by
	// rotation; the message may predate the rotation, or the old key may
	// be in someone else's hands.
	VerifySuperseded = "superseded"
	// VerifyRevoked: signed by a key revoked as compromised or retired.
	VerifyRevoked = "revoked"
	// VerifyMismatch: signed by a valid key that is not the key bound to
	// the From address: a forgery or a hijacked binding.
	VerifyMismatch = "mismatch"
	// VerifyBadSignature: the signature does not verify, or names another
	// recipient (surreptitious forwarding).
	VerifyBadSignature = "bad_signature"
	// VerifyUnsigned: the payload carried no signature.
	VerifyUnsigned = "unsigned"
	// VerifyGateway: delivered by a domain's SMTP gateway; Detail says
	// which and what SPF/DKIM/DMARC found. Never a DSEP-verified sender.
	VerifyGateway = "gateway"
	// VerifySent: a message this node sent (nothing to verify).
	VerifySent = "sent"
	// VerifyUnchecked: validly signed, but the sender's binding could not
	// be checked when it arrived (DNS or the DHT failed).
	VerifyUnchecked = "unchecked"
	// VerifyLocal: written by this node itself (a bounce).
	VerifyLocal = "local"
)

// Verification is what the node found when it checked a message.
type Verification struct {
	Status string `json:"status"`           // one of the Verify… constants
	Signer string `json:"signer,omitempty"` // fingerprint of the signing key (40 hex)
	Detail string `json:"detail,omitempty"` // one sentence: why, and what to do
}

// Summary is a message as listed: metadata only, no body.
type Summary struct {
	ID           string       `json:"id"` // 64 hex digits: SHA-256 of the payload
	Folder       string       `json:"folder"`
	UID          uint32       `json:"uid"` // the IMAP UID in Folder
	From         string       `json:"from"`
	To           []string     `json:"to"`
	Subject      string       `json:"subject"`
	Date         time.Time    `json:"date,omitzero"` // the Date header
	Received     time.Time    `json:"received"`      // when this node stored it
	Size         int64        `json:"size"`          // of the RFC 5322 message
	Flags        []string     `json:"flags"`         // IMAP flags: \Seen, \Flagged, …
	Verification Verification `json:"verification"`
	Direction    string       `json:"direction"` // DirectionIn or DirectionOut
}

// Seen reports whether the \Seen flag is set.
func (s *Summary) Seen() bool {
	for _, f := range s.Flags {
		if f == `\Seen` {
			return true
		}
	}
	return false
}

// Message is one message in full.
type Message struct {
	Summary
	// Body is the RFC 5322 message as received or sent, byte for byte
	// (it travels base64-encoded in JSON: mail need not be UTF-8).
	Body []byte `json:"body"`
	// Raw is the armored OpenPGP message as received; only when asked for,
	// and only for inbound messages.
	Raw string `json:"raw,omitempty"`
}

// States of an outbox entry and of each delegate.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateFailed    = "failed"
	StateBounced   = "bounced"
)

// OutboxEntry is one message in the outbound queue (one recipient).
type OutboxEntry struct {
	ID        string           `json:"id"`        // the message ID, 64 hex digits
	To        string           `json:"to"`        // the address as given
	Recipient string           `json:"recipient"` // the recipient's fingerprint, once resolved
	Created   time.Time        `json:"created"`
	Expires   time.Time        `json:"expires"`
	Status    string           `json:"status"` // one of the State… constants
	Delegates []DelegateStatus `json:"delegates"`
	Receipt   *time.Time       `json:"receipt,omitempty"` // when the signed receipt arrived
}

// DelegateStatus is the delivery towards one of the recipient's delegates.
type DelegateStatus struct {
	Peer        string    `json:"peer"` // libp2p peer ID
	Role        string    `json:"role"` // device, mailbox, gateway
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	NextTry     time.Time `json:"next_try,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
}

// Error is a failure reported to the user: the JSON body of every non-2xx
// response, and what the Client returns for one. A Backend returns one for
// failures the user can act on.
type Error struct {
	// Message says what went wrong, in one sentence without a trailing
	// period, e.g. "no message 3fa9c0d1 in INBOX".
	Message string `json:"message"`
	// Hint says what to do, e.g. "list messages with `dsep inbox`".
	Hint string `json:"hint,omitempty"`
	// Code is the HTTP status: 400 bad request, 404 not found, 409
	// ambiguous, 413 too large, 503 not ready, … A Backend may leave it 0,
	// which is sent as 400.
	Code int `json:"code"`
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given status and hint.
func Errorf(code int, hint, format string, args ...any) *Error {
	return &Error{Code: code, Hint: hint, Message: fmt.Sprintf(format, args...)}
}

// ErrNotRunning is returned (wrapped) by Client methods when nothing
// listens on the socket: no socket file, or a stale one.
var ErrNotRunning = errors.New("control: no node is running")

// ErrAlreadyRunning is returned (wrapped) by Listen when a live node
// already serves the socket.
var ErrAlreadyRunning = errors.New("control: another node is running on this data directory")

// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
var ErrServerClosed = errors.New("control: server closed")
