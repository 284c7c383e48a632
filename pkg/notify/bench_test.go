package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// BenchmarkDeliveryDrain queues 10,000 deliveries (alert:deliver tasks, one pending row each)
// to a Slack channel whose receiver listens on loopback, then runs an asynq server with 10
// worker goroutines until every delivery is recorded sent. On PostgreSQL and the test Redis
// when VIGIL_TEST_DATABASE_URL / VIGIL_TEST_REDIS_URL are set, else SQLite and miniredis.
//
//	make bench PKGS=./pkg/notify BENCH=DeliveryDrain COUNT=5 BENCHTIME=1x
func BenchmarkDeliveryDrain(b *testing.B) {
	const n = 10_000
	be := testenv.Backends()[len(testenv.Backends())-1]
	ctx := context.Background()
	var hits atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer recv.Close()
	for b.Loop() {
		b.StopTimer()
		bb := setup(b, be, loopback, SMTPConfig{})
		ch, err := bb.n.Create(ctx, ChannelInput{Name: ptr("bench"), Kind: ptr(KindSlack), Config: map[string]any{"url": recv.URL}})
		if err != nil {
			b.Fatal(err)
		}
		db := bb.st.DB()
		for start := 0; start < n; start += 500 {
			var vals []string
			for i := start; i < start+500; i++ {
				vals = append(vals, fmt.Sprintf("(%d, 'failure_rate', 'warning', 'd%d.example', 'open', 'fp%d', 'Failure rate above threshold for d%d.example', 'detail', '{}', %d, '')",
					i+1, i%1000, i, i%1000, time.Now().Unix()))
			}
			if err := db.Exec("INSERT INTO alerts (id, type, severity, domain, status, fingerprint, title, detail, data, created_at, note) VALUES " + strings.Join(vals, ",")).Error; err != nil {
				b.Fatal(err)
			}
			if err := db.Exec(fmt.Sprintf("INSERT INTO alert_deliveries (alert_id, channel_id, status, attempts, last_error, updated_at) SELECT id, %d, 'pending', 0, '', 0 FROM alerts WHERE id > %d AND id <= %d", ch.ID, start, start+500)).Error; err != nil {
				b.Fatal(err)
			}
		}
		opt := be.Redis(b, 26)
		client := asynq.NewClient(opt)
		for i := range n {
			t, _ := tasks.NewAlertDeliverTask(int64(i+1), ch.ID)
			if _, err := client.Enqueue(t); err != nil {
				b.Fatal(err)
			}
		}
		client.Close()
		hits.Store(0)
		srv := asynq.NewServer(opt, asynq.Config{Concurrency: 10, Queues: tasks.Queues(), LogLevel: asynq.FatalLevel})
		mux := asynq.NewServeMux()
		// The handlers' own time, summed: against the wall time it tells whether the handlers
		// (database, receiver) or the queue (asynq's one dequeue loop, Redis) bound the drain.
		var inHandler atomic.Int64
		mux.HandleFunc(tasks.TypeAlertDeliver, func(ctx context.Context, t *asynq.Task) error {
			t0 := time.Now()
			err := bb.n.HandleDeliver(ctx, t)
			inHandler.Add(int64(time.Since(t0)))
			return err
		})
		b.StartTimer()
		start := time.Now()
		if err := srv.Start(mux); err != nil {
			b.Fatal(err)
		}
		for {
			var sent int64
			db.Table("alert_deliveries").Where("status = 'sent'").Count(&sent)
			if sent == n {
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("%d of %d sent after 10 minutes", sent, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		srv.Shutdown()
		if hits.Load() != n {
			b.Fatalf("receiver got %d requests, want %d", hits.Load(), n)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "deliveries/s")
		b.ReportMetric(float64(inHandler.Load())/1e6/n, "handler-ms/delivery")
		// The workers' busy share: near 1, the handlers bound the drain; well below, the queue
		// feeds them too slowly.
		b.ReportMetric(float64(inHandler.Load())/float64(10*el), "worker-busy")
		b.StartTimer()
	}
}
