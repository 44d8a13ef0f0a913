package node

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/queue"
)

// scheduled is the outbound queue with an in-memory copy of its pending
// items, so the delivery loop finds due work without reading the store.
// Every write goes through it; the store stays the truth it is loaded
// from at start.
type scheduled struct {
	*queue.Queue

	mu      sync.Mutex // guards pending
	pending map[envelope.ID]*queue.Item
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

func (s *scheduled) track(items ...*queue.Item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		if it == nil {
			continue
		}
		if it.State == queue.StatePending {
			s.pending[it.ID] = it
		} else {
			delete(s.pending, it.ID)
		}
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

// Due returns up to max pending items with work at now (oldest first)
// and when the next other one is due.
func (s *scheduled) Due(now time.Time, max int) ([]*queue.Item, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*queue.Item
	var next time.Time
	for _, it := range s.pending {
		ok, at := it.Due(now)
		if ok {
			due = append(due, it)
			continue
		}
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if max > 0 && len(due) > max {
		// Oldest first, so a burst cannot starve earlier mail.
		sortByCreated(due)
		next = now
		due = due[:max]
	}
	return due, next, nil
}

func sortByCreated(items []*queue.Item) {
	slices.SortFunc(items, func(a, b *queue.Item) int { return a.Created.Compare(b.Created) })
}
