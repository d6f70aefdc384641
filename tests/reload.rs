//! Reloads: atomic, validated, counted; a broken reload keeps the running config; requests in
//! flight finish on the config they started with.

mod support;

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use support::fixture::{dead_addr, standard_policy, Standard};
use support::warden::config_yaml;

fn policy_without_inventory_reads(s: &Standard) -> String {
    let p = standard_policy(&s.inventory.url(), &s.payroll.url(), dead_addr(), "");
    let p = p.replace(
        "        methods: [GET, HEAD]\n        paths: [\"/inventory/**\"]",
        "        methods: [GET, HEAD]\n        paths: [\"/inventory/public/**\"]",
    );
    config_yaml(&s.pki, &p)
}

#[tokio::test]
async fn reload_swaps_policy_and_a_broken_reload_keeps_it() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    assert_eq!(c.get("/inventory/items").await.status, 200);

    std::fs::write(&s.warden.config_path, policy_without_inventory_reads(&s)).unwrap();
    s.warden.reload().expect("valid reload");
    let r = c.get("/inventory/items").await;
    assert_eq!((r.status, r.error().as_str()), (403, "no_matching_rule"));

    std::fs::write(&s.warden.config_path, "listen: [this is not\n").unwrap();
    let errors = s.warden.reload().expect_err("broken reload refused");
    assert!(!errors.is_empty());
    std::fs::write(&s.warden.config_path, "").unwrap();
    assert!(
        s.warden.reload().is_err(),
        "an empty policy must never load"
    );
    // Still the last good config: public reads pass, others are refused.
    assert_eq!(c.get("/inventory/public/x").await.status, 200);
    assert_eq!(c.get("/inventory/items").await.status, 403);
    let m = s.warden.metrics();
    assert!(
        m.contains(r#"warden_config_reloads_total{result="ok"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"warden_config_reloads_total{result="error"} 2"#),
        "{m}"
    );
}

#[tokio::test]
async fn in_flight_requests_finish_on_their_config() {
    let s = Standard::start().await;
    let c = s.client("inventory-bot");
    let resp = c.get_streaming("/inventory/sse").await;
    assert_eq!(resp.status(), 200);
    std::fs::write(&s.warden.config_path, policy_without_inventory_reads(&s)).unwrap();
    s.warden.reload().expect("reload");
    let started = Instant::now();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), "data: event 0\n\n".len() * 3);
    assert!(started.elapsed() > Duration::from_secs(2));
    assert_eq!(c.get("/inventory/sse").await.status, 403);
}
