package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/shard"
)

// ShardHandler returns an http.Handler for a sharded pool. Routes, relative
// to where it is mounted:
//
//	GET  /stats            the sharded pool's Stats: one object per shard, with "shard" and "draining"
//	GET  /stats?shard=N    one shard's stats
//	GET  /conns?shard=N    the connections held right now on shard N
//	POST /resize?shard=N   {"min": A, "max": B} → that shard's Resize; either bound may be left out
//	POST /resize           {"shard": "N", "min": A, "max": B}, the same with the shard in the body
//
// Errors are JSON {"error": "..."}: 400 for a missing shard, an unparsable
// body or a shard given twice with different values; 404 for an unknown
// shard; 422 for bounds the shard refuses (its pool's own message, naming
// the shard); 403 for a resize on a ReadOnly handler; 405, 413 and 503 (the
// pool is closed) as for Handler. A refused request changes nothing.
//
// Cost: /stats walks every shard's registry (O(connections)), /conns one
// shard's; neither takes a lock that Acquire takes.
func ShardHandler[T any](p *shard.Pool[T], opts ...Option) http.Handler {
	return newShardHandler(p, opts...)
}

// shardPool is what ShardHandler needs of a *shard.Pool; none of it depends
// on T.
type shardPool interface {
	Stats() shard.Stats
	InUse(shard string) ([]tidepool.HeldConn, error)
	Resize(shard string, min, max int) error
}

type shardHandler struct {
	p    shardPool
	opts options
	// resizeMu serializes POST /resize, so that two one-bound requests for a
	// shard do not read and write the other bound across each other.
	resizeMu sync.Mutex
}

func newShardHandler(p shardPool, opts ...Option) *shardHandler {
	h := &shardHandler{p: p}
	for _, o := range opts {
		o(&h.opts)
	}
	return h
}

func (h *shardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, named := r.URL.Query()["shard"]
	switch r.URL.Path {
	case "/stats":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		s := h.p.Stats()
		if !named {
			writeJSON(w, http.StatusOK, s)
			return
		}
		for _, st := range s.Shards {
			if st.Shard == name[0] {
				writeJSON(w, http.StatusOK, st)
				return
			}
		}
		h.unknown(w, s.Name, name[0])
	case "/conns":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		if !named {
			writeError(w, http.StatusBadRequest, "which shard? want /conns?shard=NAME")
			return
		}
		held, err := h.p.InUse(name[0])
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, heldList(held))
	case "/resize":
		if allow(w, r, http.MethodPost) {
			h.resize(w, r, name)
		}
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path %q; try /stats, /conns?shard=NAME or /resize?shard=NAME", r.URL.Path))
	}
}

func (h *shardHandler) unknown(w http.ResponseWriter, pool, name string) {
	h.fail(w, &shard.Error{Pool: pool, Shard: name, Err: shard.ErrUnknownShard})
}

// fail answers err with the status that says whose fault it is.
func (h *shardHandler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, shard.ErrUnknownShard):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, tidepool.ErrInvalidResize):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, tidepool.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// shardResizeRequest is the body of POST /resize on a ShardHandler.
type shardResizeRequest struct {
	Shard json.RawMessage `json:"shard"`
	Min   json.RawMessage `json:"min"`
	Max   json.RawMessage `json:"max"`
}

func (h *shardHandler) resize(w http.ResponseWriter, r *http.Request, query []string) {
	if h.opts.readOnly {
		writeError(w, http.StatusForbidden, "this admin handler is read-only; resize is disabled")
		return
	}
	body, ok := readMultiBody(w, r)
	if !ok {
		return
	}
	const want = `want a JSON object {"min": N, "max": M}, with the shard in ?shard=NAME or as "shard"`
	var req shardResizeRequest
	if err := decodeMultiBody(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error()+"; "+want)
		return
	}
	name, err := shardName(query, req.Shard)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Min == nil && req.Max == nil {
		writeError(w, http.StatusBadRequest, `neither "min" nor "max" given; `+want)
		return
	}
	minB, err := bound("min", req.Min)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	maxB, err := bound("max", req.Max)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	h.resizeMu.Lock()
	defer h.resizeMu.Unlock()
	s := h.p.Stats()
	var cur *shard.ShardStats
	for i := range s.Shards {
		if s.Shards[i].Shard == name && !s.Shards[i].Draining {
			cur = &s.Shards[i]
		}
	}
	if cur == nil {
		if len(s.Shards) == 0 {
			h.fail(w, fmt.Errorf("shard pool %q: %w", s.Name, tidepool.ErrClosed))
			return
		}
		h.unknown(w, s.Name, name)
		return
	}
	kept := ""
	if minB < 0 {
		minB = cur.MinIdle
		kept = fmt.Sprintf(" (min not given: kept at its current %d)", minB)
	}
	if maxB < 0 {
		maxB = cur.MaxSize
		kept = fmt.Sprintf(" (max not given: kept at its current %d)", maxB)
	}
	if err := h.p.Resize(name, minB, maxB); err != nil {
		if errors.Is(err, tidepool.ErrInvalidResize) {
			writeError(w, http.StatusUnprocessableEntity, err.Error()+kept)
			return
		}
		h.fail(w, err)
		return
	}
	for _, st := range h.p.Stats().Shards {
		if st.Shard == name {
			writeJSON(w, http.StatusOK, st)
			return
		}
	}
	h.unknown(w, s.Name, name) // removed meanwhile
}

// shardName reconciles the shard of ?shard= and of the body's "shard" (a JSON
// string, or an integer for numbered shards).
func shardName(query []string, raw json.RawMessage) (string, error) {
	fromBody, inBody := "", raw != nil
	if inBody {
		if err := json.Unmarshal(raw, &fromBody); err != nil {
			n, err := strconv.ParseUint(string(raw), 10, 32)
			if err != nil {
				return "", fmt.Errorf(`"shard" must be a string or a non-negative integer, got %s`, raw)
			}
			fromBody = strconv.FormatUint(n, 10)
		}
	}
	switch {
	case len(query) > 1:
		return "", errors.New("?shard= given more than once")
	case len(query) == 1 && inBody && query[0] != fromBody:
		return "", fmt.Errorf("shard %q in the query but %q in the body", query[0], fromBody)
	case len(query) == 1:
		return query[0], nil
	case inBody:
		return fromBody, nil
	}
	return "", errors.New(`which shard? give ?shard=NAME or "shard" in the body`)
}

// readMultiBody reads a request body of at most MaxBodyBytes, answering 413 or
// 400 itself when it cannot.
func readMultiBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", MaxBodyBytes))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return nil, false
	}
	return body, true
}

// decodeMultiBody decodes exactly one JSON object with only v's fields.
func decodeMultiBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("empty request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}
