//! The `warden` command line: parse arguments, run one command, map its outcome to an exit code.
#![forbid(unsafe_code)]
// Input never panics the proxy: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use warden::config::validate::{load_and_validate, summary};
use warden::explain::{explain, ExplainRequest};
use warden::pipeline::GivenAdmission;
use warden::snapshot::build_snapshot;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "A zero-trust authenticating reverse proxy for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        #[arg(long, default_value = "config/warden.yaml")]
        config: PathBuf,
        /// Reload only on SIGHUP or `POST /reload`, not when a watched file changes.
        #[arg(long)]
        no_watch: bool,
    },
    /// Validate a config without serving.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the decision for one request.
    Explain(ExplainArgs),
    /// Issue, revoke and list agent certificates (a development CA made with rcgen).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Development tokens for the certificate-bound second factor.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Least privilege learned from traffic: the smallest roles that allow exactly what each
    /// agent was seen doing, as a complete config (or a diff against the running one).
    Suggest {
        #[arg(long)]
        config: PathBuf,
        /// Audit log files (JSON lines), oldest first; `-` reads standard input.
        #[arg(long, required = true, num_args = 1..)]
        audit: Vec<PathBuf>,
        /// Suggest for this `agents` entry only (its id as the config writes it).
        #[arg(long)]
        agent: Option<String>,
        /// Only records at most this old (`168h` for a week).
        #[arg(long, value_parser = parse_duration)]
        since: Option<Duration>,
        /// Print a unified diff against the running config instead of the whole config.
        #[arg(long)]
        diff: bool,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A one-minute tour: dev certs, demo upstreams, the proxy and a scripted scene.
    Demo {
        /// Exit after the scene instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
        #[arg(long, default_value = "config/demo.yaml")]
        config: PathBuf,
        /// Where the demo's certificates are made.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct ExplainArgs {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    agent: String,
    #[arg(long)]
    method: String,
    /// What the agent sends: `/path?q` (Host from --header) or an absolute-form URL.
    #[arg(long)]
    url: String,
    /// `Name: value`; repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long, default_value = "127.0.0.1")]
    source_ip: IpAddr,
    /// RFC 3339; default now.
    #[arg(long)]
    time: Option<String>,
    /// The client certificate (PEM): its identity is read as `serve` reads it, and a token's
    /// binding is checked against it.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The request body.
    #[arg(long)]
    body: Option<PathBuf>,
    /// Judge the agent as quarantined (live state is otherwise not evaluated).
    #[arg(long)]
    quarantined: bool,
    /// Judge the agent as over its rate limit.
    #[arg(long)]
    rate_limited: bool,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a development CA, a server certificate for localhost/127.0.0.1 and an empty CRL.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Replace an existing CA (its CRL and index go with it).
        #[arg(long)]
        force: bool,
    },
    /// Issue an agent certificate (URI SAN = the agent id, clientAuth EKU).
    Issue {
        #[arg(long)]
        dir: PathBuf,
        #[arg(
            long,
            required_unless_present = "from_config",
            conflicts_with = "from_config"
        )]
        agent: Option<String>,
        /// One certificate for each exact agent id of this config (patterns are skipped).
        #[arg(long)]
        from_config: Option<PathBuf>,
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
        /// File name (NAME.pem / NAME-key.pem); default: the id's last segment.
        #[arg(long)]
        name: Option<String>,
    },
    /// Add a certificate's serial to the CA's CRL (DIR/crl.pem).
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        cert: PathBuf,
    },
    /// Serial, agent id, not-after and revoked for every certificate the CA issued.
    List {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// A token for AGENT bound to CERT (cnf.x5t#S256), signed with KEY.
    Mint {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        agent: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        ttl: Duration,
        #[arg(long, default_value = "warden")]
        audience: String,
        #[arg(long, default_value = "agent-auth")]
        issuer: String,
    },
    /// Write a development signing pair: token-signing-key.pem and token-signing-pub.pem.
    Keygen {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: exit 0 intact, 1 with the first broken line.
    Verify { file: PathBuf },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    warden::config::units::parse_duration(s)
}

/// Runs a command that prints to stdout; its error is printed and exits 1.
fn report<T>(result: Result<T, warden::certs::CertsError>) -> ExitCode {
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr; `WARDEN_LOG` overrides `default` (the demo tells its own story, so it logs
/// warnings only).
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal; logs collected by a program stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::Serve { config, no_watch } => {
            init_logging("warden=info");
            run_async(async move {
                match warden::app::serve(&config, !no_watch).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("warden: {e}");
                        ExitCode::from(2)
                    }
                }
            })
        }
        Command::Check { config } => check(&config),
        Command::Explain(args) => cmd_explain(args),
        Command::Suggest {
            config,
            audit,
            agent,
            since,
            diff,
        } => suggest(config, audit, agent, since, diff),
        Command::Certs { command } => certs(command),
        Command::Token { command } => token(command),
        Command::Audit {
            command: AuditCommand::Verify { file },
        } => {
            let code = warden::telemetry::audit::verify_command(&file, &mut std::io::stdout());
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Demo { once, config, dir } => {
            init_logging("warden=warn");
            run_async(async move {
                match warden::demo::run(&config, &dir, once).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("warden demo: {e}");
                        ExitCode::from(1)
                    }
                }
            })
        }
    }
}

/// Exit 0 with the suggestion on stdout and notes on stderr; 2 on bad input or when the result
/// would not pass `check`.
fn suggest(
    config: PathBuf,
    audit: Vec<PathBuf>,
    agent: Option<String>,
    since: Option<Duration>,
    diff: bool,
) -> ExitCode {
    let opts = warden::suggest::Options {
        config,
        audit,
        agent,
        since,
        now_unix_ms: warden::clock::Clock::system().now_unix_ms(),
    };
    let s = match warden::suggest::suggest(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warden suggest: {e}");
            return ExitCode::from(2);
        }
    };
    for note in &s.notes {
        eprintln!("note: {note}");
    }
    if !s.problems.is_empty() {
        for e in &s.problems {
            eprintln!("{e}");
        }
        eprintln!("warden suggest: the suggested config does not pass check; nothing printed");
        return ExitCode::from(2);
    }
    if diff {
        print!("{}", s.diff(&opts.config));
    } else {
        print!("{}", s.text);
    }
    ExitCode::SUCCESS
}

fn certs(command: CertsCommand) -> ExitCode {
    use warden::certs::commands;
    let out = &mut std::io::stdout();
    match command {
        CertsCommand::Init { dir, force } => report(commands::init(&dir, force, out)),
        CertsCommand::Issue {
            dir,
            agent: Some(agent),
            ttl,
            name,
            ..
        } => report(commands::issue(&dir, &agent, ttl, name.as_deref(), out)),
        CertsCommand::Issue {
            dir,
            from_config: Some(config),
            ttl,
            ..
        } => report(commands::issue_from_config(&dir, &config, ttl, out)),
        CertsCommand::Issue { .. } => {
            eprintln!("warden: certs issue needs --agent or --from-config");
            ExitCode::from(2)
        }
        CertsCommand::Revoke { dir, cert } => report(commands::revoke(&dir, &cert, out)),
        CertsCommand::List { dir } => report(commands::list(&dir, out)),
    }
}

fn token(command: TokenCommand) -> ExitCode {
    use warden::certs::commands;
    let out = &mut std::io::stdout();
    match command {
        TokenCommand::Mint {
            key,
            agent,
            cert,
            ttl,
            audience,
            issuer,
        } => report(commands::token_mint(
            &key, &agent, &cert, ttl, &audience, &issuer, out,
        )),
        TokenCommand::Keygen { dir, force } => report(commands::token_keygen(&dir, force, out)),
    }
}

fn run_async(fut: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("warden: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

fn check(config: &std::path::Path) -> ExitCode {
    let loaded = match load_and_validate(config) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.len());
            return ExitCode::from(2);
        }
    };
    // Compiling proves the TLS material and upstream settings load, as `serve` would.
    if let Err(errors) = warden::snapshot::compile(&loaded, None, 0) {
        for e in &errors {
            eprintln!("{e}");
        }
        return ExitCode::from(2);
    }
    println!("{}", summary(&loaded));
    ExitCode::SUCCESS
}

fn cmd_explain(args: ExplainArgs) -> ExitCode {
    let snap = match build_snapshot(&args.config, None, 0) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let unix_ms = match &args.time {
        None => warden::clock::Clock::system().now_unix_ms(),
        Some(t) => {
            match time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
                Ok(dt) => (dt.unix_timestamp_nanos() / 1_000_000) as i64,
                Err(e) => {
                    eprintln!("warden: --time `{t}` is not RFC 3339: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let cert_der = match &args.cert {
        None => None,
        Some(p) => match warden::tls::load_certs(p) {
            Ok(certs) => certs.first().map(|c| c.as_ref().to_vec()),
            Err(e) => {
                eprintln!("warden: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let body = match &args.body {
        None => None,
        Some(p) => match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("warden: --body {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
    };
    let given = |flag: bool| flag.then_some(true);
    let req = ExplainRequest {
        agent: args.agent,
        method: args.method,
        url: args.url,
        headers: args.headers,
        source_ip: args.source_ip,
        unix_ms,
        cert_der,
        admission: GivenAdmission {
            quarantined: given(args.quarantined),
            rate_limited: given(args.rate_limited),
            concurrency_limited: None,
        },
        body,
    };
    run_async(async move {
        match explain(&snap, &req).await {
            Ok(ex) => {
                print!("{}", ex.render());
                if ex.allowed() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("warden: {e}");
                ExitCode::from(2)
            }
        }
    })
}
