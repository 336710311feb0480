//! Bandwidth limits: a virtual-clock token bucket shared by the threads of one job.
//!
//! Each transfer of `n` bytes books `n / rate` seconds on a virtual clock and waits
//! until its booking ends, so the long-run rate is the limit however the transfers are
//! sized or interleaved; idle time is not saved up beyond a small burst allowance.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: f64,
    next: Mutex<Option<Instant>>,
}

/// How far the virtual clock may lag behind the real one (idle credit).
const BURST: Duration = Duration::from_millis(50);

impl RateLimit {
    /// A limit of `bytes_per_sec` (must be > 0).
    pub fn new(bytes_per_sec: u64) -> RateLimit {
        RateLimit {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            next: Mutex::new(None),
        }
    }

    pub fn rate(&self) -> u64 {
        self.bytes_per_sec as u64
    }

    /// Books `n` bytes; returns the instant the caller may proceed.
    fn book(&self, n: u64) -> Instant {
        let now = Instant::now();
        let mut next = self.next.lock();
        let start = match *next {
            Some(t) if t + BURST > now => t,
            _ => now.checked_sub(BURST).unwrap_or(now),
        };
        let end = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
        *next = Some(end);
        end
    }

    /// Waits (blocking the thread) until `n` more bytes fit the limit.
    pub fn acquire_blocking(&self, n: u64) {
        let until = self.book(n);
        let now = Instant::now();
        if until > now {
            std::thread::sleep(until - now);
        }
    }

    /// Waits (asynchronously) until `n` more bytes fit the limit.
    pub async fn acquire(&self, n: u64) {
        let until = self.book(n);
        tokio::time::sleep_until(until.into()).await;
    }
}

/// Parses a rate such as `50MiB`, `10M`, `512k`, `1.5GiB` (per second) into bytes per
/// second. Units: k/K/KiB = 1024, M/MiB, G/GiB; KB/MB/GB are decimal; no unit = bytes.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate like 50MiB or 512k"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "k" | "K" | "KiB" | "Ki" => 1024.0,
        "KB" | "kB" => 1000.0,
        "m" | "M" | "MiB" | "Mi" => 1024.0 * 1024.0,
        "MB" => 1e6,
        "g" | "G" | "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
        "GB" => 1e9,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}: use k, M or G (binary) or KB, MB, GB"
            ));
        }
    };
    let v = n * mult;
    if !(v >= 1.0 && v.is_finite()) {
        return Err(format!("{s:?} is not a positive rate"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("50MiB").unwrap(), 50 * 1024 * 1024);
        assert_eq!(parse_rate("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_rate("10MB/s").unwrap(), 10_000_000);
        assert_eq!(parse_rate("100").unwrap(), 100);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("5 parsecs").is_err());
    }

    #[test]
    fn booking_advances_the_virtual_clock() {
        // No sleeping: only the bookings are checked.
        let t = RateLimit::new(1000);
        let a = t.book(500);
        let b = t.book(500);
        let gap = b.duration_since(a);
        assert!(
            gap >= Duration::from_millis(499) && gap <= Duration::from_millis(501),
            "{gap:?}"
        );
    }
}
