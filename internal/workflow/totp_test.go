package workflow_test

import (
	"time"

	"github.com/pquerna/otp/totp"
)

func totpGenerate(secret string, at time.Time) (string, error) { return totp.GenerateCode(secret, at) }
