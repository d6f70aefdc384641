//! An identity's life at the proxy: revocation and rotation take effect without a restart, a
//! connection dies with its certificate, and a revoked certificate cannot come back through TLS
//! session resumption.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::HandshakeKind;
use support::client::{client_config, AgentClient};
use support::fixture::{dead_addr, standard_policy, Standard};
use support::keepalive::{client_config_from_files, refused_handshakes, KeepAlive};
use support::pki::{agent_id, AgentCert};
use support::upstream;
use support::warden::WardenProcess;
use time::OffsetDateTime;
use warden::certs::pki::{Ca, LeafOptions};
use warden::certs::{commands, store};

const ITEMS: &str = "/inventory/items";

async fn open_and_use(client: &AgentClient, path: &str) -> KeepAlive {
    let mut conn = KeepAlive::open(client).await.expect("connection");
    let r = conn.get(path).await.expect("first request");
    assert_eq!(r.status, 200, "{}", r.text());
    conn
}

#[tokio::test]
async fn revocation_closes_the_revoked_connection_and_spares_the_others() {
    let s = Standard::start().await;
    let revoked = s.agent("inventory-bot");
    let doomed_client = AgentClient::new(&s.pki, &revoked, s.warden.addr);
    let other_client = s.client("payroll-bot");
    let mut doomed = open_and_use(&doomed_client, ITEMS).await;
    let mut other = open_and_use(&other_client, "/payroll/slip").await;

    s.pki.revoke(&[&revoked]);
    s.warden.reload().expect("reload");
    let reloaded = Instant::now();

    let closed = doomed.closed_within(Duration::from_secs(1)).await;
    let closed = closed.expect("the revoked connection is still open 1 s after the reload");
    assert!(closed - reloaded <= Duration::from_secs(1));
    assert!(doomed.get(ITEMS).await.is_err(), "closed connection served");
    assert!(
        doomed_client.handshake_refused().await,
        "a revoked certificate completed a new handshake"
    );
    assert!(refused_handshakes(&s.warden.metrics(), "revoked") >= 1);

    assert!(!other.is_closed(), "an unrelated connection was closed");
    let r = other
        .get("/payroll/slip")
        .await
        .expect("unrelated connection");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(other_client.get("/payroll/x").await.status, 200);
}

/// The CA directory of `warden certs init`, with a config that serves it.
struct CaDir {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

fn ca_dir_config(inventory: &str) -> CaDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    commands::init(d, false, &mut Vec::new()).expect("certs init");
    let policy = standard_policy(inventory, inventory, dead_addr(), "");
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\ntls:\n  cert: {}\n  key: {}\n  client_ca: {}\n  crl: [{}]\nidentity:\n  trust_domain: example.org\n{policy}",
        d.join(store::SERVER_CERT).display(),
        d.join(store::SERVER_KEY).display(),
        d.join(store::CA_CERT).display(),
        d.join(store::CRL).display(),
    );
    let config = d.join("warden.yaml");
    std::fs::write(&config, yaml).unwrap();
    CaDir { dir, config }
}

fn issued_client(
    ca: &CaDir,
    name: &str,
    addr: std::net::SocketAddr,
) -> (AgentClient, std::path::PathBuf) {
    let d = ca.dir.path();
    let files = commands::issue(
        d,
        &agent_id(name),
        Duration::from_secs(3600),
        None,
        &mut Vec::new(),
    )
    .expect("certs issue");
    let config = client_config_from_files(&d.join(store::CA_CERT), &files.cert, &files.key);
    (AgentClient::with_config(config, addr), files.cert)
}

#[tokio::test]
async fn certs_revoke_reaches_the_binary_through_its_file_watcher() {
    let up = upstream::start().await;
    let ca = ca_dir_config(&up.url());
    let w = WardenProcess::spawn(&ca.config);
    let (doomed_client, doomed_cert) = issued_client(&ca, "inventory-bot", w.addr);
    let (other_client, _) = issued_client(&ca, "staging-bot", w.addr);
    let mut doomed = open_and_use(&doomed_client, ITEMS).await;
    assert_eq!(other_client.get(ITEMS).await.status, 200);

    commands::revoke(ca.dir.path(), &doomed_cert, &mut Vec::new()).expect("certs revoke");
    let revoked_at = Instant::now();
    let mut refused = false;
    while revoked_at.elapsed() < Duration::from_secs(5) {
        if doomed_client.handshake_refused().await {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the CRL change was not picked up within 5 s");
    assert!(
        doomed.closed_within(Duration::from_secs(1)).await.is_some(),
        "the revoked certificate's open connection survived the CRL change"
    );
    assert_eq!(other_client.get(ITEMS).await.status, 200);
}

/// Requests in a loop until `stop`: each on a new connection, or all on one kept-alive
/// connection (reopened only if the server closed it, which counts as a failure).
fn spawn_loop(
    client: AgentClient,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let mut ok = 0u64;
        let mut failures = Vec::new();
        let mut conn: Option<KeepAlive> = None;
        while !stop.load(Ordering::Relaxed) {
            let result = if keep_alive {
                if conn.is_none() {
                    conn = KeepAlive::open(&client).await.ok();
                }
                match conn.as_mut() {
                    Some(c) => c.get(ITEMS).await.map(|r| r.status),
                    None => Err("no connection".to_string()),
                }
            } else {
                client
                    .send(Request::get(ITEMS).body(Full::new(Bytes::new())).unwrap())
                    .await
                    .map(|r| r.status)
            };
            match result {
                Ok(200) => ok += 1,
                Ok(status) => failures.push(format!("status {status}")),
                Err(e) => {
                    failures.push(e);
                    conn = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ok, failures)
    })
}

async fn status_of(client: &AgentClient) -> Result<u16, String> {
    let req = Request::get(ITEMS).body(Full::new(Bytes::new())).unwrap();
    client.send(req).await.map(|r| r.status)
}

fn server_cert_of(conn: &KeepAlive) -> Vec<u8> {
    conn.server_cert.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_server_cert_client_ca_and_crl_loses_no_request() {
    let s = Standard::start().await;
    let looping = s.client("inventory-bot");
    let stop = Arc::new(AtomicBool::new(false));
    let fresh_loop = spawn_loop(looping.clone(), false, stop.clone());
    let kept_loop = spawn_loop(looping.clone(), true, stop.clone());
    let settle = || tokio::time::sleep(Duration::from_millis(250));
    settle().await;

    // (a) A new server certificate from the same CA.
    let before = server_cert_of(&KeepAlive::open(&looping).await.unwrap());
    let original = CertificateDer::from_pem_file(&s.pki.server_cert).unwrap();
    assert_eq!(before, original.to_vec());
    let server = s
        .pki
        .ca
        .issue_server(&[], Duration::from_secs(86_400))
        .unwrap();
    server.write(s.pki.path(), "server").unwrap();
    s.warden
        .reload()
        .expect("reload after the server certificate swap");
    let after = server_cert_of(&KeepAlive::open(&looping).await.unwrap());
    assert_ne!(after, before, "the old server certificate is still served");
    assert_eq!(
        after, server.cert_der,
        "the new server certificate is not served"
    );
    settle().await;

    // (b) A second CA added beside the first.
    let second_ca = Ca::generate("second warden test CA", Duration::from_secs(86_400)).unwrap();
    let issued = second_ca
        .issue_agent(&LeafOptions::new(agent_id("staging-bot")))
        .unwrap();
    let (cert, key) = issued.write(s.pki.path(), "second-ca-agent").unwrap();
    let newcomer = AgentClient::new(&s.pki, &AgentCert { cert, key, issued }, s.warden.addr);
    assert!(
        newcomer.handshake_refused().await,
        "an untrusted CA's agent got in"
    );
    let bundle = format!("{}{}", s.pki.ca.cert_pem(), second_ca.cert_pem());
    std::fs::write(&s.pki.ca_path, bundle).unwrap();
    s.warden.reload().expect("reload after the CA bundle swap");
    assert_eq!(
        status_of(&newcomer).await,
        Ok(200),
        "the new CA's agent is refused"
    );
    assert_eq!(
        status_of(&s.client("staging-bot")).await,
        Ok(200),
        "the old CA's agent is refused"
    );
    settle().await;

    // (c) A new CRL revoking someone else.
    let bystander = s.agent("payroll-bot");
    s.pki.revoke(&[&bystander]);
    s.warden.reload().expect("reload after the CRL swap");
    assert!(
        AgentClient::new(&s.pki, &bystander, s.warden.addr)
            .handshake_refused()
            .await
    );
    settle().await;

    stop.store(true, Ordering::Relaxed);
    let (fresh_ok, fresh_failures) = fresh_loop.await.unwrap();
    let (kept_ok, kept_failures) = kept_loop.await.unwrap();
    assert!(
        fresh_failures.is_empty(),
        "new-connection loop failed: {fresh_failures:?}"
    );
    assert!(
        kept_failures.is_empty(),
        "keep-alive loop failed: {kept_failures:?}"
    );
    assert!(
        fresh_ok >= 5 && kept_ok >= 5,
        "loops made too few requests: {fresh_ok} / {kept_ok}"
    );
}

#[tokio::test]
async fn a_connection_dies_with_its_certificate() {
    let s = Standard::start().await;
    let now = OffsetDateTime::now_utc();
    let short = s.pki.issue(
        "short-lived",
        &LeafOptions::new(agent_id("inventory-bot")).validity(
            now - time::Duration::seconds(60),
            now + time::Duration::seconds(3),
        ),
    );
    let not_after = {
        let left = short.issued.not_after - OffsetDateTime::now_utc();
        Instant::now() + Duration::try_from(left).unwrap_or_default()
    };
    // One `Arc<ClientConfig>`: its later connections offer the session of the first.
    let client = AgentClient::new(&s.pki, &short, s.warden.addr);
    let mut conn = open_and_use(&client, ITEMS).await;
    let resumed = open_and_use(&client, ITEMS).await;
    assert_eq!(resumed.handshake, Some(HandshakeKind::Resumed));
    drop(resumed);

    // Still served shortly before it expires.
    tokio::time::sleep_until((not_after - Duration::from_millis(700)).into()).await;
    let r = conn.get(ITEMS).await.expect("request before expiry");
    assert_eq!(r.status, 200);

    let limit = (not_after + Duration::from_millis(1500)).saturating_duration_since(Instant::now());
    let closed = conn.closed_within(limit).await;
    let closed = closed.expect("the connection outlived its certificate by more than 1.5 s");
    assert!(
        closed + Duration::from_millis(100) >= not_after,
        "closed before expiry"
    );
    // Neither through its earlier session...
    if let Ok(mut again) = KeepAlive::open(&client).await {
        assert_eq!(again.handshake, Some(HandshakeKind::Resumed));
        assert!(
            again.get(ITEMS).await.is_err(),
            "an expired certificate got in through session resumption"
        );
    }
    // ...nor with a full handshake.
    let fresh = AgentClient::new(&s.pki, &short, s.warden.addr);
    assert!(
        fresh.handshake_refused().await,
        "an expired certificate got in"
    );
    assert!(refused_handshakes(&s.warden.metrics(), "expired") >= 2);
}

#[tokio::test]
async fn a_revoked_client_cannot_resume_an_earlier_session() {
    let s = Standard::start().await;
    let cert = s.agent("inventory-bot");
    // One `Arc<ClientConfig>` for every connection: its session cache offers resumption.
    let client = AgentClient::new(&s.pki, &cert, s.warden.addr);
    let bystander = client_config(&s.pki, Some(&s.agent("staging-bot")), &[b"http/1.1"]);
    let bystander = AgentClient::with_config(bystander, s.warden.addr);
    for c in [&client, &bystander] {
        let first = open_and_use(c, ITEMS).await;
        assert_eq!(first.handshake, Some(HandshakeKind::Full));
        drop(first);
        let mut second = KeepAlive::open(c).await.expect("second connection");
        assert_eq!(
            second.handshake,
            Some(HandshakeKind::Resumed),
            "resumption never worked"
        );
        assert_eq!(second.get(ITEMS).await.unwrap().status, 200);
    }

    s.pki.revoke(&[&cert]);
    s.warden.reload().expect("reload");
    assert!(
        client.handshake_refused().await,
        "a revoked certificate came back through session resumption"
    );
    // A change of trust ends every earlier session: the bystander, still trusted, gets in
    // with a full handshake.
    let mut conn = open_and_use(&bystander, ITEMS).await;
    assert_eq!(conn.handshake, Some(HandshakeKind::Full));
    assert_eq!(conn.get(ITEMS).await.unwrap().status, 200);
}
