package apicontract_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/apicontract"
	"github.com/vigilhq/vigil/pkg/httpapi"
)

// The validator accepts what the document allows and refuses the rest: a missing required
// field, a wrong type, an undocumented status, a bad problem.
func TestCheck(t *testing.T) {
	t.Parallel()
	spec, err := httpapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	v, err := apicontract.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	jsonH := http.Header{"Content-Type": {"application/json"}}
	probH := http.Header{"Content-Type": {"application/problem+json"}}
	problem := `{"type":"tag:vigilhq.github.io,2026:problem:not-found","title":"Not Found","status":404,"detail":"x"}`
	cases := []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		err                string // "" when valid
	}{
		{"health", "GET", "/health", 200, jsonH, `{"status":"ok"}`, ""},
		{"health with an unknown status", "GET", "/health", 200, jsonH, `{"status":"fine"}`, "status"},
		{"undocumented status", "GET", "/health", 418, jsonH, `{"status":"ok"}`, "418"},
		{"task status", "GET", "/tasks/status/ingest:requeue:1", 200, jsonH, `{"task_id":"a","type":"ingest:requeue","queue":"ingest","state":"completed","retried":0,"max_retry":3,
			"last_error":"","last_failed_at":null,"next_process_at":null,"completed_at":"2026-01-01T00:00:00Z","result":{"enqueued":3,"reset":2}}`, ""},
		{"task result of neither kind", "GET", "/tasks/status/ingest:requeue:1", 200, jsonH, `{"task_id":"a","type":"ingest:requeue","queue":"ingest","state":"completed","retried":0,"max_retry":3,
			"last_error":"","last_failed_at":null,"next_process_at":null,"completed_at":"2026-01-01T00:00:00Z","result":{"requeued":3}}`, "result"},
		{"missing required field", "GET", "/tasks/status/x", 200, jsonH, `{"task_id":"a"}`, "type"},
		{"problem", "GET", "/api/reports/9", 404, probH, problem, ""},
		{"problem of an unknown type", "GET", "/api/reports/9", 404, probH, strings.Replace(problem, "not-found", "gone", 1), "type"},
		{"no route: a problem", "GET", "/nowhere", 404, probH, problem, ""},
		{"no route: not a problem", "GET", "/nowhere", 404, jsonH, `{}`, "problem+json"},
		{"no route answered 200", "GET", "/nowhere", 200, jsonH, `{}`, "no documented operation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, tc.path, nil)
			err := v.Check(req, tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("want valid, got %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("want an error mentioning %q, got %v", tc.err, err)
			}
		})
	}
}
