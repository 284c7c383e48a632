package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/ratelimit"
)

func TestAuthDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Auth
	if a.JWTSecret != "" || a.AccessTTL != 15*time.Minute || a.RefreshTTL != 7*24*time.Hour || a.AdminEmail != DefaultAdminEmail || a.AdminPassword != "" {
		t.Fatalf("auth defaults: %+v", a)
	}
	want := RateLimits{
		API: ratelimit.Rate{N: 600, Per: time.Minute, Burst: 300}, Upload: ratelimit.Rate{N: 600, Per: time.Hour, Burst: 200},
		ExportCSV: ratelimit.Rate{N: 10, Per: time.Minute}, ExportPDF: ratelimit.Rate{N: 5, Per: time.Minute}, Auth: ratelimit.Rate{N: 30, Per: time.Minute},
	}
	if a.Rates != want {
		t.Fatalf("rate defaults %+v, want %+v", a.Rates, want)
	}
	if a.LoginAccount != (ratelimit.Lockout{MaxFailures: 5, Window: 15 * time.Minute, Base: time.Minute, Max: 15 * time.Minute}) || a.LoginAddress.MaxFailures != 20 {
		t.Fatalf("lockout defaults %+v %+v", a.LoginAccount, a.LoginAddress)
	}
	if a.IPv6Prefix != 64 {
		t.Fatalf("IPv6 prefix %d, want /64 by default", a.IPv6Prefix)
	}
	if a.TrustedProxies != nil || a.CORSOrigins != nil {
		t.Fatalf("proxies %v, origins %v: want none by default", a.TrustedProxies, a.CORSOrigins)
	}
}

func TestAuthValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("a long admin passphrase\n"), 0o600)
	c, err := Load(envOf(map[string]string{
		"VIGIL_JWT_SECRET": strings.Repeat("s", 32), "VIGIL_JWT_ACCESS_TTL": "5m", "VIGIL_JWT_REFRESH_TTL": "24h",
		"VIGIL_ADMIN_EMAIL": "Root@Example.com", "VIGIL_ADMIN_PASSWORD_FILE": pw,
		"VIGIL_LOGIN_MAX_FAILURES": "3", "VIGIL_LOGIN_ADDRESS_MAX_FAILURES": "50", "VIGIL_LOGIN_LOCKOUT": "30s", "VIGIL_LOGIN_LOCKOUT_MAX": "1h",
		"VIGIL_RATE_LIMIT_API": "1000/1m burst 50", "VIGIL_RATE_LIMIT_UPLOAD": "off", "VIGIL_RATE_LIMIT_EXPORT_PDF": "2/h",
		"VIGIL_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,::1", "VIGIL_CORS_ORIGINS": "https://vigil.example.com, http://localhost:3000",
	}))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Auth
	if a.AccessTTL != 5*time.Minute || a.RefreshTTL != 24*time.Hour || a.AdminEmail != "root@example.com" || a.AdminPassword != "a long admin passphrase" {
		t.Fatalf("values: %+v", a)
	}
	if a.LoginAccount.MaxFailures != 3 || a.LoginAddress.MaxFailures != 50 || a.LoginAccount.Base != 30*time.Second || a.LoginAddress.Max != time.Hour {
		t.Fatalf("lockouts %+v %+v", a.LoginAccount, a.LoginAddress)
	}
	if a.Rates.API != (ratelimit.Rate{N: 1000, Per: time.Minute, Burst: 50}) || !a.Rates.Upload.Off() || a.Rates.ExportPDF != (ratelimit.Rate{N: 2, Per: time.Hour}) {
		t.Fatalf("rates %+v", a.Rates)
	}
	wantProxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("::1/128")}
	if !slices.Equal(a.TrustedProxies, wantProxies) {
		t.Fatalf("proxies %v", a.TrustedProxies)
	}
	if !slices.Equal(a.CORSOrigins, []string{"https://vigil.example.com", "http://localhost:3000"}) {
		t.Fatalf("origins %v", a.CORSOrigins)
	}
}

func TestAuthErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"VIGIL_JWT_SECRET":                 {"VIGIL_JWT_SECRET": "short"},
		"VIGIL_JWT_SECRET_FILE":            {"VIGIL_JWT_SECRET_FILE": "/does/not/exist"},
		"VIGIL_JWT_ACCESS_TTL":             {"VIGIL_JWT_ACCESS_TTL": "48h"},
		"VIGIL_JWT_REFRESH_TTL":            {"VIGIL_JWT_ACCESS_TTL": "1h", "VIGIL_JWT_REFRESH_TTL": "30m"},
		"VIGIL_ADMIN_EMAIL":                {"VIGIL_ADMIN_EMAIL": "Admin <admin@example.com>"},
		"VIGIL_ADMIN_PASSWORD":             {"VIGIL_ADMIN_PASSWORD": "short"},
		"VIGIL_LOGIN_MAX_FAILURES":         {"VIGIL_LOGIN_MAX_FAILURES": "0"},
		"VIGIL_LOGIN_ADDRESS_MAX_FAILURES": {"VIGIL_LOGIN_ADDRESS_MAX_FAILURES": "many"},
		"VIGIL_LOGIN_LOCKOUT_MAX":          {"VIGIL_LOGIN_LOCKOUT": "1h", "VIGIL_LOGIN_LOCKOUT_MAX": "1m"},
		"VIGIL_RATE_LIMIT_API":             {"VIGIL_RATE_LIMIT_API": "100"},
		"VIGIL_RATE_LIMIT_UPLOAD":          {"VIGIL_RATE_LIMIT_UPLOAD": "0/h"},
		"VIGIL_TRUSTED_PROXIES":            {"VIGIL_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"},
		"VIGIL_CLIENT_IPV6_PREFIX":         {"VIGIL_CLIENT_IPV6_PREFIX": "16"},
		"VIGIL_CORS_ORIGINS":               {"VIGIL_CORS_ORIGINS": "*"},
	}
	for _, bad := range []string{"null", "https://*.example.com", "https://example.com/path", "example.com", "ftp://example.com"} {
		cases["VIGIL_CORS_ORIGINS "+bad] = map[string]string{"VIGIL_CORS_ORIGINS": bad}
	}
	for name, env := range cases {
		_, err := Load(envOf(env))
		want, _, _ := strings.Cut(name, " ")
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s %v: error %v, want ErrInvalid naming %s", name, env, err, want)
		}
	}
}
