package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/mailbox"
)

func TestIMAPUnset(t *testing.T) {
	t.Parallel()
	c, err := Load(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.IMAP.Configured() || c.IMAP.Mailbox != nil || c.IMAP.PollInterval != 15*time.Minute {
		t.Fatalf("no VIGIL_IMAP_HOST: %+v", c.IMAP)
	}
}

func TestIMAPDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(envOf(map[string]string{
		"VIGIL_IMAP_HOST": "imap.example.org", "VIGIL_IMAP_USERNAME": "dmarc@example.org", "VIGIL_IMAP_PASSWORD": "pw",
	}))
	if err != nil {
		t.Fatal(err)
	}
	m := c.IMAP.Mailbox
	if m == nil {
		t.Fatal("mailbox not configured")
	}
	want := mailbox.Config{Host: "imap.example.org", Username: "dmarc@example.org", Password: "pw", TLS: mailbox.TLSImplicit,
		Folder: "INBOX", ArchiveFolder: "Archive", InvalidFolder: "Invalid", Policy: mailbox.PolicyMove,
		MaxMessageBytes: c.Limits.FileBytes, BatchSize: mailbox.DefaultBatchSize, OpTimeout: mailbox.DefaultOpTimeout}
	if m.String() != want.String() || m.Password != "pw" || m.Port != 0 || m.WithDefaults().Port != 993 {
		t.Fatalf("mailbox %v, want %v", m, want)
	}
	if c.IMAP.PollInterval != 15*time.Minute {
		t.Fatalf("poll interval %s", c.IMAP.PollInterval)
	}
}

func TestIMAPValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(envOf(map[string]string{
		"VIGIL_IMAP_HOST": "10.0.0.5", "VIGIL_IMAP_PORT": "1143", "VIGIL_IMAP_USERNAME": "u",
		"VIGIL_IMAP_OAUTH2_TOKEN_FILE": tokenFile, "VIGIL_IMAP_TLS": "NONE", "VIGIL_IMAP_ALLOW_PLAIN": "true",
		"VIGIL_IMAP_FOLDER": "DMARC", "VIGIL_IMAP_ARCHIVE_FOLDER": "DMARC/Done", "VIGIL_IMAP_INVALID_FOLDER": "DMARC/Bad",
		"VIGIL_IMAP_POLICY": "seen", "VIGIL_IMAP_BATCH_SIZE": "25", "VIGIL_IMAP_OP_TIMEOUT": "2m",
		"VIGIL_IMAP_POLL_INTERVAL": "5m", "VIGIL_MAX_FILE_BYTES": "10MiB",
	}))
	if err != nil {
		t.Fatal(err)
	}
	m := c.IMAP.Mailbox
	if m.Host != "10.0.0.5" || m.Port != 1143 || m.OAuth2TokenFile != tokenFile || m.Password != "" || m.TLS != mailbox.TLSNone ||
		!m.AllowPlain || m.Folder != "DMARC" || m.ArchiveFolder != "DMARC/Done" || m.InvalidFolder != "DMARC/Bad" ||
		m.Policy != mailbox.PolicySeen || m.BatchSize != 25 || m.OpTimeout != 2*time.Minute || m.MaxMessageBytes != 10<<20 ||
		c.IMAP.PollInterval != 5*time.Minute {
		t.Fatalf("values: %+v", *m)
	}
}

func TestIMAPPasswordFile(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(envOf(map[string]string{"VIGIL_IMAP_HOST": "imap.example.org", "VIGIL_IMAP_USERNAME": "u", "VIGIL_IMAP_PASSWORD_FILE": f}))
	if err != nil {
		t.Fatal(err)
	}
	if c.IMAP.Mailbox.Password != "s3cret" {
		t.Fatalf("password %q", c.IMAP.Mailbox.Password)
	}
}

// Every error names the variable to fix, never the poller's field name, and never prints the
// password.
func TestIMAPErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	base := func(kv ...string) map[string]string {
		m := map[string]string{"VIGIL_IMAP_HOST": "imap.example.org", "VIGIL_IMAP_USERNAME": "u", "VIGIL_IMAP_PASSWORD": "hunter2-secret"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		want string
		env  map[string]string
	}{
		{"VIGIL_IMAP_HOST", base("VIGIL_IMAP_HOST", "imap.example.org:993")},
		{"VIGIL_IMAP_HOST", map[string]string{"VIGIL_IMAP_USERNAME": "u"}},
		{"VIGIL_IMAP_PORT", base("VIGIL_IMAP_PORT", "99999")},
		{"VIGIL_IMAP_USERNAME", base("VIGIL_IMAP_USERNAME", "")},
		{"VIGIL_IMAP_PASSWORD", base("VIGIL_IMAP_PASSWORD", "")},
		{"VIGIL_IMAP_OAUTH2_TOKEN_FILE", base("VIGIL_IMAP_OAUTH2_TOKEN_FILE", "/run/token")},
		{"VIGIL_IMAP_PASSWORD_FILE", base("VIGIL_IMAP_PASSWORD_FILE", "/does/not/exist")},
		{"VIGIL_IMAP_TLS", base("VIGIL_IMAP_TLS", "ssl")},
		{"VIGIL_IMAP_ALLOW_PLAIN", base("VIGIL_IMAP_TLS", "none")},
		{"VIGIL_IMAP_ALLOW_PLAIN", base("VIGIL_IMAP_ALLOW_PLAIN", "maybe")},
		{"VIGIL_IMAP_CA_FILE", base("VIGIL_IMAP_CA_FILE", "/does/not/exist.pem")},
		{"VIGIL_IMAP_ARCHIVE_FOLDER", base("VIGIL_IMAP_ARCHIVE_FOLDER", "inbox")},
		{"VIGIL_IMAP_INVALID_FOLDER", base("VIGIL_IMAP_INVALID_FOLDER", "INBOX")},
		{"VIGIL_IMAP_POLICY", base("VIGIL_IMAP_POLICY", "delete")},
		{"VIGIL_IMAP_BATCH_SIZE", base("VIGIL_IMAP_BATCH_SIZE", "5000")},
		{"VIGIL_IMAP_OP_TIMEOUT", base("VIGIL_IMAP_OP_TIMEOUT", "soon")},
		{"VIGIL_IMAP_POLL_INTERVAL", base("VIGIL_IMAP_POLL_INTERVAL", "10s")},
	}
	for _, tc := range cases {
		_, err := Load(envOf(tc.env))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want ErrInvalid naming %s", tc.env, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
		for _, field := range []string{"archive_folder", "allow_plain", "ca_file", "batch_size"} {
			if strings.Contains(err.Error(), field) {
				t.Errorf("error names the field %s, not its variable: %v", field, err)
			}
		}
	}
}

func TestIMAPVarNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"host: required":                                                      "VIGIL_IMAP_HOST: required",
		`host "a b": a host name only`:                                        `VIGIL_IMAP_HOST "a b": a host name only`,
		"tls none: refused without allow_plain, because":                      "VIGIL_IMAP_TLS none: refused without VIGIL_IMAP_ALLOW_PLAIN, because",
		"password, oauth2_token_file, oauth2_token_command: give exactly one": "VIGIL_IMAP_PASSWORD, VIGIL_IMAP_OAUTH2_TOKEN_FILE, oauth2_token_command: give exactly one",
		`archive_folder, invalid_folder: must differ from folder "INBOX"`:     `VIGIL_IMAP_ARCHIVE_FOLDER, VIGIL_IMAP_INVALID_FOLDER: must differ from folder "INBOX"`,
	} {
		if got := imapVarNames(in); got != want {
			t.Errorf("%q:\n got %q\nwant %q", in, got, want)
		}
	}
}
