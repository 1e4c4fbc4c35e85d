//! Guards on a staged rollout: a PromQL query, a comparison with a threshold that must hold,
//! an optional minimum sample, and what to do on a breach. This module decides — "breach?
//! hold? advance?" — from readings the server takes; it does no I/O, and `now` is passed in.
//!
//! A guarded rollout never advances by the clock alone: its next step starts only when the
//! server records it, after every guard passed on a fresh reading (see
//! [`Rollout::position`](super::Rollout::position)). While a guard cannot be read — the query
//! failed, Prometheus is down, the answer is not one number, or the sample is too small — the
//! rollout holds its step; the time held shifts the rest of the schedule, so each step still
//! gets its full hold once it starts.

use super::{Rollout, RolloutState, StepReached};
use serde::{Deserialize, Serialize};

/// At most this many guards on one rollout.
pub const MAX_GUARDS: usize = 10;
/// At most this many bytes in one query.
pub const MAX_QUERY: usize = 4_096;

/// How a reading compares with its threshold for the guard to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
            Self::Gt => value > threshold,
            Self::Ge => value >= threshold,
        }
    }
}

/// What a breach does to the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBreach {
    Pause,
    Rollback,
}

/// A query with a comparison: `QUERY < 0.01`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub query: String,
    pub comparison: Comparison,
    pub threshold: f64,
}

// INVARIANT: the threshold is finite (parse refuses NaN), so equality is an equivalence.
impl Eq for Condition {}

impl Condition {
    /// Parses `QUERY OP NUMBER` (OP one of `<`, `<=`, `>`, `>=`): the comparison is the last
    /// one in the text, so the query may itself compare (`up == 1`, label matchers).
    pub fn parse(text: &str) -> Result<Condition, String> {
        let text = text.trim();
        let number_at = text
            .rfind(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '=')
            .map_or(0, |i| i + 1);
        let raw = &text[number_at..];
        let threshold: f64 = raw.parse().map_err(|_| {
            format!("`{text}` must end with a comparison and a number, e.g. `QUERY < 0.01`")
        })?;
        if !threshold.is_finite() {
            return Err(format!("the threshold of `{text}` must be a finite number"));
        }
        let before = text[..number_at].trim_end();
        let (comparison, query) = [
            ("<=", Comparison::Le),
            (">=", Comparison::Ge),
            ("<", Comparison::Lt),
            (">", Comparison::Gt),
        ]
        .into_iter()
        .find_map(|(op, c)| before.strip_suffix(op).map(|q| (c, q.trim())))
        .ok_or_else(|| {
            format!("`{text}` needs a comparison before its number: one of <, <=, >, >=")
        })?;
        // `QUERY == 1 < 2` or `QUERY !< 1`: the operator was longer than the one we took.
        if query.ends_with(['<', '>', '=', '!']) {
            return Err(format!(
                "`{text}`: the comparison must be one of <, <=, >, >="
            ));
        }
        if query.is_empty() {
            return Err(format!("`{text}` has no query before its comparison"));
        }
        if query.len() > MAX_QUERY {
            return Err(format!("a query may be at most {MAX_QUERY} bytes"));
        }
        Ok(Condition {
            query: query.to_owned(),
            comparison,
            threshold,
        })
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.query,
            self.comparison.as_str(),
            self.threshold
        )
    }
}

/// One guard on a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guard {
    /// Must hold: `error_rate < 0.01`.
    pub condition: Condition,
    /// Must hold for the reading to count: e.g. `sum(increase(requests[5m])) >= 100`. Until it
    /// does, the guard cannot say, and the rollout holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sample: Option<Condition>,
    pub on_breach: OnBreach,
}

impl Guard {
    pub fn parse(
        condition: &str,
        min_sample: Option<&str>,
        on_breach: OnBreach,
    ) -> Result<Guard, String> {
        Ok(Guard {
            condition: Condition::parse(condition)?,
            min_sample: min_sample
                .map(|s| Condition::parse(s).map_err(|e| format!("minimum sample: {e}")))
                .transpose()?,
            on_breach,
        })
    }

    /// Judges one reading of the guard: the value of its query and, if it has one, of its
    /// sample query (each a number or why there is none).
    pub fn judge(
        &self,
        value: &Result<f64, String>,
        sample: Option<&Result<f64, String>>,
    ) -> Verdict {
        if let Some(min) = &self.min_sample {
            match sample {
                None => return Verdict::Unknown("the sample was not read".into()),
                Some(Err(e)) => return Verdict::Unknown(format!("sample query: {e}")),
                Some(Ok(n)) if !n.is_finite() || !min.comparison.holds(*n, min.threshold) => {
                    return Verdict::Unknown(format!(
                        "too few samples: {n} (needs {} {})",
                        min.comparison.as_str(),
                        min.threshold
                    ));
                }
                Some(Ok(_)) => {}
            }
        }
        match value {
            Err(e) => Verdict::Unknown(e.clone()),
            // 0/0 when nothing was counted: no evidence either way.
            Ok(v) if v.is_nan() => Verdict::Unknown("the query gave NaN (no data?)".into()),
            Ok(v)
                if self
                    .condition
                    .comparison
                    .holds(*v, self.condition.threshold) =>
            {
                Verdict::Pass
            }
            Ok(_) => Verdict::Breach,
        }
    }
}

/// One guard's reading, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Breach,
    /// Could not be evaluated, and why.
    Unknown(String),
}

/// What the guards make of the rollout at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not running, or no guards: nothing to do.
    Idle,
    /// Every guard passed; the next step is due (advance to it) or not yet (`None`).
    Proceed { advance: Option<usize> },
    /// Some guard could not be evaluated: stay at this step (`due` says whether a step is
    /// waiting for it), never advance blind.
    Hold {
        guard: usize,
        reason: String,
        due: bool,
    },
    /// This guard breached: pause.
    Pause { guard: usize },
    /// This guard breached: roll back (wins over a pause).
    RollBack { guard: usize },
}

impl Rollout {
    pub fn guarded(&self) -> bool {
        !self.guards.is_empty()
    }

    /// The step the schedule has reached at `now_ms` (whether or not a guard let it start):
    /// for a guarded rollout, the step waiting for its guards when past the recorded one.
    pub fn due_step(&self, now_ms: i64) -> Option<usize> {
        if self.state != RolloutState::Running || !self.guarded() {
            return None;
        }
        let scheduled = self.scheduled_position(now_ms)?.step;
        let recorded = self.recorded_step.unwrap_or(0);
        (scheduled > recorded).then_some(recorded + 1)
    }

    /// When the step after the recorded one is due by the schedule (guarded rollouts).
    pub fn next_due_ms(&self) -> Option<i64> {
        if self.state != RolloutState::Running || !self.guarded() {
            return None;
        }
        let next = self.recorded_step.unwrap_or(0) + 1;
        (next < self.steps.len()).then(|| self.step_start_ms(next))
    }

    /// When step `i` starts by the schedule (shifted by pauses and holds).
    pub(super) fn step_start_ms(&self, i: usize) -> i64 {
        let held: i64 = self.steps.iter().take(i).map(|s| s.hold_ms).sum();
        self.started_at_ms
            .saturating_add(self.paused_total_ms)
            .saturating_add(self.held_ms)
            .saturating_add(held)
    }

    /// What the guards' verdicts (one per guard, in order) mean for the rollout at `now_ms`.
    pub fn decide(&self, verdicts: &[Verdict], now_ms: i64) -> Decision {
        if self.state != RolloutState::Running || !self.guarded() {
            return Decision::Idle;
        }
        let breached = |action: OnBreach| {
            self.guards
                .iter()
                .zip(verdicts)
                .position(|(g, v)| *v == Verdict::Breach && g.on_breach == action)
        };
        if let Some(guard) = breached(OnBreach::Rollback) {
            return Decision::RollBack { guard };
        }
        if let Some(guard) = breached(OnBreach::Pause) {
            return Decision::Pause { guard };
        }
        let due = self.due_step(now_ms);
        if verdicts.len() < self.guards.len() {
            return Decision::Hold {
                guard: verdicts.len(),
                reason: "not read".into(),
                due: due.is_some(),
            };
        }
        if let Some((guard, reason)) = verdicts.iter().enumerate().find_map(|(i, v)| match v {
            Verdict::Unknown(r) => Some((i, r.clone())),
            _ => None,
        }) {
            return Decision::Hold {
                guard,
                reason,
                due: due.is_some(),
            };
        }
        Decision::Proceed { advance: due }
    }

    /// Starts the step waiting for the guards at `now_ms` (after they all passed): the time it
    /// waited beyond its scheduled start shifts the rest of the schedule, so it holds in full.
    /// `None` if no step is due (another instance started it already).
    /// Returns the step and how long it waited past its scheduled start (in ms).
    pub fn advance_guarded(&mut self, now_ms: i64) -> Option<(StepReached, i64)> {
        let step = self.due_step(now_ms)?;
        let late = (now_ms - self.step_start_ms(step)).max(0);
        self.held_ms += late;
        self.recorded_step = Some(step);
        let percent = f64::from(self.steps.get(step).map_or(0, |s| s.share_bp)) / 100.0;
        let reached = StepReached {
            step,
            of: self.steps.len(),
            percent,
        };
        Some((reached, late))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::FULL;

    const T0: i64 = 1_800_000_000_000;

    fn guard(on_breach: OnBreach) -> Guard {
        Guard::parse("errors < 0.01", Some("requests >= 100"), on_breach).unwrap_or_else(|e| {
            unreachable!("{e}");
        })
    }

    fn guarded(guards: Vec<Guard>) -> Rollout {
        let mut r = Rollout::start(
            "on".into(),
            &[
                crate::layers::StepSpec {
                    percent: 10.0,
                    hold: "1",
                },
                crate::layers::StepSpec {
                    percent: 50.0,
                    hold: "1",
                },
                crate::layers::StepSpec {
                    percent: 100.0,
                    hold: "1",
                },
            ],
            |_| Ok(1_000),
            T0,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        r.guards = guards;
        r
    }

    #[test]
    fn conditions_parse_from_the_last_comparison() {
        let c = Condition::parse(r#"sum(rate(x{s=~"5.."}[1m])) / sum(rate(x[1m])) < 0.01"#);
        let c = c.unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.query, r#"sum(rate(x{s=~"5.."}[1m])) / sum(rate(x[1m]))"#);
        assert_eq!((c.comparison, c.threshold), (Comparison::Lt, 0.01));
        let c = Condition::parse("up>=1").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            (c.query.as_str(), c.comparison, c.threshold),
            ("up", Comparison::Ge, 1.0)
        );
        let c = Condition::parse("a > b <= 2e3").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            (c.query.as_str(), c.comparison, c.threshold),
            ("a > b", Comparison::Le, 2000.0)
        );
        for bad in [
            "errors",
            "errors < ",
            "< 0.01",
            "errors == 0.01",
            "errors != 1",
            "errors < NaN",
            "errors < inf",
            "errors 0.01",
        ] {
            assert!(Condition::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_verdict_needs_a_number_and_enough_samples() {
        let g = guard(OnBreach::Pause);
        assert_eq!(g.judge(&Ok(0.001), Some(&Ok(500.0))), Verdict::Pass);
        assert_eq!(g.judge(&Ok(0.2), Some(&Ok(500.0))), Verdict::Breach);
        assert_eq!(
            g.judge(&Ok(0.01), Some(&Ok(500.0))),
            Verdict::Breach,
            "< is strict"
        );
        assert!(
            matches!(
                g.judge(&Ok(0.2), Some(&Ok(99.0))),
                Verdict::Unknown(r) if r.contains("too few samples")
            ),
            "a breach on too few samples is no breach"
        );
        assert!(matches!(g.judge(&Ok(0.0), None), Verdict::Unknown(_)));
        assert!(matches!(
            g.judge(&Ok(0.0), Some(&Err("down".into()))),
            Verdict::Unknown(r) if r.contains("down")
        ));
        assert!(matches!(
            g.judge(&Ok(f64::NAN), Some(&Ok(500.0))),
            Verdict::Unknown(_)
        ));
        assert!(matches!(
            g.judge(&Err("empty result".into()), Some(&Ok(500.0))),
            Verdict::Unknown(r) if r == "empty result"
        ));
    }

    #[test]
    fn a_guarded_rollout_waits_for_its_guards_at_each_step() {
        let mut r = guarded(vec![guard(OnBreach::Pause)]);
        assert_eq!(r.position(T0 + 5_000).map(|p| p.step), Some(0), "held");
        assert_eq!(r.due_step(T0 + 999), None);
        assert_eq!(r.next_due_ms(), Some(T0 + 1_000));
        assert_eq!(
            r.decide(&[Verdict::Pass], T0 + 500),
            Decision::Proceed { advance: None }
        );
        assert_eq!(
            r.decide(&[Verdict::Pass], T0 + 1_000),
            Decision::Proceed { advance: Some(1) }
        );
        let held = r.decide(&[Verdict::Unknown("down".into())], T0 + 1_000);
        assert_eq!(
            held,
            Decision::Hold {
                guard: 0,
                reason: "down".into(),
                due: true
            }
        );
        // Read again at +4 s: the step starts then, and holds its full second from there.
        let s = r.advance_guarded(T0 + 4_000);
        assert_eq!(
            s.map(|(s, waited)| (s.step, s.percent, waited)),
            Some((1, 50.0, 3_000))
        );
        assert_eq!(r.held_ms, 3_000);
        assert_eq!(r.position(T0 + 4_999).map(|p| p.step), Some(1));
        assert_eq!(r.due_step(T0 + 4_999), None);
        assert_eq!(r.due_step(T0 + 5_000), Some(2));
        assert_eq!(r.advance_guarded(T0 + 4_999), None, "not due yet: once");
        assert!(
            !r.due_to_complete(T0 + 60_000),
            "100% waits for the guards too"
        );
        let s = r.advance_guarded(T0 + 5_000);
        assert_eq!(s.map(|(s, waited)| (s.step, waited)), Some((2, 0)));
        assert_eq!(r.position(T0 + 5_000).map(|p| p.share_bp), Some(FULL));
        assert!(r.due_to_complete(T0 + 5_000));
        assert_eq!(r.advance_guarded(T0 + 9_000), None, "the last step");
    }

    #[test]
    fn a_breach_pauses_or_rolls_back_and_rollback_wins() {
        let r = guarded(vec![guard(OnBreach::Pause), guard(OnBreach::Rollback)]);
        assert_eq!(
            r.decide(&[Verdict::Breach, Verdict::Pass], T0),
            Decision::Pause { guard: 0 }
        );
        assert_eq!(
            r.decide(&[Verdict::Breach, Verdict::Breach], T0),
            Decision::RollBack { guard: 1 }
        );
        assert_eq!(
            r.decide(&[Verdict::Unknown("x".into()), Verdict::Breach], T0),
            Decision::RollBack { guard: 1 },
            "a breach counts even while another guard cannot be read"
        );
        assert!(matches!(
            r.decide(&[Verdict::Pass], T0),
            Decision::Hold { guard: 1, .. }
        ));
        let mut paused = r.clone();
        paused.state = RolloutState::Paused;
        assert_eq!(
            paused.decide(&[Verdict::Breach, Verdict::Breach], T0),
            Decision::Idle
        );
        let unguarded = guarded(vec![]);
        assert_eq!(unguarded.decide(&[], T0), Decision::Idle);
        assert_eq!(
            unguarded.position(T0 + 1_000).map(|p| p.step),
            Some(1),
            "no guards: the clock alone advances it"
        );
    }
}
