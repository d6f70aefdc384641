//! Behaviour of the whole engine, one signal at a time, with simulated time.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use super::*;

const IP_A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const IP_B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

/// A regular agent: one request per `gap` seconds, three endpoints cycling, ids varying.
struct Sim {
    agent: AgentBehaviour,
    peers: Option<Arc<PeerGroup>>,
    settings: AnomalySettings,
    now: f64,
    n: u64,
}

struct Req {
    upstream: &'static str,
    method: &'static str,
    path: String,
    status: u16,
    denied: bool,
    bytes_out: u64,
    ip: IpAddr,
    serial: &'static str,
    /// The MCP tool of a `tools/call`.
    tool: Option<&'static str>,
}

impl Sim {
    fn new() -> Self {
        let settings = AnomalySettings {
            learning_period: Duration::from_secs(600),
            ..AnomalySettings::default()
        };
        Self {
            agent: AgentBehaviour::new(),
            peers: None,
            settings,
            now: 0.0,
            n: 0,
        }
    }

    fn normal(&self) -> Req {
        let shapes = [
            "/inventory/items/",
            "/inventory/stock/",
            "/inventory/orders/",
        ];
        let shape = shapes[(self.n % 3) as usize];
        Req {
            upstream: "inventory",
            method: "GET",
            path: format!("{shape}{}", 1000 + self.n * 7 % 97),
            status: 200,
            denied: false,
            bytes_out: 2000 + (self.n * 37 % 400),
            ip: IP_A,
            serial: "01",
            tool: None,
        }
    }

    fn send(&mut self, req: &Req, gap: f64) -> Score {
        self.now += gap;
        self.n += 1;
        let obs = Observation {
            upstream: req.upstream,
            method: req.method,
            path: &req.path,
            status: req.status,
            denied: req.denied,
            bytes_in: 100,
            bytes_out: req.bytes_out,
            source_ip: req.ip,
            cert_serial: req.serial,
            now: Duration::from_secs_f64(self.now),
            hour_of_week: 10 + ((self.now / 3600.0) as u16 % 8),
        };
        let ctx = ObservationContext {
            tool: req.tool,
            peers: self.peers.as_ref(),
        };
        self.agent.observe_with(&obs, &ctx, &self.settings)
    }

    /// Steady behaviour with a little deterministic jitter; returns the highest score seen.
    fn steady(&mut self, requests: u64) -> f64 {
        let mut max = 0.0f64;
        for i in 0..requests {
            let req = self.normal();
            let gap = 2.0 * (0.6 + 0.8 * ((i * 7919 % 101) as f64 / 100.0));
            max = max.max(self.send(&req, gap).value);
        }
        max
    }

    /// Requests made by `make` until the score crosses the threshold; `None` if it never does.
    fn until_alarm(
        &mut self,
        limit: u64,
        gap: f64,
        make: impl Fn(&Sim, u64) -> Req,
    ) -> Option<u64> {
        (1..=limit).find(|&i| {
            let req = make(self, i);
            let score = self.send(&req, gap).value;
            self.settings.exceeded_by(score)
        })
    }

    fn learned() -> Self {
        let mut sim = Self::new();
        let max = sim.steady(1000);
        assert_eq!(max, 0.0, "steady behaviour never scores");
        assert!(!sim.agent.snapshot().learning);
        sim
    }
}

fn top_kind(score: &Score) -> Option<SignalKind> {
    score.top.first().map(|s| s.kind)
}

#[test]
fn silent_while_learning_even_when_wild() {
    let mut sim = Sim::new();
    for i in 0..200 {
        let mut req = sim.normal();
        req.path = format!("/scan/{i}/x{i}");
        req.ip = if i % 2 == 0 { IP_A } else { IP_B };
        req.status = if i % 3 == 0 { 404 } else { 200 };
        let score = sim.send(&req, 0.01);
        assert_eq!(score.value, 0.0);
        assert!(score.top.is_empty());
    }
    let report = sim.agent.snapshot();
    assert!(report.learning, "600s have not passed");
    assert_eq!(report.requests, 200);
}

#[test]
fn a_new_identity_refused_on_path_after_path_is_flagged_while_learning() {
    let mut sim = Sim::new();
    let alarm = sim.until_alarm(30, 20.0, |s, i| {
        let mut req = s.normal();
        if i % 2 == 0 {
            req.path = format!("/inventory/admin{i}/backup");
            req.status = 403;
            req.denied = true;
        }
        req
    });
    assert!(alarm.is_some_and(|n| n <= 30), "{alarm:?}");
    assert!(sim.agent.snapshot().learning);
    assert_eq!(
        top_kind(&sim.agent.current()),
        Some(SignalKind::RefusedPaths)
    );
}

#[test]
fn a_new_agent_refused_on_its_own_few_endpoints_is_not_flagged() {
    // A workload whose permissions are not granted yet: refused on everything it uses.
    let mut sim = Sim::new();
    for _ in 0..200 {
        let req = Req {
            status: 403,
            denied: true,
            ..sim.normal()
        };
        assert_eq!(sim.send(&req, 2.0).value, 0.0);
    }
}

#[test]
fn learning_needs_both_time_and_requests() {
    let mut sim = Sim::new();
    let req = sim.normal();
    sim.send(&req, 0.0);
    sim.send(&req, 700.0);
    assert!(
        sim.agent.snapshot().learning,
        "the period passed but only two requests were seen"
    );
}

#[test]
fn disabled_engine_scores_nothing() {
    let mut sim = Sim::learned();
    sim.settings.enabled = false;
    let alarm = sim.until_alarm(100, 0.01, |s, i| Req {
        path: format!("/x{i}/y"),
        ..s.normal()
    });
    assert_eq!(alarm, None);
}

#[test]
fn enumeration_of_new_paths() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(30, 2.0, |s, i| Req {
        path: format!("/probe{i}/admin"),
        ..s.normal()
    });
    assert!(alarm.is_some_and(|n| n <= 10), "{alarm:?}");
    assert!(sim
        .agent
        .current()
        .top
        .iter()
        .any(|s| s.kind == SignalKind::Enumeration));
}

#[test]
fn a_single_new_shape_is_not_an_alarm() {
    let mut sim = Sim::learned();
    let mut req = sim.normal();
    req.path = "/inventory/reports/2024".to_owned();
    let score = sim.send(&req, 2.0);
    assert_eq!(top_kind(&score), Some(SignalKind::NewPathShape));
    assert!(score.value < 0.5, "{}", score.value);
    assert!(sim.steady(50) < sim.settings.threshold);
}

#[test]
fn new_upstream_and_method() {
    let mut sim = Sim::learned();
    let req = Req {
        upstream: "payroll",
        method: "DELETE",
        ..sim.normal()
    };
    let score = sim.send(&req, 2.0);
    let kinds: Vec<_> = score.top.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SignalKind::NewUpstream,
            SignalKind::NewMethod,
            SignalKind::NewPathShape
        ]
    );
    assert!(
        score.value > 0.8,
        "three first uses at once: {}",
        score.value
    );
}

#[test]
fn rate_burst() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(40, 0.2, |s, _| s.normal());
    assert!(alarm.is_some_and(|n| n <= 30), "{alarm:?}");
    assert_eq!(top_kind(&sim.agent.current()), Some(SignalKind::Rate));
    let detail = &sim.agent.snapshot().signals[0].detail;
    assert!(
        detail.starts_with("rate ") && detail.contains("vs usual 0.5/s"),
        "{detail}"
    );
}

#[test]
fn a_modest_speedup_is_normal() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(300, 1.0, |s, _| s.normal());
    assert_eq!(alarm, None, "twice the usual rate is within habits");
}

#[test]
fn bytes_out_spike() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(30, 2.0, |s, _| {
        let r = s.normal();
        Req {
            bytes_out: r.bytes_out * 20,
            ..r
        }
    });
    assert!(alarm.is_some_and(|n| n <= 10), "{alarm:?}");
    assert_eq!(top_kind(&sim.agent.current()), Some(SignalKind::BytesOut));
}

#[test]
fn denial_burst() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(30, 2.0, |s, _| Req {
        status: 403,
        denied: true,
        bytes_out: 60,
        ..s.normal()
    });
    assert!(alarm.is_some_and(|n| n <= 10), "{alarm:?}");
    assert_eq!(
        top_kind(&sim.agent.current()),
        Some(SignalKind::DenialBurst)
    );
}

#[test]
fn upstream_errors_alone_only_support() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(100, 2.0, |s, _| Req {
        status: 500,
        bytes_out: 50,
        ..s.normal()
    });
    assert_eq!(alarm, None);
    let score = sim.agent.current();
    assert_eq!(top_kind(&score), Some(SignalKind::ErrorRate));
    assert!(score.value >= 0.45, "{}", score.value);
}

#[test]
fn clone_from_two_addresses() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(30, 1.0, |s, i| Req {
        ip: if i % 2 == 0 { IP_A } else { IP_B },
        ..s.normal()
    });
    assert!(alarm.is_some_and(|n| n <= 6), "{alarm:?}");
    assert_eq!(top_kind(&sim.agent.current()), Some(SignalKind::Clone));
}

#[test]
fn clone_from_two_certificates() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(30, 1.0, |s, i| Req {
        serial: if i % 2 == 0 { "01" } else { "02" },
        ..s.normal()
    });
    assert!(alarm.is_some_and(|n| n <= 6), "{alarm:?}");
}

#[test]
fn moving_to_a_new_address_is_not_a_clone() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(100, 2.0, |s, _| Req {
        ip: IP_B,
        serial: "02",
        ..s.normal()
    });
    assert_eq!(alarm, None);
}

#[test]
fn score_decays_back_to_normal_and_baseline_did_not_absorb() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(30, 2.0, |s, _| {
        let r = s.normal();
        Req {
            bytes_out: r.bytes_out * 20,
            ..r
        }
    });
    assert!(alarm.is_some());
    for _ in 0..200 {
        let r = sim.normal();
        sim.send(
            &Req {
                bytes_out: r.bytes_out * 20,
                ..r
            },
            2.0,
        );
    }
    assert!(
        sim.agent.current().value > 0.8,
        "a sustained attack stays flagged"
    );
    sim.steady(300);
    let after = sim.agent.current();
    assert!(after.value < 0.1, "back to normal: {}", after.value);
    assert!(after.top.is_empty());
}

#[test]
fn held_score_decays_with_time() {
    let mut sim = Sim::learned();
    sim.until_alarm(30, 1.0, |s, i| Req {
        ip: if i % 2 == 0 { IP_A } else { IP_B },
        ..s.normal()
    });
    let now = Duration::from_secs_f64(sim.now);
    let peak = sim.agent.score_at(now);
    assert!(peak > 0.8);
    let later = sim.agent.score_at(now + Duration::from_secs(300));
    assert!(later < peak / 20.0, "{later}");
}

#[test]
fn off_hours_after_a_day_of_history() {
    let sim = Sim::new();
    // Three office days, 09h-17h, one request a minute.
    for day in 0..3u64 {
        for minute in 0..(8 * 60) {
            let now = (day * 86_400 + 9 * 3600 + minute * 60) as f64;
            let how = (day * 24 + 9 + minute / 60) as u16;
            let req = sim.normal();
            let obs = observation(&req, now, how);
            assert!(sim.agent.observe(&obs, &sim.settings).value < 0.5);
        }
    }
    let req = sim.normal();
    let night = observation(&req, (3 * 86_400 + 3 * 3600) as f64, 3 * 24 + 3);
    let score = sim.agent.observe(&night, &sim.settings);
    assert_eq!(top_kind(&score), Some(SignalKind::OffHours));
    assert!(
        (0.4..0.8).contains(&score.value),
        "suspicious, not damning: {}",
        score.value
    );
}

fn observation(req: &Req, now: f64, hour_of_week: u16) -> Observation<'_> {
    Observation {
        upstream: req.upstream,
        method: req.method,
        path: &req.path,
        status: req.status,
        denied: req.denied,
        bytes_in: 0,
        bytes_out: req.bytes_out,
        source_ip: req.ip,
        cert_serial: req.serial,
        now: Duration::from_secs_f64(now),
        hour_of_week,
    }
}

#[test]
fn per_agent_memory_is_a_few_kib() {
    let size = std::mem::size_of::<AgentBehaviour>();
    println!("AgentBehaviour: {size} bytes");
    assert!(size < 6656, "{size} bytes");
    // No heap of its own: its peer group is shared (an Arc).
    let group = std::mem::size_of::<PeerGroup>() + PeerGroup::FEATURE_BYTES;
    println!("PeerGroup: {group} bytes");
    assert!(group < 20 * 1024, "{group} bytes");
}

#[test]
fn report_serialises_with_reasons() {
    let mut sim = Sim::learned();
    sim.until_alarm(30, 2.0, |s, _| {
        let r = s.normal();
        Req {
            bytes_out: r.bytes_out * 20,
            ..r
        }
    });
    let json = serde_json::to_value(sim.agent.snapshot()).unwrap_or_default();
    assert_eq!(json["learning"], false);
    assert_eq!(json["signals"][0]["signal"], "bytes_out");
    let detail = json["signals"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("responses ") && detail.contains("KiB vs usual 2.2 KiB"),
        "{detail}"
    );
}

#[test]
fn settings_defaults() {
    let s = AnomalySettings::default();
    assert!(s.enabled);
    assert_eq!(s.threshold, 0.8);
    assert_eq!(s.quarantine_for, Duration::from_secs(900));
}

/// An MCP agent: every request is a `tools/call` on `POST /mcp`, one of its usual tools.
const USUAL_TOOLS: [&str; 4] = ["search_docs", "get_ticket", "add_comment", "list_tickets"];
const OTHER_TOOLS: [&str; 6] = [
    "delete_repo",
    "export_customers",
    "read_secret",
    "create_user",
    "run_query",
    "send_email",
];

impl Sim {
    fn tool_call(&self, tool: &'static str) -> Req {
        Req {
            upstream: "tickets",
            method: "POST",
            path: "/mcp".to_owned(),
            bytes_out: 1500 + (self.n * 37 % 400),
            tool: Some(tool),
            ..self.normal()
        }
    }

    fn usual_tool_call(&self) -> Req {
        // Irregular order, uneven use: the agent's habits, not a cycle.
        let pick = (self.n * 7919 % 13) as usize;
        self.tool_call(USUAL_TOOLS[[0, 0, 0, 1, 1, 1, 2, 2, 3, 0, 1, 2, 3][pick]])
    }

    fn mcp_learned() -> Self {
        let mut sim = Self::new();
        for i in 0..1000u64 {
            let req = sim.usual_tool_call();
            let gap = 2.0 * (0.6 + 0.8 * ((i * 7919 % 101) as f64 / 100.0));
            assert_eq!(sim.send(&req, gap).value, 0.0);
        }
        assert!(!sim.agent.snapshot().learning);
        sim
    }

    fn mcp_steady(&mut self, requests: u64) -> f64 {
        (0..requests)
            .map(|i| {
                let req = self.usual_tool_call();
                let gap = 2.0 * (0.6 + 0.8 * ((i * 7919 % 101) as f64 / 100.0));
                self.send(&req, gap).value
            })
            .fold(0.0, f64::max)
    }
}

#[test]
fn mcp_agent_calling_tools_it_never_used_is_flagged() {
    let mut sim = Sim::mcp_learned();
    let alarm = sim.until_alarm(12, 2.0, |s, i| {
        s.tool_call(OTHER_TOOLS[(i as usize - 1) % OTHER_TOOLS.len()])
    });
    assert!(alarm.is_some_and(|n| n <= 5), "{alarm:?}");
    let report = sim.agent.snapshot();
    let new_tool = report
        .signals
        .iter()
        .find(|s| s.signal == SignalKind::NewTool);
    let new_tool = new_tool.map(|s| (s.subject.as_deref(), s.detail.as_str()));
    assert!(
        new_tool.is_some_and(
            |(subject, detail)| subject.is_some_and(|t| OTHER_TOOLS.contains(&t))
                && detail.contains("tools never used before")
        ),
        "{:?}",
        report.signals
    );
}

#[test]
fn one_rare_tool_is_not_an_alarm_and_is_named() {
    let mut sim = Sim::mcp_learned();
    let req = sim.tool_call("export_customers");
    let score = sim.send(&req, 2.0);
    assert!(score.value < 0.5, "{}", score.value);
    let top = score.top.first().copied();
    assert_eq!(top.map(|s| s.kind), Some(SignalKind::NewTool));
    assert_eq!(
        top.map(|s| s.subject.to_string()).as_deref(),
        Some("export_customers")
    );
    let detail = &sim.agent.snapshot().signals[0].detail;
    assert_eq!(detail, "first call of tool export_customers");
    assert!(sim.mcp_steady(200) < sim.settings.threshold);
}

#[test]
fn denied_tool_calls_burst() {
    let mut sim = Sim::mcp_learned();
    let alarm = sim.until_alarm(30, 2.0, |s, _| Req {
        status: 403,
        denied: true,
        bytes_out: 90,
        ..s.usual_tool_call()
    });
    assert!(alarm.is_some_and(|n| n <= 10), "{alarm:?}");
    let top = top_kind(&sim.agent.current());
    assert!(
        matches!(top, Some(SignalKind::ToolDenials | SignalKind::DenialBurst)),
        "{top:?}"
    );
}

#[test]
fn tool_call_rate() {
    // Two tool calls in a row every twenty requests; the rest read over plain HTTP.
    let mut sim = Sim::new();
    for i in 0..3000u64 {
        let req = if i % 20 < 2 {
            sim.usual_tool_call()
        } else {
            sim.normal()
        };
        let gap = 2.0 * (0.6 + 0.8 * ((i * 7919 % 101) as f64 / 100.0));
        assert_eq!(sim.send(&req, gap).value, 0.0);
    }
    // Then every request is a tool call, at the same request rate: only the tool-call rate moved.
    let alarm = sim.until_alarm(40, 2.0, |s, _| s.usual_tool_call());
    assert!(alarm.is_some_and(|n| n <= 30), "{alarm:?}");
    let score = sim.agent.current();
    assert_eq!(top_kind(&score), Some(SignalKind::ToolRate), "{score:?}");
    assert!(!has_signal(&score, SignalKind::Rate), "{score:?}");
    let report = sim.agent.snapshot();
    let detail = report
        .signals
        .iter()
        .find(|s| s.signal == SignalKind::ToolRate)
        .map(|s| s.detail.as_str())
        .unwrap_or_default();
    assert!(
        detail.starts_with("tool calls ") && detail.contains("vs usual 0.1/s"),
        "{detail}"
    );
}

fn has_signal(score: &Score, kind: SignalKind) -> bool {
    score.top.iter().any(|s| s.kind == kind)
}

#[test]
fn mass_access_under_a_known_shape() {
    // A poller: ten requests a second over three shapes, always the same few objects.
    let mut sim = Sim::new();
    for i in 0..8000u64 {
        let mut req = sim.normal();
        req.path = format!("/inventory/items/{}", 1000 + i % 5);
        let gap = 0.1 * (0.6 + 0.8 * ((i * 7919 % 101) as f64 / 100.0));
        assert!(sim.send(&req, gap).value < 0.5);
    }
    // Then, at the same pace, an object never read before on every request.
    let alarm = sim.until_alarm(60, 0.1, |s, i| Req {
        path: format!("/inventory/items/{}", 50_000 + i),
        ..s.normal()
    });
    assert!(alarm.is_some_and(|n| n <= 40), "{alarm:?}");
    // Every object is new to it as well, which may tell first.
    let score = sim.agent.current();
    assert!(
        matches!(
            top_kind(&score),
            Some(SignalKind::MassAccess | SignalKind::NewObjects)
        ),
        "{score:?}"
    );
}

/// A scrape of a shape the agent never used: caught first by the shape being new to it (first
/// use, then working on it alone); this sends `n` such reads and returns the strongest
/// mass-access signal seen, and the first alarm.
fn scrape_new_shape(sim: &mut Sim, n: u64) -> (Option<Signal>, Option<u64>) {
    let mut mass: Option<Signal> = None;
    let mut alarm = None;
    for i in 1..=n {
        let req = Req {
            path: format!("/public/items/{}", 70_000 + i * 13),
            ..sim.normal()
        };
        let score = sim.send(&req, 0.05);
        if sim.settings.exceeded_by(score.value) {
            alarm.get_or_insert(i);
        }
        for s in score
            .top
            .iter()
            .filter(|s| s.kind == SignalKind::MassAccess)
        {
            if mass.is_none_or(|m| m.strength < s.strength) {
                mass = Some(*s);
            }
        }
    }
    (mass, alarm)
}

#[test]
fn mass_access_under_a_new_shape() {
    let mut sim = Sim::learned();
    let (mass, alarm) = scrape_new_shape(&mut sim, 60);
    assert!(alarm.is_some_and(|n| n <= 30), "{alarm:?}");
    assert!(mass.is_some_and(|m| m.strength > 0.5), "{mass:?}");
}

#[test]
fn rereading_known_objects_is_not_mass_access() {
    let mut sim = Sim::learned();
    for i in 0..300u64 {
        let req = Req {
            path: format!("/inventory/items/{}", 1000 + i % 2),
            ..sim.normal()
        };
        let score = sim.send(&req, 0.05);
        assert!(!has_signal(&score, SignalKind::MassAccess), "{score:?}");
    }
}

#[test]
fn mass_access_says_what_it_compared() {
    let mut sim = Sim::learned();
    let (mass, _) = scrape_new_shape(&mut sim, 60);
    let detail = mass.map(|s| s.detail()).unwrap_or_default();
    assert!(
        detail.starts_with("read ")
            && detail.contains(" distinct items under /public/items/* in 10 s; usually "),
        "{detail}"
    );
    assert_eq!(
        mass.map(|s| s.subject.to_string()).as_deref(),
        Some("/public/items/*")
    );
}

/// `n` established agents of one role, each with the steady habits of [`Sim::normal`]; with
/// `also`, every fourth of their requests reads under that path too.
fn peer_group(n: usize, also: Option<&str>) -> Arc<PeerGroup> {
    let group = Arc::new(PeerGroup::new("roles:inventory-agent".into()));
    for _ in 0..n {
        let mut sim = Sim::new();
        sim.peers = Some(group.clone());
        for i in 0..1000u64 {
            let mut req = sim.normal();
            if let Some(also) = also.filter(|_| i % 4 == 0) {
                req.path = format!("{also}{}", 2000 + i);
            }
            let gap = 2.0 * (0.6 + 0.8 * ((i * 7919 % 101) as f64 / 100.0));
            assert_eq!(sim.send(&req, gap).value, 0.0);
        }
    }
    group
}

fn newcomer(group: &Arc<PeerGroup>) -> Sim {
    let mut sim = Sim::new();
    sim.peers = Some(group.clone());
    sim
}

#[test]
fn a_new_agent_is_judged_by_its_peers_from_its_first_request() {
    let group = peer_group(5, None);
    assert_eq!(group.members(), 5);
    let mut sim = newcomer(&group);
    let req = Req {
        upstream: "payroll",
        method: "DELETE",
        path: "/payroll/salaries/1".to_owned(),
        ..sim.normal()
    };
    let score = sim.send(&req, 2.0);
    let report = sim.agent.snapshot();
    assert!(report.learning && report.judged_by_peers);
    assert!(
        sim.settings.exceeded_by(score.value),
        "first request: {score:?}"
    );
    assert_eq!(top_kind(&score), Some(SignalKind::NewUpstream));
    assert_eq!(
        report.peers.map(|p| (p.members, p.lends_baseline)),
        Some((5, true))
    );
}

#[test]
fn a_new_agent_that_behaves_like_its_peers_is_quiet() {
    let group = peer_group(5, None);
    let mut sim = newcomer(&group);
    let max = sim.steady(400);
    assert!(max < 0.1, "{max}");
    assert!(sim.agent.snapshot().judged_by_peers || !sim.agent.snapshot().learning);
    // Probing from its first requests is not free either.
    let mut sim = newcomer(&group);
    sim.steady(5);
    let alarm = sim.until_alarm(30, 2.0, |s, _| Req {
        status: 403,
        denied: true,
        ..s.normal()
    });
    assert!(alarm.is_some_and(|n| n <= 10), "{alarm:?}");
}

#[test]
fn a_role_of_one_agent_lends_no_baseline() {
    // The only agent of its role: once established it teaches the group, which still lends it
    // nothing (it is not its own peer), nor to a newcomer while it is alone.
    let group = peer_group(1, None);
    let mut sim = newcomer(&group);
    let req = Req {
        upstream: "payroll",
        method: "DELETE",
        path: "/payroll/salaries/1".to_owned(),
        ..sim.normal()
    };
    assert_eq!(sim.send(&req, 2.0).value, 0.0);
    let report = sim.agent.snapshot();
    assert!(report.learning && !report.judged_by_peers);
    assert_eq!(report.peers.map(|p| p.lends_baseline), Some(false));

    let mut alone = Sim::learned();
    alone.peers = Some(Arc::new(PeerGroup::new("roles:solo".into())));
    alone.steady(100);
    let mut plain = Sim::learned();
    let shape = |s: &Sim| Req {
        path: "/inventory/reports/2024".to_owned(),
        ..s.normal()
    };
    let (a, b) = (shape(&alone), shape(&plain));
    assert_eq!(
        alone.send(&a, 2.0).value,
        plain.send(&b, 2.0).value,
        "judged as if it had no group"
    );
}

#[test]
fn established_agent_new_to_itself_and_its_peers_weighs_more() {
    let new_shape = |s: &Sim| Req {
        path: "/inventory/reports/2024".to_owned(),
        ..s.normal()
    };
    let score_in = |group: Option<Arc<PeerGroup>>| {
        let mut sim = Sim::new();
        sim.peers = group;
        assert_eq!(sim.steady(1000), 0.0);
        let req = new_shape(&sim);
        sim.send(&req, 2.0)
    };
    let alone = score_in(None);
    let peers_never = score_in(Some(peer_group(5, None)));
    let peers_do = score_in(Some(peer_group(5, Some("/inventory/reports/"))));
    assert_eq!(top_kind(&alone), Some(SignalKind::NewPathShape));
    assert!(
        peers_never.value > alone.value && alone.value > peers_do.value,
        "new to both {} > new to itself {} > new to itself only, peers use it {}",
        peers_never.value,
        alone.value,
        peers_do.value
    );
}

impl Sim {
    /// One of the three usual shapes, picked by `order` from the request count.
    fn in_order(&self, order: impl Fn(u64) -> usize) -> Req {
        let shapes = [
            "/inventory/items/",
            "/inventory/stock/",
            "/inventory/orders/",
        ];
        Req {
            path: format!("{}{}", shapes[order(self.n)], 1000 + self.n * 7 % 97),
            ..self.normal()
        }
    }
}

/// Pseudo-random, uneven: items half the time, stock a third, orders the rest.
fn shuffled(n: u64) -> usize {
    match n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58 {
        0..=31 => 0,
        32..=52 => 1,
        _ => 2,
    }
}

#[test]
fn same_endpoints_in_a_never_seen_order_are_flagged() {
    // Learned: items, stock, orders, items, ... Then: items, orders, stock, items, ...
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(30, 2.0, |s, _| s.in_order(|n| (3 - n % 3) as usize % 3));
    assert!(alarm.is_some_and(|n| n <= 10), "{alarm:?}");
    let score = sim.agent.current();
    assert_eq!(top_kind(&score), Some(SignalKind::NewSequence), "{score:?}");
    let detail = &sim.agent.snapshot().signals[0].detail;
    assert!(detail.contains("in an order never seen"), "{detail}");
}

#[test]
fn shuffled_normal_traffic_is_not_a_new_order() {
    let mut sim = Sim::new();
    for i in 0..5000u64 {
        let req = sim.in_order(shuffled);
        let gap = 2.0 * (0.6 + 0.8 * ((i * 7919 % 101) as f64 / 100.0));
        let score = sim.send(&req, gap);
        assert!(
            !has_signal(&score, SignalKind::NewSequence) && score.value < 0.1,
            "request {i}: {score:?}"
        );
    }
}

#[test]
fn walking_ids_the_upstream_does_not_have_is_not_found() {
    let mut sim = Sim::learned();
    let alarm = sim.until_alarm(30, 2.0, |s, i| Req {
        path: format!("/inventory/items/{}", 900_000 + i),
        status: 404,
        bytes_out: 90,
        ..s.normal()
    });
    assert!(alarm.is_some_and(|n| n <= 15), "{alarm:?}");
    let report = sim.agent.snapshot();
    let signal = report
        .signals
        .iter()
        .find(|s| s.signal == SignalKind::NotFound);
    let detail = signal.map(|s| s.detail.as_str()).unwrap_or_default();
    assert!(
        detail.contains("\"not found\"") && detail.contains("/inventory/items/*"),
        "{detail}"
    );
}

#[test]
fn an_odd_missing_object_is_not_a_walk() {
    let mut sim = Sim::learned();
    for i in 0..2000u64 {
        let mut req = sim.normal();
        if i % 40 == 0 {
            req.status = 404;
        }
        let score = sim.send(&req, 2.0);
        assert!(!has_signal(&score, SignalKind::NotFound), "{score:?}");
        assert!(score.value < 0.1, "{score:?}");
    }
}

#[test]
fn working_on_endpoints_it_just_started_using_is_unfamiliar() {
    let mut sim = Sim::learned();
    let shapes = ["/inventory/notes/", "/inventory/jobs/", "/inventory/files/"];
    let alarm = sim.until_alarm(30, 2.0, |s, i| Req {
        path: format!("{}{}", shapes[(i % 3) as usize], 10 + i % 7),
        ..s.normal()
    });
    assert!(alarm.is_some_and(|n| n <= 15), "{alarm:?}");
    assert!(
        has_signal(&sim.agent.current(), SignalKind::Unfamiliar),
        "{:?}",
        sim.agent.current()
    );
}

#[test]
fn a_new_endpoint_now_and_then_is_not_unfamiliar() {
    let mut sim = Sim::learned();
    for i in 0..3000u64 {
        let mut req = sim.normal();
        if i % 300 == 0 {
            req.path = format!("/inventory/extra{}/1", i / 300);
        }
        let score = sim.send(&req, 2.0);
        assert!(!has_signal(&score, SignalKind::Unfamiliar), "{score:?}");
        assert!(score.value < 0.4, "{score:?}");
    }
}

#[test]
fn reading_never_read_records_at_the_usual_pace_is_new_objects() {
    // An agent that comes back to the same records, the first ones far more often; then a
    // scraper at the same pace reads others. (A set read evenly from its first read looks fresh:
    // its first reads are all new, and it is not judged.)
    let mut sim = Sim::new();
    for i in 0..3000u64 {
        let record = 97f64.powf((i * 7919 % 1000) as f64 / 1000.0) as u64;
        let req = Req {
            path: format!("/inventory/items/{}", 1000 + record),
            ..sim.normal()
        };
        assert_eq!(sim.send(&req, 2.0).value, 0.0, "request {i}");
    }
    let mut strongest: Option<Signal> = None;
    let mut alarm = None;
    for i in 1..=40u64 {
        let req = Req {
            path: format!("/inventory/items/{}", 50_000 + i),
            ..sim.normal()
        };
        let score = sim.send(&req, 2.0);
        if sim.settings.exceeded_by(score.value) {
            alarm.get_or_insert(i);
        }
        for s in score
            .top
            .iter()
            .filter(|s| s.kind == SignalKind::NewObjects)
        {
            if strongest.is_none_or(|m| m.strength < s.strength) {
                strongest = Some(*s);
            }
        }
    }
    assert!(alarm.is_some_and(|n| n <= 30), "{alarm:?}");
    let detail = strongest.map(|s| s.detail()).unwrap_or_default();
    assert!(
        strongest.is_some_and(|s| s.strength > 0.5)
            && detail.contains("named items it had never read")
            && detail.contains("/inventory/items/*"),
        "{strongest:?} {detail}"
    );
}

#[test]
fn a_first_use_that_raised_an_alarm_is_known_when_seen_again_much_later() {
    let mut sim = Sim::learned();
    let payroll = |s: &Sim| Req {
        upstream: "payroll",
        method: "DELETE",
        path: "/payroll/salaries/1".to_owned(),
        ..s.normal()
    };
    let first = sim.send(&payroll(&sim), 2.0);
    assert!(sim.settings.exceeded_by(first.value), "{first:?}");
    // Seen again within minutes: still a first use (its alarm froze learning).
    sim.steady(30);
    let soon = sim.send(&payroll(&sim), 2.0);
    assert!(has_signal(&soon, SignalKind::NewUpstream), "{soon:?}");
    // Seen again long after, once the alarm has decayed: known.
    sim.steady(400);
    let later = sim.send(&payroll(&sim), 2.0);
    assert!(!has_signal(&later, SignalKind::NewUpstream), "{later:?}");
    assert!(later.value < 0.4, "{later:?}");
}

/// An id that looks like a digest, different for every `i`.
fn digest(i: u64) -> String {
    format!("{:016x}", super::shape::mix(i ^ 0x5eed))
}

fn strongest(score: &Score, kind: SignalKind) -> Option<Signal> {
    score.top.iter().find(|s| s.kind == kind).copied()
}

#[test]
fn reading_new_items_in_every_request_is_a_sweep() {
    // A news reader: one request in four reads an article it never read, the others go to two
    // endpoints without ids. Its reads are all new, so `new_objects` cannot judge the shape.
    let mut sim = Sim::new();
    let reader = |s: &Sim, i: u64| Req {
        path: match super::shape::mix(i) % 8 {
            0 | 1 => format!("/news/articles/{}", digest(i)),
            r => format!("/news/{}", ["feed", "topics"][(r % 2) as usize]),
        },
        upstream: "news",
        ..s.normal()
    };
    for i in 0..4000u64 {
        let score = sim.send(&reader(&sim, i), 2.0);
        assert!(score.value < 0.4, "request {i}: {score:?}");
    }
    // The same identity now reads a new article in every request, at the same pace.
    let mut sweep = None;
    let alarm = sim.until_alarm(30, 2.0, |s, i| Req {
        path: format!("/news/articles/{}", digest(1_000_000 + i)),
        upstream: "news",
        ..s.normal()
    });
    if let Some(s) = strongest(&sim.agent.current(), SignalKind::Sweep) {
        sweep = Some(s);
    }
    assert!(alarm.is_some_and(|n| n <= 25), "{alarm:?}");
    let detail = sweep.map(|s| s.detail()).unwrap_or_default();
    assert!(
        detail
            .contains("of its recent requests read items under /news/articles/* it had never read"),
        "{sweep:?} {detail}"
    );
}

#[test]
fn a_batch_of_new_items_now_and_then_is_no_sweep() {
    // The same reader, but it habitually reads a dozen new articles in a row every few minutes.
    let mut sim = Sim::new();
    let mut max = 0.0f64;
    for i in 0..6000u64 {
        let batch = i % 100 < 12;
        let r = super::shape::mix(i) % 8;
        let req = Req {
            path: if batch || r < 2 {
                format!("/news/articles/{}", digest(i))
            } else {
                format!("/news/{}", ["feed", "topics"][(r % 2) as usize])
            },
            upstream: "news",
            ..sim.normal()
        };
        let score = sim.send(&req, 2.0);
        if i > 3000 {
            max = max.max(score.value);
        }
    }
    assert!(max < 0.4, "{max}");
}

#[test]
fn walking_ids_in_order_is_an_id_walk() {
    // Records of a large set read in no particular order (many of them new every time, so the
    // shape is not judged by `new_objects`), then the ids walked one after the other.
    let mut sim = Sim::new();
    for i in 0..3000u64 {
        let req = Req {
            path: format!("/crm/customers/{}", 1 + super::shape::mix(i) % 5000),
            upstream: "crm",
            ..sim.normal()
        };
        let score = sim.send(&req, 2.0);
        assert!(score.value < 0.4, "request {i}: {score:?}");
    }
    let mut walk = None;
    for i in 1..=12u64 {
        let req = Req {
            path: format!("/crm/customers/{}", 20_000 + i),
            upstream: "crm",
            ..sim.normal()
        };
        let score = sim.send(&req, 2.0);
        if let Some(s) = strongest(&score, SignalKind::IdWalk).filter(|s| s.strength >= 1.0) {
            walk.get_or_insert((i, s));
        }
    }
    let (at, signal) = walk.expect("a walk of twelve ids in order is flagged");
    assert!(at <= 10, "{at}");
    assert!(
        signal
            .detail()
            .contains("items in a row under /crm/customers/* whose ids step evenly"),
        "{}",
        signal.detail()
    );
}

#[test]
fn a_feed_read_item_after_item_is_no_id_walk() {
    // A consumer that reads a queue's events by consecutive ids: that is its habit.
    let mut sim = Sim::new();
    for i in 0..3000u64 {
        let req = Req {
            path: format!("/events/items/{}", 700_000 + i),
            upstream: "events",
            ..sim.normal()
        };
        let score = sim.send(&req, 2.0);
        assert!(
            !has_signal(&score, SignalKind::IdWalk),
            "request {i}: {score:?}"
        );
    }
}

#[test]
fn coming_back_to_an_address_left_for_another_is_alternation() {
    let mut sim = Sim::learned();
    // A second holder works from elsewhere while the agent is idle, never within the clone
    // window of the agent's requests: no flip, only returns.
    for _ in 0..20 {
        let req = Req {
            ip: IP_B,
            ..sim.normal()
        };
        assert!(sim.send(&req, 40.0).value < 0.8);
    }
    let agent_back = sim.send(&sim.normal(), 60.0);
    assert!(
        !sim.settings.exceeded_by(agent_back.value),
        "{agent_back:?}"
    );
    let second = sim.send(
        &Req {
            ip: IP_B,
            ..sim.normal()
        },
        60.0,
    );
    assert!(sim.settings.exceeded_by(second.value), "{second:?}");
    let signal = strongest(&second, SignalKind::Alternation).expect("alternation");
    assert!(
        signal
            .detail()
            .starts_with("came back 2.0 times within the hour")
            && signal.subject.as_str() == "10.0.0.2, certificate 01",
        "{} / {}",
        signal.detail(),
        signal.subject
    );
}

#[test]
fn a_renewal_and_a_move_never_come_back() {
    let mut sim = Sim::learned();
    let mut max = 0.0f64;
    for i in 0..600u64 {
        let req = Req {
            serial: if i < 300 { "01" } else { "02" },
            ip: if i < 450 { IP_A } else { IP_B },
            ..sim.normal()
        };
        // Idle spells now and then, as an agent that works in sessions has.
        let gap = if i % 50 == 0 { 600.0 } else { 2.0 };
        max = max.max(sim.send(&req, gap).value);
    }
    assert!(max < 0.4, "{max}");
}

#[test]
fn an_agent_used_from_several_addresses_all_along_is_not_alternating() {
    // Replicas behind a NAT pool: the identity comes from three addresses from its first day.
    let mut sim = Sim::new();
    let ips = [IP_A, IP_B, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3))];
    let mut max = 0.0f64;
    for i in 0..3000u64 {
        let req = Req {
            ip: ips[(super::shape::mix(i) % 3) as usize],
            ..sim.normal()
        };
        let gap = if i % 40 == 0 { 300.0 } else { 2.0 };
        let score = sim.send(&req, gap);
        if i > 1000 {
            max = max.max(score.value);
        }
    }
    assert!(max < 0.4, "{max}");
}
