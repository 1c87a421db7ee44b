package cli

import (
	"context"
	"fmt"
)

// outbox prints queued mail. Without SMTP configured this is how an
// operator reads password-reset messages in development; the messages are
// sealed in the database, so reading them needs the keys as well as the
// database.
func outbox(ctx context.Context, env Env, args []string) error {
	f := newFlags("outbox", env)
	if err := f.parse(env, args); err != nil {
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
	list, err := a.flow.Outbox(ctx)
	if err != nil {
		return err
	}
	for _, m := range list {
		fmt.Fprintf(env.Stdout, "--- %s %s to %s\n%s\n", m.CreatedAt.Format("2006-01-02 15:04:05Z"), m.Kind, m.To, m.Body)
	}
	if len(list) == 0 {
		fmt.Fprintln(env.Stdout, "outbox is empty")
	}
	return nil
}
