//! Prometheus metrics: the process-wide recorder behind every `metrics::counter!` and
//! `metrics::histogram!` of the service, rendered by `GET /metrics`.
//!
//! Histograms whose name ends in `_seconds` get latency buckets (100 µs to 10 s) and those
//! ending in `_rows` batch-size buckets (1 to 4096); any other histogram is a summary
//! (quantiles). Name new histograms accordingly. Model versions are not kept as series: they
//! are rendered from the registry at each scrape (`fleetscore_model_info`), so a removed
//! version disappears instead of lingering.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub mod names;

use crate::model::Registry;

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];
const ROWS_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// How often histogram storage is compacted when nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder (once per process; later
/// calls return the same handle). If another recorder was installed first, metrics go there
/// and `/metrics` shows only the model information.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_rows".to_owned()), ROWS_BUCKETS)
                })
                .expect("bucket lists are not empty")
        };
        match builder().install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics shows model information only");
                builder().build_recorder().handle()
            }
        }
    })
}

/// Compacts histogram storage; call every [`UPKEEP_INTERVAL`].
pub fn upkeep() {
    install().run_upkeep();
}

/// Everything recorded, plus one `fleetscore_model_info` series per model version the
/// registry knows.
pub fn render(registry: &Registry) -> String {
    let mut text = install().render();
    let info = names::MODEL_INFO;
    let _ = writeln!(
        text,
        "# HELP {info} Model versions known to the registry (value 1), by state.\n\
         # TYPE {info} gauge"
    );
    for status in registry.statuses() {
        let _ = writeln!(
            text,
            "{info}{{model=\"{}\",version=\"{}\",state=\"{}\",backend=\"{}\",sha256=\"{}\",reason=\"{}\"}} 1",
            escape(&status.name),
            escape(&status.version),
            status.state,
            status.backend.unwrap_or(""),
            escape(status.sha256.as_deref().unwrap_or("")),
            escape(status.reason.as_deref().unwrap_or("")),
        );
    }
    text
}

/// Appends a gauge computed at scrape time (not recorded): its `# HELP` and `# TYPE` lines,
/// then one line per series (label pairs, value).
pub fn write_gauge<'a>(
    text: &mut String,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, f64)>,
) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in series {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(text, "{name}{{{}}} {value}", labels.join(","));
    }
}

/// Label value escaping of the text format: backslash, double quote, newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Records one HTTP request: a count by method, route and status, and its latency.
///
/// The series' handles are looked up in the recorder once per thread and kept: a lookup
/// hashes every label, which costs more than the recording itself.
pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    REQUEST_SERIES.with_borrow_mut(|by_route| {
        let series = match by_route.get_mut(route) {
            Some(series) => series,
            None => by_route.entry(route.to_owned()).or_default(),
        };
        let s = find_or_push(
            series,
            |s| s.status == status && s.method == method,
            || RequestSeries::new(method, route, status),
        );
        s.count.increment(1);
        s.duration.record(elapsed.as_secs_f64());
    });
}

/// Records the number of rows one HTTP scoring request had, by model.
pub fn record_score_rows(model: &str, rows: usize) {
    SCORE_ROWS.with_borrow_mut(|by_model| {
        cached(
            by_model,
            model,
            |model| ::metrics::histogram!(names::HTTP_SCORE_ROWS, "model" => model.to_owned()),
        )
        .record(rows as f64);
    });
}

/// The handle of the series labelled `label` among `series`, created with `make` the first
/// time: a recorder lookup hashes every label, which costs more than the recording itself, so
/// hot paths keep their handles (a few labels each: a linear search).
pub fn cached<'a, T>(
    series: &'a mut Vec<(String, T)>,
    label: &str,
    make: impl FnOnce(&str) -> T,
) -> &'a T {
    &find_or_push(
        series,
        |(l, _)| l == label,
        || (label.to_owned(), make(label)),
    )
    .1
}

/// The first of `items` that `is` picks, or a new one from `make`, pushed.
fn find_or_push<T>(items: &mut Vec<T>, is: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> &T {
    let index = match items.iter().position(is) {
        Some(index) => index,
        None => {
            items.push(make());
            items.len() - 1
        }
    };
    &items[index]
}

struct RequestSeries {
    method: String,
    status: u16,
    count: Counter,
    duration: Histogram,
}

impl RequestSeries {
    fn new(method: &str, route: &str, status: u16) -> Self {
        Self {
            method: method.to_owned(),
            status,
            count: ::metrics::counter!(names::HTTP_REQUESTS,
                "method" => method.to_owned(), "route" => route.to_owned(), "status" => status.to_string()),
            duration: ::metrics::histogram!(names::HTTP_REQUEST_DURATION,
                "method" => method.to_owned(), "route" => route.to_owned()),
        }
    }
}

thread_local! {
    /// Route -> the series of that route seen by this thread.
    static REQUEST_SERIES: RefCell<HashMap<String, Vec<RequestSeries>>> = RefCell::new(HashMap::new());
    /// Model -> its `fleetscore_http_score_rows` histogram.
    static SCORE_ROWS: RefCell<Vec<(String, Histogram)>> = const { RefCell::new(Vec::new()) };
}
