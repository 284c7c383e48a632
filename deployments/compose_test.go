package deployments_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/vigilhq/vigil/pkg/config"
)

// load reads ../docker-compose.yml as `docker compose` does, with env as the shell's.
func load(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("vigil", true) })
}

// The compose file is valid, every long-running service has a healthcheck that its binary
// answers, and the api keeps its data dir on a named volume (issue 19: the api could not start
// on a root-owned mount point; worker and scheduler had no healthcheck).
func TestComposeFile(t *testing.T) {
	t.Parallel()
	if _, err := load(t, map[string]string{}); err == nil || !strings.Contains(err.Error(), "VIGIL_JWT_SECRET") {
		t.Fatalf("without VIGIL_JWT_SECRET: %v, want an error naming it", err)
	}
	p, err := load(t, map[string]string{"VIGIL_JWT_SECRET": strings.Repeat("s", 48)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postgres", "redis", "migrate", "api", "worker", "scheduler"} {
		if _, ok := p.Services[name]; !ok {
			t.Fatalf("service %s missing; have %v", name, p.ServiceNames())
		}
	}
	// Each Vigil service runs the binary its healthcheck asks.
	binary := map[string]string{"api": "api", "worker": "worker", "scheduler": "scheduler"}
	for name, svc := range p.Services {
		hc := svc.HealthCheck
		if name == "migrate" {
			if hc == nil || !hc.Disable || !slices.Equal(svc.Command, types.ShellCommand{"migrate"}) {
				t.Errorf("migrate: healthcheck %+v, command %v: want the one-shot migrate without a healthcheck", hc, svc.Command)
			}
			continue
		}
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Interval == nil {
			t.Errorf("%s: healthcheck %+v, want one", name, hc)
			continue
		}
		bin, ok := binary[name]
		if !ok {
			continue
		}
		if want := (types.HealthCheckTest{"CMD", "/usr/local/bin/" + bin, "healthcheck"}); !slices.Equal(hc.Test, want) {
			t.Errorf("%s: healthcheck %v, want %v", name, hc.Test, want)
		}
		if bin != "api" && !slices.Equal(svc.Entrypoint, types.ShellCommand{"/usr/local/bin/" + bin}) {
			t.Errorf("%s: entrypoint %v, want /usr/local/bin/%s", name, svc.Entrypoint, bin)
		}
		if svc.Build == nil || svc.Build.Dockerfile != "deployments/Dockerfile" {
			t.Errorf("%s: build %+v", name, svc.Build)
		}
		if svc.Environment["VIGIL_REDIS_URL"] == nil || svc.Environment["VIGIL_DATABASE_URL"] == nil {
			t.Errorf("%s: no VIGIL_REDIS_URL or VIGIL_DATABASE_URL", name)
		}
	}
	api := p.Services["api"]
	if !slices.ContainsFunc(api.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == "/var/lib/vigil" && p.Volumes[v.Source].Name != ""
	}) {
		t.Errorf("api volumes %+v: want a named volume on /var/lib/vigil", api.Volumes)
	}
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if g := p.Services["worker"].StopGracePeriod; g == nil || time.Duration(*g) <= cfg.ShutdownTimeout {
		t.Errorf("worker stop_grace_period %v, want longer than VIGIL_SHUTDOWN_TIMEOUT's %v", g, cfg.ShutdownTimeout)
	}
}

// The image creates its data dir owned by the user it runs as, declares the volume after
// that, and the build context leaves secrets and history out.
func TestDockerfileAndIgnore(t *testing.T) {
	t.Parallel()
	lines := func(path string) []string {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return out
	}
	df := lines("Dockerfile")
	at := func(prefix string) int {
		return slices.IndexFunc(df, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	final := slices.IndexFunc(df, func(l string) bool { return strings.HasPrefix(l, "FROM ") && strings.Contains(l, "nonroot") })
	chown := at("COPY --from=build --chown=65532:65532 ")
	volume := at("VOLUME /var/lib/vigil")
	user := at("USER 65532")
	switch {
	case final < 0:
		t.Errorf("no distroless nonroot final stage")
	case chown < final || !strings.HasSuffix(df[chown], " /var/lib/vigil"):
		t.Errorf("the final stage does not copy a data dir owned by 65532 to /var/lib/vigil")
	case volume < chown:
		t.Errorf("VOLUME /var/lib/vigil (line %d) must come after the data dir exists (line %d)", volume, chown)
	case user < final:
		t.Errorf("the final stage does not run as 65532")
	case at("ENV VIGIL_DATA_DIR=/var/lib/vigil") < final:
		t.Errorf("VIGIL_DATA_DIR is not the volume")
	}
	ignore := lines("../.dockerignore")
	for _, must := range []string{".git", "data", "*.log"} {
		if !slices.Contains(ignore, must) {
			t.Errorf(".dockerignore lacks %q: %v", must, ignore)
		}
	}
}
