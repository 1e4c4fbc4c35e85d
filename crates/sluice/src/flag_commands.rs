//! Changing flags from the command line: the kill switch, default and targeting, expiring
//! targets, scheduled changes and staged rollouts.

use crate::cli::{ChangeArgs, FlagChangeCommand, FlagRef, Remote, RolloutCommand};
use crate::client::{client, endpoint, Client};
use crate::output::{describe, emit, now, s, table, until, when};
use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{json, Value};
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
    let v = c.get_opt(&flag_path(env, key)).await?.ok_or_else(|| {
        anyhow!(
            "no flag `{key}` in `{env}`; see the flags with `sluice flags list --env {env}`, \
             create one with `sluice flags put {key} --env {env} --file flag.json`"
        )
    })?;
    v["revision"]
        .as_i64()
        .ok_or_else(|| anyhow!("the server sent no revision for `{key}`: {v}"))
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
    change: Value,
    creating: Creating,
    done: impl FnOnce(&Value),
) -> anyhow::Result<()> {
    let c = client(r);
    let at = a.at.as_deref().map(|t| parse_at(t, now())).transpose()?;
    let base = match a.base_revision {
        Some(b) => Some(b),
        None if creating != Creating::Nothing => c
            .get_opt(&flag_path(&a.env, &a.key))
            .await?
            .and_then(|v| v["revision"].as_i64()),
        None => Some(current_revision(&c, &a.env, &a.key).await?),
    };
    if a.propose {
        return crate::proposal_commands::propose(r, &c, a, change, base, at).await;
    }
    let mut body = json!({
        "change": change,
        "base_revision": base,
        "at": at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
    });
    if creating == Creating::FlagAndEnvironment {
        body["create_env"] = Value::Bool(true);
    }
    let v = c
        .call(
            Method::POST,
            &format!("{}/changes", flag_path(&a.env, &a.key)),
            Some(body),
        )
        .await
        .map_err(|e| {
            if e.to_string().contains("HTTP 409") {
                anyhow!(
                    "{e:#}\nSee the flag as it is now with `sluice flags get {} --env {}`, then retry.",
                    a.key,
                    a.env
                )
            } else {
                e
            }
        })?;
    if at.is_some() {
        let (key, env) = (a.key.clone(), a.env.clone());
        return emit(r.output, &v, |v| {
            outln!(
                "scheduled {}: {} in {env} at {} ({})",
                s(&v["id"]),
                describe(&key, &change),
                s(&v["apply_at"]),
                until(&v["apply_at"], "applies", "due now")
            );
            outln!(
                "cancel it with: sluice flags cancel-scheduled {}",
                s(&v["id"])
            );
        });
    }
    emit(r.output, &v, done)
}

pub async fn flags(cmd: FlagChangeCommand, r: Remote) -> anyhow::Result<()> {
    match cmd {
        FlagChangeCommand::Enable(a) => set_state(&r, &a, true).await,
        FlagChangeCommand::Disable(a) => set_state(&r, &a, false).await,
        FlagChangeCommand::SetDefault { change: a, variant } => {
            let body = json!({"op": "set-default", "variant": variant});
            change(&r, &a, body, Creating::Nothing, |v| {
                outln!(
                    "{} in {} now serves `{}` by default (revision {})",
                    a.key,
                    a.env,
                    variant,
                    v["revision"]
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
                (Some(f), false) => read_json(f)?,
                _ => Value::Null,
            };
            let body = json!({"op": "set-targeting", "targeting": targeting});
            change(&r, &a, body, Creating::Nothing, |v| {
                let what = if clear { "removed" } else { "replaced" };
                outln!(
                    "{} in {}: targeting {what} (revision {})",
                    a.key,
                    a.env,
                    v["revision"]
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
            let body = json!({"op": "put", "definition": definition});
            let creating = if create_env {
                Creating::FlagAndEnvironment
            } else {
                Creating::Flag
            };
            change(&r, &a, body, creating, |v| {
                outln!("{} in {} saved (revision {})", a.key, a.env, v["revision"]);
            })
            .await
        }
        FlagChangeCommand::Delete(a) => {
            change(&r, &a, json!({"op": "delete"}), Creating::Nothing, |_| {
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
            let v = client(&r)
                .call(
                    Method::GET,
                    &format!("{}/targets", flag_path(&env, &key)),
                    None,
                )
                .await?;
            emit(r.output, &v, |v| {
                if v.as_array().is_none_or(Vec::is_empty) {
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
            let v = client(&r)
                .call(
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
                    None,
                )
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "removed target {} ({}) from {key} in {env}",
                    s(&v["id"]),
                    keys_of(v)
                );
            })
        }
        FlagChangeCommand::Scheduled { env, all } => {
            let v = client(&r)
                .call(
                    Method::GET,
                    &endpoint(&["v1", "scheduled"], &[("env", env)]),
                    None,
                )
                .await?;
            let list: Vec<Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| all || c["status"] == "pending")
                .cloned()
                .collect();
            emit(r.output, &Value::Array(list), scheduled_table)
        }
        FlagChangeCommand::CancelScheduled { id } => {
            let v = client(&r)
                .call(
                    Method::DELETE,
                    &endpoint(&["v1", "scheduled", &id], &[]),
                    None,
                )
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "cancelled {}: it would have done: {} in {}",
                    s(&v["id"]),
                    describe(&s(&v["key"]), &v["change"]["change"]),
                    s(&v["environment"])
                );
            })
        }
    }
}

async fn set_state(r: &Remote, a: &ChangeArgs, enabled: bool) -> anyhow::Result<()> {
    let body = json!({"op": "set-state", "enabled": enabled});
    change(r, a, body, Creating::Nothing, |v| {
        outln!(
            "{} is now {} in {} (revision {})",
            a.key,
            if enabled { "ON" } else { "OFF" },
            a.env,
            v["revision"]
        );
    })
    .await
}

/// Expiring targets as a table.
pub(crate) fn target_table(v: &Value) {
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    vec![
                        s(&t["id"]),
                        s(&t["variant"]),
                        keys_of(t),
                        format!("{} ({})", s(&t["expires_at"]), when(&t["expires_at"])),
                        s(&t["created_by"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["target", "variant", "keys", "expires", "by"], rows);
}

fn keys_of(v: &Value) -> String {
    let keys: Vec<String> = v["keys"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    match v["group"].as_str() {
        Some(g) => format!("{g} ({})", keys.join(", ")),
        None => keys.join(", "),
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
    let body = json!({"variant": variant, "keys": keys, "group": group, "for": duration});
    let v = c
        .call(
            Method::POST,
            &format!("{}/targets", flag_path(env, key)),
            Some(body),
        )
        .await?;
    emit(r.output, &v, |v| {
        outln!(
            "target {}: {key} in {env} serves `{}` to {} until {} (expires {})",
            s(&v["id"]),
            s(&v["variant"]),
            keys_of(v),
            s(&v["expires_at"]),
            when(&v["expires_at"])
        );
        outln!(
            "remove it early with: sluice flags untarget {key} --env {env} {}",
            s(&v["id"])
        );
    })
}

fn scheduled_table(v: &Value) {
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let state = match c["status"].as_str().unwrap_or_default() {
                        "pending" => until(&c["apply_at"], "applies", "due now"),
                        // The first clause of the outcome; `--all -o json` has all of it.
                        other => {
                            let result = s(&c["result"]);
                            let first = result.split(';').next().unwrap_or_default();
                            format!("{other}: {first}")
                        }
                    };
                    vec![
                        s(&c["id"]),
                        s(&c["environment"]),
                        s(&c["key"]),
                        describe(&s(&c["key"]), &c["change"]["change"]),
                        s(&c["apply_at"]),
                        state,
                        s(&c["created_by"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
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
fn parse_steps(raw: &[String], every: Option<&str>) -> anyhow::Result<Vec<Value>> {
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
            Ok(json!({"percent": percent, "hold": hold}))
        })
        .collect()
}

fn rollout_human(v: &Value) {
    let steps: Vec<String> = v["steps"]
        .as_array()
        .map(|a| a.iter().map(|p| pct(p.as_f64().unwrap_or(0.0))).collect())
        .unwrap_or_default();
    let (key, env, variant) = (s(&v["key"]), s(&v["environment"]), s(&v["variant"]));
    let state = s(&v["state"]);
    outln!("rollout of `{variant}` for {key} in {env}: {state}");
    outln!("steps     {}", steps.join(" → "));
    if state == "completed" {
        outln!(
            "done      reached 100% at {}: `{variant}` is the flag's default variant (revision {})",
            s(&v["completed_at"]),
            s(&v["completed_revision"])
        );
        return;
    }
    match v["current_step"].as_u64() {
        Some(i) => outln!(
            "now       step {} of {}: {} of users get `{variant}`",
            i + 1,
            steps.len(),
            pct(v["current_percent"].as_f64().unwrap_or(0.0))
        ),
        None => outln!("now       nobody gets `{variant}` from the rollout"),
    }
    let next = v["current_step"]
        .as_u64()
        .and_then(|i| steps.get(usize::try_from(i).ok()? + 1).cloned());
    match (state.as_str(), v["next_change_at"].is_null(), next) {
        ("paused", _, _) => outln!(
            "next      held while paused; continue with: sluice rollout resume {key} --env {env}"
        ),
        ("running", false, Some(p)) => outln!(
            "next      {p} at {} ({})",
            s(&v["next_change_at"]),
            when(&v["next_change_at"])
        ),
        ("running", _, _) => match v["completion_error"].as_str() {
            Some(e) => outln!("next      could not complete: {e}"),
            None => outln!("next      none: this is the last step"),
        },
        _ => {}
    }
}

pub async fn rollout(cmd: RolloutCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    let path = |f: &FlagRef| format!("{}/rollout", flag_path(&f.env, &f.key));
    let v = match cmd {
        RolloutCommand::Start {
            flag,
            variant,
            steps,
            step,
            every,
        } => {
            let raw = if steps.is_empty() { step } else { steps };
            let steps = parse_steps(&raw, every.as_deref())?;
            c.call(
                Method::PUT,
                &path(&flag),
                Some(json!({"variant": variant, "steps": steps})),
            )
            .await?
        }
        RolloutCommand::Status(f) => c.call(Method::GET, &path(&f), None).await?,
        RolloutCommand::Pause(f) => {
            c.call(Method::POST, &format!("{}/pause", path(&f)), None)
                .await?
        }
        RolloutCommand::Resume(f) => {
            c.call(Method::POST, &format!("{}/resume", path(&f)), None)
                .await?
        }
        RolloutCommand::Rollback(f) => {
            c.call(Method::POST, &format!("{}/rollback", path(&f)), None)
                .await?
        }
    };
    emit(r.output, &v, rollout_human)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            steps,
            Some(vec![
                json!({"percent": 1.0, "hold": "30m"}),
                json!({"percent": 10.0, "hold": "1h"}),
                json!({"percent": 100.0, "hold": "30m"}),
            ])
        );
        assert!(parse_steps(&raw, None).is_err());
    }
}
