package fleet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"text/tabwriter"
)

// Handler returns an http.Handler with the fleet view of m, for an operator's
// admin endpoint. GET returns m.Stats() as JSON; GET with ?format=text returns
// the same as a table (one line per member: id, demand, in use, waiting,
// claim, fair share). Other methods get 405. Mount it next to the pool's own
// admin handler, e.g.
//
//	mux.Handle("/debug/fleet", fleet.Handler(m))
//
// It only reads; put it behind the service's operator authentication all
// the same. Cost: one Stats call, O(members).
func Handler(m *Member) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "fleet: only GET is served here", http.StatusMethodNotAllowed)
			return
		}
		s := m.Stats()
		if r.URL.Query().Get("format") == "text" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			writeTable(w, s)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s)
	})
}

func writeTable(w http.ResponseWriter, s Stats) {
	fmt.Fprintf(w, "fleet %s: budget %d, claimed %d, %d members, floor %d\n", s.Fleet, s.Budget, s.Claimed, s.Members, s.MinPerMember)
	fmt.Fprintf(w, "this member %s: grant %d, claim %d, share %d, demand %d, slots %d, fenced %v\n\n",
		s.Member, s.Grant, s.Claim, s.Target, s.Demand, s.Slots, s.Fenced)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "member\tdemand\tin use\twaiting\tclaim\tshare\t")
	for _, v := range s.View {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", v.ID, v.Demand, v.InUse, v.Waiting, v.Claim, v.Share)
	}
	_ = tw.Flush()
}
