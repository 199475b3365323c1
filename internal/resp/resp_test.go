package resp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeServer is a tiny RESP server on 127.0.0.1. For every command it reads
// (an array of bulk strings) it records the arguments and writes whatever
// handle returns, verbatim. handle returning "" closes the connection; a
// handle that blocks on ctx leaves the client waiting.
type fakeServer struct {
	ln   net.Listener
	cmds chan []string
}

func startFake(t *testing.T, handle func(args []string) string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, cmds: make(chan []string, 64)}
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go s.serve(c, handle)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return s
}

func (s *fakeServer) serve(c net.Conn, handle func([]string) string) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		args, err := readCommand(br)
		if err != nil {
			return
		}
		s.cmds <- args
		out := handle(args)
		if out == "" {
			return
		}
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
	}
}

// readCommand parses a client command independently of the code under test.
func readCommand(br *bufio.Reader) ([]string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, errors.New("not an array")
	}
	n, err := strconv.Atoi(strings.TrimSuffix(line[1:], "\r\n"))
	if err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		hdr, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l, err := strconv.Atoi(strings.TrimSuffix(hdr[1:], "\r\n"))
		if err != nil {
			return nil, err
		}
		buf := make([]byte, l+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:l])
	}
	return args, nil
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func dial(t *testing.T, s *fakeServer) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), "tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPingSucceedsOnPong(t *testing.T) {
	s := startFake(t, func([]string) string { return "+PONG\r\n" })
	c := dial(t, s)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if got := <-s.cmds; len(got) != 1 || got[0] != "PING" {
		t.Fatalf("server saw %q, want [PING]", got)
	}
}

func TestPingReturnsRedisErrorReply(t *testing.T) {
	s := startFake(t, func([]string) string { return "-ERR max number of clients reached\r\n" })
	c := dial(t, s)
	err := c.Ping(context.Background())
	var re *Error
	if !errors.As(err, &re) || re.Msg != "ERR max number of clients reached" {
		t.Fatalf("Ping error = %v, want *Error with the server's message", err)
	}
	if !strings.Contains(err.Error(), "max number of clients reached") {
		t.Fatalf("error text %q lost the server's message", err)
	}
}

func TestPingRejectsOtherReplies(t *testing.T) {
	s := startFake(t, func([]string) string { return "+OK\r\n" })
	c := dial(t, s)
	if err := c.Ping(context.Background()); !errors.Is(err, ErrUnexpectedReply) {
		t.Fatalf("Ping on +OK = %v, want ErrUnexpectedReply", err)
	}
}

func TestDoSendsArgumentsAsBinarySafeBulkStrings(t *testing.T) {
	s := startFake(t, func([]string) string { return "+OK\r\n" })
	c := dial(t, s)
	want := []string{"SET", "k ey", "va\r\nl\x00ue", ""}
	r, err := c.Do(context.Background(), want...)
	if err != nil || r.Kind != KindSimple || r.Str != "OK" {
		t.Fatalf("Do = %+v, %v", r, err)
	}
	got := <-s.cmds
	if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
		t.Fatalf("server saw %q, want %q", got, want)
	}
}

func TestDoParsesEveryReplyKind(t *testing.T) {
	replies := map[string]string{
		"simple":    "+hello world\r\n",
		"error":     "-WRONGTYPE bad\r\n",
		"int":       ":-42\r\n",
		"bulk":      "$7\r\nab\r\ncd\x00\r\n",
		"emptybulk": "$0\r\n\r\n",
		"nilbulk":   "$-1\r\n",
		"nilarray":  "*-1\r\n",
		"array":     "*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n$1\r\nz\r\n",
	}
	s := startFake(t, func(args []string) string { return replies[args[1]] })
	c := dial(t, s)
	do := func(name string) Reply {
		t.Helper()
		r, err := c.Do(context.Background(), "GET", name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	if r := do("simple"); r.Kind != '+' || r.Str != "hello world" || r.Err() != nil {
		t.Errorf("simple: %+v", r)
	}
	if r := do("error"); r.Kind != '-' || r.Str != "WRONGTYPE bad" || r.Err() == nil || r.Err().Error() != "redis: WRONGTYPE bad" {
		t.Errorf("error: %+v err=%v", r, r.Err())
	}
	if r := do("int"); r.Kind != ':' || r.Int != -42 {
		t.Errorf("int: %+v", r)
	}
	if r := do("bulk"); r.Kind != '$' || r.Str != "ab\r\ncd\x00" || r.Nil {
		t.Errorf("bulk: %+v", r)
	}
	if r := do("emptybulk"); r.Kind != '$' || r.Str != "" || r.Nil {
		t.Errorf("emptybulk: %+v", r)
	}
	if r := do("nilbulk"); r.Kind != '$' || !r.Nil {
		t.Errorf("nilbulk: %+v", r)
	}
	if r := do("nilarray"); r.Kind != '*' || !r.Nil {
		t.Errorf("nilarray: %+v", r)
	}
	r := do("array")
	if r.Kind != '*' || len(r.Array) != 3 ||
		r.Array[0].Int != 1 ||
		len(r.Array[1].Array) != 2 || r.Array[1].Array[0].Str != "a" || !r.Array[1].Array[1].Nil ||
		r.Array[2].Str != "z" {
		t.Errorf("array: %+v", r)
	}
}

func TestDoReportsProtocolErrors(t *testing.T) {
	for name, reply := range map[string]string{
		"unknown type":  "!oops\r\n",
		"bad int":       ":12x\r\n",
		"bad length":    "$-5\r\n",
		"no CRLF":       "+PONG\n",
		"bulk overruns": "$2\r\nabcd\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := startFake(t, func([]string) string { return reply })
			c := dial(t, s)
			if _, err := c.Do(context.Background(), "PING"); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Do on %q = %v, want ErrProtocol", reply, err)
			}
		})
	}
}

func TestDoReportsEOFWhenServerCloses(t *testing.T) {
	s := startFake(t, func([]string) string { return "" })
	c := dial(t, s)
	if _, err := c.Do(context.Background(), "PING"); !errors.Is(err, io.EOF) {
		t.Fatalf("Do after server close = %v, want io.EOF", err)
	}
}

// A server that never answers: Do must give up at the ctx deadline (it sets
// it on the socket), not hang.
func TestDoHonoursContextDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startFake(t, func([]string) string { <-release; return "" })
	c := dial(t, s)
	const budget = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, "PING")
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want context.DeadlineExceeded", err)
	}
	if took > budget+2*time.Second {
		t.Fatalf("Do took %v with a %v deadline", took, budget)
	}
}

func TestDoReturnsOnCancelWithoutDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startFake(t, func([]string) string { <-release; return "" })
	c := dial(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.Do(ctx, "PING"); errc <- err }()
	<-s.cmds // the command reached the server; Do is now blocked reading
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Do = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do did not return after cancel")
	}
}

// A deadline from one Do must not linger into the next one.
func TestDoClearsDeadlineForNextCall(t *testing.T) {
	s := startFake(t, func([]string) string { return "+PONG\r\n" })
	c := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cancel() // would poison the socket if the AfterFunc leaked past Do
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("second Ping: %v", err)
	}
	if err := c.NetConn().SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
}

func TestDoRefusesEmptyCommandAndDoneContext(t *testing.T) {
	s := startFake(t, func([]string) string { return "+PONG\r\n" })
	c := dial(t, s)
	if _, err := c.Do(context.Background()); err == nil {
		t.Fatal("Do with no args succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, "PING"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do on a cancelled ctx = %v", err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("conn unusable after refusals: %v", err)
	}
}

func TestDialFailsOnClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if c, err := Dial(context.Background(), "tcp", addr); err == nil {
		c.Close()
		t.Fatal("Dial to a closed port succeeded")
	}
}
