package submit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsep-project/dsep/testnet/testtool"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func TestMain(m *testing.M) { testtool.Main(m, 0, 5*time.Second) }

// The local account and the identity's addresses in the fake node.
const (
	testUser   = "alice"
	testPass   = "correct horse battery staple"
	aliceEmail = "alice@example.org"
	// aliceKey is a key address: z-base-32 of a 20-byte fingerprint.
	aliceKey = "ybndrfg8ejkmcpqxot1uwisza345h769@dsep.alt"
)

// submission is what the fake node was given by one Submit.
type submission struct {
	from  string
	rcpts []string
	mail  []byte
}

// fakeBackend is the node, with a deterministic resolver: addresses at
// example.org and dsep.alt resolve, at nodsep.example they never will,
// at flaky.example the lookup fails for now.
type fakeBackend struct {
	mu sync.Mutex
	// The fields below are guarded by mu.
	submitted  []submission
	authCalls  int
	authOK     int
	submitErr  error                           // returned by Submit instead of queueing
	submitWait func(ctx context.Context) error // if set, Submit calls it first
}

var _ Backend = (*fakeBackend)(nil)

func (b *fakeBackend) Authenticate(ctx context.Context, username, password string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.authCalls++
	if username == testUser && password == testPass {
		b.authOK++
		return nil
	}
	return errors.New("wrong password for the local account")
}

func (b *fakeBackend) OwnAddress(addr string) bool {
	addr = strings.ToLower(addr)
	return addr == aliceEmail || addr == aliceKey
}

func (b *fakeBackend) CheckRecipient(ctx context.Context, rcpt string) error {
	_, domain, _ := strings.Cut(rcpt, "@")
	switch strings.ToLower(domain) {
	case "example.org", "dsep.alt":
		return nil
	case "nodsep.example":
		return Permanent(fmt.Errorf("no DSEP key: nodsep.example publishes no _dsep TXT record (mail to non-DSEP addresses needs the domain's gateway)"))
	case "flaky.example":
		return fmt.Errorf("dht: looking up %s: context deadline exceeded", rcpt)
	}
	return Permanent(fmt.Errorf("unknown test domain %q", domain))
}

func (b *fakeBackend) Submit(ctx context.Context, from string, rcpts []string, mail []byte) error {
	b.mu.Lock()
	wait, serr := b.submitWait, b.submitErr
	b.mu.Unlock()
	if wait != nil {
		if err := wait(ctx); err != nil {
			return err
		}
	}
	if serr != nil {
		return serr
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.submitted = append(b.submitted, submission{from, slices.Clone(rcpts), bytes.Clone(mail)})
	return nil
}

func (b *fakeBackend) submissions() []submission {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.submitted)
}

// testServer runs a server for b on a loopback port until the test ends.
func testServer(t *testing.T, cfg Config) (addr string, srv *Server) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String(), srv
}

// tWriter sends log lines to t.Log (only shown on failure or with -v).
type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// dial connects a go-smtp client, authenticated with PLAIN unless auth
// is nil, and closes it when the test ends.
func dial(t *testing.T, addr string, auth sasl.Client) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			t.Fatalf("AUTH: %v", err)
		}
	}
	return c
}

func plainAuth() sasl.Client { return sasl.NewPlainClient("", testUser, testPass) }

// wantSMTPError fails unless err is an SMTP reply with code and enhanced
// code (ec "" = any), whose text contains each of texts.
func wantSMTPError(t *testing.T, err error, code int, ec string, texts ...string) {
	t.Helper()
	var serr *smtp.SMTPError
	if !errors.As(err, &serr) {
		t.Fatalf("got %v, want SMTP error %d %s", err, code, ec)
	}
	got := fmt.Sprintf("%d.%d.%d", serr.EnhancedCode[0], serr.EnhancedCode[1], serr.EnhancedCode[2])
	if serr.Code != code || (ec != "" && got != ec) {
		t.Fatalf("got %d %s %q, want %d %s", serr.Code, got, serr.Message, code, ec)
	}
	for _, s := range texts {
		if !strings.Contains(serr.Message, s) {
			t.Errorf("reply %d %q does not say %q", serr.Code, serr.Message, s)
		}
	}
}

// message builds a CRLF message from header lines and a body.
func message(body string, header ...string) []byte {
	return []byte(strings.Join(header, "\r\n") + "\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n"))
}

// rawClient speaks SMTP line by line over TCP, for what a real client
// would never send.
type rawClient struct {
	t *testing.T
	c net.Conn
	r *textproto.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawClient{t: t, c: c, r: textproto.NewReader(bufio.NewReader(c))}
	if code, msg := rc.read(); code != 220 {
		t.Fatalf("greeting %d %q", code, msg)
	}
	return rc
}

// send writes s as is.
func (rc *rawClient) send(s string) {
	rc.t.Helper()
	if _, err := rc.c.Write([]byte(s)); err != nil {
		rc.t.Fatalf("writing %q: %v", s, err)
	}
}

// read reads one (possibly multi-line) reply.
func (rc *rawClient) read() (int, string) {
	rc.t.Helper()
	code, msg, err := rc.r.ReadResponse(0)
	if err != nil {
		var perr textproto.ProtocolError
		if !errors.As(err, &perr) {
			rc.t.Fatalf("reading a reply: %v", err)
		}
	}
	return code, msg
}

// cmd sends line and reads the reply.
func (rc *rawClient) cmd(line string) (int, string) {
	rc.t.Helper()
	rc.send(line + "\r\n")
	return rc.read()
}

// expect sends line and fails unless the reply has code.
func (rc *rawClient) expect(line string, code int) string {
	rc.t.Helper()
	got, msg := rc.cmd(line)
	if got != code {
		rc.t.Fatalf("%q: got %d %q, want %d", line, got, msg, code)
	}
	return msg
}

// login says EHLO and authenticates with AUTH PLAIN.
func (rc *rawClient) login() {
	rc.t.Helper()
	rc.expect("EHLO raw.test", 250)
	rc.expect("AUTH PLAIN "+b64("\x00"+testUser+"\x00"+testPass), 235)
}

// closed fails unless the server has closed the connection (after
// replies still pending, which are returned).
func (rc *rawClient) closed() []string {
	rc.t.Helper()
	var pending []string
	for {
		line, err := rc.r.ReadLine()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				rc.t.Fatal("the server did not close the connection")
			}
			return pending
		}
		pending = append(pending, line)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
