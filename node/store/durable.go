package store

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Durable applies write in a read-write transaction, commits it, and
// returns only after a sync that covers the commit has returned: when
// Durable returns nil, the change survives a crash of the process or a
// power failure.
//
// Writes from concurrent callers are applied in arrival order by one
// committer goroutine, each seeing the effects of those before it, so two
// Durable writes never conflict. The committer runs the writes that queued
// up meanwhile (at most Options.MaxBatch) in one badger transaction, splits
// it when it grows too large, commits, and then syncs once for all of them
// while it applies the next group: callers share fsyncs instead of queueing
// for one each.
//
// Hence write must confine its effects to txn, and may be run more than
// once: its changes are discarded, and it is run again, when another write
// of its group fails, when the group outgrows a transaction, or when the
// commit conflicts with a transaction made outside Durable. A write that
// returns an error is dropped from its group, which goes on without it;
// the error goes to its caller only, at once, without waiting for a sync.
// A write should wrap badger's errors with %w, so that the committer sees
// badger.ErrTxnTooBig and moves it to a transaction of its own; only a
// write too large alone gets that error. A write that changes nothing
// still waits for the next sync, so what it read is durable when Durable
// returns (Spool relies on this for duplicates).
//
// If ctx ends first, Durable returns ctx.Err(). The write may then have
// been committed, in which case it becomes durable with the next sync, or
// never be applied; either way, write is not running and will not run
// once Durable has returned, so the caller may reuse what it captured. On
// a closed store Durable returns ErrClosed; after a failed sync, an error
// wrapping ErrSync.
func (s *Store) Durable(ctx context.Context, write func(txn *badger.Txn) error) error {
	if write == nil {
		return fmt.Errorf("%w: nil write function", ErrInvalid)
	}
	return s.durable(ctx, func(txn *badger.Txn, _ func(Change)) error { return write(txn) })
}

// durable is Durable for this package's writes: write reports what it
// changed in the mailbox through emit, and the changes of a write that
// became durable go to the subscribers (Subscribe), in commit order, after
// the sync and before Durable returns. The changes of a run of write that
// is discarded (and run again) are discarded with it.
func (s *Store) durable(ctx context.Context, write func(txn *badger.Txn, emit func(Change)) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	origin := ctx.Value(originKey{})
	r := &request{applied: make(chan struct{}), done: make(chan struct{})}
	emit := func(ch Change) {
		ch.Origin = origin
		ch.Flags = slices.Clone(ch.Flags) // the write's caller keeps its slices
		r.changes = append(r.changes, ch)
	}
	r.write = func(txn *badger.Txn) error {
		r.changes = r.changes[:0]
		return write(txn, emit)
	}
	if err := s.c.enqueue(r); err != nil {
		return err
	}
	return s.c.wait(ctx, r)
}

// runJob has the applier run job alone, as soon as the writes queued
// before it are committed; it returns job's error (or ctx's, or
// ErrClosed).
func (c *committer) runJob(ctx context.Context, job func() error) error {
	r := &request{job: job, applied: make(chan struct{}), done: make(chan struct{})}
	if err := c.enqueue(r); err != nil {
		return err
	}
	return c.wait(ctx, r)
}

// wait waits for the queued request r as Durable says.
func (c *committer) wait(ctx context.Context, r *request) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if !r.state.CompareAndSwap(stateQueued, stateAbandoned) {
			// The committer took it: wait until its group is committed
			// (write will not run again), not for the sync.
			<-r.applied
		}
		return ctx.Err()
	}
}

// Request states: the committer moves a request from queued to taken, a
// caller whose ctx ended from queued to abandoned; whoever moves it first
// decides whether write runs.
const (
	stateQueued int32 = iota
	stateTaken
	stateAbandoned
)

type request struct {
	write func(*badger.Txn) error
	// job, set instead of write, runs alone in the applier, with no write
	// running meanwhile, and does its own syncing (the value-log GC).
	job     func() error
	changes []Change // what the last run of write changed (committer only, then syncer)
	state   atomic.Int32
	err     error         // set before done is closed
	failed  bool          // the write failed: err is final (committer only)
	applied chan struct{} // closed once write will not run again (taken requests only)
	done    chan struct{} // closed when the caller may return err
}

// committer is the group committer: an applier goroutine commits queued
// writes, a group at a time, and hands them to a syncer goroutine, which
// syncs once for all the writes committed since its previous sync and
// wakes their callers. While the syncer syncs, the applier commits the next
// group; at most MaxBatch committed writes wait for one sync.
type committer struct {
	s *Store

	// qmu guards queue and closed.
	qmu    sync.Mutex
	queue  []*request
	closed bool
	wake   chan struct{} // capacity 1: the queue may be non-empty

	// smu guards unsynced, applierDone and failed; scond (on smu) signals
	// changes of each.
	smu         sync.Mutex
	scond       *sync.Cond
	unsynced    []*request // committed, waiting for a sync
	applierDone bool
	failed      error // sticky: a sync failed

	wg sync.WaitGroup
}

func (c *committer) start(s *Store) {
	c.s = s
	c.wake = make(chan struct{}, 1)
	c.scond = sync.NewCond(&c.smu)
	c.wg.Add(2)
	go c.applier()
	go c.syncer()
}

// enqueue adds r to the queue.
func (c *committer) enqueue(r *request) error {
	c.qmu.Lock()
	if c.closed {
		c.qmu.Unlock()
		return ErrClosed
	}
	c.queue = append(c.queue, r)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// stop refuses new writes, waits until every queued write is committed and
// synced (or failed) and the goroutines have exited.
func (c *committer) stop() {
	if c.s == nil {
		return // never started
	}
	c.qmu.Lock()
	c.closed = true
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.wg.Wait()
}

// fail records a failed sync: every later write is refused.
func (c *committer) fail(err error) {
	c.smu.Lock()
	if c.failed == nil {
		c.failed = fmt.Errorf("%w: %v; close and reopen the store", ErrSync, err)
		c.s.log.Error("store: sync failed, refusing further writes", "err", err)
	}
	c.smu.Unlock()
}

// take waits for room among the unsynced writes and for queued requests,
// and returns up to that many of them, taken from their callers (or a job
// alone); nil once the committer is closed and the queue is empty.
func (c *committer) take() []*request {
	c.smu.Lock()
	for len(c.unsynced) >= c.s.opt.MaxBatch {
		c.scond.Wait()
	}
	room := c.s.opt.MaxBatch - len(c.unsynced)
	c.smu.Unlock()
	for {
		c.qmu.Lock()
		if len(c.queue) > 0 {
			var batch []*request
			n := 0
			for ; n < len(c.queue) && len(batch) < room; n++ {
				r := c.queue[n]
				if r.job != nil && len(batch) > 0 {
					break // a job runs alone
				}
				if r.state.CompareAndSwap(stateQueued, stateTaken) {
					batch = append(batch, r)
					if r.job != nil {
						n++
						break
					}
				}
			}
			clear(c.queue[:n])
			c.queue = c.queue[n:]
			if len(c.queue) == 0 {
				c.queue = nil // let the backing array go
			}
			c.qmu.Unlock()
			if len(batch) > 0 {
				return batch
			}
			continue // all abandoned
		}
		closed := c.closed
		c.qmu.Unlock()
		if closed {
			return nil
		}
		<-c.wake
	}
}

func (c *committer) applier() {
	defer c.wg.Done()
	defer func() {
		c.smu.Lock()
		c.applierDone = true
		c.smu.Unlock()
		c.scond.Broadcast()
	}()
	for {
		batch := c.take()
		if batch == nil {
			return
		}
		c.smu.Lock()
		failed := c.failed
		c.smu.Unlock()
		var ok []*request
		switch {
		case failed != nil:
			for _, r := range batch {
				r.err, r.failed = failed, true
			}
		case batch[0].job != nil:
			r := batch[0]
			r.err, r.failed = r.job(), true // not a write: no sync to wait for
		default:
			ok = c.commit(batch, 0)
		}
		for _, r := range batch {
			close(r.applied)
			if r.failed {
				close(r.done)
			}
		}
		if len(ok) > 0 {
			c.smu.Lock()
			c.unsynced = append(c.unsynced, ok...)
			c.smu.Unlock()
			c.scond.Broadcast()
		}
	}
}

// maxConflicts is how often a group is retried after conflicting with a
// transaction made outside Durable.
const maxConflicts = 3

// commit applies the writes of reqs, in order, in as few transactions as
// it can, and returns those committed. Each write that failed gets its
// error and failed set.
func (c *committer) commit(reqs []*request, conflicts int) []*request {
	var done []*request
	for len(reqs) > 0 {
		txn := c.s.db.NewTransaction(true)
		n, err := c.run(txn, reqs)
		switch {
		case err == nil:
			err = txn.Commit()
			txn.Discard()
			if errors.Is(err, badger.ErrConflict) && conflicts < maxConflicts {
				conflicts++
				continue
			}
			for _, r := range reqs {
				if err != nil {
					r.err, r.failed = err, true
				}
			}
			if err == nil {
				done = append(done, reqs...)
			}
			return done
		case errors.Is(err, badger.ErrTxnTooBig) && n > 0:
			// reqs[n] did not fit: the ones before it did, together.
			txn.Discard()
			done = append(done, c.commit(reqs[:n], conflicts)...)
			reqs = reqs[n:]
		default:
			// reqs[n] failed on its own: drop it, run the others again.
			txn.Discard()
			reqs[n].err, reqs[n].failed = err, true
			reqs = slices.Delete(slices.Clone(reqs), n, n+1)
		}
	}
	return done
}

// run applies the writes of reqs to txn until one fails, and returns how
// many succeeded and the error of the next one.
func (c *committer) run(txn *badger.Txn, reqs []*request) (int, error) {
	for i, r := range reqs {
		if err := c.runOne(txn, r.write); err != nil {
			return i, err
		}
	}
	return len(reqs), nil
}

func (c *committer) runOne(txn *badger.Txn, write func(*badger.Txn) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.s.log.Error("store: a Durable write panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("store: the write panicked: %v", p)
		}
	}()
	return write(txn)
}

func (c *committer) syncer() {
	defer c.wg.Done()
	for {
		c.smu.Lock()
		for len(c.unsynced) == 0 && !c.applierDone {
			c.scond.Wait()
		}
		group := c.unsynced
		c.unsynced = nil
		c.smu.Unlock()
		c.scond.Broadcast() // the applier may be waiting for room
		if len(group) == 0 {
			return // the applier is done and nothing is left
		}
		if f := c.s.opt.BeforeSync; f != nil {
			f()
		}
		err := c.s.syncAll(false)
		if f := c.s.opt.AfterSync; f != nil {
			f(len(group))
		}
		if err != nil {
			c.fail(err)
			c.smu.Lock()
			err = c.failed
			c.smu.Unlock()
		} else {
			c.s.notify(group)
		}
		for _, r := range group {
			r.err = err
			close(r.done)
		}
	}
}
