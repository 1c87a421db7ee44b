package importer

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// vehicleColumns are the columns of fraud_oracle.csv, lower-cased.
var vehicleColumns = []string{
	"month", "weekofmonth", "dayofweek", "make", "accidentarea", "dayofweekclaimed", "monthclaimed",
	"weekofmonthclaimed", "sex", "maritalstatus", "age", "fault", "policytype", "vehiclecategory",
	"vehicleprice", "fraudfound_p", "policynumber", "repnumber", "deductible", "driverrating",
	"days_policy_accident", "days_policy_claim", "pastnumberofclaims", "ageofvehicle", "ageofpolicyholder",
	"policereportfiled", "witnesspresent", "agenttype", "numberofsuppliments", "addresschange_claim",
	"numberofcars", "year", "basepolicy",
}

type vehicleMapper struct {
	cols map[string]int
	now  time.Time
}

func (m *vehicleMapper) setHeader(cols map[string]int, now time.Time) error {
	if err := requireColumns(cols, vehicleColumns); err != nil {
		return err
	}
	m.cols, m.now = cols, now
	return nil
}

// weekDate reads a Month / WeekOfMonth / DayOfWeek triple. absent is true
// when the month or the day is coded "0" (missing).
func weekDate(r rowReader, year int, monthCol, weekCol, dayCol string) (d claims.Date, month time.Month, absent bool, skip string) {
	ms, ws, ds := r.get(monthCol), r.get(weekCol), r.get(dayCol)
	if ms == "0" || ms == "" || ds == "0" || ds == "" {
		return claims.Date{}, 0, true, ""
	}
	month, ok := parseMonth(ms)
	if !ok {
		return claims.Date{}, 0, false, fmt.Sprintf("%s %q is not a month", r.name(monthCol), ms)
	}
	wd, ok := parseWeekday(ds)
	if !ok {
		return claims.Date{}, 0, false, fmt.Sprintf("%s %q is not a day of the week", r.name(dayCol), ds)
	}
	week, err := strconv.Atoi(ws)
	if err != nil || week < 1 || week > 5 {
		return claims.Date{}, 0, false, fmt.Sprintf("%s %q is not a week of the month (1-5)", r.name(weekCol), ws)
	}
	return nthWeekday(year, month, week, wd), month, false, ""
}

// name returns the header spelling of a lower-cased column name, for
// messages.
func (r rowReader) name(col string) string { return vehicleHeaderNames[col] }

var vehicleHeaderNames = map[string]string{
	"month": "Month", "weekofmonth": "WeekOfMonth", "dayofweek": "DayOfWeek",
	"monthclaimed": "MonthClaimed", "weekofmonthclaimed": "WeekOfMonthClaimed", "dayofweekclaimed": "DayOfWeekClaimed",
}

// priceBandLimit returns the upper bound of a VehiclePrice band:
// "20000 to 29000" → 29000, "more than 69000" → 69000, "less than 20000"
// → 20000.
func priceBandLimit(band string) (claims.Money, bool) {
	b := strings.ToLower(strings.TrimSpace(band))
	var num string
	switch {
	case strings.HasPrefix(b, "more than "):
		num = strings.TrimPrefix(b, "more than ")
	case strings.HasPrefix(b, "less than "):
		num = strings.TrimPrefix(b, "less than ")
	default:
		_, hi, ok := strings.Cut(b, " to ")
		if !ok {
			return claims.Money{}, false
		}
		num = hi
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > 1_000_000_000 {
		return claims.Money{}, false
	}
	return claims.Money{Minor: n * 100, Currency: currency}, true
}

func (m *vehicleMapper) mapRow(rec []string, line int) (Record, string) {
	r := rowReader{m.cols, rec}
	key := r.get("policynumber")
	if key == "" {
		return Record{}, "PolicyNumber is missing"
	}
	ys := r.get("year")
	year, err := strconv.Atoi(ys)
	if err != nil || year < 1900 || year > 2200 {
		return Record{}, fmt.Sprintf("Year %q is not a year", ys)
	}
	incident, accMonth, absent, skip := weekDate(r, year, "month", "weekofmonth", "dayofweek")
	if skip != "" {
		return Record{}, skip
	}
	if absent {
		return Record{}, "the accident Month or DayOfWeek is missing"
	}
	out := newRecord(SourceVehicleClaims, key, m.now)
	var why reasons
	h, p, c := &out.Holder, &out.Policy, &out.Claim

	// Policyholder: no personal identifiers in this dataset.
	age := r.get("age")
	if age == "0" {
		age = "" // 0 codes a missing age; the band AgeOfPolicyHolder is kept
	}
	h.Attributes["sex"] = r.get("sex")
	h.Attributes["marital_status"] = r.get("maritalstatus")
	h.Attributes["age"] = age
	h.Attributes["age_band"] = r.get("ageofpolicyholder")

	// Policy: the calendar year of the accident.
	p.Number = "VC-" + key
	p.EffectiveDate = claims.NewDate(year, time.January, 1)
	p.ExpiryDate = claims.NewDate(year, time.December, 31)
	ded := r.get("deductible")
	if ded == "" {
		why.add("Deductible is missing")
	} else if v, err := claims.ParseMoney(ded, currency); err != nil {
		return Record{}, fmt.Sprintf("Deductible %q is not an amount", ded)
	} else {
		if v.Minor < 0 {
			why.add("Deductible is negative (%s)", v.Decimal())
		}
		p.Deductible = v
	}
	price := r.get("vehicleprice")
	if price == "" {
		why.add("VehiclePrice is missing (coverage limit unknown)")
	} else if v, ok := priceBandLimit(price); !ok {
		return Record{}, fmt.Sprintf("VehiclePrice %q is not a price band such as \"20000 to 29000\"", price)
	} else {
		p.CoverageLimit = v
	}
	for attr, col := range map[string]string{
		"vehicle_price": "vehicleprice", "days_policy_accident": "days_policy_accident",
		"days_policy_claim": "days_policy_claim", "past_number_of_claims": "pastnumberofclaims",
		"age_of_vehicle": "ageofvehicle", "address_change_claim": "addresschange_claim",
		"number_of_cars": "numberofcars", "agent_type": "agenttype", "base_policy": "basepolicy",
		"policy_type": "policytype", "vehicle_category": "vehiclecategory", "make": "make",
		"driver_rating": "driverrating",
	} {
		p.Attributes[attr] = r.get(col)
	}
	p.Attributes["premium_unknown"] = "true" // Premium stays 0 USD

	// Claim.
	fault := r.get("fault")
	area := r.get("accidentarea")
	switch strings.ToLower(fault) {
	case "policy holder", "third party":
		c.Type = "collision" // an accident with a party at fault
	default:
		c.Type = "other"
	}
	c.IncidentDate = incident
	c.Description = vehicleDescription(area, fault)
	c.Location = area
	if incident.After(claims.DateOf(m.now)) {
		why.add("the accident date %s is in the future", incident)
	}

	claimYear := year
	if cm, ok := parseMonth(r.get("monthclaimed")); ok && cm < accMonth {
		claimYear++ // claimed in a later month number: the next year
	}
	reported, _, absent, skip := weekDate(r, claimYear, "monthclaimed", "weekofmonthclaimed", "dayofweekclaimed")
	switch {
	case skip != "":
		return Record{}, skip
	case absent:
		reported = incident
		why.add("the claim date is missing (MonthClaimed/DayOfWeekClaimed coded 0); reported date set to the accident date")
	case reported.Before(incident):
		// Both dates are week-approximate: within the same month the
		// approximation can put the claim a few days before the accident.
		reported = incident
		c.Attributes["reported_date_clamped"] = "true"
	}
	c.ReportedDate = reported

	for attr, col := range map[string]string{
		"month": "month", "week_of_month": "weekofmonth", "day_of_week": "dayofweek", "year": "year",
		"month_claimed": "monthclaimed", "week_of_month_claimed": "weekofmonthclaimed",
		"day_of_week_claimed": "dayofweekclaimed", "accident_area": "accidentarea", "fault": "fault",
		"police_report_filed": "policereportfiled", "witness_present": "witnesspresent",
		"number_of_supplements": "numberofsuppliments", "rep_number": "repnumber", "fraud_found": "fraudfound_p",
	} {
		c.Attributes[attr] = r.get(col)
	}
	c.Attributes["incident_date_precision"] = "week"
	c.Attributes["amount_unknown"] = "true"
	if r.get("fraudfound_p") == "1" {
		c.AddFlag(claims.FlagFraudSuspected)
	}
	why.apply(c)
	return out, ""
}

func vehicleDescription(area, fault string) string {
	d := "Vehicle accident"
	if area != "" {
		d += " (" + strings.ToLower(area) + " area)"
	}
	if fault != "" {
		d += ", at fault: " + strings.ToLower(fault)
	}
	return d + " (imported from the vehicle-claims dataset; the source has no claim amount)"
}
