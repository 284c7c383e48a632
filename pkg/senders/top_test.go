package senders

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// topGroup is one crafted domain × group of the sender rollup: its all-time total and the
// messages of its rows before the window (on the year row of 2024).
type topGroup struct {
	domain, key    int
	total, before  int64
	first, last    int32
	zeroInWindow   bool // rows in the window of 0 messages only: last day in it, no messages
	beforeNextNull bool
}

const (
	topFrom     = 20089 // 2025-01-01: the window's first day
	topYear2024 = 19723 // 2024-01-01
)

// topWorld stores the crafted groups: sender groups 1 (pending), 2 (unknown) and 3.. (known,
// labels chosen to tie), domains 1..domains with bytewise-tricky names.
func topWorld(t *testing.T, st *store.Store, domains, groups int, rows []topGroup) {
	t.Helper()
	for d := 1; d <= domains; d++ {
		name := fmt.Sprintf("d%02d.example", d)
		if d%3 == 0 {
			name = fmt.Sprintf("D%02d.example", d) // upper case sorts first, bytewise
		}
		if err := execRaw(st, "INSERT INTO rollup_domains (id, name) VALUES (?, ?)", d, name); err != nil {
			t.Fatal(err)
		}
	}
	for id := 1; id <= groups; id++ {
		key, sender, base := fmt.Sprintf("d:g%d.example", id), "", fmt.Sprintf("g%d.example", id%5) // five labels: ties
		pending := false
		switch id {
		case 1:
			key, base, pending = PendingKey, "", true
		case 2:
			key, base = UnknownKey, ""
		}
		if id%7 == 0 {
			key, sender, base = fmt.Sprintf("s:Service %d", id%2), fmt.Sprintf("Service %d", id%2), ""
			key += fmt.Sprint(id)
		}
		if err := execRaw(st, `INSERT INTO sender_groups (id, dim, key, sender, sender_type, base_domain, pending) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, DimSender, key, nullStr(sender), TypeUnknown, nullStr(base), pending); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rows {
		m := r.total
		if err := execRaw(st, `INSERT INTO rollup_sender_total (domain_id, dim, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, ips)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.domain, DimSender, r.key, m, m/2, m/3, m/4, m/5, r.first, r.last, 1+m%3); err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if r.before == 0 {
			continue
		}
		b := r.before
		var next any = int32(topFrom + 3)
		if r.beforeNextNull {
			next = nil
		}
		if err := execRaw(st, `INSERT INTO rollup_sender_year (domain_id, dim, period, key_id, messages, dmarc_pass, dkim_pass, spf_pass, both_pass, first_day, last_day, next_day)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.domain, DimSender, topYear2024, r.key, b, b/2, b/3, b/4, b/5, r.first, int32(topFrom-1), next); err != nil {
			t.Fatal(err)
		}
	}
}

// crafted are groups made to defeat a naive top-k (by all-time total, or by group rather than
// by item):
//   - domain 1's unknown item: pending 30 + unknown 35 = 65 in the window, each part smaller
//     than known groups of 40–60 that most messages before the window bring down to 5–10;
//   - domain 2: groups with the largest totals (1,000, 900) but 10 and 0 messages in the window,
//     one of them with its last day in the window and only rows of 0 messages there (no item);
//   - many items of 45 across domains and labels: ties at page boundaries;
//   - an unknown item of only a pending group, one of only the unknown group, one wholly before
//     the window (none in it).
func crafted() []topGroup {
	in := func(d, k int, total, before int64) topGroup {
		first := int32(topFrom + 1)
		if before > 0 {
			first = topYear2024 + 5
		}
		last := int32(topFrom + 30)
		if total == before {
			last = topFrom - 1
		}
		return topGroup{domain: d, key: k, total: total, before: before, first: first, last: last}
	}
	rows := []topGroup{
		in(1, 1, 30, 0), in(1, 2, 40, 5), in(1, 3, 60, 50), in(1, 4, 55, 48), in(1, 5, 40, 35), in(1, 6, 45, 0), in(1, 7, 45, 0), in(1, 8, 45, 0),
		in(2, 3, 1000, 990), in(2, 4, 900, 900), in(2, 5, 45, 0), in(2, 6, 45, 0), in(2, 9, 44, 0), in(2, 10, 46, 1),
		in(3, 1, 20, 0), in(3, 5, 45, 0), in(3, 6, 45, 0), in(3, 7, 65, 20), in(3, 8, 300, 300),
		in(4, 2, 45, 0), in(4, 3, 45, 0), in(4, 11, 12, 0), in(4, 12, 80, 79),
		in(5, 1, 400, 400), in(5, 2, 30, 30), in(5, 3, 1, 0),
	}
	z := in(2, 11, 700, 700)
	z.last, z.zeroInWindow = topFrom+10, true // a day of 0 messages in the window
	nn := in(3, 9, 46, 45)
	nn.beforeNextNull = true
	return append(rows, z, nn)
}

// random are n domains of up to 14 groups with totals from a few values (ties) and random
// parts before the window.
func random(seed uint64, domains int) []topGroup {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []topGroup
	for d := 1; d <= domains; d++ {
		for k := 1; k <= 14; k++ {
			if r.IntN(3) == 0 {
				continue
			}
			total := []int64{1, 5, 20, 45, 45, 45, 100, 500}[r.IntN(8)]
			var before int64
			if r.IntN(2) == 0 {
				before = r.Int64N(total + 1)
			}
			g := topGroup{domain: d, key: k, total: total, before: before, first: topFrom + 2, last: topFrom + 40}
			if before > 0 {
				g.first = topYear2024 + 9
			}
			if before == total {
				g.last = topFrom - 2
			}
			out = append(out, g)
		}
	}
	return out
}

// TestTopPageEqualsFullRanking: every page the top-k reads (topPage) equals the page of the
// full ranking (pageItems on the same totalsQuery), with the same total, on the crafted and
// random groups, all time and from a first day, at several page sizes and candidate counts: a
// first count of 1 doubling to the end (the retry path), 1 to 2 (the fallback), the defaults.
// Without the bound check (a page taken as soon as the candidates fill it) it fails (crafted,
// all time, page 2 of size 1 with one group read first: the best item's runner-up is not yet
// among the candidates), and with >= for > (random 2, all time, page 1 of 9: an item left out ties with the bound). A key without
// a sender_groups row (orphan) always falls back, as its messages would escape the unknown
// item's bound.
func TestTopPageEqualsFullRanking(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		domains int
		rows    []topGroup
		sizes   []int
	}{
		{"crafted", 5, crafted(), []int{1, 2, 3, 7, 50}},
		{"random 1", 9, random(1, 9), []int{4, 50}},
		{"random 2", 12, random(2, 12), []int{9}},
		{"orphan", 5, append(crafted(), topGroup{domain: 4, key: 99, total: 70, first: topFrom, last: topFrom + 1}), []int{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testenv.Run(t, func(t *testing.T, b testenv.Backend) {
				t.Parallel()
				ctx := context.Background()
				st := b.Store(t)
				sv, err := New(st, testenv.Logger())
				if err != nil {
					t.Fatal(err)
				}
				topWorld(t, st, tc.domains, 14, tc.rows)
				list := ""
				for d := 1; d <= tc.domains; d++ {
					list += fmt.Sprintf(",%d", d)
				}
				p := plan{list: list[1:], every: true, totals: true}
				retried, fellBack := false, false
				for _, w := range []window{{}, {from: topFrom, hasFrom: true}, {from: topFrom + 20, hasFrom: true}} {
					q, args := totalsQuery(DimSender, p.list, w, true)
					all, total, err := sv.pageItems(ctx, q, args, 0, 1000)
					if err != nil {
						t.Fatal(err)
					}
					if len(all) == 0 {
						t.Fatalf("window %+v: no items", w)
					}
					for _, lim := range []*topLimits{nil, {1, 1 << 20}, {1, 2}, {3, 3}} {
						sv.topTest = lim
						for _, size := range tc.sizes {
							for page := 1; page <= (len(all)+size-1)/size+1; page++ {
								lo := (page - 1) * size
								got, n, stats, ok, err := sv.topPage(ctx, p, w, lo, size)
								if err != nil {
									t.Fatal(err)
								}
								retried = retried || len(stats.tries) > 1
								fellBack = fellBack || stats.fallback
								if !ok {
									if !stats.fallback {
										t.Fatalf("not ok without a fallback")
									}
									continue
								}
								exp := []Item{}
								if lo < len(all) {
									exp = all[lo:min(lo+size, len(all))]
								}
								if n != total || !reflect.DeepEqual(got, exp) {
									t.Fatalf("window %+v, limits %v, page %d of %d: total %d, want %d\n got %s\nwant %s", w, lim, page, size, n, total,
										itemsString(got), itemsString(exp))
								}
							}
						}
					}
				}
				if tc.name == "orphan" && retried {
					t.Errorf("a key without a group: retried instead of falling back")
				}
				if (!retried && tc.name != "orphan") || !fellBack {
					t.Errorf("paths not taken: retried %v, fell back %v", retried, fellBack)
				}
			})
		})
	}
}
