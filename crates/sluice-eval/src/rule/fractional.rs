//! flagd's `fractional` operator, hash version 2:
//! `h = murmur3_x86_32(bucket_key, seed 0)`, `bucket = (h * total) >> 32`,
//! then walk the cumulative weights. Flags marked version 1 (see
//! [`crate::HashVersion`]) bucket as flagd did before: `abs(h as i32) / i32::MAX * 100`
//! against cumulative percentages.
//!
//! The bucket key is the first argument when it evaluates to a string;
//! otherwise (no such argument, or it evaluated to `null`) it is
//! `flagKey + targetingKey`. Weights default to 1, negative weights count
//! as 0, and a total of 0 yields `null`.

use std::borrow::Cow;

use serde_json::Value;

use super::eval::{eval, Env, Scope};
use super::murmur3::{murmur3_32, murmur3_32_concat, Murmur3};
use super::value::cat_piece;
use super::{Node, Op};
use crate::snapshot::HashVersion;

/// Largest total weight (flagd's bound).
pub(crate) const MAX_TOTAL_WEIGHT: u64 = i32::MAX as u64;

#[derive(Debug)]
pub(crate) struct FractionalNode {
    /// `None` when the first argument is itself a bucket (an array literal).
    pub(crate) bucket_by: Option<Node>,
    pub(crate) buckets: Box<[Bucket]>,
    /// INVARIANT: `Some` iff every weight is `Weight::Fixed`; equals their sum.
    pub(crate) fixed_total: Option<u64>,
    /// The flag's bucketing algorithm.
    pub(crate) version: HashVersion,
}

#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) variant: Node,
    pub(crate) weight: Weight,
}

#[derive(Debug)]
pub(crate) enum Weight {
    Fixed(u64),
    Dynamic(Node),
}

/// Which bucket index `hash` falls in for the given weights; `None` when the total is 0.
pub fn bucket_index(hash: u32, weights: &[u64]) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let point = (u64::from(hash) * total) >> 32;
    let mut end = 0u64;
    weights.iter().position(|w| {
        end += w;
        point < end
    })
}

/// Version 1 (flagd's legacy bucketing): the hash read as a signed 32-bit integer,
/// `abs(h) / i32::MAX * 100` — a point in `[0, 100]` — against cumulative percentages
/// `weight * 100 / total`, in floating point as flagd's Go evaluator computed them.
/// `None` when the point falls past the last bucket (only `h = i32::MIN`, whose absolute
/// value exceeds `i32::MAX`). `total` must not be 0.
fn bucket_index_v1(hash: u32, weights: impl Iterator<Item = u64>, total: u64) -> Option<usize> {
    // The bits of the hash as flagd's `int32(murmur3.StringSum32(key))`.
    let signed = i32::from_ne_bytes(hash.to_ne_bytes());
    let point = f64::from(signed).abs() / f64::from(i32::MAX) * 100.0;
    let mut end = 0.0f64;
    // INVARIANT: weights and their total are at most `MAX_TOTAL_WEIGHT` (< 2^31), exact
    // in an f64.
    let total = total as f64;
    for (i, w) in weights.enumerate() {
        end += (w as f64 * 100.0) / total;
        if point < end {
            return Some(i);
        }
    }
    None
}

/// Reads a weight: whole, non-negative (negatives count as 0), `null` means 1.
pub(crate) fn weight_of(v: &Value) -> Option<u64> {
    match v {
        Value::Null => Some(1),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return u64::try_from(i.max(0))
                    .ok()
                    .filter(|w| *w <= MAX_TOTAL_WEIGHT);
            }
            if n.as_u64().is_some() {
                return None;
            }
            let f = n.as_f64()?;
            if f.fract() != 0.0 || f > MAX_TOTAL_WEIGHT as f64 {
                return None;
            }
            // INVARIANT: whole and within range, so the cast is exact.
            Some(f.max(0.0) as u64)
        }
        _ => None,
    }
}

impl FractionalNode {
    /// The expression of the chosen bucket, or `None` when the operator yields `null`.
    pub(crate) fn pick<'a>(&'a self, env: &Env<'a>, scope: Scope<'a>) -> Option<&'a Node> {
        let hash = self.hash(env, scope)?;
        let total = match self.fixed_total {
            Some(t) => t,
            None => return self.pick_dynamic(hash, env, scope),
        };
        if total == 0 {
            return None;
        }
        if self.version == HashVersion::V1 {
            let weights = self.buckets.iter().map(|b| match b.weight {
                Weight::Fixed(w) => w,
                Weight::Dynamic(_) => 0,
            });
            let i = bucket_index_v1(hash, weights, total)?;
            return self.buckets.get(i).map(|b| &b.variant);
        }
        let point = (u64::from(hash) * total) >> 32;
        let mut end = 0u64;
        for b in self.buckets.iter() {
            if let Weight::Fixed(w) = b.weight {
                end += w;
            }
            if point < end {
                return Some(&b.variant);
            }
        }
        None
    }

    fn pick_dynamic<'a>(&'a self, hash: u32, env: &Env<'a>, scope: Scope<'a>) -> Option<&'a Node> {
        let mut weights = Vec::with_capacity(self.buckets.len());
        for b in self.buckets.iter() {
            let w = match &b.weight {
                Weight::Fixed(w) => *w,
                Weight::Dynamic(node) => weight_of(&eval(node, env, scope))?,
            };
            weights.push(w);
        }
        if weights.iter().sum::<u64>() > MAX_TOTAL_WEIGHT {
            return None;
        }
        let i = match self.version {
            HashVersion::V1 => {
                let total = weights.iter().sum();
                if total == 0 {
                    return None;
                }
                bucket_index_v1(hash, weights.iter().copied(), total)
            }
            HashVersion::V2 => bucket_index(hash, &weights),
        };
        i.and_then(|i| self.buckets.get(i).map(|b| &b.variant))
    }

    fn hash<'a>(&'a self, env: &Env<'a>, scope: Scope<'a>) -> Option<u32> {
        if let Some(Node::Op(Op::Cat, parts)) = &self.bucket_by {
            // `cat` always yields a string: hash its pieces as they come rather than
            // building it (an allocation and a copy per evaluation).
            let mut h = Murmur3::default();
            let mut scratch = String::new();
            for part in parts.iter() {
                match &*eval(part, env, scope) {
                    Value::String(s) => h.write(s.as_bytes()),
                    other => {
                        scratch.clear();
                        cat_piece(other, &mut scratch);
                        h.write(scratch.as_bytes());
                    }
                }
            }
            return Some(h.finish());
        }
        if let Some(expr) = &self.bucket_by {
            let key = eval(expr, env, scope);
            match key {
                Cow::Borrowed(Value::String(s)) => return Some(murmur3_32(s.as_bytes())),
                Cow::Owned(Value::String(s)) => return Some(murmur3_32(s.as_bytes())),
                Cow::Borrowed(Value::Null) | Cow::Owned(Value::Null) => {}
                _ => return None,
            }
        }
        let tk = env.ctx.targeting_key()?;
        Some(murmur3_32_concat(env.flag_key.as_bytes(), tk.as_bytes()))
    }
}
