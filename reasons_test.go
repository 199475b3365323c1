package tidepool_test

// Retirement reasons and Stats.Closed's fields must agree. (The log events
// and the README's log schema: TestReadmeLogSchemaMatchesTheEventList.)

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tidepool-go/tidepool"
)

// Every field of ClosedCounts belongs to exactly one Reason of Reasons()
// (ClosedCounts.Of returns that field for it), every Reason to exactly one
// field, and each Reason's name — the log's "reason" field and the metric
// label — is the field's json tag.
func TestEveryClosedCountsFieldHasExactlyOneReasonNamedByItsJSONTag(t *testing.T) {
	reasons := tidepool.Reasons()
	typ := reflect.TypeFor[tidepool.ClosedCounts]()
	if len(reasons) != typ.NumField() {
		t.Errorf("Reasons() has %d reasons, ClosedCounts %d fields", len(reasons), typ.NumField())
	}
	owner := map[tidepool.Reason]string{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		var cc tidepool.ClosedCounts
		reflect.ValueOf(&cc).Elem().Field(i).SetInt(int64(i + 1))
		var found []tidepool.Reason
		for _, r := range reasons {
			if cc.Of(r) == int64(i+1) {
				found = append(found, r)
			} else if cc.Of(r) != 0 {
				t.Errorf("ClosedCounts.Of(%s) = %d with only field %s set", r, cc.Of(r), f.Name)
			}
		}
		if len(found) != 1 {
			t.Errorf("field %s is returned by ClosedCounts.Of for %d reasons %v, want exactly 1", f.Name, len(found), found)
			continue
		}
		r := found[0]
		if prev, dup := owner[r]; dup {
			t.Errorf("reason %s owns fields %s and %s", r, prev, f.Name)
		}
		owner[r] = f.Name
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if r.String() != tag {
			t.Errorf("field %s has json tag %q but its reason is named %q", f.Name, tag, r)
		}
		if cc.Total() != int64(i+1) {
			t.Errorf("ClosedCounts.Total() = %d with only %s = %d", cc.Total(), f.Name, i+1)
		}
	}
	for _, r := range reasons {
		if _, ok := owner[r]; !ok {
			t.Errorf("reason %s has no ClosedCounts field", r)
		}
		if r.String() == "none" || r.String() == "invalid" {
			t.Errorf("Reasons() lists %q", r)
		}
	}
	if slices.ContainsFunc(reasons, func(r tidepool.Reason) bool { return r == 0 }) {
		t.Error("Reasons() lists the zero Reason (none)")
	}
}
