// Package openapicheck validates recorded HTTP responses against an
// OpenAPI 3.1 document: the route and status must be described, the media
// type must match, and the body must satisfy the schema. It implements the
// JSON Schema subset the claims document uses: type (one or a list, with
// "null"), properties, required, additionalProperties (false or a schema),
// items, enum, const, pattern, format (date, date-time) and $ref to
// #/components/schemas. Used by the contract tests.
package openapicheck

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Doc is a parsed OpenAPI document.
type Doc struct {
	paths   map[string]any
	schemas map[string]any
	mux     *http.ServeMux
}

// New parses doc (any value that marshals to an OpenAPI JSON document).
func New(doc any) (*Doc, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	d := &Doc{mux: http.NewServeMux()}
	d.paths, _ = m["paths"].(map[string]any)
	if c, ok := m["components"].(map[string]any); ok {
		d.schemas, _ = c["schemas"].(map[string]any)
	}
	for p, item := range d.paths {
		for method := range item.(map[string]any) {
			d.mux.Handle(strings.ToUpper(method)+" "+p, http.NotFoundHandler())
		}
	}
	return d, nil
}

// Route returns the documented pattern that serves method and URL path
// ("" when none does).
func (d *Doc) Route(method, path string) string {
	r, _ := http.NewRequest(method, "https://x"+path, nil)
	_, pattern := d.mux.Handler(r)
	_, p, _ := strings.Cut(pattern, " ")
	return p
}

// CheckResponse validates one response to method path (a URL path).
func (d *Doc) CheckResponse(method, path string, status int, contentType string, body []byte) error {
	route := d.Route(method, path)
	if route == "" {
		return fmt.Errorf("%s %s: no such route in the document", method, path)
	}
	op, _ := d.paths[route].(map[string]any)[strings.ToLower(method)].(map[string]any)
	responses, _ := op["responses"].(map[string]any)
	code := strconv.Itoa(status)
	resp, ok := responses[code].(map[string]any)
	if !ok {
		resp, ok = responses[code[:1]+"XX"].(map[string]any)
	}
	if !ok {
		resp, ok = responses["default"].(map[string]any)
	}
	if !ok {
		return fmt.Errorf("%s %s: status %d is not documented (documented: %s)", method, route, status, keys(responses))
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("%s %s %d: documented without a body, got %d bytes", method, route, status, len(body))
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	media, ok := content[mt].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s %d: content type %q not documented (documented: %s)", method, route, status, contentType, keys(content))
	}
	schema, ok := media["schema"]
	if !ok {
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%s %s %d: body is not JSON: %v", method, route, status, err)
	}
	var errs []string
	d.validate(schema, v, "$", &errs, 0)
	if len(errs) > 0 {
		return fmt.Errorf("%s %s %d: %s", method, route, status, strings.Join(errs, "; "))
	}
	return nil
}

// Validate checks v against the named component schema.
func (d *Doc) Validate(schemaName string, v any) []string {
	var errs []string
	d.validate(map[string]any{"$ref": "#/components/schemas/" + schemaName}, v, "$", &errs, 0)
	return errs
}

func keys(m map[string]any) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

var patterns struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}

func (d *Doc) validate(s any, v any, at string, errs *[]string, depth int) {
	fail := func(f string, a ...any) { *errs = append(*errs, at+": "+fmt.Sprintf(f, a...)) }
	if depth > 64 {
		fail("schema nests too deep")
		return
	}
	schema, ok := s.(map[string]any)
	if !ok {
		if b, ok := s.(bool); ok && !b {
			fail("not allowed")
		}
		return
	}
	if ref, ok := schema["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		target, found := d.schemas[name]
		if !ok || !found {
			fail("unresolvable $ref %s", ref)
			return
		}
		d.validate(target, v, at, errs, depth+1)
		return
	}
	if t, ok := schema["type"]; ok {
		var types []string
		switch x := t.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, y := range x {
				types = append(types, y.(string))
			}
		}
		match := false
		for _, ty := range types {
			if typeOK(ty, v) {
				match = true
			}
		}
		if !match {
			fail("want %s, got %s", strings.Join(types, " or "), jsonType(v))
			return
		}
	}
	if e, ok := schema["enum"].([]any); ok {
		found := false
		for _, x := range e {
			if fmt.Sprint(x) == fmt.Sprint(v) && jsonType(x) == jsonType(v) {
				found = true
			}
		}
		if !found {
			fail("%v is not one of %v", v, e)
		}
	}
	if c, ok := schema["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		fail("want %v, got %v", c, v)
	}
	if str, ok := v.(string); ok {
		if p, ok := schema["pattern"].(string); ok {
			patterns.Lock()
			re, ok := patterns.m[p]
			if !ok {
				if patterns.m == nil {
					patterns.m = map[string]*regexp.Regexp{}
				}
				re = regexp.MustCompile(p)
				patterns.m[p] = re
			}
			patterns.Unlock()
			if !re.MatchString(str) {
				fail("%q does not match %s", str, p)
			}
		}
		switch schema["format"] {
		case "date":
			if _, err := time.Parse("2006-01-02", str); err != nil {
				fail("%q is not a date (YYYY-MM-DD)", str)
			}
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				fail("%q is not an RFC 3339 date-time", str)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := schema["properties"].(map[string]any)
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := obj[r.(string)]; !ok {
					fail("required property %q missing", r)
				}
			}
		}
		for _, k := range sortedKeys(obj) {
			if ps, ok := props[k]; ok {
				d.validate(ps, obj[k], at+"."+k, errs, depth+1)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("property %q is not in the schema", k)
				}
			case map[string]any:
				d.validate(ap, obj[k], at+"."+k, errs, depth+1)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if items, ok := schema["items"]; ok {
			for i, x := range arr {
				d.validate(items, x, fmt.Sprintf("%s[%d]", at, i), errs, depth+1)
			}
		}
	}
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func typeOK(t string, v any) bool {
	switch t {
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "number":
		_, ok := v.(float64)
		return ok
	}
	return jsonType(v) == t
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
