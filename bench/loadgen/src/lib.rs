//! What the end-to-end benchmark's two tools share: the load generator (`fleet-loadgen`,
//! `main.rs`) and the live reader of the predictions (`fleet-visible`, `visible.rs`).

/// CPU seconds this process has used (user + system), from `/proc/self/stat` (Linux; clock
/// ticks of 1/100 s); `None` where that cannot be read.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn this_process_has_spent_some_cpu() {
        let busy_until = Instant::now() + Duration::from_millis(30);
        let mut spins = 0u64;
        while Instant::now() < busy_until {
            spins = spins.wrapping_add(1);
        }
        assert!(spins > 0);
        let cpu = cpu_seconds().expect("readable /proc/self/stat");
        assert!(cpu > 0.0 && cpu < 3600.0, "{cpu}");
    }
}
