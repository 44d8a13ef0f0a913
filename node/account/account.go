// Package account is the local mail-client account of a DSEP node: the
// password a mail client uses for the node's IMAP and SMTP submission
// servers on 127.0.0.1. It is not the passphrase that protects the keys:
// a client stores it, so it must unlock nothing but the mailbox's local
// protocols.
//
// The password is generated (never chosen by the user, so it is strong
// and unique), shown once, and kept only as an argon2id hash in the data
// directory's client.pass (docs/operator.md). Checks compare in constant
// time and are slowed down after a failure, so guessing over the local
// ports is not worth trying.
package account

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// Parameters of the hash: argon2id with 19 MiB, 2 passes (RFC 9106's
// second recommended option, scaled to a client logging in often).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
	// MaxPasswordLen bounds what Verify hashes.
	MaxPasswordLen = 1024
	// hashPrefix versions the stored form.
	hashPrefix = "dsep-client-1$argon2id$"
)

// Errors.
var (
	ErrBadPassword = errors.New("account: wrong username or password")
	ErrMalformed   = errors.New("account: malformed password hash")
)

// Generate returns a new random password: 20 characters of base32 in
// groups of five (100 bits), easy to copy into a mail client.
func Generate() (string, error) {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20]
	return s[:5] + "-" + s[5:10] + "-" + s[10:15] + "-" + s[15:20], nil
}

// Hash returns the stored form of password.
func Hash(password string) (string, error) {
	if len(password) == 0 || len(password) > MaxPasswordLen {
		return "", fmt.Errorf("account: password of %d bytes", len(password))
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", hashPrefix, argonMemory, argonTime, argonThreads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

type parsed struct {
	mem, time uint32
	threads   uint8
	salt, key []byte
}

func parse(h string) (parsed, error) {
	var p parsed
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), hashPrefix)
	if !ok {
		return p, ErrMalformed
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return p, ErrMalformed
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[0], "m=%d,t=%d,p=%d", &p.mem, &p.time, &threads); err != nil {
		return p, ErrMalformed
	}
	// Bounds: a damaged or planted file must not make a check cost a GiB.
	if p.mem < 8*1024 || p.mem > 256*1024 || p.time < 1 || p.time > 10 || threads < 1 || threads > 16 {
		return p, ErrMalformed
	}
	p.threads = uint8(threads)
	enc := base64.RawStdEncoding
	var err error
	if p.salt, err = enc.DecodeString(parts[1]); err != nil || len(p.salt) < 8 || len(p.salt) > 64 {
		return p, ErrMalformed
	}
	if p.key, err = enc.DecodeString(parts[2]); err != nil || len(p.key) != argonKeyLen {
		return p, ErrMalformed
	}
	return p, nil
}

// Check reports whether password matches the stored hash, comparing in
// constant time.
func Check(hash, password string) (bool, error) {
	p, err := parse(hash)
	if err != nil {
		return false, err
	}
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.mem, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// Checker verifies logins against one account and slows guessing down: a
// failed check answers only after a penalty (one second, doubling per
// consecutive failure up to a minute), and checks run one at a time, so
// other connections wait too. A success resets the penalty. Safe for
// concurrent use.
type Checker struct {
	// Usernames are the accepted usernames (the identity's addresses),
	// compared ignoring ASCII case.
	Usernames []string
	// Now and Sleep are the clock (tests); defaults time.Now, time.Sleep.
	Now   func() time.Time
	Sleep func(time.Duration)

	mu       sync.Mutex // serialises checks; guards the fields below
	failures int
	until    time.Time
}

// Check returns nil for a good username and a password matching hash (the
// stored form, read by the caller each time so a reset takes effect at
// once), ErrBadPassword otherwise — the same error for a bad username, so
// usernames cannot be probed.
func (c *Checker) Check(hash, username, password string) error {
	now, sleep := time.Now, time.Sleep
	if c.Now != nil {
		now = c.Now
	}
	if c.Sleep != nil {
		sleep = c.Sleep
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.until.Sub(now()); d > 0 {
		sleep(d)
	}
	userOK := false
	for _, u := range c.Usernames {
		if strings.EqualFold(u, username) {
			userOK = true
		}
	}
	p, err := parse(hash)
	if err != nil {
		return err
	}
	var key []byte
	if len(password) <= MaxPasswordLen {
		key = argon2.IDKey([]byte(password), p.salt, p.time, p.mem, p.threads, uint32(len(p.key)))
	}
	if userOK && key != nil && subtle.ConstantTimeCompare(key, p.key) == 1 {
		c.failures = 0
		c.until = time.Time{}
		return nil
	}
	c.failures++
	penalty := time.Second << min(c.failures-1, 6)
	if penalty > time.Minute {
		penalty = time.Minute
	}
	c.until = now().Add(penalty)
	// The failing login itself waits, holding the lock: a guesser gets
	// one answer per penalty, however many connections it opens.
	sleep(penalty)
	return ErrBadPassword
}
