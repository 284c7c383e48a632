package config

import (
	"errors"
	"strings"
	"testing"
)

func TestOutboundAndSMTP(t *testing.T) {
	t.Parallel()
	c, err := Load(envOf(map[string]string{
		"VIGIL_OUTBOUND_ALLOW": "127.0.0.1/32, mail.corp.example,10.0.0.5", "VIGIL_OUTBOUND_ALLOW_PRIVATE": "true",
		"VIGIL_SMTP_HOST": "smtp.example.com", "VIGIL_SMTP_FROM": "vigil@example.com", "VIGIL_SMTP_TLS": "tls",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Outbound.Allow) != 2 || len(c.Outbound.AllowHosts) != 1 || c.Outbound.AllowHosts[0] != "mail.corp.example" || !c.Outbound.AllowPrivate {
		t.Errorf("outbound: %+v", c.Outbound)
	}
	if c.SMTP.Port != 465 || c.SMTP.TLS != "tls" {
		t.Errorf("smtp: %+v", c.SMTP)
	}
	for _, tc := range []struct {
		env  map[string]string
		name string
	}{
		{map[string]string{"VIGIL_OUTBOUND_ALLOW": "10.0.0.0/99"}, "VIGIL_OUTBOUND_ALLOW"},
		{map[string]string{"VIGIL_OUTBOUND_ALLOW_PRIVATE": "maybe"}, "VIGIL_OUTBOUND_ALLOW_PRIVATE"},
		{map[string]string{"VIGIL_SMTP_HOST": "smtp.example.com"}, "VIGIL_SMTP_FROM"},
		{map[string]string{"VIGIL_SMTP_TLS": "ssl"}, "VIGIL_SMTP_TLS"},
		{map[string]string{"VIGIL_SMTP_PORT": "70000"}, "VIGIL_SMTP_PORT"},
	} {
		_, err := Load(envOf(tc.env))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%v: got %v, want an error naming %s", tc.env, err, tc.name)
		}
	}
}
