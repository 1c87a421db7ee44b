package claims

import (
	"fmt"
	"sort"
	"time"
)

// Adjudicate computes what claim c pays under policy p, given what the
// policy period has already used and the processor's per-line overrides.
// It is pure: the same inputs always give the same decision.
//
// The rules, applied in this order:
//
//  1. Eligibility, per line: a category the product does not cover, or a line
//     the processor excludes, is not covered; a line with the same category,
//     service date and amount as an earlier line of this claim or a line
//     paid on an earlier claim in the period is a duplicate; a processor may
//     allow less than submitted (adjusted). Eligible = what remains.
//  2. Deductible, once per policy period: what the period has not yet met is
//     taken from eligible amounts in line order until it is met.
//  3. Coinsurance: the insurer pays CoinsuranceBP/10000 of what remains. The
//     claim-level share is rounded down to the minor unit (the insurer never
//     pays a fraction it cannot pay), then split over the lines by the
//     largest-remainder method (ties to the earlier line), so the line
//     shares add up exactly to the claim share.
//  4. Limit: the period's benefits never exceed the coverage limit. What is
//     left of the limit is given to lines in line order; the rest is over
//     limit.
//
// For every line Submitted = Benefit + the reductions (not covered,
// duplicate, adjusted, deductible, coinsurance, over limit), and the header
// amounts are the sums of the lines: no rounding leak anywhere.
func Adjudicate(c Claim, p Policy, used PeriodUsage, overrides []LineOverride, outcome Outcome) (Decision, error) {
	cur := c.Total.Currency
	if p.CoverageLimit.Currency != cur {
		return Decision{}, Errorf(Conflict, "Claim currency %s differs from the policy currency %s.", cur, p.CoverageLimit.Currency)
	}
	if outcome != OutcomeApprove && outcome != OutcomeDeny {
		return Decision{}, InvalidField("outcome", "enum", "outcome must be approve or deny.")
	}
	byLine := map[ID]LineOverride{}
	for i, o := range overrides {
		if _, ok := lineByID(c, o.LineID); !ok {
			return Decision{}, InvalidField(fmt.Sprintf("lines[%d].lineId", i), "exists", "lines[%d].lineId is not a line of this claim.", i)
		}
		if o.Allowed != nil && (o.Allowed.Currency != cur || o.Allowed.Minor < 0) {
			return Decision{}, InvalidField(fmt.Sprintf("lines[%d].allowed", i), "non_negative", "lines[%d].allowed must be a non-negative amount in %s.", i, cur)
		}
		byLine[o.LineID] = o
	}

	d := Decision{Outcome: outcome, Submitted: Zero(cur), Eligible: Zero(cur),
		DeductibleApplied: Zero(cur), Payable: Zero(cur)}
	seen := map[string]bool{}
	for _, l := range c.Lines {
		ld := LineDecision{LineID: l.ID, Seq: l.Seq, Submitted: l.Amount, Eligible: l.Amount,
			DeductibleApplied: Zero(cur), CoinsuranceApplied: Zero(cur), LimitApplied: Zero(cur), Benefit: Zero(cur)}
		key := LineKey(l, c.IncidentDate)
		o := byLine[l.ID]
		switch {
		case outcome == OutcomeDeny:
			ld.Eligible = Zero(cur)
			ld.Reasons = append(ld.Reasons, ReasonDenied)
		case o.Exclude || !p.ProductLine.Covers(l.Category):
			ld.Eligible = Zero(cur)
			ld.Reasons = append(ld.Reasons, ReasonNotCovered)
		// A processor who states an allowed amount has judged the line
		// themselves: that overrides the duplicate heuristic.
		case o.Allowed == nil && (seen[key] || used.PaidLines[key]):
			ld.Eligible = Zero(cur)
			ld.Reasons = append(ld.Reasons, ReasonDuplicate)
		case o.Allowed != nil && o.Allowed.Minor < l.Amount.Minor:
			ld.Eligible = *o.Allowed
			ld.Reasons = append(ld.Reasons, ReasonAdjusted)
		}
		seen[key] = true
		d.Lines = append(d.Lines, ld)
	}

	// 2. Deductible, in line order.
	remainingDed := p.Deductible.Sub(used.DeductibleApplied)
	if remainingDed.Minor < 0 {
		remainingDed = Zero(cur)
	}
	for i := range d.Lines {
		ld := &d.Lines[i]
		take := ld.Eligible.Min(remainingDed)
		if take.Minor > 0 {
			ld.DeductibleApplied = take
			remainingDed = remainingDed.Sub(take)
			ld.Reasons = append(ld.Reasons, ReasonDeductible)
		}
	}

	// 3. Coinsurance with largest-remainder allocation.
	bp := int64(p.CoinsuranceBP)
	if bp <= 0 || bp > 10000 {
		bp = 10000
	}
	var base int64
	for _, ld := range d.Lines {
		base += ld.Eligible.Minor - ld.DeductibleApplied.Minor
	}
	shares := allocate(base*bp/10000, d.Lines, bp)
	for i := range d.Lines {
		ld := &d.Lines[i]
		after := ld.Eligible.Minor - ld.DeductibleApplied.Minor
		ld.Benefit = Money{shares[i], cur}
		if co := after - shares[i]; co > 0 {
			ld.CoinsuranceApplied = Money{co, cur}
			ld.Reasons = append(ld.Reasons, ReasonCoinsurance)
		}
	}

	// 4. Coverage limit for the period, in line order.
	remainingLimit := p.CoverageLimit.Sub(used.Paid)
	if remainingLimit.Minor < 0 {
		remainingLimit = Zero(cur)
	}
	for i := range d.Lines {
		ld := &d.Lines[i]
		pay := ld.Benefit.Min(remainingLimit)
		if over := ld.Benefit.Sub(pay); over.Minor > 0 {
			ld.LimitApplied = over
			ld.Reasons = append(ld.Reasons, ReasonOverLimit)
		}
		ld.Benefit = pay
		remainingLimit = remainingLimit.Sub(pay)
	}

	for _, ld := range d.Lines {
		d.Submitted = d.Submitted.Add(ld.Submitted)
		d.Eligible = d.Eligible.Add(ld.Eligible)
		d.DeductibleApplied = d.DeductibleApplied.Add(ld.DeductibleApplied)
		d.Payable = d.Payable.Add(ld.Benefit)
	}
	switch {
	case outcome == OutcomeDeny || d.Payable.Minor == 0:
		d.Status = StatusDenied
	case d.Payable.Minor == d.Submitted.Minor:
		d.Status = StatusApproved
	default:
		d.Status = StatusPartiallyApproved
	}
	return d, nil
}

func lineByID(c Claim, id ID) (LineItem, bool) {
	for _, l := range c.Lines {
		if l.ID == id {
			return l, true
		}
	}
	return LineItem{}, false
}

// allocate splits total over the lines in proportion to each line's amount
// after the deductible times bp/10000, by the largest-remainder method: each
// line gets the floor of its exact share, and the minor units left over go
// one each to the lines with the largest fractional parts (earlier line on a
// tie). The result sums exactly to total.
func allocate(total int64, lines []LineDecision, bp int64) []int64 {
	out := make([]int64, len(lines))
	type rem struct {
		i    int
		frac int64 // numerator of the fractional part, over 10000
	}
	var rems []rem
	var sum int64
	for i, ld := range lines {
		exact := (ld.Eligible.Minor - ld.DeductibleApplied.Minor) * bp // in 1/10000 minor units
		out[i] = exact / 10000
		sum += out[i]
		rems = append(rems, rem{i, exact % 10000})
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].frac > rems[b].frac })
	for k := 0; sum < total && k < len(rems); k++ {
		out[rems[k].i]++
		sum++
	}
	return out
}

// Decide applies decision d to c: the status moves (or a Conflict error
// names the allowed moves), the payable amount and decision are set. An
// appealed claim must be decided by someone other than the previous decider.
// With needsApproval (the payable is above the decider's authority) the
// claim waits in pending_approval for a second person instead.
func (c *Claim) Decide(d Decision, actor ID, now time.Time, needsApproval bool) (Transition, error) {
	to := d.Status
	if needsApproval {
		to = StatusPendingApproval
	}
	if !c.Status.CanMoveTo(to) {
		return c.MoveTo(to, actor, d.Reason, now) // the Conflict naming the allowed moves
	}
	if c.Appealed && c.DecidedBy == actor {
		return Transition{}, Errorf(Forbidden, "An appeal must be decided by a different processor than the original decision.")
	}
	t, err := c.MoveTo(to, actor, d.Reason, now)
	if err != nil {
		return Transition{}, err
	}
	d.DecidedBy, d.DecidedAt = actor, now
	c.Decision, c.Payable = &d, d.Payable
	if needsApproval {
		c.ProposedBy = actor
	} else {
		c.DecidedBy, c.ProposedBy = actor, ""
	}
	return t, nil
}

// ApproveDecision is the second person's confirmation of a decision that
// waited for approval. The proposer can't approve their own decision.
func (c *Claim) ApproveDecision(actor ID, now time.Time) (Transition, error) {
	if c.Status != StatusPendingApproval || c.Decision == nil {
		return Transition{}, Errorf(Conflict, "Claim %s has no decision waiting for approval.", c.Number)
	}
	if c.ProposedBy == actor {
		return Transition{}, Errorf(Forbidden, "A decision above one's authority needs a second person; you proposed this one.")
	}
	t, err := c.MoveTo(c.Decision.Status, actor, "approved decision proposed by another processor", now)
	if err != nil {
		return Transition{}, err
	}
	c.DecidedBy = c.ProposedBy
	c.ProposedBy = ""
	return t, nil
}

// ReturnDecision sends a pending decision back to review.
func (c *Claim) ReturnDecision(actor ID, reason string, now time.Time) (Transition, error) {
	if c.Status != StatusPendingApproval {
		return Transition{}, Errorf(Conflict, "Claim %s has no decision waiting for approval.", c.Number)
	}
	t, err := c.MoveTo(StatusUnderReview, actor, reason, now)
	if err != nil {
		return Transition{}, err
	}
	c.Decision, c.Payable, c.ProposedBy = nil, Zero(c.Total.Currency), ""
	return t, nil
}
