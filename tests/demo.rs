//! `warden demo --once` plays the whole scene and exits 0. It runs on a copy of
//! `config/demo.yaml` whose ports are free ones, so it never collides with a running demo.

use std::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn demo_plays_the_scene_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.yaml")).unwrap();
    let demo = demo
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace("127.0.0.1:9001", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:9002", &format!("127.0.0.1:{}", free_port()))
        .replace("127.0.0.1:9003", &format!("127.0.0.1:{}", free_port()))
        .replace("certs/", &format!("{}/", certs.display()))
        .replace(
            "logs/demo-audit.jsonl",
            &dir.path().join("audit.jsonl").display().to_string(),
        );
    let config = dir.path().join("demo.yaml");
    std::fs::write(&config, demo).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["demo", "--once", "--config"])
        .arg(&config)
        .arg("--dir")
        .arg(&certs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "GET  /inventory/items           -> 200 allowed",
        "GET  /payroll/salaries          -> 403 refused  {\"error\":\"segmentation\"",
        "-> 403 refused  {\"error\":\"denied\"",
        "TLS handshake refused",
        "POST /mcp tools/list            -> 200 allowed  sees tools [\"search_customers\", \"get_customer\"]",
        "POST /mcp tools/call search_customers -> 200 allowed",
        "POST /mcp tools/call delete_customer -> 403 refused  {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32050,\"message\":\"denied\"",
        "quarantined by the anomaly engine",
        "warden_agent_quarantined{agent=\"spiffe://example.org/agent/rogue-bot\"} 1",
        "curl --cacert",
        "Least privilege from traffic",
        "+    roles: [learned-inventory-bot]",
        "+      - upstream: inventory\n    +        methods: [GET]\n    +        paths: [\"/inventory/items\", \"/inventory/items/*\"]",
        "inventory-bot  GET    /inventory/items/999       -> ALLOW",
        "inventory-bot  DELETE /inventory/items/999       -> DENY no_matching_rule (403)",
        "inventory-bot  GET    /inventory/items/999/cost  -> DENY no_matching_rule (403)",
        "inventory-bot  GET    /payroll/salaries          -> DENY segmentation (403)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    assert!(
        dir.path().join("demo-suggested.yaml").exists(),
        "the suggestion is left to inspect"
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify"])
        .arg(dir.path().join("audit.jsonl"))
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
