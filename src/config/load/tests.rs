use std::io::Write;

use super::*;

fn load_text(text: &str) -> Result<LoadedConfig, Vec<ConfigError>> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    load(f.path())
}

/// The single error `text` gives.
fn error(text: &str) -> ConfigError {
    let mut errors = load_text(text).map(|_| ()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[track_caller]
fn assert_at(e: &ConfigError, key_path: &str, line: usize, col: usize, message: &str) {
    assert_eq!(
        (e.key_path.as_str(), e.line, e.col, e.message.as_str()),
        (key_path, line, col, message)
    );
}

#[test]
fn display_is_file_line_col_path_message() {
    let e = ConfigError {
        file: PathBuf::from("config/warden.yaml"),
        line: 12,
        col: 7,
        key_path: "roles.r.allow[1].upstream".to_string(),
        message: "unknown upstream \"x\"".to_string(),
    };
    assert_eq!(
        e.to_string(),
        "config/warden.yaml:12:7: roles.r.allow[1].upstream: unknown upstream \"x\""
    );
    let root = ConfigError {
        key_path: String::new(),
        ..e
    };
    assert_eq!(
        root.to_string(),
        "config/warden.yaml:12:7: (root): unknown upstream \"x\""
    );
}

#[test]
fn source_map_positions() {
    let yaml = "\
listen: 127.0.0.1:8443
roles:
  inventory-agent:
    upstreams: [inventory]
    allow:
      - upstream: inventory
        paths: [\"/a\", /b]
agents:
  - id: spiffe://example.org/a
";
    let m = SourceMap::build(yaml);
    assert_eq!(m.position("listen"), (1, 9));
    assert_eq!(m.position("roles"), (2, 1));
    assert_eq!(m.position("roles.inventory-agent"), (3, 3));
    assert_eq!(m.position("roles.inventory-agent.upstreams"), (4, 5));
    assert_eq!(m.position("roles.inventory-agent.upstreams[0]"), (4, 17));
    assert_eq!(m.position("roles.inventory-agent.allow[0]"), (6, 9));
    assert_eq!(
        m.position("roles.inventory-agent.allow[0].upstream"),
        (6, 19)
    );
    assert_eq!(
        m.position("roles.inventory-agent.allow[0].paths[0]"),
        (7, 17)
    );
    assert_eq!(
        m.position("roles.inventory-agent.allow[0].paths[1]"),
        (7, 23)
    );
    assert_eq!(m.position("agents[0].id"), (9, 9));
    // Unknown paths fall back to their nearest known ancestor, then to 1:1.
    assert_eq!(m.position("agents[0].roles[2]"), (9, 5));
    assert_eq!(m.position("nowhere"), (1, 1));
    assert_eq!(
        m.key_path_at(7, 18),
        Some("roles.inventory-agent.allow[0].paths[0]")
    );
    assert_eq!(m.key_path_at(6, 7), Some("roles.inventory-agent.allow"));
}

#[test]
fn deep_nesting_does_not_overflow_the_walker() {
    let yaml = format!("a: {}{}", "[".repeat(50), "]".repeat(50));
    let m = SourceMap::build(&yaml);
    assert_eq!(m.position("a[0][0][0]"), (1, 7));
    let yaml = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let m = SourceMap::build(&yaml);
    assert_eq!(m.position("a"), (1, 1));
    assert!(load_text(&yaml).is_err());
}

#[test]
fn a_valid_file_loads() {
    let cfg = load_text("listen: 127.0.0.1:8443\nmode: shadow\n").unwrap();
    assert_eq!(cfg.file.listen.as_deref(), Some("127.0.0.1:8443"));
    assert_eq!(cfg.file.mode, crate::config::schema::Mode::Shadow);
    let e = cfg.error_at("mode", "m");
    assert_eq!((e.line, e.col, e.key_path.as_str()), (2, 7, "mode"));
}

#[test]
fn unknown_key_at_the_top_suggests_the_nearest() {
    let e = error("listen: x\nupstream:\n  a: {url: x}\n");
    assert_at(
        &e,
        "upstream",
        2,
        1,
        "unknown key \"upstream\"; did you mean \"upstreams\"?",
    );
}

#[test]
fn unknown_keys_at_every_depth() {
    let e = error("tls:\n  cert: a\n  kye: b\n");
    assert_at(
        &e,
        "tls.kye",
        3,
        3,
        "unknown key \"kye\"; did you mean \"key\"?",
    );
    let e = error("roles:\n  r:\n    allow:\n      - methods: [GET]\n        pathz: [/a]\n");
    assert_at(
        &e,
        "roles.r.allow[0].pathz",
        5,
        9,
        "unknown key \"pathz\"; did you mean \"paths\"?",
    );
    let e = error("agents:\n  - id: x\n    rate_limit: { per_second: 1, brust: 2 }\n");
    assert_at(
        &e,
        "agents[0].rate_limit.brust",
        3,
        34,
        "unknown key \"brust\"; did you mean \"burst\"?",
    );
    let e = error("telemetry:\n  colour: blue\n");
    assert_eq!(e.key_path, "telemetry.colour");
    assert!(
        e.message
            .starts_with("unknown key \"colour\"; expected one of: audit_log,"),
        "{e}"
    );
}

#[test]
fn type_errors_are_located() {
    let e = error("limits:\n  max_connections: lots\n");
    assert_at(
        &e,
        "limits.max_connections",
        2,
        20,
        "expected a whole number, 0 or more",
    );
    let e = error("roles:\n  r:\n    allow:\n      - methods: GET\n");
    assert_at(
        &e,
        "roles.r.allow[0].methods",
        4,
        18,
        "expected a list, e.g. [a, b]",
    );
    let e = error("agents:\n  - id: a\n    rate_limit: {per_second: fast}\n");
    assert_at(
        &e,
        "agents[0].rate_limit.per_second",
        3,
        30,
        "expected a number",
    );
}

#[test]
fn bad_durations_and_enum_values() {
    let e = error("limits:\n  idle_timeout: 10\n");
    assert_at(
        &e,
        "limits.idle_timeout",
        2,
        17,
        "`10` needs a unit: ms, s, m, h or d",
    );
    let e = error("anomaly:\n  action: quarantien\n");
    assert_at(
        &e,
        "anomaly.action",
        2,
        11,
        "unknown value \"quarantien\"; expected one of: alert, quarantine; did you mean \"quarantine\"?",
    );
}

#[test]
fn missing_required_keys_name_the_mapping() {
    let e = error("listen: x\ntls:\n  cert: a\n  key: b\n");
    assert_at(
        &e,
        "tls.client_ca",
        2,
        1,
        "missing required key \"client_ca\"",
    );
    let e = error("agents:\n  - roles: [a]\n    labels: {a: b}\n");
    assert_at(&e, "agents[0].id", 2, 5, "missing required key \"id\"");
}

#[test]
fn duplicate_keys_are_refused() {
    let e = error("listen: a\nlisten: b\n");
    assert_eq!((e.line, e.key_path.as_str()), (2, "listen"));
    assert!(e.message.contains("duplicate"), "{e}");
}

#[test]
fn empty_and_comment_only_files_are_refused() {
    for text in [
        "",
        "\n\n",
        "# just a comment\n   # another\n",
        "---\n",
        "~\n",
    ] {
        let e = error(text);
        assert_eq!((e.line, e.col, e.key_path.as_str()), (1, 1, ""));
        assert!(e.message.contains("empty"), "{text:?}: {e}");
    }
    let e = error("- listen\n");
    assert!(e.message.contains("must be a mapping"), "{e}");
}

#[test]
fn other_shapes_are_refused() {
    let e = error("listen: a\n---\nlisten: b\n");
    assert!(e.message.contains("single YAML document"), "{e}");
    // A syntax error before the first key is a syntax error, not an "empty file".
    let e = error("@listen: a\n");
    assert!(!e.message.contains("empty"), "{e}");
    let e = error("listen: [a\n");
    assert_eq!((e.line, e.key_path.as_str()), (1, "listen"));
    let missing = load(Path::new("/nonexistent/warden.yaml")).unwrap_err();
    assert!(
        missing[0].message.starts_with("cannot read"),
        "{:?}",
        missing
    );
}

#[test]
fn control_characters_do_not_reach_messages() {
    let e = error("mode: \"\\u001b[31m\"\n");
    assert!(!e.message.chars().any(char::is_control), "{e}");
}

#[test]
fn agent_protocol_keys_are_checked_like_every_other() {
    let e = error("roles:\n  r:\n    allow:\n      - mcp: { tool: [a] }\n");
    assert_at(
        &e,
        "roles.r.allow[0].mcp.tool",
        4,
        16,
        "unknown key \"tool\"; did you mean \"tools\"?",
    );
    let e = error("roles:\n  r:\n    deny:\n      - a2a:\n          method: [x]\n");
    assert_eq!(e.key_path, "roles.r.deny[0].a2a.method", "{e}");
    assert!(e.message.contains("did you mean \"methods\"?"), "{e}");
    let e = error("routes:\n  - upstream: u\n    protocol: mpc\n");
    assert_eq!(e.key_path, "routes[0].protocol", "{e}");
    assert!(e.message.contains("did you mean \"mcp\"?"), "{e}");
    let e = error("upstreams:\n  u:\n    url: http://x\n    pin_tools: enforced\n");
    assert_eq!(e.key_path, "upstreams.u.pin_tools", "{e}");
    assert!(e.message.contains("did you mean \"enforce\"?"), "{e}");
}

#[test]
fn workers_is_auto_or_a_number() {
    use crate::config::schema::Workers;
    let workers =
        |text: &str| load_text(&format!("listen: 127.0.0.1:8443\n{text}")).map(|c| c.file.workers);
    assert_eq!(workers("").unwrap(), Workers::Auto);
    assert_eq!(workers("workers: auto\n").unwrap(), Workers::Auto);
    assert_eq!(workers("workers: 3\n").unwrap(), Workers::Count(3));
    for bad in [
        "workers: many\n",
        "workers: -2\n",
        "workers: 1.5\n",
        "workers: [2]\n",
    ] {
        let errors = workers(bad).unwrap_err();
        let text = format!("{errors:?}");
        assert!(text.contains("workers"), "{bad}: {text}");
        assert!(text.contains("auto"), "{bad}: {text}");
    }
}
