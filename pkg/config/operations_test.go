package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOperations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		bad     string // the variable the error names; "" = valid
		want    Retention
		metrics string
	}{
		{name: "defaults keep everything", want: Retention{Interval: 6 * time.Hour, Batch: 5000}},
		{name: "ages and domains", env: map[string]string{"VIGIL_RETENTION_REPORT_DAYS": "365", "VIGIL_RETENTION_DOMAINS": " Example.COM.=90, b.example=1",
			"VIGIL_RETENTION_AUDIT_DAYS": "730", "VIGIL_RETENTION_DRY_RUN": "true", "VIGIL_METRICS_ADDR": ":9090"},
			want: Retention{Reports: 365 * day, Audit: 730 * day, Domains: map[string]time.Duration{"example.com": 90 * day, "b.example": day},
				Interval: 6 * time.Hour, Batch: 5000, DryRun: true}, metrics: ":9090"},
		{name: "negative age", env: map[string]string{"VIGIL_RETENTION_FILE_DAYS": "-1"}, bad: "VIGIL_RETENTION_FILE_DAYS"},
		{name: "domain without days", env: map[string]string{"VIGIL_RETENTION_DOMAINS": "example.com"}, bad: "VIGIL_RETENTION_DOMAINS"},
		{name: "domain with zero days", env: map[string]string{"VIGIL_RETENTION_DOMAINS": "example.com=0"}, bad: "VIGIL_RETENTION_DOMAINS"},
		{name: "tiny batch", env: map[string]string{"VIGIL_RETENTION_BATCH": "5"}, bad: "VIGIL_RETENTION_BATCH"},
		{name: "metrics address without port", env: map[string]string{"VIGIL_METRICS_ADDR": "localhost"}, bad: "VIGIL_METRICS_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(func(k string) string { return tt.env[k] })
			if tt.bad != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("error %v, want one naming %s", err, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := c.Retention
			if r.Reports != tt.want.Reports || r.Audit != tt.want.Audit || r.Files != tt.want.Files || r.DryRun != tt.want.DryRun ||
				r.Interval != tt.want.Interval || r.Batch != tt.want.Batch || len(r.Domains) != len(tt.want.Domains) {
				t.Errorf("retention %+v, want %+v", r, tt.want)
			}
			for d, age := range tt.want.Domains {
				if r.Domains[d] != age {
					t.Errorf("domain %s: %v, want %v", d, r.Domains[d], age)
				}
			}
			if r.Enabled() != tt.want.Enabled() || c.MetricsAddr != tt.metrics {
				t.Errorf("enabled %v, metrics addr %q; want %v, %q", r.Enabled(), c.MetricsAddr, tt.want.Enabled(), tt.metrics)
			}
		})
	}
}
