//! `warden demo`: a first look in a minute. It makes development certificates, starts two demo
//! APIs, starts warden on `config/demo.yaml`, plays a short scene, prints the commands to try by
//! hand, and keeps serving until Ctrl-C (or exits with `--once`).

pub mod client;
pub mod mcp;
pub mod scene;
pub mod shadow;
pub mod upstreams;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::app::{start, StartOptions};
use crate::certs::commands;
use crate::clock::Clock;
use crate::config::validate::load_and_validate;

#[derive(Debug, Error)]
pub enum DemoError {
    #[error("{0}")]
    Certs(#[from] crate::certs::CertsError),
    #[error("{0}")]
    Config(String),
    #[error(
        "cannot start the demo {api} API on {addr}: {source} (is another demo still running?)"
    )]
    Upstream {
        api: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    App(#[from] crate::app::AppError),
    #[error("{0}")]
    Client(String),
}

/// The demo's agents: (file name, agent id).
pub const AGENTS: [(&str, &str); 4] = [
    ("inventory-bot", "spiffe://example.org/agent/inventory-bot"),
    ("payroll-bot", "spiffe://example.org/agent/payroll-bot"),
    ("rogue-bot", "spiffe://example.org/agent/rogue-bot"),
    ("support-bot", "spiffe://example.org/agent/support-bot"),
];

/// Makes the CA, server certificate, CRL and agent certificates unless they exist.
pub fn ensure_certs(dir: &Path) -> Result<(), DemoError> {
    let mut quiet = std::io::sink();
    if !dir.join("ca.pem").exists() {
        commands::init(dir, false, &mut quiet)?;
        println!(
            "  made a development CA and server certificate in {}/",
            dir.display()
        );
    }
    for (name, id) in AGENTS {
        if !dir.join(format!("{name}.pem")).exists()
            || cert_expires_soon(&dir.join(format!("{name}.pem")))
        {
            commands::issue(dir, id, commands::DEFAULT_AGENT_TTL, Some(name), &mut quiet)?;
            println!("  issued {name}.pem for {id}");
        }
    }
    Ok(())
}

fn cert_expires_soon(path: &Path) -> bool {
    let Ok(certs) = crate::tls::load_certs(path) else {
        return true;
    };
    let Some(not_after) = certs
        .first()
        .and_then(|c| crate::tls::cert::not_after_ms(c))
    else {
        return true;
    };
    not_after - Clock::system().now_unix_ms() < 3_600_000
}

fn upstream_addr(
    config: &crate::config::load::LoadedConfig,
    name: &str,
) -> Result<SocketAddr, DemoError> {
    let url = config
        .file
        .upstreams
        .get(name)
        .map(|u| u.url.clone())
        .ok_or_else(|| DemoError::Config(format!("the demo config has no `{name}` upstream")))?;
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|_| {
            DemoError::Config(format!(
                "the demo's `{name}` upstream must be http://IP:PORT, not {url}"
            ))
        })
}

/// Runs the demo.
pub async fn run(config: &Path, dir: &Path, once: bool) -> Result<(), DemoError> {
    println!("warden demo: a zero-trust proxy in front of two internal APIs and an MCP server\n");
    ensure_certs(dir)?;
    let loaded = load_and_validate(config).map_err(|errs| {
        DemoError::Config(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    if let Some(log) = loaded
        .file
        .telemetry
        .audit_log
        .as_deref()
        .filter(|l| *l != "-")
    {
        if let Some(parent) = Path::new(log).parent() {
            let _ = std::fs::create_dir_all(parent);
        }
    }
    for (api, name) in [
        (upstreams::Api::Inventory, "inventory"),
        (upstreams::Api::Payroll, "payroll"),
    ] {
        let addr = upstream_addr(&loaded, name)?;
        upstreams::start(api, addr)
            .await
            .map_err(|source| DemoError::Upstream {
                api: name,
                addr,
                source,
            })?;
    }
    let crm = upstream_addr(&loaded, "crm")?;
    mcp::start(crm)
        .await
        .map_err(|source| DemoError::Upstream {
            api: "crm",
            addr: crm,
            source,
        })?;
    let running = start(
        config,
        StartOptions {
            clock: Clock::system(),
            watch_files: true,
            threads: crate::app::Threads::Workers,
        },
    )
    .await?;
    let env = scene::Env {
        agent_addr: running.agent_addr,
        admin_addr: running.admin_addr,
        certs: PathBuf::from(dir),
    };
    println!(
        "  warden listens for agents on https://{} (mTLS), admin and metrics on http://{}\n",
        env.agent_addr,
        env.admin_addr
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into())
    );
    scene::play(&env).await.map_err(DemoError::Client)?;
    shadow::play(config, dir, loaded.file.telemetry.audit_log.as_deref()).await?;
    scene::print_try_it(&env);
    if !once {
        println!("\nwarden keeps serving; press Ctrl-C to stop.");
        crate::app::wait_for_termination().await;
    }
    running.shutdown().await;
    Ok(())
}
