package receipt

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/node/envelope"
)

// The test vectors of docs/protocol.md §11.4: a delivered and a rejected
// receipt from Bob for a message of Alice's, made deterministically, in
// testdata/receipt-<status>.vector, with Bob's public key in
// testdata/bob.pub.asc. Run go test -update to rewrite them.

// vectorReceipts returns the receipts of the vectors.
func vectorReceipts(alice, bob *address.Key) map[string]Receipt {
	id := envelope.IDOf([]byte("DSEP receipt test vector payload"))
	return map[string]Receipt{
		"delivered": {MessageID: id, Recipient: bob.Fingerprint(), Sender: alice.Fingerprint(), Received: checkNow, Status: StatusDelivered},
		"rejected":  {MessageID: id, Recipient: bob.Fingerprint(), Sender: alice.Fingerprint(), Received: checkNow, Status: StatusRejected, Reason: ReasonRevokedSender},
	}
}

func formatReceiptVector(r Receipt, now time.Time, wire []byte) []byte {
	var b bytes.Buffer
	b.WriteString("# DSEP receipt test vector (docs/protocol.md §11.4).\n")
	b.WriteString("# The value verifies at \"now\" with bob.pub.asc (the recipient's key).\n")
	fmt.Fprintf(&b, "message_id: %s\n", r.MessageID)
	fmt.Fprintf(&b, "recipient: %s\n", r.Recipient)
	fmt.Fprintf(&b, "sender: %s\n", r.Sender)
	fmt.Fprintf(&b, "received: %s\n", r.Received.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "status: %s\n", r.Status)
	if r.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", r.Reason)
	}
	fmt.Fprintf(&b, "now: %s\n", now.UTC().Format(time.RFC3339))
	b.WriteString("value:\n")
	h := hex.EncodeToString(wire)
	for len(h) > 0 {
		n := min(64, len(h))
		b.WriteString(h[:n] + "\n")
		h = h[n:]
	}
	return b.Bytes()
}

func TestVectors(t *testing.T) {
	alice, bob := newKey(t, "alice", 1), newKey(t, "bob", 2)
	golden(t, "bob.pub.asc", bob.PublicOnly().Armored())
	for name, r := range vectorReceipts(alice, bob) {
		t.Run(name, func(t *testing.T) {
			sign := func() []byte {
				// go-crypto salts every v4 signature from crypto/rand.
				cryptotest.SetGlobalRandom(t, 7)
				w, err := r.Sign(bob, checkNow)
				if err != nil {
					t.Fatal(err)
				}
				return w
			}
			w := sign()
			if again := sign(); !bytes.Equal(w, again) {
				t.Fatal("Sign under a fixed random source is not deterministic")
			}
			golden(t, "receipt-"+name+".vector", formatReceiptVector(r, checkNow, w))
		})
	}
}

// TestVectorsVerify checks each vector file from the files alone, as a
// second implementation would.
func TestVectorsVerify(t *testing.T) {
	keyData, err := os.ReadFile(filepath.Join("testdata", "bob.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := address.ReadKey(bytes.NewReader(keyData))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "receipt-*.vector"))
	if err != nil || len(files) != 2 {
		t.Fatalf("vector files %v, %v", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			fields, value := parseReceiptVector(t, data)
			now, err := time.Parse(time.RFC3339, fields["now"])
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(value)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(bob, now); err != nil {
				t.Fatal(err)
			}
			r := s.Receipt
			got := map[string]string{
				"message_id": r.MessageID.String(),
				"recipient":  r.Recipient.String(),
				"sender":     r.Sender.String(),
				"received":   r.Received.UTC().Format(time.RFC3339),
				"status":     r.Status.String(),
				"reason":     r.Reason,
			}
			for k, v := range got {
				if fields[k] != v {
					t.Errorf("%s: decoded %q, vector says %q", k, v, fields[k])
				}
			}
			// Any changed bit of the signature is refused.
			sigStart := len(value) - len(s.Signature)
			for i := sigStart; i < len(value); i++ {
				bad := bytes.Clone(value)
				bad[i] ^= 0x10
				if bs, err := Parse(bad); err == nil {
					if err := bs.Verify(bob, now); !errors.Is(err, ErrBadSignature) {
						t.Fatalf("signature byte %d changed: Verify = %v", i-sigStart, err)
					}
				}
			}
		})
	}
}

func parseReceiptVector(t *testing.T, data []byte) (map[string]string, []byte) {
	t.Helper()
	fields := map[string]string{}
	var h strings.Builder
	inValue := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") || line == "":
		case inValue:
			h.WriteString(line)
		case line == "value:":
			inValue = true
		default:
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("bad vector line %q", line)
			}
			fields[k] = v
		}
	}
	value, err := hex.DecodeString(h.String())
	if err != nil {
		t.Fatal(err)
	}
	return fields, value
}

// golden compares got with testdata/name, or rewrites the file under
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update if the change is intended)\n got:\n%s\nwant:\n%s", path, got, want)
	}
}
