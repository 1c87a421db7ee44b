package asvs

import (
	"encoding/csv"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const (
	repoRoot = "../.."
	csvPath  = repoRoot + "/docs/standards/asvs-5.0.0-en.csv"
	docPath  = repoRoot + "/docs/asvs.md"
)

// requirement is one row of the ASVS CSV.
type requirement struct {
	chapter string // "V6"
	level   string // "1", "2" or "3"
}

// row is one traced requirement in docs/asvs.md.
type row struct {
	line           int
	id, status     string
	code, tests    string
	chapterHeading string // the "## Vn ..." heading the row sits under
}

var (
	statuses = map[string]bool{"met": true, "partly": true, "not met": true, "not applicable": true}
	// A cited test: a Go test, fuzz or benchmark function name.
	testName = regexp.MustCompile(`\b(?:Test|Fuzz|Benchmark)[A-Z0-9_][A-Za-z0-9_]*\b`)
	// A cited test file.
	testFile = regexp.MustCompile(`\b(?:internal|client|cmd)/[A-Za-z0-9_./-]+_test\.go\b`)
	// A cited source or document path in the code column.
	codePath   = regexp.MustCompile(`\b(?:internal|client|cmd|docs)/[A-Za-z0-9_./-]+\.(?:go|md|sql|txt)\b`)
	funcDecl   = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)\(`)
	reqID      = regexp.MustCompile(`^V\d+\.\d+\.\d+$`)
	chapterHdr = regexp.MustCompile(`^## (V\d+) `)
)

func loadRequirements(t *testing.T) map[string]requirement {
	t.Helper()
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", csvPath, err)
	}
	if len(recs) < 2 {
		t.Fatalf("%s: no requirements", csvPath)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[strings.TrimSpace(h)] = i
	}
	for _, h := range []string{"chapter_id", "req_id", "L"} {
		if _, ok := col[h]; !ok {
			t.Fatalf("%s: no column %q in header %v", csvPath, h, recs[0])
		}
	}
	out := map[string]requirement{}
	for _, r := range recs[1:] {
		out[r[col["req_id"]]] = requirement{chapter: r[col["chapter_id"]], level: r[col["L"]]}
	}
	return out
}

func loadRows(t *testing.T) []row {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var (
		rows    []row
		heading string
	)
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if m := chapterHdr.FindStringSubmatch(l); m != nil {
			heading = m[1]
			continue
		}
		if !strings.HasPrefix(l, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		id := strings.Trim(strings.TrimSpace(cells[0]), "`*")
		if !reqID.MatchString(id) {
			continue // a header or separator row
		}
		if len(cells) != 5 {
			t.Errorf("docs/asvs.md:%d: %s has %d cells, want 5 (req | status | how | code | proving test); no '|' inside cells", i+1, id, len(cells))
			continue
		}
		rows = append(rows, row{line: i + 1, id: id, status: strings.ToLower(strings.Trim(strings.TrimSpace(cells[1]), "*")),
			code: cells[3], tests: cells[4], chapterHeading: heading})
	}
	return rows
}

// testFunctions returns every top-level Test, Fuzz and Benchmark function
// declared in the repository's *_test.go files.
func testFunctions(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "vendor", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcDecl.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exists(rel string) bool {
	_, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	return err == nil
}

// TestASVSTrace: docs/asvs.md has one row for every level-1 and level-2
// requirement, each with a known status; every "met" or "partly" row names
// a test; every named test function and cited file exists.
func TestASVSTrace(t *testing.T) {
	reqs := loadRequirements(t)
	rows := loadRows(t)
	funcs := testFunctions(t)
	if len(funcs) == 0 {
		t.Fatal("no test functions found in the repository")
	}

	seen := map[string]int{}
	for _, r := range rows {
		where := "docs/asvs.md:" + strconv.Itoa(r.line) + ": " + r.id
		req, ok := reqs[r.id]
		if !ok {
			t.Errorf("%s: not a requirement of ASVS 5.0.0", where)
			continue
		}
		if prev, dup := seen[r.id]; dup {
			t.Errorf("%s: second row (first at line %d)", where, prev)
		}
		seen[r.id] = r.line
		if r.chapterHeading != req.chapter {
			t.Errorf("%s: under the heading of %q, belongs under %s", where, r.chapterHeading, req.chapter)
		}
		if !statuses[r.status] {
			t.Errorf("%s: status %q is not one of met, partly, not met, not applicable", where, r.status)
			continue
		}
		named := testName.FindAllString(r.tests, -1)
		if (r.status == "met" || r.status == "partly") && len(named) == 0 {
			t.Errorf("%s: %q but names no test", where, r.status)
		}
		for _, n := range named {
			if !funcs[n] {
				t.Errorf("%s: cites %s, but no *_test.go declares func %s(", where, n, n)
			}
		}
		for _, p := range testFile.FindAllString(r.tests, -1) {
			if !exists(p) {
				t.Errorf("%s: cites %s, which does not exist", where, p)
			}
		}
		for _, p := range codePath.FindAllString(r.code, -1) {
			if !exists(p) {
				t.Errorf("%s: code column cites %s, which does not exist", where, p)
			}
		}
	}

	missing := 0
	for id, req := range reqs {
		if (req.level == "1" || req.level == "2") && seen[id] == 0 {
			t.Errorf("level-%s requirement %s has no row in docs/asvs.md", req.level, id)
			missing++
		}
	}
	if missing == 0 {
		counts := map[string]int{}
		for _, r := range rows {
			counts[r.status]++
		}
		t.Logf("%d rows: %d met, %d partly, %d not met, %d not applicable", len(rows),
			counts["met"], counts["partly"], counts["not met"], counts["not applicable"])
	}
}
