package deployments_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// typed is the Go type of each kind the base may hold, by apiVersion and kind: the schema a
// manifest is checked against. kubeconform is not served by the module registry this project
// builds from, and it reads its JSON schemas from the network; the k8s.io/api types are the
// source those schemas are generated from, and a strict decode into them (unknown or
// misplaced fields, wrong types: an error) checks the same structure offline.
var typed = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// build runs `kustomize build deployments/kubernetes` in process (krusty, the library the
// kustomize and kubectl binaries run) and returns each resource as JSON.
func build(t *testing.T) map[string][]byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), "kubernetes")
	if err != nil {
		t.Fatalf("kustomize build deployments/kubernetes: %v", err)
	}
	out := map[string][]byte{}
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		gvk := r.GetGvk()
		key := fmt.Sprintf("%s/%s/%s", gvk.ApiVersion(), gvk.Kind, r.GetName())
		if _, dup := out[key]; dup {
			t.Errorf("kustomize build yields %s twice", key)
		}
		out[key] = b
	}
	return out
}

// strict decodes b into v, refusing unknown fields.
func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// TestKustomizeBuildValidates: the base builds, every resource decodes strictly into its
// Kubernetes type, and the references between them hold (selectors select their pods, the
// HPA and PDBs name existing workloads, volumes name existing Secrets and ConfigMaps).
func TestKustomizeBuildValidates(t *testing.T) {
	t.Parallel()
	res := build(t)
	if len(res) < 10 {
		t.Fatalf("kustomize build gave %d resources, want the whole base", len(res))
	}
	deployments := map[string]*appsv1.Deployment{}
	names := map[string]bool{}
	var pods []corev1.PodTemplateSpec
	var hpas []*autoscalingv2.HorizontalPodAutoscaler
	var pdbs []*policyv1.PodDisruptionBudget
	var services []*corev1.Service
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		b := res[key]
		var meta struct{ APIVersion, Kind string }
		if err := json.Unmarshal(b, &meta); err != nil {
			t.Fatal(err)
		}
		mk := typed[meta.APIVersion+"/"+meta.Kind]
		if mk == nil {
			t.Errorf("%s: no schema for %s %s here; add its type to the table", key, meta.APIVersion, meta.Kind)
			continue
		}
		v := mk()
		if err := strict(b, v); err != nil {
			t.Errorf("%s does not match the %s schema: %v", key, meta.Kind, err)
			continue
		}
		switch o := v.(type) {
		case *appsv1.Deployment:
			deployments[o.Name] = o
			pods = append(pods, o.Spec.Template)
			sel, err := metaSelector(o.Spec.Selector.MatchLabels)
			if err != nil || !sel.Matches(labels.Set(o.Spec.Template.Labels)) {
				t.Errorf("Deployment %s: its selector does not select its own pods (%v)", o.Name, err)
			}
		case *batchv1.Job:
			pods = append(pods, o.Spec.Template)
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *corev1.Service:
			services = append(services, o)
		}
		names[meta.Kind+"/"+nameOf(b)] = true
	}
	for _, h := range hpas {
		d := deployments[h.Spec.ScaleTargetRef.Name]
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || d == nil {
			t.Errorf("HPA %s scales %s %s, which the base does not hold", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas || len(h.Spec.Metrics) == 0 {
			t.Errorf("HPA %s: replicas %v–%d, %d metrics", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas, len(h.Spec.Metrics))
		}
	}
	for _, p := range pdbs {
		sel, err := metaSelector(p.Spec.Selector.MatchLabels)
		n := 0
		for _, d := range deployments {
			if err == nil && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("PodDisruptionBudget %s selects the pods of %d Deployments, want 1", p.Name, n)
		}
	}
	for _, s := range services {
		sel, err := metaSelector(s.Spec.Selector)
		n := 0
		for _, d := range deployments {
			if err == nil && len(s.Spec.Selector) > 0 && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("Service %s selects no pods of the base", s.Name)
		}
	}
	if d := deployments["vigil-scheduler"]; d == nil || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Error("vigil-scheduler: want exactly one replica, replaced with Recreate")
	}
	for _, p := range pods {
		for _, v := range p.Spec.Volumes {
			switch {
			case v.Secret != nil && !names["Secret/"+v.Secret.SecretName]:
				t.Errorf("pod volume %s names Secret %s, not in the base", v.Name, v.Secret.SecretName)
			case v.ConfigMap != nil && !names["ConfigMap/"+v.ConfigMap.Name]:
				t.Errorf("pod volume %s names ConfigMap %s, not in the base", v.Name, v.ConfigMap.Name)
			}
		}
		for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil && !names["ConfigMap/"+e.ConfigMapRef.Name] {
					t.Errorf("container %s reads ConfigMap %s, not in the base", c.Name, e.ConfigMapRef.Name)
				}
			}
		}
	}
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("empty selector")
	}
	return labels.SelectorFromSet(m), nil
}

func nameOf(b []byte) string {
	var o struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	_ = json.Unmarshal(b, &o)
	return o.Metadata.Name
}
