package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"

	"github.com/tidepool-go/tidepool"
)

// MaxBodyBytes is the largest request body the handler reads; a larger one gets
// 413 Request Entity Too Large.
const MaxBodyBytes = 4 << 10

// Option configures a Handler.
type Option func(*options)

type options struct {
	readOnly bool
}

// ReadOnly makes the handler refuse POST /resize and POST /reset with 403
// Forbidden, for exposing the pool's numbers where nobody should change them.
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }

// Handler returns an http.Handler serving the routes listed in the package
// comment for p. Mount it under a prefix with http.StripPrefix:
//
//	mux.Handle("/debug/pool/", http.StripPrefix("/debug/pool", admin.Handler(p)))
//
// The handler guards nothing itself: put it behind whatever authentication the
// service uses for its other operator endpoints, or use ReadOnly.
//
// Cost: GET /stats and GET /conns walk the pool's registry, O(connections),
// without taking any lock that Acquire or Release take. POST /reset costs one
// Pool.Reset and one Stats.
func Handler[T any](p *tidepool.Pool[T], opts ...Option) http.Handler {
	return newHandler(p, opts...)
}

// pool is what the handler needs of a *tidepool.Pool; none of it depends on T.
type pool interface {
	Stats() tidepool.Stats
	InUse() []tidepool.HeldConn
	Resize(min, max int) error
	Reset()
}

func newHandler(p pool, opts ...Option) *handler {
	h := &handler{p: p}
	for _, o := range opts {
		o(&h.opts)
	}
	return h
}

type handler struct {
	p    pool
	opts options
	// resizeMu serializes POST /resize through this handler, so that two
	// requests that each leave one bound out do not read and write the other
	// bound across each other. Held by the request goroutine for one Resize.
	resizeMu sync.Mutex
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/stats":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, h.p.Stats())
		}
	case "/conns":
		if allow(w, r, http.MethodGet, http.MethodHead) {
			writeJSON(w, http.StatusOK, heldList(h.p.InUse()))
		}
	case "/resize":
		if allow(w, r, http.MethodPost) {
			h.resize(w, r)
		}
	case "/reset":
		if allow(w, r, http.MethodPost) {
			h.doReset(w)
		}
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such path %q; try /stats, /conns, /resize or /reset", r.URL.Path))
	}
}

// allow answers 405 with an Allow header unless r's method is one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	list := ""
	for i, m := range methods {
		if i > 0 {
			list += ", "
		}
		list += m
	}
	w.Header().Set("Allow", list)
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, r.URL.Path, list))
	return false
}

// heldList sorts the held connections longest-held first (then by id), and
// makes an empty listing [] rather than null.
func heldList(held []tidepool.HeldConn) []tidepool.HeldConn {
	if held == nil {
		held = []tidepool.HeldConn{}
	}
	sort.Slice(held, func(i, j int) bool {
		if held[i].HeldFor != held[j].HeldFor {
			return held[i].HeldFor > held[j].HeldFor
		}
		return held[i].ID < held[j].ID
	})
	return held
}

// resizeRequest is the body of POST /resize. The fields stay raw so that the
// handler, not encoding/json, says what is wrong with each value.
type resizeRequest struct {
	Min json.RawMessage `json:"min"`
	Max json.RawMessage `json:"max"`
}

func (h *handler) resize(w http.ResponseWriter, r *http.Request) {
	if h.opts.readOnly {
		writeError(w, http.StatusForbidden, "this admin handler is read-only; resize is disabled")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return
	}
	minB, maxB, err := parseResize(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	h.resizeMu.Lock()
	defer h.resizeMu.Unlock()
	kept := ""
	if minB < 0 || maxB < 0 {
		cur := h.p.Stats()
		if minB < 0 {
			minB = cur.MinIdle
			kept = fmt.Sprintf(" (min not given: kept at its current %d)", minB)
		}
		if maxB < 0 {
			maxB = cur.MaxSize
			kept = fmt.Sprintf(" (max not given: kept at its current %d)", maxB)
		}
	}
	switch err := h.p.Resize(minB, maxB); {
	case err == nil:
		writeJSON(w, http.StatusOK, h.p.Stats())
	case errors.Is(err, tidepool.ErrInvalidResize):
		writeError(w, http.StatusUnprocessableEntity, err.Error()+kept)
	case errors.Is(err, tidepool.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// doReset retires every connection of the pool (idle ones now, held ones on
// release) and answers the Stats read after Reset returned. The request body,
// if any, is ignored.
func (h *handler) doReset(w http.ResponseWriter) {
	switch {
	case h.opts.readOnly:
		writeError(w, http.StatusForbidden, "this admin handler is read-only; reset is disabled")
	default:
		h.p.Reset()
		writeJSON(w, http.StatusOK, h.p.Stats())
	}
}

// parseResize reads {"min": N, "max": M}; a bound left out comes back as -1.
func parseResize(body []byte) (minB, maxB int, err error) {
	const want = `want a JSON object {"min": N, "max": M}`
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, 0, errors.New("empty request body; " + want)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req resizeRequest
	if err := dec.Decode(&req); err != nil {
		return 0, 0, fmt.Errorf("invalid JSON body (%s): %v", want, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, 0, errors.New("unexpected data after the JSON object; " + want)
	}
	if req.Min == nil && req.Max == nil {
		return 0, 0, errors.New(`neither "min" nor "max" given; ` + want)
	}
	if minB, err = bound("min", req.Min); err != nil {
		return 0, 0, err
	}
	if maxB, err = bound("max", req.Max); err != nil {
		return 0, 0, err
	}
	return minB, maxB, nil
}

// bound parses one bound: a non-negative JSON integer, or -1 when absent.
func bound(name string, raw json.RawMessage) (int, error) {
	if raw == nil {
		return -1, nil
	}
	s := string(raw)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, fmt.Errorf("%q must be a non-negative integer, got %s", name, s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q is out of range: %s", name, s)
		}
		return 0, fmt.Errorf("%q must be a non-negative integer, got %s", name, s)
	}
	if n < 0 {
		return 0, fmt.Errorf("%q must not be negative, got %d", name, n)
	}
	if n > math.MaxInt32 {
		// Far above any SizeCeiling; refused here so that int conversion is
		// safe on every platform.
		return 0, fmt.Errorf("%q is out of range: %d", name, n)
	}
	return int(n), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
