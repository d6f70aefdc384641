//! The agent-protocol parts of a config (`mcp`, `a2a`, `protocol`, `pin_tools`).

use super::*;

/// An MCP route to `inventory`, an A2A route to `payroll`; lines 13-19.
const ROUTES: &str = "\
routes:
  - path_prefix: /mcp
    upstream: inventory
    protocol: mcp
  - path_prefix: /a2a
    upstream: payroll
    protocol: a2a
";

fn role(rules: &str) -> String {
    format!("{ROUTES}roles:\n  r:\n    upstreams: [inventory, payroll]\n{rules}")
}

#[test]
fn a_realistic_agent_protocol_policy_has_no_error() {
    let f = Fixture::new();
    let errors = f.errors(&format!(
        "{HEADER}{}",
        role(
            "    allow:
      - upstream: inventory
        paths: [\"/mcp\"]
        mcp:
          tools: [\"search_*\", get_customer]
          resources: [\"crm://customers/*\"]
          prompts: [summarise]
          methods: [completion/complete, logging/setLevel]
          arguments: { region: [eu, us], limit: [10, 20], dry_run: [true] }
      - upstream: payroll
        paths: [\"/a2a\"]
        a2a: { methods: [message/send, GetTask] }
    deny:
      - mcp: { tools: [\"delete_*\"] }
"
        )
    ));
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn names_and_methods_are_checked_with_suggestions() {
    let f = Fixture::new();
    let e = f.one_error(&role(
        "    allow:\n      - upstream: inventory\n        mcp: { methods: [logging/setlevel] }\n",
    ));
    assert_at(
        &e,
        "roles.r.allow[0].mcp.methods[0]",
        25,
        26,
        "did you mean \"logging/setLevel\"?",
    );
    let e = f.one_error(&role(
        "    allow:\n      - upstream: payroll\n        a2a: { methods: [message/sned] }\n",
    ));
    assert_at(
        &e,
        "roles.r.allow[0].a2a.methods[0]",
        25,
        26,
        "did you mean \"message/send\"?",
    );
    let e = f.one_error(&role(
        "    allow:\n      - upstream: inventory\n        mcp: { methods: [tools/call] }\n",
    ));
    assert!(e.message.contains("mcp.tools"), "{e}");
    let e = f.one_error(&role(
        "    allow:\n      - upstream: inventory\n        mcp: { methods: [tools/list] }\n",
    ));
    assert!(e.message.contains("session plumbing"), "{e}");
    let e = f.one_error(&role(
        "    allow:\n      - upstream: inventory\n        mcp: { tools: [\"get customer\"] }\n",
    ));
    assert_eq!(e.key_path, "roles.r.allow[0].mcp.tools[0]", "{e}");
    let e = f.one_error(&role(
        "    allow:\n      - upstream: inventory\n        mcp: { arguments: { region: [eu] } }\n",
    ));
    assert_eq!(e.key_path, "roles.r.allow[0].mcp.arguments", "{e}");
}

#[test]
fn a_part_that_can_never_apply_is_refused() {
    let f = Fixture::new();
    // An a2a part on a rule whose upstream only an MCP route reaches.
    let e = f.one_error(&role(
        "    allow:\n      - upstream: inventory\n        a2a: { methods: [message/send] }\n",
    ));
    assert_at(
        &e,
        "roles.r.allow[0].a2a",
        25,
        9,
        "no route with `protocol: a2a`",
    );
    let e = f.one_error(&role("    deny:\n      - mcp: {}\n"));
    assert_eq!(e.key_path, "roles.r.deny[0]", "{e}");
    assert!(e.message.contains("names nothing"), "{e}");
    let pinned = HEADER.replace(
        "    url: https://payroll.internal:8443\n",
        "    url: https://payroll.internal:8443\n    pin_tools: alert\n",
    );
    let errors = f.errors(&format!("{pinned}{ROUTES}"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].key_path, "upstreams.payroll.pin_tools");
}
