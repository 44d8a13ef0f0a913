//go:build !unix

package control

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// lockFile opens path; without flock the socket check alone keeps a
// second node away.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
