package importer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// memSink collects records in memory and remembers (source, key) like the
// real store, so a second import reports AlreadyPresent.
type memSink struct {
	seen    map[string]bool
	recs    []Record
	batches []int
	fail    error
}

func (s *memSink) ImportBatch(ctx context.Context, source string, recs []Record) (int, error) {
	if s.fail != nil {
		return 0, s.fail
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.batches = append(s.batches, len(recs))
	created := 0
	for _, r := range recs {
		k := source + "\x00" + r.Key
		if s.seen[k] {
			continue
		}
		s.seen[k] = true
		s.recs = append(s.recs, r)
		created++
	}
	return created, nil
}

func (s *memSink) byKey(t *testing.T, key string) Record {
	t.Helper()
	for _, r := range s.recs {
		if r.Key == key {
			return r
		}
	}
	t.Fatalf("no record with key %q", key)
	return Record{}
}

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func opts() Options { return Options{Now: func() time.Time { return fixedNow }} }

type importFunc func(context.Context, io.Reader, Sink, Options) (Summary, error)

func importFile(t *testing.T, fn importFunc, name string, sink Sink, opt Options) (Summary, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return fn(context.Background(), f, sink, opt)
}

func d(y int, m time.Month, day int) claims.Date { return claims.NewDate(y, m, day) }

func usd(minor int64) claims.Money { return claims.Money{Minor: minor, Currency: "USD"} }

func TestAutoFiles(t *testing.T) {
	tests := []struct {
		file                       string
		read, imported, flagged    int
		skipped                    []Skip
		key                        string
		bind, incident, eff, expir claims.Date
	}{
		{file: "auto_lf_c39.csv", read: 7, imported: 5, flagged: 4,
			skipped: []Skip{{5, "wrong number of columns: 39, the header has 40"}, {7, `vehicle_claim "12x" is not an amount`}},
			key:     "100001", bind: d(2010, 3, 17), incident: d(2015, 1, 25), eff: d(2014, 3, 17), expir: d(2015, 3, 16)},
		{file: "auto_crlf_iso_no_c39.csv", read: 2, imported: 2,
			key: "200001", bind: d(2007, 12, 5), incident: d(2015, 2, 14), eff: d(2014, 12, 5), expir: d(2015, 12, 4)},
		{file: "auto_ddmmyyyy_crlf.csv", read: 2, imported: 2,
			key: "300001", bind: d(2007, 12, 5), incident: d(2015, 2, 14), eff: d(2014, 12, 5), expir: d(2015, 12, 4)},
		{file: "auto_ddmmyy_crlf.csv", read: 2, imported: 2,
			key: "400001", bind: d(1990, 7, 8), incident: d(2015, 2, 14), eff: d(2014, 7, 8), expir: d(2015, 7, 7)},
		{file: "auto_state_crlf.csv", read: 2, imported: 2,
			key: "500001", bind: d(2007, 12, 5), incident: d(2015, 2, 14), eff: d(2014, 12, 5), expir: d(2015, 12, 4)},
		{file: "auto_no_final_newline.csv", read: 2, imported: 2,
			key: "600002", bind: d(2004, 5, 6), incident: d(2015, 1, 30), eff: d(2014, 5, 6), expir: d(2015, 5, 5)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			sink := &memSink{}
			sum, err := importFile(t, ImportAutoClaims, tt.file, sink, opts())
			if err != nil {
				t.Fatal(err)
			}
			if sum.Source != "auto-claims" || sum.Read != tt.read || sum.Imported != tt.imported ||
				sum.AlreadyPresent != 0 || sum.Flagged != tt.flagged {
				t.Errorf("summary = %+v", sum)
			}
			if len(sum.Skipped) != len(tt.skipped) {
				t.Fatalf("skipped = %v, want %v", sum.Skipped, tt.skipped)
			}
			for i := range tt.skipped {
				if sum.Skipped[i] != tt.skipped[i] {
					t.Errorf("skipped[%d] = %+v, want %+v", i, sum.Skipped[i], tt.skipped[i])
				}
			}
			r := sink.byKey(t, tt.key)
			if r.Policy.Attributes["bind_date"] != tt.bind.String() || r.Claim.IncidentDate != tt.incident ||
				r.Policy.EffectiveDate != tt.eff || r.Policy.ExpiryDate != tt.expir {
				t.Errorf("dates: bind %s incident %s period %s..%s", r.Policy.Attributes["bind_date"],
					r.Claim.IncidentDate, r.Policy.EffectiveDate, r.Policy.ExpiryDate)
			}
			if r.Claim.ReportedDate != r.Claim.IncidentDate {
				t.Errorf("reported %s, want the incident date", r.Claim.ReportedDate)
			}
			checkLinks(t, r)
		})
	}
}

func checkLinks(t *testing.T, r Record) {
	t.Helper()
	if !claims.ValidID(string(r.Holder.ID)) || !claims.ValidID(string(r.Policy.ID)) || !claims.ValidID(string(r.Claim.ID)) {
		t.Errorf("IDs not set: %q %q %q", r.Holder.ID, r.Policy.ID, r.Claim.ID)
	}
	if r.Policy.HolderID != r.Holder.ID || r.Claim.HolderID != r.Holder.ID || r.Claim.PolicyID != r.Policy.ID {
		t.Error("records not linked")
	}
	if r.Claim.Number != "" {
		t.Errorf("claim number %q, want empty (the sink assigns it)", r.Claim.Number)
	}
	var sum claims.Money = claims.Zero("USD")
	for i, l := range r.Claim.Lines {
		if l.Seq != i+1 || !claims.ValidID(string(l.ID)) {
			t.Errorf("line %d: seq %d id %q", i, l.Seq, l.ID)
		}
		sum = sum.Add(l.Amount)
	}
	if sum != r.Claim.Total {
		t.Errorf("total %v is not the sum of the lines %v", r.Claim.Total, sum)
	}
	if r.Claim.Status != claims.StatusSubmitted || r.Policy.Status != claims.PolicyActive ||
		r.Policy.ProductLine != claims.LineAuto || r.Policy.CoinsuranceBP != 10000 {
		t.Errorf("status/product: %s %s %s %d", r.Claim.Status, r.Policy.Status, r.Policy.ProductLine, r.Policy.CoinsuranceBP)
	}
	if !r.Claim.CreatedAt.Equal(fixedNow) || !r.Policy.CreatedAt.Equal(fixedNow) || !r.Holder.CreatedAt.Equal(fixedNow) {
		t.Error("CreatedAt is not Options.Now")
	}
	if !slicesContains(claims.ClaimTypes, r.Claim.Type) {
		t.Errorf("claim type %q is not a known type", r.Claim.Type)
	}
	if strings.TrimSpace(r.Claim.Description) == "" {
		t.Error("empty description")
	}
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestAutoMapping(t *testing.T) {
	sink := &memSink{}
	sum, err := importFile(t, ImportAutoClaims, "auto_lf_c39.csv", sink, opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.recs) != sum.Imported {
		t.Fatalf("%d records, summary says %d", len(sink.recs), sum.Imported)
	}

	t.Run("question marks, None, negative capital-loss, fraud", func(t *testing.T) {
		r := sink.byKey(t, "100001")
		if r.Line != 2 {
			t.Errorf("line %d, want 2", r.Line)
		}
		h, p, c := r.Holder, r.Policy, r.Claim
		if h.Address.Reveal() != "466132" || h.Attributes["capital_loss"] != "-25000" ||
			h.Attributes["capital_gains"] != "31000" || h.Attributes["sex"] != "FEMALE" || h.Attributes["age"] != "35" {
			t.Errorf("holder: %v %v", h.Address.Reveal(), h.Attributes)
		}
		if p.Number != "100001" || p.CoverageLimit != usd(500_000_00) || p.Deductible != usd(1000_00) ||
			p.Premium != usd(1406_91) || p.Attributes["policy_csl"] != "250/500" || p.Attributes["umbrella_limit"] != "0" ||
			p.Attributes["policy_state"] != "OH" {
			t.Errorf("policy: %+v", p)
		}
		for k, want := range map[string]string{"collision_type": "", "property_damage": "", "police_report_available": "",
			"authorities_contacted": "None", "fraud_reported": "Y", "incident_severity": "Major Damage",
			"auto_make": "Suburu", "total_claim_amount": "71610"} {
			if got, ok := c.Attributes[k]; !ok || got != want {
				t.Errorf("claim attribute %s = %q (present %v), want %q", k, got, ok, want)
			}
		}
		if !c.HasFlag(claims.FlagFraudSuspected) || c.HasFlag(claims.FlagImportedRuleBreak) {
			t.Errorf("flags %v", c.Flags)
		}
		if c.Type != "collision" || c.Location != "Springfield, NY" || c.Source != "import:auto-claims" {
			t.Errorf("claim: type %q location %q source %q", c.Type, c.Location, c.Source)
		}
		if strings.Contains(c.Location, "Example Lane") {
			t.Error("the street address must not be copied")
		}
		want := []struct {
			cat   string
			minor int64
		}{{"injury", 6510_00}, {"property", 13020_00}, {"vehicle", 52080_00}}
		if len(c.Lines) != 3 {
			t.Fatalf("lines %+v", c.Lines)
		}
		for i, w := range want {
			if c.Lines[i].Category != w.cat || c.Lines[i].Amount != usd(w.minor) {
				t.Errorf("line %d = %s %v", i, c.Lines[i].Category, c.Lines[i].Amount)
			}
		}
		if c.Total != usd(71610_00) {
			t.Errorf("total %v", c.Total)
		}
	})

	t.Run("negative umbrella", func(t *testing.T) {
		r := sink.byKey(t, "100002")
		c := r.Claim
		if !c.HasFlag(claims.FlagImportedRuleBreak) || !strings.Contains(c.Attributes["review_reason"], "umbrella_limit is negative (-1000000)") {
			t.Errorf("flags %v reason %q", c.Flags, c.Attributes["review_reason"])
		}
		if r.Policy.Attributes["umbrella_limit"] != "-1000000" || r.Policy.CoverageLimit != usd(300_000_00) ||
			r.Policy.Premium != usd(1100_50) || r.Policy.Deductible != usd(500_00) {
			t.Errorf("policy %+v", r.Policy)
		}
	})

	t.Run("incident before bind", func(t *testing.T) {
		r := sink.byKey(t, "100003")
		c := r.Claim
		if !c.HasFlag(claims.FlagImportedRuleBreak) || !strings.Contains(c.Attributes["review_reason"], "2015-01-15 is before policy_bind_date 2015-02-20") {
			t.Errorf("flags %v reason %q", c.Flags, c.Attributes["review_reason"])
		}
		if r.Policy.EffectiveDate != d(2015, 2, 20) || r.Policy.ExpiryDate != d(2016, 2, 19) {
			t.Errorf("period %s..%s", r.Policy.EffectiveDate, r.Policy.ExpiryDate)
		}
		if c.Type != "theft" || len(c.Lines) != 1 || c.Lines[0].Category != "vehicle" || c.Total != usd(5000_00) {
			t.Errorf("claim %s lines %+v", c.Type, c.Lines)
		}
		if r.Policy.Premium != usd(999_00) || r.Policy.Deductible != usd(2000_00) {
			t.Errorf("premium %v deductible %v", r.Policy.Premium, r.Policy.Deductible)
		}
	})

	t.Run("total does not add up, parked car", func(t *testing.T) {
		c := sink.byKey(t, "100005").Claim
		if !c.HasFlag(claims.FlagImportedRuleBreak) || !strings.Contains(c.Attributes["review_reason"], "total_claim_amount 4000.00 is not injury+property+vehicle 3500.00") {
			t.Errorf("flags %v reason %q", c.Flags, c.Attributes["review_reason"])
		}
		if c.Total != usd(3500_00) || len(c.Lines) != 2 || c.Lines[0].Category != "property" {
			t.Errorf("total %v lines %+v", c.Total, c.Lines)
		}
		if c.Type != "collision" || c.Attributes["incident_type"] != "Parked Car" {
			t.Errorf("type %q incident_type %q", c.Type, c.Attributes["incident_type"])
		}
	})

	t.Run("29 February bind date", func(t *testing.T) {
		r := sink.byKey(t, "100007")
		if r.Policy.EffectiveDate != d(2014, 2, 28) || r.Policy.ExpiryDate != d(2015, 2, 27) {
			t.Errorf("period %s..%s", r.Policy.EffectiveDate, r.Policy.ExpiryDate)
		}
		if r.Claim.HasFlag(claims.FlagImportedRuleBreak) || len(r.Claim.Flags) != 0 {
			t.Errorf("flags %v", r.Claim.Flags)
		}
	})

	t.Run("re-import reports already present", func(t *testing.T) {
		again, err := importFile(t, ImportAutoClaims, "auto_lf_c39.csv", sink, opts())
		if err != nil {
			t.Fatal(err)
		}
		if again.Read != 7 || again.Imported != 0 || again.AlreadyPresent != 5 || len(again.Skipped) != 2 {
			t.Errorf("second run %+v", again)
		}
		if len(sink.recs) != 5 {
			t.Errorf("sink has %d records", len(sink.recs))
		}
	})

	t.Run("summary string", func(t *testing.T) {
		want := "auto-claims: 7 rows read, 5 imported, 0 already present, 4 flagged for review, 2 skipped\n" +
			"  skipped line 5: wrong number of columns: 39, the header has 40\n" +
			"  skipped line 7: vehicle_claim \"12x\" is not an amount\n"
		if got := sum.String(); got != want {
			t.Errorf("String() =\n%s\nwant\n%s", got, want)
		}
	})
}

func TestAutoStateColumn(t *testing.T) {
	sink := &memSink{}
	if _, err := importFile(t, ImportAutoClaims, "auto_state_crlf.csv", sink, opts()); err != nil {
		t.Fatal(err)
	}
	c := sink.byKey(t, "500001").Claim
	// By header name: the extra column must not shift the city.
	if c.Location != "Springfield, WV" || c.Attributes["incident_state_name"] != "West Virginia" ||
		c.Attributes["incident_city"] != "Springfield" {
		t.Errorf("location %q attributes %v", c.Location, c.Attributes)
	}
}

func TestAutoRefusedFiles(t *testing.T) {
	tests := []struct {
		name    string
		fn      importFunc
		file    string
		content string
		want    string
	}{
		{name: "ambiguous dates", fn: ImportAutoClaims, file: "auto_ambiguous_dates.csv",
			want: "the date format is ambiguous: every date in the whole file reads as M/D/YYYY or DD/MM/YYYY"},
		{name: "mixed dates", fn: ImportAutoClaims, file: "auto_mixed_dates.csv",
			want: `the dates mix formats: line 3 has "5/6/2004"`},
		{name: "xlsx vehicle", fn: ImportVehicleClaims, file: "vehicle.xlsx", want: "Excel workbook"},
		{name: "xlsx auto", fn: ImportAutoClaims, file: "vehicle.xlsx", want: "Excel workbook"},
		{name: "wrong dataset", fn: ImportVehicleClaims, file: "auto_lf_c39.csv", want: "missing column(s) month, weekofmonth"},
		{name: "empty", fn: ImportAutoClaims, content: "", want: "the file is empty"},
		{name: "MM-DD-YY", fn: ImportAutoClaims, content: autoLine(autoHeader, "07-08-90", "02-14-15"),
			want: "the dates are written MM-DD-YY, which is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &memSink{}
			var (
				sum Summary
				err error
			)
			if tt.file != "" {
				sum, err = importFile(t, tt.fn, tt.file, sink, opts())
			} else {
				sum, err = tt.fn(context.Background(), strings.NewReader(tt.content), sink, opts())
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if len(sink.recs) != 0 || sum.Imported != 0 {
				t.Errorf("refused file stored %d records", len(sink.recs))
			}
		})
	}
}

const autoHeader = "months_as_customer,age,policy_number,policy_bind_date,policy_state,policy_csl,policy_deductable,policy_annual_premium,umbrella_limit,insured_zip,insured_sex,insured_education_level,insured_occupation,insured_hobbies,insured_relationship,capital-gains,capital-loss,incident_date,incident_type,collision_type,incident_severity,authorities_contacted,incident_state,incident_city,incident_location,incident_hour_of_the_day,number_of_vehicles_involved,property_damage,bodily_injuries,witnesses,police_report_available,total_claim_amount,injury_claim,property_claim,vehicle_claim,auto_make,auto_model,auto_year,fraud_reported\n"

// autoLine returns header plus one synthetic row with the given dates.
func autoLine(header, bind, incident string) string {
	return header + "10,30,900001," + bind + ",IN,100/300,500,800,0,400001,MALE,PhD,sales,golf,husband,0,0," + incident +
		",Vehicle Theft,?,Minor Damage,None,OH,Columbus,1 Nowhere Road,3,1,?,0,0,?,1000,0,0,1000,Jeep,Wrangler,2011,N\n"
}

func TestAutoMissingAndFuture(t *testing.T) {
	// A missing amount and a future incident are imported and flagged; a
	// missing incident date cannot be mapped and is skipped.
	in := autoHeader +
		"10,30,900002,1/13/2020,IN,100/300,?,800,0,400001,MALE,PhD,sales,golf,husband,0,0,2/20/2027,Vehicle Theft,?,Minor Damage,None,OH,Columbus,1 Nowhere Road,3,1,?,0,0,?,1000,0,0,1000,Jeep,Wrangler,2011,N\n" +
		"10,30,900003,1/13/2020,IN,100/300,500,800,0,400001,MALE,PhD,sales,golf,husband,0,0,?,Vehicle Theft,?,Minor Damage,None,OH,Columbus,1 Nowhere Road,3,1,?,0,0,?,1000,0,0,1000,Jeep,Wrangler,2011,N\n"
	sink := &memSink{}
	sum, err := ImportAutoClaims(context.Background(), strings.NewReader(in), sink, opts())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 2 || sum.Imported != 1 || len(sum.Skipped) != 1 || sum.Skipped[0] != (Skip{3, "incident_date is missing"}) {
		t.Fatalf("summary %+v", sum)
	}
	c := sink.recs[0].Claim
	reason := c.Attributes["review_reason"]
	if !c.HasFlag(claims.FlagImportedRuleBreak) || !strings.Contains(reason, "policy_deductable is missing") ||
		!strings.Contains(reason, "incident_date 2027-02-20 is in the future") {
		t.Errorf("flags %v reason %q", c.Flags, reason)
	}
}

func TestVehicleFiles(t *testing.T) {
	tests := []struct {
		file                    string
		read, imported, flagged int
		skipped                 []Skip
	}{
		{file: "vehicle_crlf.csv", read: 3, imported: 3, flagged: 1},
		{file: "vehicle_semicolon_bom_crlf.csv", read: 2, imported: 2, flagged: 1},
		{file: "vehicle_missing_claim_date.csv", read: 3, imported: 2, flagged: 1,
			skipped: []Skip{{3, "wrong number of columns: 32, the header has 33"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			sink := &memSink{}
			sum, err := importFile(t, ImportVehicleClaims, tt.file, sink, opts())
			if err != nil {
				t.Fatal(err)
			}
			if sum.Source != "vehicle-claims" || sum.Read != tt.read || sum.Imported != tt.imported || sum.Flagged != tt.flagged ||
				len(sum.Skipped) != len(tt.skipped) {
				t.Fatalf("summary %+v", sum)
			}
			for i := range tt.skipped {
				if sum.Skipped[i] != tt.skipped[i] {
					t.Errorf("skipped[%d] = %+v, want %+v", i, sum.Skipped[i], tt.skipped[i])
				}
			}
			for _, r := range sink.recs {
				checkLinks(t, r)
				c := r.Claim
				if len(c.Lines) != 0 || c.Total != usd(0) || c.Attributes["amount_unknown"] != "true" ||
					c.Attributes["incident_date_precision"] != "week" || c.Source != "import:vehicle-claims" {
					t.Errorf("claim %+v", c)
				}
				if r.Policy.Number != "VC-"+r.Key || r.Policy.Premium != usd(0) {
					t.Errorf("policy %+v", r.Policy)
				}
				if r.Holder.Address != "" || r.Holder.FullName != "" {
					t.Error("vehicle holders have no personal data")
				}
			}
		})
	}
}

func TestVehicleMapping(t *testing.T) {
	sink := &memSink{}
	if _, err := importFile(t, ImportVehicleClaims, "vehicle_crlf.csv", sink, opts()); err != nil {
		t.Fatal(err)
	}
	if _, err := importFile(t, ImportVehicleClaims, "vehicle_semicolon_bom_crlf.csv", sink, opts()); err != nil {
		t.Fatal(err)
	}
	if _, err := importFile(t, ImportVehicleClaims, "vehicle_missing_claim_date.csv", sink, opts()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key                string
		incident, reported claims.Date
		limit, deductible  int64
		year               int
		typ                string
		fraud              bool
		ruleBreak          string
		holder             map[string]string
	}{
		// 2nd Monday of March 1995; claimed 3rd Wednesday of March.
		{key: "101", incident: d(1995, 3, 13), reported: d(1995, 3, 15), limit: 29000_00, deductible: 400_00, year: 1995,
			typ: "collision", holder: map[string]string{"sex": "Male", "marital_status": "Married", "age": "40", "age_band": "36 to 40"}},
		// 5th Friday of December 1994; claimed in January: the next year.
		{key: "102", incident: d(1994, 12, 30), reported: d(1995, 1, 2), limit: 69000_00, deductible: 500_00, year: 1994,
			typ: "collision", fraud: true},
		// February 1995 has no 5th Tuesday: the last one.
		{key: "103", incident: d(1995, 2, 28), reported: d(1995, 3, 2), limit: 20000_00, deductible: 700_00, year: 1995, typ: "collision"},
		// Semicolon + BOM: the first header column "Month" is read despite the BOM.
		{key: "201", incident: d(1996, 10, 28), reported: d(1996, 11, 22), limit: 39000_00, deductible: 400_00, year: 1996, typ: "collision"},
		{key: "202", incident: d(1996, 6, 2), reported: d(1996, 6, 10), limit: 59000_00, deductible: 400_00, year: 1996, typ: "collision", fraud: true},
		// Claimed 0/0 and Age 0.
		{key: "301", incident: d(1994, 7, 11), reported: d(1994, 7, 11), limit: 69000_00, deductible: 400_00, year: 1994, typ: "collision",
			ruleBreak: "the claim date is missing", holder: map[string]string{"age": "", "age_band": "16 to 17"}},
		{key: "303", incident: d(1994, 9, 1), reported: d(1994, 9, 14), limit: 69000_00, deductible: 400_00, year: 1994, typ: "collision"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			r := sink.byKey(t, tt.key)
			c, p := r.Claim, r.Policy
			if c.IncidentDate != tt.incident || c.ReportedDate != tt.reported {
				t.Errorf("incident %s reported %s, want %s %s", c.IncidentDate, c.ReportedDate, tt.incident, tt.reported)
			}
			if p.CoverageLimit != usd(tt.limit) || p.Deductible != usd(tt.deductible) ||
				p.EffectiveDate != d(tt.year, 1, 1) || p.ExpiryDate != d(tt.year, 12, 31) {
				t.Errorf("policy limit %v deductible %v period %s..%s", p.CoverageLimit, p.Deductible, p.EffectiveDate, p.ExpiryDate)
			}
			if c.Type != tt.typ {
				t.Errorf("type %q", c.Type)
			}
			if c.HasFlag(claims.FlagFraudSuspected) != tt.fraud {
				t.Errorf("flags %v, fraud %v", c.Flags, tt.fraud)
			}
			wantFound := "0"
			if tt.fraud {
				wantFound = "1"
			}
			if c.Attributes["fraud_found"] != wantFound {
				t.Errorf("fraud_found %q", c.Attributes["fraud_found"])
			}
			if got := c.HasFlag(claims.FlagImportedRuleBreak); got != (tt.ruleBreak != "") ||
				!strings.Contains(c.Attributes["review_reason"], tt.ruleBreak) {
				t.Errorf("rule break %v reason %q", got, c.Attributes["review_reason"])
			}
			for k, v := range tt.holder {
				if got, ok := r.Holder.Attributes[k]; !ok || got != v {
					t.Errorf("holder %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range []string{"vehicle_price", "days_policy_accident", "days_policy_claim", "past_number_of_claims",
				"age_of_vehicle", "address_change_claim", "number_of_cars", "agent_type", "base_policy", "policy_type",
				"vehicle_category", "make"} {
				if p.Attributes[k] == "" {
					t.Errorf("policy attribute %s missing", k)
				}
			}
		})
	}
	if p := sink.byKey(t, "202").Policy; p.Attributes["make"] != "Nisson" || p.Attributes["policy_type"] != "Utility - Collision" {
		t.Errorf("attributes by header name: %v", p.Attributes)
	}
}

func TestVehicleReportedBeforeIncidentIsClamped(t *testing.T) {
	// 4th Monday of November 1994 is the 28th, the 4th Tuesday the 22nd:
	// week-approximate dates can invert within a month.
	in := "Month,WeekOfMonth,DayOfWeek,Make,AccidentArea,DayOfWeekClaimed,MonthClaimed,WeekOfMonthClaimed,Sex,MaritalStatus,Age,Fault,PolicyType,VehicleCategory,VehiclePrice,FraudFound_P,PolicyNumber,RepNumber,Deductible,DriverRating,Days_Policy_Accident,Days_Policy_Claim,PastNumberOfClaims,AgeOfVehicle,AgeOfPolicyHolder,PoliceReportFiled,WitnessPresent,AgentType,NumberOfSuppliments,AddressChange_Claim,NumberOfCars,Year,BasePolicy\r\n" +
		"Nov,4,Monday,Ford,Urban,Tuesday,Nov,4,Male,Single,30,Unknown,Sedan - Collision,Sedan,20000 to 29000,0,9,1,400,1,more than 30,more than 30,none,new,26 to 30,No,No,External,none,no change,1 vehicle,1994,Collision\r\n"
	sink := &memSink{}
	if _, err := ImportVehicleClaims(context.Background(), strings.NewReader(in), sink, opts()); err != nil {
		t.Fatal(err)
	}
	c := sink.recs[0].Claim
	if c.IncidentDate != d(1994, 11, 28) || c.ReportedDate != d(1994, 11, 28) || c.Attributes["reported_date_clamped"] != "true" {
		t.Errorf("incident %s reported %s attrs %v", c.IncidentDate, c.ReportedDate, c.Attributes)
	}
	if c.Type != "other" || len(c.Flags) != 0 {
		t.Errorf("type %q flags %v", c.Type, c.Flags)
	}
}

func TestBatchingProgressAndCancel(t *testing.T) {
	var buf bytes.Buffer
	sink := &memSink{}
	opt := opts()
	opt.BatchSize = 2
	opt.Progress = &buf
	sum, err := importFile(t, ImportAutoClaims, "auto_lf_c39.csv", sink, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := sink.batches; len(got) != 3 || got[0] != 2 || got[1] != 2 || got[2] != 1 {
		t.Errorf("batches %v", got)
	}
	if want := "auto-claims: 2 rows\nauto-claims: 5 rows\nauto-claims: 7 rows\n"; buf.String() != want {
		t.Errorf("progress %q, want %q", buf.String(), want)
	}
	if sum.Imported != 5 {
		t.Errorf("summary %+v", sum)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, _ := os.Open(filepath.Join("testdata", "vehicle_crlf.csv"))
	defer f.Close()
	if _, err := ImportVehicleClaims(ctx, f, &memSink{}, opts()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled import: err = %v", err)
	}

	boom := errors.New("disk full")
	sum, err = importFile(t, ImportVehicleClaims, "vehicle_crlf.csv", &memSink{fail: boom}, opts())
	if !errors.Is(err, boom) || sum.Imported != 0 {
		t.Errorf("sink failure: err = %v, summary %+v", err, sum)
	}
}

// cancelSink cancels the context after the first batch.
type cancelSink struct {
	memSink
	cancel context.CancelFunc
}

func (s *cancelSink) ImportBatch(ctx context.Context, source string, recs []Record) (int, error) {
	n, err := s.memSink.ImportBatch(ctx, source, recs)
	s.cancel()
	return n, err
}

func TestCancelBetweenBatches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sink := &cancelSink{cancel: cancel}
	opt := opts()
	opt.BatchSize = 1
	f, _ := os.Open(filepath.Join("testdata", "vehicle_crlf.csv"))
	defer f.Close()
	sum, err := ImportVehicleClaims(ctx, f, sink, opt)
	if !errors.Is(err, context.Canceled) || sum.Imported != 1 || len(sink.recs) != 1 {
		t.Errorf("err %v summary %+v", err, sum)
	}
}

func TestCSVSyntaxErrorIsSkipped(t *testing.T) {
	in := "Month,WeekOfMonth,DayOfWeek,Make,AccidentArea,DayOfWeekClaimed,MonthClaimed,WeekOfMonthClaimed,Sex,MaritalStatus,Age,Fault,PolicyType,VehicleCategory,VehiclePrice,FraudFound_P,PolicyNumber,RepNumber,Deductible,DriverRating,Days_Policy_Accident,Days_Policy_Claim,PastNumberOfClaims,AgeOfVehicle,AgeOfPolicyHolder,PoliceReportFiled,WitnessPresent,AgentType,NumberOfSuppliments,AddressChange_Claim,NumberOfCars,Year,BasePolicy\n" +
		"Nov,4,Mon\"day,Ford,Urban,Tuesday,Nov,4,Male,Single,30,Third Party,Sedan - Collision,Sedan,20000 to 29000,0,9,1,400,1,more than 30,more than 30,none,new,26 to 30,No,No,External,none,no change,1 vehicle,1994,Collision\n" +
		"Nov,4,Monday,Ford,Urban,Tuesday,Nov,4,Male,Single,30,Third Party,Sedan - Collision,Sedan,20000 to 29000,0,10,1,400,1,more than 30,more than 30,none,new,26 to 30,No,No,External,none,no change,1 vehicle,1994,Collision\n" +
		"Nov,4,Someday,Ford,Urban,Tuesday,Nov,4,Male,Single,30,Third Party,Sedan - Collision,Sedan,20000 to 29000,0,11,1,400,1,more than 30,more than 30,none,new,26 to 30,No,No,External,none,no change,1 vehicle,1994,Collision\n"
	sink := &memSink{}
	sum, err := ImportVehicleClaims(context.Background(), strings.NewReader(in), sink, opts())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 3 || sum.Imported != 1 || len(sum.Skipped) != 2 || sum.Skipped[0].Line != 2 ||
		!strings.Contains(sum.Skipped[0].Reason, "CSV syntax error") ||
		sum.Skipped[1] != (Skip{4, `DayOfWeek "Someday" is not a day of the week`}) {
		t.Errorf("summary %+v", sum)
	}
}

func TestDateDetection(t *testing.T) {
	tests := []struct {
		values []string
		want   dateFormat
		err    string
	}{
		{[]string{"1/5/2015", "10/17/2014"}, fmtMDY4, ""},
		{[]string{"05/01/2015", "17/10/2014"}, fmtDMY4, ""},
		{[]string{"2015-01-05"}, fmtYMD4, ""},
		{[]string{"05-01-15", "17-10-14"}, fmtDMY2, ""},
		{[]string{"?", "1/5/2015", "2/3/2014"}, 0, "ambiguous"},
		{[]string{"?", ""}, 0, "no date"},
		{[]string{"2/30/2015", "13/2/2015"}, fmtDMY4, ""}, // 2/30 is no date in any format: ignored (its row is skipped later)
		{[]string{"2015-01-05", "1/5/2015"}, 0, "mix"},
	}
	for _, tt := range tests {
		det := newDateDetector()
		for i, v := range tt.values {
			det.add(v, i+2)
		}
		got, err := det.result(true)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: err %v, want %q", tt.values, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v: %v %v, want %v", tt.values, got, err, tt.want)
		}
	}
	// Two-digit year pivot: 69..99 → 19xx, 00..68 → 20xx.
	for in, want := range map[string]claims.Date{"01-01-68": d(2068, 1, 1), "01-01-69": d(1969, 1, 1), "31-12-99": d(1999, 12, 31), "29-02-00": d(2000, 2, 29)} {
		if got, ok := parseAs(in, fmtDMY2); !ok || got != want {
			t.Errorf("parseAs(%q) = %s %v, want %s", in, got, ok, want)
		}
	}
}

func TestPriceBand(t *testing.T) {
	for in, want := range map[string]int64{"20000 to 29000": 29000_00, "more than 69000": 69000_00, "less than 20000": 20000_00} {
		if got, ok := priceBandLimit(in); !ok || got != usd(want) {
			t.Errorf("%q: %v %v", in, got, ok)
		}
	}
	if _, ok := priceBandLimit("cheap"); ok {
		t.Error("cheap accepted")
	}
}

// plainReader hides io.Seeker, so the importer takes its look-ahead path.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func TestAutoDateLookAhead(t *testing.T) {
	open := func(name string) io.Reader {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return plainReader{bytes.NewReader(b)}
	}
	// Without Seek the format is decided on the rows read ahead.
	sink := &memSink{}
	sum, err := ImportAutoClaims(context.Background(), open("auto_ddmmyyyy_crlf.csv"), sink, opts())
	if err != nil || sum.Imported != 2 || sink.byKey(t, "300001").Claim.IncidentDate != d(2015, 2, 14) {
		t.Errorf("look-ahead import: %v %+v", err, sum)
	}
	if _, err := ImportAutoClaims(context.Background(), open("auto_ambiguous_dates.csv"), &memSink{}, opts()); err == nil ||
		!strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("ambiguous without Seek: err = %v", err)
	}
	// Once decided (first row ISO), a later date in another format fits no
	// longer and its row is skipped with the reason.
	sum, err = ImportAutoClaims(context.Background(), open("auto_mixed_dates.csv"), &memSink{}, opts())
	if err != nil || sum.Imported != 1 || len(sum.Skipped) != 1 ||
		sum.Skipped[0] != (Skip{3, `policy_bind_date "5/6/2004" is not a valid YYYY-MM-DD date (the format of this file)`}) {
		t.Errorf("mixed without Seek: %v %+v", err, sum)
	}
}
