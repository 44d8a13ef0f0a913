package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
)

func TestSpool(t *testing.T) {
	s := open(t, Options{})
	ctx := context.Background()
	e := inbound("an OpenPGP message")
	if ok, err := s.Has(e.ID); err != nil || ok {
		t.Fatalf("Has before Spool: %v %v", ok, err)
	}
	if dup, err := s.Spool(ctx, e); err != nil || dup {
		t.Fatalf("first Spool: dup %v, %v", dup, err)
	}
	if dup, err := s.Spool(ctx, e); err != nil || !dup {
		t.Fatalf("second Spool: dup %v, %v", dup, err)
	}
	if ok, err := s.Has(e.ID); err != nil || !ok {
		t.Fatalf("Has: %v %v", ok, err)
	}
	got, err := s.Spooled(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || got.Kind != e.Kind || !bytes.Equal(got.Proof, e.Proof) || !bytes.Equal(got.Payload, e.Payload) ||
		got.FromPeer != e.FromPeer || !got.Received.Equal(e.Received) {
		t.Errorf("Spooled: %+v, want %+v", got, e)
	}
	if raw, err := s.Raw(e.ID); err != nil || !bytes.Equal(raw, e.Payload) {
		t.Errorf("Raw: %q %v", raw, err)
	}

	// Refused: a payload that is not the ID's, empty, oversized proof.
	bad := e
	bad.Payload = []byte("other content")
	if _, err := s.Spool(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong ID: %v", err)
	}
	bad = inbound("x")
	bad.Proof = make([]byte, envelope.MaxProof+1)
	if _, err := s.Spool(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("long proof: %v", err)
	}
	if _, err := s.Spool(ctx, Inbound{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty: %v", err)
	}

	// Rejected: the payload goes, the ID stays known.
	r := inbound("undecryptable")
	if _, err := s.Spool(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Reject(ctx, r.ID, "does not decrypt"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reject(ctx, r.ID, "again"); err != nil {
		t.Errorf("second Reject: %v", err)
	}
	if dup, err := s.Spool(ctx, r); err != nil || !dup {
		t.Errorf("Spool after Reject: dup %v, %v", dup, err)
	}
	if _, err := s.Raw(r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Raw after Reject: %v", err)
	}
	if _, err := s.Spooled(r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Spooled after Reject: %v", err)
	}
	if _, err := s.Deliver(ctx, Meta{ID: r.ID, Folder: FolderInbox, Direction: DirectionIn}, []byte("x")); !errors.Is(err, ErrExists) {
		t.Errorf("Deliver after Reject: %v", err)
	}
	ids, err := s.Pending(0)
	if err != nil || len(ids) != 1 || ids[0] != e.ID {
		t.Errorf("Pending: %v %v", ids, err)
	}

	// Delivered: pending cleared, payload kept, still a duplicate.
	m, err := s.Deliver(ctx, Meta{ID: e.ID, Folder: FolderInbox, Direction: DirectionIn, Subject: "hi"}, []byte("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Received.Equal(e.Received) {
		t.Errorf("Received %v, want the spool's %v", m.Received, e.Received)
	}
	if ids, err := s.Pending(0); err != nil || len(ids) != 0 {
		t.Errorf("Pending after Deliver: %v %v", ids, err)
	}
	if raw, err := s.Raw(e.ID); err != nil || !bytes.Equal(raw, e.Payload) {
		t.Errorf("Raw after Deliver: %q %v", raw, err)
	}
	if dup, err := s.Spool(ctx, e); err != nil || !dup {
		t.Errorf("Spool after Deliver: dup %v, %v", dup, err)
	}
	if err := s.Reject(ctx, e.ID, "late"); !errors.Is(err, ErrExists) {
		t.Errorf("Reject of a delivered message: %v", err)
	}
	// Deleted: still a duplicate, payload gone.
	if err := s.Delete(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if dup, err := s.Spool(ctx, e); err != nil || !dup {
		t.Errorf("Spool after Delete: dup %v, %v", dup, err)
	}
	if _, err := s.Raw(e.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Raw after Delete: %v", err)
	}
}

// TestSpoolConcurrentDuplicate: a duplicate arriving while the first copy
// waits for its sync returns only after that sync, as a duplicate.
func TestSpoolConcurrentDuplicate(t *testing.T) {
	var mu sync.Mutex
	var events []string
	record := func(ev string) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}
	var gate chan struct{} // closed to let the next sync go
	var entered chan struct{}
	s := open(t, Options{
		BeforeSync: func() {
			mu.Lock()
			g, e := gate, entered
			mu.Unlock()
			if g != nil {
				close(e)
				<-g
			}
		},
		AfterSync: func(int) { record("sync") },
	})
	mu.Lock()
	gate, entered = make(chan struct{}), make(chan struct{})
	g := gate
	events = nil
	mu.Unlock()

	e := inbound("the same envelope, twice")
	ctx := context.Background()
	type result struct {
		dup bool
		err error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() {
		dup, err := s.Spool(ctx, e)
		record("first returned")
		first <- result{dup, err}
	}()
	<-entered // the first copy is committed, its sync held
	go func() {
		dup, err := s.Spool(ctx, e)
		record("second returned")
		second <- result{dup, err}
	}()
	// The duplicate is visible already but not durable: it must wait.
	deadline := time.Now().Add(2 * time.Second)
	for ok, _ := s.Has(e.ID); !ok && time.Now().Before(deadline); ok, _ = s.Has(e.ID) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	select {
	case r := <-second:
		t.Fatalf("duplicate returned (%v) before the first copy's sync", r)
	default:
	}
	mu.Lock()
	gate = nil
	mu.Unlock()
	close(g)
	r1, r2 := <-first, <-second
	if r1.err != nil || r1.dup {
		t.Errorf("first: %+v", r1)
	}
	if r2.err != nil || !r2.dup {
		t.Errorf("second: %+v", r2)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 3 || events[0] != "sync" {
		t.Errorf("events %v: want a sync before both returns", events)
	}
}

func TestPendingAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var want []envelope.ID
	for _, p := range []string{"one", "two", "three"} {
		e := inbound(p)
		if _, err := s.Spool(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.ID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Options{Dir: dir})
	got, err := s.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	cmp := func(a, b envelope.ID) int { return bytes.Compare(a[:], b[:]) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) {
		t.Errorf("Pending after reopen: %v, want %v", got, want)
	}
	if two, err := s.Pending(2); err != nil || len(two) != 2 {
		t.Errorf("Pending(2): %v %v", two, err)
	}
	in, err := s.Spooled(want[0])
	if err != nil || in.ID != want[0] {
		t.Errorf("Spooled after reopen: %v", err)
	}
}

// TestEncryptedAtRest: no file of the store holds a plaintext marker (and
// the same check finds it in an unencrypted store); a wrong key, no key,
// and a second opener are refused with clear errors.
func TestEncryptedAtRest(t *testing.T) {
	const marker = "PLAINTEXT-MARKER-7f3a9c"
	fill := func(opt Options) string {
		dir := t.TempDir()
		opt.Dir = dir
		s, err := Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		small := []byte("Subject: " + marker + "\r\n\r\nhello\r\n")
		large := bytes.Repeat([]byte(marker+"\r\n"), 10000) // in the value log
		for i, body := range [][]byte{small, large} {
			e := inbound(marker + string(rune('a'+i)))
			if _, err := s.Spool(ctx, e); err != nil {
				t.Fatal(err)
			}
			m := Meta{ID: e.ID, Folder: FolderInbox, Direction: DirectionIn, Subject: marker, From: marker + "@example.org"}
			if _, err := s.Deliver(ctx, m, body); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CreateFolder(ctx, marker); err != nil {
			t.Fatal(err)
		}
		// Grep while open (logs) and after Close (tables).
		if opt.Key != nil && grep(t, dir, marker) {
			t.Error("plaintext found in the open store's files")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := fill(Options{Key: testKey})
	if grep(t, dir, marker) {
		t.Error("plaintext found in the encrypted store's files")
	}
	if !grep(t, fill(Options{InsecurePlaintext: true}), marker) {
		t.Error("the check does not find the marker in an unencrypted store")
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v %v", fi.Mode(), err)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil && info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v", p, info.Mode())
			}
		}
		return nil
	})

	wrong := bytes.Repeat([]byte{0x43}, 32)
	for _, opt := range []Options{{Dir: dir, Key: wrong}, {Dir: dir, InsecurePlaintext: true}} {
		s, err := Open(opt)
		if err == nil {
			s.Close()
			t.Fatal("opened with the wrong key")
		}
		if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "not the one the mail store was created with") {
			t.Errorf("wrong key: %v", err)
		}
	}
	s := open(t, Options{Dir: dir})
	if _, err := Open(Options{Dir: dir, Key: testKey}); !errors.Is(err, ErrInUse) {
		t.Errorf("second Open: %v", err)
	}
	if fs, err := s.Folders(); err != nil || len(fs) != 4 {
		t.Errorf("Folders after reopen: %v %v", fs, err)
	}
}

// grep reports whether any file under dir contains s.
func grep(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			t.Logf("%s contains %q", filepath.Base(p), s)
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
