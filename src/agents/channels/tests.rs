use std::time::Duration;

use super::*;

fn id(name: &str) -> AgentId {
    AgentId::parse(&format!("spiffe://example.org/agent/{name}")).unwrap()
}

fn spec(kind: ChannelKind, agent: Option<&str>) -> ChannelSpec {
    ChannelSpec {
        kind,
        agent: agent.map(id),
        expires_at: None,
        revalidate: None,
    }
}

#[tokio::test]
async fn closing_an_agent_closes_its_channels_only() {
    let r = ChannelRegistry::new();
    let a1 = r.open(spec(ChannelKind::Connection, Some("a")));
    let a2 = r.open(spec(ChannelKind::Tunnel, Some("a")));
    let b = r.open(spec(ChannelKind::Connection, Some("b")));
    let anon = r.open(spec(ChannelKind::Connection, None));
    assert_eq!(r.count(ChannelKind::Connection), 3);
    assert_eq!(r.count_of(&id("a"), ChannelKind::Tunnel), 1);

    assert_eq!(r.close_agent(&id("a"), CloseReason::Quarantined), 2);
    assert_eq!(a1.closed().await, CloseReason::Quarantined);
    assert_eq!(a2.closed().await, CloseReason::Quarantined);
    assert_eq!(b.close_reason(), None);
    assert_eq!(anon.close_reason(), None);
    // The first reason given is the one kept.
    a1.close(CloseReason::Idle);
    assert_eq!(a1.close_reason(), Some(CloseReason::Quarantined));

    drop(a1);
    drop(a2);
    assert_eq!(r.count(ChannelKind::Connection), 2);
    assert_eq!(r.count(ChannelKind::Tunnel), 0);
    assert_eq!(
        r.close_kind(ChannelKind::Connection, CloseReason::Shutdown),
        2
    );
}

#[tokio::test]
async fn a_channel_ends_when_its_certificate_expires() {
    let r = ChannelRegistry::new();
    let mut s = spec(ChannelKind::Tunnel, Some("a"));
    let start = Instant::now();
    s.expires_at = Some(start + Duration::from_millis(200));
    let ch = r.open(s);
    let reason = tokio::time::timeout(Duration::from_secs(5), ch.closed()).await;
    assert_eq!(reason, Ok(CloseReason::Expired));
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(ch.close_reason(), Some(CloseReason::Expired));
}

struct Verdict(Option<CloseReason>);

impl Revalidate for Verdict {
    fn revalidate(&self) -> Check<'_> {
        Box::pin(async move { self.0 })
    }
}

#[tokio::test]
async fn a_reload_closes_the_channels_that_fail_their_check() {
    let r = ChannelRegistry::new();
    let mut keep = spec(ChannelKind::Connection, Some("a"));
    keep.revalidate = Some(Box::new(Verdict(None)));
    let mut doomed = spec(ChannelKind::Tunnel, Some("a"));
    doomed.revalidate = Some(Box::new(Verdict(Some(CloseReason::Policy))));
    let keep = r.open(keep);
    let doomed = r.open(doomed);
    let plain = r.open(spec(ChannelKind::Connection, Some("b")));
    assert_eq!(r.revalidate().await, 1);
    assert_eq!(doomed.closed().await, CloseReason::Policy);
    assert_eq!(keep.close_reason(), None);
    assert_eq!(plain.close_reason(), None);
}
