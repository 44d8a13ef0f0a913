package submit

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

// listener wraps a Serve listener so that the server knows every
// connection from the moment it is accepted (go-smtp registers it only
// later, in the connection's goroutine, which races with its Close).
type listener struct {
	net.Listener
	srv *Server

	closeOnce sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc := &conn{Conn: c, srv: l.srv}
	if !l.srv.track(wc) {
		c.Close()
		return nil, net.ErrClosed
	}
	return wc, nil
}

// Close closes the listener once; later calls return nil (both our
// Close and go-smtp's Shutdown close it).
func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.Listener.Close() })
	return err
}

// conn is an accepted connection.
type conn struct {
	net.Conn
	srv *Server

	// hangUp makes reads return io.EOF, so that go-smtp ends the
	// connection after writing the reply in progress.
	hangUp    atomic.Bool
	closeOnce sync.Once
}

func (c *conn) Read(b []byte) (int, error) {
	if c.hangUp.Load() {
		return 0, io.EOF
	}
	return c.Conn.Read(b)
}

// chunkingLine is go-smtp's EHLO reply line announcing CHUNKING. It is
// never the last line (SIZE follows), and go-smtp writes each reply line
// with its own Write (textproto.Writer.PrintfLine flushes every line).
var chunkingLine = []byte("250-CHUNKING\r\n")

// Write drops the CHUNKING line from the EHLO reply: go-smtp v0.25.1
// always announces CHUNKING, but its BDAT code races (the goroutine that
// runs Session.Data for BDAT reads Conn.dataResult after Data returns,
// while the next BDAT transaction replaces it), so that an aborted
// chunked transfer can hand its result to the next message. Mail clients
// submit with DATA; session.Data refuses BDAT sent regardless.
func (c *conn) Write(b []byte) (int, error) {
	if bytes.Equal(b, chunkingLine) {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() { c.srv.untrack(c) })
	return c.Conn.Close()
}

// authAllowed reports whether a password may be sent over nc: over TLS,
// or from the local machine.
func authAllowed(nc net.Conn) bool {
	if c, ok := nc.(*conn); ok {
		nc = c.Conn
	}
	if _, ok := nc.(*tls.Conn); ok {
		return true
	}
	return isLocal(nc.RemoteAddr())
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

// errorLog passes go-smtp's internal errors (accept and connection
// failures, recovered panics) to the logger. go-smtp never logs commands
// or message text there (its Debug writer, which would, is left unset).
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) { l.print(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.print(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l errorLog) print(msg string) {
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "panic") {
		level = slog.LevelError
	}
	l.log.Log(context.Background(), level, "smtp submission: "+msg)
}
