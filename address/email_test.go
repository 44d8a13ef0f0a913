package address

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseEmail(t *testing.T) {
	local64 := strings.Repeat("a", 64)
	label63 := strings.Repeat("d", 63)
	tests := []struct {
		name string
		in   string
		want string // canonical form, when err is nil
		err  error
	}{
		{"plain", "alice@example.org", "alice@example.org", nil},
		{"case folded", "Alice@Example.ORG", "alice@example.org", nil},
		{"atext specials", "a.b+tag_x-y!#$%&'*/=?^`{|}~@example.org", "a.b+tag_x-y!#$%&'*/=?^`{|}~@example.org", nil},
		{"NFC of decomposed local part", "e\u0301@example.org", "\u00e9@example.org", nil},
		{"NFC precomposed unchanged", "\u00e9@example.org", "\u00e9@example.org", nil},
		{"upper case decomposed", "E\u0301@example.org", "\u00e9@example.org", nil},
		{"UTF-8 local part lower-cased", "ÑANDÚ@example.org", "ñandú@example.org", nil},
		// Only NFC, not NFKC, in the local part: full-width letters stay.
		{"full-width local part is not folded", "ＵＳＥＲ@example.org", "ｕｓｅｒ@example.org", nil},
		{"IDNA U-label", "user@bücher.example", "user@xn--bcher-kva.example", nil},
		{"IDNA upper-case U-label", "user@BÜCHER.example", "user@xn--bcher-kva.example", nil},
		{"IDNA decomposed U-label", "user@bu\u0308cher.example", "user@xn--bcher-kva.example", nil},
		{"IDNA A-label kept", "user@xn--bcher-kva.example", "user@xn--bcher-kva.example", nil},
		{"IDNA upper-case A-label", "user@XN--BCHER-KVA.EXAMPLE", "user@xn--bcher-kva.example", nil},
		{"UTS-46 full-width letters", "user@ｅｘａｍｐｌｅ.org", "user@example.org", nil},
		{"UTS-46 ideographic full stop", "user@example。org", "user@example.org", nil},
		{"UTS-46 non-transitional sharp s", "user@faß.de", "user@xn--fa-hia.de", nil},
		{"last @ splits", "a@b@example.org", "", ErrBadEmail},
		{"64-byte local part", local64 + "@example.org", local64 + "@example.org", nil},
		{"65-byte local part", local64 + "a@example.org", "", ErrBadEmail},
		{"64 bytes after NFC counts", strings.Repeat("\u00e9", 32) + "@example.org", strings.Repeat("\u00e9", 32) + "@example.org", nil},
		{"65 bytes after NFC", strings.Repeat("\u00e9", 32) + "a@example.org", "", ErrBadEmail},
		{"63-byte label", "a@" + label63 + ".org", "a@" + label63 + ".org", nil},
		{"64-byte label", "a@" + label63 + "d.org", "", ErrBadEmail},
		{"domain over 253 bytes", "a@" + strings.Repeat(label63+".", 4) + "org", "", ErrBadEmail},
		{"input over 512 bytes", strings.Repeat("a", 60) + "@" + strings.Repeat("b.", 230) + "org", "", ErrBadEmail},
		{"trailing dot", "a@example.org.", "", ErrBadEmail},
		{"trailing ideographic full stop", "a@example.org。", "", ErrBadEmail},
		{"trailing full-width full stop", "a@example.org．", "", ErrBadEmail},
		{"trailing halfwidth ideographic full stop", "a@example.org｡", "", ErrBadEmail},
		{"one label and a mapped dot", "0@ｅ。", "", ErrBadEmail},
		{"no dot", "a@localhost", "", ErrBadEmail},
		{"address literal v4", "a@[192.0.2.1]", "", ErrBadEmail},
		{"address literal v6", "a@[IPv6:2001:db8::1]", "", ErrBadEmail},
		{"bare IPv4 address", "a@192.0.2.1", "", ErrBadEmail},
		{"numeric top-level label", "a@example.123", "", ErrBadEmail},
		{"digits inside labels are fine", "a@1password.example", "a@1password.example", nil},
		{"quoted local part", `"a b"@example.org`, "", ErrBadEmail},
		{"quoted local part without space", `"ab"@example.org`, "", ErrBadEmail},
		{"double dot", "a..b@example.org", "", ErrBadEmail},
		{"leading dot", ".a@example.org", "", ErrBadEmail},
		{"trailing dot in local part", "a.@example.org", "", ErrBadEmail},
		{"double dot in domain", "a@example..org", "", ErrBadEmail},
		{"leading dot in domain", "a@.example.org", "", ErrBadEmail},
		{"hyphen-led label", "a@-example.org", "", ErrBadEmail},
		{"underscore in domain", "a@ex_ample.org", "", ErrBadEmail},
		{"empty", "", "", ErrBadEmail},
		{"no @", "alice", "", ErrBadEmail},
		{"only @", "@", "", ErrBadEmail},
		{"empty local part", "@example.org", "", ErrBadEmail},
		{"empty domain", "alice@", "", ErrBadEmail},
		{"non-UTF-8 local part", "\xff@example.org", "", ErrBadEmail},
		{"non-UTF-8 domain", "a@ex\xc3ample.org", "", ErrBadEmail},
		{"leading space", " a@example.org", "", ErrBadEmail},
		{"trailing space", "a@example.org ", "", ErrBadEmail},
		{"space in local part", "a b@example.org", "", ErrBadEmail},
		{"space before @", "a @example.org", "", ErrBadEmail},
		{"tab", "a\t@example.org", "", ErrBadEmail},
		{"newline", "a@example.org\n", "", ErrBadEmail},
		{"CRLF injection", "a@example.org\r\nRCPT TO:<b@example.org>", "", ErrBadEmail},
		{"NUL", "a\x00@example.org", "", ErrBadEmail},
		{"no-break space", "a\u00a0b@example.org", "", ErrBadEmail},
		{"zero-width space", "a\u200bb@example.org", "", ErrBadEmail},
		{"angle brackets", "<a@example.org>", "", ErrBadEmail},
		{"display name", "Alice <a@example.org>", "", ErrBadEmail},
		{"comment", "a(comment)@example.org", "", ErrBadEmail},
		{"backslash", `a\b@example.org`, "", ErrBadEmail},
		{"comma", "a,b@example.org", "", ErrBadEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEmail(tt.in)
			if !errors.Is(err, tt.err) || (tt.err != nil) != (err != nil) {
				t.Fatalf("ParseEmail(%q) = %q, error %v, want error %v", tt.in, e, err, tt.err)
			}
			if err != nil {
				if !e.IsZero() {
					t.Fatalf("failed parse returned %q", e)
				}
				return
			}
			if e.String() != tt.want {
				t.Fatalf("ParseEmail(%q) = %q, want %q", tt.in, e, tt.want)
			}
			if e.Local()+"@"+e.Domain() != tt.want {
				t.Fatalf("Local/Domain = %q @ %q", e.Local(), e.Domain())
			}
			// The canonical form is a fixed point.
			again, err := ParseEmail(e.String())
			if err != nil || again != e {
				t.Fatalf("ParseEmail(%q) = %q, %v: canonical form is not a fixed point", e, again, err)
			}
		})
	}
}

// Every spelling of the same address compares equal once parsed.
func TestEmailEquivalence(t *testing.T) {
	groups := [][]string{
		{"e\u0301@example.org", "\u00e9@example.org", "E\u0301@EXAMPLE.org", "\u00c9@Example.Org"},
		{"bob@bücher.example", "Bob@BÜCHER.EXAMPLE", "bob@xn--bcher-kva.example", "BOB@XN--BCHER-KVA.example", "bob@bu\u0308cher.example"},
		{"carol@example.org", "carol@ｅｘａｍｐｌｅ．ｏｒｇ", "CAROL@example。org"},
	}
	for _, g := range groups {
		first := mustEmail(t, g[0])
		for _, s := range g[1:] {
			if e := mustEmail(t, s); e != first {
				t.Errorf("%q → %q, but %q → %q", s, e, g[0], first)
			}
		}
	}
	if mustEmail(t, "e\u0301@example.org") == mustEmail(t, "e@example.org") {
		t.Error("accent dropped")
	}
}

func TestEmailText(t *testing.T) {
	var zero Email
	if zero.String() != "" || !zero.IsZero() {
		t.Fatal("zero Email")
	}
	e := mustEmail(t, "Alice@Example.org")
	j, err := json.Marshal(struct{ E Email }{e})
	if err != nil || string(j) != `{"E":"alice@example.org"}` {
		t.Fatalf("json %s %v", j, err)
	}
	var back struct{ E Email }
	if err := json.Unmarshal([]byte(`{"E":"ALICE@example.ORG"}`), &back); err != nil || back.E != e {
		t.Fatalf("unmarshal %q %v", back.E, err)
	}
	if err := json.Unmarshal([]byte(`{"E":"not an address"}`), &back); !errors.Is(err, ErrBadEmail) {
		t.Fatalf("unmarshal of a bad address: %v", err)
	}
	if e.IsKeyAddress() {
		t.Fatal("example.org is not the key-address domain")
	}
	if !mustEmail(t, fpr(0).KeyAddress().String()).IsKeyAddress() {
		t.Fatal("a key address parsed as email is in dsep.alt")
	}
}

func TestCanonicalDomain(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"Example.ORG", "example.org", nil},
		{"bücher.example", "xn--bcher-kva.example", nil},
		{"", "", ErrBadEmail},
		{"example.org.", "", ErrBadEmail},
		{"example.org。", "", ErrBadEmail},
		{"org", "", ErrBadEmail},
		{"[192.0.2.1]", "", ErrBadEmail},
		{"exa mple.org", "", ErrBadEmail},
	}
	for _, tt := range tests {
		got, err := CanonicalDomain(tt.in)
		if !errors.Is(err, tt.err) || (tt.err != nil) != (err != nil) || got != tt.want {
			t.Errorf("CanonicalDomain(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseAddress(t *testing.T) {
	f := fpr(7)
	ka := f.KeyAddress().String()
	tests := []struct {
		name  string
		in    string
		email string // canonical email, if an email address
		key   bool   // a key address naming f
		err   error
	}{
		{"email", "Alice@Example.org", "alice@example.org", false, nil},
		{"IDNA email", "a@bücher.example", "a@xn--bcher-kva.example", false, nil},
		{"key address", ka, "", true, nil},
		{"upper-case key address", strings.ToUpper(ka), "", true, nil},
		{"key address with spaces", " " + ka + " ", "", true, nil},
		{"malformed key address is not an email", "alice@dsep.alt", "", false, ErrBadKeyAddress},
		{"short key address", ka[:10] + "@dsep.alt", "", false, ErrBadKeyAddress},
		{"key address with a full-width domain", strings.TrimSuffix(ka, "dsep.alt") + "ｄｓｅｐ.ａｌｔ", "", true, nil},
		{"key address with an ideographic full stop", strings.TrimSuffix(ka, ".alt") + "。alt", "", true, nil},
		{"full-width dsep.alt is not an email", "alice@ｄｓｅｐ.alt", "", false, ErrBadKeyAddress},
		{"bad email", "alice@", "", false, ErrBadEmail},
		{"empty", "", "", false, ErrBadEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if !errors.Is(err, tt.err) || (tt.err != nil) != (err != nil) {
				t.Fatalf("ParseAddress(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if err != nil {
				return
			}
			if tt.key {
				if a.Key == nil || a.Key.Fingerprint() != f || !a.Email.IsZero() {
					t.Fatalf("ParseAddress(%q) = %+v, want key %s", tt.in, a, f)
				}
				if a.String() != ka {
					t.Fatalf("String() = %q, want %q", a.String(), ka)
				}
				return
			}
			if a.Key != nil || a.Email.String() != tt.email || a.String() != tt.email {
				t.Fatalf("ParseAddress(%q) = %+v, want email %q", tt.in, a, tt.email)
			}
		})
	}
}

func TestUserID(t *testing.T) {
	e := mustEmail(t, "Alice@Example.org")
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"name", "Alice Example", "Alice Example <alice@example.org>", false},
		{"no name", "", "<alice@example.org>", false},
		{"blank name", "   ", "<alice@example.org>", false},
		{"trimmed", "  Alice  ", "Alice <alice@example.org>", false},
		{"UTF-8 name", "Zoë Ñ", "Zoë Ñ <alice@example.org>", false},
		{"quotes and dots allowed", `Alice "Al" Ex. Jr.`, `Alice "Al" Ex. Jr. <alice@example.org>`, false},
		{"<", "Alice <evil@example.com", "", true},
		{">", "Alice>", "", true},
		{"(", "Alice (work)", "", true},
		{")", "Alice)", "", true},
		{"newline", "Alice\nBob", "", true},
		{"CR", "Alice\rBob", "", true},
		{"NUL", "Alice\x00", "", true},
		{"not UTF-8", "Alice \xff", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UserID(tt.in, e)
			if (err != nil) != tt.wantErr {
				t.Fatalf("UserID(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("UserID(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err == nil {
				back, err := EmailOfUserID(got)
				if err != nil || back != e {
					t.Fatalf("EmailOfUserID(%q) = %q, %v", got, back, err)
				}
			}
		})
	}
}

func TestEmailOfUserID(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"name and address", "Alice <Alice@Example.org>", "alice@example.org", nil},
		{"address only in brackets", "<alice@example.org>", "alice@example.org", nil},
		{"bare address", "alice@example.org", "alice@example.org", nil},
		{"bare address with spaces", "  Alice@Example.org ", "alice@example.org", nil},
		{"gpg comment", "Alice (work) <alice@example.org>", "alice@example.org", nil},
		{"last brackets win", "Alice <mallory@evil.example> <alice@example.org>", "alice@example.org", nil},
		{"IDNA inside brackets", "Bob <bob@bücher.example>", "bob@xn--bcher-kva.example", nil},
		{"unclosed", "Alice <alice@example.org", "", ErrBadEmail},
		{"closed before opened", "Alice > <alice@example.org", "", ErrBadEmail},
		{"empty brackets", "Alice <>", "", ErrBadEmail},
		{"spaces inside brackets", "Alice < alice@example.org >", "", ErrBadEmail},
		{"domain key User ID", "DSEP domain key for example.org", "", ErrBadEmail},
		{"name without address", "Alice", "", ErrBadEmail},
		{"empty", "", "", ErrBadEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := EmailOfUserID(tt.in)
			if !errors.Is(err, tt.err) || (tt.err != nil) != (err != nil) {
				t.Fatalf("EmailOfUserID(%q) = %q, error %v, want %v", tt.in, e, err, tt.err)
			}
			if e.String() != tt.want {
				t.Fatalf("EmailOfUserID(%q) = %q, want %q", tt.in, e, tt.want)
			}
		})
	}
}
