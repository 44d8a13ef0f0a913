// Package imap serves a node's mailbox (node/store) to mail clients over
// IMAP4rev1 (RFC 3501), with go-imap's imapserver doing the protocol, plus
// IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851), SPECIAL-USE (RFC
// 6154), NAMESPACE (RFC 2342), CHILDREN (RFC 3348), ESEARCH (RFC 4731),
// BINARY (RFC 3516), UNSELECT, ENABLE, UTF8=ACCEPT, LITERAL- and
// APPENDLIMIT.
//
// # Security
//
// The server speaks plain TCP, without TLS, and lets clients send their
// password in the clear (LOGIN, AUTHENTICATE PLAIN): that is safe only
// because it listens on the loopback interface, which no other machine can
// reach. Serve refuses any other listener unless Config.AllowRemote says
// otherwise (for a network the operator trusts as much as loopback).
// Passwords are checked by Config.Authenticate, which also slows down
// guessing; nothing here logs them.
//
// # Folders
//
// Every store folder is an IMAP mailbox; '/' separates hierarchy levels.
// INBOX, Sent and Rejected (the store's system folders) cannot be deleted
// or renamed. NewServer creates Drafts, Trash, Junk and Archive if they are
// missing; the mailboxes named Sent, Drafts, Trash, Junk and Archive carry
// the special-use attributes \Sent, \Drafts, \Trash, \Junk and \Archive
// (always, not only for LIST RETURN (SPECIAL-USE)). Rejected — mail that
// failed the node's checks but that the user should be able to look at —
// is listed as an ordinary mailbox. Subscriptions are not kept: every
// mailbox is subscribed, and SUBSCRIBE/UNSUBSCRIBE succeed without effect.
//
// # Consistency
//
// UIDs and UIDVALIDITY are the store's and survive restarts. Every session
// keeps its client's view of the selected mailbox (the UIDs in sequence
// order) and learns of every change, its own and other sessions' and the
// node's, from the store's change notifications (store.Subscribe), which
// come in commit order once the change is durable. It tells its client
// (EXISTS, EXPUNGE, FETCH FLAGS) at the end of each command and at once
// while the client IDLEs; EXPUNGE is held back during FETCH, STORE and
// SEARCH, as RFC 3501 requires, so sequence numbers never shift under a
// client's feet. A mailbox opened with EXAMINE is read-only: STORE and
// MOVE get NO [READ-ONLY], EXPUNGE and CLOSE remove nothing, and reading a
// body sets no \Seen. Message lists (FETCH of ENVELOPE, FLAGS, INTERNALDATE,
// RFC822.SIZE, UID) read only the store's metadata records; bodies are read
// for BODY[...], BODYSTRUCTURE, BINARY and SEARCH BODY/TEXT/HEADER of a
// field the metadata does not keep.
package imap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	// Charsets beyond UTF-8 for decoding headers and bodies (ENVELOPE
	// names, SEARCH).
	_ "github.com/emersion/go-message/charset"
)

// DefaultMaxMessageBytes is the default of Config.MaxMessageBytes.
const DefaultMaxMessageBytes = 25 << 20

// Config configures a Server. Store and Authenticate are required.
type Config struct {
	// Store is the node's mailbox. The Server must be closed before it.
	Store *store.Store
	// Authenticate checks a username and password (the node's local
	// account) and returns nil if they are right; the node slows down
	// failures itself. Required.
	Authenticate func(ctx context.Context, username, password string) error
	// Logger receives errors and warnings (never a password or a message).
	// nil: silent.
	Logger *slog.Logger
	// MaxMessageBytes bounds a message given by APPEND (default 25 MiB,
	// at most store.MaxBodySize).
	MaxMessageBytes int64
	// AllowRemote lets Serve use a listener on an address other than
	// loopback. Passwords then cross that network in the clear: only for
	// a network as private as loopback.
	AllowRemote bool
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("imap: server closed")

// delim separates the levels of a mailbox name.
const delim = '/'

// specialUse gives the special-use attribute of mailboxes by name.
var specialUse = map[string]imap.MailboxAttr{
	store.FolderSent: imap.MailboxAttrSent,
	"Drafts":         imap.MailboxAttrDrafts,
	"Trash":          imap.MailboxAttrTrash,
	"Junk":           imap.MailboxAttrJunk,
	"Archive":        imap.MailboxAttrArchive,
}

// caps are the capabilities the server announces besides those imapserver
// adds by itself (SASL-IR, LITERAL-, IDLE, UNSELECT, ENABLE, UTF8=ACCEPT,
// AUTH=PLAIN, APPENDLIMIT).
var caps = imap.CapSet{
	imap.CapIMAP4rev1:  {},
	imap.CapNamespace:  {},
	imap.CapUIDPlus:    {},
	imap.CapMove:       {},
	imap.CapSpecialUse: {},
	imap.CapChildren:   {},
	imap.CapESearch:    {},
	imap.CapBinary:     {},
}

// Server is an IMAP server over a node's mailbox.
type Server struct {
	cfg  Config
	st   *store.Store
	log  *slog.Logger
	imap *imapserver.Server

	// ctx ends when Close is called; sessions derive theirs from it.
	ctx    context.Context
	cancel context.CancelFunc
	unsub  func()

	// mu guards views and closed. The store's change subscriber takes it
	// (and then a view's mu): never hold it while calling the store.
	mu     sync.Mutex
	views  map[uint32]map[*view]struct{} // selected mailboxes, by UIDVALIDITY
	closed bool

	sessions  sync.WaitGroup // one per session, until its Close
	closeOnce sync.Once
	closeErr  error
}

// NewServer checks cfg, creates the mailboxes Drafts, Trash, Junk and
// Archive if they are missing, and returns a server ready to Serve.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("imap: no mail store given")
	}
	if cfg.Authenticate == nil {
		return nil, errors.New("imap: no Authenticate function given")
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	cfg.MaxMessageBytes = min(cfg.MaxMessageBytes, store.MaxBodySize)
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"Drafts", "Trash", "Junk", "Archive"} {
		if _, err := cfg.Store.CreateFolder(ctx, name); err != nil && !errors.Is(err, store.ErrFolderExists) {
			return nil, fmt.Errorf("imap: creating the %s mailbox: %w", name, err)
		}
	}
	s := &Server{cfg: cfg, st: cfg.Store, log: lg, views: map[uint32]map[*view]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       caps,
		Logger:     logAdapter{lg},
		// Passwords in the clear: Serve insists on loopback (see the
		// package doc).
		InsecureAuth: true,
	})
	s.unsub = s.st.Subscribe(s.onChanges)
	return s, nil
}

// Serve accepts IMAP connections on l until Close, and returns
// ErrServerClosed then. Unless Config.AllowRemote is set, it refuses (at
// once, with an error saying why) a listener whose address is neither
// loopback nor a unix socket.
func (s *Server) Serve(l net.Listener) error {
	if !s.cfg.AllowRemote && !isLocal(l.Addr()) {
		return fmt.Errorf("imap: refusing to serve IMAP on %s: without TLS, passwords would cross the network in the clear; listen on 127.0.0.1 or ::1 (or set AllowRemote for a network as private as loopback)", l.Addr())
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	err := s.imap.Serve(l)
	s.mu.Lock()
	closed = s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	if err != nil {
		return fmt.Errorf("imap: %w", err)
	}
	return nil
}

// isLocal reports whether a is a loopback TCP address or a unix socket.
func isLocal(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// Close stops the listeners, ends every connection, and waits until every
// session has finished. Closing twice is not an error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		err := s.imap.Close()
		s.sessions.Wait()
		s.unsub()
		if err != nil {
			s.closeErr = fmt.Errorf("imap: closing: %w", err)
		}
	})
	return s.closeErr
}

// newSession is imapserver's NewSession.
func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "The server is shutting down"}
	}
	s.sessions.Add(1)
	sess := &session{srv: s, conn: c}
	sess.ctx = store.WithOrigin(s.ctx, sess)
	return sess, nil, nil
}

// register makes v receive the changes of the mailbox of UIDVALIDITY uv.
func (s *Server) register(v *view, uv uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.views[uv]
	if m == nil {
		m = map[*view]struct{}{}
		s.views[uv] = m
	}
	m[v] = struct{}{}
}

func (s *Server) unregister(v *view, uv uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.views[uv], v)
	if len(s.views[uv]) == 0 {
		delete(s.views, uv)
	}
}

// onChanges is the store's change subscriber: it queues each change for
// the sessions that have its mailbox selected. It runs on the store's
// committer and must not block.
func (s *Server) onChanges(changes []store.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.views) == 0 {
		return
	}
	for _, c := range changes {
		for v := range s.views[c.UIDValidity] {
			v.queue(c)
		}
	}
}

// logAdapter gives imapserver's log lines to slog: errors handling a
// command at Warn (panics at Error), connection noise at Debug.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	switch {
	case strings.HasPrefix(msg, "panic"):
		a.l.Error("imap: " + msg)
	case strings.HasPrefix(msg, "failed to read command"), strings.HasPrefix(msg, "failed to write"):
		a.l.Debug("imap: " + msg)
	default:
		a.l.Warn("imap: " + msg)
	}
}
