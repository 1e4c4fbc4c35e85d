//! Brute force: failed authentications are counted per source address and per token prefix,
//! slowed, then refused with 429 and Retry-After, and audited once per key and minute. And
//! verifying a token takes no longer for a guess that shares a real token's beginning.

use crate::backend_tests;
use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::Value;
use sluice_core::token::SecretToken;
use sluice_server::auth_failures::{DELAY, REFUSE_AFTER, SLOW_AFTER};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

/// A client whose connections come from `127.0.0.<n>`.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .build()
        .expect("client")
}

async fn whoami(s: &TestServer, c: &reqwest::Client, token: &str) -> reqwest::Response {
    c.get(s.url("/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

/// A well-formed guess starting with `prefix` (16 characters), the rest random.
fn guess(prefix: &str) -> String {
    let random = SecretToken::generate(sluice_core::token::TokenKind::Api, &mut rand::rngs::OsRng);
    format!("{prefix}{}", &random.expose()[16..])
}

async fn a_guesser_is_slowed_then_refused_and_audited_once_per_minute(b: Backend) {
    let s = crate::server!(b);
    let (a, other) = (client_from(2), client_from(3));
    // A real token this instance has not verified yet: not in its token cache.
    let fresh = s.token("dave").await;
    // The administrator's token verified after the token change has settled (a change to
    // tokens empties the cache, on PostgreSQL also when the instance's poll sees it): cached.
    s.app.sync().await.expect("sync");
    let r = whoami(&s, &other, ADMIN_TOKEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    let prefix = "slu_api_deadbeef";
    for n in 1..=REFUSE_AFTER {
        let started = Instant::now();
        let r = whoami(&s, &a, &guess(prefix)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "failure {n}");
        if n > SLOW_AFTER {
            assert!(
                started.elapsed() >= DELAY,
                "failure {n} is answered only after {DELAY:?}"
            );
        }
    }
    // The source is refused now, whatever it presents that this instance has not verified
    // already: a right token is not told apart from a wrong one.
    for token in [guess("slu_api_00112233"), fresh.clone()] {
        let r = whoami(&s, &a, &token).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = r
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry), "{retry}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], "too_many_failed_authentications", "{v}");
    }
    // A token verified before (held in the token cache) passes: an operator sharing the
    // address with a guesser is not locked out, and the store is not asked.
    let r = whoami(&s, &a, ADMIN_TOKEN).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a cached token from the refused source"
    );
    // From elsewhere: the guessed prefix is refused, anything else is answered as usual.
    let r = whoami(&s, &other, &guess(prefix)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = whoami(&s, &other, &guess("slu_api_cafebabe")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = whoami(&s, &other, ADMIN_TOKEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A request without a token guesses nothing and is not refused for its source.
    let r = a.get(s.url("/healthz")).send().await.expect("sent");
    assert_eq!(r.status(), StatusCode::OK);

    // The next minute starts afresh, and the minute that ended is in the trail: one entry per
    // key, with counts.
    s.advance(TimeDelta::seconds(61));
    let r = whoami(&s, &a, ADMIN_TOKEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    s.app.auth_failures.flush().await;
    let entries = s.audit_actions("auth.failed").await;
    let by_source = entries
        .iter()
        .find(|e| e["details"]["source"] == "127.0.0.2")
        .unwrap_or_else(|| panic!("an entry for the source: {entries:?}"));
    assert_eq!(by_source["details"]["failures"], REFUSE_AFTER);
    assert_eq!(by_source["details"]["refused"], 2);
    let by_prefix = entries
        .iter()
        .find(|e| e["details"]["token_prefix"] == prefix)
        .unwrap_or_else(|| panic!("an entry for the prefix: {entries:?}"));
    assert_eq!(by_prefix["details"]["failures"], REFUSE_AFTER);
    assert_eq!(by_prefix["details"]["refused"], 1);
    // 127.0.0.3 and the other guessed prefix failed once each: 4 entries for 22 failures.
    assert_eq!(entries.len(), 4, "{entries:?}");
    let v = s.verify().await;
    assert_eq!(v["ok"], true, "{v}");
}

/// Mann-Whitney: the probability that a sample of `a` is larger than one of `b` (ties half).
fn prob_greater(a: &[f64], b: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Average ranks over ties.
    let mut rank_sum_a = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_a += all[i..=j].iter().filter(|x| x.1).count() as f64 * rank;
        i = j + 1;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    (rank_sum_a - n1 * (n1 + 1.0) / 2.0) / (n1 * n2)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Tokens are verified by the SHA-256 of the whole presented secret, looked up in the store, and
/// in memory by a keyed 128-bit hash of it: neither compares the secret itself, so how much of
/// a guess matches a real token cannot change how long the answer takes. Checked on both
/// paths, with guesses that share a real token's first 40 characters against guesses that
/// share none, interleaved: the two distributions of many samples must be indistinguishable
/// (Mann-Whitney's P(near > far) within 0.5 ± 0.2, and medians within 20%).
async fn verifying_a_guess_takes_as_long_whatever_it_shares_with_a_real_token(b: Backend) {
    let s = crate::server!(b);
    let real = s.token("alice").await;
    // Put the real token in the cache.
    let (st, _) = s.get(&real, "/v1/whoami").await;
    assert_eq!(st, StatusCode::OK);
    let near = || {
        SecretToken::from_presented(&format!(
            "{}{}",
            &real[..40],
            &guess("slu_api_00000000")[40..]
        ))
    };
    let far = || SecretToken::from_presented(&guess("slu_api_ffffffff"));
    let now = s.clock_now();

    // The in-memory path: batches of lookups, so one sample is well above the timer's grain.
    const BATCH: usize = 200;
    let near_tokens: Vec<SecretToken> = (0..BATCH).map(|_| near()).collect();
    let far_tokens: Vec<SecretToken> = (0..BATCH).map(|_| far()).collect();
    let measure = || {
        let (mut near_mem, mut far_mem) = (Vec::new(), Vec::new());
        for round in 0..400 {
            let mut pair = [(&near_tokens, &mut near_mem), (&far_tokens, &mut far_mem)];
            // Which goes first alternates, so a drift over the run favours neither.
            if round % 2 == 1 {
                pair.reverse();
            }
            for (tokens, out) in pair {
                // A sample is the fastest of five batches: being descheduled or sharing the
                // core only ever adds time, so the minimum keeps the lookup's own cost and
                // drops most of a loaded host's noise, which would otherwise hide a real
                // difference.
                let mut fastest = f64::MAX;
                for _ in 0..5 {
                    let started = Instant::now();
                    for t in tokens {
                        std::hint::black_box(s.app.tokens.get(s.app.tokens.key(t), now));
                    }
                    fastest = fastest.min(started.elapsed().as_nanos() as f64);
                }
                if round >= 20 {
                    // The first rounds warm caches up.
                    out.push(fastest);
                }
            }
        }
        (near_mem, far_mem)
    };
    // The check must be able to tell a difference apart: in memory, one 10% slower has to show
    // (P > 0.7) in the same samples, or they say nothing. A host busy enough to blur even that
    // gets another measurement (at most three); the verdict is always taken from samples that
    // passed the self-check.
    let (mut near_mem, mut far_mem) = (Vec::new(), Vec::new());
    for attempt in 1..=3 {
        (near_mem, far_mem) = measure();
        let shifted: Vec<f64> = far_mem.iter().map(|x| x * 1.1).collect();
        let p = prob_greater(&shifted, &far_mem);
        if p > 0.7 {
            break;
        }
        assert!(
            attempt < 3,
            "a 10% slower path shows as P = {p:.3} in three measurements: too noisy to judge"
        );
        eprintln!("measurement {attempt}: a 10% slower path shows only as P = {p:.3}; again");
    }
    judge("in memory", &mut near_mem, &mut far_mem).unwrap_or_else(|e| panic!("{e}"));
    // The store path: a sample is the fastest of three lookups (of three guesses of the same
    // kind), alternating: as in memory, the minimum drops the time other tests running beside
    // this one add (alone it made no difference; under the whole suite's load one run in a
    // few came out at P = 0.70, and one in many with medians 24 % apart). A real difference
    // shows in every measurement; the suite's load in one now and then: the verdict is the
    // first of (at most) three measurements that finds none, and it fails if all three do.
    for attempt in 1..=3 {
        let (mut near_db, mut far_db) = (Vec::new(), Vec::new());
        for round in 0..600 {
            let mut pair = [
                (&near as &dyn Fn() -> SecretToken, &mut near_db),
                (&far, &mut far_db),
            ];
            if round % 2 == 1 {
                pair.reverse();
            }
            for (make, out) in pair {
                let mut fastest = f64::MAX;
                for _ in 0..3 {
                    let t = make();
                    let started = Instant::now();
                    let found = s
                        .app
                        .store
                        .token_by_hash(&t.hash(), now)
                        .await
                        .expect("lookup");
                    fastest = fastest.min(started.elapsed().as_nanos() as f64);
                    assert!(found.is_none());
                }
                if round >= 20 {
                    out.push(fastest);
                }
            }
        }
        match judge("in the store", &mut near_db, &mut far_db) {
            Ok(()) => break,
            Err(e) if attempt < 3 => eprintln!("measurement {attempt}: {e}; again"),
            Err(e) => panic!("{e} (three measurements)"),
        }
    }
}

/// Whether `near` and `far` samples are indistinguishable: Mann-Whitney's P(near > far)
/// within 0.5 ± 0.2 and medians within 20 %.
fn judge(what: &str, near: &mut [f64], far: &mut [f64]) -> Result<(), String> {
    let p = prob_greater(near, far);
    let (mn, mf) = (median(near), median(far));
    eprintln!("{what}: P(near > far) = {p:.3}, medians {mn:.0} ns vs {mf:.0} ns");
    if !(0.3..=0.7).contains(&p) {
        return Err(format!(
            "{what}: a near guess is slower than a far one with probability {p:.3}"
        ));
    }
    if (mn / mf - 1.0).abs() > 0.2 {
        return Err(format!(
            "{what}: medians {mn:.0} ns (near) vs {mf:.0} ns (far)"
        ));
    }
    Ok(())
}

/// The `Retry-After` of an answer, in seconds.
fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

async fn sign_in_requests_over_their_rate_are_refused_per_source_and_audited(b: Backend) {
    let s = crate::server!(b);
    // An identity provider nobody answers at: each sign-in request that passes the limit is
    // answered 502 at once, so what is counted is Sluice's own limit.
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret").expect("secret");
    let config = sluice_server::oidc::config::OidcFile {
        issuer: Some(format!("http://127.0.0.1:{}", closed_port())),
        client_id: Some("sluice".into()),
        client_secret_file: Some(secret),
        sign_in_rate_limit: Some(5),
        ..Default::default()
    }
    .resolve()
    .expect("config")
    .expect("an identity provider");
    s.app.set_oidc(std::sync::Arc::new(
        sluice_server::oidc::Oidc::new(config).expect("oidc"),
    ));
    let (a, other) = (client_from(4), client_from(5));
    let poll = |c: &reqwest::Client| {
        c.post(s.url("/v1/sign-in/device/token"))
            .json(&serde_json::json!({"device_code": "guessed"}))
            .send()
    };
    // The device start, the device poll and the console's sign-in share one quota per source.
    let r = a
        .post(s.url("/v1/sign-in/device"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let r = a.get(s.url("/ui/oidc/start")).send().await.expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    for n in 3..=5 {
        let r = poll(&a).await.expect("sent");
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "request {n}");
    }
    let r = poll(&a).await.expect("sent");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Five a minute: the next passes in about 12 s.
    assert!((1..=12).contains(&retry_after(&r)), "{}", retry_after(&r));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], "rate_limited", "{v}");
    let r = a
        .post(s.url("/v1/sign-in/device"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The console's pages are refused too, as a page with the same status and Retry-After.
    for path in ["/ui/oidc/start", "/ui/oidc/callback?code=c&state=s"] {
        let r = a.get(s.url(path)).send().await.expect("sent");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(retry_after(&r) >= 1);
        assert!(r.text().await.expect("page").contains("too many requests"));
    }
    // Another source is not slowed by it.
    let r = poll(&other).await.expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);

    // The refusals are in the trail once the minute is over: one entry for the source, with
    // the count, not one per request.
    s.advance(TimeDelta::seconds(61));
    s.app.auth_failures.flush().await;
    let entries = s.audit_actions("sign_in.throttled").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["details"]["source"], "127.0.0.4");
    assert_eq!(entries[0]["details"]["refused"], 4);
    assert_eq!(entries[0]["actor"], "anonymous");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A full reload of the access snapshot (what every change of another instance brings)
/// keeps the authenticated tokens cached when nothing a caller stands on moved, and empties
/// the cache when a token was revoked: a revocation elsewhere still reaches the next request
/// here, and a grant elsewhere no longer sends every request to the store.
async fn a_reload_keeps_cached_tokens_unless_one_was_revoked(b: Backend) {
    let s = crate::server!(b);
    let (st, other) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            serde_json::json!({"principal": "bob", "name": "other"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{other}");
    let other_id = other["id"].as_str().expect("id").to_owned();
    let real = s.token("alice").await;
    let (st, _) = s.get(&real, "/v1/whoami").await;
    assert_eq!(st, StatusCode::OK);
    let key = s.app.tokens.key(&SecretToken::from_presented(&real));
    let now = s.clock_now();
    assert!(
        s.app.tokens.get(key, now).is_some(),
        "cached by the request"
    );

    // A write that moves the access revision and nothing of the callers', behind this
    // instance's back (as another instance's grant would), then the reload it brings.
    let mut tx = s.app.store.begin().await.expect("begin");
    tx.bump_access().await.expect("bump");
    tx.audit(now, sluice_store::NewEntry::new("test", "test.moved"))
        .await
        .expect("audit");
    tx.commit().await.expect("commit");
    s.app.refresh().await.expect("reload");
    assert!(
        s.app.tokens.get(key, now).is_some(),
        "a reload that moved nothing of the callers' emptied the token cache"
    );

    // Another token revoked behind its back: the next reload empties the cache.
    let mut tx = s.app.store.begin().await.expect("begin");
    tx.bump_access().await.expect("bump");
    assert!(tx.revoke_token(&other_id, now).await.expect("revoke"));
    tx.audit(now, sluice_store::NewEntry::new("test", "token.revoked"))
        .await
        .expect("audit");
    tx.commit().await.expect("commit");
    s.app.refresh().await.expect("reload");
    assert!(
        s.app.tokens.get(key, now).is_none(),
        "a revocation did not empty the token cache"
    );
    let (st, _) = s.get(&real, "/v1/whoami").await;
    assert_eq!(st, StatusCode::OK, "the unrevoked token still works");
}

backend_tests!(
    a_reload_keeps_cached_tokens_unless_one_was_revoked,
    a_guesser_is_slowed_then_refused_and_audited_once_per_minute,
    verifying_a_guess_takes_as_long_whatever_it_shares_with_a_real_token,
    sign_in_requests_over_their_rate_are_refused_per_source_and_audited,
);
