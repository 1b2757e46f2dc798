//! Credentials for a local lattice: decentralized JWT authentication.
//!
//! The wasmCloud host authenticates to NATS only with a user JWT and its seed (and hands the
//! same pair to every provider it starts), so the local lattice runs nats-server in operator
//! mode with a memory resolver:
//!
//! - an **operator** that signs two accounts,
//! - a **system account** (required for JetStream in operator mode; no JetStream of its own),
//! - the **CIM account** with unlimited JetStream, where the lattice lives,
//! - one **user** of the CIM account, written as a standard `.creds` file that the host, wadm,
//!   the `cim` CLI, the `nats` CLI and `wash` all accept.
//!
//! Anonymous connections are refused: in operator mode every client needs a signed user JWT.

use std::path::Path;

use nats_jwt_rs::account::{Account, JetStreamLimits};
use nats_jwt_rs::operator::Operator;
use nats_jwt_rs::user::User;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors generating or loading credentials.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Signing or key handling failed.
    #[error("cannot create NATS credentials: {0}")]
    Sign(String),
    /// Reading or writing the credentials failed.
    #[error("credentials file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A stored credentials file is malformed.
    #[error("credentials file {path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The keys and JWTs of one local lattice. Contains secrets: written with mode 0600 and never
/// logged (its `Debug` prints public keys only).
#[derive(Clone, Serialize, Deserialize)]
pub struct LocalAuth {
    /// The operator JWT.
    pub operator_jwt: String,
    /// The system account's public key.
    pub system_account: String,
    /// The system account JWT.
    pub system_jwt: String,
    /// The CIM account's public key.
    pub account: String,
    /// The CIM account JWT.
    pub account_jwt: String,
    /// The user JWT.
    pub user_jwt: String,
    /// The user's seed (`SU…`). Secret.
    pub user_seed: String,
}

impl std::fmt::Debug for LocalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAuth")
            .field("system_account", &self.system_account)
            .field("account", &self.account)
            .field("user_seed", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn sign_err(e: impl std::fmt::Display) -> AuthError {
    AuthError::Sign(e.to_string())
}

impl LocalAuth {
    /// Generates fresh keys and JWTs for operator, system account, CIM account and user.
    pub fn generate() -> Result<Self, AuthError> {
        let operator = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let account = KeyPair::new_account();
        let user = KeyPair::new_user();

        let mut op = Operator::new_claims("cim-local".into(), operator.public_key());
        op.payload_mut().system_account = Some(system.public_key());
        let operator_jwt = op.encode(&operator).map_err(sign_err)?;

        let system_jwt = Account::new_claims("SYS".into(), system.public_key())
            .encode(&operator)
            .map_err(sign_err)?;

        let mut acc = Account::new_claims("CIM".into(), account.public_key());
        if let Some(limits) = acc.payload_mut().limits.as_mut() {
            limits.jetstream = Some(JetStreamLimits {
                memory_storage: Some(-1),
                disk_storage: Some(-1),
                streams: Some(-1),
                consumer: Some(-1),
                ..Default::default()
            });
        }
        let account_jwt = acc.encode(&operator).map_err(sign_err)?;

        let usr = User::new_claims("cim".into(), user.public_key());
        let user_jwt = usr.encode(&account).map_err(sign_err)?;
        let user_seed = user.seed().map_err(sign_err)?;

        Ok(Self {
            operator_jwt,
            system_account: system.public_key(),
            system_jwt,
            account: account.public_key(),
            account_jwt,
            user_jwt,
            user_seed,
        })
    }

    /// Loads credentials saved by [`LocalAuth::save`], or generates and saves new ones.
    pub fn load_or_generate(path: &Path) -> Result<Self, AuthError> {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed {
                path: name,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let auth = Self::generate()?;
                auth.save(path)?;
                Ok(auth)
            }
            Err(source) => Err(AuthError::Io { path: name, source }),
        }
    }

    /// Saves all keys and JWTs (mode 0600).
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let json = serde_json::to_vec_pretty(self).map_err(sign_err)?;
        write_secret(path, &json)
    }

    /// The user key pair (for the wasmCloud host's `ctl_key`/`rpc_key`).
    pub fn user_key(&self) -> Result<KeyPair, AuthError> {
        KeyPair::from_seed(&self.user_seed).map_err(sign_err)
    }

    /// The nats-server configuration lines for operator mode with a memory resolver.
    pub fn server_config(&self) -> String {
        format!(
            "operator: \"{}\"\nsystem_account: \"{}\"\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{}\"\n  {}: \"{}\"\n}}\n",
            self.operator_jwt,
            self.system_account,
            self.system_account,
            self.system_jwt,
            self.account,
            self.account_jwt
        )
    }

    /// A standard NATS `.creds` file for the user.
    pub fn creds_file(&self) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n",
            self.user_jwt, self.user_seed
        )
    }

    /// Writes the `.creds` file (mode 0600).
    pub fn write_creds(&self, path: &Path) -> Result<(), AuthError> {
        write_secret(path, self.creds_file().as_bytes())
    }
}

/// Reads the user JWT and seed out of a standard `.creds` file.
pub fn parse_creds(text: &str) -> Result<(String, String), AuthError> {
    let malformed = |reason: &str| AuthError::Malformed {
        path: "creds".into(),
        reason: reason.into(),
    };
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.starts_with("-----BEGIN") {
            let body = lines
                .next()
                .ok_or_else(|| malformed("a block has no content"))?;
            blocks.push(body.to_string());
        }
    }
    match blocks.as_slice() {
        [jwt, seed, ..] if seed.starts_with("SU") => Ok((jwt.clone(), seed.clone())),
        [_, _, ..] => Err(malformed("the second block is not a user seed")),
        _ => Err(malformed("expected a JWT block and a seed block")),
    }
}

/// Writes a file readable by its owner only.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| AuthError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_files_round_trip() {
        let auth = LocalAuth::generate().unwrap();
        let (jwt, seed) = parse_creds(&auth.creds_file()).unwrap();
        assert_eq!(
            (jwt.as_str(), seed.as_str()),
            (auth.user_jwt.as_str(), auth.user_seed.as_str())
        );
        assert!(parse_creds("garbage").is_err());
    }

    #[test]
    fn debug_output_never_contains_the_seed() {
        let auth = LocalAuth::generate().unwrap();
        assert!(auth.user_seed.starts_with("SU"));
        let shown = format!("{auth:?}");
        assert!(!shown.contains(&auth.user_seed));
    }

    #[test]
    fn credentials_persist_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile_dir();
        let path = dir.join("auth.json");
        let first = LocalAuth::load_or_generate(&path).unwrap();
        let again = LocalAuth::load_or_generate(&path).unwrap();
        assert_eq!(
            first.user_jwt, again.user_jwt,
            "a second run reuses the lattice's keys"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cim-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
