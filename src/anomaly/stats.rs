//! Online statistics with O(1) updates and a few words of state each.

/// Exponentially weighted mean and variance of a value.
///
/// The weight of a new sample is `max(1/n, min_alpha)`: a plain average while few samples exist, so
/// a baseline is not dominated by its first values, then an exponential window of about
/// `1/min_alpha` samples that follows slow drift.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EwStats {
    mean: f64,
    var: f64,
    n: u32,
}

impl EwStats {
    pub(crate) fn update(&mut self, x: f64, min_alpha: f64) {
        self.n = self.n.saturating_add(1);
        let alpha = (1.0 / f64::from(self.n)).max(min_alpha);
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
    }

    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }

    pub(crate) fn sd(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }

    pub(crate) fn n(&self) -> u32 {
        self.n
    }
}

/// A fast exponentially weighted moving average, primed by its first sample.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ewma {
    value: f64,
    primed: bool,
}

impl Ewma {
    pub(crate) fn update(&mut self, x: f64, alpha: f64) {
        if self.primed {
            self.value += alpha * (x - self.value);
        } else {
            self.value = x;
            self.primed = true;
        }
    }

    pub(crate) fn value(&self) -> f64 {
        self.value
    }

    pub(crate) fn primed(&self) -> bool {
        self.primed
    }
}

/// A count whose past contributions fade with time constant `tau` seconds: roughly "how many in
/// the last `tau` seconds" without keeping a window of timestamps.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Decayed {
    value: f64,
    at: f64,
}

impl Decayed {
    pub(crate) fn add(&mut self, now: f64, tau: f64, amount: f64) {
        self.value = self.get(now, tau) + amount;
        self.at = now.max(self.at);
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.value == 0.0
    }

    pub(crate) fn get(&self, now: f64, tau: f64) -> f64 {
        let elapsed = (now - self.at).max(0.0);
        self.value * (-elapsed / tau).exp()
    }
}

/// Linear ramp from 0 at `lo` to 1 at `hi`, clamped.
pub(crate) fn ramp(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() {
        return 0.0;
    }
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ew_stats_average_then_window() {
        let mut s = EwStats::default();
        for x in [2.0, 4.0, 6.0] {
            s.update(x, 0.01);
        }
        assert!((s.mean() - 4.0).abs() < 1e-9);
        assert!((s.sd() - (8.0f64 / 3.0).sqrt()).abs() < 1e-9);
        for _ in 0..2000 {
            s.update(10.0, 0.01);
        }
        assert!(
            (s.mean() - 10.0).abs() < 1e-3,
            "follows drift: {}",
            s.mean()
        );
        assert!(s.sd() < 0.1);
    }

    #[test]
    fn ewma_primes_with_first_sample() {
        let mut e = Ewma::default();
        assert!(!e.primed());
        e.update(5.0, 0.5);
        assert_eq!(e.value(), 5.0);
        e.update(7.0, 0.5);
        assert_eq!(e.value(), 6.0);
    }

    #[test]
    fn decayed_count_fades() {
        let mut d = Decayed::default();
        d.add(0.0, 10.0, 1.0);
        d.add(0.0, 10.0, 1.0);
        assert!((d.get(0.0, 10.0) - 2.0).abs() < 1e-9);
        assert!((d.get(10.0, 10.0) - 2.0 / std::f64::consts::E).abs() < 1e-9);
        assert!(d.get(200.0, 10.0) < 1e-6);
    }

    #[test]
    fn ramp_clamps() {
        assert_eq!(ramp(1.0, 2.0, 4.0), 0.0);
        assert_eq!(ramp(3.0, 2.0, 4.0), 0.5);
        assert_eq!(ramp(9.0, 2.0, 4.0), 1.0);
        assert_eq!(ramp(f64::NAN, 2.0, 4.0), 0.0);
    }
}
