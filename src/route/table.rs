//! The route table: the first route whose host and path prefix match names the upstream.

use std::collections::HashSet;

use super::host::canonical_host;

#[derive(Debug, Clone)]
pub struct Route {
    /// Canonical host, when the route selects on it.
    pub host: Option<Box<str>>,
    /// Normalised prefix; matches on a segment boundary (`/inventory` never matches `/inventoryx`).
    pub prefix: Box<str>,
    pub upstream: usize,
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
    pub fn route(host: Option<&str>, prefix: Option<&str>, upstream: usize) -> Route {
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

    /// Index of the first matching route.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| {
            let host_ok = match &r.host {
                None => true,
                Some(h) => host == Some(h.as_ref()),
            };
            host_ok && prefix_matches(&r.prefix, path)
        })
    }

    pub fn get(&self, i: usize) -> Option<&Route> {
        self.routes.get(i)
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

    #[test]
    fn first_match_on_segment_boundaries() {
        let t = RouteTable::new(vec![
            RouteTable::route(Some("Inventory.Internal"), Some("/inventory"), 0),
            RouteTable::route(None, Some("/inventory"), 1),
            RouteTable::route(None, Some("/payroll/"), 2),
        ]);
        assert_eq!(
            t.lookup(Some("inventory.internal"), "/inventory/items"),
            Some(0)
        );
        assert_eq!(t.lookup(None, "/inventory/items"), Some(1));
        assert_eq!(t.lookup(Some("other"), "/inventory"), Some(1));
        assert_eq!(t.lookup(None, "/inventoryx"), None);
        assert_eq!(t.lookup(None, "/payroll/x"), Some(2));
        assert_eq!(t.lookup(None, "/payroll"), None);
        assert_eq!(t.lookup(None, "/"), None);
        assert!(t.is_route_host("inventory.internal"));
        assert!(!t.is_route_host("other"));
    }

    #[test]
    fn root_prefix_matches_all() {
        let t = RouteTable::new(vec![RouteTable::route(None, None, 0)]);
        assert_eq!(t.lookup(None, "/"), Some(0));
        assert_eq!(t.lookup(Some("x"), "/a/b"), Some(0));
    }
}
