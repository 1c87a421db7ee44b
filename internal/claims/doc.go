// Package claims is the domain of the claims system: policyholders, policies,
// claims and their line items, money, date-only values, the claim life cycle,
// adjudication rules and the one error type every layer speaks.
//
// It imports only the standard library and knows nothing of HTTP, SQL or
// encryption: those live in web, store and seal, which import this package.
// Domain types carry no JSON tags; web/api decides field by field what
// leaves the server.
package claims
