package analytics_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apicontract"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// The fixed clock of the tests: data ends on 2024-07-01, "now" is the afternoon before.
var (
	dataEnd = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	testNow = time.Date(2024, 6, 30, 15, 4, 5, 0, time.UTC)
)

// server is an API under test with the echo it is mounted on.
type server struct {
	e   *echo.Echo
	api *analytics.API
}

// newServer mounts the API on /api. Errors render as {"status", "detail"} like the real
// error handler's problem documents.
func newServer(st *store.Store, rdb redis.UniversalClient, now func() time.Time) *server {
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		status, detail := http.StatusInternalServerError, err.Error()
		if he, ok := err.(*echo.HTTPError); ok {
			status, detail = he.Code, fmt.Sprint(he.Message)
		}
		_ = c.JSON(status, map[string]any{"status": status, "detail": detail})
	}
	api := analytics.New(analytics.Deps{Store: st, Redis: rdb, Log: testenv.Logger(), Now: now})
	api.RegisterRoutes(e.Group("/api"))
	return &server{e: e, api: api}
}

// get answers path?params into out, failing the test on any status but 200.
func (s *server) get(t testing.TB, path string, params url.Values, out any) {
	t.Helper()
	if status := s.getRaw(t, path, params, out); status != http.StatusOK {
		t.Fatalf("%s?%s: status %d", path, params.Encode(), status)
	}
}

// getRaw answers path?params; the body, whatever the status, is decoded into out if set.
func (s *server) getRaw(t testing.TB, path string, params url.Values, out any) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil)
	rec := httptest.NewRecorder()
	s.e.ServeHTTP(rec, req)
	if rec.Code == http.StatusOK {
		// Every answer the tests see must be one the served /openapi.json allows. Errors are
		// rendered by this fixture, not the API's problem handler: pkg/httpapi checks those.
		v, err := contract()
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Check(req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Errorf("contract: %v", err)
		}
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s?%s: decode %s: %v", path, params.Encode(), rec.Body.String(), err)
		}
	}
	return rec.Code
}

var contract = sync.OnceValues(func() (*apicontract.Validator, error) {
	spec, err := httpapi.Spec()
	if err != nil {
		return nil, err
	}
	return apicontract.New(spec)
})

// ingestSeq keeps synthetic file names unique within a test binary.
var ingestSeq atomic.Int64

// save stores reports as one processed file and returns their ids.
func save(t testing.TB, st *store.Store, reps []store.Parsed) []int64 {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte(fmt.Sprintf("fixture-%d-%d", time.Now().UnixNano(), ingestSeq.Add(1))))
	ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "fixture.xml", Source: "test",
		Size: 1, ReceivedAt: dataEnd, Encoding: "identity", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := st.SaveParsed(ctx, ing.ID, reps)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(saved))
	for i, s := range saved {
		ids[i] = s.ReportID
	}
	return ids
}

func rec(ip string, count int64, disp, dkim, spf, headerFrom string) dmarc.Record {
	return dmarc.Record{SourceIP: netip.MustParseAddr(ip), Count: count, Disposition: disp, DKIM: dkim, SPF: spf, HeaderFrom: headerFrom}
}

func intp(n int) *int { return &n }

// quirks are reports that exercise the edges: lengths from zero to three years, empty reports,
// zero counts, unknown result values, subdomains under sp=, pct and t=y, IPv4-mapped input.
func quirks() []store.Parsed {
	d := time.Date(2024, 5, 10, 0, 0, 0, 0, time.UTC)
	mk := func(org, id, domain string, begin, end time.Time, pol dmarc.Policy, recs ...dmarc.Record) store.Parsed {
		pol.Domain = domain
		return store.Parsed{Header: &dmarc.Report{OrgName: org, ReportID: id, DateBegin: begin, DateEnd: end, Policy: pol}, Records: recs}
	}
	return []store.Parsed{
		mk("google.com", "q-hour", "acme0.example", d.Add(10*time.Hour), d.Add(11*time.Hour), dmarc.Policy{P: "reject"},
			rec("192.0.2.1", 7, "reject", "fail", "fail", "acme0.example"),
			rec("192.0.2.77", 3, "none", "pass", "fail", "acme0.example")),
		mk("Quirky Reporter", "q-3y", "acme0.example", time.Date(2021, 7, 1, 6, 0, 0, 0, time.UTC), time.Date(2024, 6, 30, 6, 0, 0, 0, time.UTC),
			dmarc.Policy{P: "quarantine", Pct: intp(50)},
			rec("192.0.2.1", 100000, "none", "fail", "fail", "acme0.example"),
			rec("2001:db8:4860:1::5", 5000, "quarantine", "fail", "pass", "acme0.example"),
			rec("2001:db8:4860:1::5", 33, "quarantine", "fail", "fail", "acme0.example")),
		mk("Quirky Reporter", "q-4d", "globex1.example", d, d.AddDate(0, 0, 4), dmarc.Policy{P: "reject", SP: "none", Testing: "y"},
			rec("::ffff:192.0.2.200", 41, "none", "fail", "fail", "news.globex1.example"),
			rec("192.0.2.200", 9, "quarantine", "fail", "fail", "globex1.example"),
			rec("198.51.100.9", 0, "reject", "fail", "fail", "globex1.example"),
			rec("203.0.113.5", 12, "", "", "temperror", "globex1.example")),
		// Addresses on the edges of the ranges the tests filter by.
		mk("Outlook.com", "q-edges", "umbrella3.example", d.AddDate(0, 0, 3), d.AddDate(0, 0, 4).Add(-time.Second), dmarc.Policy{P: "none"},
			rec("192.0.2.0", 2, "none", "pass", "pass", "umbrella3.example"),
			rec("192.0.2.255", 3, "none", "fail", "pass", "umbrella3.example"),
			rec("209.85.0.0", 5, "none", "pass", "fail", "umbrella3.example"),
			rec("209.85.255.255", 6, "none", "fail", "fail", "umbrella3.example"),
			rec("2001:db8:4860::", 7, "none", "pass", "pass", "umbrella3.example"),
			rec("2001:db8:4860:ffff:ffff:ffff:ffff:ffff", 8, "none", "fail", "fail", "umbrella3.example"),
			rec("0.0.0.0", 1, "none", "pass", "pass", "umbrella3.example"),
			rec("::", 1, "none", "fail", "pass", "umbrella3.example"),
			rec("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1, "none", "pass", "fail", "umbrella3.example")),
		mk("google.com", "q-empty", "globex1.example", d, d.Add(24*time.Hour-time.Second), dmarc.Policy{P: "none"}),
		mk("GOOGLE.COM ", "q-zero-length", "initech2.example", d.Add(5*time.Hour), d.Add(5*time.Hour), dmarc.Policy{},
			rec("2001:db8:a00::1", 4, "pass", "pass", "pass", "initech2.example")),
		mk("Mail.Ru", "q-month-edge", "initech2.example", time.Date(2024, 4, 30, 12, 0, 0, 0, time.UTC), time.Date(2024, 5, 2, 12, 0, 0, 0, time.UTC),
			dmarc.Policy{P: "quarantine"},
			rec("2001:db8:a00::1", 10, "quarantine", "fail", "fail", "initech2.example"),
			rec("192.0.2.1", 1, "none", "pass", "pass", "initech2.example")),
	}
}

// world is the test data set: synthetic reports over eight months (across a new year, so
// windows read year, month and day tables), plus the quirks, stored in a shuffled order
// (reports arrive late and out of order), 50 to a file.
func world(t testing.TB, st *store.Store, seed uint64, n int) (ids []int64) {
	t.Helper()
	g := synth.New(synth.Config{Seed: seed, Domains: 5, Sources: 150, Reporters: 6, Days: 240, End: dataEnd, Reports: n,
		RecordsPerReport: 5, MultiDayShare: 0.15, IPv6Share: 0.3})
	all := quirks()
	for {
		p, ok := g.Next()
		if !ok {
			break
		}
		all = append(all, p)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for start := 0; start < len(all); start += 50 {
		ids = append(ids, save(t, st, all[start:min(start+50, len(all))])...)
	}
	return ids
}

func newRollup(st *store.Store) *rollup.Rollup { return rollup.New(st, nil, testenv.Logger()) }
