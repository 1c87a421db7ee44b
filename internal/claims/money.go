package claims

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Money is an amount in minor units (cents) of one ISO 4217 currency.
// It is never a float: every computation is integer arithmetic, and rounding
// happens only where a rule says so, in one documented way.
type Money struct {
	Minor    int64
	Currency string
}

// currencyExponents lists the currencies the product accepts and the number
// of decimals of their minor unit.
var currencyExponents = map[string]int{
	"USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2,
	"SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "INR": 2, "ZAR": 2,
	"BRL": 2, "MXN": 2, "SGD": 2, "HKD": 2, "CNY": 2,
	"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0,
	"BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}

// MaxMinor bounds any single amount (10^13 minor units: 100 billion in a
// two-decimal currency) so sums of thousands of lines can never overflow.
const MaxMinor = 10_000_000_000_000

// CurrencyExponent returns the number of minor-unit decimals of code and
// whether the product knows the currency.
func CurrencyExponent(code string) (int, bool) {
	e, ok := currencyExponents[code]
	return e, ok
}

// ValidCurrency reports whether code is a supported ISO 4217 code.
func ValidCurrency(code string) bool {
	_, ok := currencyExponents[code]
	return ok
}

// ParseMoney parses a decimal string such as "1234.5" or "-12" in currency
// code. It refuses more decimals than the currency has (no silent rounding),
// exponents, thousands separators and amounts beyond MaxMinor.
func ParseMoney(s, code string) (Money, error) {
	exp, ok := currencyExponents[code]
	if !ok {
		return Money{}, fmt.Errorf("unknown currency %q", code)
	}
	// One canonical form: no spaces, no plus sign (the API's pattern).
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	// One canonical form: digits before the point, no leading zeros.
	if whole == "" || len(whole) > 1 && whole[0] == '0' {
		return Money{}, fmt.Errorf("%q is not an amount", s)
	}
	if hasDot && frac == "" {
		return Money{}, fmt.Errorf("%q is not an amount", s)
	}
	for _, part := range []string{whole, frac} {
		for _, r := range part {
			if r < '0' || r > '9' {
				return Money{}, fmt.Errorf("%q is not an amount", s)
			}
		}
	}
	if len(frac) > exp {
		return Money{}, fmt.Errorf("%q has more than %d decimals for %s", s, exp, code)
	}
	if len(whole) > 16 {
		return Money{}, fmt.Errorf("%q is too large", s)
	}
	frac += strings.Repeat("0", exp-len(frac))
	digits := whole + frac
	if digits == "" {
		digits = "0"
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > MaxMinor {
		return Money{}, fmt.Errorf("%q is too large", s)
	}
	if neg {
		n = -n
	}
	return Money{Minor: n, Currency: code}, nil
}

// MustMoney is ParseMoney for constants in tests and tables; it panics on
// error.
func MustMoney(s, code string) Money {
	m, err := ParseMoney(s, code)
	if err != nil {
		panic(err)
	}
	return m
}

// String formats m as "1234.56 USD".
func (m Money) String() string {
	return m.Decimal() + " " + m.Currency
}

// Decimal formats the amount alone, with exactly the currency's decimals.
func (m Money) Decimal() string {
	exp := currencyExponents[m.Currency]
	n := m.Minor
	sign := ""
	if n < 0 {
		sign = "-"
		if n == math.MinInt64 {
			return sign + new(big.Int).Neg(big.NewInt(n)).String()
		}
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	if exp == 0 {
		return sign + s
	}
	if len(s) <= exp {
		s = strings.Repeat("0", exp-len(s)+1) + s
	}
	return sign + s[:len(s)-exp] + "." + s[len(s)-exp:]
}

// IsZero reports whether the amount is zero.
func (m Money) IsZero() bool { return m.Minor == 0 }

// Add returns m+o. Both must share a currency; callers validate that at the
// edge, so a mismatch here is a programming error and panics.
func (m Money) Add(o Money) Money {
	m.mustMatch(o)
	return Money{Minor: m.Minor + o.Minor, Currency: m.Currency}
}

// Sub returns m-o (same currency).
func (m Money) Sub(o Money) Money {
	m.mustMatch(o)
	return Money{Minor: m.Minor - o.Minor, Currency: m.Currency}
}

// Min returns the smaller of m and o (same currency).
func (m Money) Min(o Money) Money {
	m.mustMatch(o)
	if o.Minor < m.Minor {
		return o
	}
	return m
}

func (m Money) mustMatch(o Money) {
	if m.Currency != o.Currency && m.Currency != "" && o.Currency != "" {
		panic(fmt.Sprintf("claims: currency mismatch %s vs %s", m.Currency, o.Currency))
	}
}

// Zero returns zero in currency code.
func Zero(code string) Money { return Money{Currency: code} }
