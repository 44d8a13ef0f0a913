package stamp

import (
	"crypto/sha1"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// sum is SHA-1 built on block, padding included.
func sum(msg []byte) [20]byte {
	h := [5]uint32{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}
	n := len(msg)
	for len(msg) >= 64 {
		block(&h, (*[64]byte)(msg[:64]))
		msg = msg[64:]
	}
	var tail [128]byte
	copy(tail[:], msg)
	tail[len(msg)] = 0x80
	end := 64
	if len(msg) > 55 {
		end = 128
	}
	binary.BigEndian.PutUint64(tail[end-8:], uint64(n)*8)
	for off := 0; off < end; off += 64 {
		block(&h, (*[64]byte)(tail[off:off+64]))
	}
	var out [20]byte
	for i, v := range h {
		binary.BigEndian.PutUint32(out[4*i:], v)
	}
	return out
}

func TestBlockMatchesCryptoSHA1(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(r.Uint32())
		}
		if got, want := sum(msg), sha1.Sum(msg); got != want {
			t.Fatalf("len %d: got %x, want %x", n, got, want)
		}
	}
}

func FuzzBlock(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("abc"))
	f.Add([]byte("1:16:261121:abcdef::rw19k9nvMle7s5BV:0000000000003Jv"))
	f.Add(make([]byte, 55))
	f.Add(make([]byte, 56))
	f.Add(make([]byte, 64))
	f.Add(make([]byte, 200))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if got, want := sum(msg), sha1.Sum(msg); got != want {
			t.Fatalf("%q: got %x, want %x", msg, got, want)
		}
		// The split minting path: rounds 0..12 then the first output word.
		var p [64]byte
		copy(p[:], msg)
		var w [16]uint32
		for i := range w {
			w[i] = binary.BigEndian.Uint32(p[4*i:])
		}
		h := [5]uint32{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}
		s := rounds0to12(&h, &w)
		first := firstWord13to79(&s, h[0], w[13], &w)
		s2 := premint(&h, &w)
		x := expand(&w)
		try := mintTry(&s2, h[0], w[13], &x)
		block(&h, &p)
		if try != h[0] {
			t.Fatalf("mintTry = %08x, block gives %08x", try, h[0])
		}
		if first != h[0] {
			t.Fatalf("firstWord13to79 = %08x, block gives %08x", first, h[0])
		}
	})
}
