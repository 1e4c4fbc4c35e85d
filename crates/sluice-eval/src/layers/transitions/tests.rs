use super::*;

fn hold(s: &str) -> Result<i64, String> {
    match s {
        "30m" => Ok(1_800_000),
        "0s" => Ok(0),
        other => Err(format!("`{other}` is not a duration")),
    }
}

fn spec(percent: f64, hold: &str) -> StepSpec<'_> {
    StepSpec { percent, hold }
}

fn started() -> Rollout {
    let steps = [spec(10.0, "30m"), spec(50.0, "30m"), spec(100.0, "0s")];
    Rollout::start("on".into(), &steps, hold, 1_000).unwrap()
}

#[test]
fn a_schedule_must_be_sane() {
    let err = |steps: &[StepSpec<'_>]| Rollout::start("on".into(), steps, hold, 0).unwrap_err();
    assert_eq!(err(&[]).to_string(), "give 1 to 100 steps");
    assert_eq!(
        err(&[spec(101.0, "30m")]).to_string(),
        "step 0: percent must be between 0 and 100"
    );
    assert_eq!(
        err(&[spec(50.0, "30m"), spec(10.0, "30m")]).to_string(),
        "step 1: shares must not shrink (users already in must stay in)"
    );
    assert_eq!(
        err(&[spec(5.0, "soon")]).to_string(),
        "step 0: `soon` is not a duration"
    );
    let r = started();
    assert_eq!(r.steps[0].share_bp, 1_000);
    assert_eq!(r.recorded_step, Some(0));
    assert_eq!(r.state, RolloutState::Running);
}

#[test]
fn pausing_shifts_the_schedule() {
    let mut r = started();
    r.pause(1_000 + 600_000).unwrap();
    assert_eq!(
        r.pause(1_000 + 700_000).unwrap_err().to_string(),
        "cannot pause a rollout that is paused"
    );
    r.resume(1_000 + 900_000).unwrap();
    assert_eq!(r.paused_total_ms, 300_000);
    // Without the pause the second step would start at 30 min; now at 35.
    assert_eq!(r.position(1_000 + 1_800_000).map(|p| p.step), Some(0));
    assert_eq!(r.position(1_000 + 2_100_000).map(|p| p.step), Some(1));
}

#[test]
fn a_rolled_back_or_completed_rollout_stays_so() {
    let mut r = started();
    r.roll_back().unwrap();
    assert_eq!(
        r.resume(5).unwrap_err().to_string(),
        "cannot resume a rollout that is rolledback"
    );
    let mut c = started();
    c.complete(Some(4), 9);
    assert_eq!(c.completed_revision, Some(4));
    for e in [c.clone().pause(10), c.clone().resume(10), c.roll_back()] {
        assert_eq!(
            e.unwrap_err(),
            RolloutError::Completed {
                variant: "on".into()
            }
        );
    }
}

#[test]
fn serving_a_variant_replaces_the_default_and_drops_targeting() {
    let def =
        json!({"defaultVariant": "off", "targeting": {"if": [true, "on"]}, "state": "ENABLED"});
    let (new, replaced) = serve_variant(&def, "on").unwrap();
    assert_eq!(new, json!({"defaultVariant": "on", "state": "ENABLED"}));
    assert_eq!(
        replaced,
        json!({"previous_default": "off", "removed_targeting": {"if": [true, "on"]}})
    );
    assert!(serve_variant(&json!([]), "on").is_none());
}

#[test]
fn time_is_recorded_once() {
    let target = |id: &str, at: i64| Target {
        id: id.into(),
        variant: "on".into(),
        keys: vec!["k".into()],
        group: None,
        expires_at_ms: at,
        created_by: "bob".into(),
    };
    let mut layers = FlagLayers {
        targets: vec![target("a", 100), target("b", 10_000_000)],
        rollout: Some(started()),
    };
    assert!(!layers.has_lapsed(99));
    assert!(layers.has_lapsed(100), "half-open: expired at its moment");
    let now = 1_000 + 3_600_000;
    let lapsed = layers.record_time(now);
    assert_eq!(lapsed.expired.len(), 1);
    assert_eq!(lapsed.expired[0].id, "a");
    assert_eq!(
        lapsed.steps,
        [
            StepReached {
                step: 1,
                of: 3,
                percent: 50.0
            },
            StepReached {
                step: 2,
                of: 3,
                percent: 100.0
            }
        ]
    );
    assert_eq!(layers.record_time(now), Lapsed::default());
    assert!(layers.has_lapsed(now), "still due to complete");
}
