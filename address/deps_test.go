package address

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules enforces the layering of DESIGN.md: package address is
// pure (no I/O, nothing of ours), and the leaf helpers import nothing of
// ours. Paths are relative to this package's directory.
func TestImportRules(t *testing.T) {
	const mod = "github.com/dsep-project/dsep/"
	rules := []struct {
		dir        string
		forbidden  []string // import paths or prefixes
		allowedOur []string // our packages it may import
	}{
		{".", []string{"os", "os/exec", "net", "net/http", "io/fs", "github.com/miekg/dns", "github.com/dgraph-io/badger"}, nil},
		{"dns", []string{"github.com/dgraph-io/badger"}, nil},
		{"book", []string{"net", "github.com/miekg/dns"}, []string{mod + "address"}},
		{"../testnet/dnstest", []string{"testing"}, nil},
		{"../testnet/testtool", nil, nil},
	}
	for _, r := range rules {
		files, err := filepath.Glob(filepath.Join(r.dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", r.dir)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range af.Imports {
				p, _ := strconv.Unquote(im.Path.Value)
				for _, bad := range r.forbidden {
					if p == bad || strings.HasPrefix(p, bad+"/") {
						t.Errorf("%s imports %s, which its layer forbids", f, p)
					}
				}
				if strings.HasPrefix(p, mod) {
					ok := false
					for _, a := range r.allowedOur {
						ok = ok || p == a
					}
					if !ok {
						t.Errorf("%s imports %s: only %v of ours is allowed there", f, p, r.allowedOur)
					}
				}
			}
		}
	}
}
