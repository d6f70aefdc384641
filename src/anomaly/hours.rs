//! When an agent usually works: a decaying hour-of-week histogram.

const HOURS_PER_WEEK: usize = 168;
/// Old habits fade over about four weeks.
const TAU_SECONDS: f64 = 28.0 * 86_400.0;
/// Weights grow instead of old bins shrinking (O(1) per update); rescale before f32 loses precision.
const RESCALE_AT: f64 = 1.0e6;
const DAY: f64 = 86_400.0;
const WEEK: f64 = 7.0 * DAY;
/// An hour whose share of activity is below this fraction of an even spread is "off".
const RARE_SHARE: f64 = 0.05;
/// Activity at an unusual hour is suspicious, not damning: it can only support other signals.
pub(crate) const MAX_STRENGTH: f64 = 0.5;

#[derive(Debug, Clone, Copy)]
pub(crate) struct HourHistogram {
    bins: [f32; HOURS_PER_WEEK],
    total: f64,
    origin: f64,
}

impl Default for HourHistogram {
    fn default() -> Self {
        Self {
            bins: [0.0; HOURS_PER_WEEK],
            total: 0.0,
            origin: 0.0,
        }
    }
}

/// What the histogram says about one hour: the share of activity near it, and an even share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HourShare {
    pub(crate) share: f64,
    pub(crate) even: f64,
}

impl HourHistogram {
    pub(crate) fn add(&mut self, now: f64, hour_of_week: u16) {
        let mut weight = ((now - self.origin) / TAU_SECONDS).exp();
        if weight > RESCALE_AT || !weight.is_finite() {
            self.rescale(weight);
            self.origin = now;
            weight = 1.0;
        }
        let bin = usize::from(hour_of_week) % HOURS_PER_WEEK;
        self.bins[bin] += weight as f32;
        self.total += weight;
    }

    fn rescale(&mut self, weight: f64) {
        let factor = if weight.is_finite() {
            1.0 / weight
        } else {
            0.0
        };
        for b in &mut self.bins {
            *b = (f64::from(*b) * factor) as f32;
        }
        self.total *= factor;
    }

    /// The share of activity in the hour and its two neighbours, judged by hour of day once a day
    /// of history exists and by hour of week once a week does; `None` before that.
    pub(crate) fn share(&self, hour_of_week: u16, history: f64) -> Option<HourShare> {
        if self.total <= 0.0 || history < DAY {
            return None;
        }
        let hour = usize::from(hour_of_week) % HOURS_PER_WEEK;
        let by_week = history >= WEEK;
        let mut mass = 0.0;
        for offset in [HOURS_PER_WEEK - 1, 0, 1] {
            let h = (hour + offset) % HOURS_PER_WEEK;
            if by_week {
                mass += f64::from(self.bins[h]);
            } else {
                let hour_of_day = h % 24;
                mass += (0..7)
                    .map(|d| f64::from(self.bins[d * 24 + hour_of_day]))
                    .sum::<f64>();
            }
        }
        let even = if by_week { 3.0 / 168.0 } else { 3.0 / 24.0 };
        Some(HourShare {
            share: mass / self.total,
            even,
        })
    }

    pub(crate) fn strength(share: HourShare) -> f64 {
        let rare = RARE_SHARE * share.even;
        MAX_STRENGTH * (1.0 - share.share / rare).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office_hours(days: u32) -> HourHistogram {
        let mut h = HourHistogram::default();
        for day in 0..days {
            if day % 7 >= 5 {
                continue;
            }
            for hour in 9..17 {
                for minute in 0..6 {
                    let how = (day % 7) * 24 + hour;
                    let now =
                        f64::from(day) * DAY + f64::from(hour) * 3600.0 + f64::from(minute) * 600.0;
                    h.add(now, how as u16);
                }
            }
        }
        h
    }

    #[test]
    fn silent_without_a_day_of_history() {
        let h = office_hours(1);
        assert_eq!(h.share(3, 3600.0), None);
    }

    #[test]
    fn night_is_off_hours_and_office_hours_are_not() {
        let h = office_hours(3);
        let night = h.share(3 * 24 + 3, 3.0 * DAY).map(HourHistogram::strength);
        let noon = h.share(3 * 24 + 12, 3.0 * DAY).map(HourHistogram::strength);
        assert_eq!(night, Some(MAX_STRENGTH));
        assert_eq!(noon, Some(0.0));
    }

    #[test]
    fn weekends_count_once_a_week_is_known() {
        let h = office_hours(10);
        let saturday_noon = 5 * 24 + 12;
        let by_day = h
            .share(saturday_noon, 6.0 * DAY)
            .map(HourHistogram::strength);
        let by_week = h
            .share(saturday_noon, 10.0 * DAY)
            .map(HourHistogram::strength);
        assert_eq!(by_day, Some(0.0), "by hour of day, noon is usual");
        assert_eq!(
            by_week,
            Some(MAX_STRENGTH),
            "by hour of week, Saturday is not"
        );
    }

    #[test]
    fn rescaling_keeps_shares() {
        let mut h = HourHistogram::default();
        h.add(0.0, 10);
        h.add(400.0 * DAY, 10);
        h.add(400.0 * DAY, 20);
        let share = h
            .share(10, 400.0 * DAY)
            .map(|s| s.share)
            .unwrap_or_default();
        assert!((share - 0.5).abs() < 1e-3, "{share}");
        assert!(h.total.is_finite() && h.total < 10.0);
    }
}
