package compose

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/testnet/testtool"
	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

func TestMain(m *testing.M) { testtool.Main(m, 0, 2*time.Second) }

var date = time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("CET", 3600))

// part is what a parsed-back part holds.
type part struct {
	ctype, filename, cte string
	body                 string
}

// parse reads msg back with go-message and returns its header and parts.
func parse(t *testing.T, msg []byte) (*mail.Reader, []part) {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("parsing the message back: %v\n%s", err, msg)
	}
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v\n%s", err, msg)
		}
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		var pp part
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			pp.ctype, _, _ = h.ContentType()
			pp.cte = h.Get("Content-Transfer-Encoding")
		case *mail.AttachmentHeader:
			pp.ctype, _, _ = h.ContentType()
			pp.filename, _ = h.Filename()
			pp.cte = h.Get("Content-Transfer-Encoding")
		}
		pp.body = string(b)
		parts = append(parts, pp)
	}
	return mr, parts
}

func TestBuild(t *testing.T) {
	long := strings.Repeat("word ", 40) // one 200-character line
	tests := []struct {
		name    string
		d       Draft
		subject string
		parts   []part
		wantCTE string // of the top level (single part)
		headers []string
	}{
		{
			name:    "ascii",
			d:       Draft{From: "alice@example.org", To: []string{"bob@example.org"}, Subject: "Hello", Body: []byte("Hi Bob,\nsee you.\n")},
			subject: "Hello",
			parts:   []part{{ctype: "text/plain", body: "Hi Bob,\r\nsee you.\r\n"}},
			wantCTE: "7bit",
			headers: []string{"Subject: Hello\r\n", "From: <alice@example.org>\r\n", "Mime-Version: 1.0\r\n", "Date: Sat, 14 Mar 2026 15:09:26 +0100\r\n", "Content-Type: text/plain; charset=utf-8\r\n"},
		},
		{
			name: "utf8",
			d: Draft{From: "Zoë Ünicode <zoe@example.org>", To: []string{"Бob <bob@example.org>"}, Cc: []string{"carol@example.org"},
				Subject: "Grüße aus Köln ✉", Body: []byte("Schöne Grüße\r\n")},
			subject: "Grüße aus Köln ✉",
			parts:   []part{{ctype: "text/plain", body: "Schöne Grüße\r\n"}},
			wantCTE: "quoted-printable",
			headers: []string{"Subject: =?utf-8?q?", "Cc: <carol@example.org>\r\n"},
		},
		{
			name:    "long line",
			d:       Draft{From: "alice@example.org", To: []string{"bob@example.org"}, Body: []byte(long)},
			parts:   []part{{ctype: "text/plain", body: long}},
			wantCTE: "quoted-printable",
		},
		{
			name:    "trailing space",
			d:       Draft{From: "alice@example.org", To: []string{"bob@example.org"}, Body: []byte("sig-- \nx")},
			parts:   []part{{ctype: "text/plain", body: "sig-- \r\nx"}},
			wantCTE: "quoted-printable",
		},
		{
			name:    "cc only, empty body",
			d:       Draft{From: "alice@example.org", Cc: []string{"bob@example.org"}},
			parts:   []part{{ctype: "text/plain", body: ""}},
			wantCTE: "7bit",
		},
		{
			name: "attachments",
			d: Draft{From: "alice@example.org", To: []string{"bob@example.org"}, Subject: "files", Body: []byte("two files\n"),
				Attachments: []Attachment{
					{Name: "report.pdf", Data: []byte("%PDF-1.4 \x00\xff binary")},
					{Name: "notes.unknownext", Data: []byte{0, 1, 2}},
					{Name: "Übersicht.txt", ContentType: "text/plain; charset=utf-8", Data: []byte("\xff not utf-8")},
					{Name: "mail.eml", ContentType: "message/rfc822", Data: []byte("From: x\r\n\r\nhi")},
				}},
			subject: "files",
			parts: []part{
				{ctype: "text/plain", cte: "7bit", body: "two files\r\n"},
				{ctype: "application/pdf", filename: "report.pdf", cte: "base64", body: "%PDF-1.4 \x00\xff binary"},
				{ctype: "application/octet-stream", filename: "notes.unknownext", cte: "base64", body: "\x00\x01\x02"},
				{ctype: "text/plain", filename: "Übersicht.txt", cte: "base64", body: "\xff not utf-8"},
				{ctype: "application/octet-stream", filename: "mail.eml", cte: "base64", body: "From: x\r\n\r\nhi"},
			},
			headers: []string{"Content-Type: multipart/mixed;"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.d
			d.Date = date
			msg, err := Build(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tt.headers {
				if !bytes.Contains(msg, []byte(h)) {
					t.Errorf("no %q in\n%s", h, msg)
				}
			}
			checkWire(t, msg)
			mr, parts := parse(t, msg)
			if s, _ := mr.Header.Subject(); s != tt.subject {
				t.Errorf("Subject = %q, want %q", s, tt.subject)
			}
			if got, _ := mr.Header.Date(); !got.Equal(date) {
				t.Errorf("Date = %v", got)
			}
			from, _ := mr.Header.AddressList("From")
			if want, _ := mail.ParseAddress(d.From); len(from) != 1 || *from[0] != *want {
				t.Errorf("From = %v, want %v", from, want)
			}
			for _, f := range []struct {
				key  string
				want []string
			}{{"To", d.To}, {"Cc", d.Cc}} {
				got, err := mr.Header.AddressList(f.key)
				if err != nil || len(got) != len(f.want) {
					t.Errorf("%s = %v, %v; want %v", f.key, got, err, f.want)
					continue
				}
				for i := range got {
					if w, _ := mail.ParseAddress(f.want[i]); *got[i] != *w {
						t.Errorf("%s[%d] = %v, want %v", f.key, i, got[i], w)
					}
				}
			}
			if id, _ := mr.Header.MessageID(); !regexp.MustCompile(`^[a-z2-7]{32}@dsep\.alt$`).MatchString(id) {
				t.Errorf("Message-ID %q", id)
			}
			if tt.wantCTE != "" {
				if got := mr.Header.Get("Content-Transfer-Encoding"); got != tt.wantCTE {
					t.Errorf("Content-Transfer-Encoding %q, want %q", got, tt.wantCTE)
				}
			}
			if len(parts) != len(tt.parts) {
				t.Fatalf("%d parts, want %d\n%s", len(parts), len(tt.parts), msg)
			}
			for i, p := range parts {
				w := tt.parts[i]
				if p.ctype != w.ctype || p.filename != w.filename || p.body != w.body || (w.cte != "" && p.cte != w.cte) {
					t.Errorf("part %d = %+q\nwant %+q", i, p, w)
				}
			}
		})
	}
}

// checkWire checks what RFC 5322 asks of the bytes: CRLF line ends, lines
// of at most 998 octets, and a header in ASCII.
func checkWire(t *testing.T, msg []byte) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
		t.Errorf("bare CR or LF in\n%q", msg)
	}
	header, _, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no header/body separator in\n%s", msg)
	}
	for _, line := range bytes.Split(msg, []byte("\r\n")) {
		if len(line) > 998 {
			t.Errorf("line of %d octets", len(line))
		}
	}
	for _, c := range header {
		if c >= 0x80 {
			t.Errorf("non-ASCII header:\n%s", header)
			break
		}
	}
}

func TestMessageID(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"abc@example.org", "abc@example.org", false},
		{"<abc.def@example.org>", "abc.def@example.org", false},
		{"abc", "", true},
		{"a b@example.org", "", true},
		{"a@b@c", "", true},
		{"@example.org", "", true},
		{"abc@example.org>\r\nBcc: x", "", true},
	}
	for _, tt := range tests {
		msg, err := Build(Draft{From: "a@example.org", To: []string{"b@example.org"}, MessageID: tt.in})
		if (err != nil) != tt.wantErr {
			t.Errorf("MessageID %q: error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		mr, _ := parse(t, msg)
		if got, _ := mr.Header.MessageID(); got != tt.want {
			t.Errorf("MessageID %q: got %q, want %q", tt.in, got, tt.want)
		}
	}
	// Generated IDs differ.
	a, _ := Build(Draft{From: "a@example.org", To: []string{"b@example.org"}})
	b, _ := Build(Draft{From: "a@example.org", To: []string{"b@example.org"}})
	ha, _ := parse(t, a)
	hb, _ := parse(t, b)
	ida, _ := ha.Header.MessageID()
	idb, _ := hb.Header.MessageID()
	if ida == idb {
		t.Errorf("two generated Message-IDs are both %q", ida)
	}
	// The default date is now.
	if d, _ := ha.Header.Date(); time.Since(d) > time.Minute || time.Since(d) < -time.Minute {
		t.Errorf("default Date %v is not now", d)
	}
}

func TestBuildErrors(t *testing.T) {
	ok := Draft{From: "alice@example.org", To: []string{"bob@example.org"}}
	tests := []struct {
		name   string
		change func(d *Draft)
		want   error // nil: any error
	}{
		{"CRLF in subject", func(d *Draft) { d.Subject = "hi\r\nBcc: eve@example.org" }, ErrHeaderValue},
		{"LF in subject", func(d *Draft) { d.Subject = "hi\nthere" }, ErrHeaderValue},
		{"NUL in subject", func(d *Draft) { d.Subject = "a\x00b" }, ErrHeaderValue},
		{"CR in from", func(d *Draft) { d.From = "Alice\r <alice@example.org>" }, ErrHeaderValue},
		{"LF in to", func(d *Draft) { d.To = []string{"bob@example.org\nBcc: eve@example.org"} }, ErrHeaderValue},
		{"LF in cc", func(d *Draft) { d.Cc = []string{"\"x\ny\" <c@example.org>"} }, ErrHeaderValue},
		{"LF in attachment name", func(d *Draft) {
			d.Attachments = []Attachment{{Name: "a\n.txt", Data: []byte("x")}}
		}, ErrHeaderValue},
		{"CRLF in content type", func(d *Draft) {
			d.Attachments = []Attachment{{Name: "a.txt", ContentType: "text/plain\r\nX: y", Data: []byte("x")}}
		}, ErrHeaderValue},
		{"no recipient", func(d *Draft) { d.To = nil }, ErrNoRecipient},
		{"no from", func(d *Draft) { d.From = "" }, nil},
		{"bad from", func(d *Draft) { d.From = "not an address" }, nil},
		{"two in one To", func(d *Draft) { d.To = []string{"a@example.org, b@example.org"} }, nil},
		{"body not UTF-8", func(d *Draft) { d.Body = []byte("caf\xe9") }, ErrBodyNotUTF8},
		{"attachment without name", func(d *Draft) { d.Attachments = []Attachment{{Data: []byte("x")}} }, nil},
		{"attachment with directory", func(d *Draft) { d.Attachments = []Attachment{{Name: "../etc/passwd", Data: []byte("x")}} }, nil},
		{"bad content type", func(d *Draft) { d.Attachments = []Attachment{{Name: "a", ContentType: "text/", Data: []byte("x")}} }, nil},
		{"subject not UTF-8", func(d *Draft) { d.Subject = "\xff" }, nil},
	}
	for _, tt := range tests {
		d := ok
		tt.change(&d)
		msg, err := Build(d)
		if err == nil {
			t.Errorf("%s: built\n%s", tt.name, msg)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
	}
}

// A quoted-printable body decodes to exactly what was given, whatever the
// line lengths and characters.
func TestBodyRoundTrip(t *testing.T) {
	bodies := []string{
		"",
		"x",
		"no newline at the end",
		"=3D and = signs\r\n",
		"tab\tin\tline\r\n",
		strings.Repeat("é", 500) + "\r\n",
		"From the start of a line\r\n.\r\n..\r\n",
		strings.Repeat("a", 2000),
		"\x01control\r\n",
	}
	for _, b := range bodies {
		msg, err := Build(Draft{From: "a@example.org", To: []string{"b@example.org"}, Body: []byte(b)})
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		checkWire(t, msg)
		e, err := message.Read(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(e.Body)
		if string(got) != b {
			t.Errorf("body %q came back as %q", b, got)
		}
	}
}

func TestCanonicalLines(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb":       "a\r\nb",
		"a\r\nb\r\n": "a\r\nb\r\n",
		"a\rb":       "a\r\nb",
		"a\n\nb":     "a\r\n\r\nb",
		"a\r\r\nb":   "a\r\n\r\nb",
		"":           "",
	} {
		if got := string(canonicalLines([]byte(in))); got != want {
			t.Errorf("canonicalLines(%q) = %q, want %q", in, got, want)
		}
	}
}
