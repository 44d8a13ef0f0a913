package imap

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Search answers SEARCH over the messages of the client's view. Sequence
// numbers, UIDs, dates, sizes, flags and the header fields the metadata
// keeps (From, Sender, Reply-To, To, Cc, Bcc, Subject, Message-Id,
// In-Reply-To) are matched from the metadata; BODY, TEXT and other header
// fields read the message (so such a search costs a read of every body it
// has to look at). Strings match case-insensitively as substrings, after
// MIME decoding.
func (s *session) Search(kind imapserver.NumKind, c *imap.SearchCriteria, _ *imap.SearchOptions) (*imap.SearchData, error) {
	if err := checkCriteria(c); err != nil {
		return nil, err
	}
	v := s.sel
	name, uv := v.folder()
	metas, err := s.srv.st.Messages(name, uv, v.uids)
	if err != nil {
		return nil, s.imapError("SEARCH", err)
	}
	sc := &searchCtx{s: s, n: uint32(len(v.uids))}
	if len(v.uids) > 0 {
		sc.lastUID = v.uids[len(v.uids)-1]
	}
	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
	)
	i := 0
	for idx, uid := range v.uids {
		for i < len(metas) && metas[i].UID < uid {
			i++
		}
		if i == len(metas) || metas[i].UID != uid {
			continue // expunged meanwhile
		}
		msg := &candidate{seq: uint32(idx + 1), m: &metas[i]}
		ok, err := sc.match(msg, c)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		num := msg.seq
		if kind == imapserver.NumKindUID {
			num = uid
			uidSet.AddNum(imap.UID(uid))
		} else {
			seqSet.AddNum(msg.seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	return &data, nil
}

// checkCriteria refuses what the server does not support.
func checkCriteria(c *imap.SearchCriteria) error {
	if c.ModSeq != nil {
		return errModSeq
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			return errSearchRes
		}
	}
	for i := range c.Not {
		if err := checkCriteria(&c.Not[i]); err != nil {
			return err
		}
	}
	for i := range c.Or {
		for j := range c.Or[i] {
			if err := checkCriteria(&c.Or[i][j]); err != nil {
				return err
			}
		}
	}
	return nil
}

type searchCtx struct {
	s       *session
	n       uint32 // messages in the client's view: "*" of sequence sets
	lastUID uint32 // "*" of UID sets
}

// candidate is a message being matched; its body is read once, if needed.
type candidate struct {
	seq    uint32
	m      *store.Meta
	body   []byte
	loaded bool
}

func (sc *searchCtx) bodyOf(c *candidate) ([]byte, error) {
	if !c.loaded {
		b, err := sc.s.srv.st.Body(c.m.ID)
		if err != nil {
			if err = sc.s.imapError("SEARCH", err); err == errExpungeIssued {
				b, err = nil, nil // gone meanwhile: matches no body criterion
			}
			if err != nil {
				return nil, err
			}
		}
		c.body, c.loaded = b, true
	}
	return c.body, nil
}

func (sc *searchCtx) match(c *candidate, cr *imap.SearchCriteria) (bool, error) {
	m := c.m
	for _, set := range cr.SeqNum {
		if !inRanges(c.seq, sc.n, func(yield func(a, b uint32) bool) {
			for _, r := range set {
				if !yield(r.Start, r.Stop) {
					return
				}
			}
		}) {
			return false, nil
		}
	}
	for _, set := range cr.UID {
		if !inRanges(m.UID, sc.lastUID, func(yield func(a, b uint32) bool) {
			for _, r := range set {
				if !yield(uint32(r.Start), uint32(r.Stop)) {
					return
				}
			}
		}) {
			return false, nil
		}
	}
	if !matchDate(internalDate(m), cr.Since, cr.Before) {
		return false, nil
	}
	if !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		if m.Date.IsZero() || !matchDate(m.Date, cr.SentSince, cr.SentBefore) {
			return false, nil
		}
	}
	for _, f := range cr.Flag {
		if !hasFlag(m.Flags, f) {
			return false, nil
		}
	}
	for _, f := range cr.NotFlag {
		if hasFlag(m.Flags, f) {
			return false, nil
		}
	}
	if cr.Larger != 0 && m.Size <= cr.Larger {
		return false, nil
	}
	if cr.Smaller != 0 && m.Size >= cr.Smaller {
		return false, nil
	}
	for _, h := range cr.Header {
		ok, err := sc.matchHeader(c, h.Key, h.Value)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, text := range cr.Body {
		ok, err := sc.matchBody(c, text, false)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, text := range cr.Text {
		ok, err := sc.matchBody(c, text, true)
		if err != nil || !ok {
			return false, err
		}
	}
	for i := range cr.Not {
		ok, err := sc.match(c, &cr.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for _, or := range cr.Or {
		ok, err := sc.match(c, &or[0])
		if err != nil {
			return false, err
		}
		if !ok {
			if ok, err = sc.match(c, &or[1]); err != nil || !ok {
				return false, err
			}
		}
	}
	return true, nil
}

// inRanges reports whether num is in one of the ranges (0 is "*", which is
// star).
func inRanges(num, star uint32, ranges func(yield func(a, b uint32) bool)) bool {
	found := false
	ranges(func(a, b uint32) bool {
		if a == 0 {
			a = star
		}
		if b == 0 {
			b = star
		}
		if a > b {
			a, b = b, a
		}
		found = num >= a && num <= b
		return !found
	})
	return found
}

// matchDate compares dates only, ignoring the time and the zone (RFC 3501).
func matchDate(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && d.Before(time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	if !before.IsZero() && !d.Before(time.Date(before.Year(), before.Month(), before.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	return true
}

// contains reports whether pattern occurs in one of values, ignoring case;
// an empty pattern matches any non-empty value (the field is present).
func contains(values []string, pattern string) bool {
	p := strings.ToLower(pattern)
	for _, v := range values {
		if v != "" && strings.Contains(strings.ToLower(v), p) {
			return true
		}
	}
	return false
}

func (sc *searchCtx) matchHeader(c *candidate, key, pattern string) (bool, error) {
	m := c.m
	one := func(s string) []string { return []string{s} }
	switch strings.ToLower(key) {
	case "from":
		return contains(decoded(m.From), pattern), nil
	case "sender":
		return contains(decoded(m.Sender), pattern), nil
	case "reply-to":
		return contains(decoded(m.ReplyTo...), pattern), nil
	case "to":
		return contains(decoded(m.To...), pattern), nil
	case "cc":
		return contains(decoded(m.Cc...), pattern), nil
	case "bcc":
		return contains(decoded(m.Bcc...), pattern), nil
	case "subject":
		return contains(one(m.Subject), pattern), nil
	case "message-id":
		if m.MessageID == "" {
			return false, nil
		}
		return contains(one("<"+m.MessageID+">"), pattern), nil
	case "in-reply-to":
		if len(m.InReplyTo) == 0 {
			return false, nil
		}
		return contains(one("<"+strings.Join(m.InReplyTo, "> <")+">"), pattern), nil
	}
	body, err := sc.bodyOf(c)
	if err != nil || body == nil {
		return false, err
	}
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(body)))
	if err != nil {
		return false, nil
	}
	h := gomessage.Header{Header: th}
	return matchFields(h.FieldsByKey(key), pattern), nil
}

// decoded returns addresses as kept in the metadata (see
// store.MetaFromHeader) with their names decoded: `Name <local@domain>`.
func decoded(list ...string) []string {
	var out []string
	for _, s := range list {
		a, err := mail.ParseAddress(s)
		switch {
		case err != nil:
			out = append(out, s)
		case a.Name != "":
			out = append(out, a.Name+" <"+a.Address+">")
		default:
			out = append(out, "<"+a.Address+">")
		}
	}
	return out
}

// matchFields matches header fields, decoded, against pattern.
func matchFields(mf gomessage.HeaderFields, pattern string) bool {
	for mf.Next() {
		v, err := mf.Text()
		if err != nil {
			v = mf.Value()
		}
		if pattern == "" || strings.Contains(strings.ToLower(v), strings.ToLower(pattern)) {
			return true
		}
	}
	return false
}

// matchBody looks for text in the message's text parts (decoded) and, for
// TEXT, in its header fields too.
func (sc *searchCtx) matchBody(c *candidate, text string, header bool) (bool, error) {
	body, err := sc.bodyOf(c)
	if err != nil || body == nil {
		return false, err
	}
	if text == "" {
		return true, nil
	}
	// An unknown charset or transfer encoding still gives an entity, read
	// as it is.
	e, _ := gomessage.Read(bytes.NewReader(body))
	if e == nil {
		return false, nil
	}
	return matchEntity(e, strings.ToLower(text), header, 0), nil
}

// maxDepth bounds the nesting of multiparts a search descends.
const maxDepth = 20

func matchEntity(e *gomessage.Entity, text string, header bool, depth int) bool {
	if header && matchFields(e.Header.Fields(), text) {
		return true
	}
	if mr := e.MultipartReader(); mr != nil {
		if depth == maxDepth {
			return false
		}
		for {
			p, err := mr.NextPart()
			if p == nil || (err != nil && err != io.EOF && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err)) {
				return false
			}
			if matchEntity(p, text, header, depth+1) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(e.Body, store.MaxBodySize))
	if err != nil && len(b) == 0 {
		return false
	}
	return bytes.Contains(bytes.ToLower(b), []byte(text))
}
