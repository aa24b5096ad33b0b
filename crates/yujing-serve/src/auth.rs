//! Bearer tokens and roles (DESIGN §10).
//!
//! Tokens are configured by name, role and the SHA-256 of the token in hex (never the
//! token itself): `printf %s TOKEN | sha256sum`, or `yujing hash-token`. A request without
//! a token, or with one nobody configured, gets 401 with `WWW-Authenticate: Bearer`; a
//! known token whose role does not allow the request gets 403.
//!
//! | role | reads | acts on alerts |
//! |---|---|---|
//! | `regulator` | everything | every alert |
//! | `analyst` | everything | nothing |
//! | `district:<code>` | its district's districts, institutions, alerts and audit | its district's alerts |

use crate::api::AppState;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use yujing_model::Alert;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The bureau's monitoring desk: reads everything, acts on every alert.
    Regulator,
    /// Reads everything, acts on nothing.
    Analyst,
    /// A district's financial officer: reads and acts on that district only.
    District(u32),
}

impl Role {
    /// Whether the role may read a district's data.
    pub fn can_read_district(self, code: u32) -> bool {
        match self {
            Role::Regulator | Role::Analyst => true,
            Role::District(c) => c == code,
        }
    }

    /// Whether the role may read city-wide and regional aggregates.
    pub fn reads_everything(self) -> bool {
        matches!(self, Role::Regulator | Role::Analyst)
    }

    /// The district a district officer is confined to.
    pub fn district(self) -> Option<u32> {
        match self {
            Role::District(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the role may read an alert.
    pub fn can_read_alert(self, alert: &Alert) -> bool {
        match self {
            Role::Regulator | Role::Analyst => true,
            Role::District(c) => *alert.district_code == *c.to_string(),
        }
    }

    /// Whether the role may acknowledge, assign or resolve an alert.
    pub fn can_act_on(self, alert: &Alert) -> bool {
        match self {
            Role::Regulator => true,
            Role::Analyst => false,
            Role::District(_) => self.can_read_alert(alert),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Regulator => f.write_str("regulator"),
            Role::Analyst => f.write_str("analyst"),
            Role::District(c) => write!(f, "district:{c}"),
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "regulator" => Ok(Role::Regulator),
            "analyst" => Ok(Role::Analyst),
            _ => {
                let code = s
                    .strip_prefix("district:")
                    .ok_or_else(|| format!("unknown role {s:?}: expected regulator, analyst or district:<code>"))?;
                let code = yujing_model::district::parse_district_code(code)
                    .filter(|c| yujing_model::district(*c).is_some())
                    .ok_or_else(|| format!("{code:?} is not one of Chongqing's 38 district codes"))?;
                Ok(Role::District(code))
            }
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One configured token (`[[serve.tokens]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it; the audit log names this.
    pub name: String,
    /// `regulator`, `analyst` or `district:<code>`.
    pub role: Role,
    /// The SHA-256 of the token, 64 hex digits (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
}

/// The SHA-256 of a token, in lowercase hex: what `[[serve.tokens]]` stores.
///
/// ```
/// assert_eq!(
///     yujing_serve::hash_token("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The caller of a request: the configured name and role of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// The configured tokens, by hash.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<String, Caller>,
}

impl Tokens {
    /// Checks and indexes the configured tokens.
    pub fn new(tokens: &[TokenConfig]) -> crate::Result<Tokens> {
        let mut by_hash = HashMap::new();
        for (index, t) in tokens.iter().enumerate() {
            let err = |message: String| crate::Error::Token { index, name: t.name.clone(), message };
            if t.name.trim().is_empty() {
                return Err(err("the name is empty".into()));
            }
            let hash = t.sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err("sha256 must be 64 hex digits (printf %s TOKEN | sha256sum)".into()));
            }
            let caller = Caller { name: t.name.clone(), role: t.role };
            if by_hash.insert(hash, caller).is_some() {
                return Err(err("the same token is configured twice".into()));
            }
        }
        Ok(Tokens { by_hash })
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no token is configured (then every API call gets 401).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Who presents this token, if anyone.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        self.by_hash.get(&hash_token(token))
    }

    /// Resolves the `Authorization` header of a request.
    pub fn authenticate(&self, parts: &Parts) -> Result<Caller, Problem> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(Problem::unauthorized("a bearer token is required"));
        };
        let value = value.to_str().map_err(|_| Problem::unauthorized("unknown token"))?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Problem::unauthorized("a bearer token is required (Authorization: Bearer TOKEN)"));
        }
        self.caller(token.trim()).cloned().ok_or_else(|| Problem::unauthorized("unknown token"))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, Problem> {
        state.tokens.authenticate(parts)
    }
}
