//! Repeated errors at a bounded log rate. With an unreachable broker the consumer and the
//! clients' error callbacks report the same errors again and again; the log gets the first one
//! at once, then one line per interval saying how many identical ones were not logged (the
//! metric counts every one).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics::Counter;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Identical errors are logged at most once per this interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Distinct messages remembered at most; beyond, the memory is cleared (a burst of distinct
/// errors is logged in full, which is what an operator wants to see anyway).
const MAX_KINDS: usize = 64;

#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    kinds: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    logged_at: Instant,
    suppressed: u64,
}

impl LogLimit {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: HashMap::new(),
        }
    }

    /// Whether `message`, seen at `now`, is to be logged: `Some(n)` with `n` the identical
    /// messages not logged since the last time, `None` to stay quiet.
    pub fn check(&mut self, message: &str, now: Instant) -> Option<u64> {
        if let Some(seen) = self.kinds.get_mut(message) {
            if now.saturating_duration_since(seen.logged_at) < self.interval {
                seen.suppressed += 1;
                return None;
            }
            let suppressed = std::mem::take(&mut seen.suppressed);
            seen.logged_at = now;
            return Some(suppressed);
        }
        if self.kinds.len() >= MAX_KINDS {
            self.kinds.clear();
        }
        self.kinds.insert(
            message.to_owned(),
            Seen {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

/// A librdkafka client's error callback (broker down, all brokers down, ...), which would
/// otherwise log every one of them: logged once per [`INTERVAL`] per kind of error, with the
/// latest reason, and counted.
#[derive(Debug)]
pub struct ClientErrors {
    /// Which client, in the log: "consumer", "producer", "start-up check".
    client: &'static str,
    limit: Mutex<LogLimit>,
    counter: Option<Counter>,
}

impl ClientErrors {
    /// `counter`: what counts each error, if anything.
    pub fn new(client: &'static str, counter: Option<Counter>) -> Self {
        Self {
            client,
            limit: Mutex::new(LogLimit::new(INTERVAL)),
            counter,
        }
    }

    pub fn report(&self, error: &KafkaError, reason: &str) {
        if let Some(counter) = &self.counter {
            counter.increment(1);
        }
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(client = self.client, %error, reason, "fatal Kafka client error");
            return;
        }
        // The kind of error, not its reason: reasons carry counts ("2/2 brokers are down").
        let kind = error.to_string();
        let logged = self
            .limit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(&kind, Instant::now());
        if let Some(suppressed) = logged {
            tracing::warn!(client = self.client, error = %kind, reason, suppressed, "Kafka client error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_messages_are_logged_once_per_interval_with_the_count_of_the_others() {
        let mut limit = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.check("broker down", t0), Some(0));
        // 45 a second for 9.9 s: all quiet.
        let quiet = (1..=445)
            .map(|i| limit.check("broker down", t0 + Duration::from_millis(i * 22)))
            .filter(Option::is_none)
            .count();
        assert_eq!(quiet, 445);
        // Another error is logged at once, and does not disturb the first one's count.
        assert_eq!(
            limit.check("unknown topic", t0 + Duration::from_secs(5)),
            Some(0)
        );
        assert_eq!(
            limit.check("broker down", t0 + Duration::from_secs(10)),
            Some(445)
        );
        assert_eq!(
            limit.check("broker down", t0 + Duration::from_secs(11)),
            None
        );
        assert_eq!(
            limit.check("broker down", t0 + Duration::from_secs(20)),
            Some(1)
        );
    }

    #[test]
    fn many_distinct_messages_are_all_logged() {
        let mut limit = LogLimit::new(Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..200 {
            assert_eq!(limit.check(&format!("error {i}"), now), Some(0));
        }
    }
}
