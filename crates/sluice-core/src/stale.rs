//! Stale flags: which flags of an environment look finished, from what their evaluation
//! counts and definitions say, each with what to do about it. Pure: the counts, the
//! definitions' times and `now` are given.
//!
//! A flag is reported when
//! - **not evaluated** for `days` days (or never), and not written in that time either (a
//!   flag just created has had no chance to be evaluated);
//! - it **served one variant to everyone** for `days` days: every evaluation in the window
//!   answered the same variant (or none, for a disabled flag), counting had already begun
//!   when the window opened, and the definition did not change in it — a finished rollout or
//!   an always-on flag;
//! - it is **past its expected removal date**, the flag metadata key
//!   [`EXPECTED_REMOVAL_KEY`] (`YYYY-MM-DD`, that day's end in UTC, or an RFC 3339 time).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// The flag metadata key holding the date by which the flag is expected to be removed.
pub const EXPECTED_REMOVAL_KEY: &str = "expectedRemoval";

/// What is known of one flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagFacts<'a> {
    pub key: &'a str,
    /// When its definition was last written.
    pub updated_at: DateTime<Utc>,
    /// Its metadata's [`EXPECTED_REMOVAL_KEY`], as written.
    pub expected_removal: Option<&'a str>,
    /// When it was first and last evaluated (any time), if ever.
    pub first_evaluated: Option<DateTime<Utc>>,
    pub last_evaluated: Option<DateTime<Utc>>,
    /// The variants its evaluations in the window answered (`""`: no variant).
    pub window_variants: Vec<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Not evaluated in the window; `last` is `None` when never.
    NotEvaluated { last: Option<DateTime<Utc>> },
    /// Every evaluation in the window answered `variant` (`None`: no variant, disabled).
    OneVariant { variant: Option<String> },
    /// Past the date its metadata gives (`written`, as written).
    PastRemoval { due: DateTime<Utc>, written: String },
    /// The metadata's date does not read as a date.
    BadRemovalDate { value: String },
}

impl Finding {
    /// The stable name of the finding's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotEvaluated { .. } => "not-evaluated",
            Self::OneVariant { .. } => "one-variant",
            Self::PastRemoval { .. } => "past-removal-date",
            Self::BadRemovalDate { .. } => "bad-removal-date",
        }
    }

    /// What to do about it.
    pub fn suggestion(&self, key: &str, days: u32) -> String {
        match self {
            Self::NotEvaluated { last: Some(last) } => format!(
                "no client evaluated `{key}` in {days} days (last {}): remove it from the code, then delete the flag",
                last.format("%Y-%m-%d")
            ),
            Self::NotEvaluated { last: None } => format!(
                "`{key}` was never evaluated: check that clients ask for this key, or delete the flag"
            ),
            Self::OneVariant { variant: Some(v) } => format!(
                "`{key}` served `{v}` to everyone for {days} days: make `{v}` the code's behaviour, then delete the flag"
            ),
            Self::OneVariant { variant: None } => format!(
                "`{key}` answered no variant (off) to everyone for {days} days: remove the code it guards, then delete the flag"
            ),
            Self::PastRemoval { written, .. } => format!(
                "`{key}` was to be removed by {written}: remove it, or move `{EXPECTED_REMOVAL_KEY}` if it must stay"
            ),
            Self::BadRemovalDate { value } => format!(
                "`{EXPECTED_REMOVAL_KEY}` of `{key}` is `{value}`, not a date: write YYYY-MM-DD"
            ),
        }
    }
}

/// Reads an expected-removal date: `YYYY-MM-DD` (due at the end of that day, UTC) or an RFC
/// 3339 time.
pub fn removal_due(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    let next = day.succ_opt()?.and_hms_opt(0, 0, 0)?;
    Some(next.and_utc())
}

/// The findings about one flag at `now`, looking back `days` days.
pub fn findings(flag: &FlagFacts<'_>, now: DateTime<Utc>, days: u32) -> Vec<Finding> {
    let window_start = now - TimeDelta::days(i64::from(days));
    let mut out = Vec::new();
    if flag.last_evaluated.is_none_or(|l| l < window_start) && flag.updated_at < window_start {
        out.push(Finding::NotEvaluated {
            last: flag.last_evaluated,
        });
    }
    let observed_all_window = flag.first_evaluated.is_some_and(|f| f <= window_start);
    if let [only] = flag.window_variants.as_slice() {
        if observed_all_window && flag.updated_at <= window_start {
            out.push(Finding::OneVariant {
                variant: (!only.is_empty()).then(|| (*only).to_owned()),
            });
        }
    }
    if let Some(raw) = flag.expected_removal {
        match removal_due(raw) {
            Some(due) if due <= now => out.push(Finding::PastRemoval {
                due,
                written: raw.to_owned(),
            }),
            Some(_) => {}
            None => out.push(Finding::BadRemovalDate {
                value: raw.to_owned(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, 12, 0, 0).unwrap()
    }

    fn facts() -> FlagFacts<'static> {
        FlagFacts {
            key: "f",
            updated_at: at(1),
            expected_removal: None,
            first_evaluated: Some(at(1)),
            last_evaluated: Some(at(20)),
            window_variants: vec!["on", "off"],
        }
    }

    #[test]
    fn a_flag_in_use_with_two_variants_is_not_stale() {
        assert_eq!(findings(&facts(), at(20), 7), vec![]);
    }

    #[test]
    fn not_evaluated_for_the_window_unless_just_written() {
        let f = FlagFacts {
            last_evaluated: Some(at(5)),
            window_variants: vec![],
            ..facts()
        };
        assert_eq!(
            findings(&f, at(20), 7),
            vec![Finding::NotEvaluated { last: Some(at(5)) }]
        );
        let never = FlagFacts {
            first_evaluated: None,
            last_evaluated: None,
            window_variants: vec![],
            ..facts()
        };
        assert_eq!(
            findings(&never, at(20), 7),
            vec![Finding::NotEvaluated { last: None }]
        );
        let fresh = FlagFacts {
            updated_at: at(18),
            ..never
        };
        assert_eq!(findings(&fresh, at(20), 7), vec![]);
    }

    #[test]
    fn one_variant_for_the_whole_window_and_an_unchanged_definition() {
        let f = FlagFacts {
            window_variants: vec!["on"],
            ..facts()
        };
        assert_eq!(
            findings(&f, at(20), 7),
            vec![Finding::OneVariant {
                variant: Some("on".into())
            }]
        );
        // Counting began inside the window: not yet known for the whole window.
        let late = FlagFacts {
            first_evaluated: Some(at(15)),
            ..f.clone()
        };
        assert_eq!(findings(&late, at(20), 7), vec![]);
        // Changed inside the window (say, a rollout just completed): not yet.
        let changed = FlagFacts {
            updated_at: at(16),
            ..f
        };
        assert_eq!(findings(&changed, at(20), 7), vec![]);
        let off = FlagFacts {
            window_variants: vec![""],
            ..facts()
        };
        assert_eq!(
            findings(&off, at(20), 7),
            vec![Finding::OneVariant { variant: None }]
        );
    }

    #[test]
    fn expected_removal_dates() {
        let f = FlagFacts {
            expected_removal: Some("2026-12-10"),
            ..facts()
        };
        let due = Utc.with_ymd_and_hms(2026, 12, 11, 0, 0, 0).unwrap();
        let written = "2026-12-10".to_owned();
        assert_eq!(
            findings(&f, at(20), 7),
            vec![Finding::PastRemoval { due, written }]
        );
        assert_eq!(findings(&f, at(10), 7), vec![]);
        let bad = FlagFacts {
            expected_removal: Some("soon"),
            ..facts()
        };
        assert_eq!(findings(&bad, at(20), 7)[0].kind(), "bad-removal-date");
        assert_eq!(
            removal_due("2027-01-31T10:00:00+01:00"),
            Utc.with_ymd_and_hms(2027, 1, 31, 9, 0, 0).single()
        );
    }
}
