// Package netconn pools net.Conn connections with tidepool: Config builds a
// tidepool.Config[net.Conn] that dials TCP or unix sockets (optionally with
// TLS) and checks idle connections with Alive.
//
// Alive is the interesting part. It asks the kernel, without blocking and
// without consuming anything, whether the peer has closed or reset an idle
// connection: one non-blocking recvfrom(MSG_PEEK|MSG_DONTWAIT) on the
// socket's descriptor through syscall.RawConn. That costs one system call and
// no network round trip, so it suits any protocol, including ones with no
// ping. What it can and cannot see (notably under TLS) is listed on Alive and
// in docs/connections.md.
//
// Goroutines: the package starts none. Dial runs in the pool's dial goroutine;
// Alive runs in the connection's watcher goroutine while the pool has the
// connection in its "checking" state, so no holder uses the connection at the
// same time. Alive must not be called on a connection another goroutine is
// reading from.
package netconn
