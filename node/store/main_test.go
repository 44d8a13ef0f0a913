package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/testnet/testtool"
)

// TestMain fails the package if goroutines (committer, GC, badger's) outlive
// the tests.
func TestMain(m *testing.M) { testtool.Main(m, 0, 5*time.Second) }

var testKey = bytes.Repeat([]byte{0x42}, 32)

// open opens a store in a new temporary directory (or dir, if given) with
// the test key, closed at the end of the test.
func open(t testing.TB, opt Options) *Store {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	if opt.Key == nil && !opt.InsecurePlaintext {
		opt.Key = testKey
	}
	s, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// testID is a made-up message ID for a sent copy.
func testID(n int) envelope.ID {
	return sha256.Sum256(binary.BigEndian.AppendUint64([]byte("test-id\x00"), uint64(n)))
}

// inbound is an envelope with payload p.
func inbound(p string) Inbound {
	return Inbound{
		ID:       envelope.IDOf([]byte(p)),
		Kind:     uint8(envelope.KindStamp),
		Proof:    []byte("1:20:260101:0123:ext:rand:1"),
		Payload:  []byte(p),
		FromPeer: "12D3KooWtest",
		Received: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}
