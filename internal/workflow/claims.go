package workflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/openclaims/claims/internal/access"
	"github.com/openclaims/claims/internal/claims"
	"github.com/openclaims/claims/internal/store"
)

var errClaimNotFound = claims.Errorf(claims.NotFound, "Claim not found.")

// FileRequest is a new claim from a customer.
type FileRequest struct {
	Input  claims.NewClaimInput
	Submit bool // file and submit in one step (else it stays a draft)
	// IdempotencyKey, when set, makes a retry return the first result.
	IdempotencyKey string
	RequestHash    []byte
}

// FileClaim opens a claim on one of the principal's policies. A policy that
// is not theirs is answered as not found.
func (s *Service) FileClaim(ctx context.Context, p claims.Principal, r FileRequest) (c claims.Claim, replayed bool, err error) {
	if err := access.Require(p, access.ClaimsCreate); err != nil {
		return c, false, err
	}
	if p.HolderID == "" {
		return c, false, claims.InvalidField("policyNumber", "exists", "Policy not found.")
	}
	now := s.now().UTC()
	if err := r.Input.Validate(claims.DateOf(now)); err != nil {
		return c, false, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		err = s.db.InTx(ctx, func(tx *store.Tx) error {
			if r.IdempotencyKey != "" {
				id, found, err := tx.IdempotentResult(ctx, p.UserID, r.IdempotencyKey, r.RequestHash)
				if err != nil {
					return err
				}
				if found {
					replayed = true
					c, err = tx.Claim(ctx, id)
					return err
				}
			}
			pol, err := tx.PolicyByNumber(ctx, r.Input.PolicyNumber)
			if claims.KindOf(err) == claims.NotFound || err == nil && pol.HolderID != p.HolderID {
				return claims.InvalidField("policyNumber", "exists", "Policy not found.")
			}
			if err != nil {
				return err
			}
			if err := r.Input.CheckAgainstPolicy(pol); err != nil {
				return err
			}
			c = claims.NewClaim(r.Input, pol, p.UserID, store.NewClaimNumber(now.Year()), tx.Now())
			// At most one, found by the database; the domain rule decides.
			others, err := tx.ClaimsOnIncident(ctx, pol.ID, c.IncidentDate, c.Total)
			if err != nil {
				return err
			}
			for _, o := range others {
				if c.IsLikelyDuplicate(o) {
					c.AddFlag(claims.FlagPossibleDuplicate)
				}
			}
			if err := tx.InsertClaim(ctx, c, ""); err != nil {
				return err
			}
			details := map[string]string{"total": c.Total.String(), "lines": strconv.Itoa(len(c.Lines))}
			if r.Submit {
				t, err := c.MoveTo(claims.StatusSubmitted, p.UserID, "", tx.Now())
				if err != nil {
					return err
				}
				if err := tx.UpdateClaim(ctx, &c); err != nil {
					return err
				}
				if err := tx.InsertTransition(ctx, c.HolderID, t); err != nil {
					return err
				}
			}
			if err := audit(ctx, tx, p.UserID, "claim.filed", "claim", string(c.ID), "ok", details); err != nil {
				return err
			}
			if r.IdempotencyKey != "" {
				return tx.SaveIdempotentResult(ctx, p.UserID, r.IdempotencyKey, r.RequestHash, c.ID)
			}
			return nil
		})
		if !errors.Is(err, store.ErrIdempotencyRace) {
			break
		}
		// A concurrent retry committed first: our transaction rolled back
		// and the next attempt returns its result.
	}
	if err != nil {
		return claims.Claim{}, false, err
	}
	if !replayed {
		s.publish(claims.Event{Type: "claim.filed", ClaimID: c.ID, HolderID: c.HolderID, Status: c.Status, At: c.UpdatedAt})
	}
	return c, replayed, nil
}

// Claim returns a claim the principal may read, and audits the read of its
// personal data.
func (s *Service) Claim(ctx context.Context, p claims.Principal, id claims.ID) (claims.Claim, error) {
	if p.IsZero() {
		return claims.Claim{}, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if !claims.ValidID(string(id)) {
		return claims.Claim{}, errClaimNotFound
	}
	var (
		c      claims.Claim
		hidden bool
	)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if c, err = tx.Claim(ctx, id); err != nil {
			return err
		}
		if !access.CanReadClaim(p, c) {
			hidden = true
			return errClaimNotFound
		}
		return audit(withVia(ctx, access.ReadVia(p, c)), tx, p.UserID, "claim.read", "claim", string(c.ID), "ok", nil)
	})
	if hidden {
		s.recordHidden(ctx, p, "claim.read", id)
	}
	return c, err
}

// recordHidden audits an attempt on a claim that exists but that the
// principal may not see. The caller answered 404, exactly as for a missing
// claim; the audit log still shows the probe (ASVS V16.3.2).
func (s *Service) recordHidden(ctx context.Context, p claims.Principal, action string, id claims.ID) {
	if e := s.db.InTx(ctx, func(tx *store.Tx) error {
		return audit(ctx, tx, p.UserID, action, "claim", string(id), "denied", map[string]string{"reason": "not visible"})
	}); e != nil {
		s.log.ErrorContext(ctx, "audit hidden access", "err", e)
	}
}

// History returns a readable claim's transitions.
func (s *Service) History(ctx context.Context, p claims.Principal, id claims.ID) ([]claims.Transition, error) {
	if !claims.ValidID(string(id)) {
		return nil, errClaimNotFound
	}
	var (
		out    []claims.Transition
		hidden bool
	)
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		c, err := tx.Claim(ctx, id)
		if err != nil {
			return err
		}
		if !access.CanReadClaim(p, c) {
			hidden = true
			return errClaimNotFound
		}
		out, err = tx.Transitions(ctx, c.ID, c.HolderID)
		return err
	})
	if hidden {
		s.recordHidden(ctx, p, "claim.history_read", id)
	}
	return out, err
}

// ListRequest filters a claim list; access limits are added from the
// principal.
type ListRequest struct {
	Status       []claims.Status
	AssigneeID   claims.ID
	Unassigned   bool
	PolicyNumber string
	IncidentFrom claims.Date
	IncidentTo   claims.Date
	Cursor       string
	Limit        int
}

// Page is one page of a list.
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// ListClaims lists the claims the principal may see, newest first.
func (s *Service) ListClaims(ctx context.Context, p claims.Principal, r ListRequest) (Page[claims.Claim], error) {
	var page Page[claims.Claim]
	f := store.ClaimFilter{Status: r.Status, AssigneeID: r.AssigneeID, Unassigned: r.Unassigned,
		IncidentFrom: r.IncidentFrom, IncidentTo: r.IncidentTo, Limit: r.Limit}
	anyGrant, anyErr := access.Check(p, access.ClaimsReadAny)
	switch {
	case p.IsZero():
		return page, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	case anyErr == nil && anyGrant.MaxAmount == 0:
		f.ExcludeDrafts = true
	case access.Has(p, access.ClaimsReadAssigned) || anyErr == nil:
		// The queue and one's own claims, plus what a delegation scoped
		// to an amount opens up.
		if access.Has(p, access.ClaimsReadAssigned) {
			f.VisibleTo = p.UserID
		}
		if anyErr == nil {
			f.AnyUpTo = anyGrant.MaxAmount
		}
		f.ExcludeDrafts = true
	case access.Has(p, access.ClaimsReadOwn):
		if p.HolderID == "" {
			return page, nil
		}
		f.HolderID = p.HolderID
	default:
		return page, claims.Errorf(claims.Forbidden, "You do not have permission to list claims.")
	}
	var err error
	if f.After, err = store.ParseCursor(r.Cursor); err != nil {
		return page, err
	}
	f.Limit = limitOf(r.Limit)
	err = s.db.Read(ctx, func(tx *store.Tx) error {
		if r.PolicyNumber != "" {
			pol, err := tx.PolicyByNumber(ctx, r.PolicyNumber)
			if claims.KindOf(err) == claims.NotFound {
				f.PolicyID = "none" // matches nothing, like a foreign policy
			} else if err != nil {
				return err
			} else {
				f.PolicyID = pol.ID
			}
		}
		list, err := tx.Claims(ctx, f)
		if err != nil {
			return err
		}
		page.Items = list
		if len(list) == f.Limit {
			last := list[len(list)-1]
			page.NextCursor = store.CursorOf(last.ID, last.CreatedAt.UnixMicro()).String()
		}
		return nil
	})
	return page, err
}

func limitOf(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > store.MaxPage:
		return store.MaxPage
	}
	return n
}

// change runs one state change on a claim: it locks the claim, hides it
// (404) from those who can't read it, checks the client's version, lets fn
// apply the rule, writes the claim, its transition and an audit entry, and
// publishes after commit.
func (s *Service) change(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, action string,
	fn func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error)) (claims.Claim, error) {
	if p.IsZero() {
		return claims.Claim{}, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	}
	if !claims.ValidID(string(id)) {
		return claims.Claim{}, errClaimNotFound
	}
	var (
		c      claims.Claim
		moved  bool
		hidden bool
	)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if c, err = tx.ClaimForUpdate(ctx, id); err != nil {
			return err
		}
		if !access.CanReadClaim(p, c) {
			hidden = true
			return errClaimNotFound
		}
		if ifMatch != 0 && ifMatch != c.Version {
			return claims.Errorf(claims.PreconditionFailed, "Claim %s has changed (version %d, you sent %d); reload it and try again.", c.Number, c.Version, ifMatch)
		}
		t, details, err := fn(tx, &c)
		if err != nil {
			_ = audit(ctx, tx, p.UserID, action, "claim", string(c.ID), "denied", map[string]string{"error": claims.KindOf(err).String()})
			return err
		}
		if err := tx.UpdateClaim(ctx, &c); err != nil {
			return err
		}
		if details == nil {
			details = map[string]string{}
		}
		if t != nil {
			if err := tx.InsertTransition(ctx, c.HolderID, *t); err != nil {
				return err
			}
			details["from"], details["to"] = string(t.From), string(t.To)
			moved = true
		}
		return audit(ctx, tx, p.UserID, action, "claim", string(c.ID), "ok", details)
	})
	if hidden {
		s.recordHidden(ctx, p, action, id)
	}
	if err != nil {
		return claims.Claim{}, err
	}
	s.publish(claims.Event{Type: eventType(action, moved), ClaimID: c.ID, HolderID: c.HolderID, AssigneeID: c.AssigneeID, Status: c.Status, At: c.UpdatedAt})
	return c, nil
}

// A denied attempt is audited, but the audit row is written in the same
// transaction that is then rolled back. recordDenied writes it on its own.
func (s *Service) recordDenied(ctx context.Context, p claims.Principal, action string, id claims.ID, err error) {
	if k := claims.KindOf(err); k != claims.Forbidden {
		return
	}
	if e := s.db.InTx(ctx, func(tx *store.Tx) error {
		return audit(ctx, tx, p.UserID, action, "claim", string(id), "denied", nil)
	}); e != nil {
		s.log.ErrorContext(ctx, "audit denied access", "err", e)
	}
}

func (s *Service) moveOwn(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, to claims.Status, action, reason string,
	extra func(c *claims.Claim) error) (claims.Claim, error) {
	c, err := s.change(ctx, p, id, ifMatch, action, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		if p.HolderID == "" || c.HolderID != p.HolderID {
			return nil, nil, claims.Errorf(claims.Forbidden, "Only the policyholder can do this.")
		}
		if extra != nil {
			if err := extra(c); err != nil {
				return nil, nil, err
			}
		}
		t, err := c.MoveTo(to, p.UserID, reason, tx.Now())
		if err != nil {
			return nil, nil, err
		}
		return &t, nil, nil
	})
	s.recordDenied(ctx, p, action, id, err)
	return c, err
}

func checkReason(field, s string, required bool) error {
	var v claims.Validation
	claims.ValidateText(&v, field, s, claims.MaxReasonRunes, required)
	return v.Err()
}

// Submit moves the principal's draft claim to submitted.
func (s *Service) Submit(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64) (claims.Claim, error) {
	return s.moveOwn(ctx, p, id, ifMatch, claims.StatusSubmitted, "claim.submitted", "", nil)
}

// Withdraw lets the policyholder withdraw a claim before a decision.
func (s *Service) Withdraw(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, reason string) (claims.Claim, error) {
	if err := checkReason("reason", reason, false); err != nil {
		return claims.Claim{}, err
	}
	return s.moveOwn(ctx, p, id, ifMatch, claims.StatusWithdrawn, "claim.withdrawn", reason, nil)
}

// RespondInfo is the policyholder's answer to a request for information; the
// claim goes back to review.
func (s *Service) RespondInfo(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, message string) (claims.Claim, error) {
	if err := checkReason("message", message, true); err != nil {
		return claims.Claim{}, err
	}
	return s.moveOwn(ctx, p, id, ifMatch, claims.StatusUnderReview, "claim.info_provided", message, nil)
}

// Appeal reopens a denied or partially approved claim for review by another
// processor.
func (s *Service) Appeal(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, reason string) (claims.Claim, error) {
	if err := checkReason("reason", reason, true); err != nil {
		return claims.Claim{}, err
	}
	return s.moveOwn(ctx, p, id, ifMatch, claims.StatusUnderReview, "claim.appealed", reason, func(c *claims.Claim) error {
		if c.Appealed {
			// One internal appeal per claim; after it, the decision is
			// final here (the customer's further remedies are external).
			return claims.Errorf(claims.Conflict, "Claim %s has been appealed once already; its appeal decision is final.", c.Number)
		}
		c.Appealed = true
		c.AssigneeID = "" // back to the intake queue, for a different processor
		return nil
	})
}

// staff runs a processor action: permission, separation of duties (nobody
// handles a claim on their own policy), and for anything but taking the
// claim, being its assignee.
func (s *Service) staff(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, perm access.Permission, action string, needAssignee bool,
	fn func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error)) (claims.Claim, error) {
	g, err := access.Check(p, perm)
	if err != nil {
		if claims.KindOf(err) == claims.Forbidden {
			s.recordDenied(ctx, p, action, id, err)
		}
		return claims.Claim{}, err
	}
	ctx = withVia(ctx, g.Via)
	c, err := s.change(ctx, p, id, ifMatch, action, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		if access.IsOwnClaim(p, *c) {
			return nil, nil, claims.Errorf(claims.Forbidden, "You cannot handle a claim on your own policy.")
		}
		if g.MaxAmount > 0 && c.Total.Minor > g.MaxAmount {
			return nil, nil, claims.Errorf(claims.Forbidden, "Your delegation covers claims up to %s only.", claims.Money{Minor: g.MaxAmount, Currency: c.Total.Currency}.Decimal())
		}
		if needAssignee && c.AssigneeID != p.UserID {
			return nil, nil, claims.Errorf(claims.Forbidden, "Only the claim's assignee can do this; assign it to yourself first.")
		}
		return fn(tx, c)
	})
	s.recordDenied(ctx, p, action, id, err)
	return c, err
}

// Assign takes a claim for review: the assignee becomes the principal (or
// assignee, for supervisors assigning others), and a submitted claim moves
// to under_review.
func (s *Service) Assign(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, assignee claims.ID) (claims.Claim, error) {
	if assignee == "" {
		assignee = p.UserID
	}
	return s.staff(ctx, p, id, ifMatch, access.ClaimsAssign, "claim.assigned", false, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		if assignee != p.UserID && !access.Has(p, access.ClaimsReadAny) {
			return nil, nil, claims.Errorf(claims.Forbidden, "Only supervisors can assign claims to others.")
		}
		if c.AssigneeID != "" && c.AssigneeID != p.UserID && !access.Has(p, access.ClaimsReadAny) {
			return nil, nil, claims.Errorf(claims.Conflict, "Claim %s is assigned to someone else.", c.Number)
		}
		if assignee != p.UserID {
			u, err := tx.User(ctx, assignee)
			if err != nil || !access.Has(claims.Principal{UserID: u.ID, Role: u.Role}, access.ClaimsDecide) {
				return nil, nil, claims.InvalidField("assigneeId", "processor", "assigneeId must be a claims processor.")
			}
		}
		if c.Appealed && c.DecidedBy == assignee {
			return nil, nil, claims.Errorf(claims.Forbidden, "An appeal must be reviewed by a different processor than the one who decided the claim.")
		}
		if c.Status.Final() || c.Status == claims.StatusDraft {
			return nil, nil, claims.Errorf(claims.Conflict, "Claim %s is %s and cannot be assigned.", c.Number, c.Status)
		}
		c.AssigneeID = assignee
		c.UpdatedAt = tx.Now()
		details := map[string]string{"assignee": string(assignee)}
		if c.Status == claims.StatusSubmitted {
			t, err := c.MoveTo(claims.StatusUnderReview, p.UserID, "", tx.Now())
			if err != nil {
				return nil, nil, err
			}
			return &t, details, nil
		}
		return nil, details, nil
	})
}

// RequestInfo asks the policyholder for more information.
func (s *Service) RequestInfo(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, message string) (claims.Claim, error) {
	if err := checkReason("message", message, true); err != nil {
		return claims.Claim{}, err
	}
	return s.staff(ctx, p, id, ifMatch, access.ClaimsReview, "claim.info_requested", true, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		t, err := c.MoveTo(claims.StatusInfoRequested, p.UserID, message, tx.Now())
		return &t, nil, err
	})
}

// DecideRequest is a processor's decision.
type DecideRequest struct {
	Outcome   claims.Outcome
	Reason    string
	Overrides []OverrideInput
}

// OverrideInput is a processor's judgement about one line as sent; Allowed
// is a decimal string in the claim's currency.
type OverrideInput struct {
	LineID  claims.ID
	Exclude bool
	Allowed *string
	Note    string
}

func overrides(in []OverrideInput, currency string) ([]claims.LineOverride, error) {
	var v claims.Validation
	out := make([]claims.LineOverride, 0, len(in))
	for i, o := range in {
		lo := claims.LineOverride{LineID: o.LineID, Exclude: o.Exclude, Note: o.Note}
		if o.Allowed != nil {
			m, err := claims.ParseMoney(*o.Allowed, currency)
			if err != nil {
				v.Add(fmt.Sprintf("lines[%d].allowed", i), "decimal", "lines[%d].allowed: %v.", i, err)
			}
			lo.Allowed = &m
		}
		out = append(out, lo)
	}
	return out, v.Err()
}

// Decide adjudicates a claim: it computes the payable amount per line under
// the policy's rules and what the period already used, and records the
// decision. The policy row is locked so concurrent decisions on one policy
// can't both spend the same remaining limit.
func (s *Service) Decide(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, r DecideRequest) (claims.Claim, error) {
	if err := checkReason("reason", r.Reason, r.Outcome == claims.OutcomeDeny); err != nil {
		return claims.Claim{}, err
	}
	return s.staff(ctx, p, id, ifMatch, access.ClaimsDecide, "claim.decided", true, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		pol, err := tx.PolicyForUpdate(ctx, c.PolicyID)
		if err != nil {
			return nil, nil, err
		}
		used, err := tx.PeriodUsage(ctx, pol, c.ID)
		if err != nil {
			return nil, nil, err
		}
		ov, err := overrides(r.Overrides, c.Total.Currency)
		if err != nil {
			return nil, nil, err
		}
		d, err := claims.Adjudicate(*c, pol, used, ov, r.Outcome)
		if err != nil {
			return nil, nil, err
		}
		d.Reason = r.Reason
		// Above the decider's authority, the decision waits for a second
		// person with enough authority (denials pay nothing and need none).
		needsApproval := d.Payable.Minor > authority(p)
		t, err := c.Decide(d, p.UserID, tx.Now(), needsApproval)
		if err != nil {
			return nil, nil, err
		}
		return &t, map[string]string{"outcome": string(d.Outcome), "status": string(d.Status),
			"submitted": d.Submitted.String(), "payable": d.Payable.String(), "appeal": strconv.FormatBool(c.Appealed),
			"pending_approval": strconv.FormatBool(needsApproval)}, nil
	})
}

// Pay records the payment of a decided claim's payable amount.
func (s *Service) Pay(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, reference string) (claims.Claim, error) {
	var v claims.Validation
	claims.ValidateText(&v, "reference", reference, 100, false)
	if err := v.Err(); err != nil {
		return claims.Claim{}, err
	}
	return s.staff(ctx, p, id, ifMatch, access.ClaimsPay, "claim.paid", false, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		if c.Payable.Minor <= 0 && c.Status.CanMoveTo(claims.StatusPaid) {
			return nil, nil, claims.Errorf(claims.Conflict, "Claim %s has nothing payable.", c.Number)
		}
		if min := s.identity.PaymentStepUpMin; min > 0 && c.Payable.Minor >= min {
			if !p.MFAEnrolled {
				e := claims.Errorf(claims.Forbidden, "Payments of %s or more need a second factor; enrol one first.", claims.Money{Minor: min, Currency: c.Payable.Currency}.Decimal())
				e.Fields = []claims.FieldError{{Rule: RuleStepUpRequired, Message: e.Message}}
				return nil, nil, e
			}
			if err := s.StepUp(p); err != nil {
				return nil, nil, err
			}
		}
		if c.Payable.Minor > authority(p) {
			return nil, nil, claims.Errorf(claims.Forbidden, "Paying %s is above your authority; a processor with a higher limit must pay it.", c.Payable)
		}
		t, err := c.MoveTo(claims.StatusPaid, p.UserID, reference, tx.Now())
		if err != nil {
			return nil, nil, err
		}
		if reference == "" {
			reference = "PAY-" + string(c.ID[:12])
		}
		if err := tx.InsertPayment(ctx, store.Payment{ID: claims.NewID(), ClaimID: c.ID, Amount: c.Payable,
			Reference: reference, PaidBy: p.UserID}); err != nil {
			return nil, nil, err
		}
		return &t, map[string]string{"amount": c.Payable.String()}, nil
	})
}

// Close closes a paid or denied claim.
func (s *Service) Close(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64) (claims.Claim, error) {
	return s.staff(ctx, p, id, ifMatch, access.ClaimsReview, "claim.closed", false, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		t, err := c.MoveTo(claims.StatusClosed, p.UserID, "", tx.Now())
		return &t, nil, err
	})
}

// Policies lists the policies the principal may see.
func (s *Service) Policies(ctx context.Context, p claims.Principal, cursor string, limit int) (Page[claims.Policy], error) {
	var page Page[claims.Policy]
	f := store.PolicyFilter{Limit: limitOf(limit)}
	switch {
	case p.IsZero():
		return page, claims.Errorf(claims.Unauthenticated, "Sign in first.")
	case access.Has(p, access.PoliciesReadAny):
	case access.Has(p, access.PoliciesReadOwn):
		if p.HolderID == "" {
			return page, nil
		}
		f.HolderID = p.HolderID
	default:
		return page, claims.Errorf(claims.Forbidden, "You do not have permission to list policies.")
	}
	var err error
	if f.After, err = store.ParseCursor(cursor); err != nil {
		return page, err
	}
	err = s.db.Read(ctx, func(tx *store.Tx) error {
		list, err := tx.Policies(ctx, f)
		page.Items = list
		if err == nil && len(list) == f.Limit {
			last := list[len(list)-1]
			page.NextCursor = store.CursorOf(last.ID, last.CreatedAt.UnixMicro()).String()
		}
		return err
	})
	return page, err
}

// Policy returns one policy the principal may see.
func (s *Service) Policy(ctx context.Context, p claims.Principal, id claims.ID) (claims.Policy, error) {
	notFound := claims.Errorf(claims.NotFound, "Policy not found.")
	if !claims.ValidID(string(id)) {
		return claims.Policy{}, notFound
	}
	var pol claims.Policy
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		pol, err = tx.Policy(ctx, id)
		if err == nil && !access.CanReadPolicy(p, pol) {
			return notFound
		}
		return err
	})
	return pol, err
}

// NewPolicyRequest creates a policy, and its holder when the holder is new.
type NewPolicyRequest struct {
	Policy claims.Policy // Number, ProductLine, dates, money, CoinsuranceBP
	Holder claims.Policyholder
	// HolderEmail links the policy to an existing customer account's holder.
	HolderEmail string
}

// CreatePolicy creates a policy (admins: policies.manage).
func (s *Service) CreatePolicy(ctx context.Context, p claims.Principal, r NewPolicyRequest) (claims.Policy, error) {
	if err := access.Require(p, access.PoliciesManage); err != nil {
		return claims.Policy{}, err
	}
	pol := r.Policy
	if err := validatePolicy(pol); err != nil {
		return claims.Policy{}, err
	}
	pol.ID, pol.Number, pol.Status = claims.NewID(), claims.NormalizePolicyNumber(pol.Number), claims.PolicyActive
	if pol.CoinsuranceBP == 0 {
		pol.CoinsuranceBP = 10000
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if r.HolderEmail != "" {
			u, err := tx.UserByEmail(ctx, r.HolderEmail)
			if err != nil || u.HolderID == "" {
				return claims.InvalidField("holderEmail", "exists", "No customer account has this email.")
			}
			if !u.EmailVerified {
				// Registration proves nothing about the email: whoever
				// registered an address first must not receive policies
				// recorded for its real owner.
				return claims.InvalidField("holderEmail", "verified", "The customer has not confirmed this email address yet; record the policyholder's details instead, and they link it with the code mailed to them.")
			}
			pol.HolderID = u.HolderID
		} else {
			h := r.Holder
			h.ID = claims.NewID()
			if err := tx.InsertHolder(ctx, h, "", ""); err != nil {
				return err
			}
			pol.HolderID = h.ID
			// An account already registered under the holder's email gets
			// a link code by mail, as at registration.
			if email := h.Email.Reveal(); email != "" {
				if u, err := tx.UserByEmail(ctx, email); err == nil && u.Role == claims.RoleCustomer {
					if err := s.mailLinkCode(ctx, tx, u.ID, h.ID, u.Email); err != nil {
						return err
					}
				}
			}
		}
		pol.CreatedAt = tx.Now() // the answer carries it as a read would
		if err := tx.InsertPolicy(ctx, pol); err != nil {
			return err
		}
		return audit(ctx, tx, p.UserID, "policy.created", "policy", string(pol.ID), "ok", map[string]string{"number": pol.Number})
	})
	if err != nil {
		return claims.Policy{}, err
	}
	return pol, nil
}

func validatePolicy(p claims.Policy) error {
	var v claims.Validation
	v.Check(p.Number != "", "number", "required", "number is required.")
	claims.ValidateText(&v, "number", p.Number, 64, false)
	v.Check(claims.ValidProductLine(p.ProductLine), "productLine", "enum", "productLine must be auto, health or property.")
	v.Check(!p.EffectiveDate.IsZero(), "effectiveDate", "required", "effectiveDate is required.")
	v.Check(!p.ExpiryDate.IsZero(), "expiryDate", "required", "expiryDate is required.")
	if !p.EffectiveDate.IsZero() && !p.ExpiryDate.IsZero() {
		v.Check(p.ExpiryDate.After(p.EffectiveDate), "expiryDate", "after_effective", "expiryDate must be after effectiveDate.")
	}
	v.Check(p.CoverageLimit.Minor > 0, "coverageLimit", "positive", "coverageLimit must be greater than zero.")
	v.Check(p.Deductible.Minor >= 0, "deductible", "non_negative", "deductible must not be negative.")
	v.Check(p.Premium.Minor >= 0, "premium", "non_negative", "premium must not be negative.")
	v.Check(p.CoinsuranceBP >= 0 && p.CoinsuranceBP <= 10000, "coinsuranceBp", "range", "coinsuranceBp must be between 0 and 10000.")
	cur := p.CoverageLimit.Currency
	v.Check(p.Deductible.Currency == cur && p.Premium.Currency == cur, "currency", "same", "All amounts must share one currency.")
	return v.Err()
}

// AuditTrail returns audit entries (audit.read).
func (s *Service) AuditTrail(ctx context.Context, p claims.Principal, f store.AuditFilter) ([]claims.AuditEntry, error) {
	if err := access.Require(p, access.AuditRead); err != nil {
		return nil, err
	}
	var out []claims.AuditEntry
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		out, err = tx.AuditEntries(ctx, f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	return out, nil
}

// Me returns the principal's account.
func (s *Service) Me(ctx context.Context, p claims.Principal) (claims.User, error) {
	var u claims.User
	err := s.db.Read(ctx, func(tx *store.Tx) error {
		var err error
		u, err = tx.User(ctx, p.UserID)
		return err
	})
	return u, err
}

// authority is the principal's monetary authority in minor units. A
// principal built without resolved grants (tests, tools) has its built-in
// role's default.
func authority(p claims.Principal) int64 {
	if p.Grants == nil {
		return access.DefaultAuthority(p.Role)
	}
	return p.AuthorityLimit
}

// ApproveDecision confirms a decision that waited for a second person: the
// approver needs claims.decide with enough authority, must not be the
// proposer, and the period limit is checked again (other claims may have
// been paid since the decision was proposed).
func (s *Service) ApproveDecision(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64) (claims.Claim, error) {
	return s.staff(ctx, p, id, ifMatch, access.ClaimsDecide, "claim.decision_approved", false, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		if c.Status != claims.StatusPendingApproval {
			return nil, nil, claims.Errorf(claims.Conflict, "Claim %s has no decision waiting for approval.", c.Number)
		}
		if c.Payable.Minor > authority(p) {
			return nil, nil, claims.Errorf(claims.Forbidden, "Approving %s is above your authority too.", c.Payable)
		}
		pol, err := tx.PolicyForUpdate(ctx, c.PolicyID)
		if err != nil {
			return nil, nil, err
		}
		used, err := tx.PeriodUsage(ctx, pol, c.ID)
		if err != nil {
			return nil, nil, err
		}
		if used.Paid.Minor+c.Payable.Minor > pol.CoverageLimit.Minor {
			return nil, nil, claims.Errorf(claims.Conflict, "The policy's limit has been used since this decision was proposed; return it for a new decision.")
		}
		proposer := c.ProposedBy
		t, err := c.ApproveDecision(p.UserID, tx.Now())
		if err != nil {
			return nil, nil, err
		}
		return &t, map[string]string{"payable": c.Payable.String(), "proposed_by": string(proposer)}, nil
	})
}

// ReturnDecision sends a pending decision back to review.
func (s *Service) ReturnDecision(ctx context.Context, p claims.Principal, id claims.ID, ifMatch int64, reason string) (claims.Claim, error) {
	if err := checkReason("reason", reason, true); err != nil {
		return claims.Claim{}, err
	}
	return s.staff(ctx, p, id, ifMatch, access.ClaimsDecide, "claim.decision_returned", false, func(tx *store.Tx, c *claims.Claim) (*claims.Transition, map[string]string, error) {
		if c.ProposedBy == p.UserID {
			return nil, nil, claims.Errorf(claims.Forbidden, "Another processor must review your proposed decision.")
		}
		t, err := c.ReturnDecision(p.UserID, reason, tx.Now())
		return &t, nil, err
	})
}
