package submit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestSendWithBcc: To, Cc and Bcc recipients all get the message, and
// no copy carries the Bcc field; the rest arrives byte for byte.
func TestSendWithBcc(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	c := dial(t, addr, plainAuth())

	msg := message("Hello Bob,\n.leading dot survives dot-stuffing\n",
		"From: Alice <alice@example.org>",
		"To: Bob <bob@example.org>",
		"Cc: carol@example.org",
		"Bcc: Dave <dave@example.org>,",
		" erin@example.org",
		"Subject: lunch",
		"Message-ID: <1@example.org>")
	rcpts := []string{"bob@example.org", "carol@example.org", "dave@example.org", "erin@example.org"}
	if err := c.SendMail(aliceEmail, rcpts, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	subs := be.submissions()
	if len(subs) != 1 {
		t.Fatalf("%d submissions, want 1", len(subs))
	}
	s := subs[0]
	if s.from != aliceEmail || !slices.Equal(s.rcpts, rcpts) {
		t.Errorf("submitted from %q to %q, want %q to %q", s.from, s.rcpts, aliceEmail, rcpts)
	}
	want := message("Hello Bob,\n.leading dot survives dot-stuffing\n",
		"From: Alice <alice@example.org>",
		"To: Bob <bob@example.org>",
		"Cc: carol@example.org",
		"Subject: lunch",
		"Message-ID: <1@example.org>")
	if !bytes.Equal(s.mail, want) {
		t.Errorf("submitted\n%q\nwant\n%q", s.mail, want)
	}
}

// TestMessageUnchangedWithoutBcc: a message without Bcc is passed on
// byte for byte, odd header folding included.
func TestMessageUnchangedWithoutBcc(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	c := dial(t, addr, plainAuth())
	msg := message("body\n\n-- \nsig\n",
		"From: =?iso-8859-1?q?Alice_M=FCller?= <alice@example.org>",
		"X-Folded: one",
		"\ttwo   ",
		"To: bob@example.org")
	if err := c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if subs := be.submissions(); len(subs) != 1 || !bytes.Equal(subs[0].mail, msg) {
		t.Fatalf("submitted %q, want %q", subs, msg)
	}
}

func TestAuth(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	msg := message("hi", "From: alice@example.org", "To: bob@example.org")

	for _, tc := range []struct {
		name string
		auth sasl.Client
		code int    // 0: sending works
		text string // in the 535 reply
	}{
		{"plain", sasl.NewPlainClient("", testUser, testPass), 0, ""},
		{"plain with authzid", sasl.NewPlainClient(testUser, testUser, testPass), 0, ""},
		{"login", sasl.NewLoginClient(testUser, testPass), 0, ""},
		{"plain wrong password", sasl.NewPlainClient("", testUser, "wrong"), 535, "wrong username or password"},
		{"login wrong password", sasl.NewLoginClient(testUser, "wrong"), 535, "wrong username or password"},
		{"plain unknown user", sasl.NewPlainClient("", "mallory", testPass), 535, "wrong username or password"},
		{"plain other authzid", sasl.NewPlainClient("bob", testUser, testPass), 535, "authorization identity"},
		{"none", nil, 530, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := smtp.Dial(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !c.SupportsAuth("PLAIN") || !c.SupportsAuth("LOGIN") {
				t.Error("EHLO does not announce AUTH PLAIN LOGIN")
			}
			if tc.auth != nil {
				err = c.Auth(tc.auth)
				if tc.code == 535 {
					wantSMTPError(t, err, 535, "5.7.8", tc.text)
					err = c.Mail(aliceEmail, nil)
					wantSMTPError(t, err, 530, "5.7.0")
					return
				}
				if err != nil {
					t.Fatalf("AUTH: %v", err)
				}
			}
			err = c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(msg))
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantSMTPError(t, err, tc.code, "5.7.0", "Authentication required")
		})
	}
	if got := len(be.submissions()); got != 3 {
		t.Errorf("%d submissions, want 3", got)
	}
}

// TestAuthFailuresCloseConnection: the third wrong password closes the
// connection; a fourth guess never reaches the node.
func TestAuthFailuresCloseConnection(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	rc := dialRaw(t, addr)
	rc.expect("EHLO raw.test", 250)
	bad := "AUTH PLAIN " + b64("\x00"+testUser+"\x00guess")
	rc.expect(bad, 535)
	// LOGIN without an initial response counts too.
	rc.expect("AUTH LOGIN", 334)
	rc.expect(b64(testUser), 334)
	rc.expect(b64("guess2"), 535)
	// The third failure and a pipelined fourth attempt.
	rc.send(bad + "\r\n" + bad + "\r\n")
	code, msg := rc.read()
	if code != 535 || !strings.Contains(msg, "closing the connection") {
		t.Fatalf("third failure: %d %q", code, msg)
	}
	pending := rc.closed()
	for _, l := range pending {
		if strings.HasPrefix(l, "235") {
			t.Errorf("authenticated after the failure limit: %q", l)
		}
	}
	be.mu.Lock()
	calls := be.authCalls
	be.mu.Unlock()
	if calls != 3 {
		t.Errorf("the node checked %d passwords, want 3", calls)
	}

	// A new connection may try again (the node's own slow-down is what
	// stops guessing across connections).
	c := dial(t, addr, plainAuth())
	c.Quit()
}

func TestMailFromNotOwn(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	c := dial(t, addr, plainAuth())
	for _, from := range []string{"mallory@example.org", "", "alice@example.org.evil"} {
		err := c.Mail(from, nil)
		wantSMTPError(t, err, 553, "5.7.1", "not one of your addresses")
	}
	// The key address is the identity's too.
	if err := c.Mail(aliceKey, nil); err != nil {
		t.Fatal(err)
	}
	// A second MAIL without RSET is refused, RSET clears it.
	wantSMTPError(t, c.Mail(aliceEmail, nil), 503, "5.5.1")
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(aliceEmail, nil); err != nil {
		t.Fatal(err)
	}
}

// TestRecipients: each RCPT is resolved at once; refused recipients do
// not stop the others.
func TestRecipients(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	c := dial(t, addr, plainAuth())
	if err := c.Mail(aliceEmail, nil); err != nil {
		t.Fatal(err)
	}
	wantSMTPError(t, c.Rcpt("x@nodsep.example", nil), 550, "5.1.1",
		"<x@nodsep.example>", "no DSEP key", "publishes no _dsep TXT record")
	err := c.Rcpt("y@flaky.example", nil)
	wantSMTPError(t, err, 451, "4.4.3", "<y@flaky.example>", "try again later")
	if strings.Contains(err.Error(), "dht") {
		t.Errorf("a temporary failure leaks internals: %v", err)
	}
	for _, rcpt := range []string{"bob@example.org", aliceKey, "bob@example.org"} {
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatalf("RCPT %s: %v", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(message("hi", "From: alice@example.org", "To: bob@example.org"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	subs := be.submissions()
	if len(subs) != 1 || !slices.Equal(subs[0].rcpts, []string{"bob@example.org", aliceKey}) {
		t.Fatalf("submitted %+v, want one message to bob and the key address, once each", subs)
	}
}

func TestTooManyRecipients(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be, MaxRecipients: 3})
	c := dial(t, addr, plainAuth())
	if ok, v := c.Extension("LIMITS"); !ok || v != "RCPTMAX=3" {
		t.Errorf("LIMITS %q, want RCPTMAX=3", v)
	}
	if err := c.Mail(aliceEmail, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Rcpt(fmt.Sprintf("u%d@example.org", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	wantSMTPError(t, c.Rcpt("u3@example.org", nil), 452, "4.5.3")
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(message("hi", "From: alice@example.org"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if subs := be.submissions(); len(subs) != 1 || len(subs[0].rcpts) != 3 {
		t.Fatalf("submitted %+v, want one message to 3 recipients", subs)
	}
}

// TestFromHeader: the message's From (and Sender) must be own addresses.
func TestFromHeader(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	c := dial(t, addr, plainAuth())
	for _, tc := range []struct {
		name   string
		header []string
		code   int
		ec     string
	}{
		{"own", []string{"From: Alice <alice@example.org>"}, 0, ""},
		{"own key address", []string{"From: " + aliceKey}, 0, ""},
		{"own, upper case", []string{"From: ALICE@EXAMPLE.ORG"}, 0, ""},
		{"not own", []string{"From: Mallory <mallory@example.org>"}, 550, "5.7.1"},
		{"one of two not own", []string{"From: alice@example.org, bob@example.org"}, 550, "5.7.1"},
		{"sender not own", []string{"From: alice@example.org", "Sender: bob@example.org"}, 550, "5.7.1"},
		{"missing", []string{"To: bob@example.org"}, 550, "5.6.0"},
		{"twice", []string{"From: alice@example.org", "From: alice@example.org"}, 550, "5.6.0"},
		{"unparsable", []string{"From: <<<"}, 550, "5.6.0"},
		{"malformed header", []string{"From: alice@example.org", "no colon here"}, 554, "5.6.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := message("hi", append(tc.header, "To: bob@example.org")...)
			err := c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(msg))
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantSMTPError(t, err, tc.code, tc.ec)
			if err := c.Reset(); err != nil {
				t.Fatalf("the session did not survive: %v", err)
			}
		})
	}
	if got := len(be.submissions()); got != 3 {
		t.Errorf("%d submissions, want 3", got)
	}
}

// TestSize: SIZE is announced, a larger SIZE= is refused at MAIL, a
// larger message at DATA, and the connection goes on.
func TestSize(t *testing.T) {
	be := &fakeBackend{}
	const limit = 4096
	addr, _ := testServer(t, Config{Backend: be, MaxMessageBytes: limit})
	c := dial(t, addr, plainAuth())
	if n, ok := c.MaxMessageSize(); !ok || n != limit {
		t.Errorf("SIZE %d %v, want %d", n, ok, limit)
	}
	wantSMTPError(t, c.Mail(aliceEmail, &smtp.MailOptions{Size: limit + 1}), 552, "5.3.4")

	head := "From: alice@example.org\r\nTo: bob@example.org\r\n\r\n"
	body := func(n int) string {
		return strings.Repeat(strings.Repeat("x", 98)+"\r\n", n/100+1)[:n-len(head)-2] + "\r\n"
	}
	over := head + body(limit+1)
	err := c.SendMail(aliceEmail, []string{"bob@example.org"}, strings.NewReader(over))
	wantSMTPError(t, err, 552, "5.3.4")

	// go-smtp's DATA reader refuses a message of exactly the limit too (it
	// needs one more octet to see the end); one octet less is accepted.
	under := head + body(limit-1)
	if err := c.SendMail(aliceEmail, []string{"bob@example.org"}, strings.NewReader(under)); err != nil {
		t.Fatalf("a message of %d octets: %v", len(under), err)
	}
	if subs := be.submissions(); len(subs) != 1 || string(subs[0].mail) != under {
		t.Fatalf("submitted %d messages, want the one under the limit", len(subs))
	}
}

// TestLongLines: lines far over RFC 5322's 998 octets are accepted (the
// message travels encrypted, not over SMTP), up to MaxLineLength; a longer
// one is refused permanently.
func TestLongLines(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	c := dial(t, addr, plainAuth())
	msg := message(strings.Repeat("b", 20000)+"\n"+strings.Repeat("c", MaxLineLength-2)+"\n",
		"From: alice@example.org",
		"Subject: "+strings.Repeat("s", 1500),
		"Bcc: dave@example.org")
	if err := c.SendMail(aliceEmail, []string{"bob@example.org", "dave@example.org"}, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	want := message(strings.Repeat("b", 20000)+"\n"+strings.Repeat("c", MaxLineLength-2)+"\n",
		"From: alice@example.org",
		"Subject: "+strings.Repeat("s", 1500))
	if subs := be.submissions(); len(subs) != 1 || !bytes.Equal(subs[0].mail, want) {
		t.Fatal("the message with long lines did not arrive intact")
	}

	tooLong := message(strings.Repeat("d", MaxLineLength+100), "From: alice@example.org")
	err := c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(tooLong))
	wantSMTPError(t, err, 554, "5.6.0", "longer than")
	if len(be.submissions()) != 1 {
		t.Error("the message with a too long line was submitted")
	}
}

// TestMalformedCommands: syntax errors get 500/501/502/503 replies and
// the connection goes on.
func TestMalformedCommands(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	rc := dialRaw(t, addr)
	for _, tc := range []struct {
		line string
		code int
	}{
		{"MAIL FROM:<alice@example.org>", 502}, // before EHLO
		{"EHLO", 501},
		{"EHLO raw.test", 250},
		{"MAIL FROM:<alice@example.org>", 530}, // before AUTH
		{"RCPT TO:<bob@example.org>", 502},
		{"DATA", 502},
		{"AUTH", 502},
		{"AUTH CRAM-MD5", 504},
		{"AUTH PLAIN !!!notbase64", 454},
		{"AUTH PLAIN " + b64("only-one-part"), 454},
		{"AUTH LOGIN", 334},
		{"*", 501}, // cancelled
		{"FOOB", 500},
		{"FOOBAR", 501},
		{"VRFY bob@example.org", 252},
		{"AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPass), 235},
		{"AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPass), 503},
		{"MAIL alice@example.org", 501},
		{"MAIL FROM:<alice@example.org", 501},
		{"MAIL FROM:<alice@example.org> SIZE=abc", 501},
		{"MAIL FROM:<alice@example.org> SIZE=99999999999", 501},
		{"MAIL FROM:<alice@example.org> FOO=BAR", 500},
		{"MAIL FROM:<alice@example.org> BODY=8BITMIME SMTPUTF8", 250},
		{"RCPT TO:bob", 501},
		{"RCPT TO:<bob@example.org> NOTIFY=NEVER", 504},
		{"DATA now", 501},
		{"DATA", 502}, // no recipient yet
		{"BDAT x", 501},
		{"RSET", 250},
		{"NOOP", 250},
	} {
		if code, msg := rc.cmd(tc.line); code != tc.code {
			t.Errorf("%q: got %d %q, want %d", tc.line, code, msg, tc.code)
		}
	}
	// Still usable: send a message.
	rc.expect("MAIL FROM:<alice@example.org>", 250)
	rc.expect("RCPT TO:<bob@example.org>", 250)
	rc.expect("DATA", 354)
	rc.send("From: alice@example.org\r\n\r\nstill here\r\n.\r\n")
	if code, msg := rc.read(); code != 250 {
		t.Fatalf("DATA: %d %q", code, msg)
	}
	rc.expect("QUIT", 221)
	if len(be.submissions()) != 1 {
		t.Fatal("the message was not submitted")
	}
}

// TestGarbageClosesConnection: go-smtp hangs up after four unknown
// commands, and on a command line over MaxLineLength.
func TestGarbageClosesConnection(t *testing.T) {
	addr, _ := testServer(t, Config{Backend: &fakeBackend{}})
	rc := dialRaw(t, addr)
	for range 3 {
		rc.expect("\x00\xff garbage", 501)
	}
	rc.send("XYZW\r\n")
	if pending := rc.closed(); len(pending) != 2 || !strings.HasPrefix(pending[1], "500 5.5.1 Too many errors") {
		t.Errorf("before closing: %q", pending)
	}

	rc = dialRaw(t, addr)
	rc.send("EHLO " + strings.Repeat("x", MaxLineLength+10) + "\r\n")
	if pending := rc.closed(); len(pending) != 1 || !strings.HasPrefix(pending[0], "500 5.4.0") {
		t.Errorf("before closing: %q", pending)
	}
}

// TestNoBDAT: CHUNKING is not announced (go-smtp's BDAT code races, see
// conn.Write), BDAT sent regardless is refused, and the session goes on.
func TestNoBDAT(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be, MaxMessageBytes: 4096})
	rc := dialRaw(t, addr)
	ehlo := rc.expect("EHLO raw.test", 250)
	for _, want := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "AUTH PLAIN LOGIN", "SIZE 4096", "LIMITS RCPTMAX=100"} {
		if !strings.Contains(ehlo, want) {
			t.Errorf("EHLO reply %q lacks %s", ehlo, want)
		}
	}
	if strings.Contains(ehlo, "CHUNKING") {
		t.Errorf("EHLO reply announces CHUNKING: %q", ehlo)
	}
	rc.expect("AUTH PLAIN "+b64("\x00"+testUser+"\x00"+testPass), 235)

	bdat := func(chunk string, last bool) (int, string) {
		t.Helper()
		cmd := fmt.Sprintf("BDAT %d", len(chunk))
		if last {
			cmd += " LAST"
		}
		rc.send(cmd + "\r\n" + chunk)
		return rc.read()
	}
	envelope := func() {
		t.Helper()
		rc.expect("MAIL FROM:<alice@example.org>", 250)
		rc.expect("RCPT TO:<bob@example.org>", 250)
	}
	for _, tc := range []struct {
		chunks []string
		code   int
	}{
		{[]string{"From: alice@example.org\r\n\r\nhi\r\n"}, 502},
		{[]string{"From: alice@example.org\r\n", "\r\nhi\r\n"}, 502},
		{[]string{"", ""}, 502},
		{[]string{strings.Repeat("x", 5000)}, 552},
	} {
		envelope()
		var code int
		var msg string
		for i, c := range tc.chunks {
			code, msg = bdat(c, i == len(tc.chunks)-1)
			if code != 250 {
				break
			}
		}
		if code != tc.code {
			t.Errorf("BDAT %q: %d %q, want %d", tc.chunks, code, msg, tc.code)
		}
		rc.expect("RSET", 250)
	}
	envelope()
	if code, _ := bdat("", false); code != 502 && code != 250 {
		t.Errorf("BDAT 0: %d", code)
	}
	rc.expect("RSET", 250)
	envelope()
	rc.expect("DATA", 354)
	rc.send("From: alice@example.org\r\n\r\nby DATA\r\n.\r\n")
	if code, msg := rc.read(); code != 250 {
		t.Fatalf("DATA after BDAT: %d %q", code, msg)
	}
	rc.expect("QUIT", 221)
	if subs := be.submissions(); len(subs) != 1 || !strings.Contains(string(subs[0].mail), "by DATA") {
		t.Errorf("submitted %+v, want only the message sent with DATA", subs)
	}
}

// TestSubmitFailure: nothing is acknowledged unless Submit returned nil.
func TestSubmitFailure(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	c := dial(t, addr, plainAuth())
	msg := message("hi", "From: alice@example.org")

	be.mu.Lock()
	be.submitErr = errors.New("store: disk full")
	be.mu.Unlock()
	err := c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(msg))
	wantSMTPError(t, err, 451, "4.3.0", "not queued")
	if strings.Contains(err.Error(), "disk") {
		t.Errorf("the reply leaks the node's error: %v", err)
	}

	be.mu.Lock()
	be.submitErr = Permanent(errors.New("the message is larger than bob@example.org accepts"))
	be.mu.Unlock()
	err = c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(msg))
	wantSMTPError(t, err, 554, "5.3.0", "larger than bob@example.org accepts")

	be.mu.Lock()
	be.submitErr = nil
	be.mu.Unlock()
	if err := c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if got := len(be.submissions()); got != 1 {
		t.Errorf("%d submissions, want 1", got)
	}
}

// TestConcurrentSessions: many clients at once, each message once.
func TestConcurrentSessions(t *testing.T) {
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be})
	const clients, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			c, err := smtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Auth(plainAuth()); err != nil {
				errs <- err
				return
			}
			for j := range each {
				msg := message(fmt.Sprintf("message %d.%d", i, j), "From: alice@example.org",
					fmt.Sprintf("Bcc: c%d@example.org", i))
				rcpts := []string{"bob@example.org", fmt.Sprintf("c%d@example.org", i)}
				if err := c.SendMail(aliceEmail, rcpts, bytes.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
			errs <- c.Quit()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	subs := be.submissions()
	if len(subs) != clients*each {
		t.Fatalf("%d submissions, want %d", len(subs), clients*each)
	}
	seen := map[string]bool{}
	for _, s := range subs {
		if bytes.Contains(bytes.ToLower(s.mail), []byte("bcc:")) {
			t.Errorf("a Bcc field reached the node: %q", s.mail)
		}
		seen[string(s.mail)] = true
	}
	if len(seen) != clients*each {
		t.Errorf("%d distinct messages, want %d", len(seen), clients*each)
	}
}

// TestCloseCancelsSubmit: Close cuts a session whose Submit is still
// running, cancels it, waits for it, and the client never sees 250.
func TestCloseCancelsSubmit(t *testing.T) {
	be := &fakeBackend{}
	started := make(chan struct{})
	be.submitWait = func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}
	srv, err := NewServer(Config{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	c := dial(t, l.Addr().String(), plainAuth())
	sent := make(chan error, 1)
	go func() {
		sent <- c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(message("hi", "From: alice@example.org")))
	}()
	<-started
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err == nil {
		t.Fatal("the message was acknowledged although Submit was cancelled")
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
	if len(be.submissions()) != 0 {
		t.Error("a cancelled Submit was recorded")
	}
}

// TestShutdown waits for an open session to QUIT.
func TestShutdown(t *testing.T) {
	be := &fakeBackend{}
	srv, err := NewServer(Config{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c := dial(t, l.Addr().String(), plainAuth())

	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("the listener still accepts connections")
	}
	// The open session still works, then ends.
	if err := c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(message("hi", "From: alice@example.org"))); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v before the session ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// Shutdown whose context ends cuts the rest.
	srv2, _ := NewServer(Config{Backend: be})
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { served <- srv2.Serve(l2) }()
	c2 := dial(t, l2.Addr().String(), nil)
	if err := c2.Hello("client.test"); err != nil { // the session exists
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline", err)
	}
	<-served
	if err := c2.Noop(); err == nil {
		t.Error("the session survived Shutdown's deadline")
	}
}

// chanListener hands out the connections sent on ch; its address is
// addr.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// addrConn is a connection with the remote address remote.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

var (
	loopback = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1587}
	remote   = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}
)

// TestRemote: a listener off loopback is refused unless AllowRemote; with
// it, a connection from elsewhere without TLS is not offered AUTH.
func TestRemote(t *testing.T) {
	be := &fakeBackend{}
	off := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1587}
	for _, a := range []net.Addr{off, &net.TCPAddr{IP: net.IPv4zero, Port: 1587}, &net.TCPAddr{IP: net.IPv6unspecified}} {
		srv, _ := NewServer(Config{Backend: be})
		err := srv.Serve(newChanListener(a))
		if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("Serve on %s: %v", a, err)
		}
		srv.Close()
	}
	for _, a := range []net.Addr{loopback, &net.TCPAddr{IP: net.IPv6loopback}, &net.UnixAddr{Name: "/run/dsep.sock", Net: "unix"}} {
		srv, _ := NewServer(Config{Backend: be})
		l := newChanListener(a)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve on %s: %v", a, err)
		}
	}

	srv, _ := NewServer(Config{Backend: be, AllowRemote: true})
	l := newChanListener(off)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served
	}()
	for _, tc := range []struct {
		from net.Addr
		auth bool
	}{{remote, false}, {loopback, true}} {
		cli, sc := net.Pipe()
		l.ch <- addrConn{sc, tc.from}
		c := smtp.NewClient(cli)
		if err := c.Hello("remote.test"); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Extension("AUTH"); got != tc.auth {
			t.Errorf("from %s: AUTH offered %v, want %v", tc.from, got, tc.auth)
		}
		err := c.Auth(plainAuth())
		if tc.auth {
			if err != nil {
				t.Errorf("from %s: %v", tc.from, err)
			}
		} else {
			wantSMTPError(t, err, 538, "5.7.11")
			wantSMTPError(t, c.Mail(aliceEmail, nil), 530, "5.7.0")
		}
		c.Close()
	}

	// Over TLS, AUTH is offered to a connection from anywhere.
	cert := selfSigned(t)
	cli, sc := net.Pipe()
	l.ch <- tls.Server(addrConn{sc, remote}, &tls.Config{Certificates: []tls.Certificate{cert}})
	c := smtp.NewClient(tls.Client(cli, &tls.Config{InsecureSkipVerify: true}))
	defer c.Close()
	if err := c.Hello("remote.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); !ok {
		t.Error("AUTH not offered over TLS")
	}
	if err := c.Auth(plainAuth()); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(message("hi", "From: alice@example.org"))); err != nil {
		t.Fatal(err)
	}
}

// selfSigned makes a throwaway TLS certificate.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

func TestNewServerConfig(t *testing.T) {
	be := &fakeBackend{}
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"defaults", Config{Backend: be}, ""},
		{"no backend", Config{}, "Backend is nil"},
		{"negative size", Config{Backend: be, MaxMessageBytes: -1}, "negative"},
		{"negative rcpts", Config{Backend: be, MaxRecipients: -1}, "negative"},
		{"negative timeout", Config{Backend: be, ReadTimeout: -time.Second}, "negative"},
		{"bad domain", Config{Backend: be, Domain: "a b\r\n"}, "not a host name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := NewServer(tc.cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				srv.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error saying %q", err, tc.err)
			}
		})
	}

	srv, _ := NewServer(Config{Backend: be})
	defer srv.Close()
	if srv.smtp.Domain != DefaultDomain || srv.smtp.MaxMessageBytes != DefaultMaxMessageBytes ||
		srv.smtp.MaxRecipients != DefaultMaxRecipients || srv.smtp.ReadTimeout != DefaultReadTimeout ||
		srv.smtp.WriteTimeout != DefaultWriteTimeout || srv.smtp.MaxLineLength != MaxLineLength {
		t.Errorf("defaults not applied: %+v", srv.smtp)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("no DSEP key for bob@nodsep.example")
	p := Permanent(base)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{base, false},
		{context.Canceled, false},
		{p, true},
		{fmt.Errorf("resolving: %w", p), true},
		{fmt.Errorf("no key: %w", ErrPermanent), true},
		{ErrPermanent, true},
	} {
		if got := IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if p.Error() != base.Error() || !errors.Is(p, base) {
		t.Errorf("Permanent changed the error: %q", p)
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
}

// TestLogsNoSecrets: passwords and message text never reach the log.
func TestLogsNoSecrets(t *testing.T) {
	var buf syncBuffer
	be := &fakeBackend{}
	addr, _ := testServer(t, Config{Backend: be,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Auth(sasl.NewPlainClient("", testUser, "hunter2-wrong"))
	if err := c.Auth(plainAuth()); err != nil {
		t.Fatal(err)
	}
	msg := message("SECRET-BODY-TEXT", "From: alice@example.org", "Subject: SECRET-SUBJECT", "Bcc: dave@example.org")
	if err := c.SendMail(aliceEmail, []string{"bob@example.org", "dave@example.org"}, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	bad := message("x", "From: alice@example.org", "SECRET-HEADER-LINE")
	c.SendMail(aliceEmail, []string{"bob@example.org"}, bytes.NewReader(bad))
	c.Quit()
	log := buf.String()
	for _, secret := range []string{testPass, "hunter2", "SECRET", b64("\x00" + testUser)} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains %q:\n%s", secret, log)
		}
	}
	for _, want := range []string{"authentication failed", "message queued", "recipients=2", "bcc_fields_removed=1"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
