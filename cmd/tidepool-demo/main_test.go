package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
		"reuse ratio", "connections dialed", "retired by reason", "close                  graceful", " req/s ",
		"max 8 → 16 → 4"} {
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
		{[]string{"-logs", ""}, `-logs "": want -, auto or a file path`},
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

// runWithAdmin runs the demo against a tcp demobackend with -admin on a free
// port and the extra args; once the demo logs demo.admin it calls during with
// the admin base URL and that entry, while the scenario runs. It returns the
// exit code, the log entries and stderr.
func runWithAdmin(t *testing.T, during func(base string, admin entry), args ...string) (int, []entry, string) {
	t.Helper()
	b, err := demobackend.Start(demobackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	codec := make(chan int, 1)
	go func() {
		codec <- run(append([]string{"-target", "tcp://" + b.Addr(), "-quiet", "-workers", "4",
			"-admin", "127.0.0.1:0"}, args...), pw, &errb)
		pw.Close()
	}()

	// Read stdout in a goroutine of its own: the pool logs what the
	// requests in during cause, and a pipe nobody reads would block it.
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out strings.Builder
	for line := range lines {
		out.WriteString(line + "\n")
		var e entry
		if json.Unmarshal([]byte(line), &e) == nil && e.event() == "demo.admin" {
			during("http://"+e["addr"].(string), e)
		}
	}
	code := <-codec
	return code, parseEntries(t, out.String()), errb.String()
}

// get fetches url with an optional Accept header and returns the status, the
// content type and the body.
func get(t *testing.T, url, accept string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func postResize(t *testing.T, base, body string) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post(base+"/resize", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// With -admin the demo serves the admin routes, /metrics and /debug/vars
// beside them, and /conns says how long each held connection has been held
// (the demo turns leak tracking on).
func TestAdminServesTheAdminRoutesMetricsAndDebugVars(t *testing.T) {
	t.Parallel()
	var (
		stats       map[string]any
		metricsText string
		omType      string
		omBody      string
		vars        map[string]json.RawMessage
		varName     string
		held        []map[string]any
	)
	code, _, stderr := runWithAdmin(t, func(base string, e entry) {
		status, _, body := get(t, base+"/stats", "")
		if status != http.StatusOK || json.Unmarshal(body, &stats) != nil {
			t.Errorf("GET /stats: %d %s", status, body)
		}
		if status, _, body = get(t, base+"/metrics", ""); status != http.StatusOK {
			t.Errorf("GET /metrics: %d %s", status, body)
		}
		metricsText = string(body)
		_, omType, body = get(t, base+"/metrics", "application/openmetrics-text;version=1.0.0")
		omBody = string(body)
		if status, _, body = get(t, base+"/debug/vars", ""); status != http.StatusOK || json.Unmarshal(body, &vars) != nil {
			t.Errorf("GET /debug/vars: %d %s", status, body)
		}
		varName, _ = e["expvar"].(string)
		// Four workers hold connections most of the time; ask until a
		// listing catches some.
		for range 200 {
			_, _, body = get(t, base+"/conns", "")
			if err := json.Unmarshal(body, &held); err != nil {
				t.Errorf("GET /conns: %v: %s", err, body)
				return
			}
			if len(held) > 0 {
				return
			}
		}
	}, "-duration", "2s")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	if stats["name"] != "demo" || stats["max_size"] != float64(8) {
		t.Errorf("GET /stats = %v, want the demo pool at max 8", stats)
	}
	for _, want := range []string{`tidepool_connections_max{pool="demo"} 8`, `tidepool_acquires_total{pool="demo"}`,
		"# TYPE tidepool_acquire_wait_seconds histogram"} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("GET /metrics lacks %q:\n%s", want, metricsText)
		}
	}
	if !strings.HasPrefix(omType, "application/openmetrics-text") || !strings.HasSuffix(omBody, "# EOF\n") {
		t.Errorf("GET /metrics asking for OpenMetrics: %q, body ends %q", omType, omBody[max(0, len(omBody)-20):])
	}
	var vs map[string]any
	if varName == "" || json.Unmarshal(vars[varName], &vs) != nil || vs["name"] != "demo" || vars["memstats"] == nil {
		t.Errorf("/debug/vars[%q] = %s, want the demo pool's Stats next to memstats", varName, vars[varName])
	}
	if len(held) == 0 {
		t.Fatal("GET /conns never listed a held connection")
	}
	for _, c := range held {
		if hf, _ := c["held_for_ns"].(float64); hf <= 0 {
			t.Errorf("GET /conns: connection %v has held_for_ns %v, want how long it has been held", c["id"], c["held_for_ns"])
		}
	}
	if !strings.Contains(stderr, "/metrics") || !strings.Contains(stderr, "/debug/vars") {
		t.Errorf("stderr does not announce /metrics and /debug/vars:\n%s", stderr)
	}
}

// An operator's resize through the admin handler stands: the scenario's own
// resizes after it are skipped, and the output says so.
func TestOperatorResizePausesTheScriptedResizes(t *testing.T) {
	t.Parallel()
	status := 0
	code, entries, stderr := runWithAdmin(t, func(base string, _ entry) {
		status = postResize(t, base, `{"min":1,"max":7}`)
	}, "-duration", "2s")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	if status != http.StatusOK {
		t.Fatalf("POST /resize answered %d, want 200", status)
	}
	var adopted []float64
	var skipped []string
	operator := 0
	for _, e := range entries {
		switch e.event() {
		case "resize.adopted":
			adopted = append(adopted, num(e, "max"))
		case "demo.resize_skipped":
			skipped = append(skipped, e["phase"].(string))
			if num(e, "operator_max") != 7 {
				t.Errorf("demo.resize_skipped %v does not name the operator's max 7", e)
			}
		case "demo.operator_resize":
			operator++
			if num(e, "min") != 1 || num(e, "max") != 7 {
				t.Errorf("demo.operator_resize %v, want min 1 max 7", e)
			}
		}
	}
	if !slices.Equal(adopted, []float64{7}) {
		t.Errorf("resize.adopted maxes %v, want only the operator's [7]", adopted)
	}
	if !slices.Equal(skipped, []string{"resize-up", "resize-down"}) || operator != 1 {
		t.Errorf("skipped %v and %d operator resizes logged, want [resize-up resize-down] and 1", skipped, operator)
	}
	for _, want := range []string{"operator resized the pool to [1, 7]", "scripted resizes paused",
		"resize-up: scripted resize to [2, 16] skipped", "resize-down: scripted resize to [2, 4] skipped",
		"max 8 → 7 (operator)", "the scripted resizes after it were skipped"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if s := summary(t, entries); s["close_forced"] != false {
		t.Errorf("summary %v", s)
	}
}

// In a terminal (any character device but /dev/null) the JSON logs go to a
// new file in the temp directory, named on stderr with how to read it, and
// the terminal gets the stats lines and the summary only.
func TestLogsGoToAFileWhenStdoutIsATerminal(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir) // os.CreateTemp("", …) uses it
	// A character device that is not /dev/null stands for the terminal.
	tty, err := os.OpenFile("/dev/zero", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/zero to stand for a terminal: %v", err)
	}
	defer tty.Close()
	b, err := demobackend.Start(demobackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var errb bytes.Buffer
	code := run([]string{"-target", "tcp://" + b.Addr(), "-duration", "2s", "-workers", "4"}, tty, &errb)
	stderr := errb.String()
	if code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tidepool-demo-*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("log files in the temp dir: %v, want one tidepool-demo-*.jsonl", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	entries := parseEntries(t, string(data))
	checkClosedEverything(t, entries)
	for _, want := range []string{
		"logs: one JSON line per event in " + files[0], "tail -f " + files[0] + " | jq",
		fmt.Sprintf("logs: %d JSON lines in %s", len(entries), files[0]), "jq -c 'select(.event==\"conn.retired\")",
		"last 1s:", "req/s", "total:", "tidepool-demo summary",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, `"event"`) {
		t.Errorf("JSON log lines reached stderr:\n%s", stderr)
	}
}

// -logs FILE writes the log lines there whatever stdout is; -logs - and the
// default with stdout not a terminal write them to stdout.
func TestLogsFlagChoosesWhereTheLinesGo(t *testing.T) {
	t.Parallel()
	b, err := demobackend.Start(demobackend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	var out, errb bytes.Buffer
	code := run([]string{"-target", "tcp://" + b.Addr(), "-duration", "1s", "-quiet", "-workers", "2", "-logs", path}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, errb.String())
	}
	if out.Len() != 0 {
		t.Errorf("-logs FILE still wrote %d bytes to stdout", out.Len())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkClosedEverything(t, parseEntries(t, string(data)))

	code, entries, stderr := runDemo(t, "-target", "tcp://"+b.Addr(), "-duration", "1s", "-quiet", "-workers", "2", "-logs", "-")
	if code != exitOK || events(entries)["pool.closed"] != 1 || strings.Contains(stderr, "logs:") {
		t.Errorf("-logs -: exit %d, %d pool.closed on stdout, stderr %q; want 0, 1, no log-file note", code, events(entries)["pool.closed"], stderr)
	}

	code, _, stderr = runDemo(t, "-target", "tcp://"+b.Addr(), "-duration", "1s", "-logs", filepath.Join(t.TempDir(), "no", "such", "dir"))
	if code != exitFail || !strings.Contains(stderr, "-logs:") {
		t.Errorf("-logs into a missing directory: exit %d, stderr %q; want 1 and a -logs error", code, stderr)
	}
}

func TestIsTerminalMeansACharacterDeviceOtherThanDevNull(t *testing.T) {
	t.Parallel()
	open := func(name string) *os.File {
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			t.Skipf("%s: %v", name, err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, tc := range []struct {
		name string
		w    io.Writer
		want bool
	}{
		{"buffer", &bytes.Buffer{}, false},
		{"pipe", w, false},
		{"regular file", file, false},
		{"/dev/null", open(os.DevNull), false},
		{"/dev/zero", open("/dev/zero"), true},
	} {
		if got := isTerminal(tc.w); got != tc.want {
			t.Errorf("isTerminal(%s) = %v, want %v", tc.name, got, tc.want)
		}
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
