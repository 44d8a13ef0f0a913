// Package message implements the DSEP payload (docs/protocol.md §11.2): an
// RFC 5322 mail, signed with the sender's signing subkey, then encrypted
// to the recipient's encryption subkey, as one binary OpenPGP message
// (RFC 9580) whose recipient key IDs are hidden.
//
// Naive sign-then-encrypt lets a recipient re-encrypt a signed message to
// a third party, who then believes it was meant for them ("surreptitious
// forwarding"). go-crypto writes no Intended Recipient Fingerprint
// subpacket for hidden recipients, so the signed mail itself names both
// parties in two header fields that Seal sets:
//
//	DSEP-Recipient: <40 lower-case hex digits: the recipient's primary fingerprint>
//	DSEP-Sender: <40 lower-case hex digits: the sender's primary fingerprint>
//
// Open decrypts with the recipient's own key (once), reads DSEP-Sender
// from the still unverified mail to learn whose key to fetch, verifies the
// signature with that key — only then is the mail trusted — and requires
// DSEP-Recipient to name the recipient.
//
// go-crypto caches the outcome of every self-signature check inside the
// key, and address.Key serialises those writes under its own lock. Seal
// and Open therefore run Key.Check on the keys they hand to go-crypto
// (which verifies, and caches, every self-signature under that lock)
// before go-crypto reads them, and verify the message signature through
// address.Key.VerifyDetached: the keys may be shared by concurrent calls.
package message

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/dsep-project/dsep/address"
)

// The header fields that name the two parties inside the signed mail.
const (
	HeaderRecipient = "DSEP-Recipient"
	HeaderSender    = "DSEP-Sender"
)

// Limits.
const (
	// DefaultMaxMail is the default limit on the decrypted mail, 25 MiB
	// (the default envelope payload limit, §11.1).
	DefaultMaxMail = 25 << 20
	// MaxClockSkew is how far in the future a signature may be dated.
	MaxClockSkew = address.MaxClockSkew
	// decompressSlack is what a compressed layer may hold beyond the mail:
	// the packets around the literal data (one-pass signature, signature).
	decompressSlack = 64 << 10
	// maxKeyLookups bounds the public-key encrypted session key and
	// one-pass signature packets Open processes: go-crypto tries a
	// decryption (an X25519 operation) per session key packet and keeps a
	// hash per one-pass signature, so a payload full of them would cost
	// the receiver a lot for nothing. A DSEP payload has one of each.
	maxKeyLookups = 16
)

// Errors of Open. Each is wrapped with detail; test with errors.Is.
var (
	// ErrDecrypt: the payload is not an OpenPGP message encrypted to the
	// own key, or it is corrupt (bad packets, failed integrity check).
	ErrDecrypt = errors.New("message: cannot decrypt the payload")
	// ErrTooLarge: the mail exceeds OpenOptions.MaxMail (also when
	// decompressed).
	ErrTooLarge = errors.New("message: mail exceeds the size limit")
	// ErrUnsigned: the payload decrypts, but carries no signature.
	ErrUnsigned = errors.New("message: the payload is not signed")
	// ErrMalformedMail: the mail's header cannot be parsed, or a DSEP
	// header field is repeated or not 40 lower-case hex digits.
	ErrMalformedMail = errors.New("message: malformed mail")
	// ErrNoSenderHeader: the mail has no DSEP-Sender header field, so
	// nobody can tell whose key to check the signature with.
	ErrNoSenderHeader = errors.New("message: the mail has no DSEP-Sender header")
	// ErrSenderLookup: OpenOptions.Lookup failed to produce the key
	// DSEP-Sender names. This is a retryable condition (the DHT may be
	// unreachable, or the sender's key record not yet replicated): keep
	// the payload and try Open again later; see IsTemporary.
	ErrSenderLookup = errors.New("message: cannot fetch the sender's key")
	// ErrBadSignature: the signature is not a valid one by a signing key
	// of the sender named in DSEP-Sender at the signature's time (made by
	// another key, expired or revoked at that time, dated in the future,
	// not over this mail, or malformed).
	ErrBadSignature = errors.New("message: bad signature")
	// ErrWrongRecipient: the signed mail does not name the own key in
	// DSEP-Recipient: the sender meant it for someone else, who
	// re-encrypted it ("surreptitious forwarding"), or named no one.
	ErrWrongRecipient = errors.New("message: the mail is addressed to another recipient")
)

// IsTemporary reports whether err is a failure that may go away when Open
// is tried again later with the same payload: today only ErrSenderLookup.
// Every other error of Open is permanent for that payload.
func IsTemporary(err error) bool { return errors.Is(err, ErrSenderLookup) }

// SealOptions are the parties of a payload.
type SealOptions struct {
	// From is the sender's own key, with its (unlocked) secret signing
	// subkey.
	From *address.Key
	// To is the recipient's public key.
	To *address.Key
	// Now is the signing time; zero means time.Now().
	Now time.Time
}

// Seal returns the payload for mail: mail with its DSEP-Recipient and
// DSEP-Sender header fields set (replacing any present), signed by
// From's signing subkey and encrypted to To's encryption subkey, with the
// recipient's key ID hidden. The header is rewritten by go-message (CRLF
// line ends; the other fields byte for byte); the body is kept as given.
// Both keys must be usable DSEP keys at Now.
func Seal(mail []byte, opt SealOptions) ([]byte, error) {
	if opt.From == nil || opt.To == nil {
		return nil, errors.New("message: Seal needs both the sender's key (From) and the recipient's key (To)")
	}
	if !opt.From.HasSecret() {
		return nil, fmt.Errorf("message: the sender key %s has no secret part to sign with", opt.From.Fingerprint())
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	// Check also primes go-crypto's validity caches under the key's lock
	// (see the package comment).
	if err := opt.From.Check(now); err != nil {
		return nil, fmt.Errorf("message: the sender key cannot sign: %w", err)
	}
	if err := opt.To.Check(now); err != nil {
		return nil, fmt.Errorf("message: the recipient key cannot receive: %w", err)
	}
	signed, err := setParties(mail, opt.From.Fingerprint(), opt.To.Fingerprint())
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(signed) + 1024)
	cfg := &packet.Config{
		Time:                   func() time.Time { return now },
		DefaultHash:            crypto.SHA256,
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
	}
	// No file hints: a binary ('b') literal data packet with no file
	// name and date 0, which leak nothing.
	w, err := openpgp.Encrypt(&out, nil, []*openpgp.Entity{opt.To.Entity()}, []*openpgp.Entity{opt.From.Entity()}, nil, cfg)
	if err != nil {
		return nil, fmt.Errorf("message: encrypting to %s: %w", opt.To.Fingerprint(), err)
	}
	if _, err := w.Write(signed); err != nil {
		return nil, fmt.Errorf("message: encrypting: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("message: encrypting: %w", err)
	}
	return out.Bytes(), nil
}

// setParties returns mail with its DSEP-Recipient and DSEP-Sender fields
// set to to and from, at the top of the header.
func setParties(m []byte, from, to address.Fingerprint) ([]byte, error) {
	h, body, err := splitMail(m)
	if err != nil {
		return nil, err
	}
	h.Del(HeaderRecipient)
	h.Del(HeaderSender)
	// AddRaw keeps the field names' spelling (Add would write
	// "Dsep-Sender"); fields added later come first.
	h.AddRaw([]byte(HeaderSender + ": " + from.String() + "\r\n"))
	h.AddRaw([]byte(HeaderRecipient + ": " + to.String() + "\r\n"))
	var b bytes.Buffer
	b.Grow(len(m) + 256)
	if err := textproto.WriteHeader(&b, h); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedMail, err)
	}
	b.Write(body)
	return b.Bytes(), nil
}

// splitMail parses the header of m with go-message and returns it with the
// body that follows the blank line.
func splitMail(m []byte) (textproto.Header, []byte, error) {
	r := bytes.NewReader(m)
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return textproto.Header{}, nil, fmt.Errorf("%w: header: %v", ErrMalformedMail, err)
	}
	consumed := len(m) - br.Buffered() - r.Len()
	return h, m[consumed:], nil
}

// Lookup fetches the public key of the identity whose primary fingerprint
// is primary (a node asks the DHT, through its key cache). An error means
// the key could not be had now; Open reports it as ErrSenderLookup. A
// caller that knows revocations of the key (dsep-rev) should merge them
// into the returned key: Open honours the revocations the key carries.
type Lookup func(ctx context.Context, primary address.Fingerprint) (*address.Key, error)

// OpenOptions are what Open needs.
type OpenOptions struct {
	// Own is the recipient's own key, with its secret encryption subkey.
	Own *address.Key
	// Lookup fetches the sender's key by the fingerprint DSEP-Sender names.
	Lookup Lookup
	// Now is the time of the check; zero means time.Now().
	Now time.Time
	// MaxMail bounds the decrypted (and decompressed) mail; 0 means
	// DefaultMaxMail.
	MaxMail int64
}

// Opened is a payload that decrypted, verified, and was meant for the
// own key.
type Opened struct {
	// Mail is the mail exactly as the sender signed it, DSEP header
	// fields included.
	Mail []byte
	// Header is Mail's header (From, To, Subject, Date, Message-Id, …
	// through go-message's accessors).
	Header mail.Header
	// Sender is the primary fingerprint of the signer, as DSEP-Sender
	// names it; SenderKey is its key as Lookup returned it.
	Sender    address.Fingerprint
	SenderKey *address.Key
	// Recipient is the own key's primary fingerprint (DSEP-Recipient).
	Recipient address.Fingerprint
	// SignedAt is the signature's creation time.
	SignedAt time.Time
	// Signature is the signature packet, re-encoded by go-crypto: kept
	// with the mail, it lets anyone holding SenderKey check it again.
	Signature []byte

	bodyStart int
}

// Body returns the body of the mail (what follows the header's blank
// line).
func (o *Opened) Body() []byte { return o.Mail[o.bodyStart:] }

// Open decrypts payload with the own key, checks its signature by the key
// of the sender named in DSEP-Sender (fetched with Lookup), and requires
// DSEP-Recipient to name the own key. The payload is decrypted once; the
// mail is trusted only after the signature verified. Errors wrap one of
// the Err* values of this package (see each); only ErrSenderLookup is
// temporary. A failure of the own key itself (unusable at Now) is
// reported as such, wrapping address errors.
func Open(ctx context.Context, payload []byte, opt OpenOptions) (*Opened, error) {
	if opt.Own == nil || !opt.Own.HasSecret() {
		return nil, errors.New("message: Open needs the recipient's own key with its secret part")
	}
	if opt.Lookup == nil {
		return nil, errors.New("message: Open needs a Lookup for the sender's key")
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	maxMail := opt.MaxMail
	if maxMail <= 0 {
		maxMail = DefaultMaxMail
	}
	// Check also primes go-crypto's validity caches under the key's lock
	// (see the package comment).
	if err := opt.Own.Check(now); err != nil {
		return nil, fmt.Errorf("message: the own key cannot decrypt: %w", err)
	}
	m, sig, err := decrypt(payload, opt.Own, now, maxMail)
	if err != nil {
		return nil, err
	}
	h, body, err := splitMail(m)
	if err != nil {
		return nil, err
	}
	sender, ok, err := partyOf(h, HeaderSender)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNoSenderHeader
	}
	recipient, hasRecipient, err := partyOf(h, HeaderRecipient)
	if err != nil {
		return nil, err
	}
	if sig.SigType != packet.SigTypeBinary {
		return nil, fmt.Errorf("%w: signature type %#x, want a binary-document signature (0x00)", ErrBadSignature, uint8(sig.SigType))
	}
	if sig.CreationTime.After(now.Add(MaxClockSkew)) {
		return nil, fmt.Errorf("%w: the signature is dated %s, in the future", ErrBadSignature, sig.CreationTime.UTC().Format(time.RFC3339))
	}
	var sigBytes bytes.Buffer
	if err := serializeSig(&sigBytes, sig); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}

	key, err := opt.Lookup(ctx, sender)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrSenderLookup, sender, err)
	}
	if key == nil || key.Fingerprint() != sender {
		return nil, fmt.Errorf("%w %s: the lookup returned another key", ErrSenderLookup, sender)
	}
	// VerifyDetached checks, under the key's lock, that a signing key of
	// the sender valid at the signature's time made it, over exactly m,
	// and that it has not expired at now. A v4 signature over literal
	// data covers the data alone, as a detached one does.
	if err := key.VerifyDetached("", m, sigBytes.Bytes(), now); err != nil {
		return nil, fmt.Errorf("%w: not a valid signature by %s: %v", ErrBadSignature, sender, err)
	}

	own := opt.Own.Fingerprint()
	switch {
	case !hasRecipient:
		return nil, fmt.Errorf("%w: the signed mail names no %s", ErrWrongRecipient, HeaderRecipient)
	case recipient != own:
		return nil, fmt.Errorf("%w: %s signed it for %s, not for %s", ErrWrongRecipient, sender, recipient, own)
	}
	return &Opened{
		Mail:      m,
		Header:    mail.Header{Header: gomessage.Header{Header: h}},
		Sender:    sender,
		SenderKey: key,
		Recipient: recipient,
		SignedAt:  sig.CreationTime,
		Signature: sigBytes.Bytes(),
		bodyStart: len(m) - len(body),
	}, nil
}

// serializeSig re-encodes a parsed signature packet; go-crypto panics on
// algorithms it parses but cannot write.
func serializeSig(w io.Writer, sig *packet.Signature) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed signature packet: %v", p)
		}
	}()
	return sig.Serialize(w)
}

// partyOf returns the fingerprint in header field name: absent (ok false),
// or exactly one field of 40 lower-case hex digits.
func partyOf(h textproto.Header, name string) (f address.Fingerprint, ok bool, err error) {
	vs := h.Values(name)
	switch len(vs) {
	case 0:
		return f, false, nil
	case 1:
	default:
		return f, false, fmt.Errorf("%w: %d %s header fields", ErrMalformedMail, len(vs), name)
	}
	v := vs[0]
	if !lowerHex40(v) {
		return f, false, fmt.Errorf("%w: %s is %.60q, not 40 lower-case hex digits", ErrMalformedMail, name, v)
	}
	f, err = address.ParseFingerprint(v)
	if err != nil {
		return f, false, fmt.Errorf("%w: %s: %v", ErrMalformedMail, name, err)
	}
	return f, true, nil
}

func lowerHex40(s string) bool {
	if len(s) != 2*address.FingerprintSize {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// errTooManyPackets aborts go-crypto's parse from inside the key ring.
type errTooManyPackets struct{}

// ownRing is the key ring Open hands go-crypto: the own key only. It
// counts go-crypto's questions (one per session key and one-pass
// signature packet) and aborts the parse past maxKeyLookups.
type ownRing struct {
	list  openpgp.EntityList
	calls int
}

func (r *ownRing) count() {
	r.calls++
	if r.calls > maxKeyLookups {
		panic(errTooManyPackets{})
	}
}

func (r *ownRing) KeysById(id uint64) []openpgp.Key {
	r.count()
	return r.list.KeysById(id)
}

func (r *ownRing) EntitiesById(id uint64) []*openpgp.Entity {
	r.count()
	return r.list.EntitiesById(id)
}

// decrypt decrypts payload with own and returns the literal data (at most
// maxMail bytes) and its one signature, unverified: the signer's key is
// not known yet.
func decrypt(payload []byte, own *address.Key, now time.Time, maxMail int64) (m []byte, sig *packet.Signature, err error) {
	defer func() {
		if p := recover(); p != nil {
			m, sig = nil, nil
			if _, ok := p.(errTooManyPackets); ok {
				err = fmt.Errorf("%w: more than %d session key and one-pass signature packets", ErrDecrypt, maxKeyLookups)
				return
			}
			err = fmt.Errorf("%w: malformed OpenPGP message: %v", ErrDecrypt, p)
		}
	}()
	limit := maxMail + decompressSlack
	cfg := &packet.Config{
		Time:                       func() time.Time { return now },
		MaxDecompressedMessageSize: &limit,
	}
	ring := &ownRing{list: openpgp.EntityList{own.Entity()}}
	md, err := openpgp.ReadMessage(bytes.NewReader(payload), ring, nil, cfg)
	if err != nil {
		if errors.Is(err, pgperrors.ErrKeyIncorrect) {
			return nil, nil, fmt.Errorf("%w: not encrypted to key %s", ErrDecrypt, own.Fingerprint())
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	if !md.IsEncrypted || md.DecryptedWith.Entity == nil {
		return nil, nil, fmt.Errorf("%w: the payload is not encrypted", ErrDecrypt)
	}
	var b bytes.Buffer
	b.Grow(int(min(int64(len(payload)), maxMail+1)))
	if _, err := b.ReadFrom(io.LimitReader(md.UnverifiedBody, maxMail+1)); err != nil {
		// Failed integrity checks (MDC, AEAD) end up here, as do parse
		// errors inside the encryption, which go-crypto makes generic.
		return nil, nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	if int64(b.Len()) > maxMail {
		return nil, nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, maxMail)
	}
	if !md.IsSigned || len(md.SignatureCandidates) == 0 {
		return nil, nil, ErrUnsigned
	}
	if n := len(md.SignatureCandidates); n != 1 {
		return nil, nil, fmt.Errorf("%w: %d signatures, want one", ErrBadSignature, n)
	}
	c := md.SignatureCandidates[0]
	s := c.CorrespondingSig
	if s == nil {
		return nil, nil, fmt.Errorf("%w: the signature packet is missing or malformed", ErrBadSignature)
	}
	// The one-pass signature packet must announce this very signature.
	if s.IssuerKeyId == nil || *s.IssuerKeyId != c.IssuerKeyId || s.SigType != c.SigType ||
		s.Hash != c.HashAlgorithm || s.PubKeyAlgo != c.PubKeyAlgo {
		return nil, nil, fmt.Errorf("%w: the signature does not match its one-pass signature packet", ErrBadSignature)
	}
	return b.Bytes(), s, nil
}
