package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/queue"
	"github.com/dsep-project/dsep/node/store"
)

func open(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{Dir: dir, InsecurePlaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func item(b byte, now time.Time) *queue.Item {
	return &queue.Item{
		ID: envelope.ID{b}, Kind: queue.KindMessage, To: "bob@example.org", Sealed: true,
		Proof: []byte("1:20:x"), Created: now, Expires: now.Add(time.Hour), State: queue.StatePending,
		Delegates: []queue.Delegate{
			{Peer: "A", State: queue.StatePending, NextTry: now},
			{Peer: "B", State: queue.StatePending, NextTry: now.Add(time.Minute)},
		},
	}
}

func TestQueueSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	now := time.Now()
	s := open(t, dir)
	q := queue.New(s)
	if err := q.Add(ctx, item(1, now), []byte("payload one")); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(ctx, item(1, now), nil); err == nil {
		t.Fatal("a second Add of one ID succeeded")
	}
	if err := q.Add(ctx, item(2, now), []byte("payload two")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Update(ctx, envelope.ID{2}, func(it *queue.Item) error {
		for i := range it.Delegates {
			it.Delegates[i].State = queue.StateDelivered
		}
		it.Settle(now)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	q = queue.New(s)
	pend, err := q.Pending()
	if err != nil || len(pend) != 1 || pend[0].ID != (envelope.ID{1}) {
		t.Fatalf("pending after reopen: %v %+v", err, pend)
	}
	b, err := q.Bytes(envelope.ID{1})
	if err != nil || string(b) != "payload one" {
		t.Fatalf("bytes: %q %v", b, err)
	}
	it, err := q.Get(envelope.ID{2})
	if err != nil || it.State != queue.StateDelivered || it.Done.IsZero() {
		t.Fatalf("settled item: %v %+v", err, it)
	}
	if _, err := q.Get(envelope.ID{3}); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("unknown item: %v", err)
	}
	c, oldest, err := q.Counts()
	if err != nil || c[queue.StatePending] != 1 || c[queue.StateDelivered] != 1 || oldest.Unix() != now.Unix() {
		t.Fatalf("counts: %v %v %v", c, oldest, err)
	}
}

func TestDueAndBackoff(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	q := queue.New(s)
	if err := q.Add(ctx, item(1, now), []byte("p")); err != nil {
		t.Fatal(err)
	}
	due, _, err := q.Due(now, 0)
	if err != nil || len(due) != 1 {
		t.Fatalf("due now: %v %d", err, len(due))
	}
	// Delegate A delivered: only B remains, due in a minute.
	if _, err := q.UpdateMany(ctx, []envelope.ID{{1}, {9}}, func(it *queue.Item) error {
		it.Delegates[0].State = queue.StateDelivered
		it.Settle(now)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	due, next, err := q.Due(now, 0)
	if err != nil || len(due) != 0 || next.Sub(now.Add(time.Minute)).Abs() > time.Millisecond {
		t.Fatalf("due: %v %d next %v", err, len(due), next)
	}
	// Past the lifetime the item is due (to expire).
	if due, _, _ := q.Due(now.Add(2*time.Hour), 0); len(due) != 1 {
		t.Fatalf("expired item not due: %d", len(due))
	}

	b := queue.Backoff{Min: time.Second, Max: 10 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 10: 10 * time.Second} {
		d := b.Delay(n)
		if d < want*8/10 || d > want*12/10 {
			t.Errorf("delay %d = %v, want %v ± 20%%", n, d, want)
		}
	}
}

func TestSettle(t *testing.T) {
	now := time.Now()
	it := item(1, now)
	it.Delegates[0].State = queue.StateFailed
	it.Settle(now)
	if it.State != queue.StatePending {
		t.Fatalf("settled with a delegate pending: %s", it.State)
	}
	it.Delegates[1].State = queue.StateFailed
	it.Settle(now)
	if it.State != queue.StateFailed {
		t.Fatalf("all failed: %s", it.State)
	}
	it = item(2, now)
	it.Delegates[0].State = queue.StateFailed
	it.Delegates[1].State = queue.StateDelivered
	it.Settle(now)
	if it.State != queue.StateDelivered {
		t.Fatalf("one delivered: %s", it.State)
	}
}

func TestDropBytes(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	q := queue.New(s)
	if err := q.Add(ctx, item(1, time.Now()), make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	if err := q.DropBytes(ctx, envelope.ID{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Bytes(envelope.ID{1}); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("dropped bytes: %v", err)
	}
	if err := q.Add(ctx, item(2, time.Now()), nil); err == nil {
		t.Fatal("an item without bytes was added")
	}
}

// FuzzDecodeItem: a damaged store yields errors, never a panic.
func FuzzDecodeItem(f *testing.F) {
	f.Add([]byte(`{"id":"` + envelope.ID{1}.String() + `","kind":"message","state":"pending","delegates":[{"peer":"A","state":"pending"}]}`))
	f.Add([]byte(`{"delegates":[` + "{}," + `{}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := queue.DecodeItem(b)
		if err == nil {
			_, _ = it.Due(time.Now())
			it.Settle(time.Now())
		}
	})
}
