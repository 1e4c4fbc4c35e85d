//! The flags page: a protected flag toggled only under a grant, a proposal approved from the
//! inbox, and a flag's layers — expiring targets, the rollout's step chart paused from the
//! chart, proposals and scheduled changes.

use super::*;
use crate::harness::get_json;

const CHECKOUT: &str = "li.flag[data-flag='checkout-v2']";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_flag_is_toggled_only_under_a_grant_and_a_proposal_is_approved_from_the_inbox()
{
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;

    // Without a grant: the flag is shown with the refusal that says what to request.
    let alice = browser(&d, 1280, 900).await;
    sign_in(&alice, &s, &alice_token).await;
    alice
        .goto(&s.url("/ui/flags?env=production"))
        .await
        .unwrap();
    let got = text(&alice, CHECKOUT).await;
    assert!(got.contains("ENABLED") && got.contains("off"), "{got}");
    let refusal = text(&alice, &format!("{CHECKOUT} .refusal")).await;
    assert!(
        refusal.contains("protected") && refusal.contains("flags-prod-operator"),
        "{refusal}"
    );
    assert_eq!(count(&alice, &format!("{CHECKOUT} button")).await, 0);
    let badge = text(&alice, ".tabs a[aria-current=page] .badge").await;
    assert_eq!(badge.to_lowercase(), "protected");
    // Who may toggle it now (the AuthZEN subject search): nobody, with no grant live.
    click(&alice, &format!("{CHECKOUT} a.who-can")).await;
    let answer = text(&alice, ".answer").await;
    assert!(
        answer.contains("Which users may toggle flag:production/checkout-v2 now?")
            && answer.contains("None, now."),
        "{answer}"
    );
    alice
        .goto(&s.url("/ui/flags?env=production"))
        .await
        .unwrap();

    // With a grant (asked and approved through the API), the page names it and toggles.
    let grant = flags_grant(&s, &http, &alice_token, &bob_token).await;
    alice.refresh().await.unwrap();
    let allowed = text(&alice, &format!("{CHECKOUT} .allowed")).await;
    assert!(allowed.contains(&grant), "{allowed}");
    // The searches follow the grant: alice may now toggle it, and every production flag is
    // on her list of flags she may toggle (from her access page).
    let who = s.url("/ui/search?mode=who&action=toggle&resource=flag:production/checkout-v2");
    alice.goto(&who).await.unwrap();
    assert_eq!(text(&alice, ".answer .results").await, "alice");
    alice.goto(&s.url("/ui/access")).await.unwrap();
    click(&alice, "a.what-can").await;
    let mine = text(&alice, ".answer .results").await;
    assert!(
        mine.contains("production/checkout-v2") && mine.contains("production/banner"),
        "{mine}"
    );
    screenshot(&alice, "who-can.png").await;
    alice
        .goto(&s.url("/ui/flags?env=production"))
        .await
        .unwrap();
    screenshot(&alice, "flags.png").await;
    click(&alice, &format!("{CHECKOUT} button[type=submit]")).await;
    assert_eq!(text(&alice, ".notice").await, "Flag changed.");
    assert_eq!(
        text(&alice, &format!("{CHECKOUT} .state")).await,
        "DISABLED"
    );
    let url = s.url("/v1/environments/production/flags/checkout-v2");
    let (status, flag) = get_json(&http, &url, &alice_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flag["definition"]["state"], "DISABLED", "{flag}");
    alice.close().await.unwrap();

    // Four eyes: alice proposes turning `banner` on; bob approves it from his inbox.
    let (status, cr) = post_json(
        &http,
        &s.url("/v1/environments/production/flags/banner/proposals"),
        &alice_token,
        &json!({"change": {"op": "set-state", "enabled": true}, "base_revision": 1, "reason": "launch the banner"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cr}");
    let cr = cr["id"].as_str().unwrap().to_owned();
    let bob = browser(&d, 1280, 900).await;
    sign_in(&bob, &s, &bob_token).await;
    let card_css = format!("li.change[data-change='{cr}']");
    let got = text(&bob, &card_css).await;
    assert!(
        got.contains("alice proposes: turn ON banner in production")
            && got.contains("launch the banner")
            && got.contains("0 of 1"),
        "{got}"
    );
    click(&bob, &format!("{card_css} button.approve")).await;
    assert_eq!(text(&bob, ".notice").await, "Approved.");
    let url = s.url("/v1/environments/production/flags/banner");
    let (_, flag) = get_json(&http, &url, &alice_token).await;
    assert_eq!(flag["definition"]["state"], "ENABLED", "{flag}");
    bob.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_drawn_as_a_step_chart_and_paused_from_it_with_the_keyboard() {
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;
    let grant = flags_grant(&s, &http, &alice_token, &bob_token).await;
    let flag = |rest: &str| s.url(&format!("/v1/environments/production/flags/{rest}"));

    // Through the API: a rollout 10% → 25% → 50% → 100% whose first steps hold for seconds,
    // paused for 3 s during the first, so that by the time the page is read two steps are
    // done and the third is current; a target for alice for 20 minutes; a proposal and a
    // scheduled change on `banner`.
    let steps = json!({"variant": "on", "steps": [
        {"percent": 10, "hold": "2s"}, {"percent": 25, "hold": "2s"},
        {"percent": 50, "hold": "1m"}, {"percent": 100, "hold": "1m"}]});
    start_rollout(&s, &http, &alice_token, "checkout-v2", steps).await;
    for (op, then) in [("pause", 1_000), ("resume", 3_000)] {
        tokio::time::sleep(Duration::from_millis(then)).await;
        let url = flag(&format!("checkout-v2/rollout/{op}"));
        let (status, v) = post_json(&http, &url, &alice_token, &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{op}: {v}");
    }
    let target = json!({"variant": "on", "keys": ["alice"], "for": "20m"});
    let (status, v) = post_json(&http, &flag("checkout-v2/targets"), &alice_token, &target).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let proposal = json!({"change": {"op": "set-state", "enabled": true}, "base_revision": 1, "reason": "launch the banner"});
    let (status, v) = post_json(&http, &flag("banner/proposals"), &alice_token, &proposal).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let at = (sluice_core::Clock::now(&sluice_core::SystemClock) + chrono::TimeDelta::minutes(10))
        .to_rfc3339();
    let later =
        json!({"change": {"op": "set-state", "enabled": true}, "base_revision": 1, "at": at});
    let (status, v) = post_json(&http, &flag("banner/changes"), &alice_token, &later).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    tokio::time::sleep(Duration::from_millis(4_000)).await;

    let alice = browser(&d, 1280, 1400).await;
    sign_in(&alice, &s, &alice_token).await;
    alice
        .goto(&s.url("/ui/flags?env=production"))
        .await
        .unwrap();

    // The target, counting down.
    let target = text(&alice, &format!("{CHECKOUT} li.target")).await;
    assert!(
        target.contains("alice get on") && target.contains("in 19m"),
        "{target}"
    );
    // The chart: an image with a title in words, drawn steps (done and current) and a
    // scheduled one, and the same facts as a list.
    let chart = format!("{CHECKOUT} svg.step-chart");
    let title = text(&alice, &format!("{CHECKOUT} .rollout h3")).await;
    assert!(
        title.contains("RUNNING") || title.contains("running"),
        "{title}"
    );
    assert_eq!(
        wait_for(&alice, &chart)
            .await
            .attr("role")
            .await
            .unwrap()
            .as_deref(),
        Some("img")
    );
    for kind in ["done", "current", "scheduled", "paused"] {
        assert!(
            count(&alice, &format!("{chart} rect.seg.{kind}")).await > 0,
            "a {kind} stretch"
        );
    }
    let steps: Vec<String> = {
        let mut out = Vec::new();
        for li in alice
            .find_all(Locator::Css(&format!("{CHECKOUT} .steps-list li")))
            .await
            .unwrap()
        {
            out.push(li.text().await.unwrap());
        }
        out
    };
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(steps[0].starts_with("10% — done"), "{steps:?}");
    assert!(steps[1].starts_with("25% — done"), "{steps:?}");
    assert!(steps[2].starts_with("50% — current"), "{steps:?}");
    assert!(
        steps[3].starts_with("100% — scheduled") && steps[3].contains("(in "),
        "{steps:?}"
    );
    let pauses = text(&alice, &format!("{CHECKOUT} .pauses")).await;
    assert!(pauses.starts_with("paused "), "{pauses}");
    let allowed = text(&alice, &format!("{CHECKOUT} .rollout .allowed")).await;
    assert!(allowed.contains(&grant), "{allowed}");
    // Banner: the proposal and the scheduled change.
    let banner = "li.flag[data-flag='banner']";
    let proposal = text(&alice, &format!("{banner} li.proposal")).await;
    assert!(
        proposal.contains("alice proposes: turn ON") && proposal.contains("0 of 1"),
        "{proposal}"
    );
    let later = text(&alice, &format!("{banner} li.scheduled-change")).await;
    assert!(
        later.contains("turn ON") && later.contains("in 9m"),
        "{later}"
    );
    screenshot(&alice, "flags-rollout.png").await;

    // Pause from the chart, with the keyboard: focus the button and press Enter.
    let pause = wait_for(&alice, &format!("{CHECKOUT} button.rollout-pause")).await;
    pause
        .send_keys(&fantoccini::key::Key::Enter.to_string())
        .await
        .unwrap();
    assert_eq!(text(&alice, ".notice").await, "Rollout paused.");
    let title = text(&alice, &format!("{CHECKOUT} .rollout h3")).await;
    assert!(title.to_lowercase().contains("paused"), "{title}");
    assert_eq!(
        count(&alice, &format!("{CHECKOUT} button.rollout-pause")).await,
        0
    );
    wait_for(&alice, &format!("{CHECKOUT} button.rollout-resume")).await;
    let steps = text(&alice, &format!("{CHECKOUT} .steps-list")).await;
    assert!(steps.contains("if resumed now"), "{steps}");
    assert!(text(&alice, &format!("{CHECKOUT} .pauses"))
        .await
        .contains("paused since"));
    no_horizontal_scroll(&alice).await;

    // The API and the audit trail agree: paused, by alice, under her grant.
    let (_, status) = get_json(&http, &flag("checkout-v2/rollout"), &alice_token).await;
    assert_eq!(status["state"], "paused", "{status}");
    let paused = s.audit_entries(&http, Some("rollout.paused")).await;
    assert_eq!(paused.len(), 2, "{paused:?}");
    assert_eq!(paused[1]["actor"], "alice");
    assert_eq!(
        paused[1]["details"]["authority"]["grant_id"],
        json!(grant),
        "{paused:?}"
    );
    alice.close().await.unwrap();
}
