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
	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apidocs"
	"github.com/vigilhq/vigil/pkg/digest"
	"github.com/vigilhq/vigil/pkg/enrich"
	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/failure"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/pkg/metrics"
	"github.com/vigilhq/vigil/pkg/ml"
	"github.com/vigilhq/vigil/pkg/notify"
	"github.com/vigilhq/vigil/pkg/reports"
	"github.com/vigilhq/vigil/pkg/retention"
	"github.com/vigilhq/vigil/pkg/senders"
	"github.com/vigilhq/vigil/pkg/tlsrpt"
	"github.com/vigilhq/vigil/pkg/web"
)

// openAPISpec is the base description of the API: the shared components, the routes pkg/httpapi
// serves itself, and those of the first resources (reports, accounts, mailboxes), whose handlers
// are in pkg/reports, pkg/accounts and pkg/mailpoll while their paths stay here (the guard's
// shared responses are taken from this document). Feature packages own a fragment each (specFragments) that is merged into
// it, so a capability documents its routes next to its handlers. TestOpenAPIMatchesRoutes keeps
// the merged document equal to the route table.
//
//go:embed openapi.json
var openAPISpec []byte

// specFragments lists the OpenAPI fragments of the feature packages, each a JSON object with
// "paths" and optionally "components" (schemas, parameters, responses, headers). A feature
// adds its fragment here when it registers its routes in table().
func specFragments() [][]byte {
	return [][]byte{analytics.OpenAPI, reports.OpenAPI, mailpoll.OpenAPI, web.OpenAPI, enrich.OpenAPI, senders.OpenAPI, alerting.OpenAPI, notify.OpenAPI, tlsrpt.OpenAPI, failure.OpenAPI, ml.OpenAPI,
		apidocs.OpenAPI, metrics.OpenAPI, retention.OpenAPI,
		export.OpenAPI, digest.OpenAPI}
}

// spec is the merged document, built once: the inputs are embedded, so the result never
// changes while the process runs.
var spec = sync.OnceValues(func() ([]byte, error) { return mergeSpec(openAPISpec, specFragments()...) })

// Spec is the served OpenAPI document: the base merged with every fragment.
func Spec() ([]byte, error) { return spec() }

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
	shared := sharedResponses(doc)
	addSharedResponses(doc["paths"], shared)
	for i, raw := range frags {
		var f map[string]any
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("openapi fragment %d: %w", i, err)
		}
		nullable30(f)
		addSharedResponses(f["paths"], shared)
		if err := mergePaths(doc, f["paths"], i); err != nil {
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

// nullable30 rewrites OpenAPI 3.1 nullable types in a fragment ("type": ["string", "null"])
// as the 3.0 document says them ("type": "string", "nullable": true): the served document is
// 3.0.3, which every common client generator and validator reads, and a fragment written for
// 3.1 would otherwise make it invalid.
func nullable30(v any) {
	switch x := v.(type) {
	case map[string]any:
		if ts, ok := x["type"].([]any); ok {
			var rest []any
			for _, t := range ts {
				if t == "null" {
					x["nullable"] = true
				} else {
					rest = append(rest, t)
				}
			}
			if len(rest) == 1 {
				x["type"] = rest[0]
			} else {
				x["type"] = rest
			}
		}
		for _, e := range x {
			nullable30(e)
		}
	case []any:
		for _, e := range x {
			nullable30(e)
		}
	}
}

// mergePaths adds a fragment's paths to doc. A path may be shared, each owner documenting its
// own methods (GET /api/reports/{id} in the base, DELETE in pkg/retention); a method defined
// twice is an error.
func mergePaths(doc map[string]any, src any, frag int) error {
	paths, _ := doc["paths"].(map[string]any)
	if paths == nil {
		paths = map[string]any{}
		doc["paths"] = paths
	}
	m, _ := src.(map[string]any)
	for p, v := range m {
		have, _ := paths[p].(map[string]any)
		if have == nil {
			paths[p] = v
			continue
		}
		if err := mergeInto(paths, p, v, fmt.Sprintf("fragment %d path %s method", frag, p)); err != nil {
			return err
		}
	}
	return nil
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

// guardStatuses are the answers the shared guard and error handler give on any route, whatever
// its feature does: a bad or unknown parameter, no or weak credentials, a rate limit, a
// dependency down. Public routes cannot answer 401 or 403.
var guardStatuses = []string{"400", "401", "403", "429", "503"}

// sharedResponses takes, for each guard status, the base document's description of it (the
// first operation in path order that documents it), so fragments inherit one wording and the
// same headers (Retry-After, WWW-Authenticate).
func sharedResponses(doc map[string]any) map[string]any {
	out := map[string]any{}
	paths, _ := doc["paths"].(map[string]any)
	names := make([]string, 0, len(paths))
	for p := range paths {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		ops, _ := paths[p].(map[string]any)
		for _, m := range []string{"get", "post", "patch", "put", "delete"} {
			op, _ := ops[m].(map[string]any)
			rs, _ := op["responses"].(map[string]any)
			for _, st := range guardStatuses {
				if _, have := out[st]; !have && rs[st] != nil {
					out[st] = rs[st]
				}
			}
		}
	}
	return out
}

// addSharedResponses documents on every fragment operation the guard's statuses it does not
// describe itself: a feature documents what its handlers answer, the shared guard what it adds.
func addSharedResponses(paths any, shared map[string]any) {
	ps, _ := paths.(map[string]any)
	for _, item := range ps {
		ops, _ := item.(map[string]any)
		for _, v := range ops {
			op, ok := v.(map[string]any)
			if !ok {
				continue
			}
			rs, _ := op["responses"].(map[string]any)
			if rs == nil {
				continue
			}
			public := op["x-vigil-min-role"] == "public" || op["security"] != nil && len(op["security"].([]any)) == 0
			for _, st := range guardStatuses {
				if rs[st] != nil || shared[st] == nil || public && (st == "401" || st == "403") {
					continue
				}
				rs[st] = shared[st]
			}
		}
	}
}
