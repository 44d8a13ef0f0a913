package submit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
)

// panicLog records go-smtp's reports of recovered panics (it recovers
// them per connection, so a panic would otherwise pass unseen).
type panicLog struct {
	mu     sync.Mutex
	panics []string
}

func (h *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *panicLog) WithGroup(string) slog.Handler            { return h }
func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		h.mu.Lock()
		h.panics = append(h.panics, r.Message)
		h.mu.Unlock()
	}
	return nil
}

const fuzzMaxBytes = 8 << 10

// FuzzSession feeds arbitrary bytes to the server as one client's
// session over net.Pipe. Nothing may panic or hang, and whatever reaches
// the node must have passed every check: authenticated, own sender and
// From, accepted recipients, within the size limit, no Bcc field.
func FuzzSession(f *testing.F) {
	auth := "AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPass) + "\r\n"
	full := "EHLO fuzz\r\n" + auth +
		"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<dave@example.org>\r\n" +
		"DATA\r\nFrom: alice@example.org\r\nBcc: dave@example.org\r\n\r\nhi\r\n..dot\r\n.\r\nQUIT\r\n"
	f.Add([]byte(full))
	f.Add([]byte(strings.Replace(full, "EHLO fuzz", "HELO fuzz", 1)))
	f.Add([]byte(strings.Replace(full, auth, "AUTH LOGIN\r\n"+b64(testUser)+"\r\n"+b64(testPass)+"\r\n", 1)))
	f.Add([]byte(strings.Replace(full, auth, "AUTH LOGIN "+b64(testUser)+"\r\n*\r\n", 1)))
	f.Add([]byte(strings.Replace(full, "From: alice", "From: mallory", 1)))
	f.Add([]byte(strings.Replace(full, "bob@example.org", "x@nodsep.example", 1)))
	f.Add([]byte(strings.Replace(full, "bob@example.org", "y@flaky.example", 1)))
	f.Add([]byte(strings.Replace(full, "hi\r\n", strings.Repeat("x", fuzzMaxBytes)+"\r\n", 1)))
	f.Add([]byte(strings.Replace(full, "hi\r\n", strings.Repeat("y", MaxLineLength+1)+"\r\n", 1)))
	f.Add([]byte("EHLO fuzz\r\n" + auth + "MAIL FROM:<alice@example.org> SIZE=100\r\nRCPT TO:<bob@example.org>\r\n" +
		"BDAT 5\r\nFrom:BDAT 0\r\nRSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nBDAT 30 LAST\r\n" +
		"From: alice@example.org\r\n\r\nx\r\n"))
	f.Add([]byte("EHLO fuzz\r\nAUTH PLAIN " + b64("\x00alice\x00a") + "\r\nAUTH PLAIN " + b64("\x00alice\x00b") +
		"\r\nAUTH PLAIN " + b64("\x00alice\x00c") + "\r\n" + auth + "MAIL FROM:<alice@example.org>\r\n"))
	f.Add([]byte("\x00\xff\r\nSTARTTLS\r\nEHLO\r\nMAIL FROM:<>\r\nRCPT TO:<>\r\nDATA\r\n.\r\n"))
	f.Add([]byte("EHLO x\r\n" + auth + "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nFrom: alice@example.org"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, in []byte) { fuzzSession(t, in) })
}

// TestFuzzSeedsReachTheNode: the seeds get past AUTH to Submit, so the
// fuzzer starts from sessions that exercise every stage.
func TestFuzzSeedsReachTheNode(t *testing.T) {
	auth := "AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPass) + "\r\n"
	be, replies := fuzzSession(t, []byte("EHLO fuzz\r\n"+auth+
		"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<dave@example.org>\r\n"+
		"DATA\r\nFrom: alice@example.org\r\nBcc: dave@example.org\r\n\r\nhi\r\n..dot\r\n.\r\nQUIT\r\n"))
	subs := be.submissions()
	if len(subs) != 1 || string(subs[0].mail) != "From: alice@example.org\r\n\r\nhi\r\n.dot\r\n" {
		t.Fatalf("submitted %+v; replies:\n%s", subs, replies)
	}
}

// fuzzSession runs one session of in and checks the invariants.
func fuzzSession(t *testing.T, in []byte) (*fakeBackend, string) {
	{
		be := &fakeBackend{}
		plog := &panicLog{}
		srv, err := NewServer(Config{Backend: be, MaxMessageBytes: fuzzMaxBytes, MaxRecipients: 5,
			ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, Logger: slog.New(plog)})
		if err != nil {
			t.Fatal(err)
		}
		l := newChanListener(loopback)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()

		cli, sc := net.Pipe()
		ic := &idleConn{Conn: sc, want: len(in), idle: make(chan struct{})}
		l.ch <- ic
		var replies bytes.Buffer
		read := make(chan struct{})
		go func() {
			io.Copy(&replies, cli)
			close(read)
		}()
		cli.Write(in) // fails if the server hangs up first
		// A pipe refuses deadlines once either end is closed, so hang up
		// only when the server has handled all of in and waits for more.
		select {
		case <-ic.idle:
		case <-read:
		}
		cli.Close()
		<-read
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}

		if len(plog.panics) > 0 {
			t.Fatalf("panic: %q", plog.panics)
		}
		// Every reply line is well formed.
		sc2 := bufio.NewScanner(bytes.NewReader(replies.Bytes()))
		sc2.Buffer(nil, 1<<20)
		for sc2.Scan() {
			line := sc2.Text()
			if len(line) < 4 || line[0] < '2' || line[0] > '5' || (line[3] != ' ' && line[3] != '-') {
				t.Fatalf("malformed reply line %q", line)
			}
		}
		subs := be.submissions()
		be.mu.Lock()
		authOK := be.authOK
		be.mu.Unlock()
		if len(subs) > 0 && authOK == 0 {
			t.Fatal("submitted without authentication")
		}
		for _, s := range subs {
			if !be.OwnAddress(s.from) || len(s.rcpts) == 0 || len(s.rcpts) > 5 || len(s.mail) > fuzzMaxBytes {
				t.Fatalf("submitted from %q to %q, %d octets", s.from, s.rcpts, len(s.mail))
			}
			seen := map[string]bool{}
			for _, r := range s.rcpts {
				if seen[r] || be.CheckRecipient(context.Background(), r) != nil {
					t.Fatalf("submitted to %q", s.rcpts)
				}
				seen[r] = true
			}
			h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(s.mail)))
			if err != nil {
				t.Fatalf("submitted a message whose header does not parse: %v", err)
			}
			if h.Has("Bcc") || h.Has("Resent-Bcc") {
				t.Fatalf("submitted with a Bcc field: %q", s.mail)
			}
			if _, _, err := prepare(s.mail, be.OwnAddress); err != nil {
				t.Fatalf("submitted a message that prepare refuses: %v", err)
			}
		}
		return be, replies.String()
	}
}

// idleConn is the server's end of the pipe, from loopback. It closes idle
// when the server asks for more than the want octets it was sent.
type idleConn struct {
	net.Conn
	want, got int // read by the connection's goroutine only
	idle      chan struct{}
	once      sync.Once
}

func (c *idleConn) RemoteAddr() net.Addr { return loopback }

func (c *idleConn) Read(b []byte) (int, error) {
	if c.got >= c.want {
		c.once.Do(func() { close(c.idle) })
	}
	n, err := c.Conn.Read(b)
	c.got += n
	return n, err
}
