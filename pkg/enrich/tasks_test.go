package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/geo"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// redisDBIngestTask is this file's Redis database on the real server (block 20–23).
const redisDBIngestTask = 21

// fileOf stores one file holding one report with the given sources and returns its ingest id.
func fileOf(t *testing.T, st *store.Store, name string, sources ...string) int64 {
	t.Helper()
	ctx := context.Background()
	ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: fmt.Sprintf("%064x", len(name)*7919+int(name[0])), Filename: name,
		Source: "test", Size: 1, ReceivedAt: time.Now(), Encoding: "identity", Data: []byte(name)})
	if err != nil {
		t.Fatal(err)
	}
	var recs []dmarc.Record
	for _, s := range sources {
		recs = append(recs, dmarc.Record{SourceIP: netip.MustParseAddr(s), Count: 1, Disposition: "none", DKIM: "pass", SPF: "pass",
			HeaderFrom: "example.com"})
	}
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := st.SaveParsed(ctx, ing.ID, []store.Parsed{{Header: &dmarc.Report{OrgName: "Reporter", ReportID: "r-" + name,
		DateBegin: day, DateEnd: day.Add(24*time.Hour - time.Second), Policy: dmarc.Policy{Domain: "example.com", P: "none"}},
		Records: recs}}); err != nil {
		t.Fatal(err)
	}
	return ing.ID
}

// An enrich:ingest task names many files (one per rollup pass, not one per file) and enqueues
// the stale sources of the reports they stored, once each; a task queued by an older version,
// naming one file, still works.
func TestHandleIngestTakesManyFiles(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st := b.Store(t)
		_, r := zoneResolver(t)
		opt := b.Redis(t, redisDBIngestTask)
		client := asynq.NewClient(opt)
		t.Cleanup(func() { client.Close() })
		insp := asynq.NewInspector(opt)
		t.Cleanup(func() { insp.Close() })
		svc := New(Deps{Store: st, Resolver: r, Geo: geo.Open(geo.Config{}, testenv.Logger()), Enqueuer: client,
			Log: testenv.Logger(), Config: Config{BatchSize: 2}})

		a := fileOf(t, st, "a.xml", "198.51.100.7", "198.51.100.8")
		bID := fileOf(t, st, "b.xml", "198.51.100.8", "198.51.100.9", "209.85.220.41")
		fileOf(t, st, "c.xml", "198.51.100.10") // not named: not enqueued
		// A source enriched already is not looked up again.
		if _, err := svc.Enrich(ctx, []netip.Addr{netip.MustParseAddr("209.85.220.41")}); err != nil {
			t.Fatal(err)
		}

		queued := func() []string {
			t.Helper()
			var ips []string
			pending, err := insp.ListPendingTasks(tasks.QueueEnrich)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pending {
				var pl tasks.EnrichIPsPayload
				if err := json.Unmarshal(p.Payload, &pl); err != nil {
					t.Fatal(err)
				}
				ips = append(ips, pl.IPs...)
				if err := insp.DeleteTask(tasks.QueueEnrich, p.ID); err != nil {
					t.Fatal(err)
				}
			}
			slices.Sort(ips)
			return ips
		}

		ts, err := tasks.NewEnrichIngestTasks([]int64{a, bID})
		if err != nil || len(ts) != 1 {
			t.Fatalf("tasks for two files: %d, %v", len(ts), err)
		}
		if err := svc.HandleIngest(ctx, ts[0]); err != nil {
			t.Fatal(err)
		}
		if got, want := queued(), []string{"198.51.100.7", "198.51.100.8", "198.51.100.9"}; !slices.Equal(got, want) {
			t.Errorf("two files: enqueued %v, want %v", got, want)
		}

		legacy, _ := json.Marshal(map[string]int64{"ingest_id": a})
		if err := svc.HandleIngest(ctx, asynq.NewTask(tasks.TypeEnrichIngest, legacy)); err != nil {
			t.Fatal(err)
		}
		if got, want := queued(), []string{"198.51.100.7", "198.51.100.8"}; !slices.Equal(got, want) {
			t.Errorf("a task naming one file (older versions): enqueued %v, want %v", got, want)
		}
	})
}

// Tasks hold at most tasks.EnrichIngestMax files each, every file in exactly one.
func TestNewEnrichIngestTasksChunks(t *testing.T) {
	t.Parallel()
	ids := make([]int64, 2*tasks.EnrichIngestMax+5)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	ts, err := tasks.NewEnrichIngestTasks(ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 3 {
		t.Fatalf("%d tasks for %d files, want 3", len(ts), len(ids))
	}
	var all []int64
	for _, task := range ts {
		var p tasks.EnrichIngestPayload
		if err := json.Unmarshal(task.Payload(), &p); err != nil {
			t.Fatal(err)
		}
		if len(p.IDs()) > tasks.EnrichIngestMax {
			t.Errorf("a task names %d files", len(p.IDs()))
		}
		all = append(all, p.IDs()...)
	}
	if !slices.Equal(all, ids) {
		t.Errorf("the tasks name %d files, want each of %d once", len(all), len(ids))
	}
}
