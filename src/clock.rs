//! Time as warden sees it. Wall-clock time decides `hours_utc`, `weekdays`, certificate expiry and
//! token validity; it is read through [`Clock`] so tests and `explain --time` can set it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock source: the system's, or a fixed/advanced one in tests.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    fixed_ms: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Clock { fixed_ms: None }
    }

    /// A clock that stands at `unix_ms` until [`Clock::advance_ms`] moves it.
    pub fn fixed(unix_ms: i64) -> Self {
        Clock {
            fixed_ms: Some(Arc::new(AtomicI64::new(unix_ms))),
        }
    }

    pub fn advance_ms(&self, ms: i64) {
        if let Some(f) = &self.fixed_ms {
            f.fetch_add(ms, Ordering::Relaxed);
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_unix_ms(&self) -> i64 {
        match &self.fixed_ms {
            Some(f) => f.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        }
    }
}

/// `unix_ms` as a UTC date-time (for timestamps in records and the admin API).
pub fn utc_datetime(unix_ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The UTC calendar facts that ABAC conditions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcMoment {
    pub unix_ms: i64,
    /// Minutes since midnight UTC, 0..1440.
    pub minute_of_day: u16,
    /// 0 = Monday .. 6 = Sunday.
    pub weekday: u8,
}

impl UtcMoment {
    pub fn from_unix_ms(unix_ms: i64) -> Self {
        let secs = unix_ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let minute_of_day = (secs.rem_euclid(86_400) / 60) as u16;
        // 1970-01-01 was a Thursday (3 when Monday is 0).
        let weekday = ((days + 3).rem_euclid(7)) as u8;
        UtcMoment {
            unix_ms,
            minute_of_day,
            weekday,
        }
    }

    /// Hour of the week, 0 = Monday 00h .. 167.
    pub fn hour_of_week(&self) -> u16 {
        self.weekday as u16 * 24 + self.minute_of_day / 60
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        // 2026-11-25T18:45:00Z is a Wednesday.
        let m = UtcMoment::from_unix_ms(1_795_632_300_000);
        assert_eq!(m.weekday, 2);
        assert_eq!(m.minute_of_day, 18 * 60 + 45);
        assert_eq!(m.hour_of_week(), 2 * 24 + 18);
        let epoch = UtcMoment::from_unix_ms(0);
        assert_eq!(epoch.weekday, 3);
    }

    #[test]
    fn fixed_clock_advances() {
        let c = Clock::fixed(1000);
        c.advance_ms(500);
        assert_eq!(c.now_unix_ms(), 1500);
    }
}
