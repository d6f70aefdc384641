use super::*;

fn patterns(paths: &[(&str, &str)]) -> Vec<(String, Vec<String>)> {
    let mut t = PathTree::default();
    for (m, p) in paths {
        t.add(m, p);
    }
    t.patterns()
        .into_iter()
        .map(|(p, m)| (p, m.into_iter().collect()))
        .collect()
}

fn get(paths: &[&str]) -> Vec<String> {
    let mut t = PathTree::default();
    for p in paths {
        t.add("GET", p);
    }
    t.patterns().into_iter().map(|(p, _)| p).collect()
}

#[test]
fn numbers_uuids_and_hex_fold_to_one_segment() {
    assert_eq!(
        get(&[
            "/inventory/items/42",
            "/inventory/items/977",
            "/inventory/items/123e4567-e89b-12d3-a456-426614174000",
            "/inventory/items/3f2b1c9d0a",
            "/inventory/items/7/history",
        ]),
        ["/inventory/items/*", "/inventory/items/*/history"]
    );
}

#[test]
fn names_stay_literal_until_ten_siblings() {
    let nine: Vec<String> = (0..9)
        .map(|i| format!("/users/user-{}", (b'a' + i) as char))
        .collect();
    let nine_refs: Vec<&str> = nine.iter().map(String::as_str).collect();
    assert_eq!(get(&nine_refs).len(), 9);
    let mut ten = nine.clone();
    ten.push("/users/user-z/profile".into());
    ten.push("/users/user-a/profile".into());
    let ten_refs: Vec<&str> = ten.iter().map(String::as_str).collect();
    assert_eq!(get(&ten_refs), ["/users/*", "/users/*/profile"]);
}

#[test]
fn siblings_fold_even_when_they_arrive_after_the_fold() {
    let mut paths: Vec<String> = (0..12)
        .map(|i| format!("/kb/article-{}", (b'a' + i) as char))
        .collect();
    paths.push("/kb/late-comer/edit".into());
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    assert_eq!(get(&refs), ["/kb/*", "/kb/*/edit"]);
}

#[test]
fn methods_stay_with_their_pattern_and_get_covers_head() {
    assert_eq!(
        patterns(&[
            ("GET", "/a/1"),
            ("HEAD", "/a/2"),
            ("DELETE", "/a/3"),
            ("HEAD", "/b"),
            ("POST", "/"),
        ]),
        vec![
            ("/".to_string(), vec!["POST".to_string()]),
            (
                "/a/*".to_string(),
                vec!["DELETE".to_string(), "GET".to_string()]
            ),
            ("/b".to_string(), vec!["HEAD".to_string()]),
        ]
    );
}

#[test]
fn a_literal_covered_by_a_wildcard_with_its_methods_is_dropped() {
    assert_eq!(
        patterns(&[
            ("GET", "/items/summary"),
            ("GET", "/items/7"),
            ("POST", "/items/new")
        ]),
        vec![
            ("/items/*".to_string(), vec!["GET".to_string()]),
            ("/items/new".to_string(), vec!["POST".to_string()]),
        ]
    );
}

#[test]
fn trailing_slash_query_and_odd_segments() {
    assert_eq!(
        get(&["/a/b/", "/a/b?x=1", "/a/*star", "//c"]),
        ["/a/*", "/c"],
        "`/a/*` (from `/a/*star`) covers `/a/b`"
    );
}

#[test]
fn very_deep_paths_end_in_double_star() {
    let deep = format!("/{}", vec!["x"; MAX_DEPTH + 5].join("/"));
    let got = get(&[&deep]);
    assert_eq!(got.len(), 1);
    assert!(got[0].ends_with("/**"), "{got:?}");
    assert_eq!(got[0].split('/').count(), MAX_DEPTH + 1);
}

#[test]
fn covers_reads_patterns_segment_by_segment() {
    assert!(covers("/a/*", "/a/b"));
    assert!(covers("/a/**", "/a/b/c"));
    assert!(!covers("/a/*", "/a"));
    assert!(!covers("/a/*", "/a/b/c"));
    assert!(!covers("/*", "/"));
    assert!(!covers("/a/*", "/a/**"));
}
