//! What the benchmark counts: regular traffic's scores, and each attack's outcome.

use std::collections::BTreeMap;

use warden::anomaly::{AnomalySettings, Score};

use super::attacks::{AttackKind, Outcome};
use super::population::Family;

/// Scores of regular traffic.
#[derive(Default)]
pub struct Normal {
    pub requests: u64,
    pub false_positives: u64,
    pub max_score: f64,
    pub max_by_family: BTreeMap<&'static str, f64>,
    /// The strongest each signal got: how much room is left below the threshold, and where.
    pub max_signal: BTreeMap<&'static str, f64>,
    /// False positives by family and by the signal that led them.
    pub false_by_family: BTreeMap<&'static str, u64>,
    pub false_by_signal: BTreeMap<&'static str, u64>,
}

impl Normal {
    pub fn record(&mut self, family: Family, score: &Score, settings: &AnomalySettings) {
        self.requests += 1;
        if score.value > self.max_score {
            self.max_score = score.value;
        }
        if score.value > 0.0 {
            let max = self.max_by_family.entry(family.name()).or_default();
            *max = max.max(score.value);
        }
        for s in &score.top {
            let max = self.max_signal.entry(s.kind.as_str()).or_default();
            *max = max.max(s.strength);
        }
        if settings.exceeded_by(score.value) {
            self.false_positives += 1;
            *self.false_by_family.entry(family.name()).or_default() += 1;
            let lead = score.top.first().map_or("?", |s| s.kind.as_str());
            *self.false_by_signal.entry(lead).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: Self) {
        self.requests += other.requests;
        self.false_positives += other.false_positives;
        self.max_score = self.max_score.max(other.max_score);
        for (map, theirs) in [
            (&mut self.false_by_family, other.false_by_family),
            (&mut self.false_by_signal, other.false_by_signal),
        ] {
            for (k, v) in theirs {
                *map.entry(k).or_default() += v;
            }
        }
        for (map, theirs) in [
            (&mut self.max_by_family, other.max_by_family),
            (&mut self.max_signal, other.max_signal),
        ] {
            for (k, v) in theirs {
                let max = map.entry(k).or_default();
                *max = max.max(v);
            }
        }
    }

    pub fn per_million(&self) -> f64 {
        self.false_positives as f64 * 1e6 / self.requests.max(1) as f64
    }
}

/// One attack instance's result, with where it ran.
pub struct Trial {
    pub kind: AttackKind,
    pub family: Family,
    pub seed: u64,
    pub outcome: Outcome,
}
