package rollup

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is what a family of rollup tables measures.
type Kind int

const (
	// Messages rollups sum message counts spread over the days of each report.
	Messages Kind = iota
	// Sources rollups are Messages rollups that include the source IP; their month tables also
	// keep the first and last day a row had messages, for first/last seen.
	Sources
	// Reports rollups count reports by the day their period begins (report-level views keep a
	// report's real range) and by mask, the set of outcomes among its records.
	Reports
)

// Dim is a dimension a rollup table can be filtered or grouped by (besides its period).
type Dim uint8

const (
	DimDomain  Dim = 1 << iota // domain_id
	DimOrg                     // org_id
	DimIP                      // ip_id: the source address's id in rollup_ips
	DimPolicy                  // policy (published p=) and matched (see PublishedPolicy.Matched)
	DimOutcome                 // outcome code, or mask for Reports families
)

// Family is a set of rollup tables with the same dimensions at several time grains (Grain): a
// day table (rollup_NAME_day), a month table (rollup_NAME_month) whose period is the first day
// of the month and, for the narrow families, coarser ones (rollup_NAME_quarter, _year) and
// dekads (days 1-10, 11-20, 21-end of a month), each period named by its first day. A query
// reads whole periods inside its window from the coarsest table that has them and only the
// days at its edges from the day table: a year costs about twelve periods' rows with months,
// not 365, and two or three with years.
//
// The families are a small aggregate lattice: the query side picks the smallest one that has
// every dimension a question filters or groups by. All are maintained from the same cells (the
// messages of one report from one source with one outcome and compliance verdict, spread over
// the report's days), so every family agrees with every other day by day.
type Family struct {
	Name string
	Kind Kind
	Dims Dim
	// PK is the primary key, period included; its leading columns serve the family's common
	// filter (a domain, an org) with a window.
	PK []string
	// Indexes are secondary indexes for the other access paths.
	Indexes [][]string
	// Tiers are the grains the family has tables of its own for, finest first; nil: day and
	// month.
	Tiers []Grain
	// Base, for a family with few tiers of its own, names a family with every dimension of
	// this one whose tables serve the grains this one lacks: a query sums its rows over the
	// dimensions it does not need. The narrow source families keep only the coarse grains,
	// where leaving out outcomes and policies saves rows, and read the day (and month) rows of
	// the family they narrow, where it saves few: one row less to write per cell and grain.
	Base string
	// Migration is the number of the migration that creates the family's tables (0 or 3: the
	// analytics migration; 6: the narrow source families).
	Migration int
}

// Day and Month name the family's day and month tables.
func (f *Family) Day() string   { return f.Table(GrainDay) }
func (f *Family) Month() string { return f.Table(GrainMonth) }

// Table names the family's table at grain g.
func (f *Family) Table(g Grain) string { return "rollup_" + f.Name + "_" + g.String() }

// Grains are the grains the family has tables for, finest first.
func (f *Family) Grains() []Grain {
	if f.Tiers == nil {
		return []Grain{GrainDay, GrainMonth}
	}
	return f.Tiers
}

// ReadGrains are the grains a query can read the family at, finest first: its own and its
// base's.
func (f *Family) ReadGrains() []Grain {
	out := slices.Clone(f.Grains())
	if b := f.base(); b != nil {
		for _, g := range b.ReadGrains() {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
		slices.Sort(out)
	}
	return out
}

// ReadTable names the table a query reads the family's rows of grain g from: its own or its
// base's.
func (f *Family) ReadTable(g Grain) string {
	if b := f.base(); b != nil && !slices.Contains(f.Grains(), g) {
		return b.ReadTable(g)
	}
	return f.Table(g)
}

func (f *Family) base() *Family {
	if f.Base == "" {
		return nil
	}
	for _, o := range Families {
		if o.Name == f.Base {
			return o
		}
	}
	panic("rollup: family " + f.Name + " has no base " + f.Base)
}

// Tables names every table of the family, finest grain first.
func (f *Family) Tables() []string {
	var out []string
	for _, g := range f.Grains() {
		out = append(out, f.Table(g))
	}
	return out
}

// Has reports whether the family has every dimension in d.
func (f *Family) Has(d Dim) bool { return f.Dims&d == d }

// KeyCols are the family's key columns other than period, in PK order.
func (f *Family) KeyCols() []string {
	out := make([]string, 0, len(f.PK)-1)
	for _, c := range f.PK {
		if c != "period" {
			out = append(out, c)
		}
	}
	return out
}

// Measures are the summed (and min/max) columns of the family's table at a grain.
func (f *Family) Measures(g Grain) []string {
	switch {
	case f.Kind == Reports:
		return []string{"reports"}
	case f.Kind == Sources && g != GrainDay:
		return []string{"messages", "first_day", "last_day"}
	}
	return []string{"messages"}
}

// Families lists every rollup family, smallest first within each kind: the query side takes
// the first one that has the dimensions it needs. Sources are kept as ip_id, a small id for the
// address in rollup_ips: grouping and sorting by a 4-byte integer costs a fraction of a
// 16-byte string, and source families are the big ones.
//
// The narrow source families (ip, ip_domain, ip_org) come first: ranking and counting sources
// over a window, and counting a source's reporters, need totals only, not outcomes or
// policies, and these hold one row per source (and domain or reporter) and period instead of
// one per outcome and policy, at coarser grains (year; for ip also quarter, month and dekad),
// so a one-year question reads a few periods' rows per source instead of twelve months' and
// the edge days' rows per outcome.
var Families = []*Family{
	{Name: "ip", Kind: Sources, Dims: DimIP, PK: []string{"period", "ip_id"}, Indexes: [][]string{{"ip_id", "period"}},
		Tiers: []Grain{GrainDekad, GrainMonth, GrainQuarter, GrainYear}, Base: "src", Migration: 6},
	{Name: "ip_domain", Kind: Sources, Dims: DimDomain | DimIP, PK: []string{"domain_id", "period", "ip_id"},
		Indexes: [][]string{{"ip_id", "domain_id", "period"}}, Tiers: []Grain{GrainYear}, Base: "src_domain", Migration: 6},
	// Which reporters saw a source, for a page of top sources.
	{Name: "ip_org", Kind: Sources, Dims: DimOrg | DimIP, PK: []string{"ip_id", "period", "org_id"},
		Indexes: [][]string{{"org_id", "period"}}, Tiers: []Grain{GrainYear}, Base: "src_org", Migration: 6},
	{Name: "all", Kind: Messages, Dims: DimOutcome, PK: []string{"period", "outcome"}},
	{Name: "org", Kind: Messages, Dims: DimOrg | DimOutcome, PK: []string{"org_id", "period", "outcome"},
		Indexes: [][]string{{"period"}}},
	{Name: "domain", Kind: Messages, Dims: DimDomain | DimPolicy | DimOutcome,
		PK: []string{"domain_id", "period", "policy", "matched", "outcome"}, Indexes: [][]string{{"period"}}},
	{Name: "full", Kind: Messages, Dims: DimDomain | DimOrg | DimPolicy | DimOutcome,
		PK: []string{"domain_id", "period", "org_id", "policy", "matched", "outcome"}, Indexes: [][]string{{"org_id", "period"}}},
	{Name: "src", Kind: Sources, Dims: DimIP | DimOutcome, PK: []string{"period", "ip_id", "outcome"},
		Indexes: [][]string{{"ip_id", "period"}}},
	// Which reporters saw a source: read for a page of top sources or an IP filter.
	{Name: "src_org", Kind: Sources, Dims: DimOrg | DimIP | DimOutcome, PK: []string{"ip_id", "period", "org_id", "outcome"},
		Indexes: [][]string{{"org_id", "period"}}},
	{Name: "src_domain", Kind: Sources, Dims: DimDomain | DimIP | DimPolicy | DimOutcome,
		PK: []string{"domain_id", "period", "ip_id", "policy", "matched", "outcome"}, Indexes: [][]string{{"ip_id", "domain_id", "period"}}},
	{Name: "src_full", Kind: Sources, Dims: DimDomain | DimOrg | DimIP | DimPolicy | DimOutcome,
		PK:      []string{"domain_id", "period", "org_id", "ip_id", "policy", "matched", "outcome"},
		Indexes: [][]string{{"org_id", "period"}, {"ip_id", "domain_id", "period"}}},
	// Reports per domain and per reporter whatever their outcomes, for the report counts of a
	// summary without an outcome filter: one row per domain (reporter) and period instead of
	// one per set of outcomes.
	{Name: "rep_domain_total", Kind: Reports, Dims: DimDomain, PK: []string{"domain_id", "period"},
		Indexes: [][]string{{"period"}}, Tiers: []Grain{GrainMonth, GrainYear}, Base: "rep_domain", Migration: 6},
	{Name: "rep_org_total", Kind: Reports, Dims: DimOrg, PK: []string{"org_id", "period"},
		Indexes: [][]string{{"period"}}, Tiers: []Grain{GrainMonth, GrainYear}, Base: "rep_org", Migration: 6},
	{Name: "rep_domain", Kind: Reports, Dims: DimDomain | DimOutcome, PK: []string{"domain_id", "period", "mask"},
		Indexes: [][]string{{"period"}}},
	{Name: "rep_org", Kind: Reports, Dims: DimOrg | DimOutcome, PK: []string{"org_id", "period", "mask"},
		Indexes: [][]string{{"period"}}},
	{Name: "rep_full", Kind: Reports, Dims: DimDomain | DimOrg | DimOutcome, PK: []string{"domain_id", "period", "org_id", "mask"},
		Indexes: [][]string{{"org_id", "period"}}},
	// Reports with a given source (mask: the outcomes of that source's records in the report).
	// Summed over one address it counts each report once; over several it would count a report
	// once per address, so the query side reads it only when a filter selects one address.
	{Name: "rep_src", Kind: Reports, Dims: DimDomain | DimOrg | DimIP | DimOutcome, PK: []string{"ip_id", "period", "domain_id", "org_id", "mask"}},
}

// Pick returns the first family of kind k (Sources counts as Messages too) with every
// dimension in need, or nil.
func Pick(k Kind, need Dim) *Family {
	for _, f := range Families {
		ok := f.Kind == k || (k == Messages && f.Kind == Sources)
		if ok && f.Has(need) {
			return f
		}
	}
	return nil
}

// colType is a column's SQL type per dialect ("postgres" or "sqlite").
func colType(col, dialect string) string {
	pg := dialect == "postgres"
	switch col {
	case "period", "domain_id", "org_id", "ip_id", "first_day", "last_day":
		return "INTEGER"
	case "outcome", "policy", "matched":
		if pg {
			return "SMALLINT"
		}
		return "INTEGER"
	case "mask", "messages", "reports":
		return "BIGINT"
	}
	panic("rollup: no type for column " + col)
}

// inMigration reports whether migration n creates f's tables (0 counts as 3).
func (f *Family) inMigration(n int) bool { return max(f.Migration, 3) == n }

// DDL renders the CREATE statements of the rollup tables migration n creates for a dialect;
// the migration files hold their output (TestMigrationMatchesFamilies keeps them equal).
func DDL(dialect string, n int) string {
	var b strings.Builder
	for _, f := range Families {
		if !f.inMigration(n) {
			continue
		}
		for _, g := range f.Grains() {
			table := f.Table(g)
			fmt.Fprintf(&b, "CREATE TABLE %s (\n", table)
			for _, c := range append(append([]string{}, f.PK...), f.Measures(g)...) {
				fmt.Fprintf(&b, "    %s %s NOT NULL,\n", c, colType(c, dialect))
			}
			fmt.Fprintf(&b, "    PRIMARY KEY (%s)\n)", strings.Join(f.PK, ", "))
			if dialect == "sqlite" {
				b.WriteString(" WITHOUT ROWID")
			}
			b.WriteString(";\n")
			for _, idx := range f.Indexes {
				fmt.Fprintf(&b, "CREATE INDEX %s_%s_idx ON %s (%s);\n", table, strings.Join(idx, "_"), table, strings.Join(idx, ", "))
			}
		}
	}
	return b.String()
}

// DropDDL drops what DDL creates.
func DropDDL(n int) string {
	var b strings.Builder
	for i := len(Families) - 1; i >= 0; i-- {
		f := Families[i]
		if !f.inMigration(n) {
			continue
		}
		tables := f.Tables()
		for j := len(tables) - 1; j >= 0; j-- {
			fmt.Fprintf(&b, "DROP TABLE %s;\n", tables[j])
		}
	}
	return b.String()
}

// Migration is the text of the analytics migration (migrations/DIALECT/00003_analytics.sql).
func Migration(dialect string) string {
	pg := dialect == "postgres"
	serial, ts := "INTEGER PRIMARY KEY", "DATETIME"
	if pg {
		serial, ts = "SERIAL PRIMARY KEY", "TIMESTAMPTZ"
	}
	var b strings.Builder
	b.WriteString("-- +goose Up\n")
	b.WriteString("-- Analytics rollups (pkg/rollup). Generated from rollup.Families by\n")
	b.WriteString("-- `go test ./pkg/rollup -run TestMigrationMatchesFamilies -update`; edit the families, not this file.\n\n")
	b.WriteString("-- Small ids for the policy domains and reporters rollup rows carry; never reused or changed.\n")
	fmt.Fprintf(&b, "CREATE TABLE rollup_domains (\n    id %s,\n    name TEXT NOT NULL UNIQUE\n);\n", serial)
	fmt.Fprintf(&b, "CREATE TABLE rollup_orgs (\n    id %s,\n    org_key TEXT NOT NULL UNIQUE,\n    org_name TEXT NOT NULL\n);\n", serial)
	b.WriteString("-- Source addresses in the 16-byte form of records.ip (IPv4 mapped): exact and CIDR filters are\n")
	b.WriteString("-- byte ranges on ip, turned into ids for the rollups.\n")
	blob := "BLOB"
	if pg {
		blob = "BYTEA"
	}
	fmt.Fprintf(&b, "CREATE TABLE rollup_ips (\n    id %s,\n    ip %s NOT NULL UNIQUE\n);\n\n", serial, blob)
	b.WriteString("-- One row per report whose contribution is in the rollups, written in the same transaction as\n")
	b.WriteString("-- the rollup rows: applying a report twice finds it here and adds nothing. Reports stored\n")
	b.WriteString("-- before this migration have no row; the periodic catch-up applies them.\n")
	fmt.Fprintf(&b, "CREATE TABLE rollup_applied (\n    report_id BIGINT PRIMARY KEY,\n    applied_at %s NOT NULL\n);\n\n", ts)
	b.WriteString("-- period is a UTC day number (days since 1970-01-01); in month tables, the first day of the month.\n")
	b.WriteString(DDL(dialect, 3))
	b.WriteString("\n-- +goose Down\n")
	b.WriteString(DropDDL(3))
	b.WriteString("DROP TABLE rollup_applied;\nDROP TABLE rollup_ips;\nDROP TABLE rollup_orgs;\nDROP TABLE rollup_domains;\n")
	return b.String()
}

// backfill is the SQL that fills f's tables from the rollups of its base, an older family with
// every dimension of f: the same cells summed over the dimensions f lacks.
func backfill(dialect string, f *Family) string {
	from := f.base()
	if from == nil || !from.inMigration(3) || !from.Has(f.Dims) {
		panic("rollup: no family to fill " + f.Name + " from")
	}
	keys := f.KeyCols()
	var b strings.Builder
	for _, g := range f.Grains() {
		// Each table from the same grain of the older family or, when it has none, from the
		// next finer grain it has, whose periods nest in g's.
		fine := GrainDay
		for _, fg := range from.Grains() {
			if fg <= g {
				fine = fg
			}
		}
		src, period := from.Table(fine), "period"
		if fine != g {
			period = g.startSQL(dialect, "period")
		}
		var sel []string
		for _, c := range f.PK {
			if c == "period" {
				sel = append(sel, period)
			} else {
				sel = append(sel, c)
			}
		}
		cols := append(slices.Clone(f.PK), f.Measures(g)...)
		first, last := "MIN(first_day)", "MAX(last_day)"
		if fine == GrainDay {
			first, last = "MIN(period)", "MAX(period)"
		}
		for _, m := range f.Measures(g) {
			switch m {
			case "first_day":
				sel = append(sel, first)
			case "last_day":
				sel = append(sel, last)
			default:
				sel = append(sel, "SUM("+m+")")
			}
		}
		fmt.Fprintf(&b, "INSERT INTO %s (%s)\n    SELECT %s FROM %s GROUP BY %s;\n", f.Table(g), strings.Join(cols, ", "),
			strings.Join(sel, ", "), src, strings.Join(append([]string{period}, keys...), ", "))
		if dialect == "postgres" {
			fmt.Fprintf(&b, "ANALYZE %s;\n", f.Table(g))
		}
	}
	return b.String()
}

// NarrowMigration is the text of migrations/DIALECT/00006_narrow_rollups.sql: the
// narrow source families and their year tables, filled from the rollups already there.
func NarrowMigration(dialect string) string {
	var b strings.Builder
	b.WriteString("-- +goose Up\n")
	b.WriteString("-- Narrow rollups (pkg/rollup: the families of migration 6). Generated from rollup.Families by\n")
	b.WriteString("-- `go test ./pkg/rollup -run TestMigrationMatchesFamilies -update`.\n")
	b.WriteString("-- Ranking and counting the sources of a window reads one row per source and period here, not\n")
	b.WriteString("-- one per outcome and policy, and counting its reports one row per domain or reporter, not one\n")
	b.WriteString("-- per set of outcomes; whole years, quarters, months and dekads (days 1-10, 11-20, 21-end of a\n")
	b.WriteString("-- month) come from their own tables, period being the period's first day, and finer rows from\n")
	b.WriteString("-- the families these narrow. The tables are filled from those families' rows, so they hold the\n")
	b.WriteString("-- same reports; stop workers of older versions before migrating (they would not write here).\n")
	b.WriteString(DDL(dialect, 6))
	b.WriteString("\n")
	for _, f := range Families {
		if f.inMigration(6) {
			b.WriteString(backfill(dialect, f))
		}
	}
	b.WriteString("\n-- +goose Down\n")
	b.WriteString(DropDDL(6))
	return b.String()
}
