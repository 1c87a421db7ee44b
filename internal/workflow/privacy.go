package workflow

import (
	"context"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
)

// Data subject rights (docs/data-protection.md): access (export) and
// erasure on request, approved by an administrator.

func noSubject() error {
	return claims.Errorf(claims.NotFound, "No personal data record is linked to this account.")
}

// ExportSubject returns everything held about the signed-in customer. The
// export itself is audited ("subject.exported").
func (s *Service) ExportSubject(ctx context.Context, p claims.Principal) (store.SubjectExport, error) {
	var x store.SubjectExport
	if p.IsZero() {
		return x, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if p.HolderID == "" {
		return x, noSubject()
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if x, err = tx.SubjectExport(ctx, p.HolderID, p.UserID); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "subject.exported", "policyholder", string(p.HolderID), "ok",
			map[string]string{"claims": itoa(len(x.Claims))})
	})
	return x, err
}

// RequestErasure records the signed-in customer's request to be erased; an
// administrator approves it.
func (s *Service) RequestErasure(ctx context.Context, p claims.Principal) (store.ErasureRequest, error) {
	if p.IsZero() {
		return store.ErasureRequest{}, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if p.HolderID == "" {
		return store.ErasureRequest{}, noSubject()
	}
	r := store.ErasureRequest{ID: claims.NewID(), HolderID: p.HolderID, UserID: p.UserID, Status: store.ErasurePending}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.InsertErasureRequest(ctx, r); err != nil {
			return err
		}
		r.RequestedAt = tx.Now()
		return audit(ctx, tx, p.UserID, "subject.erasure_requested", "erasure_request", string(r.ID), "ok", nil)
	})
	return r, err
}

// ErasureRequests lists requests (users.manage); status "" = all.
func (s *Service) ErasureRequests(ctx context.Context, p claims.Principal, status string) ([]store.ErasureRequest, error) {
	if err := access.Require(p, access.UsersManage); err != nil {
		return nil, err
	}
	if status != "" && status != store.ErasurePending && status != store.ErasureApproved {
		return nil, claims.InvalidField("status", "enum", "status must be pending or approved.")
	}
	var out []store.ErasureRequest
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		out, err = tx.ErasureRequests(ctx, status, 500)
		return err
	})
	return out, err
}

// ApproveErasure carries out an erasure request (users.manage, with a
// recent second-factor check). In one transaction the subject key is
// destroyed, the account disabled and unlinked from the person, its
// sessions ended, and the erasure registered and audited. Amounts,
// decisions, statuses and the audit chain remain.
func (s *Service) ApproveErasure(ctx context.Context, p claims.Principal, id claims.ID) (store.ErasureRequest, error) {
	var (
		r     store.ErasureRequest
		blobs []string
	)
	if err := access.Require(p, access.UsersManage); err != nil {
		return r, err
	}
	if err := s.StepUp(p); err != nil {
		return r, err
	}
	if !claims.ValidID(string(id)) {
		return r, claims.Errorf(claims.NotFound, "Erasure request not found.")
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if r, err = tx.ErasureRequestForUpdate(ctx, id); err != nil {
			return err
		}
		if r.Status != store.ErasurePending {
			return claims.Errorf(claims.Conflict, "This erasure request was already carried out.")
		}
		if r.UserID == p.UserID {
			return claims.Errorf(claims.Forbidden, "You cannot approve the erasure of your own account.")
		}
		if r.UserID != "" {
			u, err := tx.User(ctx, r.UserID)
			if err != nil && claims.KindOf(err) != claims.NotFound {
				return err
			}
			if err == nil {
				base, err := baseRole(ctx, tx, u.Role)
				if err != nil {
					return err
				}
				u.Role = base
			}
			if err == nil && !access.Outranks(p.Role, u.Role) {
				return claims.Errorf(claims.Forbidden, "You cannot erase an account whose role is at or above your own.")
			}
		}
		if blobs, err = tx.HolderBlobs(ctx, r.HolderID); err != nil {
			return err
		}
		if err := tx.EraseSubject(ctx, r.HolderID, r.UserID); err != nil {
			return err
		}
		if err := tx.MarkErasureApproved(ctx, r.ID, p.UserID); err != nil {
			return err
		}
		r.Status, r.DecidedBy, r.DecidedAt = store.ErasureApproved, p.UserID, tx.Now()
		return audit(ctx, tx, p.UserID, "subject.erased", "policyholder", string(r.HolderID), "ok",
			map[string]string{"request": string(r.ID), "user": string(r.UserID)})
	})
	if err == nil {
		s.deleteBlobs(ctx, blobs)
	}
	return r, err
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// deleteBlobs removes erased documents' content now; what fails here is
// removed by the sweeper, which treats erased documents' blobs as orphans.
func (s *Service) deleteBlobs(ctx context.Context, blobs []string) {
	if s.docs.pipe == nil {
		return
	}
	for _, b := range blobs {
		if err := s.docs.pipe.Delete(ctx, b); err != nil {
			s.log.WarnContext(ctx, "delete erased document", "err", err)
		}
	}
}
