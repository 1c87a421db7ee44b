package importer

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// autoColumns are the columns of insurance_claims.csv the mapping reads.
// The trailing "_c39" and an extra "State" column are optional.
var autoColumns = []string{
	"months_as_customer", "age", "policy_number", "policy_bind_date", "policy_state", "policy_csl",
	"policy_deductable", "policy_annual_premium", "umbrella_limit", "insured_zip", "insured_sex",
	"insured_education_level", "insured_occupation", "insured_hobbies", "insured_relationship",
	"capital-gains", "capital-loss", "incident_date", "incident_type", "collision_type",
	"incident_severity", "authorities_contacted", "incident_state", "incident_city", "incident_location",
	"incident_hour_of_the_day", "number_of_vehicles_involved", "property_damage", "bodily_injuries",
	"witnesses", "police_report_available", "total_claim_amount", "injury_claim", "property_claim",
	"vehicle_claim", "auto_make", "auto_model", "auto_year", "fraud_reported",
}

// missing reports whether an auto-claims value is missing ("?" or empty).
func missing(v string) bool { return v == "" || v == "?" }

// orEmpty maps the missing marker "?" to "".
func orEmpty(v string) string {
	if v == "?" {
		return ""
	}
	return v
}

type autoMapper struct {
	cols     map[string]int
	hasState bool
	now      time.Time
	det      dateDetector
	format   dateFormat
}

func (m *autoMapper) setHeader(cols map[string]int, now time.Time) error {
	if err := requireColumns(cols, autoColumns); err != nil {
		return err
	}
	m.cols, m.now = cols, now // the detector survives a second call after a rewind
	_, m.hasState = cols["state"]
	return nil
}

func (m *autoMapper) observe(rec []string, line int) (bool, error) {
	r := rowReader{m.cols, rec}
	done := m.det.add(r.get("policy_bind_date"), line)
	done = m.det.add(r.get("incident_date"), line) || done
	return done, nil
}

func (m *autoMapper) decide(eof bool) error {
	f, err := m.det.result(eof)
	m.format = f
	return err
}

// amount reads a whole-or-decimal dollar amount. present is false for a
// missing value; skip is set when the value is present but not a number.
func amount(r rowReader, col string) (v claims.Money, present bool, skip string) {
	s := r.get(col)
	if missing(s) {
		return claims.Zero(currency), false, ""
	}
	v, err := claims.ParseMoney(s, currency)
	if err != nil {
		return claims.Money{}, false, fmt.Sprintf("%s %q is not an amount", col, s)
	}
	return v, true, ""
}

func (m *autoMapper) date(r rowReader, col string) (claims.Date, string) {
	s := r.get(col)
	if missing(s) {
		return claims.Date{}, col + " is missing"
	}
	d, ok := parseAs(s, m.format)
	if !ok {
		return claims.Date{}, fmt.Sprintf("%s %q is not a valid %s date (the format of this file)", col, s, m.format)
	}
	return d, ""
}

// autoClaimType maps incident_type to a claim type.
var autoClaimType = map[string]string{
	"single vehicle collision": "collision",
	"multi-vehicle collision":  "collision",
	"vehicle theft":            "theft",
	"parked car":               "collision", // damage to the parked insured car; incident_type keeps "Parked Car"
}

func (m *autoMapper) mapRow(rec []string, line int) (Record, string) {
	r := rowReader{m.cols, rec}
	key := r.get("policy_number")
	if missing(key) {
		return Record{}, "policy_number is missing"
	}
	bind, skip := m.date(r, "policy_bind_date")
	if skip != "" {
		return Record{}, skip
	}
	incident, skip := m.date(r, "incident_date")
	if skip != "" {
		return Record{}, skip
	}
	out := newRecord(SourceAutoClaims, key, m.now)
	var why reasons
	h, p, c := &out.Holder, &out.Policy, &out.Claim

	// Policyholder: no name or contact exists; the zip is the only
	// quasi-identifier and is sealed as the address.
	if z := r.get("insured_zip"); !missing(z) {
		h.Address = claims.Secret(z)
	}
	for attr, col := range map[string]string{
		"sex": "insured_sex", "education_level": "insured_education_level", "occupation": "insured_occupation",
		"hobbies": "insured_hobbies", "relationship": "insured_relationship", "age": "age",
		"months_as_customer": "months_as_customer", "capital_gains": "capital-gains", "capital_loss": "capital-loss",
	} {
		h.Attributes[attr] = orEmpty(r.get(col))
	}

	// Policy.
	p.Number = key
	p.EffectiveDate, p.ExpiryDate = policyPeriod(bind, incident)
	if incident.Before(bind) {
		why.add("incident_date %s is before policy_bind_date %s", incident, bind)
	}
	csl := r.get("policy_csl")
	if missing(csl) {
		why.add("policy_csl is missing (coverage limit unknown)")
	} else {
		limit, ok := parseCSL(csl)
		if !ok {
			return Record{}, fmt.Sprintf("policy_csl %q is not of the form 250/500", csl)
		}
		p.CoverageLimit = limit
	}
	for _, f := range []struct {
		col string
		dst *claims.Money
	}{{"policy_deductable", &p.Deductible}, {"policy_annual_premium", &p.Premium}} {
		v, ok, skip := amount(r, f.col)
		if skip != "" {
			return Record{}, skip
		}
		if !ok {
			why.add("%s is missing", f.col)
			continue
		}
		if v.Minor < 0 {
			why.add("%s is negative (%s)", f.col, v.Decimal())
		}
		*f.dst = v
	}
	umbrella := orEmpty(r.get("umbrella_limit"))
	if umbrella != "" {
		if n, err := strconv.ParseInt(umbrella, 10, 64); err != nil {
			why.add("umbrella_limit %q is not a number", umbrella)
		} else if n < 0 {
			why.add("umbrella_limit is negative (%s)", umbrella)
		}
	}
	p.Attributes["policy_state"] = orEmpty(r.get("policy_state"))
	p.Attributes["policy_csl"] = orEmpty(csl)
	p.Attributes["umbrella_limit"] = umbrella
	p.Attributes["bind_date"] = bind.String()

	// Claim.
	it := r.get("incident_type")
	severity := orEmpty(r.get("incident_severity"))
	if missing(it) {
		c.Type = "other"
		why.add("incident_type is missing")
	} else if t, ok := autoClaimType[strings.ToLower(it)]; ok {
		c.Type = t
	} else {
		c.Type = "other"
	}
	c.IncidentDate = incident
	c.ReportedDate = incident // the source has no report date
	c.Description = autoDescription(orEmpty(it), severity)
	c.Location = joinNonEmpty(", ", orEmpty(r.get("incident_city")), orEmpty(r.get("incident_state")))
	if incident.After(claims.DateOf(m.now)) {
		why.add("incident_date %s is in the future", incident)
	}

	seq := 0
	for _, l := range []struct{ col, cat, desc string }{
		{"injury_claim", "injury", "Injury (imported)"},
		{"property_claim", "property", "Property damage (imported)"},
		{"vehicle_claim", "vehicle", "Vehicle damage (imported)"},
	} {
		v, ok, skip := amount(r, l.col)
		if skip != "" {
			return Record{}, skip
		}
		if !ok {
			why.add("%s is missing", l.col)
			continue
		}
		if v.Minor == 0 {
			continue
		}
		if v.Minor < 0 {
			why.add("%s is negative (%s)", l.col, v.Decimal())
		}
		seq++
		c.Lines = append(c.Lines, claims.LineItem{ID: claims.NewID(), Seq: seq, Category: l.cat,
			Description: l.desc, Amount: v})
		c.Total = c.Total.Add(v)
	}
	total, ok, skip := amount(r, "total_claim_amount")
	if skip != "" {
		return Record{}, skip
	}
	switch {
	case !ok:
		why.add("total_claim_amount is missing")
	case total != c.Total:
		why.add("total_claim_amount %s is not injury+property+vehicle %s", total.Decimal(), c.Total.Decimal())
	}
	if len(c.Lines) == 0 {
		why.add("the claim has no non-zero amount")
	}
	if c.Total.Minor > claims.MaxClaimMinor {
		why.add("the total %s is over the maximum claim", c.Total.Decimal())
	}
	for attr, col := range map[string]string{
		"incident_type": "incident_type", "collision_type": "collision_type", "incident_severity": "incident_severity",
		"authorities_contacted": "authorities_contacted", "property_damage": "property_damage",
		"police_report_available": "police_report_available", "witnesses": "witnesses",
		"bodily_injuries": "bodily_injuries", "number_of_vehicles_involved": "number_of_vehicles_involved",
		"incident_hour_of_the_day": "incident_hour_of_the_day", "auto_make": "auto_make", "auto_model": "auto_model",
		"auto_year": "auto_year", "fraud_reported": "fraud_reported", "incident_state": "incident_state",
		"incident_city": "incident_city", "total_claim_amount": "total_claim_amount",
	} {
		// "None" in authorities_contacted is a category, not a missing value.
		c.Attributes[attr] = orEmpty(r.get(col))
	}
	if m.hasState {
		c.Attributes["incident_state_name"] = orEmpty(r.get("state"))
	}
	if strings.EqualFold(r.get("fraud_reported"), "Y") {
		c.AddFlag(claims.FlagFraudSuspected)
	}
	why.apply(c)
	return out, ""
}

// parseCSL reads a combined single limit "per-person/per-accident" in
// thousands of dollars and returns the per-accident limit.
func parseCSL(s string) (claims.Money, bool) {
	person, acc, ok := strings.Cut(s, "/")
	if !ok {
		return claims.Money{}, false
	}
	if _, err := strconv.ParseUint(strings.TrimSpace(person), 10, 32); err != nil {
		return claims.Money{}, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(acc), 10, 64)
	if err != nil || n < 0 || n > 1_000_000_000 {
		return claims.Money{}, false
	}
	return claims.Money{Minor: n * 1000 * 100, Currency: currency}, true
}

func autoDescription(incidentType, severity string) string {
	if incidentType == "" {
		incidentType = "Incident of unknown type"
	}
	d := incidentType
	if severity != "" {
		d += ", " + strings.ToLower(severity)
	}
	return d + " (imported from the auto-claims dataset)"
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
