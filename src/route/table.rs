//! The route table: the first route whose host and path prefix match names the upstream.

use std::collections::HashSet;

use super::host::canonical_host;
use crate::ids::{RouteId, UpstreamId};

#[derive(Debug, Clone)]
pub struct Route {
    /// Canonical host, when the route selects on it.
    pub host: Option<Box<str>>,
    /// Normalised prefix; matches on a segment boundary (`/inventory` never matches `/inventoryx`).
    pub prefix: Box<str>,
    pub upstream: UpstreamId,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    hosts: HashSet<Box<str>>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        let hosts = routes.iter().filter_map(|r| r.host.clone()).collect();
        RouteTable { routes, hosts }
    }

    /// Builds a route from config strings; the host is canonicalised like a request's.
    pub fn route(host: Option<&str>, prefix: Option<&str>, upstream: UpstreamId) -> Route {
        let host = host.map(|h| {
            canonical_host(h)
                .unwrap_or_else(|_| h.to_ascii_lowercase())
                .into()
        });
        let mut prefix = prefix.unwrap_or("/").to_string();
        if !prefix.starts_with('/') {
            prefix.insert(0, '/');
        }
        Route {
            host,
            prefix: prefix.into(),
            upstream,
        }
    }

    /// The first matching route.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<(RouteId, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, r)| {
                let host_ok = match &r.host {
                    None => true,
                    Some(h) => host == Some(h.as_ref()),
                };
                host_ok && prefix_matches(&r.prefix, path)
            })
            .map(|(i, r)| (RouteId::new(i), r))
    }

    pub fn get(&self, id: RouteId) -> Option<&Route> {
        self.routes.get(id.index())
    }

    /// Whether some route selects on this host (absolute-form targets must name one).
    pub fn is_route_host(&self, host: &str) -> bool {
        self.hosts.contains(host)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(t: &RouteTable, host: Option<&str>, path: &str) -> Option<usize> {
        t.lookup(host, path).map(|(id, _)| id.index())
    }

    #[test]
    fn first_match_on_segment_boundaries() {
        let u = UpstreamId::new;
        let t = RouteTable::new(vec![
            RouteTable::route(Some("Inventory.Internal"), Some("/inventory"), u(0)),
            RouteTable::route(None, Some("/inventory"), u(1)),
            RouteTable::route(None, Some("/payroll/"), u(2)),
        ]);
        assert_eq!(
            lookup(&t, Some("inventory.internal"), "/inventory/items"),
            Some(0)
        );
        assert_eq!(lookup(&t, None, "/inventory/items"), Some(1));
        assert_eq!(lookup(&t, Some("other"), "/inventory"), Some(1));
        assert_eq!(lookup(&t, None, "/inventoryx"), None);
        assert_eq!(lookup(&t, None, "/payroll/x"), Some(2));
        assert_eq!(lookup(&t, None, "/payroll"), None);
        assert_eq!(lookup(&t, None, "/"), None);
        assert!(t.is_route_host("inventory.internal"));
        assert!(!t.is_route_host("other"));
    }

    #[test]
    fn root_prefix_matches_all() {
        let t = RouteTable::new(vec![RouteTable::route(None, None, UpstreamId::new(0))]);
        assert_eq!(lookup(&t, None, "/"), Some(0));
        assert_eq!(lookup(&t, Some("x"), "/a/b"), Some(0));
    }
}
