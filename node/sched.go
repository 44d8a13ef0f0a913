package node

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/queue"
)

// scheduled is the outbound queue with an in-memory schedule of its
// pending items: a min-heap of the times they next have work, so the
// delivery loop finds due work in O(log n) per item without reading the
// store, however many items wait (mail to a recipient offline for days).
// Every write goes through it; the store stays the truth it is loaded
// from at start.
type scheduled struct {
	*queue.Queue

	mu      sync.Mutex // guards pending and times
	pending map[envelope.ID]*queue.Item
	times   dueHeap // may hold stale entries: checked against pending
}

type dueEntry struct {
	at time.Time
	id envelope.ID
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newScheduled(q *queue.Queue) (*scheduled, error) {
	s := &scheduled{Queue: q, pending: map[envelope.ID]*queue.Item{}}
	items, err := q.Pending()
	if err != nil {
		return nil, err
	}
	s.track(items...)
	return s, nil
}

// track records the items' new state; the caller holds no lock.
func (s *scheduled) track(items ...*queue.Item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		if it == nil {
			continue
		}
		if it.State != queue.StatePending {
			delete(s.pending, it.ID)
			continue
		}
		s.pending[it.ID] = it
		heap.Push(&s.times, dueEntry{at: it.When(), id: it.ID})
	}
}

// reschedule puts a pending item back on the schedule (after the delivery
// loop took it and let it go without a new state).
func (s *scheduled) reschedule(id envelope.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.pending[id]; ok {
		heap.Push(&s.times, dueEntry{at: it.When(), id: id})
	}
}

func (s *scheduled) Add(ctx context.Context, it *queue.Item, data []byte) error {
	if err := s.Queue.Add(ctx, it, data); err != nil {
		return err
	}
	c := *it
	s.track(&c)
	return nil
}

func (s *scheduled) Update(ctx context.Context, id envelope.ID, change func(it *queue.Item) error) (*queue.Item, error) {
	it, err := s.Queue.Update(ctx, id, change)
	if err == nil {
		s.track(it)
	}
	return it, err
}

func (s *scheduled) UpdateMany(ctx context.Context, ids []envelope.ID, change func(it *queue.Item) error) ([]*queue.Item, error) {
	items, err := s.Queue.UpdateMany(ctx, ids, change)
	if err == nil {
		s.track(items...)
	}
	return items, err
}

func (s *scheduled) Rekey(ctx context.Context, old envelope.ID, it *queue.Item, data []byte) error {
	if err := s.Queue.Rekey(ctx, old, it, data); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.pending, old)
	s.mu.Unlock()
	c := *it
	s.track(&c)
	return nil
}

// Due takes off the schedule up to max pending items with work at now,
// oldest due first, and says when the next other one is due. An item
// taken must be handed back: by a write (track) or by reschedule.
func (s *scheduled) Due(now time.Time, max int) ([]*queue.Item, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*queue.Item
	taken := map[envelope.ID]bool{}
	for s.times.Len() > 0 && (max <= 0 || len(due) < max) {
		e := s.times[0]
		if e.at.After(now) {
			break
		}
		heap.Pop(&s.times)
		it, ok := s.pending[e.id]
		if !ok || taken[e.id] {
			continue // finished, or a stale duplicate entry
		}
		if it.When().After(now) {
			// Stale: the item was written since, and that write pushed
			// its current time.
			continue
		}
		taken[e.id] = true
		due = append(due, it)
	}
	var next time.Time
	if s.times.Len() > 0 {
		next = s.times[0].at
	}
	return due, next, nil
}
