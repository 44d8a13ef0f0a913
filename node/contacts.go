package node

import (
	"context"
	"errors"
	"net/http"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/address/book"
	"github.com/dsep-project/dsep/node/control"
)

var _ control.ContactBook = (*backend)(nil)

// ContactInfo is c as the control API and `dsep contacts --json` show it.
func ContactInfo(c *book.Contact) control.Contact {
	j := control.Contact{
		Key: c.Key.String(), KeyAddress: c.Key.KeyAddress().String(), State: string(c.State), DNSSEC: c.DNSSEC,
		FirstSeen: c.FirstSeen.UTC(), Updated: c.Updated.UTC(), Reason: c.Reason, Trusted: c.Trusted(),
		Warning: book.HijackWarning(c),
	}
	if !c.Email.IsZero() {
		j.Email = c.Email.String()
	}
	if !c.Domain.IsZero() {
		j.Domain = c.Domain.String()
	}
	for _, p := range c.Previous {
		j.Previous = append(j.Previous, p.String())
	}
	if c.FollowedFrom != nil {
		j.FollowedFrom = c.FollowedFrom.String()
	}
	if c.Pending != nil {
		j.Pending = c.Pending.String()
	}
	return j
}

// book returns the node's address book, or the error telling the user
// there is none.
func (b *backend) book() (*book.Book, error) {
	if bk := b.cfg.Book; bk != nil {
		return bk, nil
	}
	return nil, control.Errorf(http.StatusServiceUnavailable, "stop the node to use the address book directly",
		"this node runs without the address book")
}

func (b *backend) Contacts(ctx context.Context) ([]control.Contact, error) {
	bk, err := b.book()
	if err != nil {
		return nil, err
	}
	cs, err := bk.List()
	if err != nil {
		return nil, err
	}
	out := make([]control.Contact, 0, len(cs))
	for _, c := range cs {
		out = append(out, ContactInfo(c))
	}
	return out, nil
}

// onContact parses email, runs act on the book and reports the contact
// as it now is; hint is given with a refusal of the book.
func (b *backend) onContact(email, hint string, act func(*book.Book, address.Email) (*book.Contact, error)) (*control.Contact, error) {
	bk, err := b.book()
	if err != nil {
		return nil, err
	}
	e, err := address.ParseEmail(email)
	if err != nil {
		return nil, control.Errorf(http.StatusBadRequest, "give an address like bob@example.org", "%v", err)
	}
	c, err := act(bk, e)
	switch {
	case errors.Is(err, book.ErrNotFound):
		return nil, control.Errorf(http.StatusNotFound, "verify the address first: `dsep verify "+e.String()+" --key KEYFILE`",
			"%s is not in your address book", e)
	case errors.Is(err, book.ErrClosed), errors.Is(err, book.ErrDamaged):
		return nil, err
	case err != nil:
		return nil, control.Errorf(http.StatusConflict, hint, "%v", err)
	}
	info := ContactInfo(c)
	return &info, nil
}

func (b *backend) Contact(ctx context.Context, email string) (*control.Contact, error) {
	return b.onContact(email, "", func(bk *book.Book, e address.Email) (*book.Contact, error) { return bk.Get(e) })
}

func (b *backend) ApproveContact(ctx context.Context, email string) (*control.Contact, error) {
	return b.onContact(email, "`dsep contacts show "+email+"` tells the contact's state",
		func(bk *book.Book, e address.Email) (*book.Contact, error) { return bk.Approve(e, b.now()) })
}

func (b *backend) BlockContact(ctx context.Context, email, reason string) (*control.Contact, error) {
	return b.onContact(email, "", func(bk *book.Book, e address.Email) (*book.Contact, error) { return bk.Block(e, reason, b.now()) })
}

func (b *backend) VerifyContact(ctx context.Context, email, fingerprint string) (*control.Contact, error) {
	f, err := address.ParseFingerprint(fingerprint)
	if err != nil {
		return nil, control.Errorf(http.StatusBadRequest, "give the 40 hex digits the contact read out (spaces allowed)", "%v", err)
	}
	return b.onContact(email, "compare the fingerprint again; do not mark a contact verified on a mismatch",
		func(bk *book.Book, e address.Email) (*book.Contact, error) { return bk.Verify(e, f, b.now()) })
}
