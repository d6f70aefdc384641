//! The per-request decision: agent lookup, request shape (normalisation and host) and the
//! route / segmentation / deny / allow walk, at 10 rules and at 10,000 rules over 100 roles.
//! The point is that the second costs about what the first does.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use warden::decision::Reason;
use warden::ids::AgentId;
use warden::pipeline::{decide, Caller, GivenAdmission, GivenBody, RequestParts};
use warden::route::normalize::normalize_target;
use warden::snapshot::Snapshot;

#[path = "common/mod.rs"]
mod common;

use common::{agent_roles, allow_per_role, allow_rule, role_upstreams, Spec};

/// One request as hyper hands it over, with the answer it must get.
struct Probe {
    name: &'static str,
    agent: AgentId,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    /// `None`: allowed.
    expect: Option<Reason>,
}

/// Monday 2026-11-23 10:00 UTC: inside office hours, so conditions are decided on their merits.
const MOMENT_MS: i64 = 1_795_392_000_000 + 10 * 3_600_000;

fn source_ip() -> IpAddr {
    IpAddr::from([10, 1, 2, 3])
}

/// The whole decision for one request, as the request path runs it after the handshake: the
/// pipeline `serve` calls, with admission state given (admitted).
fn decide_one(snap: &Snapshot, p: &Probe) -> Option<Reason> {
    let caller = Caller::Agent {
        id: &p.agent,
        thumbprint: Some(&[0; 32]),
    };
    let mut admission = GivenAdmission {
        quarantined: Some(false),
        rate_limited: Some(false),
        concurrency_limited: Some(false),
    };
    let parts = RequestParts {
        method: &p.method,
        uri: &p.uri,
        version: Version::HTTP_11,
        headers: &p.headers,
        has_body: false,
        source_ip: source_ip(),
        now_ms: MOMENT_MS,
    };
    let decided = common::ready(decide(
        snap,
        &caller,
        &mut admission,
        &parts,
        &mut GivenBody::default(),
    ));
    decided.err().map(|r| r.reason)
}

/// A concrete path a pattern matches.
fn instantiate(pattern: &str) -> String {
    pattern.replace("**", "a/b").replace('*', "42")
}

fn probe(
    name: &'static str,
    agent: &str,
    method: Method,
    path: &str,
    expect: Option<Reason>,
) -> Probe {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static("api.internal"));
    headers.insert("x-purpose", HeaderValue::from_static("restock"));
    headers.insert("user-agent", HeaderValue::from_static("agent-sdk/1.4"));
    Probe {
        name,
        agent: AgentId::parse(agent).expect("agent id"),
        method,
        uri: path.parse().expect("probe uri"),
        headers,
        expect,
    }
}

/// Requests with a known answer for `spec`, from its agent holding the most roles.
fn probes(spec: &Spec) -> Vec<Probe> {
    let a = (0..spec.agents.min(30))
        .max_by_key(|a| agent_roles(spec, *a).len())
        .unwrap_or(0);
    let roles = agent_roles(spec, a);
    let id = common::agent_id(a);
    let first_up = role_upstreams(spec, roles[0])[0];
    let reachable: Vec<usize> = roles
        .iter()
        .flat_map(|r| role_upstreams(spec, *r))
        .collect();
    let outside = (0..spec.upstreams)
        .find(|u| !reachable.contains(u))
        .expect("an upstream outside the agent's segment");

    let first = allow_rule(spec, roles[0], 0);
    let last_role = *roles.last().unwrap_or(&roles[0]);
    let late = (0..allow_per_role(spec))
        .rev()
        .map(|i| allow_rule(spec, last_role, i))
        .find(|r| !r.conditional)
        .expect("an unconditional rule");
    let method = |m: &str| -> Method {
        let first = m
            .trim_matches(['[', ']'])
            .split(',')
            .next()
            .unwrap_or("GET");
        first.trim().parse().expect("method")
    };
    vec![
        probe(
            "allowed_first_rule",
            &id,
            method(first.methods),
            &format!("{}?limit=10", instantiate(&first.path)),
            None,
        ),
        probe(
            "allowed_last_rule",
            &id,
            method(late.methods),
            &instantiate(&late.path),
            None,
        ),
        probe(
            "denied",
            &id,
            Method::GET,
            &format!("/svc{first_up}/admin/users"),
            Some(Reason::Denied),
        ),
        probe(
            "no_matching_rule",
            &id,
            Method::GET,
            &format!("/svc{first_up}/unknown/1"),
            Some(Reason::NoMatchingRule),
        ),
        probe(
            "segmentation",
            &id,
            Method::GET,
            &format!("/svc{outside}/orders/1"),
            Some(Reason::Segmentation),
        ),
    ]
}

fn bench_config(c: &mut Criterion, label: &str, spec: Spec) {
    let generated = common::generate(spec);
    let snap = common::load(&generated.config);
    let probes = probes(&spec);
    for p in &probes {
        let got = decide_one(&snap, p);
        assert_eq!(got, p.expect, "{label}/{}: {} {}", p.name, p.method, p.uri);
    }

    let mut g = c.benchmark_group(format!("decision/{label}"));
    g.throughput(Throughput::Elements(1));
    for p in &probes {
        g.bench_with_input(BenchmarkId::from_parameter(p.name), p, |b, p| {
            b.iter(|| decide_one(black_box(&snap), black_box(p)))
        });
    }
    g.throughput(Throughput::Elements(probes.len() as u64));
    g.bench_function("mix", |b| {
        b.iter(|| {
            for p in &probes {
                black_box(decide_one(black_box(&snap), black_box(p)));
            }
        })
    });
    g.finish();
}

fn decision(c: &mut Criterion) {
    bench_config(
        c,
        "10_rules",
        Spec {
            upstreams: 4,
            roles: 2,
            rules: 10,
            agents: 10,
            patterns: 2,
        },
    );
    bench_config(
        c,
        "10000_rules",
        Spec {
            upstreams: 20,
            roles: 100,
            rules: 10_000,
            agents: 1_000,
            patterns: 10,
        },
    );
}

fn normalize(c: &mut Criterion) {
    let targets = [
        ("typical", "/svc3/orders/12345/items?limit=50&cursor=abc"),
        ("encoded_unreserved", "/svc3/%6Frders/caf%7E/%41BC-1.2_x"),
        ("dot_segments", "/svc3/orders/./a/../b//c/./d/"),
        ("traversal_refused", "/public/%2e%2e/%2e%2e/admin"),
        ("double_encoding_refused", "/svc3/%252e%252e/admin"),
        ("long_64_segments", ""),
    ];
    let long = format!("/{}", vec!["segment"; 64].join("/"));
    let mut g = c.benchmark_group("normalize_target");
    g.throughput(Throughput::Elements(1));
    for (name, raw) in targets {
        let raw = if raw.is_empty() { long.as_str() } else { raw };
        g.bench_with_input(BenchmarkId::from_parameter(name), raw, |b, raw| {
            b.iter(|| normalize_target(black_box(raw)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = decision, normalize
}
criterion_main!(benches);
