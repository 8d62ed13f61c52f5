//! Telemetry: one operating cycle of one engine, with the 21 C-MAPSS sensor channels by name.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{check_finite_in, time, validate_event_id, validate_tail};
use crate::error::{DecodeError, RejectReason};

/// Largest magnitude accepted for a sensor reading (C-MAPSS peaks near 9,300).
const SENSOR_LIMIT: f64 = 1.0e6;
/// Largest magnitude accepted for an operational setting (C-MAPSS: altitude-like up to 42).
const SETTING_LIMIT: f64 = 1.0e5;
/// Cycle numbers run from 1; a million cycles is beyond any airframe's life.
const MAX_CYCLE: u32 = 1_000_000;

macro_rules! sensors {
    ($($field:ident => $name:literal),+ $(,)?) => {
        /// The 21 sensor channels of a C-MAPSS engine, in their conventional order.
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Sensors {
            $(#[serde(rename = $name)] pub $field: f64,)+
        }

        /// Sensor names in column order; the JSON field names of [`Sensors`].
        pub const SENSOR_NAMES: [&str; SENSOR_COUNT] = [$($name),+];

        impl Sensors {
            /// The readings in [`SENSOR_NAMES`] order.
            pub fn to_array(&self) -> [f64; SENSOR_COUNT] {
                [$(self.$field),+]
            }

            /// Builds the struct from readings in [`SENSOR_NAMES`] order.
            pub fn from_array(values: [f64; SENSOR_COUNT]) -> Self {
                let [$($field),+] = values;
                Self { $($field),+ }
            }
        }
    };
}

pub const SENSOR_COUNT: usize = 21;

sensors! {
    t2 => "T2", t24 => "T24", t30 => "T30", t50 => "T50", p2 => "P2", p15 => "P15",
    p30 => "P30", nf => "Nf", nc => "Nc", epr => "epr", ps30 => "Ps30", phi => "phi",
    nrf => "NRf", nrc => "NRc", bpr => "BPR", far_b => "farB", ht_bleed => "htBleed",
    nf_dmd => "Nf_dmd", pcnfr_dmd => "PCNfR_dmd", w31 => "W31", w32 => "W32",
}

/// One operating cycle of one engine of one aircraft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryEvent {
    pub event_id: String,
    pub tail: String,
    /// Engine position on the airframe, 1 to 4.
    pub engine: u8,
    #[serde(with = "time::utc")]
    pub event_time: DateTime<Utc>,
    /// Operating cycle of this engine, from 1, increasing.
    pub cycle: u32,
    /// The three operational settings (altitude, Mach number, throttle resolver angle in C-MAPSS).
    pub settings: [f64; 3],
    pub sensors: Sensors,
}

impl TelemetryEvent {
    pub(crate) fn validate(&self) -> Result<(), DecodeError> {
        validate_event_id(&self.event_id)?;
        validate_tail(&self.tail)?;
        if !(1..=4).contains(&self.engine) {
            return Err(DecodeError::field(
                RejectReason::OutOfRange,
                "engine",
                format!("engine position {} is not 1-4", self.engine),
            ));
        }
        time::check_range("event_time", self.event_time.timestamp_millis())?;
        if !(1..=MAX_CYCLE).contains(&self.cycle) {
            return Err(DecodeError::field(
                RejectReason::OutOfRange,
                "cycle",
                format!("cycle {} is not 1-{MAX_CYCLE}", self.cycle),
            ));
        }
        for value in self.settings {
            check_finite_in("settings", value, SETTING_LIMIT)?;
        }
        for (name, value) in SENSOR_NAMES.iter().zip(self.sensors.to_array()) {
            check_finite_in("sensors", value, SENSOR_LIMIT).map_err(|e| e.with_detail(name))?;
        }
        Ok(())
    }
}
