//! Every decision of the contract's section 3 over a real mTLS connection, asserting on the
//! status, the refusal body and what the upstream received.

mod support;

use support::client::{raw_status, AgentClient};
use support::fixture::Standard;
use support::pki::agent_id;
use support::warden::admin_request;

#[tokio::test]
async fn allowed_request_reaches_the_upstream_as_authorised() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    let r = c
        .request(
            "GET",
            "/inventory/./items/%7Ebox/../42?q=1",
            &[
                ("x-agent-id", "spiffe://example.org/agent/payroll-bot"),
                ("x_forwarded_user", "admin"),
                ("x-warden-agent", "forged"),
                ("x-forwarded-client-cert", "forged"),
                ("x-internal-debug", "1"),
                ("x-forwarded-for", "10.9.9.9"),
                ("x-request-id", "forged"),
                ("x-keep-me", "yes"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s
        .inventory
        .recorder
        .last()
        .expect("upstream saw the request");
    assert_eq!(seen.target, "/inventory/items/42?q=1");
    let h = &seen.headers;
    assert_eq!(h["x-warden-agent"], agent_id("inventory-bot").as_str());
    assert_eq!(h["x-warden-roles"], "inventory-agent");
    assert_eq!(h["x-forwarded-for"], "10.9.9.9, 127.0.0.1");
    assert_eq!(h["x-keep-me"], "yes");
    assert_ne!(h["x-request-id"], "forged");
    assert_eq!(h["x-request-id"], r.headers["x-request-id"]);
    for gone in [
        "x-agent-id",
        "x_forwarded_user",
        "x-forwarded-client-cert",
        "x-internal-debug",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the upstream");
    }
    assert_eq!(h.get_all("x-warden-agent").iter().count(), 1);
    // Hop-by-hop headers of the upstream's response do not reach the agent.
    assert!(!r.headers.contains_key("x-upstream-secret"));
}

#[tokio::test]
async fn connection_named_headers_cannot_strip_warden_headers() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    let raw = c
        .raw(
            b"GET /inventory/items HTTP/1.1\r\nhost: localhost\r\nconnection: keep-alive, x-warden-agent, x-warden-roles\r\nx-forwarded-user: admin\r\nconnection: x-forwarded-user\r\n\r\n",
            std::time::Duration::from_millis(500),
        )
        .await;
    assert_eq!(raw_status(&raw), 200, "{raw}");
    let seen = s.inventory.recorder.last().unwrap();
    assert_eq!(
        seen.headers["x-warden-agent"],
        agent_id("inventory-bot").as_str()
    );
    assert!(seen.headers.contains_key("x-warden-roles"));
    assert!(!seen.headers.contains_key("x-forwarded-user"));
}

/// Agent, method, path, headers, expected status, expected reason.
type Case<'a> = (
    &'a AgentClient,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    u16,
    &'a str,
);

#[tokio::test]
async fn every_policy_refusal_has_its_status_and_reason() {
    let s = Standard::start().await;
    let inv = s.client("inventory-bot");
    let staging = s.client("staging-bot");
    let cases: Vec<Case> = vec![
        (&inv, "GET", "/inventory/admin/users", &[], 403, "denied"),
        (&inv, "GET", "/inventory/ADMIN/users", &[], 403, "denied"),
        (
            &inv,
            "DELETE",
            "/inventory/items/1",
            &[],
            403,
            "no_matching_rule",
        ),
        (
            &inv,
            "POST",
            "/inventory/orders",
            &[],
            403,
            "no_matching_rule",
        ),
        (
            &inv,
            "POST",
            "/inventory/orders",
            &[("x-purpose", "restock")],
            200,
            "",
        ),
        (&inv, "PUT", "/inventory/items/7", &[], 200, ""),
        (
            &staging,
            "PUT",
            "/inventory/items/7",
            &[],
            403,
            "no_matching_rule",
        ),
        (&inv, "GET", "/payroll/salaries", &[], 403, "segmentation"),
        (
            &inv,
            "GET",
            "/inventory/%2e%2e/payroll/salaries",
            &[],
            403,
            "segmentation",
        ),
        (&inv, "GET", "/nothing/here", &[], 404, "no_route"),
        (&inv, "GET", "/inventoryx", &[], 404, "no_route"),
        (&inv, "GET", "/inventory/a%2fb", &[], 400, "bad_request"),
        (&inv, "GET", "/inventory/..;/admin", &[], 400, "bad_request"),
        (
            &inv,
            "GET",
            "/inventory/%252e%252e/admin",
            &[],
            400,
            "bad_request",
        ),
        (&inv, "GET", "/dead/x", &[], 502, "upstream_unavailable"),
    ];
    for (client, method, path, headers, status, reason) in cases {
        let r = client.request(method, path, headers, "").await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert_eq!(r.error(), reason, "{method} {path}");
        if status >= 400 {
            let body = r.json();
            assert_eq!(
                body.as_object().unwrap().len(),
                2,
                "refusal body reveals nothing else: {body}"
            );
            assert_eq!(
                body["request_id"].as_str().unwrap(),
                r.headers["x-request-id"].to_str().unwrap()
            );
        }
    }
    // Nothing refused ever reached an upstream: only the three allowed requests did.
    assert_eq!(s.inventory.recorder.count(), 2);
    assert_eq!(s.payroll.recorder.count(), 0);
}

#[tokio::test]
async fn host_selects_among_routes_and_absolute_form_must_name_a_route_host() {
    let s = Standard::start().await;
    let pay = s.client("payroll-bot");
    let r = pay
        .request("GET", "/", &[("host", "PAYROLL.internal.")], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.payroll.recorder.last().unwrap().target, "/");
    let raw = pay
        .raw(
            b"GET http://evil.internal/payroll/x HTTP/1.1\r\nhost: evil.internal\r\n\r\n",
            std::time::Duration::from_millis(500),
        )
        .await;
    assert_eq!(raw_status(&raw), 400, "{raw}");
    let raw = pay
        .raw(
            b"GET http://payroll.internal/x HTTP/1.1\r\nhost: other.internal\r\n\r\n",
            std::time::Duration::from_millis(500),
        )
        .await;
    assert_eq!(raw_status(&raw), 400, "{raw}");
}

#[tokio::test]
async fn identity_refusals() {
    use warden::certs::pki::LeafOptions;
    let s = Standard::start().await;
    let addr = s.warden.addr;
    let mk = |name: &str, o: LeafOptions| AgentClient::new(&s.pki, &s.pki.issue(name, &o), addr);
    let cases = [
        (
            mk("unknown", LeafOptions::new(agent_id("stranger"))),
            403,
            "unknown_agent",
        ),
        (
            mk(
                "nosan",
                LeafOptions::new(agent_id("inventory-bot")).without_uri_san(),
            ),
            403,
            "no_identity",
        ),
        (
            mk(
                "foreign",
                LeafOptions::new("spiffe://evil.org/agent/inventory-bot"),
            ),
            403,
            "no_identity",
        ),
        (
            mk(
                "two",
                LeafOptions::new(agent_id("inventory-bot")).extra_uri_san(agent_id("payroll-bot")),
            ),
            403,
            "no_identity",
        ),
        (
            mk("fleet", LeafOptions::new(agent_id("support/alice"))),
            200,
            "",
        ),
    ];
    for (client, status, reason) in cases {
        let r = client.get("/payroll/x").await;
        assert_eq!(
            (r.status, r.error().as_str()),
            (status, reason),
            "{}",
            r.text()
        );
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let s = Standard::start().await;
    let c = s.client("limited");
    let mut statuses = vec![];
    let mut retry_after = None;
    for _ in 0..4 {
        let r = c.get("/inventory/items").await;
        if r.status == 429 {
            assert_eq!(r.error(), "rate_limited");
            retry_after = r
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
        statuses.push(r.status);
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
}

#[tokio::test]
async fn quarantine_from_the_admin_api() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    assert_eq!(c.get("/inventory/items").await.status, 200);
    let id = agent_id("inventory-bot");
    let (status, body) = admin_request(
        s.warden.admin,
        "POST",
        &format!("/agents/{id}/quarantine"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = c.get("/inventory/items").await;
    assert_eq!((r.status, r.error().as_str()), (403, "quarantined"));
    let (status, body) = admin_request(s.warden.admin, "GET", &format!("/agents/{id}"), None).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["quarantined"], true);
    assert_eq!(v["requests"], 2);
    assert_eq!(v["denials"], 1);
    let (status, _) = admin_request(
        s.warden.admin,
        "DELETE",
        &format!("/agents/{id}/quarantine"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(c.get("/inventory/items").await.status, 200);
}

#[tokio::test]
async fn upstream_timeout_is_504() {
    let s = Standard::start().await;
    let started = std::time::Instant::now();
    let r = s.client("inventory-bot").get("/slow").await;
    assert_eq!((r.status, r.error().as_str()), (504, "upstream_timeout"));
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
}

#[tokio::test]
async fn shadow_mode_forwards_and_records_shadow_deny() {
    let s = Standard::start_with("mode: shadow").await;
    let c = s.client("inventory-bot");
    let r = c.get("/inventory/admin/users").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.get("/payroll/salaries").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.payroll.recorder.count(), 1);
    // What cannot be judged safely is still refused.
    assert_eq!(c.get("/inventory/a%2fb").await.status, 400);
    assert_eq!(c.get("/nowhere").await.status, 404);
    let m = s.warden.metrics();
    assert!(
        m.contains(r#"decision="shadow_deny",method="GET",reason="denied""#),
        "{m}"
    );
    assert!(
        m.contains(r#"decision="shadow_deny",method="GET",reason="segmentation""#),
        "{m}"
    );
}

#[tokio::test]
async fn metrics_count_decisions_with_contract_labels() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    c.get("/inventory/items").await;
    c.get("/inventory/admin").await;
    let (status, text) = admin_request(s.warden.admin, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let id = agent_id("inventory-bot");
    assert!(text.contains(&format!(
        r#"warden_requests_total{{agent="{id}",decision="allow",method="GET",reason="ok",status_class="2xx",upstream="inventory"}} 1"#
    )), "{text}");
    assert!(text.contains(&format!(
        r#"warden_requests_total{{agent="{id}",decision="deny",method="GET",reason="denied",status_class="4xx",upstream="inventory"}} 1"#
    )), "{text}");
    assert!(text.contains(r#"warden_tls_handshakes_total{reason="ok",result="ok"}"#));
    assert!(text.contains("warden_active_connections"));
    assert!(text.contains(r#"warden_config_reloads_total{result="ok"} 0"#));
    let (status, _) = admin_request(s.warden.admin, "GET", "/healthz", None).await;
    assert_eq!(status, 200);
    let (status, _) = admin_request(s.warden.admin, "GET", "/readyz", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn time_conditions_follow_the_injected_clock() {
    use support::pki::TestPki;
    use support::warden::{config_yaml, start_warden_with};
    let pki = TestPki::new();
    let up = support::upstream::start().await;
    let yaml = config_yaml(
        &pki,
        &format!(
            "upstreams:\n  api:\n    url: {}\nroutes:\n  - upstream: api\nroles:\n  office:\n    upstreams: [api]\n    allow:\n      - methods: [GET]\n        when:\n          hours_utc: \"06:00-20:00\"\n          weekdays: [mon, tue, wed, thu, fri]\n\
agents:\n  - id: {}\n    roles: [office]\n",
            up.url(),
            agent_id("clerk")
        ),
    );
    // The next Monday 10:00 UTC from now; the certificate outlives the simulated week, because
    // warden also reads certificate expiry from its clock.
    let now = warden::clock::Clock::system().now_unix_ms();
    let day = 86_400_000i64;
    let days = now.div_euclid(day);
    let monday = (days + (7 - (days + 3).rem_euclid(7))) * day;
    let clock = warden::clock::Clock::fixed(monday + 10 * 3_600_000);
    let w = start_warden_with(&pki, &yaml, clock.clone()).await;
    let cert = pki.issue(
        "clerk",
        &warden::certs::pki::LeafOptions::new(agent_id("clerk"))
            .ttl(std::time::Duration::from_secs(30 * 86_400)),
    );
    let c = AgentClient::new(&pki, &cert, w.addr);
    assert_eq!(c.get("/x").await.status, 200);
    clock.advance_ms(11 * 3_600_000); // 21:00
    let r = c.get("/x").await;
    assert_eq!((r.status, r.error().as_str()), (403, "no_matching_rule"));
    clock.advance_ms(4 * 86_400_000 + 13 * 3_600_000); // Saturday 10:00
    assert_eq!(c.get("/x").await.status, 403);
    clock.advance_ms(2 * 86_400_000); // Monday 10:00 again
    assert_eq!(c.get("/x").await.status, 200);
}
