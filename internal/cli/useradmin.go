package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/workflow"
)

const userUsage = `usage:
  claims user create --email E --role R --password-stdin
  claims user list
  claims user disable|enable|unlock|logout|reset-mfa|verify-email --email E
  claims user set-role --email E --role R
  claims user set-authority --email E --minor N   (N < 0 clears the override)
  claims role list
  claims role put NAME --base ROLE [--permissions a,b] [--authority-minor N]`

// The operator at the command line acts as the system: they hold the keys
// and the database already, so the CLI is not a way around access control
// but the way in when no administrator can sign in. Every action is audited
// with actor "cli".
func systemPrincipal() claims.Principal {
	return claims.Principal{UserID: "cli", Role: claims.RoleSuperAdmin, RoleName: "cli", MFAEnrolled: true, MFAAt: time.Now(),
		Grants: nil}
}

func userAdmin(ctx context.Context, env Env, args []string) error {
	verb := args[0]
	f := newFlags("user "+verb, env)
	email := f.fs.String("email", "", "the account's email")
	role := f.fs.String("role", "", "role (set-role)")
	minor := f.fs.Int64("minor", 0, "authority limit in minor units (set-authority)")
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
	p := systemPrincipal()
	if verb == "list" {
		users, err := a.flow.Users(ctx, p, store.MaxPage)
		if err != nil {
			return explain(err)
		}
		for _, u := range users {
			fmt.Fprintf(env.Stdout, "%s  %-18s %-9s mfa=%-5v %s\n", u.ID, u.Role, u.Status, u.MFAEnabled, u.Email)
		}
		return nil
	}
	if *email == "" {
		return fmt.Errorf("user %s: --email is required\n%s", verb, userUsage)
	}
	var target claims.User
	if err := a.db.Read(ctx, func(tx *store.Tx) (err error) {
		target, err = tx.UserByEmail(ctx, *email)
		return err
	}); err != nil {
		return explain(err)
	}
	switch verb {
	case "verify-email":
		err = a.flow.MarkEmailVerified(ctx, p, target.ID)
	case "disable", "enable", "unlock", "logout", "reset-mfa":
		err = a.flow.AdministerUser(ctx, p, target.ID, workflow.AdminAction(verb))
	case "set-role":
		err = a.flow.SetRole(ctx, p, target.ID, claims.Role(*role))
	case "set-authority":
		var limit *int64
		if *minor >= 0 {
			limit = minor
		}
		err = a.flow.SetAuthorityLimit(ctx, p, target.ID, limit)
	default:
		return fmt.Errorf("unknown user command %q\n%s", verb, userUsage)
	}
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(env.Stdout, "%s: done for %s\n", verb, target.Email)
	return nil
}

// role lists roles or defines a custom role.
func role(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "put") {
		fmt.Fprintln(env.Stderr, userUsage)
		return errUsage
	}
	verb := args[0]
	rest := args[1:]
	var name string
	if verb == "put" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return errors.New("role put: give the role NAME first")
		}
		name, rest = rest[0], rest[1:]
	}
	f := newFlags("role "+verb, env)
	base := f.fs.String("base", "", "built-in role the custom role rests on")
	perms := f.fs.String("permissions", "", "comma-separated permissions to add")
	authority := f.fs.Int64("authority-minor", -1, "authority limit in minor units (-1: the base role's)")
	if err := f.parse(env, rest); err != nil {
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
	p := systemPrincipal()
	if verb == "list" {
		roles, err := a.flow.Roles(ctx, p)
		if err != nil {
			return explain(err)
		}
		for _, r := range roles {
			kind := "built-in"
			if r.Custom {
				kind = "custom v" + strconv.FormatInt(r.Version, 10) + " on " + string(r.Base)
			}
			names := make([]string, len(r.Permissions))
			for i, x := range r.Permissions {
				names[i] = string(x)
			}
			fmt.Fprintf(env.Stdout, "%-18s %-28s authority=%d\n  %s\n", r.Name, kind, r.AuthorityLimit, strings.Join(names, ", "))
		}
		return nil
	}
	cr := access.CustomRole{Name: name, Base: claims.Role(*base)}
	for _, x := range strings.Split(*perms, ",") {
		if x = strings.TrimSpace(x); x != "" {
			cr.Permissions = append(cr.Permissions, access.Permission(x))
		}
	}
	if *authority >= 0 {
		cr.AuthorityLimit = authority
	}
	v, err := a.flow.PutCustomRole(ctx, p, cr)
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(env.Stdout, "role %s defined (version %d)\n", name, v)
	return nil
}
