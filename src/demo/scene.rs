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
    let path = if path.len() > 26 {
        path.to_string()
    } else {
        format!("{path:<26}")
    };
    let verdict = match outcome {
        Outcome::Response { status, body } if *status < 400 => {
            format!("{status} allowed  {}", shorten(body))
        }
        Outcome::Response { status, body } => format!("{status} refused  {}", shorten(body)),
        Outcome::Refused(e) => format!("TLS handshake refused ({})", shorten(e)),
    };
    println!("{step} {who:<14} {method:<4} {path} -> {verdict}");
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

    mcp(env).await?;
    rogue(env).await?;
    Ok(())
}

/// An agent that speaks MCP: it sees only its own tools, calls one, and is refused another.
async fn mcp(env: &Env) -> Result<(), String> {
    let support = env.agent("support-bot")?;
    println!(
        "Agents that speak MCP: support-bot may search and read customers, never delete them."
    );
    let steps = [
        (
            "  7.",
            "tools/list",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ),
        (
            "  8.",
            "tools/call search_customers",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_customers","arguments":{"q":"acme"}}}"#,
        ),
        (
            "  9.",
            "tools/call delete_customer",
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_customer","arguments":{"id":7}}}"#,
        ),
    ];
    for (step, what, body) in steps {
        let outcome = support.post_json("/mcp", body).await;
        let shown = match &outcome {
            Outcome::Response { status: 200, body } if what == "tools/list" => {
                let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                let names: Vec<&str> = v["result"]["tools"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
                    .unwrap_or_default();
                Outcome::Response {
                    status: 200,
                    body: format!("sees tools {names:?}"),
                }
            }
            _ => outcome,
        };
        show(step, "support-bot", "POST", &format!("/mcp {what}"), &shown);
    }
    println!("     (the server has four tools; warden lists two, and refuses the delete as a JSON-RPC error)\n");
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
    println!(" 10. rogue-bot      made {n} ordinary requests during its learning period");
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
                show(" 11.", "rogue-bot", "GET", &path, &outcome);
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
    println!("  curl --cacert {d}/ca.pem --cert {d}/support-bot.pem --key {d}/support-bot-key.pem -H 'content-type: application/json' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}' https://localhost:{}/mcp", a.port());
    println!("  cargo run --release -- explain --config config/demo.yaml --agent spiffe://example.org/agent/inventory-bot --method GET --url /payroll/salaries");
}
