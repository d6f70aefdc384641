//! Config loading on arbitrary bytes: `load`, `validate` and `compile` never panic, and a config
//! that validates compiles.
//!
//! The process runs in a temporary directory holding a CA, a server certificate and a CRL at
//! `certs/ca.pem`, `certs/server.pem`, `certs/server-key.pem`, `certs/crl.pem`, so seeds that
//! name them reach compilation. Inputs that would make validation read devices or special files,
//! or reach for the network (JWKS URLs, a cluster store), are skipped: they test the machine,
//! not the parser.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use warden::certs::pki::Ca;
use warden::config::load::load;
use warden::config::validate::validate;
use warden::snapshot::compile;

struct Env {
    config: PathBuf,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        let ca = Ca::generate("fuzz CA", Duration::from_secs(86_400)).expect("CA");
        std::fs::write(certs.join("ca.pem"), ca.cert_pem()).expect("ca.pem");
        let server = ca
            .issue_server(&[], Duration::from_secs(86_400))
            .expect("server cert");
        server.write(&certs, "server").expect("server.pem");
        std::fs::write(certs.join("crl.pem"), ca.crl_pem(&[], 1).expect("CRL")).expect("crl");
        std::env::set_current_dir(dir.path()).expect("chdir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Env {
            config: dir.path().join("warden.yaml"),
            runtime,
            _dir: dir,
        }
    })
}

fn skipped(data: &[u8]) -> bool {
    const AVOID: &[&[u8]] = &[b"/dev", b"/proc", b"/sys", b"jwks_url", b"redis", b"cluster"];
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
