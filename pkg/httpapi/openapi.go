package httpapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/notify"
)

// openAPISpec is the base description of the API: the routes pkg/httpapi serves itself and the
// shared components. Feature packages own a fragment each (specFragments) that is merged into
// it, so a capability documents its routes next to its handlers. TestOpenAPIMatchesRoutes keeps
// the merged document equal to the route table.
//
//go:embed openapi.json
var openAPISpec []byte

// specFragments lists the OpenAPI fragments of the feature packages, each a JSON object with
// "paths" and optionally "components" (schemas, parameters, responses, headers). A feature
// adds its fragment here when it registers its routes in table().
func specFragments() [][]byte {
	return [][]byte{alerting.OpenAPI, notify.OpenAPI}
}

// spec is the merged document, built once: the inputs are embedded, so the result never
// changes while the process runs.
var spec = sync.OnceValues(func() ([]byte, error) { return mergeSpec(openAPISpec, specFragments()...) })

func (a *API) openAPI(c echo.Context) error {
	b, err := spec()
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// mergeSpec adds each fragment's paths and components to base. A path, or a component of the
// same kind and name, defined twice is an error: two packages would otherwise silently
// disagree about the contract.
func mergeSpec(base []byte, frags ...[]byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, fmt.Errorf("openapi base: %w", err)
	}
	for i, raw := range frags {
		var f map[string]any
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("openapi fragment %d: %w", i, err)
		}
		if err := mergeInto(doc, "paths", f["paths"], fmt.Sprintf("fragment %d path", i)); err != nil {
			return nil, err
		}
		comps, _ := f["components"].(map[string]any)
		kinds := make([]string, 0, len(comps))
		for k := range comps {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, kind := range kinds {
			dc, _ := doc["components"].(map[string]any)
			if dc == nil {
				dc = map[string]any{}
				doc["components"] = dc
			}
			if err := mergeInto(dc, kind, comps[kind], fmt.Sprintf("fragment %d component %s", i, kind)); err != nil {
				return nil, err
			}
		}
		if tags, ok := f["tags"].([]any); ok {
			dt, _ := doc["tags"].([]any)
			doc["tags"] = append(dt, tags...)
		}
	}
	return json.MarshalIndent(doc, "", " ")
}

func mergeInto(dst map[string]any, key string, src any, what string) error {
	m, _ := src.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	d, _ := dst[key].(map[string]any)
	if d == nil {
		d = map[string]any{}
		dst[key] = d
	}
	for k, v := range m {
		if _, dup := d[k]; dup {
			return fmt.Errorf("openapi: %s %q is defined twice", what, k)
		}
		d[k] = v
	}
	return nil
}
