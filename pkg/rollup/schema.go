package rollup

import (
	"fmt"
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

// Family is a set of rollup tables with the same dimensions at two time grains: a day table
// (rollup_NAME_day) and a month table (rollup_NAME_month) whose period is the first day of the
// month. A query for whole months inside its window reads month rows and only the days at its
// edges from the day table, so a year costs about twelve periods' rows, not 365.
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
}

// Day and Month name the family's tables.
func (f *Family) Day() string   { return "rollup_" + f.Name + "_day" }
func (f *Family) Month() string { return "rollup_" + f.Name + "_month" }

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
func (f *Family) Measures(month bool) []string {
	switch {
	case f.Kind == Reports:
		return []string{"reports"}
	case f.Kind == Sources && month:
		return []string{"messages", "first_day", "last_day"}
	}
	return []string{"messages"}
}

// Families lists every rollup family, smallest first within each kind: the query side takes
// the first one that has the dimensions it needs. Sources are kept as ip_id, a small id for the
// address in rollup_ips: grouping and sorting by a 4-byte integer costs a fraction of a
// 16-byte string, and source families are the big ones.
var Families = []*Family{
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

// DDL renders the CREATE statements of every rollup table for a dialect; the migration files
// hold their output (TestMigrationMatchesFamilies keeps them equal).
func DDL(dialect string) string {
	var b strings.Builder
	for _, f := range Families {
		for _, month := range []bool{false, true} {
			table := f.Day()
			if month {
				table = f.Month()
			}
			fmt.Fprintf(&b, "CREATE TABLE %s (\n", table)
			for _, c := range append(append([]string{}, f.PK...), f.Measures(month)...) {
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
func DropDDL() string {
	var b strings.Builder
	for i := len(Families) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "DROP TABLE %s;\nDROP TABLE %s;\n", Families[i].Month(), Families[i].Day())
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
	b.WriteString(DDL(dialect))
	b.WriteString("\n-- +goose Down\n")
	b.WriteString(DropDDL())
	b.WriteString("DROP TABLE rollup_applied;\nDROP TABLE rollup_ips;\nDROP TABLE rollup_orgs;\nDROP TABLE rollup_domains;\n")
	return b.String()
}
