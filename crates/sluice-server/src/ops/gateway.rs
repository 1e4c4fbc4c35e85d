use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use serde_json::json;
use sluice_audit::NewEntry;

impl App {
    /// Ends a live gateway session (administrators). Recorded before the session is told.
    pub async fn kill_session(&self, caller: &Caller, id: &str) -> Result<(), ApiError> {
        caller.require_admin()?;
        let live = self.gateway.get(id).ok_or_else(|| {
            ApiError::NotFound(format!("no live gateway session {id} on this instance"))
        })?;
        let mut tx = self.store.begin().await?;
        tx.audit(
            self.now(),
            NewEntry::new(&caller.name, "gateway.session.killed")
                .resource(format!("db:{}", live.database))
                .subject_id(id)
                .details(
                    json!({"session": id, "principal": live.principal, "grant_id": live.grant_id}),
                ),
        )
        .await?;
        tx.commit().await?;
        live.kill(&caller.name);
        Ok(())
    }
}
