package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// recorder collects the changes a subscriber is told of.
type recorder struct {
	mu sync.Mutex
	ch []Change
}

func (r *recorder) add(c []Change) {
	r.mu.Lock()
	r.ch = append(r.ch, c...)
	r.mu.Unlock()
}

// take returns and forgets the changes recorded.
func (r *recorder) take() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.ch
	r.ch = nil
	return c
}

func kinds(cs []Change) string {
	var out []string
	for _, c := range cs {
		s := fmt.Sprintf("%s %s", c.Kind, c.Folder)
		if c.UID != 0 {
			s += fmt.Sprint(" ", c.UID)
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func deliverN(t testing.TB, s *Store, folder string, from, n int, flags ...string) []Meta {
	t.Helper()
	var out []Meta
	for i := from; i < from+n; i++ {
		m, err := s.Deliver(context.Background(), Meta{ID: testID(i), Folder: folder, Direction: DirectionIn,
			Subject: fmt.Sprint("message ", i), Flags: flags}, []byte(fmt.Sprint("Subject: message ", i, "\r\n\r\nbody\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// Every change is reported once durable, before the call returns, in
// commit order, with the origin of its context.
func TestSubscribe(t *testing.T) {
	s := open(t, Options{})
	ctx := WithOrigin(context.Background(), "me")
	var r recorder
	cancel := s.Subscribe(r.add)
	inbox, _ := s.Folder(FolderInbox)

	m, err := s.Deliver(ctx, Meta{ID: testID(1), Folder: FolderInbox, Direction: DirectionIn}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	got := r.take()
	if len(got) != 1 || got[0].Kind != ChangeAdded || got[0].UID != m.UID || got[0].UIDValidity != inbox.UIDValidity ||
		got[0].ID != m.ID || got[0].Origin != "me" {
		t.Fatalf("Deliver: %+v", got)
	}
	if _, err := s.ChangeFlags(context.Background(), m.ID, []string{FlagSeen}, nil); err != nil {
		t.Fatal(err)
	}
	if got := r.take(); len(got) != 1 || got[0].Kind != ChangeFlags || !slices.Equal(got[0].Flags, []string{FlagSeen}) || got[0].Origin != nil {
		t.Fatalf("ChangeFlags: %+v", got)
	}
	// No change, no report.
	if _, err := s.ChangeFlags(context.Background(), m.ID, []string{FlagSeen}, nil); err != nil {
		t.Fatal(err)
	}
	if got := r.take(); len(got) != 0 {
		t.Fatalf("unchanged flags: %+v", got)
	}
	if _, err := s.CreateFolder(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, m.ID, "A"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameFolder(ctx, "A", "B"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFolder(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	want := "folder-created A, removed INBOX 1, added A 1, folder-renamed B, removed B 1, folder-deleted B"
	if got := kinds(r.take()); got != want {
		t.Errorf("changes: %s\nwant %s", got, want)
	}

	// Concurrent writers: each folder's additions come in UID order.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				_, err := s.Deliver(context.Background(), Meta{ID: testID(1000 + g*100 + i), Folder: FolderInbox, Direction: DirectionIn}, []byte("x"))
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	var uids []uint32
	for _, c := range r.take() {
		uids = append(uids, c.UID)
	}
	if len(uids) != 160 || !slices.IsSorted(uids) {
		t.Errorf("concurrent deliveries reported UIDs %v", uids)
	}

	cancel()
	if _, err := s.Deliver(ctx, Meta{ID: testID(2), Folder: FolderInbox, Direction: DirectionIn}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := r.take(); len(got) != 0 {
		t.Errorf("after cancel: %+v", got)
	}
}

// A panicking subscriber does not stop the store.
func TestSubscriberPanics(t *testing.T) {
	s := open(t, Options{})
	defer s.Subscribe(func([]Change) { panic("boom") })()
	for i := range 3 {
		if _, err := s.Deliver(context.Background(), Meta{ID: testID(i), Folder: FolderInbox, Direction: DirectionIn}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUIDOperations(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	var r recorder
	defer s.Subscribe(r.add)()
	if _, err := s.CreateFolder(ctx, "Archive"); err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.Folder(FolderInbox)
	uv := inbox.UIDValidity
	ms := deliverN(t, s, FolderInbox, 1, 6)
	r.take()

	// Messages: by UID, skipping the missing ones.
	got, err := s.Messages(FolderInbox, uv, []uint32{6, 2, 3, 99, 2})
	if err != nil || len(got) != 3 || got[0].UID != 2 || got[1].UID != 3 || got[2].UID != 6 || got[2].ID != ms[5].ID || got[0].Folder != FolderInbox {
		t.Fatalf("Messages: %+v, %v", got, err)
	}
	if _, err := s.Messages(FolderInbox, uv+1, []uint32{1}); !errors.Is(err, ErrNoFolder) {
		t.Errorf("Messages with a stale UIDVALIDITY: %v", err)
	}

	// UpdateFlags.
	res, err := s.UpdateFlags(ctx, FolderInbox, uv, []uint32{1, 2, 3, 50}, FlagsAdd, []string{FlagSeen, FlagDeleted})
	if err != nil || len(res) != 3 || !slices.Equal(res[0].Flags, []string{FlagDeleted, FlagSeen}) {
		t.Fatalf("UpdateFlags add: %+v, %v", res, err)
	}
	if res, err = s.UpdateFlags(ctx, FolderInbox, uv, []uint32{3}, FlagsRemove, []string{`\deleted`}); err != nil || !slices.Equal(res[0].Flags, []string{FlagSeen}) {
		t.Fatalf("UpdateFlags remove: %+v, %v", res, err)
	}
	if res, err = s.UpdateFlags(ctx, FolderInbox, uv, []uint32{4}, FlagsReplace, []string{"$Label"}); err != nil || !slices.Equal(res[0].Flags, []string{"$Label"}) {
		t.Fatalf("UpdateFlags replace: %+v, %v", res, err)
	}
	if _, err = s.UpdateFlags(ctx, FolderInbox, uv, []uint32{4}, FlagsAdd, []string{"bad flag"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad flag: %v", err)
	}
	if fi, _ := s.Folder(FolderInbox); fi.Unseen != 3 || fi.Messages != 6 {
		t.Errorf("counts after UpdateFlags: %+v", fi)
	}
	if got := kinds(r.take()); got != "flags INBOX 1, flags INBOX 2, flags INBOX 3, flags INBOX 3, flags INBOX 4" {
		t.Errorf("changes: %s", got)
	}

	// Expunge: only \Deleted, only among the UIDs given.
	if ex, err := s.Expunge(ctx, FolderInbox, uv, []uint32{2, 3}); err != nil || !slices.Equal(ex, []uint32{2}) {
		t.Fatalf("Expunge(2,3): %v, %v", ex, err)
	}
	if ex, err := s.Expunge(ctx, FolderInbox, uv, nil); err != nil || !slices.Equal(ex, []uint32{1}) {
		t.Fatalf("Expunge(all): %v, %v", ex, err)
	}
	if ok, _ := s.Has(ms[0].ID); !ok {
		t.Error("an expunged message must leave a tombstone")
	}
	if _, err := s.Body(ms[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("body of an expunged message: %v", err)
	}
	if got := kinds(r.take()); got != "removed INBOX 2, removed INBOX 1" {
		t.Errorf("changes: %s", got)
	}

	// CopyUIDs: new IDs, bodies copied, CopyOf set, flags kept.
	di, pairs, err := s.CopyUIDs(ctx, FolderInbox, uv, []uint32{3, 4, 77}, "Archive")
	if err != nil || !slices.Equal(pairs, []UIDMap{{3, 1}, {4, 2}}) || di.Messages != 2 || di.Name != "Archive" {
		t.Fatalf("CopyUIDs: %+v %v, %v", di, pairs, err)
	}
	cp, err := s.Messages("Archive", di.UIDValidity, []uint32{1, 2})
	if err != nil || len(cp) != 2 || cp[0].CopyOf != ms[2].ID || cp[0].ID == ms[2].ID || !slices.Equal(cp[1].Flags, []string{"$Label"}) {
		t.Fatalf("copies: %+v, %v", cp, err)
	}
	if b, err := s.Body(cp[0].ID); err != nil || string(b) != "Subject: message 3\r\n\r\nbody\r\n" {
		t.Errorf("copy's body: %q, %v", b, err)
	}
	// Copying into the same folder.
	if _, pairs, err = s.CopyUIDs(ctx, "Archive", di.UIDValidity, []uint32{1}, "Archive"); err != nil || !slices.Equal(pairs, []UIDMap{{1, 3}}) {
		t.Fatalf("CopyUIDs into itself: %v, %v", pairs, err)
	}
	if _, _, err := s.CopyUIDs(ctx, FolderInbox, uv, []uint32{3}, "Nowhere"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("CopyUIDs to a missing folder: %v", err)
	}
	if got := kinds(r.take()); got != "added Archive 1, added Archive 2, added Archive 3" {
		t.Errorf("changes: %s", got)
	}

	// MoveUIDs: same IDs, new UIDs.
	di, pairs, err = s.MoveUIDs(ctx, FolderInbox, uv, []uint32{5, 6}, "Archive")
	if err != nil || !slices.Equal(pairs, []UIDMap{{5, 4}, {6, 5}}) || di.Messages != 5 {
		t.Fatalf("MoveUIDs: %+v %v, %v", di, pairs, err)
	}
	if m, err := s.Get(ms[4].ID); err != nil || m.Folder != "Archive" || m.UID != 4 {
		t.Errorf("moved message: %+v, %v", m, err)
	}
	if _, pairs, err = s.MoveUIDs(ctx, "Archive", di.UIDValidity, []uint32{4}, "Archive"); err != nil || !slices.Equal(pairs, []UIDMap{{4, 6}}) {
		t.Fatalf("MoveUIDs into itself: %v, %v", pairs, err)
	}
	if got := kinds(r.take()); got != "removed INBOX 5, added Archive 4, removed INBOX 6, added Archive 5, removed Archive 4, added Archive 6" {
		t.Errorf("changes: %s", got)
	}
	if fi, _ := s.Folder(FolderInbox); fi.Messages != 2 {
		t.Errorf("INBOX after the moves: %+v", fi)
	}
	fi, snap, err := s.Snapshot("Archive")
	if err != nil || fi.Messages != len(snap) || len(snap) != 5 || snap[4].UID != 6 {
		t.Errorf("Snapshot: %+v %d, %v", fi, len(snap), err)
	}
}

// A large copy is done in several steps; all of it is visible.
func TestCopyManySteps(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	deliverN(t, s, FolderInbox, 1, uidChunk*2+5)
	inbox, _ := s.Folder(FolderInbox)
	var uids []uint32
	for u := uint32(1); u <= uint32(uidChunk*2+5); u++ {
		uids = append(uids, u)
	}
	di, pairs, err := s.CopyUIDs(ctx, FolderInbox, inbox.UIDValidity, uids, FolderSent)
	if err != nil || len(pairs) != len(uids) || di.Messages != len(uids) {
		t.Fatalf("CopyUIDs: %d pairs, %+v, %v", len(pairs), di, err)
	}
	ex, err := s.UpdateFlags(ctx, FolderSent, di.UIDValidity, uids, FlagsAdd, []string{FlagDeleted})
	if err != nil || len(ex) != len(uids) {
		t.Fatal(err)
	}
	if gone, err := s.Expunge(ctx, FolderSent, di.UIDValidity, nil); err != nil || len(gone) != len(uids) {
		t.Fatalf("Expunge: %d, %v", len(gone), err)
	}
}

// Changes made, closed, reopened: UIDs, UIDVALIDITY, flags and moves stay.
func TestUIDOperationsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(Options{Dir: dir, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, FolderInbox, 1, 3)
	inbox, _ := s.Folder(FolderInbox)
	if _, err := s.UpdateFlags(ctx, FolderInbox, inbox.UIDValidity, []uint32{1}, FlagsAdd, []string{"$Important"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.MoveUIDs(ctx, FolderInbox, inbox.UIDValidity, []uint32{2}, FolderSent); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Options{Dir: dir})
	fi, ms, err := s.Snapshot(FolderInbox)
	if err != nil || fi.UIDValidity != inbox.UIDValidity || len(ms) != 2 || ms[0].UID != 1 || ms[1].UID != 3 ||
		!slices.Equal(ms[0].Flags, []string{"$Important"}) {
		t.Fatalf("after reopen: %+v %+v, %v", fi, ms, err)
	}
	if sent, _ := s.List(FolderSent, 0, 0); len(sent) != 1 || sent[0].ID != testID(2) {
		t.Errorf("Sent after reopen: %+v", sent)
	}
}

func TestMetaFromHeader(t *testing.T) {
	raw := "From: =?utf-8?q?Al=C3=AFce?= <alice@example.org>\r\n" +
		"Sender: Secretary <sec@example.org>\r\n" +
		"Reply-To: list@example.org, Other <other@example.org>\r\n" +
		"To: bob@example.org, \"Carol C.\" <carol@example.net>\r\n" +
		"Cc: dave@example.org\r\n" +
		"Bcc: eve@example.org\r\n" +
		"Subject: =?utf-8?q?h=C3=A9llo?=\r\n" +
		"Date: Mon, 02 Feb 2026 10:11:12 +0100\r\n" +
		"Message-Id: <abc@example.org>\r\n" +
		"In-Reply-To: <x@y> <z@w>\r\n\r\nbody\r\n"
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	m := MetaFromHeader(mail.Header{Header: gomessage.Header{Header: h}})
	want := Meta{
		From: `=?utf-8?q?Al=C3=AFce?= <alice@example.org>`, Sender: `"Secretary" <sec@example.org>`,
		ReplyTo: []string{"<list@example.org>", `"Other" <other@example.org>`},
		To:      []string{"<bob@example.org>", `"Carol C." <carol@example.net>`},
		Cc:      []string{"<dave@example.org>"}, Bcc: []string{"<eve@example.org>"},
		Subject: "héllo", Date: time.Date(2026, 2, 2, 10, 11, 12, 0, time.FixedZone("", 3600)),
		MessageID: "abc@example.org", InReplyTo: []string{"x@y", "z@w"},
	}
	if !metaEqual(m, want) {
		t.Errorf("MetaFromHeader:\n got %+v\nwant %+v", m, want)
	}
	if a, err := mail.ParseAddress(m.From); err != nil || a.Name != "Alïce" || a.Address != "alice@example.org" {
		t.Errorf("From does not parse back: %+v, %v", a, err)
	}

	// Thousands of recipients are clipped to fit.
	var b strings.Builder
	b.WriteString("To: ")
	for i := range 5000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "user%d@example.org", i)
	}
	b.WriteString("\r\n\r\n")
	h, err = textproto.ReadHeader(bufio.NewReader(strings.NewReader(b.String())))
	if err != nil {
		t.Fatal(err)
	}
	m = MetaFromHeader(mail.Header{Header: gomessage.Header{Header: h}})
	m.ID, m.Folder, m.Direction = envelope.ID{1}, FolderInbox, DirectionIn
	if len(m.To) == 0 || len(m.To) >= 5000 {
		t.Errorf("%d recipients kept", len(m.To))
	}
	s := open(t, Options{})
	if _, err := s.Deliver(context.Background(), m, []byte("x")); err != nil {
		t.Errorf("Deliver of a clipped Meta: %v", err)
	}
}
