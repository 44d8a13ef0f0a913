// Package testtool finds the outside programs (gpg, sq, hashcash, postfix,
// python3) that interop tests run. It imports nothing of ours.
//
// A test that needs a tool calls Require. When the tool is missing the test
// is skipped with a loud message naming the Debian package to install —
// unless the CI environment variable is set, in which case the test fails:
// under CI a missing tool is a broken install step, never a skip.
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// packages maps a tool to the Debian package that provides it.
var packages = map[string]string{
	"gpg":      "gnupg",
	"gpgconf":  "gnupg",
	"sq":       "sq",
	"hashcash": "hashcash",
	"python3":  "python3",
	"postfix":  "postfix",
}

// Require returns the path of the program name, or ends the test: Fatal
// under CI, Skip (loudly) otherwise.
func Require(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	pkg := packages[name]
	if pkg == "" {
		pkg = name
	}
	msg := fmt.Sprintf("%s not found in PATH: install it with `apt-get install %s` (or run `make deps`)", name, pkg)
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s", msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n\n", t.Name(), msg)
	t.Skip(msg)
	return ""
}
