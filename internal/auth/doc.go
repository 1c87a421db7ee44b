// Package auth holds the pure, storage-free authentication primitives of the
// claims server: password hashing and policy, short-lived signed access
// tokens, opaque secrets (refresh tokens, reset tokens, session ids) and TOTP
// second factors.
//
// What it must not do, and why:
//
//   - It must not import database, HTTP or other I/O packages. Everything here
//     is a deterministic function of its inputs plus crypto/rand, so it can be
//     reviewed and tested in isolation; persistence (sessions, replay
//     counters, key storage) and transport (cookies, headers, rate limits)
//     belong to the callers.
//   - It must not read the wall clock on its own. Everything time-based takes
//     an injectable clock (func() time.Time) or an explicit time, so expiry,
//     rotation and replay rules can be tested exactly.
//   - It must not log, and it must not print secrets: key material, peppers
//     and TOTP secrets print redacted.
//   - It must not tell callers more than they need: token verification fails
//     with one opaque error so no verification oracle leaks to clients.
package auth
