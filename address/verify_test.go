package address

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// revokedCopy returns a public copy of k (whose secret primary is
// available) carrying a revocation for reason.
func revokedCopy(t testing.TB, k *Key, reason RevocationReason, at time.Time) *Key {
	t.Helper()
	c := k.Clone()
	var err error
	if reason == ReasonSuperseded {
		succ := fpr(0x99)
		_, err = revoke(c, reason, "superseded", &succ, at)
	} else {
		_, err = Revoke(c, reason, "test", at)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.PublicOnly()
}

// forge returns k re-read after mutating the serialized third-party
// certification of uid with edit, checking that the result still parses
// and still carries the (now invalid) certification.
func forge(t testing.TB, k *Key, uid string, edit func(sig []byte)) *Key {
	t.Helper()
	id := k.Entity().Identities[uid]
	if len(id.OtherCertifications) != 1 {
		t.Fatalf("%d certifications to forge", len(id.OtherCertifications))
	}
	var sb bytes.Buffer
	if err := id.OtherCertifications[0].Packet.Serialize(&sb); err != nil {
		t.Fatal(err)
	}
	kb := k.Bytes()
	i := bytes.Index(kb, sb.Bytes())
	if i < 0 {
		t.Fatal("certification packet not found in the key")
	}
	edit(kb[i : i+sb.Len()])
	f, err := ReadKey(bytes.NewReader(kb))
	if err != nil {
		t.Fatalf("forged key no longer parses: %v", err)
	}
	if n := len(f.Entity().Identities[uid].OtherCertifications); n != 1 {
		t.Fatalf("forged key carries %d certifications, want 1", n)
	}
	return f
}

func TestVerifyBindingReasons(t *testing.T) {
	email := mustEmail(t, "alice@example.org")
	dom := newDomain(t, "example.org")
	dom2 := newDomain(t, "example.org") // the next domain key, in a rollover
	other := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	const uid = "Alice <alice@example.org>"
	cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
	cert2 := certify(t, alice, dom2, "alice@example.org", testNow, 0)
	certOther := certify(t, alice, other, "alice@example.org", testNow, 0)
	short := certify(t, alice, dom, "alice@example.org", testNow, time.Hour)
	future := certify(t, alice, dom, "alice@example.org", testNow.Add(time.Hour), 0)
	nearFuture := certify(t, alice, dom, "alice@example.org", testNow.Add(MaxClockSkew/2), 0)

	// A certification whose signature bytes were altered.
	forgedSig := forge(t, cert, uid, func(sig []byte) { sig[len(sig)-1] ^= 0x01 })
	// A certification whose lifetime subpacket was extended to "never":
	// hashed data changed, signature kept.
	forgedLife := forge(t, short, uid, func(sig []byte) {
		// Subpacket length 5, type 3 (signature expiration time), which
		// go-crypto marks critical (0x80).
		var life [6]byte
		life[0], life[1] = 5, 0x80|3
		binary.BigEndian.PutUint32(life[2:], uint32(time.Hour/time.Second))
		j := bytes.Index(sig, life[:])
		if j < 0 {
			life[1] = 3
			if j = bytes.Index(sig, life[:]); j < 0 {
				t.Fatal("lifetime subpacket not found")
			}
		}
		binary.BigEndian.PutUint32(sig[j+2:], 0)
	})

	// The domain withdrew its certification; then renewed it.
	withdrawn, err := RevokeCertification(cert, uid, dom, testNow.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := Certify(withdrawn, uid, dom, testNow.Add(2*time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}

	// go-crypto's own SignIdentity signs with the domain's signing subkey,
	// which is not a valid certification key.
	bySubkey := alice.PublicOnly()
	if err := bySubkey.Entity().SignIdentity(uid, dom.Entity(), pgpConfig(testNow, nil)); err != nil {
		t.Fatal(err)
	}

	// Alice's key with a second address; the domain certified only that one.
	twoUIDs := alice.Clone()
	if err := twoUIDs.Entity().AddUserId("Alice", "", "alice@other.example", pgpConfig(testNow, nil)); err != nil {
		t.Fatal(err)
	}
	otherUID, err := Certify(twoUIDs.PublicOnly(), "Alice <alice@other.example>", dom, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}

	aliceFpr := alice.Fingerprint()
	wrongFpr := dom.Fingerprint()
	dnsErr := errors.New("i/o timeout")
	later := testNow.Add(3 * time.Minute)

	tests := []struct {
		name      string
		dns       DNSAnswer
		key       *Key
		domainKey *Key
		expected  *Fingerprint
		email     Email
		now       time.Time
		want      Reason
	}{
		{name: "ok", dns: txtFor(dom), key: cert, domainKey: dom, want: BindingOK},
		{name: "ok with expected key", dns: txtFor(dom), key: cert, domainKey: dom, expected: &aliceFpr, want: BindingOK},
		{name: "ok beside a broken record", dns: DNSAnswer{Records: []string{"v=DSEP1; fpr=broken", DomainRecord{Key: dom.Fingerprint()}.String()}}, key: cert, domainKey: dom, want: BindingOK},
		{name: "ok beside other protocols", dns: DNSAnswer{Records: []string{"v=spf1 -all", DomainRecord{Key: dom.Fingerprint()}.String()}}, key: cert, domainKey: dom, want: BindingOK},
		{name: "ok within the clock skew", dns: txtFor(dom), key: nearFuture, domainKey: dom, want: BindingOK},
		{name: "ok just before expiry", dns: txtFor(dom), key: short, domainKey: dom, now: testNow.Add(time.Hour - time.Second), want: BindingOK},
		{name: "ok renewed after withdrawal", dns: txtFor(dom), key: renewed, domainKey: dom, now: later, want: BindingOK},
		{name: "rollover: old domain key", dns: txtFor(dom, dom2), key: cert, domainKey: dom, want: BindingOK},
		{name: "rollover: new domain key", dns: txtFor(dom, dom2), key: cert2, domainKey: dom2, want: BindingOK},

		{name: "no TXT: NXDOMAIN", dns: DNSAnswer{NotFound: true}, key: cert, domainKey: dom, want: NoTXT},
		{name: "no TXT: only other protocols", dns: DNSAnswer{Records: []string{"v=spf1 -all", "hello"}}, key: cert, domainKey: dom, want: NoTXT},
		{name: "no TXT: empty answer", dns: DNSAnswer{}, key: cert, domainKey: dom, want: NoTXT},
		{name: "bad TXT", dns: DNSAnswer{Records: []string{"v=DSEP1; fpr=" + strings.Repeat("0", 39)}}, key: cert, domainKey: dom, want: BadTXT},
		{name: "bad TXT: no fpr", dns: DNSAnswer{Records: []string{"v=DSEP1", "v=spf1 -all"}}, key: cert, domainKey: dom, want: BadTXT},

		{name: "unknown domain key: TXT names another", dns: txtFor(other), key: cert, domainKey: dom, want: UnknownDomainKey},
		{name: "unknown domain key: none offered", dns: txtFor(dom), key: cert, domainKey: nil, want: UnknownDomainKey},
		{name: "unknown domain key: certified by an unnamed key", dns: txtFor(dom), key: certOther, domainKey: other, want: UnknownDomainKey},

		{name: "no certification", dns: txtFor(dom), key: alice.PublicOnly(), domainKey: dom, want: NoCertification},
		{name: "no certification: by another key", dns: txtFor(dom), key: certOther, domainKey: dom, want: NoCertification},
		{name: "no certification: by the other rollover key", dns: txtFor(dom, dom2), key: cert2, domainKey: dom, want: NoCertification},
		{name: "no certification: forged signature", dns: txtFor(dom), key: forgedSig, domainKey: dom, want: NoCertification},
		{name: "no certification: forged lifetime", dns: txtFor(dom), key: forgedLife, domainKey: dom, now: testNow.Add(2 * time.Hour), want: NoCertification},
		{name: "no certification: by the domain's signing subkey", dns: txtFor(dom), key: bySubkey, domainKey: dom, want: NoCertification},
		{name: "no certification: of another User ID", dns: txtFor(dom), key: otherUID, domainKey: dom, want: NoCertification},
		{name: "no certification: dated in the future", dns: txtFor(dom), key: future, domainKey: dom, want: NoCertification},

		{name: "expired", dns: txtFor(dom), key: short, domainKey: dom, now: testNow.Add(2 * time.Hour), want: Expired},
		{name: "expired at the instant", dns: txtFor(dom), key: short, domainKey: dom, now: testNow.Add(time.Hour), want: Expired},
		{name: "default lifetime over", dns: txtFor(dom), key: cert, domainKey: dom, now: testNow.Add(DefaultCertificationLifetime + time.Second), want: Expired},

		{name: "revoked: key compromised", dns: txtFor(dom), key: withRevocation(t, cert, alice, ReasonCompromised), domainKey: dom, want: Revoked},
		{name: "revoked: key retired", dns: txtFor(dom), key: withRevocation(t, cert, alice, ReasonRetired), domainKey: dom, want: Revoked},
		{name: "revoked: key superseded", dns: txtFor(dom), key: withRevocation(t, cert, alice, ReasonSuperseded), domainKey: dom, want: Revoked},
		{name: "revoked: domain key", dns: txtFor(dom), key: cert, domainKey: revokedCopy(t, dom, ReasonRetired, testNow), want: Revoked},
		{name: "revoked: domain key compromised", dns: txtFor(dom), key: cert, domainKey: revokedCopy(t, dom, ReasonCompromised, testNow), want: Revoked},
		{name: "revoked: certification withdrawn", dns: txtFor(dom), key: withdrawn, domainKey: dom, now: later, want: Revoked},

		{name: "wrong key: address not in key", email: mustEmail(t, "bob@example.org"), dns: txtFor(dom), key: cert, domainKey: dom, want: WrongKey},
		{name: "wrong key: not the expected one", dns: txtFor(dom), key: cert, domainKey: dom, expected: &wrongFpr, want: WrongKey},
		{name: "wrong key: none offered", dns: txtFor(dom), key: nil, domainKey: dom, want: WrongKey},
		{name: "wrong key: the domain key itself", dns: txtFor(dom), key: dom, domainKey: dom, want: WrongKey},

		{name: "DNS failure", dns: DNSAnswer{Err: dnsErr}, key: cert, domainKey: dom, want: DNSFailure},
		{name: "DNS failure wins over records", dns: DNSAnswer{Err: dnsErr, Records: txtFor(dom).Records}, key: cert, domainKey: dom, want: DNSFailure},
	}
	seen := make(map[Reason]bool)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := BindingInput{Email: email, DNS: tt.dns, Key: tt.key, DomainKey: tt.domainKey, Expected: tt.expected, Now: testNow}
			if !tt.email.IsZero() {
				in.Email = tt.email
			}
			if !tt.now.IsZero() {
				in.Now = tt.now
			}
			if in.DomainKey != nil {
				in.DomainKey = in.DomainKey.PublicOnly()
			}
			if in.Key != nil {
				in.Key = reparse(t, in.Key) // as received: nothing verified yet
			}
			v := VerifyBinding(in)
			seen[v.Reason] = true
			if v.Reason != tt.want {
				t.Fatalf("reason %s, want %s (%s)", v.Reason, tt.want, v.Detail)
			}
			if v.OK() != (tt.want == BindingOK) {
				t.Fatal("OK() disagrees with Reason")
			}
			if v.Temporary != (tt.want == DNSFailure) {
				t.Fatalf("Temporary = %v", v.Temporary)
			}
			if v.Email != in.Email {
				t.Fatalf("verdict email %s", v.Email)
			}
			if in.Key != nil && v.Key != in.Key.Fingerprint() {
				t.Fatalf("verdict key %s", v.Key)
			}
			if in.DomainKey != nil && v.Domain != in.DomainKey.Fingerprint() {
				t.Fatalf("verdict domain key %s", v.Domain)
			}
			if tt.want == BindingOK {
				if v.UserID != uid || v.Detail != "" || !strings.Contains(v.String(), "is bound to") {
					t.Fatalf("ok verdict: %+v / %s", v, v)
				}
				return
			}
			if v.Detail == "" || v.Hint() == "" || !strings.Contains(v.String(), "NOT bound") || !strings.Contains(v.String(), tt.want.String()) {
				t.Fatalf("failure verdict lacks detail, hint or summary: %+v / %q / %q", v, v.String(), v.Hint())
			}
		})
	}
	for r := BindingOK; r <= DNSFailure; r++ {
		if !seen[r] {
			t.Errorf("no case produced %s", r)
		}
	}
}

// withRevocation returns cert carrying a revocation of its key made with
// the secret key owner.
func withRevocation(t testing.TB, cert, owner *Key, reason RevocationReason) *Key {
	t.Helper()
	r := revokedCopy(t, owner, reason, testNow).Revocation()
	if r == nil {
		t.Fatal("revocation not carried")
	}
	c := reparse(t, cert)
	if err := c.AddRevocation(r); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyBindingExpires(t *testing.T) {
	dom := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	for _, c := range []struct {
		life time.Duration
		want time.Time
	}{
		{0, testNow.Add(DefaultCertificationLifetime)},
		{48 * time.Hour, testNow.Add(48 * time.Hour)},
		{-1, time.Time{}}, // no expiry
	} {
		cert := certify(t, alice, dom, "alice@example.org", testNow, c.life)
		v := VerifyBinding(BindingInput{Email: mustEmail(t, "alice@example.org"), DNS: txtFor(dom), Key: cert, DomainKey: dom, Now: testNow.Add(time.Hour)})
		if !v.OK() || !v.Expires.Equal(c.want) {
			t.Errorf("lifetime %v: %v, expires %v, want %v", c.life, v.Reason, v.Expires, c.want)
		}
		if c.life < 0 {
			// Without expiry it holds years later.
			v := VerifyBinding(BindingInput{Email: mustEmail(t, "alice@example.org"), DNS: txtFor(dom), Key: cert, DomainKey: dom, Now: testNow.Add(20 * 365 * 24 * time.Hour)})
			if !v.OK() {
				t.Errorf("certification without expiry, 20 years on: %v", v)
			}
		}
	}
}

func TestVerifyBindingDNSSEC(t *testing.T) {
	dom := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
	email := mustEmail(t, "alice@example.org")
	for _, ad := range []bool{false, true} {
		dns := txtFor(dom)
		dns.Authenticated = ad
		method := "DNS, not DNSSEC"
		if ad {
			method = "DNSSEC"
		}
		ok := VerifyBinding(BindingInput{Email: email, DNS: dns, Key: cert, DomainKey: dom, Now: testNow})
		if !ok.OK() || ok.DNSSEC != ad || ok.Method() != method || !strings.Contains(ok.String(), "("+method+")") {
			t.Errorf("AD=%v: %+v, method %q, %s", ad, ok, ok.Method(), ok)
		}
		// Carried into verdicts reached after the DNS step, too.
		bad := VerifyBinding(BindingInput{Email: email, DNS: dns, Key: alice.PublicOnly(), DomainKey: dom, Now: testNow})
		if bad.Reason != NoCertification || bad.DNSSEC != ad || bad.Method() != method {
			t.Errorf("AD=%v, uncertified: %+v", ad, bad)
		}
	}
	// An AD bit on a failed lookup says nothing.
	v := VerifyBinding(BindingInput{Email: email, DNS: DNSAnswer{NotFound: true, Authenticated: true}, Key: cert, DomainKey: dom, Now: testNow})
	if v.Reason != NoTXT || v.DNSSEC {
		t.Errorf("NXDOMAIN with AD: %+v", v)
	}
}

func TestReasonNames(t *testing.T) {
	want := []string{"ok", "no-txt", "bad-txt", "unknown-domain-key", "no-certification", "expired", "revoked", "wrong-key", "dns-failure"}
	names := make(map[string]bool)
	for r := BindingOK; r <= DNSFailure; r++ {
		if r.String() != want[r] {
			t.Errorf("Reason(%d) = %q, want %q", int(r), r, want[r])
		}
		if b, _ := r.MarshalText(); string(b) != want[r] {
			t.Errorf("MarshalText(%d) = %q", int(r), b)
		}
		names[r.String()] = true
		v := Verdict{Reason: r, Email: mustEmail(t, "a@example.org")}
		if (v.Hint() == "") != (r == BindingOK) {
			t.Errorf("Hint for %s: %q", r, v.Hint())
		}
	}
	if len(names) != len(want) {
		t.Error("reason names are not distinct")
	}
	if s := Reason(42).String(); s != "reason(42)" {
		t.Errorf("unknown reason: %q", s)
	}
	if s := Reason(-1).String(); s != "reason(-1)" {
		t.Errorf("negative reason: %q", s)
	}
	j, err := json.Marshal(Verdict{Reason: Revoked, Email: mustEmail(t, "a@example.org")})
	if err != nil || !bytes.Contains(j, []byte(`"reason":"revoked"`)) || !bytes.Contains(j, []byte(`"email":"a@example.org"`)) {
		t.Errorf("json %s %v", j, err)
	}
}

// VerifyBinding on shared, freshly parsed keys from several goroutines (as
// a node checking many messages does): run with -race.
func TestVerifyBindingConcurrent(t *testing.T) {
	dom := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	cert := reparse(t, certify(t, alice, dom, "alice@example.org", testNow, 0))
	domPub := reparse(t, dom)
	in := BindingInput{Email: mustEmail(t, "alice@example.org"), DNS: txtFor(dom), Key: cert, DomainKey: domPub, Now: testNow}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if v := VerifyBinding(in); !v.OK() {
					errs <- v.String()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
