//! Sluice's own layers on top of a flagd flag, evaluated before its targeting:
//!
//! - **expiring targets**: these targeting keys get this variant until `expires_at`;
//! - **staged rollouts**: a variant for a growing share of users (1% → 10% → 50% → 100%),
//!   each step held for a while, pausable, with sticky buckets. A step at 100% serves every
//!   evaluation, with or without a targeting key, and completes the rollout: the server then
//!   makes the variant the flag's own default in the same transaction that retires the layer,
//!   so no answer changes at that moment.
//!
//! Time is a parameter in milliseconds, and every comparison is half-open: a target is
//! honoured while `now < expires_at`, never at or after it.

use crate::rule::murmur3_32_concat;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

mod guards;
mod transitions;
pub use guards::*;
pub use transitions::*;

/// Basis points: 10,000 is 100%.
pub const FULL: u32 = 10_000;

/// Targeting keys pinned to a variant until a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub variant: String,
    pub keys: Vec<String>,
    /// Optional name for the group of keys ("internal testers").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub expires_at_ms: i64,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStep {
    /// Share of users in basis points (100 = 1%).
    pub share_bp: u32,
    /// How long this step holds before the next one starts.
    pub hold_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    Running,
    Paused,
    RolledBack,
    /// Reached 100%: the flag's definition serves the variant now; the layer does nothing.
    Completed,
}

/// A staged rollout of one variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub variant: String,
    pub steps: Vec<RolloutStep>,
    pub started_at_ms: i64,
    pub state: RolloutState,
    /// When it was paused (while `state` is `Paused`).
    #[serde(default)]
    pub paused_at_ms: Option<i64>,
    /// Time spent paused so far; the schedule shifts by it.
    #[serde(default)]
    pub paused_total_ms: i64,
    /// The last step whose start was recorded in the audit trail.
    #[serde(default)]
    pub recorded_step: Option<usize>,
    /// When it completed (state `Completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<i64>,
    /// The flag's revision that serves the variant as its default (state `Completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_revision: Option<i64>,
    /// Guards: each step after the first starts only once they all pass (see [`guards`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<Guard>,
    /// Time steps waited for their guards beyond their scheduled start; the schedule shifts
    /// by it as by pauses.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held_ms: i64,
    /// Why completing failed (recorded once; the rollout keeps serving its last step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_error: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Where a rollout stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub step: usize,
    pub share_bp: u32,
    /// When the next step starts, if there is one and the rollout is running.
    pub next_change_ms: Option<i64>,
}

impl Rollout {
    /// The step in force at `now`: the schedule runs from `started_at`, shifted by pauses and
    /// by the time steps waited for their guards. A guarded rollout stays at the last step
    /// recorded (the guards let it start) until the server records the next one.
    pub fn position(&self, now_ms: i64) -> Option<Position> {
        let p = self.scheduled_position(now_ms)?;
        if !self.guarded() {
            return Some(p);
        }
        let recorded = self.recorded_step.unwrap_or(0);
        if p.step <= recorded {
            return Some(p);
        }
        let step = self.steps.get(recorded)?;
        Some(Position {
            step: recorded,
            share_bp: step.share_bp.min(FULL),
            // When the guards were (or will be) asked to let the next step start.
            next_change_ms: (self.state == RolloutState::Running)
                .then(|| self.step_start_ms(recorded + 1)),
        })
    }

    /// Where the schedule alone puts the rollout at `now`.
    fn scheduled_position(&self, now_ms: i64) -> Option<Position> {
        if !self.in_force() || self.steps.is_empty() {
            return None;
        }
        let clock = match (self.state, self.paused_at_ms) {
            (RolloutState::Paused, Some(p)) => p.min(now_ms),
            _ => now_ms,
        };
        let elapsed = clock - self.started_at_ms - self.paused_total_ms - self.held_ms;
        if elapsed < 0 {
            return None;
        }
        let mut start = 0i64;
        for (i, s) in self.steps.iter().enumerate() {
            let end = start.saturating_add(s.hold_ms);
            let last = i + 1 == self.steps.len();
            if elapsed < end || last {
                let next = (!last && self.state == RolloutState::Running)
                    .then(|| self.started_at_ms + self.paused_total_ms + self.held_ms + end);
                return Some(Position {
                    step: i,
                    share_bp: s.share_bp.min(FULL),
                    next_change_ms: next,
                });
            }
            start = end;
        }
        None
    }

    /// Running or paused: the layer answers for (some) users.
    pub fn in_force(&self) -> bool {
        matches!(self.state, RolloutState::Running | RolloutState::Paused)
    }

    /// Has it reached 100% at `now`, running, so that it is to complete? (Not when completing
    /// failed once: that is recorded and waits for a person.)
    pub fn due_to_complete(&self, now_ms: i64) -> bool {
        self.state == RolloutState::Running
            && self.completion_error.is_none()
            && self.position(now_ms).is_some_and(|p| p.share_bp >= FULL)
    }

    /// The first step at 100%, if any: where the rollout completes.
    pub fn full_step(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.share_bp >= FULL)
    }
}

/// The bucket of a user for a flag's rollout, in basis points: `murmur3(flagKey + targetingKey)`
/// scaled to 0..10,000. The same user always lands in the same bucket, so a user included at
/// 10% (bucket < 1,000) is still included at 50% (bucket < 5,000): rollouts are sticky.
pub fn rollout_bucket(flag_key: &str, targeting_key: &str) -> u32 {
    let hash = murmur3_32_concat(flag_key.as_bytes(), targeting_key.as_bytes());
    ((u64::from(hash) * u64::from(FULL)) >> 32) as u32
}

/// A flag's layers as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagLayers {
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub rollout: Option<Rollout>,
}

/// Why a layer answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerHit<'a> {
    Target { variant: &'a str },
    Rollout { variant: &'a str },
}

/// A flag's layers compiled for evaluation: targets indexed by key.
#[derive(Debug, Clone, Default)]
pub struct CompiledLayers {
    by_key: HashMap<String, Vec<(i64, String)>>,
    rollout: Option<Rollout>,
    /// Every moment at which an answer may change, sorted.
    boundaries: Vec<i64>,
}

impl CompiledLayers {
    pub fn compile(layers: &FlagLayers) -> Self {
        let mut by_key: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        let mut boundaries = Vec::new();
        for t in &layers.targets {
            for k in &t.keys {
                by_key
                    .entry(k.clone())
                    .or_default()
                    .push((t.expires_at_ms, t.variant.clone()));
            }
            boundaries.push(t.expires_at_ms);
        }
        for list in by_key.values_mut() {
            // The target that lasts longest wins while it lasts.
            list.sort_by_key(|t| std::cmp::Reverse(t.0));
        }
        // A rolled-back or completed rollout answers for nobody: it is no layer.
        let rollout = layers.rollout.clone().filter(Rollout::in_force);
        if let Some(r) = &rollout {
            if r.state == RolloutState::Running {
                let mut start = r.started_at_ms + r.paused_total_ms + r.held_ms;
                boundaries.push(start);
                // A guarded rollout changes no answer before the server records its next step
                // (which compiles the layers again).
                let known = if r.guarded() {
                    r.recorded_step.unwrap_or(0)
                } else {
                    r.steps.len()
                };
                for s in r.steps.iter().take(known) {
                    start = start.saturating_add(s.hold_ms);
                    boundaries.push(start);
                }
            }
        }
        boundaries.sort_unstable();
        boundaries.dedup();
        Self {
            by_key,
            rollout,
            boundaries,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty() && self.rollout.is_none()
    }

    /// The layer that answers for this user at `now`, if any.
    pub fn hit(
        &self,
        flag_key: &str,
        targeting_key: Option<&str>,
        now_ms: i64,
    ) -> Option<LayerHit<'_>> {
        if let Some(list) = targeting_key.and_then(|tk| self.by_key.get(tk)) {
            // INVARIANT: half-open — honoured while now < expires_at.
            if let Some((_, v)) = list.iter().find(|(exp, _)| now_ms < *exp) {
                return Some(LayerHit::Target { variant: v });
            }
        }
        let r = self.rollout.as_ref()?;
        let pos = r.position(now_ms)?;
        // At 100% everyone is in, with or without a targeting key — exactly whom the flag's
        // default serves once the rollout completes, so completing changes no answer.
        let inside = pos.share_bp >= FULL
            || targeting_key.is_some_and(|tk| rollout_bucket(flag_key, tk) < pos.share_bp);
        inside.then_some(LayerHit::Rollout {
            variant: &r.variant,
        })
    }

    /// How many change moments have passed at `now`: answers can only differ between two
    /// moments with different epochs, so this goes into cache validators (ETags).
    pub fn epoch(&self, now_ms: i64) -> usize {
        self.boundaries.partition_point(|b| *b <= now_ms)
    }

    /// Every moment at which an answer may change, sorted.
    pub fn boundaries(&self) -> &[i64] {
        &self.boundaries
    }

    /// The next moment after `now` at which an answer may change.
    pub fn next_boundary(&self, now_ms: i64) -> Option<i64> {
        self.boundaries.get(self.epoch(now_ms)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_800_000_000_000;

    fn target(key: &str, exp: i64) -> Target {
        Target {
            id: "t".into(),
            variant: "on".into(),
            keys: vec![key.into()],
            group: None,
            expires_at_ms: exp,
            created_by: "test".into(),
        }
    }

    fn rollout(shares: &[u32]) -> Rollout {
        Rollout {
            variant: "on".into(),
            steps: shares
                .iter()
                .map(|&share_bp| RolloutStep {
                    share_bp,
                    hold_ms: 1_000,
                })
                .collect(),
            started_at_ms: T0,
            state: RolloutState::Running,
            paused_at_ms: None,
            paused_total_ms: 0,
            recorded_step: None,
            completed_at_ms: None,
            completed_revision: None,
            completion_error: None,
            guards: vec![],
            held_ms: 0,
        }
    }

    #[test]
    fn a_target_holds_until_the_millisecond_before_expiry() {
        let l = CompiledLayers::compile(&FlagLayers {
            targets: vec![target("alice", T0)],
            rollout: None,
        });
        assert_eq!(
            l.hit("f", Some("alice"), T0 - 1),
            Some(LayerHit::Target { variant: "on" })
        );
        assert_eq!(l.hit("f", Some("alice"), T0), None, "not at expires_at");
        assert_eq!(l.hit("f", Some("alice"), T0 + 1), None);
        assert_eq!(l.hit("f", Some("bob"), T0 - 1), None);
        assert_eq!(l.epoch(T0 - 1), 0);
        assert_eq!(l.epoch(T0), 1, "the epoch moves exactly at expiry");
    }

    #[test]
    fn rollout_steps_advance_pause_and_roll_back() {
        let mut r = rollout(&[100, 1_000, 10_000]);
        assert_eq!(r.position(T0 - 1), None, "not before it starts");
        assert_eq!(
            r.position(T0).map(|p| (p.step, p.next_change_ms)),
            Some((0, Some(T0 + 1_000)))
        );
        assert_eq!(r.position(T0 + 1_000).map(|p| p.step), Some(1));
        assert_eq!(
            r.position(T0 + 60_000).map(|p| (p.step, p.next_change_ms)),
            Some((2, None))
        );
        r.state = RolloutState::Paused;
        r.paused_at_ms = Some(T0 + 500);
        assert_eq!(
            r.position(T0 + 60_000).map(|p| (p.step, p.next_change_ms)),
            Some((0, None)),
            "paused holds"
        );
        r.state = RolloutState::Running;
        r.paused_at_ms = None;
        r.paused_total_ms = 10_000;
        assert_eq!(
            r.position(T0 + 10_999).map(|p| p.step),
            Some(0),
            "the pause shifted the schedule"
        );
        assert_eq!(r.position(T0 + 11_000).map(|p| p.step), Some(1));
        r.state = RolloutState::RolledBack;
        assert_eq!(r.position(T0 + 11_000), None);
    }

    #[test]
    fn at_100_percent_everyone_is_in_and_the_rollout_is_due_to_complete() {
        let mut r = rollout(&[1_000, 10_000]);
        let l = CompiledLayers::compile(&FlagLayers {
            targets: vec![],
            rollout: Some(r.clone()),
        });
        assert_eq!(l.hit("f", None, T0), None, "no key, not at 10%");
        assert!(!r.due_to_complete(T0 + 999));
        assert_eq!(
            l.hit("f", None, T0 + 1_000),
            Some(LayerHit::Rollout { variant: "on" }),
            "at 100% even an evaluation without a targeting key gets the variant"
        );
        assert!(
            r.due_to_complete(T0 + 1_000),
            "due the moment 100% is reached"
        );
        assert_eq!(r.full_step(), Some(1));
        r.state = RolloutState::Completed;
        assert!(!r.due_to_complete(T0 + 1_000), "once");
        let done = CompiledLayers::compile(&FlagLayers {
            targets: vec![],
            rollout: Some(r),
        });
        assert!(done.is_empty(), "a completed rollout is no layer");
        assert!(done.boundaries().is_empty());
    }

    proptest! {
        #[test]
        fn a_user_in_at_an_early_step_is_in_at_every_later_step(key in "[a-zA-Z0-9@._-]{1,40}", flag in "[a-z-]{1,20}") {
            let l = CompiledLayers::compile(&FlagLayers { targets: vec![], rollout: Some(rollout(&[100, 1_000, 5_000, 10_000])) });
            let inside: Vec<bool> = (0..4).map(|s| l.hit(&flag, Some(&key), T0 + s * 1_000).is_some()).collect();
            for w in inside.windows(2) {
                prop_assert!(!w[0] || w[1], "left the rollout between steps: {inside:?}");
            }
            prop_assert!(inside[3], "everyone is in at 100%");
        }
    }
}
