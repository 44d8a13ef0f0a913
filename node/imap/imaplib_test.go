package imap

// The Python test needs python3 (standard library only). It skips loudly
// without it, and fails under CI (see testtool.Require).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/store"
	"github.com/dsep-project/dsep/testnet/testtool"
)

// TestPythonImaplib drives the server with Python's imaplib, as a script
// or a mail client built on it would.
func TestPythonImaplib(t *testing.T) {
	python := testtool.Require(t, "python3")
	ts := newServer(t)
	deliver(t, ts.st, store.FolderInbox, multipart)
	deliver(t, ts.st, store.FolderInbox, simple(2, "Zoe <zoe@example.net>", "Lunch", "see you"), `\Seen`)
	deliver(t, ts.st, store.FolderInbox, simple(3, "zoe@example.net", "Invoice", "pay"))
	host, port, _ := net.SplitHostPort(ts.addr)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/imaplib_client.py", host, port, testUser, testPassword)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("imaplib_client.py: %v\n%s", err, stderr.Bytes())
	}
	t.Logf("imaplib saw: %s", out)
	var res struct {
		Capabilities  []string `json:"capabilities"`
		BadLogin      string   `json:"bad_login"`
		Login         string   `json:"login"`
		List          []string `json:"list"`
		Select        []any    `json:"select"`
		FetchEnvelope []any    `json:"fetch_envelope"`
		Body          string   `json:"body"`
		UIDSearchFrom []string `json:"uid_search_from"`
		SearchUnseen  []string `json:"search_unseen"`
		Store         []string `json:"store"`
		Append        []any    `json:"append"`
		Copy          []any    `json:"copy"`
		Expunge       []any    `json:"expunge"`
		Status        []string `json:"status"`
		SelectMissing string   `json:"select_missing"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, c := range []string{"IMAP4REV1", "AUTH=PLAIN"} {
		if !slices.Contains(res.Capabilities, c) {
			t.Errorf("capabilities %v lack %s", res.Capabilities, c)
		}
	}
	if !strings.Contains(res.BadLogin, "AUTHENTICATIONFAILED") || res.Login != "OK" {
		t.Errorf("logins: %q, %q", res.BadLogin, res.Login)
	}
	if !slices.ContainsFunc(res.List, func(l string) bool { return strings.HasPrefix(l, `(\HasNoChildren \Sent) "/" `) }) {
		t.Errorf("LIST %v", res.List)
	}
	if res.Select[0] != "OK" || res.Select[1].([]any)[0] != "3" {
		t.Errorf("SELECT %v", res.Select)
	}
	env := strings.Join(strings.Fields(strings.ReplaceAll(jsonString(res.FetchEnvelope), `\"`, `"`)), " ")
	for _, want := range []string{`UID 1`, fmt.Sprint("RFC822.SIZE ", len(multipart)), `"Quarterly report"`, `(("=?utf-8?q?Al=C3=AFce?=" NIL "alice" "example.org"))`, `"<report@example.org>"`} {
		if !strings.Contains(env, want) {
			t.Errorf("FETCH ENVELOPE %s lacks %s", env, want)
		}
	}
	if b, _ := base64.StdEncoding.DecodeString(res.Body); string(b) != multipart {
		t.Errorf("BODY[] = %q", b)
	}
	if len(res.UIDSearchFrom) != 1 || res.UIDSearchFrom[0] != "2 3" || len(res.SearchUnseen) != 1 || res.SearchUnseen[0] != "1 3" {
		t.Errorf("SEARCH: %v, %v", res.UIDSearchFrom, res.SearchUnseen)
	}
	if len(res.Store) != 1 || !strings.Contains(res.Store[0], `FLAGS ($Python \Flagged)`) {
		t.Errorf("STORE %v", res.Store)
	}
	if res.Append[0] != "OK" || !strings.Contains(jsonString(res.Append), "APPENDUID") {
		t.Errorf("APPEND %v", res.Append)
	}
	if res.Copy[0] != "OK" || res.Expunge[0] != "OK" || !strings.Contains(jsonString(res.Expunge), "2") {
		t.Errorf("COPY %v, EXPUNGE %v", res.Copy, res.Expunge)
	}
	if len(res.Status) != 1 || !strings.Contains(res.Status[0], "MESSAGES 2") || !strings.Contains(res.Status[0], "UNSEEN 2") {
		t.Errorf("STATUS %v", res.Status)
	}
	if !strings.HasPrefix(res.SelectMissing, "NO [NONEXISTENT]") {
		t.Errorf("SELECT of a missing mailbox: %q", res.SelectMissing)
	}
	// What imaplib did is in the store.
	drafts, _ := ts.st.List("Drafts", 0, 0)
	if len(drafts) != 1 || drafts[0].Subject != "draft from imaplib" || !slices.Equal(drafts[0].Flags, []string{`\Draft`}) {
		t.Errorf("Drafts: %+v", drafts)
	}
	if m, _ := ts.st.Messages(store.FolderInbox, 0, []uint32{1}); len(m) != 1 || !slices.Equal(m[0].Flags, []string{"$Python", `\Flagged`}) {
		t.Errorf("flags of message 1: %+v", m)
	}
}

func jsonString(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return b.String()
}
