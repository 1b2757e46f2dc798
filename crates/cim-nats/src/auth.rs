//! Credentials for a local lattice: decentralized JWT authentication, one user per role.
//!
//! The wasmCloud host authenticates to NATS only with a user JWT and its seed (and hands the
//! same pair to every provider it starts), so the local lattice runs nats-server in operator
//! mode with a memory resolver:
//!
//! - an **operator** that signs two accounts,
//! - a **system account** (required for JetStream in operator mode; no JetStream of its own),
//! - the **CIM account** with unlimited JetStream, where the lattice lives,
//! - one **user per [`Role`]** of the CIM account, each written as a standard `.creds` file
//!   that the host, wadm, the `cim` CLI, the `nats` CLI and `wash` all accept, each with the
//!   NATS permissions its role needs and no more (see [`Role`]).
//!
//! Anonymous connections are refused: in operator mode every client needs a signed user JWT.
//! The events stream is append-only twice over: the stream itself denies deletes and purges
//! (nats-server refuses an update that would allow them again), and no role but
//! [`Role::Admin`] may update, purge or delete the stream or delete a message of it (an update
//! could otherwise shorten the stream's age limit and so delete history).

use std::collections::BTreeMap;
use std::path::Path;

use nats_jwt_rs::account::{Account, JetStreamLimits};
use nats_jwt_rs::operator::Operator;
use nats_jwt_rs::types::{Permission, Permissions};
use nats_jwt_rs::user::User;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::names::{EVENTS_STREAM, SNAPSHOTS_BUCKET};

/// Who connects to the lattice's NATS, each with its own user and permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The operator's own user: everything, including updating or deleting the events stream.
    /// `cim up` uses it to create and configure the streams before anything else runs; nothing
    /// long-running holds it.
    Admin,
    /// The wasmCloud host, wadm and the providers the host starts (the host hands its own
    /// credentials to its providers): the whole lattice protocol, but no event may be
    /// published by it (only the event store appends) and the events stream cannot be
    /// changed, purged or deleted.
    Host,
    /// The event-store provider's own connection (its `nats_creds_file` config): the only
    /// role that publishes to `cim.evt.>`; cannot change, purge or delete the events stream.
    Events,
    /// The `cim` CLI's commands that act (`cim call`, `cim pipeline`, `cim object`, `cim ask`):
    /// invokes components and reads, never publishes an event or a snapshot directly.
    Client,
    /// Views (`cim ui`, `cim events`, `cim status`, `cim graph`): reads streams, lattice
    /// inventories, wadm status and the (read-only) graph query, and nothing else.
    Reader,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Host,
        Role::Events,
        Role::Client,
        Role::Reader,
    ];

    /// The role's name, also the stem of its `.creds` file.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Host => "host",
            Role::Events => "events",
            Role::Client => "client",
            Role::Reader => "reader",
        }
    }

    /// The NATS permissions of the role's user.
    pub fn permissions(self) -> Permissions {
        let protected = protected_subjects();
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (publish, subscribe) = match self {
            Role::Admin => (Permission::default(), Permission::default()),
            Role::Events => (
                Permission {
                    allow: vec![],
                    deny: protected,
                },
                Permission::default(),
            ),
            Role::Host => (
                Permission {
                    allow: vec![],
                    deny: [protected, strings(&["cim.evt.>"])].concat(),
                },
                Permission::default(),
            ),
            Role::Client => (
                Permission {
                    allow: vec![],
                    deny: [
                        protected,
                        strings(&["cim.evt.>", &format!("$KV.{SNAPSHOTS_BUCKET}.>")]),
                    ]
                    .concat(),
                },
                Permission::default(),
            ),
            Role::Reader => (
                Permission {
                    allow: strings(READER_PUBLISH),
                    deny: protected,
                },
                Permission {
                    allow: vec![
                        format!("{READER_INBOX_PREFIX}.>"),
                        "cim.evt.>".into(),
                        "wasmbus.evt.*.>".into(),
                    ],
                    deny: vec![],
                },
            ),
        };
        Permissions {
            publish,
            subscribe,
            resp: None,
        }
    }
}

/// The inbox prefix of reader connections ([`crate::NatsConfig::for_role`] sets it): a reader
/// receives the replies to its own requests only, never another client's.
pub const READER_INBOX_PREFIX: &str = "_INBOX_reader";

/// What a reader may publish: JetStream reads (stream info, direct and message gets, the
/// ephemeral consumers of a read and their flow control), lattice inventory queries, wadm
/// status queries and graph queries (the graph provider refuses writes).
const READER_PUBLISH: &[&str] = &[
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.*",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.MSG.GET.*",
    "$JS.API.DIRECT.GET.>",
    "$JS.API.CONSUMER.CREATE.>",
    "$JS.API.CONSUMER.INFO.>",
    "$JS.API.CONSUMER.MSG.NEXT.>",
    "$JS.FC.>",
    "wasmbus.ctl.v1.*.host.ping",
    "wasmbus.ctl.v1.*.host.get.*",
    "wasmbus.ctl.v1.*.link.get",
    "wasmbus.ctl.v1.*.claims.get",
    "wasmbus.ctl.v1.*.config.get.*",
    "wadm.api.*.model.get",
    "wadm.api.*.model.list",
    "wadm.api.*.model.status.*",
    "*.cim-graph.wrpc.>",
    // The wRPC handshake answers the serving side's inbox.
    "_INBOX.>",
];

/// The JetStream API subjects that would change, purge or delete the events stream or one of
/// its messages: denied to every role but [`Role::Admin`].
fn protected_subjects() -> Vec<String> {
    ["UPDATE", "PURGE", "DELETE", "MSG.DELETE"]
        .iter()
        .map(|op| format!("$JS.API.STREAM.{op}.{EVENTS_STREAM}"))
        .collect()
}

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

/// One user: its JWT and seed.
#[derive(Clone, Serialize, Deserialize)]
pub struct UserCreds {
    /// The user JWT (carries the role's permissions, signed by the CIM account).
    pub jwt: String,
    /// The user's seed (`SU…`). Secret.
    pub seed: String,
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
    /// One user per role.
    pub users: BTreeMap<Role, UserCreds>,
}

impl std::fmt::Debug for LocalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAuth")
            .field("system_account", &self.system_account)
            .field("account", &self.account)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn sign_err(e: impl std::fmt::Display) -> AuthError {
    AuthError::Sign(e.to_string())
}

impl LocalAuth {
    /// Generates fresh keys and JWTs for operator, system account, CIM account and one user
    /// per [`Role`].
    pub fn generate() -> Result<Self, AuthError> {
        let operator = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let account = KeyPair::new_account();

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

        let mut users = BTreeMap::new();
        for role in Role::ALL {
            let user = KeyPair::new_user();
            let mut claims = User::new_claims(format!("cim-{}", role.name()), user.public_key());
            claims.payload_mut().permissions.permissions = role.permissions();
            users.insert(
                role,
                UserCreds {
                    jwt: claims.encode(&account).map_err(sign_err)?,
                    seed: user.seed().map_err(sign_err)?,
                },
            );
        }

        Ok(Self {
            operator_jwt,
            system_account: system.public_key(),
            system_jwt,
            account: account.public_key(),
            account_jwt,
            users,
        })
    }

    /// Loads credentials saved by [`LocalAuth::save`], or generates and saves new ones.
    pub fn load_or_generate(path: &Path) -> Result<Self, AuthError> {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => {
                let auth: Self =
                    serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed {
                        path: name.clone(),
                        reason: format!(
                            "{e} (an older cim wrote one user for every role: stop the \
                             lattice with `cim down`, remove this file and run `cim up` again)"
                        ),
                    })?;
                match Role::ALL.iter().find(|r| !auth.users.contains_key(r)) {
                    Some(missing) => Err(AuthError::Malformed {
                        path: name,
                        reason: format!("no user for the {} role", missing.name()),
                    }),
                    None => Ok(auth),
                }
            }
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

    fn user(&self, role: Role) -> Result<&UserCreds, AuthError> {
        self.users
            .get(&role)
            .ok_or_else(|| AuthError::Sign(format!("no user for the {} role", role.name())))
    }

    /// The role's user key pair (e.g. for the wasmCloud host's `ctl_key`/`rpc_key`).
    pub fn user_key(&self, role: Role) -> Result<KeyPair, AuthError> {
        KeyPair::from_seed(&self.user(role)?.seed).map_err(sign_err)
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

    /// A standard NATS `.creds` file for the role's user.
    pub fn creds_file(&self, role: Role) -> Result<String, AuthError> {
        let user = self.user(role)?;
        Ok(format!(
            "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n",
            user.jwt, user.seed
        ))
    }

    /// Writes the role's `.creds` file (mode 0600).
    pub fn write_creds(&self, role: Role, path: &Path) -> Result<(), AuthError> {
        write_secret(path, self.creds_file(role)?.as_bytes())
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
        let (jwt, seed) = parse_creds(&auth.creds_file(Role::Reader).unwrap()).unwrap();
        let user = &auth.users[&Role::Reader];
        assert_eq!(
            (jwt.as_str(), seed.as_str()),
            (user.jwt.as_str(), user.seed.as_str())
        );
        assert!(parse_creds("garbage").is_err());
    }

    #[test]
    fn debug_output_never_contains_the_seed() {
        let auth = LocalAuth::generate().unwrap();
        let shown = format!("{auth:?}");
        for user in auth.users.values() {
            assert!(user.seed.starts_with("SU"));
            assert!(!shown.contains(&user.seed));
        }
    }

    #[test]
    fn credentials_persist_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile_dir();
        let path = dir.join("auth.json");
        let first = LocalAuth::load_or_generate(&path).unwrap();
        let again = LocalAuth::load_or_generate(&path).unwrap();
        assert_eq!(
            first.users[&Role::Host].jwt,
            again.users[&Role::Host].jwt,
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
