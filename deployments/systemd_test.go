package deployments_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/config"
)

// unit is a parsed systemd unit file: section → key → values in order (keys repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line of a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// hardening is what every unit must set (the values systemd-analyze security rates safe).
var hardening = map[string]string{
	"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "", "PrivateTmp": "yes",
	"PrivateDevices": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "ProtectKernelTunables": "yes",
	"ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes",
	"ProtectHostname": "yes", "RestrictNamespaces": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
	"LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native", "PrivateUsers": "yes",
	"UMask": "0077", "User": "vigil",
}

// secrets are the credentials every unit loads, and the variable each is read through.
var secrets = map[string]string{"database-url": "VIGIL_DATABASE_URL_FILE", "redis-url": "VIGIL_REDIS_URL_FILE",
	"jwt-secret": "VIGIL_JWT_SECRET_FILE", "encryption-key": "VIGIL_ENCRYPTION_KEY_FILE"}

// TestSystemdUnits: each role's unit runs its binary as the vigil user with the hardening
// options, loads the secrets as credentials read through VIGIL_*_FILE (never from the
// environment file), and what it would start with loads through pkg/config. With
// systemd-analyze installed, the units also pass `systemd-analyze verify` without a warning
// and `systemd-analyze security --offline` at an exposure of 2.0 or less.
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	roles := map[string]string{"vigil-api.service": "/opt/vigil/bin/api", "vigil-worker.service": "/opt/vigil/bin/worker",
		"vigil-scheduler.service": "/opt/vigil/bin/scheduler", "vigil-migrate.service": "/opt/vigil/bin/api migrate"}
	files, _ := filepath.Glob("systemd/*.service")
	if len(files) != len(roles) {
		t.Errorf("systemd/ holds %v, want the units of %d roles", files, len(roles))
	}
	fileEnv := readEnvFile(t, "systemd/vigil.env")
	for k := range fileEnv {
		if !documented(t, k) {
			t.Errorf("vigil.env sets %s, which docs/configuration.md does not document", k)
		}
		if slices.Contains([]string{"VIGIL_JWT_SECRET", "VIGIL_ENCRYPTION_KEY", "VIGIL_ADMIN_PASSWORD", "VIGIL_DATABASE_URL", "VIGIL_REDIS_URL", "VIGIL_IMAP_PASSWORD"}, k) {
			t.Errorf("vigil.env sets the secret %s: secrets go in /etc/vigil/credentials/", k)
		}
	}
	for name, exe := range roles {
		u := parseUnit(t, filepath.Join("systemd", name))
		if got := u.get("Service", "ExecStart"); got != exe {
			t.Errorf("%s: ExecStart=%q, want %q", name, got, exe)
		}
		if u.get("Service", "EnvironmentFile") != "/etc/vigil/vigil.env" {
			t.Errorf("%s: no EnvironmentFile=/etc/vigil/vigil.env", name)
		}
		if u.get("Install", "WantedBy") != "multi-user.target" {
			t.Errorf("%s: not WantedBy=multi-user.target", name)
		}
		for k, want := range hardening {
			if vs, ok := u["Service"][k]; !ok || vs[len(vs)-1] != want {
				t.Errorf("%s: %s=%v, want %q", name, k, vs, want)
			}
		}
		if name != "vigil-migrate.service" {
			if u.get("Service", "Restart") != "on-failure" || !strings.Contains(u.get("Unit", "After"), "vigil-migrate.service") {
				t.Errorf("%s: want Restart=on-failure and to start after vigil-migrate.service", name)
			}
		}
		// The environment the service gets: the file, then Environment= lines with %d, the
		// credentials directory, pointing at the credentials.
		dir := t.TempDir()
		env := map[string]string{}
		for k, v := range fileEnv {
			env[k] = v
		}
		for _, line := range u["Service"]["Environment"] {
			for _, kv := range strings.Fields(line) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = strings.ReplaceAll(v, "%d", dir)
			}
		}
		loaded := map[string]bool{}
		for _, lc := range u["Service"]["LoadCredential"] {
			id, src, _ := strings.Cut(lc, ":")
			if !strings.HasPrefix(src, "/etc/vigil/credentials/") {
				t.Errorf("%s: credential %s from %s, want /etc/vigil/credentials/", name, id, src)
			}
			loaded[id] = true
		}
		values := map[string]string{"database-url": "postgres://vigil:x@127.0.0.1:5432/vigil", "redis-url": "redis://127.0.0.1:6379/0",
			"jwt-secret": "systemd-test-secret-of-at-least-thirty-two-bytes", "encryption-key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
		for id, variable := range secrets {
			if !loaded[id] || env[variable] != filepath.Join(dir, id) {
				t.Errorf("%s: want LoadCredential=%s and %s=%%d/%s", name, id, variable, id)
			}
			if err := os.WriteFile(filepath.Join(dir, id), []byte(values[id]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := config.Load(func(k string) string { return env[k] }); err != nil {
			t.Errorf("%s: its environment does not load: %v", name, err)
		}
	}
	analyze(t, files)
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(k, "VIGIL_") {
			t.Errorf("%s: %q is not a VIGIL_ setting", path, line)
			continue
		}
		out[k] = v
	}
	return out
}

// analyze runs systemd-analyze on copies of the units whose binaries are stubs in a temporary
// folder (verify checks that ExecStart names an executable).
func analyze(t *testing.T, files []string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the units were checked by the parser only")
		return
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"api", "worker", "scheduler"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var copies []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(c, bytes.ReplaceAll(b, []byte("/opt/vigil/bin/"), []byte(bin+"/")), 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, c)
	}
	out, err := exec.Command(sa, append([]string{"verify", "--man=no"}, copies...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, c := range copies {
		out, err := exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", c).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", filepath.Base(c), err, out[max(0, len(out)-400):])
		}
	}
}
