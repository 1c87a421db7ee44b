// Package web is the HTTP edge shared by every route: the one error
// responder (RFC 9457 problem details), JSON decoding with limits,
// middleware for request ids, security headers, client addresses behind
// trusted proxies, panics and access logs, and the principal in the request
// context.
//
// It holds no business rule and no route of its own: web/api registers the
// routes.
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/openclaims/claims/internal/claims"
)

// HandlerFunc is an http.HandlerFunc that returns an error instead of
// writing an error response itself.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

var statusOf = map[claims.Kind]int{ // Internal is absent: it becomes 500
	claims.Invalid:              http.StatusBadRequest,
	claims.NotFound:             http.StatusNotFound,
	claims.Conflict:             http.StatusConflict,
	claims.Unauthenticated:      http.StatusUnauthorized,
	claims.Forbidden:            http.StatusForbidden,
	claims.PreconditionFailed:   http.StatusPreconditionFailed,
	claims.TooLarge:             http.StatusRequestEntityTooLarge,
	claims.UnsupportedMedia:     http.StatusUnsupportedMediaType,
	claims.RateLimited:          http.StatusTooManyRequests,
	claims.PreconditionRequired: http.StatusPreconditionRequired,
}

var titles = map[claims.Kind]string{
	claims.Internal:             "Internal error",
	claims.Invalid:              "Invalid request",
	claims.NotFound:             "Not found",
	claims.Conflict:             "Conflict",
	claims.Unauthenticated:      "Authentication required",
	claims.Forbidden:            "Forbidden",
	claims.PreconditionFailed:   "Precondition failed",
	claims.TooLarge:             "Too large",
	claims.UnsupportedMedia:     "Unsupported media type",
	claims.RateLimited:          "Too many requests",
	claims.PreconditionRequired: "Precondition required",
}

// ProblemType returns the problem type URI of kind k.
func ProblemType(k claims.Kind) string { return "urn:claims:problem:" + k.String() }

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail"`
	Instance  string         `json:"instance,omitempty"`
	RequestID string         `json:"requestId,omitempty"`
	Errors    []ProblemField `json:"errors,omitempty"`
	Allowed   []string       `json:"allowed,omitempty"`
	Current   string         `json:"status_current,omitempty"`
}

// ProblemField names one invalid field and the rule it broke.
type ProblemField struct {
	Field  string `json:"field"`
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

// Handle adapts h to http.Handler, turning a returned error into a problem
// response. Internal errors are logged with the request and answered with a
// generic message: causes never reach the client.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setLogRoute(r.Context(), r.Pattern)
		if err := h(w, r); err != nil {
			WriteError(log, w, r, err)
		}
	})
}

// WriteError writes err as a problem response.
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	kind := claims.KindOf(err)
	status, ok := statusOf[kind]
	if !ok {
		status = http.StatusInternalServerError
		if !errors.Is(err, context.Canceled) {
			log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
				"request_id", RequestID(r.Context()), "err", err)
		}
	}
	p := Problem{Type: ProblemType(kind), Title: titles[kind], Status: status, Detail: claims.MessageOf(err),
		Instance: r.URL.Path, RequestID: RequestID(r.Context())}
	if e, ok := errors.AsType[*claims.Error](err); ok && kind != claims.Internal {
		for _, f := range e.Fields {
			p.Errors = append(p.Errors, ProblemField{Field: f.Field, Rule: f.Rule, Detail: f.Message})
		}
		if a, ok := e.Extra["allowed"].([]string); ok {
			p.Allowed = a
			if a == nil {
				p.Allowed = []string{}
			}
		}
		if s, ok := e.Extra["status"].(string); ok {
			p.Current = s
		}
	}
	if e, ok := errors.AsType[*claims.Error](err); ok {
		if secs, ok := e.Extra["retry_after"].(int); ok {
			w.Header().Set("Retry-After", fmt.Sprint(secs))
		}
	}
	if kind == claims.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="claims"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(true) // stored text is returned as given, escaped for any HTML context
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := buf.WriteTo(w)
	return err
}

// MaxJSONBody bounds JSON request bodies; MaxJSONDepth bounds nesting.
const (
	MaxJSONBody  = 1 << 20
	MaxJSONDepth = 16
)

// DecodeJSON reads one JSON object from r into v: the content type must be
// JSON, the body at most MaxJSONBody, nesting at most MaxJSONDepth, and
// unknown fields are refused, each with a problem naming the field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" {
		return &claims.Error{Kind: claims.UnsupportedMedia, Message: "The request body must be application/json."}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return claims.Errorf(claims.TooLarge, "The request body is larger than %d bytes.", MaxJSONBody)
		}
		return claims.Wrap(claims.Invalid, err, "The request body could not be read.")
	}
	if d := depth(body); d > MaxJSONDepth {
		return claims.InvalidField("", "max_depth", "The JSON is nested deeper than %d levels.", MaxJSONDepth)
	}
	if key := duplicateKey(body); key != "" {
		// encoding/json keeps the last of two equal keys; another parser
		// (a proxy, a WAF) may keep the first. Refuse the ambiguity.
		return claims.InvalidField(key, "duplicate_key", "%s appears more than once.", key)
	}
	if key := caseVariantKey(body, v); key != "" {
		// encoding/json matches field names case-insensitively (and folds
		// ſ to s): "AMOUNT" would set amount. Another parser in front of us
		// would read it differently; only exact names are accepted.
		return claims.InvalidField(key, "unknown_field", "%s is not a field of this request (field names are case-sensitive).", key)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return claims.InvalidField("", "single_value", "The body must hold exactly one JSON value.")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn  *json.SyntaxError
		typ  *json.UnmarshalTypeError
		text interface{ Error() string }
	)
	switch {
	case errors.As(err, &syn):
		return claims.InvalidField("", "syntax", "The body is not valid JSON (at byte %d).", syn.Offset)
	case errors.As(err, &typ):
		return claims.InvalidField(typ.Field, "type", "%s must be a %s.", orBody(typ.Field), jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return claims.InvalidField(f, "unknown_field", "%s is not a field of this request.", f)
	case errors.Is(err, io.EOF):
		return claims.InvalidField("", "required", "The request body is empty.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return claims.InvalidField("", "syntax", "The body is not valid JSON (it ends too early).")
	case errors.As(err, &text):
		// Errors from UnmarshalText of our types (dates, money) say what
		// was wrong with the value but not where; name it as the body.
		return claims.InvalidField("", "format", "%s", err.Error())
	}
	return claims.Wrap(claims.Invalid, err, "The body could not be decoded.")
}

func orBody(f string) string {
	if f == "" {
		return "The body"
	}
	return f
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "struct", "map":
		return "JSON object"
	case "slice", "array":
		return "JSON array"
	case "bool":
		return "boolean"
	}
	return "number"
}

// depth returns the maximum nesting of objects and arrays in a JSON text.
func depth(b []byte) int {
	d, max, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			d++
			if d > max {
				max = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return max
}

// duplicateKey returns the first object key that appears twice in the same
// object of a JSON text (already checked for depth), or "".
func duplicateKey(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		obj     bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "" // syntax errors are reported by the real decode
		}
		top := func() *frame {
			if len(stack) == 0 {
				return nil
			}
			return stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if f := top(); f != nil && f.obj {
					f.wantKey = true
				}
				stack = append(stack, &frame{obj: t == '{', keys: map[string]bool{}, wantKey: t == '{'})
				continue
			case '}', ']':
				stack = stack[:len(stack)-1]
				if f := top(); f != nil && f.obj {
					f.wantKey = true
				}
				continue
			}
		case string:
			if f := top(); f != nil && f.obj && f.wantKey {
				if f.keys[t] {
					return t
				}
				f.keys[t] = true
				f.wantKey = false
				continue
			}
		}
		if f := top(); f != nil && f.obj {
			f.wantKey = true
		}
	}
}

// caseVariantKey returns the first object key in b that isn't one of v's
// JSON field names but equals one when case is folded, or "".
func caseVariantKey(b []byte, v any) string {
	names := map[string]bool{}
	jsonNames(reflect.TypeOf(v), names, 0)
	found := ""
	eachKey(b, func(key string) bool {
		if names[key] {
			return true
		}
		for name := range names {
			if strings.EqualFold(name, key) {
				found = key
				return false
			}
		}
		return true
	})
	return found
}

// eachKey calls fn with every object key of a JSON text, in order, until fn
// returns false. Syntax errors end the walk (the real decode reports them).
func eachKey(b []byte, fn func(key string) bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct{ obj, wantKey bool }
	var stack []*frame
	top := func() *frame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if f := top(); f != nil && f.obj {
					f.wantKey = true // this container was a value
				}
				stack = append(stack, &frame{obj: d == '{', wantKey: d == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			continue
		}
		f := top()
		if f == nil || !f.obj {
			continue
		}
		if f.wantKey {
			if key, ok := tok.(string); ok && !fn(key) {
				return
			}
			f.wantKey = false
		} else {
			f.wantKey = true // a scalar value; the next token is a key
		}
	}
}

// jsonNames collects the JSON field names of t and of the structs it holds.
func jsonNames(t reflect.Type, out map[string]bool, depth int) {
	if t == nil || depth > 8 {
		return
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		jsonNames(t.Elem(), out, depth+1)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = f.Name
			}
			out[name] = true
			jsonNames(f.Type, out, depth+1)
		}
	}
}
