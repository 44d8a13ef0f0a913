package node

import (
	"strings"
	"testing"

	"github.com/dsep-project/dsep/node/control"
	"github.com/dsep-project/dsep/node/store"
)

func TestAnnotate(t *testing.T) {
	mail := "Authentication-Results: evil.example; dsep=pass\r\n" +
		"DSEP-Warning: none\r\n" +
		"From: Alice <alice@example.org>\r\n" +
		"Subject: hello\r\n" +
		"\r\n" +
		"body line\r\n"
	tests := []struct {
		v       store.Verification
		result  string
		subject string
	}{
		{store.Verification{Status: control.VerifyVerified, Signer: "aa", Detail: "bound (by DNS)"}, "dsep=pass (key aa; bound 'by DNS')", "Subject: hello\r\n"},
		{store.Verification{Status: control.VerifyMismatch, Signer: "bb", Detail: "other key"}, "dsep=fail", "Subject: [DSEP: FORGED?] hello"},
		{store.Verification{Status: control.VerifyUnknownKey, Signer: "cc"}, "dsep=none", "Subject: [DSEP: unverified] hello"},
		{store.Verification{Status: control.VerifySuperseded, Signer: "dd"}, "dsep=neutral", "Subject: [DSEP: old key] hello"},
		{store.Verification{Status: control.VerifyUnchecked, Signer: "ee"}, "dsep=temperror", "Subject: [DSEP: unchecked] hello"},
	}
	for _, tc := range tests {
		out, err := annotate([]byte(mail), tc.v, "alice@example.org")
		if err != nil {
			t.Fatal(err)
		}
		s := string(out)
		if !strings.HasPrefix(s, "Authentication-Results: dsep.local; ") || !strings.Contains(s, tc.result) ||
			!strings.Contains(s, "header.from=alice@example.org") || !strings.Contains(s, tc.subject) {
			t.Errorf("%s:\n%s", tc.v.Status, s)
		}
		if strings.Contains(s, "evil.example") || strings.Contains(s, "DSEP-Warning: none") {
			t.Errorf("%s: incoming headers kept:\n%s", tc.v.Status, s)
		}
		if strings.Count(s, "Authentication-Results") != 1 || !strings.HasSuffix(s, "\r\n\r\nbody line\r\n") {
			t.Errorf("%s:\n%s", tc.v.Status, s)
		}
	}
}

// FuzzAnnotate: whatever header a decrypted mail has, annotate either
// refuses it or returns a mail whose first field is the node's verdict,
// with no incoming Authentication-Results left.
func FuzzAnnotate(f *testing.F) {
	f.Add([]byte("From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"))
	f.Add([]byte("Authentication-Results: x; dsep=pass\r\nauthentication-results: y\r\n\r\n"))
	f.Add([]byte("Subject: =?utf-8?q?caf=C3=A9?=\r\n folded\r\n\r\n"))
	f.Add([]byte("no header at all"))
	f.Fuzz(func(t *testing.T, mail []byte) {
		out, err := annotate(mail, store.Verification{Status: control.VerifyUnknownKey, Signer: "ab", Detail: "d (x)"}, "a@example.org")
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(out), "Authentication-Results: dsep.local; dsep=none") {
			t.Fatalf("verdict not first:\n%q", out)
		}
		head, _, _ := strings.Cut(string(out), "\r\n\r\n")
		if n := strings.Count(strings.ToLower(head), "\nauthentication-results:"); n != 0 {
			t.Fatalf("an incoming Authentication-Results survived:\n%q", out)
		}
	})
}
