package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Enrichment task types (pkg/enrich): DNS and GeoIP for source addresses, on workers, off
// the ingestion path.
const (
	// TypeEnrichIngest finds the sources of processed files and enqueues their batches.
	TypeEnrichIngest = "enrich:ingest"
	// TypeEnrichIPs enriches one batch of addresses.
	TypeEnrichIPs = "enrich:ips"
	// TypeEnrichRefresh enqueues every known source whose cache entry is missing or expired
	// (back-fill, weekly refresh) and purges expired entries of addresses that are no source.
	TypeEnrichRefresh = "enrich:refresh"
)

// QueueEnrich has the lowest priority: enrichment may wait, ingestion and rollups may not.
const QueueEnrich = "enrich"

// EnrichIngestPayload names processed files: IngestIDs, or IngestID in a task queued by a
// version that enqueued one task per file.
type EnrichIngestPayload struct {
	IngestIDs []int64 `json:"ingest_ids,omitempty"`
	IngestID  int64   `json:"ingest_id,omitempty"`
}

// IDs is every file the payload names.
func (p EnrichIngestPayload) IDs() []int64 {
	if p.IngestID != 0 {
		return append([]int64{p.IngestID}, p.IngestIDs...)
	}
	return p.IngestIDs
}

// EnrichIngestMax bounds the files one enrich:ingest task names (its payload stays small).
const EnrichIngestMax = 1000

// NewEnrichIngestTasks enriches the sources of the reports first stored from the given files:
// one task per EnrichIngestMax files, not one per file (an 8,000-file upload queued 8,000
// tasks, each a Redis round trip on the ingestion path and a query on the worker). The rollup
// writer enqueues them once per pass.
func NewEnrichIngestTasks(ingestIDs []int64) ([]*asynq.Task, error) {
	var out []*asynq.Task
	for part := range slices.Chunk(ingestIDs, EnrichIngestMax) {
		b, err := json.Marshal(EnrichIngestPayload{IngestIDs: part})
		if err != nil {
			return nil, fmt.Errorf("tasks: %w", err)
		}
		out = append(out, asynq.NewTask(TypeEnrichIngest, b,
			asynq.Queue(QueueEnrich),
			asynq.TaskID(fmt.Sprintf("%s:%d:%d", TypeEnrichIngest, part[0], len(part))),
			asynq.MaxRetry(5),
			asynq.Timeout(10*time.Minute),
			asynq.Retention(time.Hour),
		))
	}
	return out, nil
}

// EnrichIPsPayload is one batch of addresses (canonical text form).
type EnrichIPsPayload struct {
	IPs []string `json:"ips"`
}

// EnrichIPsTaskID is keyed by the batch's addresses, so the same batch enqueued twice (an
// ingest and a refresh racing) runs once at a time.
func EnrichIPsTaskID(ips []string) string {
	s := slices.Clone(ips)
	slices.Sort(s)
	h := sha256.Sum256([]byte(strings.Join(s, ",")))
	return TypeEnrichIPs + ":" + hex.EncodeToString(h[:12])
}

// NewEnrichIPsTask enriches one batch. Retention keeps the id taken for a while after the
// batch ran: its cache entries are fresh then anyway.
func NewEnrichIPsTask(ips []netip.Addr) (*asynq.Task, error) {
	p := EnrichIPsPayload{IPs: make([]string, len(ips))}
	for i, ip := range ips {
		p.IPs[i] = ip.Unmap().String()
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeEnrichIPs, b,
		asynq.Queue(QueueEnrich),
		asynq.TaskID(EnrichIPsTaskID(p.IPs)),
		asynq.MaxRetry(5),
		asynq.Timeout(10*time.Minute),
		asynq.Retention(10*time.Minute),
	), nil
}

// EnrichRefreshPayload is the period the refresh belongs to; it only keys the TaskID.
type EnrichRefreshPayload struct {
	Period time.Time `json:"period"`
}

// EnrichRefreshTaskID keys a refresh to its period.
func EnrichRefreshTaskID(period time.Time) string {
	return fmt.Sprintf("%s:%d", TypeEnrichRefresh, period.Unix())
}

// NewEnrichRefreshTask refreshes the cache once per period (the scheduler's weekly job, or an
// admin's back-fill keyed to the minute).
func NewEnrichRefreshTask(period time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(EnrichRefreshPayload{Period: period.UTC()})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeEnrichRefresh, b,
		asynq.Queue(QueueEnrich),
		asynq.TaskID(EnrichRefreshTaskID(period)),
		asynq.MaxRetry(3),
		asynq.Timeout(30*time.Minute),
		asynq.Retention(24*time.Hour),
	), nil
}

// TypeSendersRollup derives the sender groups of newly enriched sources and rebuilds the
// sender rollup of the domains whose data or groups changed (pkg/senders). It is enqueued
// after enrichment batches, rollup applies and mapping changes, and ticked by the scheduler.
const TypeSendersRollup = "senders:rollup"

// SendersRollupPayload is the period the run belongs to; it only keys the TaskID.
type SendersRollupPayload struct {
	Period time.Time `json:"period"`
}

// SendersRollupTaskID keys a run to its period (a minute for the runs that follow a change):
// changes of the same minute share one run, and a change after it has run finds its id free
// again, as the task keeps no retention.
func SendersRollupTaskID(period time.Time) string {
	return fmt.Sprintf("%s:%d", TypeSendersRollup, period.Unix())
}

// NewSendersRollupTask builds one run for the period.
func NewSendersRollupTask(period time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(SendersRollupPayload{Period: period.UTC()})
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	return asynq.NewTask(TypeSendersRollup, b,
		asynq.Queue(QueueEnrich),
		asynq.TaskID(SendersRollupTaskID(period)),
		asynq.MaxRetry(3),
		asynq.Timeout(30*time.Minute),
	), nil
}
