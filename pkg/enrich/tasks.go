package enrich

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/tasks"
)

// Enqueuer is the part of *asynq.Client the jobs need.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// EnqueueBatches splits ips into enrich:ips tasks of BatchSize addresses. A batch already
// queued or running (same addresses, same TaskID) is not enqueued twice.
func (s *Service) EnqueueBatches(ctx context.Context, ips []netip.Addr) (int, error) {
	if s.enq == nil {
		return 0, errors.New("enrich: no queue")
	}
	n := 0
	for lo := 0; lo < len(ips); lo += s.cfg.BatchSize {
		t, err := tasks.NewEnrichIPsTask(ips[lo:min(lo+s.cfg.BatchSize, len(ips))])
		if err != nil {
			return n, err
		}
		if _, err := s.enq.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return n, fmt.Errorf("enrich: enqueue: %w", err)
		}
		n++
	}
	return n, nil
}

// HandleIPs is the enrich:ips handler.
func (s *Service) HandleIPs(ctx context.Context, t *asynq.Task) error {
	var p tasks.EnrichIPsPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	ips := make([]netip.Addr, 0, len(p.IPs))
	for _, v := range p.IPs {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			continue // not ours to fix: the payload came from stored addresses
		}
		ips = append(ips, ip)
	}
	st, err := s.Enrich(ctx, ips)
	if err != nil {
		return err
	}
	if st.Written > 0 && s.onDone != nil {
		s.onDone(ctx, ips)
	}
	writeResult(t, st)
	return nil
}

// HandleIngest is the enrich:ingest handler: the distinct sources of the reports first stored
// from the named files (a report repeated from an earlier file was enriched with it), in
// batches.
func (s *Service) HandleIngest(ctx context.Context, t *asynq.Task) error {
	var p tasks.EnrichIngestPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	ids := p.IDs()
	if len(ids) == 0 {
		return nil
	}
	var raw [][]byte
	err := s.db.WithContext(ctx).Raw(`SELECT DISTINCT r.ip FROM reports p JOIN records r ON r.report_id = p.id
		WHERE p.ingest_id IN ?`, ids).Scan(&raw).Error
	if err != nil {
		return fmt.Errorf("enrich: sources of %d ingests: %w", len(ids), err)
	}
	ips, err := s.stale(ctx, raw)
	if err != nil {
		return err
	}
	_, err = s.EnqueueBatches(ctx, ips)
	return err
}

// stale keeps the addresses whose cache entry is missing or expired.
func (s *Service) stale(ctx context.Context, raw [][]byte) ([]netip.Addr, error) {
	ips := make([]netip.Addr, 0, len(raw))
	for _, b := range raw {
		if a := addrOf(b); a.IsValid() {
			ips = append(ips, a)
		}
	}
	cached, err := s.load(ctx, ips)
	if err != nil {
		return nil, err
	}
	now := s.now().Unix()
	cityOK, asnOK := s.geoLoaded()
	out := ips[:0]
	for _, ip := range ips {
		in, ok := cached[ip]
		if !ok || in.DNSExpires <= now || ((cityOK || asnOK) && in.GeoExpires <= now) {
			out = append(out, ip)
		}
	}
	return out, nil
}

// refreshPage is how many known sources one refresh query reads.
const refreshPage = 5000

// Refresh enqueues enrichment for every known source (rollup_ips) whose cache entry is
// missing or expired, and purges expired entries of addresses that are no source (looked up
// through the API only). It is the back-fill for data stored before enrichment existed and
// the weekly refresh. It returns the number of addresses enqueued.
func (s *Service) Refresh(ctx context.Context) (int, error) {
	now := s.now().Unix()
	cityOK, asnOK := s.geoLoaded()
	geoCond := ""
	if cityOK || asnOK {
		geoCond = " OR e.geo_expires <= ?"
	}
	total := 0
	var last int64
	for {
		q := `SELECT i.id, i.ip FROM rollup_ips i LEFT JOIN enrich_ips e ON e.ip = i.ip
			WHERE i.id > ? AND (e.ip IS NULL OR e.dns_expires <= ?` + geoCond + `) ORDER BY i.id LIMIT ?`
		args := []any{last, now}
		if geoCond != "" {
			args = append(args, now)
		}
		args = append(args, refreshPage)
		var rows []struct {
			ID int64
			IP []byte
		}
		if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
			return total, fmt.Errorf("enrich: find stale sources: %w", err)
		}
		ips := make([]netip.Addr, 0, len(rows))
		for _, r := range rows {
			if a := addrOf(r.IP); a.IsValid() {
				ips = append(ips, a)
			}
			last = r.ID
		}
		if _, err := s.EnqueueBatches(ctx, ips); err != nil {
			return total, err
		}
		total += len(ips)
		if len(rows) < refreshPage {
			break
		}
	}
	err := s.db.WithContext(ctx).Exec(`DELETE FROM enrich_ips WHERE dns_expires <= ? AND geo_expires <= ?
		AND NOT EXISTS (SELECT 1 FROM rollup_ips i WHERE i.ip = enrich_ips.ip)`, now, now).Error
	if err != nil {
		return total, fmt.Errorf("enrich: purge: %w", err)
	}
	return total, nil
}

// HandleRefresh is the enrich:refresh handler (scheduler and POST /tasks/trigger/enrichment).
func (s *Service) HandleRefresh(ctx context.Context, t *asynq.Task) error {
	n, err := s.Refresh(ctx)
	if err != nil {
		return err
	}
	writeResult(t, map[string]int{"enqueued_addresses": n})
	return nil
}

func writeResult(t *asynq.Task, v any) {
	if w := t.ResultWriter(); w != nil {
		if b, err := jsonMarshal(v); err == nil {
			_, _ = w.Write(b)
		}
	}
}

// RefreshTask builds the refresh task for the period (the scheduler's job).
func RefreshTask(period time.Time) (*asynq.Task, error) { return tasks.NewEnrichRefreshTask(period) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
