package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Requests the dashboard's overview sends per load: eight charts, the summary cards, the
// domain list and the user (issue 13).
const overviewRequests = 12

// The default limits let people and scripts work (issues 13 and 19: the overview spent the old
// 100/1m within a minute or two, a script reading 60 reports' records got 429s, checking 179
// uploaded files one by one gave 81 429s, uploads were 20 an hour) and still stop a client
// that keeps hammering.
func TestDefaultsFitWorkloads(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	api, upload := cfg.Auth.Rates.API, cfg.Auth.Rates.Upload
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		_, c, prefix := limiter(t, b)
		clk := &clock{t: time.Unix(1_800_000_000, 0)}
		l := ratelimit.NewWithClock(c, prefix, clk.now)
		ctx := context.Background()
		// send makes n requests spaced by gap and returns how many were refused.
		send := func(class, subject string, rate ratelimit.Rate, n int, gap time.Duration) int {
			t.Helper()
			refused := 0
			for range n {
				res, err := l.Allow(ctx, class, subject, rate)
				if err != nil {
					t.Fatal(err)
				}
				if !res.Allowed {
					refused++
				}
				clk.add(gap)
			}
			return refused
		}
		// A person on the overview for an hour in three tabs: each loads, auto-refreshes every
		// 30 s, and every ten minutes the person tries ten filters within a minute.
		refused := 0
		for minute := range 60 {
			perTab := 2 * overviewRequests // two refreshes
			if minute%10 == 0 {
				perTab += 10 * overviewRequests
			}
			refused += send("api", "person", api, 3*perTab, time.Minute/time.Duration(3*perTab))
		}
		if refused > 0 {
			t.Errorf("dashboard in three tabs: %d requests refused under %v", refused, api)
		}
		// README's workflow as a script, back to back: a login's worth of calls, 179 files
		// checked one by one, then 60 reports' records read; then the same again a minute later.
		for round := range 2 {
			if n := send("api", "script", api, 5+179+1+60, 5*time.Millisecond); n > 0 {
				t.Errorf("script round %d: %d of 245 requests refused under %v", round, n, api)
			}
			clk.add(time.Minute)
		}
		// The dashboard's upload page sends a file a request: 179 dropped files at once.
		if n := send("upload", "person", upload, 179, 20*time.Millisecond); n > 0 {
			t.Errorf("179 one-file uploads: %d refused under %v", n, upload)
		}
		// A runaway loop at 50 requests a second is held to the sustained rate.
		n := 50 * 60
		refused = send("api", "loop", api, n, 20*time.Millisecond)
		allowed := n - refused
		want := api.Capacity() + api.N*int(time.Minute)/int(api.Per)
		if allowed > want+1 || allowed < want-1 {
			t.Errorf("runaway loop: %d of %d allowed in a minute, want the burst plus a minute's rate (%d)", allowed, n, want)
		}
	})
}
