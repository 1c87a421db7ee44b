package cli

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/openclaims/claims/internal/audit"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/importer"
)

func printConfig(ctx context.Context, env Env, args []string) error {
	f := newFlags("config", env)
	if err := f.parse(env, args); err != nil {
		return err
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	io.WriteString(env.Stdout, cfg.Redacted())
	return nil
}

func user(ctx context.Context, env Env, args []string) error {
	if len(args) > 0 && args[0] != "create" {
		return userAdmin(ctx, env, args) // useradmin.go
	}
	if len(args) == 0 {
		fmt.Fprintln(env.Stderr, userUsage)
		return errUsage
	}
	f := newFlags("user create", env)
	email := f.fs.String("email", "", "email address (sign-in name)")
	role := f.fs.String("role", "", "one of super_admin, admin, ai_engineer, claims_processor, customer")
	fromStdin := f.fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if err := f.parse(env, args[1:]); err != nil {
		return err
	}
	if !*fromStdin {
		return errors.New("user create: pass --password-stdin and send the password on standard input (never as an argument: arguments are visible to other users)")
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, env, cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.flow.CreateUser(ctx, "cli", *email, password, claims.Role(*role))
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(env.Stdout, "created %s %s (id %s)\n", u.Role, u.Email, u.ID)
	return nil
}

// explain turns a domain error into a message for a terminal user.
func explain(err error) error {
	var e *claims.Error
	if errors.As(err, &e) && e.Kind != claims.Internal {
		var b strings.Builder
		b.WriteString(e.Message)
		for _, f := range e.Fields {
			if len(e.Fields) > 1 || f.Message != e.Message {
				fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Message)
			}
		}
		return errors.New(b.String())
	}
	return err
}

func importCmd(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || (args[0] != "auto-claims" && args[0] != "vehicle-claims") {
		fmt.Fprintln(env.Stderr, "usage: claims import auto-claims|vehicle-claims [--data-dir D] FILE")
		return errUsage
	}
	kind := args[0]
	f := newFlags("import "+kind, env)
	quiet := f.fs.Bool("quiet", false, "no progress output")
	if err := f.parse(env, args[1:]); err != nil {
		return err
	}
	if f.fs.NArg() != 1 {
		return fmt.Errorf("import %s: give exactly one FILE", kind)
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	file, err := os.Open(f.fs.Arg(0))
	if err != nil {
		return err
	}
	defer file.Close()
	a, err := openApp(ctx, env, cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	opt := importer.Options{}
	if !*quiet {
		opt.Progress = env.Stderr
	}
	sink := a.flow.ImportSink("")
	var sum importer.Summary
	if kind == "auto-claims" {
		sum, err = importer.ImportAutoClaims(ctx, file, sink, opt)
	} else {
		sum, err = importer.ImportVehicleClaims(ctx, file, sink, opt)
	}
	fmt.Fprintln(env.Stdout, sum.String())
	if err != nil {
		return fmt.Errorf("import %s stopped: %w", kind, err)
	}
	return nil
}

func auditCmd(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "checkpoint") {
		fmt.Fprintln(env.Stderr, "usage: claims audit verify|checkpoint [--data-dir D]")
		return errUsage
	}
	f := newFlags("audit "+args[0], env)
	if err := f.parse(env, args[1:]); err != nil {
		return err
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, env, cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	key, err := auditKey(cfg)
	if err != nil {
		return err
	}
	if args[0] == "checkpoint" {
		c, err := a.flow.Checkpoint(ctx, key, "a1")
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "audit checkpoint signed at %d entries\n", c.Seq)
		return nil
	}
	n, err := a.db.VerifyAuditSigned(ctx, key.Public().(ed25519.PublicKey))
	var p *audit.Problem
	if errors.As(err, &p) {
		return fmt.Errorf("audit log TAMPERED: %v (%d entries verified before it)", p, n)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "audit log intact: %d entries verified\n", n)
	return nil
}
