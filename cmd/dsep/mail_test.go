package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/control"
	"github.com/emersion/go-message/mail"
)

// mailBackend is a node's control API backend with canned answers: these
// tests are about the commands, the control API has its own.
type mailBackend struct {
	mu     sync.Mutex
	sent   []*control.SendRequest
	status control.Status
	list   []control.Summary
	msgs   map[string]*control.Message
	outbox []control.OutboxEntry
}

func (b *mailBackend) Status(ctx context.Context) (*control.Status, error) {
	st := b.status
	return &st, nil
}

func (b *mailBackend) Send(ctx context.Context, req *control.SendRequest) (*control.SendResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, req)
	if !bytes.Contains(req.Mail, []byte("From: <alice@example.org>")) && !bytes.Contains(req.Mail, []byte("<alice@example.org>")) {
		return nil, control.Errorf(400, "send as alice@example.org", "From is not this node's address")
	}
	res := &control.SendResult{}
	for i, to := range req.To {
		res.Queued = append(res.Queued, control.Queued{To: to, MessageID: strings.Repeat(string(rune('a'+i)), 64), Status: control.StatePending})
	}
	return res, nil
}

func (b *mailBackend) List(ctx context.Context, folder string, limit int) ([]control.Summary, error) {
	if folder != "" && folder != "INBOX" {
		return nil, control.Errorf(404, "", "no folder %s", folder)
	}
	if limit > 0 && limit < len(b.list) {
		return b.list[:limit], nil
	}
	return b.list, nil
}

func (b *mailBackend) Message(ctx context.Context, id string, raw bool) (*control.Message, error) {
	var found *control.Message
	for full, m := range b.msgs {
		if strings.HasPrefix(full, id) {
			found = m
		}
	}
	if found == nil {
		return nil, control.Errorf(404, "list messages with `dsep inbox`", "no message %s", id)
	}
	m := *found
	if !raw {
		m.Raw = ""
	}
	return &m, nil
}

func (b *mailBackend) Outbox(ctx context.Context) ([]control.OutboxEntry, error) {
	return b.outbox, nil
}

var mt0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

const (
	idVerified = "3fa9c0d1e2b4" + "00000000000000000000000000000000000000000000000000000"
	idForged   = "77aa00bb11cc" + "00000000000000000000000000000000000000000000000000000"
	idMultip   = "88bb00cc11dd" + "00000000000000000000000000000000000000000000000000000"
)

func cannedBackend() *mailBackend {
	verified := control.Summary{ID: idVerified[:64], Folder: "INBOX", UID: 1, From: "Bob <bob@example.org>", To: []string{"alice@example.org"},
		Subject: "Lunch", Date: mt0, Received: mt0, Size: 100,
		Verification: control.Verification{Status: control.VerifyVerified, Signer: "0123456789abcdef0123456789abcdef01234567"}, Direction: control.DirectionIn}
	forged := control.Summary{ID: idForged[:64], Folder: "INBOX", UID: 2, From: "Mallory <bob@example.org>", To: []string{"alice@example.org"},
		Subject: "\x1b[2Jurgent \u202egnp.exe", Date: mt0.Add(time.Hour), Received: mt0.Add(time.Hour), Size: 100, Flags: []string{`\Seen`},
		Verification: control.Verification{Status: "mismatch", Signer: "89abcdef0123456789abcdef0123456789abcdef", Detail: "the key bound to bob@example.org is 0123…"},
		Direction:    control.DirectionIn}
	multi := control.Summary{ID: idMultip[:64], Folder: "INBOX", UID: 3, From: "Bob <bob@example.org>", Subject: "Files",
		Verification: control.Verification{Status: "superseded"}, Direction: control.DirectionIn}
	multiBody := "From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Files\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe \x1b]0;pwned\x07\r\n" +
		"--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=report.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--XX--\r\n"
	return &mailBackend{
		status: control.Status{
			Version: "v0.1.0", Fingerprint: "0123456789abcdef0123456789abcdef01234567", Emails: []string{"alice@example.org"},
			PeerID: "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE", Listen: []string{"/ip4/127.0.0.1/tcp/4101/p2p/12D3KooW…"},
			StartedAt: time.Now().Add(-time.Hour),
			DHT:       control.DHTStatus{RoutingTable: 17, Republished: 3, LastRepublish: mt0, RepublishFailures: 2},
			Queue:     control.QueueStatus{Pending: 1, Delivered: 5, Failed: 1, OldestPending: mt0},
			Mailbox:   control.MailboxStatus{Messages: 3, Unseen: 2},
			Delivery:  control.DeliveryStatus{Received: 4, Duplicates: 1, Rejected: 7, Decrypted: 3},
			Alerts:    []control.Alert{{Kind: "foreign_key", Email: "alice@example.org", Message: "DNS names another key for alice@example.org", At: mt0}},
			Warnings:  []string{"republishing failed twice"},
		},
		list: []control.Summary{forged, verified, multi},
		msgs: map[string]*control.Message{
			idVerified[:64]: {Summary: verified, Body: []byte("From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Lunch\r\nDate: Sat, 14 Mar 2026 15:09:26 +0000\r\n\r\nNoon at the usual place?\r\n\x1b[31mred\x1b[0m\r\n"),
				Raw: "-----BEGIN PGP MESSAGE-----\n\nwV4D…\n-----END PGP MESSAGE-----\n"},
			idMultip[:64]: {Summary: multi, Body: []byte(multiBody)},
		},
		outbox: []control.OutboxEntry{{
			ID: strings.Repeat("c", 64), To: "bob@example.org", Recipient: "0123456789abcdef0123456789abcdef01234567",
			Created: mt0, Expires: mt0.Add(120 * time.Hour), Status: control.StatePending,
			Delegates: []control.DelegateStatus{
				{Peer: "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE", Role: "device", Status: control.StatePending, Attempts: 3, NextTry: mt0.Add(time.Minute), LastError: "dial backoff"},
				{Peer: "12D3KooWmailbox", Role: "mailbox", Status: control.StateDelivered, Attempts: 1, DeliveredAt: mt0},
			},
		}, {
			ID: strings.Repeat("d", 64), To: "carol@example.org", Created: mt0, Expires: mt0.Add(time.Hour), Status: control.StateDelivered,
			Receipt: &mt0,
		}},
	}
}

// startNode makes a user data directory for alice@example.org with a
// control API served by b, as `dsep run` would.
func startNode(t *testing.T, b control.Backend) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "alice")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(meta{Kind: kindUser, Email: "alice@example.org", Created: mt0})
	if err := os.WriteFile(filepath.Join(dir, metaFile), m, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := control.Listen(filepath.Join(dir, control.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	s := control.NewServer(b, nil)
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		<-done
	})
	return dir
}

// dsep runs one command line and returns its exit status and output.
func dsep(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestMailNotRunning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "alice")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(meta{Kind: kindUser, Email: "alice@example.org"})
	if err := os.WriteFile(filepath.Join(dir, metaFile), m, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"status"}, {"inbox"}, {"outbox"}, {"read", "3fa9c0d1e2b4"}, {"send", "--to", "bob@example.org"},
		{"status", "--json"},
	} {
		code, out, errs := dsep(t, "hi", append([]string{"--data", dir}, args...)...)
		want := "dsep: error: no node is running for " + dir + "\ndsep: hint: start it with `dsep run`\n"
		if code != 1 || errs != want || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want stderr %q", args, code, out, errs, want)
		}
	}
	// Nor for a data directory that does not exist.
	missing := filepath.Join(t.TempDir(), "nobody")
	if code, _, errs := dsep(t, "", "--data", missing, "status"); code != 1 || !strings.Contains(errs, "no node is running for "+missing) {
		t.Errorf("status of a missing directory: exit %d, %q", code, errs)
	}
}

// A data directory others can write to could hold someone else's socket:
// the commands refuse it before connecting.
func TestMailRefusesOpenDataDir(t *testing.T) {
	dir := startNode(t, cannedBackend())
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	code, _, errs := dsep(t, "", "--data", dir, "inbox")
	if code != 1 || !strings.Contains(errs, "accessible to other users") {
		t.Errorf("inbox in a 0770 directory: exit %d, %q", code, errs)
	}
}

func TestMailSend(t *testing.T) {
	b := cannedBackend()
	dir := startNode(t, b)
	att := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(att, []byte("%PDF-1.4 fake"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := dsep(t, "Noon?\nAt the usual place.\n", "--data", dir, "send",
		"--to", "Bob <bob@example.org>", "--to", "carol@example.org, Dave <dave@example.org>",
		"--cc", "erin@example.org", "--bcc", "frank@example.org", "--bcc", "BOB@example.org",
		"--subject", "Lunch — Grüße", "--attach", att)
	if code != 0 {
		t.Fatalf("send: exit %d: %s", code, errs)
	}
	if len(b.sent) != 1 {
		t.Fatalf("backend got %d sends", len(b.sent))
	}
	req := b.sent[0]
	wantTo := []string{"bob@example.org", "carol@example.org", "dave@example.org", "erin@example.org", "frank@example.org"}
	if strings.Join(req.To, " ") != strings.Join(wantTo, " ") {
		t.Errorf("envelope recipients %q, want %q", req.To, wantTo)
	}
	for i, to := range wantTo {
		line := strings.Repeat(string(rune('a'+i)), 12) + "  pending  " + to + "\n"
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	mr, err := mail.CreateReader(bytes.NewReader(req.Mail))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := mr.Header.Subject(); s != "Lunch — Grüße" {
		t.Errorf("Subject %q", s)
	}
	if from, _ := mr.Header.AddressList("From"); len(from) != 1 || from[0].Address != "alice@example.org" {
		t.Errorf("From %v", from)
	}
	if to, _ := mr.Header.AddressList("To"); len(to) != 3 || to[0].Name != "Bob" || to[2].Address != "dave@example.org" {
		t.Errorf("To %v", to)
	}
	if cc, _ := mr.Header.AddressList("Cc"); len(cc) != 1 || cc[0].Address != "erin@example.org" {
		t.Errorf("Cc %v", cc)
	}
	if bytes.Contains(bytes.ToLower(req.Mail), []byte("frank")) {
		t.Error("the Bcc recipient is named in the message")
	}
	var texts, files []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p.Body)
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			texts = append(texts, string(body))
		case *mail.AttachmentHeader:
			name, _ := h.Filename()
			files = append(files, name+"="+string(body))
		}
	}
	if len(texts) != 1 || texts[0] != "Noon?\r\nAt the usual place.\r\n" {
		t.Errorf("text parts %q", texts)
	}
	if len(files) != 1 || files[0] != "report.pdf=%PDF-1.4 fake" {
		t.Errorf("attachments %q", files)
	}

	// --json prints what was queued.
	code, out, errs = dsep(t, "hi", "--data", dir, "send", "--to", "bob@example.org", "--json")
	if code != 0 {
		t.Fatalf("send --json: exit %d: %s", code, errs)
	}
	var res control.SendResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Queued) != 1 || res.Queued[0].MessageID != strings.Repeat("a", 64) {
		t.Errorf("send --json: %v\n%s", err, out)
	}
}

func TestMailSendErrors(t *testing.T) {
	b := cannedBackend()
	dir := startNode(t, b)
	tests := []struct {
		stdin string
		args  []string
		want  string
	}{
		{"hi", []string{"send"}, "dsep: error: no recipient\ndsep: hint: name a recipient with --to ADDRESS\n"},
		{"hi", []string{"send", "--to", "not an address"}, `dsep: error: bad --to "not an address"`},
		{"hi", []string{"send", "--to", "bob@example.org", "--subject", "a\nBcc: eve@example.org"}, "dsep: hint: give the subject and addresses on one line"},
		{"caf\xe9", []string{"send", "--to", "bob@example.org"}, "dsep: error: the message text is not UTF-8"},
		{"hi", []string{"send", "--to", "bob@example.org", "--attach", "/nonexistent/file"}, "dsep: error: attaching /nonexistent/file"},
	}
	for _, tt := range tests {
		code, _, errs := dsep(t, tt.stdin, append([]string{"--data", dir}, tt.args...)...)
		if code != 1 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", tt.args, code, errs, tt.want)
		}
	}
	if len(b.sent) != 0 {
		t.Errorf("backend got %d sends", len(b.sent))
	}
	// An error of the node reaches the user with its hint.
	b2 := cannedBackend()
	dir2 := startNode(t, b2)
	m, _ := json.Marshal(meta{Kind: kindUser, Email: "mallory@example.org"})
	os.WriteFile(filepath.Join(dir2, metaFile), m, 0o600)
	code, _, errs := dsep(t, "hi", "--data", dir2, "send", "--to", "bob@example.org")
	if code != 1 || errs != "dsep: error: From is not this node's address\ndsep: hint: send as alice@example.org\n" {
		t.Errorf("send refused by the node: exit %d, %q", code, errs)
	}
}

func TestMailInbox(t *testing.T) {
	dir := startNode(t, cannedBackend())
	code, out, errs := dsep(t, "", "--data", dir, "inbox")
	if code != 0 {
		t.Fatalf("inbox: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("inbox printed %d lines:\n%s", len(lines), out)
	}
	for i, want := range [][]string{
		{"ID", "DATE", "FROM", "SUBJECT", "SIGNATURE"},
		{"  77aa00bb11cc", "Mallory <bob@example.org>", "urgent", "✘ binding mismatch"},
		{"* 3fa9c0d1e2b4", "Bob <bob@example.org>", "Lunch", "✔ verified"},
		{"* 88bb00cc11dd", "Files", "! SUPERSEDED KEY"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	// Every verdict has its mark, in either spelling.
	for status, want := range map[string]string{
		control.VerifyVerified: "✔ verified", "unknown-key": "? unknown key", control.VerifyUnknownKey: "? unknown key",
		control.VerifySuperseded: "! SUPERSEDED KEY", control.VerifyRevoked: "✘ REVOKED KEY", control.VerifyMismatch: "✘ binding mismatch",
		"bad-signature": "✘ BAD SIGNATURE", control.VerifyUnsigned: "? unsigned", control.VerifyGateway: "~ via gateway",
		"": "? not checked", "\x1bnew": "? \uFFFDnew",
	} {
		s := control.Summary{Verification: control.Verification{Status: status}, Direction: control.DirectionIn}
		if got := verifyMark(&s); got != want {
			t.Errorf("verifyMark(%q) = %q, want %q", status, got, want)
		}
	}
	if strings.ContainsAny(out, "\x1b\u202e") {
		t.Errorf("inbox printed a control character or a bidi override:\n%q", out)
	}

	code, out, _ = dsep(t, "", "--data", dir, "inbox", "--limit", "1", "--json")
	var j []control.Summary
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || len(j) != 1 || j[0].ID != idForged[:64] {
		t.Errorf("inbox --json: exit %d\n%s", code, out)
	}

	code, _, errs = dsep(t, "", "--data", dir, "inbox", "--folder", "Archive")
	if code != 1 || errs != "dsep: error: no folder Archive\n" {
		t.Errorf("inbox of an unknown folder: exit %d, %q", code, errs)
	}
}

func TestMailRead(t *testing.T) {
	dir := startNode(t, cannedBackend())
	code, out, errs := dsep(t, "", "--data", dir, "read", "3fa9c0d1e2b4")
	if code != 0 {
		t.Fatalf("read: exit %d: %s", code, errs)
	}
	if !strings.HasPrefix(out, "✔ verified (key 0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567)\n") {
		t.Errorf("read does not start with the verdict:\n%s", out)
	}
	for _, w := range []string{"From:     Bob <bob@example.org>", "Subject:  Lunch", "\nNoon at the usual place?\n\uFFFD[31mred\uFFFD[0m\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("read lacks %q:\n%s", w, out)
		}
	}

	// A MIME message: the text decoded from its charset, escapes
	// defused, attachments listed.
	code, out, errs = dsep(t, "", "--data", dir, "read", "88BB00CC11DD")
	if code != 0 {
		t.Fatalf("read: exit %d: %s", code, errs)
	}
	for _, w := range []string{"! SUPERSEDED KEY", "Grüße", "[the rest of the text could not be decoded", "[attachment 1: report.pdf (application/pdf, 8 bytes)]"} {
		if !strings.Contains(out, w) {
			t.Errorf("read lacks %q:\n%s", w, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("read printed a control character:\n%q", out)
	}

	// --raw: only the armored original.
	code, out, _ = dsep(t, "", "--data", dir, "read", "3fa9c0d1", "--raw")
	if code != 0 || out != "-----BEGIN PGP MESSAGE-----\n\nwV4D…\n-----END PGP MESSAGE-----\n" {
		t.Errorf("read --raw: exit %d\n%q", code, out)
	}
	// --source: the message as it is.
	code, out, _ = dsep(t, "", "--data", dir, "read", "88bb00cc11dd", "--source")
	if code != 0 || !strings.HasPrefix(out, "From: Bob <bob@example.org>\r\n") || !strings.Contains(out, "\x1b]0;pwned") {
		t.Errorf("read --source: exit %d\n%q", code, out)
	}
	// --json.
	code, out, _ = dsep(t, "", "--data", dir, "read", "3fa9c0d1e2b4", "--json", "--raw")
	var j readJSON
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j.ID != idVerified[:64] || !strings.Contains(j.Body, "Noon") || j.Raw == "" || j.Verification.Status != "verified" {
		t.Errorf("read --json: exit %d\n%s", code, out)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"read", "3fa9"}, "dsep: error: bad message ID \"3fa9\"\ndsep: hint: give the message ID, or at least its first 8 hex digits"},
		{[]string{"read", "ffffffffffff"}, "dsep: error: no message ffffffffffff\ndsep: hint: list messages with `dsep inbox`\n"},
		{[]string{"read", "88bb00cc11dd", "--raw"}, "dsep: error: message 88bb00cc11dd has no OpenPGP original"},
		{[]string{"read", "88bb00cc11dd", "--raw", "--source"}, "dsep: error: --raw and --source together"},
	} {
		code, _, errs := dsep(t, "", append([]string{"--data", dir}, tt.args...)...)
		if code != 1 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, %q; want %q", tt.args, code, errs, tt.want)
		}
	}
}

func TestMailOutbox(t *testing.T) {
	dir := startNode(t, cannedBackend())
	code, out, errs := dsep(t, "", "--data", dir, "outbox")
	if code != 0 {
		t.Fatalf("outbox: exit %d: %s", code, errs)
	}
	for _, w := range []string{"cccccccccccc  to bob@example.org  PENDING", "device   12D3KooW…w3UERE  pending, 3 attempt(s), next try",
		"last error: dial backoff", "mailbox  12D3KooWmailbox  delivered, 1 attempt(s), delivered", "dddddddddddd  to carol@example.org  DELIVERED",
		"receipt  signed receipt received"} {
		if !strings.Contains(out, w) {
			t.Errorf("outbox lacks %q:\n%s", w, out)
		}
	}
	code, out, _ = dsep(t, "", "--data", dir, "outbox", "--json")
	var j []control.OutboxEntry
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || len(j) != 2 || j[0].Delegates[0].Attempts != 3 {
		t.Errorf("outbox --json: exit %d\n%s", code, out)
	}
	// An empty outbox.
	dir2 := startNode(t, &mailBackend{})
	if code, out, _ := dsep(t, "", "--data", dir2, "outbox"); code != 0 || out != "the outbox is empty\n" {
		t.Errorf("empty outbox: exit %d, %q", code, out)
	}
	if code, out, _ := dsep(t, "", "--data", dir2, "outbox", "--json"); code != 0 || out != "[]\n" {
		t.Errorf("empty outbox --json: exit %d, %q", code, out)
	}
}

func TestMailStatus(t *testing.T) {
	dir := startNode(t, cannedBackend())
	code, out, errs := dsep(t, "", "--data", dir, "status")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	if !strings.HasPrefix(out, "!!! ALERT: DNS names another key for alice@example.org\n") {
		t.Errorf("status does not start with the alert:\n%s", out)
	}
	for _, w := range []string{"identity   alice@example.org", "12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE", "17 peers in the routing table",
		"the last 2 round(s) FAILED", "1 pending, 5 delivered, 1 failed, 0 bounced", "3 messages, 2 unread", "4 envelopes (1 duplicates, 7 rejected), 3 opened",
		"warning: republishing failed twice", "!!! 1 ALERT(S) above", "up         1h"} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}
	code, out, _ = dsep(t, "", "--data", dir, "status", "--json")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.DHT.RoutingTable != 17 || len(st.Alerts) != 1 {
		t.Errorf("status --json: exit %d\n%s", code, out)
	}
}

// A node that breaks mid-call is reported, not a panic or a hang.
func TestMailNodeInternalError(t *testing.T) {
	dir := startNode(t, &brokenBackend{})
	code, _, errs := dsep(t, "", "--data", dir, "status")
	if code != 1 || errs != "dsep: error: internal error in the node\ndsep: hint: the node's log has the details\n" {
		t.Errorf("status of a broken node: exit %d, %q", code, errs)
	}
}

type brokenBackend struct{ mailBackend }

func (*brokenBackend) Status(context.Context) (*control.Status, error) {
	return nil, errors.New("disk on fire")
}
