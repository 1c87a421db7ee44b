package claims

import (
	"slices"
	"testing"
)

func usd(s string) Money { return MustMoney(s, "USD") }

func testPolicy(limit, ded string, bp int) Policy {
	return Policy{ID: "p1", ProductLine: LineAuto, Status: PolicyActive,
		EffectiveDate: NewDate(2026, 1, 1), ExpiryDate: NewDate(2026, 12, 31),
		CoverageLimit: usd(limit), Deductible: usd(ded), CoinsuranceBP: bp}
}

func testClaim(lines ...LineItem) Claim {
	c := Claim{ID: "c1", PolicyID: "p1", Total: Zero("USD"), Status: StatusUnderReview}
	for i, l := range lines {
		l.ID, l.Seq = ID(string(rune('a'+i))), i+1
		if l.ServiceDate.IsZero() {
			l.ServiceDate = NewDate(2026, 3, 1)
		}
		c.Lines = append(c.Lines, l)
		c.Total = c.Total.Add(l.Amount)
	}
	return c
}

func line(cat, amount string) LineItem { return LineItem{Category: cat, Amount: usd(amount)} }

func TestAdjudicate(t *testing.T) {
	type want struct {
		payable string
		status  Status
		benefit []string
		reasons [][]ReasonCode
	}
	tests := []struct {
		name      string
		policy    Policy
		used      PeriodUsage
		claim     Claim
		overrides func(Claim) []LineOverride
		outcome   Outcome
		want      want
	}{
		{
			name: "full approval, no deductible", policy: testPolicy("1000.00", "0", 10000),
			claim: testClaim(line("vehicle", "400.00"), line("towing", "100.00")), outcome: OutcomeApprove,
			want: want{"500.00", StatusApproved, []string{"400.00", "100.00"}, [][]ReasonCode{nil, nil}},
		},
		{
			name: "limit partly used: 1000 limit, 700 paid, 500 claim pays 300", policy: testPolicy("1000.00", "0", 10000),
			used:  PeriodUsage{Paid: usd("700.00"), DeductibleApplied: usd("0")},
			claim: testClaim(line("vehicle", "500.00")), outcome: OutcomeApprove,
			want: want{"300.00", StatusPartiallyApproved, []string{"300.00"}, [][]ReasonCode{{ReasonOverLimit}}},
		},
		{
			name: "limit exhausted pays 0", policy: testPolicy("1000.00", "0", 10000),
			used:  PeriodUsage{Paid: usd("1000.00"), DeductibleApplied: usd("0")},
			claim: testClaim(line("vehicle", "500.00")), outcome: OutcomeApprove,
			want: want{"0.00", StatusDenied, []string{"0.00"}, [][]ReasonCode{{ReasonOverLimit}}},
		},
		{
			name: "deductible taken in line order", policy: testPolicy("5000.00", "250.00", 10000),
			used:  PeriodUsage{Paid: usd("0"), DeductibleApplied: usd("0")},
			claim: testClaim(line("towing", "100.00"), line("vehicle", "900.00")), outcome: OutcomeApprove,
			want: want{"750.00", StatusPartiallyApproved, []string{"0.00", "750.00"}, [][]ReasonCode{{ReasonDeductible}, {ReasonDeductible}}},
		},
		{
			name: "deductible once per period", policy: testPolicy("5000.00", "250.00", 10000),
			used:  PeriodUsage{Paid: usd("100.00"), DeductibleApplied: usd("250.00")},
			claim: testClaim(line("vehicle", "900.00")), outcome: OutcomeApprove,
			want: want{"900.00", StatusApproved, []string{"900.00"}, [][]ReasonCode{nil}},
		},
		{
			name: "not covered category", policy: testPolicy("5000.00", "0", 10000),
			claim: testClaim(line("vehicle", "300.00"), line("medication", "50.00")), outcome: OutcomeApprove,
			want: want{"300.00", StatusPartiallyApproved, []string{"300.00", "0.00"}, [][]ReasonCode{nil, {ReasonNotCovered}}},
		},
		{
			name: "duplicate line in the same claim", policy: testPolicy("5000.00", "0", 10000),
			claim: testClaim(line("vehicle", "300.00"), line("vehicle", "300.00")), outcome: OutcomeApprove,
			want: want{"300.00", StatusPartiallyApproved, []string{"300.00", "0.00"}, [][]ReasonCode{nil, {ReasonDuplicate}}},
		},
		{
			name: "duplicate of a line paid earlier", policy: testPolicy("5000.00", "0", 10000),
			used:  PeriodUsage{PaidLines: map[string]bool{"vehicle|2026-03-01|300.00 USD": true}},
			claim: testClaim(line("vehicle", "300.00")), outcome: OutcomeApprove,
			want: want{"0.00", StatusDenied, []string{"0.00"}, [][]ReasonCode{{ReasonDuplicate}}},
		},
		{
			name: "processor excludes and adjusts", policy: testPolicy("5000.00", "0", 10000),
			claim: testClaim(line("vehicle", "300.00"), line("rental", "200.00")),
			overrides: func(c Claim) []LineOverride {
				a := usd("120.00")
				return []LineOverride{{LineID: c.Lines[0].ID, Exclude: true}, {LineID: c.Lines[1].ID, Allowed: &a}}
			},
			outcome: OutcomeApprove,
			want:    want{"120.00", StatusPartiallyApproved, []string{"0.00", "120.00"}, [][]ReasonCode{{ReasonNotCovered}, {ReasonAdjusted}}},
		},
		{
			name: "coinsurance remainder allocation: 80% of three odd cents", policy: testPolicy("5000.00", "0", 8000),
			claim: testClaim(line("vehicle", "0.01"), line("towing", "0.01"), line("rental", "0.01")), outcome: OutcomeApprove,
			// 80% of 0.03 = 0.024 → 0.02 total; each line's exact share is 0.008:
			// floors are 0, the two cents go to the first two lines (tie → earlier).
			want: want{"0.02", StatusPartiallyApproved, []string{"0.01", "0.01", "0.00"},
				[][]ReasonCode{nil, nil, {ReasonCoinsurance}}},
		},
		{
			name: "coinsurance after deductible", policy: testPolicy("5000.00", "100.00", 8000),
			claim: testClaim(line("vehicle", "333.33"), line("towing", "66.67")), outcome: OutcomeApprove,
			// eligible 400, deductible 100 on line 1 → 233.33 + 66.67 = 300 → 240.00
			want: want{"240.00", StatusPartiallyApproved, []string{"186.66", "53.34"},
				[][]ReasonCode{{ReasonDeductible, ReasonCoinsurance}, {ReasonCoinsurance}}},
		},
		{
			name: "deny pays nothing", policy: testPolicy("5000.00", "0", 10000),
			claim: testClaim(line("vehicle", "300.00")), outcome: OutcomeDeny,
			want: want{"0.00", StatusDenied, []string{"0.00"}, [][]ReasonCode{{ReasonDenied}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used := tt.used
			if used.Paid.Currency == "" {
				used.Paid = Zero("USD")
			}
			if used.DeductibleApplied.Currency == "" {
				used.DeductibleApplied = Zero("USD")
			}
			var ov []LineOverride
			if tt.overrides != nil {
				ov = tt.overrides(tt.claim)
			}
			d, err := Adjudicate(tt.claim, tt.policy, used, ov, tt.outcome)
			if err != nil {
				t.Fatalf("Adjudicate() error = %v", err)
			}
			if got := d.Payable.Decimal(); got != tt.want.payable {
				t.Errorf("Payable = %s, want %s", got, tt.want.payable)
			}
			if d.Status != tt.want.status {
				t.Errorf("Status = %s, want %s", d.Status, tt.want.status)
			}
			var sumBenefit, sumSubmitted int64
			for i, ld := range d.Lines {
				if got := ld.Benefit.Decimal(); got != tt.want.benefit[i] {
					t.Errorf("line %d Benefit = %s, want %s", i+1, got, tt.want.benefit[i])
				}
				if !slices.Equal(ld.Reasons, tt.want.reasons[i]) {
					t.Errorf("line %d Reasons = %v, want %v", i+1, ld.Reasons, tt.want.reasons[i])
				}
				parts := ld.Benefit.Minor + ld.DeductibleApplied.Minor + ld.CoinsuranceApplied.Minor +
					ld.LimitApplied.Minor + (ld.Submitted.Minor - ld.Eligible.Minor)
				if parts != ld.Submitted.Minor {
					t.Errorf("line %d parts sum to %d, want submitted %d", i+1, parts, ld.Submitted.Minor)
				}
				sumBenefit += ld.Benefit.Minor
				sumSubmitted += ld.Submitted.Minor
			}
			if sumBenefit != d.Payable.Minor || sumSubmitted != d.Submitted.Minor {
				t.Errorf("header %d/%d != sum of lines %d/%d", d.Payable.Minor, d.Submitted.Minor, sumBenefit, sumSubmitted)
			}
		})
	}
}

// TestAdjudicateLimitSequence shows the period limit holding across claims:
// each decision's payable feeds the next claim's usage.
func TestAdjudicateLimitSequence(t *testing.T) {
	p := testPolicy("1000.00", "0", 10000)
	used := PeriodUsage{Paid: usd("0"), DeductibleApplied: usd("0")}
	var got []string
	for _, amount := range []string{"700.00", "500.00", "500.00"} {
		c := testClaim(line("vehicle", amount))
		c.Lines[0].ServiceDate = NewDate(2026, 3, len(got)+1) // not duplicates
		d, err := Adjudicate(c, p, used, nil, OutcomeApprove)
		if err != nil {
			t.Fatal(err)
		}
		used.Paid = used.Paid.Add(d.Payable)
		got = append(got, d.Payable.Decimal())
	}
	if want := []string{"700.00", "300.00", "0.00"}; !slices.Equal(got, want) {
		t.Errorf("payables = %v, want %v", got, want)
	}
}

func TestAdjudicateRejectsForeignLine(t *testing.T) {
	c := testClaim(line("vehicle", "10.00"))
	_, err := Adjudicate(c, testPolicy("100.00", "0", 10000), PeriodUsage{Paid: usd("0"), DeductibleApplied: usd("0")},
		[]LineOverride{{LineID: "nope", Exclude: true}}, OutcomeApprove)
	if KindOf(err) != Invalid {
		t.Fatalf("err = %v, want Invalid", err)
	}
}

func FuzzAdjudicateSums(f *testing.F) {
	f.Add(int64(100), int64(200), int64(50), int64(1000), int64(0), 8000)
	f.Fuzz(func(t *testing.T, a, b, ded, limit, paid int64, bp int) {
		clamp := func(v int64) int64 {
			if v < 0 {
				v = -v
			}
			return v%1_000_000 + 1
		}
		p := testPolicy("0", "0", bp%10001)
		p.CoverageLimit, p.Deductible = Money{clamp(limit), "USD"}, Money{clamp(ded) - 1, "USD"}
		c := testClaim(LineItem{Category: "vehicle", Amount: Money{clamp(a), "USD"}},
			LineItem{Category: "towing", Amount: Money{clamp(b), "USD"}})
		d, err := Adjudicate(c, p, PeriodUsage{Paid: Money{clamp(paid) - 1, "USD"}, DeductibleApplied: Zero("USD")}, nil, OutcomeApprove)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, ld := range d.Lines {
			if ld.Benefit.Minor < 0 {
				t.Fatalf("negative benefit %v", ld.Benefit)
			}
			sum += ld.Benefit.Minor
		}
		if sum != d.Payable.Minor || d.Payable.Minor > p.CoverageLimit.Minor {
			t.Fatalf("payable %d, sum %d, limit %d", d.Payable.Minor, sum, p.CoverageLimit.Minor)
		}
	})
}

// TestDuplicateUsesIncidentDate: lines without a service date on claims
// for different incidents are not duplicates; a processor's allowed amount
// overrides the duplicate heuristic.
func TestDuplicateUsesIncidentDate(t *testing.T) {
	p := testPolicy("10000.00", "0", 10000)
	first := Claim{ID: "c1", IncidentDate: NewDate(2026, 8, 1), Total: usd("4500.00"),
		Lines: []LineItem{{ID: "a", Seq: 1, Category: "vehicle", Amount: usd("4500.00")}}}
	used := PeriodUsage{Paid: usd("4500.00"), DeductibleApplied: usd("0"),
		PaidLines: map[string]bool{LineKey(first.Lines[0], first.IncidentDate): true}}
	second := first
	second.ID, second.IncidentDate = "c2", NewDate(2026, 8, 2)
	d, err := Adjudicate(second, p, used, nil, OutcomeApprove)
	if err != nil || d.Payable.Decimal() != "4500.00" {
		t.Fatalf("different incident: payable %s, %v", d.Payable.Decimal(), err)
	}
	same := first
	same.ID = "c3"
	if d, _ := Adjudicate(same, p, used, nil, OutcomeApprove); d.Payable.Minor != 0 {
		t.Fatalf("same incident, same line: payable %s, want 0 (duplicate)", d.Payable.Decimal())
	}
	allowed := usd("4500.00")
	if d, _ := Adjudicate(same, p, used, []LineOverride{{LineID: "a", Allowed: &allowed}}, OutcomeApprove); d.Payable.Decimal() != "4500.00" {
		t.Fatalf("processor override: payable %s", d.Payable.Decimal())
	}
}
