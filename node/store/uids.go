package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/node/envelope"
)

// Operations on the messages of a folder by UID, for IMAP. Each takes the
// folder's name and its UIDVALIDITY as the caller knows it (0: any): a
// folder deleted and created again under the same name, or renamed away,
// gives ErrNoFolder rather than another folder's messages. UIDs that are
// not (or no longer) in the folder are skipped, not an error: another
// session may have expunged them. Large sets are changed in several
// durable steps of at most uidChunk messages; each message's change is
// atomic, and a failure leaves the steps before it done.

// uidChunk bounds the messages one durable step of a UID operation changes.
const uidChunk = 128

// copyChunkBytes bounds the bodies and payloads CopyUIDs reads ahead for
// one durable step.
const copyChunkBytes = 16 << 20

// FlagDeleted is the IMAP \Deleted flag: Expunge removes the messages that
// have it.
const FlagDeleted = `\Deleted`

// FlagOp says how UpdateFlags changes flags.
type FlagOp uint8

// Flag operations (IMAP STORE FLAGS, +FLAGS, -FLAGS).
const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// MessageFlags is a message's UID and flags as stored.
type MessageFlags struct {
	UID   uint32
	Flags []string
}

// UIDMap pairs a message's UID in the source folder with the UID of its
// copy (or of itself, moved) in the destination.
type UIDMap struct{ From, To uint32 }

// normUIDs returns uids sorted, without duplicates and zeros.
func normUIDs(uids []uint32) []uint32 {
	u := slices.Clone(uids)
	slices.Sort(u)
	u = slices.Compact(u)
	if len(u) > 0 && u[0] == 0 {
		u = u[1:]
	}
	return u
}

// openFolder loads folder name and checks its UIDVALIDITY (0: any).
func openFolder(txn *badger.Txn, name string, uidValidity uint32) (folder, error) {
	f, err := getFolder(txn, name)
	if err != nil {
		return folder{}, err
	}
	if uidValidity != 0 && f.UIDValidity != uidValidity {
		return folder{}, fmt.Errorf("%w: %q was deleted and created again (UIDVALIDITY %d, not %d)", ErrNoFolder, name, f.UIDValidity, uidValidity)
	}
	return f, nil
}

// getMeta reads the metadata under key k (of folder name): ok is false if
// there is none (never there, moved, or deleted).
func getMeta(txn *badger.Txn, k []byte) (m Meta, ok bool, err error) {
	b, err := getLarge(txn, k, MaxMetaSize)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Meta{}, false, nil
	}
	if err != nil {
		return Meta{}, false, err
	}
	m, err = decodeMeta(b)
	return m, err == nil, err
}

func hasFlag(flags []string, flag string) bool {
	return slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, flag) })
}

// Snapshot returns folder name's description and the metadata of all its
// messages in UID order, read at one instant (what IMAP's SELECT needs
// to start following the folder with Subscribe).
func (s *Store) Snapshot(name string) (FolderInfo, []Meta, error) {
	name, err := CanonicalFolder(name)
	if err != nil {
		return FolderInfo{}, nil, err
	}
	var fi FolderInfo
	var out []Meta
	err = s.view(func(txn *badger.Txn) error {
		f, err := getFolder(txn, name)
		if err != nil {
			return err
		}
		fi = info(name, f)
		out, err = listMeta(txn, name, f, 0, 0)
		return err
	})
	if err != nil {
		return FolderInfo{}, nil, err
	}
	return fi, out, nil
}

// Messages returns the metadata of the messages uids of folder name, in
// UID order, skipping UIDs not in the folder. Like List it reads metadata
// records only.
func (s *Store) Messages(name string, uidValidity uint32, uids []uint32) ([]Meta, error) {
	name, err := CanonicalFolder(name)
	if err != nil {
		return nil, err
	}
	uids = normUIDs(uids)
	var out []Meta
	err = s.view(func(txn *badger.Txn) error {
		f, err := openFolder(txn, name, uidValidity)
		if err != nil {
			return err
		}
		prefix := metaPrefix(f.Num)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for _, uid := range uids {
			key := metaKey(loc{f.Num, uid})
			// A run of consecutive UIDs is read with Next, without seeking.
			if !it.Valid() || string(it.Item().Key()) != string(key) {
				it.Seek(key)
				if !it.Valid() {
					break
				}
			}
			item := it.Item()
			if string(item.Key()) != string(key) || item.ValueSize() == 0 {
				continue // absent or erased
			}
			if item.ValueSize() > MaxMetaSize {
				return fmt.Errorf("%w: metadata entry %x", ErrDamaged, key)
			}
			var m Meta
			if err := item.Value(func(v []byte) error {
				var err error
				m, err = decodeMeta(v)
				return err
			}); err != nil {
				return err
			}
			// The item is valid until Next only.
			it.Next()
			m.Folder, m.UID = name, uid
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// UpdateFlags changes the flags of the messages uids of folder name
// (replaces them, adds or removes flags, as op says) and returns each
// message's flags as stored, in UID order. Messages whose flags do not
// change are not written (and report no ChangeFlags).
func (s *Store) UpdateFlags(ctx context.Context, name string, uidValidity uint32, uids []uint32, op FlagOp, flags []string) ([]MessageFlags, error) {
	name, err := CanonicalFolder(name)
	if err != nil {
		return nil, err
	}
	if op > FlagsRemove {
		return nil, fmt.Errorf("%w: flag operation %d", ErrInvalid, op)
	}
	if flags, err = NormalizeFlags(flags); err != nil {
		return nil, err
	}
	change := func(old []string) ([]string, error) {
		switch op {
		case FlagsAdd:
			return NormalizeFlags(slices.Concat(old, flags))
		case FlagsRemove:
			return slices.DeleteFunc(slices.Clone(old), func(f string) bool { return hasFlag(flags, f) }), nil
		}
		return flags, nil
	}
	uids = normUIDs(uids)
	var out []MessageFlags
	for len(uids) > 0 {
		chunk := uids[:min(len(uids), uidChunk)]
		uids = uids[len(chunk):]
		var res []MessageFlags
		err := s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
			res = res[:0]
			f, err := openFolder(txn, name, uidValidity)
			if err != nil {
				return err
			}
			changed := false
			for _, uid := range chunk {
				k := metaKey(loc{f.Num, uid})
				m, ok, err := getMeta(txn, k)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				nf, err := change(m.Flags)
				if err != nil {
					return err
				}
				if !slices.Equal(nf, m.Flags) {
					countOut(&f, m.Flags)
					countIn(&f, nf)
					m.Flags = nf
					enc := encodeMeta(&m)
					if len(enc) > MaxMetaSize {
						return fmt.Errorf("%w: metadata of %d bytes (limit %d)", ErrInvalid, len(enc), MaxMetaSize)
					}
					if err := txn.Set(k, enc); err != nil {
						return fmt.Errorf("store: changing flags: %w", err)
					}
					emit(Change{Kind: ChangeFlags, Folder: name, UIDValidity: f.UIDValidity, UID: uid, ID: m.ID, Flags: nf})
					changed = true
				}
				res = append(res, MessageFlags{UID: uid, Flags: nf})
			}
			if changed {
				return putFolder(txn, name, &f)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// Expunge deletes the messages of folder name that have the \Deleted
// flag, among uids (nil: all of the folder's), as Delete does, and returns
// their UIDs. The flag is checked in the same transaction that deletes:
// a message whose \Deleted flag another session removed first stays.
func (s *Store) Expunge(ctx context.Context, name string, uidValidity uint32, uids []uint32) ([]uint32, error) {
	name, err := CanonicalFolder(name)
	if err != nil {
		return nil, err
	}
	// Find the candidates without holding up the committer.
	var metas []Meta
	if uids == nil {
		var fi FolderInfo
		fi, metas, err = s.Snapshot(name)
		if err == nil && uidValidity != 0 && fi.UIDValidity != uidValidity {
			err = fmt.Errorf("%w: %q was deleted and created again (UIDVALIDITY %d, not %d)", ErrNoFolder, name, fi.UIDValidity, uidValidity)
		}
	} else {
		metas, err = s.Messages(name, uidValidity, uids)
	}
	if err != nil {
		return nil, err
	}
	var cand []uint32
	for _, m := range metas {
		if hasFlag(m.Flags, FlagDeleted) {
			cand = append(cand, m.UID)
		}
	}
	now := time.Now()
	var out []uint32
	for len(cand) > 0 {
		chunk := cand[:min(len(cand), uidChunk)]
		cand = cand[len(chunk):]
		var res []uint32
		err := s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
			res = res[:0]
			f, err := openFolder(txn, name, uidValidity)
			if err != nil {
				return err
			}
			for _, uid := range chunk {
				k := metaKey(loc{f.Num, uid})
				m, ok, err := getMeta(txn, k)
				if err != nil {
					return err
				}
				if !ok || !hasFlag(m.Flags, FlagDeleted) {
					continue
				}
				if err := deleteMessage(txn, m.ID, k, now); err != nil {
					return err
				}
				countOut(&f, m.Flags)
				emit(Change{Kind: ChangeRemoved, Folder: name, UIDValidity: f.UIDValidity, UID: uid, ID: m.ID})
				res = append(res, uid)
			}
			if len(res) == 0 {
				return nil
			}
			return putFolder(txn, name, &f)
		})
		if err != nil {
			return out, err
		}
		out = append(out, res...)
	}
	return out, nil
}

// MoveUIDs moves the messages uids of folder name to folder dest, each
// under a new UID there (also when dest is name), keeping its ID, flags
// and body, and returns dest's description and the UIDs given, in the
// order of the source UIDs.
func (s *Store) MoveUIDs(ctx context.Context, name string, uidValidity uint32, uids []uint32, dest string) (FolderInfo, []UIDMap, error) {
	name, err := CanonicalFolder(name)
	if err != nil {
		return FolderInfo{}, nil, err
	}
	if dest, err = CanonicalFolder(dest); err != nil {
		return FolderInfo{}, nil, err
	}
	di, err := s.Folder(dest)
	if err != nil {
		return FolderInfo{}, nil, err
	}
	uids = normUIDs(uids)
	var out []UIDMap
	for len(uids) > 0 {
		chunk := uids[:min(len(uids), uidChunk)]
		uids = uids[len(chunk):]
		var res []UIDMap
		err := s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
			res = res[:0]
			src, err := openFolder(txn, name, uidValidity)
			if err != nil {
				return err
			}
			dst := &src
			if dest != name {
				d, err := openFolder(txn, dest, di.UIDValidity)
				if err != nil {
					return err
				}
				dst = &d
			}
			for _, uid := range chunk {
				k := metaKey(loc{src.Num, uid})
				m, ok, err := getMeta(txn, k)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				nl, err := allocUID(dst)
				if err != nil {
					return fmt.Errorf("%w: %q", err, dest)
				}
				if err := Erase(txn, k); err != nil {
					return fmt.Errorf("store: moving: %w", err)
				}
				countOut(&src, m.Flags)
				countIn(dst, m.Flags)
				if err := putMessage(txn, m, nl); err != nil {
					return err
				}
				emit(Change{Kind: ChangeRemoved, Folder: name, UIDValidity: src.UIDValidity, UID: uid, ID: m.ID})
				emit(Change{Kind: ChangeAdded, Folder: dest, UIDValidity: dst.UIDValidity, UID: nl.UID, ID: m.ID, Flags: m.Flags})
				res = append(res, UIDMap{From: uid, To: nl.UID})
			}
			if len(res) == 0 {
				return nil
			}
			if err := putFolder(txn, name, &src); err != nil {
				return err
			}
			if dst != &src {
				return putFolder(txn, dest, dst)
			}
			return nil
		})
		if err != nil {
			return di, out, err
		}
		out = append(out, res...)
	}
	di, err = s.Folder(dest)
	return di, out, err
}

// copyID is the ID of the copy of message orig filed in the folder of
// UIDVALIDITY uv under uid: unique, since a folder never gives a UID twice
// and no other folder has its UIDVALIDITY, and never a SHA-256 of a
// payload.
func copyID(orig envelope.ID, uv, uid uint32) envelope.ID {
	b := append([]byte("dsep-copy-v1\x00"), orig[:]...)
	b = binary.BigEndian.AppendUint32(b, uv)
	b = binary.BigEndian.AppendUint32(b, uid)
	return sha256.Sum256(b)
}

// copySrc is a message CopyUIDs read ahead.
type copySrc struct {
	m         Meta
	body, raw []byte
}

// CopyUIDs copies the messages uids of folder name into folder dest (which
// may be name) and returns dest's description and the UIDs of the copies,
// in the order of the source UIDs. A copy is a message of its own: a new
// ID (see copyID), CopyOf set to the ID of the message copied, the same
// flags, header metadata, body and payload (so Raw works on it too).
//
// Copying is all or nothing as IMAP's COPY wants: if a step fails, the
// copies already made are deleted again (best effort: if that fails too,
// they stay, and the error says so).
func (s *Store) CopyUIDs(ctx context.Context, name string, uidValidity uint32, uids []uint32, dest string) (FolderInfo, []UIDMap, error) {
	name, err := CanonicalFolder(name)
	if err != nil {
		return FolderInfo{}, nil, err
	}
	if dest, err = CanonicalFolder(dest); err != nil {
		return FolderInfo{}, nil, err
	}
	di, err := s.Folder(dest)
	if err != nil {
		return FolderInfo{}, nil, err
	}
	uids = normUIDs(uids)
	var out []UIDMap
	var made []envelope.ID
	for len(uids) > 0 {
		// Read a chunk ahead, outside the committer: bodies may be large.
		var srcs []copySrc
		n := 0
		err := s.view(func(txn *badger.Txn) error {
			f, err := openFolder(txn, name, uidValidity)
			if err != nil {
				return err
			}
			size := 0
			for n < len(uids) && len(srcs) < uidChunk && size < copyChunkBytes {
				uid := uids[n]
				n++
				m, ok, err := getMeta(txn, metaKey(loc{f.Num, uid}))
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				m.UID = uid
				body, err := getLarge(txn, idKey(prefixBody, m.ID), MaxBodySize)
				if errors.Is(err, badger.ErrKeyNotFound) {
					return fmt.Errorf("%w: message %s has no body", ErrDamaged, m.ID)
				}
				if err != nil {
					return err
				}
				raw, err := getLarge(txn, idKey(prefixRaw, m.ID), MaxPayloadSize)
				if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
				srcs = append(srcs, copySrc{m: m, body: body, raw: raw})
				size += len(body) + len(raw)
			}
			return nil
		})
		if err == nil && len(srcs) == 0 {
			uids = uids[n:]
			continue
		}
		if err == nil {
			uids = uids[n:]
			var res []UIDMap
			var ids []envelope.ID
			err = s.durable(ctx, func(txn *badger.Txn, emit func(Change)) error {
				res, ids = res[:0], ids[:0]
				src, err := openFolder(txn, name, uidValidity)
				if err != nil {
					return err
				}
				dst, err := openFolder(txn, dest, di.UIDValidity)
				if err != nil {
					return err
				}
				for _, c := range srcs {
					// Skip what was moved or deleted since it was read.
					if _, ok, err := getMeta(txn, metaKey(loc{src.Num, c.m.UID})); err != nil || !ok {
						if err != nil {
							return err
						}
						continue
					}
					nl, err := allocUID(&dst)
					if err != nil {
						return fmt.Errorf("%w: %q", err, dest)
					}
					m := c.m
					m.UID, m.Folder = nl.UID, dest
					m.ID, m.CopyOf = copyID(c.m.ID, dst.UIDValidity, nl.UID), c.m.ID
					if err := putMessage(txn, m, nl); err != nil {
						return err
					}
					if err := txn.Set(idKey(prefixBody, m.ID), c.body); err != nil {
						return fmt.Errorf("store: copying: %w", err)
					}
					if c.raw != nil {
						if err := txn.Set(idKey(prefixRaw, m.ID), c.raw); err != nil {
							return fmt.Errorf("store: copying: %w", err)
						}
					}
					countIn(&dst, m.Flags)
					emit(Change{Kind: ChangeAdded, Folder: dest, UIDValidity: dst.UIDValidity, UID: nl.UID, ID: m.ID, Flags: m.Flags})
					res = append(res, UIDMap{From: c.m.UID, To: nl.UID})
					ids = append(ids, m.ID)
				}
				if len(res) == 0 {
					return nil
				}
				return putFolder(txn, dest, &dst)
			})
			if err == nil {
				out = append(out, res...)
				made = append(made, ids...)
				continue
			}
		}
		// Undo the copies made, even if ctx has ended.
		uctx := context.WithoutCancel(ctx)
		var undo []error
		for _, id := range made {
			if err := s.Delete(uctx, id); err != nil && !errors.Is(err, ErrNotFound) {
				undo = append(undo, err)
			}
		}
		if len(undo) > 0 {
			return di, nil, fmt.Errorf("%w (and %d of the %d copies made could not be deleted again: %w)", err, len(undo), len(made), errors.Join(undo...))
		}
		return di, nil, err
	}
	di, err = s.Folder(dest)
	return di, out, err
}
