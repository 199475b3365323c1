package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/internal/demobackend"
)

// The scenario runs in real time against real sockets on 127.0.0.1, so these
// tests cannot use synctest; they keep their runs short (1–3 s) and run in
// parallel.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type entry map[string]any

func (e entry) event() string { s, _ := e["event"].(string); return s }

// runDemo runs the demo in-process and parses its stdout, failing the test on
// any line that is not a JSON object with an "event".
func runDemo(t *testing.T, args ...string) (code int, entries []entry, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, parseEntries(t, out.String()), errb.String()
}

func parseEntries(t *testing.T, stdout string) []entry {
	t.Helper()
	var entries []entry
	for i, line := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var e entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stdout line %d is not JSON: %v\n%s", i+1, err, line)
		}
		if e.event() == "" || e["msg"] != e.event() {
			t.Fatalf("stdout line %d has no event equal to its msg: %s", i+1, line)
		}
		entries = append(entries, e)
	}
	return entries
}

func events(entries []entry) map[string]int {
	n := map[string]int{}
	for _, e := range entries {
		n[e.event()]++
	}
	return n
}

func phases(entries []entry) []string {
	var ps []string
	for _, e := range entries {
		if e.event() == "demo.phase" {
			ps = append(ps, e["phase"].(string))
		}
	}
	return ps
}

func summary(t *testing.T, entries []entry) entry {
	t.Helper()
	for _, e := range entries {
		if e.event() == "demo.summary" {
			return e
		}
	}
	t.Fatal("no demo.summary entry")
	return nil
}

func num(e entry, key string) float64 { f, _ := e[key].(float64); return f }

// checkClosedEverything: every dialed connection was retired, and the pool
// said so.
func checkClosedEverything(t *testing.T, entries []entry) {
	t.Helper()
	ev := events(entries)
	if ev["conn.dialed"] == 0 || ev["conn.dialed"] != ev["conn.retired"] {
		t.Errorf("%d conn.dialed and %d conn.retired entries, want the same, > 0", ev["conn.dialed"], ev["conn.retired"])
	}
	s := summary(t, entries)
	retired := 0.0
	for _, v := range s["retired"].(map[string]any) {
		retired += v.(float64)
	}
	if num(s, "dials") != retired || num(s, "dials") != float64(ev["conn.dialed"]) {
		t.Errorf("summary: %v dials, %v retired, %d conn.dialed entries; want all equal", s["dials"], retired, ev["conn.dialed"])
	}
	if s["close_forced"] != false {
		t.Errorf("close_forced = %v, want false", s["close_forced"])
	}
}

func TestEmbeddedScenarioRunsEveryPhaseAndLogsEveryLifecycleEvent(t *testing.T) {
	t.Parallel()
	code, entries, stderr := runDemo(t, "-duration", "3s")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	ev := events(entries)
	for _, want := range []string{"demo.started", "pool.started", "conn.dialed", "conn.retired", "resize.requested",
		"resize.adopted", "demo.phase", "demo.backend", "conn.dial_failed", "pool.recovered", "pool.close_started",
		"pool.closed", "demo.summary"} {
		if ev[want] == 0 {
			t.Errorf("no %s entry; events: %v", want, ev)
		}
	}
	wantPhases := []string{"warm-up", "load", "resize-up", "idle-kills", "busy-kills", "outage", "recovery", "resize-down", "close"}
	if got := phases(entries); !slices.Equal(got, wantPhases) {
		t.Errorf("phases %v, want %v", got, wantPhases)
	}
	var maxes []float64
	for _, e := range entries {
		if e.event() == "resize.adopted" {
			maxes = append(maxes, num(e, "max"))
		}
	}
	if !slices.Equal(maxes, []float64{16, 4}) {
		t.Errorf("resize.adopted maxes %v, want [16 4]", maxes)
	}
	reasons := map[string]int{}
	for _, e := range entries {
		if e.event() == "conn.retired" {
			reasons[e["reason"].(string)]++
		}
	}
	for _, r := range []string{"shrink", "destroyed", "close"} {
		if reasons[r] == 0 {
			t.Errorf("no connection retired for %q; reasons: %v", r, reasons)
		}
	}
	checkClosedEverything(t, entries)
	s := summary(t, entries)
	if num(s, "served") == 0 || num(s, "acquire_errors") == 0 {
		t.Errorf("summary %v: want requests served, and acquire errors during the outage", s)
	}
	for _, want := range []string{"tidepool-demo summary", "requests served", "acquire wait p50", "acquire wait p99",
		"reuse ratio", "connections dialed", "retired by reason", "close                  graceful", " req/s "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestTCPTargetSkipsBackendPhasesAndQuietPrintsOnlyTheSummary(t *testing.T) {
	t.Parallel()
	b, err := demobackend.Start(demobackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	code, entries, stderr := runDemo(t, "-target", "tcp://"+b.Addr(), "-duration", "2s", "-quiet", "-workers", "8", "-max", "4", "-min", "1")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	if got, want := phases(entries), []string{"warm-up", "load", "resize-up", "resize-down", "close"}; !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	if n := events(entries)["demo.backend"]; n != 0 {
		t.Errorf("%d demo.backend entries for an external target, want 0", n)
	}
	checkClosedEverything(t, entries)
	if strings.Contains(stderr, "req/s") {
		t.Errorf("-quiet printed stats lines:\n%s", stderr)
	}
	if !strings.Contains(stderr, "tcp "+b.Addr()) || !strings.Contains(stderr, "max 4 → 8 → 2") {
		t.Errorf("summary does not name the target and sizes:\n%s", stderr)
	}
	if st := b.Stats(); st.Requests < int64(num(summary(t, entries), "served")) || st.Killed != 0 {
		t.Errorf("backend saw %+v, want at least the served requests and no kills", st)
	}
}

func TestRedisTargetPoolsRESPConnections(t *testing.T) {
	t.Parallel()
	srv := startFakeRedis(t)
	code, entries, stderr := runDemo(t, "-target", "redis://"+srv.addr, "-duration", "1s", "-quiet", "-workers", "4")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	checkClosedEverything(t, entries)
	served := num(summary(t, entries), "served")
	if served == 0 {
		t.Fatal("no request served")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.cmds["SET"] == 0 || srv.cmds["GET"] == 0 || float64(srv.cmds["SET"]+srv.cmds["GET"]) < served {
		t.Errorf("fake redis got %v for %v served requests, want SETs and GETs", srv.cmds, served)
	}
}

func TestUnreachableTargetFailsWithAClearMessage(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	for _, scheme := range []string{"tcp", "redis"} {
		code, _, stderr := runDemo(t, "-target", scheme+"://"+addr, "-duration", "1s")
		if code != exitFail || !strings.Contains(stderr, "cannot start a pool for "+scheme+" "+addr) ||
			!strings.Contains(stderr, "connection refused") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and a message naming the target and the refusal", scheme, code, stderr)
		}
	}
}

func TestBadFlagsExitWithUsageError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-workers", "0"}, "-workers 0"},
		{[]string{"-max", "0"}, "-max 0"},
		{[]string{"-min", "9"}, "-min 9"},
		{[]string{"-duration", "10ms"}, "-duration 10ms"},
		{[]string{"-target", "http://127.0.0.1:1"}, "want embedded, tcp://host:port or redis://host:port"},
		{[]string{"-target", "tcp://nohost"}, "want tcp://host:port"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-nosuchflag"}, "flag provided but not defined"},
	} {
		code, entries, stderr := runDemo(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || len(entries) != 0 {
			t.Errorf("%v: exit %d, %d log entries, stderr %q; want 2, none, and %q", tc.args, code, len(entries), stderr, tc.want)
		}
	}
	if code, _, _ := runDemo(t, "-h"); code != exitOK {
		t.Errorf("-h: exit %d, want 0", code)
	}
}

func TestAdminServesStatsAndResizeDuringTheRun(t *testing.T) {
	t.Parallel()
	b, err := demobackend.Start(demobackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	codec := make(chan int, 1)
	go func() {
		codec <- run([]string{"-target", "tcp://" + b.Addr(), "-duration", "2s", "-quiet", "-workers", "4",
			"-admin", "127.0.0.1:0"}, pw, &errb)
		pw.Close()
	}()

	// Read stdout in a goroutine of its own: the pool logs the resize that
	// the request below asks for, and a pipe nobody reads would block it.
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out strings.Builder
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var stats map[string]any
	resized := false
	for line := range lines {
		out.WriteString(line + "\n")
		var e entry
		if json.Unmarshal([]byte(line), &e) != nil || e.event() != "demo.admin" {
			continue
		}
		base := "http://" + e["addr"].(string)
		resp, err := client.Get(base + "/stats")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&stats)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /stats: %d, %v", resp.StatusCode, err)
		}
		resp, err = client.Post(base+"/resize", "application/json", strings.NewReader(`{"min":1,"max":7}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resized = resp.StatusCode == http.StatusOK
	}
	if code := <-codec; code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, errb.String())
	}
	if stats == nil || stats["name"] != "demo" || stats["max_size"] != float64(8) {
		t.Errorf("GET /stats = %v, want the demo pool at max 8", stats)
	}
	if !resized {
		t.Error("POST /resize did not answer 200")
	}
	adopted := false
	for _, e := range parseEntries(t, out.String()) {
		if e.event() == "resize.adopted" && num(e, "max") == 7 && num(e, "min") == 1 {
			adopted = true
		}
	}
	if !adopted {
		t.Error("no resize.adopted entry for the admin's resize to min 1, max 7")
	}
}

// fakeRedis answers PING, SET and GET in RESP2, enough for the demo.
type fakeRedis struct {
	addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	kv    map[string]string
	cmds  map[string]int
}

func startFakeRedis(t *testing.T) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}, kv: map[string]string{}, cmds: map[string]int{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[c] = true
			f.mu.Unlock()
			f.wg.Add(1)
			go f.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeRedis) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		f.mu.Lock()
		cmd := strings.ToUpper(args[0])
		f.cmds[cmd]++
		var reply string
		switch {
		case cmd == "PING":
			reply = "+PONG\r\n"
		case cmd == "SET" && len(args) == 3:
			f.kv[args[1]] = args[2]
			reply = "+OK\r\n"
		case cmd == "GET" && len(args) == 2:
			if v, ok := f.kv[args[1]]; ok {
				reply = fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)
			} else {
				reply = "$-1\r\n"
			}
		default:
			reply = "-ERR unknown command\r\n"
		}
		f.mu.Unlock()
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array header %q", line)
	}
	args := make([]string, n)
	for i := range args {
		if line, err = r.ReadString('\n'); err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil || size < 0 {
			return nil, fmt.Errorf("bad bulk header %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}
