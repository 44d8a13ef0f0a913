package message

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
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

// The test vector of docs/protocol.md §11.2: a payload from Alice to Bob,
// made deterministically, in testdata/payload.vector, with Alice's public
// key and Bob's secret key (unprotected: a test key) beside it. Run
// go test -update to rewrite them.

// vectorMail is the mail of the vector.
var vectorMail = []byte("From: Alice <alice@example.org>\r\n" +
	"To: Bob <bob@example.org>\r\n" +
	"Subject: DSEP payload test vector\r\n" +
	"Date: Sun, 01 Nov 2026 10:00:00 +0000\r\n" +
	"Message-Id: <vector@example.org>\r\n" +
	"\r\n" +
	"Hello Bob,\r\n" +
	"\r\n" +
	"this mail is signed, then encrypted to you alone.\r\n")

// vectorPayload seals vectorMail under a fixed global random source; t
// must not be parallel.
func vectorPayload(t *testing.T, c cast) []byte {
	t.Helper()
	cryptotest.SetGlobalRandom(t, 11)
	return seal(t, vectorMail, c.alice, c.bob, checkNow)
}

// payloadVector is testdata/payload.vector: "field: value" lines, then
// hex blocks each introduced by "name:" alone on its line.
type payloadVector struct {
	fields map[string]string
	blocks map[string][]byte
}

func formatVector(fields [][2]string, blocks [][2]any) []byte {
	var b bytes.Buffer
	b.WriteString("# DSEP payload test vector (docs/protocol.md §11.2).\n")
	b.WriteString("# bob.sec.asc (an unprotected test key) decrypts the payload at \"now\";\n")
	b.WriteString("# the signature verifies with alice.pub.asc. Blocks are hex, 64 digits a line.\n")
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
	}
	for _, bl := range blocks {
		fmt.Fprintf(&b, "%s:\n", bl[0])
		h := hex.EncodeToString(bl[1].([]byte))
		for len(h) > 0 {
			n := min(64, len(h))
			b.WriteString(h[:n] + "\n")
			h = h[n:]
		}
	}
	return b.Bytes()
}

func parsePayloadVector(t *testing.T, data []byte) payloadVector {
	t.Helper()
	v := payloadVector{fields: map[string]string{}, blocks: map[string][]byte{}}
	var block string
	var h strings.Builder
	flush := func() {
		if block == "" {
			return
		}
		b, err := hex.DecodeString(h.String())
		if err != nil {
			t.Fatalf("block %s: %v", block, err)
		}
		v.blocks[block] = b
		h.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") || line == "":
		case strings.HasSuffix(line, ":"):
			flush()
			block = strings.TrimSuffix(line, ":")
		case block != "":
			h.WriteString(line)
		default:
			k, val, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("bad vector line %q", line)
			}
			v.fields[k] = val
		}
	}
	flush()
	return v
}

func TestVector(t *testing.T) {
	c := newCast(t)
	payload := vectorPayload(t, c)
	if again := vectorPayload(t, c); !bytes.Equal(payload, again) {
		t.Fatal("Seal under a fixed random source is not deterministic")
	}
	bobSec, err := c.bob.own.ExportSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	l := newLookup(c.alice)
	o, err := Open(context.Background(), payload, OpenOptions{Own: c.bob.own, Lookup: l.fn, Now: checkNow})
	if err != nil {
		t.Fatal(err)
	}
	vec := formatVector([][2]string{
		{"sender", c.alice.pub.Fingerprint().String()},
		{"recipient", c.bob.pub.Fingerprint().String()},
		{"now", checkNow.Format(time.RFC3339)},
		{"signed_at", o.SignedAt.UTC().Format(time.RFC3339)},
		{"message_id", envelope.IDOf(payload).String()},
	}, [][2]any{{"mail", o.Mail}, {"payload", payload}})
	golden(t, "alice.pub.asc", c.alice.pub.Armored())
	golden(t, "bob.sec.asc", bobSec)
	golden(t, "payload.vector", vec)
}

// TestVectorOpens opens the vector from the files alone, as a second
// implementation would.
func TestVectorOpens(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v := parsePayloadVector(t, read("payload.vector"))
	alice, err := address.ReadKey(bytes.NewReader(read("alice.pub.asc")))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := address.ReadKey(bytes.NewReader(read("bob.sec.asc")))
	if err != nil {
		t.Fatal(err)
	}
	now, err := time.Parse(time.RFC3339, v.fields["now"])
	if err != nil {
		t.Fatal(err)
	}
	payload := v.blocks["payload"]
	if id := envelope.IDOf(payload).String(); id != v.fields["message_id"] {
		t.Errorf("message ID %s, vector says %s", id, v.fields["message_id"])
	}
	l := func(ctx context.Context, f address.Fingerprint) (*address.Key, error) {
		if f != alice.Fingerprint() {
			return nil, fmt.Errorf("unexpected lookup of %s", f)
		}
		return alice, nil
	}
	o, err := Open(context.Background(), payload, OpenOptions{Own: bob, Lookup: l, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(o.Mail, v.blocks["mail"]) {
		t.Errorf("mail %q, vector says %q", o.Mail, v.blocks["mail"])
	}
	if o.Sender.String() != v.fields["sender"] || o.Recipient.String() != v.fields["recipient"] ||
		o.SignedAt.UTC().Format(time.RFC3339) != v.fields["signed_at"] {
		t.Errorf("opened sender %s recipient %s at %s; vector: %v", o.Sender, o.Recipient, o.SignedAt, v.fields)
	}
	// One changed bit in the encrypted data is refused.
	bad := bytes.Clone(payload)
	bad[len(bad)-30] ^= 1
	if _, err := Open(context.Background(), bad, OpenOptions{Own: bob, Lookup: l, Now: now}); err == nil {
		t.Error("a changed payload opens")
	}
}
