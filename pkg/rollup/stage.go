package rollup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
)

// stage accumulates the rollup rows of reports this process inserted, as the after-store hook
// hands them over, so that a pass writes them without reading the records back or adding
// them up: the pass that ends an import is then a claim and the upserts. Reading back and
// adding up was 40% of that pass (115–135 ms of a 20 × 2,286-record import).
//
// The stage is only a shortcut: its rows count only when the pass claims every report it
// holds (applyStage); otherwise the pass applies them from the database as before, so a
// report applied meanwhile elsewhere (a catch-up) is never added twice. Rows are keyed by ids
// local to the stage (1, 2, … in order of first sight) until the pass resolves the names.
type stage struct {
	acc     *accumulator
	ids     map[int64]bool // the reports held
	local   dims           // local ids
	orgName map[string]orgName
	domains []string // by local id - 1
	orgs    []string
	ips     [][16]byte
	broken  bool // a report was held in part (not met: add checks that it fits first)
	full    bool // a report was refused for want of room
}

// orgName is the display name of an org key: the one of its lowest report id, as a pass
// reading the reports in id order would pick.
type orgName struct {
	name string
	id   int64
}

func newStage(max int) *stage {
	return &stage{acc: newAccumulator(max), ids: map[int64]bool{}, orgName: map[string]orgName{},
		local: dims{domains: map[string]int32{}, orgs: map[string]int32{}, ips: map[[16]byte]int32{}}}
}

// errStageFull stops addReport where a report does not fit.
var errStageFull = errors.New("rollup: stage full")

// add holds one inserted report's rows, unless the report is held already or its rows might
// not fit max: the pass then reads it back instead.
func (s *stage) add(nr store.NewReport) {
	if s.ids[nr.ID] || nr.Header == nil {
		return
	}
	row := store.ReportRow(0, nr.Header) // the values stored, as loadReports would read them
	rep := report{ID: nr.ID, Domain: row.Domain, OrgKey: row.OrgKey, OrgName: row.OrgName, DateBegin: row.DateBegin,
		DateEnd: row.DateEnd, PolicyP: row.PolicyP, PolicySP: row.PolicySP, PolicyPct: row.PolicyPct, Testing: row.PolicyTesting}
	// Rows a report may add: a cell per record and day, and its Reports rows (one per table,
	// or per source for the tables by source).
	days := len(NewSpan(rep.DateBegin, rep.DateEnd).Overlap)
	if s.acc.size+len(nr.Records)*(days+2)+len(s.acc.tables) > s.acc.max {
		s.full = true
		return
	}
	recs := make([]record, len(nr.Records))
	for i, r := range nr.Records {
		recs[i] = record{IP: store.RecordIP(r.SourceIP), Count: r.Count, Disposition: r.Disposition, DKIM: r.DKIM, SPF: r.SPF, HeaderFrom: r.HeaderFrom}
		if _, ok := s.local.ips[recs[i].IP]; !ok {
			s.ips = append(s.ips, recs[i].IP)
			s.local.ips[recs[i].IP] = int32(len(s.ips))
		}
	}
	if _, ok := s.local.domains[rep.Domain]; !ok {
		s.domains = append(s.domains, rep.Domain)
		s.local.domains[rep.Domain] = int32(len(s.domains))
	}
	if _, ok := s.local.orgs[rep.OrgKey]; !ok {
		s.orgs = append(s.orgs, rep.OrgKey)
		s.local.orgs[rep.OrgKey] = int32(len(s.orgs))
	}
	if n, ok := s.orgName[rep.OrgKey]; !ok || rep.ID < n.id {
		s.orgName[rep.OrgKey] = orgName{rep.OrgName, rep.ID}
	}
	if err := s.acc.addReport(rep, s.local, recs, func() error { return errStageFull }); err != nil {
		s.broken = true // part of the report is held: the pass reads every report back
		return
	}
	s.ids[nr.ID] = true
}

// errStageStale: a report of the stage was applied (or deleted) since it was staged.
var errStageStale = errors.New("rollup: a staged report is no longer unapplied")

// applyStage writes the stage's rows in one transaction, provided it claims every report the
// stage holds; it returns the domains of those reports. errStageStale, or any error, leaves
// nothing written: the caller applies the reports from the database instead.
func (r *Rollup) applyStage(ctx context.Context, s *stage) ([]string, error) {
	if s.broken {
		return nil, errStageFull
	}
	ids := slices.Sorted(maps.Keys(s.ids))
	err := r.st.WriteDerived(ctx, func(tx *gorm.DB) error {
		n := 0
		for start := 0; start < len(ids); start += stageClaimChunk {
			claimed, err := r.claim(tx, ids[start:min(start+stageClaimChunk, len(ids))])
			if err != nil {
				return err
			}
			n += len(claimed)
		}
		if n != len(ids) {
			return errStageStale
		}
		db, err := s.resolve(ctx, tx, r.dialect)
		if err != nil {
			return err
		}
		s.acc.remap(db)
		return r.upsert(ctx, tx, s.acc)
	})
	if err != nil {
		return nil, fmt.Errorf("rollup: apply %d staged reports: %w", len(ids), err)
	}
	return slices.Sorted(slices.Values(s.domains)), nil
}

// stageClaimChunk bounds the ids of one claim statement (SQLite binds each as a parameter).
const stageClaimChunk = 5000

// resolve finds or creates the database ids of the stage's names, indexed by local id.
func (s *stage) resolve(ctx context.Context, tx *gorm.DB, dialect store.Dialect) (localIDs, error) {
	d := dims{domains: map[string]int32{}, orgs: map[string]int32{}, ips: map[[16]byte]int32{}}
	for _, ip := range s.ips {
		d.ips[ip] = 0
	}
	if err := resolveIPs(ctx, tx, dialect, d.ips); err != nil {
		return localIDs{}, err
	}
	names := map[string]string{}
	for _, n := range s.domains {
		d.domains[n] = 0
	}
	for _, k := range s.orgs {
		d.orgs[k] = 0
		names[k] = s.orgName[k].name
	}
	if err := resolve(tx, "rollup_domains", "name", d.domains, nil); err != nil {
		return localIDs{}, err
	}
	if err := resolve(tx, "rollup_orgs", "org_key", d.orgs, names); err != nil {
		return localIDs{}, err
	}
	out := localIDs{domain: make([]int32, len(s.domains)+1), org: make([]int32, len(s.orgs)+1), ip: make([]int32, len(s.ips)+1)}
	for i, n := range s.domains {
		out.domain[i+1] = d.domains[n]
	}
	for i, k := range s.orgs {
		out.org[i+1] = d.orgs[k]
	}
	for i, ip := range s.ips {
		out.ip[i+1] = d.ips[ip]
	}
	return out, nil
}

// localIDs maps local ids (the index; 0 stays 0, a dimension the row lacks) to database ids.
type localIDs struct{ domain, org, ip []int32 }

func (m localIDs) key(k key) key {
	k.domain, k.org, k.ip = m.domain[k.domain], m.org[k.org], m.ip[k.ip]
	return k
}

// remap rewrites the held rows' local ids as database ids. The maps are one to one, so no
// two rows merge.
func (a *accumulator) remap(m localIDs) {
	cells := make(map[key]int64, len(a.cells))
	for k, n := range a.cells {
		cells[m.key(k)] = n
	}
	a.cells = cells
	for _, t := range a.tables {
		if t.derived() || len(t.rows) == 0 {
			continue
		}
		rows := make(map[key]*value, len(t.rows))
		for k, v := range t.rows {
			rows[m.key(k)] = v
		}
		t.rows = rows
	}
}
