package claims

import (
	"strings"
	"time"
)

// ProductLine is the kind of insurance a policy gives.
type ProductLine string

const (
	LineAuto     ProductLine = "auto"
	LineHealth   ProductLine = "health"
	LineProperty ProductLine = "property"
)

// ValidProductLine reports whether l is a known product line.
func ValidProductLine(l ProductLine) bool {
	return l == LineAuto || l == LineHealth || l == LineProperty
}

// coveredCategories lists, per product line, the line-item categories the
// product pays for. A line of another category is "not covered".
var coveredCategories = map[ProductLine][]string{
	LineAuto:     {"vehicle", "property", "injury", "towing", "rental"},
	LineHealth:   {"consultation", "procedure", "hospital", "medication", "diagnostics", "therapy"},
	LineProperty: {"dwelling", "contents", "additional_living", "liability"},
}

// Categories lists every category any product knows, so a line's category
// can be validated before coverage is considered.
func Categories() []string {
	var all []string
	seen := map[string]bool{}
	for _, l := range []ProductLine{LineAuto, LineHealth, LineProperty} {
		for _, c := range coveredCategories[l] {
			if !seen[c] {
				seen[c] = true
				all = append(all, c)
			}
		}
	}
	return append(all, "other")
}

// Covers reports whether product line l pays for category c.
func (l ProductLine) Covers(c string) bool {
	for _, x := range coveredCategories[l] {
		if x == c {
			return true
		}
	}
	return false
}

// PolicyStatus says whether a policy is in force.
type PolicyStatus string

const (
	PolicyActive    PolicyStatus = "active"
	PolicyLapsed    PolicyStatus = "lapsed"
	PolicyCancelled PolicyStatus = "cancelled"
)

// Policyholder is a person insured under one or more policies: a data
// subject. Every personal field here is sealed at rest under the holder's
// own key, so erasing the holder destroys that key and nothing else.
type Policyholder struct {
	ID          ID
	UserID      ID // the customer account, if the holder has one
	FullName    Secret
	DateOfBirth Date
	Email       Secret
	Phone       Secret
	Address     Secret
	NationalID  Secret
	// Attributes are non-identifying facts carried from imports
	// (occupation, education, sex, ...), kept for adjudication and models.
	Attributes map[string]string
	Erased     bool
	CreatedAt  time.Time
}

// Policy is an insurance contract covering one policy period.
type Policy struct {
	ID            ID
	Number        string // public policy number
	HolderID      ID
	ProductLine   ProductLine
	Status        PolicyStatus
	EffectiveDate Date // first covered day
	ExpiryDate    Date // last covered day
	CoverageLimit Money
	Deductible    Money
	Premium       Money // annual
	// CoinsuranceBP is the insurer's share after the deductible in basis
	// points (10000 = 100%). Health products commonly pay 80% (8000).
	CoinsuranceBP int
	Attributes    map[string]string
	CreatedAt     time.Time
}

// Covers reports whether d falls in the policy period.
func (p Policy) Covers(d Date) bool {
	return !d.Before(p.EffectiveDate) && !d.After(p.ExpiryDate)
}

// ActiveOn reports whether the policy is in force on d.
func (p Policy) ActiveOn(d Date) bool {
	return p.Status == PolicyActive && p.Covers(d)
}

// NormalizePolicyNumber returns the canonical form used for lookups.
func NormalizePolicyNumber(s string) string {
	return strings.ToUpper(strings.TrimSpace(s))
}
