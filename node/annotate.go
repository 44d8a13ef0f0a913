package node

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/dsep-project/dsep/node/control"
	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-message/textproto"
)

// authServID names this node in the Authentication-Results header it
// writes (RFC 8601 authserv-id). Mail clients and filters should trust
// only this one: incoming headers of the name are removed first.
const authServID = "dsep.local"

// Header fields the node writes and therefore removes from what it
// receives, so a sender cannot plant them.
var ownHeaders = []string{"Authentication-Results", "DSEP-Warning"}

// annotate returns mail as filed: the Authentication-Results header with
// the node's verdict on top, a DSEP-Warning header and a subject marker
// when the sender is not verified, and no incoming header of those
// names. The rest of the mail is kept byte for byte.
func annotate(mail []byte, v store.Verification, from string) ([]byte, error) {
	br := bufio.NewReader(bytes.NewReader(mail))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("node: reading the mail header: %w", err)
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return nil, err
	}
	for _, k := range ownHeaders {
		h.Del(k)
	}
	result, comment := authResult(v)
	ar := fmt.Sprintf("%s; dsep=%s (%s)", authServID, result, oneLine(comment))
	if from != "" {
		ar += " header.from=" + from
	}
	if warn, mark := warning(v); warn != "" {
		h.Add("DSEP-Warning", warn)
		if s := h.Get("Subject"); !strings.HasPrefix(s, mark) {
			h.Set("Subject", mark+" "+s)
		}
	}
	h.Add("Authentication-Results", ar)
	var out bytes.Buffer
	if err := textproto.WriteHeader(&out, h); err != nil {
		return nil, err
	}
	out.Write(body)
	return out.Bytes(), nil
}

// authResult maps a verdict to an RFC 8601 result and a comment.
func authResult(v store.Verification) (result, comment string) {
	switch v.Status {
	case control.VerifyVerified:
		return "pass", "key " + v.Signer + "; " + v.Detail
	case control.VerifySuperseded:
		return "neutral", "key " + v.Signer + "; " + v.Detail
	case control.VerifyMismatch:
		return "fail", "key " + v.Signer + "; " + v.Detail
	case control.VerifyUnchecked:
		return "temperror", "key " + v.Signer + "; " + v.Detail
	}
	return "none", "key " + v.Signer + "; " + v.Detail
}

// warning is the DSEP-Warning text and subject marker for a verdict a
// reader must notice ("" for a verified sender).
func warning(v store.Verification) (warn, mark string) {
	switch v.Status {
	case control.VerifyVerified:
		return "", ""
	case control.VerifySuperseded:
		return "signed with the sender's replaced key: " + v.Detail, "[DSEP: old key]"
	case control.VerifyMismatch:
		return "the From address is bound to another key: possible forgery. " + v.Detail, "[DSEP: FORGED?]"
	case control.VerifyUnchecked:
		return "the sender could not be checked: " + v.Detail, "[DSEP: unchecked]"
	}
	return "the sender's address is not bound to the signing key: " + v.Detail, "[DSEP: unverified]"
}

// oneLine makes s safe in a header comment.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '(' || r == ')':
			return '\''
		case r < 0x20 || r == 0x7f:
			return ' '
		}
		return r
	}, s)
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
