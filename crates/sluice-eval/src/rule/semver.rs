//! flagd's `sem_ver` operator: `{"sem_ver": [version, op, target]}`.
//!
//! Versions follow Go's `golang.org/x/mod/semver` (which flagd uses): an
//! optional `v`/`V` prefix, `MAJOR[.MINOR[.PATCH]]` (short forms mean `.0`
//! and take no pre-release), an optional pre-release, and build metadata that
//! is ignored. Numbers in the context are read as their decimal text (`1.2`
//! is `1.2.0`). Any invalid input makes the operator return `null`.

use std::cmp::Ordering;

use serde_json::Value;

use super::Node;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SemOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Major,
    Minor,
}

impl SemOp {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "^" => Self::Major,
            "~" => Self::Minor,
            _ => return None,
        })
    }

    pub(crate) fn apply(self, a: &Version<'_>, b: &Version<'_>) -> bool {
        match self {
            Self::Eq => a.cmp(b) == Ordering::Equal,
            Self::Ne => a.cmp(b) != Ordering::Equal,
            Self::Lt => a.cmp(b) == Ordering::Less,
            Self::Le => a.cmp(b) != Ordering::Greater,
            Self::Gt => a.cmp(b) == Ordering::Greater,
            Self::Ge => a.cmp(b) != Ordering::Less,
            Self::Major => a.major == b.major,
            Self::Minor => a.major == b.major && a.minor == b.minor,
        }
    }
}

/// A compiled `sem_ver` call. Literal operator and target are parsed once.
#[derive(Debug)]
pub(crate) struct SemVerNode {
    pub(crate) args: Box<[Node]>,
    /// INVARIANT: `Some` only when `args[1]` is a literal that parsed.
    pub(crate) op: Option<SemOp>,
    /// INVARIANT: `Some` only when `args[2]` is a literal string that parsed.
    pub(crate) target: Option<OwnedVersion>,
}

/// A parsed version borrowing its pre-release text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version<'s> {
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) patch: u64,
    pub(crate) pre: &'s str,
}

#[derive(Debug)]
pub(crate) struct OwnedVersion {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Box<str>,
}

impl OwnedVersion {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let v = Version::parse(s)?;
        Some(Self {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            pre: v.pre.into(),
        })
    }

    pub(crate) fn view(&self) -> Version<'_> {
        Version {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            pre: &self.pre,
        }
    }
}

impl<'s> Version<'s> {
    pub(crate) fn parse(s: &'s str) -> Option<Self> {
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        if let Some(v) = Self::parse_plain(s.as_bytes()) {
            return Some(v);
        }
        let (core_pre, build) = match s.split_once('+') {
            Some((c, b)) => {
                if !idents_ok(b, false) {
                    return None;
                }
                (c, Some(b))
            }
            None => (s, None),
        };
        let (core, pre) = match core_pre.split_once('-') {
            Some((c, p)) => {
                if !idents_ok(p, true) {
                    return None;
                }
                (c, p)
            }
            None => (core_pre, ""),
        };
        let mut parts = core.split('.');
        let major = num(parts.next()?)?;
        let (minor, patch, short) = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => (0, 0, true),
            (Some(mi), None, _) => (num(mi)?, 0, true),
            (Some(mi), Some(pa), None) => (num(mi)?, num(pa)?, false),
            (Some(_), Some(_), Some(_)) => return None,
        };
        if short && (!pre.is_empty() || build.is_some()) {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// Fast path for the common `MAJOR.MINOR.PATCH` (no pre-release, no build):
    /// one pass over the bytes. `None` sends other forms to the general parser.
    fn parse_plain(b: &[u8]) -> Option<Self> {
        let mut nums = [0u64; 3];
        let mut part = 0;
        let mut digits = 0;
        for &c in b {
            match c {
                b'0'..=b'9' => {
                    // A leading zero followed by more digits is invalid.
                    if digits == 1 && nums[part] == 0 {
                        return None;
                    }
                    nums[part] = nums[part]
                        .checked_mul(10)?
                        .checked_add(u64::from(c - b'0'))?;
                    digits += 1;
                }
                b'.' if digits > 0 && part < 2 => {
                    part += 1;
                    digits = 0;
                }
                _ => return None,
            }
        }
        if part != 2 || digits == 0 {
            return None;
        }
        Some(Self {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre: "",
        })
    }

    fn cmp_pre(&self, other: &Self) -> Ordering {
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        let mut a = self.pre.split('.');
        let mut b = other.pre.split('.');
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => {
                    let ord = cmp_ident(x, y);
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
            }
        }
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| self.cmp_pre(other))
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn cmp_ident(x: &str, y: &str) -> Ordering {
    let xn = x.bytes().all(|c| c.is_ascii_digit());
    let yn = y.bytes().all(|c| c.is_ascii_digit());
    match (xn, yn) {
        // No leading zeros (checked at parse), so length orders numbers.
        (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.cmp(y),
    }
}

/// A decimal without leading zeros.
fn num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Dot-separated non-empty `[0-9A-Za-z-]+` identifiers; pre-release numeric
/// identifiers must not have leading zeros.
fn idents_ok(s: &str, pre: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !(pre
                && id.len() > 1
                && id.starts_with('0')
                && id.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// Reads a version out of an evaluated argument: strings as written, numbers
/// by their decimal text. `scratch` holds that text for numbers.
pub(crate) fn version_of<'s>(v: &'s Value, scratch: &'s mut String) -> Option<Version<'s>> {
    match v {
        Value::String(s) => Version::parse(s),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Some(Version {
                    major: u,
                    minor: 0,
                    patch: 0,
                    pre: "",
                });
            }
            super::value::js_string(v, scratch);
            Version::parse(scratch)
        }
        _ => None,
    }
}
