package submit

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func own(addr string) bool { return (&fakeBackend{}).OwnAddress(addr) }

func TestPrepare(t *testing.T) {
	const from = "From: Alice <alice@example.org>\r\n"
	for _, tc := range []struct {
		name    string
		in      string
		out     string // "" = in unchanged
		removed int
		code    int // reply code of the error; 0 = none
		ec      string
	}{
		{name: "no bcc", in: from + "To: bob@example.org\r\n\r\nbody\r\n"},
		{name: "header only", in: from + "Subject: x\r\n"},
		{name: "header only, no final CRLF on the blank line", in: from + "\r\n"},
		{
			name: "bcc", removed: 1,
			in:  from + "To: bob@example.org\r\nBcc: dave@example.org\r\nSubject: s\r\n\r\nbody\r\nBcc: in the body stays\r\n",
			out: from + "To: bob@example.org\r\nSubject: s\r\n\r\nbody\r\nBcc: in the body stays\r\n",
		},
		{
			name: "folded, upper case, first and last", removed: 3,
			in:  "BCC: a@example.org,\r\n\tb@example.org\r\n" + from + "bcc : c@example.org\r\nResent-Bcc: d@example.org\r\n\r\nx",
			out: from + "\r\nx",
		},
		{
			name: "empty bcc", removed: 1,
			in:  from + "Bcc:\r\nTo: bob@example.org\r\n\r\nx",
			out: from + "To: bob@example.org\r\n\r\nx",
		},
		{
			name: "bare LF", removed: 1,
			in:  from[:len(from)-2] + "\nBcc: d@example.org\nTo: b@example.org\n\nline\nline\n",
			out: from + "To: b@example.org\r\n\r\nline\nline\n",
		},
		{
			name: "folding of other fields kept", removed: 1,
			in:  from + "Subject: a\r\n  b\t\r\nBcc: d@example.org\r\n\r\n",
			out: from + "Subject: a\r\n  b\t\r\n\r\n",
		},
		{name: "bcc not counted in X-Bcc", in: from + "X-Bcc: d@example.org\r\n\r\n"},
		{name: "display name in an unknown charset", in: "From: =?x-unknown?q?Alice?= <alice@example.org>\r\n\r\n"},
		{name: "display name in UTF-8", in: "From: Alice Müller <alice@example.org>\r\n\r\n"},
		{name: "own sender", in: from + "Sender: " + aliceKey + "\r\n\r\n"},
		{name: "no from", in: "To: bob@example.org\r\n\r\n", code: 550, ec: "5.6.0"},
		{name: "empty message", in: "", code: 550, ec: "5.6.0"},
		{name: "empty from", in: "From:\r\n\r\n", code: 550, ec: "5.6.0"},
		{name: "two froms", in: from + from + "\r\n", code: 550, ec: "5.6.0"},
		{name: "from not own", in: "From: bob@example.org\r\n\r\n", code: 550, ec: "5.7.1"},
		{name: "from list, one not own", in: "From: alice@example.org, bob@example.org\r\n\r\n", code: 550, ec: "5.7.1"},
		{name: "sender not own", in: from + "Sender: bob@example.org\r\n\r\n", code: 550, ec: "5.7.1"},
		{name: "two senders", in: from + "Sender: alice@example.org\r\nSender: alice@example.org\r\n\r\n", code: 550, ec: "5.6.0"},
		{name: "unparsable sender", in: from + "Sender: <<\r\n\r\n", code: 550, ec: "5.6.0"},
		{name: "line without colon", in: from + "garbage\r\n\r\n", code: 554, ec: "5.6.0"},
		{name: "continuation first", in: " x: y\r\n" + from, code: 554, ec: "5.6.0"},
		{name: "bad key", in: "Fr\x00om: alice@example.org\r\n\r\n", code: 554, ec: "5.6.0"},
		{name: "bcc only", in: "Bcc: alice@example.org\r\n\r\n", code: 550, ec: "5.6.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, removed, err := prepare([]byte(tc.in), own)
			if tc.code != 0 {
				var serr *smtp.SMTPError
				if !errors.As(err, &serr) {
					t.Fatalf("got %v, want reply %d", err, tc.code)
				}
				ec := serr.EnhancedCode
				if serr.Code != tc.code || strings.Join([]string{itoa(ec[0]), itoa(ec[1]), itoa(ec[2])}, ".") != tc.ec {
					t.Fatalf("got %d %v %q, want %d %s", serr.Code, ec, serr.Message, tc.code, tc.ec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.out
			if want == "" {
				want = tc.in
			}
			if string(out) != want || removed != tc.removed {
				t.Fatalf("got %d removed,\n%q\nwant %d,\n%q", removed, out, tc.removed, want)
			}
		})
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestReplyText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"two\r\nlines\tand tab":   "two  lines and tab",
		"ctl\x00\x7f and ünïcode": "ctl?? and ?n?code",
		strings.Repeat("a", 500):  strings.Repeat("a", 400) + "...",
	} {
		if got := replyText(in); got != want {
			t.Errorf("replyText(%q) = %q, want %q", in, got, want)
		}
	}
}
