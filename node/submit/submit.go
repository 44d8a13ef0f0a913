// Package submit is the node's local mail submission server: the SMTP
// endpoint a mail client (Thunderbird, mutt, Apple Mail, Python's smtplib)
// sends through, by default on 127.0.0.1:1587.
//
// It implements message submission (RFC 6409) over SMTP (RFC 5321) with
// go-smtp: AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login) mechanisms, SIZE (RFC 1870), 8BITMIME,
// SMTPUTF8 (RFC 6531), PIPELINING and ENHANCEDSTATUSCODES; not CHUNKING
// (BDAT), whose implementation in go-smtp v0.25.1 races when a transfer
// is aborted. No mail is accepted before AUTH (MAIL gets 530).
// The envelope sender and the message's From (and Sender) must be the
// identity's own addresses; each recipient is resolved at RCPT time, so a
// mail client learns at once that an address has no DSEP key; Bcc and
// Resent-Bcc header fields are removed before the message is handed to
// the node, which encrypts one copy per recipient. The 250 after DATA is
// sent only once the node has made the message durable.
//
// Passwords cross the connection in clear text (there is no TLS), which
// is acceptable only because the server is for the local machine: Serve
// refuses a listener that is not on loopback unless Config.AllowRemote is
// set, and even then AUTH is offered only on connections from a loopback
// address or over TLS (a listener made with tls.NewListener).
package submit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Backend is what the node provides. Its methods are called concurrently
// from many sessions. Every ctx is cancelled when the server is closed.
type Backend interface {
	// Authenticate checks the local account's username and password and
	// returns nil when they are right. The node slows down failures
	// itself; the server also closes a connection after three failures.
	// An error is logged, never sent to the client, and must not contain
	// the password.
	Authenticate(ctx context.Context, username, password string) error

	// OwnAddress reports whether addr (an email or key address) is one of
	// the identity's, usable in MAIL FROM and in the From and Sender
	// header fields.
	OwnAddress(addr string) bool

	// CheckRecipient resolves rcpt now: nil if it can be delivered over
	// DSEP; an error for which IsPermanent(err) is true when it never can
	// (answered with 550 5.1.1 and the error's text, which should say why
	// and what to do); any other error when it failed for now (answered
	// with 451 4.4.3, so the mail client tries again later; the text is
	// logged, not sent).
	CheckRecipient(ctx context.Context, rcpt string) error

	// Submit queues mail for each of rcpts (distinct, each accepted by
	// CheckRecipient in this session), each getting its own encrypted
	// copy, and files one copy in Sent; it returns once everything is
	// durable. from is the MAIL FROM address. The mail has already had its
	// Bcc and Resent-Bcc header fields removed, and its From is an own
	// address. An error makes the client keep the message: a permanent one
	// (IsPermanent) is answered with 554 and its text, any other with 451.
	Submit(ctx context.Context, from string, rcpts []string, mail []byte) error
}

// ErrPermanent marks a failure that retrying cannot cure. The node marks
// its errors with Permanent (or wraps ErrPermanent with %w); IsPermanent
// tests for it.
var ErrPermanent = errors.New("submit: permanent failure")

// ErrServerClosed is returned by Serve after Close or Shutdown.
var ErrServerClosed = errors.New("submit: server closed")

// Permanent returns err marked as permanent: IsPermanent reports true for
// it and for any error wrapping it; its text is err's text. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, is ErrPermanent
// or was marked with Permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Defaults for the zero values of Config.
const (
	DefaultDomain          = "localhost"
	DefaultMaxMessageBytes = 25 << 20
	DefaultMaxRecipients   = 100
	DefaultReadTimeout     = 5 * time.Minute
	DefaultWriteTimeout    = time.Minute
)

// MaxLineLength is the longest line, CRLF included, that the server reads,
// in commands and in message text alike (go-smtp has a single limit).
//
// RFC 5322 caps message lines at 1,000 octets, but real mail clients
// exceed that (unencoded HTML, long headers from scripts), and a message
// submitted here travels inside an encrypted DSEP payload, not through
// further SMTP hops, so a long line harms nobody; the gateway that sends
// DSEP mail on by SMTP must encode or fold such lines itself. go-smtp's
// default of 2,000 octets would refuse those messages permanently. The
// limit remains only to bound the memory a command line can take (go-smtp
// buffers a whole command line): 64 KiB is 64 times RFC 5321's line
// length and far beyond anything a working client sends. A longer line is
// answered with 554 5.6.0 and the connection is closed (go-smtp cannot
// resynchronise after one).
const MaxLineLength = 64 << 10

// maxAuthFailures is how many failed AUTH attempts a connection gets; the
// last failure closes it.
const maxAuthFailures = 3

// Config configures a Server. Its zero value, with a Backend, works.
type Config struct {
	// Backend is the node. Required.
	Backend Backend

	// Domain is the name in the greeting and the EHLO reply. Default
	// "localhost".
	Domain string

	// MaxMessageBytes is the size limit of a message, as the client sends
	// it after dot-unstuffing; announced in the EHLO reply (SIZE), refused
	// at MAIL when the client declares a larger SIZE= and at DATA when more
	// arrives (552 5.3.4). go-smtp's DATA reader refuses a message of
	// exactly this size too: it needs one more octet to see the end.
	// Default 25 MiB; the node should pass its max_message_size.
	MaxMessageBytes int64

	// MaxRecipients is the most RCPT TO accepted per message; more are
	// answered with 452 4.5.3 (the client sends the rest in another
	// transaction). Default 100.
	MaxRecipients int

	// ReadTimeout bounds the wait for each command line, and the transfer
	// of a whole message from its DATA command on. Default 5 minutes
	// (RFC 5321 §4.5.3.2).
	ReadTimeout time.Duration

	// WriteTimeout bounds the writing of each reply. Default 1 minute.
	WriteTimeout time.Duration

	// Logger receives connection, authentication and submission events,
	// never a password or message content. nil is silent.
	Logger *slog.Logger

	// AllowRemote lets Serve accept a listener that is not on loopback.
	// Default false: Serve refuses one, because passwords travel in clear
	// text. Even with AllowRemote, AUTH is offered only to connections
	// from a loopback address or over TLS.
	AllowRemote bool
}

// Server is a submission server. Create it with NewServer, give it
// listeners with Serve, stop it with Shutdown or Close.
type Server struct {
	be          Backend
	log         *slog.Logger
	maxBytes    int64
	allowRemote bool
	smtp        *smtp.Server

	// ctx is the parent of every Backend call's context; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error

	// serving counts running Serve calls; calls counts Backend calls in
	// progress. Both are added to only under mu while the server is open,
	// so Close's Wait never races an Add.
	serving sync.WaitGroup
	calls   sync.WaitGroup

	mu sync.Mutex
	// The fields below are guarded by mu.
	stopAccept bool                   // Shutdown or Close began: no new listener or connection
	closed     bool                   // Close began: no new Backend call
	listeners  map[*listener]struct{} // listeners of running Serve calls
	conns      map[*conn]struct{}     // open connections
	drained    chan struct{}          // closed by untrack when conns empties during Shutdown
}

// NewServer returns a server for cfg. It starts nothing.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("submit: Config.Backend is nil")
	}
	if cfg.MaxMessageBytes < 0 || cfg.MaxRecipients < 0 || cfg.ReadTimeout < 0 || cfg.WriteTimeout < 0 {
		return nil, errors.New("submit: negative limit or timeout in Config (0 means the default)")
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if strings.ContainsFunc(cfg.Domain, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return nil, fmt.Errorf("submit: Config.Domain %q is not a host name", cfg.Domain)
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients == 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	s := &Server{
		be:          cfg.Backend,
		log:         log,
		maxBytes:    cfg.MaxMessageBytes,
		allowRemote: cfg.AllowRemote,
		listeners:   make(map[*listener]struct{}),
		conns:       make(map[*conn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Domain
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = MaxLineLength
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.EnableSMTPUTF8 = true // addresses are canonicalised by the node (NFC local parts, IDNA domains)
	// go-smtp would refuse AUTH without TLS. The session decides per
	// connection instead: AUTH only from loopback or over TLS (see
	// session.authAllowed).
	srv.AllowInsecureAuth = true
	srv.ErrorLog = errorLog{log}
	s.smtp = srv
	return s, nil
}

// Serve accepts connections on l and serves each in its own goroutine
// until l fails or the server is closed; it always closes l. Unless
// Config.AllowRemote is set it refuses, at once, a listener that is not a
// loopback TCP address or a unix socket. After Shutdown or Close it
// returns ErrServerClosed. Serve may be called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	if !s.allowRemote && !isLocal(l.Addr()) {
		l.Close()
		return fmt.Errorf("submit: refusing to serve SMTP submission on %s: it is not a loopback address, and passwords would cross the network in clear text; listen on 127.0.0.1 (or set AllowRemote and serve a TLS listener)", l.Addr())
	}
	wl := &listener{Listener: l, srv: s}
	s.mu.Lock()
	if s.stopAccept {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[wl] = struct{}{}
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()

	s.log.Info("smtp submission: listening", "addr", l.Addr().String())
	err := s.smtp.Serve(wl)
	wl.Close()

	s.mu.Lock()
	delete(s.listeners, wl)
	stopped := s.stopAccept
	s.mu.Unlock()
	if stopped {
		return ErrServerClosed
	}
	if err == nil {
		err = ErrServerClosed
	}
	return err
}

// Shutdown stops accepting connections and waits for the open ones to end
// (the clients QUIT) until ctx is done; then it closes the server as Close
// does, cutting what remains, and returns ctx's error if it had to.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopAccept = true
	ls := make([]*listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	var drained chan struct{}
	if len(s.conns) > 0 {
		if s.drained == nil {
			s.drained = make(chan struct{})
		}
		drained = s.drained
	}
	s.mu.Unlock()

	for _, l := range ls {
		l.Close()
	}
	var ctxErr error
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
			ctxErr = ctx.Err()
		}
	}
	return errors.Join(ctxErr, s.Close())
}

// Close closes every listener and connection at once, cancels the
// Backend calls in progress (a message whose Submit is cut short is
// answered with 451, or not at all, never with 250), and waits until every
// connection's goroutine and Backend call has returned. Calling it again
// returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Server) close() error {
	s.mu.Lock()
	s.stopAccept, s.closed = true, true
	ls := make([]*listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()

	s.cancel()
	var errs []error
	for _, l := range ls {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	// Once every Serve has returned, go-smtp starts no more connection
	// goroutines, so its Shutdown below waits for all of them.
	s.serving.Wait()
	for _, c := range cs {
		c.Conn.Close() // the connection's goroutine fails its next read or write and ends
	}
	if err := s.smtp.Shutdown(context.Background()); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		errs = append(errs, err)
	}
	// go-smtp runs Data for BDAT in a goroutine that Shutdown does not
	// wait for (Data refuses BDAT at once, but belt and braces).
	s.calls.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("submit: closing: %w", errors.Join(errs...))
	}
	return nil
}

// begin registers a Backend call; ok is false once Close began. The
// caller calls end when the call has returned.
func (s *Server) begin() (end func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	s.calls.Add(1)
	return s.calls.Done, true
}

// track registers a new connection; false once Shutdown or Close began.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopAccept {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// untrack forgets a closed connection.
func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if len(s.conns) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}
