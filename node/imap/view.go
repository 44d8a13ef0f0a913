package imap

import (
	"errors"
	"slices"
	"sort"
	"sync"

	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// maxPending bounds the changes a view keeps for a client that does not
// read them (a client that never sends a command nor IDLEs while a flood
// of mail arrives). Past it the connection is closed: the client
// reconnects and starts afresh.
const maxPending = 100_000

var errOverflow = errors.New("imap: too many mailbox changes pending for a client that does not read them")

// view is a session's selected mailbox as its client knows it: the UIDs of
// its messages in sequence-number order, and the store's changes it has not
// been told of yet.
//
// The server's change subscriber (queue) and the session (everything else)
// share a view; mu guards what they share. The client's view (uids,
// uidNext) belongs to the session alone: imapserver runs its commands, and
// IDLE, one at a time.
type view struct {
	srv         *Server
	sess        *session
	readOnly    bool
	uidValidity uint32
	notify      chan struct{} // capacity 1: changes are pending

	// mu guards name, pending and overflow; never held during I/O.
	mu       sync.Mutex
	name     string // the mailbox's name (renames follow it)
	pending  []store.Change
	overflow bool

	uids    []uint32 // the client's messages, ascending: uids[seq-1]
	uidNext uint32   // changes adding a UID below this are already in uids
}

// target is a message a command names: its sequence number and UID.
type target struct{ seq, uid uint32 }

// open selects mailbox name for sess: it registers a view for the store's
// changes first, then reads the mailbox, so that no change falls between
// the two (those already in the snapshot are recognised by their UIDs).
func (s *Server) open(name string, sess *session, readOnly bool) (*view, []store.Meta, store.FolderInfo, error) {
	for attempt := 0; ; attempt++ {
		fi, err := s.st.Folder(name)
		if err != nil {
			return nil, nil, store.FolderInfo{}, err
		}
		v := &view{srv: s, sess: sess, readOnly: readOnly, uidValidity: fi.UIDValidity, name: name, notify: make(chan struct{}, 1)}
		s.register(v, fi.UIDValidity)
		fi2, metas, err := s.st.Snapshot(name)
		if err == nil && fi2.UIDValidity == fi.UIDValidity {
			v.uids = make([]uint32, len(metas))
			for i, m := range metas {
				v.uids[i] = m.UID
			}
			v.uidNext = fi2.UIDNext
			return v, metas, fi2, nil
		}
		s.unregister(v, fi.UIDValidity)
		// The mailbox was deleted (and maybe created again) meanwhile.
		if (err != nil && !errors.Is(err, store.ErrNoFolder)) || attempt == 2 {
			if err == nil {
				err = store.ErrNoFolder
			}
			return nil, nil, store.FolderInfo{}, err
		}
	}
}

func (v *view) close() { v.srv.unregister(v, v.uidValidity) }

// folder returns the mailbox's current name and UIDVALIDITY.
func (v *view) folder() (string, uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.name, v.uidValidity
}

// queue takes a change of the mailbox for the client (the server's
// subscriber calls it, on the store's committer: it must not block).
func (v *view) queue(c store.Change) {
	v.mu.Lock()
	switch c.Kind {
	case store.ChangeFolderRenamed:
		v.name = c.Folder
		v.mu.Unlock()
		return
	case store.ChangeFlags:
		// The session reports the flags it changes itself (or, for
		// STORE .SILENT, must not).
		if c.Origin == any(v.sess) {
			v.mu.Unlock()
			return
		}
	case store.ChangeAdded, store.ChangeRemoved:
	default:
		v.mu.Unlock()
		return
	}
	if v.overflow {
		v.mu.Unlock()
		return
	}
	if len(v.pending) >= maxPending {
		v.overflow, v.pending = true, nil
		v.mu.Unlock()
		v.srv.log.Warn("imap: closing a connection whose client does not read the mailbox changes", "user", v.sess.user, "pending", maxPending)
		v.sess.conn.NetConn().Close()
		return
	}
	v.pending = append(v.pending, c)
	v.mu.Unlock()
	select {
	case v.notify <- struct{}{}:
	default:
	}
}

// poll tells the client of the changes pending, in order: EXISTS for new
// messages, EXPUNGE for removed ones (unless !allowExpunge: then it stops
// at the first removal and keeps the rest for later), FETCH FLAGS for
// changed flags.
func (v *view) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	v.mu.Lock()
	events, overflow := v.pending, v.overflow
	v.pending = nil
	v.mu.Unlock()
	if overflow {
		return errOverflow
	}
	added := false
	flush := func() error {
		if !added {
			return nil
		}
		added = false
		return w.WriteNumMessages(uint32(len(v.uids)))
	}
	// A message removed later in this batch needs no FETCH FLAGS first.
	removed := map[uint32]bool{}
	for _, c := range events {
		if c.Kind == store.ChangeRemoved {
			removed[c.UID] = true
		}
	}
	for i, c := range events {
		switch c.Kind {
		case store.ChangeAdded:
			if c.UID >= v.uidNext {
				v.uids = append(v.uids, c.UID)
				v.uidNext = c.UID + 1
				added = true
			}
		case store.ChangeRemoved:
			idx, ok := slices.BinarySearch(v.uids, c.UID)
			if !ok {
				continue
			}
			if !allowExpunge {
				v.requeue(events[i:])
				return flush()
			}
			if err := flush(); err != nil {
				return err
			}
			v.uids = slices.Delete(v.uids, idx, idx+1)
			if err := w.WriteExpunge(uint32(idx + 1)); err != nil {
				return err
			}
		case store.ChangeFlags:
			idx, ok := slices.BinarySearch(v.uids, c.UID)
			if !ok || removed[c.UID] {
				continue
			}
			if err := flush(); err != nil {
				return err
			}
			if err := w.WriteMessageFlags(uint32(idx+1), imap.UID(c.UID), toFlags(c.Flags)); err != nil {
				return err
			}
		}
	}
	return flush()
}

// requeue puts events back before the changes pending.
func (v *view) requeue(events []store.Change) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pending = append(slices.Clone(events), v.pending...)
}

// resolve returns the messages of the client's view that set names, in
// order. Sequence numbers past the last message are an error unless given
// as "*" ranges; UIDs not in the mailbox are ignored (RFC 3501).
func (v *view) resolve(set imap.NumSet) ([]target, error) {
	n := uint32(len(v.uids))
	var out []target
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := r.Start, r.Stop
			dynamic := start == 0 || stop == 0
			if start == 0 {
				start = n
			}
			if stop == 0 {
				stop = n
			}
			if start > stop {
				start, stop = stop, start
			}
			if stop > n {
				if !dynamic {
					return nil, errBadSeq
				}
				stop = n
			}
			for seq := max(start, 1); seq <= stop && seq != 0; seq++ {
				out = append(out, target{seq: seq, uid: v.uids[seq-1]})
				if seq == stop {
					break
				}
			}
		}
	case imap.UIDSet:
		if imap.IsSearchRes(set) {
			return nil, errSearchRes
		}
		last := v.uidNext - 1
		if n > 0 {
			last = v.uids[n-1]
		}
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = last
			}
			if stop == 0 {
				stop = last
			}
			if start > stop {
				start, stop = stop, start
			}
			i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= start })
			for ; i < len(v.uids) && v.uids[i] <= stop; i++ {
				out = append(out, target{seq: uint32(i + 1), uid: v.uids[i]})
			}
		}
	default:
		return nil, errSearchRes
	}
	slices.SortFunc(out, func(a, b target) int { return int(a.seq) - int(b.seq) })
	return slices.CompactFunc(out, func(a, b target) bool { return a.seq == b.seq }), nil
}

// uidsOf returns the UIDs of ts.
func uidsOf(ts []target) []uint32 {
	out := make([]uint32, len(ts))
	for i, t := range ts {
		out[i] = t.uid
	}
	return out
}
