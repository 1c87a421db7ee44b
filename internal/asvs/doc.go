// Package asvs holds only a test: asvs_test.go checks that docs/asvs.md
// traces every OWASP ASVS 5.0.0 level-1 and level-2 requirement listed in
// docs/standards/asvs-5.0.0-en.csv, that every row has a valid status, and
// that every test a row cites as proof exists in the repository. There is
// no production code here.
package asvs
