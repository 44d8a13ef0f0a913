package book

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/address"
)

// Key prefixes (see the package doc).
const (
	prefixContact    = "c/"
	prefixKey        = "k/"
	prefixData       = "d/"
	prefixRevocation = "r/"
)

func contactKey(e address.Email) string          { return prefixContact + e.String() }
func keyContactKey(f address.Fingerprint) string { return prefixKey + f.String() }
func dataKey(f address.Fingerprint) string       { return prefixData + f.String() }
func revocationKey(f address.Fingerprint) string { return prefixRevocation + f.String() }
func indexPrefix(f address.Fingerprint) string   { return prefixKey + f.String() + "/" }
func indexKey(f address.Fingerprint, owner string) string {
	return indexPrefix(f) + owner
}

// getValue returns a copy of the value under key, refusing one over limit.
// A missing key gives ErrNotFound.
func getValue(txn *badger.Txn, key string, limit int) ([]byte, error) {
	it, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("book: reading %s: %w", key, err)
	}
	// ValueSize is exact for values kept in the LSM tree (all of ours) and
	// an over-estimate otherwise: a cheap first check before copying.
	if it.ValueSize() > int64(limit)+64 {
		return nil, fmt.Errorf("%w: %s is %d bytes, over the %d-byte limit", ErrDamaged, key, it.ValueSize(), limit)
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("book: reading %s: %w", key, err)
	}
	if len(v) > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, over the %d-byte limit", ErrDamaged, key, len(v), limit)
	}
	return v, nil
}

// getRecord loads the contact record stored under owner (c/… or k/<fpr>).
func getRecord(txn *badger.Txn, owner string) (*record, error) {
	v, err := getValue(txn, owner, MaxRecordSize)
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", owner, err)
	}
	if r.owner() != owner {
		return nil, fmt.Errorf("%w: %s holds the record of %s", ErrDamaged, owner, r.name())
	}
	return r, nil
}

// putRecord stores next (whose previous version was prev, nil for a new
// contact), keeps the index k/<fpr>/<owner> in step with the keys the
// record refers to, and deletes the key material no contact refers to any
// more.
func putRecord(txn *badger.Txn, prev, next *record) error {
	b, err := encodeRecord(next)
	if err != nil {
		return err
	}
	owner := next.owner()
	if err := txn.Set([]byte(owner), b); err != nil {
		return fmt.Errorf("book: storing %s: %w", next.name(), err)
	}
	newRefs := next.refs()
	for _, f := range newRefs {
		if err := txn.Set([]byte(indexKey(f, owner)), nil); err != nil {
			return fmt.Errorf("book: indexing %s: %w", next.name(), err)
		}
	}
	if prev == nil {
		return nil
	}
	for _, f := range prev.refs() {
		if slices.Contains(newRefs, f) {
			continue
		}
		if err := txn.Delete([]byte(indexKey(f, owner))); err != nil {
			return fmt.Errorf("book: indexing %s: %w", next.name(), err)
		}
		owners, err := indexOwners(txn, f)
		if err != nil {
			return err
		}
		if len(owners) == 0 {
			if err := txn.Delete([]byte(dataKey(f))); err != nil {
				return fmt.Errorf("book: deleting key %s: %w", f, err)
			}
		}
	}
	return nil
}

// indexOwners returns the owners (c/… or k/<fpr>) whose records refer to f.
func indexOwners(txn *badger.Txn, f address.Fingerprint) ([]string, error) {
	prefix := indexPrefix(f)
	opt := badger.DefaultIteratorOptions
	opt.PrefetchValues = false
	opt.Prefix = []byte(prefix)
	it := txn.NewIterator(opt)
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		out = append(out, strings.TrimPrefix(string(it.Item().Key()), prefix))
	}
	return out, nil
}

// putKeyData stores the public material of the key f (refreshing an
// older copy).
func putKeyData(txn *badger.Txn, f address.Fingerprint, data []byte) error {
	if len(data) > address.MaxKeyBytes {
		return fmt.Errorf("book: key %s is %d bytes, over the %d-byte limit", f, len(data), address.MaxKeyBytes)
	}
	if err := txn.Set([]byte(dataKey(f)), data); err != nil {
		return fmt.Errorf("book: storing key %s: %w", f, err)
	}
	return nil
}

// keyData returns the stored material of f, or nil if there is none.
func keyData(txn *badger.Txn, f address.Fingerprint) ([]byte, error) {
	b, err := getValue(txn, dataKey(f), address.MaxKeyBytes)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// loadKey parses the stored material of f. With revs, every revocation
// the book has recorded for f is attached to it.
func loadKey(txn *badger.Txn, f address.Fingerprint, revs bool) (*address.Key, error) {
	b, err := keyData(txn, f)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: the material of key %s is missing", ErrDamaged, f)
	}
	k, err := address.ReadKey(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: key %s: %v", ErrDamaged, f, err)
	}
	if k.Fingerprint() != f {
		return nil, fmt.Errorf("%w: d/%s holds key %s", ErrDamaged, f, k.Fingerprint())
	}
	if revs {
		if err := attachRevocations(txn, k); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// attachRevocations adds to k (in place) the revocation the book has
// recorded for it, if any.
func attachRevocations(txn *badger.Txn, k *address.Key) error {
	rr, err := getRevRecord(txn, k.Fingerprint())
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	rev, err := address.ParseRevocation(k, rr.Data)
	if err != nil {
		return fmt.Errorf("%w: the recorded revocation of %s: %v", ErrDamaged, k.Fingerprint(), err)
	}
	return k.AddRevocation(rev)
}

// contactOf returns the Contact of r with its key material.
func contactOf(txn *badger.Txn, r *record) (*Contact, error) {
	kd, err := keyData(txn, r.Key)
	if err != nil {
		return nil, err
	}
	var pd []byte
	if r.Pending != nil {
		if pd, err = keyData(txn, *r.Pending); err != nil {
			return nil, err
		}
	}
	return r.contact(kd, pd), nil
}

// Revocation records.

// maxRevocationRecord bounds a stored revocation record (the signature is
// at most 4 KiB, base64 in JSON).
const maxRevocationRecord = 16 << 10

// revRecord is the stored form of a RevocationRecord.
type revRecord struct {
	V         int                  `json:"v"`
	Key       address.Fingerprint  `json:"key"`
	Kind      string               `json:"kind"`
	Successor *address.Fingerprint `json:"successor,omitempty"`
	Signed    time.Time            `json:"signed"`
	FirstSeen time.Time            `json:"first_seen"`
	Data      []byte               `json:"data"`
}

func kindSeverity(kind string) int {
	switch kind {
	case "compromised":
		return 3
	case "superseded":
		return 2
	case "retired":
		return 1
	}
	return 0
}

func getRevRecord(txn *badger.Txn, f address.Fingerprint) (*revRecord, error) {
	v, err := getValue(txn, revocationKey(f), maxRevocationRecord)
	if err != nil {
		return nil, err
	}
	var r revRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%w: revocation record of %s: %v", ErrDamaged, f, err)
	}
	switch {
	case r.V != recordVersion:
		return nil, fmt.Errorf("%w: revocation record of %s has version %d", ErrDamaged, f, r.V)
	case r.Key != f:
		return nil, fmt.Errorf("%w: revocation record of %s names key %s", ErrDamaged, f, r.Key)
	case kindSeverity(r.Kind) == 0:
		return nil, fmt.Errorf("%w: revocation record of %s has kind %q", ErrDamaged, f, r.Kind)
	case len(r.Data) == 0:
		return nil, fmt.Errorf("%w: revocation record of %s has no signature", ErrDamaged, f)
	}
	r.Signed, r.FirstSeen = normTime(r.Signed), normTime(r.FirstSeen)
	return &r, nil
}

func putRevRecord(txn *badger.Txn, r *revRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("book: encoding the revocation of %s: %w", r.Key, err)
	}
	if len(b) > maxRevocationRecord {
		return fmt.Errorf("book: the revocation of %s is %d bytes, over the %d-byte limit", r.Key, len(b), maxRevocationRecord)
	}
	if err := txn.Set([]byte(revocationKey(r.Key)), b); err != nil {
		return fmt.Errorf("book: storing the revocation of %s: %w", r.Key, err)
	}
	return nil
}

// compromised reports whether the book has recorded a compromised
// revocation of f.
func compromised(txn *badger.Txn, f address.Fingerprint) (bool, error) {
	rr, err := getRevRecord(txn, f)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return rr.Kind == "compromised", nil
}
