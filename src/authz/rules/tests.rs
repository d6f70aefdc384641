use super::*;

fn rule(upstream: Option<&str>, methods: &[&str], paths: &[&str]) -> RuleSpec {
    RuleSpec {
        upstream: match upstream {
            None => RuleUpstream::Role,
            Some(name) => ["inventory", "payroll"]
                .iter()
                .position(|n| *n == name)
                .map_or(RuleUpstream::Unknown, |i| {
                    RuleUpstream::Named(UpstreamId::new(i))
                }),
        },
        methods: methods.iter().map(|s| s.to_string()).collect(),
        paths: paths.iter().map(|s| s.to_string()).collect(),
        when: None,
    }
}

fn ups(ids: &[usize]) -> UpstreamSet {
    let mut set = UpstreamSet::with_capacity(2);
    for i in ids {
        set.insert(UpstreamId::new(*i));
    }
    set
}

fn input<'a>(u: usize, m: &'a Method, p: &'a str) -> RuleInput<'a> {
    RuleInput {
        upstream: UpstreamId::new(u),
        method: m,
        path: p,
        check_condition: &|_| None,
    }
}

#[test]
fn first_match_in_config_order_across_buckets() {
    let ups = ups(&[0]);
    let set = RuleSet::compile(
        &[
            rule(None, &["GET"], &["/**"]),
            rule(None, &["GET"], &["/inventory/items"]),
            rule(None, &["POST"], &["/inventory/orders"]),
        ],
        &ups,
        2,
        false,
    );
    let get = Method::GET;
    let post = Method::POST;
    assert_eq!(
        set.first_match(&input(0, &get, "/inventory/items"), false),
        RuleMatch::Matched(0)
    );
    assert_eq!(
        set.first_match(&input(0, &post, "/inventory/orders"), false),
        RuleMatch::Matched(2)
    );
    assert_eq!(
        set.first_match(&input(0, &post, "/inventory/items"), false),
        RuleMatch::NoMatch(None)
    );
    // Upstream 1 is outside the role: rules without `upstream` do not file there.
    assert_eq!(
        set.first_match(&input(1, &get, "/x"), false),
        RuleMatch::NoMatch(None)
    );
}

#[test]
fn rule_naming_an_upstream_files_only_there() {
    let ups = ups(&[0, 1]);
    let set = RuleSet::compile(&[rule(Some("payroll"), &[], &["/pay/*"])], &ups, 2, false);
    let get = Method::GET;
    assert_eq!(
        set.first_match(&input(1, &get, "/pay/1"), false),
        RuleMatch::Matched(0)
    );
    assert_eq!(
        set.first_match(&input(0, &get, "/pay/1"), false),
        RuleMatch::NoMatch(None)
    );
}

#[test]
fn deeper_literal_prefixes_keep_config_order() {
    let ups = ups(&[0]);
    let set = RuleSet::compile(
        &[
            rule(None, &["GET"], &["/svc/orders/*/detail"]),
            rule(None, &["GET"], &["/svc/**"]),
            rule(None, &["GET"], &["/svc/orders/42"]),
            rule(None, &["POST"], &["/svc/orders/**", "/svc/items"]),
            rule(None, &[], &[]),
        ],
        &ups,
        2,
        false,
    );
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    let at = |m: &Method, p: &str| set.first_match(&input(0, m, p), false);
    assert_eq!(at(&get, "/svc/orders/42"), RuleMatch::Matched(1));
    assert_eq!(at(&get, "/svc/orders/7/detail"), RuleMatch::Matched(0));
    assert_eq!(at(&post, "/svc/items"), RuleMatch::Matched(3));
    assert_eq!(at(&post, "/svc/orders/7/lines"), RuleMatch::Matched(3));
    assert_eq!(at(&post, "/svc/other"), RuleMatch::Matched(4));
    assert_eq!(at(&delete, "/elsewhere"), RuleMatch::Matched(4));
}

#[test]
fn near_miss_is_the_first_in_config_order_across_depths() {
    let ups = ups(&[0]);
    let when = WhenSpec {
        source_cidrs: vec!["10.0.0.0/8".into()],
        ..Default::default()
    };
    let conditional = |paths: &[&str]| RuleSpec {
        when: Some(when.clone()),
        ..rule(None, &[], paths)
    };
    let set = RuleSet::compile(
        &[
            conditional(&["/svc/orders/**"]),
            conditional(&["/svc/**"]),
            rule(None, &["POST"], &["/svc/orders/**"]),
        ],
        &ups,
        2,
        false,
    );
    let get = Method::GET;
    let post = Method::POST;
    let unmet = RuleInput {
        upstream: UpstreamId::new(0),
        method: &get,
        path: "/svc/orders/1",
        check_condition: &|_| Some(Unmet::SourceCidr),
    };
    assert_eq!(
        set.first_match(&unmet, false),
        RuleMatch::NoMatch(Some((0, Unmet::SourceCidr)))
    );
    let unmet_post = RuleInput {
        method: &post,
        ..unmet
    };
    assert_eq!(set.first_match(&unmet_post, false), RuleMatch::Matched(2));
}

#[test]
fn deep_deny_index_ignores_case() {
    let ups = ups(&[0]);
    let set = RuleSet::compile(&[rule(None, &[], &["/Svc/Admin/users/**"])], &ups, 2, true);
    let get = Method::GET;
    assert_eq!(
        set.first_match(&input(0, &get, "/SVC/admin/Users/1"), true),
        RuleMatch::Matched(0)
    );
    assert_eq!(
        set.first_match(&input(0, &get, "/svc/admin/userz"), true),
        RuleMatch::NoMatch(None)
    );
}

#[test]
fn deny_index_ignores_case() {
    let ups = ups(&[0]);
    let set = RuleSet::compile(&[rule(None, &[], &["/Admin/**"])], &ups, 2, true);
    let get = Method::GET;
    assert_eq!(
        set.first_match(&input(0, &get, "/ADMIN/x"), true),
        RuleMatch::Matched(0)
    );
    assert_eq!(
        set.first_match(&input(0, &get, "/admin"), true),
        RuleMatch::Matched(0)
    );
}

#[test]
fn methods() {
    let s = MethodSet::new(&["GET".into(), "PURGE".into()]);
    assert!(s.contains(&Method::GET));
    assert!(!s.contains(&Method::POST));
    assert!(s.contains(&Method::from_bytes(b"PURGE").unwrap()));
    assert!(MethodSet::new(&[]).contains(&Method::DELETE));
}

#[test]
fn a_rule_on_get_covers_head_and_nothing_else() {
    let s = MethodSet::new(&["GET".into()]);
    assert!(s.contains(&Method::HEAD));
    assert!(!s.contains(&Method::OPTIONS));
    let head_only = MethodSet::new(&["HEAD".into()]);
    assert!(head_only.contains(&Method::HEAD));
    assert!(!head_only.contains(&Method::GET));
}

#[test]
fn methods_compare_exactly() {
    // Validation refuses lower-case methods in rules; requests with them never reach the rules.
    let s = MethodSet::new(&["DELETE".into()]);
    assert!(!s.contains(&Method::from_bytes(b"delete").unwrap()));
}
