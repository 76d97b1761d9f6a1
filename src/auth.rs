//! Entra ID client-credentials tokens: one per resource (Exchange, Graph), cached and renewed before
//! they expire. The credential is a client secret read from an environment variable, or a certificate
//! whose private key signs a client-assertion JWT. A secret never reaches a log, an error or the store:
//! it lives in [`Secret`], which prints as `***`, and every Entra message is scrubbed of it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jiff::{SignedDuration, Timestamp};
use rsa::RsaPrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::secrets::{Algorithm, Secret};
use crate::time::Clock;

#[derive(Clone)]
pub enum Credential {
    Secret(Secret),
    Certificate {
        key: Arc<RsaPrivateKey>,
        /// The certificate, DER.
        certificate: Arc<Vec<u8>>,
        algorithm: Algorithm,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Credential::Secret(***)"),
            Credential::Certificate { algorithm, .. } => {
                write!(f, "Credential::Certificate({})", algorithm.name())
            }
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("sign-in refused by Entra ID: {code}: {description}")]
    Entra { code: String, description: String },
    #[error("cannot reach the token endpoint {url}: {message}")]
    Network { url: String, message: String },
    #[error("credential: {0}")]
    Credential(String),
}

/// The blocks of a PEM file: (label, DER bytes).
pub(crate) fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after[..label_end].to_string();
        let body_start = label_end + 5;
        let end_marker = format!("-----END {label}-----");
        let Some(end) = after[body_start..].find(&end_marker) else {
            break;
        };
        let b64: String = after[body_start..body_start + end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) {
            out.push((label, der));
        }
        rest = &after[body_start + end + end_marker.len()..];
    }
    out
}

/// `x5t#S256`: base64url of the SHA-256 of the certificate's DER.
pub(crate) fn thumbprint_s256(certificate_der: &[u8]) -> String {
    B64URL.encode(Sha256::digest(certificate_der))
}

impl Credential {
    /// The credential the configuration names: its certificate if it has one, else the secret in
    /// the environment variable `client_secret_env`. Like ssh, it is refused while others could
    /// change the configuration (and so where the credential goes) or read the private key.
    pub(crate) fn from_config(config: &crate::config::Config) -> Result<Credential, AuthError> {
        let tenant = &config.tenant;
        if !crate::config::valid_tenant(&tenant.id) {
            return Err(AuthError::Credential(format!(
                "{}: tenant.id must be set to the tenant GUID or a verified domain \
                 (for example \"contoso.onmicrosoft.com\")",
                config.path.display()
            )));
        }
        crate::private::check_others_cannot_write(&config.path).map_err(AuthError::Credential)?;
        if let Some(path) = &tenant.certificate {
            crate::private::check_others_cannot_read(path).map_err(AuthError::Credential)?;
            return Credential::from_pem_file(path, tenant.assertion_algorithm);
        }
        match &tenant.client_secret_env {
            Some(var) => Credential::from_env(var),
            None => Err(AuthError::Credential(
                "[tenant] names no credential: set client_secret_env or certificate".into(),
            )),
        }
    }

    /// Reads the secret from the environment variable `var`.
    pub(crate) fn from_env(var: &str) -> Result<Credential, AuthError> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Credential::Secret(Secret::new(v))),
            _ => Err(AuthError::Credential(format!(
                "the environment variable {var} (tenant.client_secret_env) is not set"
            ))),
        }
    }

    /// Reads a PEM file holding the private key (PKCS#8 or PKCS#1) and the certificate.
    pub fn from_pem_file(path: &Path, algorithm: Algorithm) -> Result<Credential, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Credential(format!("{}: {e}", path.display())))?;
        Credential::from_pem(&text, algorithm)
            .map_err(|e| AuthError::Credential(format!("{}: {e}", path.display())))
    }

    pub(crate) fn from_pem(text: &str, algorithm: Algorithm) -> Result<Credential, String> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let blocks = pem_blocks(text);
        let key = blocks
            .iter()
            .find_map(|(label, der)| match label.as_str() {
                "PRIVATE KEY" => {
                    Some(RsaPrivateKey::from_pkcs8_der(der).map_err(|e| e.to_string()))
                }
                "RSA PRIVATE KEY" => {
                    Some(RsaPrivateKey::from_pkcs1_der(der).map_err(|e| e.to_string()))
                }
                _ => None,
            })
            .ok_or("no RSA private key in the PEM file")??;
        let certificate = blocks
            .into_iter()
            .find(|(label, _)| label == "CERTIFICATE")
            .map(|(_, der)| der)
            .ok_or("no certificate in the PEM file")?;
        Ok(Credential::Certificate {
            key: Arc::new(key),
            certificate: Arc::new(certificate),
            algorithm,
        })
    }

    /// The client-assertion JWT for `token_url`, valid for ten minutes from `now`.
    pub fn assertion(&self, client_id: &str, token_url: &str, now: Timestamp) -> Option<String> {
        let Credential::Certificate {
            key,
            certificate,
            algorithm,
        } = self
        else {
            return None;
        };
        let header = serde_json::json!({
            "alg": algorithm.name(),
            "typ": "JWT",
            "x5t#S256": thumbprint_s256(certificate),
        });
        let nbf = now.as_second();
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": nbf,
            "iat": nbf,
            "exp": nbf + 600,
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let signature = match algorithm {
            Algorithm::Ps256 => {
                let signer = rsa::pss::BlindedSigningKey::<Sha256>::new((**key).clone());
                signer
                    .sign_with_rng(&mut rsa::rand_core::OsRng, signing_input.as_bytes())
                    .to_vec()
            }
            // Blinded, as PS256 is (RUSTSEC-2023-0071 is about unblinded private-key operations).
            Algorithm::Rs256 => {
                let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new((**key).clone());
                signer
                    .sign_with_rng(&mut rsa::rand_core::OsRng, signing_input.as_bytes())
                    .to_vec()
            }
        };
        Some(format!("{signing_input}.{}", B64URL.encode(signature)))
    }
}

/// Which API a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Exchange,
    Graph,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: serde_json::Value,
}

#[derive(Deserialize)]
struct EntraError {
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Clone)]
struct Cached {
    token: Secret,
    expires_at: Timestamp,
}

/// Renew this long before a token expires.
pub(crate) const RENEW_BEFORE: SignedDuration = SignedDuration::from_mins(5);
/// A token is never kept longer than this, whatever `expires_in` says (Entra ID gives about an hour).
const LONGEST_LIFETIME: i64 = 24 * 3600;

type Fetch = watch::Receiver<Option<Result<Cached, AuthError>>>;

/// One resource's token: the cached one, and the fetch under way if any.
#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    fetching: Option<Fetch>,
}

/// Tokens for the APIs, from `{authority}/{tenant}/oauth2/v2.0/token`.
///
/// A fetch runs in a task of its own, bounded by the token call's timeout; every caller that needs
/// the token meanwhile waits for that one fetch without holding any lock, and a caller that gives
/// up (its call was cut off) leaves the fetch to finish for the others.
pub struct TokenProvider {
    http: reqwest::Client,
    policy: crate::http::Policy,
    authority: String,
    tenant: String,
    client_id: String,
    credential: Credential,
    /// The resource id (scope without `/.default`) for each API.
    resources: HashMap<Resource, String>,
    clock: Clock,
    slots: std::sync::Mutex<HashMap<Resource, Slot>>,
}

impl TokenProvider {
    pub fn new(
        policy: crate::http::Policy,
        config: &crate::config::Config,
        credential: Credential,
        clock: Clock,
    ) -> Result<TokenProvider, AuthError> {
        let resources = [
            (Resource::Exchange, config.endpoints.exchange.clone()),
            (Resource::Graph, config.endpoints.graph.clone()),
        ]
        .into_iter()
        .collect();
        // Never `{authority}//oauth2/...`: a tenant is checked again where the address is made.
        if !crate::config::valid_tenant(&config.tenant.id) {
            return Err(AuthError::Credential(
                "tenant.id must be the tenant GUID or a verified domain".into(),
            ));
        }
        let http = policy.client().map_err(|e| AuthError::Network {
            url: String::new(),
            message: crate::http::describe(&e),
        })?;
        Ok(TokenProvider {
            http,
            policy,
            authority: config.endpoints.authority.clone(),
            tenant: config.tenant.id.clone(),
            client_id: config.tenant.client_id.clone(),
            credential,
            resources,
            clock,
            slots: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant)
    }

    /// A valid token for `resource`, from the cache unless it is within [`RENEW_BEFORE`] of expiry.
    pub async fn token(self: &Arc<Self>, resource: Resource) -> Result<Secret, AuthError> {
        self.get(resource, None).await
    }

    /// After a 401: a new token, unless another caller has already replaced `rejected`.
    pub async fn renew(
        self: &Arc<Self>,
        resource: Resource,
        rejected: &Secret,
    ) -> Result<Secret, AuthError> {
        self.get(resource, Some(rejected)).await
    }

    async fn get(
        self: &Arc<Self>,
        resource: Resource,
        rejected: Option<&Secret>,
    ) -> Result<Secret, AuthError> {
        let mut fetch = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.entry(resource).or_default();
            if let Some(c) = &slot.cached {
                let fresh = c.expires_at.duration_since(self.clock.now()) > RENEW_BEFORE;
                if fresh && rejected.is_none_or(|r| *r != c.token) {
                    return Ok(c.token.clone());
                }
            }
            match &slot.fetching {
                Some(f) => f.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    slot.fetching = Some(rx.clone());
                    let this = self.clone();
                    tokio::spawn(async move {
                        let limit = this.policy.total(crate::http::CallClass::Token);
                        let result = match tokio::time::timeout(limit, this.fetch(resource)).await {
                            Ok(r) => r,
                            Err(_) => Err(AuthError::Network {
                                url: this.token_url(),
                                message: format!("no answer within {} s", limit.as_secs()),
                            }),
                        };
                        {
                            let mut slots = this.slots.lock().unwrap_or_else(|p| p.into_inner());
                            let slot = slots.entry(resource).or_default();
                            slot.fetching = None;
                            if let Ok(c) = &result {
                                slot.cached = Some(c.clone());
                            }
                        }
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        loop {
            if let Some(result) = fetch.borrow_and_update().clone() {
                return result.map(|c| c.token);
            }
            if fetch.changed().await.is_err() {
                return Err(AuthError::Network {
                    url: self.token_url(),
                    message: "the token fetch ended without an answer".into(),
                });
            }
        }
    }

    fn scrub(&self, text: &str) -> String {
        match &self.credential {
            Credential::Secret(s) if !s.expose().is_empty() => text.replace(s.expose(), "***"),
            _ => text.to_string(),
        }
    }

    async fn fetch(&self, resource: Resource) -> Result<Cached, AuthError> {
        let url = self.token_url();
        let scope = format!("{}/.default", self.resources[&resource]);
        let now = self.clock.now();
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("scope", scope),
            ("grant_type", "client_credentials".into()),
        ];
        match &self.credential {
            Credential::Secret(s) => form.push(("client_secret", s.expose().to_string())),
            Credential::Certificate { .. } => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push((
                    "client_assertion",
                    self.credential
                        .assertion(&self.client_id, &url, now)
                        .unwrap_or_default(),
                ));
            }
        }
        let network = |message: String| AuthError::Network {
            url: url.clone(),
            message: self.scrub(&message),
        };
        let response = self
            .http
            .post(&url)
            .timeout(self.policy.total(crate::http::CallClass::Token))
            .form(&form)
            .send()
            .await
            .map_err(|e| network(crate::http::describe(&e)))?;
        let status = response.status();
        if status.is_redirection() {
            // The secret is in the form: it never follows a redirect.
            return Err(network(format!(
                "answered {} (a redirect); token requests are not redirected",
                status.as_u16()
            )));
        }
        let body = crate::http::read_capped(
            response,
            self.policy.body_cap(crate::http::CallClass::Token),
        )
        .await
        .map_err(|e| network(e.to_string()))?;
        let body = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(match serde_json::from_str::<EntraError>(&body) {
                Ok(e) => {
                    // "AADSTS7000215: Invalid client secret provided. ..." -> code and description.
                    // Entra ID's words are cleaned here, where they come in.
                    let description = self.scrub(&e.error_description);
                    let first = crate::text::message(description.lines().next().unwrap_or(""));
                    let error = crate::text::name(&e.error);
                    let (code, text) = match first.split_once(':') {
                        Some((c, rest)) if c.starts_with("AADSTS") => {
                            (c.to_string(), rest.trim().to_string())
                        }
                        _ => (error.clone(), first.clone()),
                    };
                    AuthError::Entra {
                        code,
                        description: format!("{text} ({error})"),
                    }
                }
                Err(_) => AuthError::Entra {
                    code: format!("HTTP {}", status.as_u16()),
                    description: crate::text::message(
                        &self.scrub(&body.chars().take(300).collect::<String>()),
                    ),
                },
            });
        }
        let parsed = parse_token_answer(&body).map_err(&network)?;
        Ok(Cached {
            token: Secret::new(parsed.0),
            expires_at: now
                .checked_add(SignedDuration::from_secs(parsed.1))
                .unwrap_or(now),
        })
    }
}

/// A token answer: the token, and its lifetime in seconds (clamped to a day; a string or a
/// fraction reads as a number, as some proxies write it).
pub fn parse_token_answer(body: &str) -> Result<(String, i64), String> {
    let t: TokenResponse =
        serde_json::from_str(body).map_err(|e| format!("unreadable token answer: {e}"))?;
    if t.access_token.is_empty() {
        return Err("the token answer has an empty access_token".into());
    }
    let seconds = match &t.expires_in {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|s| s.is_finite())
    .ok_or("the token answer has no expires_in")?;
    Ok((
        t.access_token,
        seconds.clamp(0.0, LONGEST_LIFETIME as f64) as i64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_prints_without_its_secret() {
        assert_eq!(
            format!("{:?}", Credential::Secret(Secret::new("hunter2"))),
            "Credential::Secret(***)"
        );
    }

    #[test]
    fn token_answers_are_read_with_bounded_lifetimes() {
        assert_eq!(
            parse_token_answer(r#"{"token_type":"Bearer","expires_in":3599,"access_token":"t"}"#),
            Ok(("t".into(), 3599))
        );
        assert_eq!(
            parse_token_answer(r#"{"expires_in":"3599","access_token":"t"}"#),
            Ok(("t".into(), 3599))
        );
        // A huge or negative lifetime is clamped, never an overflow.
        assert_eq!(
            parse_token_answer(r#"{"expires_in":1e300,"access_token":"t"}"#),
            Ok(("t".into(), LONGEST_LIFETIME))
        );
        assert_eq!(
            parse_token_answer(r#"{"expires_in":9223372036854775807,"access_token":"t"}"#),
            Ok(("t".into(), LONGEST_LIFETIME))
        );
        assert_eq!(
            parse_token_answer(r#"{"expires_in":-5,"access_token":"t"}"#),
            Ok(("t".into(), 0))
        );
        assert!(parse_token_answer(r#"{"expires_in":60,"access_token":""}"#).is_err());
        assert!(parse_token_answer(r#"{"access_token":"t"}"#).is_err());
        assert!(parse_token_answer("<html>").is_err());
    }

    #[test]
    fn pem_blocks_are_found_in_order() {
        let text = "junk\n-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n";
        let blocks = pem_blocks(text);
        assert_eq!(
            blocks,
            vec![
                ("PRIVATE KEY".into(), vec![0, 1, 2]),
                ("CERTIFICATE".into(), vec![3, 4, 5])
            ]
        );
    }
}
