// Package apicontract checks responses against the OpenAPI document the API serves, for tests:
// every answer an end-to-end test receives must be one the document allows (its status listed
// for the operation, its body valid against the schema, documented headers well-formed), so
// the document stays the exact contract clients generate code from. Production code does not
// import it.
package apicontract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Validator holds the parsed document and its router.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

var registerProblem sync.Once

// New parses spec (the served /openapi.json) and refuses one that is not a valid document.
func New(spec []byte) (*Validator, error) {
	registerProblem.Do(func() {
		// Problems are JSON; kin-openapi knows application/json only by name.
		openapi3filter.RegisterBodyDecoder("application/problem+json", openapi3filter.JSONBodyDecoder)
		// The dashboard's page and assets are documented as strings of their own types.
		for _, ct := range []string{"text/html", "text/javascript", "text/css", "image/svg+xml"} {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
		}
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("apicontract: load: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apicontract: the document is invalid: %w", err)
	}
	// The document's server is relative ("/"): match requests to any host.
	routed := *doc
	routed.Servers = nil
	r, err := legacy.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("apicontract: router: %w", err)
	}
	return &Validator{doc: doc, router: r}, nil
}

// Check validates one exchange: req as sent (its body is not read) and the response's status,
// headers and body. A request outside every documented path must have been answered with a
// problem document (404 or 405).
func (v *Validator) Check(req *http.Request, status int, header http.Header, body []byte) error {
	if strings.HasPrefix(req.URL.Path, "/monitoring") {
		return nil // Asynqmon's own UI, documented as one opaque operation
	}
	if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
		return nil // a CORS preflight, answered by the middleware for every path
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s: no documented operation, yet answered %d", req.Method, req.URL.Path, status)
		}
		return v.checkProblem(req, status, header, body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d %s: %w", req.Method, req.URL.Path, status, truncate(body), err)
	}
	return nil
}

// checkProblem validates a router error's body against the Problem schema.
func (v *Validator) checkProblem(req *http.Request, status int, header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("%s %s: %d with Content-Type %q, want application/problem+json", req.Method, req.URL.Path, status, ct)
	}
	ref := v.doc.Components.Schemas["Problem"]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("apicontract: no Problem schema")
	}
	var val any
	if err := jsonUnmarshal(body, &val); err != nil {
		return fmt.Errorf("%s %s: %d body is not JSON: %w", req.Method, req.URL.Path, status, err)
	}
	if err := ref.Value.VisitJSON(val); err != nil {
		return fmt.Errorf("%s %s: %d body %s is not a Problem: %w", req.Method, req.URL.Path, status, truncate(body), err)
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// Transport is an http.RoundTripper that validates every response it carries (for tests that
// call a real server); a response outside the contract fails through Fail.
type Transport struct {
	V    *Validator
	Base http.RoundTripper // nil: http.DefaultTransport
	Fail func(error)
}

// RoundTrip sends req and checks the answer, leaving its body readable.
func (t Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := t.V.Check(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Fail(err)
	}
	return resp, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
