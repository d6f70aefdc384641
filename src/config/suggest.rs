//! "Did you mean ...?" for misspelt keys and names.

/// Edit distance where inserting, deleting or substituting a char, or swapping two adjacent
/// chars, each cost 1 (optimal string alignment): a swap is the commonest typo.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back for swaps, the previous one and the current one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let mut d = (prev[j] + usize::from(a[i] != b[j]))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo: at most a third
/// of the name's length in edits (at least 1, at most 3), or a case-only difference.
pub fn nearest<'a, I>(name: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (name.chars().count() / 3).clamp(1, 3);
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            let d = if c.to_lowercase() == lower {
                0
            } else {
                edit_distance(name, c)
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean "x"?` or nothing.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    nearest(name, candidates)
        .map(|c| format!("; did you mean \"{c}\"?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("inventroy", "inventory"), 1);
        assert_eq!(edit_distance("kye", "key"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }

    #[test]
    fn nearest_picks_the_closest_plausible_name() {
        let names = ["inventory", "payroll", "upstreams"];
        assert_eq!(nearest("inventroy", names), Some("inventory"));
        assert_eq!(nearest("upstream", names), Some("upstreams"));
        assert_eq!(nearest("Payroll", names), Some("payroll"));
        assert_eq!(nearest("zzz", names), None);
        assert_eq!(nearest("x", ["y"]), Some("y"));
        assert_eq!(did_you_mean("payrol", names), "; did you mean \"payroll\"?");
        assert_eq!(did_you_mean("weather", names), "");
    }
}
