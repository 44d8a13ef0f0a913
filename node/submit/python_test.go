package submit

// The Python test needs python3 (standard library only). It skips loudly
// without it, and fails under CI (see testtool.Require).

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/testnet/testtool"
)

// TestPythonSmtplib drives the server with Python's smtplib, as a
// script or a mail client built on it would.
func TestPythonSmtplib(t *testing.T) {
	python := testtool.Require(t, "python3")
	be := &fakeBackend{}
	const limit = 64 << 10
	addr, _ := testServer(t, Config{Backend: be, MaxMessageBytes: limit})
	host, port, _ := net.SplitHostPort(addr)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/smtplib_client.py", host, port, testUser, testPass)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("smtplib_client.py: %v\n%s", err, stderr.Bytes())
	}
	var res struct {
		Features   map[string]string `json:"features"`
		NoAuth     []any             `json:"no_auth"`
		BadLogin   []any             `json:"bad_login"`
		Bcc        map[string]any    `json:"bcc"`
		Permanent  map[string][]any  `json:"permanent"`
		Temporary  map[string][]any  `json:"temporary"`
		Partial    map[string][]any  `json:"partial"`
		MailFrom   []any             `json:"mail_from"`
		FromHeader []any             `json:"from_header"`
		Oversize   []any             `json:"oversize"`
		LongLine   string            `json:"long_line"`
		Noop       int               `json:"noop"`
		LoginIR    int               `json:"login_ir"`
		LoginNoIR  int               `json:"login_no_ir"`
		Extra      map[string]any    `json:"-"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("smtplib saw: %s", out)

	if res.Features["size"] != "65536" || !strings.Contains(res.Features["auth"], "PLAIN") ||
		!strings.Contains(res.Features["auth"], "LOGIN") {
		t.Errorf("EHLO features %v", res.Features)
	}
	if _, ok := res.Features["chunking"]; ok {
		t.Error("CHUNKING announced")
	}
	wantReply := func(name string, got []any, code int, text string) {
		t.Helper()
		if len(got) != 2 || got[0] != float64(code) || !strings.Contains(got[1].(string), text) {
			t.Errorf("%s: got %v, want %d ... %q", name, got, code, text)
		}
	}
	wantReply("no auth", res.NoAuth, 530, "5.7.0 Authentication required")
	wantReply("bad login", res.BadLogin, 535, "5.7.8")
	if len(res.Bcc) != 0 {
		t.Errorf("Bcc message: refused %v", res.Bcc)
	}
	wantReply("permanent", res.Permanent["x@nodsep.example"], 550, "5.1.1 <x@nodsep.example>: no DSEP key")
	wantReply("temporary", res.Temporary["y@flaky.example"], 451, "4.4.3")
	wantReply("partial", res.Partial["x@nodsep.example"], 550, "5.1.1")
	wantReply("MAIL FROM", res.MailFrom, 553, "5.7.1")
	wantReply("From header", res.FromHeader, 550, "5.7.1")
	wantReply("oversize", res.Oversize, 552, "5.3.4")
	if res.LongLine != "accepted" || res.Noop != 250 || res.LoginIR != 235 || res.LoginNoIR != 235 {
		t.Errorf("long line %q, NOOP %d, LOGIN %d/%d", res.LongLine, res.Noop, res.LoginIR, res.LoginNoIR)
	}

	subs := be.submissions()
	if len(subs) != 5 {
		t.Fatalf("%d submissions, want 5", len(subs))
	}
	bcc := subs[0]
	if !slices.Equal(bcc.rcpts, []string{"bob@example.org", "carol@example.org", "dave@example.org"}) {
		t.Errorf("Bcc message went to %q", bcc.rcpts)
	}
	if bytes.Contains(bytes.ToLower(bcc.mail), []byte("bcc")) || !bytes.Contains(bcc.mail, []byte("Cc: carol@example.org\r\n")) {
		t.Errorf("Bcc message as submitted:\n%s", bcc.mail)
	}
	if !slices.Equal(subs[1].rcpts, []string{"bob@example.org"}) {
		t.Errorf("partial message went to %q", subs[1].rcpts)
	}
	if !bytes.Contains(subs[2].mail, []byte(strings.Repeat("z", 5000)+"\r\n")) {
		t.Error("the long line did not arrive intact")
	}
}
