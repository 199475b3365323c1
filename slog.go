package tidepool

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// SlogLogger returns a *zap.Logger for Config.Logger that hands every entry to
// l's handler, so that a service logging with log/slog gets the pool's events
// in its own pipeline — same handler, same attributes from l.With, same level
// filter — with one line of configuration:
//
//	cfg.Logger = tidepool.SlogLogger(slog.Default())
//
// The pool keeps logging through zap; each zap entry becomes one slog.Record
// with the same message (the event name) and the same fields, in order:
//   - levels: zap's Debug, Info, Warn and Error become slog.LevelDebug, Info,
//     Warn and Error; DPanic, Panic and Fatal (which tidepool never logs)
//     become LevelError+1, +2 and +3.
//   - fields keep their kind: strings and stringers → string; ints → Int64;
//     uints → Uint64; floats → Float64; bool → Bool; time.Time → Time;
//     time.Duration → Duration; an error → its error value under its key
//     ("error" for zap.Error); zap.Any of other values → Any; zap objects and
//     namespaces → groups.
//   - fields given to With (the pool's "pool" field) go to the handler's
//     WithAttrs once, not with every entry; a zap logger name
//     (Logger.Named) is the attribute "logger", a zap stack trace the
//     attribute "stacktrace".
//
// How a duration looks is the handler's choice: slog.JSONHandler writes an
// integer number of nanoseconds ("took":1500000), slog.TextHandler a Go
// duration string (took=1.5ms). An error appears as its Error() text.
//
// Cost: a level the handler does not enable costs one Handler.Enabled call
// and nothing else — the fields are not converted and nothing allocates. An
// enabled entry costs the conversion of its fields (no allocation beyond the
// ones slog.Record makes for more than five attributes) and the handler's own
// work. The returned logger records no caller; add one with
// SlogLogger(l).WithOptions(zap.AddCaller()) if the handler reports sources.
//
// SlogLogger panics if l is nil.
func SlogLogger(l *slog.Logger) *zap.Logger {
	if l == nil {
		panic("tidepool: SlogLogger called with a nil *slog.Logger; pass one, e.g. slog.Default()")
	}
	return zap.New(&slogCore{h: l.Handler()})
}

// slogCore is a zapcore.Core that writes to a slog.Handler. It is immutable:
// With returns a new core around h.WithAttrs, so any number of goroutines may
// use one.
type slogCore struct {
	h slog.Handler
}

var _ zapcore.Core = (*slogCore)(nil)

// slogLevel maps a zap level to a slog level.
func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError + slog.Level(l-zapcore.ErrorLevel)
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	h := c.h
	var attrs []slog.Attr
	for _, f := range fields {
		if f.Type == zapcore.NamespaceType {
			if len(attrs) > 0 {
				h = h.WithAttrs(attrs) // the handler owns the slice now
				attrs = nil
			}
			h = h.WithGroup(f.Key)
			continue
		}
		attrs = appendSlogAttrs(attrs, f)
	}
	if len(attrs) > 0 {
		h = h.WithAttrs(attrs)
	}
	return &slogCore{h: h}
}

func (c *slogCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *slogCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	var pc uintptr
	if ent.Caller.Defined {
		pc = ent.Caller.PC
	}
	r := slog.NewRecord(ent.Time, slogLevel(ent.Level), ent.Message, pc)
	if ent.LoggerName != "" {
		r.AddAttrs(slog.String("logger", ent.LoggerName))
	}
	for i, f := range fields {
		if f.Type == zapcore.NamespaceType {
			// Everything after a namespace belongs inside it.
			r.AddAttrs(slog.Attr{Key: f.Key, Value: slog.GroupValue(slogAttrs(fields[i+1:])...)})
			break
		}
		if a, ok := slogAttr(f); ok {
			r.AddAttrs(a)
		} else {
			r.AddAttrs(appendSlogAttrs(nil, f)...)
		}
	}
	if ent.Stack != "" {
		r.AddAttrs(slog.String("stacktrace", ent.Stack))
	}
	return c.h.Handle(context.Background(), r)
}

// Sync does nothing: slog handlers have no flush.
func (c *slogCore) Sync() error { return nil }

// slogAttrs converts fields, nesting what follows a namespace in a group.
func slogAttrs(fields []zapcore.Field) []slog.Attr {
	var attrs []slog.Attr
	for i, f := range fields {
		if f.Type == zapcore.NamespaceType {
			return append(attrs, slog.Attr{Key: f.Key, Value: slog.GroupValue(slogAttrs(fields[i+1:])...)})
		}
		attrs = appendSlogAttrs(attrs, f)
	}
	return attrs
}

// slogAttr converts a field of a scalar kind — every kind the pool logs —
// without allocating. ok is false for the other kinds and for skipped fields.
func slogAttr(f zapcore.Field) (a slog.Attr, ok bool) {
	switch f.Type {
	case zapcore.StringType:
		return slog.String(f.Key, f.String), true
	case zapcore.Int64Type, zapcore.Int32Type, zapcore.Int16Type, zapcore.Int8Type:
		return slog.Int64(f.Key, f.Integer), true
	case zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type, zapcore.UintptrType:
		return slog.Uint64(f.Key, uint64(f.Integer)), true
	case zapcore.BoolType:
		return slog.Bool(f.Key, f.Integer == 1), true
	case zapcore.DurationType:
		return slog.Duration(f.Key, time.Duration(f.Integer)), true
	case zapcore.Float64Type:
		return slog.Float64(f.Key, math.Float64frombits(uint64(f.Integer))), true
	case zapcore.Float32Type:
		return slog.Float64(f.Key, float64(math.Float32frombits(uint32(f.Integer)))), true
	case zapcore.TimeType:
		t := time.Unix(0, f.Integer)
		if loc, ok := f.Interface.(*time.Location); ok && loc != nil {
			t = t.In(loc)
		}
		return slog.Time(f.Key, t), true
	case zapcore.TimeFullType:
		return slog.Time(f.Key, f.Interface.(time.Time)), true
	case zapcore.ErrorType:
		// The error value itself: handlers print err.Error(), and a
		// ReplaceAttr or a custom handler can still errors.Is/As it.
		return slog.Any(f.Key, f.Interface), true
	case zapcore.ReflectType:
		return slog.Any(f.Key, f.Interface), true
	}
	return slog.Attr{}, false
}

// appendSlogAttrs appends f's attributes: one for most kinds, several for an
// inline object, none for a skipped field. Kinds that slogAttr does not handle
// go through zap's own map encoder, so they come out as zap would encode them
// (stringers as their String, with panics caught; objects and arrays as
// nested values).
func appendSlogAttrs(attrs []slog.Attr, f zapcore.Field) []slog.Attr {
	if a, ok := slogAttr(f); ok {
		return append(attrs, a)
	}
	switch f.Type {
	case zapcore.SkipType, zapcore.NamespaceType:
		return attrs
	case zapcore.Complex128Type:
		return append(attrs, slog.String(f.Key, formatComplex(f.Interface.(complex128), 128)))
	case zapcore.Complex64Type:
		return append(attrs, slog.String(f.Key, formatComplex(complex128(f.Interface.(complex64)), 64)))
	case zapcore.BinaryType:
		return append(attrs, slog.Any(f.Key, f.Interface))
	}
	enc := zapcore.NewMapObjectEncoder()
	f.AddTo(enc)
	return append(attrs, mapAttrs(enc.Fields)...)
}

// mapAttrs turns a zap map encoder's output into attributes, sorted by key
// (maps have no order); nested objects become groups.
func mapAttrs(m map[string]any) []slog.Attr {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Attr{Key: k, Value: mapValue(m[k])})
	}
	return attrs
}

func mapValue(v any) slog.Value {
	switch v := v.(type) {
	case map[string]any:
		return slog.GroupValue(mapAttrs(v)...)
	case complex128:
		return slog.StringValue(formatComplex(v, 128))
	case complex64:
		return slog.StringValue(formatComplex(complex128(v), 64))
	}
	// ints, uints, floats, strings, bool, time.Time, time.Duration, []byte,
	// and arrays ([]any), which handlers encode element by element.
	return slog.AnyValue(v)
}

// formatComplex writes c as zap's JSON encoder does: 1+2i, no parentheses.
func formatComplex(c complex128, bitSize int) string {
	return strings.Trim(strconv.FormatComplex(c, 'g', -1, bitSize), "()")
}
