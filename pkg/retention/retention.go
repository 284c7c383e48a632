// Package retention deletes stored data older than the operator's policy (VIGIL_RETENTION_*):
// reports with their records, original files, analytics rollup rows and audit entries. The
// purge runs as a scheduled task in batches, each its own transaction, so it never holds a
// long lock, an interrupted run keeps what it finished, and running it again deletes only what
// is left (idempotent). A dry run counts what would go and deletes nothing.
//
// Rollups stay exact: a purged report is subtracted from every rollup in the transaction that
// deletes it (rollup.Remove), as is a report an admin deletes (DeleteReport), so an analytics
// answer always equals a computation over the reports that remain. Rollups also have an age of
// their own, applied to whole periods only, so an answer about a period is complete or absent.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/gencache"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
)

// Policy is how long each kind of data is kept; zero keeps it forever.
type Policy struct {
	Reports time.Duration            // reports and records, by the end of the period they cover
	Domains map[string]time.Duration // per-domain ages for reports, overriding Reports
	Files   time.Duration            // original files, by when they were received (never a pending one)
	Rollups time.Duration            // rollup rows, by the end of their period
	Audit   time.Duration            // audit entries, by their time
	Batch   int                      // rows per statement and transaction (default 5000)
	DryRun  bool                     // the scheduled purge only counts
}

// Enabled reports whether the policy ever deletes anything.
func (p Policy) Enabled() bool {
	return p.Reports > 0 || p.Files > 0 || p.Rollups > 0 || p.Audit > 0 || len(p.Domains) > 0
}

// Result is what a purge deleted, or with DryRun would delete.
type Result struct {
	DryRun     bool  `json:"dry_run"`
	Reports    int64 `json:"reports"`
	Records    int64 `json:"records"`
	Files      int64 `json:"files"`
	RollupRows int64 `json:"rollup_rows"`
	Audit      int64 `json:"audit_entries"`
}

// Deps are what the purge needs; Cache (may be nil) is told when rollups change, Audit (may be
// nil) records each purge that deleted something.
type Deps struct {
	Store  *store.Store
	Cache  *gencache.Cache
	Audit  *audit.Log
	Policy Policy
	Log    *slog.Logger
	Now    func() time.Time
	// Rollup subtracts deleted reports from the rollups; nil: one is built on Store and Cache.
	Rollup *rollup.Rollup
}

// Service runs purges.
type Service struct {
	st    *store.Store
	db    *gorm.DB
	cache *gencache.Cache
	audit *audit.Log
	ru    *rollup.Rollup
	pol   Policy
	log   *slog.Logger
	now   func() time.Time
}

// New builds the service.
func New(d Deps) *Service {
	if d.Policy.Batch <= 0 {
		d.Policy.Batch = 5000
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Rollup == nil {
		d.Rollup = rollup.New(d.Store, d.Cache, d.Log)
	}
	return &Service{st: d.Store, db: d.Store.DB(), cache: d.Cache, audit: d.Audit, ru: d.Rollup, pol: d.Policy, log: d.Log, now: d.Now}
}

// Policy is the policy the service applies.
func (s *Service) Policy() Policy { return s.pol }

// Purge deletes what the policy no longer keeps (counts it only when dryRun).
func (s *Service) Purge(ctx context.Context, dryRun bool) (Result, error) {
	now := s.now().UTC()
	res := Result{DryRun: dryRun}
	var err error
	if res.Reports, res.Records, err = s.purgeReports(ctx, now, dryRun); err != nil {
		return res, err
	}
	if s.pol.Files > 0 {
		if res.Files, err = s.purgeFiles(ctx, now.Add(-s.pol.Files), dryRun); err != nil {
			return res, err
		}
	}
	if s.pol.Rollups > 0 {
		if res.RollupRows, err = s.purgeRollups(ctx, now.Add(-s.pol.Rollups), dryRun); err != nil {
			return res, err
		}
	}
	if s.pol.Audit > 0 {
		if res.Audit, err = s.purgeAudit(ctx, now.Add(-s.pol.Audit), dryRun); err != nil {
			return res, err
		}
	}
	if !dryRun && res != (Result{}) {
		s.log.Info("retention: purged", "reports", res.Reports, "records", res.Records, "files", res.Files,
			"rollup_rows", res.RollupRows, "audit_entries", res.Audit)
		if s.audit != nil {
			if aerr := s.audit.Record(ctx, audit.Entry{Actor: "scheduler", Action: ActionPurge, Outcome: "success", Target: "retention",
				Details: map[string]any{"reports": res.Reports, "records": res.Records, "files": res.Files,
					"rollup_rows": res.RollupRows, "audit_entries": res.Audit}}); aerr != nil {
				s.log.Error("retention: purge not audited", "err", aerr)
			}
		}
	}
	return res, nil
}

// ActionPurge is the audit action of a purge.
const ActionPurge = "retention.purge"

// reportScope is one age applied to some reports: every domain but the overridden ones, or
// one overridden domain.
type reportScope struct {
	cutoff time.Time
	where  string
	args   []any
}

func (s *Service) reportScopes(now time.Time) []reportScope {
	var out []reportScope
	domains := make([]string, 0, len(s.pol.Domains))
	for d := range s.pol.Domains {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	if s.pol.Reports > 0 {
		sc := reportScope{cutoff: now.Add(-s.pol.Reports), where: "date_end < ?"}
		sc.args = []any{sc.cutoff}
		if len(domains) > 0 {
			sc.where += " AND LOWER(domain) NOT IN ?"
			sc.args = append(sc.args, domains)
		}
		out = append(out, sc)
	}
	for _, d := range domains {
		c := now.Add(-s.pol.Domains[d])
		out = append(out, reportScope{cutoff: c, where: "date_end < ? AND LOWER(domain) = ?", args: []any{c, d}})
	}
	return out
}

// purgeReports deletes the reports whose period ended before their cutoff, with their records,
// their links to files and their rollup claims, a batch of reports per transaction.
func (s *Service) purgeReports(ctx context.Context, now time.Time, dryRun bool) (reports, records int64, err error) {
	for _, sc := range s.reportScopes(now) {
		if dryRun {
			var c struct{ N, R int64 }
			q := `SELECT COUNT(*) AS n, COALESCE(SUM(record_count), 0) AS r FROM reports WHERE ` + sc.where
			if err := s.db.WithContext(ctx).Raw(q, sc.args...).Scan(&c).Error; err != nil {
				return 0, 0, fmt.Errorf("retention: count reports: %w", err)
			}
			reports, records = reports+c.N, records+c.R
			continue
		}
		for {
			var ids []int64
			q := `SELECT id FROM reports WHERE ` + sc.where + ` ORDER BY id LIMIT ?`
			if err := s.db.WithContext(ctx).Raw(q, append(slices.Clone(sc.args), s.batchReports())...).Scan(&ids).Error; err != nil {
				return reports, records, fmt.Errorf("retention: find reports: %w", err)
			}
			if len(ids) == 0 {
				break
			}
			nr, n, err := s.deleteReports(ctx, ids)
			if err != nil {
				return reports, records, err
			}
			reports, records = reports+nr, records+n
			if err := ctx.Err(); err != nil {
				return reports, records, err
			}
		}
	}
	return reports, records, nil
}

// batchReports bounds the reports of one transaction so that their records, on average a few
// each but up to thousands, stay near the batch size.
func (s *Service) batchReports() int { return max(1, s.pol.Batch/10) }

// deleteReports deletes the reports of ids still stored and everything that hangs on them in
// one transaction, their contributions subtracted from the rollups in it too, and returns how
// many reports and records went. Records have no foreign key (ingestion speed): they are
// deleted here by their report id, before the report.
func (s *Service) deleteReports(ctx context.Context, ids []int64) (reports, records int64, err error) {
	for attempt := 0; ; attempt++ {
		reports, records, err = s.deleteReportsOnce(ctx, ids)
		// A deadlock victim (subtracting while a worker adds to the same rollup rows) is run
		// again; anything else is the caller's.
		if err == nil || !rollup.Retryable(err) || attempt == 4 || ctx.Err() != nil {
			break
		}
		s.log.Debug("retention: delete retried", "attempt", attempt+1, "err", err)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("retention: delete %d reports from id %d: %w", len(ids), ids[0], err)
	}
	return reports, records, nil
}

func (s *Service) deleteReportsOnce(ctx context.Context, ids []int64) (reports, records int64, err error) {
	var domains []string
	err = s.st.WriteDerived(ctx, func(tx *gorm.DB) error {
		stored, doms, err := s.ru.Remove(ctx, tx, ids)
		if err != nil || len(stored) == 0 {
			return err
		}
		domains = doms
		r := tx.Exec(`DELETE FROM records WHERE report_id IN ?`, stored)
		if r.Error != nil {
			return r.Error
		}
		records = r.RowsAffected
		for _, q := range []string{
			`DELETE FROM ingest_reports WHERE report_id IN ?`,
			`DELETE FROM rollup_applied WHERE report_id IN ?`,
			`DELETE FROM reports WHERE id IN ?`,
		} {
			if err := tx.Exec(q, stored).Error; err != nil {
				return err
			}
		}
		reports = int64(len(stored))
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	s.ru.Invalidate(ctx, domains)
	return reports, records, nil
}

// DeleteReport deletes one report now (DELETE /api/reports/{id}) as a purge would: with its
// records and links, subtracted from the rollups, and durable when it returns. It reports
// whether the report was there.
func (s *Service) DeleteReport(ctx context.Context, id int64) (bool, error) {
	n, _, err := s.deleteReports(ctx, []int64{id})
	if err != nil || n == 0 {
		return false, err
	}
	return true, s.st.Durable(ctx)
}

// purgeFiles deletes the original bytes of files received before cutoff; the file's row stays
// (the ingest list, and recognising the same bytes sent again). A pending file is kept: it is
// still to be parsed.
func (s *Service) purgeFiles(ctx context.Context, cutoff time.Time, dryRun bool) (int64, error) {
	const pick = `SELECT f.ingest_id FROM raw_files f JOIN ingests i ON i.id = f.ingest_id
		WHERE i.received_at < ? AND i.status <> 'pending'`
	if dryRun {
		var n int64
		err := s.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM (`+pick+`) x`, cutoff).Scan(&n).Error
		if err != nil {
			return 0, fmt.Errorf("retention: count files: %w", err)
		}
		return n, nil
	}
	var total int64
	for {
		var n int64
		err := s.st.WriteDerived(ctx, func(tx *gorm.DB) error {
			r := tx.Exec(`DELETE FROM raw_files WHERE ingest_id IN (`+pick+` ORDER BY f.ingest_id LIMIT ?)`, cutoff, s.pol.Batch)
			n = r.RowsAffected
			return r.Error
		})
		if err != nil {
			return total, fmt.Errorf("retention: delete files: %w", err)
		}
		total += n
		if n < int64(s.pol.Batch) || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}

// purgeRollups deletes the rollup rows of the periods that ended before cutoff, in every table
// of every family, period by period (a period's rows are one batch). A period that straddles
// the cutoff is kept whole.
func (s *Service) purgeRollups(ctx context.Context, cutoff time.Time, dryRun bool) (int64, error) {
	day := rollup.DayOf(cutoff)
	var total int64
	for _, f := range rollup.Families {
		for _, g := range f.Grains() {
			// Periods starting before the start of the period holding the cutoff day end by it.
			before := g.Start(day)
			table := f.Table(g)
			if dryRun {
				var n int64
				if err := s.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM `+table+` WHERE period < ?`, before).Scan(&n).Error; err != nil {
					return total, fmt.Errorf("retention: count %s: %w", table, err)
				}
				total += n
				continue
			}
			var periods []int32
			if err := s.db.WithContext(ctx).Raw(`SELECT DISTINCT period FROM `+table+` WHERE period < ? ORDER BY period`, before).Scan(&periods).Error; err != nil {
				return total, fmt.Errorf("retention: periods of %s: %w", table, err)
			}
			for _, p := range periods {
				var n int64
				err := s.st.WriteDerived(ctx, func(tx *gorm.DB) error {
					r := tx.Exec(`DELETE FROM `+table+` WHERE period = ?`, p)
					n = r.RowsAffected
					return r.Error
				})
				if err != nil {
					return total, fmt.Errorf("retention: delete %s period %d: %w", table, p, err)
				}
				total += n
			}
		}
	}
	if total > 0 && !dryRun {
		s.invalidate(ctx)
	}
	return total, nil
}

// invalidate drops every cached answer: rollups of any domain may have changed.
func (s *Service) invalidate(ctx context.Context) {
	if s.cache == nil {
		return
	}
	var domains []string
	if err := s.db.WithContext(ctx).Raw(`SELECT name FROM rollup_domains`).Scan(&domains).Error; err != nil {
		s.log.Warn("retention: cached answers not invalidated; they expire with their TTL", "err", err)
		return
	}
	if err := s.cache.Invalidate(ctx, domains); err != nil {
		s.log.Warn("retention: cached answers not invalidated; they expire with their TTL", "err", err)
	}
}

// purgeAudit deletes audit entries older than cutoff, a batch at a time.
func (s *Service) purgeAudit(ctx context.Context, cutoff time.Time, dryRun bool) (int64, error) {
	if dryRun {
		var n int64
		if err := s.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM audit_log WHERE at < ?`, cutoff).Scan(&n).Error; err != nil {
			return 0, fmt.Errorf("retention: count audit entries: %w", err)
		}
		return n, nil
	}
	var total int64
	for {
		var n int64
		err := s.st.WriteDerived(ctx, func(tx *gorm.DB) error {
			r := tx.Exec(`DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY id LIMIT ?)`, cutoff, s.pol.Batch)
			n = r.RowsAffected
			return r.Error
		})
		if err != nil {
			return total, fmt.Errorf("retention: delete audit entries: %w", err)
		}
		total += n
		if n < int64(s.pol.Batch) || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
