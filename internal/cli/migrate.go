package cli

import (
	"context"
	"fmt"
)

func migrate(ctx context.Context, env Env, args []string) error {
	f := newFlags("migrate", env)
	if err := f.parse(env, args); err != nil {
		return err
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
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
	return nil
}
