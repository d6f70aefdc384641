//! The scripted scene: each step is one request by one agent, and what warden decided.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::client::{DemoAgent, Outcome};

pub struct Env {
    pub agent_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub certs: PathBuf,
}

impl Env {
    fn agent(&self, name: &str) -> Result<DemoAgent, String> {
        let cert = self.certs.join(format!("{name}.pem"));
        let key = self.certs.join(format!("{name}-key.pem"));
        DemoAgent::new(
            &self.certs.join("ca.pem"),
            Some((&cert, &key)),
            self.agent_addr,
        )
    }
}

fn show(step: &str, who: &str, method: &str, path: &str, outcome: &Outcome) {
    let verdict = match outcome {
        Outcome::Response { status, body } if *status < 400 => {
            format!("{status} allowed  {}", shorten(body))
        }
        Outcome::Response { status, body } => format!("{status} refused  {}", shorten(body)),
        Outcome::Refused(e) => format!("TLS handshake refused ({})", shorten(e)),
    };
    println!("{step} {who:<14} {method:<4} {path:<26} -> {verdict}");
}

fn shorten(s: &str) -> String {
    let s = s.trim().replace('\n', " ");
    if s.chars().count() > 90 {
        format!("{}...", s.chars().take(87).collect::<String>())
    } else {
        s
    }
}

/// Plays the scene.
pub async fn play(env: &Env) -> Result<(), String> {
    let inventory = env.agent("inventory-bot")?;
    let payroll = env.agent("payroll-bot")?;
    let nobody = DemoAgent::new(&env.certs.join("ca.pem"), None, env.agent_addr)?;

    println!("Least privilege and segmentation:");
    for (step, agent, who, method, path) in [
        (
            "  1.",
            &inventory,
            "inventory-bot",
            "GET",
            "/inventory/items",
        ),
        (
            "  2.",
            &inventory,
            "inventory-bot",
            "GET",
            "/payroll/salaries",
        ),
        (
            "  3.",
            &inventory,
            "inventory-bot",
            "GET",
            "/inventory/admin/users",
        ),
        (
            "  4.",
            &inventory,
            "inventory-bot",
            "POST",
            "/inventory/orders",
        ),
        ("  5.", &payroll, "payroll-bot", "GET", "/payroll/salaries"),
        ("  6.", &nobody, "(no cert)", "GET", "/inventory/items"),
    ] {
        let outcome = agent.call(method, path).await;
        show(step, who, method, path, &outcome);
    }
    println!("     (2: payroll is outside inventory-agent's segment; 3: a deny rule; 4: POST needs x-purpose: restock)\n");

    rogue(env).await?;
    Ok(())
}

/// A rogue agent: normal at first, then it starts enumerating paths it never used.
async fn rogue(env: &Env) -> Result<(), String> {
    let rogue = env.agent("rogue-bot")?;
    println!("Behaviour monitoring: rogue-bot learns a normal pattern, then goes rogue.");
    let learning_until = tokio::time::Instant::now() + Duration::from_millis(5_500);
    let mut n = 0u32;
    while tokio::time::Instant::now() < learning_until {
        let path = if n.is_multiple_of(3) {
            "/inventory/items".to_string()
        } else {
            format!("/inventory/items/{}", 100 + n % 7)
        };
        rogue.call("GET", &path).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("  7. rogue-bot      made {n} ordinary requests during its learning period");
    let mut quarantined_after = None;
    for i in 0..60u32 {
        let path = format!(
            "/inventory/{}/{}",
            ["backup", "export", "dump", "users", "keys", "config"][i as usize % 6],
            i
        );
        let outcome = rogue.call("GET", &path).await;
        if let Outcome::Response { status: 403, body } = &outcome {
            if body.contains("quarantined") {
                quarantined_after = Some(i + 1);
                show("  8.", "rogue-bot", "GET", &path, &outcome);
                break;
            }
        }
    }
    match quarantined_after {
        Some(i) => {
            println!("     quarantined by the anomaly engine after {i} enumerating requests\n")
        }
        None => {
            println!("     (not quarantined: the anomaly engine did not cross its threshold)\n")
        }
    }
    if let Some(admin) = env.admin_addr {
        let (_, agents) = crate::admin::call(
            admin,
            "GET",
            "/agents/spiffe://example.org/agent/rogue-bot",
            None,
        )
        .await;
        println!(
            "  GET /agents/spiffe://example.org/agent/rogue-bot\n    {}",
            agents.trim()
        );
        let (_, metrics) = crate::admin::call(admin, "GET", "/metrics", None).await;
        println!("  /metrics excerpt:");
        for line in metrics.lines().filter(|l| {
            (l.starts_with("warden_requests_total{")
                && l.contains("agent=\"spiffe://example.org/agent/inventory-bot\""))
                || l.starts_with("warden_agent_quarantined{")
                || l.starts_with("warden_agent_anomaly_score{")
                || (l.starts_with("warden_tls_handshakes_total{") && l.contains("error"))
        }) {
            println!("    {line}");
        }
    }
    Ok(())
}

/// The commands to try by hand, exactly as they work against the running demo.
pub fn print_try_it(env: &Env) {
    let d = env.certs.display();
    let a = env.agent_addr;
    println!("\nTry it yourself (warden is still running):");
    println!("  curl --cacert {d}/ca.pem --cert {d}/inventory-bot.pem --key {d}/inventory-bot-key.pem https://localhost:{}/inventory/items", a.port());
    println!("  curl --cacert {d}/ca.pem --cert {d}/inventory-bot.pem --key {d}/inventory-bot-key.pem https://localhost:{}/payroll/salaries", a.port());
    println!("  curl --cacert {d}/ca.pem --cert {d}/inventory-bot.pem --key {d}/inventory-bot-key.pem -X POST -H 'x-purpose: restock' https://localhost:{}/inventory/orders", a.port());
    if let Some(admin) = env.admin_addr {
        println!("  curl http://{admin}/metrics");
        println!("  curl http://{admin}/agents");
        println!("  curl -X DELETE http://{admin}/agents/spiffe://example.org/agent/rogue-bot/quarantine");
    }
    println!("  cargo run --release -- explain --config config/demo.yaml --agent spiffe://example.org/agent/inventory-bot --method GET --url /payroll/salaries");
}
