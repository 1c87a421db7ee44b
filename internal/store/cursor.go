package store

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/openclaims/claims/internal/claims"
)

// Cursor marks a position in a list ordered by (created_at, id) descending.
// It is opaque to clients; a tampered cursor is just a position, never a way
// around the filters that apply to the caller.
type Cursor struct {
	At int64 // created_at in Unix microseconds
	ID claims.ID
}

// IsZero reports whether c is the start of the list.
func (c Cursor) IsZero() bool { return c.ID == "" }

// String encodes c for clients.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At, 10) + "." + string(c.ID)))
}

// ParseCursor decodes a client's cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	bad := claims.InvalidField("cursor", "format", "cursor is not a cursor this server issued.")
	if err != nil || len(b) > 100 {
		return Cursor{}, bad
	}
	at, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || !claims.ValidID(id) {
		return Cursor{}, bad
	}
	return Cursor{At: n, ID: claims.ID(id)}, nil
}

// MaxPage bounds list pages.
const MaxPage = 200

func limitOr(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > MaxPage:
		return MaxPage
	}
	return n
}
