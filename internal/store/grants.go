package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// validRole is the role names GrantApp accepts: a lower-case SQL identifier,
// so the unquoted name a DBA types in CREATE ROLE is the name granted to
// (PostgreSQL folds unquoted names to lower case).
var validRole = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// GrantApp gives role what the server needs on PostgreSQL and nothing more:
// reading and writing the application's rows and using their sequences. It
// does not let role create, alter or drop anything, and it lets role only
// append to the audit log (INSERT and SELECT; the chain head row, audit_head,
// is updated on every append). schema_migrations is read-only to role.
//
// Run it as the owner of the tables (the role that ran Migrate), after every
// Migrate: grants cover the tables that exist when it runs, so a table added
// by a later migration is out of role's reach until GrantApp runs again.
// It also revokes CREATE on schema public from PUBLIC (the default before
// PostgreSQL 15), so no other role can create objects there either.
func (db *DB) GrantApp(ctx context.Context, role string) error {
	if db.dialect != Postgres {
		return errors.New("store: database roles exist only on PostgreSQL; SQLite is protected by file permissions")
	}
	if !validRole.MatchString(role) {
		return fmt.Errorf("store: role %q is not a lower-case SQL identifier (letters, digits, _; at most 63)", role)
	}
	r := `"` + role + `"` // safe: validRole admits no quote
	stmts := []string{
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		// A clean slate, so running GrantApp again also takes back
		// anything granted by hand in between.
		`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ` + r,
		`REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ` + r,
		`REVOKE CREATE ON SCHEMA public FROM ` + r,
		`GRANT USAGE ON SCHEMA public TO ` + r,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + r,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ` + r,
		// The audit log is append-only for the server.
		`REVOKE UPDATE, DELETE ON audit_log FROM ` + r,
		// Only the owner migrates; the server reads the version (readyz).
		`REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM ` + r,
	}
	return db.InTx(ctx, func(tx *Tx) error {
		var owner bool
		if err := tx.queryRow(ctx, `SELECT pg_has_role(current_user, (SELECT tableowner FROM pg_tables
			WHERE schemaname = 'public' AND tablename = 'claims'), 'USAGE')`).Scan(&owner); err != nil {
			return fmt.Errorf("grant to %s: is the schema migrated? %w", role, err)
		}
		if !owner {
			return fmt.Errorf("grant to %s: run it as the role that owns the tables (the one that ran migrate)", role)
		}
		var self bool
		if err := tx.queryRow(ctx, `SELECT current_user = ?`, role).Scan(&self); err != nil {
			return err
		}
		if self {
			return fmt.Errorf("grant to %s: that is the owner role itself; the server must connect as another role", role)
		}
		for _, s := range stmts {
			if _, err := tx.exec(ctx, s); err != nil {
				return fmt.Errorf("grant to %s: %s: %w", role, s, err)
			}
		}
		return nil
	})
}
