package submit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
)

// addressParser reads address lists without decoding display names:
// only the addresses matter here, and a display name in a charset Go
// does not know must not make a message unsendable.
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// prepare checks a submitted message's header and removes its Bcc and
// Resent-Bcc fields. The From field must be present once and name only
// own addresses, and so must Sender if present. The message is returned
// unchanged, byte for byte, when it has no Bcc field; otherwise only those
// fields go (go-message keeps every other field's raw bytes). removed is
// the number of fields removed. Errors are *smtp.SMTPError replies.
func prepare(msg []byte, own func(string) bool) (out []byte, removed int, err error) {
	rd := bytes.NewReader(msg)
	br := bufio.NewReader(rd)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, 0, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: replyText(fmt.Sprintf("The message header cannot be parsed (%v); the mail client sent a malformed message", err))}
	}
	body := msg[len(msg)-rd.Len()-br.Buffered():]

	if err := checkSenders(&h, own); err != nil {
		return nil, 0, err
	}

	removed = h.FieldsByKey("Bcc").Len() + h.FieldsByKey("Resent-Bcc").Len()
	if removed == 0 {
		return msg, 0, nil
	}
	h.Del("Bcc")
	h.Del("Resent-Bcc")
	var b bytes.Buffer
	b.Grow(len(msg))
	if err := textproto.WriteHeader(&b, h); err != nil {
		// Not reached: every field read keeps its raw bytes.
		return nil, 0, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: "The message header cannot be rewritten"}
	}
	b.Write(body)
	return b.Bytes(), removed, nil
}

// checkSenders checks the From and Sender fields.
func checkSenders(h *textproto.Header, own func(string) bool) error {
	bad := func(format string, a ...any) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: replyText(fmt.Sprintf(format, a...))}
	}
	notOwn := func(field, addr string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: replyText(fmt.Sprintf("The %s header names <%s>, which is not one of your addresses: set your own DSEP address as the sender in the mail client", field, addr))}
	}

	froms := h.FieldsByKey("From")
	switch froms.Len() {
	case 0:
		return bad("The message has no From header field; set your DSEP address as the sender in the mail client")
	case 1:
	default:
		return bad("The message has %d From header fields; RFC 5322 allows one", froms.Len())
	}
	froms.Next()
	list, err := addressParser.ParseList(froms.Value())
	if err != nil || len(list) == 0 {
		return bad("The From header field cannot be parsed; set your DSEP address as the sender in the mail client")
	}
	for _, a := range list {
		if !own(a.Address) {
			return notOwn("From", a.Address)
		}
	}

	senders := h.FieldsByKey("Sender")
	switch senders.Len() {
	case 0:
		return nil
	case 1:
	default:
		return bad("The message has %d Sender header fields; RFC 5322 allows one", senders.Len())
	}
	senders.Next()
	a, err := addressParser.Parse(senders.Value())
	if err != nil {
		return bad("The Sender header field cannot be parsed")
	}
	if !own(a.Address) {
		return notOwn("Sender", a.Address)
	}
	return nil
}
