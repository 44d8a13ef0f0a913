package imap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"
)

// imapCode returns the response code of an error from imapclient.
func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func imapType(err error) imap.StatusResponseType {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Type
	}
	return ""
}

func TestLogin(t *testing.T) {
	ts := newServer(t)

	c := dial(t, ts, nil)
	err := c.Login(testUser, "wrong").Wait()
	if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("LOGIN with a wrong password: %v", err)
	}
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("LOGIN after a failure: %v", err)
	}
	if _, err := c.List("", "INBOX", nil).Collect(); err != nil {
		t.Errorf("LIST after LOGIN: %v", err)
	}

	c = dial(t, ts, nil)
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, "nope")); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("AUTHENTICATE PLAIN with a wrong password: %v", err)
	}
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, testPassword)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if _, err := c.List("", "*", nil).Collect(); err != nil {
		t.Errorf("LIST after AUTHENTICATE: %v", err)
	}

	// Three failures, then the connection is dropped.
	c = dial(t, ts, nil)
	for range 3 {
		if err := c.Login("mallory", "guess").Wait(); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("wrong login: %v", err)
		}
	}
	if err := c.Login(testUser, testPassword).Wait(); err == nil {
		t.Error("a fourth login on the same connection succeeded")
	}

	// Commands need a login.
	c = dial(t, ts, nil)
	if _, err := c.Select("INBOX", nil).Wait(); imapType(err) != imap.StatusResponseTypeBad {
		t.Errorf("SELECT before LOGIN: %v", err)
	}
}

func TestListSpecialUse(t *testing.T) {
	ts := newServer(t)
	c := login(t, ts, nil)
	for _, name := range []string{"Projects/2026/Q1", "Projects-old"} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]imap.MailboxAttr{}
	var names []string
	for _, d := range list {
		got[d.Mailbox] = d.Attrs
		names = append(names, d.Mailbox)
		if d.Delim != '/' {
			t.Errorf("%s: delimiter %q", d.Mailbox, d.Delim)
		}
	}
	want := []string{"Archive", "Drafts", "INBOX", "Junk", "Projects", "Projects-old", "Projects/2026", "Projects/2026/Q1", "Rejected", "Sent", "Trash"}
	if !slices.Equal(names, want) {
		t.Errorf("LIST * = %v\nwant %v", names, want)
	}
	for name, attr := range map[string]imap.MailboxAttr{
		"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash,
		"Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive,
		"Projects": imap.MailboxAttrHasChildren, "Projects/2026/Q1": imap.MailboxAttrHasNoChildren,
		"Projects-old": imap.MailboxAttrHasNoChildren,
	} {
		if !slices.Contains(got[name], attr) {
			t.Errorf("%s has %v, want %s", name, got[name], attr)
		}
	}
	if slices.ContainsFunc(got["INBOX"], func(a imap.MailboxAttr) bool { return a == imap.MailboxAttrSent || a == imap.MailboxAttrNoSelect }) {
		t.Errorf("INBOX attributes %v", got["INBOX"])
	}

	// LIST (SPECIAL-USE): just those five.
	list, err = c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 {
		t.Errorf("LIST (SPECIAL-USE) gave %d mailboxes: %+v", len(list), list)
	}
	// %, a reference, INBOX in any case.
	for _, tc := range []struct {
		ref, pattern string
		want         []string
	}{
		{"", "%", []string{"Archive", "Drafts", "INBOX", "Junk", "Projects", "Projects-old", "Rejected", "Sent", "Trash"}},
		{"Projects/", "%", []string{"Projects/2026"}},
		{"", "Projects/%/Q1", []string{"Projects/2026/Q1"}},
		{"", "inbox", []string{"INBOX"}},
		{"", "nothing*", nil},
	} {
		list, err := c.List(tc.ref, tc.pattern, nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, d := range list {
			names = append(names, d.Mailbox)
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("LIST %q %q = %v, want %v", tc.ref, tc.pattern, names, tc.want)
		}
	}
	// A missing level above a mailbox is listed \Noselect.
	if err := c.Create("Lone/Child", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Lone").Wait(); err != nil {
		t.Fatal(err)
	}
	list, err = c.List("", "Lone*", nil).Collect()
	if err != nil || len(list) != 2 || !slices.Contains(list[0].Attrs, imap.MailboxAttrNoSelect) {
		t.Errorf("LIST Lone*: %+v, %v", list, err)
	}
}

func TestMailboxManagement(t *testing.T) {
	ts := newServer(t)
	c := login(t, ts, nil)
	deliver(t, ts.st, store.FolderInbox, simple(1, "a@b", "x", "y"))
	for _, tc := range []struct {
		name string
		err  error
		code imap.ResponseCode
	}{
		{"Work", c.Create("Work", nil).Wait(), ""},
		{"Work again", c.Create("Work", nil).Wait(), imap.ResponseCodeAlreadyExists},
		{"INBOX", c.Create("inbox", nil).Wait(), imap.ResponseCodeAlreadyExists},
		{"bad name", c.Create("a//b", nil).Wait(), imap.ResponseCodeCannot},
		{"wildcard", c.Create("a*", nil).Wait(), imap.ResponseCodeCannot},
		{"Work/Sub", c.Create("Work/Sub", nil).Wait(), ""},
		{"rename", c.Rename("Work", "Job", nil).Wait(), ""},
		{"rename INBOX", c.Rename("INBOX", "Old", nil).Wait(), imap.ResponseCodeCannot},
		{"rename missing", c.Rename("Missing", "Other", nil).Wait(), imap.ResponseCodeNonExistent},
		{"rename onto existing", c.Rename("Job", "Sent", nil).Wait(), imap.ResponseCodeAlreadyExists},
		{"delete Sent", c.Delete("Sent").Wait(), imap.ResponseCodeCannot},
		{"delete missing", c.Delete("Missing").Wait(), imap.ResponseCodeNonExistent},
		{"delete Job/Sub", c.Delete("Job/Sub").Wait(), ""},
		{"delete Job", c.Delete("Job").Wait(), ""},
	} {
		if tc.code == "" && tc.err != nil {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
		if tc.code != "" && imapCode(tc.err) != tc.code {
			t.Errorf("%s: %v, want [%s]", tc.name, tc.err, tc.code)
		}
	}
	// Renaming keeps the children and the messages.
	if err := c.Create("P/Q", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	inbox, _ := ts.st.Folder("INBOX")
	if _, _, err := ts.st.MoveUIDs(context.Background(), "INBOX", inbox.UIDValidity, []uint32{1}, "P/Q"); err != nil {
		t.Fatal(err)
	}
	before, _ := ts.st.Folder("P/Q")
	if err := c.Rename("P", "R/S", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	after, err := ts.st.Folder("R/S/Q")
	if err != nil || after.UIDValidity != before.UIDValidity || after.Messages != 1 {
		t.Errorf("after RENAME: %+v, %v (before %+v)", after, err, before)
	}
	if _, err := ts.st.Folder("P"); !errors.Is(err, store.ErrNoFolder) {
		t.Errorf("P after RENAME: %v", err)
	}
	// SUBSCRIBE and LSUB: everything is subscribed.
	if err := c.Subscribe("R/S").Wait(); err != nil {
		t.Error(err)
	}
	if err := c.Unsubscribe("Nothing").Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("UNSUBSCRIBE of a missing mailbox: %v", err)
	}
}

func TestSelectStatus(t *testing.T) {
	ts := newServer(t)
	deliver(t, ts.st, store.FolderInbox, simple(1, "a@example.org", "one", "1"), `\Seen`)
	deliver(t, ts.st, store.FolderInbox, simple(2, "a@example.org", "two", "2"), "$Label")
	deliver(t, ts.st, store.FolderInbox, simple(3, "a@example.org", "three", "3"), `\Seen`, `\Deleted`)
	inbox, _ := ts.st.Folder(store.FolderInbox)
	c := login(t, ts, nil)
	sd, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd.NumMessages != 3 || sd.UIDNext != 4 || sd.UIDValidity != inbox.UIDValidity {
		t.Errorf("SELECT: %+v", sd)
	}
	if !slices.Contains(sd.Flags, "$Label") || !slices.Contains(sd.PermanentFlags, imap.FlagWildcard) {
		t.Errorf("flags %v, permanent %v", sd.Flags, sd.PermanentFlags)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 3 || *st.NumUnseen != 1 || *st.NumDeleted != 1 || st.UIDNext != 4 || st.UIDValidity != inbox.UIDValidity {
		t.Errorf("STATUS: %+v", st)
	}
	if _, err := c.Select("Nowhere", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT of a missing mailbox: %v", err)
	}
	if _, err := c.Status("Nowhere", &imap.StatusOptions{NumMessages: true}).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("STATUS of a missing mailbox: %v", err)
	}

	// EXAMINE is read-only: no STORE, no \Seen from a FETCH.
	sd, err = c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sd.NumMessages != 3 {
		t.Fatalf("EXAMINE: %+v, %v", sd, err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); imapCode(err) != "READ-ONLY" {
		t.Errorf("STORE after EXAMINE: %v", err)
	}
	if _, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	if m, _ := ts.st.Messages(store.FolderInbox, 0, []uint32{2}); hasFlag(m[0].Flags, imap.FlagSeen) {
		t.Error("FETCH BODY[] after EXAMINE set \\Seen")
	}
	if err := c.Expunge().Close(); err != nil {
		t.Errorf("EXPUNGE after EXAMINE: %v", err)
	}
	if fi, _ := ts.st.Folder(store.FolderInbox); fi.Messages != 3 {
		t.Error("EXPUNGE after EXAMINE removed messages")
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Error(err)
	}
}

func TestFetch(t *testing.T) {
	ts := newServer(t)
	m := deliver(t, ts.st, store.FolderInbox, multipart)
	deliver(t, ts.st, store.FolderInbox, simple(2, "x@example.org", "plain", "plain text"))
	c := login(t, ts, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	header := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	part1 := &imap.FetchItemBodySection{Part: []int{1}, Peek: true}
	part2mime := &imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierMIME, Peek: true}
	partial := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 6, Size: 20}}
	fields := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "X-Custom"}, Peek: true}
	binary1 := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, InternalDate: true, RFC822Size: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{header, part1, part2mime, partial, fields},
		BinarySection: []*imap.FetchItemBinarySection{binary1},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	got := msgs[0]
	if got.UID != imap.UID(m.UID) || got.RFC822Size != int64(len(multipart)) || !got.InternalDate.Equal(m.Received.Truncate(time.Second)) {
		t.Errorf("UID %d, size %d, internal date %v (want %d, %d, %v)", got.UID, got.RFC822Size, got.InternalDate, m.UID, len(multipart), m.Received)
	}
	if len(got.Flags) != 0 {
		t.Errorf("flags %v", got.Flags)
	}
	// The ENVELOPE built from the metadata is the one imapserver builds
	// from the header.
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(multipart)))
	if err != nil {
		t.Fatal(err)
	}
	want := imapserver.ExtractEnvelope(h)
	if !reflect.DeepEqual(normEnvelope(got.Envelope), normEnvelope(want)) {
		t.Errorf("ENVELOPE\n got %+v\nwant %+v", got.Envelope, want)
	}
	if got.Envelope.From[0].Name != "Alïce" || got.Envelope.Sender[0].Mailbox != "sec" || got.Envelope.InReplyTo[0] != "question@example.org" {
		t.Errorf("ENVELOPE %+v", got.Envelope)
	}
	bs, ok := got.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || bs.Subtype != "mixed" || len(bs.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE %#v", got.BodyStructure)
	}
	if p := bs.Children[1].(*imap.BodyStructureSinglePart); p.Type != "application" || p.Subtype != "pdf" || p.Disposition().Value != "attachment" {
		t.Errorf("second part %+v", p)
	}
	wantHeader := multipart[:strings.Index(multipart, "\r\n\r\n")+4]
	for _, tc := range []struct {
		section *imap.FetchItemBodySection
		want    string
	}{
		{header, wantHeader},
		{part1, "Here is the report. Caf=C3=A9 budget attached."},
		{part2mime, "Content-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"},
		{partial, multipart[6:26]},
		{fields, "Subject: Quarterly report\r\nX-Custom: needle-in-header\r\n\r\n"},
	} {
		if b := got.FindBodySection(tc.section); string(b) != tc.want {
			t.Errorf("BODY[%v %s %v]<%v> = %q\nwant %q", tc.section.Part, tc.section.Specifier, tc.section.HeaderFields, tc.section.Partial, b, tc.want)
		}
	}
	if b := got.FindBinarySection(binary1); string(b) != "Here is the report. Café budget attached." {
		t.Errorf("BINARY[1] = %q", b)
	}

	// BODY.PEEK left \Seen alone; BODY[] sets it and says so.
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if string(msgs[0].BodySection[0].Bytes) != multipart || !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("BODY[]: flags %v, body %d bytes", msgs[0].Flags, len(msgs[0].BodySection[0].Bytes))
	}
	if mm, _ := ts.st.Get(m.ID); !hasFlag(mm.Flags, imap.FlagSeen) {
		t.Error("\\Seen not stored")
	}

	// UID FETCH, ranges, "*", and numbers out of range.
	msgs, err = c.Fetch(imap.UIDSetNum(2, 99), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 2 || msgs[0].SeqNum != 2 {
		t.Errorf("UID FETCH 2,99: %+v, %v", msgs, err)
	}
	var star imap.SeqSet
	star.AddRange(2, 0)
	msgs, err = c.Fetch(star, &imap.FetchOptions{RFC822Size: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].SeqNum != 2 {
		t.Errorf("FETCH 2:*: %+v, %v", msgs, err)
	}
	if _, err := c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{Flags: true}).Collect(); imapType(err) != imap.StatusResponseTypeBad {
		t.Errorf("FETCH 3 of 2 messages: %v", err)
	}
	// BODY[] of a part that does not exist is empty.
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Part: []int{7, 3}, Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 || len(msgs[0].BodySection[0].Bytes) != 0 {
		t.Errorf("BODY[7.3]: %+v, %v", msgs, err)
	}
}

// normEnvelope makes nil and empty lists equal.
func normEnvelope(e *imap.Envelope) imap.Envelope {
	out := *e
	for _, l := range []*[]imap.Address{&out.From, &out.Sender, &out.ReplyTo, &out.To, &out.Cc, &out.Bcc} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if len(out.InReplyTo) == 0 {
		out.InReplyTo = nil
	}
	out.Date = out.Date.UTC()
	return out
}

func TestSearch(t *testing.T) {
	ts := newServer(t)
	deliver(t, ts.st, store.FolderInbox, multipart)                                                                 // 1
	deliver(t, ts.st, store.FolderInbox, simple(2, "Zoe <zoe@example.net>", "Lunch on Friday", "see you"), `\Seen`) // 2
	deliver(t, ts.st, store.FolderInbox, simple(3, "zoe@example.net", "Invoice", strings.Repeat("long ", 2000)))    // 3
	deliver(t, ts.st, store.FolderInbox, "From: q@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nDate: Sun, 01 Mar 2026 12:00:00 +0000\r\n"+
		"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Cr=E8me br=FBl=E9e</p>\r\n", `\Flagged`) // 4
	c := login(t, ts, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	day := func(s string) time.Time { d, _ := time.Parse("2006-01-02", s); return d }
	for _, tc := range []struct {
		name string
		c    imap.SearchCriteria
		want []uint32
	}{
		{"ALL", imap.SearchCriteria{}, []uint32{1, 2, 3, 4}},
		{"FROM zoe", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "ZOE"}}}, []uint32{2, 3}},
		{"FROM name", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "alïce"}}}, []uint32{1}},
		{"TO carol", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "carol@"}}}, []uint32{1}},
		{"CC", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Cc", Value: "dave"}}}, []uint32{1}},
		{"SUBJECT", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "friday"}}}, []uint32{2}},
		{"SUBJECT decoded", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "café"}}}, []uint32{4}},
		{"HEADER other", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Custom", Value: "needle"}}}, []uint32{1}},
		{"HEADER present", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "In-Reply-To", Value: ""}}}, []uint32{1}},
		{"HEADER Message-Id", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "<2@example.org>"}}}, []uint32{2}},
		{"BODY qp", imap.SearchCriteria{Body: []string{"café budget"}}, []uint32{1}},
		{"BODY latin1", imap.SearchCriteria{Body: []string{"crème brûlée"}}, []uint32{4}},
		{"BODY not in header", imap.SearchCriteria{Body: []string{"needle-in-header"}}, nil},
		{"TEXT header", imap.SearchCriteria{Text: []string{"needle-in-header"}}, []uint32{1}},
		{"BODY not in attachment", imap.SearchCriteria{Body: []string{"JVBERi0"}}, nil},
		{"SEEN", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, []uint32{2}},
		{"UNSEEN", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{1, 3, 4}},
		{"FLAGGED", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, []uint32{4}},
		{"LARGER", imap.SearchCriteria{Larger: 5000}, []uint32{3}},
		{"SMALLER", imap.SearchCriteria{Smaller: 300}, []uint32{2, 4}},
		{"SENTSINCE", imap.SearchCriteria{SentSince: day("2026-02-03")}, []uint32{1, 4}},
		{"SENTBEFORE", imap.SearchCriteria{SentBefore: day("2026-02-03")}, []uint32{2, 3}},
		{"ON today", imap.SearchCriteria{Since: time.Now().UTC().AddDate(0, 0, -1), Before: time.Now().UTC().AddDate(0, 0, 1)}, []uint32{1, 2, 3, 4}},
		{"BEFORE 2000", imap.SearchCriteria{Before: day("2000-01-01")}, nil},
		{"NOT", imap.SearchCriteria{Not: []imap.SearchCriteria{{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "zoe"}}}}}, []uint32{1, 4}},
		{"OR", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagSeen}}, {Flag: []imap.Flag{imap.FlagFlagged}}}}}, []uint32{2, 4}},
		{"seq set", imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 2, Stop: 0}}}}, []uint32{2, 3, 4}},
		{"UID set", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(1, 3)}}, []uint32{1, 3}},
	} {
		data, err := c.Search(&tc.c, nil).Wait()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := data.AllSeqNums(); !slices.Equal(got, tc.want) {
			t.Errorf("SEARCH %s = %v, want %v", tc.name, got, tc.want)
		}
	}
	// UID SEARCH after an expunge: UIDs, not sequence numbers.
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "zoe"}}}, nil).Wait()
	if err != nil || !slices.Equal(data.AllUIDs(), []imap.UID{2, 3}) {
		t.Errorf("UID SEARCH FROM zoe: %v, %v", data.AllUIDs(), err)
	}
	data, err = c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "zoe"}}}, nil).Wait()
	if err != nil || !slices.Equal(data.AllSeqNums(), []uint32{1, 2}) {
		t.Errorf("SEARCH FROM zoe after EXPUNGE: %v, %v", data.AllSeqNums(), err)
	}
	// ESEARCH.
	data, err = c.Search(&imap.SearchCriteria{}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	if err != nil || data.Min != 1 || data.Max != 3 || data.Count != 3 {
		t.Errorf("SEARCH RETURN (MIN MAX COUNT): %+v, %v", data, err)
	}
}

func TestStore(t *testing.T) {
	ts := newServer(t)
	for i := range 3 {
		deliver(t, ts.st, store.FolderInbox, simple(i, "a@example.org", "s", "b"))
	}
	// A second client watches.
	updates := make(chan *imapclient.FetchMessageData, 10)
	other := login(t, ts, &imapclient.UnilateralDataHandler{Fetch: func(m *imapclient.FetchMessageData) { updates <- m }})
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	c := login(t, ts, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := func(set imap.NumSet, op imap.StoreFlagsOp, silent bool, flags ...imap.Flag) []*imapclient.FetchMessageBuffer {
		t.Helper()
		msgs, err := c.Store(set, &imap.StoreFlags{Op: op, Silent: silent, Flags: flags}, nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	msgs := store(imap.SeqSetNum(1, 2), imap.StoreFlagsAdd, false, imap.FlagFlagged, "$Work")
	if len(msgs) != 2 || !slices.Equal(msgs[0].Flags, []imap.Flag{"$Work", imap.FlagFlagged}) {
		t.Errorf("+FLAGS: %+v", msgs)
	}
	msgs = store(imap.SeqSetNum(1), imap.StoreFlagsDel, false, "$work")
	if len(msgs) != 1 || !slices.Equal(msgs[0].Flags, []imap.Flag{imap.FlagFlagged}) {
		t.Errorf("-FLAGS: %+v", msgs)
	}
	msgs = store(imap.SeqSetNum(3), imap.StoreFlagsSet, true, imap.FlagAnswered)
	if len(msgs) != 0 {
		t.Errorf("FLAGS.SILENT answered %+v", msgs)
	}
	msgs, err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsSet, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 2 || !slices.Equal(msgs[0].Flags, []imap.Flag{imap.FlagSeen}) {
		t.Errorf("UID STORE FLAGS: %+v, %v", msgs, err)
	}
	want := map[uint32][]string{1: {`\Flagged`}, 2: {`\Seen`}, 3: {`\Answered`}}
	ms, _ := ts.st.Messages("INBOX", 0, []uint32{1, 2, 3})
	for _, m := range ms {
		if !slices.Equal(m.Flags, want[m.UID]) {
			t.Errorf("stored flags of %d: %v", m.UID, m.Flags)
		}
	}
	// Bad flags: a protocol error, not a crash.
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{`\*`}}, nil).Close(); err == nil {
		t.Error("STORE +FLAGS (\\*) succeeded")
	}

	// The other client learns of every change at its next command.
	if err := other.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	// imapclient hands each unilateral FETCH to its own goroutine, so they
	// arrive here in any order: look for every change.
	expect := map[string]bool{
		"1 $Work \\Flagged": true, "1 \\Flagged": true, "2 $Work \\Flagged": true, "2 \\Seen": true, "3 \\Answered": true,
	}
	timeout := time.After(10 * time.Second)
	for len(expect) > 0 {
		select {
		case m := <-updates:
			buf, err := m.Collect()
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprint(buf.SeqNum)
			for _, f := range buf.Flags {
				key += " " + string(f)
			}
			if !expect[key] {
				t.Errorf("unexpected update %q", key)
			}
			delete(expect, key)
		case <-timeout:
			t.Fatalf("the other client did not see %v", expect)
		}
	}
}

func TestCopyMoveExpunge(t *testing.T) {
	ts := newServer(t)
	for i := range 5 {
		deliver(t, ts.st, store.FolderInbox, simple(i, "a@example.org", fmt.Sprint("msg ", i), "b"))
	}
	var expunged []uint32
	c := login(t, ts, &imapclient.UnilateralDataHandler{Expunge: func(seq uint32) { expunged = append(expunged, seq) }})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	archive, _ := ts.st.Folder("Archive")
	data, err := c.Copy(imap.SeqSetNum(1, 2), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.UIDValidity != archive.UIDValidity || data.SourceUIDs.String() != "1:2" || data.DestUIDs.String() != "1:2" {
		t.Errorf("COPYUID %+v", data)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nowhere").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing mailbox: %v", err)
	}

	// MOVE 2 and 4 to Trash: COPYUID and EXPUNGE 4, 2 (or 2, 3).
	md, err := c.Move(imap.SeqSetNum(2, 4), "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	trash, _ := ts.st.Folder("Trash")
	if md.UIDValidity != trash.UIDValidity || md.SourceUIDs.String() != "2,4" || md.DestUIDs.String() != "1:2" {
		t.Errorf("MOVE COPYUID %+v", md)
	}
	if c.Mailbox().NumMessages != 3 {
		t.Errorf("after MOVE the client counts %d messages", c.Mailbox().NumMessages)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Nowhere").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("MOVE to a missing mailbox: %v", err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 3 || msgs[0].UID != 1 || msgs[1].UID != 3 || msgs[2].UID != 5 {
		t.Errorf("after MOVE: %+v, %v", msgs, err)
	}

	// EXPUNGE removes only \Deleted; UID EXPUNGE only those named.
	if err := c.Store(imap.SeqSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	seqs, err := c.UIDExpunge(imap.UIDSetNum(3)).Collect()
	if err != nil || !slices.Equal(seqs, []uint32{2}) {
		t.Errorf("UID EXPUNGE 3: %v, %v", seqs, err)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	seqs, err = c.Expunge().Collect()
	if err != nil || !slices.Equal(seqs, []uint32{1}) {
		t.Errorf("EXPUNGE: %v, %v", seqs, err)
	}
	fi, ms, _ := ts.st.Snapshot("INBOX")
	if fi.Messages != 1 || len(ms) != 1 || ms[0].UID != 5 {
		t.Errorf("INBOX after EXPUNGE: %+v %+v", fi, ms)
	}
	// COPY into the selected mailbox: EXISTS at the end of the command.
	if _, err := c.Copy(imap.SeqSetNum(1), "INBOX").Wait(); err != nil {
		t.Fatal(err)
	}
	if c.Mailbox().NumMessages != 2 {
		t.Errorf("after COPY into INBOX the client counts %d", c.Mailbox().NumMessages)
	}
	// CLOSE expunges silently.
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	expunged = nil
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := ts.st.Folder("INBOX"); fi.Messages != 1 || len(expunged) != 0 {
		t.Errorf("after CLOSE: %+v, EXPUNGE responses %v", fi, expunged)
	}
	if fi, _ := ts.st.Folder("Archive"); fi.Messages != 2 {
		t.Errorf("Archive: %+v", fi)
	}
}

func TestAppend(t *testing.T) {
	ts := newServer(t)
	c := login(t, ts, nil)
	drafts, _ := ts.st.Folder("Drafts")
	date := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", -5*3600))
	draft := simple(1, "Alice <alice@example.org>", "Draft", "not finished")
	cmd := c.Append("Drafts", int64(len(draft)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft, imap.FlagSeen}, Time: date})
	if _, err := cmd.Write([]byte(draft)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.UID != 1 || data.UIDValidity != drafts.UIDValidity {
		t.Errorf("APPENDUID %+v", data)
	}
	ms, _ := ts.st.List("Drafts", 0, 0)
	if len(ms) != 1 || ms[0].Subject != "Draft" || !ms[0].Received.Equal(date) || !slices.Equal(ms[0].Flags, []string{`\Draft`, `\Seen`}) ||
		ms[0].Direction != store.DirectionLocal || ms[0].From != `"Alice" <alice@example.org>` {
		t.Errorf("appended %+v", ms)
	}
	if b, _ := ts.st.Body(ms[0].ID); string(b) != draft {
		t.Errorf("appended body %q", b)
	}
	// Appending into the selected mailbox: EXISTS.
	if _, err := c.Select("Sent", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg := func(mailbox, msg string) error {
		cmd := c.Append(mailbox, int64(len(msg)), nil)
		cmd.Write([]byte(msg))
		cmd.Close()
		_, err := cmd.Wait()
		return err
	}
	if err := appendMsg("Sent", simple(2, "alice@example.org", "sent", "x")); err != nil {
		t.Fatal(err)
	}
	if c.Mailbox().NumMessages != 1 {
		t.Errorf("after APPEND the client counts %d", c.Mailbox().NumMessages)
	}
	if err := appendMsg("Nowhere", simple(3, "a@b", "x", "y")); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("APPEND to a missing mailbox: %v", err)
	}
	big := simple(4, "a@b", "big", strings.Repeat("x", 2<<20))
	if caps := c.Caps(); !caps.Has("APPENDLIMIT=1048576") {
		t.Errorf("capabilities %v", caps)
	}
	// (imapclient gives up its connection after a refused literal; the
	// server keeps it: see TestMalformed.)
	if err := appendMsg("Drafts", big); imapCode(err) != imap.ResponseCodeTooBig {
		t.Errorf("APPEND of 2 MiB (limit 1 MiB): %v", err)
	}
}

func TestIdle(t *testing.T) {
	ts := newServer(t)
	deliver(t, ts.st, store.FolderInbox, simple(1, "a@example.org", "before", "x"))
	exists := make(chan uint32, 10)
	expunges := make(chan uint32, 10)
	fetches := make(chan *imapclient.FetchMessageData, 10)
	c := login(t, ts, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
		Expunge: func(seq uint32) { expunges <- seq },
		Fetch:   func(m *imapclient.FetchMessageData) { fetches <- m },
	})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	go func() {
		if _, err := deliverErr(ts.st, store.FolderInbox, []byte(simple(2, "b@example.org", "new mail", "y"))); err != nil {
			t.Error(err)
		}
	}()
	select {
	case n := <-exists:
		if n != 2 {
			t.Errorf("EXISTS %d", n)
		}
		t.Logf("IDLE told of new mail %v after Deliver started", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("IDLE: no EXISTS")
	}
	// Another session's expunge is pushed too.
	other := login(t, ts, nil)
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case seq := <-expunges:
		if seq != 1 {
			t.Errorf("EXPUNGE %d", seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("IDLE: no EXPUNGE")
	}
	// And a flag change.
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	// (The \Deleted of the expunged message was pushed before.)
	for found := false; !found; {
		select {
		case m := <-fetches:
			buf, err := m.Collect()
			if err != nil {
				t.Fatal(err)
			}
			found = buf.SeqNum == 1 && buf.UID == 2 && slices.Equal(buf.Flags, []imap.Flag{imap.FlagFlagged})
		case <-time.After(10 * time.Second):
			t.Fatal("IDLE: no FETCH FLAGS")
		}
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if c.Mailbox().NumMessages != 1 {
		t.Errorf("after IDLE the client counts %d", c.Mailbox().NumMessages)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	ts := start(t, st)
	for i := range 4 {
		deliver(t, st, store.FolderInbox, simple(i, "a@example.org", fmt.Sprint("m", i), "b"))
	}
	c := login(t, ts, nil)
	sd, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Keep"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	moved, err := c.Move(imap.SeqSetNum(2), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ts.close(t)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	ts = start(t, openStore(t, dir))
	c = login(t, ts, nil)
	sd2, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd2.UIDValidity != sd.UIDValidity || sd2.UIDNext != sd.UIDNext || sd2.NumMessages != 3 {
		t.Errorf("after restart %+v, before %+v", sd2, sd)
	}
	after, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if before[i].UID != after[i].UID || !slices.Equal(before[i].Flags, after[i].Flags) || before[i].Envelope.Subject != after[i].Envelope.Subject {
			t.Errorf("message %d: before %+v, after %+v", i+1, before[i], after[i])
		}
	}
	sd3, err := c.Select("Archive", nil).Wait()
	if err != nil || sd3.UIDValidity != moved.UIDValidity || sd3.NumMessages != 1 {
		t.Errorf("Archive after restart: %+v, %v", sd3, err)
	}
	if msgs, err := c.Fetch(moved.DestUIDs, &imap.FetchOptions{Envelope: true}).Collect(); err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "m1" {
		t.Errorf("moved message after restart: %+v, %v", msgs, err)
	}
}

// Malformed and out-of-place commands get BAD (or NO), and the connection
// goes on.
func TestMalformed(t *testing.T) {
	ts := newServer(t)
	deliver(t, ts.st, store.FolderInbox, simple(1, "a@example.org", "s", "b"))
	rc := dialRaw(t, ts)
	if _, tagged := rc.cmd("a1", "LOGIN "+testUser+" \"wrong\""); !strings.HasPrefix(tagged, "a1 NO") {
		t.Errorf("wrong LOGIN: %q", tagged)
	}
	if _, tagged := rc.cmd("a2", "LOGIN "+testUser+" \""+testPassword+"\""); !strings.HasPrefix(tagged, "a2 OK") {
		t.Fatalf("LOGIN: %q", tagged)
	}
	// go-imap v2.0.0-beta.8 answers some syntax errors of its own parser
	// (a sequence set it cannot parse, an unknown SEARCH key) with NO
	// [SERVERBUG] instead of BAD (go-imap pull request #765); the
	// connection goes on all the same.
	parserBug := map[string]bool{"FETCH abc FLAGS": true, "FETCH 0 FLAGS": true, "SEARCH NOSUCHKEY": true}
	for _, tc := range []struct{ line, want string }{
		{"FETCH 1 FLAGS", "BAD"},               // not selected
		{"SELECT", "BAD"},                      // no argument
		{"SELECT \"a\x01b\"", "NO"},            // a control character
		{"CREATE \"x/../y\"", "NO"},            // not a name
		{"CREATE \"\"", "NO"},                  // empty
		{"XYZZY", "BAD"},                       // unknown
		{"SELECT INBOX", "OK"},                 //
		{"FETCH abc FLAGS", "BAD"},             // not a set (imapserver: NO [SERVERBUG], see below)
		{"FETCH 1 (FLAGS", "BAD"},              // unbalanced
		{"FETCH 1 (NOTANITEM)", "BAD"},         // unknown item
		{"FETCH 99 FLAGS", "BAD"},              // out of range
		{"FETCH 0 FLAGS", "BAD"},               // zero
		{"FETCH 4294967295 FLAGS", "BAD"},      // huge
		{"UID FETCH 1:4294967295 FLAGS", "OK"}, // UIDs: ignored
		{"FETCH 1 BODY[1.2.3.4.5.6.7]", "OK"},  // no such part: empty
		{"FETCH 1 BODY[HEADER.FIELDS]", "BAD"}, // no field list
		{"FETCH 1 BODY[]<5.-1>", "BAD"},        // bad partial
		{"STORE 1 +FLAGS (\\Seen", "BAD"},      // unbalanced
		{"STORE 1 +FLAGS (\"quoted\")", "BAD"}, // not a flag
		{"STORE 1 BOGUS (\\Seen)", "BAD"},      // not FLAGS
		{"SEARCH FROM", "BAD"},                 // missing argument
		{"SEARCH CHARSET KOI8-R ALL", "NO"},    // charset
		{"SEARCH UID $", "BAD"},                // SEARCHRES
		{"SEARCH NOSUCHKEY", "BAD"},            //
		{"COPY 1", "BAD"},                      // no destination
		{"MOVE 1 \"a*b\"", "NO"},               // invalid destination
		{"APPEND INBOX {999999999}", "NO"},     // over the limit
		{"LIST", "BAD"},                        //
		{"RENAME INBOX", "BAD"},                //
		{"IDLE extra", "BAD"},                  //
		{"NOOP", "OK"},
	} {
		tag := fmt.Sprintf("t%d", len(tc.line))
		_, tagged := rc.cmd(tag, tc.line)
		if parserBug[tc.line] && strings.HasPrefix(tagged, tag+" NO [SERVERBUG]") {
			continue
		}
		if !strings.HasPrefix(tagged, tag+" "+tc.want) {
			t.Errorf("%q: %q, want %s", tc.line, tagged, tc.want)
		}
	}
	// A line over imapserver's 50 KiB command limit.
	if _, err := fmt.Fprintf(rc.c, "big FETCH 1 (%s)\r\n", strings.Repeat("FLAGS ", 20000)); err != nil {
		t.Fatal(err)
	}
	// The connection may close after that; the server must live on.
	c := login(t, ts, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("a new connection after malformed input: %v", err)
	}
}

// An unknown command before login ends the connection (a cross-protocol
// guard of imapserver), with BYE.
func TestUnknownBeforeLogin(t *testing.T) {
	ts := newServer(t)
	rc := dialRaw(t, ts)
	_, tagged := rc.cmd("x", "GET / HTTP/1.1")
	if bye := rc.line(); !strings.HasPrefix(tagged, "x BAD") || !strings.HasPrefix(bye, "* BYE") {
		t.Errorf("%q %q", tagged, bye)
	}
}

// fakeListener is a listener on an address that is not loopback.
type fakeListener struct{ net.Listener }

func (fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 143} }

func TestServeRefusesRemote(t *testing.T) {
	st := openStore(t, t.TempDir())
	srv, err := NewServer(Config{Store: st, Authenticate: authenticate})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := srv.Serve(fakeListener{l}); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("Serve on 192.0.2.1: %v", err)
	}
	if _, err := NewServer(Config{Store: st}); err == nil {
		t.Error("NewServer without Authenticate")
	}
	if _, err := NewServer(Config{Authenticate: authenticate}); err == nil {
		t.Error("NewServer without a store")
	}
}

// Message lists read the metadata only: a message whose body has gone
// (damaged) still lists, and FETCH of its body says what is wrong.
func TestListingReadsNoBody(t *testing.T) {
	ts := newServer(t)
	m := deliver(t, ts.st, store.FolderInbox, simple(1, "a@example.org", "s", "b"))
	// Remove the body behind the store's back.
	key := append([]byte("b/"), m.ID[:]...)
	if err := ts.st.Durable(context.Background(), func(txn *badger.Txn) error { return store.Erase(txn, key) }); err != nil {
		t.Fatal(err)
	}
	c := login(t, ts, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true, InternalDate: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "s" {
		t.Errorf("listing: %+v, %v", msgs, err)
	}
	_, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if imapCode(err) != imap.ResponseCodeServerBug {
		t.Errorf("FETCH of a missing body: %v", err)
	}
}

// Five clients on one mailbox store, move, copy and expunge at once while
// mail arrives and a sixth client IDLEs; none gets an error, and at the end
// every client's view (message count, sequence numbers, UIDs, flags) is the
// store's.
func TestConcurrentClients(t *testing.T) {
	ts := newServer(t)
	for i := range 60 {
		deliver(t, ts.st, store.FolderInbox, simple(i, "a@example.org", fmt.Sprint("m", i), "b"))
	}
	watcher := login(t, ts, nil)
	if _, err := watcher.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := watcher.Idle()
	if err != nil {
		t.Fatal(err)
	}

	const clients, rounds = 5, 40
	cs := make([]*imapclient.Client, clients)
	for i := range cs {
		cs[i] = login(t, ts, nil)
		if _, err := cs[i].Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		// imapclient marks the mailbox selected only after Wait returns:
		// a NOOP's answer comes after that.
		if err := cs[i].Noop().Wait(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 40 {
			if _, err := deliverErr(ts.st, store.FolderInbox, []byte(simple(100+i, "new@example.org", "new", "x"))); err != nil {
				t.Error(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	flags := []imap.Flag{imap.FlagSeen, imap.FlagFlagged, "$A"}
	for ci, c := range cs {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(ci), 7))
			for round := range rounds {
				mb := c.Mailbox()
				if mb == nil {
					t.Errorf("client %d round %d: state %v", ci, round, c.State())
					return
				}
				n := mb.NumMessages
				if n == 0 {
					if err := c.Noop().Wait(); err != nil {
						t.Errorf("client %d: NOOP: %v", ci, err)
					}
					continue
				}
				seq := imap.SeqSetNum(1 + r.Uint32N(n))
				var err error
				op := r.IntN(6)
				switch op {
				case 0, 1:
					sf := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{flags[r.IntN(len(flags))]}}
					if op == 1 {
						sf.Op = imap.StoreFlagsDel
					}
					var msgs []*imapclient.FetchMessageBuffer
					msgs, err = c.Store(seq, sf, nil).Collect()
					for _, m := range msgs {
						if m.SeqNum > n {
							t.Errorf("client %d: STORE answered for message %d of %d", ci, m.SeqNum, n)
						}
					}
				case 2:
					_, err = c.Move(seq, "Archive").Wait()
				case 3:
					_, err = c.Copy(seq, "Archive").Wait()
				case 4:
					if err = c.Store(seq, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err == nil {
						_, err = c.Expunge().Collect()
					}
				case 5:
					var msgs []*imapclient.FetchMessageBuffer
					// (imapclient also counts a unilateral FETCH FLAGS
					// that follows among the command's results.)
					msgs, err = c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
					seen := map[imap.UID]bool{}
					for _, m := range msgs {
						if seen[m.UID] || m.SeqNum == 0 || m.SeqNum > n+40 {
							t.Errorf("client %d: UID FETCH gave message %d (UID %d) twice or out of range", ci, m.SeqNum, m.UID)
						}
						seen[m.UID] = true
					}
				}
				if err != nil {
					t.Errorf("client %d round %d op %d: %v", ci, round, op, err)
				}
			}
		})
	}
	wg.Wait()
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	fi, metas, err := ts.st.Snapshot("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Messages != len(metas) {
		t.Errorf("store counts %d messages, lists %d", fi.Messages, len(metas))
	}
	for ci, c := range append(cs, watcher) {
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		n := c.Mailbox().NumMessages
		if int(n) != len(metas) {
			t.Errorf("client %d counts %d messages, the store has %d", ci, n, len(metas))
			continue
		}
		if n == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: n}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil || len(msgs) != len(metas) {
			t.Errorf("client %d: FETCH 1:%d: %d messages, %v", ci, n, len(msgs), err)
			continue
		}
		for i, m := range msgs {
			want := metas[i]
			got := make([]string, len(m.Flags))
			for j, f := range m.Flags {
				got[j] = string(f)
			}
			slices.Sort(got)
			if m.SeqNum != uint32(i+1) || uint32(m.UID) != want.UID || !slices.Equal(got, want.Flags) {
				t.Errorf("client %d: message %d is %d %v, the store's %d is %d %v", ci, m.SeqNum, m.UID, got, i+1, want.UID, want.Flags)
				break
			}
		}
	}
	arch, _ := ts.st.Folder("Archive")
	t.Logf("INBOX %d messages, Archive %d", len(metas), arch.Messages)
}
