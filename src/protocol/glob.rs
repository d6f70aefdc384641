//! Name and URI patterns of MCP and A2A rules. In a name (`search_*`) `*` is any run of
//! characters; in a resource URI (`crm://customers/*`) `*` stops at `/` and `**` crosses it.
//! Matching is on bytes (a `/` is never part of a multi-byte UTF-8 character) and takes
//! O(pattern x text) time whatever the pattern.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(Box<[u8]>),
    /// `*`: any bytes, in a URI pattern none of them `/`.
    Star,
    /// `**` in a URI pattern: any bytes.
    Any,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Box<[Token]>,
}

impl Glob {
    /// A name pattern: `*` matches any run of characters.
    pub fn name(pattern: &str) -> Self {
        Self::compile(pattern, false)
    }

    /// A URI pattern: `*` stops at `/`, `**` crosses it.
    pub fn uri(pattern: &str) -> Self {
        Self::compile(pattern, true)
    }

    fn compile(pattern: &str, uri: bool) -> Self {
        let mut tokens = Vec::new();
        let mut lit = Vec::new();
        let bytes = pattern.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'*' {
                lit.push(bytes[i]);
                i += 1;
                continue;
            }
            if !lit.is_empty() {
                tokens.push(Token::Lit(std::mem::take(&mut lit).into()));
            }
            let double = uri && bytes.get(i + 1) == Some(&b'*');
            i += if double { 2 } else { 1 };
            let token = if double || !uri {
                Token::Any
            } else {
                Token::Star
            };
            // `**` followed by `*` adds nothing; two stars in a name are one.
            if tokens.last() != Some(&Token::Any) || token != Token::Any {
                tokens.push(token);
            }
        }
        if !lit.is_empty() {
            tokens.push(Token::Lit(lit.into()));
        }
        Glob {
            tokens: tokens.into(),
        }
    }

    /// Whether the pattern is a plain literal.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Lit(_)))
    }

    pub fn matches(&self, text: &str) -> bool {
        let text = text.as_bytes();
        match &*self.tokens {
            [] => return text.is_empty(),
            [Token::Lit(l)] => return text == &**l,
            [Token::Lit(l), Token::Any] => return text.starts_with(l),
            _ => {}
        }
        // reach[j]: the tokens so far can consume exactly text[..j].
        let mut reach = vec![false; text.len() + 1];
        reach[0] = true;
        for token in self.tokens.iter() {
            let mut next = vec![false; text.len() + 1];
            match token {
                Token::Lit(l) => {
                    for j in 0..=text.len() {
                        if reach[j] && text[j..].starts_with(l) {
                            next[j + l.len()] = true;
                        }
                    }
                }
                Token::Any => {
                    let mut on = false;
                    for j in 0..=text.len() {
                        on |= reach[j];
                        next[j] = on;
                    }
                }
                Token::Star => {
                    let mut on = false;
                    for j in 0..=text.len() {
                        on |= reach[j];
                        next[j] = on;
                        if text.get(j) == Some(&b'/') {
                            on = false;
                        }
                    }
                }
            }
            reach = next;
        }
        reach[text.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let g = Glob::name("search_*");
        assert!(g.matches("search_customers"));
        assert!(g.matches("search_"));
        assert!(!g.matches("research_x"));
        assert!(!g.matches("search"));
        assert!(Glob::name("*").matches(""));
        assert!(Glob::name("*_customer").matches("delete_customer"));
        assert!(Glob::name("a*b*c").matches("aXbYc"));
        assert!(!Glob::name("a*b*c").matches("aXbY"));
        assert!(Glob::name("get_customer").is_literal());
        assert!(!Glob::name("get_customer").matches("get_customers"));
        assert!(Glob::name("ns/*").matches("ns/a/b"));
    }

    #[test]
    fn uris() {
        let one = Glob::uri("crm://customers/*");
        assert!(one.matches("crm://customers/42"));
        assert!(!one.matches("crm://customers/42/orders"));
        assert!(one.matches("crm://customers/{id}"));
        let any = Glob::uri("crm://**");
        assert!(any.matches("crm://customers/42/orders"));
        assert!(!any.matches("file:///etc/passwd"));
        assert!(Glob::uri("file:///srv/*.md").matches("file:///srv/readme.md"));
        assert!(!Glob::uri("file:///srv/*.md").matches("file:///srv/x/readme.md"));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let g = Glob::uri(&"*a".repeat(50));
        let text = "a".repeat(2000) + "b";
        let start = std::time::Instant::now();
        assert!(!g.matches(&text));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
