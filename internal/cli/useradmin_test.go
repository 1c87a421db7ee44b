package cli_test

import (
	"strings"
	"testing"

	"github.com/openclaims/claims/internal/store"
)

// TestUserAdminCLI: the operator administers accounts and roles from the
// command line (the way in when no administrator can sign in), audited as
// "cli".
func TestUserAdminCLI(t *testing.T) {
	env := newEnv(t, store.SQLite)
	mustRun(t, env, pw+"\n", "user", "create", "--email", "p@example.com", "--role", "claims_processor", "--password-stdin")
	s := startServer(t, env)
	tok := s.login("p@example.com", pw)

	mustRun(t, env, "", "user", "disable", "--email", "p@example.com")
	s.expect(s.do("GET", "/api/v1/me", tok, nil), 401)
	s.expect(s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "p@example.com", "password": pw}), 401)
	mustRun(t, env, "", "user", "enable", "--email", "p@example.com")
	tok = s.login("p@example.com", pw)

	out := mustRun(t, env, "", "role", "put", "senior_processor", "--base", "claims_processor",
		"--permissions", "claims.read.any", "--authority-minor", "5000000")
	if !strings.Contains(out, "version 1") {
		t.Fatalf("role put: %s", out)
	}
	mustRun(t, env, "", "user", "set-role", "--email", "p@example.com", "--role", "senior_processor")
	s.expect(s.do("GET", "/api/v1/me", tok, nil), 401) // role change ends sessions
	tok = s.login("p@example.com", pw)
	me := s.expect(s.do("GET", "/api/v1/me", tok, nil), 200)
	if !strings.Contains(string(me.raw), "claims.read.any") {
		t.Errorf("custom role's permission missing: %s", me.raw)
	}
	if out := mustRun(t, env, "", "role", "list"); !strings.Contains(out, "senior_processor") || !strings.Contains(out, "custom v1 on claims_processor") {
		t.Errorf("role list: %s", out)
	}
	if out := mustRun(t, env, "", "user", "list"); !strings.Contains(out, "p@example.com") || !strings.Contains(out, "senior_processor") {
		t.Errorf("user list: %s", out)
	}
	if _, err := run(t, env, "", "user", "set-role", "--email", "nobody@example.com", "--role", "admin"); err == nil {
		t.Error("set-role of a missing account succeeded")
	}
	if out := mustRun(t, env, "", "audit", "verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit: %s", out)
	}
}
