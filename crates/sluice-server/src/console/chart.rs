//! A staged rollout as a step chart: the share of users over time, drawn by the server as
//! inline SVG (no script, no library), with the same facts as a list beside it for screen
//! readers and for reading without colour.
//!
//! The schedule comes from the rollout itself (`started_at`, each step's hold, the pause in
//! force); where past pauses fell comes from the audit trail (`rollout.paused` and
//! `rollout.resumed` entries), which is the only place that keeps them. Time runs left to
//! right in real time: a pause is a flat stretch, and the steps after it start later.
//! Pure: every moment is passed in.

use chrono::{DateTime, SecondsFormat, Utc};
use sluice_core::duration::relative;
use sluice_eval::layers::{Rollout, RolloutState};

/// The drawing's coordinate space (CSS scales it to the card).
const W: f64 = 400.0;
const H: f64 = 190.0;
const LEFT: f64 = 34.0;
const RIGHT: f64 = 392.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 162.0;

/// One stretch of the chart at one share.
pub struct Segment {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// `done`, `current`, `paused` or `scheduled` (a CSS class and a fill pattern).
    pub kind: &'static str,
}

/// A label at a point.
pub struct Label {
    pub x: f64,
    pub y: f64,
    pub text: String,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
}

/// A step as the list beside the chart says it.
pub struct StepLine {
    pub percent: String,
    /// `done`, `current`, `scheduled` or `not reached`.
    pub state: &'static str,
    /// `from 14:05 UTC (12m ago)`, `from about 15:00 UTC (in 40m)`.
    pub when: String,
}

pub struct Chart {
    /// Unique per page: prefixes the fill patterns' ids.
    pub id: String,
    pub width: f64,
    pub height: f64,
    pub segments: Vec<Segment>,
    /// The outline of the steps: SVG polyline points.
    pub line: String,
    pub now_x: Option<f64>,
    pub y_ticks: Vec<Label>,
    pub x_labels: Vec<Label>,
    pub step_labels: Vec<Label>,
    pub steps: Vec<StepLine>,
    /// Past and present pauses in words.
    pub pauses: Vec<String>,
    /// One sentence for `<title>`.
    pub summary: String,
}

/// A stretch of real time at one step: `[from, to)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    from: i64,
    to: i64,
    step: usize,
    paused: bool,
}

/// Lays the steps out in real time from `started_at`, each held for its hold, shifted by
/// `pauses` (`[from, to)`, sorted; the one in force ends at `now`). The last step runs to
/// `end`. Pauses before the start or after `end` are ignored.
fn spans(r: &Rollout, pauses: &[(i64, i64)], end: i64) -> Vec<Span> {
    let mut out = Vec::new();
    let start = r.started_at_ms;
    let mut t = start;
    let mut pauses = pauses.iter().filter(move |p| p.0 >= start).peekable();
    for (i, s) in r.steps.iter().enumerate() {
        let last = i + 1 == r.steps.len();
        let mut left = if last { i64::MAX } else { s.hold_ms.max(0) };
        loop {
            let until = t.saturating_add(left).min(end);
            match pauses.peek() {
                Some(&&(p0, p1)) if p0 < until => {
                    let p0 = p0.max(t);
                    if p0 > t {
                        out.push(Span {
                            from: t,
                            to: p0,
                            step: i,
                            paused: false,
                        });
                        left = left.saturating_sub(p0 - t);
                    }
                    let p1 = p1.min(end).max(p0);
                    out.push(Span {
                        from: p0,
                        to: p1,
                        step: i,
                        paused: true,
                    });
                    t = p1;
                    pauses.next();
                }
                _ => {
                    if until > t {
                        out.push(Span {
                            from: t,
                            to: until,
                            step: i,
                            paused: false,
                        });
                    }
                    t = until;
                    break;
                }
            }
        }
        if t >= end {
            break;
        }
    }
    out
}

fn clock(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

fn seconds(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn when(ms: i64, now: DateTime<Utc>) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| relative(now, t))
        .unwrap_or_default()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn percent(share_bp: u32) -> String {
    let p = f64::from(share_bp) / 100.0;
    format!("{p}%")
}

/// The chart of `r` as of `now`. `pauses` are the closed pauses the audit trail recorded
/// (`[paused, resumed)`, in milliseconds); `ended_at` is when it was rolled back, if it was.
pub fn chart(
    id: &str,
    r: &Rollout,
    closed_pauses: &[(i64, i64)],
    ended_at: Option<i64>,
    now: DateTime<Utc>,
) -> Chart {
    let now_ms = now.timestamp_millis();
    let mut pauses: Vec<(i64, i64)> = closed_pauses.to_vec();
    if let (RolloutState::Paused, Some(p)) = (r.state, r.paused_at_ms) {
        pauses.push((p, now_ms.max(p)));
    }
    pauses.sort_unstable();
    let current = r.position(now_ms).map(|p| p.step);
    // Where the schedule stops: at the end for a rollout that ended; otherwise the start of
    // the last step as scheduled now (after `now` if paused), and then a while more.
    let stopped = match r.state {
        RolloutState::Completed => r.completed_at_ms.or(Some(now_ms)),
        RolloutState::RolledBack => ended_at.or(Some(now_ms)),
        _ => None,
    };
    let end = match stopped {
        Some(e) => e.max(r.started_at_ms + 1),
        None => {
            let laid = spans(r, &pauses, i64::MAX / 4);
            let last_start = laid
                .iter()
                .find(|s| s.step + 1 == r.steps.len())
                .map_or(now_ms, |s| s.from);
            let before = last_start.max(now_ms) - r.started_at_ms;
            let last_hold = r.steps.last().map_or(0, |s| s.hold_ms);
            last_start.max(now_ms) + last_hold.clamp(before / 8 + 1, before / 3 + 60_000)
        }
    };
    let laid = spans(r, &pauses, end);
    let span_ms = (end - r.started_at_ms).max(1) as f64;
    let x = |ms: i64| round1(LEFT + (ms - r.started_at_ms) as f64 / span_ms * (RIGHT - LEFT));
    let y = |bp: u32| round1(BOTTOM - f64::from(bp.min(10_000)) / 10_000.0 * (BOTTOM - TOP));
    let share = |step: usize| r.steps.get(step).map_or(0, |s| s.share_bp);

    let mut segments = Vec::new();
    let mut points = vec![format!("{},{}", x(r.started_at_ms), y(0))];
    for s in &laid {
        // A stretch that `now` cuts is drawn as two: before it as it is, after it as scheduled.
        let cuts = if s.from < now_ms && now_ms < s.to && stopped.is_none() {
            vec![(s.from, now_ms), (now_ms, s.to)]
        } else {
            vec![(s.from, s.to)]
        };
        for (from, to) in cuts {
            let kind = if from >= now_ms && stopped.is_none() {
                "scheduled"
            } else if s.paused {
                "paused"
            } else if Some(s.step) == current {
                "current"
            } else {
                "done"
            };
            let top = y(share(s.step));
            segments.push(Segment {
                x: x(from),
                y: top,
                w: round1((x(to) - x(from)).max(0.5)),
                h: round1(BOTTOM - top),
                kind,
            });
        }
        points.push(format!("{},{}", x(s.from), y(share(s.step))));
        points.push(format!("{},{}", x(s.to), y(share(s.step))));
    }
    if stopped.is_some() && r.state == RolloutState::RolledBack {
        points.push(format!("{},{}", x(end), y(0)));
    }

    let y_ticks = [0u32, 2_500, 5_000, 7_500, 10_000]
        .iter()
        .map(|&bp| Label {
            x: LEFT - 4.0,
            y: y(bp) + 3.5,
            text: percent(bp),
            anchor: "end",
        })
        .collect();
    let now_x =
        (stopped.is_none() && now_ms >= r.started_at_ms && now_ms <= end).then(|| x(now_ms));
    let mut x_labels = vec![Label {
        x: LEFT,
        y: BOTTOM + 14.0,
        text: clock(r.started_at_ms),
        anchor: "start",
    }];
    x_labels.push(Label {
        x: RIGHT,
        y: BOTTOM + 14.0,
        text: clock(end),
        anchor: "end",
    });
    if let Some(nx) = now_x {
        x_labels.push(Label {
            x: nx,
            y: BOTTOM + 26.0,
            text: "now".into(),
            anchor: "middle",
        });
    }

    // Each step's share over its first stretch; the first start of each step for the list.
    let mut starts: Vec<Option<i64>> = vec![None; r.steps.len()];
    let mut step_labels = Vec::new();
    let mut last_label = f64::MIN;
    for s in &laid {
        if starts[s.step].is_none() {
            starts[s.step] = Some(s.from);
            // Steps too close to label apart keep their share in the list only.
            if x(s.from) - last_label < 24.0 {
                continue;
            }
            last_label = x(s.from);
            step_labels.push(Label {
                x: x(s.from) + 2.0,
                y: y(share(s.step)) - 3.0,
                text: percent(share(s.step)),
                anchor: "start",
            });
        }
    }
    let steps = r
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let state = match (current, starts[i]) {
                (Some(c), _) if i < c => "done",
                (Some(c), _) if i == c => "current",
                _ if stopped.is_some() => "not reached",
                (_, Some(from)) if from <= now_ms => "done",
                _ => "scheduled",
            };
            let at = match starts[i] {
                Some(from) if from <= now_ms => {
                    format!("from {} UTC ({})", clock(from), when(from, now))
                }
                Some(from) if stopped.is_none() => {
                    let about = if r.state == RolloutState::Paused {
                        " if resumed now"
                    } else {
                        ""
                    };
                    format!("from {} UTC ({}{about})", clock(from), when(from, now))
                }
                _ => String::new(),
            };
            StepLine {
                percent: percent(s.share_bp),
                state,
                when: at,
            }
        })
        .collect();
    let pauses = pauses
        .iter()
        .map(|&(p0, p1)| {
            if r.state == RolloutState::Paused && Some(p0) == r.paused_at_ms {
                format!("paused since {} UTC ({})", seconds(p0), when(p0, now))
            } else {
                format!("paused {}–{} UTC", seconds(p0), seconds(p1))
            }
        })
        .collect();
    let summary = format!(
        "Rollout of {} started {} ({}): {}",
        r.variant,
        iso(r.started_at_ms),
        when(r.started_at_ms, now),
        match (r.state, current) {
            (RolloutState::Completed, _) => "completed at 100%".to_owned(),
            (RolloutState::RolledBack, _) => "rolled back".to_owned(),
            (RolloutState::Paused, Some(c)) => {
                format!("paused at step {} ({})", c + 1, percent(share(c)))
            }
            (_, Some(c)) => format!("at step {} ({})", c + 1, percent(share(c))),
            _ => "not started".to_owned(),
        }
    );
    Chart {
        id: id.to_owned(),
        width: W,
        height: H,
        segments,
        line: points.join(" "),
        now_x,
        y_ticks,
        x_labels,
        step_labels,
        steps,
        pauses,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_eval::layers::RolloutStep;

    const T0: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn rollout(shares: &[u32]) -> Rollout {
        Rollout {
            variant: "on".into(),
            steps: shares
                .iter()
                .map(|&share_bp| RolloutStep {
                    share_bp,
                    hold_ms: 30 * MIN,
                })
                .collect(),
            started_at_ms: T0,
            state: RolloutState::Running,
            paused_at_ms: None,
            paused_total_ms: 0,
            recorded_step: Some(0),
            completed_at_ms: None,
            completed_revision: None,
            completion_error: None,
            guards: Vec::new(),
            held_ms: 0,
        }
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    #[test]
    fn steps_follow_their_holds_and_a_pause_shifts_the_rest() {
        let r = rollout(&[100, 1_000, 10_000]);
        let laid = spans(&r, &[(T0 + 10 * MIN, T0 + 15 * MIN)], T0 + 200 * MIN);
        let got: Vec<(i64, i64, usize, bool)> = laid
            .iter()
            .map(|s| ((s.from - T0) / MIN, (s.to - T0) / MIN, s.step, s.paused))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 10, 0, false),
                (10, 15, 0, true),
                (15, 35, 0, false),
                (35, 65, 1, false),
                (65, 200, 2, false),
            ]
        );
    }

    #[test]
    fn the_chart_marks_done_current_scheduled_and_the_pause_in_force() {
        let mut r = rollout(&[100, 1_000, 5_000, 10_000]);
        let now = at(T0 + 40 * MIN);
        let c = chart("c0", &r, &[], None, now);
        let kinds: Vec<&str> = c.steps.iter().map(|s| s.state).collect();
        assert_eq!(kinds, ["done", "current", "scheduled", "scheduled"]);
        assert!(c.segments.iter().any(|s| s.kind == "scheduled"));
        assert!(c.now_x.is_some());
        assert!(c.summary.contains("at step 2 (10%)"), "{}", c.summary);

        r.state = RolloutState::Paused;
        r.paused_at_ms = Some(T0 + 35 * MIN);
        let c = chart("c0", &r, &[], None, now);
        assert!(c.segments.iter().any(|s| s.kind == "paused"));
        assert_eq!(c.pauses.len(), 1);
        assert!(c.pauses[0].starts_with("paused since"), "{:?}", c.pauses);
        assert!(
            c.steps[2].when.contains("if resumed now"),
            "{}",
            c.steps[2].when
        );
        assert!(c.summary.contains("paused at step 2"), "{}", c.summary);
    }
}
