// Package importer reads the two public claims CSV datasets ("auto-claims",
// the Databricks/Kaggle insurance_claims.csv, and "vehicle-claims", the
// Angoss/Oracle fraud_oracle.csv) and maps every row to a policyholder, a
// policy and a claim of package claims. It streams: rows are read one at a
// time with encoding/csv and handed to a Sink in batches, so memory does not
// grow with the file (except for the Skipped list and, for auto-claims, the
// bounded date-format look-ahead described below).
//
// Columns are found by header name, never by position. A row that cannot be
// mapped at all (wrong number of fields, CSV syntax error, a required number
// or date that does not parse) is skipped and reported with its line number.
// A row that can be mapped but breaks an intake rule is imported and flagged
// claims.FlagImportedRuleBreak with the reasons in
// Attributes["review_reason"]. No row is dropped silently:
// Read = Imported + AlreadyPresent + len(Skipped) when the import completes.
//
// Date format (auto-claims): the format is detected once per file, not per
// value. The importer reads ahead (buffering at most maxPeekRows rows) and
// feeds every policy_bind_date and incident_date to a detector that keeps
// the candidate formats each value could be written in. As soon as exactly
// one candidate is left the buffered rows are imported and streaming goes
// on. If the candidates run out the file mixes formats and is refused; if
// several remain at the end of the file (or of the look-ahead) the file is
// ambiguous and refused. See docs/import.md for every mapping decision.
package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// Source names, as passed to Sink.ImportBatch and used in Claim.Source
// ("import:" + source).
const (
	SourceAutoClaims    = "auto-claims"
	SourceVehicleClaims = "vehicle-claims"
)

// DefaultBatchSize is the batch size when Options.BatchSize is 0.
const DefaultBatchSize = 500

// currency of both datasets (US insurers; amounts in whole dollars).
const currency = "USD"

// Record is one source row mapped to the domain. Holder, Policy and Claim
// have their IDs set (claims.NewID()), Claim.PolicyID/HolderID and
// Policy.HolderID linked. Claim.Number is left empty: the sink assigns it.
type Record struct {
	Line   int    // 1-based physical line number in the file (header is line 1)
	Key    string // natural key of the row in its source, e.g. the policy number; re-imports are recognised by (Source, Key)
	Holder claims.Policyholder
	Policy claims.Policy
	Claim  claims.Claim
}

// Sink stores records. ImportBatch stores every record of the batch in ONE
// transaction (all or nothing) and skips records whose (source, key) was
// imported before, reporting how many were new. The importer allocates a
// new slice for every batch, so the sink may keep recs.
type Sink interface {
	ImportBatch(ctx context.Context, source string, recs []Record) (created int, err error)
}

// Skip is a row that could not be mapped.
type Skip struct {
	Line   int
	Reason string
}

// Summary reports an import. Read counts data rows (not the header).
// Imported and AlreadyPresent are what the sink reported for committed
// batches. Flagged counts committed rows carrying at least one flag
// (rule break or fraud suspected), whether new or already present.
type Summary struct {
	Source                                  string
	Read, Imported, AlreadyPresent, Flagged int
	Skipped                                 []Skip
}

// String is a human summary: rows read, imported, already present, flagged
// for review, and every skipped row with its line number and reason.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d rows read, %d imported, %d already present, %d flagged for review, %d skipped\n",
		s.Source, s.Read, s.Imported, s.AlreadyPresent, s.Flagged, len(s.Skipped))
	for _, k := range s.Skipped {
		fmt.Fprintf(&b, "  skipped line %d: %s\n", k.Line, k.Reason)
	}
	return b.String()
}

// Options tune an import.
type Options struct {
	BatchSize int       // rows per sink transaction; 0 means DefaultBatchSize
	Progress  io.Writer // nil = quiet; else one progress line per batch
	Now       func() time.Time
}

// ImportAutoClaims imports the auto-claims dataset (insurance_claims.csv and
// its re-saved copies) from r into sink under source "auto-claims".
func ImportAutoClaims(ctx context.Context, r io.Reader, sink Sink, opt Options) (Summary, error) {
	return run(ctx, SourceAutoClaims, r, sink, opt, &autoMapper{det: newDateDetector()})
}

// ImportVehicleClaims imports the vehicle-claims dataset (fraud_oracle.csv,
// comma or semicolon separated) from r into sink under source
// "vehicle-claims".
func ImportVehicleClaims(ctx context.Context, r io.Reader, sink Sink, opt Options) (Summary, error) {
	return run(ctx, SourceVehicleClaims, r, sink, opt, &vehicleMapper{})
}

// mapper maps the rows of one dataset.
type mapper interface {
	// setHeader receives the column index by lower-cased header name and
	// refuses a header that lacks a required column.
	setHeader(cols map[string]int, now time.Time) error
	// mapRow maps one row with the right number of fields. A non-empty
	// skip reason means the row cannot be mapped.
	mapRow(rec []string, line int) (Record, string)
}

// preparer is a mapper that must look at rows before it can map them (the
// auto-claims date-format detection). observe returns true once decided;
// decide is called when observation ends (decided, end of file or
// look-ahead limit) and returns the error that refuses the file, if any.
type preparer interface {
	observe(rec []string, line int) (decided bool, err error)
	decide(eof bool) error
}

// maxPeekRows bounds the rows buffered while the date format is undecided.
const maxPeekRows = 10000

// row is one CSV record read ahead.
type row struct {
	rec  []string
	line int
	perr *csv.ParseError
}

var xlsxMagic = []byte("PK\x03\x04")
var utf8BOM = []byte("\xef\xbb\xbf")

// openCSV strips a UTF-8 BOM, refuses an XLSX (zip) file and detects the
// delimiter (',' or ';') from the header line.
func openCSV(r io.Reader) (*csv.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if head, _ := br.Peek(4); bytes.Equal(head, xlsxMagic) {
		return nil, errors.New("the file is an Excel workbook (XLSX, starts with PK\\x03\\x04), not CSV: save it as CSV (comma or semicolon separated) and import that")
	}
	if head, _ := br.Peek(3); bytes.Equal(head, utf8BOM) {
		br.Discard(3)
	}
	peek, err := br.Peek(br.Size())
	if len(peek) == 0 {
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, errors.New("the file is empty: no header line")
	}
	if i := bytes.IndexByte(peek, '\n'); i >= 0 {
		peek = peek[:i]
	}
	cr := csv.NewReader(br)
	if bytes.Count(peek, []byte{';'}) > bytes.Count(peek, []byte{','}) {
		cr.Comma = ';'
	}
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = false
	cr.ReuseRecord = true
	return cr, nil
}

// openWithHeader opens r as CSV, reads the header and hands the column
// index to m. It returns the reader and the header's field count.
func openWithHeader(r io.Reader, m mapper, now time.Time) (*csv.Reader, int, error) {
	cr, err := openCSV(r)
	if err != nil {
		return nil, 0, err
	}
	header, err := cr.Read()
	if err == io.EOF {
		return nil, 0, errors.New("the file is empty: no header line")
	}
	if err != nil {
		return nil, 0, fmt.Errorf("header: %w", err)
	}
	cols := make(map[string]int, len(header))
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if name == "" {
			continue // e.g. an unnamed trailing column
		}
		if _, dup := cols[name]; dup {
			return nil, 0, fmt.Errorf("header: column %q appears twice", h)
		}
		cols[name] = i
	}
	if err := m.setHeader(cols, now); err != nil {
		return nil, 0, fmt.Errorf("header: %w", err)
	}
	return cr, len(header), nil
}

func run(ctx context.Context, source string, r io.Reader, sink Sink, opt Options, m mapper) (sum Summary, err error) {
	sum.Source = source
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	wrap := func(err error) error { return fmt.Errorf("import %s: %w", source, err) }
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultBatchSize
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	// Auto-claims must know the file's date format before mapping a row.
	// A seekable input (a file) is scanned in full first, reading only the
	// date columns, then rewound; any other input is read ahead until the
	// format is decided (at most maxPeekRows rows are buffered).
	p, needsPrep := m.(preparer)
	scanned := false
	if needsPrep {
		if s, ok := r.(io.Seeker); ok {
			if start, err := s.Seek(0, io.SeekCurrent); err == nil {
				cr, ncols, err := openWithHeader(r, m, now())
				if err != nil {
					return sum, wrap(err)
				}
				rows := 0
				for {
					rec, err := cr.Read()
					if err == io.EOF {
						break
					}
					var pe *csv.ParseError
					if errors.As(err, &pe) {
						continue // skipped, with its reason, in the import pass
					}
					if err != nil {
						return sum, wrap(err)
					}
					rows++
					if len(rec) == ncols {
						line, _ := cr.FieldPos(0)
						p.observe(rec, line)
					}
				}
				if rows > 0 {
					if err := p.decide(true); err != nil {
						return sum, wrap(err)
					}
				}
				if _, err := s.Seek(start, io.SeekStart); err != nil {
					return sum, wrap(err)
				}
				scanned = true
			}
		}
	}
	cr, ncols, err := openWithHeader(r, m, now())
	if err != nil {
		return sum, wrap(err)
	}

	// next returns the next record; ok is false at the end of the file.
	next := func() (row, bool, error) {
		rec, err := cr.Read()
		if err == io.EOF {
			return row{}, false, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return row{line: pe.StartLine, perr: pe}, true, nil
			}
			return row{}, false, err
		}
		line, _ := cr.FieldPos(0)
		return row{rec: rec, line: line}, true, nil
	}

	// Look-ahead for mappers that must see rows first.
	var ahead []row
	eof := false
	if needsPrep && !scanned {
		decided := false
		for !decided && len(ahead) < maxPeekRows {
			rw, ok, err := next()
			if err != nil {
				return sum, wrap(err)
			}
			if !ok {
				eof = true
				break
			}
			if rw.perr == nil {
				rw.rec = append([]string(nil), rw.rec...) // ReuseRecord: keep a copy
				if len(rw.rec) == ncols {
					if decided, err = p.observe(rw.rec, rw.line); err != nil {
						return sum, wrap(err)
					}
				}
			}
			ahead = append(ahead, rw)
		}
		if len(ahead) > 0 || !eof {
			if err := p.decide(eof); err != nil {
				return sum, wrap(err)
			}
		}
	}

	progress := newProgress(opt.Progress, source)
	defer progress.done()
	batch := make([]Record, 0, opt.BatchSize)
	flagged := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		created, err := sink.ImportBatch(ctx, source, batch)
		if err != nil {
			return fmt.Errorf("storing the batch of lines %d-%d: %w", batch[0].Line, batch[len(batch)-1].Line, err)
		}
		sum.Imported += created
		sum.AlreadyPresent += len(batch) - created
		sum.Flagged += flagged
		flagged = 0
		batch = make([]Record, 0, opt.BatchSize)
		progress.report(sum.Read)
		return nil
	}
	handle := func(rw row) error {
		sum.Read++
		switch {
		case rw.perr != nil:
			reason := "CSV syntax error: " + rw.perr.Err.Error()
			if rw.perr.Line != rw.perr.StartLine {
				reason += fmt.Sprintf(" (the record runs to line %d)", rw.perr.Line)
			}
			sum.Skipped = append(sum.Skipped, Skip{rw.line, reason})
			return nil
		case len(rw.rec) != ncols:
			sum.Skipped = append(sum.Skipped, Skip{rw.line,
				fmt.Sprintf("wrong number of columns: %d, the header has %d", len(rw.rec), ncols)})
			return nil
		}
		rec, skip := m.mapRow(rw.rec, rw.line)
		if skip != "" {
			sum.Skipped = append(sum.Skipped, Skip{rw.line, skip})
			return nil
		}
		rec.Line = rw.line
		if len(rec.Claim.Flags) > 0 {
			flagged++
		}
		batch = append(batch, rec)
		if len(batch) >= opt.BatchSize {
			return flush()
		}
		return nil
	}
	for _, rw := range ahead {
		if err := handle(rw); err != nil {
			return sum, wrap(err)
		}
	}
	ahead = nil
	for !eof {
		rw, ok, err := next()
		if err != nil {
			return sum, wrap(err)
		}
		if !ok {
			break
		}
		if err := handle(rw); err != nil {
			return sum, wrap(err)
		}
	}
	if err := flush(); err != nil {
		return sum, wrap(err)
	}
	return sum, nil
}

// progress prints "source: N rows" once per batch: on a terminal it
// rewrites one line with \r, elsewhere it prints one line per batch.
type progressWriter struct {
	w       io.Writer
	source  string
	tty     bool
	printed bool
}

func newProgress(w io.Writer, source string) *progressWriter {
	p := &progressWriter{w: w, source: source}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progressWriter) report(n int) {
	if p.w == nil {
		return
	}
	p.printed = true
	if p.tty {
		fmt.Fprintf(p.w, "\r%s: %d rows", p.source, n)
		return
	}
	fmt.Fprintf(p.w, "%s: %d rows\n", p.source, n)
}

func (p *progressWriter) done() {
	if p.w != nil && p.tty && p.printed {
		fmt.Fprintln(p.w)
	}
}

// --- helpers shared by both mappers ---

// rowReader reads named fields of one record.
type rowReader struct {
	cols map[string]int
	rec  []string
}

func (r rowReader) get(name string) string {
	return strings.TrimSpace(r.rec[r.cols[name]])
}

// requireColumns returns an error naming every column of want missing from
// cols.
func requireColumns(cols map[string]int, want []string) error {
	var missing []string
	for _, w := range want {
		if _, ok := cols[w]; !ok {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing column(s) %s: is this the right file for this import?", strings.Join(missing, ", "))
	}
	return nil
}

// reasons collects intake-rule breaks for review_reason.
type reasons []string

func (r *reasons) add(format string, args ...any) { *r = append(*r, fmt.Sprintf(format, args...)) }

// apply flags c when any reason was recorded.
func (r reasons) apply(c *claims.Claim) {
	if len(r) == 0 {
		return
	}
	c.AddFlag(claims.FlagImportedRuleBreak)
	c.Attributes["review_reason"] = strings.Join(r, "; ")
}

// newRecord returns a record with fresh, linked IDs and the fields both
// datasets set the same way.
func newRecord(source, key string, now time.Time) Record {
	h := claims.Policyholder{ID: claims.NewID(), Attributes: map[string]string{}, CreatedAt: now}
	p := claims.Policy{ID: claims.NewID(), HolderID: h.ID, ProductLine: claims.LineAuto,
		Status: claims.PolicyActive, CoinsuranceBP: 10000, Premium: claims.Zero(currency),
		Deductible: claims.Zero(currency), CoverageLimit: claims.Zero(currency),
		Attributes: map[string]string{}, CreatedAt: now}
	c := claims.Claim{ID: claims.NewID(), PolicyID: p.ID, HolderID: h.ID, Status: claims.StatusSubmitted,
		Source: "import:" + source, Total: claims.Zero(currency), Payable: claims.Zero(currency),
		Attributes: map[string]string{}, Version: 1, CreatedAt: now, UpdatedAt: now}
	return Record{Key: key, Holder: h, Policy: p, Claim: c}
}
