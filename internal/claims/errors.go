package claims

import (
	"errors"
	"fmt"
	"strings"
)

// Kind says what went wrong in terms a caller can act on. Internal is the
// zero value: an error nobody classified is a bug, logged in full and shown to
// the user only as "Internal error.".
type Kind uint8

// Kinds of error. Values are stable; append only.
const (
	Internal             Kind = iota
	Invalid                   // bad input; Message (and Fields) say what to fix
	NotFound                  // no such object, or the user may not know it exists
	Conflict                  // valid request, but the object's state forbids it
	Unauthenticated           // not signed in, or credentials not accepted
	Forbidden                 // signed in, not allowed
	PreconditionFailed        // the object changed since the client read it (If-Match)
	TooLarge                  // a body or file over its limit
	UnsupportedMedia          // a content type we refuse
	RateLimited               // too many requests
	PreconditionRequired      // a write that must carry If-Match did not
)

var kindNames = [...]string{"internal", "invalid", "not_found", "conflict", "unauthenticated",
	"forbidden", "precondition_failed", "too_large", "unsupported_media", "rate_limited", "precondition_required"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// FieldError names one input field and the rule it broke. Field is a JSON
// pointer-like path as the client sent it ("lines[2].amount").
type FieldError struct {
	Field   string
	Rule    string // machine-readable: required, max_length, positive, not_future, ...
	Message string // for people
}

// Error is a classified error. Message is written for the end user and, with
// Fields and Extra, is the only thing that ever leaves the server; Err is the
// cause, for the logs.
type Error struct {
	Kind    Kind
	Message string
	Fields  []FieldError
	// Extra holds additional problem members, e.g. the allowed transitions
	// of a 409. Values must be safe to show to the requester.
	Extra map[string]any
	Err   error
}

// Errorf returns an *Error of kind k with a user-facing message.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies err as kind k with a user-facing message, keeping err as
// the logged cause.
func Wrap(k Kind, err error, message string) *Error {
	return &Error{Kind: k, Message: message, Err: err}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	for _, f := range e.Fields {
		fmt.Fprintf(&b, " [%s: %s]", f.Field, f.Rule)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return Internal
}

// MessageOf returns the text that may be shown to the user for err.
func MessageOf(err error) string {
	if e, ok := errors.AsType[*Error](err); ok && e.Kind != Internal {
		return e.Message
	}
	return "Internal error."
}

// Validation collects field errors so a client learns every problem at once.
type Validation struct {
	fields []FieldError
}

// Add records that field broke rule.
func (v *Validation) Add(field, rule, format string, args ...any) {
	v.fields = append(v.fields, FieldError{Field: field, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// Check records a field error when ok is false.
func (v *Validation) Check(ok bool, field, rule, format string, args ...any) {
	if !ok {
		v.Add(field, rule, format, args...)
	}
}

// Merge appends the field errors of err (an *Error of kind Invalid) under
// prefix, and reports whether err was such an error. Other errors are left
// for the caller.
func (v *Validation) Merge(prefix string, err error) bool {
	e, ok := errors.AsType[*Error](err)
	if !ok || e.Kind != Invalid {
		return false
	}
	if len(e.Fields) == 0 {
		v.Add(prefix, "invalid", "%s", e.Message)
		return true
	}
	for _, f := range e.Fields {
		if prefix != "" {
			if f.Field == "" {
				f.Field = prefix
			} else {
				f.Field = prefix + "." + f.Field
			}
		}
		v.fields = append(v.fields, f)
	}
	return true
}

// Err returns nil when nothing was recorded, else an Invalid *Error listing
// every field.
func (v *Validation) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	msg := "The request has invalid fields."
	if len(v.fields) == 1 {
		msg = v.fields[0].Message
	}
	return &Error{Kind: Invalid, Message: msg, Fields: v.fields}
}

// InvalidField returns an Invalid error about one field.
func InvalidField(field, rule, format string, args ...any) *Error {
	var v Validation
	v.Add(field, rule, format, args...)
	return v.Err().(*Error)
}
