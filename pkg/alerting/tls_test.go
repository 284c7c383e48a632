package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// tlsReport stores an SMTP TLS report's rows as pkg/tlsrpt does (the tables of migration
// 00015), for domain on day back (0: today).
func tlsReport(t *testing.T, st *store.Store, n int, domain string, back int, ok, failed int64) {
	t.Helper()
	ctx := context.Background()
	ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: fmt.Sprintf("%064d", n), Filename: "t.json", Source: "https", Size: 1,
		ReceivedAt: now, Encoding: "identity", Data: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	begin := dayAt(back).Unix()
	db := st.DB()
	var id int64
	if err := db.Raw(`INSERT INTO tls_reports (ingest_id, organization_name, org_key, report_id, date_begin, date_end, policy_domain,
		successful_sessions, failed_sessions, policies, created_at) VALUES (?, 'Google Inc.', 'google inc.', ?, ?, ?, ?, ?, ?, '[]', ?) RETURNING id`,
		ing.ID, fmt.Sprint(n), begin, begin+86399, domain, ok, failed, now.Unix()).Scan(&id).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(`INSERT INTO tls_report_policies (tls_report_id, idx, policy_type, policy_domain, day, successful_sessions, failed_sessions)
		VALUES (?, 0, 'sts', ?, ?, ?, ?)`, id, domain, begin/86400, ok, failed).Error; err != nil {
		t.Fatal(err)
	}
	if failed > 0 {
		if err := db.Exec(`INSERT INTO tls_report_failures (tls_report_id, policy_idx, idx, policy_domain, day, result_type, receiving_mx_hostname, failed_session_count)
			VALUES (?, 0, 0, ?, ?, 'certificate-expired', ?, ?)`, id, domain, begin/86400, "mx."+domain, failed).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// TestTLSFailureRule: the tls_failure rule raises for a domain whose failed TLS sessions pass
// the threshold in its window, names the worst failure type and MX host, and raises nothing
// for a healthy, a small or an old one, even with no DMARC rollups at all.
func TestTLSFailureRule(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		st := be.Store(t)
		tlsReport(t, st, 1, "broken.example", 1, 80, 20)
		tlsReport(t, st, 2, "healthy.example", 1, 990, 10)
		tlsReport(t, st, 3, "small.example", 0, 1, 4)
		tlsReport(t, st, 4, "old.example", 10, 0, 50)
		ctx := context.Background()
		cases := []struct {
			domain, params string
			want           bool
		}{
			{"broken.example", `{}`, true},
			{"healthy.example", `{}`, false},
			{"healthy.example", `{"threshold":0.005}`, true},
			{"small.example", `{}`, false},
			{"small.example", `{"min_sessions":5}`, true},
			{"old.example", `{}`, false},
			{"old.example", `{"window_days":11}`, true},
			{"nothing.example", `{}`, false},
		}
		for i, tc := range cases {
			t.Run(tc.domain+tc.params, func(t *testing.T) {
				s := newService(st, fixed(now.Add(time.Duration(i)*time.Minute)))
				r, err := s.CreateRule(ctx, RuleInput{Name: ptr(fmt.Sprintf("tls %d", i)), Type: ptr(TypeTLSFailure), Domain: ptr(tc.domain),
					Params: json.RawMessage(tc.params), Enabled: ptr(true)})
				if err != nil {
					t.Fatal(err)
				}
				defer s.DeleteRule(ctx, r.ID)
				res, err := s.Evaluate(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := res.Raised > 0; got != tc.want {
					t.Fatalf("raised %d, want alert %v", res.Raised, tc.want)
				}
				if !tc.want {
					return
				}
				alerts, _, err := s.List(ctx, Filter{Domain: tc.domain}, 1, 10)
				if err != nil || len(alerts) == 0 {
					t.Fatalf("alerts %v %v", alerts, err)
				}
				a := alerts[0]
				if a.Type != TypeTLSFailure || !strings.Contains(a.Title, "SMTP TLS failure rate") || !strings.Contains(a.Detail, "certificate-expired at mx."+tc.domain) {
					t.Errorf("alert %q: %q", a.Title, a.Detail)
				}
			})
		}
	})
}
