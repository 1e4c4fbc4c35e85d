//! Console sign-ins in progress: kept by one handle, taken by another (another instance),
//! once, and never after they expire.

use crate::{backends, t0};
use chrono::TimeDelta;
use sluice_store::PendingSignIn;

fn pending(state_hash: &str, minutes: i64) -> PendingSignIn {
    PendingSignIn {
        state_hash: state_hash.into(),
        browser: "b".repeat(64),
        sealed: "v1.sealed".into(),
        created_at: t0(),
        expires_at: t0() + TimeDelta::minutes(minutes),
    }
}

#[tokio::test]
async fn a_sign_in_in_progress_is_taken_once_by_any_handle_and_never_after_it_expires() {
    for db in backends().await {
        let a = db.open().await;
        let b = db.open().await;
        let p = pending("s1", 10);
        a.put_pending_sign_in(&p, t0()).await.unwrap();
        // Another handle (another instance) takes it, exactly as kept, once.
        let now = t0() + TimeDelta::minutes(9);
        assert_eq!(b.take_pending_sign_in("s1", now).await.unwrap(), Some(p));
        assert_eq!(b.take_pending_sign_in("s1", now).await.unwrap(), None);
        assert_eq!(a.take_pending_sign_in("s1", now).await.unwrap(), None);
        // Expired: refused at its expiry exactly, even before any sweep, and gone after.
        a.put_pending_sign_in(&pending("s2", 10), t0())
            .await
            .unwrap();
        let at_expiry = t0() + TimeDelta::minutes(10);
        assert_eq!(b.take_pending_sign_in("s2", at_expiry).await.unwrap(), None);
        assert_eq!(b.take_pending_sign_in("s2", t0()).await.unwrap(), None);
        // A new one sweeps those expired at its start; a live one stays.
        a.put_pending_sign_in(&pending("s3", 10), t0())
            .await
            .unwrap();
        a.put_pending_sign_in(&pending("s4", 30), t0())
            .await
            .unwrap();
        let later = t0() + TimeDelta::minutes(20);
        let mut fresh = pending("s5", 10);
        fresh.created_at = later;
        fresh.expires_at = later + TimeDelta::minutes(10);
        a.put_pending_sign_in(&fresh, later).await.unwrap();
        assert_eq!(
            a.take_pending_sign_in("s3", t0()).await.unwrap(),
            None,
            "swept"
        );
        assert!(a.take_pending_sign_in("s4", later).await.unwrap().is_some());
        // The same state twice is refused (a state is random: a clash is a bug, not a retry).
        assert!(a.put_pending_sign_in(&fresh, later).await.is_err());
    }
}
