use super::*;
use crate::decision::RuleKind;
use crate::ids::RoleId;
use crate::protocol::message::{message, read};
use crate::protocol::ListKind;

fn r(kind: RuleKind, index: u32) -> RuleRef {
    RuleRef {
        role: RoleId::new(0),
        kind,
        index,
    }
}

fn mcp(tools: &[&str], args: &[(&str, &[&str])]) -> RpcRule {
    RpcRule::compile(&RpcSpec {
        mcp: Some(McpSpec {
            tools: tools.iter().map(|s| s.to_string()).collect(),
            arguments: args
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        v.iter().map(|s| ArgValue::Str(s.to_string())).collect(),
                    )
                })
                .collect(),
            ..Default::default()
        }),
        a2a: None,
    })
}

fn judge_text(
    denies: &[(u32, Option<&RpcRule>)],
    allows: &[(u32, Option<&RpcRule>)],
    body: &str,
) -> Judgement {
    let tree = read(body.as_bytes()).unwrap();
    let m = message(&tree, Protocol::Mcp).unwrap();
    judge(
        denies.iter().map(|(i, x)| (r(RuleKind::Deny, *i), *x)),
        allows.iter().map(|(i, x)| (r(RuleKind::Allow, *i), *x)),
        Some(&m),
    )
}

fn call(name: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{args}}}}}"#
    )
}

#[test]
fn tools_need_a_naming_allow_and_deny_wins() {
    let search = mcp(&["search_*"], &[]);
    let get = mcp(&["get_customer"], &[("region", &["eu", "us"])]);
    let deny = mcp(&["delete_*"], &[]);
    let allows = [(0, Some(&search)), (1, Some(&get))];
    let denies = [(0, Some(&deny))];
    assert_eq!(
        judge_text(&denies, &allows, &call("search_x", "{}")),
        Judgement::Allow(r(RuleKind::Allow, 0))
    );
    assert_eq!(
        judge_text(
            &denies,
            &allows,
            &call("get_customer", r#"{"region":"eu"}"#)
        ),
        Judgement::Allow(r(RuleKind::Allow, 1))
    );
    assert_eq!(
        judge_text(
            &denies,
            &allows,
            &call("get_customer", r#"{"region":"cn"}"#)
        ),
        Judgement::NoAllow(Some(r(RuleKind::Allow, 0)))
    );
    assert_eq!(
        judge_text(&denies, &allows, &call("get_customer", "{}")),
        Judgement::NoAllow(Some(r(RuleKind::Allow, 0)))
    );
    assert_eq!(
        judge_text(&denies, &allows, &call("delete_customer", "{}")),
        Judgement::Deny(r(RuleKind::Deny, 0))
    );
    // Plumbing passes under any covering allow rule, even one naming nothing.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(
        judge_text(&[], &[(3, None)], ping),
        Judgement::Allow(r(RuleKind::Allow, 3))
    );
    assert_eq!(
        judge_text(&[], &[(3, None)], &call("search_x", "{}")),
        Judgement::NoAllow(Some(r(RuleKind::Allow, 3)))
    );
    assert_eq!(judge_text(&[], &[], ping), Judgement::NoAllow(None));
    // A deny rule without an mcp part refuses everything it covers.
    assert_eq!(
        judge_text(&[(2, None)], &allows, ping),
        Judgement::Deny(r(RuleKind::Deny, 2))
    );
}

#[test]
fn lists_show_what_may_be_used() {
    let get = mcp(&["get_customer"], &[("region", &["eu"])]);
    assert!(get.allows_entry(ListKind::Tools, "get_customer"));
    assert!(!get.allows_entry(ListKind::Tools, "delete_customer"));
    let deny_cond = mcp(&["get_customer"], &[("region", &["cn"])]);
    assert!(!deny_cond.hides_entry(ListKind::Tools, "get_customer"));
    let deny = mcp(&["delete_*"], &[]);
    assert!(deny.hides_entry(ListKind::Tools, "delete_customer"));
    let deny_calls = RpcRule::compile(&RpcSpec {
        mcp: Some(McpSpec {
            methods: vec!["tools/call".into()],
            ..Default::default()
        }),
        a2a: None,
    });
    assert!(deny_calls.hides_entry(ListKind::Tools, "anything"));
    assert!(!deny_calls.hides_entry(ListKind::Prompts, "anything"));
}

#[test]
fn a2a_methods() {
    let rule = RpcRule::compile(&RpcSpec {
        mcp: None,
        a2a: Some(vec!["message/send".into(), "tasks/get".into()]),
    });
    let tree =
        read(br#"{"jsonrpc":"2.0","id":1,"method":"tasks/cancel","params":{"id":"t"}}"#).unwrap();
    let m = message(&tree, Protocol::A2a).unwrap();
    assert!(!rule.allows(&m));
    let get =
        read(br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t"}}"#).unwrap();
    assert!(rule.denies(&message(&get, Protocol::A2a).unwrap()));
    // An a2a part says nothing on an MCP route.
    let tree =
        read(br#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t"}}"#).unwrap();
    let m = message(&tree, Protocol::Mcp).unwrap();
    assert!(!rule.allows(&m));
}
