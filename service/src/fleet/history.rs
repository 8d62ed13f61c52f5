//! An aircraft's recent predictions, per model, oldest first: what the tail page's trends
//! draw. Bounded (`[fleet_view] history_points` per model), in memory only: the changelog does
//! not carry it, so after a restart or a rebalance an aircraft's trend starts again from its
//! next prediction.

use std::collections::VecDeque;

use crate::prediction::Prediction;

/// One prediction, compactly: 40 bytes (the flight label, for schedule events, apart).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub event_time_ms: i64,
    pub value: f32,
    /// The interval's bounds; NaN without one.
    pub lower: f32,
    pub upper: f32,
    /// Index into the series' versions.
    version: u16,
    pub label: Option<Box<str>>,
}

/// One model's recent predictions for one aircraft.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub model: String,
    /// The versions that produced points, in the order they first did.
    versions: Vec<String>,
    pub points: VecDeque<Point>,
}

impl Series {
    /// The version of the model that produced `point`.
    pub fn version_of(&self, point: &Point) -> &str {
        self.versions
            .get(usize::from(point.version))
            .map_or("", String::as_str)
    }

    fn version_index(&mut self, version: &str) -> u16 {
        if let Some(i) = self.versions.iter().position(|v| v == version) {
            return i as u16;
        }
        // Versions no point refers to any more are dropped before one is added.
        let used: Vec<u16> = self.versions_in_use();
        if self.versions.len() >= usize::from(u16::MAX) || used.len() < self.versions.len() {
            self.compact(&used);
        }
        self.versions.push(version.to_owned());
        (self.versions.len() - 1) as u16
    }

    fn versions_in_use(&self) -> Vec<u16> {
        let mut used: Vec<u16> = self.points.iter().map(|p| p.version).collect();
        used.sort_unstable();
        used.dedup();
        used
    }

    fn compact(&mut self, used: &[u16]) {
        let versions = std::mem::take(&mut self.versions);
        let mut renumber = vec![0u16; versions.len()];
        for (new, &old) in used.iter().enumerate() {
            renumber[usize::from(old)] = new as u16;
            self.versions.push(versions[usize::from(old)].clone());
        }
        for point in &mut self.points {
            point.version = renumber[usize::from(point.version)];
        }
    }
}

/// Every model's recent predictions for one aircraft.
#[derive(Debug, Clone, Default)]
pub struct Recent {
    series: Vec<Series>,
}

impl Recent {
    /// Keeps `prediction` (of the event labelled `label`), dropping its series' oldest point
    /// beyond `capacity`. A capacity of 0 keeps nothing.
    pub fn push(&mut self, capacity: usize, prediction: &Prediction, label: Option<&str>) {
        if capacity == 0 {
            return;
        }
        let at = match self
            .series
            .iter()
            .position(|s| *s.model == *prediction.model)
        {
            Some(at) => at,
            None => {
                self.series.push(Series {
                    model: prediction.model.to_string(),
                    ..Series::default()
                });
                self.series.len() - 1
            }
        };
        let series = &mut self.series[at];
        while series.points.len() >= capacity {
            series.points.pop_front();
        }
        let version = series.version_index(&prediction.model_version);
        let (lower, upper) = prediction
            .interval
            .as_ref()
            .map_or((f32::NAN, f32::NAN), |i| (i.lower, i.upper));
        series.points.push_back(Point {
            event_time_ms: prediction.event_time.timestamp_millis(),
            value: prediction.prediction,
            lower,
            upper,
            version,
            label: label.map(Box::from),
        });
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::interval::Interval;

    fn time_of(ms: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn prediction(model: &str, version: &str, t: i64, value: f32) -> Prediction {
        Prediction {
            schema: crate::prediction::PREDICTION_SCHEMA.into(),
            tail: "N1".to_owned(),
            source_event_id: format!("e{t}"),
            event_time: time_of(t * 1000),
            model: model.into(),
            model_version: version.into(),
            model_sha256: "".into(),
            feature_set: "engine-health".into(),
            feature_set_version: "x".into(),
            prediction: value,
            interval: (model == "rul").then(|| Interval {
                level: 0.8,
                lower: value - 1.0,
                upper: value + 1.0,
                lower_model: "p10/1".to_owned(),
                upper_model: "p90/1".to_owned(),
            }),
            scored_at: time_of(0),
        }
    }

    #[test]
    fn keeps_the_newest_points_per_model_with_their_versions() {
        let mut recent = Recent::default();
        for t in 0..10 {
            let version = if t < 7 { "1" } else { "2" };
            recent.push(4, &prediction("rul", version, t, t as f32), None);
            recent.push(4, &prediction("risk", "1", t, 0.5), Some("UA1 EWR→IAH"));
        }
        let [rul, risk] = recent.series() else {
            panic!("two series")
        };
        let times: Vec<i64> = rul.points.iter().map(|p| p.event_time_ms / 1000).collect();
        assert_eq!(times, [6, 7, 8, 9]);
        let versions: Vec<&str> = rul.points.iter().map(|p| rul.version_of(p)).collect();
        assert_eq!(versions, ["1", "2", "2", "2"]);
        assert_eq!((rul.points[3].lower, rul.points[3].upper), (8.0, 10.0));
        assert!(risk.points.iter().all(|p| p.lower.is_nan()));
        assert_eq!(risk.points[0].label.as_deref(), Some("UA1 EWR→IAH"));
    }

    #[test]
    fn versions_no_point_uses_are_dropped() {
        let mut recent = Recent::default();
        for v in 0..100 {
            recent.push(2, &prediction("rul", &v.to_string(), v, 1.0), None);
        }
        let series = &recent.series()[0];
        assert!(series.versions.len() <= 3, "{:?}", series.versions);
        let versions: Vec<&str> = series.points.iter().map(|p| series.version_of(p)).collect();
        assert_eq!(versions, ["98", "99"]);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut recent = Recent::default();
        recent.push(0, &prediction("rul", "1", 1, 1.0), None);
        assert!(recent.series().is_empty());
    }
}
