// Package resp is a minimal RESP2 (REdis Serialization Protocol) client used
// by tidepool's Redis integration tests and demo.
//
// It owns one net.Conn per Conn, wrapped in a bufio.Reader and bufio.Writer.
// A Conn is not safe for concurrent use: exactly one goroutine (the pool
// holder that acquired it) calls Do, Ping and Close at a time. tidepool's
// lease guarantees this when a *Conn is pooled.
//
// Only what the tests need is implemented: commands are sent as arrays of
// bulk strings, and the five RESP2 reply kinds are parsed (simple string,
// error, integer, bulk string, array, including nil bulk and nil array).
package resp
