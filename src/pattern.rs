//! Segment patterns: `*` is one segment, `**` zero or more segments, anything else a literal
//! segment. Rules match them against a normalised request path's segments, never against raw text;
//! the agent index matches SPIFFE id paths with them.
//!
//! One trailing `/` does not make another resource: `/a/b/` is `/a/b` to most frameworks, so a
//! pattern and a path are each compared without it (a deny on `/admin` also covers `/admin/`).

/// One segment of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Literal(Box<str>),
    One,
    Any,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segs: Box<[Seg]>,
    /// Deny patterns compare literals without case: a case-insensitive upstream must not be
    /// reachable through `/ADMIN` when `/admin` is denied.
    case_insensitive: bool,
}

/// The pieces of a path between `/`s, exactly as `str::split('/')` yields them, found by a plain
/// byte scan: a path's segments are a few bytes long, where the general searcher's setup costs
/// more than the search.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    rest: Option<&'a str>,
}

impl<'a> Segments<'a> {
    pub fn of(body: &'a str) -> Self {
        Segments { rest: Some(body) }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.bytes().position(|b| b == b'/') {
            Some(i) => {
                self.rest = rest.get(i + 1..);
                rest.get(..i)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

impl PathPattern {
    /// Compiles `/a/*/b/**`. Validation has already refused malformed patterns; anything odd here
    /// is taken literally.
    pub fn new(pattern: &str, case_insensitive: bool) -> Self {
        let body = pattern.strip_prefix('/').unwrap_or(pattern);
        let body = body.strip_suffix('/').unwrap_or(body);
        let segs = body
            .split('/')
            .map(|s| match s {
                "*" => Seg::One,
                "**" => Seg::Any,
                lit if case_insensitive => Seg::Literal(lit.to_ascii_lowercase().into()),
                lit => Seg::Literal(lit.into()),
            })
            .collect();
        PathPattern {
            segs,
            case_insensitive,
        }
    }

    /// The first segment when it is a literal.
    pub fn first_literal(&self) -> Option<&str> {
        self.literal_prefix().next()
    }

    /// The leading literal segments, up to the first wildcard: the key the rule index files this
    /// pattern under. Deny patterns yield them lower-cased.
    pub fn literal_prefix(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().map_while(|s| match s {
            Seg::Literal(l) => Some(l.as_ref()),
            _ => None,
        })
    }

    /// Whether the normalised `path` (starting with `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let body = path.strip_prefix('/').unwrap_or(path);
        let body = body.strip_suffix('/').unwrap_or(body);
        // Segments are walked with one backtrack point per `**`, the classic wildcard algorithm
        // over segments: O(n*m) worst case, no allocation.
        let mut segs = Segments::of(body);
        let mut p = 0usize;
        let mut star: Option<(usize, Segments<'_>)> = None;
        loop {
            let mut lookahead = segs.clone();
            match lookahead.next() {
                None => {
                    // Path exhausted: the rest of the pattern must be `**` only.
                    return self.segs[p..].iter().all(|s| *s == Seg::Any);
                }
                Some(seg) => {
                    match self.segs.get(p) {
                        Some(Seg::Any) => {
                            star = Some((p, segs.clone()));
                            p += 1;
                            continue;
                        }
                        Some(Seg::One) => {
                            segs = lookahead;
                            p += 1;
                            continue;
                        }
                        Some(Seg::Literal(l)) if self.literal_eq(l, seg) => {
                            segs = lookahead;
                            p += 1;
                            continue;
                        }
                        _ => {}
                    }
                    // Mismatch: let the last `**` swallow one more segment, or fail.
                    match star.as_mut() {
                        Some((sp, rest)) => {
                            if rest.next().is_none() {
                                return false;
                            }
                            p = *sp + 1;
                            segs = rest.clone();
                        }
                        None => return false,
                    }
                }
            }
        }
    }

    fn literal_eq(&self, lit: &str, seg: &str) -> bool {
        if self.case_insensitive {
            lit.eq_ignore_ascii_case(seg)
        } else {
            lit == seg
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        PathPattern::new(p, false).matches(path)
    }

    #[test]
    fn segments_are_what_split_yields() {
        for body in [
            "",
            "a",
            "a/b",
            "/",
            "a/",
            "/a",
            "a//b",
            "ab/cd/ef/",
            "//",
            "é/ü",
        ] {
            let ours: Vec<&str> = Segments::of(body).collect();
            let std: Vec<&str> = body.split('/').collect();
            assert_eq!(ours, std, "{body:?}");
        }
    }

    #[test]
    fn literals() {
        assert!(m("/inventory/orders", "/inventory/orders"));
        assert!(!m("/inventory/orders", "/inventory/orders/1"));
        assert!(!m("/inventory/orders", "/inventory"));
        assert!(!m("/inventory/orders", "/inventory/Orders"));
        assert!(m("/inventory/orders", "/inventory/orders/"));
        assert!(m("/inventory/orders/", "/inventory/orders"));
        assert!(!m("/inventory/orders", "/inventory/orders//"));
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
    }

    #[test]
    fn one_segment() {
        assert!(m("/items/*", "/items/42"));
        assert!(!m("/items/*", "/items/42/x"));
        assert!(!m("/items/*", "/items"));
        assert!(!m("/items/*", "/items/"));
        assert!(m("/items/*", "/items/42/"));
        assert!(m("/items/*/price", "/items/42/price"));
        assert!(!m("/items/*/price", "/items/price"));
        assert!(m("/*", "/anything"));
    }

    #[test]
    fn many_segments() {
        assert!(m("/inventory/**", "/inventory"));
        assert!(m("/inventory/**", "/inventory/"));
        assert!(m("/inventory/**", "/inventory/a/b/c"));
        assert!(!m("/inventory/**", "/inventoryx"));
        assert!(!m("/inventory/**", "/payroll/inventory"));
        assert!(m("/**", "/"));
        assert!(m("/**", "/a/b"));
        assert!(m("/a/**/z", "/a/z"));
        assert!(m("/a/**/z", "/a/b/c/z"));
        assert!(!m("/a/**/z", "/a/b/c/z/y"));
        assert!(m("/a/**/b/**/c", "/a/x/b/y/y/c"));
        assert!(!m("/a/**/b/**/c", "/a/x/c"));
        assert!(m("/**/admin", "/x/y/admin"));
        assert!(m("/**/*/end", "/a/b/end"));
        assert!(!m("/**/*/end", "/end"));
    }

    #[test]
    fn deny_patterns_ignore_case() {
        let p = PathPattern::new("/inventory/admin/**", true);
        assert!(p.matches("/inventory/ADMIN/users"));
        assert!(p.matches("/Inventory/Admin"));
        assert!(!p.matches("/inventory/administrator"));
        assert_eq!(p.first_literal(), Some("inventory"));
        assert_eq!(
            p.literal_prefix().collect::<Vec<_>>(),
            vec!["inventory", "admin"]
        );
        assert_eq!(PathPattern::new("/**/x", false).literal_prefix().count(), 0);
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let p = PathPattern::new("/**/**/**/**/**/**/**/**/x", false);
        let path = format!("/{}", vec!["a"; 120].join("/"));
        let start = std::time::Instant::now();
        assert!(!p.matches(&path));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
