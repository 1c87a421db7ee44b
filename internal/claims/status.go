package claims

import "slices"

// Status is where a claim is in its life cycle.
type Status string

// Claim statuses. The life cycle:
//
//	draft → submitted → under_review ⇄ info_requested
//	under_review → approved | partially_approved | denied
//	under_review → pending_approval → approved | partially_approved | denied | under_review
//	                 (a decision above the decider's authority waits for a second person)
//	approved | partially_approved → paid → closed
//	denied | partially_approved → under_review   (appeal)
//	denied → closed
//	draft | submitted | under_review | info_requested → withdrawn (by the customer)
const (
	StatusDraft             Status = "draft"
	StatusSubmitted         Status = "submitted"
	StatusUnderReview       Status = "under_review"
	StatusInfoRequested     Status = "info_requested"
	StatusPendingApproval   Status = "pending_approval"
	StatusApproved          Status = "approved"
	StatusPartiallyApproved Status = "partially_approved"
	StatusDenied            Status = "denied"
	StatusPaid              Status = "paid"
	StatusClosed            Status = "closed"
	StatusWithdrawn         Status = "withdrawn"
)

// Statuses lists every status in life-cycle order.
var Statuses = []Status{StatusDraft, StatusSubmitted, StatusUnderReview, StatusInfoRequested,
	StatusPendingApproval, StatusApproved, StatusPartiallyApproved, StatusDenied, StatusPaid, StatusClosed, StatusWithdrawn}

// ValidStatus reports whether s is a known status.
func ValidStatus(s Status) bool { return slices.Contains(Statuses, s) }

// next lists the statuses a claim may move to from each status. It is the
// whole state machine: every status change in the product goes through
// Claim.moveTo, which consults it.
var next = map[Status][]Status{
	StatusDraft:             {StatusSubmitted, StatusWithdrawn},
	StatusSubmitted:         {StatusUnderReview, StatusWithdrawn},
	StatusUnderReview:       {StatusInfoRequested, StatusPendingApproval, StatusApproved, StatusPartiallyApproved, StatusDenied, StatusWithdrawn},
	StatusPendingApproval:   {StatusApproved, StatusPartiallyApproved, StatusDenied, StatusUnderReview},
	StatusInfoRequested:     {StatusUnderReview, StatusWithdrawn},
	StatusApproved:          {StatusPaid},
	StatusPartiallyApproved: {StatusPaid, StatusUnderReview},
	StatusDenied:            {StatusUnderReview, StatusClosed},
	StatusPaid:              {StatusClosed},
}

// CanMoveTo reports whether a claim in status s may move to status to.
func (s Status) CanMoveTo(to Status) bool { return slices.Contains(next[s], to) }

// Next returns the statuses reachable from s in one step.
func (s Status) Next() []Status { return slices.Clone(next[s]) }

// Decided reports whether s is a decision (or later).
func (s Status) Decided() bool {
	switch s {
	case StatusApproved, StatusPartiallyApproved, StatusDenied, StatusPaid, StatusClosed:
		return true
	}
	return false
}

// Final reports whether nothing more can happen to a claim in s.
func (s Status) Final() bool { return len(next[s]) == 0 }
