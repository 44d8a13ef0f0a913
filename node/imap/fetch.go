package imap

import (
	"bytes"
	"strings"
	"time"

	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/mail"
)

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, opts *imap.FetchOptions) error {
	v := s.sel
	ts, err := v.resolve(numSet)
	if err != nil || len(ts) == 0 {
		return err
	}
	name, uv := v.folder()
	metas, err := s.srv.st.Messages(name, uv, uidsOf(ts))
	if err != nil {
		return s.imapError("FETCH", err)
	}
	markSeen := false
	if !v.readOnly {
		for _, bs := range opts.BodySection {
			markSeen = markSeen || !bs.Peek
		}
		for _, bs := range opts.BinarySection {
			markSeen = markSeen || !bs.Peek
		}
	}
	// Reading a body without PEEK sets \Seen, and the response then
	// carries the new flags.
	seenSet := map[uint32]bool{}
	if markSeen {
		var unseen []uint32
		for _, m := range metas {
			if !hasFlag(m.Flags, imap.FlagSeen) {
				unseen = append(unseen, m.UID)
			}
		}
		if len(unseen) > 0 {
			res, err := s.srv.st.UpdateFlags(s.ctx, name, uv, unseen, store.FlagsAdd, []string{string(imap.FlagSeen)})
			if err != nil {
				return s.imapError("FETCH", err)
			}
			flags := map[uint32][]string{}
			for _, r := range res {
				flags[r.UID] = r.Flags
				seenSet[r.UID] = true
			}
			for i := range metas {
				if f, ok := flags[metas[i].UID]; ok {
					metas[i].Flags = f
				}
			}
		}
	}
	needBody := opts.BodyStructure != nil || len(opts.BodySection) > 0 || len(opts.BinarySection) > 0 || len(opts.BinarySectionSize) > 0
	missing := false
	i := 0
	for _, t := range ts {
		for i < len(metas) && metas[i].UID < t.uid {
			i++
		}
		if i == len(metas) || metas[i].UID != t.uid {
			missing = true // expunged by another session
			continue
		}
		m := &metas[i]
		var body []byte
		if needBody {
			if body, err = s.srv.st.Body(m.ID); err != nil {
				if err = s.imapError("FETCH", err); err == errExpungeIssued {
					missing = true
					continue
				}
				return err
			}
		}
		if err := writeMessage(w, t.seq, m, body, opts, seenSet[m.UID]); err != nil {
			return err
		}
	}
	if _, isUID := numSet.(imap.UIDSet); missing && !isUID {
		return errExpungeIssued
	}
	return nil
}

// writeMessage writes the FETCH response of one message. Everything but
// the body sections, the body structure and the binary sections comes from
// m (metadata only).
func writeMessage(w *imapserver.FetchWriter, seq uint32, m *store.Meta, body []byte, opts *imap.FetchOptions, flagsChanged bool) error {
	rw := w.CreateMessage(seq)
	rw.WriteUID(imap.UID(m.UID))
	if opts.Flags || flagsChanged {
		rw.WriteFlags(toFlags(m.Flags))
	}
	if opts.InternalDate {
		rw.WriteInternalDate(internalDate(m))
	}
	if opts.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if opts.Envelope {
		rw.WriteEnvelope(envelopeOf(m))
	}
	if opts.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(body)))
	}
	for _, bs := range opts.BodySection {
		b := imapserver.ExtractBodySection(bytes.NewReader(body), bs)
		if err := writeLiteral(rw.WriteBodySection(bs, int64(len(b))), b); err != nil {
			return err
		}
	}
	for _, bs := range opts.BinarySection {
		b := imapserver.ExtractBinarySection(bytes.NewReader(body), bs)
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(b))), b); err != nil {
			return err
		}
	}
	for _, bss := range opts.BinarySectionSize {
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(body), bss))
	}
	return rw.Close()
}

func writeLiteral(wc interface {
	Write([]byte) (int, error)
	Close() error
}, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// internalDate is when the message reached the mailbox.
func internalDate(m *store.Meta) time.Time {
	if !m.Received.IsZero() {
		return m.Received
	}
	if !m.Date.IsZero() {
		return m.Date
	}
	return time.Unix(0, 0).UTC()
}

// envelopeOf returns the IMAP ENVELOPE of a message from its metadata alone,
// as imapserver.ExtractEnvelope would from its header: addresses without
// an '@' (groups, undisclosed recipients) are left out; a missing Sender
// or Reply-To is written as From.
func envelopeOf(m *store.Meta) *imap.Envelope {
	env := &imap.Envelope{
		Date:      m.Date,
		Subject:   m.Subject,
		From:      addresses(m.From),
		Sender:    addresses(m.Sender),
		ReplyTo:   addresses(m.ReplyTo...),
		To:        addresses(m.To...),
		Cc:        addresses(m.Cc...),
		Bcc:       addresses(m.Bcc...),
		InReplyTo: m.InReplyTo,
		MessageID: m.MessageID,
	}
	return env
}

// addresses parses addresses as store.MetaFromHeader keeps them.
func addresses(list ...string) []imap.Address {
	var out []imap.Address
	for _, s := range list {
		if s == "" {
			continue
		}
		a, err := mail.ParseAddress(s)
		if err != nil {
			continue
		}
		mailbox, host, ok := strings.Cut(a.Address, "@")
		if !ok {
			continue
		}
		out = append(out, imap.Address{Name: a.Name, Mailbox: mailbox, Host: host})
	}
	return out
}
