package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/node/envelope"
	"golang.org/x/text/unicode/norm"
)

// The system folders, created by Open; they cannot be deleted or renamed.
const (
	FolderInbox    = "INBOX"
	FolderSent     = "Sent"
	FolderRejected = "Rejected"
)

// MaxFolderName bounds a folder name, in bytes.
const MaxFolderName = 200

// Directions of a message.
const (
	DirectionIn     = "in"     // received over DSEP (or through the domain's gateway)
	DirectionOut    = "out"    // a copy of mail this user sent
	DirectionBounce = "bounce" // a delivery failure report about mail this user sent
	// DirectionLocal: put into the mailbox by the user's mail client (IMAP
	// APPEND: a draft, a saved or imported message), neither received nor
	// sent over DSEP, and not verified.
	DirectionLocal = "local"
)

// FlagSeen is the IMAP \Seen flag: messages without it count as unseen.
const FlagSeen = `\Seen`

// Meta is what the mailbox keeps about a message apart from its body: all
// a mail client's message list needs. List reads only this.
type Meta struct {
	ID        envelope.ID // the message ID (inbound) or the ID given to Deliver
	Folder    string      // set by the store
	UID       uint32      // set by the store: IMAP UID in Folder
	From      string
	To        []string
	Cc        []string
	Subject   string
	Date      time.Time // the Date header (its zone offset is kept)
	MessageID string    // the RFC 5322 Message-Id
	Received  time.Time // when the envelope arrived (zero at Deliver: the spool's time, or now)
	Size      int64     // set by the store: the body's length in bytes
	Flags     []string  // IMAP flags, e.g. \Seen; kept sorted, without duplicates (case-insensitive)
	// Verification is the result of the signature, recipient and binding
	// checks, as the node recorded it.
	Verification Verification
	Direction    string // DirectionIn, DirectionOut, DirectionBounce or DirectionLocal

	// The rest of an IMAP ENVELOPE (see MetaFromHeader); empty when the
	// message has no such field (or was filed by a version that did not
	// record them: a mail client then sees Sender and Reply-To as From).
	Sender    string
	ReplyTo   []string
	Bcc       []string
	InReplyTo []string // message IDs without angle brackets

	// CopyOf is the ID of the message this one is a copy of (CopyUIDs),
	// zero for an original.
	CopyOf envelope.ID
}

// Verification is the recorded outcome of checking a message.
type Verification struct {
	Status string // the verdict, e.g. "verified", "unknown-key", "bad-signature", "gateway"
	Signer string // the signer's fingerprint (40 hex digits), if known
	Detail string // a human-readable explanation
}

// FolderInfo describes a folder.
type FolderInfo struct {
	Name        string
	UIDValidity uint32 // fixed at creation; a folder recreated under the same name gets a greater one
	UIDNext     uint32 // the UID the next message will get
	Messages    int
	Unseen      int // messages without \Seen
}

// init writes the format version and creates the system folders.
func (s *Store) init(ctx context.Context) error {
	return s.Durable(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, []byte(keyVersion), 16)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			if err := txn.Set([]byte(keyVersion), []byte(formatVersion)); err != nil {
				return err
			}
		case err != nil:
			return err
		case string(v) != formatVersion:
			return fmt.Errorf("%w: the mail store has format version %q; this dsep reads %q (upgrade dsep)", ErrDamaged, v, formatVersion)
		}
		for _, name := range []string{FolderInbox, FolderSent, FolderRejected} {
			if _, err := createFolder(txn, name); err != nil && !errors.Is(err, ErrFolderExists) {
				return err
			}
		}
		return nil
	})
}

func isSystemFolder(name string) bool {
	return name == FolderInbox || name == FolderSent || name == FolderRejected
}

// CanonicalFolder returns the canonical form of a folder name, or an error
// wrapping ErrFolderName. Names are UTF-8, NFC-normalised, 1 to
// MaxFolderName bytes, without control characters or the IMAP wildcards
// '*' and '%'; '/' separates levels of a hierarchy (so no leading,
// trailing or doubled '/', and no "." or ".." level). "INBOX" is matched
// without regard to case.
func CanonicalFolder(name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w %q: %s", ErrFolderName, name, why)
	}
	if !utf8.ValidString(name) {
		return bad("not UTF-8")
	}
	n := norm.NFC.String(name)
	if strings.EqualFold(n, FolderInbox) {
		return FolderInbox, nil
	}
	if n == "" || len(n) > MaxFolderName {
		return bad(fmt.Sprintf("a name has 1 to %d bytes", MaxFolderName))
	}
	if strings.ContainsFunc(n, func(r rune) bool { return unicode.IsControl(r) || r == '*' || r == '%' }) {
		return bad("control characters, '*' and '%' are not allowed")
	}
	if strings.TrimSpace(n) != n {
		return bad("leading or trailing space")
	}
	for _, level := range strings.Split(n, "/") {
		if level == "" || level == "." || level == ".." {
			return bad("empty, '.' or '..' level")
		}
	}
	return n, nil
}

// NormalizeFlags checks flags and returns them sorted, without duplicates
// (compared without regard to case; the first spelling is kept). A flag is
// an IMAP atom of at most MaxFlagLen bytes, optionally preceded by '\'.
func NormalizeFlags(flags []string) ([]string, error) {
	var out []string
	for _, f := range flags {
		if !validFlag(f) {
			return nil, fmt.Errorf("%w: flag %q", ErrInvalid, f)
		}
		if !slices.ContainsFunc(out, func(g string) bool { return strings.EqualFold(f, g) }) {
			out = append(out, f)
		}
	}
	if len(out) > MaxFlags {
		return nil, fmt.Errorf("%w: %d flags (limit %d)", ErrInvalid, len(out), MaxFlags)
	}
	slices.Sort(out)
	return out, nil
}

func validFlag(f string) bool {
	if len(f) == 0 || len(f) > MaxFlagLen {
		return false
	}
	atom := strings.TrimPrefix(f, `\`)
	if atom == "" {
		return false
	}
	for i := 0; i < len(atom); i++ {
		c := atom[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

func seen(flags []string) bool {
	return slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, FlagSeen) })
}

// getFolder loads the folder name (canonical).
func getFolder(txn *badger.Txn, name string) (folder, error) {
	b, err := getValue(txn, folderKey(name), maxFolderSize)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return folder{}, fmt.Errorf("%w: %q", ErrNoFolder, name)
	}
	if err != nil {
		return folder{}, err
	}
	return decodeFolder(b)
}

func putFolder(txn *badger.Txn, name string, f *folder) error {
	return txn.Set(folderKey(name), encodeFolder(f))
}

// folderName returns the name of folder number num.
func folderName(txn *badger.Txn, num uint32) (string, error) {
	b, err := getValue(txn, folderNumKey(num), MaxFolderName)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", fmt.Errorf("%w: no name for folder number %d", ErrDamaged, num)
	}
	return string(b), err
}

func getUint32(txn *badger.Txn, key string) (uint32, error) {
	b, err := getValue(txn, []byte(key), 4)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: counter %s of %d bytes", ErrDamaged, key, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

// createFolder creates the folder name (canonical): a new folder number,
// and a UIDVALIDITY that is the time in seconds unless an earlier folder
// took that value or a later one (a folder recreated at once, a clock set
// back), in which case one more than the last one given.
func createFolder(txn *badger.Txn, name string) (folder, error) {
	if ok, err := exists(txn, folderKey(name)); err != nil || ok {
		if ok {
			err = fmt.Errorf("%w: %q", ErrFolderExists, name)
		}
		return folder{}, err
	}
	lastNum, err := getUint32(txn, keySeqFolder)
	if err != nil {
		return folder{}, err
	}
	lastUV, err := getUint32(txn, keySeqUIDValid)
	if err != nil {
		return folder{}, err
	}
	if lastNum == math.MaxUint32 || lastUV == math.MaxUint32 {
		return folder{}, fmt.Errorf("store: no folder numbers left")
	}
	uv := uint32(max(time.Now().Unix(), 1))
	if uv <= lastUV {
		uv = lastUV + 1
	}
	f := folder{Num: lastNum + 1, UIDValidity: uv, UIDNext: 1}
	for _, e := range []struct {
		k, v []byte
	}{
		{[]byte(keySeqFolder), binary.BigEndian.AppendUint32(nil, f.Num)},
		{[]byte(keySeqUIDValid), binary.BigEndian.AppendUint32(nil, f.UIDValidity)},
		{folderNumKey(f.Num), []byte(name)},
		{folderKey(name), encodeFolder(&f)},
	} {
		if err := txn.Set(e.k, e.v); err != nil {
			return folder{}, fmt.Errorf("store: creating folder %q: %w", name, err)
		}
	}
	return f, nil
}

func info(name string, f folder) FolderInfo {
	return FolderInfo{Name: name, UIDValidity: f.UIDValidity, UIDNext: f.UIDNext, Messages: int(f.Messages), Unseen: int(f.Unseen)}
}

// CreateFolder creates a folder (ErrFolderExists if there is one of that
// name).
func (s *Store) CreateFolder(ctx context.Context, name string) (FolderInfo, error) {
	name, err := CanonicalFolder(name)
	if err != nil {
		return FolderInfo{}, err
	}
	var fi FolderInfo
	err = s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
		f, err := createFolder(txn, name)
		if err != nil {
			return err
		}
		fi = info(name, f)
		emit(Change{Kind: ChangeFolderCreated, Folder: name, UIDValidity: f.UIDValidity})
		return nil
	})
	if err != nil {
		return FolderInfo{}, err
	}
	return fi, nil
}

// Folder describes the folder name.
func (s *Store) Folder(name string) (FolderInfo, error) {
	name, err := CanonicalFolder(name)
	if err != nil {
		return FolderInfo{}, err
	}
	var fi FolderInfo
	err = s.view(func(txn *badger.Txn) error {
		f, err := getFolder(txn, name)
		fi = info(name, f)
		return err
	})
	return fi, err
}

// Folders lists the folders, sorted by name (byte order).
func (s *Store) Folders() ([]FolderInfo, error) {
	var out []FolderInfo
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixFolder), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			name := string(item.Key()[len(prefixFolder):])
			if item.ValueSize() > maxFolderSize {
				return fmt.Errorf("%w: folder record of %q is %d bytes", ErrDamaged, name, item.ValueSize())
			}
			var f folder
			if err := item.Value(func(v []byte) error {
				var err error
				f, err = decodeFolder(v)
				return err
			}); err != nil {
				return fmt.Errorf("folder %q: %w", name, err)
			}
			out = append(out, info(name, f))
		}
		return nil
	})
	return out, err
}

// RenameFolder renames a folder, keeping its messages, UIDs and
// UIDVALIDITY. Only the folder itself is renamed, not the folders below it
// in the hierarchy. System folders cannot be renamed (ErrSystemFolder).
func (s *Store) RenameFolder(ctx context.Context, from, to string) error {
	from, err := CanonicalFolder(from)
	if err != nil {
		return err
	}
	to, err = CanonicalFolder(to)
	if err != nil {
		return err
	}
	if isSystemFolder(from) {
		return fmt.Errorf("%w: %q", ErrSystemFolder, from)
	}
	return s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
		f, err := getFolder(txn, from)
		if err != nil {
			return err
		}
		if ok, err := exists(txn, folderKey(to)); err != nil || ok {
			if ok {
				err = fmt.Errorf("%w: %q", ErrFolderExists, to)
			}
			return err
		}
		if err := txn.Delete(folderKey(from)); err != nil {
			return err
		}
		if err := putFolder(txn, to, &f); err != nil {
			return err
		}
		emit(Change{Kind: ChangeFolderRenamed, Folder: to, OldName: from, UIDValidity: f.UIDValidity})
		return txn.Set(folderNumKey(f.Num), []byte(to))
	})
}

// deleteChunk bounds the messages one transaction of DeleteFolder removes.
const deleteChunk = 256

// DeleteFolder deletes a folder and every message in it (each leaving a
// tombstone, as Delete does). A large folder is emptied in several
// durable steps: if DeleteFolder fails half way, the folder remains with
// fewer messages, and calling it again finishes the job. System folders
// cannot be deleted (ErrSystemFolder).
func (s *Store) DeleteFolder(ctx context.Context, name string) error {
	name, err := CanonicalFolder(name)
	if err != nil {
		return err
	}
	if isSystemFolder(name) {
		return fmt.Errorf("%w: %q", ErrSystemFolder, name)
	}
	now := time.Now()
	for {
		var done bool
		err := s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
			done = false
			f, err := getFolder(txn, name)
			if err != nil {
				return err
			}
			var ids []envelope.ID
			var flags [][]string
			var keys [][]byte
			var uids []uint32
			prefix := metaPrefix(f.Num)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Rewind(); it.Valid() && len(ids) < deleteChunk; it.Next() {
				item := it.Item()
				if item.ValueSize() == 0 {
					continue // erased
				}
				var m Meta
				err := item.Value(func(v []byte) error {
					var err error
					m, err = decodeMeta(v)
					return err
				})
				if err != nil {
					it.Close()
					return err
				}
				ids = append(ids, m.ID)
				flags = append(flags, m.Flags)
				keys = append(keys, item.KeyCopy(nil))
				uids = append(uids, binary.BigEndian.Uint32(item.Key()[len(prefix):]))
			}
			it.Close()
			if len(ids) == 0 {
				done = true
				if err := txn.Delete(folderKey(name)); err != nil {
					return err
				}
				emit(Change{Kind: ChangeFolderDeleted, Folder: name, UIDValidity: f.UIDValidity})
				return txn.Delete(folderNumKey(f.Num))
			}
			for i, id := range ids {
				if err := deleteMessage(txn, id, keys[i], now); err != nil {
					return err
				}
				countOut(&f, flags[i])
				emit(Change{Kind: ChangeRemoved, Folder: name, UIDValidity: f.UIDValidity, UID: uids[i], ID: id})
			}
			return putFolder(txn, name, &f)
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// deleteMessage removes the message id (its metadata under metaKey) and
// leaves a tombstone. The caller fixes the folder's counts.
func deleteMessage(txn *badger.Txn, id envelope.ID, metaKey []byte, now time.Time) error {
	// Metadata over ValueThreshold lives in the value log: erased, never
	// deleted (see Erase).
	if err := Erase(txn, metaKey); err != nil {
		return fmt.Errorf("store: deleting %s: %w", id, err)
	}
	for _, k := range [][]byte{idKey(prefixPending, id), idKey(prefixIndex, id)} {
		if err := txn.Delete(k); err != nil {
			return fmt.Errorf("store: deleting %s: %w", id, err)
		}
	}
	// Bodies and payloads may be in the value log.
	for _, k := range [][]byte{idKey(prefixBody, id), idKey(prefixRaw, id)} {
		ok, err := exists(txn, k)
		if err == nil && ok {
			err = Erase(txn, k)
		}
		if err != nil {
			return fmt.Errorf("store: deleting %s: %w", id, err)
		}
	}
	t := encodeTombstone(&tombstone{Why: whyDeleted, When: now})
	if err := txn.Set(idKey(prefixTombstone, id), t); err != nil {
		return fmt.Errorf("store: deleting %s: %w", id, err)
	}
	return nil
}

// checkMeta validates what Deliver is given and returns it normalised.
func checkMeta(m Meta, body []byte) (Meta, error) {
	var zero envelope.ID
	switch {
	case m.ID == zero:
		return m, fmt.Errorf("%w: no message ID", ErrInvalid)
	case m.Direction != DirectionIn && m.Direction != DirectionOut && m.Direction != DirectionBounce && m.Direction != DirectionLocal:
		return m, fmt.Errorf("%w: direction %q (want %q, %q, %q or %q)", ErrInvalid, m.Direction, DirectionIn, DirectionOut, DirectionBounce, DirectionLocal)
	case len(body) == 0 || len(body) > MaxBodySize:
		return m, fmt.Errorf("%w: body of %d bytes (1 to %d allowed)", ErrInvalid, len(body), MaxBodySize)
	case !checkTime(m.Date):
		return m, fmt.Errorf("%w: date %v out of range", ErrInvalid, m.Date)
	case !checkTime(m.Received):
		return m, fmt.Errorf("%w: received time %v out of range", ErrInvalid, m.Received)
	}
	name, err := CanonicalFolder(m.Folder)
	if err != nil {
		return m, err
	}
	m.Folder = name
	if m.Flags, err = NormalizeFlags(m.Flags); err != nil {
		return m, err
	}
	m.Size = int64(len(body))
	m.UID = 0
	if n := len(encodeMeta(&m)); n > MaxMetaSize-32 {
		return m, fmt.Errorf("%w: metadata of %d bytes (limit %d): clip the recipient lists", ErrInvalid, n, MaxMetaSize)
	}
	return m, nil
}

// Deliver files a message into m.Folder: its metadata and its plaintext
// RFC 5322 body, stored apart, under the next UID of the folder. It
// returns the stored Meta (UID, Size, normalised Flags, Received set).
//
// For an inbound message, m.ID is its message ID: Deliver clears the
// spool's pending marker in the same transaction and keeps the payload as
// received (Raw). A zero m.Received is then taken from the spool (else it
// is now). A sent copy (DirectionOut) gets an ID from the caller that must
// not collide with any inbound message ID (e.g. a SHA-256 over a
// domain-separated input), since the mailbox and the spool share IDs.
//
// An ID already in the mailbox, or deleted or rejected before, gives
// ErrExists; a missing folder ErrNoFolder. Durable: see Durable.
func (s *Store) Deliver(ctx context.Context, m Meta, body []byte) (Meta, error) {
	m, err := checkMeta(m, body)
	if err != nil {
		return Meta{}, err
	}
	var out Meta
	err = s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
		mm := m
		if ok, err := exists(txn, idKey(prefixTombstone, m.ID)); err != nil || ok {
			if ok {
				err = fmt.Errorf("%w: %s was deleted or rejected", ErrExists, m.ID)
			}
			return err
		}
		if ok, err := exists(txn, idKey(prefixIndex, m.ID)); err != nil || ok {
			if ok {
				err = fmt.Errorf("%w: %s is already in the mailbox", ErrExists, m.ID)
			}
			return err
		}
		f, err := getFolder(txn, mm.Folder)
		if err != nil {
			return err
		}
		pk := idKey(prefixPending, m.ID)
		switch b, err := getValue(txn, pk, maxPendingSize); {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			p, err := decodePending(b)
			if err != nil {
				return err
			}
			if mm.Received.IsZero() {
				mm.Received = p.Received
			}
			if err := txn.Delete(pk); err != nil {
				return err
			}
		}
		if mm.Received.IsZero() {
			mm.Received = time.Now()
		}
		l, err := allocUID(&f)
		if err != nil {
			return fmt.Errorf("%w: %q", err, mm.Folder)
		}
		mm.UID = l.UID
		countIn(&f, mm.Flags)
		if err := putMessage(txn, mm, l); err != nil {
			return err
		}
		if err := txn.Set(idKey(prefixBody, m.ID), body); err != nil {
			return err
		}
		if err := putFolder(txn, mm.Folder, &f); err != nil {
			return err
		}
		emit(Change{Kind: ChangeAdded, Folder: mm.Folder, UIDValidity: f.UIDValidity, UID: mm.UID, ID: mm.ID, Flags: mm.Flags})
		out = mm
		return nil
	})
	if err != nil {
		return Meta{}, err
	}
	return out, nil
}

// allocUID takes the next UID of f.
func allocUID(f *folder) (loc, error) {
	if f.UIDNext == math.MaxUint32 {
		return loc{}, errors.New("store: no UIDs left in folder (recreate it)")
	}
	l := loc{Num: f.Num, UID: f.UIDNext}
	f.UIDNext++
	return l, nil
}

func countIn(f *folder, flags []string) {
	f.Messages++
	if !seen(flags) {
		f.Unseen++
	}
}

// countOut undoes countIn (saturating, so damaged counts do not wrap).
func countOut(f *folder, flags []string) {
	if f.Messages > 0 {
		f.Messages--
	}
	if !seen(flags) && f.Unseen > 0 {
		f.Unseen--
	}
	f.Unseen = min(f.Unseen, f.Messages)
}

// putMessage stores m's metadata at l and indexes its ID.
func putMessage(txn *badger.Txn, m Meta, l loc) error {
	enc := encodeMeta(&m)
	if len(enc) > MaxMetaSize {
		return fmt.Errorf("%w: metadata of %d bytes (limit %d)", ErrInvalid, len(enc), MaxMetaSize)
	}
	if err := txn.Set(metaKey(l), enc); err != nil {
		return err
	}
	return txn.Set(idKey(prefixIndex, m.ID), encodeLoc(l))
}

// locate finds the message id: where it is, its metadata (Folder and UID
// set), and its folder.
func locate(txn *badger.Txn, id envelope.ID) (loc, Meta, folder, error) {
	b, err := getValue(txn, idKey(prefixIndex, id), 8)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return loc{}, Meta{}, folder{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return loc{}, Meta{}, folder{}, err
	}
	l, err := decodeLoc(b)
	if err != nil {
		return loc{}, Meta{}, folder{}, err
	}
	mb, err := getValue(txn, metaKey(l), MaxMetaSize)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return loc{}, Meta{}, folder{}, fmt.Errorf("%w: message %s is indexed but has no metadata", ErrDamaged, id)
	}
	if err != nil {
		return loc{}, Meta{}, folder{}, err
	}
	m, err := decodeMeta(mb)
	if err != nil {
		return loc{}, Meta{}, folder{}, err
	}
	if m.ID != id {
		return loc{}, Meta{}, folder{}, fmt.Errorf("%w: the index of %s points to %s", ErrDamaged, id, m.ID)
	}
	name, err := folderName(txn, l.Num)
	if err != nil {
		return loc{}, Meta{}, folder{}, err
	}
	f, err := getFolder(txn, name)
	if err != nil {
		return loc{}, Meta{}, folder{}, err
	}
	m.Folder, m.UID = name, l.UID
	return l, m, f, nil
}

// Get returns the metadata of message id (ErrNotFound if not in the
// mailbox).
func (s *Store) Get(id envelope.ID) (Meta, error) {
	var m Meta
	err := s.view(func(txn *badger.Txn) error {
		var err error
		_, m, _, err = locate(txn, id)
		return err
	})
	return m, err
}

// Body returns the plaintext RFC 5322 body of message id (ErrNotFound if
// not in the mailbox).
func (s *Store) Body(id envelope.ID) ([]byte, error) {
	var body []byte
	err := s.view(func(txn *badger.Txn) error {
		var err error
		body, err = getLarge(txn, idKey(prefixBody, id), MaxBodySize)
		if errors.Is(err, badger.ErrKeyNotFound) {
			if ok, _ := exists(txn, idKey(prefixIndex, id)); ok {
				return fmt.Errorf("%w: message %s has no body", ErrDamaged, id)
			}
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return err
	})
	return body, err
}

// List returns the metadata of up to limit (≤ 0: all) messages of folder
// with a UID greater than afterUID, in UID order. It reads the metadata
// keys of that folder only — never a body or a payload, which live under
// other prefixes — so listing stays fast however large the messages are.
func (s *Store) List(folderName string, afterUID uint32, limit int) ([]Meta, error) {
	name, err := CanonicalFolder(folderName)
	if err != nil {
		return nil, err
	}
	var out []Meta
	err = s.view(func(txn *badger.Txn) error {
		f, err := getFolder(txn, name)
		if err != nil {
			return err
		}
		out, err = listMeta(txn, name, f, afterUID, limit)
		return err
	})
	return out, err
}

// listMeta is List in txn, of folder f called name.
func listMeta(txn *badger.Txn, name string, f folder, afterUID uint32, limit int) ([]Meta, error) {
	if afterUID == math.MaxUint32 {
		return nil, nil
	}
	var out []Meta
	prefix := metaPrefix(f.Num)
	// Values are read in place (no prefetch copies); Prefix keeps the
	// iterator off every table without such keys.
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Seek(metaKey(loc{f.Num, afterUID + 1})); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if item.ValueSize() == 0 {
			continue // erased (moved or deleted)
		}
		if len(k) != len(prefix)+4 || item.ValueSize() > MaxMetaSize {
			return nil, fmt.Errorf("%w: metadata entry %x", ErrDamaged, k)
		}
		var m Meta
		if err := item.Value(func(v []byte) error {
			var err error
			m, err = decodeMeta(v)
			return err
		}); err != nil {
			return nil, err
		}
		m.Folder, m.UID = name, binary.BigEndian.Uint32(k[len(prefix):])
		out = append(out, m)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// SetFlags replaces the flags of message id (see NormalizeFlags) and
// returns the flags stored.
func (s *Store) SetFlags(ctx context.Context, id envelope.ID, flags []string) ([]string, error) {
	flags, err := NormalizeFlags(flags)
	if err != nil {
		return nil, err
	}
	return s.updateFlags(ctx, id, func([]string) []string { return flags })
}

// ChangeFlags adds and removes flags of message id in one durable step
// (what IMAP's STORE +FLAGS / -FLAGS need without a lost update between
// sessions) and returns the flags stored. A flag both added and removed is
// removed.
func (s *Store) ChangeFlags(ctx context.Context, id envelope.ID, add, remove []string) ([]string, error) {
	if _, err := NormalizeFlags(add); err != nil {
		return nil, err
	}
	if _, err := NormalizeFlags(remove); err != nil {
		return nil, err
	}
	return s.updateFlags(ctx, id, func(old []string) []string {
		out := slices.Concat(old, add)
		return slices.DeleteFunc(out, func(f string) bool {
			return slices.ContainsFunc(remove, func(r string) bool { return strings.EqualFold(f, r) })
		})
	})
}

func (s *Store) updateFlags(ctx context.Context, id envelope.ID, change func(old []string) []string) ([]string, error) {
	var out []string
	err := s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
		l, m, f, err := locate(txn, id)
		if err != nil {
			return err
		}
		flags, err := NormalizeFlags(change(slices.Clone(m.Flags)))
		if err != nil {
			return err
		}
		if slices.Equal(flags, m.Flags) {
			out = flags
			return nil
		}
		emit(Change{Kind: ChangeFlags, Folder: m.Folder, UIDValidity: f.UIDValidity, UID: m.UID, ID: id, Flags: flags})
		countOut(&f, m.Flags)
		countIn(&f, flags)
		m.Flags = flags
		if err := putMessage(txn, m, l); err != nil {
			return err
		}
		if err := putFolder(txn, m.Folder, &f); err != nil {
			return err
		}
		out = flags
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Move moves message id to folder dest under a new UID (also when dest is
// the folder it is in, as IMAP MOVE does) and returns its new Meta.
func (s *Store) Move(ctx context.Context, id envelope.ID, dest string) (Meta, error) {
	dest, err := CanonicalFolder(dest)
	if err != nil {
		return Meta{}, err
	}
	var out Meta
	err = s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
		l, m, src, err := locate(txn, id)
		if err != nil {
			return err
		}
		emit(Change{Kind: ChangeRemoved, Folder: m.Folder, UIDValidity: src.UIDValidity, UID: m.UID, ID: id})
		countOut(&src, m.Flags)
		dst := src
		if dest != m.Folder {
			if err := putFolder(txn, m.Folder, &src); err != nil {
				return err
			}
			if dst, err = getFolder(txn, dest); err != nil {
				return err
			}
		}
		nl, err := allocUID(&dst)
		if err != nil {
			return fmt.Errorf("%w: %q", err, dest)
		}
		countIn(&dst, m.Flags)
		if err := Erase(txn, metaKey(l)); err != nil {
			return err
		}
		m.Folder, m.UID = dest, nl.UID
		if err := putMessage(txn, m, nl); err != nil {
			return err
		}
		if err := putFolder(txn, dest, &dst); err != nil {
			return err
		}
		emit(Change{Kind: ChangeAdded, Folder: dest, UIDValidity: dst.UIDValidity, UID: m.UID, ID: id, Flags: m.Flags})
		out = m
		return nil
	})
	if err != nil {
		return Meta{}, err
	}
	return out, nil
}

// Delete removes message id: metadata, body and payload. A tombstone of
// the ID stays (forever, a few dozen bytes) so that a retried envelope is
// acknowledged as a duplicate and never delivered again.
func (s *Store) Delete(ctx context.Context, id envelope.ID) error {
	now := time.Now()
	return s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
		l, m, f, err := locate(txn, id)
		if err != nil {
			return err
		}
		if err := deleteMessage(txn, id, metaKey(l), now); err != nil {
			return err
		}
		countOut(&f, m.Flags)
		emit(Change{Kind: ChangeRemoved, Folder: m.Folder, UIDValidity: f.UIDValidity, UID: m.UID, ID: id})
		return putFolder(txn, m.Folder, &f)
	})
}
