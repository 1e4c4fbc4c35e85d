//! Resource names, action names, patterns and scopes.
//!
//! # Grammar
//!
//! A resource is `kind:name`, e.g. `flag:production/checkout-v2`, `db:orders`,
//! `http:payments-admin`. An action is a word (`read`, `toggle`, `target-self`) or an
//! HTTP form (`POST /v1/refunds/*`).
//!
//! Before anything is compared, names are **normalised**: Unicode NFKC, lower case, surrounding
//! white space trimmed and inner runs of white space collapsed to one space. So
//! `Flag:Production/X` and `flag:production/x` are the same resource and neither can slip
//! past a rule written for the other.
//!
//! Patterns use two wildcards:
//! - `*` matches any run of characters **within one segment** (no `/`);
//! - `**` matches any run of characters, `/` included.
//!
//! `flag:production/checkout-*` therefore matches `flag:production/checkout-v2` but not
//! `flag:production/checkout/v2`, and `flag:production/**` matches every production flag.

use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// Normalises a resource or action name (see the module docs).
pub fn normalize(raw: &str) -> String {
    normalized(raw).into_owned()
}

/// Like [`normalize`], but borrows when the name is already normal (the common case on the
/// decision path: ASCII, lower case, single inner spaces).
pub fn normalized(raw: &str) -> std::borrow::Cow<'_, str> {
    let b = raw.as_bytes();
    let already = b
        .iter()
        .all(|&c| c.is_ascii_graphic() && !c.is_ascii_uppercase() || c == b' ')
        && b.first() != Some(&b' ')
        && b.last() != Some(&b' ')
        && !raw.contains("  ");
    if already {
        return std::borrow::Cow::Borrowed(raw);
    }
    std::borrow::Cow::Owned(normalize_slow(raw))
}

fn normalize_slow(raw: &str) -> String {
    let nfkc: String = raw.nfkc().collect::<String>().to_lowercase();
    let mut out = String::with_capacity(nfkc.len());
    for word in nfkc.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Token {
    Lit(u8),
    Star,
    DoubleStar,
}

/// A normalised name pattern with `*` and `**` wildcards, tokenised once.
///
/// Matching works on bytes: wildcards stop only at `/`, which is ASCII, so a match can
/// never split a multi-byte character in a way that changes the answer.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern(String, Box<[Token]>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("a pattern must not be empty")]
    Empty,
    #[error("`***` is not a wildcard; use `*` (one segment) or `**` (any depth)")]
    TripleStar,
    #[error("pattern is longer than 512 characters")]
    TooLong,
    #[error("a pattern may hold at most 8 wildcards")]
    TooManyWildcards,
}

impl Pattern {
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        let n = normalize(raw);
        if n.is_empty() {
            return Err(PatternError::Empty);
        }
        if n.contains("***") {
            return Err(PatternError::TripleStar);
        }
        if n.chars().count() > 512 {
            return Err(PatternError::TooLong);
        }
        // INVARIANT: few wildcards keep the backtracking matcher cheap on every input.
        if tokenize(&n)
            .iter()
            .filter(|t| !matches!(t, Token::Lit(_)))
            .count()
            > 8
        {
            return Err(PatternError::TooManyWildcards);
        }
        let tokens = tokenize(&n).into_boxed_slice();
        Ok(Self(n, tokens))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_literal(&self) -> bool {
        !self.0.contains('*')
    }

    /// Does this pattern match the (already normalised) name?
    pub fn matches(&self, name: &str) -> bool {
        if self.is_literal() {
            return self.0 == name;
        }
        glob_match(&self.1, name.as_bytes())
    }

    /// Is every name matched by `inner` also matched by `self`? Conservative: may answer
    /// `false` for exotic cases, never `true` wrongly.
    pub fn contains(&self, inner: &Pattern) -> bool {
        contains(&self.1, &inner.1)
    }
}

fn tokenize(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut bytes = s.bytes().peekable();
    while let Some(c) = bytes.next() {
        if c == b'*' {
            if bytes.peek() == Some(&b'*') {
                bytes.next();
                out.push(Token::DoubleStar);
            } else {
                out.push(Token::Star);
            }
        } else {
            out.push(Token::Lit(c));
        }
    }
    out
}

fn glob_match(p: &[Token], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((Token::Lit(c), rest)) => s.first() == Some(c) && glob_match(rest, &s[1..]),
        Some((Token::Star, rest)) => {
            for i in 0..=s.len() {
                if glob_match(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    break;
                }
            }
            false
        }
        Some((Token::DoubleStar, rest)) => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
    }
}

/// Pattern containment: can `outer` match everything `inner` can? `inner`'s wildcards are
/// treated as symbols that only an equal-or-wider wildcard of `outer` may absorb.
fn contains(outer: &[Token], inner: &[Token]) -> bool {
    match outer.split_first() {
        None => inner.is_empty(),
        Some((Token::Lit(c), rest)) => {
            matches!(inner.first(), Some(Token::Lit(d)) if d == c) && contains(rest, &inner[1..])
        }
        Some((Token::Star, rest)) => {
            for i in 0..=inner.len() {
                if contains(rest, &inner[i..]) {
                    return true;
                }
                match inner.get(i) {
                    Some(Token::Lit(b'/')) | Some(Token::DoubleStar) | None => break,
                    _ => {}
                }
            }
            false
        }
        Some((Token::DoubleStar, rest)) => (0..=inner.len()).any(|i| contains(rest, &inner[i..])),
    }
}

impl TryFrom<String> for Pattern {
    type Error = PatternError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Pattern::parse(&s)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.0
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource pattern and the actions it allows on matching resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub resource: Pattern,
    pub actions: Vec<Pattern>,
}

impl Scope {
    /// Does this scope allow `action` on `resource` (both normalised)?
    pub fn allows(&self, resource: &str, action: &str) -> bool {
        self.resource.matches(resource) && self.actions.iter().any(|a| a.matches(action))
    }

    /// Is `inner` no wider than `self`?
    pub fn contains(&self, inner: &Scope) -> bool {
        self.resource.contains(&inner.resource)
            && inner
                .actions
                .iter()
                .all(|ia| self.actions.iter().any(|a| a.contains(ia)))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(Pattern::as_str).collect();
        write!(f, "{} [{}]", self.resource, actions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn normalisation_folds_case_width_and_space() {
        assert_eq!(normalize("Flag:Production/X"), "flag:production/x");
        assert_eq!(normalize("ｆｌａｇ:prod"), "flag:prod");
        assert_eq!(normalize("  POST   /v1/refunds/*  "), "post /v1/refunds/*");
    }

    #[test]
    fn star_stays_in_one_segment() {
        assert!(p("flag:production/checkout-*").matches("flag:production/checkout-v2"));
        assert!(!p("flag:production/checkout-*").matches("flag:production/checkout/v2"));
        assert!(p("flag:production/**").matches("flag:production/a/b"));
        assert!(!p("flag:prod*").matches("flag:production/x"));
        assert!(p("post /v1/refunds/*").matches("post /v1/refunds/42"));
    }

    #[test]
    fn containment_is_conservative() {
        assert!(p("flag:production/**").contains(&p("flag:production/checkout-*")));
        assert!(p("flag:production/*").contains(&p("flag:production/checkout-*")));
        assert!(p("flag:production/*").contains(&p("flag:production/x")));
        assert!(!p("flag:production/checkout-*").contains(&p("flag:production/*")));
        assert!(!p("flag:production/*").contains(&p("flag:production/**")));
        assert!(!p("flag:production/x").contains(&p("flag:production/*")));
        assert!(!p("db:orders").contains(&p("db:orders-archive")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Pattern::parse("  "), Err(PatternError::Empty));
        assert_eq!(Pattern::parse("a***"), Err(PatternError::TripleStar));
    }

    proptest::proptest! {
        #[test]
        fn contained_literal_is_matched(s in "[a-z/:-]{0,20}", t in "[a-z/:-]{0,20}") {
            let outer = p(&format!("{s}**"));
            let lit = format!("{s}{t}");
            if let Ok(inner) = Pattern::parse(&lit) {
                proptest::prop_assert!(outer.contains(&inner));
                proptest::prop_assert!(outer.matches(inner.as_str()));
            }
        }
    }
}
