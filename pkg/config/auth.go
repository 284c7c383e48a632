package config

import (
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/pkg/ratelimit"
)

// Auth is the access-control settings (docs/security.md).
type Auth struct {
	// JWTSecret signs the tokens. Empty: the api generates one and keeps it in the data dir,
	// which only the embedded default (one api process) may do.
	JWTSecret     string
	AccessTTL     time.Duration
	RefreshTTL    time.Duration
	AdminEmail    string // the first-start admin; "" = admin@localhost
	AdminPassword string // "" = generated and logged once (embedded default)

	// Failed logins lock an account (the e-mail tried) and a client address out.
	LoginAccount ratelimit.Lockout
	LoginAddress ratelimit.Lockout
	// IPv6Prefix is how many leading bits of an IPv6 address name one client for the
	// per-address counters (login lockout, auth rate limit): a /64 by default, since one
	// client usually holds a whole /64 to rotate through.
	IPv6Prefix int

	Rates RateLimits

	// TrustedProxies may set X-Forwarded-For; with none, the client address is the peer's.
	TrustedProxies []netip.Prefix
	// CORSOrigins are the browser origins allowed to call the API; none = no CORS headers.
	CORSOrigins []string
}

// RateLimits are per user or API key (per address for the unauthenticated /auth routes).
type RateLimits struct {
	API       ratelimit.Rate
	Upload    ratelimit.Rate
	ExportCSV ratelimit.Rate
	ExportPDF ratelimit.Rate
	Auth      ratelimit.Rate
}

// Default rate limits of the authenticated routes (VIGIL_RATE_LIMIT_API, _UPLOAD).
const (
	DefaultRateAPI    = "600/1m burst 300"
	DefaultRateUpload = "600/1h burst 200"
)

// DefaultAdminEmail is the first-start admin's address when VIGIL_ADMIN_EMAIL is unset.
const DefaultAdminEmail = "admin@localhost"

func loadAuth(e *env) Auth {
	return Auth{
		JWTSecret:     e.secret("VIGIL_JWT_SECRET"),
		AccessTTL:     e.duration("VIGIL_JWT_ACCESS_TTL", 15*time.Minute),
		RefreshTTL:    e.duration("VIGIL_JWT_REFRESH_TTL", 7*24*time.Hour),
		AdminEmail:    strings.ToLower(e.str("VIGIL_ADMIN_EMAIL", DefaultAdminEmail)),
		AdminPassword: e.secret("VIGIL_ADMIN_PASSWORD"),
		LoginAccount: ratelimit.Lockout{
			MaxFailures: e.integer("VIGIL_LOGIN_MAX_FAILURES", 5, 1, 1000),
			Window:      e.duration("VIGIL_LOGIN_FAILURE_WINDOW", 15*time.Minute),
			Base:        e.duration("VIGIL_LOGIN_LOCKOUT", time.Minute),
			Max:         e.duration("VIGIL_LOGIN_LOCKOUT_MAX", 15*time.Minute),
		},
		LoginAddress: ratelimit.Lockout{
			MaxFailures: e.integer("VIGIL_LOGIN_ADDRESS_MAX_FAILURES", 20, 1, 100000),
			Window:      e.duration("VIGIL_LOGIN_FAILURE_WINDOW", 15*time.Minute),
			Base:        e.duration("VIGIL_LOGIN_LOCKOUT", time.Minute),
			Max:         e.duration("VIGIL_LOGIN_LOCKOUT_MAX", 15*time.Minute),
		},
		IPv6Prefix: e.integer("VIGIL_CLIENT_IPV6_PREFIX", ratelimit.DefaultIPv6Prefix, 32, 128),
		Rates: RateLimits{
			// Token buckets sized from what people and scripts do (docs/security.md): the
			// dashboard peaks near 150 requests a minute per tab, a script reading reports
			// fires a few hundred at once, and the dashboard's upload page sends a file a request.
			API:    e.rate("VIGIL_RATE_LIMIT_API", DefaultRateAPI),
			Upload: e.rate("VIGIL_RATE_LIMIT_UPLOAD", DefaultRateUpload),
			// The export rate classes (pkg/export): CSV and XLSX share one, the PDF has its own.
			ExportCSV: e.rate("VIGIL_RATE_LIMIT_EXPORT_CSV", "10/1m"),
			ExportPDF: e.rate("VIGIL_RATE_LIMIT_EXPORT_PDF", "5/1m"),
			Auth:      e.rate("VIGIL_RATE_LIMIT_AUTH", "30/1m"),
		},
		TrustedProxies: e.prefixes("VIGIL_TRUSTED_PROXIES"),
		CORSOrigins:    e.origins("VIGIL_CORS_ORIGINS"),
	}
}

func (a Auth) validate() error {
	if a.JWTSecret != "" && len(a.JWTSecret) < 32 {
		return fmt.Errorf("%w: VIGIL_JWT_SECRET has %d bytes; use at least 32 random bytes (openssl rand -base64 48)", ErrInvalid, len(a.JWTSecret))
	}
	if a.AccessTTL > 24*time.Hour {
		return fmt.Errorf("%w: VIGIL_JWT_ACCESS_TTL %v: at most 24h (access tokens are meant to be short-lived)", ErrInvalid, a.AccessTTL)
	}
	if a.RefreshTTL <= a.AccessTTL || a.RefreshTTL > 365*24*time.Hour {
		return fmt.Errorf("%w: VIGIL_JWT_REFRESH_TTL %v: want longer than VIGIL_JWT_ACCESS_TTL and at most 8760h", ErrInvalid, a.RefreshTTL)
	}
	if addr, err := mail.ParseAddress(a.AdminEmail); err != nil || addr.Address != a.AdminEmail {
		return fmt.Errorf("%w: VIGIL_ADMIN_EMAIL %q: want one plain address such as admin@example.com", ErrInvalid, a.AdminEmail)
	}
	if a.AdminPassword != "" && utf8.RuneCountInString(a.AdminPassword) < 12 {
		return fmt.Errorf("%w: VIGIL_ADMIN_PASSWORD is shorter than 12 characters", ErrInvalid)
	}
	if a.LoginAccount.Max < a.LoginAccount.Base {
		return fmt.Errorf("%w: VIGIL_LOGIN_LOCKOUT_MAX (%v) is shorter than VIGIL_LOGIN_LOCKOUT (%v)", ErrInvalid, a.LoginAccount.Max, a.LoginAccount.Base)
	}
	return nil
}

func (e *env) rate(name, def string) ratelimit.Rate {
	v := e.str(name, def)
	r, err := ratelimit.ParseRate(v)
	if err != nil {
		e.fail(name, v, "want N/PERIOD, optionally with a burst, such as 600/1m burst 300, 20/h or 1000/d, or off")
		d, _ := ratelimit.ParseRate(def)
		return d
	}
	return r
}

func (e *env) list(name string) []string {
	var out []string
	for _, s := range strings.Split(e.str(name, ""), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// prefixes reads IP addresses and CIDR ranges: "10.0.0.0/8, 192.0.2.7, ::1".
func (e *env) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range e.list(name) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				e.fail(name, s, "want IP addresses or CIDR ranges separated by commas, such as 10.0.0.0/8,192.0.2.7")
				return nil
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

// origins reads exact browser origins, scheme://host[:port]; "*" and "null" are refused: an
// allow-list is the point.
func (e *env) origins(name string) []string {
	var out []string
	for _, s := range e.list(name) {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" || strings.Contains(u.Host, "*") {
			e.fail(name, s, "want exact origins such as https://vigil.example.com, separated by commas (no *, no null, no path)")
			return nil
		}
		out = append(out, strings.ToLower(s))
	}
	return out
}
