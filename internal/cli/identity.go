package cli

import (
	"runtime"

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

// hashConcurrency bounds simultaneous bcrypt work to half the cores, so a
// flood of sign-ins leaves the rest of the API a core to answer on
// (BenchmarkReadDuringLoginFlood measures it).
func hashConcurrency() int { return max(1, runtime.GOMAXPROCS(0)/2) }
