package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command a user can run has a short description and examples, and
// every command that prints data accepts --json (a persistent flag).
func TestEveryCommandHasExamples(t *testing.T) {
	var out bytes.Buffer
	root := newApp(strings.NewReader(""), &out, &out).rootCommand()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		if c.Short == "" {
			t.Errorf("%q has no short description", c.CommandPath())
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no examples", c.CommandPath())
		}
		if c.Flags().Lookup("json") == nil && c.InheritedFlags().Lookup("json") == nil && c != root {
			t.Errorf("%q has no --json", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

func TestParseLifetime(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"1y", "8760h0m0s", false},
		{"6mo", "4320h0m0s", false},
		{"2w", "336h0m0s", false},
		{"30d", "720h0m0s", false},
		{"12h", "12h0m0s", false},
		{"90m", "1h30m0s", false},
		{"never", "-1ns", false},
		{"0", "-1ns", false},
		{"", "", true},
		{"soon", "", true},
		{"-1d", "", true},
		{"-5h", "", true},
		{"0d", "", true},
		{"99999y", "", true},
	}
	for _, tt := range tests {
		got, err := parseLifetime(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseLifetime(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("parseLifetime(%q) = %v, want %s", tt.in, got, tt.want)
		}
	}
}
