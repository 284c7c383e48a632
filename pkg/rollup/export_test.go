package rollup

import "strings"

// SetMaxHeld makes r write its rows every n rows, to test batches written in parts.
func SetMaxHeld(r *Rollup, n int) { r.maxHeld = n }

// Backfill is the SQL of the narrow-families migration that fills their tables.
func Backfill(dialect string) string {
	var b strings.Builder
	for _, f := range Families {
		if f.inMigration(6) {
			b.WriteString(backfill(dialect, f))
		}
	}
	return b.String()
}

// Passes is how many passes a has run that had files to apply.
func Passes(a *Applier) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.passes
}

// Staged is how many reports a applied from its stage (rows added as the files were stored)
// rather than from the database.
func Staged(a *Applier) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.staged
}
