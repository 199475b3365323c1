package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The pool-of-pools scenarios run in real time against embedded backends on
// 127.0.0.1, in parallel with the other demo tests; they are judged by the
// events they log and the summary's counts, not by timing.

// multiEntry is one stdout line.
type multiEntry map[string]any

func (e multiEntry) str(k string) string { s, _ := e[k].(string); return s }

// runMultiDemo runs the demo in-process and parses stdout, failing on any
// line that is not a JSON object whose "event" equals its "msg".
func runMultiDemo(t *testing.T, args ...string) (int, []multiEntry, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	var entries []multiEntry
	for i, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var e multiEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stdout line %d is not JSON: %v\n%s", i+1, err, line)
		}
		if e.str("event") == "" || e["msg"] != e["event"] {
			t.Fatalf("stdout line %d has no event equal to its msg: %s", i+1, line)
		}
		entries = append(entries, e)
	}
	return code, entries, errb.String()
}

func multiPhases(entries []multiEntry) []string {
	var ps []string
	for _, e := range entries {
		if e.str("event") == "demo.phase" {
			ps = append(ps, e.str("phase"))
		}
	}
	return ps
}

func multiSummary(t *testing.T, entries []multiEntry) multiEntry {
	t.Helper()
	for _, e := range entries {
		if e.str("event") == "demo.summary" {
			return e
		}
	}
	t.Fatal("no demo.summary entry")
	return nil
}

// isPoolEvent reports whether an entry comes from one of the inner pools
// (rather than the demo or the pool of pools).
func isPoolEvent(ev string) bool {
	for _, p := range []string{"pool.", "conn.", "resize.", "acquire."} {
		if strings.HasPrefix(ev, p) {
			return true
		}
	}
	return false
}

func TestShardsScenarioIsolatesTheSlowShardThenAddsRemovesAndResizes(t *testing.T) {
	t.Parallel()
	code, entries, stderr := runMultiDemo(t, "-scenario", "shards", "-duration", "4s", "-quiet")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	want := []string{"warm-up", "load", "slow-shard", "shard-recovers", "add-shard", "remove-shard", "resize-shard", "close"}
	if got := multiPhases(entries); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	ev := map[string]int{}
	dialed, retired := map[string]int{}, map[string]int{}
	for _, e := range entries {
		name := e.str("event")
		ev[name]++
		switch {
		case isPoolEvent(name) && (e.str("shard") == "" || e.str("pool") != "demo"):
			t.Errorf("pool entry without pool=demo and a shard: %v", e)
		case name == "conn.dialed":
			dialed[e.str("shard")]++
		case name == "conn.retired":
			retired[e.str("shard")]++
		case name == "shard.added" && e.str("shard") != "4":
			t.Errorf("shard.added for %q, want 4", e.str("shard"))
		case name == "shard.removed" && (e.str("shard") != "0" || e["forced"] != false):
			t.Errorf("shard.removed = %v, want shard 0, not forced", e)
		case name == "resize.adopted" && (e.str("shard") != "2" || e["max"] != float64(8)):
			t.Errorf("resize.adopted = %v, want shard 2 to max 8", e)
		}
	}
	for _, name := range []string{"shards.started", "shard.added", "shard.remove_started", "shard.removed", "resize.adopted", "shards.closed"} {
		if ev[name] != 1 {
			t.Errorf("%d %s entries, want 1", ev[name], name)
		}
	}
	if !maps(dialed, retired) || len(dialed) != 5 {
		t.Errorf("conn.dialed by shard %v, conn.retired %v: want the same, for shards 0..4", dialed, retired)
	}

	s := multiSummary(t, entries)
	rows := map[string]map[string]any{}
	for _, r := range s["shards"].([]any) {
		row := r.(map[string]any)
		rows[row["shard"].(string)] = row
	}
	slow := rows["1"]
	if slow == nil || slow["acquire_errors"].(float64)+slow["io_errors"].(float64) == 0 ||
		!strings.Contains(slow["last_acquire_error"].(string), `shard "1" of pool "demo"`) {
		t.Errorf("slow shard row %v: want failures, the last one naming shard 1", slow)
	}
	// The healthy shards never see the slow one's trouble. Their Acquires can
	// still miss the demo's 500 ms deadline when this 2-core machine is
	// starved (many test binaries under -race): allow a trace of that, far
	// below the slow shard's share, but no request error.
	for _, name := range []string{"2", "3"} {
		r := rows[name]
		if r == nil || r["served"].(float64) == 0 || r["io_errors"] != float64(0) ||
			r["acquire_errors"].(float64) > r["served"].(float64)/100 {
			t.Errorf("healthy shard %s row %v: want requests served, no request error, acquire errors under 1%%", name, r)
		}
	}
	for _, name := range []string{"0", "4"} {
		if r := rows[name]; r == nil || r["served"].(float64) == 0 {
			t.Errorf("shard %s row %v: want requests served", name, r)
		}
	}
	if s["close_forced"] != false || s["shards_added"] != float64(1) {
		t.Errorf("summary %v", s)
	}
	for _, want := range []string{"tidepool-demo summary (shards)", "was slow", "removed", "added", "slow shard's last error", "close                  graceful"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestFailoverScenarioSwitchesAndRestoresWithoutLosingARequest(t *testing.T) {
	t.Parallel()
	code, entries, stderr := runMultiDemo(t, "-scenario", "failover", "-duration", "4s", "-outage", "2s", "-quiet")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	if got, want := multiPhases(entries), []string{"load", "outage", "recovery", "close"}; !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	// The story, in order: the primary goes down, the pool switches, the
	// primary comes back, the pool restores it.
	var story []string
	for _, e := range entries {
		switch name := e.str("event"); {
		case name == "demo.backend":
			story = append(story, "backend "+e.str("action"))
		case name == "failover.switched" || name == "failover.restored":
			story = append(story, name+" "+e.str("reason"))
		case isPoolEvent(name) && e.str("side") != "primary" && e.str("side") != "secondary":
			t.Errorf("pool entry without a side: %v", e)
		}
	}
	want := []string{"backend down", "failover.switched threshold", "backend up", "failover.restored probe"}
	if !slices.Equal(story, want) {
		t.Errorf("story %v, want %v", story, want)
	}
	s := multiSummary(t, entries)
	if s["lost"] != float64(0) || s["switches"] != float64(1) || s["restores"] != float64(1) || s["close_forced"] != false {
		t.Errorf("summary %v: want no lost request, one switch, one restore, a graceful close", s)
	}
	for _, r := range s["sides"].([]any) {
		if row := r.(map[string]any); row["served"].(float64) == 0 {
			t.Errorf("side %v served nothing", row)
		}
	}
	for _, want := range []string{"tidepool-demo summary (failover)", "secondary", "after the primary went down", "lost requests          0"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestMultiScenarioFlagsAreChecked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-scenario", "ring"}, `-scenario "ring": want default, shards or failover`},
		{[]string{"-scenario", "shards", "-target", "tcp://127.0.0.1:1"}, "runs against embedded backends only"},
		{[]string{"-scenario", "shards", "-shards", "1"}, "-shards 1: must be in [2, 16]"},
		{[]string{"-scenario", "failover", "-outage", "10ms"}, "-outage 10ms: must be at least 1s"},
	} {
		code, entries, stderr := runMultiDemo(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || len(entries) != 0 {
			t.Errorf("%v: exit %d, %d entries, stderr %q; want 2, none, and %q", tc.args, code, len(entries), stderr, tc.want)
		}
	}
}
