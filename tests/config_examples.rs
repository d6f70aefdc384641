//! The shipped configs are valid: `warden check` accepts them once `warden certs init` has made
//! the certificates they name (relative paths are read against the working directory).

use std::process::Command;

fn warden(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn shipped_configs_pass_check() {
    let dir = tempfile::tempdir().unwrap();
    let init = warden(dir.path(), &["certs", "init", "--dir", "certs"]);
    assert_eq!(
        init.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    for name in ["warden.yaml", "demo.yaml"] {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name);
        let dst = dir.path().join(name);
        std::fs::copy(&src, &dst).unwrap();
        let out = warden(dir.path(), &["check", "--config", name]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(summary.contains("valid"), "{summary}");
    }
}

#[test]
fn certs_commands_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let ok = |o: std::process::Output| {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(warden(dir.path(), &["certs", "init", "--dir", "certs"]));
    ok(warden(
        dir.path(),
        &[
            "certs",
            "issue",
            "--dir",
            "certs",
            "--agent",
            "spiffe://example.org/agent/bot-1",
            "--ttl",
            "1h",
        ],
    ));
    assert!(
        dir.path().join("certs/bot-1.pem").exists()
            && dir.path().join("certs/bot-1-key.pem").exists()
    );
    ok(warden(
        dir.path(),
        &[
            "certs",
            "revoke",
            "--dir",
            "certs",
            "--cert",
            "certs/bot-1.pem",
        ],
    ));
    let list = ok(warden(dir.path(), &["certs", "list", "--dir", "certs"]));
    assert!(list.contains("spiffe://example.org/agent/bot-1"), "{list}");
    assert!(list.contains("yes"), "{list}");
    ok(warden(dir.path(), &["token", "keygen", "--dir", "certs"]));
    let token = ok(warden(
        dir.path(),
        &[
            "token",
            "mint",
            "--key",
            "certs/token-signing-key.pem",
            "--agent",
            "spiffe://example.org/agent/bot-1",
            "--cert",
            "certs/bot-1.pem",
        ],
    ));
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
}
