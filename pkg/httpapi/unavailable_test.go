package httpapi_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// While the database is unreachable an upload is a 503 with Retry-After (it stored nothing,
// and the same request works once the database is back), not a 500.
func TestUploadWhileDatabaseDown(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		if !b.Real() {
			t.Log("SQLite is a file in this process: no connection to cut; covered on PostgreSQL")
			return
		}
		t.Parallel()
		ctx := context.Background()
		url := b.DatabaseURL(t)
		proxy := testenv.NewProxy(t, "127.0.0.1:5432")
		st, err := store.Open(ctx, proxy.URL(t, url), testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		f := newAuthFixture(t, b, fixtureOptions{limits: defaultLimits, store: st})
		upload := func() *httpResult {
			body, ctype := multipartBody(t, []part{{"files", "r.xml", []byte("<feedback/>")}})
			rec := f.do(t, http.MethodPost, "/api/upload", body, ctype)
			return &httpResult{rec.Code, rec.Header().Get("Retry-After"), rec.Body.String()}
		}
		proxy.Cut()
		got := upload()
		if got.code != http.StatusServiceUnavailable || got.retryAfter != strconv.Itoa(httpapi.RetryAfterUnavailable) {
			t.Fatalf("upload with the database down: %d Retry-After %q %s, want 503 with Retry-After", got.code, got.retryAfter, got.body)
		}
		proxy.Restore(t)
		if got := upload(); got.code != http.StatusAccepted {
			t.Fatalf("upload once the database is back: %d %s", got.code, got.body)
		}
	})
}

type httpResult struct {
	code       int
	retryAfter string
	body       string
}
