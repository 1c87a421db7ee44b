package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openclaims/claims/internal/store"
)

func TestDoctor(t *testing.T) {
	env := newEnv(t, store.SQLite)
	mustRun(t, env, pw+"\n", "user", "create", "--email", "a@example.com", "--role", "customer", "--password-stdin")
	out := mustRun(t, env, "", "doctor")
	for _, want := range []string{"ok   key files", "ok   database", "warn virus scanner", "development scanner", "ok   audit log"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	// A key file readable by others is a failure that names the file.
	if err := os.Chmod(filepath.Join(env["CLAIMS_DATA_DIR"], "keys", "pepper.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, env, "", "doctor")
	if err == nil || !strings.Contains(out+err.Error(), "pepper.key") {
		t.Errorf("doctor with a world-readable key: %v\n%s", err, out)
	}
}
