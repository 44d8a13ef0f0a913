// Package store is a node's one badger store, encrypted at rest: the inbound
// spool (envelopes received and acknowledged but not yet processed), the
// mailbox (folders, per-message metadata, plaintext bodies, the OpenPGP
// payloads as received, deletion tombstones), and room for the other parts
// of the node, which keep their data in the same database under their own
// key prefixes (DB).
//
// # Durability
//
// Every change this package makes goes through Durable, which returns only
// after a DB.Sync covering the change has returned: when Spool, Deliver,
// Move, Delete… return nil, the change survives a crash of the process and
// a power failure. Badger runs with SyncWrites off and one committer
// goroutine syncs for all the writes that arrived meanwhile (group commit),
// so a busy node pays one fsync for many messages, not one each. See
// Durable for the exact contract and DESIGN.md "Messages and delivery" for
// why a node must not acknowledge an envelope before it is on disk.
//
// Badger v4.9.6's DB.Sync syncs the active memtable's write-ahead log and
// the newest value-log file only. A memtable filled and replaced between a
// commit and the sync leaves its log unsynced until badger flushes it to a
// table, and the value-log garbage collector deletes a file right after
// copying its live values into unsynced logs. The committer therefore also
// fsyncs the logs that were rotated out, and the store runs the collector
// itself, between two groups of writes (gcJob), holding an iterator open
// (which defers badger's deletion) until the copies are synced. Writes
// made directly through DB (badger's own Update) have none of these
// guarantees: write what must survive with Durable.
//
// # Deleting large values
//
// Badger v4.9.6 can bring a deleted key back: its value-log GC rewrites a
// value whose exact version is still in the LSM tree even when a newer
// delete marker hides it, and puts it above the marker; a compaction that
// later drops the marker (at the bottom level, with nothing below) leaves
// the old value visible again (seen in this package's tests). It affects
// only values stored in the value log, those of ValueThreshold (4 KiB)
// or more. This package therefore never deletes such a key: Erase writes
// an empty value over it, a newer version that compactions never drop,
// and readers treat an empty value as absent. Other users of DB who store
// values that large must do the same.
//
// # Changes
//
// Subscribe reports every durable change to the mailbox (a message filed,
// moved, copied, removed or re-flagged; a folder created, renamed or
// deleted) in commit order, after its sync and before the call that made
// it returns; WithOrigin lets a caller recognise its own changes. IMAP's
// IDLE and the sessions' views of a folder follow the mailbox this way
// (node/imap), without polling. The operations by folder and UID
// (Snapshot, Messages, UpdateFlags, Expunge, CopyUIDs, MoveUIDs) are the
// ones IMAP needs; they check the folder's UIDVALIDITY so that a folder
// deleted and created again under its name is never mistaken for the old.
//
// # Keys
//
// Prefixes are two bytes, a letter and a slash. This package uses:
//
//	r/<id>        the payload as received (an OpenPGP message), from Spool until Delete or Reject
//	p/<id>        the spool's pending marker: proof, sending peer, time received
//	t/<id>        a tombstone: the message was deleted or rejected (kept for deduplication)
//	m/<n><uid>    a message's metadata, by folder number and UID (big endian uint32s)
//	b/<id>        a message's plaintext RFC 5322 body
//	u/<name>      a folder: number, UIDVALIDITY, UIDNEXT, counts
//	x/…           indexes and counters: x/i/<id> where a message is, x/f/<n> a
//	              folder's name, x/seq/… counters, x/version the format version
//
// <id> is the 32-byte message ID (envelope.ID). r/ and b/ keys are erased
// (see above), never deleted. Reserved for others:
// s/ spent stamps (node/stamp), q/ the outbound queue (node/queue), w/
// waivers (node). A new user of the store takes a new prefix and adds it
// to this list.
//
// The ID of a message in the mailbox is, for inbound mail, its message ID
// (the SHA-256 of the payload); a sent copy gets an ID from its caller,
// which must not collide with inbound message IDs.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Errors. Each is wrapped with details; errors.Is finds it.
var (
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: the store is closed")
	// ErrInUse: another process (or another Store in this process) has the
	// directory open.
	ErrInUse = errors.New("store: another dsep process is using the data directory")
	// ErrWrongKey: the key does not open the store (or the store is
	// unencrypted and a key was given, or the reverse).
	ErrWrongKey = errors.New("store: wrong encryption key for the mail store")
	// ErrDamaged: a stored record is malformed, oversized or of an unknown
	// version.
	ErrDamaged = errors.New("store: damaged mail store record")
	// ErrSync: a sync failed. The store refuses further writes: what was
	// written since the last good sync may not be on disk, and retrying the
	// sync can report success without writing it (Linux drops the dirty
	// pages after a failed fsync). Close and reopen the store.
	ErrSync = errors.New("store: syncing the mail store to disk failed")
	// ErrNotFound: no such message (or no spooled envelope, raw payload…).
	ErrNotFound = errors.New("store: no such message")
	// ErrExists: the message ID is already in the mailbox, or was deleted
	// or rejected before.
	ErrExists = errors.New("store: message ID already known")
	// ErrNoFolder: no folder of that name.
	ErrNoFolder = errors.New("store: no such folder")
	// ErrFolderExists: a folder of that name already exists.
	ErrFolderExists = errors.New("store: folder already exists")
	// ErrFolderName: the folder name is not allowed.
	ErrFolderName = errors.New("store: invalid folder name")
	// ErrSystemFolder: INBOX, Sent and Rejected cannot be deleted or renamed.
	ErrSystemFolder = errors.New("store: system folders cannot be deleted or renamed")
	// ErrInvalid: an argument is malformed (bad flag, direction, oversized
	// metadata or body, payload that does not hash to its ID…).
	ErrInvalid = errors.New("store: invalid argument")
)

// Options tunes Open. Dir and one of Key or InsecurePlaintext are
// required; the other fields' zero values work.
type Options struct {
	// Dir is the store's directory, created mode 0700 if missing.
	Dir string
	// Key is the 32-byte AES-256 key badger encrypts everything at rest
	// with (tables, logs, value log). A store created with a key opens only
	// with that key. nil only together with InsecurePlaintext.
	Key []byte
	// InsecurePlaintext stores everything unencrypted: tests only.
	InsecurePlaintext bool
	// Logger receives the store's and badger's warnings and errors (badger's
	// informational messages are dropped). nil: silent. Never given a
	// secret or a plaintext.
	Logger *slog.Logger
	// MaxBatch bounds how many writes one sync covers (default 256): more
	// writers waiting then share the next sync.
	MaxBatch int
	// BeforeSync, if set, is called by the committer just before each group
	// sync, and AfterSync right after the sync returned, with the number of
	// writes it covered (for tests and metrics). They must not call the
	// store.
	BeforeSync func()
	AfterSync  func(n int)

	// For tests in this package.
	gcInterval   time.Duration // value-log GC period; default gcInterval
	metrics      bool          // badger's expvar metrics
	memTableSize int64         // default memTableSize
	valueLogSize int64         // default valueLogSize
	valueThresh  int64         // default ValueThreshold
}

// DefaultMaxBatch is the default of Options.MaxBatch.
const DefaultMaxBatch = 256

// ValueThreshold: values of this many bytes or more are kept in badger's
// value log, smaller ones (nearly all metadata, small bodies) in the LSM
// tree itself. Payloads and bodies of ordinary mail are larger, so the
// LSM tree stays small and compactions cheap: with 64 KiB, a sustained
// load of 4 KiB messages spent a third of the CPU rewriting them in
// compactions. Badger refuses a threshold over 15% of the memtable. Keys
// that may hold such values (payloads, bodies, metadata) are deleted with
// Erase.
const ValueThreshold = 4 << 10

// Badger tuning: a mailbox of tens of thousands of messages needs none of
// badger's 64 MiB memtables, 256 MiB block cache or 1 GiB value-log files.
const (
	memTableSize = 8 << 20
	valueLogSize = 32 << 20
	// Badger needs a block cache and an index cache with encryption.
	blockCacheSize = 8 << 20
	indexCacheSize = 4 << 20
	// gcInterval is how often the store runs badger's value-log GC.
	gcInterval = 10 * time.Minute
	// gcRatio: rewrite a value-log file when at least half of it is garbage.
	gcRatio = 0.5
)

// Store is an open mail store. Its methods are safe for concurrent use.
type Store struct {
	dir string
	db  *badger.DB
	log *slog.Logger
	opt Options

	// mu guards dbClosed: readers hold it for reading, Close for writing.
	mu       sync.RWMutex
	dbClosed bool

	c committer

	// syncMu serializes syncAll and guards rotated, newest and
	// rotatedSyncs.
	syncMu       sync.Mutex
	rotated      map[string]bool // log files rotated out and fsynced since
	newest       [2]string       // newest .mem and .vlog seen at the last sync
	rotatedSyncs int             // fsyncs of rotated-out files (for tests)

	// subMu guards subs (replaced, never modified in place); subCall is
	// held while the subscribers are called, so that cancelling waits for
	// a call in progress.
	subMu   sync.Mutex
	subs    []*subscriber
	subCall sync.Mutex

	gcStop context.CancelFunc
	gcDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store in opt.Dir, makes sure the
// system folders INBOX, Sent and Rejected exist, and starts the group
// committer and the value-log GC. A directory another process (or another
// open Store) holds gives ErrInUse; a wrong key gives ErrWrongKey.
func Open(opt Options) (s *Store, err error) {
	dir := opt.Dir
	if dir == "" {
		return nil, errors.New("store: no directory given for the mail store")
	}
	switch {
	case opt.Key == nil && !opt.InsecurePlaintext:
		return nil, errors.New("store: no encryption key given for the mail store (InsecurePlaintext is for tests only)")
	case opt.Key != nil && opt.InsecurePlaintext:
		return nil, errors.New("store: both an encryption key and InsecurePlaintext given")
	case opt.Key != nil && len(opt.Key) != 32:
		return nil, fmt.Errorf("store: the encryption key must be 32 bytes (AES-256), not %d", len(opt.Key))
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = DefaultMaxBatch
	}
	if opt.gcInterval <= 0 {
		opt.gcInterval = gcInterval
	}
	if opt.memTableSize <= 0 {
		opt.memTableSize = memTableSize
	}
	if opt.valueThresh <= 0 {
		opt.valueThresh = ValueThreshold
	}
	if opt.valueLogSize <= 0 {
		opt.valueLogSize = valueLogSize
	}
	key := append([]byte(nil), opt.Key...)
	if opt.Key == nil {
		key = nil
	}
	opt.Key = nil // keep no reference to the caller's key
	lg := opt.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating the mail store directory: %w", err)
	}
	if err := tighten(dir); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(false). // the committer syncs, once per group
		WithMemTableSize(opt.memTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(10 << 20).
		WithValueThreshold(opt.valueThresh).
		WithValueLogFileSize(opt.valueLogSize).
		WithNumVersionsToKeep(1).
		WithCompression(options.None).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(opt.metrics)
	if opt.Logger != nil {
		bo = bo.WithLogger(badgerLogger{opt.Logger})
	}
	if key != nil {
		bo = bo.WithEncryptionKey(key)
	}
	defer func() {
		// Badger reports some broken states by panicking.
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("%w: opening the mail store in %s: %v", ErrDamaged, dir, p)
		}
	}()
	// Check the key first: badger.Open with a wrong key fails only after it
	// has started goroutines that its clean-up never stops (v4.9.6).
	// Read-only, the key registry is only read, never created.
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: key})
	if err != nil {
		return nil, openError(dir, err)
	}
	kr.Close()
	db, err := badger.Open(bo)
	if err != nil {
		return nil, openError(dir, err)
	}
	s = &Store{dir: dir, db: db, log: lg, opt: opt, rotated: map[string]bool{}}
	// What badger replayed from its logs may have been written by a process
	// that died before syncing: make it durable before anyone relies on it
	// (Spool answers "duplicate" for what it finds).
	if err := errors.Join(tighten(dir), s.syncAll(true)); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s.c.start(s)
	if err := s.init(context.Background()); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	gctx, cancel := context.WithCancel(context.Background())
	s.gcStop, s.gcDone = cancel, make(chan struct{})
	go s.runGC(gctx)
	return s, nil
}

// openError turns badger's errors into ones that say what to do.
func openError(dir string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Cannot acquire directory lock"):
		// badger v4.9.6 flattens the flock error into text (y.Wrapf).
		return fmt.Errorf("%w %s: stop the other dsep (or use another --data directory) and try again", ErrInUse, dir)
	case errors.Is(err, badger.ErrEncryptionKeyMismatch), strings.Contains(msg, badger.ErrEncryptionKeyMismatch.Error()):
		return fmt.Errorf("%w in %s: the key given is not the one the mail store was created with (or it was created unencrypted)", ErrWrongKey, dir)
	}
	return fmt.Errorf("store: opening the mail store in %s: %w", dir, err)
}

// DB returns the underlying database, for the node's other data under
// their own prefixes (see the package doc). Writes that must survive a
// power failure go through Durable. Users must stop before Close.
func (s *Store) DB() *badger.DB { return s.db }

// Close stops accepting writes, lets the committer finish (and sync) every
// write already queued, stops the value-log GC and closes the database.
// Closing twice is not an error; other methods then return ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.gcStop != nil {
			s.gcStop()
			<-s.gcDone
		}
		s.c.stop()
		s.mu.Lock()
		s.dbClosed = true
		s.mu.Unlock()
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: closing the mail store: %w", err))
		}
		errs = append(errs, tighten(s.dir))
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(*badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.dbClosed {
		return ErrClosed
	}
	return s.db.View(fn)
}

// runGC runs badger's value-log GC every opt.gcInterval until ctx ends.
func (s *Store) runGC(ctx context.Context) {
	defer close(s.gcDone)
	t := time.NewTicker(s.opt.gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			if err := s.gcOnce(ctx); err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && ctx.Err() == nil {
					s.log.Warn("store: value-log garbage collection failed", "err", err)
				}
				break
			}
		}
	}
}

// gcOnce has the committer run badger's value-log GC once (gcJob).
func (s *Store) gcOnce(ctx context.Context) error {
	return s.c.runJob(ctx, s.gcJob)
}

// gcJob rewrites at most one value-log file. It runs in the committer, with
// no Durable write running meanwhile: badger v4.9.6's GC reads the
// memtable's highest version without the lock its writer holds (a data
// race the race detector reports). Badger copies the file's live values
// into its current, unsynced logs and then deletes the file — unless an
// iterator is open, in which case the deletion waits until the last one is
// closed. Holding one open until the copies are synced closes the window
// in which a power failure would lose them.
func (s *Store) gcJob() error {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyVersion)})
	defer it.Close()
	if err := s.db.RunValueLogGC(gcRatio); err != nil {
		return err
	}
	if err := s.syncAll(false); err != nil {
		s.c.fail(err)
		return err
	}
	return nil
}

// syncAll makes everything committed so far durable: badger's DB.Sync (the
// active memtable's log and the newest value-log file), then every log file
// rotated out since the last call, then the directory if files appeared.
// With all, every log file is synced (at Open).
func (s *Store) syncAll(all bool) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if err := s.db.Sync(); err != nil {
		return err
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	// Badger numbers memtable logs (.mem) and value-log files (.vlog) in
	// increasing order; only the newest of each takes writes.
	var files [2][]string
	var newest [2]string
	for _, e := range entries {
		name := e.Name()
		var k int
		switch filepath.Ext(name) {
		case ".mem":
			k = 0
		case ".vlog":
			k = 1
		default:
			continue
		}
		files[k] = append(files[k], name)
		if newest[k] == "" || logFileLess(newest[k], name) {
			newest[k] = name
		}
	}
	seen := map[string]bool{}
	for k := range files {
		for _, name := range files[k] {
			seen[name] = true
			if s.rotated[name] || (name == newest[k] && !all) {
				continue
			}
			if err := fsyncFile(filepath.Join(s.dir, name)); err != nil {
				return err
			}
			if name != newest[k] {
				s.rotated[name] = true
				s.rotatedSyncs++
			}
		}
	}
	for name := range s.rotated {
		if !seen[name] {
			delete(s.rotated, name)
		}
	}
	if all || newest != s.newest {
		if err := fsyncFile(s.dir); err != nil {
			return err
		}
		s.newest = newest
	}
	return nil
}

// logFileLess orders badger's numbered log file names ("00012.mem").
func logFileLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// fsyncFile fsyncs the file or directory at path. One that no longer
// exists is fine: badger deletes a memtable log only after its contents are
// in a synced table.
func fsyncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

// tighten makes dir 0700 and the files in it 0600: badger creates some of
// its files 0666 less the umask (the 0700 directory keeps them private
// meanwhile).
func tighten(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("store: %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("store: making %s private: %w", dir, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile (compaction)
		}
		if info.Mode().Perm()&0o077 != 0 {
			p := filepath.Join(dir, e.Name())
			if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("store: making %s private: %w", p, err)
			}
		}
	}
	return nil
}

// badgerLogger routes badger's warnings and errors to slog and drops its
// informational chatter.
type badgerLogger struct{ l *slog.Logger }

func (g badgerLogger) Errorf(f string, a ...any) {
	g.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (g badgerLogger) Warningf(f string, a ...any) {
	g.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
