package stamp

import (
	"testing"
	"time"

	"github.com/dsep-project/dsep/testnet/testtool"
)

// TestMain fails the package if goroutines (such as mint workers) outlive
// the tests.
func TestMain(m *testing.M) { testtool.Main(m, 0, 2*time.Second) }
