package importer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// realData is the shared folder of public datasets (see its README). Its
// rows must not be copied into the repository, so these tests read it in
// place and skip when it is absent.
const realData = "../../../shared/data"

func openReal(tb testing.TB, rel string) *os.File {
	tb.Helper()
	f, err := os.Open(filepath.Join(realData, rel))
	if os.IsNotExist(err) {
		tb.Skipf("real dataset %s not present (expected under %s); skipping", rel, realData)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// TestRealAutoVariantsAgree checks that the re-saved copies (other date
// formats, no _c39, extra State) map to the same dates and amounts as the
// kept copy: the per-file date detection read each one right.
func TestRealAutoVariantsAgree(t *testing.T) {
	main := &memSink{}
	if _, err := ImportAutoClaims(context.Background(), openReal(t, "auto_insurance_claims/insurance_claims.train.csv"), main, opts()); err != nil {
		t.Fatal(err)
	}
	want := map[string]Record{}
	for _, r := range main.recs {
		want[r.Key] = r
	}
	for _, v := range []string{"iso_dates_no_c39_crlf.csv", "ddmmyyyy_slash_crlf.csv", "ddmmyy_dash_crlf.csv", "extra_State_column_crlf.csv"} {
		sink := &memSink{}
		if _, err := ImportAutoClaims(context.Background(), openReal(t, "auto_insurance_claims/variants/"+v), sink, opts()); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		for _, r := range sink.recs {
			w, ok := want[r.Key]
			if !ok {
				t.Errorf("%s: policy %s not in the kept copy", v, r.Key)
				continue
			}
			if r.Claim.IncidentDate != w.Claim.IncidentDate || r.Policy.EffectiveDate != w.Policy.EffectiveDate ||
				r.Policy.ExpiryDate != w.Policy.ExpiryDate || r.Claim.Total != w.Claim.Total ||
				r.Policy.Premium != w.Policy.Premium || r.Claim.Location != w.Claim.Location {
				t.Errorf("%s: policy %s maps differently: %s %s..%s %v vs %s %s..%s %v", v, r.Key,
					r.Claim.IncidentDate, r.Policy.EffectiveDate, r.Policy.ExpiryDate, r.Claim.Total,
					w.Claim.IncidentDate, w.Policy.EffectiveDate, w.Policy.ExpiryDate, w.Claim.Total)
			}
		}
	}
}

func TestRealFiles(t *testing.T) {
	tests := []struct {
		file          string
		fn            importFunc
		rows, fraud   int
		ruleBreakKeys []string
	}{
		{"auto_insurance_claims/insurance_claims.train.csv", ImportAutoClaims, 800, 198, []string{"526039", "794731"}},
		{"auto_insurance_claims/variants/iso_dates_no_c39_crlf.csv", ImportAutoClaims, 20, -1, nil},
		{"auto_insurance_claims/variants/ddmmyyyy_slash_crlf.csv", ImportAutoClaims, 20, -1, nil},
		{"auto_insurance_claims/variants/ddmmyy_dash_crlf.csv", ImportAutoClaims, 20, -1, nil},
		{"auto_insurance_claims/variants/extra_State_column_crlf.csv", ImportAutoClaims, 20, -1, nil},
		{"vehicle_claim_fraud/fraud_oracle.train.csv", ImportVehicleClaims, 12336, 738, []string{"1517"}},
		{"vehicle_claim_fraud/variants/semicolon_utf8bom_crlf.csv", ImportVehicleClaims, 20, -1, []string{"1517"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			f := openReal(t, tt.file)
			sink := &memSink{}
			sum, err := tt.fn(context.Background(), f, sink, opts())
			if err != nil {
				t.Fatal(err)
			}
			if sum.Read != tt.rows || sum.Imported != tt.rows || len(sum.Skipped) != 0 {
				t.Fatalf("summary %s", sum)
			}
			fraud := 0
			var breaks []string
			for _, r := range sink.recs {
				if r.Claim.HasFlag("fraud_suspected") {
					fraud++
				}
				if r.Claim.HasFlag("imported_rule_break") {
					breaks = append(breaks, r.Key)
				}
			}
			if tt.fraud >= 0 && fraud != tt.fraud {
				t.Errorf("fraud suspected %d, want %d", fraud, tt.fraud)
			}
			if len(breaks) != len(tt.ruleBreakKeys) {
				t.Errorf("rule breaks %v, want %v", breaks, tt.ruleBreakKeys)
			}
			for i := range breaks {
				if i < len(tt.ruleBreakKeys) && breaks[i] != tt.ruleBreakKeys[i] {
					t.Errorf("rule breaks %v, want %v", breaks, tt.ruleBreakKeys)
				}
			}
		})
	}
}

// discard is a sink that keeps nothing.
type discard struct{}

func (discard) ImportBatch(_ context.Context, _ string, recs []Record) (int, error) {
	return len(recs), nil
}

func BenchmarkImportVehicle(b *testing.B) {
	f := openReal(b, "vehicle_claim_fraud/fraud_oracle.train.csv")
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Seek(0, 0); err != nil {
			b.Fatal(err)
		}
		sum, err := ImportVehicleClaims(context.Background(), f, discard{}, Options{})
		if err != nil || sum.Imported != 12336 {
			b.Fatalf("%v %s", err, sum)
		}
	}
}
