package store

import (
	"github.com/emersion/go-message/mail"
)

// maxHeaderString bounds each header string MetaFromHeader keeps.
const maxHeaderString = 2048

// MetaFromHeader returns a Meta with the fields a mail client's message
// list and IMAP's ENVELOPE show, taken from a message header as go-message
// parses them: From (the first address), Sender, Reply-To, To, Cc, Bcc,
// Subject (decoded), Date, Message-Id and In-Reply-To (without angle
// brackets). Addresses are kept as mail.Address.String formats them
// (`"Name" <local@domain>`, a non-ASCII name RFC 2047-encoded), which
// mail.ParseAddress reads back. A field that does not parse is left empty.
// Strings are cut to 2048 bytes and the address lists clipped so that the
// Meta stays well under MaxMetaSize (a message to thousands of recipients
// lists the first ones).
func MetaFromHeader(h mail.Header) Meta {
	var m Meta
	list := func(key string) []string {
		l, _ := h.AddressList(key)
		var out []string
		for _, a := range l {
			out = append(out, clip(a.String()))
		}
		return out
	}
	if l := list("From"); len(l) > 0 {
		m.From = l[0]
	}
	if l := list("Sender"); len(l) > 0 {
		m.Sender = l[0]
	}
	m.ReplyTo = list("Reply-To")
	m.To = list("To")
	m.Cc = list("Cc")
	m.Bcc = list("Bcc")
	if s, err := h.Subject(); err == nil {
		m.Subject = clip(s)
	}
	if d, err := h.Date(); err == nil && checkTime(d) {
		m.Date = d
	}
	if id, err := h.MessageID(); err == nil {
		m.MessageID = clip(id)
	}
	if ids, err := h.MsgIDList("In-Reply-To"); err == nil {
		for _, id := range ids {
			m.InReplyTo = append(m.InReplyTo, clip(id))
		}
	}
	// Leave room for what the caller adds (verification, flags).
	for len(encodeMeta(&m)) > MaxMetaSize/2 {
		longest := &m.To
		for _, l := range []*[]string{&m.Cc, &m.Bcc, &m.ReplyTo, &m.InReplyTo} {
			if len(*l) > len(*longest) {
				longest = l
			}
		}
		*longest = (*longest)[:len(*longest)/2]
	}
	return m
}

// clip cuts s to maxHeaderString bytes, at a rune boundary.
func clip(s string) string {
	if len(s) <= maxHeaderString {
		return s
	}
	i := maxHeaderString
	for i > 0 && s[i]&0xc0 == 0x80 {
		i--
	}
	return s[:i]
}
