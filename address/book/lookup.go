package book

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dsep-project/dsep/address"
)

// ownerOf returns the database key of the contact an address names: an
// email, or a key address (…@dsep.alt) for a contact pinned by key.
func ownerOf(e address.Email) (string, error) {
	if e.IsZero() {
		return "", errors.New("book: no address given")
	}
	if e.IsKeyAddress() {
		ka, err := address.ParseKeyAddress(e.String())
		if err != nil {
			return "", fmt.Errorf("book: %w", err)
		}
		return keyContactKey(ka.Fingerprint()), nil
	}
	return contactKey(e), nil
}

func notFound(e address.Email) error {
	return fmt.Errorf("%w: no contact %s in the address book", ErrNotFound, e)
}

// loadContact returns the record of the contact e names, or an error
// wrapping ErrNotFound.
func loadContact(txn *badger.Txn, e address.Email) (*record, error) {
	owner, err := ownerOf(e)
	if err != nil {
		return nil, err
	}
	r, err := getRecord(txn, owner)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound(e)
	}
	return r, err
}

// Get returns the contact pinned for email. email may also be a key
// address (…@dsep.alt), naming a contact pinned by key address. A contact
// that is not in the book gives an error wrapping ErrNotFound.
func (b *Book) Get(email address.Email) (*Contact, error) {
	var c *Contact
	err := b.view(func(txn *badger.Txn) error {
		r, err := loadContact(txn, email)
		if err != nil {
			return err
		}
		c, err = contactOf(txn, r)
		return err
	})
	return c, err
}

// GetByKey returns the contact whose Key or Pending key is fpr, or the
// contact pinned by the key address of fpr. When several contacts match
// (one key may be bound to several addresses), one whose Key is fpr comes
// before one whose Pending key is, and then the order of List applies.
// None gives an error wrapping ErrNotFound.
func (b *Book) GetByKey(fpr address.Fingerprint) (*Contact, error) {
	var c *Contact
	err := b.view(func(txn *badger.Txn) error {
		cs, err := byKey(txn, fpr)
		if err != nil {
			return err
		}
		if len(cs) > 0 {
			c = cs[0]
			return nil
		}
		r, err := getRecord(txn, keyContactKey(fpr))
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: no contact with key %s in the address book", ErrNotFound, fpr)
		}
		if err != nil {
			return err
		}
		c, err = contactOf(txn, r)
		return err
	})
	return c, err
}

// ByKey returns every contact whose Key or Pending key is fpr, in the
// order GetByKey prefers them; none is not an error.
func (b *Book) ByKey(fpr address.Fingerprint) ([]*Contact, error) {
	var cs []*Contact
	err := b.view(func(txn *badger.Txn) error {
		var err error
		cs, err = byKey(txn, fpr)
		return err
	})
	return cs, err
}

func byKey(txn *badger.Txn, fpr address.Fingerprint) ([]*Contact, error) {
	owners, err := indexOwners(txn, fpr)
	if err != nil {
		return nil, err
	}
	var cs []*Contact
	for _, o := range owners {
		r, err := getRecord(txn, o)
		if errors.Is(err, ErrNotFound) {
			continue // a stale index entry; harmless
		}
		if err != nil {
			return nil, err
		}
		if r.Key != fpr && (r.Pending == nil || *r.Pending != fpr) {
			continue // indexed as a key it followed from
		}
		c, err := contactOf(txn, r)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	slices.SortStableFunc(cs, func(x, y *Contact) int {
		if (x.Key == fpr) != (y.Key == fpr) {
			if x.Key == fpr {
				return -1
			}
			return 1
		}
		return compareContacts(x, y)
	})
	return cs, nil
}

func compareContacts(x, y *Contact) int {
	if c := strings.Compare(x.Email.String(), y.Email.String()); c != 0 {
		return c
	}
	if c := strings.Compare(x.Key.String(), y.Key.String()); c != 0 {
		return c
	}
	return strings.Compare(x.Address.Fingerprint().String(), y.Address.Fingerprint().String())
}

// List returns every contact, sorted by email (contacts pinned by key
// address, which have none, first) and then by key.
func (b *Book) List() ([]*Contact, error) {
	var cs []*Contact
	err := b.view(func(txn *badger.Txn) error {
		var owners []string
		for _, prefix := range []string{prefixContact, prefixKey} {
			opt := badger.DefaultIteratorOptions
			opt.PrefetchValues = false
			opt.Prefix = []byte(prefix)
			it := txn.NewIterator(opt)
			for it.Rewind(); it.Valid(); it.Next() {
				k := string(it.Item().Key())
				if prefix == prefixKey && len(k) != len(prefixKey)+2*address.FingerprintSize {
					continue // an index entry k/<fpr>/…
				}
				owners = append(owners, k)
			}
			it.Close()
		}
		for _, o := range owners {
			r, err := getRecord(txn, o)
			if err != nil {
				return err
			}
			c, err := contactOf(txn, r)
			if err != nil {
				return err
			}
			cs = append(cs, c)
		}
		return nil
	})
	slices.SortFunc(cs, compareContacts)
	return cs, err
}
