// Package admin is the operator's control panel for a running pool: an
// http.Handler that shows a pool's Stats and held connections, resizes it and
// resets it.
//
// It owns no goroutine and no state of its own besides its options. Each request
// runs on the net/http server's goroutine for that request and talks to the pool
// only through its public, concurrency-safe API: Stats, InUse, Resize and
// Reset. Resize returns once the pool's reconcile loop has adopted the new
// bounds, so a 200 from POST /resize means the pool is working toward them
// (the Stats in the answer may still show it on its way); likewise a 200 from
// POST /reset means idle connections are retiring and held ones will on
// release.
//
// Routes, relative to wherever the handler is mounted:
//
//	GET  /stats   the pool's Stats as JSON
//	GET  /conns   the connections held right now, as a JSON list
//	POST /resize  {"min": N, "max": M} → Resize(N, M); either may be left out
//	POST /reset   Reset(): retire every connection (credential rotation, a
//	              failover); answers the Stats after it
//
// Errors are JSON objects {"error": "..."} with a status that says whose fault
// it is: 400 for a body the handler cannot parse (bad JSON, unknown fields,
// values that are not non-negative integers), 422 for bounds the pool refuses
// (min > max, max above SizeCeiling; the pool's own error text), 403 for a
// resize or reset on a read-only handler, 404, 405 (with an Allow header), 413
// for a body over MaxBodyBytes, and 503 once the pool is closed. A refused
// request changes nothing.
package admin
