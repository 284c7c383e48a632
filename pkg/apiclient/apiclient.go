// Package apiclient is a typed Go client for Vigil's REST API, generated from the served
// OpenAPI document (openapi.json here is a copy of it) by oapi-codegen. It exists so the
// document is proven usable by a generator and so end-to-end tests can call the API the way an
// outside Go client would. Regenerate with `make generate` after changing the API description;
// TestGeneratedFromServedSpec fails while the copy is stale.
package apiclient

//go:generate go run ./internal/dumpspec openapi.json
//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml openapi.json
