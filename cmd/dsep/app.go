package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// app holds what every command shares: the streams and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	dataFlag string // --data
	jsonOut  bool   // --json
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr}
}

const rootLong = `dsep is email without mail providers: your node holds your OpenPGP
identity, your domain binds your address to it through one DNS TXT record,
and anyone can check that binding.

Data lives in a data directory: --data DIR, else $DSEP_DATA, else
$XDG_DATA_HOME/dsep (~/.local/share/dsep). The passphrase that protects
your keys comes from $DSEP_PASSPHRASE or a prompt.`

const rootExample = `  # A domain owner creates the domain key and publishes the TXT record it prints
  dsep --data ./example.org domain init --domain example.org

  # Alice creates her identity and sends her public key to the domain owner
  dsep --data ./alice init --email alice@example.org --name "Alice Example"
  dsep --data ./alice key export --armor > alice.asc

  # The domain owner certifies it; Alice takes the certification in
  dsep --data ./example.org domain certify alice.asc > alice-certified.asc
  dsep --data ./alice key import alice-certified.asc

  # Anyone verifies the binding against DNS
  dsep verify alice@example.org --key alice-certified.asc --domain-key example.org.asc`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "dsep",
		Short:         "Distributed Secure Email Protocol",
		Long:          rootLong,
		Example:       rootExample,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().StringVar(&a.dataFlag, "data", "", "data directory (default $DSEP_DATA, else $XDG_DATA_HOME/dsep)")
	root.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "print machine-readable JSON")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &cliError{msg: err.Error(), hint: "see `" + c.CommandPath() + " --help`"}
	})
	root.AddCommand(
		a.initCommand(),
		a.keyCommand(),
		a.domainCommand(),
		a.verifyCommand(),
		a.contactsCommand(),
		a.demoCommand(),
		a.lookupCommand(),
		a.publishCommand(),
		a.testnetCommand(),
		a.stampCommand(),
		a.runCommand(),
		a.clientCommand(),
		a.sendCommand(), a.inboxCommand(), a.readCommand(), a.outboxCommand(), a.statusCommand(), a.configCommand(),
	)
	return root
}

// dataDir resolves the data directory.
func (a *app) dataDir() string {
	if a.dataFlag != "" {
		return a.dataFlag
	}
	if d := os.Getenv("DSEP_DATA"); d != "" {
		return d
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "dsep")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "dsep-data"
	}
	return filepath.Join(home, ".local", "share", "dsep")
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
