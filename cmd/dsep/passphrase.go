package main

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/term"
)

// passphrase returns the passphrase from $DSEP_PASSPHRASE, or asks for it
// on the terminal (twice when confirm is set). It never echoes it and never
// reads it from standard input, which commands use for data.
func (a *app) passphrase(prompt string, confirm bool) ([]byte, error) {
	if p := os.Getenv("DSEP_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	// Ask only when a person is plausibly there: standard input or error
	// is a terminal. Scripts and services get an error, never a hang.
	interactive := isTerminal(a.stdin) || isTerminal(a.stderr)
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !interactive {
		if tty != nil {
			tty.Close()
		}
		return nil, fail("set DSEP_PASSPHRASE, or run the command in a terminal", "a passphrase is needed and there is no terminal to ask for it")
	}
	defer tty.Close()
	read := func(p string) ([]byte, error) {
		fmt.Fprint(tty, p)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return b, err
	}
	p, err := read(prompt)
	if err != nil {
		return nil, fmt.Errorf("reading passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, fail("type a passphrase, or use --insecure-no-passphrase for a throw-away test identity", "empty passphrase")
	}
	if confirm {
		q, err := read("Repeat passphrase: ")
		if err != nil {
			return nil, fmt.Errorf("reading passphrase: %w", err)
		}
		if !bytes.Equal(p, q) {
			return nil, fail("run the command again", "the passphrases do not match")
		}
	}
	return p, nil
}

func isTerminal(x any) bool {
	f, ok := x.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
