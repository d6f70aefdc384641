use super::*;

#[test]
fn well_formed_ids_parse_and_keep_their_parts() {
    for id in [
        "spiffe://example.org/agent/inventory-bot",
        "spiffe://example.org/a",
        "spiffe://td_1.example-2.org/A.b-c_d/E/...x/a..b",
        "spiffe://x/UPPER/Case",
    ] {
        let parsed = AgentId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(parsed.as_str(), id);
    }
    let id = AgentId::parse("spiffe://example.org/agent/bot").unwrap();
    assert_eq!(id.trust_domain(), "example.org");
    assert_eq!(id.path(), "/agent/bot");
}

#[test]
fn membership_of_a_trust_domain_is_exact() {
    let id = AgentId::parse("spiffe://example.org/agent/bot").unwrap();
    assert!(id.is_in("example.org"));
    for other in [
        "example",
        "example.or",
        "example.org.evil",
        "EXAMPLE.ORG",
        "",
        "example.org/agent",
    ] {
        assert!(!id.is_in(other), "{other}");
    }
}

#[test]
fn every_malformed_form_is_refused_with_its_reason() {
    use SpiffeIdError::*;
    let cases: &[(&str, SpiffeIdError)] = &[
        ("SPIFFE://example.org/a", Scheme),
        ("Spiffe://example.org/a", Scheme),
        ("spiffe:/example.org/a", Scheme),
        ("https://example.org/a", Scheme),
        ("example.org/a", Scheme),
        ("", Scheme),
        ("spiffe://EXAMPLE.org/a", TrustDomainChar),
        ("spiffe://Example.org/a", TrustDomainChar),
        ("spiffe://example.org:443/a", TrustDomainChar),
        ("spiffe://user@example.org/a", TrustDomainChar),
        ("spiffe://exa%6dple.org/a", TrustDomainChar),
        ("spiffe://ex ample.org/a", TrustDomainChar),
        ("spiffe:///a", EmptyTrustDomain),
        ("spiffe://example.org", NoPath),
        ("spiffe://example.org/", EmptySegment),
        ("spiffe://example.org/a/", EmptySegment),
        ("spiffe://example.org//a", EmptySegment),
        ("spiffe://example.org/a//b", EmptySegment),
        ("spiffe://example.org/./a", DotSegment),
        ("spiffe://example.org/a/..", DotSegment),
        ("spiffe://example.org/a/../b", DotSegment),
        ("spiffe://example.org/a%2Fb", PathChar),
        ("spiffe://example.org/%61", PathChar),
        ("spiffe://example.org/a?x=1", PathChar),
        ("spiffe://example.org/a#frag", PathChar),
        ("spiffe://example.org/a b", PathChar),
        ("spiffe://example.org/a\0", PathChar),
        ("spiffe://example.org/caf\u{e9}", PathChar),
        ("spiffe://example.org/a*", PathChar),
        ("spiffe://example.org/*", PathChar),
        ("spiffe://example.org/a:b", PathChar),
        ("spiffe://example.org/a@b", PathChar),
        ("spiffe://example.org/a+b", PathChar),
        ("spiffe://example.org/a~b", PathChar),
    ];
    for (id, want) in cases {
        assert_eq!(AgentId::parse(id).err(), Some(*want), "{id:?}");
    }
    let long_domain = format!("spiffe://{}/a", "d".repeat(256));
    assert_eq!(AgentId::parse(&long_domain).err(), Some(TrustDomainTooLong));
    let long = format!("spiffe://example.org/{}", "a".repeat(2100));
    assert_eq!(AgentId::parse(&long).err(), Some(TooLong));
}

#[test]
fn patterns_allow_whole_segment_wildcards_only() {
    assert!(check_agent_pattern("spiffe://example.org/agent/support/*").is_ok());
    assert!(check_agent_pattern("spiffe://example.org/fleet/**").is_ok());
    assert!(check_agent_pattern("spiffe://example.org/agent/bot").is_ok());
    assert_eq!(
        check_agent_pattern("spiffe://example.org/agent/bot-*"),
        Err(SpiffeIdError::Wildcard)
    );
    assert_eq!(
        check_agent_pattern("spiffe://Example.org/agent/*"),
        Err(SpiffeIdError::TrustDomainChar)
    );
    assert_eq!(
        check_agent_pattern("spiffe://example.org/agent/*/"),
        Err(SpiffeIdError::EmptySegment)
    );
}

#[test]
fn trust_domains() {
    assert!(check_trust_domain("example.org").is_ok());
    assert!(check_trust_domain("Example.org").is_err());
    assert!(check_trust_domain("").is_err());
    assert!(check_trust_domain("a:1").is_err());
}

#[test]
fn upstream_sets() {
    let mut s = UpstreamSet::with_capacity(130);
    s.insert(UpstreamId::new(0));
    s.insert(UpstreamId::new(129));
    assert!(s.contains(UpstreamId::new(129)));
    assert!(!s.contains(UpstreamId::new(1)));
    assert!(!s.contains(UpstreamId::new(100_000)));
    let mut t = UpstreamSet::with_capacity(130);
    t.union_with(&s);
    assert_eq!(
        t.iter().map(UpstreamId::index).collect::<Vec<_>>(),
        vec![0, 129]
    );
}
