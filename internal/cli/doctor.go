package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/openclaims/claims/internal/scan"
	"github.com/openclaims/claims/internal/seal"
)

// doctor checks an installation and says what is wrong, one line per
// check. It exits non-zero when something must be fixed; warnings (the
// development scanner, an expiring certificate) don't fail it.
func doctor(ctx context.Context, env Env, args []string) error {
	f := newFlags("doctor", env)
	if err := f.parse(env, args); err != nil {
		return err
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	failed := 0
	report := func(level, what, detail string) {
		if level == "FAIL" {
			failed++
		}
		fmt.Fprintf(env.Stdout, "%-4s %-22s %s\n", level, what, detail)
	}
	if err := seal.CheckPermissions(cfg.KeysDir); err != nil {
		report("FAIL", "key files", err.Error())
	} else {
		report("ok", "key files", cfg.KeysDir+" (owner-only)")
	}
	a, err := openApp(ctx, env, cfg, false)
	if err != nil {
		report("FAIL", "open", err.Error())
		return errors.New("doctor found problems")
	}
	defer a.Close()
	if err := a.db.Ping(ctx); err != nil {
		report("FAIL", "database", err.Error())
	} else {
		applied, known, err := a.db.SchemaVersion(ctx)
		switch {
		case err != nil:
			report("FAIL", "schema", err.Error())
		case applied < known:
			report("FAIL", "schema", fmt.Sprintf("%d of %d migrations applied: run claims migrate", applied, known))
		default:
			report("ok", "database", fmt.Sprintf("%s, schema at %d", a.db.Dialect(), applied))
		}
	}
	if _, dev := a.scanner.(*scan.DevScanner); dev {
		report("warn", "virus scanner", devScannerNotice+"; set CLAIMS_CLAMD_ADDRESS")
	} else if c, ok := a.scanner.(*scan.Clamd); ok {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := c.Version(sctx)
		cancel()
		if err != nil {
			report("FAIL", "virus scanner", a.scanner.Name()+": "+err.Error())
		} else {
			report("ok", "virus scanner", a.scanner.Name()+" ("+v+")")
		}
	}
	certFile := cfg.TLSCert
	if certFile == "" {
		certFile = filepath.Join(cfg.DataDir, "tls-cert.pem")
	}
	keyFile := cfg.TLSKey
	if keyFile == "" {
		keyFile = filepath.Join(cfg.DataDir, "tls-key.pem")
	}
	if pair, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		report("warn", "TLS certificate", "none yet (serve creates a self-signed one): "+err.Error())
	} else if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil {
		left := time.Until(leaf.NotAfter)
		switch {
		case left < 0:
			report("FAIL", "TLS certificate", "expired "+leaf.NotAfter.Format(time.DateOnly))
		case left < 30*24*time.Hour:
			report("warn", "TLS certificate", "expires "+leaf.NotAfter.Format(time.DateOnly))
		default:
			report("ok", "TLS certificate", "valid until "+leaf.NotAfter.Format(time.DateOnly))
		}
	}
	if key, err := auditKey(cfg); err != nil {
		report("FAIL", "audit log", err.Error())
	} else if n, err := a.db.VerifyAuditSigned(ctx, key.Public().(ed25519.PublicKey)); err != nil {
		report("FAIL", "audit log", err.Error())
	} else {
		report("ok", "audit log", fmt.Sprintf("%d entries, chain and checkpoints intact", n))
	}
	if failed > 0 {
		return fmt.Errorf("doctor found %d problem(s)", failed)
	}
	return nil
}
