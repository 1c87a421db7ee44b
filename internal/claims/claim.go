package claims

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on claim input. They are part of the contract: the API documents
// them and validation enforces them.
const (
	MaxLines            = 100
	MaxDescriptionRunes = 4000
	MaxShortTextRunes   = 200
	MaxReasonRunes      = 1000
	// MaxClaimMinor bounds one claim's total (10 million in a two-decimal
	// currency): a larger claim is a typo or an attack, not a claim.
	MaxClaimMinor = 1_000_000_000
)

// Flag marks a claim for human attention. A flagged claim is never decided
// automatically.
type Flag string

const (
	FlagPossibleDuplicate Flag = "possible_duplicate"  // same policy, incident date, total within 1%
	FlagImportedRuleBreak Flag = "imported_rule_break" // historical row that breaks an intake rule
	FlagSharedDocument    Flag = "shared_document"     // same document on another holder's claim
	FlagFraudSuspected    Flag = "fraud_suspected"     // historical outcome or model advice
)

// LineItem is one amount claimed: a repair, a treatment, a night in hospital.
type LineItem struct {
	ID          ID
	Seq         int // 1-based position in the claim
	Category    string
	Description string
	ServiceDate Date
	Amount      Money
}

// Claim is a policyholder's request to be paid under a policy.
type Claim struct {
	ID           ID
	Number       string // public reference, e.g. "CLM-2026-8F3A21C0"
	PolicyID     ID
	HolderID     ID
	FiledBy      ID // user who filed it (a customer, or an importer)
	Type         string
	IncidentDate Date
	ReportedDate Date
	Description  string
	Location     string
	Lines        []LineItem
	Total        Money // always the sum of Lines
	Status       Status
	AssigneeID   ID
	Payable      Money // set by a decision
	Decision     *Decision
	DecidedBy    ID // who made the latest decision
	ProposedBy   ID // who proposed a decision waiting for approval
	Appealed     bool
	Flags        []Flag
	Source       string // "api", "import:auto-claims", ...
	// Attributes hold non-personal imported facts (collision type,
	// historical outcome, ...).
	Attributes map[string]string
	Version    int64 // bumped on every write; the ETag
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// HasFlag reports whether c carries f.
func (c *Claim) HasFlag(f Flag) bool {
	for _, x := range c.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// AddFlag adds f once.
func (c *Claim) AddFlag(f Flag) {
	if !c.HasFlag(f) {
		c.Flags = append(c.Flags, f)
	}
}

// Transition is one recorded status change: the claim's history.
type Transition struct {
	ClaimID ID
	From    Status
	To      Status
	ActorID ID
	Reason  string
	At      time.Time
}

// MoveTo changes c's status to to, or returns a Conflict error naming the
// statuses allowed from here and leaves c unchanged. It returns the
// transition to record.
func (c *Claim) MoveTo(to Status, actor ID, reason string, now time.Time) (Transition, error) {
	if !c.Status.CanMoveTo(to) {
		allowed := c.Status.Next()
		names := make([]string, len(allowed))
		for i, s := range allowed {
			names[i] = string(s)
		}
		e := Errorf(Conflict, "Claim %s is %s and cannot move to %s; allowed: %s.",
			c.Number, c.Status, to, orNone(names))
		e.Extra = map[string]any{"status": string(c.Status), "allowed": names}
		return Transition{}, e
	}
	t := Transition{ClaimID: c.ID, From: c.Status, To: to, ActorID: actor, Reason: reason, At: now}
	c.Status, c.UpdatedAt = to, now
	return t, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// NewClaimInput is what a customer (or an importer) provides to open a claim.
type NewClaimInput struct {
	PolicyNumber string
	Type         string
	IncidentDate Date
	Description  string
	Location     string
	Currency     string
	Lines        []NewLineInput
}

// NewLineInput is one line of a NewClaimInput.
type NewLineInput struct {
	Category    string
	Description string
	ServiceDate Date
	Amount      Money
}

// ClaimTypes lists accepted claim types per product line.
var ClaimTypes = []string{"collision", "theft", "vandalism", "weather", "fire", "water_damage",
	"injury", "illness", "liability", "glass", "other"}

// ValidateText checks a free-text field: valid UTF-8, within max runes, no
// control characters except newline and tab, and nothing that looks like a
// payment card number (the product keeps out of PCI DSS scope by never
// storing one).
func ValidateText(v *Validation, field, s string, max int, required bool) {
	if required && strings.TrimSpace(s) == "" {
		v.Add(field, "required", "%s is required.", field)
		return
	}
	if !utf8.ValidString(s) {
		v.Add(field, "utf8", "%s must be valid UTF-8.", field)
		return
	}
	if n := utf8.RuneCountInString(s); n > max {
		v.Add(field, "max_length", "%s must be at most %d characters (got %d).", field, max, n)
		return
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' && r != '\r' || r == 0x7f || r >= 0x80 && r <= 0x9f {
			v.Add(field, "control_character", "%s must not contain control characters.", field)
			return
		}
		if isBidiControl(r) {
			v.Add(field, "bidi_control", "%s must not contain invisible text-direction characters.", field)
			return
		}
		// Other invisible format characters (zero-width space, soft
		// hyphen, byte-order mark, line/paragraph separators) hide what
		// a reader sees; the zero-width joiner stays for emoji.
		if (unicode.Is(unicode.Cf, r) && r != 0x200d) || r == 0x2028 || r == 0x2029 {
			v.Add(field, "invisible_character", "%s must not contain invisible formatting characters.", field)
			return
		}
	}
	if LooksLikeCardNumber(s) {
		v.Add(field, "no_card_number", "%s looks like it contains a payment card number; card numbers must not be sent.", field)
	}
}

// LooksLikeCardNumber reports whether s contains 13 to 19 digits (spaces or
// dashes between them allowed) that pass the Luhn check.
func LooksLikeCardNumber(s string) bool {
	var digits []byte
	// Only a whole run of digits counts: a Luhn-valid substring of a longer
	// number (a policy or phone number) is not a card.
	flush := func() bool {
		defer func() { digits = digits[:0] }()
		return len(digits) >= 13 && len(digits) <= 19 && luhn(digits)
	}
	// Any Unicode decimal digit counts (full-width ４ is a 4 to a person),
	// and spaces, dashes and dots may separate groups.
	for _, r := range s {
		switch {
		case unicode.IsDigit(r):
			digits = append(digits, byte('0'+digitValue(r)))
		case (r == ' ' || r == '-' || r == '.' || r == '_' || r == ',' || r == '/' || r == '\u00a0' || r == '\u3000') && len(digits) > 0:
			// separators inside a number
		default:
			if len(digits) >= 13 && flush() {
				return true
			}
			digits = digits[:0]
		}
	}
	return len(digits) >= 13 && flush()
}

func luhn(d []byte) bool {
	sum := 0
	for i := 0; i < len(d); i++ {
		n := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return sum%10 == 0
}

// Validate checks the shape of a new claim (everything that needs no
// database). Rules that need the policy are in CheckAgainstPolicy.
func (in NewClaimInput) Validate(today Date) error {
	var v Validation
	v.Check(strings.TrimSpace(in.PolicyNumber) != "", "policyNumber", "required", "policyNumber is required.")
	ValidateText(&v, "policyNumber", in.PolicyNumber, 64, false)
	if !validType(in.Type) {
		v.Add("type", "enum", "type must be one of: %s.", strings.Join(ClaimTypes, ", "))
	}
	if in.IncidentDate.IsZero() {
		v.Add("incidentDate", "required", "incidentDate is required (YYYY-MM-DD).")
	} else if in.IncidentDate.After(today.AddDays(1)) {
		// today is the server's UTC date; a customer east of UTC may
		// already be a day ahead.
		v.Add("incidentDate", "not_future", "incidentDate must not be in the future.")
	}
	ValidateText(&v, "description", in.Description, MaxDescriptionRunes, true)
	ValidateText(&v, "location", in.Location, MaxShortTextRunes, false)
	if !ValidCurrency(in.Currency) {
		v.Add("currency", "enum", "currency must be a supported ISO 4217 code.")
	}
	switch {
	case len(in.Lines) == 0:
		v.Add("lines", "required", "A claim needs at least one line item.")
	case len(in.Lines) > MaxLines:
		v.Add("lines", "max_items", "A claim may have at most %d line items.", MaxLines)
	}
	var total int64
	cats := Categories()
	for i, l := range in.Lines {
		f := fmt.Sprintf("lines[%d]", i)
		if !containsString(cats, l.Category) {
			v.Add(f+".category", "enum", "%s.category must be one of: %s.", f, strings.Join(cats, ", "))
		}
		ValidateText(&v, f+".description", l.Description, MaxShortTextRunes, true)
		if l.Amount.Currency != in.Currency {
			v.Add(f+".amount", "currency", "%s.amount must be in the claim currency %s.", f, in.Currency)
		}
		if l.Amount.Minor <= 0 {
			v.Add(f+".amount", "positive", "%s.amount must be greater than zero.", f)
		} else if l.Amount.Minor > MaxClaimMinor {
			v.Add(f+".amount", "max", "%s.amount is over the maximum of %s.", f, Money{MaxClaimMinor, in.Currency}.Decimal())
		} else {
			total += l.Amount.Minor
		}
		if !l.ServiceDate.IsZero() {
			if l.ServiceDate.After(today) {
				v.Add(f+".serviceDate", "not_future", "%s.serviceDate must not be in the future.", f)
			}
			if !in.IncidentDate.IsZero() && l.ServiceDate.Before(in.IncidentDate) {
				v.Add(f+".serviceDate", "not_before_incident", "%s.serviceDate must not be before the incident date.", f)
			}
		}
	}
	if total > MaxClaimMinor {
		v.Add("lines", "max_total", "The claim total is over the maximum of %s.", Money{MaxClaimMinor, in.Currency}.Decimal())
	}
	return v.Err()
}

// CheckAgainstPolicy applies the intake rules that need the policy: it must
// belong to the claimant (checked by the caller, which answers 404 so a
// foreign policy number is indistinguishable from a missing one), be active
// on the incident date, and the incident must not precede the policy start.
func (in NewClaimInput) CheckAgainstPolicy(p Policy) error {
	var v Validation
	switch {
	case in.IncidentDate.Before(p.EffectiveDate):
		v.Add("incidentDate", "not_before_policy_start", "incidentDate is before the policy's effective date %s.", p.EffectiveDate)
	case in.IncidentDate.After(p.ExpiryDate):
		v.Add("incidentDate", "policy_active", "incidentDate is after the policy's expiry date %s.", p.ExpiryDate)
	case p.Status != PolicyActive:
		v.Add("policyNumber", "policy_active", "The policy is %s.", p.Status)
	}
	if in.Currency != p.CoverageLimit.Currency {
		v.Add("currency", "policy_currency", "currency must be the policy currency %s.", p.CoverageLimit.Currency)
	}
	return v.Err()
}

func validType(t string) bool { return containsString(ClaimTypes, t) }

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// NewClaim builds a draft claim from validated input. The caller has run
// Validate and CheckAgainstPolicy.
func NewClaim(in NewClaimInput, p Policy, filedBy ID, number string, now time.Time) Claim {
	c := Claim{
		ID: NewID(), Number: number, PolicyID: p.ID, HolderID: p.HolderID, FiledBy: filedBy,
		Type: in.Type, IncidentDate: in.IncidentDate, ReportedDate: DateOf(now.UTC()),
		Description: in.Description, Location: in.Location, Status: StatusDraft,
		Total: Zero(in.Currency), Payable: Zero(in.Currency), Source: "api",
		Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	for i, l := range in.Lines {
		c.Lines = append(c.Lines, LineItem{ID: NewID(), Seq: i + 1, Category: l.Category,
			Description: l.Description, ServiceDate: l.ServiceDate, Amount: l.Amount})
		c.Total = c.Total.Add(l.Amount)
	}
	return c
}

// IsLikelyDuplicate reports whether other looks like the same loss as c:
// same policy, same incident date, totals within 1% of the larger.
func (c *Claim) IsLikelyDuplicate(other Claim) bool {
	if other.ID == c.ID || other.PolicyID != c.PolicyID || other.IncidentDate != c.IncidentDate ||
		other.Total.Currency != c.Total.Currency || other.Status == StatusWithdrawn {
		return false
	}
	a, b := c.Total.Minor, other.Total.Minor
	diff := a - b
	if diff < 0 {
		diff = -diff
	}
	larger := max(a, b)
	return diff*100 <= larger // |a-b| ≤ 1% of the larger, in integers
}

// Event announces a committed change to a claim. It carries ids, status and
// time only: subscribers fetch details through the API, which checks access
// and audits the read.
type Event struct {
	Type       string // "claim.status_changed", "claim.assigned", ...
	ClaimID    ID
	HolderID   ID
	AssigneeID ID
	Status     Status
	At         time.Time
}

// digitValue returns the value of a Unicode decimal digit: decimal digits
// come in contiguous runs of ten starting at a code point whose value is 0.
func digitValue(r rune) int {
	for z := r; z > r-10; z-- {
		if !unicode.IsDigit(z - 1) {
			return int(r - z)
		}
	}
	return int(r-'0') % 10
}

// bidiControls are the invisible characters that reorder text: in a
// description or message they can make what a processor reads differ from
// what was written.
func isBidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}
