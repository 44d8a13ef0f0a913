package account_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/account"
	"github.com/dsep-project/dsep/testnet/testtool"
)

func TestMain(m *testing.M) { testtool.Main(m, 0, 2*time.Second) }

func TestGenerateHashCheck(t *testing.T) {
	p, err := account.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 23 || strings.Count(p, "-") != 3 {
		t.Fatalf("password %q", p)
	}
	q, _ := account.Generate()
	if p == q {
		t.Fatal("two passwords alike")
	}
	h, err := account.Hash(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, p) {
		t.Fatal("the hash holds the password")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{p, true}, {q, false}, {"", false}, {p + " ", false}, {strings.Repeat("x", 5000), false}} {
		ok, err := account.Check(h, tc.pw)
		if err != nil || ok != tc.want {
			t.Errorf("Check(%.10q) = %v, %v", tc.pw, ok, err)
		}
	}
	h2, _ := account.Hash(p)
	if h2 == h {
		t.Fatal("no salt")
	}
}

func TestMalformedHash(t *testing.T) {
	good, _ := account.Hash("pw")
	for _, h := range []string{
		"", "argon2id$x", strings.Replace(good, "m=19456", "m=9999999", 1),
		strings.Replace(good, "t=2", "t=99", 1), good[:len(good)-3], good + "$x",
	} {
		if _, err := account.Check(h, "pw"); !errors.Is(err, account.ErrMalformed) {
			t.Errorf("%q: %v", h, err)
		}
	}
}

func TestCheckerSlowsGuessing(t *testing.T) {
	h, _ := account.Hash("right")
	now := time.Unix(1000, 0)
	var slept []time.Duration
	c := &account.Checker{
		Usernames: []string{"alice@example.org"},
		Now:       func() time.Time { return now },
		Sleep:     func(d time.Duration) { slept = append(slept, d); now = now.Add(d) },
	}
	if err := c.Check(h, "Alice@Example.org", "right"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.Check(h, "alice@example.org", "wrong"); !errors.Is(err, account.ErrBadPassword) {
			t.Fatal(err)
		}
	}
	// Same error for an unknown user with the right password.
	if err := c.Check(h, "mallory@example.org", "right"); !errors.Is(err, account.ErrBadPassword) {
		t.Fatal(err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	if len(slept) != len(want) {
		t.Fatalf("slept %v", slept)
	}
	for i := range want {
		if slept[i] != want[i] {
			t.Fatalf("slept %v, want %v", slept, want)
		}
	}
	if err := c.Check(h, "alice@example.org", "right"); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(h, "alice@example.org", "wrong"); !errors.Is(err, account.ErrBadPassword) || slept[len(slept)-1] != time.Second {
		t.Fatalf("penalty not reset after success: %v", slept)
	}
}

// FuzzCheck: a damaged or planted client.pass gives ErrMalformed or an
// answer, never a panic, and never makes a check cost more than the
// bounds allow.
func FuzzCheck(f *testing.F) {
	good, _ := account.Hash("pw")
	f.Add(good, "pw")
	f.Add("dsep-client-1$argon2id$m=19456,t=2,p=1$AAAA$BBBB", "x")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, h, pw string) {
		ok, err := account.Check(h, pw)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
	})
}
