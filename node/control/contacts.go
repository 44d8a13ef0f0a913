package control

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// The address book calls of the control API, served when the Backend
// also implements ContactBook (a node with its address book open):
//
//	GET  /v1/contacts                              {"contacts": [Contact…]}
//	GET  /v1/contacts/{email}                      Contact
//	POST /v1/contacts/{email}/approve              Contact
//	POST /v1/contacts/{email}/block?reason=R       Contact
//	POST /v1/contacts/{email}/verify?fingerprint=F Contact
//
// {email} is an email or key address, path-escaped. A contact not in the
// book is an *Error with Code 404.

// MaxReasonBytes bounds the reason given to BlockContact.
const MaxReasonBytes = 2 << 10

// ContactBook is the optional part of a Backend that serves the user's
// address book. Every method may be called concurrently; email is an email
// or key address as the user typed it (the server has checked its length
// and that it holds no control characters). A contact not in the book is
// an *Error with Code 404; a request the book refuses (nothing to approve,
// a fingerprint that matches no key of the contact, …) an *Error with
// Code 409.
type ContactBook interface {
	// Contacts returns every contact, sorted as the book lists them.
	Contacts(ctx context.Context) ([]Contact, error)
	// Contact returns the contact pinned for email.
	Contact(ctx context.Context, email string) (*Contact, error)
	// ApproveContact accepts the pending key of a contact in conflict,
	// or unblocks a blocked one (book.Book.Approve).
	ApproveContact(ctx context.Context, email string) (*Contact, error)
	// BlockContact blocks the contact with the user's reason
	// (book.Book.Block).
	BlockContact(ctx context.Context, email, reason string) (*Contact, error)
	// VerifyContact records that the user compared fingerprint (40 hex
	// digits, spaces allowed) with the contact out of band
	// (book.Book.Verify).
	VerifyContact(ctx context.Context, email, fingerprint string) (*Contact, error)
}

// Contact is one address book entry, as `dsep contacts show --json`
// prints it. Fingerprints are 40 lower-case hex digits.
type Contact struct {
	Email        string    `json:"email,omitempty"` // "" for a contact pinned by key address only
	Key          string    `json:"key"`
	KeyAddress   string    `json:"key_address"`
	State        string    `json:"state"` // first-seen, verified, rotated, conflict, blocked
	Domain       string    `json:"domain_key,omitempty"`
	DNSSEC       bool      `json:"dnssec"`
	FirstSeen    time.Time `json:"first_seen"`
	Updated      time.Time `json:"updated"`
	Previous     []string  `json:"previous_keys,omitempty"`
	FollowedFrom string    `json:"followed_from,omitempty"`
	Pending      string    `json:"pending_key,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Trusted      bool      `json:"trusted"`
	Warning      string    `json:"warning,omitempty"` // the hijack warning of a contact in conflict
}

type contactsResponse struct {
	Contacts []Contact `json:"contacts"`
}

func (s *Server) contactBook(w http.ResponseWriter, r *http.Request) (ContactBook, bool) {
	cb, ok := s.b.(ContactBook)
	if !ok {
		s.writeError(w, r, Errorf(http.StatusNotImplemented, "stop the node to use the address book directly", "the node does not serve the address book"))
	}
	return cb, ok
}

// contactEmail checks the {email} path value.
func contactEmail(r *http.Request) (string, *Error) {
	e := r.PathValue("email")
	if e == "" || len(e) > MaxAddressBytes || !utf8.ValidString(e) || strings.ContainsFunc(e, isControl) {
		return "", Errorf(http.StatusBadRequest, "give an address like bob@example.org", "bad contact address %q", trunc(e, 80))
	}
	return e, nil
}

func (s *Server) contacts(w http.ResponseWriter, r *http.Request) {
	if _, e := query(r, nil, ""); e != nil {
		s.writeError(w, r, e)
		return
	}
	cb, ok := s.contactBook(w, r)
	if !ok {
		return
	}
	cs, err := cb.Contacts(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if cs == nil {
		cs = []Contact{}
	}
	s.writeJSON(w, r, contactsResponse{Contacts: cs})
}

// contactCall serves the calls on one contact: allowed are the query
// parameters the call takes, act runs it.
func (s *Server) contactCall(allowed []string, act func(ctx context.Context, cb ContactBook, email string, q url.Values) (*Contact, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, e := query(r, allowed, "")
		if e != nil {
			s.writeError(w, r, e)
			return
		}
		email, e := contactEmail(r)
		if e != nil {
			s.writeError(w, r, e)
			return
		}
		cb, ok := s.contactBook(w, r)
		if !ok {
			return
		}
		c, err := act(r.Context(), cb, email, q)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, c)
	}
}

func (s *Server) registerContacts(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/contacts", s.contacts)
	mux.HandleFunc("GET /v1/contacts/{email}", s.contactCall(nil, func(ctx context.Context, cb ContactBook, email string, _ url.Values) (*Contact, error) {
		return cb.Contact(ctx, email)
	}))
	mux.HandleFunc("POST /v1/contacts/{email}/approve", s.contactCall(nil, func(ctx context.Context, cb ContactBook, email string, _ url.Values) (*Contact, error) {
		return cb.ApproveContact(ctx, email)
	}))
	mux.HandleFunc("POST /v1/contacts/{email}/block", s.contactCall([]string{"reason"}, func(ctx context.Context, cb ContactBook, email string, q url.Values) (*Contact, error) {
		reason := q.Get("reason")
		if len(reason) > MaxReasonBytes || !utf8.ValidString(reason) {
			return nil, Errorf(http.StatusBadRequest, "give a shorter reason", "bad reason (at most %d bytes of UTF-8)", MaxReasonBytes)
		}
		return cb.BlockContact(ctx, email, reason)
	}))
	mux.HandleFunc("POST /v1/contacts/{email}/verify", s.contactCall([]string{"fingerprint"}, func(ctx context.Context, cb ContactBook, email string, q url.Values) (*Contact, error) {
		f := q.Get("fingerprint")
		if f == "" || len(f) > 128 {
			return nil, Errorf(http.StatusBadRequest, "give the 40 hex digits the contact read out", "bad fingerprint %q", trunc(f, 80))
		}
		return cb.VerifyContact(ctx, email, f)
	}))
}

var _ ContactBook = (*Client)(nil)

// Contacts implements ContactBook.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var res contactsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/contacts", nil, nil, maxSmallResponse, &res); err != nil {
		return nil, err
	}
	return res.Contacts, nil
}

func (c *Client) contactCall(ctx context.Context, method, email, op string, q url.Values) (*Contact, error) {
	p := "/v1/contacts/" + url.PathEscape(email)
	if op != "" {
		p += "/" + op
	}
	var res Contact
	if err := c.do(ctx, method, p, q, nil, maxSmallResponse, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Contact implements ContactBook.
func (c *Client) Contact(ctx context.Context, email string) (*Contact, error) {
	return c.contactCall(ctx, http.MethodGet, email, "", nil)
}

// ApproveContact implements ContactBook.
func (c *Client) ApproveContact(ctx context.Context, email string) (*Contact, error) {
	return c.contactCall(ctx, http.MethodPost, email, "approve", nil)
}

// BlockContact implements ContactBook.
func (c *Client) BlockContact(ctx context.Context, email, reason string) (*Contact, error) {
	q := url.Values{}
	if reason != "" {
		q.Set("reason", reason)
	}
	return c.contactCall(ctx, http.MethodPost, email, "block", q)
}

// VerifyContact implements ContactBook.
func (c *Client) VerifyContact(ctx context.Context, email, fingerprint string) (*Contact, error) {
	return c.contactCall(ctx, http.MethodPost, email, "verify", url.Values{"fingerprint": {fingerprint}})
}
