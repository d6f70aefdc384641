//! Monitoring through the real proxy: bounded agent series, the admin API and its token, and an
//! agent that goes rogue quarantined live, with its score in `/agents/{id}` and the audit log.

mod support;

use std::time::Duration;

use support::client::AgentClient;
use support::fixture::Standard;
use support::pki::{agent_id, TestPki};
use support::upstream;
use support::warden::{admin_request, config_yaml, start_warden};
use warden::telemetry::metrics::{Metrics, OTHER_AGENT};

fn agent_series(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("warden_requests_total{"))
        .filter_map(|l| {
            l.split("agent=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn agent_series_stay_bounded_through_the_proxy() {
    let pki = TestPki::new();
    let up = upstream::start().await;
    let yaml = config_yaml(
        &pki,
        &format!(
            "upstreams:\n  inventory:\n    url: {}\nroutes:\n  - upstream: inventory\nroles:\n  reader:\n    upstreams: [inventory]\n    allow:\n      - methods: [GET]\n\
agents:\n  - id: spiffe://example.org/agent/fleet/*\n    roles: [reader]\ntelemetry:\n  max_agent_series: 20\n",
            up.url()
        ),
    );
    let w = start_warden(&pki, &yaml).await;
    for i in 0..60 {
        let c = AgentClient::new(&pki, &pki.agent(&format!("fleet/a{i}")), w.addr);
        assert_eq!(c.get("/x").await.status, 200);
    }
    let series = agent_series(&w.metrics());
    assert_eq!(series.len(), 21, "{series:?}");
    assert!(series.contains(OTHER_AGENT));
    let other = w
        .metrics()
        .lines()
        .find(|l| l.starts_with(&format!("warden_requests_total{{agent=\"{OTHER_AGENT}\"")))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .unwrap();
    assert_eq!(other, "40");
}

#[test]
fn twenty_thousand_agents_make_a_bounded_number_of_series() {
    let m = Metrics::new(5000).unwrap();
    for i in 0..20_000 {
        let label = m.agent_label(&format!("spiffe://example.org/agent/a{i}"));
        m.requests
            .with_label_values(&[&label, "inventory", "GET", "allow", "ok", "2xx"])
            .inc();
        m.agent_bytes.with_label_values(&[&label, "out"]).inc_by(10);
    }
    let text = m.render();
    let series = agent_series(&text);
    assert_eq!(series.len(), 5001);
    let other = text
        .lines()
        .find(|l| l.starts_with(&format!("warden_requests_total{{agent=\"{OTHER_AGENT}\"")))
        .unwrap();
    assert!(other.ends_with(" 15000"), "{other}");
}

#[tokio::test]
async fn admin_token_is_required_when_configured() {
    let pki = TestPki::new();
    let token_file = pki.path().join("admin-token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let yaml = config_yaml(&pki, "upstreams: {}\n").replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        &format!(
            "admin:\n  listen: 127.0.0.1:0\n  token_file: {}\n",
            token_file.display()
        ),
    );
    let w = start_warden(&pki, &yaml).await;
    // The probes answer anyone (orchestrators probe without credentials); nothing else does.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            admin_request(w.admin, "GET", path, None).await.0,
            200,
            "{path}"
        );
    }
    for path in ["/metrics", "/agents"] {
        assert_eq!(
            admin_request(w.admin, "GET", path, None).await.0,
            401,
            "{path}"
        );
        assert_eq!(
            admin_request(w.admin, "GET", path, Some("wrong")).await.0,
            401,
            "{path}"
        );
        assert_eq!(
            admin_request(w.admin, "GET", path, Some("s3cret-token"))
                .await
                .0,
            200,
            "{path}"
        );
    }
    assert_eq!(admin_request(w.admin, "POST", "/reload", None).await.0, 401);
    let (status, body) = admin_request(w.admin, "POST", "/reload", Some("s3cret-token")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn admin_api_lists_agents_and_reloads() {
    let s = Standard::start().await;
    s.client("inventory-bot").get("/inventory/items").await;
    s.client("payroll-bot").get("/inventory/items").await;
    let (status, body) = admin_request(s.warden.admin, "GET", "/agents", None).await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![agent_id("inventory-bot"), agent_id("payroll-bot")]
    );
    assert_eq!(list[1]["denials"], 1);
    assert_eq!(list[0]["roles"], serde_json::json!(["inventory-agent"]));
    let (status, _) = admin_request(
        s.warden.admin,
        "GET",
        "/agents/spiffe://example.org/agent/nobody",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = admin_request(s.warden.admin, "POST", "/reload", None).await;
    assert_eq!(status, 200, "{body}");
    std::fs::write(&s.warden.config_path, "nonsense: [").unwrap();
    let (status, body) = admin_request(s.warden.admin, "POST", "/reload", None).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("warden.yaml:"), "{body}");
}

#[tokio::test]
async fn the_admin_api_refuses_a_differently_spelt_agent_id_instead_of_quarantining_nobody() {
    let s = Standard::start().await;
    let bot = s.client("inventory-bot");
    assert_eq!(bot.get("/inventory/items").await.status, 200);
    let canonical = agent_id("inventory-bot");
    let folded = [
        canonical.replacen("spiffe://", "SPIFFE://", 1),
        canonical.replace("example.org", "EXAMPLE.ORG"),
        format!("{canonical}/"),
        canonical.replace("/agent/", "/agent//"),
    ];
    for spelling in &folded {
        let (status, body) = admin_request(
            s.warden.admin,
            "POST",
            &format!("/agents/{spelling}/quarantine"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{spelling}: {body}");
        assert!(body.contains("bad_agent_id"), "{spelling}: {body}");
    }
    // Nothing was quarantined by the refused spellings; the exact id does quarantine.
    assert_eq!(bot.get("/inventory/items").await.status, 200);
    let (status, body) = admin_request(
        s.warden.admin,
        "POST",
        &format!("/agents/{canonical}/quarantine"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bot.get("/inventory/items").await.status, 403);
}

#[tokio::test]
async fn a_rogue_agent_is_quarantined_live_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let s = Standard::start_with(&format!(
        "telemetry:\n  audit_log: {}\nanomaly:\n  enabled: true\n  learning_period: 2s\n  threshold: 0.8\n  action: quarantine\n  quarantine_for: 10m\n",
        log.display()
    ))
    .await;
    let c = s.client("inventory-bot");
    let mut session = c.session().await;
    let learning_until = tokio::time::Instant::now() + Duration::from_millis(2_500);
    let mut i = 0;
    while tokio::time::Instant::now() < learning_until {
        let path = if i % 2 == 0 {
            "/inventory/items".to_string()
        } else {
            format!("/inventory/items/{}", i % 5)
        };
        send(&mut session, &path).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut quarantined_after = None;
    for n in 0..30 {
        let path = format!("/inventory/probe{n}/secret/{n}");
        // Quarantine also closes the agent's connections: carry on over a new one.
        let status = match send(&mut session, &path).await {
            Some(status) => status,
            None => {
                session = c.session().await;
                send(&mut session, &path).await.expect("a new connection")
            }
        };
        if status == 403 {
            quarantined_after = Some(n);
            break;
        }
    }
    let n =
        quarantined_after.expect("the enumerating agent was not quarantined within 30 requests");
    eprintln!("quarantined after {n} anomalous requests");
    let (_, body) = admin_request(
        s.warden.admin,
        "GET",
        &format!("/agents/{}", agent_id("inventory-bot")),
        None,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["quarantined"], true);
    assert!(v["anomaly_score"].as_f64().unwrap() > 0.8, "{v}");
    assert!(
        !v["anomaly"]["signals"].as_array().unwrap().is_empty(),
        "{v}"
    );
    // Another agent is untouched.
    assert_eq!(
        s.client("staging-bot").get("/inventory/items").await.status,
        200
    );
    let m = s.warden.metrics();
    assert!(
        m.contains(&format!(
            "warden_agent_quarantined{{agent=\"{}\"}} 1",
            agent_id("inventory-bot")
        )),
        "{m}"
    );
    s.warden.flush_audit().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let flagged = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["anomaly_score"].as_f64().unwrap_or(0.0) > 0.8)
        .expect("an audit record carries the high score");
    assert!(
        !flagged["signals"].as_array().unwrap().is_empty(),
        "{flagged}"
    );
}

async fn send(
    session: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    path: &str,
) -> Option<u16> {
    use http_body_util::BodyExt;
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    session.ready().await.ok()?;
    let resp = session.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Some(status)
}
