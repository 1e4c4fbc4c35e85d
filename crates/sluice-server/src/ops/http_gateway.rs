//! The HTTP gateway's services, declared through the API, and its calls in progress: listed
//! by those who may read them, declared, removed and killed by administrators, each change
//! an audit entry committed before it takes effect.

use crate::app::App;
use crate::caller::Caller;
use crate::gateway::http_spec::{ServiceConfig, ServiceConfigExt};
use crate::ops::readers::{reads_all, require_auditor};
use crate::ops::{Clash, Input, Missing, OpError};
use serde_json::json;
use sluice_api::gateway::DeclaredIn;
use sluice_api::http_gateway::{LiveCallView, ServiceView};
use sluice_audit::NewEntry;
use sluice_store::DeclaredService;
use std::sync::atomic::Ordering;

impl App {
    /// Every HTTP service: this instance's config file's, then the API's (a name in both is
    /// served from the config file). Administrators and `auditors`: nobody else learns which
    /// services exist.
    pub async fn http_services(&self, caller: &Caller) -> Result<Vec<ServiceView>, OpError> {
        require_auditor(&self.policy(), caller)?;
        let configured = self.http_gateway.services.configured();
        let mut out: Vec<ServiceView> = configured
            .iter()
            .map(|s| ServiceView {
                spec: s.clone(),
                declared_in: DeclaredIn::Config,
                declared_at: None,
                declared_by: None,
            })
            .collect();
        for d in self.store.http_services().await? {
            if configured.iter().any(|c| c.name == d.name) {
                continue;
            }
            let spec = serde_json::from_str(&d.spec).map_err(|e| {
                OpError::Internal(format!(
                    "the stored http service {} is not valid: {e}",
                    d.name
                ))
            })?;
            out.push(ServiceView {
                spec,
                declared_in: DeclaredIn::Api,
                declared_at: Some(d.declared_at),
                declared_by: Some(d.declared_by),
            });
        }
        Ok(out)
    }

    /// Declares (or re-declares) an HTTP service through the API (administrators; audited
    /// as `http.service.declared`). Its credential is only named; a name the config file
    /// holds is refused. Every instance's gateway serves it once committed: this one at once,
    /// the others at their next sync. Returns whether it was new.
    pub async fn declare_http_service(
        &self,
        caller: &Caller,
        spec: ServiceConfig,
    ) -> Result<bool, OpError> {
        caller.require_admin()?;
        spec.validate_declared()
            .map_err(|m| OpError::invalid(Input::Service, m))?;
        self.refuse_configured(&spec.name, false)?;
        let now = self.now();
        let json = serde_json::to_value(&spec).map_err(|e| {
            OpError::Internal(format!("a service declaration did not serialise: {e}"))
        })?;
        let mut tx = self.store.begin().await?;
        let existed = tx
            .put_http_service(&DeclaredService {
                name: spec.name.clone(),
                spec: json.to_string(),
                declared_at: now,
                declared_by: caller.name.clone(),
            })
            .await?;
        // Other instances reload their services when the access revision moves.
        let rev = tx.bump_access().await?;
        tx.audit(
            now,
            NewEntry::new(&caller.name, "http.service.declared")
                .resource(format!("http:{}", spec.name))
                .details(json!({"service": json, "replaced": existed})),
        )
        .await?;
        tx.commit().await?;
        self.services_changed(rev.get()).await;
        Ok(!existed)
    }

    /// Removes a service declared through the API (administrators; audited as
    /// `http.service.removed`). Calls in progress run on until their grants end; no new one
    /// is admitted.
    pub async fn remove_http_service(&self, caller: &Caller, name: &str) -> Result<(), OpError> {
        caller.require_admin()?;
        self.refuse_configured(name, true)?;
        let mut tx = self.store.begin().await?;
        if !tx.delete_http_service(name).await? {
            return Err(Missing::ApiService(name.to_owned()).into());
        }
        let rev = tx.bump_access().await?;
        tx.audit(
            self.now(),
            NewEntry::new(&caller.name, "http.service.removed").resource(format!("http:{name}")),
        )
        .await?;
        tx.commit().await?;
        self.services_changed(rev.get()).await;
        Ok(())
    }

    fn refuse_configured(&self, name: &str, removing: bool) -> Result<(), OpError> {
        if self
            .http_gateway
            .services
            .configured()
            .iter()
            .any(|c| c.name == name)
        {
            return Err(Clash::ServiceInConfig {
                name: name.to_owned(),
                removing,
            }
            .into());
        }
        Ok(())
    }

    /// After a committed change of services: this instance's gateway follows it now.
    async fn services_changed(&self, rev: i64) {
        self.apply_local(&[], rev).await;
        if let Err(e) = self.http_gateway.services.reload(&self.store).await {
            // Committed: the next sync reloads it.
            tracing::warn!(error = %e, "reloading the http services failed: {e}; the next sync retries");
        }
    }

    /// The calls in progress through this instance's HTTP gateway that `caller` may see:
    /// its own, or all for administrators and `auditors`. Oldest first.
    pub fn live_http_calls(&self, caller: &Caller) -> Vec<LiveCallView> {
        let all = reads_all(&self.policy(), caller);
        let now = self.now();
        self.http_gateway
            .calls
            .all()
            .into_iter()
            .filter(|c| all || c.principal == caller.name)
            .map(|c| {
                let expires_at = c.expires_at();
                LiveCallView {
                    id: c.id.clone(),
                    principal: c.principal.clone(),
                    grant_id: c.grant_id.clone(),
                    service: c.service.clone(),
                    method: c.method.clone(),
                    path: c.path.clone(),
                    client_addr: c.client_addr.clone(),
                    started_at: c.started_at,
                    expires_at,
                    seconds_left: (expires_at - now).num_seconds().max(0),
                    websocket: c.websocket.load(Ordering::Relaxed),
                    bytes_in: c.bytes_in.load(Ordering::Relaxed),
                    bytes_out: c.bytes_out.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Ends a call in progress through this instance's HTTP gateway (administrators):
    /// recorded as `http.call.killed` first, then its response or WebSocket is cut at once.
    pub async fn kill_http_call(&self, caller: &Caller, id: &str) -> Result<(), OpError> {
        caller.require_admin()?;
        let live = self
            .http_gateway
            .calls
            .get(id)
            .ok_or_else(|| Missing::LiveCall(id.to_owned()))?;
        let mut tx = self.store.begin().await?;
        tx.audit(
            self.now(),
            NewEntry::new(&caller.name, "http.call.killed")
                .resource(format!("http:{}", live.service))
                .subject_id(id)
                .details(json!({
                    "call": id, "principal": live.principal, "grant_id": live.grant_id,
                    "method": live.method, "path": live.path,
                })),
        )
        .await?;
        tx.commit().await?;
        live.kill(&caller.name);
        Ok(())
    }
}
