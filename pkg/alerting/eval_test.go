package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// seed stores the generated data every rule-type case reads: one domain (or a few) per case.
func seed(t *testing.T, st *store.Store) {
	b := newBuilder(t, st)
	steady := func(n int64, fail int64) func(int) []rec {
		return func(int) []rec {
			return []rec{{ip: "192.0.2.1", count: n - fail, pass: true}, {ip: "192.0.2.2", count: fail}}
		}
	}
	// failure_rate: 10% failing (alert), 2% failing (no alert), 50% of too few messages.
	b.daily("google.com", "fail.example", "reject", 10, 0, steady(1000, 100))
	b.daily("google.com", "ok.example", "reject", 10, 0, steady(1000, 20))
	b.daily("google.com", "small.example", "reject", 6, 0, steady(10, 5))
	// An old failure outside the 7-day window does not count.
	b.report("google.com", "old.example", "reject", 30, rec{ip: "192.0.2.9", count: 5000})
	b.daily("google.com", "old.example", "reject", 6, 0, steady(1000, 0))

	// volume: same weekday medians. spike.example: 100,100,120,80 then 400 yesterday.
	for i, n := range []int64{100, 100, 120, 80} {
		b.report("google.com", "spike.example", "none", 1+7*(i+1), rec{ip: "192.0.2.1", count: n, pass: true})
	}
	b.report("google.com", "spike.example", "none", 1, rec{ip: "192.0.2.1", count: 400, pass: true})
	// one day of data: no baseline, no spike however large.
	b.report("google.com", "oneday.example", "none", 1, rec{ip: "192.0.2.1", count: 100000, pass: true})
	// drop.example: 1000 every week, 100 yesterday; silent.example: 1000 every week, nothing yesterday.
	for w := 1; w <= 4; w++ {
		b.report("google.com", "drop.example", "none", 1+7*w, rec{ip: "192.0.2.1", count: 1000, pass: true})
		b.report("google.com", "silent.example", "none", 1+7*w, rec{ip: "192.0.2.1", count: 1000, pass: true})
		b.report("google.com", "steady.example", "none", 1+7*w, rec{ip: "192.0.2.1", count: 1000, pass: true})
	}
	b.report("google.com", "drop.example", "none", 1, rec{ip: "192.0.2.1", count: 100, pass: true})
	b.report("google.com", "steady.example", "none", 1, rec{ip: "192.0.2.1", count: 900, pass: true})

	// new_source: known.example has 192.0.2.1 for a month, 198.51.100.7 appears today
	// (and 2001:db8::5, IPv6); fresh.example has only today's data (no history: nothing new).
	b.daily("google.com", "known.example", "reject", 30, 1, func(int) []rec { return []rec{{ip: "192.0.2.1", count: 10, pass: true}} })
	b.report("google.com", "known.example", "reject", 0, rec{ip: "192.0.2.1", count: 10, pass: true},
		rec{ip: "198.51.100.7", count: 3}, rec{ip: "2001:db8::5", count: 2, pass: true})
	b.report("google.com", "fresh.example", "reject", 0, rec{ip: "203.0.113.1", count: 10})

	// policy_violation: rejected mail today; a policy weakened from reject to none today.
	b.report("google.com", "rejected.example", "reject", 0, rec{ip: "192.0.2.1", count: 5, disposition: "reject"},
		rec{ip: "192.0.2.3", count: 2, disposition: "quarantine"})
	b.daily("google.com", "weakened.example", "reject", 10, 1, func(int) []rec { return []rec{{ip: "192.0.2.1", count: 10, pass: true}} })
	b.report("google.com", "weakened.example", "none", 0, rec{ip: "192.0.2.1", count: 10, pass: true})

	// missing_reports: google reported daily until 5 days ago, yahoo until yesterday, and a
	// reporter that sent twice is not regular.
	b.daily("google.com", "quiet.example", "reject", 19, 5, func(int) []rec { return []rec{{ip: "192.0.2.1", count: 10, pass: true}} })
	b.daily("yahoo.com", "quiet.example", "reject", 19, 1, func(int) []rec { return []rec{{ip: "192.0.2.1", count: 10, pass: true}} })
	b.report("rare.example", "quiet.example", "reject", 12, rec{ip: "192.0.2.1", count: 10, pass: true})
	b.report("rare.example", "quiet.example", "reject", 9, rec{ip: "192.0.2.1", count: 10, pass: true})
	b.apply()
}

// TestRuleTypes evaluates each rule type on generated data, edges included (empty baseline,
// one day of data, a domain with no reports, windows in whole UTC days).
func TestRuleTypes(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		st := be.Store(t)
		seed(t, st)
		s := newService(st, fixed(now))
		ctx := context.Background()
		cases := []struct {
			typ, domain string
			params      string
			want        []string // finding keys ("" for a per-domain condition); nil: none
		}{
			{TypeFailureRate, "fail.example", `{}`, []string{""}},
			{TypeFailureRate, "ok.example", `{}`, nil},
			{TypeFailureRate, "ok.example", `{"threshold":0.01}`, []string{""}},
			{TypeFailureRate, "small.example", `{}`, nil},
			{TypeFailureRate, "small.example", `{"min_messages":10}`, []string{""}},
			{TypeFailureRate, "old.example", `{}`, nil},
			{TypeFailureRate, "old.example", `{"window_days":31}`, []string{""}},
			{TypeFailureRate, "nothing.example", `{}`, nil},
			{TypeVolumeSpike, "spike.example", `{}`, []string{"2024-03-14"}},
			{TypeVolumeSpike, "spike.example", `{"factor":5}`, nil},
			{TypeVolumeSpike, "oneday.example", `{}`, nil},
			{TypeVolumeSpike, "nothing.example", `{}`, nil},
			{TypeVolumeDrop, "drop.example", `{}`, []string{"2024-03-14"}},
			{TypeVolumeDrop, "silent.example", `{}`, []string{"2024-03-14"}},
			{TypeVolumeDrop, "steady.example", `{}`, nil},
			{TypeVolumeDrop, "oneday.example", `{}`, nil},
			{TypeVolumeDrop, "drop.example", `{"min_baseline":5000}`, nil},
			{TypeNewSource, "known.example", `{}`, []string{"198.51.100.7", "2001:db8::5"}},
			{TypeNewSource, "known.example", `{"min_messages":3}`, []string{"198.51.100.7"}},
			{TypeNewSource, "fresh.example", `{}`, nil},
			{TypeNewSource, "nothing.example", `{}`, nil},
			{TypePolicyViolation, "rejected.example", `{}`, []string{"disposition"}},
			{TypePolicyViolation, "rejected.example", `{"min_messages":8}`, nil},
			{TypePolicyViolation, "weakened.example", `{}`, []string{"policy:reject->none:2024-03-15"}},
			{TypePolicyViolation, "weakened.example", `{"policy_change":false}`, nil},
			{TypePolicyViolation, "fail.example", `{}`, nil},
			{TypeMissingReports, "quiet.example", `{}`, []string{"google.com"}},
			{TypeMissingReports, "quiet.example", `{"silent_days":5}`, nil},
			{TypeMissingReports, "quiet.example", `{"min_active_days":13}`, nil},
			{TypeMissingReports, "nothing.example", `{}`, nil},
			{TypeAnomaly, "fail.example", `{}`, nil},
		}
		for i, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s/%s", tc.typ, tc.domain, tc.params), func(t *testing.T) {
				r, err := s.CreateRule(ctx, RuleInput{Name: ptr(fmt.Sprintf("case %d", i)), Type: ptr(tc.typ), Domain: ptr(tc.domain), Params: json.RawMessage(tc.params)})
				if err != nil {
					t.Fatal(err)
				}
				all, err := s.domainNames(ctx)
				if err != nil {
					t.Fatal(err)
				}
				sc := scope{names: map[int32]string{}}
				for id, n := range all {
					if n == tc.domain {
						sc.names[id] = n
					}
				}
				fs, err := s.evaluate(ctx, r, sc, rollup.DayOf(now))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range fs {
					k := f.key
					if tc.typ == TypeMissingReports {
						k = f.data["reporter"].(string)
					}
					got = append(got, k)
					if f.domain != tc.domain || f.title == "" || f.detail == "" {
						t.Errorf("finding %+v", f)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Errorf("findings %q, want %q (%+v)", got, tc.want, fs)
				}
			})
		}
	})
}

// TestFigures pins the numbers an alert states.
func TestFigures(t *testing.T) {
	t.Parallel()
	st := testenv.Backends()[0].Store(t)
	seed(t, st)
	s := newService(st, fixed(now))
	ctx := context.Background()
	r, err := s.CreateRule(ctx, RuleInput{Name: ptr("f"), Type: ptr(TypeFailureRate), Domain: ptr("fail.example")})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := s.domainNames(ctx)
	sc := scope{names: map[int32]string{}}
	for id, n := range all {
		sc.names[id] = n
	}
	fs, err := s.evaluate(ctx, r, sc, rollup.DayOf(now))
	if err != nil || len(fs) == 0 {
		t.Fatalf("%v %v", fs, err)
	}
	// Every rule of all domains would also find fail.example; with its own domain only it.
	var f finding
	for _, x := range fs {
		if x.domain == "fail.example" {
			f = x
		}
	}
	if f.data["messages"] != int64(7000) || f.data["failed"] != int64(700) || f.data["from"] != "2024-03-09" || f.data["to"] != "2024-03-15" {
		t.Errorf("data %v", f.data)
	}
	vr, _ := s.CreateRule(ctx, RuleInput{Name: ptr("v"), Type: ptr(TypeVolumeSpike)})
	vs, err := s.evaluate(ctx, vr, sc, rollup.DayOf(now))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range vs {
		if x.domain == "spike.example" {
			found = true
			if x.data["baseline"] != 100.0 || x.data["messages"] != int64(400) {
				t.Errorf("spike data %v", x.data)
			}
		}
	}
	if !found {
		t.Errorf("no spike for spike.example in %v", vs)
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []int64
		want float64
	}{{nil, 0}, {[]int64{5}, 5}, {[]int64{100, 100, 120, 80}, 100}, {[]int64{0, 0, 0, 1000}, 0}, {[]int64{3, 1, 2}, 2}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestExactlyOnce: 20 concurrent evaluations of the same data raise each fingerprint once;
// another run within the cooldown raises nothing; after the cooldown, again once.
func TestExactlyOnce(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		st := be.Store(t)
		seed(t, st)
		ctx := context.Background()
		var clock atomicTime
		clock.set(now)
		s := newService(st, clock.get)
		// The default rules, turned on over every domain.
		rules, err := s.ListRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rules) != 6 {
			t.Fatalf("%d default rules, want 6", len(rules))
		}
		for _, r := range rules {
			if r.Enabled || !r.IsDefault {
				t.Fatalf("default rule %+v should start off", r)
			}
			if _, err := s.UpdateRule(ctx, r.ID, RuleInput{Enabled: ptr(true)}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		results := make([]RunResult, 20)
		errs := make([]error, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = s.Evaluate(ctx, nil)
			}()
		}
		wg.Wait()
		raised, findings := 0, results[0].Findings
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("evaluation %d: %v", i, errs[i])
			}
			if r.Findings != findings {
				t.Errorf("evaluation %d found %d, evaluation 0 %d", i, r.Findings, findings)
			}
			raised += r.Raised
		}
		var alerts, distinct int64
		st.DB().Table("alerts").Count(&alerts)
		st.DB().Table("alerts").Distinct("fingerprint").Count(&distinct)
		if findings < 8 || raised != findings || alerts != int64(findings) || distinct != alerts {
			t.Fatalf("findings %d, raised %d, alerts %d, distinct fingerprints %d: want each finding raised once", findings, raised, alerts, distinct)
		}
		// Within the cooldown: nothing more.
		clock.set(now.Add(59 * time.Minute))
		if r, err := s.Evaluate(ctx, nil); err != nil || r.Raised != 0 {
			t.Fatalf("second run raised %d (%v)", r.Raised, err)
		}
		// Past the 6 h cooldown of the failure-rate rule (the 24 h ones hold): raised again once.
		clock.set(now.Add(6*time.Hour + time.Minute))
		var wg2 sync.WaitGroup
		var mu sync.Mutex
		again := 0
		for range 20 {
			wg2.Add(1)
			go func() {
				defer wg2.Done()
				r, err := s.Evaluate(ctx, nil)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				again += r.Raised
				mu.Unlock()
			}()
		}
		wg2.Wait()
		var fr int64
		st.DB().Table("alerts").Where("type = ?", TypeFailureRate).Count(&fr)
		if again == 0 || fr == 0 || fr%2 != 0 {
			t.Errorf("after the cooldown: raised %d, failure-rate alerts %d (want each raised once more)", again, fr)
		}
		var cd24 int64
		st.DB().Table("alerts").Where("type IN ?", []string{TypeNewSource, TypeMissingReports}).Group("fingerprint").Having("COUNT(*) > 1").Count(&cd24)
		if cd24 != 0 {
			t.Errorf("%d fingerprints of 24 h rules raised twice within 24 h", cd24)
		}
	})
}

type atomicTime struct {
	mu sync.Mutex
	t  time.Time
}

func (a *atomicTime) set(t time.Time) { a.mu.Lock(); a.t = t; a.mu.Unlock() }
func (a *atomicTime) get() time.Time  { a.mu.Lock(); defer a.mu.Unlock(); return a.t }
