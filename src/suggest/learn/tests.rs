use super::*;

fn seen(method: &str, path: &str, rpc: Option<(&str, &str)>) -> Seen {
    Seen {
        agent: "spiffe://example.org/a".into(),
        method: method.into(),
        host: None,
        path: path.into(),
        upstream: "crm".into(),
        route: Some(0),
        rpc_method: rpc.map(|r| r.0.to_string()),
        rpc_target: rpc.map(|r| r.1.to_string()),
        unix_ms: Some(1),
        deny_rule_matched: false,
    }
}

#[test]
fn mcp_tools_are_learned_per_path_and_plumbing_is_not_a_tool() {
    let mut l = Learned::default();
    l.add(&seen("GET", "/mcp", None));
    l.add(&seen("POST", "/mcp", Some(("initialize", ""))));
    l.add(&seen("POST", "/mcp", Some(("tools/list", ""))));
    l.add(&seen(
        "POST",
        "/mcp",
        Some(("tools/call", "search_accounts")),
    ));
    l.add(&seen("POST", "/mcp", Some(("tools/call", "get_customer"))));
    l.add(&seen(
        "POST",
        "/mcp/",
        Some(("resources/read", "crm://customers/7")),
    ));
    l.add(&seen("POST", "/mcp", Some(("completion/complete", ""))));
    l.add(&seen("DELETE", "/mcp", None));
    l.add(&seen("GET", "/health", None));
    let rules = rules_for("crm", &l.upstreams["crm"]);
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(rules[0].paths, ["/health"]);
    assert_eq!(rules[0].rpc, None);
    let mcp = rules[1].rpc.as_ref().unwrap();
    assert_eq!(rules[1].paths, ["/mcp"]);
    assert_eq!(rules[1].methods, ["DELETE", "GET", "POST"]);
    assert!(!mcp.a2a);
    assert_eq!(
        mcp.tools.iter().collect::<Vec<_>>(),
        ["get_customer", "search_accounts"]
    );
    assert_eq!(
        mcp.resources.iter().collect::<Vec<_>>(),
        ["crm://customers/7"]
    );
    assert_eq!(
        mcp.methods.iter().collect::<Vec<_>>(),
        ["completion/complete"]
    );
    assert!(mcp.prompts.is_empty());
}

#[test]
fn a2a_methods_are_learned_as_methods() {
    let mut l = Learned::default();
    l.add(&seen("POST", "/a2a", Some(("message/send", ""))));
    l.add(&seen("POST", "/a2a", Some(("tasks/get", "t-1"))));
    let r = rules_for("crm", &l.upstreams["crm"]);
    let rpc = r[0].rpc.as_ref().unwrap();
    assert!(rpc.a2a);
    assert_eq!(
        rpc.methods.iter().collect::<Vec<_>>(),
        ["message/send", "tasks/get"]
    );
}

#[test]
fn patterns_are_grouped_by_the_methods_used_on_them() {
    let mut l = Learned::default();
    for i in 0..5 {
        l.add(&seen("GET", &format!("/inventory/items/{}", 100 + i), None));
    }
    l.add(&seen("GET", "/inventory/items", None));
    l.add(&seen("HEAD", "/inventory/items", None));
    l.add(&seen("POST", "/inventory/orders", None));
    l.add(&seen("PUT", "/inventory/items/7", None));
    let rules = rules_for("crm", &l.upstreams["crm"]);
    let got: Vec<(Vec<String>, Vec<String>)> =
        rules.into_iter().map(|r| (r.methods, r.paths)).collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            (s(&["GET"]), s(&["/inventory/items"])),
            (s(&["GET", "PUT"]), s(&["/inventory/items/*"])),
            (s(&["POST"]), s(&["/inventory/orders"])),
        ]
    );
    assert_eq!(l.requests, 9);
}
