package testtool

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// Main runs a package's tests, then checks that they left no goroutine
// behind: when the tests passed and the binary is not fuzzing (the fuzzing
// engine keeps its own goroutines), it waits up to settle for the count to
// come back within slack of what it was before, and otherwise fails the
// run, printing every goroutine's stack. It does not return.
func Main(m *testing.M, slack int, settle time.Duration) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !fuzzing() {
		deadline := time.Now().Add(settle)
		n := runtime.NumGoroutine()
		for n > before+slack && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		if n > before+slack {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines before the tests, %d after (slack %d)\n%s\n", before, n, slack, buf)
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether the test binary runs the fuzzing engine.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}
