//! The services the gateway serves: its config file's, checked at start, and those declared
//! through the API, rebuilt by the first call after they change
//! (`sluice_server::gateway::http_live`). A name in
//! both is served from the config file (the API refuses to declare it).

use crate::config::{CredentialSource, ServiceConfig, ServiceConfigExt};
use axum::http::HeaderName;
use sluice_server::gateway::http_live::DeclaredService;
use sluice_server::App;
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

/// The services served now, and the generation of the API's list they were built from.
pub(crate) struct Built {
    generation: u64,
    pub(crate) map: Services,
}

/// What the gateway serves: the config file's services and the API's, rebuilt when the API's
/// change.
pub(crate) struct Served {
    catalog: Catalog,
    built: arc_swap::ArcSwap<Built>,
    rebuilding: std::sync::Mutex<()>,
}

impl Served {
    /// Publishes the config file's services and loads the API's.
    pub(crate) async fn start(app: &App, catalog: Catalog) -> anyhow::Result<Served> {
        let registry = &app.http_gateway.services;
        registry.publish_configured(catalog.configs());
        registry.reload(&app.store).await?;
        let (generation, declared) = registry.declared();
        let map = catalog.with(&declared);
        Ok(Served {
            catalog,
            built: arc_swap::ArcSwap::from_pointee(Built { generation, map }),
            rebuilding: std::sync::Mutex::new(()),
        })
    }

    /// The services as of now: one atomic load to see that nothing changed; after a change
    /// (declared or removed through the API, here or elsewhere) the first call rebuilds.
    pub(crate) fn current(&self, app: &App) -> Arc<Built> {
        let registry = &app.http_gateway.services;
        let built = self.built.load_full();
        if built.generation == registry.generation() {
            return built;
        }
        let _one = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let built = self.built.load_full();
        let (generation, declared) = registry.declared();
        if built.generation == generation {
            return built;
        }
        let map = self.catalog.with(&declared);
        tracing::info!(
            services = map.len(),
            "the http gateway now serves {} services",
            map.len()
        );
        let built = Arc::new(Built { generation, map });
        self.built.store(built.clone());
        built
    }
}
