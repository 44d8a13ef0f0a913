package store

import (
	"context"
	"errors"
	"expvar"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestSystemFolders(t *testing.T) {
	s := open(t, Options{})
	fs, err := s.Folders()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
		if f.UIDValidity == 0 || f.UIDNext != 1 || f.Messages != 0 {
			t.Errorf("new folder %+v", f)
		}
	}
	if !slices.Equal(names, []string{"INBOX", "Rejected", "Sent"}) {
		t.Errorf("folders %v", names)
	}
	ctx := context.Background()
	for _, name := range []string{"INBOX", "inbox", "Sent", "Rejected"} {
		if err := s.DeleteFolder(ctx, name); !errors.Is(err, ErrSystemFolder) {
			t.Errorf("DeleteFolder(%q): %v", name, err)
		}
		if err := s.RenameFolder(ctx, name, "Other"); !errors.Is(err, ErrSystemFolder) {
			t.Errorf("RenameFolder(%q): %v", name, err)
		}
	}
	if _, err := s.CreateFolder(ctx, "Inbox"); !errors.Is(err, ErrFolderExists) {
		t.Errorf("CreateFolder(Inbox): %v", err)
	}
}

func TestCanonicalFolder(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"INBOX", "INBOX", true},
		{"iNbOx", "INBOX", true},
		{"Archive", "Archive", true},
		{"Archive/2026", "Archive/2026", true},
		{"Caf\u0065\u0301", "Caf\u00e9", true}, // NFC
		{"Projets d'été", "Projets d'été", true},
		{"", "", false},
		{"/Archive", "", false},
		{"Archive/", "", false},
		{"a//b", "", false},
		{"a/../b", "", false},
		{"a*", "", false},
		{"a%", "", false},
		{"a\x00b", "", false},
		{"a\nb", "", false},
		{" a", "", false},
		{"\xff", "", false},
		{string(make([]byte, MaxFolderName+1)), "", false},
	} {
		got, err := CanonicalFolder(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("CanonicalFolder(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrFolderName) {
			t.Errorf("CanonicalFolder(%q): %v is not ErrFolderName", tc.in, err)
		}
	}
}

func TestNormalizeFlags(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		ok   bool
	}{
		{nil, nil, true},
		{[]string{`\Seen`, `\Flagged`, `\seen`, "$Label1"}, []string{"$Label1", `\Flagged`, `\Seen`}, true},
		{[]string{""}, nil, false},
		{[]string{`\`}, nil, false},
		{[]string{"a b"}, nil, false},
		{[]string{"a(b"}, nil, false},
		{[]string{`a\b`}, nil, false},
		{[]string{"é"}, nil, false},
		{[]string{string(make([]byte, MaxFlagLen+1))}, nil, false},
	} {
		got, err := NormalizeFlags(tc.in)
		if tc.ok != (err == nil) || !slices.Equal(got, tc.want) {
			t.Errorf("NormalizeFlags(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	many := make([]string, MaxFlags+1)
	for i := range many {
		many[i] = fmt.Sprint("f", i)
	}
	if _, err := NormalizeFlags(many); !errors.Is(err, ErrInvalid) {
		t.Errorf("%d flags: %v", len(many), err)
	}
}

func TestMailbox(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	date := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", -7*3600))
	var ms []Meta
	for i := range 3 {
		m := Meta{
			ID: testID(i), Folder: "inbox", From: "alice@example.org", To: []string{"bob@example.org"},
			Cc: []string{"carol@example.org", ""}, Subject: fmt.Sprint("message ", i), Date: date,
			MessageID: fmt.Sprintf("<%d@example.org>", i), Size: 99, UID: 77,
			Verification: Verification{Status: "verified", Signer: "0123456789abcdef0123456789abcdef01234567", Detail: "ok"},
			Direction:    DirectionIn,
		}
		if i == 2 {
			m.Flags = []string{FlagSeen}
		}
		body := []byte(fmt.Sprintf("Subject: message %d\r\n\r\nbody %d\r\n", i, i))
		got, err := s.Deliver(ctx, m, body)
		if err != nil {
			t.Fatal(err)
		}
		if got.UID != uint32(i+1) || got.Folder != FolderInbox || got.Size != int64(len(body)) || got.Received.IsZero() {
			t.Errorf("Deliver returned %+v", got)
		}
		ms = append(ms, got)
		stored, err := s.Get(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !metaEqual(stored, got) {
			t.Errorf("Get = %+v\nwant %+v", stored, got)
		}
		if b, err := s.Body(m.ID); err != nil || string(b) != string(body) {
			t.Errorf("Body = %q, %v", b, err)
		}
	}
	if !ms[0].Date.Equal(date) {
		t.Errorf("date %v, want %v", ms[0].Date, date)
	}
	if _, off := ms[0].Date.Zone(); off != -7*3600 {
		t.Errorf("date offset %d", off)
	}
	if _, err := s.Deliver(ctx, Meta{ID: testID(0), Folder: FolderInbox, Direction: DirectionIn}, []byte("x")); !errors.Is(err, ErrExists) {
		t.Errorf("second Deliver: %v", err)
	}
	for _, bad := range []Meta{
		{Folder: FolderInbox, Direction: DirectionIn},
		{ID: testID(9), Folder: FolderInbox},
		{ID: testID(9), Folder: "nowhere", Direction: DirectionIn},
		{ID: testID(9), Folder: FolderInbox, Direction: DirectionIn, Flags: []string{"a b"}},
		{ID: testID(9), Folder: FolderInbox, Direction: DirectionIn, To: make([]string, MaxMetaSize/2)},
	} {
		if _, err := s.Deliver(ctx, bad, []byte("x")); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNoFolder) {
			t.Errorf("Deliver(%+v): %v", bad.Folder, err)
		}
	}
	folderIs := func(name string, msgs, unseen int, next uint32) {
		t.Helper()
		f, err := s.Folder(name)
		if err != nil {
			t.Fatal(err)
		}
		if f.Messages != msgs || f.Unseen != unseen || f.UIDNext != next {
			t.Errorf("%s: %+v, want %d messages, %d unseen, UIDNEXT %d", name, f, msgs, unseen, next)
		}
	}
	folderIs(FolderInbox, 3, 2, 4)

	list, err := s.List(FolderInbox, 0, 0)
	if err != nil || len(list) != 3 {
		t.Fatalf("List: %d, %v", len(list), err)
	}
	for i := range list {
		if !metaEqual(list[i], ms[i]) {
			t.Errorf("List[%d] = %+v\nwant %+v", i, list[i], ms[i])
		}
	}
	if l, _ := s.List(FolderInbox, 1, 1); len(l) != 1 || l[0].UID != 2 {
		t.Errorf("List after 1, limit 1: %+v", l)
	}
	if l, err := s.List(FolderInbox, ^uint32(0), 0); err != nil || len(l) != 0 {
		t.Errorf("List after the last UID: %v %v", l, err)
	}
	if _, err := s.List("nowhere", 0, 0); !errors.Is(err, ErrNoFolder) {
		t.Errorf("List of a missing folder: %v", err)
	}

	// Flags.
	flags, err := s.SetFlags(ctx, ms[0].ID, []string{FlagSeen, `\Flagged`})
	if err != nil || !slices.Equal(flags, []string{`\Flagged`, `\Seen`}) {
		t.Errorf("SetFlags: %v %v", flags, err)
	}
	folderIs(FolderInbox, 3, 1, 4)
	flags, err = s.ChangeFlags(ctx, ms[0].ID, []string{"$Work"}, []string{`\seen`})
	if err != nil || !slices.Equal(flags, []string{"$Work", `\Flagged`}) {
		t.Errorf("ChangeFlags: %v %v", flags, err)
	}
	folderIs(FolderInbox, 3, 2, 4)
	if m, _ := s.Get(ms[0].ID); !slices.Equal(m.Flags, flags) {
		t.Errorf("stored flags %v", m.Flags)
	}
	if _, err := s.SetFlags(ctx, testID(99), nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetFlags of a missing message: %v", err)
	}

	// Move: a new UID in the destination; the body stays.
	if _, err := s.CreateFolder(ctx, "Archive"); err != nil {
		t.Fatal(err)
	}
	moved, err := s.Move(ctx, ms[1].ID, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if moved.Folder != "Archive" || moved.UID != 1 || moved.Subject != ms[1].Subject {
		t.Errorf("Move: %+v", moved)
	}
	folderIs(FolderInbox, 2, 1, 4)
	folderIs("Archive", 1, 1, 2)
	if got, _ := s.Get(ms[1].ID); got.Folder != "Archive" || got.UID != 1 {
		t.Errorf("Get after Move: %+v", got)
	}
	if b, err := s.Body(ms[1].ID); err != nil || len(b) == 0 {
		t.Errorf("Body after Move: %v", err)
	}
	if l, _ := s.List(FolderInbox, 0, 0); len(l) != 2 || l[0].UID != 1 || l[1].UID != 3 {
		t.Errorf("INBOX after Move: %+v", l)
	}
	again, err := s.Move(ctx, ms[1].ID, "Archive")
	if err != nil || again.UID != 2 {
		t.Errorf("Move within the folder: %+v %v", again, err)
	}
	folderIs("Archive", 1, 1, 3)
	if _, err := s.Move(ctx, ms[1].ID, "nowhere"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("Move to a missing folder: %v", err)
	}
	folderIs("Archive", 1, 1, 3)

	// Delete.
	if err := s.Delete(ctx, ms[2].ID); err != nil {
		t.Fatal(err)
	}
	folderIs(FolderInbox, 1, 1, 4)
	if _, err := s.Get(ms[2].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if _, err := s.Body(ms[2].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Body after Delete: %v", err)
	}
	if err := s.Delete(ctx, ms[2].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
	if ok, _ := s.Has(ms[2].ID); !ok {
		t.Error("no tombstone after Delete")
	}
	if _, err := s.Deliver(ctx, Meta{ID: ms[2].ID, Folder: FolderInbox, Direction: DirectionIn}, []byte("x")); !errors.Is(err, ErrExists) {
		t.Errorf("Deliver after Delete: %v", err)
	}
}

func TestFolders(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	ctx := context.Background()
	a, err := s.CreateFolder(ctx, "Work")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateFolder(ctx, "Work"); !errors.Is(err, ErrFolderExists) {
		t.Errorf("second CreateFolder: %v", err)
	}
	if _, err := s.CreateFolder(ctx, "a*"); !errors.Is(err, ErrFolderName) {
		t.Errorf("CreateFolder(a*): %v", err)
	}
	for i := range 3 {
		if _, err := s.Deliver(ctx, Meta{ID: testID(i), Folder: "Work", Direction: DirectionOut, Flags: []string{FlagSeen}}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RenameFolder(ctx, "Work", "Job"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameFolder(ctx, "Work", "Job2"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("rename a missing folder: %v", err)
	}
	if err := s.RenameFolder(ctx, "Job", "INBOX"); !errors.Is(err, ErrFolderExists) {
		t.Errorf("rename onto INBOX: %v", err)
	}
	j, err := s.Folder("Job")
	if err != nil || j.UIDValidity != a.UIDValidity || j.Messages != 3 || j.Unseen != 0 || j.UIDNext != 4 {
		t.Errorf("renamed folder %+v %v (was %+v)", j, err, a)
	}
	if m, err := s.Get(testID(1)); err != nil || m.Folder != "Job" {
		t.Errorf("message after rename: %+v %v", m, err)
	}
	// A folder recreated under an old name gets a new UIDVALIDITY.
	w, err := s.CreateFolder(ctx, "Work")
	if err != nil || w.UIDValidity <= a.UIDValidity {
		t.Errorf("recreated Work: %+v %v (old UIDVALIDITY %d)", w, err, a.UIDValidity)
	}
	if err := s.DeleteFolder(ctx, "Job"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Folder("Job"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("Folder after DeleteFolder: %v", err)
	}
	if err := s.DeleteFolder(ctx, "Job"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("second DeleteFolder: %v", err)
	}
	for i := range 3 {
		if _, err := s.Get(testID(i)); !errors.Is(err, ErrNotFound) {
			t.Errorf("message %d after DeleteFolder: %v", i, err)
		}
		if ok, _ := s.Has(testID(i)); !ok {
			t.Errorf("message %d has no tombstone", i)
		}
	}
	// Persisted.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Options{Dir: dir})
	fs, err := s.Folders()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, []string{"INBOX", "Rejected", "Sent", "Work"}) {
		t.Errorf("folders after reopen: %v", names)
	}
}

// TestDeleteLargeFolder empties a folder over several transactions.
func TestDeleteLargeFolder(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	if _, err := s.CreateFolder(ctx, "Big"); err != nil {
		t.Fatal(err)
	}
	n := deleteChunk*2 + 10
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Deliver(ctx, Meta{ID: testID(i), Folder: "Big", Direction: DirectionIn}, []byte("x"))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if f, _ := s.Folder("Big"); f.Messages != n || f.Unseen != n {
		t.Fatalf("Big: %+v", f)
	}
	if err := s.DeleteFolder(ctx, "Big"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(testID(n - 1)); !ok {
		t.Error("no tombstone")
	}
}

// vlogReads is badger's count of value-log reads (an expvar, counted only
// by stores opened with metrics).
func vlogReads() int64 { return expvar.Get("badger_read_num_vlog").(*expvar.Int).Value() }

// TestListReadsNoBody: bodies over the value threshold live in the value
// log, and listing reads none of them (badger counts every value-log read).
func TestListReadsNoBody(t *testing.T) {
	s := open(t, Options{metrics: true})
	ctx := context.Background()
	const n = 300
	body := make([]byte, 64<<10)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Deliver(ctx, Meta{ID: testID(i), Folder: FolderInbox, Direction: DirectionIn, Subject: "s"}, body)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	before := vlogReads()
	list, err := s.List(FolderInbox, 0, 0)
	if err != nil || len(list) != n {
		t.Fatalf("List: %d, %v", len(list), err)
	}
	if _, err := s.Get(list[0].ID); err != nil {
		t.Fatal(err)
	}
	if d := vlogReads() - before; d != 0 {
		t.Errorf("List read %d values from the value log", d)
	}
	if _, err := s.Body(list[0].ID); err != nil {
		t.Fatal(err)
	}
	if vlogReads() == before {
		t.Error("Body did not read the value log: the check proves nothing")
	}
}

// metaEqual compares two Metas, times by instant and offset.
func metaEqual(a, b Meta) bool {
	_, oa := a.Date.Zone()
	_, ob := b.Date.Zone()
	if !a.Date.Equal(b.Date) || oa != ob || !a.Received.Equal(b.Received) {
		return false
	}
	a.Date, b.Date, a.Received, b.Received = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a.ID == b.ID && a.Folder == b.Folder && a.UID == b.UID && a.From == b.From &&
		slices.Equal(a.To, b.To) && slices.Equal(a.Cc, b.Cc) && a.Subject == b.Subject &&
		a.MessageID == b.MessageID && a.Size == b.Size && slices.Equal(a.Flags, b.Flags) &&
		a.Verification == b.Verification && a.Direction == b.Direction &&
		a.Sender == b.Sender && slices.Equal(a.ReplyTo, b.ReplyTo) && slices.Equal(a.Bcc, b.Bcc) &&
		slices.Equal(a.InReplyTo, b.InReplyTo) && a.CopyOf == b.CopyOf
}

// Metadata over ValueThreshold lives in the value log: moving and
// deleting such a message erases its old entry, which listing skips.
func TestLargeMetadataErased(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	var to []string
	for i := range 200 {
		to = append(to, fmt.Sprintf("recipient-%03d@example.org", i))
	}
	m, err := s.Deliver(ctx, Meta{ID: testID(1), Folder: FolderInbox, Direction: DirectionIn, To: to, Subject: "many"}, []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(encodeMeta(&m)); n < ValueThreshold {
		t.Fatalf("metadata of %d bytes does not test the value log", n)
	}
	if _, err := s.CreateFolder(ctx, "Archive"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, m.ID, "Archive"); err != nil {
		t.Fatal(err)
	}
	if l, err := s.List(FolderInbox, 0, 0); err != nil || len(l) != 0 {
		t.Fatalf("inbox after the move: %v %d", err, len(l))
	}
	l, err := s.List("Archive", 0, 0)
	if err != nil || len(l) != 1 || len(l[0].To) != 200 {
		t.Fatalf("archive: %v %+v", err, l)
	}
	if err := s.Delete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if l, err := s.List("Archive", 0, 0); err != nil || len(l) != 0 {
		t.Fatalf("archive after delete: %v %d", err, len(l))
	}
	if err := s.DeleteFolder(ctx, "Archive"); err != nil {
		t.Fatal(err)
	}
}
