package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/failover"
)

// FailoverHandler returns an http.Handler for a failover pool. Routes,
// relative to where it is mounted:
//
//	GET  /stats               the failover Stats: "serving" (primary or secondary), "pinned", switch counts, both sides' stats
//	GET  /conns?side=S        the connections of side S held right now
//	POST /switch              {"to": "secondary"} forces new Acquires to the secondary and keeps them there;
//	                          {"to": "primary"} forces them back and re-arms automatic failover
//	POST /resize?side=S       {"min": A, "max": B} → that side's Resize ("side" may be in the body instead)
//
// /switch and /resize answer 200 with the new Stats. Errors are JSON
// {"error": "..."}: 400 for a missing or unknown side or an unparsable body,
// 422 for bounds the side refuses, 403 for /switch or /resize on a ReadOnly
// handler, 405, 413 and 503 (closed) as for Handler.
func FailoverHandler[T any](p *failover.Pool[T], opts ...Option) http.Handler {
	return newFailoverHandler(p, opts...)
}

// failoverPool is what FailoverHandler needs of a *failover.Pool.
type failoverPool interface {
	Stats() failover.Stats
	InUse(failover.Side) []tidepool.HeldConn
	Resize(s failover.Side, min, max int) error
	SwitchTo(failover.Side) error
}

type failoverHandler struct {
	p    failoverPool
	opts options
	// mu serializes /switch and /resize, so that one-bound resizes and
	// switches do not interleave their read and their write.
	mu sync.Mutex
}

func newFailoverHandler(p failoverPool, opts ...Option) *failoverHandler {
	h := &failoverHandler{p: p}
	for _, o := range opts {
		o(&h.opts)
	}
	return h
}

func (h *failoverHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/stats":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, h.p.Stats())
		}
	case "/conns":
		if !allow(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		side, err := sideOf(r.URL.Query()["side"], nil)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, heldList(h.p.InUse(side)))
	case "/switch":
		if allow(w, r, http.MethodPost) {
			h.switchTo(w, r)
		}
	case "/resize":
		if allow(w, r, http.MethodPost) {
			h.resize(w, r)
		}
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path %q; try /stats, /conns?side=primary, /switch or /resize?side=primary", r.URL.Path))
	}
}

// sideOf reconciles the side of ?side= and of the body's "side".
func sideOf(query []string, raw json.RawMessage) (failover.Side, error) {
	fromBody := ""
	if raw != nil {
		if err := json.Unmarshal(raw, &fromBody); err != nil {
			return 0, fmt.Errorf(`"side" must be "primary" or "secondary", got %s`, raw)
		}
	}
	name := fromBody
	switch {
	case len(query) > 1:
		return 0, errors.New("?side= given more than once")
	case len(query) == 1 && raw != nil && query[0] != fromBody:
		return 0, fmt.Errorf("side %q in the query but %q in the body", query[0], fromBody)
	case len(query) == 1:
		name = query[0]
	case raw == nil:
		return 0, errors.New(`which side? give ?side=primary or ?side=secondary (or "side" in the body)`)
	}
	return failover.ParseSide(name)
}

func (h *failoverHandler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, tidepool.ErrInvalidResize):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, tidepool.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (h *failoverHandler) switchTo(w http.ResponseWriter, r *http.Request) {
	if h.opts.readOnly {
		writeError(w, http.StatusForbidden, "this admin handler is read-only; switching is disabled")
		return
	}
	body, ok := readMultiBody(w, r)
	if !ok {
		return
	}
	var req struct {
		To json.RawMessage `json:"to"`
	}
	if err := decodeMultiBody(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error()+`; want {"to": "primary"} or {"to": "secondary"}`)
		return
	}
	if req.To == nil {
		writeError(w, http.StatusBadRequest, `"to" not given; want {"to": "primary"} or {"to": "secondary"}`)
		return
	}
	side, err := sideOf(nil, req.To)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.p.SwitchTo(side); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.p.Stats())
}

func (h *failoverHandler) resize(w http.ResponseWriter, r *http.Request) {
	if h.opts.readOnly {
		writeError(w, http.StatusForbidden, "this admin handler is read-only; resize is disabled")
		return
	}
	body, ok := readMultiBody(w, r)
	if !ok {
		return
	}
	const want = `want a JSON object {"min": N, "max": M}, with the side in ?side= or as "side"`
	var req struct {
		Side json.RawMessage `json:"side"`
		Min  json.RawMessage `json:"min"`
		Max  json.RawMessage `json:"max"`
	}
	if err := decodeMultiBody(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error()+"; "+want)
		return
	}
	side, err := sideOf(r.URL.Query()["side"], req.Side)
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
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.p.Stats().Primary
	if side == failover.Secondary {
		cur = h.p.Stats().Secondary
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
	if err := h.p.Resize(side, minB, maxB); err != nil {
		if errors.Is(err, tidepool.ErrInvalidResize) {
			writeError(w, http.StatusUnprocessableEntity, err.Error()+kept)
			return
		}
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.p.Stats())
}
