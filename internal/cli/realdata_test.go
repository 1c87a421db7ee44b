package cli_test

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/openclaims/claims/internal/store"
	"github.com/openclaims/claims/internal/store/storetest"
)

// realDataDir is the shared folder of public datasets (see its README),
// relative to this package. Its rows must not be copied into the
// repository, so tests read it in place and skip when it is absent.
const realDataDir = "../../../shared/data"

// realFile returns the path of a file of the shared datasets, skipping tb
// when it is absent.
func realFile(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(realDataDir, rel)
	if _, err := os.Stat(p); err != nil {
		if os.IsNotExist(err) {
			tb.Skipf("real dataset %s not present (expected under %s); skipping", rel, realDataDir)
		}
		tb.Fatal(err)
	}
	return p
}

// importSummary is the parsed first line of an import summary.
type importSummary struct {
	source                                           string
	read, imported, alreadyPresent, flagged, skipped int
}

var summaryLine = regexp.MustCompile(`(?m)^(\S+): (\d+) rows read, (\d+) imported, (\d+) already present, (\d+) flagged for review, (\d+) skipped$`)

func parseSummary(tb testing.TB, out string) importSummary {
	tb.Helper()
	m := summaryLine.FindStringSubmatch(out)
	if m == nil {
		tb.Fatalf("no import summary in output:\n%s", out)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	return importSummary{source: m[1], read: n(2), imported: n(3), alreadyPresent: n(4), flagged: n(5), skipped: n(6)}
}

// TestRealDataEndToEnd imports the public datasets through the CLI exactly
// as an operator would (`claims import auto-claims|vehicle-claims FILE`),
// then checks through the real HTTPS API that a processor pages through
// every imported claim exactly once and that a customer who owns none of
// them sees none. It reads ../shared/data in place and skips without it.
func TestRealDataEndToEnd(t *testing.T) {
	autoMain := realFile(t, "auto_insurance_claims/insurance_claims.train.csv")
	vehicleMain := realFile(t, "vehicle_claim_fraud/fraud_oracle.train.csv")
	autoVariants, err := filepath.Glob(filepath.Join(realDataDir, "auto_insurance_claims/variants/*.csv"))
	if err != nil || len(autoVariants) == 0 {
		t.Fatalf("no auto-claims variants under %s: %v", realDataDir, err)
	}
	vehicleVariants, err := filepath.Glob(filepath.Join(realDataDir, "vehicle_claim_fraud/variants/*.csv"))
	if err != nil || len(vehicleVariants) == 0 {
		t.Fatalf("no vehicle-claims variants under %s: %v", realDataDir, err)
	}
	const autoRows, vehicleRows, variantRows = 800, 12336, 20

	storetest.ForEach(t, func(t *testing.T, d store.Dialect) {
		env := newEnv(t, d)
		start := time.Now()
		importFile := func(kind, path string) importSummary {
			t.Helper()
			t0 := time.Now()
			sum := parseSummary(t, mustRun(t, env, "", "import", kind, "--quiet", path))
			t.Logf("%s %s: %+v in %v", kind, filepath.Base(path), sum, time.Since(t0).Round(time.Millisecond))
			return sum
		}

		// Dataset 1 and its re-saved copies: the copies hold the same
		// policies, so every row comes back as already present.
		if s := importFile("auto-claims", autoMain); s.read != autoRows || s.imported != autoRows || s.alreadyPresent != 0 || s.skipped != 0 {
			t.Errorf("auto-claims main file: %+v, want %d read and imported, none skipped", s, autoRows)
		}
		for _, v := range autoVariants {
			if s := importFile("auto-claims", v); s.read != variantRows || s.imported != 0 || s.alreadyPresent != variantRows || s.skipped != 0 {
				t.Errorf("auto-claims variant %s: %+v, want %d read, all already present, none skipped", filepath.Base(v), s, variantRows)
			}
		}
		// Dataset 2 and its semicolon/BOM copy.
		if s := importFile("vehicle-claims", vehicleMain); s.read != vehicleRows || s.imported != vehicleRows || s.alreadyPresent != 0 || s.skipped != 0 {
			t.Errorf("vehicle-claims main file: %+v, want %d read and imported, none skipped", s, vehicleRows)
		}
		for _, v := range vehicleVariants {
			if s := importFile("vehicle-claims", v); s.read != variantRows || s.imported != 0 || s.alreadyPresent != variantRows || s.skipped != 0 {
				t.Errorf("vehicle-claims variant %s: %+v, want %d read, all already present, none skipped", filepath.Base(v), s, variantRows)
			}
		}
		t.Logf("%s: all imports took %v", d, time.Since(start).Round(time.Millisecond))

		mustRun(t, env, pw+"\n", "user", "create", "--email", "proc@example.com", "--role", "claims_processor", "--password-stdin")
		s := startServer(t, env)
		s.expect(s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "carol@example.com", "password": pw, "fullName": "Carol Nobody"}), 202)
		s.verifyEmail("carol@example.com")
		proc := s.login("proc@example.com", pw)

		// Page through the whole intake queue: every imported claim exactly once.
		t0 := time.Now()
		seen := make(map[string]bool, autoRows+vehicleRows)
		cursor, pages := "", 0
		for {
			path := "/api/v1/claims?limit=200"
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			r := s.expect(s.do("GET", path, proc, nil), 200)
			pages++
			items := r.items()
			for _, c := range items {
				id, _ := c["id"].(string)
				if id == "" {
					t.Fatalf("claim without id on page %d: %v", pages, c)
				}
				if seen[id] {
					t.Fatalf("claim %s listed twice (page %d)", id, pages)
				}
				seen[id] = true
			}
			next := r.str("next_cursor")
			if next == "" {
				break
			}
			if len(items) == 0 {
				t.Fatalf("empty page %d with a next_cursor", pages)
			}
			if pages > (autoRows+vehicleRows)/200+10 {
				t.Fatalf("more than %d pages: the cursor does not advance", pages)
			}
			cursor = next
		}
		if want := autoRows + vehicleRows; len(seen) != want {
			t.Errorf("processor listed %d distinct claims, want %d", len(seen), want)
		}
		t.Logf("%s: listed %d claims in %d pages in %v", d, len(seen), pages, time.Since(t0).Round(time.Millisecond))

		// A registered customer who owns none of them sees an empty list.
		carol := s.login("carol@example.com", pw)
		r := s.expect(s.do("GET", "/api/v1/claims?limit=200", carol, nil), 200)
		if n := len(r.items()); n != 0 || r.str("next_cursor") != "" {
			t.Errorf("a customer with no policy lists %d claims (next_cursor %q), want none", n, r.str("next_cursor"))
		}
		t.Logf("%s: total %v", d, time.Since(start).Round(time.Millisecond))
	})
}
