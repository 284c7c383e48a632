package alerting

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/testenv"
)

// raised returns an alert raised by a failure-rate rule on fail.example.
func raisedAlert(t *testing.T, s *Service) Alert {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateRule(ctx, RuleInput{Name: ptr("fr"), Type: ptr(TypeFailureRate), Domain: ptr("fail.example"), Severity: ptr(SeverityCritical)}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Evaluate(ctx, []string{"fail.example"}); err != nil || res.Raised != 1 {
		t.Fatalf("evaluate: %+v %v", res, err)
	}
	items, total, err := s.List(ctx, Filter{Domain: "fail.example"}, 1, 10)
	if err != nil || total != 1 {
		t.Fatalf("list: %d %v", total, err)
	}
	return items[0]
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		st := be.Store(t)
		seed(t, st)
		var clock atomicTime
		clock.set(now)
		s := newService(st, clock.get)
		ctx := context.Background()
		a := raisedAlert(t, s)
		if a.Status != StatusOpen || a.Severity != SeverityCritical || a.Fingerprint != Fingerprint(*a.RuleID, TypeFailureRate, "fail.example", "") {
			t.Fatalf("raised %+v", a)
		}
		// Two analysts acknowledge at once: one step recorded, the other a conflict.
		clock.set(now.Add(10 * time.Minute))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, who := range []string{"ann@example.com", "bob@example.com"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Transition(ctx, a.ID, StatusAcknowledged, who, "looking")
			}()
		}
		wg.Wait()
		conflicts := 0
		for _, err := range errs {
			if errors.Is(err, ErrConflict) {
				conflicts++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if conflicts != 1 {
			t.Fatalf("errors %v: want exactly one conflict", errs)
		}
		clock.set(now.Add(70 * time.Minute))
		got, err := s.Transition(ctx, a.ID, StatusResolved, "carol@example.com", "SPF record fixed")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusResolved || got.AcknowledgedAt == nil || !got.AcknowledgedAt.Equal(now.Add(10*time.Minute)) ||
			got.ResolvedBy == nil || *got.ResolvedBy != "carol@example.com" || got.Note != "SPF record fixed" {
			t.Fatalf("resolved %+v", got)
		}
		var actions []string
		for _, e := range got.History {
			actions = append(actions, e.Action+":"+e.Actor)
		}
		if len(actions) != 3 || actions[0] != "created:system" || actions[2] != "resolved:carol@example.com" {
			t.Fatalf("history %v", actions)
		}
		if _, err := s.Transition(ctx, a.ID, StatusAcknowledged, "dan", ""); !errors.Is(err, ErrConflict) {
			t.Fatalf("acknowledge a resolved alert: %v", err)
		}
		if _, err := s.Transition(ctx, 999999, StatusResolved, "dan", ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown alert: %v", err)
		}
		// Stats: one critical failure-rate alert, acknowledged after 600 s, resolved after 4200 s.
		stt, err := s.Stats(ctx, now.Add(-time.Hour), now.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if stt.Total != 1 || stt.ByType[TypeFailureRate] != 1 || stt.BySeverity[SeverityCritical] != 1 || stt.ByStatus[StatusResolved] != 1 ||
			len(stt.ByDomain) != 1 || stt.ByDomain[0].Domain != "fail.example" || len(stt.ByDay) != 1 || stt.ByDay[0].Day != "2024-03-15" ||
			stt.MeanTimeToAcknowledge == nil || *stt.MeanTimeToAcknowledge != 600 || stt.MeanTimeToResolve == nil || *stt.MeanTimeToResolve != 4200 {
			t.Fatalf("stats %+v", stt)
		}
		empty, err := s.Stats(ctx, now.Add(24*time.Hour), now.Add(48*time.Hour))
		if err != nil || empty.Total != 0 || empty.MeanTimeToAcknowledge != nil {
			t.Fatalf("empty stats %+v %v", empty, err)
		}
	})
}

func TestSuppressionWindows(t *testing.T) {
	t.Parallel()
	sun := time.Date(2024, 3, 17, 0, 0, 0, 0, time.UTC) // a Sunday
	weekly := suppressionRow{Recurrence: RecurWeekly, Weekday: ptr(0), StartMinute: 120, DurationMinutes: 120, StartsAt: 0}
	late := suppressionRow{Recurrence: RecurDaily, StartMinute: 23 * 60, DurationMinutes: 120, StartsAt: 0}
	exp := sun.Unix()
	expiring := suppressionRow{Recurrence: RecurDaily, StartMinute: 0, DurationMinutes: 24 * 60, StartsAt: 0, ExpiresAt: &exp}
	end := sun.Add(time.Hour).Unix()
	once := suppressionRow{Recurrence: RecurNone, StartsAt: sun.Unix(), EndsAt: &end}
	cases := []struct {
		name string
		r    suppressionRow
		at   time.Time
		want bool
	}{
		{"weekly inside", weekly, sun.Add(3 * time.Hour), true},
		{"weekly start", weekly, sun.Add(2 * time.Hour), true},
		{"weekly end excluded", weekly, sun.Add(4 * time.Hour), false},
		{"weekly other day", weekly, sun.Add(24*time.Hour + 3*time.Hour), false},
		{"weekly next week", weekly, sun.Add(7*24*time.Hour + 3*time.Hour), true},
		{"daily across midnight", late, sun.Add(30 * time.Minute), true},
		{"daily after", late, sun.Add(90 * time.Minute), false},
		{"expired", expiring, sun.Add(time.Minute), false},
		{"before expiry", expiring, sun.Add(-time.Minute), true},
		{"one-off inside", once, sun.Add(30 * time.Minute), true},
		{"one-off after", once, sun.Add(61 * time.Minute), false},
		{"one-off before", once, sun.Add(-time.Minute), false},
	}
	for _, tc := range cases {
		if got := tc.r.active(tc.at); got != tc.want {
			t.Errorf("%s: active = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSuppressedRecorded: an alert inside a maintenance window is recorded as suppressed and
// gets no delivery; expired windows are no longer listed and are purged.
func TestSuppressedRecorded(t *testing.T) {
	t.Parallel()
	st := testenv.Backends()[0].Store(t)
	seed(t, st)
	var clock atomicTime
	clock.set(now)
	s := newService(st, clock.get)
	ctx := context.Background()
	// A channel row for the rule (pkg/notify manages them; a bare row is enough here).
	if err := st.DB().Exec("INSERT INTO alert_channels (name, kind, config, enabled, created_at, updated_at) VALUES ('c', 'webhook', '{}', TRUE, 0, 0)").Error; err != nil {
		t.Fatal(err)
	}
	var chID int64
	st.DB().Raw("SELECT id FROM alert_channels").Scan(&chID)
	for _, bad := range []SuppressionInput{
		{Recurrence: "none"},
		{Recurrence: "weekly", StartTime: ptr("02:00"), Duration: ptr("2h")},
		{Recurrence: "daily", StartTime: ptr("25:00"), Duration: ptr("2h")},
		{Recurrence: "daily", StartTime: ptr("02:00"), Duration: ptr("25h")},
		{Recurrence: "hourly"},
		{Recurrence: "none", EndsAt: ptr(now.Add(-time.Hour))},
		{Recurrence: "none", EndsAt: ptr(now.Add(time.Hour)), Severity: ptr("loud")},
	} {
		if _, err := s.CreateSuppression(ctx, bad, "admin"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: got %v, want invalid", bad, err)
		}
	}
	sp, err := s.CreateSuppression(ctx, SuppressionInput{Domain: ptr("fail.example"), Type: ptr(TypeFailureRate), EndsAt: ptr(now.Add(time.Hour))}, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSuppression(ctx, SuppressionInput{Recurrence: "weekly", Weekday: ptr("Sunday"), StartTime: ptr("02:00"), Duration: ptr("2h")}, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRule(ctx, RuleInput{Name: ptr("fr"), Type: ptr(TypeFailureRate), Params: []byte(`{"threshold":0.01}`), ChannelIDs: &[]int64{chID}}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Evaluate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Suppressed != 1 || res.Raised < 1 {
		t.Fatalf("run %+v: want fail.example suppressed and the others raised", res)
	}
	items, _, err := s.List(ctx, Filter{Status: StatusSuppressed}, 1, 10)
	if err != nil || len(items) != 1 || items[0].Domain != "fail.example" || items[0].SuppressionID == nil || *items[0].SuppressionID != sp.ID || len(items[0].Deliveries) != 0 {
		t.Fatalf("suppressed %+v %v", items, err)
	}
	open, _, _ := s.List(ctx, Filter{Status: StatusOpen}, 1, 10)
	for _, a := range open {
		if len(a.Deliveries) != 1 || a.Deliveries[0].Status != "pending" || a.Deliveries[0].ChannelID != chID {
			t.Errorf("open alert %d deliveries %+v", a.ID, a.Deliveries)
		}
	}
	// The one-off window expires: it is no longer listed, and a purge deletes it.
	clock.set(now.Add(2 * time.Hour))
	list, _ := s.ListSuppressions(ctx)
	if len(list) != 1 || list[0].Recurrence != RecurWeekly || *list[0].Weekday != "sunday" || *list[0].StartTime != "02:00" || *list[0].Duration != "2h" {
		t.Fatalf("listed %+v", list)
	}
	if n, err := s.PurgeExpired(ctx); err != nil || n != 1 {
		t.Fatalf("purged %d %v", n, err)
	}
	if err := s.DeleteSuppression(ctx, sp.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a purged window: %v", err)
	}
}

func TestRuleValidation(t *testing.T) {
	t.Parallel()
	st := testenv.Backends()[0].Store(t)
	s := newService(st, fixed(now))
	ctx := context.Background()
	bad := []RuleInput{
		{Type: ptr(TypeFailureRate)},
		{Name: ptr("x")},
		{Name: ptr("x"), Type: ptr("cpu_high")},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), Params: []byte(`{"threshold":2}`)},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), Params: []byte(`{"window_days":1.5}`)},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), Params: []byte(`{"factor":3}`)},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), Params: []byte(`{"threshold":"high"}`)},
		{Name: ptr("x"), Type: ptr(TypeMissingReports), Params: []byte(`{"min_active_days":20,"lookback_days":14}`)},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), Cooldown: ptr("30m")},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), Cooldown: ptr("25h")},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), Severity: ptr("fatal")},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), ChannelIDs: &[]int64{42}},
		{Name: ptr("x"), Type: ptr(TypeFailureRate), Domain: ptr("bad domain")},
	}
	for _, in := range bad {
		if _, err := s.CreateRule(ctx, in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: got %v, want invalid", in, err)
		}
	}
	r, err := s.CreateRule(ctx, RuleInput{Name: ptr("fr"), Type: ptr(TypeFailureRate), Domain: ptr("Example.COM."), Params: []byte(`{"threshold":0.1}`), Cooldown: ptr("2h")})
	if err != nil {
		t.Fatal(err)
	}
	if *r.Domain != "example.com" || r.Params["threshold"] != 0.1 || r.Params["window_days"] != 7.0 || r.Cooldown != "2h" || !r.Enabled || r.Severity != SeverityWarning {
		t.Fatalf("rule %+v", r)
	}
	if _, err := s.CreateRule(ctx, RuleInput{Name: ptr("fr"), Type: ptr(TypeVolumeDrop)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	u, err := s.UpdateRule(ctx, r.ID, RuleInput{Enabled: ptr(false), Domain: ptr("")})
	if err != nil || u.Enabled || u.Domain != nil || u.Params["threshold"] != 0.1 {
		t.Fatalf("update %+v %v", u, err)
	}
	if _, err := s.UpdateRule(ctx, r.ID, RuleInput{Type: ptr(TypeVolumeDrop)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("type change: %v", err)
	}
	if err := s.DeleteRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRule(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted rule: %v", err)
	}
	// Defaults stay off until a channel is adopted, then only untouched ones turn on.
	rules, _ := s.ListRules(ctx)
	if _, err := s.UpdateRule(ctx, rules[0].ID, RuleInput{Severity: ptr(SeverityInfo)}); err != nil {
		t.Fatal(err)
	}
	if err := st.DB().Exec("INSERT INTO alert_channels (id, name, kind, config, enabled, created_at, updated_at) VALUES (7, 'c', 'webhook', '{}', TRUE, 0, 0)").Error; err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptDefaults(ctx, 7); err != nil {
		t.Fatal(err)
	}
	rules, _ = s.ListRules(ctx)
	on := 0
	for _, r := range rules {
		if r.Enabled {
			on++
			if len(r.ChannelIDs) != 1 || r.ChannelIDs[0] != 7 {
				t.Errorf("adopted rule %+v", r)
			}
		}
	}
	if rules[0].Enabled || on != 5 {
		t.Errorf("%d rules on after adoption (the changed one: %v), want the 5 untouched", on, rules[0].Enabled)
	}
}
