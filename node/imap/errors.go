package imap

import (
	"context"
	"errors"
	"strings"

	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-imap/v2"
)

// Responses for the usual failures. Their text names what went wrong and
// what to do, and never echoes the client's input.
var (
	errNoMailbox = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
		Text: "No such mailbox"}
	errTryCreate = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate,
		Text: "No such mailbox; create it first"}
	errMailboxExists = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists,
		Text: "A mailbox of that name already exists"}
	errBadName = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
		Text: "Invalid mailbox name: use 1 to 200 bytes of UTF-8 without control characters, '*' or '%', and '/' only between non-empty levels"}
	errSystemMailbox = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
		Text: "INBOX, Sent and Rejected cannot be deleted or renamed"}
	errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "READ-ONLY",
		Text: "The mailbox is open read-only (EXAMINE); SELECT it to change it"}
	errUnavailable = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
		Text: "The mail store is shutting down; try again in a moment"}
	errServer = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug,
		Text: "Internal error in the mail store; the node's log has the details"}
	errExpungeIssued = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "EXPUNGEISSUED",
		Text: "Some of the requested messages no longer exist"}
	errBadSeq = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
		Text: "Message sequence number out of range"}
	errSearchRes = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
		Text: "The $ search result is not supported (no SEARCHRES)"}
	errModSeq = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
		Text: "MODSEQ is not supported (no CONDSTORE)"}
	errNoMessage = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeParse,
		Text: "The message has no valid RFC 5322 header"}
)

// imapError turns an error of the store into a response. Errors that are
// not the client's are logged (they have no secrets: the store's errors
// name records, not contents).
func (s *session) imapError(op string, err error) error {
	var ie *imap.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return err
	case errors.Is(err, store.ErrNoFolder):
		return errNoMailbox
	case errors.Is(err, store.ErrFolderExists):
		return errMailboxExists
	case errors.Is(err, store.ErrFolderName):
		return errBadName
	case errors.Is(err, store.ErrSystemFolder):
		return errSystemMailbox
	case errors.Is(err, store.ErrNotFound):
		return errExpungeIssued
	case errors.Is(err, store.ErrInvalid):
		code := imap.ResponseCodeCannot
		if strings.Contains(err.Error(), "limit") {
			code = imap.ResponseCodeLimit
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: clean(err.Error())}
	case errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errUnavailable
	}
	s.srv.log.Error("imap: "+op+" failed", "user", s.user, "err", err)
	return errServer
}

// clean makes an error's text fit a response: without the package prefix
// and with anything but printable ASCII replaced.
func clean(s string) string {
	s = strings.TrimPrefix(s, "store: ")
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c > '~' || c == '[' || c == ']' {
			b[i] = '?'
		}
	}
	if len(b) > 200 {
		b = append(b[:197], "..."...)
	}
	if len(b) > 0 && b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}
