package control

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fakeBook is a Backend with an address book of one contact.
type fakeBook struct {
	*fakeBackend
	mu    sync.Mutex
	calls []string
	c     Contact
}

func (f *fakeBook) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeBook) get(email string) (*Contact, error) {
	if email != f.c.Email {
		return nil, Errorf(http.StatusNotFound, "verify the address first", "%s is not in your address book", email)
	}
	c := f.c
	return &c, nil
}

func (f *fakeBook) Contacts(ctx context.Context) ([]Contact, error) {
	f.record("list")
	return []Contact{f.c}, nil
}

func (f *fakeBook) Contact(ctx context.Context, email string) (*Contact, error) {
	f.record("show " + email)
	return f.get(email)
}

func (f *fakeBook) ApproveContact(ctx context.Context, email string) (*Contact, error) {
	f.record("approve " + email)
	return f.get(email)
}

func (f *fakeBook) BlockContact(ctx context.Context, email, reason string) (*Contact, error) {
	f.record("block " + email + " " + reason)
	return f.get(email)
}

func (f *fakeBook) VerifyContact(ctx context.Context, email, fingerprint string) (*Contact, error) {
	f.record("verify " + email + " " + fingerprint)
	return f.get(email)
}

func TestContacts(t *testing.T) {
	fb := &fakeBook{fakeBackend: canned(), c: Contact{
		Email: "bob/x@example.org", Key: strings.Repeat("02", 20), KeyAddress: "k@dsep.alt", State: "conflict",
		FirstSeen: t0, Updated: t0, Previous: []string{strings.Repeat("03", 20)}, Pending: strings.Repeat("04", 20),
		Warning: "WARNING: the key changed\n",
	}}
	_, path := serve(t, fb)
	c := dial(t, path)
	ctx := context.Background()

	list, err := c.Contacts(ctx)
	if err != nil || !reflect.DeepEqual(list, []Contact{fb.c}) {
		t.Fatalf("Contacts: %v %+v", err, list)
	}
	for _, call := range []func() (*Contact, error){
		func() (*Contact, error) { return c.Contact(ctx, fb.c.Email) },
		func() (*Contact, error) { return c.ApproveContact(ctx, fb.c.Email) },
		func() (*Contact, error) { return c.BlockContact(ctx, fb.c.Email, "spam & more") },
		func() (*Contact, error) { return c.VerifyContact(ctx, fb.c.Email, "0202 0202") },
	} {
		got, err := call()
		if err != nil || !reflect.DeepEqual(*got, fb.c) {
			t.Fatalf("call: %v %+v", err, got)
		}
	}
	want := []string{"list", "show bob/x@example.org", "approve bob/x@example.org",
		"block bob/x@example.org spam & more", "verify bob/x@example.org 0202 0202"}
	if !reflect.DeepEqual(fb.calls, want) {
		t.Fatalf("calls: %q", fb.calls)
	}

	_, err = c.Contact(ctx, "carol@example.org")
	var e *Error
	if !errors.As(err, &e) || e.Code != http.StatusNotFound || !strings.Contains(e.Message, "carol@example.org") {
		t.Fatalf("unknown contact: %v", err)
	}
	_, err = c.BlockContact(ctx, fb.c.Email, strings.Repeat("x", MaxReasonBytes+1))
	if !errors.As(err, &e) || e.Code != http.StatusBadRequest {
		t.Fatalf("long reason: %v", err)
	}
}

// A backend without an address book answers the contacts calls with 501.
func TestContactsNotServed(t *testing.T) {
	_, path := serve(t, canned())
	c := dial(t, path)
	_, err := c.Contacts(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code != http.StatusNotImplemented {
		t.Fatalf("Contacts: %v", err)
	}
	_, err = c.ApproveContact(context.Background(), "bob@example.org")
	if !errors.As(err, &e) || e.Code != http.StatusNotImplemented {
		t.Fatalf("ApproveContact: %v", err)
	}
}
