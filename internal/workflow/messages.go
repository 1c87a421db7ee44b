package workflow

import (
	"context"
	"strconv"
	"unicode/utf8"

	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
)

// Limits on claim messages (docs/live.md).
const (
	MaxMessageRunes  = 2000
	MaxClaimMessages = 1000
)

// PostMessage adds a message to a claim the principal may read: the
// policyholder and the staff who may read the claim talk on it. The text is
// validated (length, control characters, no card numbers), stored sealed
// under the policyholder's subject key, audited without its text, and
// announced as a "message.created" event (ids, status and time only). A
// claim the principal may not read is answered as missing.
func (s *Service) PostMessage(ctx context.Context, p claims.Principal, claimID claims.ID, text string) (store.Message, error) {
	if p.IsZero() {
		return store.Message{}, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	var v claims.Validation
	claims.ValidateText(&v, "text", text, MaxMessageRunes, true)
	if err := v.Err(); err != nil {
		return store.Message{}, err
	}
	var (
		m store.Message
		c claims.Claim
	)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		// Locked, so the per-claim count below can't be raced past.
		if c, err = readableClaim(ctx, tx, p, claimID, true, errClaimNotFound); err != nil {
			return err
		}
		n, err := tx.CountMessages(ctx, c.ID)
		if err != nil {
			return err
		}
		if n >= MaxClaimMessages {
			return claims.Errorf(claims.Conflict, "Claim %s has reached %d messages; contact us another way.", c.Number, MaxClaimMessages)
		}
		m = store.Message{ID: claims.NewID(), ClaimID: c.ID, HolderID: c.HolderID, AuthorID: p.UserID,
			AuthorRole: p.Role, Body: text, CreatedAt: tx.Now()}
		if err := tx.InsertMessage(ctx, m); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "claim.message_posted", "claim", string(c.ID), "ok",
			map[string]string{"message": string(m.ID), "runes": strconv.Itoa(utf8.RuneCountInString(text))})
	})
	if err != nil {
		return store.Message{}, err
	}
	s.publish(claims.Event{Type: "message.created", ClaimID: c.ID, HolderID: c.HolderID, AssigneeID: c.AssigneeID,
		Status: c.Status, At: m.CreatedAt})
	return m, nil
}

// Messages lists a readable claim's messages, oldest first; the read is
// audited like a claim read.
func (s *Service) Messages(ctx context.Context, p claims.Principal, claimID claims.ID, cursor string, limit int) (Page[store.Message], error) {
	var page Page[store.Message]
	if p.IsZero() {
		return page, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	after, err := store.ParseCursor(cursor)
	if err != nil {
		return page, err
	}
	limit = limitOf(limit)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		ref, err := readableRef(ctx, tx, p, claimID)
		if err != nil {
			return err
		}
		if page.Items, err = tx.Messages(ctx, ref.ID, ref.HolderID, after, limit); err != nil {
			return err
		}
		if len(page.Items) == limit {
			last := page.Items[len(page.Items)-1]
			page.NextCursor = store.CursorOf(last.ID, last.CreatedAt.UnixMicro()).String()
		}
		return audit(ctx, tx, p.UserID, "claim.messages_read", "claim", string(ref.ID), "ok", nil)
	})
	if err != nil {
		return Page[store.Message]{}, err
	}
	return page, nil
}
