package message

import (
	"context"
	"strings"
	"testing"
)

// mail4K is a mail of about 4 KiB.
func mail4K() []byte { return testMail("bench", strings.Repeat("0123456789abcdef ", 4096/17)) }

func BenchmarkSeal4K(b *testing.B) {
	c := newCast(b)
	m := mail4K()
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		if _, err := Seal(m, SealOptions{From: c.alice.own, To: c.bob.pub, Now: checkNow}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkOpen4K(b *testing.B) {
	c := newCast(b)
	m := mail4K()
	payload := seal(b, m, c.alice, c.bob, checkNow)
	l := newLookup(c.alice)
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		if _, err := Open(context.Background(), payload, OpenOptions{Own: c.bob.own, Lookup: l.fn, Now: checkNow}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
