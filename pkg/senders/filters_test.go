package senders

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// TestEnrichmentFilters: sender, country and asn select the same sources on the rollup
// endpoints (pkg/analytics), the report list (pkg/store), /api/senders and the country map as
// the brute force over the raw records does; a source not enriched yet matches none.
func TestEnrichmentFilters(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		enr := world(t, st, 5)
		sv, err := New(st, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		now := dataEnd.Add(-9 * time.Hour)
		an := analytics.New(analytics.Deps{Store: st, Log: testenv.Logger(), Now: func() time.Time { return now }})
		api := NewAPI(sv, an)
		if _, err := sv.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		cat, err := sv.Catalog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e := echo.New()
		for _, r := range an.Routes() {
			e.Add(r.Method, r.Path, r.Handler)
		}
		raw := loadRaw(t, st)
		// match is the brute force's idea of a filter.
		type filter struct {
			query string
			f     store.Filter
			match func(e enrichRow, ok bool) bool
		}
		for _, tc := range []filter{
			{"country=de", store.Filter{Country: "DE"}, func(e enrichRow, ok bool) bool { return ok && e.country == "DE" }},
			{"asn=AS15169", store.Filter{ASN: 15169}, func(e enrichRow, ok bool) bool { return ok && e.asn == 15169 }},
			{"sender=google+workspace", store.Filter{Sender: "google workspace"}, func(e enrichRow, ok bool) bool {
				return ok && classify(cat, e.base, e.asn, e.org, e.residential).Sender == "Google Workspace"
			}},
			{"sender=amazon+ses&country=us", store.Filter{Sender: "amazon ses", Country: "US"}, func(e enrichRow, ok bool) bool {
				return ok && e.country == "US" && classify(cat, e.base, e.asn, e.org, e.residential).Sender == "Amazon SES"
			}},
		} {
			var messages, pass int64
			reports := map[int64]bool{}
			srcs := map[[16]byte]bool{}
			for _, r := range raw.reps {
				for _, rec := range raw.byRep[r.ID] {
					en, ok := enr[[16]byte(rec.IP)]
					if !tc.match(en, ok) {
						continue
					}
					reports[r.ID] = true
					if rec.Count > 0 {
						messages += rec.Count
						srcs[[16]byte(rec.IP)] = true
						if rec.DKIM == "pass" || rec.SPF == "pass" {
							pass += rec.Count
						}
					}
				}
			}
			if messages == 0 {
				t.Fatalf("%s: the fixture has no such source", tc.query)
			}
			var sum analytics.Summary
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/rollup/summary?"+tc.query, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", tc.query, rec.Code, rec.Body.String())
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &sum); err != nil {
				t.Fatal(err)
			}
			if sum.TotalMessages != messages || sum.DMARCPassMessages != pass || sum.Sources != int64(len(srcs)) || sum.TotalReports != int64(len(reports)) {
				t.Errorf("summary?%s: messages %d pass %d sources %d reports %d, want %d %d %d %d", tc.query, sum.TotalMessages, sum.DMARCPassMessages,
					sum.Sources, sum.TotalReports, messages, pass, len(srcs), len(reports))
			}
			_, total, err := st.ListReports(ctx, tc.f, store.Page{Number: 1, Size: 10})
			if err != nil {
				t.Fatal(err)
			}
			if total != int64(len(reports)) {
				t.Errorf("reports with %s: %d, want %d", tc.query, total, len(reports))
			}
			rows, err := api.Rows(ctx, tc.f, DimSender)
			if err != nil {
				t.Fatal(err)
			}
			var got int64
			for _, r := range rows {
				got += r.Messages
			}
			if got != messages {
				t.Errorf("/api/senders?%s sums %d messages, want %d", tc.query, got, messages)
			}
		}
	})
}

// TestFilterParameters: the new filters' values are checked like the others (400 naming the
// parameter), spelled freely where harmless.
func TestFilterParameters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query, bad string
		want       store.Filter
	}{
		{query: "country=de", want: store.Filter{Country: "DE"}},
		{query: "asn=as15169", want: store.Filter{ASN: 15169}},
		{query: "asn=4200000000", want: store.Filter{ASN: 4200000000}},
		{query: "sender=%20Google%20Workspace%20", want: store.Filter{Sender: "google workspace"}},
		{query: "country=DEU", bad: "country"},
		{query: "country=D1", bad: "country"},
		{query: "asn=0", bad: "asn"},
		{query: "asn=AS", bad: "asn"},
		{query: "asn=4294967296", bad: "asn"},
		{query: "asn=-1", bad: "asn"},
		{query: "sender=" + strings.Repeat("x", 101), bad: "sender"},
		{query: "sender=a%00b", bad: "sender"},
	} {
		c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/x?"+tc.query, nil), httptest.NewRecorder())
		f, err := apiFilter(c)
		if tc.bad != "" {
			he, ok := err.(*echo.HTTPError)
			if !ok || he.Code != http.StatusBadRequest || !strings.Contains(he.Message.(string), "parameter "+tc.bad+":") {
				t.Errorf("%s: %v, want a 400 naming %s", tc.query, err, tc.bad)
			}
			continue
		}
		if err != nil || f.Sender != tc.want.Sender || f.Country != tc.want.Country || f.ASN != tc.want.ASN {
			t.Errorf("%s: %+v %v, want %+v", tc.query, f, err, tc.want)
		}
	}
}

func apiFilter(c echo.Context) (store.Filter, error) { return apiparams.Filter(c, time.Now()) }
