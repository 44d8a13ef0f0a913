package stamp

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func openMem(t *testing.T) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil).WithMemTableSize(1 << 20).WithValueThreshold(256))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSpent(t *testing.T) {
	db := openMem(t)
	sp := NewSpent(db, []byte("spent/"), 48*time.Hour)
	now := time.Now().UTC()
	raw, err := Mint(context.Background(), MintParams{Bits: 8, Resource: "0123456789abcdef0123456789abcdef01234567", Now: now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Check(raw, CheckParams{Bits: 8, Resource: "0123456789abcdef0123456789abcdef01234567", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Spend(st, raw, now); err != nil {
		t.Fatalf("first spend: %v", err)
	}
	if err := sp.Spend(st, raw, now.Add(time.Hour)); !errors.Is(err, ErrSpent) {
		t.Fatalf("second spend: %v", err)
	}
	if s, err := sp.IsSpent(raw, now); err != nil || !s {
		t.Fatalf("IsSpent: %v %v", s, err)
	}
	// Another prefix is another memory.
	if err := NewSpent(db, []byte("other/"), 0).Spend(st, raw, now); err != nil {
		t.Fatalf("other prefix: %v", err)
	}
	// Past the window the stamp is stale, not spent: Check rejects it first,
	// and Spend refuses to record it.
	late := st.Expires(48 * time.Hour)
	if err := sp.Spend(st, raw, late); !errors.Is(err, ErrStale) {
		t.Fatalf("spend after the window: %v", err)
	}
	if s, _ := sp.IsSpent(raw, late); s {
		t.Fatal("remembered past its window")
	}
}

func TestSpentConcurrent(t *testing.T) {
	sp := NewSpent(openMem(t), []byte("s/"), 0)
	now := time.Now().UTC()
	raw, err := Mint(context.Background(), MintParams{Bits: 4, Resource: "r", Now: now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := sp.Spend(st, raw, now); {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, ErrSpent):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d concurrent spends of one stamp succeeded, want 1", ok.Load())
	}
}
