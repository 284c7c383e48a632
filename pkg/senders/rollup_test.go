package senders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// The brute force answers from the raw records and the enrichment rows, following the
// definitions directly: each record's messages spread over its report's days (rollup.Span,
// tested on its own), each source named by the catalog from its enrich_ips row.

var dataEnd = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

type bruteKey struct {
	domain string
	key    string // group key (DimSender) or country code (DimCountry)
}

type bruteSums struct {
	messages, pass, dkim, spf, both int64
	ips                             map[[16]byte]bool
	ipsN                            int64 // reduce's count (the brute force keeps the set)
	first, last                     int32
}

type enrichRow struct {
	base, org, country string
	asn                int64
	residential        bool
}

func normDisp(s string) string {
	switch s {
	case "none", "quarantine", "reject", "pass":
		return s
	}
	return "other"
}

func normResult(s string) string {
	if s == "pass" || s == "fail" {
		return s
	}
	return "other"
}

// brute sums the records of domain ("" all) in [from, to) (has*: bounded) by dim.
func brute(d rawData, cat *Catalog, enr map[[16]byte]enrichRow, dim int, domain string, from, to int32, hasFrom, hasTo bool) map[bruteKey]*bruteSums {
	reps, byRep := d.reps, d.byRep
	out := map[bruteKey]*bruteSums{}
	for _, r := range reps {
		if domain != "" && r.Domain != domain {
			continue
		}
		pol := rollup.PublishedPolicy{Domain: r.Domain, P: r.PolicyP, SP: r.PolicySP, Pct: r.PolicyPct, Testing: r.PolicyTesting}
		type cellKey struct {
			ip        [16]byte
			disp      string
			dkim, spf string
			matched   bool
		}
		cells := map[cellKey]int64{}
		var order []cellKey
		for _, rec := range byRep[r.ID] {
			if rec.Count <= 0 {
				continue
			}
			k := cellKey{ip: [16]byte(rec.IP), disp: normDisp(rec.Disposition), dkim: normResult(rec.DKIM), spf: normResult(rec.SPF),
				matched: pol.Matched(rec.HeaderFrom, rollup.Outcome(rec.Disposition, rec.DKIM, rec.SPF))}
			if _, ok := cells[k]; !ok {
				order = append(order, k)
			}
			cells[k] += rec.Count
		}
		span := rollup.NewSpan(r.DateBegin, r.DateEnd)
		for _, k := range order {
			parts := span.Split(cells[k], rollup.TieKey(r.ID, k.ip, rollup.Outcome(k.disp, k.dkim, k.spf), k.matched), nil)
			for i, n := range parts {
				day := span.First + int32(i)
				if n == 0 || (hasFrom && day < from) || (hasTo && day >= to) {
					continue
				}
				key := bruteKey{}
				if dim == DimSender {
					key.domain = r.Domain
					if e, ok := enr[k.ip]; ok {
						key.key = classify(cat, e.base, e.asn, e.org, e.residential).itemKey()
					} else {
						key.key = UnknownKey
					}
				} else if e, ok := enr[k.ip]; ok {
					key.key = e.country
				}
				s := out[key]
				if s == nil {
					s = &bruteSums{ips: map[[16]byte]bool{}, first: day, last: day}
					out[key] = s
				}
				s.messages += n
				if k.dkim == "pass" || k.spf == "pass" {
					s.pass += n
				}
				if k.dkim == "pass" {
					s.dkim += n
				}
				if k.spf == "pass" {
					s.spf += n
				}
				if k.dkim == "pass" && k.spf == "pass" {
					s.both += n
				}
				s.ips[k.ip] = true
				s.first, s.last = min(s.first, day), max(s.last, day)
			}
		}
	}
	return out
}

// rawData is every stored report with its records.
type rawData struct {
	reps  []store.Report
	byRep map[int64][]store.Record
}

func loadRaw(t *testing.T, st *store.Store) rawData {
	t.Helper()
	d := rawData{byRep: map[int64][]store.Record{}}
	if err := st.DB().Order("id").Find(&d.reps).Error; err != nil {
		t.Fatal(err)
	}
	var recs []store.Record
	if err := st.DB().Order("id").Find(&recs).Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		d.byRep[r.ReportID] = append(d.byRep[r.ReportID], r)
	}
	return d
}

// world stores synthetic reports over fourteen months (across a new year) for four domains,
// rolls them up, and enriches three quarters of the sources with crafted rows.
func world(t *testing.T, st *store.Store, seed uint64) map[[16]byte]enrichRow {
	t.Helper()
	ctx := context.Background()
	g := synth.New(synth.Config{Seed: seed, Domains: 4, Sources: 120, Reporters: 5, Days: 420, End: dataEnd, Reports: 600,
		RecordsPerReport: 4, MultiDayShare: 0.2, IPv6Share: 0.3})
	var all []store.Parsed
	for {
		p, ok := g.Next()
		if !ok {
			break
		}
		all = append(all, p)
	}
	var ids []int64
	for lo := 0; lo < len(all); lo += 100 {
		sum := sha256.Sum256([]byte(fmt.Sprintf("senders-%d-%d", seed, lo)))
		ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "f.xml", Source: "test", Size: 1,
			ReceivedAt: dataEnd, Encoding: "identity", Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		saved, err := st.SaveParsed(ctx, ing.ID, all[lo:min(lo+100, len(all))])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range saved {
			ids = append(ids, s.ReportID)
		}
	}
	if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, ids); err != nil {
		t.Fatal(err)
	}
	return enrichSome(t, st, seed)
}

// enrichSome writes enrich_ips rows for three quarters of the known sources: named senders
// by PTR domain and by AS, unknown base domains, bare networks, residential lines, no
// country.
func enrichSome(t *testing.T, st *store.Store, seed uint64) map[[16]byte]enrichRow {
	t.Helper()
	var ips [][]byte
	if err := st.DB().Raw("SELECT ip FROM rollup_ips ORDER BY id").Scan(&ips).Error; err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	bases := []string{"google.com", "outlook.com", "amazonses.com", "mx.example", "spam.example", ""}
	asns := []int64{15169, 8075, 64500, 64501, 0}
	countries := []string{"US", "DE", "FR", ""}
	out := map[[16]byte]enrichRow{}
	for i, ip := range ips {
		if i%4 == 3 {
			continue // not enriched yet
		}
		e := enrichRow{base: bases[rng.IntN(len(bases))], asn: asns[rng.IntN(len(asns))], country: countries[rng.IntN(len(countries))], residential: rng.IntN(10) == 0}
		if e.asn != 0 {
			e.org = fmt.Sprintf("AS-%d", e.asn)
		}
		out[[16]byte(ip)] = e
		err := execRaw(st, `INSERT INTO enrich_ips (ip, base_domain, residential, asn, as_org, country, country_name, dns_status, dns_expires, geo_expires, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'ok', 4102444800, 4102444800, ?)`, ip, nullStr(e.base), e.residential, nullInt(e.asn), nullStr(e.org),
			nullStr(e.country), nullStr(e.country), 1000+i)
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// got is the answer of Rows reduced to the brute force's shape.
func reduce(rows []Row, dim int) map[bruteKey]bruteSums {
	out := map[bruteKey]bruteSums{}
	for _, r := range rows {
		k := bruteKey{domain: r.Domain, key: r.Group.itemKey()}
		if dim == DimCountry {
			k = bruteKey{key: r.Group.Key}
		}
		s := out[k]
		if s.messages == 0 {
			s.first, s.last = r.First, r.Last
		}
		s.messages += r.Messages
		s.pass += r.DMARCPass
		s.dkim += r.DKIMPass
		s.spf += r.SPFPass
		s.both += r.BothPass
		s.ips = nil
		s.first, s.last = min(s.first, r.First), max(s.last, r.Last)
		s.ipsN += r.IPs
		out[k] = s
	}
	return out
}

// TestRollupMatchesBruteForce: /api/senders' groups and the country map's countries are the
// same from the per-source rollups (before a rebuild), from the sender rollup (after it) and
// from the raw records, for windows cut in years, months and days, open and closed, with and
// without a domain; and a new report makes its domain stale until the next rebuild.
func TestRollupMatchesBruteForce(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		enr := world(t, st, 3)
		sv, err := New(st, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		now := dataEnd.Add(-9 * time.Hour)
		an := analytics.New(analytics.Deps{Store: st, Log: testenv.Logger(), Now: func() time.Time { return now }})
		api := NewAPI(sv, an)
		cat, err := sv.Catalog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sv.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
		filters := []struct {
			name string
			f    store.Filter
			fast bool // the sender rollup answers it once built
		}{
			{"all time", store.Filter{}, true},
			{"days=30", store.Filter{Start: now.AddDate(0, 0, -30)}, true},
			{"days=365", store.Filter{Start: now.AddDate(0, 0, -365)}, true},
			{"from mid-month of last year", store.Filter{Start: day(2024, 11, 17)}, true},
			{"one domain, days=90", store.Filter{Domain: "acme0.example", Start: now.AddDate(0, 0, -90)}, true},
			{"closed window across the new year", store.Filter{Start: day(2024, 12, 9), End: day(2025, 1, 21)}, false},
			{"end only", store.Filter{End: day(2024, 6, 3)}, false},
			{"with an outcome filter", store.Filter{Start: now.AddDate(0, 0, -200), DKIM: "pass"}, false},
		}
		raw := loadRaw(t, st)
		check := func(stage string, wantFast bool) {
			for _, tc := range filters {
				for _, dim := range []int{DimSender, DimCountry} {
					w := windowOf(tc.f)
					want := brute(raw, cat, enr, dim, tc.f.Domain, w.from, w.to, w.hasFrom, w.hasTo)
					if tc.f.DKIM != "" {
						continue // the brute force has no outcome filter; the path is checked below
					}
					rows, err := api.Rows(ctx, tc.f, dim)
					if err != nil {
						t.Fatal(err)
					}
					got := reduce(rows, dim)
					for k, w := range want {
						g := got[k]
						if g.messages != w.messages || g.pass != w.pass || g.dkim != w.dkim || g.spf != w.spf || g.both != w.both ||
							g.ipsN != int64(len(w.ips)) || g.first != w.first || g.last != w.last {
							t.Errorf("%s, %s, dim %d, %v: got %+v, want messages %d pass %d dkim %d spf %d both %d ips %d days %d-%d", stage, tc.name, dim, k,
								g, w.messages, w.pass, w.dkim, w.spf, w.both, len(w.ips), w.first, w.last)
						}
					}
					for k := range got {
						if _, ok := want[k]; !ok {
							t.Errorf("%s, %s, dim %d: unexpected group %v: %+v", stage, tc.name, dim, k, got[k])
						}
					}
				}
				_, fast, err := sv.fromRollup(ctx, DimSender, nil, true, windowOf(tc.f))
				if err != nil {
					t.Fatal(err)
				}
				if fast != (wantFast && tc.fast) && rollupAnswers(tc.f) {
					t.Errorf("%s, %s: answered from the sender rollup %v, want %v", stage, tc.name, fast, wantFast && tc.fast)
				}
			}
		}
		check("before the rebuild", false)
		st1, err := sv.Rebuild(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st1.Domains != 5 {
			t.Errorf("rebuilt %d domains, want the 4 and all (0): %+v", st1.Domains, st1)
		}
		check("after the rebuild", true)
		if st2, err := sv.Rebuild(ctx); err != nil || st2.Domains != 0 {
			t.Errorf("a second rebuild rebuilt %+v (%v), want nothing", st2, err)
		}

		// A mapping names the unknown base domain: its sources move, the rollup goes stale and
		// the answer is right before and after the rebuild.
		if _, err := sv.PutMapping(ctx, Mapping{Kind: "domain", Pattern: "mx.example", Name: "Our relay", Type: TypeESP}); err != nil {
			t.Fatal(err)
		}
		if cat, err = sv.Catalog(ctx); err != nil {
			t.Fatal(err)
		}
		check("after a mapping change", false)
		if _, err := sv.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		check("after the mapping's rebuild", true)

		// The rest of the sources are enriched: grouped by SyncIPs, then rebuilt.
		var ips [][]byte
		if err := st.DB().Raw("SELECT ip FROM rollup_ips ORDER BY id").Scan(&ips).Error; err != nil {
			t.Fatal(err)
		}
		var late []netip.Addr
		for _, ip := range ips {
			if _, ok := enr[[16]byte(ip)]; ok {
				continue
			}
			enr[[16]byte(ip)] = enrichRow{base: "late.example", country: "NL"}
			if err := execRaw(st, `INSERT INTO enrich_ips (ip, base_domain, country, country_name, dns_status, dns_expires, geo_expires, updated_at)
				VALUES (?, 'late.example', 'NL', 'Netherlands', 'ok', 4102444800, 4102444800, 5)`, ip); err != nil {
				t.Fatal(err)
			}
			late = append(late, netip.AddrFrom16([16]byte(ip)).Unmap())
		}
		if _, err := sv.SyncIPs(ctx, late); err != nil {
			t.Fatal(err)
		}
		check("after late enrichment", false)
		if _, err := sv.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		check("after late enrichment's rebuild", true)
		var pending int64
		for _, r := range mustRows(t, api, store.Filter{}) {
			if r.Group.Pending {
				pending += r.IPs
			}
		}
		if pending != 0 {
			t.Errorf("%d sources still pending after every one was enriched", pending)
		}
	})
}

// execRaw runs q on database/sql (gorm would expand a []byte argument into a list).
func execRaw(st *store.Store, q string, args ...any) error {
	db, err := st.DB().DB()
	if err != nil {
		return err
	}
	_, err = db.Exec((&Service{dialect: st.Dialect()}).bind(q), args...)
	return err
}

func mustRows(t *testing.T, api *API, f store.Filter) []Row {
	t.Helper()
	rows, err := api.Rows(context.Background(), f, DimSender)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestCover: windows cut into years, months and days cover each day once.
func TestCover(t *testing.T) {
	t.Parallel()
	d := func(y int, m time.Month, dd int) int32 {
		return rollup.DayOf(time.Date(y, m, dd, 0, 0, 0, 0, time.UTC))
	}
	for _, tc := range []struct {
		name         string
		lo, hi       int32
		hasLo, hasHi bool
	}{
		{"mid-month to mid-month across years", d(2023, 11, 17), d(2025, 2, 3), true, true},
		{"whole year", d(2024, 1, 1), d(2025, 1, 1), true, true},
		{"inside a month", d(2024, 3, 5), d(2024, 3, 9), true, true},
		{"dekads at both edges", d(2024, 2, 9), d(2024, 4, 23), true, true},
		{"from the 11th", d(2024, 2, 11), 0, true, false},
		{"open end", d(2024, 3, 5), 0, true, false},
		{"open start", 0, d(2024, 3, 5), false, true},
	} {
		parts := cover(tc.lo, tc.hi, tc.hasLo, tc.hasHi, senderGrains)
		// Each day of a bounded test range [probeLo, probeHi) lies in exactly one part.
		probeLo, probeHi := d(2022, 1, 1), d(2027, 1, 1)
		for day := probeLo; day < probeHi; day++ {
			in := (!tc.hasLo || day >= tc.lo) && (!tc.hasHi || day < tc.hi)
			n := 0
			for _, p := range parts {
				var g rollup.Grain
				switch p.table {
				case "rollup_sender_dekad":
					g = rollup.GrainDekad
				case "rollup_sender_month":
					g = rollup.GrainMonth
				case "rollup_sender_year":
					g = rollup.GrainYear
				}
				period := g.Start(day)
				if (!p.hasLo || period >= p.lo) && (!p.hasHi || period < p.hi) {
					// A coarse part holds the whole period: it must lie inside the window.
					if g != rollup.GrainDay && ((tc.hasLo && period < tc.lo) || (tc.hasHi && g.Next(day) > tc.hi)) {
						t.Errorf("%s: part %+v sticks out of the window at day %d", tc.name, p, day)
					}
					n++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[in]; n != want {
				t.Errorf("%s: day %s in %d parts, want %d (%+v)", tc.name, rollup.DayTime(day).Format("2006-01-02"), n, want, parts)
				break
			}
		}
	}
}

// TestTotalsEqualWindowSums: for windows starting on every fifth day across the data (and
// before and after it), the totals less the rows before the window (totalsQuery) give exactly
// what the periods inside it give (windowQuery): sums, first and last days and sources, for
// every domain's groups and the all-domain countries. The path each question takes is chosen
// by which reads fewer rows, so both must agree everywhere.
func TestTotalsEqualWindowSums(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		world(t, st, 5)
		sv, err := New(st, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sv.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		have, err := sv.states(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		lo, hi := int32(1<<30), int32(0)
		for d, s := range have {
			if d != 0 {
				ids = append(ids, int64(d))
			}
			lo, hi = min(lo, s.minDay), max(hi, s.maxDay)
		}
		if len(ids) != 4 || lo >= hi {
			t.Fatalf("rollup state %+v: want 4 domains with data", have)
		}
		read := func(q string, args []any) map[[2]int64]Sums {
			rows, err := sv.readSums(ctx, q, args)
			if err != nil {
				t.Fatal(err)
			}
			out := map[[2]int64]Sums{}
			for _, r := range rows {
				out[[2]int64{int64(r.DomainID), r.KeyID}] = r
			}
			return out
		}
		checked := 0
		for from := lo - 3; from <= hi+2; from += 5 {
			w := window{from: from, hasFrom: true}
			for _, c := range []struct {
				dim   int
				list  string
				every bool // the rows before the window read for every domain
			}{
				{DimSender, int64List(ids), true}, {DimSender, int64List(ids), false}, {DimSender, int64List(ids[:1]), false},
				// As when the list lacks a domain with rows (its reports all deleted): they must not count.
				{DimSender, int64List(ids[:1]), true},
				{DimCountry, "0", false},
			} {
				want := read(windowQuery(c.dim, c.list, w))
				got := read(totalsQuery(c.dim, c.list, w, c.every))
				if len(got) != len(want) {
					t.Errorf("from day %d, dim %d, domains %s: %d groups from the totals, %d from the periods", from, c.dim, c.list, len(got), len(want))
				}
				for k, wv := range want {
					if gv := got[k]; gv != wv {
						t.Errorf("from day %d, dim %d, group %v: totals give %+v, periods %+v", from, c.dim, k, gv, wv)
					}
				}
				checked += len(want)
			}
		}
		if checked == 0 {
			t.Fatal("no group compared")
		}
		t.Logf("%d window × group sums compared", checked)
	})
}

// TestRebuildGap: with a gap set, a rebuild asked for right after a round waits for the gap
// (here cut short by its context) instead of going round at once; the first round of a
// process does not wait.
func TestRebuildGap(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		world(t, st, 9)
		sv, err := New(st, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		sv.SetRebuildGap(time.Hour)
		if rb, err := sv.Rebuild(ctx); err != nil || rb.Domains == 0 {
			t.Fatalf("first rebuild: %+v, %v: want it to run at once", rb, err)
		}
		last := sv.lastRound
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if rb, err := sv.Rebuild(cctx); err == nil || !sv.lastRound.Equal(last) {
			t.Fatalf("second rebuild within the gap: %+v, %v, a round ended at %v: want it waiting (cancelled) before any round", rb, err, sv.lastRound)
		}
		sv.SetRebuildGap(0)
		if rb, err := sv.Rebuild(ctx); err != nil || rb.Fresh == 0 {
			t.Fatalf("rebuild without a gap: %+v, %v: want a round finding every domain fresh", rb, err)
		}
	})
}
