//! What a gateway database is: its upstream and a role per action, each role's credential
//! named (an environment variable or a file), never held. Declared in the config file's
//! `databases:` or through the API (`PUT /v1/db/databases/{name}`); the gateway
//! (`sluice-gateway`) serves both.

pub use sluice_api::gateway::{DatabaseConfig, LogMode, RoleConfig, UpstreamConfig};

/// A password (or any upstream credential) that never prints.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// What the server does with a [`RoleConfig`] (the type itself is plain wire data).
pub trait RoleConfigExt {
    /// Reads the role's password from its environment variable or file.
    fn password(&self) -> Result<Password, String>;
}

impl RoleConfigExt for RoleConfig {
    fn password(&self) -> Result<Password, String> {
        read_credential(self.password_env.as_deref(), self.password_file.as_deref())
    }
}

/// Reads an upstream credential from an environment variable or a file (a trailing newline
/// dropped), at the moment it is needed, so a rotated credential is picked up; with neither,
/// empty. The gateways call this per connection or call and never keep nor show the value.
pub fn read_credential(
    env: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Password, String> {
    if let Some(var) = env {
        return std::env::var(var)
            .map(Password)
            .map_err(|_| format!("environment variable {var} is not set"));
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|s| Password(s.trim_end_matches(['\r', '\n']).to_owned()))
            .map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    Ok(Password(String::new()))
}

/// The rules of a [`DatabaseConfig`] (the type itself is plain wire data).
pub trait DatabaseConfigExt {
    /// Checks what serde cannot: a name, at least one role, each with one password source.
    fn validate(&self) -> Result<(), String>;
    /// What a declaration through the API must also satisfy: each role's credential is an
    /// environment variable under [`API_CREDENTIAL_PREFIX`] (files are for the config file:
    /// through the API, any file the server can read could be sent to an upstream of the
    /// caller's choosing).
    fn validate_declared(&self) -> Result<(), String>;
}

impl DatabaseConfigExt for DatabaseConfig {
    fn validate(&self) -> Result<(), String> {
        sluice_core::policy::check_name("databases[].name", &self.name)
            .map_err(|e| e.to_string())?;
        if self.roles.is_empty() {
            return Err(format!("database {}: declare at least one role", self.name));
        }
        for r in &self.roles {
            if r.password_env.is_some() && r.password_file.is_some() {
                return Err(format!(
                    "database {}: role {}: give password_env or password_file, not both",
                    self.name, r.user
                ));
            }
        }
        Ok(())
    }

    fn validate_declared(&self) -> Result<(), String> {
        self.validate()?;
        for r in &self.roles {
            sluice_core::policy::check_name("roles[].action", &r.action)
                .map_err(|e| e.to_string())?;
            if r.password_file.is_some() {
                return Err(format!(
                    "database {}: role {}: a declaration through the API names its credential with password_env (`{API_CREDENTIAL_PREFIX}…`); password_file is for the config file",
                    self.name, r.user
                ));
            }
            match &r.password_env {
                Some(var) if var.starts_with(API_CREDENTIAL_PREFIX) && var.len() > API_CREDENTIAL_PREFIX.len() => {}
                Some(var) => {
                    return Err(format!(
                        "database {}: role {}: `{var}` is not a credential variable; through the API, password_env must start with `{API_CREDENTIAL_PREFIX}` (export it to the server)",
                        self.name, r.user
                    ))
                }
                None => {
                    return Err(format!(
                        "database {}: role {}: name its credential with password_env (`{API_CREDENTIAL_PREFIX}…`)",
                        self.name, r.user
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Environment variables an API declaration may name for a credential start with this: the
/// operator decides what the API can reach by what they export under it, and no other
/// variable of the server (its admin token, its database URL) can be sent upstream.
pub const API_CREDENTIAL_PREFIX: &str = "SLUICE_DB_";
