package puddlesuite

import "context"

// AcquireRaw is puddle's test-only export of its internal acquire (without
// its stats bookkeeping); tidepool has one Acquire.
func (p *Pool[T]) AcquireRaw(ctx context.Context) (*Resource[T], error) {
	return p.Acquire(ctx)
}
