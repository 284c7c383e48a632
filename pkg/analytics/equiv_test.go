package analytics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/retention"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// filterMatrix is the parameter sets every endpoint is checked under: each filter alone, the
// window shapes that exercise month and day tiers (open ends, month-aligned, mid-month, a
// single day, mid-day instants), and combinations, plus random ones.
func filterMatrix(rng *rand.Rand) []url.Values {
	v := func(kv ...string) url.Values {
		out := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	fixed := []url.Values{
		v(),
		v("days", "30"), v("days", "365"), v("days", "1"), v("days", "3660"),
		v("start", "2024-04-01"), v("start", "2024-04-17"), v("end", "2024-05-31"), v("end", "2024-05-14"),
		v("start", "2024-04-01", "end", "2024-05-31"), v("start", "2024-03-15", "end", "2024-06-10"),
		v("start", "2024-05-10", "end", "2024-05-10"), v("start", "2024-05-01T12:00:00Z", "end", "2024-05-12T06:00:00Z"),
		v("start", "2021-01-01", "end", "2021-12-31"), v("start", "2024-06-01", "end", "2024-06-05"),
		// Edges taken as whole months less the days outside (see planWindow).
		v("start", "2024-03-09", "end", "2024-06-21"), v("end", "2024-06-27"), v("start", "2024-02-03", "end", "2024-02-26"),
		// Across new year: whole years from year tables (source ranking and counting), less
		// or plus months and days; a trailing year ending late in its year.
		v("start", "2023-11-21", "end", "2024-11-20"), v("start", "2023-12-15", "end", "2024-01-20"),
		v("start", "2023-12-31", "end", "2024-01-01"), v("start", "2022-03-05", "end", "2024-05-20"),
		v("start", "2023-01-01"), v("end", "2023-12-31"), v("start", "2023-02-11"), v("start", "2024-01-01", "end", "2024-12-31"),
		v("start", "2023-11-04", "end", "2024-10-28", "domain", "acme0.example"),
		// Quarters and dekads (the narrow source families' other grains).
		v("start", "2023-10-01", "end", "2024-06-30"), v("start", "2023-12-05", "end", "2024-05-25"),
		v("start", "2024-02-11", "end", "2024-02-20"), v("start", "2024-01-21", "end", "2024-06-14", "spf_result", "fail"),
		v("domain", "acme0.example"), v("domain", "ACME0.example."), v("domain", "nobody.example"),
		v("org_name", "google.com"), v("org_name", " Quirky REPORTER "), v("org_name", "nobody"),
		v("dkim_result", "pass"), v("dkim_result", "fail"), v("spf_result", "fail"), v("disposition", "quarantine"),
		v("disposition", "pass"), v("dkim_result", "fail", "spf_result", "fail", "disposition", "none"),
		v("source_ip", "192.0.2.1"), v("source_ip", "::ffff:192.0.2.200"), v("source_ip", "2001:db8:4860:1::5"),
		v("source_ip_range", "192.0.2.0/24"), v("source_ip_range", "192.0.2.1/32"), v("source_ip_range", "0.0.0.0/0"),
		v("source_ip_range", "2001:db8:4860::/48"), v("source_ip_range", "2001:db8:4860:1::5/128"), v("source_ip_range", "::/0"),
		v("source_ip_range", "::ffff:192.0.2.0/120"), v("source_ip", "192.0.2.1", "source_ip_range", "192.0.2.0/24"),
		v("source_ip", "192.0.2.1", "source_ip_range", "10.0.0.0/8"),
		// One address with record filters: its own records' results decide, not the report's.
		v("source_ip", "192.0.2.1", "dkim_result", "pass"), v("source_ip", "2001:db8:4860:1::5", "spf_result", "pass"),
		v("source_ip_range", "192.0.2.1/32", "disposition", "reject", "start", "2024-05-01"),
		v("domain", "acme0.example", "days", "90", "dkim_result", "fail"),
		v("domain", "globex1.example", "org_name", "Quirky Reporter", "start", "2024-05-01"),
		v("org_name", "google.com", "source_ip_range", "192.0.2.0/24", "days", "100"),
		v("domain", "initech2.example", "source_ip", "2001:db8:a00::1", "start", "2024-04-30", "end", "2024-05-01"),
		v("source_ip_range", "209.85.0.0/16", "spf_result", "fail", "start", "2024-03-20"),
	}
	domains := []string{"", "", "acme0.example", "globex1.example", "initech2.example", "umbrella3.example"}
	orgs := []string{"", "", "", "google.com", "outlook.com", "yahoo"}
	ranges := []string{"", "", "", "", "209.85.0.0/16", "40.92.0.0/16", "2001:db8:4860::/48", "2a01:db8::/32", "198.51.100.0/24"}
	windows := [][2]string{{"", ""}, {"2024-03-01", ""}, {"", "2024-04-30"}, {"2024-03-09", "2024-06-21"}, {"2024-05-31", "2024-06-02"},
		{"2023-11-25", "2024-11-24"}, {"2023-12-20", "2024-02-10"}, {"2023-10-14", "2024-06-16"}}
	results := []string{"", "", "pass", "fail"}
	disps := []string{"", "", "", "none", "reject", "quarantine"}
	for i := 0; i < 25; i++ {
		p := url.Values{}
		set := func(k string, choices []string) {
			if c := choices[rng.IntN(len(choices))]; c != "" {
				p.Set(k, c)
			}
		}
		set("domain", domains)
		set("org_name", orgs)
		set("source_ip_range", ranges)
		set("dkim_result", results)
		set("spf_result", results)
		set("disposition", disps)
		w := windows[rng.IntN(len(windows))]
		if w[0] != "" {
			p.Set("start", w[0])
		}
		if w[1] != "" {
			p.Set("end", w[1])
		}
		fixed = append(fixed, p)
	}
	return fixed
}

// check compares an API answer with the brute force's, showing both on a difference.
func check(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("%s differs from the brute force:\n%s", what, firstDifference(string(g), string(w)))
	}
}

// firstDifference shows where two JSON documents part, with some lines before.
func firstDifference(got, want string) string {
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		if i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			continue
		}
		lo := max(0, i-12)
		return fmt.Sprintf("line %d\n got: %s\nwant: %s", i+1, strings.Join(gl[lo:min(len(gl), i+4)], "\n"), strings.Join(wl[lo:min(len(wl), i+4)], "\n"))
	}
	return "(same JSON, different Go values)"
}

// TestRollupsEqualBruteForce is the main correctness test: on randomized data, every endpoint
// under a matrix of filters answers exactly what a computation over the raw records does.
func TestRollupsEqualBruteForce(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ids := world(t, st, 7, 400)
		ru := newRollup(st)
		// Part through Apply (twice for some), the rest through the catch-up.
		if err := ru.Apply(ctx, ids[:len(ids)/2]); err != nil {
			t.Fatal(err)
		}
		if err := ru.Apply(ctx, ids[len(ids)/4:len(ids)/2+10]); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := ru.CatchUp(ctx, 97)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		matchesBruteForce(t, st)
	})
}

// TestPurgeKeepsAnswersEqualBruteForce: after a retention purge (per age and per domain) and
// reports deleted by hand, every endpoint still answers what a computation over the reports
// that remain does.
func TestPurgeKeepsAnswersEqualBruteForce(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ids := world(t, st, 11, 400)
		ru := newRollup(st)
		if err := ru.Apply(ctx, ids); err != nil {
			t.Fatal(err)
		}
		var domains []string
		if err := st.DB().Raw(`SELECT DISTINCT domain FROM reports ORDER BY domain`).Scan(&domains).Error; err != nil {
			t.Fatal(err)
		}
		if len(domains) < 2 {
			t.Fatalf("fixture: %d domains, want several", len(domains))
		}
		// Reports ended more than 120 days before testNow go; one domain keeps only 30 days.
		svc := retention.New(retention.Deps{Store: st, Log: testenv.Logger(), Now: func() time.Time { return testNow },
			Policy: retention.Policy{Reports: 120 * 24 * time.Hour, Domains: map[string]time.Duration{strings.ToLower(domains[0]): 30 * 24 * time.Hour}, Batch: 70}})
		res, err := svc.Purge(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		// And every seventh report left, by hand.
		var left []int64
		if err := st.DB().Raw(`SELECT id FROM reports ORDER BY id`).Scan(&left).Error; err != nil {
			t.Fatal(err)
		}
		deleted := 0
		for i := 0; i < len(left); i += 7 {
			if ok, err := svc.DeleteReport(ctx, left[i]); err != nil || !ok {
				t.Fatalf("delete report %d: %v, %v", left[i], ok, err)
			}
			deleted++
		}
		t.Logf("purged %d of %d reports, deleted %d by hand", res.Reports, len(ids), deleted)
		if res.Reports == 0 || int(res.Reports)+deleted > len(ids)*3/4 {
			t.Fatalf("fixture: purged %d and deleted %d of %d reports; want some gone and most left", res.Reports, deleted, len(ids))
		}
		matchesBruteForce(t, st)
	})
}

// matchesBruteForce checks every endpoint under the filter matrix against the brute force over
// the reports stored now.
func matchesBruteForce(t *testing.T, st *store.Store) {
	t.Helper()
	reps := loadRaw(t, st)
	var records int
	for _, r := range reps {
		records += len(r.recs)
	}
	t.Logf("%d reports, %d records", len(reps), records)
	srv := newServer(st, nil, func() time.Time { return testNow })
	today := rollup.DayOf(testNow)
	rng := rand.New(rand.NewPCG(3, 4))
	nonEmpty := 0
	for _, params := range filterMatrix(rng) {
		q := parseQuery(t, params, testNow)
		ps, wide := pieces(reps, q, 0), pieces(reps, q, 6)
		name := params.Encode()
		if name == "" {
			name = "(no filter)"
		}

		var sum analytics.Summary
		srv.get(t, "/api/rollup/summary", params, &sum)
		check(t, "summary "+name, sum, bruteSummary(reps, ps, q))
		if sum.TotalMessages > 0 {
			nonEmpty++
		}

		var al analytics.Alignment
		srv.get(t, "/api/rollup/alignment", params, &al)
		check(t, "alignment "+name, al, bruteAlignment(ps, q))

		var bd analytics.Breakdown
		srv.get(t, "/api/rollup/alignment-breakdown", params, &bd)
		check(t, "alignment-breakdown "+name, bd, bruteBreakdown(ps, q))

		for _, iv := range []string{"day", "week", "month"} {
			p := cloneWith(params, "interval", iv)
			var tl analytics.Timeline
			srv.get(t, "/api/rollup/timeline", p, &tl)
			check(t, "timeline "+p.Encode(), tl, bruteTimeline(ps, q, iv, today))
		}

		var tr analytics.FailureTrend
		srv.get(t, "/api/rollup/failure-trend", params, &tr)
		check(t, "failure-trend "+name, tr, bruteTrend(wide, q, today))

		for _, pg := range [][2]int{{1, 10}, {2, 7}, {1, 500}} {
			p := cloneWith(cloneWith(params, "limit", fmt.Sprint(pg[1])), "page", fmt.Sprint(pg[0]))
			var src apiparams.List[analytics.Source]
			srv.get(t, "/api/rollup/sources", p, &src)
			check(t, "sources "+p.Encode(), src, bruteSources(ps, pg[0], pg[1]))

			var orgs apiparams.List[analytics.Organization]
			srv.get(t, "/api/rollup/top-organizations", p, &orgs)
			for i := range orgs.Items {
				// Compare reporters by key: the display name is whichever spelling came first.
				orgs.Items[i].OrgName = strings.ToLower(strings.TrimSpace(orgs.Items[i].OrgName))
			}
			check(t, "top-organizations "+p.Encode(), orgs, bruteOrgs(ps, pg[0], pg[1]))
		}

		for _, pg := range [][2]int{{1, 50}, {2, 2}} {
			p := cloneWith(cloneWith(params, "page_size", fmt.Sprint(pg[1])), "page", fmt.Sprint(pg[0]))
			var pol apiparams.List[analytics.PolicyDomain]
			srv.get(t, "/api/rollup/policy", p, &pol)
			check(t, "policy "+p.Encode(), pol, brutePolicy(ps, pg[0], pg[1]))
		}
		if t.Failed() {
			t.FailNow() // one parameter set's differences are enough to read
		}
	}
	if nonEmpty < 30 {
		t.Errorf("only %d parameter sets matched any message: the matrix tests too little", nonEmpty)
	}
}

func cloneWith(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range v {
		out[kk] = append([]string(nil), vv...)
	}
	out.Set(k, val)
	return out
}
