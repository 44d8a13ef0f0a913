package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/address/book"
	"github.com/dsep-project/dsep/node"
	"github.com/dsep-project/dsep/node/control"
	"github.com/spf13/cobra"
)

// contactJSON is a contact as `dsep contacts --json` prints it: the
// control API's form, so the output is the same with or without a running
// node.
type contactJSON = control.Contact

func contactToJSON(c *book.Contact) *contactJSON {
	j := node.ContactInfo(c)
	return &j
}

func (a *app) contactsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "contacts",
		Short: "Your address book: pinned keys, rotations, conflicts",
		Long: `Your address book pins the key of every address you have verified (trust
on first use). States: first-seen (pinned from DNS), verified (you compared
the fingerprint out of band), rotated (followed a key change that both the
old key and the domain vouched for), conflict (a different key without
that backing: blocked until you approve it), blocked.`,
		Example: `  dsep contacts list
  dsep contacts show bob@example.org
  dsep contacts verify bob@example.org "ABCD 1234 …"
  dsep contacts approve bob@example.org
  dsep contacts block spam@example.net`,
	}
	c.AddCommand(a.contactsListCommand(), a.contactsShowCommand(), a.contactsVerifyCommand(),
		a.contactsApproveCommand(), a.contactsBlockCommand())
	return c
}

// withBook runs f with the data directory's address book open.
func (a *app) withBook(f func(*book.Book) error) error {
	d, err := a.openDataDir()
	if err != nil {
		return err
	}
	b, err := a.openBook(d)
	if err != nil {
		return err
	}
	defer b.Close()
	return f(b)
}

// runningNode returns a client for the node running on the data
// directory, which owns the address book while it runs; nil when no node
// runs (the book is then opened directly). The caller closes the client.
func (a *app) runningNode(ctx context.Context) (*control.Client, string, error) {
	cl, dir, err := a.nodeClient()
	if err != nil {
		// No data directory (or an unsafe one): openDataDir says why.
		return nil, dir, nil
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		if errors.Is(err, control.ErrNotRunning) {
			return nil, dir, nil
		}
		return nil, dir, nodeError(dir, err)
	}
	return cl, dir, nil
}

func parseContactEmail(s string) (address.Email, error) {
	e, err := address.ParseEmail(s)
	if err != nil {
		return e, fail("give an address like bob@example.org", "%v", err)
	}
	return e, nil
}

// onContact parses the EMAIL argument, runs the call on the running node
// (remote) or, when none runs, on the book opened directly (act), and
// prints the resulting contact. An unknown contact gets notFound's hint;
// any other failure of act gets hint.
func (a *app) onContact(ctx context.Context, arg, hint string, act func(*book.Book, address.Email) (*book.Contact, error),
	remote func(*control.Client, address.Email) (*control.Contact, error)) error {
	e, err := parseContactEmail(arg)
	if err != nil {
		return err
	}
	cl, dir, err := a.runningNode(ctx)
	if err != nil {
		return err
	}
	if cl != nil {
		defer cl.Close()
		c, err := remote(cl, e)
		if err != nil {
			return nodeError(dir, err)
		}
		return a.printContact(c)
	}
	return a.withBook(func(b *book.Book) error {
		c, err := act(b, e)
		switch {
		case errors.Is(err, book.ErrNotFound):
			return notFound(err, e)
		case err != nil:
			return fail(hint, "%v", err)
		}
		return a.printContact(contactToJSON(c))
	})
}

func notFound(err error, e address.Email) error {
	if errors.Is(err, book.ErrNotFound) {
		return fail("verify the address first: `dsep verify "+e.String()+" --key KEYFILE`", "%s is not in your address book", e)
	}
	return err
}

func (a *app) printContact(j *contactJSON) error {
	if a.jsonOut {
		return a.printJSON(j)
	}
	w := a.stdout
	if j.Email != "" {
		fmt.Fprintf(w, "email        %s\n", j.Email)
	}
	fmt.Fprintf(w, "state        %s\n", j.State)
	fmt.Fprintf(w, "key          %s\n", grouped(j.Key))
	fmt.Fprintf(w, "key address  %s\n", j.KeyAddress)
	if j.Domain != "" {
		method := "DNS, not DNSSEC"
		if j.DNSSEC {
			method = "DNSSEC"
		}
		fmt.Fprintf(w, "domain key   %s (%s)\n", j.Domain, method)
	}
	fmt.Fprintf(w, "first seen   %s\n", j.FirstSeen.Format(time.RFC3339))
	for _, p := range j.Previous {
		fmt.Fprintf(w, "previous     %s\n", p)
	}
	if j.Pending != "" {
		fmt.Fprintf(w, "pending key  %s\n", grouped(j.Pending))
	}
	if j.Reason != "" {
		fmt.Fprintf(w, "reason       %s\n", j.Reason)
	}
	if j.Warning != "" {
		fmt.Fprintf(w, "\n%s\n", j.Warning)
	}
	return nil
}

// grouped prints a fingerprint in gpg's groups (as it came, if it does not
// parse).
func grouped(fpr string) string {
	f, err := address.ParseFingerprint(fpr)
	if err != nil {
		return fpr
	}
	return f.Grouped()
}

func (a *app) contactsListCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List your contacts and their states",
		Example: "  dsep contacts list\n  dsep contacts list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, dir, err := a.runningNode(cmd.Context())
			if err != nil {
				return err
			}
			var cs []control.Contact
			if cl != nil {
				defer cl.Close()
				if cs, err = cl.Contacts(cmd.Context()); err != nil {
					return nodeError(dir, err)
				}
			} else {
				err := a.withBook(func(b *book.Book) error {
					list, err := b.List()
					for _, c := range list {
						cs = append(cs, *contactToJSON(c))
					}
					return err
				})
				if err != nil {
					return err
				}
			}
			if a.jsonOut {
				if cs == nil {
					cs = []control.Contact{}
				}
				return a.printJSON(cs)
			}
			if len(cs) == 0 {
				fmt.Fprintln(a.stdout, "no contacts yet; add one with `dsep verify EMAIL --key KEYFILE`")
				return nil
			}
			for _, c := range cs {
				name := c.Email
				if name == "" {
					name = c.KeyAddress
				}
				fmt.Fprintf(a.stdout, "%-40s %-10s %s\n", name, c.State, c.Key)
			}
			return nil
		},
	}
}

func (a *app) contactsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "show EMAIL",
		Short:   "Show one contact, with any hijack warning",
		Example: "  dsep contacts show bob@example.org",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.onContact(cmd.Context(), args[0], "",
				func(b *book.Book, e address.Email) (*book.Contact, error) { return b.Get(e) },
				func(cl *control.Client, e address.Email) (*control.Contact, error) {
					return cl.Contact(cmd.Context(), e.String())
				})
		},
	}
}

func (a *app) contactsVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify EMAIL FINGERPRINT",
		Short: "Mark a contact verified after comparing the fingerprint out of band",
		Long: `Record that you compared FINGERPRINT with the contact in person or over
another channel you trust. If it is the pending key of a conflict, that key
is taken.`,
		Example: `  dsep contacts verify bob@example.org "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := address.ParseFingerprint(args[1])
			if err != nil {
				return fail("give the 40 hex digits the contact read out (spaces allowed)", "%v", err)
			}
			return a.onContact(cmd.Context(), args[0], "compare the fingerprint again; do not mark a contact verified on a mismatch",
				func(b *book.Book, e address.Email) (*book.Contact, error) { return b.Verify(e, f, time.Now()) },
				func(cl *control.Client, e address.Email) (*control.Contact, error) {
					return cl.VerifyContact(cmd.Context(), e.String(), f.String())
				})
		},
	}
}

func (a *app) contactsApproveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "approve EMAIL",
		Short: "Accept the pending key of a contact in conflict (after the warning)",
		Example: `  dsep contacts show bob@example.org      # read the warning first
  dsep contacts approve bob@example.org`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.onContact(cmd.Context(), args[0], "`dsep contacts show "+args[0]+"` tells the contact's state",
				func(b *book.Book, e address.Email) (*book.Contact, error) { return b.Approve(e, time.Now()) },
				func(cl *control.Client, e address.Email) (*control.Contact, error) {
					return cl.ApproveContact(cmd.Context(), e.String())
				})
		},
	}
}

func (a *app) contactsBlockCommand() *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:     "block EMAIL",
		Short:   "Block a contact: no mail to or from it is trusted",
		Example: "  dsep contacts block mallory@example.net --reason spam",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.onContact(cmd.Context(), args[0], "",
				func(b *book.Book, e address.Email) (*book.Contact, error) { return b.Block(e, reason, time.Now()) },
				func(cl *control.Client, e address.Email) (*control.Contact, error) {
					return cl.BlockContact(cmd.Context(), e.String(), reason)
				})
		},
	}
	c.Flags().StringVar(&reason, "reason", "blocked by the user", "why (shown in contacts show)")
	return c
}
