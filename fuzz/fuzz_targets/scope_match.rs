//! The scope matcher: two patterns and a name from arbitrary text, one per line
//! (`<outer>\n<inner>\n<name>`; inside a name a line break is only white space, which
//! normalising collapses anyway). Besides "no panic", checks what
//! decisions rely on: normalising is idempotent and a parsed pattern reads back as itself; the
//! matcher agrees with a plain dynamic-programming reference; a literal matches itself; every
//! pattern contains itself; and containment is sound (if `outer` contains `inner`, every name
//! `inner` matches, `outer` matches too).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::scope::{normalize, Pattern, MAX_NAME_BYTES};

/// Pattern tokens as `Pattern` reads them: `**`, `*`, or one literal byte.
#[derive(Clone, Copy, PartialEq)]
enum T {
    Lit(u8),
    Star,
    DoubleStar,
}

fn tokens(p: &str) -> Vec<T> {
    let b = p.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'*', Some(b'*')) => (out.push(T::DoubleStar), i += 2),
            (b'*', _) => (out.push(T::Star), i += 1),
            (c, _) => (out.push(T::Lit(c)), i += 1),
        };
    }
    out
}

/// Does `p` match `s`? Row `i` answers, for each `j`, whether `p[i..]` matches `s[j..]`;
/// rows are filled from the end of `p`, keeping two, so memory is linear in `s`.
fn reference(p: &[T], s: &[u8]) -> bool {
    let mut below: Vec<bool> = (0..=s.len()).map(|j| j == s.len()).collect();
    let mut row = vec![false; s.len() + 1];
    for t in p.iter().rev() {
        for j in (0..=s.len()).rev() {
            row[j] = match *t {
                T::Lit(c) => s.get(j) == Some(&c) && below[j + 1],
                T::Star => below[j] || (j < s.len() && s[j] != b'/' && row[j + 1]),
                T::DoubleStar => below[j] || (j < s.len() && row[j + 1]),
            };
        }
        std::mem::swap(&mut below, &mut row);
    }
    below[0]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let (outer, inner, name) = (lines.next(), lines.next(), lines.next());
    let (outer, inner, name) = (outer.unwrap_or(""), inner.unwrap_or(""), name.unwrap_or(""));
    let name = normalize(name);
    assert_eq!(normalize(&name), name, "normalising is not idempotent");
    let Ok(outer) = Pattern::parse(outer) else {
        return;
    };
    assert_eq!(
        Pattern::parse(outer.as_str()).as_ref(),
        Ok(&outer),
        "re-parse"
    );
    assert!(outer.contains(&outer), "{outer:?} does not contain itself");
    if outer.is_literal() {
        assert!(
            outer.matches(outer.as_str()),
            "literal {outer:?} misses itself"
        );
    }
    let matched = outer.matches(&name);
    if name.len() <= MAX_NAME_BYTES {
        assert_eq!(
            matched,
            reference(&tokens(outer.as_str()), name.as_bytes()),
            "{outer:?} on {name:?}"
        );
    }
    let Ok(inner) = Pattern::parse(inner) else {
        return;
    };
    if outer.contains(&inner) {
        assert!(
            !inner.matches(&name) || matched,
            "{outer:?} contains {inner:?}, which matches {name:?}"
        );
        if inner.is_literal() {
            assert!(
                outer.matches(inner.as_str()),
                "{outer:?} contains literal {inner:?}"
            );
        }
    }
});
