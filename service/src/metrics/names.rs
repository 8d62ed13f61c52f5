//! Every metric name of the service, once. Histograms ending in `_seconds` get latency buckets
//! and those ending in `_rows` batch-size buckets (see the parent module).

// Streaming path.
pub const EVENTS_CONSUMED: &str = "fleetscore_events_consumed_total";
pub const EVENTS_IGNORED: &str = "fleetscore_events_ignored_total";
pub const EVENT_LAG: &str = "fleetscore_event_lag_seconds";
pub const CONSUMER_ERRORS: &str = "fleetscore_consumer_errors_total";
pub const PREDICTIONS: &str = "fleetscore_predictions_total";
pub const DEAD_LETTERS: &str = "fleetscore_dead_letters_total";
pub const PRODUCE_FAILURES: &str = "fleetscore_produce_failures_total";
pub const IN_FLIGHT_BATCHES: &str = "fleetscore_in_flight_batches";
pub const BATCH_ROWS: &str = "fleetscore_batch_rows";
/// Where a micro-batch's time goes, by `stage` (`crate::kafka::stages`: `batching`, `apply`,
/// `to_scoring`, `scoring`, `to_output`, `txn_gate`, `produce`).
pub const PIPELINE_STAGE: &str = "fleetscore_pipeline_stage_seconds";

// State changelog, restore and commits.
/// Changelog records and bytes written (one record per aircraft changed since the last commit).
pub const CHANGELOG_RECORDS: &str = "fleetscore_changelog_records_total";
pub const CHANGELOG_BYTES: &str = "fleetscore_changelog_bytes_total";
/// Records and bytes read back from the changelog on assignment, by `partition`.
pub const RESTORE_RECORDS: &str = "fleetscore_restore_records_total";
pub const RESTORE_BYTES: &str = "fleetscore_restore_bytes_total";
/// How long the last restore of a partition took, by `partition` (gauge).
pub const RESTORE_SECONDS: &str = "fleetscore_restore_seconds";
/// Partitions being restored right now (gauge).
pub const RESTORING_PARTITIONS: &str = "fleetscore_restoring_partitions";
/// Commits by `outcome`: `committed`, `aborted`.
pub const COMMITS: &str = "fleetscore_commits_total";
/// One commit: waiting for the outputs, writing the changelog, committing.
pub const COMMIT_DURATION: &str = "fleetscore_commit_seconds";
/// An exactly-once commit's steps, by `step`: `outputs` (from the commit's start until its
/// outputs are acknowledged), `changelog`, `offsets` (`send_offsets_to_transaction`), `commit`
/// (`commit_transaction`).
pub const COMMIT_STEP: &str = "fleetscore_commit_step_seconds";
/// Steps of the pipeline thread that lasted long (`kafka::watchdog`), by `step`.
pub const PIPELINE_STALLS: &str = "fleetscore_pipeline_stalls_total";
/// Producers replaced because a transaction call never returned (`kafka::producer`).
pub const PRODUCER_REPLACEMENTS: &str = "fleetscore_producer_replacements_total";

// Alerts.
/// Alert events by `rule`, `kind` (`raised`, `escalated`, `cleared`) and `severity`.
pub const ALERTS: &str = "fleetscore_alerts_total";
/// Open alert episodes by `rule` and `severity`; rendered from the store at each scrape.
pub const ALERTS_OPEN: &str = "fleetscore_alerts_open";

// Drift (`crate::drift::monitor`), rendered from the monitor at each scrape for the versions
// serving now (a swapped-out version's series disappear), from each window's last evaluation.
/// PSI and Jensen-Shannon distance by `model`, `version`, `feature` (`output`: the model's
/// output).
pub const DRIFT_PSI: &str = "fleetscore_drift_psi";
pub const DRIFT_JS: &str = "fleetscore_drift_js";
/// Rows in the window by `model`, `version` (also while warming up).
pub const DRIFT_WINDOW_ROWS: &str = "fleetscore_drift_window_rows";
/// The worst PSI over the features not excluded, by `model`, `version`: what a `drift` rule
/// watches by default.
pub const DRIFT_WORST_PSI: &str = "fleetscore_drift_worst_psi";
/// The report's level by `model`, `version`: 0 ok, 1 warning, 2 critical.
pub const DRIFT_LEVEL: &str = "fleetscore_drift_level";

// Models.
pub const MODEL_REJECTIONS: &str = "fleetscore_model_rejections_total";
/// A loaded version whose files changed and no longer validate (the loaded model stays).
pub const MODEL_DAMAGED: &str = "fleetscore_model_damaged_total";
/// A models directory that could not be read during a scan (what was loaded stays).
pub const REGISTRY_SCAN_ERRORS: &str = "fleetscore_registry_scan_errors_total";
pub const SHADOW_ABS_DIFF: &str = "fleetscore_shadow_abs_diff";
/// Syncs of model packages from object storage, by `outcome` (`ok`, `error`); whether the
/// last one reached the bucket (1/0), and when one last did (Unix seconds).
pub const MODEL_SYNCS: &str = "fleetscore_model_syncs_total";
pub const MODEL_SYNC_OK: &str = "fleetscore_model_sync_ok";
pub const MODEL_SYNC_LAST_SUCCESS: &str = "fleetscore_model_sync_last_success_seconds";
/// Rendered from the registry at each scrape, not recorded.
pub const MODEL_INFO: &str = "fleetscore_model_info";

// HTTP.
pub const HTTP_REQUESTS: &str = "fleetscore_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "fleetscore_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "fleetscore_http_in_flight";
pub const HTTP_SHED: &str = "fleetscore_http_shed_total";
pub const HTTP_TIMEOUTS: &str = "fleetscore_http_timeouts_total";
/// Requests whose body did not arrive within the request timeout (408).
pub const HTTP_BODY_TIMEOUTS: &str = "fleetscore_http_body_timeouts_total";
/// Open connections (gauge) and the most allowed (gauge, after the file-descriptor cap).
pub const HTTP_CONNECTIONS: &str = "fleetscore_http_connections";
pub const HTTP_MAX_CONNECTIONS: &str = "fleetscore_http_max_connections";
/// Connections closed at once because `max_connections` were open and none was idle.
pub const HTTP_CONNECTIONS_REFUSED: &str = "fleetscore_http_connections_refused_total";
/// Idle keep-alive connections closed to admit a new one, `max_connections` being open.
pub const HTTP_CONNECTIONS_EVICTED: &str = "fleetscore_http_connections_evicted_total";
/// Connections closed by the server for a timeout, by `reason`: `header_timeout`,
/// `idle_timeout`, `send_timeout`.
pub const HTTP_CONNECTIONS_TIMED_OUT: &str = "fleetscore_http_connections_timed_out_total";
/// Errors from `accept`, by `kind` (`too_many_open_files`, `other`...).
pub const HTTP_ACCEPT_ERRORS: &str = "fleetscore_http_accept_errors_total";
/// Open fleet-view streams (`GET /events`), each a page.
pub const HTTP_EVENT_STREAMS: &str = "fleetscore_http_event_streams";
pub const HTTP_BATCH_ROWS: &str = "fleetscore_http_batch_rows";
pub const HTTP_SCORE_ROWS: &str = "fleetscore_http_score_rows";
/// Where a `/score` request's time goes, by `stage`: `wait` (handed to the scoring task or
/// thread until its batch starts), `model` (the backend call, shared by the batch) and
/// `resume` (scored until the request's task runs again). `wait` and `resume` are only
/// recorded for requests handed over (not for those scored on their own worker).
pub const HTTP_SCORE_STAGE: &str = "fleetscore_http_score_stage_seconds";
