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

fn repo_file(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The image's config, with the mounts it expects (certificates at /etc/warden/certs, the admin
/// token at /run/secrets/warden-admin-token) placed in a temp dir.
#[test]
fn the_container_config_passes_check_with_its_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let init = warden(dir.path(), &["certs", "init", "--dir", "certs"]);
    assert_eq!(
        init.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    std::fs::write(dir.path().join("admin-token"), "a-long-random-token\n").unwrap();
    let shipped = repo_file("config/container.yaml");
    for line in [
        "listen: 0.0.0.0:8443",
        "  listen: 0.0.0.0:9901",
        "  token_file: /run/secrets/warden-admin-token",
    ] {
        assert!(
            shipped.lines().any(|l| l == line),
            "container.yaml lacks `{line}`"
        );
    }
    assert!(
        shipped.contains("\n  log_format: json"),
        "container.yaml logs text"
    );
    let mounted = shipped
        .replace(
            "/etc/warden/certs",
            &dir.path().join("certs").display().to_string(),
        )
        .replace(
            "/run/secrets/warden-admin-token",
            &dir.path().join("admin-token").display().to_string(),
        );
    std::fs::write(dir.path().join("container.yaml"), mounted).unwrap();
    let out = warden(dir.path(), &["check", "--config", "container.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the secret the non-loopback admin listener is refused, never served open.
    std::fs::remove_file(dir.path().join("admin-token")).unwrap();
    let out = warden(dir.path(), &["check", "--config", "container.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin.token_file"));
}

/// What the image promises: pinned bases, the container config, a HEALTHCHECK that needs no
/// curl, a non-root user; and a build context without keys, history or build output.
#[test]
fn the_dockerfile_pins_its_bases_and_checks_its_health() {
    let dockerfile = repo_file("Dockerfile");
    let froms: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    for from in &froms {
        let image = from.split_whitespace().nth(1).unwrap();
        let digest = image.split_once("@sha256:").map(|(_, d)| d).unwrap_or("");
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "not pinned by digest: {from}"
        );
    }
    for needed in [
        "COPY config/container.yaml /etc/warden/warden.yaml",
        "USER nonroot:nonroot",
        r#"CMD ["/usr/local/bin/warden", "healthcheck", "--config", "/etc/warden/warden.yaml"]"#,
        "EXPOSE 8443 9901",
    ] {
        assert!(dockerfile.contains(needed), "Dockerfile lacks `{needed}`");
    }
    let ignore = repo_file(".dockerignore");
    for entry in ["target/", ".git/", "certs/", "*.pem"] {
        assert!(
            ignore.lines().any(|l| l == entry),
            ".dockerignore lacks {entry}"
        );
    }
}
