package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opt  Options
		want string
	}{
		{"no dir", Options{Key: testKey}, "no directory"},
		{"no key", Options{Dir: dir}, "no encryption key"},
		{"both", Options{Dir: dir, Key: testKey, InsecurePlaintext: true}, "both"},
		{"short key", Options{Dir: dir, Key: testKey[:16]}, "32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.opt)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestGroupCommit: many concurrent writers share far fewer syncs than
// writes, and every write is covered by exactly one sync.
func TestGroupCommit(t *testing.T) {
	const n = 200
	var syncs, covered atomic.Int64
	s := open(t, Options{
		BeforeSync: func() { time.Sleep(5 * time.Millisecond) },
		AfterSync:  func(k int) { syncs.Add(1); covered.Add(int64(k)) },
	})
	s0, c0 := syncs.Load(), covered.Load() // Open's own writes
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s.Durable(context.Background(), func(txn *badger.Txn) error {
				return txn.Set(fmt.Appendf(nil, "test/%d", i), []byte("v"))
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, cov := syncs.Load()-s0, covered.Load()-c0
	t.Logf("%d writes, %d syncs", n, got)
	if cov != n {
		t.Errorf("syncs covered %d writes, want %d", cov, n)
	}
	if got > n/4 {
		t.Errorf("%d syncs for %d concurrent writes: not grouped", got, n)
	}
}

// TestNoReturnBeforeSync: no caller returns before the end of a sync that
// started after its write was applied.
func TestNoReturnBeforeSync(t *testing.T) {
	const n = 60
	var seq atomic.Int64
	type span struct{ start, end int64 }
	var mu sync.Mutex
	var syncs []span
	var cur span
	s := open(t, Options{
		MaxBatch: 16,
		BeforeSync: func() {
			cur.start = seq.Add(1)
			time.Sleep(20 * time.Millisecond)
		},
		AfterSync: func(int) {
			cur.end = seq.Add(1)
			mu.Lock()
			syncs = append(syncs, cur)
			mu.Unlock()
		},
	})
	applied := make([]int64, n)
	returned := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i%2 == 1 {
				time.Sleep(time.Duration(i) * time.Millisecond)
			}
			err := s.Durable(context.Background(), func(txn *badger.Txn) error {
				applied[i] = seq.Add(1)
				return txn.Set(fmt.Appendf(nil, "test/%d", i), []byte("v"))
			})
			returned[i] = seq.Add(1)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		ok := false
		for _, sp := range syncs {
			if sp.start > applied[i] && sp.end < returned[i] {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("write %d (applied at %d) returned at %d with no sync in between (syncs %v)", i, applied[i], returned[i], syncs)
		}
	}
	if len(syncs) >= n {
		t.Errorf("%d syncs for %d writes", len(syncs), n)
	}
}

// TestDurableErrors: a write's error goes to its caller only, a panic is
// an error, and the other writes of the group are committed.
func TestDurableErrors(t *testing.T) {
	s := open(t, Options{BeforeSync: func() { time.Sleep(5 * time.Millisecond) }})
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			err := s.Durable(context.Background(), func(txn *badger.Txn) error {
				if err := txn.Set(fmt.Appendf(nil, "test/%d", i), []byte("v")); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return errBoom
				case 2:
					panic("write panicked")
				}
				return nil
			})
			switch i % 3 {
			case 0:
				if err != nil {
					t.Errorf("write %d: %v", i, err)
				}
			case 1:
				if !errors.Is(err, errBoom) {
					t.Errorf("write %d: %v, want boom", i, err)
				}
			case 2:
				if err == nil || !strings.Contains(err.Error(), "panicked") {
					t.Errorf("write %d: %v, want a panic error", i, err)
				}
			}
		})
	}
	wg.Wait()
	err := s.DB().View(func(txn *badger.Txn) error {
		for i := range 30 {
			_, err := txn.Get(fmt.Appendf(nil, "test/%d", i))
			if (i%3 == 0) != (err == nil) {
				t.Errorf("key %d: %v", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Durable(context.Background(), nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil write: %v", err)
	}
}

// TestDurableContext: a caller whose ctx ends gets ctx.Err(); a write it
// abandoned before the committer took it never runs.
func TestDurableContext(t *testing.T) {
	s := open(t, Options{})
	release := make(chan struct{})
	entered := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Durable(context.Background(), func(txn *badger.Txn) error {
			close(entered)
			<-release
			return txn.Set([]byte("test/first"), []byte("v"))
		})
	}()
	<-entered // the committer is busy with the first write
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var ran atomic.Bool
	err := s.Durable(ctx, func(txn *badger.Txn) error {
		ran.Store(true)
		return txn.Set([]byte("test/second"), []byte("v"))
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second write: %v, want the deadline", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// A later write is applied after the abandoned one would have been.
	if err := s.Durable(context.Background(), func(*badger.Txn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Error("an abandoned write ran")
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := s.Durable(cctx, func(*badger.Txn) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("ended ctx: %v", err)
	}
}

// TestDurableAcrossReopen: what Durable acknowledged is there after Close
// and Open; Close drains the writes queued when it is called.
func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Key: testKey, BeforeSync: func() { time.Sleep(2 * time.Millisecond) }})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	var wg sync.WaitGroup
	var acked sync.Map
	for i := range n {
		wg.Go(func() {
			err := s.Durable(context.Background(), func(txn *badger.Txn) error {
				return txn.Set(fmt.Appendf(nil, "test/%d", i), fmt.Appendf(nil, "value %d", i))
			})
			switch {
			case err == nil:
				acked.Store(i, true)
			case !errors.Is(err, ErrClosed):
				t.Errorf("write %d: %v", i, err)
			}
		})
		if i == n/2 {
			go s.Close()
		}
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Durable(context.Background(), func(*badger.Txn) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Durable after Close: %v", err)
	}
	if _, err := s.Folders(); !errors.Is(err, ErrClosed) {
		t.Errorf("Folders after Close: %v", err)
	}
	s = open(t, Options{Dir: dir})
	count := 0
	err = s.DB().View(func(txn *badger.Txn) error {
		acked.Range(func(k, _ any) bool {
			count++
			it, err := txn.Get(fmt.Appendf(nil, "test/%d", k.(int)))
			if err != nil {
				t.Errorf("acknowledged write %d lost: %v", k, err)
				return true
			}
			v, _ := it.ValueCopy(nil)
			if string(v) != fmt.Sprintf("value %d", k.(int)) {
				t.Errorf("write %d: %q", k, v)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count == 0 {
		t.Error("no write was acknowledged")
	}
}

// TestRotatedLogsSynced: with small memtables the committer meets rotated
// memtable logs and fsyncs them (DB.Sync covers the active one only).
func TestRotatedLogsSynced(t *testing.T) {
	s := open(t, Options{memTableSize: 1 << 20, valueThresh: 64 << 10})
	val := make([]byte, 32<<10) // in the memtable (under the threshold)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				err := s.Durable(context.Background(), func(txn *badger.Txn) error {
					return txn.Set(fmt.Appendf(nil, "test/%d/%d", g, i), val)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s.syncMu.Lock()
	n := s.rotatedSyncs
	s.syncMu.Unlock()
	if n == 0 {
		t.Error("6 MiB through 1 MiB memtables, and no rotated log was synced")
	}
}

// TestGC: value-log GC, running often while messages are delivered and
// deleted, reclaims deleted bodies, keeps live ones, and brings no
// deleted one back (it did, with badger's plain Delete: see Erase), also
// across a reopen.
func TestGC(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir, memTableSize: 1 << 20, valueLogSize: 1 << 20, valueThresh: 64 << 10, gcInterval: 20 * time.Millisecond})
	ctx := context.Background()
	body := func(i int) []byte {
		b := make([]byte, 100<<10)
		copy(b, fmt.Sprintf("body %d", i))
		return b
	}
	var ids []Meta
	for i := range 40 {
		m, err := s.Deliver(ctx, Meta{ID: testID(i), Folder: FolderInbox, Direction: DirectionIn}, body(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m)
	}
	for i, m := range ids {
		if i%4 != 0 {
			if err := s.Delete(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	vlogs := func() int {
		m, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	before := vlogs()
	// Badger learns what is garbage in the value log from compactions:
	// write enough to fill level 0, then compact everything.
	filler := make([]byte, 32<<10)
	for i := range 300 {
		err := s.Durable(ctx, func(txn *badger.Txn) error {
			return txn.Set(fmt.Appendf(nil, "test/%d", i), filler)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DB().Flatten(2); err != nil {
		t.Fatal(err)
	}
	// Let the GC goroutine run a few times, and run it here too.
	time.Sleep(100 * time.Millisecond)
	for range 20 {
		if err := s.gcOnce(ctx); err != nil {
			t.Logf("gc: %v", err)
			break
		}
	}
	if after := vlogs(); after >= before {
		t.Errorf("%d value-log files before GC, %d after", before, after)
	}
	check := func(s *Store) {
		for i, m := range ids {
			b, err := s.Body(m.ID)
			if i%4 != 0 {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("deleted %d: %v", i, err)
				}
				continue
			}
			if err != nil || string(b[:len(fmt.Sprint("body ", i))]) != fmt.Sprint("body ", i) {
				t.Errorf("body %d: %v", i, err)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(open(t, Options{Dir: dir, valueLogSize: 1 << 20, valueThresh: 64 << 10}))
}

// TestDurableSplits: a group larger than one transaction is split, and
// only a write too large on its own gets badger.ErrTxnTooBig.
func TestDurableSplits(t *testing.T) {
	s := open(t, Options{valueThresh: 64 << 10, BeforeSync: func() { time.Sleep(5 * time.Millisecond) }})
	val := make([]byte, 60<<10) // under the value threshold: counts whole
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			err := s.Durable(context.Background(), func(txn *badger.Txn) error {
				if i == 50 {
					for j := range 100 {
						if err := txn.Set(fmt.Appendf(nil, "test/big/%d", j), val); err != nil {
							return fmt.Errorf("big write: %w", err)
						}
					}
					return nil
				}
				return txn.Set(fmt.Appendf(nil, "test/%d", i), val)
			})
			if (i == 50) != errors.Is(err, badger.ErrTxnTooBig) {
				t.Errorf("write %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	err := s.DB().View(func(txn *badger.Txn) error {
		for i := range 100 {
			if _, err := txn.Get(fmt.Appendf(nil, "test/%d", i)); (i == 50) != errors.Is(err, badger.ErrKeyNotFound) {
				t.Errorf("key %d: %v", i, err)
			}
		}
		_, err := txn.Get([]byte("test/big/0"))
		if !errors.Is(err, badger.ErrKeyNotFound) {
			t.Errorf("part of the failed write was committed: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
