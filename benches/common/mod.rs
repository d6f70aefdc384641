//! Synthetic configs for the benches: a throwaway PKI and a YAML policy of a chosen size, written
//! to a temp dir and compiled through the same path `serve` uses.
//!
//! The policy is regular so that a bench can name requests with a known answer:
//! - upstream `svcK` is routed by `path_prefix: /svcK`;
//! - role `roleR` reaches `svc{R % U}` and `svc{(R + 1) % U}`; its first rule is a deny of
//!   `/svcK/admin/**` on its first upstream, the rest are allow rules cycling through
//!   [`RESOURCES`], methods and pattern shapes (see [`allow_rule`]);
//! - agent `spiffe://example.org/agent/bot-A` holds 1 to 3 roles (see [`agent_roles`]);
//! - pattern `spiffe://example.org/fleet-P/*` holds `role{P % R}`.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use warden::certs::pki::Ca;
use warden::snapshot::{build_snapshot, Snapshot};

pub const TRUST_DOMAIN: &str = "example.org";

/// First segments after the route prefix, as a real API would have them.
pub const RESOURCES: [&str; 12] = [
    "orders",
    "items",
    "customers",
    "invoices",
    "reports",
    "users",
    "search",
    "tickets",
    "shipments",
    "payments",
    "products",
    "accounts",
];

/// The size of a generated config.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub upstreams: usize,
    pub roles: usize,
    /// Rules in total (allow and deny), spread evenly over the roles.
    pub rules: usize,
    pub agents: usize,
    pub patterns: usize,
}

/// A config on disk; the temp dir lives as long as this value.
pub struct Generated {
    pub dir: TempDir,
    pub config: PathBuf,
    pub spec: Spec,
}

pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn agent_id(a: usize) -> String {
    format!("spiffe://{TRUST_DOMAIN}/agent/bot-{a}")
}

pub fn fleet_id(p: usize, member: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/fleet-{p}/{member}")
}

/// `role{R}`'s upstreams, as indices.
pub fn role_upstreams(spec: &Spec, r: usize) -> Vec<usize> {
    let mut ups = vec![r % spec.upstreams, (r + 1) % spec.upstreams];
    ups.dedup();
    ups
}

/// Agent `A` holds 1 to 3 distinct roles, spread so that agents share roles in varied sets.
pub fn agent_roles(spec: &Spec, a: usize) -> Vec<usize> {
    let mut roles = Vec::new();
    for k in 0..=(a % 3) {
        let r = (a + k * 37) % spec.roles;
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    roles
}

/// Allow rules per role (the first rule of every role is its deny).
pub fn allow_per_role(spec: &Spec) -> usize {
    (spec.rules / spec.roles).saturating_sub(1).max(1)
}

/// One allow rule: (upstream index, methods, path pattern, has a `when`).
pub struct AllowRule {
    pub upstream: usize,
    pub methods: &'static str,
    pub path: String,
    pub conditional: bool,
}

/// Allow rule `i` of `role{R}`: alternates the role's upstreams, cycles resources, then adds a
/// version suffix once they are used up, and varies the pattern shape and the methods.
pub fn allow_rule(spec: &Spec, r: usize, i: usize) -> AllowRule {
    let ups = role_upstreams(spec, r);
    let upstream = ups[i % ups.len()];
    let n = i / ups.len();
    let res = RESOURCES[n % RESOURCES.len()];
    let version = n / RESOURCES.len();
    let resource = if version == 0 {
        res.to_string()
    } else {
        format!("{res}-v{version}")
    };
    let path = match n % 4 {
        0 => format!("/svc{upstream}/{resource}/**"),
        1 => format!("/svc{upstream}/{resource}/*"),
        2 => format!("/svc{upstream}/{resource}"),
        _ => format!("/svc{upstream}/{resource}/*/detail"),
    };
    let methods = match i % 3 {
        0 => "[GET, HEAD]",
        1 => "[POST]",
        _ => "[GET, PUT, DELETE]",
    };
    AllowRule {
        upstream,
        methods,
        path,
        conditional: i % 10 == 9,
    }
}

/// Writes the CA, server certificate and key, an empty CRL and the config into a new temp dir.
pub fn generate(spec: Spec) -> Generated {
    install_crypto();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::generate("warden bench CA", Duration::from_secs(86_400)).expect("CA");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).expect("write CA");
    let server = ca
        .issue_server(&[], Duration::from_secs(86_400))
        .expect("server certificate");
    let (cert, key) = server.write(dir.path(), "server").expect("write server");
    let crl_path = dir.path().join("crl.pem");
    std::fs::write(&crl_path, ca.crl_pem(&[], 1).expect("CRL")).expect("write CRL");

    let yaml = config_yaml(&spec, &cert, &key, &ca_path, &crl_path);
    let config = dir.path().join("warden.yaml");
    std::fs::write(&config, yaml).expect("write config");
    Generated { dir, config, spec }
}

/// Validates and compiles, as `serve` and every reload do.
pub fn load(config: &Path) -> Snapshot {
    match build_snapshot(config, None, 1) {
        Ok(s) => s,
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            panic!("generated config refused:\n{}", text.join("\n"));
        }
    }
}

fn config_yaml(spec: &Spec, cert: &Path, key: &Path, ca: &Path, crl: &Path) -> String {
    let mut y = format!(
        "listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ntls:\n  cert: {}\n  key: {}\n  \
         client_ca: {}\n  crl: [{}]\nidentity:\n  trust_domain: {TRUST_DOMAIN}\n",
        cert.display(),
        key.display(),
        ca.display(),
        crl.display()
    );
    y.push_str("upstreams:\n");
    for u in 0..spec.upstreams {
        let _ = writeln!(y, "  svc{u}:\n    url: http://127.0.0.1:{}", 20_000 + u);
    }
    y.push_str("routes:\n");
    for u in 0..spec.upstreams {
        let _ = writeln!(y, "  - path_prefix: /svc{u}\n    upstream: svc{u}");
    }
    y.push_str("roles:\n");
    for r in 0..spec.roles {
        push_role(&mut y, spec, r);
    }
    y.push_str("agents:\n");
    for a in 0..spec.agents {
        let _ = writeln!(y, "  - id: {}", agent_id(a));
        push_roles(&mut y, &agent_roles(spec, a));
        if a % 2 == 0 {
            y.push_str("    labels: { env: prod, team: ops }\n");
        }
    }
    for p in 0..spec.patterns {
        let _ = writeln!(y, "  - id: {}", fleet_id(p, "*"));
        push_roles(&mut y, &[p % spec.roles]);
    }
    y.push_str("telemetry:\n  audit_log: null\n");
    y
}

fn push_roles(y: &mut String, roles: &[usize]) {
    let names: Vec<String> = roles.iter().map(|r| format!("role{r}")).collect();
    let _ = writeln!(y, "    roles: [{}]", names.join(", "));
}

fn push_role(y: &mut String, spec: &Spec, r: usize) {
    let ups = role_upstreams(spec, r);
    let names: Vec<String> = ups.iter().map(|u| format!("svc{u}")).collect();
    let _ = writeln!(y, "  role{r}:\n    upstreams: [{}]", names.join(", "));
    y.push_str("    allow:\n");
    for i in 0..allow_per_role(spec) {
        let rule = allow_rule(spec, r, i);
        let _ = writeln!(
            y,
            "      - upstream: svc{}\n        methods: {}\n        paths: [\"{}\"]",
            rule.upstream, rule.methods, rule.path
        );
        if rule.conditional {
            y.push_str(
                "        when:\n          source_cidrs: [10.0.0.0/8]\n          \
                 headers: { x-purpose: restock }\n          labels: { env: prod }\n",
            );
        }
    }
    let _ = writeln!(
        y,
        "    deny:\n      - upstream: svc{}\n        paths: [\"/svc{}/admin/**\"]",
        ups[0], ups[0]
    );
}

/// Short, steady measurements: the whole bench stays well under a minute on 2 cores.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}

/// Runs a future that never waits (the decision without a JWKS fetch or a body to read) to its
/// end, without a runtime.
#[allow(dead_code)]
pub fn ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the decision waited"),
    }
}
