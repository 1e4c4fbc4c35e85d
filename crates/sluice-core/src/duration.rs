//! Human durations (`30m`, `2h`, `1h30m`) as used in the policy file, the API and the CLI.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A positive duration with second precision, written like `30m` or `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Duration(u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("`{0}` is not a duration; write it like `30m`, `2h` or `1h30m`")]
    Invalid(String),
    #[error("a duration must be at least one second")]
    TooShort,
    #[error("a duration must be at most 366 days")]
    TooLong,
}

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Self(s)
    }
    pub fn parse(raw: &str) -> Result<Self, DurationError> {
        let d = humantime::parse_duration(raw.trim())
            .map_err(|_| DurationError::Invalid(raw.to_owned()))?;
        Self::try_from_std(d)
    }
    pub fn try_from_std(d: std::time::Duration) -> Result<Self, DurationError> {
        let secs = d.as_secs();
        if secs == 0 {
            return Err(DurationError::TooShort);
        }
        if secs > 366 * 24 * 3600 {
            return Err(DurationError::TooLong);
        }
        Ok(Self(secs))
    }
    pub fn as_secs(self) -> u64 {
        self.0
    }
    pub fn delta(self) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(self.0 as i64)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Compact, and parseable back: `1d`, `1h30m`, `45s` (never humantime's `1day`).
        let (mut rest, mut out) = (self.0, String::new());
        for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= secs {
                out.push_str(&format!("{}{unit}", rest / secs));
                rest %= secs;
            }
        }
        if out.is_empty() {
            out.push_str("0s");
        }
        f.write_str(&out)
    }
}

impl TryFrom<String> for Duration {
    type Error = DurationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        d.to_string()
    }
}

/// Renders the time between `now` and `t` the way people say it: `in 12m`, `3h ago`.
pub fn relative(now: chrono::DateTime<chrono::Utc>, t: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (t - now).num_seconds();
    let short = |s: i64| -> String {
        let s = s.unsigned_abs();
        match s {
            0..=59 => format!("{s}s"),
            60..=3599 => format!("{}m", s / 60),
            3600..=86_399 => {
                let (h, m) = (s / 3600, (s % 3600) / 60);
                if m == 0 {
                    format!("{h}h")
                } else {
                    format!("{h}h{m}m")
                }
            }
            _ => format!("{}d", s / 86_400),
        }
    };
    if secs == 0 {
        "now".into()
    } else if secs > 0 {
        format!("in {}", short(secs))
    } else {
        format!("{} ago", short(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_compactly_and_parses_back() {
        for (secs, text) in [
            (86_400, "1d"),
            (5_400, "1h30m"),
            (45, "45s"),
            (90_061, "1d1h1m1s"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(d.to_string(), text);
            assert_eq!(Duration::parse(text), Ok(d));
        }
    }

    #[test]
    fn parses_and_bounds() {
        assert_eq!(Duration::parse("30m").unwrap().as_secs(), 1800);
        assert_eq!(Duration::parse("1h30m").unwrap().as_secs(), 5400);
        assert!(matches!(
            Duration::parse("soon"),
            Err(DurationError::Invalid(_))
        ));
        assert_eq!(Duration::parse("0s"), Err(DurationError::TooShort));
        assert_eq!(Duration::parse("400days"), Err(DurationError::TooLong));
        assert_eq!(Duration::from_secs(1800).to_string(), "30m");
    }
}
