package rollup

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
)

// upsert adds the accumulated rows to the rollup tables. Every transaction writes tables in the
// same order and each table's rows in key order, so concurrent transactions lock shared rows in
// the same order and do not deadlock each other.
func (r *Rollup) upsert(ctx context.Context, tx *gorm.DB, a *accumulator) error {
	for _, t := range a.tables {
		if t.derived() {
			a.fill(t)
		}
		if len(t.rows) == 0 {
			continue
		}
		keys := make([]key, 0, len(t.rows))
		for k := range t.rows {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, key.compare)
		var err error
		if r.dialect == store.Postgres {
			err = upsertPG(ctx, tx, t, keys)
		} else {
			err = upsertSQLite(ctx, r.st, tx, t, keys)
		}
		if err != nil {
			return fmt.Errorf("upsert %s: %w", t.name(), err)
		}
		if t.derived() {
			clear(t.rows) // the cells hold them
		}
	}
	return nil
}

func (t *table) name() string { return t.fam.Table(t.grain) }

func (t *table) cols() []string {
	return append(slices.Clone(t.fam.PK), t.fam.Measures(t.grain)...)
}

// conflict is the ON CONFLICT clause: sums add up, first/last days widen. alias qualifies the
// existing row (PostgreSQL needs it; SQLite reads unqualified names as the existing row).
func (t *table) conflict(alias string) string {
	var set []string
	for _, m := range t.fam.Measures(t.grain) {
		switch m {
		case "first_day":
			set = append(set, fmt.Sprintf("first_day = %s(%sfirst_day, excluded.first_day)", pick(alias != "", "LEAST", "MIN"), alias))
		case "last_day":
			set = append(set, fmt.Sprintf("last_day = %s(%slast_day, excluded.last_day)", pick(alias != "", "GREATEST", "MAX"), alias))
		default:
			set = append(set, fmt.Sprintf("%s = %s%s + excluded.%s", m, alias, m, m))
		}
	}
	return fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", strings.Join(t.fam.PK, ", "), strings.Join(set, ", "))
}

func pick(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// colValue is one column of a row, typed for the driver.
func colValue(col string, k key, v *value) any {
	switch col {
	case "period":
		return int64(k.period)
	case "domain_id":
		return int64(k.domain)
	case "org_id":
		return int64(k.org)
	case "ip_id":
		return int64(k.ip)
	case "policy":
		return int64(k.policy)
	case "matched":
		return int64(k.matched)
	case "outcome":
		return int64(k.outcome)
	case "mask":
		return k.mask
	case "messages", "reports":
		return v.n
	case "first_day":
		return int64(v.first)
	case "last_day":
		return int64(v.last)
	}
	panic("rollup: unknown column " + col)
}

// pgArrayType is the array type unnest reads a column from.
func pgArrayType(col string) string {
	switch colType(col, "postgres") {
	case "SMALLINT":
		return "smallint[]"
	case "BYTEA":
		return "bytea[]"
	case "BIGINT":
		return "bigint[]"
	}
	return "integer[]"
}

// pgChunk bounds the rows of one statement (each column is one array parameter).
const pgChunk = 20000

// upsertPG sends each column as one array and unnests them: one short statement for thousands
// of rows, with nothing for the server to parse per row.
func upsertPG(ctx context.Context, tx *gorm.DB, t *table, keys []key) error {
	cols := t.cols()
	var b strings.Builder
	fmt.Fprintf(&b, "INSERT INTO %s AS x (%s) SELECT * FROM unnest(", t.name(), strings.Join(cols, ", "))
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d::%s", i+1, pgArrayType(c))
	}
	b.WriteString(")")
	b.WriteString(t.conflict("x."))
	query := b.String()
	for start := 0; start < len(keys); start += pgChunk {
		part := keys[start:min(start+pgChunk, len(keys))]
		args := make([]any, len(cols))
		for i, c := range cols {
			switch colType(c, "postgres") {
			case "BYTEA":
				a := make([][]byte, len(part))
				for j, k := range part {
					a[j] = colValue(c, k, t.rows[k]).([]byte)
				}
				args[i] = a
			default:
				a := make([]int64, len(part))
				for j, k := range part {
					v := colValue(c, k, t.rows[k])
					if n, ok := v.(int64); ok {
						a[j] = n
					}
				}
				args[i] = a
			}
		}
		if _, err := tx.Statement.ConnPool.ExecContext(ctx, query, args...); err != nil {
			return err
		}
	}
	return nil
}

// sqliteChunk rows per statement: SQLite has no round trips to save. Every statement runs a
// prepared text (Store.ExecRepeated): full chunks one text, and a table's tail in chunks of
// halving sizes (32, 16, … 1 rows), so no text is parsed per pass: parsing the tails afresh
// was 4% of a small-file import's CPU (perf, 8,000 files). (The size dates from the earlier
// driver's quadratic binding; not re-tuned.)
const sqliteChunk = 64

func upsertSQLite(ctx context.Context, st *store.Store, tx *gorm.DB, t *table, keys []key) error {
	cols := t.cols()
	texts := map[int]string{}
	text := func(rows int) string {
		if q, ok := texts[rows]; ok {
			return q
		}
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", t.name(), strings.Join(cols, ", "))
		row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
		for i := 0; i < rows; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(row)
		}
		b.WriteString(t.conflict(""))
		texts[rows] = b.String()
		return texts[rows]
	}
	args := make([]any, 0, sqliteChunk*len(cols))
	for start := 0; start < len(keys); {
		n := sqliteChunk
		for n > len(keys)-start {
			n /= 2
		}
		args = args[:0]
		for _, k := range keys[start : start+n] {
			for _, c := range cols {
				args = append(args, colValue(c, k, t.rows[k]))
			}
		}
		if err := st.ExecRepeated(ctx, tx, text(n), args...); err != nil {
			return err
		}
		start += n
	}
	return nil
}
