//! The demo's last scene: least privilege learned from traffic. A second warden runs the demo
//! policy in `mode: shadow` for a few seconds while the agents go about their work; `suggest`
//! turns its audit log into the smallest roles that allow exactly that, and `explain` shows the
//! suggested policy, enforced, allowing what was seen and refusing what was not.

use std::path::{Path, PathBuf};

use super::client::{DemoAgent, Outcome};
use super::DemoError;
use crate::app::{start, StartOptions};
use crate::clock::Clock;
use crate::explain::{explain, ExplainRequest};

/// Where the scene writes its config, audit log and suggestion: beside the demo's audit log.
fn files(demo_audit: Option<&str>, certs: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let dir = demo_audit
        .and_then(|a| Path::new(a).parent())
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| certs.to_path_buf(), Path::to_path_buf);
    (
        dir.join("demo-shadow.yaml"),
        dir.join("demo-shadow-audit.jsonl"),
        dir.join("demo-suggested.yaml"),
    )
}

/// The demo config, in shadow mode, on free ports, auditing to `audit`.
fn shadow_config(demo: &str, audit: &Path) -> Result<String, DemoError> {
    let mut out = String::new();
    let mut changed = 0;
    for line in demo.lines() {
        let key = line.split(':').next().unwrap_or_default();
        let new = match key {
            "mode" => "mode: shadow".to_string(),
            "listen" => "listen: 127.0.0.1:0".to_string(),
            "  listen" => "  listen: 127.0.0.1:0".to_string(),
            "  audit_log" => format!("  audit_log: {}", audit.display()),
            _ => line.to_string(),
        };
        changed += usize::from(matches!(key, "mode" | "listen" | "  audit_log"));
        out.push_str(&new);
        out.push('\n');
    }
    if changed < 3 {
        return Err(DemoError::Config(
            "the demo config needs mode, listen and telemetry.audit_log lines for the shadow scene"
                .into(),
        ));
    }
    Ok(out)
}

/// Plays the scene; `demo_config` is the demo's config file.
pub async fn play(demo_config: &Path, certs: &Path, audit: Option<&str>) -> Result<(), DemoError> {
    println!("Least privilege from traffic: a shadow-mode period, then the suggested policy.");
    let (shadow_path, audit_path, suggested_path) = files(audit, certs);
    let demo = std::fs::read_to_string(demo_config)
        .map_err(|e| DemoError::Config(format!("{}: {e}", demo_config.display())))?;
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text)
            .map_err(|e| DemoError::Config(format!("{}: {e}", path.display())))
    };
    write(&shadow_path, &shadow_config(&demo, &audit_path)?)?;
    let _ = std::fs::remove_file(&audit_path);
    let running = start(
        &shadow_path,
        StartOptions {
            clock: Clock::system(),
            watch_files: false,
            ..StartOptions::default()
        },
    )
    .await?;
    let agent = |name: &str| {
        DemoAgent::new(
            &certs.join("ca.pem"),
            Some((
                &certs.join(format!("{name}.pem")),
                &certs.join(format!("{name}-key.pem")),
            )),
            running.agent_addr,
        )
        .map_err(DemoError::Client)
    };
    let (inventory, payroll) = (agent("inventory-bot")?, agent("payroll-bot")?);
    let started = std::time::Instant::now();
    let mut script: Vec<(&DemoAgent, &str, String)> = vec![
        (&inventory, "GET", "/inventory/items".into()),
        (&inventory, "POST", "/inventory/orders".into()),
        (&payroll, "GET", "/payroll/salaries".into()),
    ];
    for i in 0..12 {
        script.push((
            &inventory,
            "GET",
            format!("/inventory/items/{}", 101 + i * 7),
        ));
    }
    let (mut passed, n) = (0, script.len());
    for (agent, method, path) in script {
        if let Outcome::Response { status, .. } = agent.call(method, &path).await {
            passed += usize::from(status < 400);
        }
    }
    running.shutdown().await;
    println!(
        "  a shadow-mode warden saw {n} requests in {} ms ({passed} answered by the APIs: shadow \
         mode records refusals but lets them through, like POST /inventory/orders without x-purpose)",
        started.elapsed().as_millis()
    );
    suggest_and_explain(&shadow_path, &audit_path, &suggested_path).await
}

async fn suggest_and_explain(
    shadow_path: &Path,
    audit_path: &Path,
    suggested_path: &Path,
) -> Result<(), DemoError> {
    let opts = crate::suggest::Options {
        config: shadow_path.to_path_buf(),
        audit: vec![audit_path.to_path_buf()],
        agent: None,
        since: None,
        now_unix_ms: Clock::system().now_unix_ms(),
    };
    let s = crate::suggest::suggest(&opts).map_err(|e| DemoError::Config(e.to_string()))?;
    if let Some(e) = s.problems.first() {
        return Err(DemoError::Config(format!(
            "the suggested config does not pass check: {e}"
        )));
    }
    println!(
        "  warden suggest --config {} --audit {} --diff",
        shadow_path.display(),
        audit_path.display()
    );
    for line in s.diff(shadow_path).lines().skip(2) {
        println!("    {line}");
    }
    let enforced = s.text.replace("mode: shadow", "mode: enforce");
    std::fs::write(suggested_path, &enforced)
        .map_err(|e| DemoError::Config(format!("{}: {e}", suggested_path.display())))?;
    let snap = crate::snapshot::build_snapshot(suggested_path, None, 0).map_err(|errs| {
        DemoError::Config(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    println!("  enforced ({}), explain says:", suggested_path.display());
    for (method, path) in [
        ("GET", "/inventory/items/999"),
        ("DELETE", "/inventory/items/999"),
        ("GET", "/inventory/items/999/cost"),
        ("GET", "/payroll/salaries"),
    ] {
        let req = ExplainRequest {
            agent: "spiffe://example.org/agent/inventory-bot".into(),
            method: method.into(),
            url: path.into(),
            headers: vec!["host: localhost".into()],
            source_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            unix_ms: Clock::system().now_unix_ms(),
            ..ExplainRequest::default()
        };
        let verdict = explain(&snap, &req)
            .await
            .map(|ex| ex.render().lines().next().unwrap_or_default().to_string())
            .unwrap_or_else(|e| e.to_string());
        println!("    inventory-bot  {method:<6} {path:<26} -> {verdict}");
    }
    println!(
        "     (seen shapes pass; an unseen method, a deeper path and another upstream do not)\n"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_config_differs_only_in_mode_listeners_and_audit_log() {
        let demo = "listen: 127.0.0.1:8443\nadmin:\n  listen: 127.0.0.1:9901\nmode: enforce\nroles: {}\ntelemetry:\n  audit_log: logs/a.jsonl\n";
        let out = shadow_config(demo, Path::new("/tmp/s.jsonl")).unwrap();
        assert_eq!(out, "listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nmode: shadow\nroles: {}\ntelemetry:\n  audit_log: /tmp/s.jsonl\n");
        assert!(shadow_config("roles: {}\n", Path::new("x")).is_err());
        let (c, a, s) = files(Some("logs/demo-audit.jsonl"), Path::new("certs"));
        assert_eq!(
            (c.to_str(), a.to_str(), s.to_str()),
            (
                Some("logs/demo-shadow.yaml"),
                Some("logs/demo-shadow-audit.jsonl"),
                Some("logs/demo-suggested.yaml")
            )
        );
        assert_eq!(
            files(None, Path::new("certs")).0,
            Path::new("certs/demo-shadow.yaml")
        );
    }
}
