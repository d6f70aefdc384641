//! ABAC conditions (`when:`): every listed attribute must hold.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::clock::UtcMoment;
use crate::net::canonical_ip;

/// A `when` block as written: every listed attribute must hold.
#[derive(Debug, Clone, Default)]
pub struct WhenSpec {
    pub source_cidrs: Vec<String>,
    pub hours_utc: Option<String>,
    pub weekdays: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// A compiled `when` block.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    source_cidrs: Vec<IpNet>,
    /// Minutes since midnight UTC: `[start, end)`, wrapping past midnight when start > end.
    hours: Option<(u16, u16)>,
    /// Bit N set = weekday N allowed (0 = Monday); 0 = any day.
    weekdays: u8,
    headers: Vec<(HeaderName, Box<str>)>,
    labels: Vec<(Box<str>, Box<str>)>,
}

/// Why a `when` block was not met, for `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmet {
    SourceCidr,
    Hours,
    Weekday,
    Header,
    Label,
}

impl Unmet {
    pub fn as_str(self) -> &'static str {
        match self {
            Unmet::SourceCidr => "source address outside source_cidrs",
            Unmet::Hours => "time outside hours_utc",
            Unmet::Weekday => "day outside weekdays",
            Unmet::Header => "a required header is absent or different",
            Unmet::Label => "a required agent label is absent or different",
        }
    }
}

/// Parses `HH:MM-HH:MM` into minutes since midnight.
pub fn parse_hours(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.trim().split_once('-')?;
    Some((parse_hhmm(a)?, parse_hhmm(b)?))
}

fn parse_hhmm(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    // 24:00 is allowed as an end of day.
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// Parses `mon`..`sun` into 0..6.
pub fn parse_weekday(text: &str) -> Option<u8> {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    days.iter()
        .position(|d| d.eq_ignore_ascii_case(text.trim()))
        .map(|i| i as u8)
}

/// Parses a CIDR or a bare address (as a host route).
pub fn parse_cidr(text: &str) -> Option<IpNet> {
    let t = text.trim();
    t.parse::<IpNet>()
        .ok()
        .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Condition {
    /// Compiles a validated `when` block; anything unparsable (already refused by validation)
    /// makes the condition unsatisfiable rather than permissive.
    pub fn compile(w: &WhenSpec) -> Self {
        let mut c = Condition::default();
        for cidr in &w.source_cidrs {
            match parse_cidr(cidr) {
                Some(net) => c.source_cidrs.push(net),
                // An address no request can come from: fail closed.
                None => c.source_cidrs.push(IpNet::from(IpAddr::from([0, 0, 0, 0]))),
            }
        }
        if let Some(h) = &w.hours_utc {
            c.hours = Some(parse_hours(h).unwrap_or((0, 0)));
        }
        for d in &w.weekdays {
            // An unknown day name leaves bit 7 set alone, which matches no day: fail closed.
            c.weekdays |= parse_weekday(d).map(|i| 1u8 << i).unwrap_or(0x80);
        }
        c.headers = compile_pairs(&w.headers)
            .filter_map(|(k, v)| {
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                    .ok()
                    .map(|n| (n, v))
            })
            .collect();
        c.labels = compile_pairs(&w.labels)
            .map(|(k, v)| (k.into(), v))
            .collect();
        c
    }

    /// The first unmet attribute, or `None` when every one holds.
    pub fn check(
        &self,
        source_ip: IpAddr,
        moment: &UtcMoment,
        headers: &HeaderMap,
        labels: &BTreeMap<String, String>,
    ) -> Option<Unmet> {
        let ip = canonical_ip(source_ip);
        if !self.source_cidrs.is_empty() && !self.source_cidrs.iter().any(|n| n.contains(&ip)) {
            return Some(Unmet::SourceCidr);
        }
        if let Some((start, end)) = self.hours {
            let m = moment.minute_of_day;
            let inside = if start <= end {
                m >= start && m < end
            } else {
                m >= start || m < end
            };
            if !inside {
                return Some(Unmet::Hours);
            }
        }
        if self.weekdays != 0 && self.weekdays & (1 << moment.weekday) == 0 {
            return Some(Unmet::Weekday);
        }
        for (name, want) in &self.headers {
            let mut values = headers.get_all(name).iter();
            // Exactly one value, equal: a second copy of the header must not satisfy the rule.
            let ok = matches!((values.next(), values.next()), (Some(v), None) if v.as_bytes() == want.as_bytes());
            if !ok {
                return Some(Unmet::Header);
            }
        }
        for (k, want) in &self.labels {
            if labels.get(k.as_ref()).map(|v| v.as_str()) != Some(want.as_ref()) {
                return Some(Unmet::Label);
            }
        }
        None
    }
}

fn compile_pairs(map: &BTreeMap<String, String>) -> impl Iterator<Item = (String, Box<str>)> + '_ {
    map.iter().map(|(k, v)| (k.clone(), v.as_str().into()))
}

#[cfg(test)]
mod tests;
