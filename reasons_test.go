package tidepool_test

// The tables that must agree with each other: retirement reasons and
// Stats.Closed's fields, and the log events and the README's log schema.

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tidepool-go/tidepool"
	"github.com/tidepool-go/tidepool/internal/event"
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

// readmeLogSchema returns the events listed in README.md's "## Log schema"
// section: the first cell of each table row of the form "| `event.name` |".
func readmeLogSchema(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatalf("reading the README: %v", err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Log schema\n")
	if !ok {
		t.Skip("README.md has no \"## Log schema\" section yet: the schema test needs the table of events there")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var events []string
	for _, line := range strings.Split(section, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "| `")
		if !ok {
			continue
		}
		name, _, ok := strings.Cut(rest, "` |")
		if ok && !strings.ContainsAny(name, " `") {
			events = append(events, name)
		}
	}
	return events
}

// Every event the pool logs (internal/event.All) is a row of the README's log
// schema table, and every row there is an event the pool logs.
func TestReadmeLogSchemaListsExactlyTheEvents(t *testing.T) {
	documented := readmeLogSchema(t)
	if len(documented) == 0 {
		t.Fatal("README.md's log schema section has no rows of the form | `event.name` |")
	}
	for _, e := range event.All {
		if !slices.Contains(documented, e) {
			t.Errorf("event %q is logged but not in README.md's log schema", e)
		}
	}
	for _, e := range documented {
		if !slices.Contains(event.All, e) {
			t.Errorf("README.md's log schema lists %q, which is not an event in internal/event", e)
		}
	}
	seen := map[string]bool{}
	for _, e := range documented {
		if seen[e] {
			t.Errorf("README.md's log schema lists %q twice", e)
		}
		seen[e] = true
	}
}
