package imap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// session is one IMAP connection. imapserver calls its methods one at a
// time (IDLE's Idle runs while the connection waits for DONE, never with
// another command), so its fields need no lock.
type session struct {
	srv  *Server
	conn *imapserver.Conn
	// ctx ends with the server; it marks the store changes this session
	// makes as its own (store.WithOrigin).
	ctx  context.Context
	user string
	sel  *view // the selected mailbox, nil if none
	// failures counts failed logins: after maxLoginFailures the next
	// attempt closes the connection.
	failures int
}

// maxLoginFailures is how many failed logins a connection gets.
const maxLoginFailures = 3

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

// verifyAppended is the verification recorded for a message put into the
// mailbox by a mail client.
var verifyAppended = store.Verification{Status: "local", Detail: "put into the mailbox by a mail client (IMAP APPEND); not checked by the node"}

// flagRecent is IMAP4rev1's \Recent: no message has it here (a client's
// STORE or APPEND of it is ignored).
const flagRecent = `\Recent`

// systemFlags are the flags every mailbox offers.
var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

func (s *session) Close() error {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	s.srv.sessions.Done()
	return nil
}

func (s *session) Login(username, password string) error {
	if s.failures >= maxLoginFailures {
		// imapserver gives no way to send BYE from here (AUTHENTICATE
		// holds the connection's writer): just hang up.
		s.conn.NetConn().Close()
		return imapserver.ErrAuthFailed
	}
	if err := s.srv.cfg.Authenticate(s.ctx, username, password); err != nil {
		if s.ctx.Err() != nil {
			return errUnavailable
		}
		s.failures++
		s.srv.log.Info("imap: login failed", "remote", s.conn.NetConn().RemoteAddr().String())
		return imapserver.ErrAuthFailed
	}
	s.user = username
	return nil
}

// canonical checks a mailbox name given by the client.
func canonical(name string) (string, error) {
	n, err := store.CanonicalFolder(name)
	if err != nil {
		return "", errBadName
	}
	return n, nil
}

func (s *session) Select(name string, opts *imap.SelectOptions) (*imap.SelectData, error) {
	name, err := canonical(name)
	if err != nil {
		return nil, errNoMailbox
	}
	v, metas, fi, err := s.srv.open(name, s, opts.ReadOnly)
	if err != nil {
		return nil, s.imapError("SELECT", err)
	}
	s.sel = v
	data := &imap.SelectData{
		Flags:       slices.Clone(systemFlags),
		NumMessages: uint32(len(v.uids)),
		UIDNext:     imap.UID(fi.UIDNext),
		UIDValidity: fi.UIDValidity,
	}
	keywords := map[string]bool{}
	for i, m := range metas {
		if data.FirstUnseenSeqNum == 0 && !hasFlag(m.Flags, imap.FlagSeen) {
			data.FirstUnseenSeqNum = uint32(i + 1)
		}
		for _, f := range m.Flags {
			if !strings.HasPrefix(f, `\`) {
				keywords[f] = true
			}
		}
	}
	for k := range keywords {
		data.Flags = append(data.Flags, imap.Flag(k))
	}
	slices.Sort(data.Flags[len(systemFlags):])
	if !opts.ReadOnly {
		data.PermanentFlags = append(slices.Clone(data.Flags), imap.FlagWildcard)
	} else {
		data.PermanentFlags = []imap.Flag{}
	}
	return data, nil
}

func (s *session) Unselect() error {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	return nil
}

func (s *session) Create(name string, _ *imap.CreateOptions) error {
	// A trailing delimiter announces a mailbox meant to hold others.
	name = strings.TrimSuffix(name, string(delim))
	name, err := canonical(name)
	if err != nil {
		return err
	}
	if name == store.FolderInbox {
		return errMailboxExists
	}
	// RFC 3501: create the superior levels that are missing.
	levels := strings.Split(name, string(delim))
	for i := 1; i < len(levels); i++ {
		parent := strings.Join(levels[:i], string(delim))
		if _, err := s.srv.st.CreateFolder(s.ctx, parent); err != nil && !errors.Is(err, store.ErrFolderExists) {
			return s.imapError("CREATE", err)
		}
	}
	_, err = s.srv.st.CreateFolder(s.ctx, name)
	return s.imapError("CREATE", err)
}

func (s *session) Delete(name string) error {
	name, err := canonical(name)
	if err != nil {
		return errNoMailbox
	}
	return s.imapError("DELETE", s.srv.st.DeleteFolder(s.ctx, name))
}

func (s *session) Rename(from, to string, _ *imap.RenameOptions) error {
	from, err := canonical(from)
	if err != nil {
		return errNoMailbox
	}
	to, err = canonical(strings.TrimSuffix(to, string(delim)))
	if err != nil {
		return err
	}
	if from == store.FolderInbox || from == store.FolderSent || from == store.FolderRejected {
		return errSystemMailbox
	}
	if to == from || strings.HasPrefix(to, from+string(delim)) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "A mailbox cannot be renamed to itself or below itself"}
	}
	if _, err := s.srv.st.Folder(to); err == nil {
		return errMailboxExists
	}
	folders, err := s.srv.st.Folders()
	if err != nil {
		return s.imapError("RENAME", err)
	}
	levels := strings.Split(to, string(delim))
	for i := 1; i < len(levels); i++ {
		parent := strings.Join(levels[:i], string(delim))
		if _, err := s.srv.st.CreateFolder(s.ctx, parent); err != nil && !errors.Is(err, store.ErrFolderExists) {
			return s.imapError("RENAME", err)
		}
	}
	if err := s.srv.st.RenameFolder(s.ctx, from, to); err != nil {
		return s.imapError("RENAME", err)
	}
	// RFC 3501: the levels below are renamed too.
	for _, f := range folders {
		if rest, ok := strings.CutPrefix(f.Name, from+string(delim)); ok {
			if err := s.srv.st.RenameFolder(s.ctx, f.Name, to+string(delim)+rest); err != nil {
				return s.imapError("RENAME", err)
			}
		}
	}
	return nil
}

// Subscriptions are not kept: every mailbox is subscribed.
func (s *session) Subscribe(name string) error {
	name, err := canonical(name)
	if err != nil {
		return errNoMailbox
	}
	_, err = s.srv.st.Folder(name)
	return s.imapError("SUBSCRIBE", err)
}

func (s *session) Unsubscribe(name string) error { return s.Subscribe(name) }

func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Delim: delim}}}, nil
}

func (s *session) AppendLimit() uint32 {
	return uint32(min(s.srv.cfg.MaxMessageBytes, math.MaxUint32))
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, opts *imap.ListOptions) error {
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	folders, err := s.srv.st.Folders()
	if err != nil {
		return s.imapError("LIST", err)
	}
	infos := map[string]*store.FolderInfo{}
	var names []string
	for i := range folders {
		infos[folders[i].Name] = &folders[i]
		names = append(names, folders[i].Name)
	}
	// Levels above existing mailboxes that do not exist themselves are
	// listed \Noselect.
	for _, f := range folders {
		levels := strings.Split(f.Name, string(delim))
		for i := 1; i < len(levels); i++ {
			p := strings.Join(levels[:i], string(delim))
			if _, ok := infos[p]; !ok {
				infos[p] = nil
				names = append(names, p)
			}
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if !slices.ContainsFunc(patterns, func(p string) bool { return matchList(name, ref, p) }) {
			continue
		}
		fi := infos[name]
		// The first name after name/ in order is a child, if any is.
		j := sort.SearchStrings(names, name+string(delim))
		hasChildren := j < len(names) && strings.HasPrefix(names[j], name+string(delim))
		su, isSpecial := specialUse[name]
		if fi == nil && (opts.SelectSubscribed || opts.SelectSpecialUse) {
			continue
		}
		if opts.SelectSpecialUse && !isSpecial {
			continue
		}
		data := &imap.ListData{Mailbox: name, Delim: delim}
		if fi == nil {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		}
		if hasChildren {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if isSpecial {
			data.Attrs = append(data.Attrs, su)
		}
		if fi != nil && opts.ReturnSubscribed {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if fi != nil && opts.ReturnStatus != nil {
			data.Status = statusData(*fi, opts.ReturnStatus, nil)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// matchList matches a mailbox name against a LIST reference and pattern;
// INBOX matches whatever its case.
func matchList(name, ref, pattern string) bool {
	if imapserver.MatchList(name, delim, ref, pattern) {
		return true
	}
	return name == store.FolderInbox && imapserver.MatchList(name, delim, strings.ToUpper(ref), strings.ToUpper(pattern))
}

func (s *session) Status(name string, opts *imap.StatusOptions) (*imap.StatusData, error) {
	name, err := canonical(name)
	if err != nil {
		return nil, errNoMailbox
	}
	var fi store.FolderInfo
	var metas []store.Meta
	if opts.NumDeleted || opts.Size {
		fi, metas, err = s.srv.st.Snapshot(name)
	} else {
		fi, err = s.srv.st.Folder(name)
	}
	if err != nil {
		return nil, s.imapError("STATUS", err)
	}
	return statusData(fi, opts, metas), nil
}

// statusData answers STATUS from a folder's description (and, for the
// number of deleted messages and the size, its messages' metadata).
func statusData(fi store.FolderInfo, opts *imap.StatusOptions, metas []store.Meta) *imap.StatusData {
	d := &imap.StatusData{Mailbox: fi.Name}
	num := func(n int) *uint32 { u := uint32(n); return &u }
	if opts.NumMessages {
		d.NumMessages = num(fi.Messages)
	}
	if opts.NumRecent {
		d.NumRecent = num(0)
	}
	if opts.UIDNext {
		d.UIDNext = imap.UID(fi.UIDNext)
	}
	if opts.UIDValidity {
		d.UIDValidity = fi.UIDValidity
	}
	if opts.NumUnseen {
		d.NumUnseen = num(fi.Unseen)
	}
	if opts.NumDeleted {
		n := 0
		for _, m := range metas {
			if hasFlag(m.Flags, imap.FlagDeleted) {
				n++
			}
		}
		d.NumDeleted = num(n)
	}
	if opts.Size {
		var size int64
		for _, m := range metas {
			size += m.Size
		}
		d.Size = &size
	}
	return d
}

func (s *session) Append(name string, r imap.LiteralReader, opts *imap.AppendOptions) (*imap.AppendData, error) {
	name, err := canonical(name)
	if err != nil {
		return nil, errTryCreate
	}
	fi, err := s.srv.st.Folder(name)
	if errors.Is(err, store.ErrNoFolder) {
		return nil, errTryCreate
	}
	if err != nil {
		return nil, s.imapError("APPEND", err)
	}
	limit := s.srv.cfg.MaxMessageBytes
	if r.Size() > limit {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "The message is larger than the APPENDLIMIT"}
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err // the connection failed
	}
	if int64(len(body)) > limit {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "The message is larger than the APPENDLIMIT"}
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(body)))
	if err != nil || len(body) == 0 {
		return nil, errNoMessage
	}
	m := store.MetaFromHeader(mail.Header{Header: gomessage.Header{Header: h}})
	if m.ID, err = newID(); err != nil {
		return nil, s.imapError("APPEND", err)
	}
	m.Folder = name
	m.Direction = store.DirectionLocal
	m.Verification = verifyAppended
	m.Received = opts.Time
	if m.Received.IsZero() {
		m.Received = time.Now()
	}
	for _, f := range opts.Flags {
		if !strings.EqualFold(string(f), string(flagRecent)) {
			m.Flags = append(m.Flags, string(f))
		}
	}
	got, err := s.srv.st.Deliver(s.ctx, m, body)
	if err != nil {
		return nil, s.imapError("APPEND", err)
	}
	return &imap.AppendData{UID: imap.UID(got.UID), UIDValidity: fi.UIDValidity}, nil
}

func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	return s.sel.poll(w, allowExpunge)
}

func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	v := s.sel
	if v == nil {
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	for {
		if err := v.poll(w, true); err != nil {
			return err
		}
		select {
		case <-v.notify:
		case <-stop:
			return nil
		case <-s.ctx.Done():
			return nil
		}
	}
}

func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	v := s.sel
	if v.readOnly {
		// EXAMINE: nothing to expunge (and CLOSE must succeed quietly).
		return nil
	}
	name, uv := v.folder()
	var list []uint32
	if uids != nil {
		ts, err := v.resolve(*uids)
		if err != nil {
			return err
		}
		if len(ts) == 0 {
			return nil
		}
		list = uidsOf(ts)
	}
	// The EXPUNGE responses come from the store's changes, at the end of
	// the command (Poll).
	_, err := s.srv.st.Expunge(s.ctx, name, uv, list)
	return s.imapError("EXPUNGE", err)
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) error {
	v := s.sel
	if v.readOnly {
		return errReadOnly
	}
	ts, err := v.resolve(numSet)
	if err != nil || len(ts) == 0 {
		return err
	}
	var fl []string
	for _, f := range flags.Flags {
		if !strings.EqualFold(string(f), string(flagRecent)) {
			fl = append(fl, string(f))
		}
	}
	op := store.FlagsReplace
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	}
	name, uv := v.folder()
	res, err := s.srv.st.UpdateFlags(s.ctx, name, uv, uidsOf(ts), op, fl)
	if err != nil {
		return s.imapError("STORE", err)
	}
	if flags.Silent {
		return nil
	}
	_, isUID := numSet.(imap.UIDSet)
	i := 0
	for _, t := range ts {
		for i < len(res) && res[i].UID < t.uid {
			i++
		}
		if i == len(res) || res[i].UID != t.uid {
			continue
		}
		rw := w.CreateMessage(t.seq)
		if isUID {
			rw.WriteUID(imap.UID(t.uid))
		}
		rw.WriteFlags(toFlags(res[i].Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	v := s.sel
	ts, err := v.resolve(numSet)
	if err != nil {
		return nil, err
	}
	dest, err = canonical(dest)
	if err != nil {
		return nil, errTryCreate
	}
	if _, err := s.srv.st.Folder(dest); err != nil {
		if errors.Is(err, store.ErrNoFolder) {
			return nil, errTryCreate
		}
		return nil, s.imapError("COPY", err)
	}
	if len(ts) == 0 {
		return nil, nil
	}
	name, uv := v.folder()
	di, pairs, err := s.srv.st.CopyUIDs(s.ctx, name, uv, uidsOf(ts), dest)
	if err != nil {
		return nil, s.imapError("COPY", err)
	}
	return copyData(di, pairs), nil
}

func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	v := s.sel
	if v.readOnly {
		return errReadOnly
	}
	ts, err := v.resolve(numSet)
	if err != nil {
		return err
	}
	dest, err = canonical(dest)
	if err != nil {
		return errTryCreate
	}
	if _, err := s.srv.st.Folder(dest); err != nil {
		if errors.Is(err, store.ErrNoFolder) {
			return errTryCreate
		}
		return s.imapError("MOVE", err)
	}
	if len(ts) == 0 {
		return nil
	}
	name, uv := v.folder()
	di, pairs, err := s.srv.st.MoveUIDs(s.ctx, name, uv, uidsOf(ts), dest)
	if len(pairs) > 0 {
		// The EXPUNGE responses follow from the store's changes (Poll).
		if werr := w.WriteCopyData(copyData(di, pairs)); werr != nil {
			return werr
		}
	}
	return s.imapError("MOVE", err)
}

// copyData is the COPYUID of a copy or move (nil if nothing was copied).
func copyData(di store.FolderInfo, pairs []store.UIDMap) *imap.CopyData {
	if len(pairs) == 0 {
		return nil
	}
	d := &imap.CopyData{UIDValidity: di.UIDValidity}
	for _, p := range pairs {
		d.SourceUIDs.AddNum(imap.UID(p.From))
		d.DestUIDs.AddNum(imap.UID(p.To))
	}
	return d
}

func hasFlag(flags []string, flag imap.Flag) bool {
	return slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, string(flag)) })
}

func toFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}

// newID returns a random message ID for an appended message: it cannot
// collide with a SHA-256 of a payload.
func newID() (envelope.ID, error) {
	var id envelope.ID
	_, err := rand.Read(id[:])
	return id, err
}
