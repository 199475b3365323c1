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
// The Prometheus metrics, each with the const label pool="<Config.Name>", and
// the field of tidepool.Stats each one exports (one table in table.go drives
// both the collector and a test that fails when a Stats field has no metric):
//
//	metric                                      type       Stats field       meaning
//	tidepool_slots                              gauge      Slots             connections the backend may see: dialing, live, closing
//	tidepool_connections{state="idle"}          gauge      Idle              idle connections, acquirable now
//	tidepool_connections{state="checking"}      gauge      Checking          idle connections under a background health check
//	tidepool_connections{state="in_use"}        gauge      InUse             held connections
//	sum without (state) (tidepool_connections)  query      Total             live connections
//	tidepool_connections_max                    gauge      MaxSize           current MaxSize (after Resize)
//	tidepool_connections_min_idle               gauge      MinIdle           current MinIdle (after Resize)
//	tidepool_connections_max_idle               gauge      MaxIdle           effective idle cap
//	tidepool_connections_size_ceiling           gauge      SizeCeiling       largest MaxSize Resize accepts
//	tidepool_dialing                            gauge      Dialing           dials in flight
//	tidepool_stuck_callbacks{callback="dial"}   gauge      StuckDials        dials past DialTimeout still running
//	tidepool_closing                            gauge      Closing           closes in flight (still holding their slot)
//	tidepool_stuck_callbacks{callback="check"}  gauge      StuckChecks       checks past HealthTimeout still running
//	tidepool_waiting                            gauge      Waiting           Acquires waiting
//	tidepool_pending_shrink                     gauge      PendingShrink     in-use connections above max, closing on release
//	tidepool_acquires_total                     counter    Acquires          successful acquisitions
//	tidepool_waited_acquires_total              counter    WaitedAcquires    acquisitions that had to wait
//	tidepool_canceled_acquires_total            counter    CanceledAcquires  Acquires whose context ended while waiting
//	tidepool_rejected_acquires_total            counter    RejectedAcquires  Acquires refused at once by MaxWaiters
//	tidepool_dials_total                        counter    Dials             connections dialed
//	tidepool_dial_errors_total                  counter    DialErrors        failed dials
//	tidepool_closed_total{reason}               counter    Closed            retired connections, by reason
//	tidepool_health_checks_total                counter    HealthChecks      health checks run
//	tidepool_health_failures_total              counter    HealthFailures    health checks failed
//	tidepool_acquire_checks_total               counter    AcquireChecks     checks on acquire run
//	tidepool_acquire_check_failures_total       counter    AcquireCheckFailures checks on acquire failed
//	tidepool_callback_panics_total              counter    CallbackPanics    user callbacks that panicked
//	tidepool_callback_timeouts_total            counter    CallbackTimeouts  user callbacks past their timeout
//	tidepool_resizes_total                      counter    Resizes           Resize calls adopted
//	tidepool_resets_total                       counter    Resets            Reset calls
//	tidepool_hijacked_total                     counter    Hijacked          connections taken out by Hijack
//	tidepool_leaks_suspected_total              counter    LeaksSuspected    hand-outs held past LeakThreshold
//	tidepool_leaks_held                         gauge      LeaksHeld         such connections still held
//	tidepool_acquire_wait_seconds_bucket        histogram  WaitHistogram     wait of the acquisitions that waited
//	tidepool_acquire_wait_seconds_sum           histogram  WaitDuration      total time they waited, in seconds
//
// The histogram's _count equals tidepool_waited_acquires_total. The total
// wait time is exported once, as the histogram's _sum: a separate counter
// named tidepool_acquire_wait_seconds_total would be the OpenMetrics family
// tidepool_acquire_wait_seconds, the histogram's own name.
//
// The reason label takes every value of tidepool.Reason but "none": lifetime,
// idle, health, shrink, destroyed, close, excess_idle, reset, vetoed,
// late_dial — the same words as the
// reason field of the conn.retired log entry and the JSON names of
// tidepool.ClosedCounts.
package metrics
