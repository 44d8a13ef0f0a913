package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dsep-project/dsep/address"
)

// The data directory (docs/operator.md, "Data directory"):
//
//	dsep.json     what the directory holds (kind, address, fingerprint)
//	key.asc       the public key with the certifications it has gathered
//	key.sec       the secret key, sealed with the passphrase
//	storage.key   the key of the local stores, sealed with the passphrase
//	history/      keys replaced by rotation: <fpr>.asc and <fpr>.sec
//	certified/    (domains) every key the domain certified, <fpr>.asc
//	book/         the address book (badger, encrypted with storage.key)
//
// The directory is 0700 and every file in it 0600: nothing in it is for
// other users to read.
const (
	metaFile       = "dsep.json"
	publicKeyFile  = "key.asc"
	secretKeyFile  = "key.sec"
	storageKeyFile = "storage.key"
	historyDir     = "history"
	certifiedDir   = "certified"
	bookDir        = "book"
)

// Kinds of data directory.
const (
	kindUser   = "user"
	kindDomain = "domain"
)

type meta struct {
	Kind        string              `json:"kind"`
	Email       string              `json:"email,omitempty"`
	Domain      string              `json:"domain,omitempty"`
	Fingerprint address.Fingerprint `json:"fingerprint"`
	Created     time.Time           `json:"created"`
	Protected   bool                `json:"passphrase_protected"`
}

type dataDir struct {
	path string
	meta meta
}

func (d *dataDir) file(name ...string) string {
	return filepath.Join(append([]string{d.path}, name...)...)
}

// openDataDir loads an initialised data directory.
func (a *app) openDataDir() (*dataDir, error) {
	d := &dataDir{path: a.dataDir()}
	b, err := readSmallFile(d.file(metaFile), 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fail("create one with `dsep init --email ADDRESS` (or `dsep domain init --domain DOMAIN`), or point --data at an existing one",
			"no DSEP identity in %s", d.path)
	}
	if err != nil {
		return nil, fail("check the permissions of the data directory", "reading %s: %v", d.file(metaFile), err)
	}
	if err := json.Unmarshal(b, &d.meta); err != nil {
		return nil, fail("the file is damaged; restore it from a backup", "%s: %v", d.file(metaFile), err)
	}
	if err := checkPrivate(d.path); err != nil {
		return nil, err
	}
	return d, nil
}

// checkPrivate refuses a data directory others can read.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fail(fmt.Sprintf("run `chmod 700 %s`", path), "data directory %s is accessible to other users (mode %v)", path, fi.Mode().Perm())
	}
	return nil
}

// createDataDir makes a new, empty, private data directory.
func (a *app) createDataDir() (*dataDir, error) {
	d := &dataDir{path: a.dataDir()}
	if _, err := os.Stat(d.file(metaFile)); err == nil {
		return nil, fail("use another --data directory, or `dsep key show` to see the identity there", "%s already holds a DSEP identity", d.path)
	}
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return nil, fail("choose a writable --data directory", "creating %s: %v", d.path, err)
	}
	if err := os.Chmod(d.path, 0o700); err != nil {
		return nil, err
	}
	return d, nil
}

// publicKey reads the public key.
func (d *dataDir) publicKey() (*address.Key, error) {
	f, err := os.Open(d.file(publicKeyFile))
	if err != nil {
		return nil, fail("the data directory is incomplete; restore it from a backup", "%v", err)
	}
	defer f.Close()
	k, err := address.ReadKey(f)
	if err != nil {
		return nil, fail("the data directory is damaged; restore it from a backup", "%s: %v", d.file(publicKeyFile), err)
	}
	if k.Fingerprint() != d.meta.Fingerprint {
		return nil, fail("the data directory is damaged; restore it from a backup", "%s holds key %s, but %s says %s", publicKeyFile, k.Fingerprint(), metaFile, d.meta.Fingerprint)
	}
	return k, nil
}

// unlock opens the secret key with the passphrase (asked for if needed).
func (a *app) unlock(d *dataDir) (*address.Key, []byte, error) {
	pub, err := d.publicKey()
	if err != nil {
		return nil, nil, err
	}
	sealed, err := readSmallFile(d.file(secretKeyFile), 1<<20)
	if err != nil {
		return nil, nil, fail("this data directory has no secret key (was it copied without key.sec?)", "reading the secret key: %v", err)
	}
	var pass []byte
	if address.IsSealedWithPassphrase(sealed) {
		if pass, err = a.passphrase("Passphrase for "+d.meta.label()+": ", false); err != nil {
			return nil, nil, err
		}
	}
	k, err := address.OpenSecret(sealed, pass, pub)
	if errors.Is(err, address.ErrWrongPassphrase) {
		return nil, nil, fail("check $DSEP_PASSPHRASE or retype it", "wrong passphrase for %s", d.path)
	}
	if err != nil {
		return nil, nil, fail("the secret key file is damaged; restore it from a backup", "%v", err)
	}
	return k, pass, nil
}

func (m meta) label() string {
	if m.Kind == kindDomain {
		return "domain " + m.Domain
	}
	return m.Email
}

// storageKey opens (creating if absent) the key of the local stores.
func (d *dataDir) storageKey(pass []byte) ([]byte, error) {
	path := d.file(storageKeyFile)
	sealed, err := readSmallFile(path, 4096)
	if errors.Is(err, fs.ErrNotExist) {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		s, err := address.Seal(address.SealMagicStorageKey, k, pass)
		if err != nil {
			return nil, err
		}
		return k, writeFileAtomic(path, s)
	}
	if err != nil {
		return nil, err
	}
	k, err := address.Open(address.SealMagicStorageKey, sealed, pass)
	if errors.Is(err, address.ErrWrongPassphrase) {
		return nil, fail("check $DSEP_PASSPHRASE or retype it", "wrong passphrase for the stores of %s", d.path)
	}
	if err != nil {
		return nil, err
	}
	if len(k) != 32 {
		return nil, fail("the file is damaged; restore it from a backup", "%s does not hold a 32-byte key", path)
	}
	return k, nil
}

// saveIdentity writes the public key, the sealed secret and the meta file.
func (d *dataDir) saveIdentity(k *address.Key, pass []byte) error {
	sealed, err := k.SealSecret(pass)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.file(secretKeyFile), sealed); err != nil {
		return err
	}
	if err := d.savePublic(k); err != nil {
		return err
	}
	d.meta.Fingerprint = k.Fingerprint()
	d.meta.Protected = len(pass) > 0
	mb, _ := json.MarshalIndent(d.meta, "", "  ")
	return writeFileAtomic(d.file(metaFile), append(mb, '\n'))
}

func (d *dataDir) savePublic(k *address.Key) error {
	return writeFileAtomic(d.file(publicKeyFile), k.PublicOnly().Armored())
}

// archive moves the current key files to history/ (after rotation).
func (d *dataDir) archive(old *address.Key, pass []byte) error {
	if err := os.MkdirAll(d.file(historyDir), 0o700); err != nil {
		return err
	}
	fpr := old.Fingerprint().String()
	sealed, err := old.SealSecret(pass)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.file(historyDir, fpr+".sec"), sealed); err != nil {
		return err
	}
	return writeFileAtomic(d.file(historyDir, fpr+".asc"), old.PublicOnly().Armored())
}

// unlockHistory opens a previous key's secret with the passphrase.
func (d *dataDir) unlockHistory(f address.Fingerprint, pass []byte) (*address.Key, error) {
	pubb, err := readSmallFile(d.file(historyDir, f.String()+".asc"), address.MaxKeyBytes)
	if err != nil {
		return nil, fail("`dsep key show` lists your previous keys", "%s is neither your key nor one of your previous keys", f)
	}
	pub, err := address.ReadKey(bytes.NewReader(pubb))
	if err != nil {
		return nil, err
	}
	sealed, err := readSmallFile(d.file(historyDir, f.String()+".sec"), 1<<20)
	if err != nil {
		return nil, fail("the secret of that previous key is not in history/", "%v", err)
	}
	k, err := address.OpenSecret(sealed, pass, pub)
	if err != nil {
		return nil, fail("the history file is damaged, or was sealed with another passphrase", "opening previous key %s: %v", f, err)
	}
	return k, nil
}

// history returns the public keys this identity replaced, newest first.
func (d *dataDir) history() ([]*address.Key, error) {
	ents, err := os.ReadDir(d.file(historyDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []*address.Key
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".asc" {
			continue
		}
		b, err := readSmallFile(d.file(historyDir, e.Name()), address.MaxKeyBytes)
		if err != nil {
			return nil, err
		}
		k, err := address.ReadKey(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		keys = append(keys, k)
	}
	// Newest first.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j].Created().After(keys[j-1].Created()); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys, nil
}

// writeFileAtomic writes data to path with mode 0600: a temporary file in
// the same directory, synced, then renamed over path, then the directory
// synced, so a crash leaves the old or the new file, never half of one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if df, err := os.Open(dir); err == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// readSmallFile reads a file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	b := make([]byte, fi.Size())
	_, err = io.ReadFull(f, b)
	return b, err
}
