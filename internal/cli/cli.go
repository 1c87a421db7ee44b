// Package cli is the claims command line: the subcommands and the wiring
// that builds the object graph. It is the only package that reads the
// environment or calls config.Load.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Env is everything a subcommand may touch outside the process. Tests pass
// buffers and a map-backed Getenv.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Ready, if set, is called by serve with the address it listens on
	// (tests use it to learn the random port).
	Ready func(addr string)
}

type command struct {
	name, help string
	run        func(ctx context.Context, env Env, args []string) error
}

// commands must not refer to Run or usage, or package initialization loops.
var commands = []command{
	{"serve", "run the HTTPS server", serve},
	{"migrate", "apply database migrations and report the version", migrate},
	{"user", "accounts: user create|list|disable|enable|unlock|logout|reset-mfa|set-role|set-authority", user},
	{"role", "roles: role list | role put NAME --base ROLE --permissions a,b", role},
	{"import", "import a public claims dataset: import auto-claims|vehicle-claims FILE", importCmd},
	{"audit", "check the audit log: audit verify", auditCmd},
	{"keys", "manage keys: keys status|rotate|reencrypt|retire|generate|rotate-signing", keys},
	{"backup", "encrypted backups: backup create|verify|restore|keygen", backupCmd},
	{"outbox", "print queued mail (password resets) when no SMTP server is configured", outbox},
	{"doctor", "check keys, database, scanner, certificate and audit log", doctor},
	{"config", "print the effective configuration, secrets redacted", printConfig},
	{"version", "print the version", version},
}

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"

// Run runs the subcommand named by args[0].
func Run(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stderr)
		return flag.ErrHelp
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	return fmt.Errorf("unknown command %q; run 'claims help'", args[0])
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("claims: insurance claims processing server\n\nUsage: claims <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.help)
	}
	b.WriteString("\nEvery command that touches data takes --data-dir (env CLAIMS_DATA_DIR, default ./data).\n")
	io.WriteString(w, b.String())
}

func version(ctx context.Context, env Env, args []string) error {
	fmt.Fprintln(env.Stdout, "claims", Version)
	return nil
}

// flags is the set shared by every data command.
type flags struct {
	fs          *flag.FlagSet
	dataDir     *string
	databaseURL *string
}

func newFlags(name string, env Env) flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return flags{fs: fs,
		dataDir:     fs.String("data-dir", "", "data folder (env CLAIMS_DATA_DIR, default ./data)"),
		databaseURL: fs.String("database-url", "", "postgres://... to use PostgreSQL (env CLAIMS_DATABASE_URL); default SQLite in the data dir")}
}

// parse parses args and loads the configuration with flag overrides.
func (f flags) parse(env Env, args []string) error {
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	return nil
}

func (f flags) config(env Env) (cfgT, error) {
	c, err := loadConfig(env)
	if err != nil {
		return c, err
	}
	if *f.dataDir != "" {
		c.DataDir = *f.dataDir
	}
	if *f.databaseURL != "" {
		c.DatabaseURL = *f.databaseURL
	}
	return c, c.Validate()
}

var errUsage = errors.New("usage")
