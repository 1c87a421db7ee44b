package claims

import "time"

// AuditEntry is one record of the audit log: who did what to which object,
// with what outcome. It never holds personal data, passwords, tokens or
// secrets: details carry ids, statuses and amounts only.
type AuditEntry struct {
	Seq        int64
	At         time.Time
	ActorID    ID
	OnBehalfOf ID // the delegator, when acting under a delegation
	Action     string
	ObjectType string
	ObjectID   string
	Outcome    string // "ok", "denied", "failed"
	IP         string
	RequestID  string
	Details    map[string]string
	PrevHash   []byte
	Hash       []byte
}
