package record

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules keeps the package pure (DESIGN.md: address ← dht): no
// I/O packages, nothing of ours but address.
func TestImportRules(t *testing.T) {
	const mod = "github.com/dsep-project/dsep/"
	forbidden := []string{"os", "os/exec", "net", "net/http", "io/fs", "github.com/miekg/dns", "github.com/dgraph-io/badger"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
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
			for _, bad := range forbidden {
				if p == bad || strings.HasPrefix(p, bad+"/") {
					t.Errorf("%s imports %s: dht/record is pure", f, p)
				}
			}
			if strings.HasPrefix(p, mod) && p != mod+"address" {
				t.Errorf("%s imports %s: only address of ours is allowed", f, p)
			}
		}
	}
}
