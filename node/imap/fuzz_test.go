package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/store"
)

// panicLog records the errors the server logs.
type panicLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *panicLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *panicLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// FuzzCommands sends arbitrary command lines to a logged-in session with
// a mailbox selected: the server never panics (imapserver would recover
// it per connection and log it), and it still serves a new connection.
func FuzzCommands(f *testing.F) {
	for _, seed := range []string{
		"a FETCH 1:* (ENVELOPE FLAGS BODYSTRUCTURE BODY.PEEK[1.MIME] BODY[]<0.10>)",
		"a UID FETCH *:1 (BINARY.PEEK[1] BINARY.SIZE[2])",
		"a SEARCH OR FROM x NOT BODY y TEXT z\na UID SEARCH 1:* HEADER X-Custom \"\" LARGER 10",
		"a STORE 1:2 +FLAGS.SILENT (\\Deleted $x)\na EXPUNGE\na UID EXPUNGE 1:*",
		"a COPY 1 Archive\na MOVE 1:* Trash\na UID MOVE 2 \"Nowhere\"",
		"a CREATE \"x/y/\"\na RENAME x z\na DELETE z\na LIST \"\" *\na LSUB \"\" %",
		"a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT DELETED SIZE)",
		"a APPEND Drafts (\\Draft) {5+}\r\nhello",
		"a EXAMINE INBOX\na STORE 1 FLAGS ()\na CLOSE",
		"a SELECT \"&AOk-t&AOk-\"\na NAMESPACE\na ENABLE UTF8=ACCEPT IMAP4rev2",
		"a FETCH 4294967295:* FLAGS\na SEARCH UID 0",
		"a LIST (SPECIAL-USE SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (CHILDREN STATUS (MESSAGES))",
	} {
		f.Add(seed)
	}
	var logs panicLog
	st := openStore(f, f.TempDir())
	for i := range 3 {
		deliver(f, st, store.FolderInbox, simple(i, "a@example.org", "s", "b"))
	}
	deliver(f, st, store.FolderInbox, multipart)
	srv, err := NewServer(Config{Store: st, Authenticate: authenticate, MaxMessageBytes: 1 << 16,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		f.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	f.Cleanup(func() {
		srv.Close()
		<-done
	})
	addr := l.Addr().String()

	f.Fuzz(func(t *testing.T, input string) {
		if len(input) > 8<<10 {
			return
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "l LOGIN %s \"%s\"\r\ns SELECT INBOX\r\n", testUser, testPassword)
		for _, line := range strings.Split(input, "\n") {
			fmt.Fprintf(c, "%s\r\n", strings.TrimSuffix(line, "\r"))
		}
		fmt.Fprintf(c, "\r\nzz NOOP\r\n")
		for {
			l, err := br.ReadString('\n')
			if err != nil || strings.HasPrefix(l, "zz ") {
				break // answered, or the server hung up (or waits for a literal)
			}
		}
		c.Close()
		if s := logs.String(); strings.Contains(s, "panic") {
			t.Fatalf("the server panicked on %q:\n%s", input, s)
		}
		// The server still serves.
		c2, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		if g, err := bufio.NewReader(c2).ReadString('\n'); err != nil || !strings.HasPrefix(g, "* OK") {
			t.Fatalf("no greeting after %q: %q, %v", input, g, err)
		}
	})
}
