package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPICoversRoutes fails when a route is registered without an
// entry in the OpenAPI document, or the document names a route that
// doesn't exist.
func TestOpenAPICoversRoutes(t *testing.T) {
	h := New(nil, slog.New(slog.DiscardHandler), nil, nil)
	h.Register(http.NewServeMux())
	doc := h.Document()
	paths := doc["paths"].(map[string]map[string]any)
	registered := map[string]bool{}
	for _, r := range h.routes {
		key := r.method + " " + r.path
		registered[key] = true
		if _, ok := operations[key]; !ok {
			t.Errorf("route %s has no OpenAPI description (add it to operations in openapi.go)", key)
			continue
		}
		if _, ok := paths[r.path][map[string]string{"GET": "get", "POST": "post", "PUT": "put", "PATCH": "patch", "DELETE": "delete"}[r.method]]; !ok {
			t.Errorf("route %s missing from the document's paths", key)
		}
	}
	for key := range operations {
		if !registered[key] {
			t.Errorf("OpenAPI describes %s, which is not a route", key)
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["openapi"] != "3.1.0" {
		t.Fatalf("document does not round-trip: %v", err)
	}
	// Every $ref resolves.
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				name := ref[len("#/components/schemas/"):]
				if _, ok := schemas[name]; !ok {
					t.Errorf("dangling $ref %s", ref)
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		case map[string]map[string]any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(back)
}

// TestOpenAPIPathParameters: every {param} in a path is declared.
func TestOpenAPIPathParameters(t *testing.T) {
	h := New(nil, slog.New(slog.DiscardHandler), nil, nil)
	h.Register(http.NewServeMux())
	for path, item := range h.Document()["paths"].(map[string]map[string]any) {
		for _, op := range item {
			declared := map[string]bool{}
			params, _ := op.(map[string]any)["parameters"].([]any)
			for _, p := range params {
				if m := p.(map[string]any); m["in"] == "path" {
					declared[m["name"].(string)] = true
				}
			}
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") && !declared[strings.Trim(seg, "{}")] {
					t.Errorf("%s: path parameter %s not declared", path, seg)
				}
			}
		}
	}
}
