package tasks_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigilhq/vigil/tasks"
)

// The queue monitor shows payloads as JSON: a tick's interval must read as a duration, and
// ticks written by an older scheduler (nanoseconds) must still decode.
func TestTickIntervalReadable(t *testing.T) {
	t.Parallel()
	task, err := tasks.NewScheduleTickTask(tasks.TypeIngestSweep, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(task.Payload()), `{"job":"ingest:sweep","interval":"5m0s"}`; got != want {
		t.Fatalf("payload %s, want %s", got, want)
	}
	for _, in := range []string{`{"job":"x","interval":"5m0s"}`, `{"job":"x","interval":300000000000}`} {
		var p tasks.ScheduleTickPayload
		if err := json.Unmarshal([]byte(in), &p); err != nil || time.Duration(p.Interval) != 5*time.Minute {
			t.Errorf("%s: %v %v, want 5m", in, time.Duration(p.Interval), err)
		}
	}
	var p tasks.ScheduleTickPayload
	if err := json.Unmarshal([]byte(`{"interval":"soon"}`), &p); err == nil {
		t.Error("bad interval accepted")
	}
}
