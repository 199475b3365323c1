package metrics

import (
	"errors"
	"expvar"
	"fmt"
	"sync"

	"github.com/tidepool-go/tidepool"
)

// ErrNameTaken is returned by PublishExpvar when an expvar variable of that
// name exists already.
var ErrNameTaken = errors.New("metrics: expvar name already published")

// publishMu makes PublishExpvar's look-then-publish atomic among its callers.
var publishMu sync.Mutex

// PublishExpvar publishes p's Stats as the expvar variable name, an expvar.Func:
// every read of it (GET /debug/vars, expvar.Get(name).String()) takes one
// p.Stats() snapshot, O(connections), and encodes it as the same JSON object
// the admin handler's /stats serves.
//
// expvar.Publish panics on a duplicate name; PublishExpvar instead returns an
// error wrapping ErrNameTaken and publishes nothing. (A caller that publishes
// the same name with expvar.Publish at the same moment can still make one of the
// two panic: expvar offers no atomic publish-if-absent.) expvar has no
// unpublish, so the variable, and with it p, lives as long as the process: after
// p.Close it keeps reporting the closed pool's final Stats, and the name cannot
// be given to a new pool — publish a long-lived pool, or use a fresh name.
func PublishExpvar[T any](name string, p *tidepool.Pool[T]) error {
	publishMu.Lock()
	defer publishMu.Unlock()
	if expvar.Get(name) != nil {
		return fmt.Errorf("%w: %q", ErrNameTaken, name)
	}
	expvar.Publish(name, expvar.Func(func() any { return p.Stats() }))
	return nil
}
