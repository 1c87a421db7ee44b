// Package audit defines the tamper-evident form of the audit log: each entry
// carries the SHA-256 of its content and of the entry before it, so an entry
// altered, inserted or deleted in the database breaks the chain from that
// point on. The store appends entries in the same transaction as the change
// they record; Verify walks the chain.
//
// It does no I/O of its own.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/openclaims/claims/internal/claims"
)

// Genesis is the previous hash of the first entry.
var Genesis = make([]byte, sha256.Size)

// Hash returns the chain hash of e given the previous entry's hash. Fields
// are length-prefixed so no two different entries encode alike, and details
// are hashed in key order.
func Hash(prev []byte, e claims.AuditEntry) []byte {
	h := sha256.New()
	put := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	h.Write([]byte("claims-audit-v1"))
	put(string(prev))
	put(fmt.Sprint(e.Seq))
	put(fmt.Sprint(e.At.UTC().UnixMicro()))
	for _, s := range []string{string(e.ActorID), string(e.OnBehalfOf), e.Action, e.ObjectType, e.ObjectID, e.Outcome, e.IP, e.RequestID} {
		put(s)
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	put(fmt.Sprint(len(keys)))
	for _, k := range keys {
		put(k)
		put(e.Details[k])
	}
	return h.Sum(nil)
}

// Problem is the first break Verify found.
type Problem struct {
	Seq    int64
	Reason string
}

func (p *Problem) Error() string { return fmt.Sprintf("audit entry %d: %s", p.Seq, p.Reason) }

// Verifier checks entries fed in sequence order.
type Verifier struct {
	prev    []byte
	nextSeq int64
	Count   int64
}

// NewVerifier starts at the genesis.
func NewVerifier() *Verifier { return &Verifier{prev: Genesis, nextSeq: 1} }

// Add checks the next entry and returns a *Problem at the first break: a
// gap or repeat in sequence numbers (deleted or inserted entries), a wrong
// previous hash, or a hash that doesn't match the content (altered entry).
func (v *Verifier) Add(e claims.AuditEntry) error {
	switch {
	case e.Seq != v.nextSeq:
		return &Problem{v.nextSeq, fmt.Sprintf("expected sequence %d, found %d (entry deleted or inserted)", v.nextSeq, e.Seq)}
	case !bytes.Equal(e.PrevHash, v.prev):
		return &Problem{e.Seq, "previous-hash link broken (entry before it deleted, inserted or altered)"}
	case !bytes.Equal(e.Hash, Hash(v.prev, e)):
		return &Problem{e.Seq, "content does not match its hash (entry altered)"}
	}
	v.prev, v.nextSeq, v.Count = e.Hash, e.Seq+1, v.Count+1
	return nil
}

// Head returns the hash of the last verified entry.
func (v *Verifier) Head() []byte { return v.prev }
