package host

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// maxKeyFile bounds the size of a node key file read by LoadOrCreateKey. A
// marshalled Ed25519 key is 68 bytes.
const maxKeyFile = 4096

// ErrKeyPermissions is wrapped by the error LoadOrCreateKey returns when the
// key file can be read or written by its group or by others.
var ErrKeyPermissions = errors.New("host: node key file is accessible by others")

// LoadOrCreateKey returns the Ed25519 node key stored at path, creating it on
// first use.
//
// The file holds the key in libp2p's crypto.MarshalPrivateKey format. A new
// key is written atomically (a temporary file in the same directory, synced,
// then linked into place, so a crash never leaves a partial key and two
// processes racing to create it end up sharing one key), with mode 0600; a
// missing directory is created with mode 0700. An existing file is refused if
// its group or others have any permission on it, if it is not a regular
// file, or if it holds anything but an Ed25519 key.
func LoadOrCreateKey(path string) (crypto.PrivKey, error) {
	k, err := loadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("host: generating node key: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("host: encoding node key: %w", err)
	}
	created, err := writeNew(path, b)
	if err != nil {
		return nil, err
	}
	if !created {
		// Someone else created the key between our read and our write:
		// theirs is the node's key.
		return loadKey(path)
	}
	return k, nil
}

// loadKey reads and checks the key file at path. A missing file gives an
// error wrapping fs.ErrNotExist.
func loadKey(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("host: reading node key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("host: reading node key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("host: node key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run `chmod 600 %s` (and consider the key exposed)",
			ErrKeyPermissions, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("host: reading node key: %w", err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("host: node key %s is over %d bytes: not a node key", path, maxKeyFile)
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("host: node key %s is corrupt: %w", path, err)
	}
	if k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("host: node key %s is %v, want Ed25519", path, k.Type())
	}
	return k, nil
}

// writeNew writes b to path atomically unless path exists. It reports
// whether it created the file.
func writeNew(path string, b []byte) (created bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("host: creating key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".node-key-*") // mode 0600
	if err != nil {
		return false, fmt.Errorf("host: writing node key: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name) // after Link the key lives on under path
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("host: writing node key: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return false, fmt.Errorf("host: writing node key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("host: writing node key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("host: writing node key: %w", err)
	}
	// Link, unlike Rename, never replaces a key that appeared meanwhile.
	if err := os.Link(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		// Some file systems have no hard links: fall back to rename.
		if err := os.Rename(name, path); err != nil {
			return false, fmt.Errorf("host: writing node key: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		// Make the new directory entry durable; not every system can.
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}
