// Command fleet-demo shows a fleet of pools sharing one connection budget
// through etcd. It starts an embedded single-node etcd and a backend
// (redis-server on 127.0.0.1 if it is installed, otherwise an in-process TCP
// service that counts its connections), then runs fleet members as separate
// processes (this binary re-executed) with shifting load: it moves load from
// one member to another, kills one with SIGKILL, adds two, lets one leave,
// and stops. Every second it prints the budget split on stderr — each
// member's demand and grant, and the backend's own connection count — and it
// forwards the members' fleet events (zap JSON, e.g. fleet.granted) to
// stdout. At the end it prints the most connections the backend ever counted
// against the budget and exits non-zero if that was over.
//
//	cd fleet && go run ./cmd/fleet-demo 2>table.txt | jq -c 'select(.event=="fleet.granted") | {member, old, new, demands}'
//
// Flags: -budget, -backend (auto, redis, embedded), -speed (a factor on the
// script's pauses, e.g. 0.5 for a faster run).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/fleet"
	"github.com/tidepool-go/tidepool/internal/demobackend"
	"github.com/tidepool-go/tidepool/internal/resp"
)

const memberEnv = "FLEET_DEMO_MEMBER"

// Fleet timings: a 5 s lease renewed every 500 ms. With redis-server the
// backend closes idle clients after 1-2 s (`timeout 1`), declared as
// BackendIdleTimeout 2.5 s; a member that cannot renew fences 2 s after its
// last renewal.
const (
	leaseTTL  = 5 * time.Second
	renew     = 500 * time.Millisecond
	margin    = 500 * time.Millisecond
	idleRedis = 2500 * time.Millisecond
	fleetName = "demo"
)

type memberSpec struct {
	ID      string   `json:"id"`
	Etcd    []string `json:"etcd"`
	Backend string   `json:"backend"`
	Redis   bool     `json:"redis"`
	Budget  int      `json:"budget"`
	Load    int      `json:"load"`
	IdleMS  int      `json:"idle_ms"`
}

func main() {
	if s := os.Getenv(memberEnv); s != "" {
		os.Exit(runMember(s))
	}
	budget := flag.Int("budget", 20, "connections all members together may have open")
	backend := flag.String("backend", "auto", "auto (redis-server if installed), redis, or embedded")
	speed := flag.Float64("speed", 1, "factor on the script's pauses")
	flag.Parse()
	if err := run(*budget, *backend, *speed); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-demo:", err)
		os.Exit(1)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startEtcd(dir string) (*embed.Etcd, string, error) {
	cp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	pp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "demo", dir
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", cp))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", pp))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.TickMs, cfg.ElectionMs = 50, 500
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		e.Close()
		return nil, "", errors.New("embedded etcd not ready after 20 s")
	}
	return e, cu.String(), nil
}

// counter reports how many connections the backend itself counts.
type counter func() (int, error)

func startBackend(kind, dir string) (addr string, isRedis bool, count counter, stop func(), err error) {
	if kind != "embedded" {
		if bin, lerr := exec.LookPath("redis-server"); lerr == nil {
			port, err := freePort()
			if err != nil {
				return "", false, nil, nil, err
			}
			cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
				"--appendonly", "no", "--timeout", "1", "--dir", dir, "--logfile", "")
			dieWithParent(cmd)
			if err := cmd.Start(); err != nil {
				return "", false, nil, nil, err
			}
			addr = fmt.Sprintf("127.0.0.1:%d", port)
			stopRedis := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
			var admin *resp.Conn
			for range 100 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				admin, err = resp.Dial(ctx, "tcp", addr)
				if err == nil {
					if _, err = admin.Do(ctx, "CLIENT", "SETNAME", "fleet-demo"); err != nil {
						admin.Close()
					}
				}
				cancel()
				if err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond) // redis-server starting
			}
			if err != nil {
				stopRedis()
				return "", false, nil, nil, fmt.Errorf("redis-server did not answer: %w", err)
			}
			var mu sync.Mutex
			count = func() (int, error) {
				mu.Lock()
				defer mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				r, err := admin.Do(ctx, "CLIENT", "LIST")
				if err != nil {
					return 0, err
				}
				n := 0
				for _, line := range strings.Split(strings.TrimSpace(r.Str), "\n") {
					if !strings.Contains(line, " name=fleet-demo ") {
						n++
					}
				}
				return n, nil
			}
			return addr, true, count, func() { admin.Close(); stopRedis() }, nil
		} else if kind == "redis" {
			return "", false, nil, nil, fmt.Errorf("-backend redis: %w", lerr)
		}
	}
	s, err := demobackend.Start(demobackend.Options{})
	if err != nil {
		return "", false, nil, nil, err
	}
	return s.Addr(), false, func() (int, error) { return s.Stats().Open, nil }, func() { _ = s.Close() }, nil
}

// member is the parent's handle on one member process.
type member struct {
	id    string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

func run(budget int, backendKind string, speed float64) error {
	dir, err := os.MkdirTemp("", "fleet-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	etcd, endpoint, err := startEtcd(dir + "/etcd")
	if err != nil {
		return fmt.Errorf("embedded etcd: %w", err)
	}
	defer etcd.Close()
	addr, isRedis, count, stopBackend, err := startBackend(backendKind, dir)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	defer stopBackend()
	kind := "in-process TCP service (no idle timeout: the SIGSTOP case is not covered)"
	if isRedis {
		kind = "redis-server --timeout 1"
	}
	fmt.Fprintf(os.Stderr, "fleet-demo: etcd %s, backend %s at %s, budget %d\n", endpoint, kind, addr, budget)

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var outMu sync.Mutex
	var members []*member
	start := func(id string, load int) (*member, error) {
		idle := 0
		if isRedis {
			idle = int(idleRedis / time.Millisecond)
		}
		spec, _ := json.Marshal(memberSpec{ID: id, Etcd: []string{endpoint}, Backend: addr, Redis: isRedis, Budget: budget, Load: load, IdleMS: idle})
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), memberEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		dieWithParent(cmd)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		m := &member{id: id, cmd: cmd, stdin: in, done: make(chan struct{})}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				outMu.Lock()
				os.Stdout.Write(append(sc.Bytes(), '\n'))
				outMu.Unlock()
			}
			_ = cmd.Wait()
			close(m.done)
		}()
		members = append(members, m)
		fmt.Fprintf(os.Stderr, "--- %s joins with load %d\n", id, load)
		return m, nil
	}
	defer func() {
		for _, m := range members {
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	}()
	setLoad := func(m *member, n int) {
		fmt.Fprintf(m.stdin, "load %d\n", n)
		fmt.Fprintf(os.Stderr, "--- %s load → %d\n", m.id, n)
	}

	// The table: once a second, from etcd and the backend.
	var maxSeen atomic.Int64
	var over atomic.Int64
	stopTable := make(chan struct{})
	tableDone := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(tableDone)
		sample := time.NewTicker(10 * time.Millisecond)
		defer sample.Stop()
		next := time.Now()
		for {
			select {
			case <-stopTable:
				return
			case <-sample.C:
			}
			n, err := count()
			if err == nil {
				if int64(n) > maxSeen.Load() {
					maxSeen.Store(int64(n))
				}
				if n > budget {
					over.Add(1)
				}
			}
			if time.Now().Before(next) {
				continue
			}
			next = next.Add(time.Second)
			printRow(cli, time.Since(t0), n, budget)
		}
	}()

	pause := func(d time.Duration) { time.Sleep(time.Duration(float64(d) * speed)) }
	m1, err := start("m1", 4)
	if err != nil {
		return err
	}
	m2, err := start("m2", 4)
	if err != nil {
		return err
	}
	m3, err := start("m3", 12)
	if err != nil {
		return err
	}
	pause(8 * time.Second)
	setLoad(m1, 14)
	setLoad(m3, 3)
	pause(7 * time.Second)
	fmt.Fprintf(os.Stderr, "--- m2 killed (SIGKILL): its share moves when its lease expires (TTL %v)\n", leaseTTL)
	_ = m2.cmd.Process.Signal(syscall.SIGKILL)
	<-m2.done
	pause(8 * time.Second)
	if _, err := start("m4", 6); err != nil {
		return err
	}
	if _, err := start("m5", 6); err != nil {
		return err
	}
	pause(8 * time.Second)
	fmt.Fprintln(os.Stderr, "--- m3 leaves: its lease is revoked, its share moves at once")
	fmt.Fprintln(m3.stdin, "leave")
	<-m3.done
	pause(5 * time.Second)
	for _, m := range members {
		select {
		case <-m.done:
			continue
		default:
		}
		fmt.Fprintln(m.stdin, "leave")
	}
	for _, m := range members {
		<-m.done
	}
	close(stopTable)
	<-tableDone
	fmt.Fprintf(os.Stderr, "fleet-demo: the backend counted at most %d connections, budget %d (%d samples over)\n",
		maxSeen.Load(), budget, over.Load())
	if over.Load() > 0 {
		return fmt.Errorf("the backend saw more connections than the budget")
	}
	return nil
}

var header sync.Once

// printRow prints one line of the table: every member's demand and claim
// from etcd, and the backend's own count.
func printRow(cli *clientv3.Client, at time.Duration, backend, budget int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	root := fleet.DefaultPrefix + fleetName + "/"
	r, err := cli.Get(ctx, root, clientv3.WithPrefix())
	if err != nil {
		return
	}
	type row struct{ demand, claim int }
	rows := map[string]*row{}
	get := func(id string) *row {
		if rows[id] == nil {
			rows[id] = &row{}
		}
		return rows[id]
	}
	claimed := 0
	for _, kv := range r.Kvs {
		k := string(kv.Key)
		if id, ok := strings.CutPrefix(k, root+"members/"); ok {
			var rep struct {
				Demand int `json:"demand"`
			}
			_ = json.Unmarshal(kv.Value, &rep)
			get(id).demand = rep.Demand
		}
		if id, ok := strings.CutPrefix(k, root+"claims/"); ok {
			n, _ := strconv.Atoi(string(kv.Value))
			get(id).claim = n
			claimed += n
		}
	}
	ids := make([]string, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	header.Do(func() {
		fmt.Fprintln(os.Stderr, "  time  backend/budget  claimed  members: id demand→grant")
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%5.0fs  %7d/%-6d  %7d ", at.Seconds(), backend, budget, claimed)
	for _, id := range ids {
		fmt.Fprintf(&b, "  %s %2d→%-2d", id, rows[id].demand, rows[id].claim)
	}
	fmt.Fprintln(os.Stderr, b.String())
}

// runMember is a member process: a pool on the backend, joined to the fleet,
// with `load` workers each holding a connection 25 ms per request. Its fleet
// events go to stdout as JSON; it obeys "load N" and "leave" on stdin.
func runMember(specJSON string) int {
	var spec memberSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "member spec:", err)
		return 2
	}
	lc := zap.NewProductionConfig()
	lc.OutputPaths = []string{"stdout"} // the parent forwards it: JSON events on stdout
	log, err := lc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "logger:", err)
		return 2
	}
	defer log.Sync()
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{Endpoints: spec.Etcd, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		log.Error("etcd", zap.Error(err))
		return 1
	}
	defer cli.Close()
	type conn struct {
		nc net.Conn
		rc *resp.Conn
	}
	p, fp, err := fleet.NewPool(ctx, tidepool.Config[*conn]{
		Name: spec.ID,
		Dial: func(ctx context.Context) (*conn, error) {
			if spec.Redis {
				c, err := resp.Dial(ctx, "tcp", spec.Backend)
				if err != nil {
					return nil, err
				}
				if _, err := c.Do(ctx, "CLIENT", "SETNAME", spec.ID); err != nil {
					c.Close()
					return nil, err
				}
				return &conn{rc: c}, nil
			}
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", spec.Backend)
			if err != nil {
				return nil, err
			}
			return &conn{nc: nc}, nil
		},
		Close: func(c *conn) error {
			if c.rc != nil {
				return c.rc.Close()
			}
			return c.nc.Close()
		},
		DialTimeout: time.Second, MaxIdleTime: 500 * time.Millisecond, SizeCeiling: max(64, spec.Budget),
	})
	if err != nil {
		log.Error("pool", zap.Error(err))
		return 1
	}
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	m, err := fleet.Join(jctx, cli, fleet.Options{
		Name: fleetName, Budget: spec.Budget, MinPerMember: 1, Pool: fp, Member: spec.ID,
		LeaseTTL: leaseTTL, RenewInterval: renew, FenceMargin: margin,
		BackendIdleTimeout: time.Duration(spec.IdleMS) * time.Millisecond, Logger: log,
	})
	cancel()
	if err != nil {
		log.Error("join", zap.Error(err))
		return 1
	}
	var load atomic.Int64
	load.Store(int64(spec.Load))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if int64(i) >= load.Load() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				actx, cancel := context.WithTimeout(ctx, time.Second)
				c, err := p.Acquire(actx)
				if err != nil {
					cancel()
					time.Sleep(5 * time.Millisecond)
					continue
				}
				var rerr error
				if c.Value().rc != nil {
					rerr = c.Value().rc.Ping(actx)
				} else {
					_, rerr = demobackend.RoundTrip(c.Value().nc, "PING")
				}
				cancel()
				if rerr != nil {
					c.Destroy()
					continue
				}
				time.Sleep(25 * time.Millisecond)
				c.Release()
			}
		})
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "load":
			n, _ := strconv.Atoi(f[1])
			load.Store(int64(n))
		case len(f) == 1 && f[0] == "leave":
			load.Store(0)
			close(stop)
			wg.Wait()
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := m.Leave(lctx)
			cancel()
			_ = p.Close(ctx)
			if err != nil {
				log.Error("leave", zap.Error(err))
				return 1
			}
			return 0
		}
	}
	return 0
}
