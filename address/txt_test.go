package address

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTXT(t *testing.T) {
	k := fpr(0x10)
	g := fpr(0x40)
	K, G := k.String(), g.String()
	pad := func(total int) string { // a valid record of exactly total bytes
		base := "v=DSEP1; fpr=" + K + "; x="
		return base + strings.Repeat("a", total-len(base))
	}
	tests := []struct {
		name string
		in   string
		key  Fingerprint
		gw   *Fingerprint
		err  error // nil, ErrNotDSEP or ErrBadTXT
	}{
		{"canonical", "v=DSEP1; fpr=" + K, k, nil, nil},
		{"no spaces", "v=DSEP1;fpr=" + K, k, nil, nil},
		{"spaces around tags", "  v=DSEP1 ;   fpr=" + K + "  ", k, nil, nil},
		{"spaces around =", "v = DSEP1; fpr = " + K, k, nil, nil},
		{"tabs", "v=DSEP1;\tfpr=" + K + "\t", k, nil, nil},
		{"trailing ;", "v=DSEP1; fpr=" + K + ";", k, nil, nil},
		{"trailing ; and space", "v=DSEP1; fpr=" + K + "; ", k, nil, nil},
		{"upper-case fpr accepted", "v=DSEP1; fpr=" + strings.ToUpper(K), k, nil, nil},
		{"gateway", "v=DSEP1; fpr=" + K + "; gw=" + G, k, &g, nil},
		{"gateway first", "v=DSEP1; gw=" + G + "; fpr=" + K, k, &g, nil},
		{"unknown tag ignored", "v=DSEP1; fpr=" + K + "; foo=bar", k, nil, nil},
		{"unknown tag before fpr", "v=DSEP1; x-future_2=1; fpr=" + K, k, nil, nil},
		{"unknown tag with empty value", "v=DSEP1; fpr=" + K + "; note=", k, nil, nil},
		{"exactly 4096 bytes", pad(4096), k, nil, nil},

		{"empty", "", Fingerprint{}, nil, ErrNotDSEP},
		{"other protocol", "v=spf1 include:_spf.example.org -all", Fingerprint{}, nil, ErrNotDSEP},
		{"DKIM", "v=DKIM1; k=ed25519; p=abc", Fingerprint{}, nil, ErrNotDSEP},
		{"v not first", "fpr=" + K + "; v=DSEP1", Fingerprint{}, nil, ErrNotDSEP},
		{"other version", "v=DSEP2; fpr=" + K, Fingerprint{}, nil, ErrNotDSEP},
		{"lower-case version", "v=dsep1; fpr=" + K, Fingerprint{}, nil, ErrNotDSEP},
		{"upper-case V", "V=DSEP1; fpr=" + K, Fingerprint{}, nil, ErrNotDSEP},
		{"version prefix", "v=DSEP10; fpr=" + K, Fingerprint{}, nil, ErrNotDSEP},
		{"version with space", "v=DSEP1 x; fpr=" + K, Fingerprint{}, nil, ErrNotDSEP},
		{"no =", "DSEP1", Fingerprint{}, nil, ErrNotDSEP},
		{"free text", "google-site-verification=abc", Fingerprint{}, nil, ErrNotDSEP},

		{"missing fpr", "v=DSEP1", Fingerprint{}, nil, ErrBadTXT},
		{"missing fpr with ;", "v=DSEP1;", Fingerprint{}, nil, ErrBadTXT},
		{"only gw", "v=DSEP1; gw=" + G, Fingerprint{}, nil, ErrBadTXT},
		{"repeated fpr", "v=DSEP1; fpr=" + K + "; fpr=" + K, Fingerprint{}, nil, ErrBadTXT},
		{"repeated fpr, different", "v=DSEP1; fpr=" + K + "; fpr=" + G, Fingerprint{}, nil, ErrBadTXT},
		{"repeated v", "v=DSEP1; v=DSEP1; fpr=" + K, Fingerprint{}, nil, ErrBadTXT},
		{"repeated unknown tag", "v=DSEP1; fpr=" + K + "; a=1; a=2", Fingerprint{}, nil, ErrBadTXT},
		{"repeated gw", "v=DSEP1; fpr=" + K + "; gw=" + G + "; gw=" + G, Fingerprint{}, nil, ErrBadTXT},
		{"fpr 39 digits", "v=DSEP1; fpr=" + K[:39], Fingerprint{}, nil, ErrBadTXT},
		{"fpr 41 digits", "v=DSEP1; fpr=" + K + "0", Fingerprint{}, nil, ErrBadTXT},
		{"fpr v6 length", "v=DSEP1; fpr=" + K + K[:24], Fingerprint{}, nil, ErrBadTXT},
		{"fpr non-hex", "v=DSEP1; fpr=" + K[:39] + "g", Fingerprint{}, nil, ErrBadTXT},
		{"fpr empty", "v=DSEP1; fpr=", Fingerprint{}, nil, ErrBadTXT},
		{"fpr in gpg groups", "v=DSEP1; fpr=" + k.Grouped(), Fingerprint{}, nil, ErrBadTXT},
		{"fpr with 0x", "v=DSEP1; fpr=0x" + K, Fingerprint{}, nil, ErrBadTXT},
		{"bad gw", "v=DSEP1; fpr=" + K + "; gw=" + G[:10], Fingerprint{}, nil, ErrBadTXT},
		{"value with space", "v=DSEP1; fpr=" + K + "; note=hello world", Fingerprint{}, nil, ErrBadTXT},
		{"value with control character", "v=DSEP1; fpr=" + K + "; note=a\x01b", Fingerprint{}, nil, ErrBadTXT},
		{"value with NUL", "v=DSEP1; fpr=" + K + "\x00", Fingerprint{}, nil, ErrBadTXT},
		{"value not ASCII", "v=DSEP1; fpr=" + K + "; note=ü", Fingerprint{}, nil, ErrBadTXT},
		{"tag without =", "v=DSEP1; fpr=" + K + "; junk", Fingerprint{}, nil, ErrBadTXT},
		{"empty tag", "v=DSEP1; =x; fpr=" + K, Fingerprint{}, nil, ErrBadTXT},
		{"upper-case tag", "v=DSEP1; FPR=" + K, Fingerprint{}, nil, ErrBadTXT},
		{"tag with space inside", "v=DSEP1; f pr=" + K, Fingerprint{}, nil, ErrBadTXT},
		{"empty element", "v=DSEP1;; fpr=" + K, Fingerprint{}, nil, ErrBadTXT},
		{"two trailing ;", "v=DSEP1; fpr=" + K + ";;", Fingerprint{}, nil, ErrBadTXT},
		{"over 4096 bytes", pad(4097), Fingerprint{}, nil, ErrBadTXT},
		{"huge", "v=DSEP1; fpr=" + K + "; x=" + strings.Repeat("a", 100000), Fingerprint{}, nil, ErrBadTXT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseTXT(tt.in)
			if tt.err == nil && err != nil {
				t.Fatalf("ParseTXT(%q): %v", tt.in, err)
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseTXT(%q) error = %v, want %v", tt.in, err, tt.err)
				}
				// The two kinds are distinct: a record of another protocol
				// is never reported as a broken DSEP record, or vice versa.
				other := ErrBadTXT
				if tt.err == ErrBadTXT {
					other = ErrNotDSEP
				}
				if errors.Is(err, other) {
					t.Fatalf("ParseTXT(%q) error %v is also %v", tt.in, err, other)
				}
				return
			}
			if r.Key != tt.key {
				t.Fatalf("fpr = %s, want %s", r.Key, tt.key)
			}
			if (r.Gateway == nil) != (tt.gw == nil) || (r.Gateway != nil && *r.Gateway != *tt.gw) {
				t.Fatalf("gw = %v, want %v", r.Gateway, tt.gw)
			}
			// What String writes parses back to the same record.
			back, err := ParseTXT(r.String())
			if err != nil || !sameRecord(back, r) {
				t.Fatalf("ParseTXT(%q) = %+v, %v", r.String(), back, err)
			}
		})
	}
}

func sameRecord(a, b DomainRecord) bool {
	if a.Key != b.Key || (a.Gateway == nil) != (b.Gateway == nil) {
		return false
	}
	return a.Gateway == nil || *a.Gateway == *b.Gateway
}

func TestParseTXTSet(t *testing.T) {
	k1, k2, g := fpr(1), fpr(2), fpr(3)
	r1 := DomainRecord{Key: k1}.String()
	r2 := DomainRecord{Key: k2}.String()
	tests := []struct {
		name    string
		in      []string
		want    []Fingerprint
		wantErr bool // an error wrapping ErrBadTXT
	}{
		{"nil", nil, nil, false},
		{"one", []string{r1}, []Fingerprint{k1}, false},
		{"rollover", []string{r1, r2}, []Fingerprint{k1, k2}, false},
		{"rollover keeps order", []string{r2, r1}, []Fingerprint{k2, k1}, false},
		{"broken beside good", []string{"v=DSEP1; fpr=xyz", r1}, []Fingerprint{k1}, true},
		{"only broken", []string{"v=DSEP1; fpr=xyz", "v=DSEP1"}, nil, true},
		{"duplicate", []string{r1, r1}, []Fingerprint{k1}, false},
		{"duplicate in another spelling", []string{r1, "v=DSEP1;fpr=" + strings.ToUpper(k1.String()) + ";"}, []Fingerprint{k1}, false},
		{"duplicate with gw kept once", []string{r1, DomainRecord{Key: k1, Gateway: &g}.String()}, []Fingerprint{k1}, false},
		{"other protocols skipped", []string{"v=spf1 -all", r1, "hello", ""}, []Fingerprint{k1}, false},
		{"only other protocols", []string{"v=spf1 -all", "v=DSEP2; fpr=" + k1.String()}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := ParseTXTSet(tt.in)
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrBadTXT)) {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && errors.Is(err, ErrNotDSEP) {
				t.Fatalf("error %v reports a record of another protocol", err)
			}
			var got []Fingerprint
			for _, r := range recs {
				got = append(got, r.Key)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestTXTName(t *testing.T) {
	if got := TXTName("example.org"); got != "_dsep.example.org." {
		t.Fatalf("TXTName = %q", got)
	}
}

// TestTXTGolden pins the text a domain owner publishes: the record and the
// zone-file line, without and with a gateway key.
func TestTXTGolden(t *testing.T) {
	k, err := ParseFingerprint("3A2B 7C4D 9E0F 1A2B 3C4D  5E6F 7A8B 9C0D 1E2F 3A4B")
	if err != nil {
		t.Fatal(err)
	}
	gw := fpr(0xa0)
	var b strings.Builder
	for _, r := range []DomainRecord{{Key: k}, {Key: k, Gateway: &gw}} {
		b.WriteString(r.String() + "\n")
		b.WriteString(r.ZoneLine("example.org", 3600) + "\n")
		// What is published parses back to the record.
		back, err := ParseTXT(r.String())
		if err != nil || !sameRecord(back, r) {
			t.Fatalf("ParseTXT(%q) = %+v, %v", r.String(), back, err)
		}
	}
	golden(t, "txt_record.golden", []byte(b.String()))
}
