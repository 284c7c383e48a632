package senders

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// TestPageEqualsGroupItems: every page the database ranks and cuts (pageItems) equals the
// same slice of groupItems' order, with the same total, on crafted sums whose items tie in
// messages, domain, label and key, with bytewise order where a locale would differ
// ("B.example" before "a.example", "Zed" before "same" before "ünicode"; on PostgreSQL the text
// columns take an English ICU collation, as in a database created with that locale), the pending group
// (and a key without a sender_groups row) merging into the unknown item, a group without
// messages left out, and pages past the end.
func TestPageEqualsGroupItems(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		sv, err := New(st, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		api := NewAPI(sv, analytics.New(analytics.Deps{Store: st, Log: testenv.Logger()}))
		if st.Dialect() == store.Postgres {
			// As in a database created with an English locale: the order must still be bytewise.
			var icu int64
			if err := st.DB().Raw(`SELECT COUNT(*) FROM pg_collation WHERE collname = 'en-x-icu'`).Scan(&icu).Error; err != nil {
				t.Fatal(err)
			}
			if icu == 0 {
				t.Log("collation en-x-icu missing: text compared in the database's default collation only")
			}
			for _, col := range []string{"rollup_domains.name", "sender_groups.key", "sender_groups.sender", "sender_groups.base_domain", "sender_groups.as_org"} {
				if icu == 0 {
					break
				}
				tc := strings.SplitN(col, ".", 2)
				if err := st.DB().Exec(`ALTER TABLE ` + tc[0] + ` ALTER COLUMN ` + tc[1] + ` TYPE TEXT COLLATE "en-x-icu"`).Error; err != nil {
					t.Fatal(err)
				}
			}
		}
		for id, name := range map[int]string{1: "a.example", 2: "B.example", 3: "b.example", 4: "ä.example"} {
			if err := execRaw(st, "INSERT INTO rollup_domains (id, name) VALUES (?, ?)", id, name); err != nil {
				t.Fatal(err)
			}
		}
		for _, g := range []struct {
			id               int
			key, sender, typ string
			base, org        string
			asn              int64
			pending          bool
		}{
			// The pending group's own base domain and organisation never show.
			{1, PendingKey, "", TypeUnknown, "pending.example", "pending-org", 0, true},
			{2, UnknownKey, "", TypeUnknown, "", "", 0, false},
			{3, "s:Google Workspace", "Google Workspace", TypeMailbox, "", "GOOGLE", 15169, false},
			{4, "d:same.example", "", TypeUnknown, "same.example", "", 0, false},
			{5, "a:64501", "", TypeUnknown, "", "same.example", 64501, false}, // same label as 4
			{6, "d:Zed.example", "", TypeUnknown, "Zed.example", "", 0, false},
			{7, "d:ünicode.example", "", TypeUnknown, "ünicode.example", "", 0, false},
			{8, "a:64502", "", TypeUnknown, "", "", 64502, false}, // label "" as the unknown item
		} {
			if err := execRaw(st, `INSERT INTO sender_groups (id, dim, key, sender, sender_type, base_domain, asn, as_org, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				g.id, DimSender, g.key, nullStr(g.sender), g.typ, nullStr(g.base), nullInt(g.asn), nullStr(g.org), g.pending); err != nil {
				t.Fatal(err)
			}
		}
		const noRow = 999 // a key without a sender_groups row: pending, as Rows treats it
		sums := []struct {
			domain, key   int
			messages, ips int64
			first, last   int32
		}{
			{1, 1, 60, 2, 20010, 20030}, {1, 2, 40, 3, 20005, 20020}, // one item of 100, 2 of its 5 sources pending
			{1, 3, 100, 4, 20000, 20040}, {1, 4, 100, 1, 20001, 20001}, {1, 5, 100, 2, 20002, 20003}, {1, 6, 100, 1, 20000, 20000},
			{1, 7, 100, 1, 20000, 20000}, {1, 8, 100, 1, 20000, 20000},
			{2, noRow, 100, 1, 20011, 20012}, {2, 1, 0, 4, 20011, 20011}, {2, 3, 100, 3, 20000, 20001}, // no messages: left out
			{3, 2, 100, 2, 20000, 20009}, {3, 6, 250, 9, 20000, 20050},
			{4, 1, 100, 3, 20020, 20021}, {4, 4, 99, 1, 20000, 20000},
		}
		for _, s := range sums {
			m := s.messages
			if err := execRaw(st, `INSERT INTO rollup_sender_total (domain_id, dim, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, ips)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, s.domain, DimSender, s.key, m, m/2, m/3, m/4, m/5, s.first, s.last, s.ips); err != nil {
				t.Fatal(err)
			}
		}
		q, args := totalsQuery(DimSender, "1,2,3,4", window{}, true)
		read, err := sv.readSums(ctx, q, args)
		if err != nil {
			t.Fatal(err)
		}
		names, err := sv.domainNames(ctx, []int64{1, 2, 3, 4})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := api.attach(ctx, read, names, DimSender)
		if err != nil {
			t.Fatal(err)
		}
		want := groupItems(rows)

		// The Go order itself, spelled out: ties in messages go by domain, label, key, bytewise.
		type rank struct {
			domain, label string
			messages      int64
		}
		var order []rank
		for _, it := range want {
			order = append(order, rank{it.Domain, label(&it), it.Messages})
		}
		wantOrder := []rank{
			{"b.example", "Zed.example", 250},
			{"B.example", "", 100}, {"B.example", "Google Workspace", 100},
			{"a.example", "", 100}, {"a.example", "", 100}, {"a.example", "Google Workspace", 100}, {"a.example", "Zed.example", 100},
			{"a.example", "same.example", 100}, {"a.example", "same.example", 100}, {"a.example", "ünicode.example", 100},
			{"b.example", "", 100}, {"ä.example", "", 100},
			{"ä.example", "same.example", 99},
		}
		if !slices.Equal(order, wantOrder) {
			t.Fatalf("groupItems order:\n got %v\nwant %v", order, wantOrder)
		}
		if u := want[3]; u.PendingIPs != 2 || u.IPs != 5 || u.ASN != nil || u.ASOrg != nil || u.FirstSeen != "2024-10-09" || u.LastSeen != "2024-11-03" {
			t.Fatalf("merged unknown item: %+v", u)
		}
		if a := want[4]; a.ASN == nil || *a.ASN != 64502 {
			t.Fatalf("the unknown item must rank before a:64502 (key order): %+v", a)
		}

		for _, size := range []int{1, 2, 3, 5, 13, 50} {
			pages := (len(want) + size - 1) / size
			for page := 1; page <= pages+1; page++ {
				lo := (page - 1) * size
				got, total, err := sv.pageItems(ctx, q, args, lo, size)
				if err != nil {
					t.Fatal(err)
				}
				if total != int64(len(want)) {
					t.Errorf("page %d of %d: total %d, want %d", page, size, total, len(want))
				}
				exp := []Item{}
				if lo < len(want) {
					exp = want[lo:min(lo+size, len(want))]
				}
				if !reflect.DeepEqual(got, exp) {
					t.Errorf("page %d of %d:\n got %s\nwant %s", page, size, itemsString(got), itemsString(exp))
				}
			}
		}
	})
}

// TestPageMatchesRows: /api/senders pages (API.Page) on stored reports equal the pages of the
// Go grouping of Rows, advice included, for the windows the sender rollup answers (and it
// answers them) and for one it does not.
func TestPageMatchesRows(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		world(t, st, 11)
		sv, err := New(st, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		now := dataEnd.Add(-9 * time.Hour)
		api := NewAPI(sv, analytics.New(analytics.Deps{Store: st, Log: testenv.Logger(), Now: func() time.Time { return now }}))
		if _, err := sv.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			f      store.Filter
			rollup bool
		}{
			{"all time", store.Filter{}, true},
			{"days=365", store.Filter{Start: now.AddDate(0, 0, -365)}, true},
			{"days=30", store.Filter{Start: now.AddDate(0, 0, -30)}, true},
			{"one domain, days=90", store.Filter{Domain: "acme0.example", Start: now.AddDate(0, 0, -90)}, true},
			{"a domain without reports", store.Filter{Domain: "nobody.example"}, true},
			{"a window after the data", store.Filter{Start: now.AddDate(0, 0, 2)}, true},
			{"with an outcome filter", store.Filter{Start: now.AddDate(0, 0, -200), DKIM: "pass"}, false},
		} {
			rows, err := api.Rows(ctx, tc.f, DimSender)
			if err != nil {
				t.Fatal(err)
			}
			all := Group(rows)
			if len(all) == 0 && tc.f.Domain != "nobody.example" && tc.f.Start.Before(now) {
				t.Fatalf("%s: no items", tc.name)
			}
			if _, ok, err := api.rollupPage(ctx, tc.f, 1, 1); err != nil || ok != tc.rollup {
				t.Errorf("%s: ranked in SQL %v (%v), want %v", tc.name, ok, err, tc.rollup)
			}
			const size = 7
			for page := 1; page <= max(2, (len(all)+size-1)/size+1); page++ {
				got, err := api.Page(ctx, tc.f, page, size)
				if err != nil {
					t.Fatal(err)
				}
				lo := (page - 1) * size
				exp := List{Items: []Item{}, Total: int64(len(all)), Page: page, PageSize: size}
				if lo < len(all) {
					exp.Items = all[lo:min(lo+size, len(all))]
				}
				if !reflect.DeepEqual(got, exp) {
					t.Errorf("%s, page %d: total %d, want %d\n got %s\nwant %s", tc.name, page, got.Total, exp.Total, itemsString(got.Items), itemsString(exp.Items))
				}
			}
		}
	})
}

func itemsString(items []Item) string {
	s := ""
	for _, it := range items {
		r := "nil"
		if it.DMARCPassRate != nil {
			r = fmt.Sprintf("%.3f", *it.DMARCPassRate)
		}
		s += fmt.Sprintf("\n  {%s %q %s msgs %d ips %d pend %d pass %d dkim %d spf %d %+v %s..%s rate %s base %v asn %v org %v advice %d}",
			it.Domain, label(&it), it.SenderType, it.Messages, it.IPs, it.PendingIPs, it.DMARCPassMessages, it.DKIMAlignedMessages,
			it.SPFAlignedMessages, it.Alignment, it.FirstSeen, it.LastSeen, r, deref(it.BaseDomain), deref(it.ASN), deref(it.ASOrg), len(it.Advice))
	}
	return s
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
