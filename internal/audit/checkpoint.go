package audit

import (
	"crypto/ed25519"
	"encoding/binary"
	"time"
)

// A checkpoint is the server's signed statement "the chain had n entries
// and its head hash was h at time t". Whoever rewrites the chain (even
// recomputing every hash) can't forge the signature, and whoever deletes
// entries from the end can't make the chain reach the last checkpoint.
// The signing key lives in the keys dir, not in the database.

func checkpointMessage(seq int64, head []byte, at time.Time) []byte {
	msg := []byte("claims-audit-checkpoint-v1")
	msg = binary.BigEndian.AppendUint64(msg, uint64(seq))
	msg = binary.BigEndian.AppendUint64(msg, uint64(at.UTC().UnixMicro()))
	return append(msg, head...)
}

// SignCheckpoint signs (seq, head, at).
func SignCheckpoint(key ed25519.PrivateKey, seq int64, head []byte, at time.Time) []byte {
	return ed25519.Sign(key, checkpointMessage(seq, head, at))
}

// VerifyCheckpoint checks a checkpoint signature.
func VerifyCheckpoint(pub ed25519.PublicKey, seq int64, head []byte, at time.Time, sig []byte) bool {
	return ed25519.Verify(pub, checkpointMessage(seq, head, at), sig)
}
