package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/internal/redistest"
	"github.com/tidepool-go/tidepool/internal/resp"
)

// The integration tests run fleet members as separate OS processes — the
// test binary re-executed with memberEnv set — so that they can be killed
// (SIGKILL), frozen (SIGSTOP) and cut off from etcd (through a tcpProxy).
// Each member pools real redis-server connections named after itself
// (CLIENT SETNAME), runs `load` workers that each hold a connection for
// HoldMS per request, prints its Stats as one JSON line every 50 ms on stdout
// and obeys "load N" and "leave" on stdin.

const memberEnv = "TIDEPOOL_FLEET_TEST_MEMBER"

type memberSpec struct {
	Endpoints []string      `json:"endpoints"`
	Redis     string        `json:"redis"`
	Fleet     string        `json:"fleet"`
	Budget    int           `json:"budget"`
	Floor     int           `json:"floor"`
	ID        string        `json:"id"`
	Load      int           `json:"load"`
	HoldMS    int           `json:"hold_ms"`
	TTL       time.Duration `json:"ttl"`
	Renew     time.Duration `json:"renew"`
	Margin    time.Duration `json:"margin"`
	Idle      time.Duration `json:"idle"`
}

// memberStatus is one line a member process prints.
type memberStatus struct {
	At   int64 `json:"at"` // unix ms
	Left bool  `json:"left,omitempty"`
	Stats
	Errors int64 `json:"errors"`
	Served int64 `json:"served"`
}

// runMemberProcess is the member's main; it exits the process.
func runMemberProcess(specJSON string) {
	var spec memberSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "bad member spec:", err)
		os.Exit(2)
	}
	log, _ := zap.NewProduction()
	defer log.Sync()
	ctx := context.Background()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: spec.Endpoints, DialTimeout: time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second,
	})
	if err != nil {
		log.Fatal("etcd client", zap.Error(err))
	}
	p, fp, err := NewPool(ctx, tidepool.Config[*resp.Conn]{
		Name: spec.ID,
		Dial: func(ctx context.Context) (*resp.Conn, error) {
			c, err := resp.Dial(ctx, "tcp", spec.Redis)
			if err != nil {
				return nil, err
			}
			if r, err := c.Do(ctx, "CLIENT", "SETNAME", spec.ID); err != nil || r.Err() != nil {
				c.Close()
				return nil, fmt.Errorf("CLIENT SETNAME: %v %v", err, r.Err())
			}
			return c, nil
		},
		Close:       (*resp.Conn).Close,
		DialTimeout: time.Second, MaxIdleTime: 500 * time.Millisecond, SizeCeiling: 256,
		Logger: log.Named("pool"),
	})
	if err != nil {
		log.Fatal("pool", zap.Error(err))
	}
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	m, err := Join(jctx, cli, Options{
		Name: spec.Fleet, Budget: spec.Budget, MinPerMember: spec.Floor, Pool: fp, Member: spec.ID,
		LeaseTTL: spec.TTL, RenewInterval: spec.Renew, FenceMargin: spec.Margin, BackendIdleTimeout: spec.Idle,
		OpTimeout: time.Second, Logger: log,
	})
	cancel()
	if err != nil {
		log.Fatal("join", zap.Error(err))
	}
	var load atomic.Int64
	load.Store(int64(spec.Load))
	var errs, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hold := time.Duration(spec.HoldMS) * time.Millisecond
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
					errs.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if _, err := c.Value().Do(actx, "PING"); err != nil {
					c.Destroy()
					errs.Add(1)
				} else {
					time.Sleep(hold)
					c.Release()
					served.Add(1)
				}
				cancel()
			}
		})
	}
	out := json.NewEncoder(os.Stdout)
	var outMu sync.Mutex
	emit := func(left bool) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = out.Encode(memberStatus{At: time.Now().UnixMilli(), Left: left, Stats: m.Stats(), Errors: errs.Load(), Served: served.Load()})
	}
	go func() {
		for {
			emit(false)
			time.Sleep(50 * time.Millisecond)
		}
	}()
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
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := m.Leave(lctx)
			cancel()
			if err != nil {
				log.Error("leave", zap.Error(err))
			}
			wg.Wait()
			emit(true)
			_ = p.Close(ctx)
			cli.Close()
			os.Exit(0)
		}
	}
	os.Exit(0) // stdin closed: the test is gone
}

// memberProc is the test's handle on one member process.
type memberProc struct {
	t      *testing.T
	id     string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	exited chan struct{}

	mu   sync.Mutex
	last memberStatus
	left bool          // a status line said it left
	seen chan struct{} // closed at the first status line
}

func startMember(t *testing.T, spec memberSpec) *memberProc {
	t.Helper()
	b, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), memberEnv+"="+string(b))
	mp := &memberProc{t: t, id: spec.ID, cmd: cmd, stderr: new(syncBuffer), exited: make(chan struct{}), seen: make(chan struct{})}
	cmd.Stderr = mp.stderr
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if mp.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		first := true
		for sc.Scan() {
			var st memberStatus
			if json.Unmarshal(sc.Bytes(), &st) != nil {
				continue
			}
			mp.mu.Lock()
			mp.last = st
			mp.left = mp.left || st.Left
			mp.mu.Unlock()
			if first {
				close(mp.seen)
				first = false
			}
		}
		_ = cmd.Wait()
		close(mp.exited)
	}()
	t.Cleanup(func() {
		mp.signal(syscall.SIGCONT)
		mp.signal(syscall.SIGKILL)
		<-mp.exited
		if t.Failed() {
			t.Logf("member %s stderr (last 3000 bytes):\n%s", mp.id, tail(mp.stderr.String(), 3000))
		}
	})
	select {
	case <-mp.seen:
	case <-mp.exited:
		t.Fatalf("member %s exited at start: %s", spec.ID, tail(mp.stderr.String(), 3000))
	case <-time.After(20 * time.Second):
		t.Fatalf("member %s printed no status in 20 s: %s", spec.ID, tail(mp.stderr.String(), 3000))
	}
	return mp
}

func (mp *memberProc) status() memberStatus {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	return mp.last
}

func (mp *memberProc) signal(sig syscall.Signal) {
	select {
	case <-mp.exited:
	default:
		_ = mp.cmd.Process.Signal(sig)
	}
}

func (mp *memberProc) setLoad(n int) {
	fmt.Fprintf(mp.stdin, "load %d\n", n)
}

// leave asks the member to leave and waits for it to exit.
func (mp *memberProc) leave() {
	fmt.Fprintln(mp.stdin, "leave")
	select {
	case <-mp.exited:
	case <-time.After(15 * time.Second):
		mp.t.Fatalf("member %s did not exit after leave", mp.id)
	}
}

func (mp *memberProc) kill() {
	mp.signal(syscall.SIGKILL)
	<-mp.exited
}

// judge samples redis-server's own client list every 10 ms and compares the
// fleet's connections (every client but itself) with the budget.
type judge struct {
	t      *testing.T
	budget int
	conn   *resp.Conn

	mu      sync.Mutex
	samples int
	over    int
	max     int
	maxAt   time.Time
	by      map[string]int // latest per-client-name counts
	stop    chan struct{}
	done    chan struct{}
	errs    int
}

func startJudge(t *testing.T, r *redistest.Server, budget int) *judge {
	t.Helper()
	c, err := r.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := c.Do(t.Context(), "CLIENT", "SETNAME", "judge"); err != nil || rep.Err() != nil {
		t.Fatalf("judge SETNAME: %v %v", err, rep.Err())
	}
	j := &judge{t: t, budget: budget, conn: c, by: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go j.run()
	t.Cleanup(j.close)
	return j
}

func (j *judge) run() {
	defer close(j.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := j.conn.Do(ctx, "CLIENT", "LIST")
		cancel()
		if err != nil || r.Err() != nil {
			j.mu.Lock()
			j.errs++
			j.mu.Unlock()
			continue
		}
		by := map[string]int{}
		total := 0
		for _, line := range strings.Split(strings.TrimSpace(r.Str), "\n") {
			name := ""
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "name="); ok {
					name = v
				}
			}
			if name == "judge" {
				continue
			}
			by[name]++
			total++
		}
		j.mu.Lock()
		j.samples++
		j.by = by
		if total > j.max {
			j.max, j.maxAt = total, time.Now()
		}
		if total > j.budget {
			j.over++
			j.t.Errorf("redis-server counts %d fleet connections at %s, budget %d: %v", total, time.Now().Format("15:04:05.000"), j.budget, by)
		}
		j.mu.Unlock()
	}
}

func (j *judge) close() {
	select {
	case <-j.stop:
		return
	default:
	}
	close(j.stop)
	<-j.done
}

// count returns the latest count of the connections named name.
func (j *judge) count(name string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.by[name]
}

func (j *judge) result() (samples, maxSeen, over int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.samples, j.max, j.over
}

// tcpProxy forwards 127.0.0.1 connections to target; sever makes it a black
// hole (bytes are read and dropped both ways, nothing is refused, so clients
// only time out), heal drops every connection and forwards new ones again.
type tcpProxy struct {
	ln      net.Listener
	target  string
	severed atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c)
		go p.pipe(c, u)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			src.Close()
			return
		}
		if !p.severed.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				src.Close()
				return
			}
		}
	}
}

func (p *tcpProxy) sever() { p.severed.Store(true) }

func (p *tcpProxy) heal() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.severed.Store(false)
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.heal()
	p.wg.Wait()
}
