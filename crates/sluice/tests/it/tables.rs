//! The CLI's tables for people, pinned with `insta`: a column that goes blank or moves shows
//! up in review. Output of the real binary against a real server.

use crate::harness::{Serve, ADMIN_TOKEN, FLAGS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_list_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    let file = dir.path().join("flags.json");
    std::fs::write(&file, FLAGS).expect("write flags");
    for env in ["staging", "production"] {
        let out = s
            .ok(
                admin,
                &[
                    "flags",
                    "import",
                    file.to_str().expect("utf-8"),
                    "--env",
                    env,
                    "--create-env",
                ],
            )
            .await;
        assert!(out.contains("imported 2 flags"), "{out}");
    }
    insta::assert_snapshot!("flags_list", s.ok(admin, &["flags", "list"]).await);
    insta::assert_snapshot!(
        "flags_list_env",
        s.ok(admin, &["flags", "list", "--env", "staging"]).await
    );
    s.kill().await;
}
