package fleet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdCluster is a 3-member etcd cluster of separate /usr/bin/etcd processes
// on 127.0.0.1, with ephemeral ports and data in a temp dir. Heartbeat 50 ms
// and election timeout 500 ms make a leader change take about a second.
type etcdCluster struct {
	t     testing.TB
	dir   string
	nodes []*etcdNode
}

type etcdNode struct {
	name           string
	client, peer   string // URLs
	cmd            *exec.Cmd
	exited         chan struct{}
	log            *syncBuffer
	dataDir        string
	initialCluster string
	token          string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func etcdBinary(t testing.TB) string {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("etcd not found in PATH (CI is set, so this fails instead of skipping): %v", err)
		}
		t.Skip("etcd not found in PATH; install it (apt-get install etcd-server) to run the fleet's etcd tests")
	}
	return bin
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startEtcdCluster starts the cluster and waits until it has a leader; it is
// stopped at t.Cleanup. Ports are found by binding and releasing them, so a
// start that loses a port to another process is retried.
func startEtcdCluster(t testing.TB) *etcdCluster {
	t.Helper()
	bin := etcdBinary(t)
	var last error
	for attempt := range 3 {
		c := &etcdCluster{t: t, dir: t.TempDir()}
		ports := freePorts(t, 6)
		var ic []string
		for i := range 3 {
			n := &etcdNode{
				name:   fmt.Sprintf("n%d", i),
				client: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
				peer:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
				log:    new(syncBuffer),
			}
			n.dataDir = filepath.Join(c.dir, n.name)
			ic = append(ic, n.name+"="+n.peer)
			c.nodes = append(c.nodes, n)
		}
		for _, n := range c.nodes {
			n.initialCluster = strings.Join(ic, ",")
			n.token = fmt.Sprintf("fleet-test-%d-%d", os.Getpid(), attempt)
			if err := n.start(bin, "new"); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(c.stop)
		if last = c.waitHealthy(15 * time.Second); last == nil {
			return c
		}
		c.stop()
	}
	t.Fatalf("etcd cluster did not become healthy: %v", last)
	return nil
}

func (n *etcdNode) start(bin, state string) error {
	n.cmd = exec.Command(bin,
		"--name", n.name, "--data-dir", n.dataDir,
		"--listen-client-urls", n.client, "--advertise-client-urls", n.client,
		"--listen-peer-urls", n.peer, "--initial-advertise-peer-urls", n.peer,
		"--initial-cluster", n.initialCluster, "--initial-cluster-state", state,
		"--initial-cluster-token", n.token,
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn")
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	dieWithParent(n.cmd)
	if err := n.cmd.Start(); err != nil {
		return err
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { _ = cmd.Wait(); close(ch) }(n.cmd, n.exited)
	return nil
}

func (n *etcdNode) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func (n *etcdNode) kill() {
	if n.running() {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
	}
}

func (c *etcdCluster) stop() {
	for _, n := range c.nodes {
		if n.running() {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range c.nodes {
		if n.cmd == nil {
			continue
		}
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			n.kill()
		}
	}
	if c.t.Failed() {
		for _, n := range c.nodes {
			if s := n.log.String(); s != "" {
				c.t.Logf("etcd %s output (last 2000 bytes):\n%s", n.name, tail(s, 2000))
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// endpoints returns the client URLs of the running members.
func (c *etcdCluster) endpoints() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.client)
	}
	return out
}

func (c *etcdCluster) client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: c.endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *etcdCluster) waitHealthy(within time.Duration) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Put(ctx, "/health", "ok")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		for _, n := range c.nodes {
			if !n.running() {
				return fmt.Errorf("etcd %s exited: %s", n.name, tail(n.log.String(), 1000))
			}
		}
		time.Sleep(50 * time.Millisecond) // a real cluster electing its first leader
	}
}

// leader returns the node that is the Raft leader.
func (c *etcdCluster) leader(t testing.TB) *etcdNode {
	t.Helper()
	cli := c.client(t)
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, n.client)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return n
		}
	}
	t.Fatal("no etcd leader found")
	return nil
}
