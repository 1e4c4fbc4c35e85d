//! Flag insight read back: evaluation counts per flag, variant and reason, and the client
//! keys that evaluated (see [`crate::insight`] for how they are counted).

use crate::app::App;
use crate::caller::Caller;
use crate::ops::{Input, OpError};
use sluice_api::flags::{AnswerCount, ClientKeyEvaluations, EvaluationsView, FlagEvaluations};

impl App {
    /// An environment's evaluation counts, over the last `days` days (today included) or
    /// since they were first counted. This instance's counts are stored first, so what it
    /// counted so far is in the answer; other instances' arrive with their next flush.
    pub async fn evaluations(
        &self,
        caller: &Caller,
        env: &str,
        days: Option<u32>,
    ) -> Result<EvaluationsView, OpError> {
        check_days(days)?;
        self.check_environment(env, false, caller.admin).await?;
        self.insight.flush(&self.store).await?;
        let now = self.now();
        let since_day = days.map(|d| sluice_store::day_of(now) - i64::from(d) + 1);
        let totals = self
            .store
            .evaluation_totals(env, since_day.unwrap_or(i64::MIN))
            .await?;
        let mut flags: Vec<FlagEvaluations> = self
            .env_flags(env)
            .map(|f| {
                f.snapshot
                    .flag_keys()
                    .map(|key| FlagEvaluations {
                        key: key.to_owned(),
                        evaluations: 0,
                        last_evaluated_at: None,
                        answers: Vec::new(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        flags.sort_by(|a, b| a.key.cmp(&b.key));
        for t in totals {
            let Ok(i) = flags.binary_search_by(|f| f.key.as_str().cmp(&t.flag_key)) else {
                // A flag removed since: not listed.
                continue;
            };
            let f = &mut flags[i];
            f.evaluations += t.count;
            f.last_evaluated_at = f.last_evaluated_at.max(Some(t.last_at));
            f.answers.push(AnswerCount {
                variant: (!t.variant.is_empty()).then_some(t.variant),
                reason: t.reason,
                count: t.count,
                last_evaluated_at: t.last_at,
            });
        }
        let clients = if crate::ops::readers::reads_all(&self.policy(), caller) {
            self.store
                .client_evaluations(env)
                .await?
                .into_iter()
                .map(|c| ClientKeyEvaluations {
                    token_id: c.token_id,
                    evaluations: c.count,
                    last_evaluated_at: c.last_at,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(EvaluationsView {
            environment: env.to_owned(),
            since: since_day.map(sluice_store::day_start),
            flags,
            clients,
        })
    }
}

/// The longest range of days a question about evaluations may span.
pub const MAX_DAYS: u32 = 3_650;

fn check_days(days: Option<u32>) -> Result<(), OpError> {
    match days {
        Some(d) if d == 0 || d > MAX_DAYS => Err(OpError::invalid(
            Input::Query,
            format!("`days` must be between 1 and {MAX_DAYS}, not {d}"),
        )),
        _ => Ok(()),
    }
}

/// How far back `flags stale` looks by default.
pub const DEFAULT_STALE_DAYS: u32 = 30;

impl App {
    /// The environment's flags that look finished (see [`sluice_core::stale`]): not
    /// evaluated for `days` days, serving one variant to everyone for `days` days, or past
    /// the expected-removal date in their metadata.
    pub async fn stale_flags(
        &self,
        caller: &Caller,
        env: &str,
        days: Option<u32>,
    ) -> Result<sluice_api::flags::StaleView, OpError> {
        use sluice_core::stale::{findings, Finding, FlagFacts, EXPECTED_REMOVAL_KEY};
        check_days(days)?;
        let days = days.unwrap_or(DEFAULT_STALE_DAYS);
        self.check_environment(env, false, caller.admin).await?;
        self.insight.flush(&self.store).await?;
        let now = self.now();
        let window_day = sluice_store::day_of(now - chrono::TimeDelta::days(i64::from(days)));
        let Some(set) = self.store.flag_set(env).await? else {
            return Ok(sluice_api::flags::StaleView {
                environment: env.to_owned(),
                days,
                flags: Vec::new(),
            });
        };
        let updated: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> =
            self.store.flag_updated_at(env).await?.into_iter().collect();
        let ever = self.store.evaluation_totals(env, i64::MIN).await?;
        // Whole days after the window opened: a day that began before it counts as before.
        let window = self.store.evaluation_totals(env, window_day + 1).await?;
        let mut out = Vec::new();
        for f in &set.flags {
            let mine = ever.iter().filter(|t| t.flag_key == f.key);
            let first = mine.clone().map(|t| t.first_day).min();
            let last = mine.map(|t| t.last_at).max();
            let mut variants: Vec<&str> = window
                .iter()
                .filter(|t| t.flag_key == f.key && t.count > 0)
                .map(|t| t.variant.as_str())
                .collect();
            variants.sort_unstable();
            variants.dedup();
            let facts = FlagFacts {
                key: &f.key,
                updated_at: updated.get(&f.key).copied().unwrap_or(set.updated_at),
                expected_removal: f.definition["metadata"][EXPECTED_REMOVAL_KEY].as_str(),
                first_evaluated: first.map(sluice_store::day_start),
                last_evaluated: last,
                window_variants: variants,
            };
            for finding in findings(&facts, now, days) {
                out.push(sluice_api::flags::StaleFlag {
                    key: f.key.clone(),
                    kind: finding.kind().to_owned(),
                    last_evaluated_at: last,
                    variant: match &finding {
                        Finding::OneVariant { variant } => variant.clone(),
                        _ => None,
                    },
                    due: match &finding {
                        Finding::PastRemoval { due, .. } => Some(*due),
                        _ => None,
                    },
                    suggestion: finding.suggestion(&f.key, days),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key).then(a.kind.cmp(&b.kind)));
        Ok(sluice_api::flags::StaleView {
            environment: env.to_owned(),
            days,
            flags: out,
        })
    }
}
