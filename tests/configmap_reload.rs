//! Kubernetes mounts a ConfigMap or Secret as a directory of symlinks into a timestamped
//! directory, and updates it by swapping the `..data` symlink: the files warden was told to read
//! never change name, only what `..data` points at. warden must reload on that swap.

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::client::AgentClient;
use support::fixture::{dead_addr, standard_policy};
use support::pki::TestPki;
use support::upstream;
use support::warden::config_yaml;
use warden::app::{start, StartOptions};
use warden::clock::Clock;

/// A directory laid out as the kubelet's atomic writer lays out a volume.
struct Projected {
    dir: PathBuf,
    generation: u32,
}

impl Projected {
    fn new(dir: PathBuf, files: &[(&str, &[u8])]) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = Projected { dir, generation: 0 };
        p.update(files);
        for (name, _) in files {
            symlink(Path::new("..data").join(name), p.dir.join(name)).unwrap();
        }
        p
    }

    /// Writes a new timestamped directory, points `..data` at it by an atomic rename of a new
    /// symlink, and removes the old directory, as the kubelet does.
    fn update(&mut self, files: &[(&str, &[u8])]) {
        self.generation += 1;
        let ts = format!("..2026_12_01_00_00_00.{:09}", self.generation);
        let new = self.dir.join(&ts);
        std::fs::create_dir(&new).unwrap();
        for (name, bytes) in files {
            std::fs::write(new.join(name), bytes).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(&ts, &tmp).unwrap();
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

async fn wait_for_status(client: &AgentClient, path: &str, want: u16) -> bool {
    support::wait::until(Duration::from_secs(10), || async {
        client.get(path).await.status == want
    })
    .await
}

#[tokio::test]
async fn a_configmap_and_a_secret_update_reload_warden() {
    support::init_crypto();
    let pki = TestPki::new();
    let inventory = upstream::start().await;
    let payroll = upstream::start().await;
    let policy = standard_policy(&inventory.url(), &payroll.url(), dead_addr(), "");
    // The CRL comes from a Secret-like volume, the config from a ConfigMap-like one.
    let crl = std::fs::read(&pki.crl_path).unwrap();
    let mut secret = Projected::new(pki.path().join("secret"), &[("crl.pem", &crl)]);
    let yaml = config_yaml(&pki, &policy).replace(
        &pki.crl_path.display().to_string(),
        &pki.path().join("secret/crl.pem").display().to_string(),
    );
    let mut configmap = Projected::new(
        pki.path().join("config"),
        &[("warden.yaml", yaml.as_bytes())],
    );
    let running = start(
        &configmap.dir.join("warden.yaml"),
        StartOptions {
            clock: Clock::system(),
            watch_files: true,
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let bot = pki.agent("inventory-bot");
    let client = AgentClient::new(&pki, &bot, running.agent_addr);
    assert_eq!(client.get("/inventory/items").await.status, 200);

    let narrowed = yaml.replace(
        "paths: [\"/inventory/**\"]",
        "paths: [\"/inventory/public/**\"]",
    );
    assert_ne!(narrowed, yaml);
    configmap.update(&[("warden.yaml", narrowed.as_bytes())]);
    assert!(
        wait_for_status(&client, "/inventory/items", 403).await,
        "the ConfigMap swap did not reload warden"
    );
    assert_eq!(client.get("/inventory/public/x").await.status, 200);

    pki.revoke(&[&bot]);
    let revoked = std::fs::read(&pki.crl_path).unwrap();
    secret.update(&[("crl.pem", &revoked)]);
    assert!(
        support::wait::until(Duration::from_secs(10), || client.handshake_refused()).await,
        "the Secret swap did not reload the CRL"
    );
    running.shutdown().await;
}
