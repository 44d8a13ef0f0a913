package imap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/store"
	"github.com/dsep-project/dsep/testnet/testtool"
	"github.com/emersion/go-imap/v2/imapclient"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// TestMain fails the package if goroutines (sessions, the store's) outlive
// the tests.
func TestMain(m *testing.M) { testtool.Main(m, 0, 5*time.Second) }

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

// authenticate accepts testUser with testPassword.
func authenticate(_ context.Context, username, password string) error {
	if username == testUser && subtle.ConstantTimeCompare([]byte(password), []byte(testPassword)) == 1 {
		return nil
	}
	return errors.New("wrong username or password")
}

// openStore opens (creating) an encrypted store in dir; the test closes it
// unless it did so itself.
func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testServer is a Server on 127.0.0.1 over a store.
type testServer struct {
	srv  *Server
	st   *store.Store
	addr string
	done chan error
}

// start serves st on a new loopback port until the test ends (or close).
func start(t testing.TB, st *store.Store) *testServer {
	t.Helper()
	srv, err := NewServer(Config{Store: st, Authenticate: authenticate, MaxMessageBytes: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, st: st, addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(l) }()
	t.Cleanup(func() { ts.close(t) })
	return ts
}

// close stops the server and waits for Serve to return.
func (ts *testServer) close(t testing.TB) {
	if ts.srv == nil {
		return
	}
	if err := ts.srv.Close(); err != nil {
		t.Error(err)
	}
	if err := <-ts.done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	ts.srv = nil
}

// testWriter writes to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// newServer starts a server over a new store.
func newServer(t testing.TB) *testServer {
	return start(t, openStore(t, t.TempDir()))
}

// dial connects an imapclient to ts, closed when the test ends.
func dial(t testing.TB, ts *testServer, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(ts.addr, &imapclient.Options{UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// login dials and logs in.
func login(t testing.TB, ts *testServer, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c := dial(t, ts, h)
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

var msgCounter atomic.Int64

// deliver files a message into folder as the node does for inbound mail.
func deliver(t testing.TB, st *store.Store, folder, raw string, flags ...string) store.Meta {
	t.Helper()
	m, err := deliverErr(st, folder, []byte(raw), flags...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func deliverErr(st *store.Store, folder string, raw []byte, flags ...string) (store.Meta, error) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return store.Meta{}, err
	}
	m := store.MetaFromHeader(mail.Header{Header: gomessage.Header{Header: h}})
	m.ID = sha256.Sum256(fmt.Appendf(raw, "\x00%d", msgCounter.Add(1)))
	m.Folder, m.Direction, m.Flags = folder, store.DirectionIn, flags
	m.Verification = store.Verification{Status: "verified"}
	return st.Deliver(context.Background(), m, raw)
}

// simple returns a one-part message.
func simple(n int, from, subject, text string) string {
	return fmt.Sprintf("From: %s\r\nTo: Bob <bob@example.org>\r\nSubject: %s\r\n"+
		"Date: Mon, 02 Feb 2026 10:%02d:00 +0100\r\nMessage-Id: <%d@example.org>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", from, subject, n%60, n, text)
}

// multipart is a message with a text part and an attachment.
const multipart = "From: =?utf-8?q?Al=C3=AFce?= <alice@example.org>\r\n" +
	"Sender: Secretary <sec@example.org>\r\n" +
	"Reply-To: replies@example.org\r\n" +
	"To: Bob <bob@example.org>, carol@example.net\r\n" +
	"Cc: dave@example.org\r\n" +
	"Subject: Quarterly report\r\n" +
	"Date: Tue, 03 Feb 2026 09:00:00 +0000\r\n" +
	"Message-Id: <report@example.org>\r\n" +
	"In-Reply-To: <question@example.org>\r\n" +
	"X-Custom: needle-in-header\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Here is the report. Caf=C3=A9 budget attached.\r\n" +
	"--b1\r\n" +
	"Content-Type: application/pdf; name=\"report.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"report.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n" +
	"--b1--\r\n"

// rawConn is a bare TCP connection to the server for hand-written commands.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, ts *testServer) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	if g := rc.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return rc
}

func (rc *rawConn) line() string {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := rc.br.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("reading a response: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends a line and returns the untagged lines and the tagged one.
func (rc *rawConn) cmd(tag, line string) (untagged []string, tagged string) {
	rc.t.Helper()
	if _, err := fmt.Fprintf(rc.c, "%s %s\r\n", tag, line); err != nil {
		rc.t.Fatal(err)
	}
	for {
		l := rc.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}
