package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/openclaims/claims/internal/store"
)

func migrate(ctx context.Context, env Env, args []string) error {
	f := newFlags("migrate", env)
	grantTo := f.fs.String("grant-to", "", "PostgreSQL only: after migrating, give this role (the one `claims serve` connects as) "+
		"read and write access to the application tables, append-only access to the audit log, and no right to change the schema. "+
		"Run migrate as the owner role.")
	if err := f.parse(env, args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("migrate takes no arguments (got %q)", f.fs.Args())
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	if *grantTo != "" && cfg.DatabaseURL == "" {
		return errors.New("migrate --grant-to: database roles exist only on PostgreSQL (set --database-url or CLAIMS_DATABASE_URL)")
	}
	a, err := openApp(ctx, env, cfg, false)
	if err != nil {
		return err
	}
	defer a.Close()
	n, err := a.db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s schema at version %d\n", a.db.Dialect(), n)
	if *grantTo != "" {
		if a.db.Dialect() != store.Postgres {
			return errors.New("migrate --grant-to: database roles exist only on PostgreSQL")
		}
		if err := a.db.GrantApp(ctx, *grantTo); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "granted %s: read and write on the application tables, append-only audit log, no schema changes\n", *grantTo)
	}
	return nil
}
