package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/node/envelope"
)

// Key prefixes (see the package doc).
const (
	prefixRaw       = "r/"
	prefixPending   = "p/"
	prefixTombstone = "t/"
	prefixMeta      = "m/"
	prefixBody      = "b/"
	prefixFolder    = "u/"
	prefixIndex     = "x/i/"
	prefixFolderNum = "x/f/"
	keySeqFolder    = "x/seq/folder"
	keySeqUIDValid  = "x/seq/uidvalidity"
	keyVersion      = "x/version"

	// formatVersion is the layout this package writes (x/version).
	formatVersion = "1"
)

func idKey(prefix string, id envelope.ID) []byte {
	return append([]byte(prefix), id[:]...)
}

func folderKey(name string) []byte { return []byte(prefixFolder + name) }

func folderNumKey(num uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(prefixFolderNum), num)
}

// metaPrefix is the prefix of the metadata of folder num's messages.
func metaPrefix(num uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(prefixMeta), num)
}

func metaKey(l loc) []byte {
	return binary.BigEndian.AppendUint32(metaPrefix(l.Num), l.UID)
}

// getValue returns a copy of the value under key, refusing one over limit;
// a missing key gives badger.ErrKeyNotFound.
func getValue(txn *badger.Txn, key []byte, limit int) ([]byte, error) {
	it, err := txn.Get(key)
	if err != nil {
		return nil, err
	}
	// ValueSize is exact for values kept in the LSM tree and an
	// over-estimate for the value log: a cheap first check.
	if it.ValueSize() > int64(limit)+64 {
		return nil, fmt.Errorf("%w: value of %d bytes under %q, over the %d-byte limit", ErrDamaged, it.ValueSize(), key[:2], limit)
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	if len(v) > limit {
		return nil, fmt.Errorf("%w: value of %d bytes under %q, over the %d-byte limit", ErrDamaged, len(v), key[:2], limit)
	}
	return v, nil
}

// getLarge is getValue for keys deleted with Erase: an empty value is
// absent.
func getLarge(txn *badger.Txn, key []byte, limit int) ([]byte, error) {
	v, err := getValue(txn, key, limit)
	if err == nil && len(v) == 0 {
		return nil, badger.ErrKeyNotFound
	}
	return v, err
}

// Erase deletes key in a way badger's value-log GC cannot undo (see
// "Deleting large values" in the package doc): it writes an empty value
// over it, which readers must take for absent. Use it for every key that
// may hold a value of ValueThreshold bytes or more; the key itself stays
// (a few dozen bytes).
func Erase(txn *badger.Txn, key []byte) error { return txn.Set(key, nil) }

// exists reports whether key is present.
func exists(txn *badger.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}
