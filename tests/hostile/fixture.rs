//! The hostile suite's warden, its two recording upstreams, and the case runner.
//!
//! Every case states what warden answers and exactly what the upstream received: one request
//! with this method, target, body and these headers, or nothing at all. Cases of one test run
//! one after the other on fresh connections; the upstream's record is cleared before each, and a
//! response only comes back after forwarding has finished, so the record is the case's alone.

use std::fmt::Write as _;

use crate::support;
use crate::support::client::AgentClient;
use crate::support::h2wire::{self, H2Outcome, H2Request};
use crate::support::pki::{agent_id, TestPki};
use crate::support::upstream::{self, Seen, Upstream};
use crate::support::warden::{config_yaml, start_warden, TestWarden};
use crate::support::wire::{self, WireOutcome};

pub const AGENT: &str = "web-bot";

/// GET covers HEAD; DELETE is denied everywhere; `/public/admin` and `/public/users/*` are denied
/// as exact resources, so only the trailing-slash rule keeps `/public/admin/` out.
fn policy(app: &str, search: &str, extra_top: &str) -> String {
    format!(
        r#"{extra_top}
upstreams:
  app:
    url: {app}
  search:
    url: {search}
    bodies_on_get: true
routes:
  - host: app.internal
    upstream: app
  - path_prefix: /public
    upstream: app
  - path_prefix: /search
    upstream: search
roles:
  web:
    upstreams: [app, search]
    allow:
      - upstream: app
        methods: [GET]
        paths: ["/public/**", "/"]
      - upstream: app
        methods: [POST]
        paths: ["/public/forms/**"]
      - upstream: app
        methods: [PUT]
        paths: ["/public/items/*"]
      - upstream: search
        methods: [GET, POST]
        paths: ["/search/**"]
    deny:
      - methods: [DELETE]
        paths: ["/**"]
      - paths: ["/public/admin"]
      - paths: ["/public/users/*"]
agents:
  - id: {agent}
    roles: [web]
"#,
        agent = agent_id(AGENT)
    )
}

/// Which upstream a case expects to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    App,
    Search,
}

/// What the upstream must have received.
#[derive(Debug, Clone)]
pub enum Up {
    Nothing,
    Got(Want),
    /// The agent broke its body after the head was judged and forwarded: the upstream got at
    /// most this method and target with an unfinished, empty body, never a complete request.
    Cut(&'static str, &'static str),
}

/// One request as it must reach the upstream.
#[derive(Debug, Clone)]
pub struct Want {
    pub which: Which,
    pub method: String,
    pub target: String,
    pub body: Vec<u8>,
    /// Headers with exactly these values (all values of the name, joined with `, `).
    pub has: Vec<(String, String)>,
    /// Headers that must be absent, in every spelling the upstream could read.
    pub lacks: Vec<String>,
}

/// The app upstream receives `method target` with no body.
pub fn got(method: &str, target: &str) -> Up {
    Up::Got(Want {
        which: Which::App,
        method: method.into(),
        target: target.into(),
        body: Vec::new(),
        has: Vec::new(),
        lacks: Vec::new(),
    })
}

impl Up {
    fn want(mut self, f: impl FnOnce(&mut Want)) -> Up {
        if let Up::Got(w) = &mut self {
            f(w);
        }
        self
    }

    pub fn has(self, name: &str, value: &str) -> Up {
        self.want(|w| w.has.push((name.into(), value.into())))
    }

    pub fn lacks(self, names: &[&str]) -> Up {
        self.want(|w| w.lacks.extend(names.iter().map(|n| n.to_string())))
    }

    pub fn body(self, body: &str) -> Up {
        self.want(|w| w.body = body.as_bytes().to_vec())
    }

    pub fn at(self, which: Which) -> Up {
        self.want(|w| w.which = which)
    }
}

/// What warden answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// A decision: this status and this refusal reason ("" for a forwarded answer).
    Status(u16, &'static str),
    /// Refused by the HTTP layer before the decision: this status; the body is that layer's.
    Layer(u16),
    /// HTTP/2: the stream is reset with this error code, no response.
    Reset(h2::Reason),
    /// HTTP/2: the whole connection is refused (GOAWAY) with this error code.
    GoAway(h2::Reason),
    /// The connection closed without an answer.
    Closed,
}

pub struct Hostile {
    // Kept for the test's lifetime: the certificates' directory and the running server.
    #[allow(dead_code)]
    pub pki: TestPki,
    #[allow(dead_code)]
    pub warden: TestWarden,
    pub app: Upstream,
    pub search: Upstream,
    pub h1: AgentClient,
    pub h2: AgentClient,
    failures: Vec<String>,
    cases: usize,
}

impl Hostile {
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// `extra_top` is YAML placed before the policy (`limits: ...`).
    pub async fn start_with(extra_top: &str) -> Self {
        let pki = TestPki::new();
        let app = upstream::start().await;
        let search = upstream::start().await;
        let yaml = config_yaml(&pki, &policy(&app.url(), &search.url(), extra_top));
        let warden = start_warden(&pki, &yaml).await;
        let cert = pki.agent(AGENT);
        let h1 = AgentClient::new(&pki, &cert, warden.addr);
        let h2 = AgentClient::h2(&pki, &cert, warden.addr);
        Hostile {
            pki,
            warden,
            app,
            search,
            h1,
            h2,
            failures: Vec::new(),
            cases: 0,
        }
    }

    fn clear(&self) {
        self.app.recorder.clear();
        self.search.recorder.clear();
    }

    /// One HTTP/1.1 case: `raw` on a new connection, one response expected.
    pub async fn h1(&mut self, name: &str, raw: &[u8], answer: Answer, up: Up) {
        self.clear();
        let outcome = wire::one(&self.h1, raw).await;
        let got = h1_answer(&outcome);
        self.judge(name, answer, got, up).await;
    }

    /// One HTTP/1.1 case whose bytes hold several requests: one answer per entry of `heads`
    /// (true for a HEAD), the first judged by `answer`; `up` is every request the upstream got.
    pub async fn h1_pipelined(
        &mut self,
        name: &str,
        raw: &[u8],
        heads: &[bool],
        answers: &[Answer],
        up: &[Up],
    ) {
        self.clear();
        let outcome = wire::exchange(&self.h1, raw, heads).await;
        self.cases += 1;
        let mut problems = String::new();
        for (i, want) in answers.iter().enumerate() {
            let got = outcome
                .responses
                .get(i)
                .map_or(Got::Closed, |r| Got::Status {
                    status: r.status,
                    reason: r.error(),
                });
            if let Some(p) = answer_problem(*want, &got) {
                let _ = write!(problems, " answer {i}: {p};");
            }
        }
        let seen = self.seen_all();
        if seen.len() != up.len() {
            let _ = write!(
                problems,
                " the upstreams got {} requests, not {}: {:?};",
                seen.len(),
                up.len(),
                seen.iter()
                    .map(|(_, s)| format!("{} {}", s.method, s.target))
                    .collect::<Vec<_>>()
            );
        } else {
            for (want, (which, seen)) in up.iter().zip(&seen) {
                if let Up::Got(w) = want {
                    problems.push_str(&want_problems(w, *which, seen));
                }
            }
        }
        self.record(name, problems);
    }

    /// One HTTP/2 case on a new connection.
    pub async fn h2(&mut self, name: &str, req: H2Request, answer: Answer, up: Up) {
        self.clear();
        let outcome = h2wire::send(&self.h2, &req).await;
        let got = match &outcome {
            H2Outcome::Response { status, .. } => Got::Status {
                status: *status,
                reason: outcome.error(),
            },
            H2Outcome::Reset(r) => Got::Reset(*r),
            H2Outcome::GoAway(r) => Got::GoAway(*r),
            H2Outcome::Closed(why) => Got::Other(format!("connection ended: {why}")),
        };
        self.judge(name, answer, got, up).await;
    }

    async fn judge(&mut self, name: &str, answer: Answer, got: Got, up: Up) {
        self.cases += 1;
        let mut problems = String::new();
        if let Some(p) = answer_problem(answer, &got) {
            let _ = write!(problems, " {p};");
        }
        if matches!(up, Up::Cut(..)) {
            // The upstream may still be reading the head it got when warden answered: give it
            // the time to show what it received, and prove no second request follows.
            let recorder = (self.app.recorder.clone(), self.search.recorder.clone());
            support::wait::holds_for(std::time::Duration::from_millis(300), || {
                let n = recorder.0.count() + recorder.1.count();
                async move { n <= 1 }
            })
            .await;
        }
        let seen = self.seen_all();
        match (&up, seen.as_slice()) {
            (Up::Cut(..), []) => {}
            (Up::Cut(m, t), [(_, s)]) if s.method == *m && s.target == *t && s.body.is_empty() => {}
            (Up::Cut(..), s) => {
                let _ = write!(
                    problems,
                    " the upstream got {} requests after a cut body;",
                    s.len()
                );
            }
            (Up::Nothing, []) => {}
            (Up::Nothing, s) => {
                let _ = write!(
                    problems,
                    " the upstream got {:?} but must get nothing;",
                    s.iter()
                        .map(|(_, s)| format!("{} {}", s.method, s.target))
                        .collect::<Vec<_>>()
                );
            }
            (Up::Got(w), [(which, s)]) => problems.push_str(&want_problems(w, *which, s)),
            (Up::Got(w), s) => {
                let _ = write!(
                    problems,
                    " the upstreams got {} requests, not one `{} {}`;",
                    s.len(),
                    w.method,
                    w.target
                );
            }
        }
        self.record(name, problems);
    }

    fn record(&mut self, name: &str, problems: String) {
        if !problems.is_empty() {
            self.failures.push(format!("{name}:{problems}"));
        }
    }

    fn seen_all(&self) -> Vec<(Which, Seen)> {
        let app = self.app.recorder.all().into_iter().map(|s| (Which::App, s));
        let search = self
            .search
            .recorder
            .all()
            .into_iter()
            .map(|s| (Which::Search, s));
        app.chain(search).collect()
    }

    /// Fails the test with every case that did not hold; returns how many cases ran.
    pub fn finish(self) -> usize {
        assert!(
            self.failures.is_empty(),
            "{} of {} cases failed:\n{}",
            self.failures.len(),
            self.cases,
            self.failures.join("\n")
        );
        println!("{} cases held", self.cases);
        self.cases
    }
}

/// What came back, in one shape for both protocols.
#[derive(Debug)]
enum Got {
    Status {
        status: u16,
        reason: String,
    },
    Reset(h2::Reason),
    GoAway(h2::Reason),
    Closed,
    #[allow(dead_code)] // read through Debug in failure messages
    Other(String),
}

fn h1_answer(outcome: &WireOutcome) -> Got {
    match outcome.first() {
        Some(r) => Got::Status {
            status: r.status,
            reason: r.error(),
        },
        None => Got::Closed,
    }
}

fn answer_problem(want: Answer, got: &Got) -> Option<String> {
    let ok = match (want, got) {
        (Answer::Status(s, r), Got::Status { status, reason }) => s == *status && r == reason,
        (Answer::Layer(s), Got::Status { status, .. }) => s == *status,
        (Answer::Reset(r), Got::Reset(got)) => r == *got,
        (Answer::GoAway(r), Got::GoAway(got)) => r == *got,
        (Answer::Closed, Got::Closed) => true,
        _ => false,
    };
    (!ok).then(|| format!("answered {got:?}, expected {want:?}"))
}

/// Headers warden writes on every forwarded request.
const SET_BY_WARDEN: &[&str] = &[
    "host",
    "x-warden-agent",
    "x-warden-roles",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Everything wrong with what the upstream received, or "".
fn want_problems(w: &Want, which: Which, s: &Seen) -> String {
    let mut p = String::new();
    if which != w.which {
        let _ = write!(p, " reached {which:?}, not {:?};", w.which);
    }
    if s.method != w.method || s.target != w.target {
        let _ = write!(
            p,
            " upstream got `{} {}`, not `{} {}`;",
            s.method, s.target, w.method, w.target
        );
    }
    if s.body.as_ref() != w.body.as_slice() {
        let _ = write!(
            p,
            " upstream body {:?}, not {:?};",
            String::from_utf8_lossy(&s.body),
            String::from_utf8_lossy(&w.body)
        );
    }
    // Every forwarded request carries warden's identity headers, once, and only warden's.
    let identity = [
        ("x-warden-agent", agent_id(AGENT)),
        ("x-warden-roles", "web".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
    ];
    let has = identity
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .chain(w.has.iter().cloned());
    for (name, value) in has {
        let values: Vec<_> = s
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if values.join(", ") != value || values.is_empty() {
            let _ = write!(p, " header {name} is {values:?}, not {value:?};");
        }
    }
    for name in &w.lacks {
        let folded = name.to_ascii_lowercase().replace('_', "-");
        // warden sets these itself, in this spelling; `has` checks their values.
        let own = |k: &str| k == folded && SET_BY_WARDEN.contains(&k);
        let found: Vec<_> = s
            .headers
            .keys()
            .filter(|k| k.as_str().replace('_', "-") == folded && !own(k.as_str()))
            .map(|k| k.as_str().to_owned())
            .collect();
        if !found.is_empty() {
            let _ = write!(p, " header {found:?} reached the upstream;");
        }
    }
    p
}
