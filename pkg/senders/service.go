package senders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/net/publicsuffix"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/tasks"
)

// Service holds the catalog (the data file plus the admin's mappings) and answers
// /api/senders.
type Service struct {
	st      *store.Store
	db      *gorm.DB
	dialect store.Dialect
	builtin *Catalog
	log     *slog.Logger
	now     func() time.Time
	enq     Enqueuer
	// running and again make Rebuild single-flight in this process (see Rebuild).
	running sync.Mutex
	again   atomic.Bool
	// gap is the least time between two rebuild rounds (SetRebuildGap); lastRound is when the
	// last one ended (guarded by running).
	gap       time.Duration
	lastRound time.Time
	// topTest, when set, replaces the candidate counts of topPage (tests: tiny ones).
	topTest *topLimits
}

// SetRebuildGap sets the least time between the end of one rebuild round and the start of the
// next (VIGIL_SENDERS_REBUILD_MIN_INTERVAL); 0, the default of New, goes round at once.
func (s *Service) SetRebuildGap(d time.Duration) { s.gap = d }

// New builds the service; it fails only when the embedded data file is broken (a test
// catches that first).
func New(st *store.Store, log *slog.Logger) (*Service, error) {
	b, err := Builtin()
	if err != nil {
		return nil, err
	}
	return &Service{st: st, db: st.DB(), dialect: st.Dialect(), builtin: b, log: log, now: time.Now}, nil
}

// Catalog is the data file with the admin's mappings on top, read now: a mapping added
// through the API names senders from the next question on.
func (s *Service) Catalog(ctx context.Context) (*Catalog, error) {
	ms, err := s.Mappings(ctx)
	if err != nil {
		return nil, err
	}
	return s.builtin.With(ms), nil
}

// Mappings lists the admin's mappings.
func (s *Service) Mappings(ctx context.Context) ([]Mapping, error) {
	var ms []Mapping
	err := s.db.WithContext(ctx).Raw("SELECT id, kind, pattern, name, type FROM sender_mappings ORDER BY kind, pattern").Scan(&ms).Error
	if err != nil {
		return nil, fmt.Errorf("senders: read mappings: %w", err)
	}
	return ms, nil
}

// ErrInvalid marks a mapping the admin must correct; the message names the field.
var ErrInvalid = errors.New("invalid mapping")

// Normalize checks a mapping and puts its pattern in the form matching uses.
func Normalize(m Mapping) (Mapping, error) {
	m.Kind = strings.ToLower(strings.TrimSpace(m.Kind))
	m.Pattern = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(m.Pattern), "."))
	m.Name = strings.TrimSpace(m.Name)
	m.Type = strings.ToLower(strings.TrimSpace(m.Type))
	switch m.Kind {
	case "domain":
		base, err := publicsuffix.EffectiveTLDPlusOne(m.Pattern)
		if err != nil || base != m.Pattern {
			return m, fmt.Errorf("%w: pattern: %q is not a registrable domain (want e.g. example.com, the base domain of the PTR names)", ErrInvalid, m.Pattern)
		}
	case "asn":
		m.Pattern = strings.TrimPrefix(m.Pattern, "as")
		n, err := strconv.ParseUint(m.Pattern, 10, 32)
		if err != nil || n == 0 {
			return m, fmt.Errorf("%w: pattern: %q is not an AS number", ErrInvalid, m.Pattern)
		}
		m.Pattern = strconv.FormatUint(n, 10)
	default:
		return m, fmt.Errorf("%w: kind: want domain or asn", ErrInvalid)
	}
	if m.Name == "" || len(m.Name) > 100 {
		return m, fmt.Errorf("%w: name: want 1 to 100 characters", ErrInvalid)
	}
	if !slices.Contains(Types, m.Type) || m.Type == TypeUnknown {
		return m, fmt.Errorf("%w: type: want one of %s", ErrInvalid, strings.Join(Types[:len(Types)-1], ", "))
	}
	return m, nil
}

// PutMapping adds a mapping or replaces the one with the same kind and pattern (so repeating
// a request is harmless) and returns it with its id.
func (s *Service) PutMapping(ctx context.Context, m Mapping) (Mapping, error) {
	m, err := Normalize(m)
	if err != nil {
		return m, err
	}
	err = s.db.WithContext(ctx).Exec(`INSERT INTO sender_mappings (kind, pattern, name, type, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kind, pattern) DO UPDATE SET name = excluded.name, type = excluded.type`, m.Kind, m.Pattern, m.Name, m.Type, s.now().Unix()).Error
	if err != nil {
		return m, fmt.Errorf("senders: save mapping: %w", err)
	}
	var ids []int64
	if err := s.db.WithContext(ctx).Raw("SELECT id FROM sender_mappings WHERE kind = ? AND pattern = ?", m.Kind, m.Pattern).Scan(&ids).Error; err != nil || len(ids) == 0 {
		return m, fmt.Errorf("senders: read mapping back: %v", err)
	}
	m.ID = ids[0]
	return m, s.remap(ctx, m)
}

// remap derives again the sources a mapping may name (its base domain or AS), so the next
// question groups them under it, and asks for a rollup run.
func (s *Service) remap(ctx context.Context, m Mapping) error {
	col := "base_domain"
	var v any = m.Pattern
	if m.Kind == "asn" {
		n, _ := strconv.ParseInt(m.Pattern, 10, 64)
		col, v = "asn", n
	}
	unlock := s.st.LockWrites()
	_, err := s.sqlDB().ExecContext(ctx, s.bind("UPDATE sender_sources SET enriched_at = -1 WHERE "+col+" = ?"), v)
	unlock()
	if err != nil {
		return fmt.Errorf("senders: remap %s %s: %w", m.Kind, m.Pattern, err)
	}
	if _, err := s.Sync(ctx); err != nil {
		return err
	}
	s.Kick(ctx)
	return nil
}

// DeleteMapping removes one mapping and returns it; store.ErrNotFound when there is none.
func (s *Service) DeleteMapping(ctx context.Context, id int64) (Mapping, error) {
	var ms []Mapping
	if err := s.db.WithContext(ctx).Raw("SELECT id, kind, pattern, name, type FROM sender_mappings WHERE id = ?", id).Scan(&ms).Error; err != nil {
		return Mapping{}, fmt.Errorf("senders: read mapping: %w", err)
	}
	if len(ms) == 0 {
		return Mapping{}, store.ErrNotFound
	}
	res := s.db.WithContext(ctx).Exec("DELETE FROM sender_mappings WHERE id = ?", id)
	if res.Error != nil {
		return Mapping{}, fmt.Errorf("senders: delete mapping: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return Mapping{}, store.ErrNotFound
	}
	return ms[0], s.remap(ctx, ms[0])
}

// Enqueuer is the part of *asynq.Client the service needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// SetEnqueuer lets the service ask for a rollup run after a change (nil: it does not).
func (s *Service) SetEnqueuer(e Enqueuer) { s.enq = e }

// Kick enqueues a rollup run for this minute; a run already queued for it covers the
// change. A failure is logged: the scheduler's tick runs it later anyway.
func (s *Service) Kick(ctx context.Context) {
	if s.enq == nil {
		return
	}
	t, err := tasks.NewSendersRollupTask(s.now().UTC().Truncate(time.Minute))
	if err == nil {
		_, err = s.enq.EnqueueContext(ctx, t)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		s.log.Warn("sender rollup run not enqueued", "err", err)
	}
}

// Enriched is enrich.Deps.OnEnriched: the batch's sources are grouped now (so the next
// question names them) and a rollup run is asked for. A failure is logged; the run derives
// what is left.
func (s *Service) Enriched(ctx context.Context, ips []netip.Addr) {
	if _, err := s.SyncIPs(ctx, ips); err != nil {
		s.log.Warn("sender groups of an enrichment batch not derived", "err", err)
	}
	s.Kick(ctx)
}

// HandleRollup is the senders:rollup handler.
func (s *Service) HandleRollup(ctx context.Context, t *asynq.Task) error {
	st, err := s.Rebuild(ctx)
	if err != nil {
		return err
	}
	if w := t.ResultWriter(); w != nil {
		if b, err := json.Marshal(st); err == nil {
			_, _ = w.Write(b)
		}
	}
	return nil
}
