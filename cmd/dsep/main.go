// Command dsep is the one binary of the Distributed Secure Email Protocol:
// identities, domain bindings, the address book and (in later releases) the
// node, the gateway and the local test network.
//
// Run `dsep --help` for the commands and examples.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time: go build -ldflags "-X main.version=v0.1.0".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one dsep command line and returns the exit status. It is
// what main and the script tests call.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp(stdin, stdout, stderr)
	root := app.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ex *exitError
	if errors.As(err, &ex) {
		if ex.msg != "" {
			printError(stderr, ex.msg, ex.hint)
		}
		return ex.code
	}
	var ce *cliError
	if errors.As(err, &ce) {
		printError(stderr, ce.msg, ce.hint)
		return 1
	}
	printError(stderr, err.Error(), "")
	return 1
}

func printError(w io.Writer, msg, hint string) {
	fmt.Fprintf(w, "dsep: error: %s\n", msg)
	if hint != "" {
		fmt.Fprintf(w, "dsep: hint: %s\n", hint)
	}
}

// cliError is a failure with a hint for the user.
type cliError struct {
	msg, hint string
	err       error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

// fail builds a cliError; format applies to the message only.
func fail(hint string, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &cliError{msg: err.Error(), hint: hint, err: errors.Unwrap(err)}
}

// exitError ends a command with a status other than 1 or after output that
// already explained the failure (msg may be empty).
type exitError struct {
	code      int
	msg, hint string
}

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
