package claims

import "time"

// Outcome is what a processor decides.
type Outcome string

const (
	OutcomeApprove Outcome = "approve" // pay what the rules allow (may end partially approved)
	OutcomeDeny    Outcome = "deny"    // pay nothing
)

// ReasonCode explains why a line pays less than was submitted.
type ReasonCode string

const (
	ReasonNotCovered  ReasonCode = "not_covered" // category outside the product, or excluded by the processor
	ReasonDuplicate   ReasonCode = "duplicate"   // same category, service date and amount as an earlier line or paid claim
	ReasonAdjusted    ReasonCode = "adjusted"    // processor allowed less than submitted (e.g. above usual cost)
	ReasonDeductible  ReasonCode = "deductible"  // deductible applied
	ReasonCoinsurance ReasonCode = "coinsurance" // the policyholder's share after the deductible
	ReasonOverLimit   ReasonCode = "over_limit"  // coverage limit for the policy period reached
	ReasonDenied      ReasonCode = "denied"      // the whole claim was denied
)

// LineDecision is the per-line explanation of a decision. For every line:
// Submitted - reductions = Benefit, and Eligible = Submitted - (not covered,
// duplicate, adjusted).
type LineDecision struct {
	LineID             ID
	Seq                int
	Submitted          Money
	Eligible           Money
	DeductibleApplied  Money
	CoinsuranceApplied Money
	LimitApplied       Money
	Benefit            Money
	Reasons            []ReasonCode
}

// Decision is a claim's adjudication: what is paid and why.
type Decision struct {
	Outcome           Outcome
	Status            Status // approved, partially_approved or denied
	Reason            string // the processor's words
	Lines             []LineDecision
	Submitted         Money
	Eligible          Money
	DeductibleApplied Money
	Payable           Money
	DecidedBy         ID
	DecidedAt         time.Time
}

// LineOverride is a processor's judgement about one line: exclude it, or
// allow less than submitted.
type LineOverride struct {
	LineID  ID
	Exclude bool   // pay nothing for this line (ReasonNotCovered)
	Allowed *Money // pay at most this (ReasonAdjusted); nil = no change
	Note    string
}

// PeriodUsage is what a policy period has already consumed, from earlier
// decisions that still stand (approved, partially approved, paid, closed).
type PeriodUsage struct {
	Paid              Money // benefits committed in the period
	DeductibleApplied Money // deductible already met in the period
	// PaidLines identifies lines paid on earlier claims, to catch the same
	// bill sent twice: category|serviceDate|amount.
	PaidLines map[string]bool
}

// LineKey identifies a line for duplicate detection: category, date and
// amount. A line without a service date takes its claim's incident date,
// so the same repair billed for two different incidents isn't a duplicate.
func LineKey(l LineItem, incident Date) string {
	d := l.ServiceDate
	if d.IsZero() {
		d = incident
	}
	return l.Category + "|" + d.String() + "|" + l.Amount.String()
}
