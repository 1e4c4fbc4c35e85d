//! The audit view: only for administrators and auditors; filters; a flag change's diff; the
//! chain verified; and the export of a time range, downloaded in the browser and verified
//! offline by the CLI like any `sluice audit export`.

use super::*;
use crate::harness::offline;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_view_filters_shows_a_flag_change_as_a_diff_and_exports_a_range_that_verifies() {
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;
    let grant = flags_grant(&s, &http, &alice_token, &bob_token).await;
    let (status, v) = post_json(
        &http,
        &s.url("/v1/environments/production/flags/checkout-v2/changes"),
        &alice_token,
        &json!({"change": {"op": "set-state", "enabled": false}, "base_revision": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Not for alice.
    let alice = browser(&d, 1280, 900).await;
    sign_in(&alice, &s, &alice_token).await;
    alice.goto(&s.url("/ui/audit")).await.unwrap();
    assert!(text(&alice, ".error").await.contains("auditors"));
    alice.close().await.unwrap();

    let admin = browser(&d, 1280, 1300).await;
    sign_in(&admin, &s, ADMIN_TOKEN).await;
    admin.goto(&s.url("/ui/audit")).await.unwrap();
    type_into(&admin, "#actor", "alice").await;
    type_into(&admin, "#action", "flag").await;
    click(&admin, "form.filter button[type=submit]").await;
    wait_for(&admin, "#actor[value=alice]").await;
    let entries = admin.find_all(Locator::Css("li.entry")).await.unwrap();
    assert_eq!(entries.len(), 1, "the one flag change by alice");
    let actor = entries[0].find(Locator::Css(".actor")).await.unwrap();
    assert_eq!(actor.text().await.unwrap(), "alice");
    let action = entries[0].find(Locator::Css(".action")).await.unwrap();
    assert_eq!(action.text().await.unwrap(), "flag.changed");

    // Open it: the state line, removed and added, and the details naming the grant.
    click(&admin, "li.entry summary").await;
    let diff = text(&admin, "li.entry pre.diff").await;
    assert!(
        diff.contains("-   \"state\": \"ENABLED\",")
            && diff.contains("+   \"state\": \"DISABLED\","),
        "{diff}"
    );
    assert_eq!(count(&admin, "li.entry pre.diff del").await, 1);
    assert_eq!(count(&admin, "li.entry pre.diff ins").await, 1);
    assert!(text(&admin, "li.entry pre.details").await.contains(&grant));
    screenshot(&admin, "audit.png").await;
    click(&admin, "form button.secondary").await;
    let ok = admin
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(".verify-ok"))
        .await
        .expect("the chain verifies");
    assert!(ok.text().await.unwrap().contains("no problem found"));

    // Export a range that ends now: the link carries the range; fetched with the session as
    // the browser would download it.
    let until = (sluice_core::Clock::now(&sluice_core::SystemClock)
        + chrono::TimeDelta::minutes(1))
    .format("%Y-%m-%dT%H:%M")
    .to_string();
    admin
        .goto(&s.url(&format!("/ui/audit?since=2000-01-01T00:00&until={until}")))
        .await
        .unwrap();
    let href = wait_for(&admin, "a.download")
        .await
        .attr("href")
        .await
        .unwrap()
        .expect("href");
    assert!(
        href.contains("/ui/audit/export?since=2000-01-01T00") && href.contains("&until=20"),
        "{href}"
    );
    let body = admin
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector('a.download').href, {credentials: 'same-origin'})
               .then(r => r.text().then(t => done([r.status, r.headers.get('content-disposition'), t])));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(body[0], json!(200), "{body}");
    let disposition = body[1].as_str().unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename=\"sluice-audit-20000101T0000-"),
        "{disposition}"
    );
    let export = body[2].as_str().expect("the export").to_owned();
    assert!(export.lines().count() > 5, "{export}");
    let last: serde_json::Value = serde_json::from_str(export.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["type"], "checkpoint",
        "ends with a signed checkpoint: {last}"
    );
    admin.close().await.unwrap();

    // The API gives the same bytes for the same range (nothing was written since).
    let api = http
        .get(s.url(&format!(
            "/v1/audit/export?since=2000-01-01T00:00:00Z&until={until}:00Z"
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
    assert_eq!(api.text().await.unwrap(), export);

    // The CLI verifies it offline with the public key, as any export.
    let file = dir.path().join("range.jsonl");
    std::fs::write(&file, &export).unwrap();
    let public = s.public_key_file(dir.path()).await;
    let r = offline(
        &[
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ],
        dir.path(),
    )
    .await;
    assert!(
        r.success && r.stdout.starts_with("ok:"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );

    // A range that ended before anything was written is empty, not the whole trail.
    let (cookie, _) = super::inbox::http_session(&s, &http, ADMIN_TOKEN).await;
    let r = http
        .get(s.url("/ui/audit/export?since=&until=2000-01-01T00:00"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "");
    // A malformed time is refused with the code for times, on the console as on the API.
    let r = http
        .get(s.url("/ui/audit/export?until=yesterday"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("2026-12-03T14:00"));
}
