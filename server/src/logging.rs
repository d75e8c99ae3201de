//! Logging helpers the running server shares between protocols. Setting up
//! the subscriber and the daemon's own trace export is the binary's job
//! (`modelwatch`'s `logging` module); this crate only emits `tracing` events.

/// A log line that may repeat thousands of times a second (every refused
/// connection, every 503 under overload): [`RateLimited::permit`] lets one
/// through per interval and says how many were held back since; the
/// metrics count every occurrence.
#[derive(Debug)]
pub struct RateLimited {
    interval_ms: u64,
    /// Milliseconds since [`EPOCH`] of the last line let through, plus one
    /// (0: never).
    last: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

static EPOCH: std::sync::LazyLock<std::time::Instant> =
    std::sync::LazyLock::new(std::time::Instant::now);

impl RateLimited {
    pub const fn new(interval: std::time::Duration) -> Self {
        Self {
            interval_ms: interval.as_millis() as u64,
            last: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when this occurrence may
    /// be logged, `None` when it is held back.
    pub fn permit(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        let now = EPOCH.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Acquire);
        if last != 0 && now.saturating_sub(last) < self.interval_ms
            || self
                .last
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_lines_pass_once_per_interval_and_count_the_rest() {
        let limit = RateLimited::new(std::time::Duration::from_secs(3600));
        assert_eq!(limit.permit(), Some(0));
        for _ in 0..5 {
            assert_eq!(limit.permit(), None);
        }
        let every = RateLimited::new(std::time::Duration::ZERO);
        assert_eq!(every.permit(), Some(0));
        assert_eq!(every.permit(), Some(0));
    }
}
