package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Listen creates the control socket at path (normally
// <data dir>/SocketName) and returns its listener, for Server.Serve.
//
//   - The socket's mode, 0600, is the API's only access control, so the
//     directory must not be writable by other users (who could replace the
//     socket). The data directory of a node is 0700 anyway.
//   - A lock file, path+".lock", held while the listener is open, makes
//     two nodes on one data directory impossible: the second gets
//     ErrAlreadyRunning, as it does when a node that holds no lock (an
//     older version) answers on the socket.
//   - A socket left by a node that died is removed, but only when nobody
//     answers on it.
//   - The socket is bound under a temporary name, made 0600 and then
//     renamed into place, so it is never reachable with a wider mode.
//
// Closing the listener removes the socket and releases the lock.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("control: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("control: directory %s is writable by other users (mode %v); run `chmod 700 %s`", dir, fi.Mode().Perm(), dir)
	}
	tmp := path + "~"
	if max := maxSocketPath(); len(tmp) > max {
		return nil, fmt.Errorf("control: socket path %s is too long for a unix socket (at most %d bytes); use a data directory with a shorter path", path, max-1)
	}
	lock, err := lockFile(path + ".lock")
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("%w (%s is locked)", ErrAlreadyRunning, path+".lock")
	}
	if err != nil {
		return nil, fmt.Errorf("control: locking %s: %w", path+".lock", err)
	}
	l, err := listen(path, tmp)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &listener{UnixListener: l, path: path, lock: lock}, nil
}

func listen(path, tmp string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control: %s exists and is not a socket; move it away", path)
		}
		c, err := net.DialTimeout("unix", path, 2*time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%w (a node answers on %s)", ErrAlreadyRunning, path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control: checking the old socket %s: %w", path, err)
		}
		// Stale: its node is gone.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: removing the stale socket: %w", err)
		}
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("control: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control: %w", err)
	}
	return l, nil
}

// maxSocketPath is the room in sockaddr_un.sun_path, with its NUL.
func maxSocketPath() int {
	if runtime.GOOS == "linux" {
		return 107
	}
	return 103
}

type listener struct {
	*net.UnixListener
	path string
	lock *os.File

	once sync.Once
	err  error
}

// Addr returns the socket's path (the listener was bound under a
// temporary name).
func (l *listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close stops listening, removes the socket and releases the lock.
func (l *listener) Close() error {
	l.once.Do(func() {
		err := l.UnixListener.Close()
		if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		l.err = errors.Join(err, l.lock.Close())
	})
	return l.err
}
