package config

import (
	"net/netip"
	"strings"

	"github.com/vigilhq/vigil/pkg/outbound"
)

// Outbound is the destination policy for connections Vigil opens on a user's say-so
// (pkg/outbound): alert channels and mailboxes added through the API.
type Outbound struct {
	Allow        []netip.Prefix // VIGIL_OUTBOUND_ALLOW addresses and ranges
	AllowHosts   []string       // VIGIL_OUTBOUND_ALLOW host names
	AllowPrivate bool           // VIGIL_OUTBOUND_ALLOW_PRIVATE
}

// Policy is the policy these settings describe.
func (o Outbound) Policy() *outbound.Policy {
	return &outbound.Policy{Allow: o.Allow, AllowHosts: o.AllowHosts, AllowPrivate: o.AllowPrivate}
}

// SMTP is the mail server e-mail alerts (and later digests) go through: VIGIL_SMTP_*.
type SMTP struct {
	Host     string
	Port     int
	Username string
	Password string
	From     string
	TLS      string // starttls, tls, none
}

func loadOutbound(e *env) Outbound {
	var o Outbound
	if v := e.str("VIGIL_OUTBOUND_ALLOW", ""); v != "" {
		allow, hosts, err := outbound.Parse(v)
		if err != nil {
			e.fail("VIGIL_OUTBOUND_ALLOW", v, "comma-separated addresses, CIDR prefixes or host names ("+err.Error()+")")
		}
		o.Allow, o.AllowHosts = allow, hosts
	}
	o.AllowPrivate = e.oneOf("VIGIL_OUTBOUND_ALLOW_PRIVATE", "false", "false", "true") == "true"
	return o
}

func loadSMTP(e *env) SMTP {
	s := SMTP{
		Host:     strings.TrimSpace(e.str("VIGIL_SMTP_HOST", "")),
		Username: e.str("VIGIL_SMTP_USERNAME", ""),
		Password: e.secret("VIGIL_SMTP_PASSWORD"),
		From:     strings.TrimSpace(e.str("VIGIL_SMTP_FROM", "")),
		TLS:      e.oneOf("VIGIL_SMTP_TLS", "starttls", "starttls", "tls", "none"),
	}
	def := 587
	if s.TLS == "tls" {
		def = 465
	}
	s.Port = e.integer("VIGIL_SMTP_PORT", def, 1, 65535)
	if s.Host != "" && s.From == "" {
		e.fail("VIGIL_SMTP_FROM", "", "set the sender address of alert e-mail when VIGIL_SMTP_HOST is set")
	}
	if s.Username != "" && s.Password == "" {
		e.fail("VIGIL_SMTP_PASSWORD", "", "set it (or VIGIL_SMTP_PASSWORD_FILE) with VIGIL_SMTP_USERNAME")
	}
	return s
}
