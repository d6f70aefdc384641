//! Reloads: atomic, validated, counted; a broken reload keeps the running config; requests in
//! flight finish on the config they started with; a Kubernetes ConfigMap update (the `..data`
//! symlink swap) and a change of a file that a reload added both reload by themselves.

mod support;

use std::time::{Duration, Instant};

use std::os::unix::fs::symlink;

use http_body_util::BodyExt;
use support::client::AgentClient;
use support::fixture::{dead_addr, standard_policy, Standard};
use support::pki::TestPki;
use support::upstream;
use support::warden::{admin_request, config_yaml, start_warden_at};
use warden::app::StartOptions;
use warden::clock::Clock;

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

/// Waits until `probe` holds, polling; panics with `what` at the deadline.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn watching() -> StartOptions {
    StartOptions {
        clock: Clock::system(),
        watch_files: true,
        ..StartOptions::default()
    }
}

#[tokio::test]
async fn a_kubernetes_configmap_swap_reloads() {
    let pki = TestPki::new();
    let inventory = upstream::start().await;
    let payroll = upstream::start().await;
    let policy = |restricted: bool| {
        let p = config_yaml(
            &pki,
            &standard_policy(&inventory.url(), &payroll.url(), dead_addr(), ""),
        );
        if restricted {
            p.replace(
                "paths: [\"/inventory/**\"]",
                "paths: [\"/inventory/public/**\"]",
            )
        } else {
            p
        }
    };
    // The layout a ConfigMap volume has: warden.yaml -> ..data/warden.yaml, ..data -> ..<version>.
    let mount = pki.path().join("configmap");
    std::fs::create_dir(&mount).unwrap();
    let version = |name: &str, yaml: String| {
        std::fs::create_dir(mount.join(name)).unwrap();
        std::fs::write(mount.join(name).join("warden.yaml"), yaml).unwrap();
    };
    version("..2026_01_01_00_00_00.1", policy(false));
    symlink("..2026_01_01_00_00_00.1", mount.join("..data")).unwrap();
    symlink("..data/warden.yaml", mount.join("warden.yaml")).unwrap();
    let warden = start_warden_at(&mount.join("warden.yaml"), watching()).await;
    let c = AgentClient::new(&pki, &pki.agent("inventory-bot"), warden.addr);
    assert_eq!(c.get("/inventory/items").await.status, 200);

    // The kubelet's update: a new version directory, a new `..data` renamed over the old one,
    // the old version removed. The file warden was given never changes.
    version("..2026_01_02_00_00_00.2", policy(true));
    symlink("..2026_01_02_00_00_00.2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(mount.join("..2026_01_01_00_00_00.1")).unwrap();
    eventually("the ..data swap did not reload", || async {
        c.get("/inventory/items").await.status == 403
    })
    .await;
    assert_eq!(c.get("/inventory/public/x").await.status, 200);

    // And the next swap too: the watcher follows the new version directory.
    version("..2026_01_03_00_00_00.3", policy(false));
    symlink("..2026_01_03_00_00_00.3", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    eventually("the second swap did not reload", || async {
        c.get("/inventory/items").await.status == 200
    })
    .await;
    let m = warden.metrics();
    assert!(
        m.contains(r#"warden_config_reloads_total{result="error"} 0"#),
        "{m}"
    );
}

#[tokio::test]
async fn files_a_reload_adds_are_watched() {
    let s = Standard::start().await;
    let path = s.warden.config_path.clone();
    drop(s.warden);
    let warden = start_warden_at(&path, watching()).await;
    assert_eq!(
        admin_request(warden.admin, "GET", "/agents", None).await.0,
        200
    );

    // A reload brings an admin token file from a directory nothing watched before.
    let secrets = s.pki.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let token_file = secrets.join("admin-token");
    std::fs::write(&token_file, "first\n").unwrap();
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "admin:\n  listen: 127.0.0.1:0\n",
        &format!(
            "admin:\n  listen: 127.0.0.1:0\n  token_file: {}\n",
            token_file.display()
        ),
    );
    std::fs::write(&path, yaml).unwrap();
    eventually("the config change did not reload", || async {
        admin_request(warden.admin, "GET", "/agents", None).await.0 == 401
    })
    .await;
    assert_eq!(
        admin_request(warden.admin, "GET", "/agents", Some("first"))
            .await
            .0,
        200
    );

    // Rotating that file is enough: no signal, no edit of the config.
    std::fs::write(&token_file, "second\n").unwrap();
    eventually("the added file is not watched", || async {
        admin_request(warden.admin, "GET", "/agents", Some("second"))
            .await
            .0
            == 200
    })
    .await;
    assert_eq!(
        admin_request(warden.admin, "GET", "/agents", Some("first"))
            .await
            .0,
        401
    );
}
