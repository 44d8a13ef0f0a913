package submit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Replies that do not depend on the request. Texts say what happened and
// what to do, and nothing of the node's internals.
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: log in with your dsep mail client password (AUTH PLAIN or LOGIN)"}
	errAuthFailed = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication failed: wrong username or password (dsep client config shows the username; dsep client password sets a new password)"}
	errAuthClosing = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication failed: too many failed attempts, closing the connection"}
	errAuthIdentity = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication failed: the authorization identity must be empty or the username"}
	errAuthNeedsTLS = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11},
		Message: "Authentication is accepted only from this machine or over TLS"}
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message: "The dsep node is shutting down; try again later"}
	errNestedMail = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: "Nested MAIL command: finish or RSET the current message first"}
	errNoTransaction = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: "Send MAIL FROM and RCPT TO first"}
	errLongLine = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: fmt.Sprintf("The message has a line longer than %d octets; have the mail client encode it (quoted-printable or base64)", MaxLineLength)}
	errReadFailed = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Reading the message failed; try again"}
	errNoBDAT = &smtp.SMTPError{Code: 502, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: "BDAT is not offered here (no CHUNKING); send the message with DATA"}
	errNotQueued = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "The message was not queued (local error, see the dsep log); try again later"}
)

// session is one connection's SMTP state. go-smtp calls its methods from
// the connection's goroutine, except Data for a BDAT transfer (its own
// goroutine, while RSET may call Reset; Data refuses BDAT at once) and
// Logout (also from Close).
type session struct {
	srv    *Server
	conn   *conn // nil if the connection did not come from Serve
	remote string
	// authOK: a password may be sent on this connection (see authAllowed).
	authOK bool

	mu sync.Mutex
	// The fields below are guarded by mu.
	authed   bool     // AUTH succeeded
	failures int      // failed AUTH attempts
	from     string   // MAIL FROM of the current message
	hasFrom  bool     // a MAIL FROM was accepted and not yet reset
	rcpts    []string // distinct accepted recipients of the current message
}

var _ smtp.AuthSession = (*session)(nil)

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	nc := c.Conn()
	ss := &session{
		srv:    s,
		remote: nc.RemoteAddr().String(),
		authOK: authAllowed(nc),
	}
	ss.conn, _ = nc.(*conn)
	return ss, nil
}

func (ss *session) logger() *slog.Logger {
	return ss.srv.log.With("remote", ss.remote)
}

// AuthMechanisms lists the SASL mechanisms announced in EHLO: none when a
// password may not be sent on this connection.
func (ss *session) AuthMechanisms() []string {
	if !ss.authOK {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !ss.authOK {
		return nil, errAuthNeedsTLS
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return errAuthIdentity
			}
			return ss.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: ss.authenticate}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authenticate asks the backend, counts failures, and hangs up after the
// last allowed one.
func (ss *session) authenticate(username, password string) error {
	ss.mu.Lock()
	failures := ss.failures
	ss.mu.Unlock()
	if failures >= maxAuthFailures {
		// Only commands pipelined before the hang-up get here.
		return errAuthClosing
	}
	end, ok := ss.srv.begin()
	if !ok {
		return errShuttingDown
	}
	err := ss.srv.be.Authenticate(ss.srv.ctx, username, password)
	end()
	if err == nil {
		ss.mu.Lock()
		ss.authed = true
		ss.mu.Unlock()
		ss.logger().Info("smtp submission: authenticated", "user", username)
		return nil
	}
	ss.mu.Lock()
	ss.failures++
	failures = ss.failures
	ss.mu.Unlock()
	// The backend's error may say why; it is logged, never sent (it must
	// not tell a guesser which half was wrong). Neither is the username
	// logged: people type their password into the username field.
	ss.logger().Warn("smtp submission: authentication failed", "failures", failures, "err", err)
	if failures >= maxAuthFailures {
		if ss.conn != nil {
			ss.conn.hangUp.Store(true)
		}
		return errAuthClosing
	}
	return errAuthFailed
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.mu.Lock()
	authed, hasFrom := ss.authed, ss.hasFrom
	ss.mu.Unlock()
	if !authed {
		return errAuthRequired
	}
	if hasFrom {
		return errNestedMail
	}
	if !ss.srv.be.OwnAddress(from) {
		ss.logger().Info("smtp submission: refused sender", "from", from)
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: replyText(fmt.Sprintf("<%s> is not one of your addresses: send from your own DSEP address (check the account's email address in the mail client)", from))}
	}
	ss.mu.Lock()
	ss.from, ss.hasFrom, ss.rcpts = from, true, nil
	ss.mu.Unlock()
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.mu.Lock()
	authed, hasFrom, dup := ss.authed, ss.hasFrom, slices.Contains(ss.rcpts, to)
	ss.mu.Unlock()
	if !authed {
		return errAuthRequired
	}
	if !hasFrom {
		return errNoTransaction
	}
	if dup {
		return nil // one copy per recipient, however often it is named
	}
	end, ok := ss.srv.begin()
	if !ok {
		return errShuttingDown
	}
	err := ss.srv.be.CheckRecipient(ss.srv.ctx, to)
	end()
	if err != nil {
		if IsPermanent(err) {
			ss.logger().Info("smtp submission: refused recipient", "rcpt", to, "reason", err)
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
				Message: replyText(fmt.Sprintf("<%s>: %v", to, err))}
		}
		ss.logger().Warn("smtp submission: recipient lookup failed", "rcpt", to, "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3},
			Message: replyText(fmt.Sprintf("<%s>: cannot look up the recipient's DSEP key right now; try again later", to))}
	}
	ss.mu.Lock()
	ss.rcpts = append(ss.rcpts, to)
	ss.mu.Unlock()
	return nil
}

func (ss *session) Data(r io.Reader) error {
	ss.mu.Lock()
	authed, hasFrom, from, rcpts := ss.authed, ss.hasFrom, ss.from, slices.Clone(ss.rcpts)
	ss.mu.Unlock()
	if !authed {
		return errAuthRequired
	}
	if !hasFrom || len(rcpts) == 0 {
		return errNoTransaction
	}
	if _, ok := r.(*io.PipeReader); ok {
		// go-smtp hands BDAT chunks through a pipe, DATA through its own
		// reader. Refusing at once, before reading, keeps go-smtp's racy
		// BDAT code to its simplest path (see conn.Write).
		return errNoBDAT
	}

	// go-smtp's reader stops at MaxMessageBytes (ErrDataTooLarge); the
	// LimitReader is a backstop.
	mail, err := io.ReadAll(io.LimitReader(r, ss.srv.maxBytes+1))
	switch {
	case errors.Is(err, smtp.ErrTooLongLine):
		ss.logger().Info("smtp submission: refused message with a line over the limit", "from", from)
		return errLongLine
	case err != nil:
		var serr *smtp.SMTPError
		if errors.As(err, &serr) {
			ss.logger().Info("smtp submission: refused message", "from", from, "code", serr.Code, "reason", serr.Message)
			return serr // 552 for a message over the size limit
		}
		if errors.Is(err, smtp.ErrDataReset) {
			return err // BDAT aborted by RSET or a closed connection: nobody reads the reply
		}
		ss.logger().Warn("smtp submission: reading the message failed", "from", from, "err", err)
		return errReadFailed
	case int64(len(mail)) > ss.srv.maxBytes:
		return smtp.ErrDataTooLarge
	}

	out, removed, err := prepare(mail, ss.srv.be.OwnAddress)
	if err != nil {
		// The reply may quote the header; the log gets only the code.
		var serr *smtp.SMTPError
		if errors.As(err, &serr) {
			ss.logger().Info("smtp submission: refused message", "from", from, "code", serr.Code,
				"enhanced_code", fmt.Sprintf("%d.%d.%d", serr.EnhancedCode[0], serr.EnhancedCode[1], serr.EnhancedCode[2]))
		}
		return err
	}

	end, ok := ss.srv.begin()
	if !ok {
		return errShuttingDown
	}
	err = ss.srv.be.Submit(ss.srv.ctx, from, rcpts, out)
	end()
	if err != nil {
		if IsPermanent(err) {
			ss.logger().Warn("smtp submission: message refused by the node", "from", from, "err", err)
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 3, 0},
				Message: replyText("The message cannot be sent: " + err.Error())}
		}
		ss.logger().Error("smtp submission: queueing the message failed", "from", from, "err", err)
		if ss.srv.ctx.Err() != nil {
			return errShuttingDown
		}
		return errNotQueued
	}
	ss.logger().Info("smtp submission: message queued", "from", from, "recipients", len(rcpts), "bytes", len(out), "bcc_fields_removed", removed)
	ss.logger().Debug("smtp submission: message recipients", "rcpts", rcpts)
	return nil
}

// Reset discards the current message's envelope (RSET, EHLO, the end of
// DATA). Authentication stays.
func (ss *session) Reset() {
	ss.mu.Lock()
	ss.from, ss.hasFrom, ss.rcpts = "", false, nil
	ss.mu.Unlock()
}

// Logout ends the session; it holds nothing to release.
func (ss *session) Logout() error {
	ss.Reset()
	return nil
}

// loginServer is the server side of the LOGIN SASL mechanism
// (draft-murchison-sasl-login), which go-sasl provides only as a client.
// Outlook and Apple Mail still use it where PLAIN would do. The username
// may come as the initial response ("AUTH LOGIN dXNlcg==").
type loginServer struct {
	auth     func(username, password string) error
	state    int // 0 nothing yet, 1 asked for the username, 2 asked for the password, 3 done
	username string
}

func (a *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch a.state {
	case 0:
		if response == nil {
			a.state = 1
			return []byte("Username:"), false, nil
		}
		a.username, a.state = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		a.username, a.state = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		a.state = 3
		return nil, true, a.auth(a.username, string(response))
	}
	return nil, true, sasl.ErrUnexpectedClientResponse
}

// replyText makes s safe as SMTP reply text: one line of printable ASCII
// (anything else becomes '?', line breaks spaces), at most 400 octets.
func replyText(s string) string {
	const max = 400
	b := make([]byte, 0, min(len(s), max+3))
	for _, r := range s {
		if len(b) >= max {
			return string(append(b, "..."...))
		}
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			b = append(b, ' ')
		case r < ' ' || r > '~':
			b = append(b, '?')
		default:
			b = append(b, byte(r))
		}
	}
	return string(b)
}
