package cli

import (
	"github.com/openclaims/claims/internal/config"
	"github.com/openclaims/claims/internal/workflow"
)

// identityPolicy applies the configuration's sign-in knobs to the defaults.
func identityPolicy(cfg config.Config) *workflow.IdentityPolicy {
	p := workflow.DefaultIdentityPolicy
	if cfg.LoginLockAfter > 0 {
		p.LockAfter = cfg.LoginLockAfter
	}
	if cfg.LoginLockFor > 0 {
		p.LockFor = cfg.LoginLockFor
	}
	if cfg.LoginIPDelayAfter > 0 {
		p.IPDelayAfter = cfg.LoginIPDelayAfter
	}
	return &p
}
