package httpapi_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/pkg/reports"
)

type specDoc struct {
	Paths map[string]map[string]struct {
		Parameters []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Required   []string       `json:"required"`
			Properties map[string]any `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

func servedSpec(t *testing.T) specDoc {
	t.Helper()
	b, err := httpapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var d specDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// The query parameters each route accepts are exactly those the document lists: a documented
// parameter the server refused, or one it took silently, would break clients either way.
func TestQueryParamsMatchSpec(t *testing.T) {
	t.Parallel()
	d := servedSpec(t)
	declared := httpapi.QueryParams()
	for path, names := range analytics.Params() {
		declared["GET "+path] = names
	}
	for path, names := range export.Params() {
		declared["GET "+path] = names
	}
	for _, rt := range httpapi.Routes() {
		if strings.HasPrefix(rt.Path, "/monitoring") {
			continue
		}
		key := rt.Method + " " + rt.Path
		names, ok := declared[key]
		if !ok {
			// Not yet strict (a feature that has not declared its Set): nothing to compare.
			t.Logf("%s: no query parameters declared (apiparams.Set); not checked", key)
			continue
		}
		p := rt.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		var documented []string
		for _, prm := range d.Paths[p][strings.ToLower(rt.Method)].Parameters {
			if prm.In == "query" {
				documented = append(documented, prm.Name)
			}
		}
		slices.Sort(documented)
		if !slices.Equal(documented, names) {
			t.Errorf("%s: the server takes %v, the document lists %v", key, names, documented)
		}
	}
}

// jsonFields are the JSON names of a struct's fields (embedded structs flattened) and those
// always sent (without omitempty).
func jsonFields(rt reflect.Type) (all, always []string) {
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			a, w := jsonFields(f.Type)
			all, always = append(all, a...), append(always, w...)
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") {
			always = append(always, name)
		}
	}
	slices.Sort(all)
	slices.Sort(always)
	return all, always
}

// Each response schema has the Go type's fields as properties and marks required exactly the
// ones the server always sends, so generated clients get non-optional fields where they can.
func TestSchemasMatchGoTypes(t *testing.T) {
	t.Parallel()
	d := servedSpec(t)
	types := map[string]any{
		"Report": reports.ReportView{}, "Policy": reports.PolicyView{}, "Record": reports.RecordView{}, "Domain": reports.DomainView{},
		"Ingest": reports.IngestView{}, "User": auth.User{}, "Tokens": auth.Tokens{}, "APIKey": auth.Key{}, "AuditEntry": audit.Entry{},
		"MailboxStatus": mailpoll.MailboxStatus{}, "MailboxPollResult": mailpoll.PollResult{}, "MailboxProgress": mailpoll.Progress{},
		"MailboxTest": mailpoll.TestResult{},
		"TaskStatus":  httpapi.TaskStatus{}, "Problem": httpapi.Problem{},
	}
	for name, v := range types {
		s, ok := d.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		all, always := jsonFields(reflect.TypeOf(v))
		var props []string
		for p := range s.Properties {
			props = append(props, p)
		}
		slices.Sort(props)
		req := slices.Sorted(slices.Values(s.Required))
		if !slices.Equal(all, props) || !slices.Equal(always, req) {
			t.Errorf("schema %s: properties %v required %v; Go fields %v, always sent %v", name, props, req, all, always)
		}
	}
}
