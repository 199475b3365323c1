package tidepool_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/internal/event"
)

// logSchema is the README's log schema: for each event, the fields every entry
// carries besides "event" and "pool" (the README also lists the fields some
// entries carry). TestReadmeLogSchemaMatchesTheEventList keeps the README and
// internal/event in step; this map must name a subset of the README's fields.
var logSchema = map[string][]string{
	"pool.started":       {"min_idle", "max_size", "warm_in_background"},
	"pool.warmed":        {"min_idle"},
	"conn.dialed":        {"conn_id", "took", "why", "probe"},
	"conn.dial_failed":   {"error", "took", "attempt", "retry_in", "waiters_failed", "probe"},
	"pool.recovered":     {"failed_dials"},
	"conn.retired":       {"reason"},
	"conn.check_failed":  {"conn_id", "on", "error"},
	"resize.requested":   {"min", "max"},
	"resize.adopted":     {"old_min", "old_max", "min", "max", "slots", "waiting"},
	"resize.reached":     {"min", "max", "open", "idle", "took"},
	"acquire.waited":     {"conn_id", "waited"},
	"pool.close_started": {"waiters_failed", "open", "dialing"},
	"pool.closed":        {"took", "forced"},
}

// readmeLogSchema parses the README's log schema table: event → the fields
// its row lists.
func readmeLogSchema(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "## Log schema")
	if !ok {
		t.Fatal("README.md has no \"## Log schema\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		ev := strings.Trim(strings.TrimSpace(cells[1]), "`")
		var fields []string
		for _, f := range strings.Split(cells[3], "`")[1:] {
			if f = strings.TrimSpace(f); f != "" && !strings.ContainsAny(f, " ,()") {
				fields = append(fields, f)
			}
		}
		rows[ev] = fields
	}
	return rows
}

// The README's log schema lists exactly the events of internal/event, and
// every field the scenario test demands is in the README's row.
func TestReadmeLogSchemaMatchesTheEventList(t *testing.T) {
	readme := readmeLogSchema(t)
	for _, ev := range event.All {
		if _, ok := readme[ev]; !ok {
			t.Errorf("event %q (internal/event) is missing from README.md's log schema", ev)
		}
	}
	for ev := range readme {
		if !slices.Contains(event.All, ev) {
			t.Errorf("README.md's log schema lists %q, which internal/event does not name", ev)
		}
	}
	for ev, fields := range logSchema {
		for _, f := range fields {
			if !slices.Contains(readme[ev], f) {
				t.Errorf("README.md's row for %q does not list field %q", ev, f)
			}
		}
	}
}

// Every lifecycle event is one entry whose message is its "event" field, with
// the pool's name and the fields of the schema.
func TestLogEntriesFollowTheSchema(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zapcore.DebugLevel)
		b := newBackend()
		cfg := b.config()
		cfg.Name = "orders"
		cfg.Logger = zap.New(core)
		cfg.MinIdle = 1
		checkErr := errors.New("ping: broken pipe")
		failCheck := make(chan struct{})
		cfg.Check = func(ctx context.Context, c *fakeConn) error {
			select {
			case <-failCheck:
				return checkErr
			default:
				return nil
			}
		}
		cfg.HealthInterval = time.Second
		p := newPool(t, cfg)

		h := mustAcquire(t, p)
		go func() { time.Sleep(time.Millisecond); h.Destroy() }()
		mustAcquire(t, p).Release() // waits, then gets a fresh dial: acquire.waited
		if err := p.Resize(0, 2); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		close(failCheck)
		time.Sleep(2 * time.Second) // a failed check retires the idle connection
		synctest.Wait()
		b.down.Store(true)
		if err := p.Resize(0, 1); err != nil {
			t.Fatal(err)
		}
		_, err := p.Acquire(context.Background())
		if !errors.Is(err, tidepool.ErrDial) {
			t.Fatalf("Acquire with backend down: %v", err)
		}
		b.down.Store(false)
		time.Sleep(10 * time.Second)
		mustAcquire(t, p).Release()
		closePool(t, p)

		seen := map[string]bool{}
		reasons := map[string]bool{}
		for _, e := range logs.All() {
			fields := e.ContextMap()
			if fields["event"] != e.Message {
				t.Errorf("entry %q has event field %v, want the message", e.Message, fields["event"])
			}
			if fields["pool"] != "orders" {
				t.Errorf("entry %q has pool %v, want orders", e.Message, fields["pool"])
			}
			want, known := logSchema[e.Message]
			if !known {
				t.Errorf("entry %q is not in the log schema", e.Message)
				continue
			}
			seen[e.Message] = true
			for _, f := range want {
				if _, ok := fields[f]; !ok {
					t.Errorf("entry %q lacks field %q: %v", e.Message, f, fields)
				}
			}
			if e.Message == "conn.retired" {
				reasons[fields["reason"].(string)] = true
			}
		}
		for ev := range logSchema {
			if !seen[ev] {
				t.Errorf("scenario produced no %q entry", ev)
			}
		}
		for _, r := range []string{"destroyed", "health", "close"} {
			if !reasons[r] {
				t.Errorf("no conn.retired entry with reason %q", r)
			}
		}
	})
}

// The hot path logs nothing, not even at debug level.
func TestHotPathLogsNothing(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	b := newBackend()
	cfg := b.config()
	cfg.Logger = zap.New(core)
	p := newPool(t, cfg)
	defer closePool(t, p)
	mustAcquire(t, p).Release()
	before := logs.Len()
	for range 1000 {
		mustAcquire(t, p).Release()
	}
	if n := logs.Len() - before; n != 0 {
		t.Fatalf("1000 Acquire+Release of an idle connection logged %d entries, want 0: %v", n, logs.All()[before].Message)
	}
}
