//! Config loading on arbitrary bytes: `load`, `validate` and `compile` never panic, and a config
//! that validates compiles.
//!
//! A CA, a server certificate and a CRL are made once at `/tmp/warden-fuzz-config/certs/`
//! (`ca.pem`, `server.pem`, `server-key.pem`, `crl.pem`), so seeds that name them reach
//! compilation; the working directory is left alone (libFuzzer writes its corpus relative to it).
//! Inputs that would make validation read devices or special files, or reach for the network
//! (JWKS URLs, a cluster store), are skipped: they test the machine, not the parser.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use warden::certs::pki::Ca;
use warden::config::load::load;
use warden::config::validate::validate;
use warden::snapshot::compile;

/// Where the seeds find their certificates.
const DIR: &str = "/tmp/warden-fuzz-config";

struct Env {
    config: PathBuf,
    runtime: tokio::runtime::Runtime,
}

/// Writes the certificates into a directory of this process, then moves it into place; a
/// concurrent fuzzing job that got there first has written the same kind of files.
fn make_certs(dir: &Path) {
    if dir.join("certs/crl.pem").exists() {
        return;
    }
    let staging = PathBuf::from(format!("{DIR}.{}", std::process::id()));
    let certs = staging.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let ca = Ca::generate("fuzz CA", Duration::from_secs(10 * 365 * 86_400)).expect("CA");
    std::fs::write(certs.join("ca.pem"), ca.cert_pem()).expect("ca.pem");
    let server = ca
        .issue_server(&[], Duration::from_secs(10 * 365 * 86_400))
        .expect("server cert");
    server.write(&certs, "server").expect("server.pem");
    std::fs::write(certs.join("crl.pem"), ca.crl_pem(&[], 1).expect("CRL")).expect("crl");
    if std::fs::rename(&staging, dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = Path::new(DIR);
        make_certs(dir);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Env {
            config: dir.join(format!("warden-{}.yaml", std::process::id())),
            runtime,
        }
    })
}

fn skipped(data: &[u8]) -> bool {
    const AVOID: &[&[u8]] = &[
        b"/dev",
        b"/proc",
        b"/sys",
        b"jwks_url",
        b"redis",
        b"cluster",
    ];
    AVOID
        .iter()
        .any(|needle| data.windows(needle.len()).any(|w| w == *needle))
}

fuzz_target!(|data: &[u8]| {
    if skipped(data) {
        return;
    }
    let env = env();
    std::fs::write(&env.config, data).expect("write config");
    let Ok(cfg) = load(&env.config) else {
        return;
    };
    if !validate(&cfg).is_empty() {
        return;
    }
    let _guard = env.runtime.enter();
    if let Err(errors) = compile(&cfg, None, 1) {
        panic!("a validated config did not compile: {errors:?}");
    }
});
