use super::*;
use std::io::Write;

fn load_text(text: &str) -> Result<LoadedConfig, Vec<ConfigError>> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    load(f.path())
}

#[test]
fn scratch() {
    for t in [
        "listen: x\ntls:\n  cert: a\n  key: b\n",
        "listen: x\ntls: {}\n",
        "listen: x\ntls:\n  crl: [a, b]\nmode: shadow\n",
        "listen: x\nagents:\n  - roles: [a]\n    labels: {a: b}\n",
        "listen: x\nagents:\n  - id: x\n    rate_limit: {burst: 3}\n",
        "listen: x\nroles:\n  r:\n    allow:\n      - methods: GET\n",
        "listen: x\nroles:\n  r:\n    allow: 3\n",
        "listen: x\nlimits:\n  max_connections: -3\n",
        "listen: x\nlimits:\n  max_connections: ab\n",
        "listen: [x\n",
        "listen: x\n---\nlisten: y\n",
        "- a\n",
        "~\n",
        "listen: \"\\u0007\"\nmode: \"\\u0007\"\n",
    ] {
        let e = load_text(t).map(|_| ()).unwrap_err();
        eprintln!("{t}=> {:?}\n", e[0]);
    }
    panic!();
}
