package claims

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseMoney(t *testing.T) {
	tests := []struct {
		in, cur string
		want    int64
		ok      bool
	}{
		{"1234.56", "USD", 123456, true},
		{"1234.5", "USD", 123450, true},
		{"1234", "USD", 123400, true},
		{"-12.01", "USD", -1201, true},
		{".5", "USD", 0, false},
		{"05.00", "USD", 0, false},
		{"0.50", "USD", 50, true},
		{"12.345", "USD", 0, false},
		{"1e3", "USD", 0, false},
		{"1,000.00", "USD", 0, false},
		{"", "USD", 0, false},
		{"12.", "USD", 0, false},
		{"+5.00", "USD", 0, false},
		{" 5.00", "USD", 0, false},
		{"500", "JPY", 500, true},
		{"5.5", "JPY", 0, false},
		{"1.234", "BHD", 1234, true},
		{"1", "XXX", 0, false},
		{"99999999999999999", "USD", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseMoney(tt.in, tt.cur)
		if (err == nil) != tt.ok || (tt.ok && got.Minor != tt.want) {
			t.Errorf("ParseMoney(%q, %s) = %v, %v; want %d ok=%v", tt.in, tt.cur, got, err, tt.want, tt.ok)
		}
	}
	if s := (Money{-5, "USD"}).Decimal(); s != "-0.05" {
		t.Errorf("Decimal = %s, want -0.05", s)
	}
}

func TestStateMachine(t *testing.T) {
	allowed := map[[2]Status]bool{}
	for from, tos := range next {
		for _, to := range tos {
			allowed[[2]Status{from, to}] = true
		}
	}
	for _, from := range Statuses {
		for _, to := range Statuses {
			c := Claim{Number: "CLM-1", Status: from, Version: 1}
			_, err := c.MoveTo(to, "u1", "", time.Now())
			if allowed[[2]Status{from, to}] {
				if err != nil || c.Status != to {
					t.Errorf("%s → %s: err %v, status %s", from, to, err, c.Status)
				}
				continue
			}
			if KindOf(err) != Conflict || c.Status != from {
				t.Errorf("%s → %s: err %v (kind %v), status %s; want Conflict and unchanged", from, to, err, KindOf(err), c.Status)
			}
		}
	}
	c := Claim{Number: "CLM-1", Status: StatusPaid}
	_, err := c.MoveTo(StatusApproved, "u", "", time.Now())
	e := err.(*Error)
	if got := fmt.Sprint(e.Extra["allowed"]); got != "[closed]" {
		t.Errorf("allowed = %s, want [closed]", got)
	}
}

func TestAppealNeedsAnotherDecider(t *testing.T) {
	c := Claim{Number: "CLM-1", Status: StatusUnderReview, Appealed: true, DecidedBy: "proc1"}
	if _, err := c.Decide(Decision{Status: StatusApproved}, "proc1", time.Now(), false); KindOf(err) != Forbidden {
		t.Fatalf("same decider: err = %v, want Forbidden", err)
	}
	if _, err := c.Decide(Decision{Status: StatusApproved}, "proc2", time.Now(), false); err != nil {
		t.Fatalf("other decider: %v", err)
	}
}

func TestValidateNewClaim(t *testing.T) {
	today := NewDate(2026, 6, 1)
	good := NewClaimInput{PolicyNumber: "P-1", Type: "collision", IncidentDate: NewDate(2026, 5, 1),
		Description: "rear-ended", Currency: "USD",
		Lines: []NewLineInput{{Category: "vehicle", Description: "bumper", Amount: usd("100.00")}}}
	if err := good.Validate(today); err != nil {
		t.Fatalf("good input: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*NewClaimInput)
		field string
		rule  string
	}{
		{"future incident", func(in *NewClaimInput) { in.IncidentDate = NewDate(2026, 6, 3) }, "incidentDate", "not_future"},
		{"no lines", func(in *NewClaimInput) { in.Lines = nil }, "lines", "required"},
		{"zero amount", func(in *NewClaimInput) { in.Lines[0].Amount = usd("0") }, "lines[0].amount", "positive"},
		{"negative amount", func(in *NewClaimInput) { in.Lines[0].Amount = usd("-1") }, "lines[0].amount", "positive"},
		{"huge amount", func(in *NewClaimInput) { in.Lines[0].Amount = usd("99999999.00") }, "lines[0].amount", "max"},
		{"long description", func(in *NewClaimInput) { in.Description = strings.Repeat("é", MaxDescriptionRunes+1) }, "description", "max_length"},
		{"card number", func(in *NewClaimInput) { in.Description = "pay to 4111 1111 1111 1111 please" }, "description", "no_card_number"},
		{"control char", func(in *NewClaimInput) { in.Location = "a\x00b" }, "location", "control_character"},
		{"bidi override", func(in *NewClaimInput) { in.Description = "invoice \u202Egpj.exe" }, "description", "bidi_control"},
		{"zero-width space", func(in *NewClaimInput) { in.Description = "4\u200b111111111111111" }, "description", "invisible_character"},
		{"bad type", func(in *NewClaimInput) { in.Type = "alien" }, "type", "enum"},
		{"bad category", func(in *NewClaimInput) { in.Lines[0].Category = "spa" }, "lines[0].category", "enum"},
		{"currency mismatch", func(in *NewClaimInput) { in.Lines[0].Amount = MustMoney("1", "EUR") }, "lines[0].amount", "currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			in.Lines = append([]NewLineInput(nil), good.Lines...)
			tt.edit(&in)
			err := in.Validate(today)
			e, ok := err.(*Error)
			if !ok || e.Kind != Invalid {
				t.Fatalf("Validate() = %v, want Invalid", err)
			}
			for _, f := range e.Fields {
				if f.Field == tt.field && f.Rule == tt.rule {
					return
				}
			}
			t.Errorf("Validate() fields = %+v, want %s/%s", e.Fields, tt.field, tt.rule)
		})
	}
}

func TestCheckAgainstPolicy(t *testing.T) {
	p := testPolicy("1000", "0", 10000)
	in := NewClaimInput{IncidentDate: NewDate(2025, 12, 31), Currency: "USD"}
	if err := in.CheckAgainstPolicy(p); KindOf(err) != Invalid || !strings.Contains(err.Error(), "not_before_policy_start") {
		t.Errorf("before start: %v", err)
	}
	in.IncidentDate = NewDate(2026, 2, 1)
	p.Status = PolicyLapsed
	if err := in.CheckAgainstPolicy(p); KindOf(err) != Invalid {
		t.Errorf("lapsed: %v", err)
	}
}

func TestLikelyDuplicate(t *testing.T) {
	a := Claim{ID: "a", PolicyID: "p", IncidentDate: NewDate(2026, 1, 1), Total: usd("1000.00")}
	tests := []struct {
		total string
		dup   bool
	}{{"1000.00", true}, {"1010.00", true}, {"990.00", true}, {"1010.11", false}, {"989.00", false}}
	for _, tt := range tests {
		b := Claim{ID: "b", PolicyID: "p", IncidentDate: a.IncidentDate, Total: usd(tt.total)}
		if got := a.IsLikelyDuplicate(b); got != tt.dup {
			t.Errorf("dup(1000, %s) = %v, want %v", tt.total, got, tt.dup)
		}
	}
}

func TestCardNumbers(t *testing.T) {
	for s, want := range map[string]bool{
		"4111111111111111": true, "4111-1111-1111-1111": true, "card 5500 0000 0000 0004 ok": true,
		"policy 123456": false, "4111111111111112": false, "phone 555-123-4567": false,
		"４１１１１１１１１１１１１１１１": true, "4.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1": true, "4111\u00a01111\u00a01111\u00a01111": true,
		"v1.2.3 build 2026.12.03": false, "4_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1": true, "4/111/1111/1111/1111": true,
	} {
		if got := LooksLikeCardNumber(s); got != want {
			t.Errorf("LooksLikeCardNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSecretDoesNotPrint(t *testing.T) {
	h := Policyholder{NationalID: "078-05-1120", FullName: "Jane Roe"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "holder", h, "id", h.NationalID)
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", h, h, h), buf.String()} {
		if strings.Contains(s, "078-05") || strings.Contains(s, "Jane") {
			t.Errorf("secret printed: %s", s)
		}
	}
}

func TestDate(t *testing.T) {
	d, err := ParseDate("2024-02-29")
	if err != nil || d.String() != "2024-02-29" || d.AddDays(1).String() != "2024-03-01" {
		t.Fatalf("ParseDate: %v %v", d, err)
	}
	if _, err := ParseDate("2023-02-29"); err == nil {
		t.Error("2023-02-29 accepted")
	}
	// A date built from an instant late in the day west of UTC keeps its own day.
	loc := time.FixedZone("UTC-10", -10*3600)
	if got := DateOf(time.Date(2026, 3, 1, 23, 0, 0, 0, loc)).String(); got != "2026-03-01" {
		t.Errorf("DateOf = %s", got)
	}
}

func TestPendingApproval(t *testing.T) {
	c := Claim{Number: "CLM-1", Status: StatusUnderReview, Total: MustMoney("100", "USD")}
	d := Decision{Status: StatusApproved, Payable: MustMoney("100", "USD")}
	if _, err := c.Decide(d, "junior", time.Now(), true); err != nil || c.Status != StatusPendingApproval || c.ProposedBy != "junior" {
		t.Fatalf("Decide(needs approval): %v, status %s", err, c.Status)
	}
	if _, err := c.ApproveDecision("junior", time.Now()); KindOf(err) != Forbidden {
		t.Fatalf("proposer approved own decision: %v", err)
	}
	if _, err := c.ApproveDecision("senior", time.Now()); err != nil || c.Status != StatusApproved || c.DecidedBy != "junior" {
		t.Fatalf("ApproveDecision: %v, status %s decidedBy %s", err, c.Status, c.DecidedBy)
	}
}
