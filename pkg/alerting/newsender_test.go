package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// seedSenders stores reports for the named-sender variant of new_source and groups their
// sources as pkg/senders would (sender_groups, sender_sources), crafted by hand:
//
//	senders.example: Google Workspace (192.0.2.1) for a month, Amazon SES (192.0.2.30) 20
//	days ago; today a second Google address, SendGrid, Mailchimp from two addresses, SES
//	again, a source not enriched yet and one whose group names no sender.
//	nohistory.example: SendGrid today only (no history: nothing is new).
func seedSenders(t *testing.T, st *store.Store) {
	t.Helper()
	b := newBuilder(t, st)
	b.daily("google.com", "senders.example", "reject", 30, 1, func(int) []rec { return []rec{{ip: "192.0.2.1", count: 10, pass: true}} })
	b.report("google.com", "senders.example", "reject", 20, rec{ip: "192.0.2.30", count: 7, pass: true})
	b.report("google.com", "senders.example", "reject", 0,
		rec{ip: "192.0.2.1", count: 10, pass: true},
		rec{ip: "192.0.2.50", count: 9, pass: true},   // Google Workspace, a new address
		rec{ip: "198.51.100.9", count: 4},             // SendGrid: new
		rec{ip: "198.51.100.20", count: 3},            // Mailchimp: new, two addresses
		rec{ip: "2001:db8::20", count: 3, pass: true}, // Mailchimp
		rec{ip: "192.0.2.30", count: 5, pass: true},   // Amazon SES, last seen 20 days ago
		rec{ip: "203.0.113.5", count: 50},             // not enriched yet
		rec{ip: "203.0.113.6", count: 50})             // enriched, no named sender
	b.report("google.com", "nohistory.example", "reject", 0, rec{ip: "198.51.100.9", count: 40})
	b.apply()

	ctx := context.Background()
	db := st.DB().WithContext(ctx)
	groups := []struct {
		key    string
		sender *string
	}{{"s:Google Workspace", ptr("Google Workspace")}, {"s:SendGrid", ptr("SendGrid")}, {"s:Mailchimp", ptr("Mailchimp")},
		{"s:Amazon SES", ptr("Amazon SES")}, {"d:example.net", nil}}
	gid := map[string]int64{}
	for _, g := range groups {
		if err := db.Exec("INSERT INTO sender_groups (dim, key, sender, sender_type) VALUES (1, ?, ?, 'esp')", g.key, g.sender).Error; err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := db.Raw("SELECT id FROM sender_groups WHERE dim = 1 AND key = ?", g.key).Scan(&id).Error; err != nil || id == 0 {
			t.Fatalf("group %s: %d %v", g.key, id, err)
		}
		gid[g.key] = id
	}
	var ips []struct {
		ID int64
		IP []byte `gorm:"column:ip"`
	}
	if err := db.Raw("SELECT id, ip FROM rollup_ips").Scan(&ips).Error; err != nil {
		t.Fatal(err)
	}
	of := map[string]string{"192.0.2.1": "s:Google Workspace", "192.0.2.50": "s:Google Workspace", "198.51.100.9": "s:SendGrid",
		"198.51.100.20": "s:Mailchimp", "2001:db8::20": "s:Mailchimp", "192.0.2.30": "s:Amazon SES", "203.0.113.6": "d:example.net"}
	n := 0
	for _, row := range ips {
		a, _ := netip.AddrFromSlice(row.IP)
		k, ok := of[a.Unmap().String()]
		if !ok {
			continue // 203.0.113.5: no sender_sources row, as before its enrichment
		}
		var sender any
		for _, g := range groups {
			if g.key == k && g.sender != nil {
				sender = *g.sender
			}
		}
		if err := db.Exec("INSERT INTO sender_sources (ip_id, group_id, country_id, sender, enriched_at) VALUES (?, ?, 0, ?, 1)", row.ID, gid[k], sender).Error; err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(of) {
		t.Fatalf("%d of %d sources grouped", n, len(of))
	}
}

// TestNewNamedSender checks the named_sender variant of new_source on both backends: a sender
// new for the domain raises one finding however many addresses it uses; a known sender's new
// address, a source without a named sender and a domain without history raise nothing; the
// address variant still finds every new address.
func TestNewNamedSender(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		st := be.Store(t)
		seedSenders(t, st)
		s := newService(st, fixed(now))
		ctx := context.Background()
		cases := []struct {
			domain, params string
			want           []string
		}{
			{"senders.example", `{"named_sender":true}`, []string{"sender:Mailchimp", "sender:SendGrid"}},
			{"senders.example", `{"named_sender":true,"min_messages":5}`, []string{"sender:Mailchimp"}},
			{"senders.example", `{"named_sender":true,"lookback_days":10}`, []string{"sender:Amazon SES", "sender:Mailchimp", "sender:SendGrid"}},
			{"senders.example", `{}`, []string{"198.51.100.20", "198.51.100.9", "192.0.2.50", "2001:db8::20", "203.0.113.5", "203.0.113.6"}},
			{"nohistory.example", `{"named_sender":true}`, nil},
			{"nothing.example", `{"named_sender":true}`, nil},
		}
		all, err := s.domainNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s", tc.domain, tc.params), func(t *testing.T) {
				r, err := s.CreateRule(ctx, RuleInput{Name: ptr(fmt.Sprintf("case %d", i)), Type: ptr(TypeNewSource), Domain: ptr(tc.domain), Params: json.RawMessage(tc.params)})
				if err != nil {
					t.Fatal(err)
				}
				sc := scope{names: map[int32]string{}}
				for id, n := range all {
					if n == tc.domain {
						sc.names[id] = n
					}
				}
				fs, err := s.evaluate(ctx, r, sc, rollup.DayOf(now))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range fs {
					got = append(got, f.key)
					if f.domain != tc.domain || f.title == "" || f.detail == "" {
						t.Errorf("finding %+v", f)
					}
				}
				want := slices.Clone(tc.want)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("findings %q, want %q", got, want)
				}
			})
		}
		// The figures a named-sender alert states.
		r, err := s.CreateRule(ctx, RuleInput{Name: ptr("figures"), Type: ptr(TypeNewSource), Params: json.RawMessage(`{"named_sender":true}`)})
		if err != nil {
			t.Fatal(err)
		}
		fs, err := s.evaluate(ctx, r, scope{names: all, all: true}, rollup.DayOf(now))
		if err != nil {
			t.Fatal(err)
		}
		var mc *finding
		for i, f := range fs {
			if f.domain == "nohistory.example" {
				t.Errorf("a domain without history raised %+v", f)
			}
			if f.key == "sender:Mailchimp" {
				mc = &fs[i]
			}
		}
		if mc == nil || mc.data["messages"] != int64(6) || mc.data["ips"] != int64(2) || mc.data["sender"] != "Mailchimp" || mc.data["from"] != "2024-03-15" {
			t.Errorf("Mailchimp finding %+v", mc)
		}
	})
}
