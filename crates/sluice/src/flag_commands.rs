//! Changing flags from the command line: the kill switch, default and targeting, expiring
//! targets, scheduled changes and staged rollouts.

use crate::cli::{BreachArg, ChangeArgs, FlagChangeCommand, FlagRef, Remote, RolloutCommand};
use crate::client::{client, endpoint, Client, Refused, NO_BODY};
use crate::output::{describe_change, emit, now, opt, stamp, table, until_at, when_at};
use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use reqwest::Method;
use serde_json::Value;
use sluice_api::flags::{
    ChangeRequestBody, FlagChange, FlagChanged, FlagView, GuardInput, NewRollout, NewTarget,
    OnBreach, RolloutState, RolloutStatus, ScheduledStatus, ScheduledView, StepInput, TargetView,
};
use std::path::Path;

fn flag_path(env: &str, key: &str) -> String {
    endpoint(&["v1", "environments", env, "flags", key], &[])
}

/// `--at`: RFC 3339 (seconds optional) or `+DURATION` from now.
pub fn parse_at(raw: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let raw = raw.trim();
    let bad = || {
        anyhow!(
            "--at `{raw}` is not a time: write RFC 3339 like `2026-12-01T09:00:00Z` \
             (or `2026-12-01T09:00Z`), or a duration from now like `+2h`"
        )
    };
    if let Some(d) = raw.strip_prefix('+') {
        let d =
            sluice_core::duration::Duration::parse(d).map_err(|e| anyhow!("--at {raw}: {e}"))?;
        return Ok(now + d.delta());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    // `2026-12-01T09:00Z` / `2026-12-01T09:00+01:00`: add the missing seconds.
    let (date, time) = raw.split_once(['T', 't']).ok_or_else(bad)?;
    let split = time.find(['Z', 'z', '+', '-']).ok_or_else(bad)?;
    let (hm, zone) = time.split_at(split);
    if hm.len() != 5 || hm.matches(':').count() != 1 {
        return Err(bad());
    }
    DateTime::parse_from_rfc3339(&format!("{date}T{hm}:00{zone}"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad())
}

/// The flag's current revision, with a hint when it does not exist.
async fn current_revision(c: &Client, env: &str, key: &str) -> anyhow::Result<i64> {
    let v: FlagView = c.get_opt(&flag_path(env, key)).await?.ok_or_else(|| {
        anyhow!(
            "no flag `{key}` in `{env}`; see the flags with `sluice flags list --env {env}`, \
             create one with `sluice flags put {key} --env {env} --file flag.json`"
        )
    })?;
    Ok(v.revision)
}

fn read_json(file: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

/// What a change may bring into being.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creating {
    Nothing,
    /// The flag (`put`).
    Flag,
    /// The flag and its environment (`put --create-env`).
    FlagAndEnvironment,
}

/// Sends one change (now, or scheduled with `--at`) and prints what happened.
async fn change(
    r: &Remote,
    a: &ChangeArgs,
    change: FlagChange,
    creating: Creating,
    done: impl FnOnce(&FlagChanged),
) -> anyhow::Result<()> {
    let c = client(r);
    // To the millisecond, as the time is shown back.
    let at =
        a.at.as_deref()
            .map(|t| parse_at(t, now()))
            .transpose()?
            .map(|t| t.duration_trunc(TimeDelta::milliseconds(1)))
            .transpose()?;
    let base = match a.base_revision {
        Some(b) => Some(b),
        None if creating != Creating::Nothing => c
            .get_opt::<FlagView>(&flag_path(&a.env, &a.key))
            .await?
            .map(|v| v.revision),
        None => Some(current_revision(&c, &a.env, &a.key).await?),
    };
    if a.propose {
        return crate::proposal_commands::propose(r, &c, a, change, base, at).await;
    }
    let body = ChangeRequestBody {
        change: change.clone(),
        base_revision: base,
        at,
        create_env: creating == Creating::FlagAndEnvironment,
    };
    let path = format!("{}/changes", flag_path(&a.env, &a.key));
    let stale = |e: anyhow::Error| {
        let stale = e
            .downcast_ref::<Refused>()
            .is_some_and(|r| r.status == reqwest::StatusCode::CONFLICT);
        if stale {
            anyhow!(
                "{e:#}\nSee the flag as it is now with `sluice flags get {} --env {}`, then retry.",
                a.key,
                a.env
            )
        } else {
            e
        }
    };
    if at.is_some() {
        let v: ScheduledView = c
            .send(Method::POST, &path, Some(&body))
            .await
            .map_err(stale)?;
        let (key, env) = (a.key.clone(), a.env.clone());
        return emit(r.output, &v, |v| {
            outln!(
                "scheduled {}: {} in {env} at {} ({})",
                v.id,
                describe_change(&key, &change),
                stamp(Some(v.apply_at)),
                until_at(Some(v.apply_at), "applies", "due now")
            );
            outln!("cancel it with: sluice flags cancel-scheduled {}", v.id);
        });
    }
    let v: FlagChanged = c
        .send(Method::POST, &path, Some(&body))
        .await
        .map_err(stale)?;
    emit(r.output, &v, done)
}

pub async fn flags(cmd: FlagChangeCommand, r: Remote) -> anyhow::Result<()> {
    match cmd {
        FlagChangeCommand::Enable(a) => set_state(&r, &a, true).await,
        FlagChangeCommand::Disable(a) => set_state(&r, &a, false).await,
        FlagChangeCommand::SetDefault { change: a, variant } => {
            let body = FlagChange::SetDefault {
                variant: variant.clone(),
            };
            change(&r, &a, body, Creating::Nothing, |v| {
                outln!(
                    "{} in {} now serves `{}` by default (revision {})",
                    a.key,
                    a.env,
                    variant,
                    v.revision
                );
            })
            .await
        }
        FlagChangeCommand::SetTargeting {
            change: a,
            file,
            clear,
        } => {
            let targeting = match (&file, clear) {
                // A file holding `null` removes the rule, as `--clear` does.
                (Some(f), false) => Some(read_json(f)?).filter(|t| !t.is_null()),
                _ => None,
            };
            let body = FlagChange::SetTargeting { targeting };
            change(&r, &a, body, Creating::Nothing, |v| {
                let what = if clear { "removed" } else { "replaced" };
                outln!(
                    "{} in {}: targeting {what} (revision {})",
                    a.key,
                    a.env,
                    v.revision
                );
            })
            .await
        }
        FlagChangeCommand::Put {
            change: a,
            file,
            create_env,
        } => {
            let definition = read_json(&file)?;
            let body = FlagChange::Put { definition };
            let creating = if create_env {
                Creating::FlagAndEnvironment
            } else {
                Creating::Flag
            };
            change(&r, &a, body, creating, |v| {
                outln!("{} in {} saved (revision {})", a.key, a.env, v.revision);
            })
            .await
        }
        FlagChangeCommand::Delete(a) => {
            change(&r, &a, FlagChange::Delete, Creating::Nothing, |_| {
                outln!("{} deleted from {}", a.key, a.env);
            })
            .await
        }
        FlagChangeCommand::Target {
            key,
            env,
            variant,
            keys,
            me,
            group,
            duration,
        } => target(&r, &key, &env, variant, keys, me, group, duration).await,
        FlagChangeCommand::Targets { key, env } => {
            let v: Vec<TargetView> = client(&r)
                .send(
                    Method::GET,
                    &format!("{}/targets", flag_path(&env, &key)),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| {
                if v.is_empty() {
                    outln!("no active targets on {key} in {env}");
                } else {
                    target_table(v);
                }
            })
        }
        FlagChangeCommand::Untarget {
            key,
            env,
            target_id,
        } => {
            let v: TargetView = client(&r)
                .send(
                    Method::DELETE,
                    &endpoint(
                        &[
                            "v1",
                            "environments",
                            &env,
                            "flags",
                            &key,
                            "targets",
                            &target_id,
                        ],
                        &[],
                    ),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "removed target {} ({}) from {key} in {env}",
                    v.id,
                    keys_of(v)
                );
            })
        }
        FlagChangeCommand::Scheduled { env, all } => {
            let mut list: Vec<ScheduledView> = client(&r)
                .send(
                    Method::GET,
                    &endpoint(&["v1", "scheduled"], &[("env", env)]),
                    NO_BODY,
                )
                .await?;
            list.retain(|c| all || c.status == ScheduledStatus::Pending);
            emit(r.output, &list, |l| scheduled_table(l))
        }
        FlagChangeCommand::CancelScheduled { id } => {
            let v: ScheduledView = client(&r)
                .send(
                    Method::DELETE,
                    &endpoint(&["v1", "scheduled", &id], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "cancelled {}: it would have done: {} in {}",
                    v.id,
                    describe_change(&v.key, &v.change.change),
                    v.environment
                );
            })
        }
    }
}

async fn set_state(r: &Remote, a: &ChangeArgs, enabled: bool) -> anyhow::Result<()> {
    let body = FlagChange::SetState { enabled };
    change(r, a, body, Creating::Nothing, |v| {
        outln!(
            "{} is now {} in {} (revision {})",
            a.key,
            if enabled { "ON" } else { "OFF" },
            a.env,
            v.revision
        );
    })
    .await
}

/// Expiring targets as a table.
pub(crate) fn target_table(v: &[TargetView]) {
    let rows = v
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.variant.clone(),
                keys_of(t),
                format!("{} ({})", stamp(t.expires_at), when_at(t.expires_at)),
                t.created_by.clone(),
            ]
        })
        .collect();
    table(&["target", "variant", "keys", "expires", "by"], rows);
}

fn keys_of(t: &TargetView) -> String {
    let keys = t.keys.join(", ");
    match &t.group {
        Some(g) => format!("{g} ({keys})"),
        None => keys,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per command-line option"
)]
async fn target(
    r: &Remote,
    key: &str,
    env: &str,
    variant: String,
    mut keys: Vec<String>,
    me: bool,
    group: Option<String>,
    duration: String,
) -> anyhow::Result<()> {
    let c = client(r);
    if me {
        let who: sluice_api::admin::WhoAmI = c.send(Method::GET, "/v1/whoami", None::<&()>).await?;
        keys = vec![who.name];
    }
    let body = NewTarget {
        variant,
        keys,
        group,
        duration,
    };
    let v: TargetView = c
        .send(
            Method::POST,
            &format!("{}/targets", flag_path(env, key)),
            Some(&body),
        )
        .await?;
    emit(r.output, &v, |v| {
        outln!(
            "target {}: {key} in {env} serves `{}` to {} until {} (expires {})",
            v.id,
            v.variant,
            keys_of(v),
            stamp(v.expires_at),
            when_at(v.expires_at)
        );
        outln!(
            "remove it early with: sluice flags untarget {key} --env {env} {}",
            v.id
        );
    })
}

fn scheduled_table(v: &[ScheduledView]) {
    let rows = v
        .iter()
        .map(|c| {
            let state = match c.status {
                ScheduledStatus::Pending => until_at(Some(c.apply_at), "applies", "due now"),
                // The first clause of the outcome; `--all -o json` has all of it.
                other => {
                    let result = opt(c.result.as_deref());
                    let first = result.split(';').next().unwrap_or_default();
                    format!("{}: {first}", other.as_str())
                }
            };
            vec![
                c.id.clone(),
                c.environment.clone(),
                c.key.clone(),
                describe_change(&c.key, &c.change.change),
                stamp(Some(c.apply_at)),
                state,
                c.created_by.clone(),
            ]
        })
        .collect();
    table(&["id", "env", "flag", "change", "at", "when", "by"], rows);
}

fn pct(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

/// `--steps 1,10:1h,100` / `--step 10:30m`: (percent, hold) in order.
fn parse_steps(raw: &[String], every: Option<&str>) -> anyhow::Result<Vec<StepInput>> {
    if raw.is_empty() {
        bail!("give the steps: --steps 1,10,50,100 --every 30m, or --step 10:30m repeated");
    }
    let last = raw.len() - 1;
    raw.iter()
        .enumerate()
        .map(|(i, step)| {
            let (p, hold) = match step.split_once(':') {
                Some((p, h)) => (p.trim(), Some(h.trim())),
                None => (step.trim(), None),
            };
            let percent: f64 = p.trim_end_matches('%').parse().map_err(|_| {
                anyhow!("step `{step}`: `{p}` is not a percentage; write steps like 10 or 10:30m")
            })?;
            let hold = match hold.or(every) {
                Some(h) => h.to_owned(),
                // The last step is held for good; its hold is never used.
                None if i == last => "1m".to_owned(),
                None => bail!(
                    "step {} ({}) needs a hold: write it as {p}:30m, or give --every 30m",
                    i + 1,
                    pct(percent)
                ),
            };
            Ok(StepInput { percent, hold })
        })
        .collect()
}

/// `--guard`s with their `--on-breach` and `--min-sample`: each given once for all, or once
/// per guard in order.
fn guard_inputs(
    guards: Vec<String>,
    on_breach: &[BreachArg],
    min_sample: &[String],
) -> anyhow::Result<Vec<GuardInput>> {
    fn nth<'a, T>(all: &'a [T], i: usize, n: usize, what: &str) -> anyhow::Result<Option<&'a T>> {
        match all.len() {
            0 => Ok(None),
            1 => Ok(all.first()),
            m if m == n => Ok(all.get(i)),
            m => bail!("give {what} once for every guard or once per guard ({n}), not {m} times"),
        }
    }
    if guards.is_empty() && !(on_breach.is_empty() && min_sample.is_empty()) {
        bail!("--on-breach and --min-sample go with --guard");
    }
    let n = guards.len();
    guards
        .into_iter()
        .enumerate()
        .map(|(i, condition)| {
            let on_breach = match nth(on_breach, i, n, "--on-breach")? {
                Some(BreachArg::Rollback) => OnBreach::Rollback,
                Some(BreachArg::Pause) | None => OnBreach::Pause,
            };
            let min_sample = nth(min_sample, i, n, "--min-sample")?
                .filter(|s| s.as_str() != "-")
                .cloned();
            Ok(GuardInput {
                condition,
                min_sample,
                on_breach,
            })
        })
        .collect()
}

fn guards_human(v: &RolloutStatus) {
    for (i, g) in v.guards.iter().enumerate() {
        let value = g.value.map_or_else(|| "-".to_owned(), |x| format!("{x}"));
        let read = match g.read_at {
            Some(at) => format!("read {} ({})", stamp(Some(at)), when_at(Some(at))),
            None => "not read yet".to_owned(),
        };
        outln!(
            "guard {}   {} {} {} on breach: {}",
            i + 1,
            g.query,
            g.comparison,
            g.threshold,
            g.on_breach.as_str()
        );
        outln!(
            "          {}: value {value}, threshold {}, {read}",
            g.state.as_str(),
            g.threshold
        );
        if let Some(m) = &g.min_sample {
            let sample = g.sample.map_or_else(|| "-".to_owned(), |x| format!("{x}"));
            outln!("          min sample {m}: {sample}");
        }
        if let Some(r) = &g.reason {
            outln!("          cannot be evaluated: {r}");
        }
    }
    if let Some(h) = &v.held {
        outln!("held      {h}");
    }
}

fn rollout_human(v: &RolloutStatus) {
    rollout_steps_human(v);
    guards_human(v);
}

fn rollout_steps_human(v: &RolloutStatus) {
    let steps: Vec<String> = v.steps.iter().map(|p| pct(*p)).collect();
    let (key, env, variant) = (&v.key, &v.environment, &v.variant);
    outln!(
        "rollout of `{variant}` for {key} in {env}: {}",
        v.state.as_str()
    );
    outln!("steps     {}", steps.join(" → "));
    if v.state == RolloutState::Completed {
        outln!(
            "done      reached 100% at {}: `{variant}` is the flag's default variant (revision {})",
            stamp(v.completed_at),
            v.completed_revision
                .map_or_else(|| "-".to_owned(), |n| n.to_string())
        );
        return;
    }
    match v.current_step {
        Some(i) => outln!(
            "now       step {} of {}: {} of users get `{variant}`",
            i + 1,
            steps.len(),
            pct(v.current_percent)
        ),
        None => outln!("now       nobody gets `{variant}` from the rollout"),
    }
    let next = v.current_step.and_then(|i| steps.get(i + 1).cloned());
    match (v.state, v.next_change_at, next) {
        (RolloutState::Paused, _, _) => outln!(
            "next      held while paused; continue with: sluice rollout resume {key} --env {env}"
        ),
        (RolloutState::Running, Some(at), Some(p)) => {
            outln!(
                "next      {p} at {} ({})",
                stamp(Some(at)),
                when_at(Some(at))
            )
        }
        (RolloutState::Running, _, _) => match &v.completion_error {
            Some(e) => outln!("next      could not complete: {e}"),
            None => outln!("next      none: this is the last step"),
        },
        _ => {}
    }
}

pub async fn rollout(cmd: RolloutCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    let path = |f: &FlagRef| format!("{}/rollout", flag_path(&f.env, &f.key));
    let v: RolloutStatus = match cmd {
        RolloutCommand::Start {
            flag,
            variant,
            steps,
            step,
            every,
            guard,
            on_breach,
            min_sample,
        } => {
            let raw = if steps.is_empty() { step } else { steps };
            let steps = parse_steps(&raw, every.as_deref())?;
            let guards = guard_inputs(guard, &on_breach, &min_sample)?;
            let body = NewRollout {
                variant,
                steps,
                guards,
            };
            c.send(Method::PUT, &path(&flag), Some(&body)).await?
        }
        RolloutCommand::Status(f) => c.send(Method::GET, &path(&f), NO_BODY).await?,
        RolloutCommand::Pause(f) => {
            c.send(Method::POST, &format!("{}/pause", path(&f)), NO_BODY)
                .await?
        }
        RolloutCommand::Resume(f) => {
            c.send(Method::POST, &format!("{}/resume", path(&f)), NO_BODY)
                .await?
        }
        RolloutCommand::Rollback(f) => {
            c.send(Method::POST, &format!("{}/rollback", path(&f)), NO_BODY)
                .await?
        }
    };
    emit(r.output, &v, rollout_human)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    #[test]
    fn at_accepts_rfc3339_without_seconds_and_offsets_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        let Some(now) = now else { return };
        let t = |s: &str| parse_at(s, now).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        assert_eq!(
            t("2026-12-01T09:00Z").ok().as_deref(),
            Some("2026-12-01T09:00:00Z")
        );
        assert_eq!(
            t("2026-12-01T10:00+01:00").ok().as_deref(),
            Some("2026-12-01T09:00:00Z")
        );
        assert_eq!(
            t("2026-12-01T09:00:30Z").ok().as_deref(),
            Some("2026-12-01T09:00:30Z")
        );
        assert_eq!(t("+2h").ok().as_deref(), Some("2026-01-01T02:00:00Z"));
        assert!(t("tomorrow").is_err());
        assert!(t("2026-12-01T9Z").is_err());
    }

    #[test]
    fn steps_take_a_default_hold_and_their_own() {
        let raw: Vec<String> = ["1", "10:1h", "100"].map(String::from).to_vec();
        let steps = parse_steps(&raw, Some("30m")).ok();
        let step = |percent: f64, hold: &str| StepInput {
            percent,
            hold: hold.to_owned(),
        };
        assert_eq!(
            steps,
            Some(vec![step(1.0, "30m"), step(10.0, "1h"), step(100.0, "30m")])
        );
        assert!(parse_steps(&raw, None).is_err());
    }
}
