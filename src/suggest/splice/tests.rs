use super::*;
use crate::suggest::learn::RuleSpec;

fn role(name: &str) -> RoleSpec {
    RoleSpec {
        name: name.into(),
        comment: "learned".into(),
        upstreams: vec!["inv".into()],
        require_token: false,
        rules: vec![RuleSpec {
            upstream: "inv".into(),
            methods: vec!["GET".into()],
            paths: vec!["/x/*".into()],
            rpc: None,
        }],
    }
}

fn apply(text: &str, new: &[RoleSpec], drop: &[&str], agents: &[(usize, &str)]) -> String {
    let drop: BTreeSet<String> = drop.iter().map(|s| s.to_string()).collect();
    let agents: BTreeMap<usize, Vec<String>> = agents
        .iter()
        .map(|(i, r)| (*i, vec![r.to_string()]))
        .collect();
    splice(
        text,
        &Plan {
            new_roles: new,
            drop_roles: &drop,
            agent_roles: &agents,
        },
    )
    .unwrap()
}

const CONFIG: &str = "\
# top comment
listen: 127.0.0.1:8443   # the listener
roles:
  # the old role
  old:
    upstreams: [inv]
    allow:
      - paths: [\"/**\"]   # everything
  # kept, with its comment
  other:
    upstreams: [inv]
# agents below
agents:
  - id: spiffe://e/a
    roles:
      - old
    labels: { x: y }
  - id: spiffe://e/b
    roles: [other]
  - {id: spiffe://e/c}
  - id: spiffe://e/d
telemetry:
  audit_log: null
";

#[test]
fn only_roles_and_agent_roles_change() {
    let out = apply(
        CONFIG,
        &[role("learned-a"), role("learned-c"), role("learned-d")],
        &["old"],
        &[(0, "learned-a"), (2, "learned-c"), (3, "learned-d")],
    );
    let expected = "\
# top comment
listen: 127.0.0.1:8443   # the listener
roles:
  # kept, with its comment
  other:
    upstreams: [inv]
  # learned
  learned-a:
    upstreams: [inv]
    allow:
      - upstream: inv
        methods: [GET]
        paths: [\"/x/*\"]
  # learned
  learned-c:
    upstreams: [inv]
    allow:
      - upstream: inv
        methods: [GET]
        paths: [\"/x/*\"]
  # learned
  learned-d:
    upstreams: [inv]
    allow:
      - upstream: inv
        methods: [GET]
        paths: [\"/x/*\"]
# agents below
agents:
  - id: spiffe://e/a
    roles: [learned-a]
    labels: { x: y }
  - id: spiffe://e/b
    roles: [other]
  - {id: spiffe://e/c, roles: [learned-c]}
  - id: spiffe://e/d
    roles: [learned-d]
telemetry:
  audit_log: null
";
    assert_eq!(out, expected);
}

#[test]
fn a_config_without_roles_gets_a_block_at_the_end() {
    let text = "listen: x\nagents:\n  - id: spiffe://e/a\n    roles:\n    labels: {}";
    let out = apply(text, &[role("learned-a")], &[], &[(0, "learned-a")]);
    assert!(
        out.starts_with("listen: x\nagents:\n  - id: spiffe://e/a\n    roles: [learned-a]\n    labels: {}\nroles:\n  # learned\n  learned-a:\n"),
        "{out}"
    );
    let parsed: crate::config::schema::ConfigFile = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(parsed.agents[0].roles, ["learned-a"]);
    assert_eq!(parsed.roles["learned-a"].allow.len(), 1);
}

#[test]
fn the_last_role_at_the_end_of_the_file_is_replaced_whole() {
    let text =
        "agents:\n  - id: spiffe://e/a\n    roles: [old]\nroles:\n  old:\n    upstreams: [inv]";
    let out = apply(text, &[role("learned-a")], &["old"], &[(0, "learned-a")]);
    assert!(!out.contains("old"), "{out}");
    let parsed: crate::config::schema::ConfigFile = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(parsed.roles.keys().collect::<Vec<_>>(), ["learned-a"]);
}

#[test]
fn flow_style_roles_with_kept_entries_are_refused_not_mangled() {
    let text = "roles: {keep: {upstreams: [inv]}, old: {}}\nagents:\n  - id: spiffe://e/a\n    roles: [old]\n";
    let drop = BTreeSet::from(["old".to_string()]);
    let agents = BTreeMap::from([(0, vec!["learned-a".to_string()])]);
    let err = splice(
        text,
        &Plan {
            new_roles: &[role("learned-a")],
            drop_roles: &drop,
            agent_roles: &agents,
        },
    )
    .unwrap_err();
    assert!(err.contains("flow style"), "{err}");
    assert!(splice(
        "{a: 1}",
        &Plan {
            new_roles: &[],
            drop_roles: &drop,
            agent_roles: &agents
        }
    )
    .is_err());
}
