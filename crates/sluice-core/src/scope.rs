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

use crate::condition::Condition;
use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// The longest subject, resource or action name a question may carry, in bytes. Longer names
/// are refused before anything is matched.
pub const MAX_NAME_BYTES: usize = 1024;

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
        // Matching is linear whatever the count; the cap keeps policies readable and
        // containment checks (quadratic in the pattern) small.
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

/// Matches `s` against `p` in time linear in `s` (times the pattern's wildcard count), with
/// no recursion and no allocation: the literal head and tail are compared directly, and the
/// middle runs as a set of pattern positions (an NFA) advanced one byte at a time.
fn glob_match(p: &[Token], s: &[u8]) -> bool {
    // Literal head.
    let head = p.iter().take_while(|t| matches!(t, Token::Lit(_))).count();
    if s.len() < head || !lits_eq(&p[..head], &s[..head]) {
        return false;
    }
    let (p, s) = (&p[head..], &s[head..]);
    // Literal tail.
    let tail = p
        .iter()
        .rev()
        .take_while(|t| matches!(t, Token::Lit(_)))
        .count();
    if s.len() < tail || !lits_eq(&p[p.len() - tail..], &s[s.len() - tail..]) {
        return false;
    }
    let (p, s) = (&p[..p.len() - tail], &s[..s.len() - tail]);
    if p.is_empty() {
        return s.is_empty();
    }
    // The middle starts and ends with a wildcard. Common shapes answer at once.
    if p.iter().all(|t| *t == Token::DoubleStar) {
        return true;
    }
    if p.iter().all(|t| *t == Token::Star) {
        return !s.contains(&b'/');
    }
    nfa_match(p, s)
}

fn lits_eq(p: &[Token], s: &[u8]) -> bool {
    p.iter().zip(s).all(|(t, c)| *t == Token::Lit(*c))
}

fn nfa_match(p: &[Token], s: &[u8]) -> bool {
    if p.len() < 64 {
        nfa_match_small(p, s)
    } else {
        nfa_match_large(p, s)
    }
}

/// Shift-and over one machine word: bit `i` set means "the first `i` tokens match the input
/// read so far". Almost every pattern takes this path.
fn nfa_match_small(p: &[Token], s: &[u8]) -> bool {
    let (mut star, mut dstar) = (0u64, 0u64);
    let mut lit = [0u64; 256];
    for (i, t) in p.iter().enumerate() {
        match t {
            Token::Lit(c) => lit[usize::from(*c)] |= 1 << i,
            Token::Star => star |= 1 << i,
            Token::DoubleStar => dstar |= 1 << i,
        }
    }
    let wild = star | dstar;
    // Wildcards may match nothing: a live wildcard position also makes the next one live.
    let close = |mut x: u64| loop {
        let y = x | ((x & wild) << 1);
        if y == x {
            return x;
        }
        x = y;
    };
    let mut cur = close(1);
    for &c in s {
        let stay = if c == b'/' { dstar } else { wild };
        let next = ((cur & lit[usize::from(c)]) << 1) | (cur & stay);
        if next == 0 {
            return false;
        }
        cur = close(next);
    }
    cur & (1 << p.len()) != 0
}

/// The same automaton over several words, for patterns of 64 tokens or more.
fn nfa_match_large(p: &[Token], s: &[u8]) -> bool {
    // INVARIANT: `Pattern::parse` caps patterns at 512 characters, and a token is one byte:
    // at most 4 × 512 = 2048 tokens, so 2049 positions.
    const WORDS: usize = (4 * 512) / 64 + 1;
    if p.len() >= WORDS * 64 {
        return false;
    }
    let has = |x: &[u64; WORDS], i: usize| x[i / 64] & (1 << (i % 64)) != 0;
    let set = |x: &mut [u64; WORDS], i: usize| x[i / 64] |= 1 << (i % 64);
    let close = |x: &mut [u64; WORDS]| {
        for (i, t) in p.iter().enumerate() {
            if !matches!(t, Token::Lit(_)) && has(x, i) {
                set(x, i + 1);
            }
        }
    };
    let mut cur = [0u64; WORDS];
    set(&mut cur, 0);
    close(&mut cur);
    for &c in s {
        let mut next = [0u64; WORDS];
        for (i, t) in p.iter().enumerate() {
            if !has(&cur, i) {
                continue;
            }
            match t {
                Token::Lit(l) if *l == c => set(&mut next, i + 1),
                Token::Star if c != b'/' => set(&mut next, i),
                Token::DoubleStar => set(&mut next, i),
                _ => {}
            }
        }
        if next.iter().all(|w| *w == 0) {
            return false;
        }
        close(&mut next);
        cur = next;
    }
    has(&cur, p.len())
}

/// Pattern containment: can `outer` match everything `inner` can? `inner`'s wildcards are
/// treated as symbols that only an equal-or-wider wildcard of `outer` may absorb.
///
/// `c[j]` of row `i` answers "does `outer[i..]` contain `inner[j..]`?"; rows are filled from the
/// end of `outer`, so the work is `|outer| × |inner|` with no recursion.
fn contains(outer: &[Token], inner: &[Token]) -> bool {
    let n = inner.len();
    // Row for outer[len..]: only the empty inner is contained.
    let mut below: Vec<bool> = (0..=n).map(|j| j == n).collect();
    let mut row = vec![false; n + 1];
    for o in outer.iter().rev() {
        for j in (0..=n).rev() {
            row[j] = match o {
                Token::Lit(c) => inner.get(j) == Some(&Token::Lit(*c)) && below[j + 1],
                Token::Star => {
                    below[j]
                        || (matches!(inner.get(j), Some(t) if *t != Token::Lit(b'/') && *t != Token::DoubleStar)
                            && row[j + 1])
                }
                Token::DoubleStar => below[j] || (j < n && row[j + 1]),
            };
        }
        std::mem::swap(&mut below, &mut row);
    }
    below[0]
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
    /// A condition that must also hold (see [`crate::condition`]); it only ever narrows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

impl Scope {
    /// Does this scope allow `action` on `resource` (both normalised)?
    pub fn allows(&self, resource: &str, action: &str) -> bool {
        self.resource.matches(resource) && self.actions.iter().any(|a| a.matches(action))
    }

    /// Is `inner` no wider than `self`? A scope with a condition contains only scopes that keep
    /// the very same condition: dropping or rewriting it could widen what is allowed.
    pub fn contains(&self, inner: &Scope) -> bool {
        let condition_kept = match (&self.when, &inner.when) {
            (None, _) => true,
            (Some(c), Some(i)) => c == i,
            (Some(_), None) => false,
        };
        condition_kept
            && self.resource.contains(&inner.resource)
            && inner
                .actions
                .iter()
                .all(|ia| self.actions.iter().any(|a| a.contains(ia)))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(Pattern::as_str).collect();
        write!(f, "{} [{}]", self.resource, actions.join(", "))?;
        match &self.when {
            Some(c) => write!(f, " when {c}"),
            None => Ok(()),
        }
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

    /// The obvious backtracking matcher: exponential on hostile input, but plainly right.
    fn reference_match(p: &[Token], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((Token::Lit(c), rest)) => s.first() == Some(c) && reference_match(rest, &s[1..]),
            Some((Token::Star, rest)) => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| reference_match(rest, &s[i..])),
            Some((Token::DoubleStar, rest)) => {
                (0..=s.len()).any(|i| reference_match(rest, &s[i..]))
            }
        }
    }

    fn reference_contains(outer: &[Token], inner: &[Token]) -> bool {
        match outer.split_first() {
            None => inner.is_empty(),
            Some((Token::Lit(c), rest)) => {
                matches!(inner.first(), Some(Token::Lit(d)) if d == c)
                    && reference_contains(rest, &inner[1..])
            }
            Some((Token::Star, rest)) => (0..=inner.len())
                .take_while(|&i| {
                    i == 0 || !matches!(inner[i - 1], Token::Lit(b'/') | Token::DoubleStar)
                })
                .any(|i| reference_contains(rest, &inner[i..])),
            Some((Token::DoubleStar, rest)) => {
                (0..=inner.len()).any(|i| reference_contains(rest, &inner[i..]))
            }
        }
    }

    #[test]
    fn hostile_names_are_matched_in_linear_time() {
        // Each of these took from seconds to minutes with the backtracking matcher.
        let name = format!("flag:{}", "/checkout-".repeat(20_000));
        assert!(name.len() > 200_000);
        let start = std::time::Instant::now();
        assert!(!p("flag:**/checkout-**-v2").matches(&name));
        let eight = p("flag:*a*a*a*a**a**a**a**b");
        let long = format!("flag:{}", "a".repeat(256 * 1024));
        assert!(!eight.matches(&long));
        let slashes = "a/".repeat(128 * 1024);
        assert!(!p("**a**a**a**a**a**a**a**b").matches(&slashes));
        assert!(p("**a**a**a**a**a**a**a**").matches(&slashes));
        assert!(
            start.elapsed() < std::time::Duration::from_millis(500),
            "took {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn long_multibyte_patterns_match() {
        // 300 two-byte characters between two wildcards are 602 tokens: more than the 576
        // positions the automaton once held (it counted 512 characters as 512 bytes), so the
        // pattern matched nothing, not even a name it contains. The `scope_match` fuzz
        // target's containment check fails on it (its seed `long-multibyte`).
        let middle = "é".repeat(300);
        let pattern = p(&format!("*{middle}*"));
        let name = format!("x{middle}y");
        assert!(pattern.contains(&p(&name)));
        assert!(pattern.matches(&name));
        assert!(!pattern.matches(&format!("x{middle}/y")));
        // The widest pattern the cap allows: 512 characters of four bytes each.
        let widest = "😀".repeat(510);
        let pattern = p(&format!("*{widest}*"));
        assert!(pattern.matches(&format!("a{widest}b")));
        assert!(!pattern.matches(&format!("a{}b", "😀".repeat(509))));
    }

    #[test]
    fn hostile_patterns_are_contained_in_polynomial_time() {
        let outer = p("*a*a*a*a**a**a**a**c");
        let inner = p(&format!("{}b", format!("{}*", "a".repeat(60)).repeat(8)));
        let start = std::time::Instant::now();
        assert!(!outer.contains(&inner));
        assert!(start.elapsed() < std::time::Duration::from_millis(500));
    }

    proptest::proptest! {
        #[test]
        fn matcher_agrees_with_the_reference(pat in "[ab/*]{0,12}", name in "[ab/]{0,14}") {
            if let Ok(pattern) = Pattern::parse(&pat) {
                proptest::prop_assert_eq!(
                    pattern.matches(&name),
                    reference_match(&pattern.1, name.as_bytes()),
                    "pattern {:?} name {:?}", pat, name
                );
            }
        }

        #[test]
        fn long_patterns_agree_with_the_reference(pat in "[ab/*]{0,8}", name in "[ab/]{0,10}") {
            // More than 64 tokens between the first and last wildcard: the multi-word automaton.
            let pad = "ab".repeat(35);
            if let Ok(pattern) = Pattern::parse(&format!("*{pad}{pat}*")) {
                let name = format!("x{pad}{name}");
                proptest::prop_assert_eq!(
                    pattern.matches(&name),
                    reference_match(&pattern.1, name.as_bytes())
                );
            }
        }

        #[test]
        fn containment_agrees_with_the_reference(outer in "[ab/*]{0,10}", inner in "[ab/*]{0,10}") {
            if let (Ok(o), Ok(i)) = (Pattern::parse(&outer), Pattern::parse(&inner)) {
                proptest::prop_assert_eq!(o.contains(&i), reference_contains(&o.1, &i.1));
            }
        }

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
