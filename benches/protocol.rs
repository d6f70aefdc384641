//! Agent protocols: reading and judging a typical 1 KiB `tools/call` (the whole decision serve
//! makes on an MCP route, and the reading alone), and filtering a 100-tool `tools/list` answer
//! (rules alone, and with tool pinning).

use std::hint::black_box;
use std::net::IpAddr;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use warden::ids::AgentId;
use warden::pipeline::{decide, Caller, GivenAdmission, GivenBody, RequestParts};
use warden::protocol::list::{filter_list, ListEntry};
use warden::protocol::message::{message, read, ListKind};
use warden::protocol::rules::{McpSpec, RpcSpec};
use warden::protocol::{Protocol, RpcRule, ToolPins};

#[path = "common/mod.rs"]
mod common;

/// This thread's on-CPU time in ms, from the scheduler (tick-grained: read over long runs only).
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/sched")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("se.sum_exec_runtime"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Runs `f` for about a second of this thread's CPU time and prints the CPU time per call. On
/// a shared machine criterion's wall-clock figures include other processes' time slices; this
/// one does not.
fn on_cpu(name: &str, mut f: impl FnMut()) {
    let start = cpu_ms();
    let mut n = 0u64;
    while cpu_ms() - start < 1000.0 {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    let per = (cpu_ms() - start) * 1000.0 / n as f64;
    println!("protocol/{name}: {per:.2} µs on CPU per call ({n} calls)");
}

/// A `tools/call` of about 1 KiB: a search with filters, as agents send them.
fn tools_call() -> String {
    let notes = "customer asked about the renewal terms of the enterprise plan and the discount "
        .repeat(10);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"search_customers","arguments":{{"query":"acme corporation","region":"eu","limit":25,"filters":{{"tier":["gold","platinum"],"active":true,"since":"2026-01-01"}},"notes":"{notes}"}},"_meta":{{"progressToken":7}}}}}}"#
    );
    assert!((900..1300).contains(&body.len()), "{}", body.len());
    body
}

fn tool_list(n: usize) -> String {
    let tools: Vec<String> = (0..n)
        .map(|i| {
            let verb = ["search", "get", "delete", "update"][i % 4];
            format!(
                r#"{{"name":"{verb}_thing_{i}","description":"Does {verb} on thing {i} of the CRM, with paging and filters","inputSchema":{{"type":"object","properties":{{"id":{{"type":"integer"}},"region":{{"type":"string","enum":["eu","us"]}}}},"required":["id"]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":3,"result":{{"tools":[{}],"nextCursor":"p2"}}}}"#,
        tools.join(",")
    )
}

const POLICY: &str = r#"upstreams:
  crm:
    url: http://127.0.0.1:20000
    pin_tools: enforce
routes:
  - path_prefix: /mcp
    upstream: crm
    protocol: mcp
roles:
  support:
    upstreams: [crm]
    allow:
      - paths: ["/mcp"]
        mcp: { tools: ["search_*"], resources: ["crm://customers/*"], prompts: [summarise_ticket] }
      - paths: ["/mcp"]
        mcp: { tools: [get_customer], arguments: { region: [eu, us] } }
    deny:
      - mcp: { tools: ["delete_*"] }
agents:
  - id: spiffe://example.org/agent/support-bot
    roles: [support]
telemetry:
  audit_log: null
"#;

fn bench(c: &mut Criterion) {
    // The generated config's TLS head, then an MCP policy.
    let g = common::generate(common::Spec {
        upstreams: 1,
        roles: 1,
        rules: 2,
        agents: 1,
        patterns: 0,
    });
    let head = std::fs::read_to_string(&g.config).unwrap();
    let head = &head[..head.find("upstreams:").unwrap()];
    let path = g.dir.path().join("mcp.yaml");
    std::fs::write(&path, format!("{head}{POLICY}")).unwrap();
    let snap = common::load(&path);

    let body = tools_call();
    let agent = AgentId::parse("spiffe://example.org/agent/support-bot").unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("content-length", HeaderValue::from(body.len()));
    let (method, uri) = (Method::POST, Uri::from_static("/mcp"));
    let bytes = Bytes::from(body.clone());

    let mut g1 = c.benchmark_group("protocol");
    g1.throughput(Throughput::Elements(1));
    g1.bench_function("decide_tools_call_1KiB", |b| {
        b.iter(|| {
            let parts = RequestParts {
                method: &method,
                uri: &uri,
                version: Version::HTTP_11,
                headers: &headers,
                has_body: true,
                source_ip: IpAddr::from([10, 0, 0, 1]),
                now_ms: 1_795_392_000_000,
            };
            let caller = Caller::Agent {
                id: &agent,
                thumbprint: Some(&[0; 32]),
            };
            let mut admission = GivenAdmission {
                quarantined: Some(false),
                rate_limited: Some(false),
                concurrency_limited: Some(false),
            };
            let mut given = GivenBody(Some(bytes.clone()));
            let permit = common::ready(decide(&snap, &caller, &mut admission, &parts, &mut given));
            black_box(permit.expect("allowed"))
        })
    });
    g1.bench_function("read_tools_call_1KiB", |b| {
        b.iter(|| {
            let tree = read(black_box(body.as_bytes())).unwrap();
            let m = message(&tree, Protocol::Mcp).unwrap();
            black_box(m.summary())
        })
    });

    let list = tool_list(100);
    let rule = RpcRule::compile(&RpcSpec {
        mcp: Some(McpSpec {
            tools: vec!["search_*".into(), "get_*".into()],
            ..McpSpec::default()
        }),
        a2a: None,
    });
    let deny = RpcRule::compile(&RpcSpec {
        mcp: Some(McpSpec {
            tools: vec!["delete_*".into()],
            ..McpSpec::default()
        }),
        a2a: None,
    });
    let keep =
        |e: &ListEntry<'_>| rule.allows_entry(e.kind, e.key) && !deny.hides_entry(e.kind, e.key);
    g1.bench_function("filter_tools_list_100", |b| {
        b.iter(|| {
            let out = filter_list(black_box(&list), Some((ListKind::Tools, "3")), &mut |e| {
                keep(e)
            });
            black_box(out.unwrap().unwrap())
        })
    });
    let pins = ToolPins::in_memory(10_000);
    g1.bench_function("filter_tools_list_100_pinned", |b| {
        b.iter(|| {
            let out = filter_list(black_box(&list), Some((ListKind::Tools, "3")), &mut |e| {
                pins.observe_listed("crm", e.key, e.raw);
                keep(e)
            });
            black_box(out.unwrap().unwrap())
        })
    });
    g1.finish();

    on_cpu("decide_tools_call_1KiB", || {
        let parts = RequestParts {
            method: &method,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &headers,
            has_body: true,
            source_ip: IpAddr::from([10, 0, 0, 1]),
            now_ms: 1_795_392_000_000,
        };
        let caller = Caller::Agent {
            id: &agent,
            thumbprint: Some(&[0; 32]),
        };
        let mut admission = GivenAdmission {
            quarantined: Some(false),
            rate_limited: Some(false),
            concurrency_limited: Some(false),
        };
        let mut given = GivenBody(Some(bytes.clone()));
        black_box(
            common::ready(decide(&snap, &caller, &mut admission, &parts, &mut given)).is_ok(),
        );
    });
    on_cpu("read_tools_call_1KiB", || {
        let tree = read(black_box(body.as_bytes())).unwrap();
        black_box(message(&tree, Protocol::Mcp).unwrap().summary());
    });
    on_cpu("filter_tools_list_100", || {
        black_box(filter_list(&list, Some((ListKind::Tools, "3")), &mut |e| keep(e)).is_ok());
    });
    on_cpu("filter_tools_list_100_pinned", || {
        let out = filter_list(&list, Some((ListKind::Tools, "3")), &mut |e| {
            pins.observe_listed("crm", e.key, e.raw);
            keep(e)
        });
        black_box(out.is_ok());
    });
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench
}
criterion_main!(benches);
