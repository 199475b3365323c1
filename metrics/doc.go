// Package metrics exports a pool's Stats to monitoring systems: a Prometheus
// collector (NewCollector) and a standard-library expvar variable
// (PublishExpvar).
//
// It owns no goroutine and keeps no state besides the metric descriptions.
// Everything runs on the goroutine of whoever reads: Prometheus' registry calls
// Collect on its scrape goroutine, and expvar calls the published function on the
// goroutine serving /debug/vars. Each read takes exactly one Stats snapshot, so
// the numbers of one scrape come from one walk of the pool; Stats costs
// O(connections) and takes no lock that Acquire or Release take, so scraping
// never slows the pool's hot path.
//
// The Prometheus metrics, each with the const label pool="<Config.Name>":
//
//	tidepool_connections{state="idle"|"in_use"}   gauge   live connections by state
//	tidepool_connections_max                      gauge   current MaxSize (after Resize)
//	tidepool_connections_min_idle                 gauge   current MinIdle (after Resize)
//	tidepool_connections_max_idle                 gauge   effective idle cap
//	tidepool_connections_size_ceiling             gauge   largest MaxSize Resize accepts
//	tidepool_dialing                              gauge   dials in flight
//	tidepool_waiting                              gauge   Acquires waiting
//	tidepool_pending_shrink                       gauge   in-use connections above max, closing on release
//	tidepool_acquires_total                       counter successful acquisitions
//	tidepool_waited_acquires_total                counter acquisitions that had to wait
//	tidepool_acquire_wait_seconds_total           counter time those acquisitions waited
//	tidepool_canceled_acquires_total              counter Acquires whose context ended while waiting
//	tidepool_dials_total                          counter connections dialed
//	tidepool_dial_errors_total                    counter failed dials
//	tidepool_closed_total{reason=...}             counter retired connections, by reason
//	tidepool_health_checks_total                  counter health checks run
//	tidepool_health_failures_total                counter health checks failed
//	tidepool_resizes_total                        counter Resize calls adopted
//	tidepool_leaks_suspected_total                counter hand-outs held past LeakThreshold
//	tidepool_leaks_held                           gauge   such connections still held
//	tidepool_acquire_wait_seconds                 histogram wait of the acquisitions that waited
//
// The reason label takes every value of tidepool.Reason but "none": lifetime,
// idle, health, shrink, destroyed, close, excess_idle — the same words as the
// reason field of the conn.retired log entry.
package metrics
