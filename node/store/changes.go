package store

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"

	"github.com/dsep-project/dsep/node/envelope"
)

// ChangeKind says what a Change is.
type ChangeKind uint8

// Kinds of Change.
const (
	// ChangeAdded: a message appeared in a folder (Deliver, CopyUIDs, the
	// destination of Move and MoveUIDs). UID and Flags are set.
	ChangeAdded ChangeKind = iota + 1
	// ChangeRemoved: a message left a folder (Delete, Expunge, the source
	// of Move and MoveUIDs, DeleteFolder). UID is set.
	ChangeRemoved
	// ChangeFlags: a message's flags changed. UID and Flags (all of them,
	// as stored) are set.
	ChangeFlags
	// ChangeFolderCreated, ChangeFolderRenamed (OldName set) and
	// ChangeFolderDeleted: the folder itself. A deleted folder's messages
	// each get a ChangeRemoved first.
	ChangeFolderCreated
	ChangeFolderRenamed
	ChangeFolderDeleted
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeAdded:
		return "added"
	case ChangeRemoved:
		return "removed"
	case ChangeFlags:
		return "flags"
	case ChangeFolderCreated:
		return "folder-created"
	case ChangeFolderRenamed:
		return "folder-renamed"
	case ChangeFolderDeleted:
		return "folder-deleted"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one durable change to the mailbox, as Subscribe reports it.
type Change struct {
	Kind ChangeKind
	// Folder is the folder's name (after a rename, the new one) and
	// UIDValidity its identity: it survives renames and is never given to
	// another folder, so it tells a folder deleted and created again under
	// the same name from the old one.
	Folder      string
	UIDValidity uint32
	OldName     string // ChangeFolderRenamed: the name before
	// The message (message changes only).
	UID   uint32
	ID    envelope.ID
	Flags []string // ChangeAdded, ChangeFlags: the flags stored
	// Origin is what WithOrigin attached to the context of the call that
	// made the change (nil if nothing): a session can tell its own changes
	// from others'.
	Origin any
}

type originKey struct{}

// WithOrigin returns a context that makes the changes of the Store calls
// given it carry origin in Change.Origin.
func WithOrigin(ctx context.Context, origin any) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

type subscriber struct{ fn func([]Change) }

// Subscribe has fn called with every change to the mailbox (messages
// filed, moved, removed, flags changed, folders created, renamed,
// deleted) once it is durable: the changes of each group of writes that
// one sync covered, in commit order, after the sync returned and before the
// calls that made them return. So when a Store method returns, every
// subscriber has been told of its changes; and the changes of one folder
// come in the order they were made (the UIDs of ChangeAdded increase).
//
// fn runs on the store's committer: it must return quickly, must not
// block on anything that may wait for the store, and must not call the
// Store (queue the work and return). Its changes are shared: it must not
// modify them. A panic in fn is logged and otherwise ignored. Writes made
// directly with Durable report nothing. cancel unsubscribes; after it
// returns, fn is not called again. cancel waits for a call of fn in
// progress: never call it from fn, nor holding a lock fn takes.
func (s *Store) Subscribe(fn func([]Change)) (cancel func()) {
	sub := &subscriber{fn: fn}
	s.subMu.Lock()
	s.subs = append(slices.Clone(s.subs), sub)
	s.subMu.Unlock()
	return func() {
		// notify holds subCall while it calls the subscribers: taking it
		// waits for a call in progress.
		s.subCall.Lock()
		defer s.subCall.Unlock()
		s.subMu.Lock()
		defer s.subMu.Unlock()
		s.subs = slices.DeleteFunc(slices.Clone(s.subs), func(x *subscriber) bool { return x == sub })
	}
}

// notify tells the subscribers of the changes of the writes in group,
// which have just been synced (syncer only).
func (s *Store) notify(group []*request) {
	var changes []Change
	for _, r := range group {
		changes = append(changes, r.changes...)
	}
	if len(changes) == 0 {
		return
	}
	s.subCall.Lock()
	defer s.subCall.Unlock()
	s.subMu.Lock()
	subs := s.subs
	s.subMu.Unlock()
	for _, sub := range subs {
		s.callSubscriber(sub, changes)
	}
}

func (s *Store) callSubscriber(sub *subscriber, changes []Change) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("store: a change subscriber panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	sub.fn(changes)
}
