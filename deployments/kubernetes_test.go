package deployments_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/vigilhq/vigil/pkg/config"
)

// object is one Kubernetes object as parsed YAML.
type object map[string]any

func (o object) kind() string { return str(o, "kind") }
func (o object) name() string { return str(o, "metadata", "name") }

// get walks maps by key and lists by index (an int key).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m := asMap(v)
			if m == nil {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// asMap is v as a map: the decoder gives nested mappings the type of the top-level one.
func asMap(v any) map[string]any {
	switch m := v.(type) {
	case object:
		return m
	case map[string]any:
		return m
	}
	return nil
}

func str(v any, path ...any) string { s, _ := get(v, path...).(string); return s }
func list(v any, path ...any) []any { l, _ := get(v, path...).([]any); return l }

// loadK8s parses every object of the files deployments/kubernetes/kustomization.yaml lists, and
// checks it lists every manifest in the folder.
func loadK8s(t *testing.T) []object {
	t.Helper()
	var kust object
	b, err := os.ReadFile("kubernetes/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	var listed []string
	var objs []object
	for _, r := range list(kust, "resources") {
		name := r.(string)
		listed = append(listed, filepath.Join("kubernetes", name))
		f, err := os.Open(filepath.Join("kubernetes", name))
		if err != nil {
			t.Fatalf("kustomization lists %s: %v", name, err)
		}
		dec := yaml.NewDecoder(f)
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if o == nil {
				continue
			}
			if o.kind() == "" || str(o, "apiVersion") == "" || o.name() == "" {
				t.Errorf("%s: an object without apiVersion, kind or metadata.name: %v", name, o)
			}
			objs = append(objs, o)
		}
		f.Close()
	}
	for _, f := range files {
		if !strings.HasSuffix(f, "kustomization.yaml") && !slices.Contains(listed, f) {
			t.Errorf("%s is not in kustomization.yaml's resources", f)
		}
	}
	return objs
}

func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	return nil
}

// The manifests are well-formed and say what the issue asks: api with probes on /health and
// /ready, workers with replicas and an HPA, exactly one scheduler, a migrate Job, secrets as
// files, resources, non-root read-only containers, disruption budgets and a NetworkPolicy.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	objs := loadK8s(t)
	api, worker, sched := find(objs, "Deployment", "vigil-api"), find(objs, "Deployment", "vigil-worker"), find(objs, "Deployment", "vigil-scheduler")
	if api == nil || worker == nil || sched == nil || find(objs, "Job", "vigil-migrate") == nil {
		t.Fatal("want Deployments vigil-api, vigil-worker, vigil-scheduler and Job vigil-migrate")
	}
	if r, _ := get(sched, "spec", "replicas").(int); r != 1 || str(sched, "spec", "strategy", "type") != "Recreate" {
		t.Errorf("scheduler: replicas %v, strategy %q; want exactly 1 with Recreate", get(sched, "spec", "replicas"), str(sched, "spec", "strategy", "type"))
	}
	if r, _ := get(worker, "spec", "replicas").(int); r < 2 {
		t.Errorf("worker: %d replicas, want several", r)
	}
	hpa := find(objs, "HorizontalPodAutoscaler", "vigil-worker")
	if hpa == nil || str(hpa, "spec", "scaleTargetRef", "name") != "vigil-worker" {
		t.Error("no HorizontalPodAutoscaler scaling vigil-worker")
	}
	c := get(api, "spec", "template", "spec", "containers", 0)
	for probe, path := range map[string]string{"livenessProbe": "/health", "readinessProbe": "/ready"} {
		if p := str(c, probe, "httpGet", "path"); p != path {
			t.Errorf("api %s on %q, want %s", probe, p, path)
		}
	}
	for _, d := range []object{worker, sched} {
		cmd := list(d, "spec", "template", "spec", "containers", 0, "livenessProbe", "exec", "command")
		if len(cmd) != 2 || cmd[1] != "healthcheck" {
			t.Errorf("%s: liveness %v, want its binary's healthcheck", d.name(), cmd)
		}
	}

	var cm, secret object
	for _, o := range objs {
		switch o.kind() {
		case "ConfigMap":
			cm = o
		case "Secret":
			secret = o
		}
	}
	pods := 0
	for _, o := range objs {
		spec := get(o, "spec", "template", "spec")
		if spec == nil {
			continue
		}
		pods++
		if o.kind() == "Deployment" {
			sel := asMap(get(o, "spec", "selector", "matchLabels"))
			labels := asMap(get(o, "spec", "template", "metadata", "labels"))
			for k, v := range sel {
				if labels[k] != v {
					t.Errorf("%s: selector %s=%v does not match its pods", o.name(), k, v)
				}
			}
		}
		if get(spec, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: pods may run as root", o.name())
		}
		if get(spec, "automountServiceAccountToken") != false {
			t.Errorf("%s: mounts a service account token it never uses", o.name())
		}
		for _, ct := range list(spec, "containers") {
			if get(ct, "securityContext", "readOnlyRootFilesystem") != true || get(ct, "securityContext", "allowPrivilegeEscalation") != false {
				t.Errorf("%s/%s: want a read-only root filesystem and no privilege escalation", o.name(), str(ct, "name"))
			}
			for _, r := range [][]any{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
				if get(ct, append([]any{"resources"}, r...)...) == nil {
					t.Errorf("%s/%s: no resources.%s.%s", o.name(), str(ct, "name"), r[0], r[1])
				}
			}
			bin := strings.TrimPrefix(str(ct, "command", 0), "/usr/local/bin/")
			if _, err := os.Stat(filepath.Join("..", "cmd", bin)); err != nil {
				t.Errorf("%s: runs %q, not one of cmd/'s binaries", o.name(), bin)
			}
			if str(ct, "envFrom", 0, "configMapRef", "name") != cm.name() {
				t.Errorf("%s: does not read the ConfigMap %s", o.name(), cm.name())
			}
			for _, e := range list(ct, "env") {
				if get(e, "valueFrom", "secretKeyRef") != nil {
					t.Errorf("%s: secret %s in the environment; mount it as a file", o.name(), str(e, "name"))
				}
			}
		}
		var mounted bool
		for _, v := range list(spec, "volumes") {
			mounted = mounted || str(v, "secret", "secretName") == secret.name()
		}
		if !mounted {
			t.Errorf("%s: does not mount the Secret %s", o.name(), secret.name())
		}
	}
	if pods != 4 {
		t.Errorf("%d pod templates, want 4 (api, worker, scheduler, migrate)", pods)
	}
	for _, name := range []string{"vigil-api", "vigil-worker"} {
		if find(objs, "PodDisruptionBudget", name) == nil {
			t.Errorf("no PodDisruptionBudget %s", name)
		}
	}
	checkNetworkPolicy(t, objs)
	checkConfig(t, cm, secret)
}

// checkNetworkPolicy wants every Vigil pod's ingress denied by default and the metrics port
// open to a named source only.
func checkNetworkPolicy(t *testing.T, objs []object) {
	t.Helper()
	var deny, metrics bool
	for _, o := range objs {
		if o.kind() != "NetworkPolicy" {
			continue
		}
		sel := asMap(get(o, "spec", "podSelector", "matchLabels"))
		ingress := list(o, "spec", "ingress")
		if len(sel) == 1 && sel["app.kubernetes.io/name"] == "vigil" && len(ingress) == 0 {
			deny = true
		}
		for _, in := range ingress {
			for _, p := range list(in, "ports") {
				if get(p, "port") == 9090 && len(list(in, "from")) > 0 {
					metrics = true
				}
				if get(p, "port") == 9090 && len(list(in, "from")) == 0 {
					t.Errorf("%s opens the metrics port to everyone", o.name())
				}
			}
		}
	}
	if !deny || !metrics {
		t.Errorf("NetworkPolicy: default deny %v, metrics from Prometheus only %v; want both", deny, metrics)
	}
}

// checkConfig loads the ConfigMap's settings, the Secret's values written where they are
// mounted, with pkg/config: what the pods would start with is valid.
func checkConfig(t *testing.T, cm, secret object) {
	t.Helper()
	dir := t.TempDir()
	values := map[string]string{
		// The example's placeholders are replaced by real-shaped values: what is checked is that
		// every setting is a variable Vigil knows and every file it names is in the Secret.
		"jwt-secret":     "k8s-test-secret-of-at-least-thirty-two-bytes",
		"encryption-key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
	}
	for k, v := range asMap(get(secret, "stringData")) {
		if values[k] == "" {
			values[k] = v.(string)
		}
		if err := os.WriteFile(filepath.Join(dir, k), []byte(values[k]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{}
	for k, v := range asMap(get(cm, "data")) {
		s := fmt.Sprint(v)
		if strings.HasSuffix(k, "_FILE") {
			key := strings.TrimPrefix(s, "/run/secrets/vigil/")
			if _, ok := values[key]; !ok {
				t.Errorf("%s names %s, which the Secret lacks", k, s)
			}
			s = filepath.Join(dir, key)
		}
		if !documented(t, k) {
			t.Errorf("ConfigMap sets %s, which docs/configuration.md does not document", k)
		}
		env[k] = s
	}
	if _, err := config.Load(func(k string) string { return env[k] }); err != nil {
		t.Errorf("the ConfigMap and Secret do not load: %v", err)
	}
}

func documented(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), "`"+strings.TrimSuffix(name, "_FILE")+"`")
}
