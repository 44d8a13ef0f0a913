// Package compose builds the RFC 5322 messages (RFC 2045–2047 MIME) that
// `dsep send` hands to the node: a plain-text body, optionally with
// attachments. The message is written by github.com/emersion/go-message,
// never by hand.
//
// The shape is what every mail client reads:
//
//   - without attachments, a single text/plain; charset=utf-8 part, sent as
//     7bit when the body is short-lined ASCII and as quoted-printable
//     otherwise;
//   - with attachments, multipart/mixed: that text part first (inline),
//     then each attachment base64-encoded with Content-Disposition:
//     attachment and its file name.
//
// Header values that are not ASCII are encoded as RFC 2047 encoded words
// (mime.QEncoding, UTF-8). A value holding CR, LF or another control
// character is refused: it could inject header fields.
package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"mime"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
)

// MessageIDDomain is the right-hand side of generated Message-IDs: `.alt`
// is reserved for names outside the DNS (RFC 9476), like key addresses.
const MessageIDDomain = "dsep.alt"

// Errors.
var (
	// ErrHeaderValue: a header value holds CR, LF or another control
	// character.
	ErrHeaderValue = errors.New("compose: control character (CR, LF, …) in a header value")
	// ErrNoRecipient: neither To nor Cc names anyone.
	ErrNoRecipient = errors.New("compose: no recipient")
	// ErrBodyNotUTF8: the body is not valid UTF-8.
	ErrBodyNotUTF8 = errors.New("compose: body is not UTF-8 text")
)

// Attachment is a file to attach.
type Attachment struct {
	// Name is the file name the recipient sees: no directory, no control
	// characters. Required.
	Name string
	// ContentType is the MIME type, e.g. "application/pdf". Default: from
	// the extension of Name (mime.TypeByExtension), else
	// application/octet-stream.
	ContentType string
	// Data is the content.
	Data []byte
}

// Draft is a message to build.
type Draft struct {
	// From is the sender, "alice@example.org" or
	// "Alice Example <alice@example.org>". Required.
	From string
	// To and Cc are the recipients, one address per element in the same
	// forms as From. At least one of them is required. (Bcc recipients are
	// given to the node apart, never written into the message.)
	To, Cc []string
	// Subject may be empty.
	Subject string
	// Body is the text, UTF-8. Line ends (LF or CRLF) become CRLF.
	Body []byte
	// Attachments follow the text, in order.
	Attachments []Attachment
	// Date is the Date header. Default: now.
	Date time.Time
	// MessageID is the Message-ID, with or without angle brackets.
	// Default: a random <…@dsep.alt>.
	MessageID string
}

// Build returns the message d describes, with CRLF line ends.
func Build(d Draft) ([]byte, error) {
	var h mail.Header
	// go-message writes fields in the reverse order of their addition.
	body := canonicalLines(d.Body)
	if !utf8.Valid(body) {
		return nil, ErrBodyNotUTF8
	}
	textHeader := func(h interface {
		SetContentType(string, map[string]string)
		Set(string, string)
	}) {
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		h.Set("Content-Transfer-Encoding", textEncoding(body))
	}
	if len(d.Attachments) == 0 {
		h.Set("Content-Transfer-Encoding", textEncoding(body))
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	}
	h.Set("MIME-Version", "1.0")

	id, err := messageID(d.MessageID)
	if err != nil {
		return nil, err
	}
	h.SetMessageID(id)
	if err := checkValue("Subject", d.Subject); err != nil {
		return nil, err
	}
	if d.Subject != "" {
		h.SetSubject(d.Subject)
	}
	cc, err := addresses("Cc", d.Cc)
	if err != nil {
		return nil, err
	}
	to, err := addresses("To", d.To)
	if err != nil {
		return nil, err
	}
	if len(to)+len(cc) == 0 {
		return nil, ErrNoRecipient
	}
	h.SetAddressList("Cc", cc)
	h.SetAddressList("To", to)
	if d.From == "" {
		return nil, errors.New("compose: no From address")
	}
	from, err := addresses("From", []string{d.From})
	if err != nil {
		return nil, err
	}
	h.SetAddressList("From", from)
	date := d.Date
	if date.IsZero() {
		date = time.Now()
	}
	h.SetDate(date)

	var buf bytes.Buffer
	if len(d.Attachments) == 0 {
		w, err := mail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		if err := writeClose(w, body); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}

	parts := make([]mail.AttachmentHeader, len(d.Attachments))
	for i, a := range d.Attachments {
		if parts[i], err = attachmentHeader(a); err != nil {
			return nil, fmt.Errorf("compose: attachment %d: %w", i+1, err)
		}
	}
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	var th mail.InlineHeader
	textHeader(&th)
	w, err := mw.CreateSingleInline(th)
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	if err := writeClose(w, body); err != nil {
		return nil, err
	}
	for i, a := range d.Attachments {
		w, err := mw.CreateAttachment(parts[i])
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		if err := writeClose(w, a.Data); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	return buf.Bytes(), nil
}

func writeClose(w io.WriteCloser, b []byte) error {
	if _, err := w.Write(b); err != nil {
		w.Close()
		return fmt.Errorf("compose: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	return nil
}

// checkValue refuses control characters (tab aside) in a header value.
func checkValue(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("compose: %s is not UTF-8", field)
	}
	for _, r := range v {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return fmt.Errorf("%w: %s", ErrHeaderValue, field)
		}
	}
	return nil
}

// addresses parses one address per element.
func addresses(field string, list []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, s := range list {
		if err := checkValue(field, s); err != nil {
			return nil, err
		}
		a, err := mail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("compose: %s address %q: %v", field, s, err)
		}
		if err := checkValue(field, a.Name); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// messageID returns id without its angle brackets, or a new random one.
func messageID(id string) (string, error) {
	if id == "" {
		b := make([]byte, 20)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)) + "@" + MessageIDDomain, nil
	}
	if err := checkValue("Message-ID", id); err != nil {
		return "", err
	}
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	left, right, ok := strings.Cut(id, "@")
	if !ok || left == "" || right == "" || strings.ContainsAny(id, " \t<>\"\\()[],;:") || strings.Count(id, "@") != 1 {
		return "", fmt.Errorf("compose: bad Message-ID %q: want left@right", id)
	}
	return id, nil
}

// canonicalLines turns LF and lone CR line ends into CRLF.
func canonicalLines(b []byte) []byte {
	if !bytes.ContainsAny(b, "\r\n") {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/40)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// textEncoding picks 7bit for ASCII text whose lines fit in 78 characters
// and carry no control characters other than tab, quoted-printable for
// anything else (RFC 2045 §6.2, RFC 5322 §2.1.1).
func textEncoding(body []byte) string {
	for line := range bytes.SplitSeq(body, []byte("\r\n")) {
		if len(line) > 78 {
			return "quoted-printable"
		}
		for _, c := range line {
			if c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f {
				return "quoted-printable"
			}
		}
		// Trailing white space may be lost in transit.
		if n := len(line); n > 0 && (line[n-1] == ' ' || line[n-1] == '\t') {
			return "quoted-printable"
		}
	}
	return "7bit"
}

func attachmentHeader(a Attachment) (mail.AttachmentHeader, error) {
	var h mail.AttachmentHeader
	if a.Name == "" {
		return h, errors.New("no file name")
	}
	if err := checkValue("attachment name", a.Name); err != nil {
		return h, err
	}
	if strings.ContainsAny(a.Name, `/\`) || a.Name == "." || a.Name == ".." {
		return h, fmt.Errorf("file name %q holds a directory; give the base name only", a.Name)
	}
	ct := a.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(filepath.Ext(a.Name))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	if err := checkValue("attachment content type", ct); err != nil {
		return h, err
	}
	t, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return h, fmt.Errorf("content type %q: %v", ct, err)
	}
	if strings.HasPrefix(t, "multipart/") || strings.HasPrefix(t, "message/") {
		// Those would be parsed as structure, not kept as a file.
		t, params = "application/octet-stream", nil
	}
	if cs, ok := params["charset"]; ok && strings.EqualFold(cs, "utf-8") && !utf8.Valid(a.Data) {
		delete(params, "charset")
	}
	if params == nil {
		params = map[string]string{}
	}
	params["name"] = a.Name
	h.SetContentType(t, params)
	h.SetFilename(a.Name)
	h.Set("Content-Transfer-Encoding", "base64")
	return h, nil
}
