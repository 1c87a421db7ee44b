package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8443" || c.DataDir != "data" || c.BcryptCost != 12 || c.KeysDir != filepath.Join("data", "keys") {
		t.Errorf("defaults: %+v", c)
	}
	if got := c.DatabaseTarget(); got != filepath.Join("data", "claims.db") {
		t.Errorf("DatabaseTarget = %s", got)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load(env(map[string]string{"CLAIMS_BCRYPT_COST": "x", "CLAIMS_SHUTDOWN_GRACE": "soon", "CLAIMS_LOGIN_LOCK_AFTER": "-1"}))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{"CLAIMS_BCRYPT_COST", "CLAIMS_SHUTDOWN_GRACE", "CLAIMS_LOGIN_LOCK_AFTER"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	c := Default()
	c.BcryptCost, c.LogLevel, c.TLSCert = 4, "loud", "cert.pem"
	err = c.Validate()
	for _, want := range []string{"bcrypt cost", "log level", "tls"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func TestSecretFromFileAndRedaction(t *testing.T) {
	f := filepath.Join(t.TempDir(), "db")
	os.WriteFile(f, []byte("postgres://app:s3cr3t@db.internal/claims?sslmode=verify-full\n"), 0o600)
	c, err := Load(env(map[string]string{"CLAIMS_DATABASE_URL_FILE": f}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://app:s3cr3t@db.internal/claims?sslmode=verify-full" {
		t.Errorf("DatabaseURL = %q", c.DatabaseURL)
	}
	if out := c.Redacted(); strings.Contains(out, "s3cr3t") || !strings.Contains(out, "app:[redacted]@db.internal") {
		t.Errorf("Redacted() = %s", out)
	}
	if _, err := Load(env(map[string]string{"CLAIMS_DATABASE_URL_FILE": f, "CLAIMS_DATABASE_URL": "x"})); err == nil {
		t.Error("both the value and _FILE accepted")
	}
}
