//! The services the gateway serves: its config file's, checked at start, and those declared
//! through the API, followed as they change (`sluice_server::gateway::http_live`). A name in
//! both is served from the config file (the API refuses to declare it).

use crate::config::{CredentialSource, ServiceConfig, ServiceConfigExt};
use crate::Shared;
use axum::http::HeaderName;
use sluice_server::gateway::http_live::DeclaredService;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A declared service, ready to forward to.
pub(crate) struct Service {
    pub(crate) config: ServiceConfig,
    /// The upstream URL; `base_path` is its path without a trailing `/`.
    pub(crate) base: url::Url,
    pub(crate) base_path: String,
    /// The header Sluice adds upstream and where its value is read at each call.
    pub(crate) credential: Option<(HeaderName, CredentialSource)>,
}

/// The services served now, by name.
pub(crate) type Services = HashMap<String, Arc<Service>>;

impl Service {
    fn new(
        config: ServiceConfig,
        from_api: bool,
        dir: Option<&std::path::Path>,
    ) -> Result<Service, String> {
        config.validate()?;
        let base = config.upstream_url()?;
        let base_path = base.path().trim_end_matches('/').to_owned();
        let credential = match &config.credential {
            Some(c) => {
                let source = CredentialSource::resolve(c, from_api, dir);
                // Read at each call (so it can be rotated in place); one that cannot be read
                // now is said at once, not at the first refused call.
                if let Err(e) = source.value() {
                    tracing::warn!(service = %config.name, "http:{}: the upstream credential cannot be read: {e}; calls are refused until it can", config.name);
                }
                let header = HeaderName::from_bytes(c.header.as_bytes())
                    .map_err(|e| format!("http service {}: {e}", config.name))?;
                Some((header, source))
            }
            None => None,
        };
        Ok(Service {
            config,
            base,
            base_path,
            credential,
        })
    }
}

/// The config file's services, built once, and how to add the API's.
pub(crate) struct Catalog {
    configured: Services,
    credentials_dir: Option<PathBuf>,
}

impl Catalog {
    /// Checks the config file's services (a bad one stops the start).
    pub(crate) fn new(
        configured: Vec<ServiceConfig>,
        credentials_dir: Option<PathBuf>,
    ) -> Result<Catalog, String> {
        let mut map = Services::new();
        for s in configured {
            let name = s.name.clone();
            let service = Service::new(s, false, None)?;
            if map.insert(name.clone(), Arc::new(service)).is_some() {
                return Err(format!("http service {name} is declared twice"));
            }
        }
        Ok(Catalog {
            configured: map,
            credentials_dir,
        })
    }

    fn configs(&self) -> Vec<ServiceConfig> {
        let mut v: Vec<_> = self.configured.values().map(|s| s.config.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The config file's services and the API's `declared` ones beside them.
    fn with(&self, declared: &[DeclaredService]) -> Services {
        let mut map = self.configured.clone();
        for d in declared {
            if map.contains_key(&d.spec.name) {
                continue;
            }
            match Service::new(d.spec.clone(), true, self.credentials_dir.as_deref()) {
                Ok(s) => {
                    map.insert(d.spec.name.clone(), Arc::new(s));
                }
                Err(e) => {
                    tracing::error!(service = %d.spec.name, "http:{} declared through the API is not served: {e}", d.spec.name);
                }
            }
        }
        map
    }
}

/// Publishes the config file's services, loads the API's, and follows their changes for as
/// long as the gateway lives.
pub(crate) async fn follow(shared: &Arc<Shared>, catalog: Catalog) -> anyhow::Result<()> {
    let registry = &shared.app.http_gateway.services;
    registry.publish_configured(catalog.configs());
    let mut changes = registry.subscribe();
    registry.reload(&shared.app.store).await?;
    let declared = changes.borrow_and_update().clone();
    shared.services.store(Arc::new(catalog.with(&declared)));
    let gateway = Arc::downgrade(shared);
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let declared = changes.borrow_and_update().clone();
            let Some(shared) = gateway.upgrade() else {
                break;
            };
            let services = catalog.with(&declared);
            tracing::info!(
                services = services.len(),
                "the http gateway now serves {} services",
                services.len()
            );
            shared.services.store(Arc::new(services));
        }
    });
    Ok(())
}
