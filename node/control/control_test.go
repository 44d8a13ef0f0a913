package control

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsep-project/dsep/testnet/testtool"
)

// TestMain fails the package if a server or client goroutine outlives the
// tests.
func TestMain(m *testing.M) { testtool.Main(m, 0, 5*time.Second) }

// fakeBackend returns canned values and records what it was asked.
type fakeBackend struct {
	mu       sync.Mutex
	sent     []*SendRequest
	gotID    string
	gotRaw   bool
	gotList  [2]any
	err      error // returned by every method when set
	panicMsg string

	status  Status
	list    []Summary
	msg     Message
	outbox  []OutboxEntry
	sendRes SendResult
}

func (f *fakeBackend) fail() error {
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	return f.err
}

func (f *fakeBackend) Status(ctx context.Context) (*Status, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	st := f.status
	return &st, nil
}

func (f *fakeBackend) Send(ctx context.Context, req *SendRequest) (*SendResult, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, req)
	r := f.sendRes
	return &r, nil
}

func (f *fakeBackend) List(ctx context.Context, folder string, limit int) ([]Summary, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotList = [2]any{folder, limit}
	return f.list, nil
}

func (f *fakeBackend) Message(ctx context.Context, id string, raw bool) (*Message, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotID, f.gotRaw = id, raw
	if !strings.HasPrefix(f.msg.ID, id) {
		return nil, Errorf(http.StatusNotFound, "list messages with `dsep inbox`", "no message %s", id)
	}
	m := f.msg
	if !raw {
		m.Raw = ""
	}
	return &m, nil
}

func (f *fakeBackend) Outbox(ctx context.Context) ([]OutboxEntry, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.outbox, nil
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func canned() *fakeBackend {
	id := strings.Repeat("ab", 32)
	sum := Summary{
		ID: id, Folder: "INBOX", UID: 7, From: "Bob <bob@example.org>", To: []string{"alice@example.org"},
		Subject: "Grüße", Date: t0, Received: t0.Add(time.Minute), Size: 1234, Flags: []string{`\Seen`},
		Verification: Verification{Status: VerifyVerified, Signer: strings.Repeat("01", 20)},
		Direction:    DirectionIn,
	}
	rcpt := t0.Add(time.Hour)
	return &fakeBackend{
		status: Status{
			Version: "v0.1.0", Fingerprint: strings.Repeat("01", 20), Emails: []string{"alice@example.org"},
			PeerID: "12D3KooWtest", Listen: []string{"/ip4/127.0.0.1/tcp/4101"}, StartedAt: t0,
			DHT:      DHTStatus{RoutingTable: 12, Republished: 3, LastRepublish: t0, RepublishFailures: 1},
			Queue:    QueueStatus{Pending: 1, Delivered: 2, Failed: 3, Bounced: 4, OldestPending: t0},
			Mailbox:  MailboxStatus{Messages: 10, Unseen: 2},
			Delivery: DeliveryStatus{Received: 11, Duplicates: 1, Rejected: 2, Decrypted: 10},
			Alerts:   []Alert{{Kind: "foreign_key", Email: "alice@example.org", Message: "another key is certified for your address", At: t0}},
			Warnings: []string{"no DHT peers"},
		},
		list: []Summary{sum},
		msg:  Message{Summary: sum, Body: []byte("From: bob@example.org\r\nSubject: x\r\n\r\n\xff binary\r\n"), Raw: "-----BEGIN PGP MESSAGE-----\n…"},
		outbox: []OutboxEntry{{
			ID: id, To: "bob@example.org", Recipient: strings.Repeat("02", 20), Created: t0, Expires: t0.Add(120 * time.Hour),
			Status: StatePending, Receipt: &rcpt,
			Delegates: []DelegateStatus{{Peer: "12D3KooWpeer", Role: "device", Status: StatePending, Attempts: 3, NextTry: t0, LastError: "dial: refused"}},
		}},
		sendRes: SendResult{Queued: []Queued{{To: "bob@example.org", MessageID: id, Status: StatePending}}},
	}
}

// serve starts a server for b on a socket in a fresh directory, after
// applying opts to it.
func serve(t *testing.T, b Backend, opts ...func(*Server)) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), SocketName)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(b, nil)
	for _, o := range opts {
		o(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, path
}

func dial(t *testing.T, path string) *Client {
	c := Dial(path)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRoundTrip(t *testing.T) {
	b := canned()
	_, path := serve(t, b)
	c := dial(t, path)
	ctx := context.Background()

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*st, b.status) {
		t.Errorf("Status = %+v\nwant %+v", *st, b.status)
	}

	mail := []byte("From: alice@example.org\r\nTo: bob@example.org\r\n\r\nhi\r\n")
	res, err := c.Send(ctx, &SendRequest{To: []string{"bob@example.org", "carol@example.org"}, Mail: mail})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*res, b.sendRes) {
		t.Errorf("Send = %+v, want %+v", *res, b.sendRes)
	}
	if len(b.sent) != 1 || !bytes.Equal(b.sent[0].Mail, mail) || !reflect.DeepEqual(b.sent[0].To, []string{"bob@example.org", "carol@example.org"}) {
		t.Errorf("backend got %+v", b.sent)
	}

	list, err := c.List(ctx, "Sent", 20)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(list, b.list) || b.gotList != [2]any{"Sent", 20} {
		t.Errorf("List = %+v (asked %v), want %+v", list, b.gotList, b.list)
	}

	m, err := c.Message(ctx, strings.ToUpper(b.msg.ID[:12]), true)
	if err != nil {
		t.Fatal(err)
	}
	if b.gotID != b.msg.ID[:12] || !b.gotRaw {
		t.Errorf("backend asked for %q raw=%v", b.gotID, b.gotRaw)
	}
	if !reflect.DeepEqual(*m, b.msg) {
		t.Errorf("Message = %+v\nwant %+v", *m, b.msg)
	}

	ob, err := c.Outbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ob, b.outbox) {
		t.Errorf("Outbox = %+v\nwant %+v", ob, b.outbox)
	}
}

func TestEmptyLists(t *testing.T) {
	_, path := serve(t, &fakeBackend{})
	c := dial(t, path)
	list, err := c.List(context.Background(), "", 0)
	if err != nil || list == nil || len(list) != 0 {
		t.Errorf("List = %#v, %v; want an empty list", list, err)
	}
	ob, err := c.Outbox(context.Background())
	if err != nil || ob == nil || len(ob) != 0 {
		t.Errorf("Outbox = %#v, %v; want an empty list", ob, err)
	}
}

func TestSocketMode(t *testing.T) {
	_, path := serve(t, canned())
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a 0600 socket", fi.Mode())
	}
	if _, err := os.Stat(path + "~"); !os.IsNotExist(err) {
		t.Errorf("temporary socket left behind: %v", err)
	}
}

func TestRefuseOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(filepath.Join(dir, SocketName))
	if err == nil {
		l.Close()
		t.Fatal("Listen in a 0777 directory succeeded")
	}
	if !strings.Contains(err.Error(), "writable by other users") {
		t.Errorf("error %q does not say why", err)
	}
}

func TestRefuseNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(path)
	if err == nil {
		l.Close()
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Error("the file was touched")
	}
}

// staleSocket leaves a socket file nobody listens on, as a killed node does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
}

func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	staleSocket(t, path)

	// A client sees no node.
	c := dial(t, path)
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Status on a stale socket: %v, want ErrNotRunning", err)
	}

	// A new node replaces the stale socket.
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	s := NewServer(canned(), nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	if _, err := c.Status(context.Background()); err != nil {
		t.Errorf("Status: %v", err)
	}
	c.Close()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	// Closing removed the socket.
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket still there after Shutdown: %v", err)
	}
}

func TestLiveDaemon(t *testing.T) {
	_, path := serve(t, canned())
	// A second node on the same directory is refused, and leaves the
	// first one working.
	if l, err := Listen(path); !errors.Is(err, ErrAlreadyRunning) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("second Listen: %v, want ErrAlreadyRunning", err)
	}
	if _, err := dial(t, path).Status(context.Background()); err != nil {
		t.Errorf("first node after the second's attempt: %v", err)
	}
}

// A process that answers on the socket without holding the lock (a node
// of an older version) is detected by connecting.
func TestLiveSocketWithoutLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	l, err := Listen(path)
	if !errors.Is(err, ErrAlreadyRunning) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("Listen: %v, want ErrAlreadyRunning", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the live socket was removed: %v", err)
	}
	other.Close()
	wg.Wait()
}

func TestRelisten(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	for i := 0; i < 2; i++ {
		l, err := Listen(path)
		if err != nil {
			t.Fatalf("Listen #%d: %v", i+1, err)
		}
		if got := l.Addr().String(); got != path {
			t.Errorf("Addr = %q, want %q", got, path)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
}

func TestNotRunning(t *testing.T) {
	c := dial(t, filepath.Join(t.TempDir(), SocketName))
	_, err := c.Status(context.Background())
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Status without a node: %v, want ErrNotRunning", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Ping without a node: %v, want ErrNotRunning", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("ErrNotRunning is also an *Error: %v", e)
	}
}

func TestErrors(t *testing.T) {
	b := canned()
	_, path := serve(t, b)
	c := dial(t, path)
	ctx := context.Background()

	// An *Error passes through with its status and hint.
	_, err := c.Message(ctx, "cdcdcdcdcd", false)
	var e *Error
	if !errors.As(err, &e) || e.Code != http.StatusNotFound || e.Message != "no message cdcdcdcdcd" || e.Hint != "list messages with `dsep inbox`" {
		t.Errorf("Message(unknown) = %#v", err)
	}

	// Code 0 is sent as 400.
	b.err = &Error{Message: "From is not your address", Hint: "send as alice@example.org"}
	_, err = c.Send(ctx, &SendRequest{To: []string{"bob@example.org"}, Mail: []byte("x")})
	if !errors.As(err, &e) || e.Code != http.StatusBadRequest || e.Hint != "send as alice@example.org" {
		t.Errorf("Send = %#v", err)
	}

	// Any other error becomes a 500 that does not leak it.
	b.err = errors.New("badger: /home/alice/.local/share/dsep/store: secret detail")
	_, err = c.Status(ctx)
	if !errors.As(err, &e) || e.Code != http.StatusInternalServerError || strings.Contains(e.Message, "secret") || strings.Contains(e.Hint, "secret") {
		t.Errorf("Status with an internal error = %#v", err)
	}

	// So does a panic, and the server goes on.
	b.err, b.panicMsg = nil, "boom"
	_, err = c.Outbox(ctx)
	if !errors.As(err, &e) || e.Code != http.StatusInternalServerError || strings.Contains(e.Message, "boom") {
		t.Errorf("Outbox with a panic = %#v", err)
	}
	b.panicMsg = ""
	if _, err := c.Outbox(ctx); err != nil {
		t.Errorf("Outbox after a panic: %v", err)
	}

	// A malformed ID never reaches the backend.
	b.gotID = ""
	for _, id := range []string{"abc", "zzzzzzzzzz", strings.Repeat("a", 65)} {
		_, err = c.Message(ctx, id, false)
		if !errors.As(err, &e) || e.Code != http.StatusBadRequest {
			t.Errorf("Message(%q) = %v, want a 400", id, err)
		}
	}
	if b.gotID != "" {
		t.Errorf("backend asked for %q", b.gotID)
	}
}

// rawClient speaks plain HTTP to the socket, to send what Client would not.
func rawClient(t *testing.T, path string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestBadRequests(t *testing.T) {
	b := canned()
	_, path := serve(t, b)
	hc := rawClient(t, path)
	tests := []struct {
		method, url, ctype, body string
		want                     int
	}{
		{"GET", "/v1/status?x=1", "", "", 400},
		{"GET", "/v1/nothing", "", "", 404},
		{"DELETE", "/v1/status", "", "", 404},
		{"GET", "/v2/status", "", "", 404},
		{"GET", "/v1/messages?limit=-1", "", "", 400},
		{"GET", "/v1/messages?limit=x", "", "", 400},
		{"GET", "/v1/messages?folder=a&folder=b", "", "", 400},
		{"GET", "/v1/messages?folder=a%0Ab", "", "", 400},
		{"GET", "/v1/messages/abababab?raw=maybe", "", "", 400},
		{"GET", "/v1/messages/abab", "", "", 400},
		{"POST", "/v1/send", "message/rfc822", "mail", 400},                                     // no recipient
		{"POST", "/v1/send?to=bob@example.org", "application/json", "{}", 415},                  // wrong type
		{"POST", "/v1/send?to=bob@example.org", "message/rfc822", "", 400},                      // empty mail
		{"POST", "/v1/send?to=bob@example.org%0D%0ABcc:x", "message/rfc822", "mail", 400},       // control characters
		{"POST", "/v1/send?to=bob@example.org&cc=carol@example.org", "message/rfc822", "", 400}, // unknown parameter
		{"GET", "/v1/messages/abababab", "", "", 200},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, "http://dsep"+tt.url, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d %s, want %d", tt.method, tt.url, resp.StatusCode, body, tt.want)
			continue
		}
		if tt.want != 200 {
			var e Error
			if err := decodeJSON(bytes.NewReader(body), 1<<20, &e); err != nil || e.Message == "" || e.Code != tt.want {
				t.Errorf("%s %s: error body %q", tt.method, tt.url, body)
			}
		}
	}
	if len(b.sent) != 0 {
		t.Errorf("backend got %d sends", len(b.sent))
	}
}

func TestSendSizeLimit(t *testing.T) {
	b := canned()
	_, path := serve(t, b, func(s *Server) { s.MaxMailBytes = 1000 })
	c := dial(t, path)
	ctx := context.Background()

	// Exactly the limit passes.
	if _, err := c.Send(ctx, &SendRequest{To: []string{"bob@example.org"}, Mail: bytes.Repeat([]byte("a"), 1000)}); err != nil {
		t.Fatalf("Send at the limit: %v", err)
	}
	// One byte more is refused with a 413, before the backend.
	_, err := c.Send(ctx, &SendRequest{To: []string{"bob@example.org"}, Mail: bytes.Repeat([]byte("a"), 1001)})
	var e *Error
	if !errors.As(err, &e) || e.Code != http.StatusRequestEntityTooLarge || e.Hint == "" {
		t.Fatalf("Send over the limit: %#v", err)
	}
	// Far over the limit (the body is never sent).
	_, err = c.Send(ctx, &SendRequest{To: []string{"bob@example.org"}, Mail: bytes.Repeat([]byte("a"), 8<<20)})
	if !errors.As(err, &e) || e.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("Send far over the limit: %#v", err)
	}
	// A body without a Content-Length is cut off while read.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(bytes.Repeat([]byte("b"), 4000))
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://dsep/v1/send?to=bob@example.org", pr)
	req.Header.Set("Content-Type", "message/rfc822")
	resp, err := rawClient(t, path).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: status %d", resp.StatusCode)
	}
	if len(b.sent) != 1 {
		t.Errorf("backend got %d sends, want 1", len(b.sent))
	}
	// Too many recipients.
	to := make([]string, MaxRecipients+1)
	for i := range to {
		to[i] = "bob@example.org"
	}
	if _, err := c.Send(ctx, &SendRequest{To: to, Mail: []byte("x")}); !errors.As(err, &e) || e.Code != http.StatusBadRequest {
		t.Errorf("Send to %d recipients: %v", len(to), err)
	}
}

// The response limit of the client holds even against a misbehaving server.
func TestResponseLimit(t *testing.T) {
	var out Status
	big := `{"version":"` + strings.Repeat("v", 100) + `"}`
	if err := decodeJSON(strings.NewReader(big), 50, &out); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("decodeJSON over the limit: %v", err)
	}
	if err := decodeJSON(strings.NewReader(`{"version":"v"} {}`), 1000, &out); err == nil {
		t.Error("decodeJSON accepted trailing data")
	}
	if err := decodeJSON(strings.NewReader(`{"version":"v","future_field":1}`), 1000, &out); err != nil || out.Version != "v" {
		t.Errorf("decodeJSON with an unknown field: %v", err)
	}
}

func TestCheckID(t *testing.T) {
	full := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{full, full, false},
		{strings.ToUpper(full), full, false},
		{"0123abcd", "0123abcd", false},
		{"0123abc", "", true},
		{full + "0", "", true},
		{"0123abcg", "", true},
		{"", "", true},
		{"../../etc", "", true},
	}
	for _, tt := range tests {
		got, err := CheckID(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("CheckID(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestContextCanceled(t *testing.T) {
	_, path := serve(t, canned())
	c := dial(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Status with a canceled context: %v", err)
	}
	c.Timeout = time.Nanosecond
	if _, err := c.Status(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Status past its timeout: %v", err)
	}
}
