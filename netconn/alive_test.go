package netconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tidepool-go/tidepool/internal/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns both ends of one connection over network ("tcp" on
// 127.0.0.1, or "unix" in a temporary directory). Both are closed at cleanup.
func pair(t *testing.T, network string) (client, server net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// alive runs Alive with a guard: Alive must not block, so a call that takes
// seconds fails the test instead of hanging it.
func alive(t *testing.T, c net.Conn) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- Alive(context.Background(), c) }()
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Alive blocked")
		return nil
	}
}

// eventually polls Alive until it returns an error (the kernel sees the
// peer's FIN or RST a moment after the peer's Close returns) and returns it.
func eventually(t *testing.T, c net.Conn) error {
	t.Helper()
	var err error
	poll.Until(t, "Alive to see the peer gone", 5*time.Second, func() bool { err = alive(t, c); return err != nil })
	return err
}

var networks = []string{"tcp", "unix"}

func TestAliveReportsPeerCloseAsEOF(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			client, server := pair(t, network)
			if err := alive(t, client); err != nil {
				t.Fatalf("fresh connection: %v", err)
			}
			server.Close()
			err := eventually(t, client)
			if !errors.Is(err, ErrPeerClosed) || !errors.Is(err, io.EOF) {
				t.Fatalf("Alive after peer close = %v, want ErrPeerClosed and io.EOF", err)
			}
		})
	}
}

func TestAliveReportsPeerReset(t *testing.T) {
	client, server := pair(t, "tcp")
	if err := server.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	server.Close() // linger 0: RST instead of FIN
	err := eventually(t, client)
	if !errors.Is(err, ErrPeerReset) || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Alive after peer reset = %v, want ErrPeerReset and ECONNRESET", err)
	}
}

// Alive on a healthy idle connection says so, returns at once, and leaves the
// stream alone: what the peer sends next is read in full by the holder.
func TestAliveOnHealthyIdleConnConsumesNothing(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			client, server := pair(t, network)
			for range 3 {
				if err := alive(t, client); err != nil {
					t.Fatalf("Alive on a healthy idle conn = %v", err)
				}
			}
			if _, err := server.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("read after Alive = %q, %v; want hello", buf, err)
			}
		})
	}
}

// Data waiting on an idle connection is a protocol desync; Alive reports it
// and still does not consume it (plain sockets).
func TestAliveReportsPendingDataWithoutConsumingIt(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			client, server := pair(t, network)
			if _, err := server.Write([]byte("xyz")); err != nil {
				t.Fatal(err)
			}
			if err := eventually(t, client); !errors.Is(err, ErrUnexpectedData) {
				t.Fatalf("Alive with pending data = %v, want ErrUnexpectedData", err)
			}
			if err := alive(t, client); !errors.Is(err, ErrUnexpectedData) {
				t.Fatalf("second Alive = %v: the first one consumed data", err)
			}
			buf := make([]byte, 3)
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "xyz" {
				t.Fatalf("read after Alive = %q, %v; want xyz", buf, err)
			}
		})
	}
}

// The last holder may leave a read deadline that has passed; the runtime then
// refuses raw reads. Alive clears it and still sees the truth.
func TestAliveLooksPastALapsedReadDeadline(t *testing.T) {
	client, server := pair(t, "tcp")
	client.SetReadDeadline(time.Now().Add(-time.Second))
	if err := alive(t, client); err != nil {
		t.Fatalf("Alive with a lapsed deadline = %v, want nil", err)
	}
	server.Close()
	client.SetReadDeadline(time.Now().Add(-time.Second))
	if err := eventually(t, client); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("Alive with a lapsed deadline after close = %v, want ErrPeerClosed", err)
	}
}

func TestAliveRefusesWhatItCannotSee(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := Alive(context.Background(), a); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Alive(net.Pipe) = %v, want ErrUnsupported", err)
	}
	client, _ := pair(t, "tcp")
	client.Close()
	if err := Alive(context.Background(), client); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Alive on a locally closed conn = %v, want net.ErrClosed", err)
	}
	client2, _ := pair(t, "tcp")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Alive(ctx, client2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Alive with a done ctx = %v, want context.Canceled", err)
	}
}

// selfSigned returns a server config with a fresh ECDSA certificate for
// 127.0.0.1 and a client config that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tidepool test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

// tlsPair returns a handshaken TLS connection over 127.0.0.1, with the raw
// server-side TCP connection too (to close it without close_notify).
func tlsPair(t *testing.T, m tlsMode) (client, server *tls.Conn, serverRaw net.Conn) {
	t.Helper()
	scfg, ccfg := selfSigned(t)
	scfg.MaxVersion, ccfg.MaxVersion = m.version, m.version
	if m.tickets {
		// With a session cache the Go client offers resumption, so a TLS
		// 1.3 server sends session tickets. A Go server sends them in its
		// first flight (the client reads them during the handshake) unless
		// it asks for a client certificate: then it sends them after the
		// client's Finished, when the client is done reading, as
		// OpenSSL-based servers (Redis, ...) always do.
		ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		scfg.ClientAuth = tls.RequestClientCert
	}
	c, s := pair(t, "tcp")
	client, server = tls.Client(c, ccfg), tls.Server(s, scfg)
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if m.tickets {
		// Precondition: the tickets are waiting on the raw socket, so the
		// test goes through Alive's TLS drain and not only the peek.
		poll.Until(t, "session tickets on the client socket", 5*time.Second,
			func() bool { return errors.Is(peek(c), ErrUnexpectedData) })
	}
	return client, server, s
}

// tlsMode is one TLS setting the tests run under.
type tlsMode struct {
	version uint16
	tickets bool
}

var tlsModes = map[string]tlsMode{
	"TLS1.2":         {version: tls.VersionTLS12},
	"TLS1.3":         {version: tls.VersionTLS13},
	"TLS1.3+tickets": {version: tls.VersionTLS13, tickets: true},
}

// A TLS 1.3 server may send session tickets right after the handshake; they
// sit unread on the client's socket. Alive must not mistake them for data, and
// must leave later application data readable.
func TestAliveOnHealthyTLSConnIgnoresSessionTicketsAndConsumesNoData(t *testing.T) {
	for name, v := range tlsModes {
		t.Run(name, func(t *testing.T) {
			client, server, _ := tlsPair(t, v)
			for range 3 {
				if err := alive(t, client); err != nil {
					t.Fatalf("Alive on a healthy idle TLS conn = %v", err)
				}
			}
			go server.Write([]byte("hello"))
			buf := make([]byte, 5)
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("read after Alive = %q, %v; want hello", buf, err)
			}
		})
	}
}

func TestAliveDetectsClosedTLSPeer(t *testing.T) {
	for name, v := range tlsModes {
		t.Run(name+"/close_notify", func(t *testing.T) {
			client, server, _ := tlsPair(t, v)
			server.Close() // close_notify, then FIN
			if err := eventually(t, client); !errors.Is(err, ErrPeerClosed) || !errors.Is(err, io.EOF) {
				t.Fatalf("Alive after TLS close = %v, want ErrPeerClosed", err)
			}
		})
		t.Run(name+"/tcp_close", func(t *testing.T) {
			client, _, serverRaw := tlsPair(t, v)
			serverRaw.Close() // FIN without close_notify
			if err := eventually(t, client); !errors.Is(err, ErrPeerClosed) {
				t.Fatalf("Alive after TCP close under TLS = %v, want ErrPeerClosed", err)
			}
		})
		t.Run(name+"/reset", func(t *testing.T) {
			client, _, serverRaw := tlsPair(t, v)
			serverRaw.(*net.TCPConn).SetLinger(0)
			serverRaw.Close()
			if err := eventually(t, client); !errors.Is(err, ErrPeerReset) && !errors.Is(err, ErrPeerClosed) {
				t.Fatalf("Alive after reset under TLS = %v, want ErrPeerReset", err)
			}
		})
	}
}

func TestAliveReportsPendingTLSApplicationData(t *testing.T) {
	for name, v := range tlsModes {
		t.Run(name, func(t *testing.T) {
			client, server, _ := tlsPair(t, v)
			go server.Write([]byte("unsolicited"))
			if err := eventually(t, client); !errors.Is(err, ErrUnexpectedData) {
				t.Fatalf("Alive with pending TLS data = %v, want ErrUnexpectedData", err)
			}
		})
	}
}

func TestConfigDialsTLSAndChecksWithAlive(t *testing.T) {
	scfg, ccfg := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverSide := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(serverSide)
			return
		}
		// Finish the handshake before the test closes the server side:
		// closing with the client's Finished unread would send a RST.
		if err := c.(*tls.Conn).Handshake(); err != nil {
			c.Close()
			close(serverSide)
			return
		}
		serverSide <- c
	}()
	cfg := Config(Options{Address: ln.Addr().String(), TLS: ccfg})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cfg.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close(c)
	tc, ok := c.(*tls.Conn)
	if !ok || !tc.ConnectionState().HandshakeComplete {
		t.Fatalf("Dial returned %T, want a handshaken *tls.Conn", c)
	}
	if err := cfg.Check(ctx, c); err != nil {
		t.Fatalf("Check on a healthy TLS conn: %v", err)
	}
	s, ok := <-serverSide
	if !ok {
		t.Fatal("accept failed")
	}
	s.Close()
	if err := eventually(t, c); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("Check after the server closed = %v, want ErrPeerClosed", err)
	}
}
