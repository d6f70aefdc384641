//! The Kubernetes manifests in deploy/kubernetes, validated offline by .ci/kubernetes/validate.py
//! (schemas from the PyPI package `kubernetes-validate` and the bundled prometheus-operator CRD
//! schemas, the SPEC section 8 contract, `warden check` on the ConfigMap's config). `.ci/run`
//! makes the Python environment in target/kubernetes-venv; WARDEN_KUBERNETES_PYTHON overrides it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn python() -> PathBuf {
    std::env::var_os("WARDEN_KUBERNETES_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kubernetes-venv/bin/python")
        })
}

fn validate(base: &Path) -> Output {
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: python3 -m venv target/kubernetes-venv && \
         target/kubernetes-venv/bin/pip install kubernetes-validate (as .ci/run does)",
        python.display()
    );
    Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.ci/kubernetes/validate.py"
        ))
        .args(["--warden", env!("CARGO_BIN_EXE_warden"), "--base"])
        .arg(base)
        .output()
        .unwrap()
}

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

#[test]
#[ignore = "needs python3 with kubernetes-validate (installed by .ci/run)"]
fn the_manifests_validate_offline() {
    let out = validate(&base());
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "Deployment/warden matches the Kubernetes 1.30.0 schema (strict)",
        "Deployment/warden matches the Kubernetes 1.37.0 schema (strict)",
        "ServiceMonitor/warden matches the servicemonitor-monitoring-v1.json CRD schema (strict)",
        "PrometheusRule/warden matches the prometheusrule-monitoring-v1.json CRD schema (strict)",
        "`warden check` accepts the ConfigMap's warden.yaml",
        ", 0 failing",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}`");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
#[ignore = "needs python3 with kubernetes-validate (installed by .ci/run)"]
fn broken_manifests_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("kubernetes");
    copy_dir(&base(), &k);
    edit(
        &k.join("deployment.yaml"),
        "  replicas: 2\n",
        "  replicas: 2\n  replica: 3\n",
    );
    edit(
        &k.join("deployment.yaml"),
        "mountPath: /etc/warden/config\n",
        "mountPath: /etc/warden/config\n              subPath: warden.yaml\n",
    );
    edit(
        &k.join("deployment.yaml"),
        "terminationGracePeriodSeconds: 45",
        "terminationGracePeriodSeconds: 30",
    );
    edit(
        &k.join("servicemonitor.yaml"),
        "interval: 15s",
        "intervall: 15s",
    );
    edit(&k.join("warden.yaml"), "token_file:", "tokenfile:");
    std::fs::write(k.join("forgotten.yaml"), "kind: ConfigMap\n").unwrap();
    let out = validate(&k);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "FAIL  Deployment/warden against Kubernetes 1.30.0: spec: Additional properties are not allowed ('replica' was unexpected)",
        "FAIL  ServiceMonitor/warden matches the servicemonitor-monitoring-v1.json CRD schema (strict) spec.endpoints.0: Additional properties are not allowed ('intervall' was unexpected)",
        "FAIL  --config /etc/warden/config/warden.yaml is read from a ConfigMap directory mount (no subPath)",
        "FAIL  terminationGracePeriodSeconds 30 > preStop 5 s + warden's 30 s drain",
        "FAIL  forgotten.yaml is listed in kubernetes/kustomization.yaml",
        "admin.tokenfile: unknown key \"tokenfile\"; did you mean \"token_file\"?",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}` in\n{stdout}");
    }
}
