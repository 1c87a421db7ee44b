package live

import "time"

// SetPingEvery changes how often a quiet listener pings, until the returned
// function restores it.
func SetPingEvery(d time.Duration) (restore func()) {
	old := pingEvery
	pingEvery = d
	return func() { pingEvery = old }
}
