//! What people and time do to a flag's layers: start, pause, resume, roll back and complete a
//! rollout, and record what time has done (expired targets, steps reached). Pure: `now` (in
//! milliseconds) is passed in; the server loads the layers, calls these, and saves the result
//! with its audit entries.

use super::{FlagLayers, Rollout, RolloutState, RolloutStep, Target, FULL};
use serde_json::{json, Value};

/// At most this many steps in a rollout.
pub const MAX_STEPS: usize = 100;

/// Why a rollout transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    /// The steps are not a valid schedule (the message names the step).
    #[error("{0}")]
    InvalidSteps(String),
    /// A guard is not a valid condition (the message names the guard).
    #[error("{0}")]
    InvalidGuard(String),
    /// A completed rollout is the flag's default variant now: only a flag change undoes it.
    #[error("the rollout of `{variant}` completed: it is the flag's default variant now")]
    Completed { variant: String },
    #[error("cannot {op} a rollout that is {}", format!("{state:?}").to_lowercase())]
    WrongState {
        op: &'static str,
        state: RolloutState,
    },
}

/// A rollout step as people write it: a share in percent and how long to hold it.
#[derive(Debug, Clone, Copy)]
pub struct StepSpec<'a> {
    pub percent: f64,
    pub hold: &'a str,
}

impl Rollout {
    /// A new running rollout of `variant` from `now_ms`. Shares are percent with two decimals,
    /// 0–100, and never shrink (users already in must stay in); `parse_hold` turns a hold such
    /// as `30m` into milliseconds.
    pub fn start(
        variant: String,
        steps: &[StepSpec<'_>],
        parse_hold: impl Fn(&str) -> Result<i64, String>,
        now_ms: i64,
    ) -> Result<Rollout, RolloutError> {
        if steps.is_empty() || steps.len() > MAX_STEPS {
            return Err(RolloutError::InvalidSteps(format!(
                "give 1 to {MAX_STEPS} steps"
            )));
        }
        let mut parsed = Vec::with_capacity(steps.len());
        let mut last = 0;
        for (i, s) in steps.iter().enumerate() {
            if !(0.0..=100.0).contains(&s.percent) {
                return Err(RolloutError::InvalidSteps(format!(
                    "step {i}: percent must be between 0 and 100"
                )));
            }
            // INVARIANT: 0 ≤ percent ≤ 100 (checked above), so this fits in u32.
            let share_bp = (s.percent * 100.0).round() as u32;
            if share_bp < last {
                return Err(RolloutError::InvalidSteps(format!(
                    "step {i}: shares must not shrink (users already in must stay in)"
                )));
            }
            last = share_bp;
            let hold_ms = parse_hold(s.hold)
                .map_err(|e| RolloutError::InvalidSteps(format!("step {i}: {e}")))?;
            parsed.push(RolloutStep {
                share_bp: share_bp.min(FULL),
                hold_ms,
            });
        }
        Ok(Rollout {
            variant,
            steps: parsed,
            started_at_ms: now_ms,
            state: RolloutState::Running,
            paused_at_ms: None,
            paused_total_ms: 0,
            recorded_step: Some(0),
            completed_at_ms: None,
            completed_revision: None,
            completion_error: None,
            guards: Vec::new(),
            held_ms: 0,
        })
    }

    fn expect(&self, op: &'static str, want: &[RolloutState]) -> Result<(), RolloutError> {
        if self.state == RolloutState::Completed {
            return Err(RolloutError::Completed {
                variant: self.variant.clone(),
            });
        }
        if !want.contains(&self.state) {
            return Err(RolloutError::WrongState {
                op,
                state: self.state,
            });
        }
        Ok(())
    }

    /// Stops the schedule at `now_ms`; users in stay in.
    pub fn pause(&mut self, now_ms: i64) -> Result<(), RolloutError> {
        self.expect("pause", &[RolloutState::Running])?;
        self.state = RolloutState::Paused;
        self.paused_at_ms = Some(now_ms);
        Ok(())
    }

    /// Restarts the schedule; the time paused shifts the rest of it.
    pub fn resume(&mut self, now_ms: i64) -> Result<(), RolloutError> {
        self.expect("resume", &[RolloutState::Paused])?;
        self.paused_total_ms += now_ms - self.paused_at_ms.unwrap_or(now_ms);
        self.paused_at_ms = None;
        self.state = RolloutState::Running;
        Ok(())
    }

    /// Ends the rollout: nobody gets the variant from it any more.
    pub fn roll_back(&mut self) -> Result<(), RolloutError> {
        self.expect("rollback", &[RolloutState::Running, RolloutState::Paused])?;
        self.state = RolloutState::RolledBack;
        Ok(())
    }

    /// Retires the layer: the flag's definition (at `revision`, if the flag exists) serves the
    /// variant now.
    pub fn complete(&mut self, revision: Option<i64>, now_ms: i64) {
        self.state = RolloutState::Completed;
        self.completed_at_ms = Some(now_ms);
        self.completed_revision = revision;
    }
}

/// A flag definition changed to serve `variant` to everyone, as a completed rollout leaves it:
/// `defaultVariant` set, `targeting` (which the 100% layer was overriding) removed. Returns the
/// new definition and what was replaced, for the audit entry; `None` if it is not an object.
pub fn serve_variant(definition: &Value, variant: &str) -> Option<(Value, Value)> {
    let mut def = definition.clone();
    let obj = def.as_object_mut()?;
    let previous_default = obj.insert("defaultVariant".into(), json!(variant));
    let removed_targeting = obj.remove("targeting");
    let replaced = json!({
        "previous_default": previous_default,
        "removed_targeting": removed_targeting,
    });
    Some((def, replaced))
}

/// A rollout step that time reached, to record once.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReached {
    /// 0-based index into the steps.
    pub step: usize,
    pub of: usize,
    pub percent: f64,
}

/// What time has done to a flag's layers by `now_ms`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lapsed {
    /// Targets that expired, now removed.
    pub expired: Vec<Target>,
    /// Rollout steps reached since the last one recorded.
    pub steps: Vec<StepReached>,
}

impl FlagLayers {
    /// Is there anything for [`record_time`](Self::record_time) to record at `now_ms`?
    pub fn has_lapsed(&self, now_ms: i64) -> bool {
        let expired = self.targets.iter().any(|t| t.expires_at_ms <= now_ms);
        let stepped = self
            .rollout
            .as_ref()
            .is_some_and(|r| r.position(now_ms).map(|p| p.step) > r.recorded_step);
        let completing = self
            .rollout
            .as_ref()
            .is_some_and(|r| r.due_to_complete(now_ms));
        expired || stepped || completing
    }

    /// Removes expired targets and marks the rollout steps reached as recorded; returns both,
    /// for the audit trail. (Completing a rollout at 100% is separate: it changes the flag.)
    pub fn record_time(&mut self, now_ms: i64) -> Lapsed {
        let (expired, kept): (Vec<Target>, Vec<Target>) = self
            .targets
            .drain(..)
            .partition(|t| t.expires_at_ms <= now_ms);
        self.targets = kept;
        let mut steps = Vec::new();
        if let Some(r) = self.rollout.as_mut() {
            if let Some(p) = r.position(now_ms) {
                let from = r.recorded_step.map_or(0, |s| s + 1);
                for step in from..=p.step {
                    let percent = f64::from(r.steps.get(step).map_or(0, |s| s.share_bp)) / 100.0;
                    steps.push(StepReached {
                        step,
                        of: r.steps.len(),
                        percent,
                    });
                }
                r.recorded_step = Some(p.step.max(r.recorded_step.unwrap_or(0)));
            }
        }
        Lapsed { expired, steps }
    }
}

#[cfg(test)]
mod tests;
