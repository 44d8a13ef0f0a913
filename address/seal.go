package address

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sealed-file format (docs/protocol.md, "Files at rest"):
//
//	magic (8 bytes) | kdf (1 byte) | kdf params | payload
//
// kdf 0: no passphrase; the payload is the plaintext (only on explicit
// request, e.g. --insecure-no-passphrase). kdf 1: argon2id with time (u32
// BE), memory KiB (u32 BE), threads (u8) and a 16-byte salt, then a 24-byte
// nonce; the payload is XChaCha20-Poly1305 of the plaintext under the
// derived 32-byte key, with every byte before the payload as associated data.
const (
	kdfNone      = 0
	kdfArgon2id  = 1
	maxSealed    = 1 << 20
	sealSaltSize = 16
)

// Argon2 parameters for sealing at rest (RFC 9106 §4, second recommended
// option: t=3, m=64 MiB).
var (
	argonTime    uint32 = 3
	argonMemory  uint32 = 64 << 10
	argonThreads uint8  = 4
)

// ErrWrongPassphrase is returned when a sealed file cannot be opened.
var ErrWrongPassphrase = errors.New("address: wrong passphrase (or the file is damaged)")

// SealMagic* name the kinds of sealed file.
const (
	SealMagicSecretKey  = "DSEPSEC1" // OpenPGP secret key packets
	SealMagicStorageKey = "DSEPSTK1" // the 32-byte key of the node's stores
)

// Seal protects plain under passphrase (argon2id, XChaCha20-Poly1305); an
// empty passphrase stores it unprotected. magic is 8 bytes naming the
// content, so one kind of file cannot be passed off as another.
func Seal(magic string, plain, passphrase []byte) ([]byte, error) {
	if len(magic) != 8 {
		return nil, errors.New("address: seal magic must be 8 bytes")
	}
	var out bytes.Buffer
	out.WriteString(magic)
	if len(passphrase) == 0 {
		out.WriteByte(kdfNone)
		out.Write(plain)
		return out.Bytes(), nil
	}
	out.WriteByte(kdfArgon2id)
	var hdr [9]byte
	binary.BigEndian.PutUint32(hdr[0:], argonTime)
	binary.BigEndian.PutUint32(hdr[4:], argonMemory)
	hdr[8] = argonThreads
	out.Write(hdr[:])
	salt := make([]byte, sealSaltSize)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out.Write(salt)
	out.Write(nonce)
	key := argon2.IDKey(passphrase, salt, argonTime, argonMemory, argonThreads, chacha20poly1305.KeySize)
	defer wipe(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	ad := bytes.Clone(out.Bytes())
	return aead.Seal(out.Bytes(), nonce, plain, ad), nil
}

// IsSealedWithPassphrase reports whether sealed needs a passphrase to open.
func IsSealedWithPassphrase(sealed []byte) bool {
	return len(sealed) > 8 && sealed[8] != kdfNone
}

// Open reverses Seal. The returned plaintext should be wiped by the caller
// when it is no longer needed.
func Open(magic string, sealed, passphrase []byte) ([]byte, error) {
	if len(sealed) > maxSealed {
		return nil, fmt.Errorf("%w: sealed file over %d bytes", ErrTooLarge, maxSealed)
	}
	if len(sealed) < len(magic)+1 || string(sealed[:len(magic)]) != magic {
		return nil, fmt.Errorf("address: not a %s file", magic)
	}
	rest := sealed[len(magic)+1:]
	switch sealed[len(magic)] {
	case kdfNone:
		return bytes.Clone(rest), nil
	case kdfArgon2id:
	default:
		return nil, fmt.Errorf("address: sealed file uses unknown protection %d", sealed[len(magic)])
	}
	const fixed = 9 + sealSaltSize + chacha20poly1305.NonceSizeX
	if len(rest) < fixed+chacha20poly1305.Overhead {
		return nil, errors.New("address: sealed file is truncated")
	}
	t := binary.BigEndian.Uint32(rest[0:])
	m := binary.BigEndian.Uint32(rest[4:])
	p := rest[8]
	if t == 0 || t > 16 || p == 0 || m < 8*uint32(p) || m > 1<<20 {
		return nil, errors.New("address: sealed file has unreasonable argon2 parameters")
	}
	salt := rest[9 : 9+sealSaltSize]
	nonce := rest[9+sealSaltSize : fixed]
	key := argon2.IDKey(passphrase, salt, t, m, p, chacha20poly1305.KeySize)
	defer wipe(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, rest[fixed:], sealed[:len(magic)+1+fixed])
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	return plain, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
