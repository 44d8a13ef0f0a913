// Package book keeps a user's address book: the contacts whose keys this
// node has pinned on first use (TOFU), the revocations it has seen, and the
// rules of DESIGN.md "Identities and addresses" for what happens when a
// contact's key changes: follow a rotation automatically only when the
// successor carries both the pinned key's and (for email contacts) the
// domain's certification; raise a conflict, with a warning that the domain
// may have been hijacked, for anything else; undo an automatic move when
// the key it relied on is later revoked as compromised; judge soft
// revocations by when this node first saw them.
//
// The judging itself is done by the pure package address (JudgeSuccessor,
// Revocation.ValidAt); this package stores the state on badger, encrypted
// at rest when the caller gives a key, in a directory the caller chooses.
//
// # Storage layout
//
// One badger database. Keys are ASCII strings with a prefix; fingerprints
// are 40 lower-case hex digits; emails are in canonical form.
//
//	c/<email>            contact record of an email contact (JSON, below)
//	k/<fpr>              contact record of a contact pinned only by key
//	                     address, known by the key address of <fpr> (JSON)
//	k/<fpr>/c/<email>    index, empty value: the email contact's Key,
//	                     Pending key or a key it followed automatically from
//	                     is <fpr>
//	k/<fpr>/k/<fpr2>     the same index for the key-address contact k/<fpr2>
//	d/<fpr>              public key material of a key some contact refers
//	                     to: binary OpenPGP as address.Key.Bytes() writes it
//	                     (not JSON: it is its own format, parsed by
//	                     address.ReadKey); deleted when no index entry
//	                     k/<fpr>/… is left
//	r/<fpr>              revocation record (JSON, below)
//
// A contact record is a JSON object:
//
//	{"v":1, "email":"bob@example.org" | "key_address":"<fpr>",
//	 "key":"<fpr>", "state":"first-seen", "cause":"…", "domain":"<fpr>",
//	 "dnssec":true, "first_seen":"RFC 3339", "updated":"RFC 3339",
//	 "previous":["<fpr>",…], "auto":["<fpr>",…], "pending":"<fpr>",
//	 "reason":"…"}
//
// "auto" lists, oldest first, the keys the contact followed away from
// automatically to reach "key" (the last one is Contact.FollowedFrom); a
// compromised revocation of any of them undoes the moves from it on.
// A revocation record is
//
//	{"v":1, "key":"<fpr>", "kind":"compromised|superseded|retired",
//	 "successor":"<fpr>", "signed":"RFC 3339", "first_seen":"RFC 3339",
//	 "data":"<base64 of the revocation signature packet>"}
//
// Every record read is refused, with an error and never a panic, when it
// is over MaxRecordSize, malformed, or of an unknown version.
package book

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dsep-project/dsep/address"
)

// MaxRecordSize bounds one stored JSON record. A contact record is well
// under 4 KiB; anything larger is damage or tampering.
const MaxRecordSize = 256 << 10

// Errors. Each is wrapped with the details (errors.Is finds it).
var (
	// ErrNotFound: no such contact (or no revocation for that key).
	ErrNotFound = errors.New("book: not found")
	// ErrInUse: another process (or another Book in this process) has the
	// directory open.
	ErrInUse = errors.New("book: another dsep process is using the data directory")
	// ErrWrongKey: the encryption key does not open the stored book.
	ErrWrongKey = errors.New("book: wrong encryption key for the address book")
	// ErrClosed: the Book has been closed.
	ErrClosed = errors.New("book: the address book is closed")
	// ErrDamaged: a stored record is malformed, oversized or of an unknown
	// version.
	ErrDamaged = errors.New("book: damaged address book record")
)

// Options tunes Open. The zero value opens an unencrypted book with no
// logging, which is for tests only: dsep always passes an EncryptionKey.
type Options struct {
	// EncryptionKey is the 32-byte AES-256 key badger encrypts the data
	// at rest with. nil means unencrypted (tests only). A book created with
	// a key can only be opened with the same key.
	EncryptionKey []byte
	// Logger receives badger's own warnings and errors (nothing below
	// warning level). nil means silent.
	Logger *slog.Logger
}

// Book is an open address book. Its methods are safe for concurrent use.
type Book struct {
	dir string
	// mu guards db and closed: every operation holds it for reading,
	// Close for writing.
	mu     sync.RWMutex
	db     *badger.DB
	closed bool
	// wmu serializes the read-modify-write transactions, so that they
	// never conflict with one another.
	wmu sync.Mutex
}

// Badger tuning for a small store: an address book holds at most a few
// thousand small records, so none of badger's 64 MiB defaults are needed.
const (
	memTableSize   = 4 << 20
	valueLogSize   = 4 << 20
	valueThreshold = MaxRecordSize + address.MaxKeyBytes // every value stays in the LSM tree
	cacheSize      = 1 << 20
)

// Open opens (creating if needed) the address book in dir. The directory
// is made mode 0700 and the files in it 0600 (at Open and at Close: badger
// creates some files 0666 less the umask, which the 0700 directory keeps
// private meanwhile). A directory another process (or another open Book)
// holds gives ErrInUse; a wrong EncryptionKey, or one given for a book
// created without (or the reverse), gives ErrWrongKey.
func Open(dir string, opt Options) (b *Book, err error) {
	if dir == "" {
		return nil, errors.New("book: no directory given for the address book")
	}
	if opt.EncryptionKey != nil && len(opt.EncryptionKey) != 32 {
		return nil, fmt.Errorf("book: the encryption key must be 32 bytes (AES-256), not %d", len(opt.EncryptionKey))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("book: creating the address book directory: %w", err)
	}
	if err := tighten(dir); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(true). // a pin or an undone move must survive a crash
		WithMemTableSize(memTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(4 << 20).
		WithValueLogFileSize(valueLogSize).
		WithValueThreshold(valueThreshold).
		WithNumCompactors(2).
		WithNumVersionsToKeep(1).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithMetricsEnabled(false).
		WithNumGoroutines(1)
	if opt.Logger != nil {
		bo = bo.WithLogger(badgerLogger{opt.Logger})
	}
	if opt.EncryptionKey != nil {
		// Badger needs a block cache with encryption (it panics without
		// one) and an index cache to be usable.
		bo = bo.WithEncryptionKey(opt.EncryptionKey).
			WithBlockCacheSize(cacheSize).
			WithIndexCacheSize(cacheSize)
	}
	defer func() {
		// Badger reports some broken states by panicking.
		if p := recover(); p != nil {
			b, err = nil, fmt.Errorf("%w: opening the address book in %s: %v", ErrDamaged, dir, p)
		}
	}()
	// Check the key first: badger.Open with a wrong key fails only after
	// it has started goroutines that its clean-up never stops (v4.9.6).
	// Read-only, the key registry is only read, never created.
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: opt.EncryptionKey})
	if err != nil {
		return nil, openError(dir, err)
	}
	kr.Close()
	db, err := badger.Open(bo)
	if err != nil {
		return nil, openError(dir, err)
	}
	if err := tighten(dir); err != nil {
		db.Close()
		return nil, err
	}
	return &Book{dir: dir, db: db}, nil
}

// tighten makes dir 0700 and the files in it 0600. Badger creates most of
// its files (tables, value log, LOCK) with mode 0666 less the umask; the
// 0700 directory already keeps others out of them, and tighten, run at
// Open and Close, makes the files themselves private too.
func tighten(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("book: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("book: %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("book: making %s private: %w", dir, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("book: %w", err)
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
				return fmt.Errorf("book: making %s private: %w", p, err)
			}
		}
	}
	return nil
}

// openError turns badger's errors into ones that say what to do.
func openError(dir string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Cannot acquire directory lock"):
		// badger v4.9.6 flattens the flock error into text (y.Wrapf), so
		// its message is all there is to recognise; book_test.go pins it.
		return fmt.Errorf("%w %s: stop the other dsep (or use another --data directory) and try again", ErrInUse, dir)
	case errors.Is(err, badger.ErrEncryptionKeyMismatch), strings.Contains(msg, badger.ErrEncryptionKeyMismatch.Error()):
		return fmt.Errorf("%w in %s: the key given is not the one the address book was created with (or it was created unencrypted)", ErrWrongKey, dir)
	}
	return fmt.Errorf("book: opening the address book in %s: %w", dir, err)
}

// Close closes the book. Further calls return ErrClosed; closing twice is
// not an error.
func (b *Book) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("book: closing the address book: %w", err)
	}
	return tighten(b.dir)
}

// view runs fn in a read-only transaction.
func (b *Book) view(fn func(*badger.Txn) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return b.db.View(fn)
}

// update runs fn in one read-write transaction, serialized with the other
// updates; fn's changes are committed only if it returns nil.
func (b *Book) update(fn func(*badger.Txn) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	return b.db.Update(fn)
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
