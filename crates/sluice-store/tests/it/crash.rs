//! PostgreSQL stopped the hard way: every write a store answered is there when it comes back.
//!
//! A batch's writers are answered once its commit is durable. This runs a PostgreSQL of its
//! own (initdb in a temporary directory, a free loopback port) whose log writer waits ten
//! seconds between rounds, so that a commit that did not wait for its flush would still be in
//! the server's memory; two store handles (two instances) write at once; then the server is
//! stopped with `pg_ctl stop -m immediate` (no checkpoint, nothing in memory written out: what
//! a crash leaves) and started again. Every answered writer's request, revision and entry must
//! be there, and the chain must verify. (A batch that committed with `synchronous_commit = off`
//! and answered after a transaction that only took a transaction id — which PostgreSQL commits
//! without a flush — lost the last batch here every time.)
//!
//! Needs PostgreSQL's server programs (`pg_config --bindir`); under `CI=true` they must be
//! there, elsewhere the test is skipped with a notice.

use crate::opening;
use sluice_store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL server of the test's own, stopped (immediately) when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Runs one of PostgreSQL's programs, as the `postgres` user when this runs as root
    /// (initdb and the server refuse root).
    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        run(&self.bin, self.as_postgres, program, args)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c wal_writer_delay=10s -c fsync=on",
            self.port
        );
        let log = self.data.join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                path(&self.data),
                "-l",
                path(&log),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// What a crash leaves: no checkpoint, nothing in the server's memory written out.
    fn stop_immediately(&self) {
        let out = self.run(
            "pg_ctl",
            &["-D", path(&self.data), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", path(&self.data), "-m", "immediate", "stop"],
        );
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn run(bin: &Path, as_postgres: bool, program: &str, args: &[&str]) -> std::process::Output {
    let program = bin.join(program);
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).output().expect("run a PostgreSQL program")
}

/// A new server in a temporary directory, started; `None` with a notice when PostgreSQL's
/// server programs are not installed (a failure under `CI=true`).
fn cluster() -> Option<Cluster> {
    let bin = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists());
    let Some(bin) = bin else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but PostgreSQL's server programs (initdb, pg_ctl) are not installed"
        );
        eprintln!("notice: initdb not found (pg_config --bindir); skipping the crash test");
        return None;
    };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    // PostgreSQL refuses to run as root: then it runs as `postgres`, which must exist.
    let postgres_user = Command::new("id")
        .arg("postgres")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && !postgres_user {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true, running as root, and there is no `postgres` user to run PostgreSQL as"
        );
        eprintln!("notice: running as root without a `postgres` user; skipping the crash test");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    if root {
        let owned = Command::new("chown")
            .args(["postgres:postgres", path(dir.path())])
            .status()
            .expect("chown");
        assert!(owned.success(), "chown the test's directory to postgres");
    }
    let out = run(
        &bin,
        root,
        "initdb",
        &[
            "-D",
            path(&data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ],
    );
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let c = Cluster {
        bin,
        data,
        port,
        as_postgres: root,
        _dir: dir,
    };
    c.start();
    Some(c)
}

/// Writers on two instances at once, each a request, an access revision and an entry, in the
/// instances' batches; the server stopped the moment the last is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_write_survives_an_immediate_stop_of_postgresql() {
    let Some(pg) = cluster() else { return };
    let url = pg.url();
    let a = Store::open(&url).await.expect("open instance A");
    let b = Store::open(&url).await.expect("open instance B");
    const WRITERS: usize = 48;
    let mut tasks = Vec::new();
    for n in 0..WRITERS {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let id = format!("req-{n}");
            let tx = opening(&store, &id, &format!("test.crash.{n}")).await;
            let stored = tx.commit().await.expect("commit");
            (id, stored)
        }));
    }
    let mut answered = Vec::new();
    for t in tasks {
        answered.push(t.await.expect("writer"));
    }
    pg.stop_immediately();
    drop((a, b));
    pg.start();
    let store = Store::open(&url).await.expect("open after the restart");
    for (id, _) in &answered {
        assert!(
            store.request(id).await.expect("read").is_some(),
            "{id} was answered, so it must survive the stop"
        );
    }
    let stored = store.audit_all().await.expect("audit");
    let head = store.audit_head().await.expect("head");
    let report = sluice_audit::verify(&stored, &[], None, Some(&head));
    assert!(report.ok(), "{:?}", report.problems);
    for (id, entries) in &answered {
        for e in entries {
            assert!(stored.contains(e), "{id}'s entry {} is stored", e.seq);
        }
    }
    assert_eq!(
        store.state_revs().await.expect("revs").access,
        WRITERS as i64,
        "every answered revision is there, and no other"
    );
    store.close().await;
}
