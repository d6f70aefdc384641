//! The printed table: per attack kind, the share detected within budget and the cost of
//! detection; for regular traffic, false positives and the room left below the threshold.

use std::collections::BTreeMap;

use warden::anomaly::AnomalySettings;

use super::attacks::{AttackKind, Budget};
use super::tally::{Normal, Trial};

/// The room regular traffic should leave below the threshold (issue 12's goal): printed, since
/// today's engine does not meet it.
const MARGIN_GOAL: f64 = 0.15;

/// What an attack kind is held to.
pub enum Expected {
    /// Every instance detected within its budget: asserted.
    Met,
    /// Missed today, for `reason`. Asserted only not to fall below `floor`, the share of
    /// instances detected within budget when it was last measured (rounded down), so a partial
    /// detection cannot silently get worse.
    KnownGap { reason: &'static str, floor: f64 },
}

/// One attack kind over every seed and instance.
pub struct KindSummary {
    pub kind: AttackKind,
    pub instances: usize,
    pub within_budget: usize,
    /// Each instance's cost to detect (requests, or seconds for a time budget); `None` = missed.
    costs: Vec<Option<f64>>,
    lowest_peak: f64,
    leads: BTreeMap<&'static str, usize>,
    /// Instances not detected within budget, by family.
    misses: BTreeMap<&'static str, usize>,
}

impl KindSummary {
    pub fn of(kind: AttackKind, trials: &[Trial]) -> Self {
        let mine: Vec<&Trial> = trials.iter().filter(|t| t.kind == kind).collect();
        let cost = |t: &Trial| match kind.budget() {
            Budget::Requests(_) => t.outcome.detected.map(|(n, _)| n as f64),
            Budget::Seconds(_) => t.outcome.detected.map(|(_, secs)| secs),
        };
        let mut leads = BTreeMap::new();
        for t in &mine {
            if let Some(lead) = t.outcome.lead.filter(|_| t.outcome.detected.is_some()) {
                *leads.entry(lead).or_default() += 1;
            }
        }
        let mut misses = BTreeMap::new();
        for t in mine.iter().filter(|t| !t.outcome.within(kind.budget())) {
            *misses.entry(t.family.name()).or_default() += 1;
        }
        Self {
            kind,
            misses,
            instances: mine.len(),
            within_budget: mine
                .iter()
                .filter(|t| t.outcome.within(kind.budget()))
                .count(),
            costs: mine.iter().map(|t| cost(t)).collect(),
            lowest_peak: mine
                .iter()
                .map(|t| t.outcome.peak)
                .fold(f64::INFINITY, f64::min),
            leads,
        }
    }

    pub fn all_within_budget(&self) -> bool {
        self.instances > 0 && self.within_budget == self.instances
    }

    /// Misses sort last, as if they took forever.
    fn sorted_costs(&self) -> Vec<Option<f64>> {
        let mut costs = self.costs.clone();
        costs.sort_by(|a, b| match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        costs
    }

    fn median(&self) -> Option<f64> {
        let costs = self.sorted_costs();
        costs.get((costs.len().max(1) - 1) / 2).copied().flatten()
    }

    fn worst(&self) -> Option<f64> {
        self.sorted_costs().last().copied().flatten()
    }

    fn format_cost(&self, cost: Option<f64>) -> String {
        match (cost, self.kind.budget()) {
            (None, _) => "miss".to_owned(),
            (Some(n), Budget::Requests(_)) => format!("{n:.0}"),
            (Some(secs), Budget::Seconds(_)) => format!("{:.1} min", secs / 60.0),
        }
    }

    fn budget_text(&self) -> String {
        match self.kind.budget() {
            Budget::Requests(n) => format!("{n} req"),
            Budget::Seconds(s) => format!("{:.0} min", s / 60.0),
        }
    }

    fn lead_text(&self) -> String {
        let mut leads: Vec<(&&str, &usize)> = self.leads.iter().collect();
        leads.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let text: Vec<String> = leads.iter().map(|(k, n)| format!("{k} {n}")).collect();
        if text.is_empty() {
            "-".to_owned()
        } else {
            text.join(", ")
        }
    }
}

pub fn print_attacks(summaries: &[(KindSummary, &Expected)]) {
    println!(
        "| attack kind | expected | detected within budget | median to detect | worst | budget | lowest peak score | leading signal at detection |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (s, expected) in summaries {
        let expected = match expected {
            Expected::Met => "detected",
            Expected::KnownGap { .. } => "known gap",
        };
        println!(
            "| {} | {expected} | {}/{} | {} | {} | {} | {:.2} | {} |",
            s.kind.name(),
            s.within_budget,
            s.instances,
            s.format_cost(s.median()),
            s.format_cost(s.worst()),
            s.budget_text(),
            s.lowest_peak,
            s.lead_text(),
        );
    }
}

pub fn print_normal(normal: &Normal, settings: &AnomalySettings) {
    println!(
        "regular traffic: {} requests, {} false positives ({:.2} per million), largest score {:.3} ({:.3} below the threshold {:.2})",
        normal.requests,
        normal.false_positives,
        normal.per_million(),
        normal.max_score,
        settings.threshold - normal.max_score,
        settings.threshold,
    );
    let by_family: Vec<String> = normal
        .max_by_family
        .iter()
        .map(|(f, v)| format!("{f} {v:.3}"))
        .collect();
    println!("largest regular score by family: {}", by_family.join(", "));
    if normal.false_positives > 0 {
        println!(
            "false positives by family: {:?}; by leading signal: {:?}",
            normal.false_by_family, normal.false_by_signal
        );
    }
    let margin = settings.threshold - normal.max_score;
    let verdict = if margin >= MARGIN_GOAL {
        "met"
    } else {
        "not met"
    };
    println!(
        "goal, largest regular score at least {MARGIN_GOAL} below the threshold: {verdict} (margin {margin:.3})"
    );
    let signals: Vec<String> = normal
        .max_signal
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    println!(
        "strongest signals on regular traffic: {}",
        signals.join(", ")
    );
}

pub fn print_gaps(summaries: &[(KindSummary, &Expected)]) {
    for (s, _) in summaries.iter().filter(|(s, _)| !s.misses.is_empty()) {
        let misses: Vec<String> = s.misses.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!(
            "missed within budget, {}, by family: {}",
            s.kind.name(),
            misses.join(", ")
        );
    }
    for (s, expected) in summaries {
        if let Expected::KnownGap { reason, .. } = expected {
            let note = if s.all_within_budget() {
                " -- now detected in every instance: make it `Met`"
            } else {
                ""
            };
            println!("known gap, {}: {reason}{note}", s.kind.name());
        }
    }
}
