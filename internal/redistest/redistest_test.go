package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartedServerAnswersAndRunsWithoutPersistence(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for param, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1"} {
		r, err := s.Do(ctx, "CONFIG", "GET", param)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Array) != 2 || r.Array[1].Str != want {
			t.Errorf("CONFIG GET %s = %+v, want %q", param, r.Array, want)
		}
	}
}

func TestExtraArgsReachTheServer(t *testing.T) {
	s := Start(t, "--maxclients", "7")
	r, err := s.Do(context.Background(), "CONFIG", "GET", "maxclients")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Array) != 2 || r.Array[1].Str != "7" {
		t.Fatalf("maxclients = %+v, want 7", r.Array)
	}
}

func TestRestartKeepsThePortAndDropsData(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := s.Addr()
	if _, err := s.Do(ctx, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Restart()
	if s.Addr() != addr || !s.Running() {
		t.Fatalf("after Restart: addr %s running %v, want %s running", s.Addr(), s.Running(), addr)
	}
	if err := c.Ping(ctx); err == nil {
		t.Fatal("a connection from before the restart still works")
	}
	r, err := s.Do(ctx, "GET", "k")
	if err != nil || !r.Nil {
		t.Fatalf("GET after restart = %+v, %v; want nil (no persistence)", r, err)
	}
}

func TestStoppedServerRefusesConnections(t *testing.T) {
	s := Start(t)
	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Do(ctx, "PING"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("PING to a stopped server = %v, want connection refused", err)
	}
	s.Stop() // idempotent
	s.Start()
	if _, err := s.Do(ctx, "PING"); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
}
