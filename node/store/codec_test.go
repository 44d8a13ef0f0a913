package store

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func sampleMetas() []Meta {
	return []Meta{
		{ID: testID(1)},
		{
			ID: testID(2), From: "Alice <alice@example.org>", To: []string{"bob@example.org", ""}, Cc: []string{"c@d"},
			Subject: "héllo", Date: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", 5*3600+1800)),
			MessageID: "<x@y>", Received: time.Date(2026, 1, 2, 3, 4, 6, 7, time.UTC), Size: 1234,
			Flags:        []string{`\Seen`, "$Label"},
			Verification: Verification{Status: "verified", Signer: "0123456789abcdef0123456789abcdef01234567", Detail: "ok"},
			Direction:    DirectionIn,
		},
		{ID: testID(3), Date: time.Unix(0, 0).UTC(), Received: time.Unix(0, 0).UTC(), Direction: DirectionOut},
		{
			ID: testID(4), From: "a@b", Sender: "Sec <sec@b>", ReplyTo: []string{"r@b", "s@b"}, Bcc: []string{"hidden@c"},
			InReplyTo: []string{"1@x", "2@y"}, CopyOf: testID(5), Direction: DirectionLocal,
		},
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for i, m := range sampleMetas() {
		got, err := decodeMeta(encodeMeta(&m))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if !metaEqual(got, m) {
			t.Errorf("%d: got %+v\nwant %+v", i, got, m)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := encodeMeta(&sampleMetas()[1])
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty (no ID)", nil},
		{"truncated", valid[:len(valid)-1]},
		{"short ID", protowire.AppendBytes(protowire.AppendTag(nil, fmID, protowire.BytesType), []byte("short"))},
		{"wrong wire type", protowire.AppendVarint(protowire.AppendTag(valid, fmSubject, protowire.VarintType), 1)},
		{"group", protowire.AppendTag(valid, 99, protowire.StartGroupType)},
		{"date out of range", protowire.AppendVarint(protowire.AppendTag(valid, fmDateUnix, protowire.VarintType), protowire.EncodeZigZag(maxUnix+1))},
		{"oversized", append(valid, make([]byte, MaxMetaSize)...)},
	} {
		if _, err := decodeMeta(tc.b); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// Unknown fields are skipped.
	extra := protowire.AppendVarint(protowire.AppendTag(bytes.Clone(valid), 1000, protowire.VarintType), 7)
	if _, err := decodeMeta(extra); err != nil {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := decodeFolder(encodeFolder(&folder{Num: 1, UIDValidity: 1, UIDNext: 1, Messages: 1, Unseen: 2})); !errors.Is(err, ErrDamaged) {
		t.Errorf("inconsistent folder: %v", err)
	}
}

// FuzzDecodeMeta: the decoder never panics, and what it accepts
// round-trips: decode → encode → decode gives the same Meta and bytes.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range sampleMetas() {
		f.Add(encodeMeta(&m))
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x20})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		enc := encodeMeta(&m)
		m2, err := decodeMeta(enc)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !metaEqual(m, m2) {
			t.Fatalf("round trip: %+v\n!= %+v", m, m2)
		}
		if !bytes.Equal(encodeMeta(&m2), enc) {
			t.Fatal("encoding is not stable")
		}
	})
}

// FuzzDecodeRecords does the same for the spool, folder and tombstone
// records and the message index.
func FuzzDecodeRecords(f *testing.F) {
	f.Add(encodePending(&pending{Kind: 1, Proof: []byte("1:20:x"), FromPeer: "12D3", Received: time.Unix(1e9, 5)}))
	f.Add(encodeFolder(&folder{Num: 3, UIDValidity: 1700000000, UIDNext: 42, Messages: 10, Unseen: 2}))
	f.Add(encodeTombstone(&tombstone{Why: whyRejected, When: time.Unix(1e9, 0), Reason: "bad"}))
	f.Add(encodeLoc(loc{1, 2}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodePending(b); err == nil {
			p2, err := decodePending(encodePending(&p))
			if err != nil || p2.Kind != p.Kind || !bytes.Equal(p2.Proof, p.Proof) || p2.FromPeer != p.FromPeer || !p2.Received.Equal(p.Received) {
				t.Fatalf("pending round trip: %+v %+v %v", p, p2, err)
			}
		}
		if fo, err := decodeFolder(b); err == nil {
			if f2, err := decodeFolder(encodeFolder(&fo)); err != nil || f2 != fo {
				t.Fatalf("folder round trip: %+v %+v %v", fo, f2, err)
			}
		}
		if ts, err := decodeTombstone(b); err == nil {
			t2, err := decodeTombstone(encodeTombstone(&ts))
			if err != nil || t2.Why != ts.Why || t2.Reason != ts.Reason || !t2.When.Equal(ts.When) {
				t.Fatalf("tombstone round trip: %+v %+v %v", ts, t2, err)
			}
		}
		if l, err := decodeLoc(b); err == nil {
			if l2, err := decodeLoc(encodeLoc(l)); err != nil || l2 != l {
				t.Fatalf("loc round trip: %+v %+v %v", l, l2, err)
			}
		}
	})
}
