package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMergeSpec(t *testing.T) {
	t.Parallel()
	base := []byte(`{"openapi":"3.1.0","paths":{"/a":{"get":{}}},"components":{"schemas":{"A":{"type":"object"}}}}`)
	tests := []struct {
		name     string
		frags    []string
		paths    []string
		schemas  []string
		err      string
		contains string
	}{
		{name: "none", paths: []string{"/a"}, schemas: []string{"A"}},
		{name: "adds paths and schemas", frags: []string{`{"paths":{"/b":{"get":{}}},"components":{"schemas":{"B":{}},"parameters":{"p":{}}}}`},
			paths: []string{"/a", "/b"}, schemas: []string{"A", "B"}},
		{name: "a path's other method", frags: []string{`{"paths":{"/a":{"delete":{}}}}`}, paths: []string{"/a"}, schemas: []string{"A"},
			contains: `"delete": {}`},
		{name: "duplicate method", frags: []string{`{"paths":{"/a":{"get":{}}}}`}, err: `path /a method "get" is defined twice`},
		{name: "duplicate schema across fragments", frags: []string{`{"components":{"schemas":{"C":{}}}}`, `{"components":{"schemas":{"C":{}}}}`},
			err: `component schemas "C" is defined twice`},
		{name: "bad fragment", frags: []string{`{`}, err: "fragment 0"},
		{name: "3.1 nullable types become 3.0", frags: []string{`{"components":{"schemas":{"N":{"type":"object","properties":{"a":{"type":["string","null"]}}}}}}`},
			paths: []string{"/a"}, schemas: []string{"A", "N"}, contains: `"a": {
      "nullable": true,
      "type": "string"
     }`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var frags [][]byte
			for _, f := range tc.frags {
				frags = append(frags, []byte(f))
			}
			out, err := mergeSpec(base, frags...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Paths      map[string]any `json:"paths"`
				Components struct {
					Schemas map[string]any `json:"schemas"`
				} `json:"components"`
			}
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.paths {
				if doc.Paths[p] == nil {
					t.Errorf("path %s missing from %s", p, out)
				}
			}
			if !strings.Contains(string(out), tc.contains) {
				t.Errorf("merged document lacks %s:\n%s", tc.contains, out)
			}
			if len(doc.Paths) != len(tc.paths) || len(doc.Components.Schemas) != len(tc.schemas) {
				t.Errorf("got %d paths and %d schemas, want %d and %d", len(doc.Paths), len(doc.Components.Schemas), len(tc.paths), len(tc.schemas))
			}
		})
	}
}

// The embedded base and every feature fragment merge without a clash.
func TestServedSpecMerges(t *testing.T) {
	t.Parallel()
	if _, err := spec(); err != nil {
		t.Fatal(err)
	}
}

// TestEveryBodyTyped walks the served document: every JSON request and response body of every
// operation has a schema a generated client can type (properties, typed additional properties,
// a composition, or a scalar), never a bare or empty `object`, so clients generated from
// /openapi.json get typed bodies for every operation.
func TestEveryBodyTyped(t *testing.T) {
	t.Parallel()
	b, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var untyped func(s map[string]any, depth int) bool
	untyped = func(s map[string]any, depth int) bool {
		if ref, ok := s["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/components/schemas/")
			target, ok := doc.Components.Schemas[name]
			return !ok || depth > 20 || untyped(target, depth+1)
		}
		for _, k := range []string{"allOf", "oneOf", "anyOf"} {
			if _, ok := s[k]; ok {
				return false
			}
		}
		switch s["type"] {
		case nil:
			return true
		case "object":
			props, _ := s["properties"].(map[string]any)
			extra, _ := s["additionalProperties"].(map[string]any)
			return len(props) == 0 && (extra == nil || untyped(extra, depth+1))
		case "array":
			items, _ := s["items"].(map[string]any)
			return items == nil || untyped(items, depth+1)
		}
		return false
	}
	type content map[string]struct {
		Schema map[string]any `json:"schema"`
	}
	checked := 0
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				RequestBody struct {
					Content content `json:"content"`
				} `json:"requestBody"`
				Responses map[string]struct {
					Content content `json:"content"`
				} `json:"responses"`
			}
			if json.Unmarshal(raw, &op) != nil {
				continue // parameters and other non-operation entries
			}
			check := func(where string, c content) {
				for ct, m := range c {
					if !strings.Contains(ct, "json") {
						continue // files, CSV, HTML: bytes by nature
					}
					checked++
					if untyped(m.Schema, 0) {
						t.Errorf("%s %s %s %s: untyped body %v", strings.ToUpper(method), path, where, ct, m.Schema)
					}
				}
			}
			check("request", op.RequestBody.Content)
			for status, r := range op.Responses {
				check(status, r.Content)
			}
		}
	}
	if checked < 200 {
		t.Errorf("checked only %d JSON bodies: the walk misses operations", checked)
	}
	t.Logf("%d JSON bodies typed", checked)
}
