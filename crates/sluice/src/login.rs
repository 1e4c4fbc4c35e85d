//! `sluice login` and `sluice logout`: a session through the identity provider, kept in the
//! user's config directory.
//!
//! `login` runs the device-authorization grant through the server (which holds the client
//! secret and the identity provider's refresh token): it prints the verification URL and the
//! code, polls until the person approved, and writes the Sluice session token to
//! `$XDG_CONFIG_HOME/sluice/session.json` (else `~/.config/sluice/session.json`), the file
//! 0600 in a 0700 directory. Every command without `--token`/`SLUICE_TOKEN` then uses it, and
//! renews it through the server when less than a quarter of its life is left. `logout`
//! revokes it on the server and deletes the file.

use crate::cli::Remote;
use crate::client::{Client, Refused, NO_BODY};
use crate::session_file::{config_dir, load, session_path, StoredSession};
use anyhow::{anyhow, Context};
use reqwest::Method;
use sluice_api::sign_in::{DevicePoll, DeviceSignIn, SessionIssued};
use std::path::PathBuf;
use std::time::Duration;

fn save(s: &StoredSession) -> anyhow::Result<PathBuf> {
    let dir = config_dir().ok_or_else(|| anyhow!("no home directory to keep the session in"))?;
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        b.mode(0o700);
        b.create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // An existing directory keeps what it had unless it is open to others.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    b.create(&dir)?;
    let path = dir.join("session.json");
    let tmp = dir.join(".session.json.tmp");
    let text = serde_json::to_string_pretty(s)?;
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            o.mode(0o600);
        }
        let mut f = o
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn stored(addr: &str, s: SessionIssued) -> StoredSession {
    StoredSession {
        addr: addr.to_owned(),
        token: s.token,
        token_id: s.token_id,
        principal: s.principal,
        issued_at: crate::output::now(),
        expires_at: s.expires_at,
    }
}

pub async fn login(r: Remote) -> anyhow::Result<()> {
    let c = Client::new(&r.addr, None);
    let c = with_tls(c, &r);
    let start: DeviceSignIn = c
        .send(Method::POST, "/v1/sign-in/device", NO_BODY)
        .await
        .context("starting the sign-in")?;
    match &start.verification_uri_complete {
        Some(full) => eprintln!(
            "To sign in, open\n\n    {full}\n\nand check that it shows the code {}\n(or open {} and enter the code).",
            start.user_code, start.verification_uri
        ),
        None => eprintln!(
            "To sign in, open\n\n    {}\n\nand enter the code\n\n    {}\n",
            start.verification_uri, start.user_code
        ),
    }
    eprintln!("Waiting for the sign-in to be approved…");
    let deadline = std::time::Instant::now() + Duration::from_secs(start.expires_in.max(1));
    let mut interval = Duration::from_secs(start.interval.clamp(1, 60));
    let poll = DevicePoll {
        device_code: start.device_code.clone(),
    };
    let issued: SessionIssued = loop {
        tokio::time::sleep(interval).await;
        match c
            .send(Method::POST, "/v1/sign-in/device/token", Some(&poll))
            .await
        {
            Ok(s) => break s,
            Err(e) => match e.downcast_ref::<Refused>().map(|r| r.code.as_str()) {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += Duration::from_secs(5),
                _ => return Err(e.context("signing in")),
            },
        }
        if std::time::Instant::now() >= deadline {
            return Err(anyhow!(
                "the code expired before the sign-in was approved; run `sluice login` again"
            ));
        }
    };
    let session = stored(&r.addr, issued.clone());
    let path = save(&session)?;
    crate::output::emit(r.output, &issued_view(&issued), |_| {
        println!(
            "Signed in as {} (groups: {}); the session lasts until {} and is renewed as you use it. Kept in {}.",
            issued.principal,
            if issued.groups.is_empty() {
                "none".to_owned()
            } else {
                issued.groups.join(", ")
            },
            issued.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            path.display()
        );
    })
}

/// What `--output json` prints: never the token itself.
fn issued_view(s: &SessionIssued) -> serde_json::Value {
    serde_json::json!({
        "principal": s.principal,
        "token_id": s.token_id,
        "expires_at": s.expires_at,
        "groups": s.groups,
    })
}

pub async fn logout(r: Remote) -> anyhow::Result<()> {
    let Some(path) = session_path() else {
        return Err(anyhow!("no home directory, so no session to sign out of"));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("Not signed in.");
            return Ok(());
        }
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    let session: Option<StoredSession> = serde_json::from_str(&text).ok();
    if let Some(s) = &session {
        let c = with_tls(Client::new(&s.addr, Some(s.token.clone())), &r);
        match c
            .send::<serde_json::Value>(Method::POST, "/v1/sign-in/sign-out", NO_BODY)
            .await
        {
            Ok(_) => {}
            // Expired or revoked already: nothing left to end on the server.
            Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.status == 401) => {}
            Err(e) => return Err(e.context("signing out on the server (the file is kept)")),
        }
    }
    std::fs::remove_file(&path)?;
    println!(
        "Signed out{}.",
        session
            .map(|s| format!(" ({})", s.principal))
            .unwrap_or_default()
    );
    Ok(())
}

/// Renews the stored session for `addr` through the server when less than a quarter of its
/// life is left. A refusal (the person left a group, or the identity provider ended the
/// session) deletes the file and says so: the next command needs `sluice login`.
pub async fn renew_if_due(r: &Remote) {
    if r.token.is_some() {
        return;
    }
    let Some(s) = load(&r.addr) else {
        return;
    };
    let life = s.expires_at - s.issued_at;
    if s.expires_at - crate::output::now() > life / 4 {
        return;
    }
    let c = with_tls(Client::new(&s.addr, Some(s.token.clone())), r);
    match c
        .send::<SessionIssued>(Method::POST, "/v1/sign-in/refresh", NO_BODY)
        .await
    {
        Ok(issued) => {
            if let Err(e) = save(&stored(&s.addr, issued)) {
                eprintln!("warning: renewing the session: {e:#}");
            }
        }
        Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.status == 401) => {
            if let Some(p) = session_path() {
                let _ = std::fs::remove_file(p);
            }
            eprintln!("Your session has ended: {e}\nSign in again with `sluice login`.");
        }
        Err(e) => eprintln!("warning: renewing the session failed (it is kept): {e:#}"),
    }
}

/// `c` with the TLS settings `r` names.
fn with_tls(c: Client, r: &Remote) -> Client {
    c.with_tls_of(r)
}
