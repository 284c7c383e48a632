package rollup_test

import (
	"slices"
	"testing"

	"github.com/vigilhq/vigil/pkg/rollup"
)

func TestOutcomeCodes(t *testing.T) {
	t.Parallel()
	seen := map[int8]bool{}
	for _, disp := range []string{"none", "quarantine", "reject", "pass", "", "weird"} {
		for _, dkim := range []string{"pass", "fail", ""} {
			for _, spf := range []string{"pass", "fail", "temperror"} {
				o := rollup.Outcome(disp, dkim, spf)
				if o < 0 || o >= rollup.Outcomes {
					t.Fatalf("Outcome(%q,%q,%q) = %d out of range", disp, dkim, spf, o)
				}
				seen[o] = true
				if got, want := rollup.DMARCPass(o), dkim == "pass" || spf == "pass"; got != want {
					t.Errorf("DMARCPass(%q,%q) = %v, want %v", dkim, spf, got, want)
				}
				if got := rollup.Dispositions[rollup.OutcomeDisposition(o)]; (disp == "none" || disp == "quarantine" || disp == "reject" || disp == "pass") && got != disp {
					t.Errorf("disposition of %q decodes as %q", disp, got)
				}
			}
		}
	}
	if len(seen) != rollup.Outcomes {
		t.Errorf("%d distinct codes, want %d", len(seen), rollup.Outcomes)
	}
	if got := rollup.OutcomeFilter("", "", ""); got != nil {
		t.Errorf("no filter = %v, want nil", got)
	}
	f := rollup.OutcomeFilter("fail", "pass", "reject")
	if want := []int8{rollup.Outcome("reject", "fail", "pass")}; !slices.Equal(f, want) {
		t.Errorf("OutcomeFilter(fail, pass, reject) = %v, want %v", f, want)
	}
	if got := len(rollup.OutcomeFilter("pass", "", "")); got != 15 {
		t.Errorf("dkim=pass admits %d codes, want 15", got)
	}
}

func pct(n int) *int { return &n }

// The policy compliance definition (see PublishedPolicy.Matched), case by case.
func TestMatched(t *testing.T) {
	t.Parallel()
	reject := rollup.PublishedPolicy{Domain: "example.com", P: "reject"}
	cases := []struct {
		name       string
		pol        rollup.PublishedPolicy
		headerFrom string
		disp       string
		dkim, spf  string
		want       bool
	}{
		{"pass delivered", reject, "example.com", "none", "pass", "fail", true},
		{"pass with RFC 9990 pass disposition", reject, "example.com", "pass", "fail", "pass", true},
		{"pass but quarantined", reject, "example.com", "quarantine", "pass", "pass", false},
		{"fail rejected under p=reject", reject, "example.com", "reject", "fail", "fail", true},
		{"fail quarantined under p=reject", reject, "example.com", "quarantine", "fail", "fail", false},
		{"fail delivered under p=reject (override)", reject, "example.com", "none", "fail", "fail", false},
		{"fail quarantined under p=reject pct=50", rollup.PublishedPolicy{Domain: "example.com", P: "reject", Pct: pct(50)}, "example.com", "quarantine", "fail", "fail", true},
		{"fail delivered under p=reject pct=50", rollup.PublishedPolicy{Domain: "example.com", P: "reject", Pct: pct(50)}, "example.com", "none", "fail", "fail", false},
		{"fail quarantined under p=reject t=y", rollup.PublishedPolicy{Domain: "example.com", P: "reject", Testing: "y"}, "example.com", "quarantine", "fail", "fail", true},
		{"pct=100 is not relaxed", rollup.PublishedPolicy{Domain: "example.com", P: "reject", Pct: pct(100)}, "example.com", "quarantine", "fail", "fail", false},
		{"fail quarantined under p=quarantine", rollup.PublishedPolicy{Domain: "example.com", P: "quarantine"}, "example.com", "quarantine", "fail", "", true},
		{"fail delivered under p=quarantine", rollup.PublishedPolicy{Domain: "example.com", P: "quarantine"}, "example.com", "none", "fail", "", false},
		{"fail delivered under p=quarantine pct=10", rollup.PublishedPolicy{Domain: "example.com", P: "quarantine", Pct: pct(10)}, "example.com", "none", "fail", "fail", true},
		{"fail rejected under p=quarantine", rollup.PublishedPolicy{Domain: "example.com", P: "quarantine"}, "example.com", "reject", "fail", "fail", false},
		{"fail delivered under p=none", rollup.PublishedPolicy{Domain: "example.com", P: "none"}, "example.com", "none", "fail", "fail", true},
		{"fail rejected under p=none", rollup.PublishedPolicy{Domain: "example.com", P: "none"}, "example.com", "reject", "fail", "fail", false},
		{"fail delivered, no p published", rollup.PublishedPolicy{Domain: "example.com"}, "example.com", "none", "fail", "fail", true},
		{"subdomain under sp=none", rollup.PublishedPolicy{Domain: "example.com", P: "reject", SP: "none"}, "Mail.Example.com.", "none", "fail", "fail", true},
		{"subdomain without sp follows p", reject, "mail.example.com", "none", "fail", "fail", false},
		{"look-alike is not a subdomain", rollup.PublishedPolicy{Domain: "example.com", P: "reject", SP: "none"}, "badexample.com", "reject", "fail", "fail", true},
	}
	for _, c := range cases {
		if got := c.pol.Matched(c.headerFrom, rollup.Outcome(c.disp, c.dkim, c.spf)); got != c.want {
			t.Errorf("%s: Matched = %v, want %v", c.name, got, c.want)
		}
	}
}
