package apiclient_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/vigilhq/vigil/pkg/httpapi"
)

// The client was generated from the document the server serves now: a change to the API
// description without `make generate` fails here, not in a client at run time.
func TestGeneratedFromServedSpec(t *testing.T) {
	t.Parallel()
	served, err := httpapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(served), bytes.TrimSpace(copied)) {
		t.Fatal("pkg/apiclient/openapi.json differs from the served /openapi.json: run make generate")
	}
}
