//! The simulated Entra ID token endpoint and the token checks the simulated APIs make.
//! Client assertions are verified for real: signature (PS256 or RS256) against the registered
//! certificate, its `x5t#S256`, audience, issuer, subject and validity window.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jiff::Timestamp;
use rsa::RsaPublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Profile, ServiceFault};
use crate::auth::{pem_blocks, thumbprint_s256};

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IdentityStats {
    pub tokens_issued: u64,
    pub(crate) tokens_refused: u64,
    /// API calls answered 401.
    pub calls_unauthorised: u64,
    pub assertions_verified: u64,
}

pub struct Identity {
    client_secret: Option<String>,
    certificate: Option<(String, RsaPublicKey)>,
    lifetime_seconds: u64,
    revoked_before: Option<Timestamp>,
    pub stats: IdentityStats,
}

/// An Entra ID error response.
fn entra_error(status: u16, error: &str, code: u32, text: &str, now: Timestamp) -> (u16, Value) {
    let trace = uuid::Uuid::new_v4();
    (
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {trace}\r\nTimestamp: {now}"),
            "error_codes": [code],
            "timestamp": now.to_string(),
            "trace_id": trace.to_string(),
            "correlation_id": trace.to_string(),
        }),
    )
}

fn unauthorised(message: &str) -> ServiceFault {
    ServiceFault {
        status: 401,
        body: Some(json!({"error": {"code": "InvalidAuthenticationToken", "message": message}})),
        retry_after: None,
    }
}

impl Identity {
    pub fn new(profile: &Profile) -> Result<Identity, String> {
        let certificate = match &profile.certificate {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let der = pem_blocks(&text)
                    .into_iter()
                    .find(|(l, _)| l == "CERTIFICATE")
                    .map(|(_, d)| d)
                    .ok_or_else(|| format!("{}: no certificate", path.display()))?;
                let key = public_key(&der).map_err(|e| format!("{}: {e}", path.display()))?;
                Some((thumbprint_s256(&der), key))
            }
        };
        Ok(Identity {
            client_secret: profile.client_secret.clone(),
            certificate,
            lifetime_seconds: profile.token_lifetime_seconds,
            revoked_before: None,
            stats: IdentityStats::default(),
        })
    }

    /// Every token issued until now stops working (as when a tenant admin revokes the app's sessions).
    pub fn revoke_all(&mut self, now: Timestamp) {
        self.revoked_before = Some(now);
    }

    /// `POST /{tenant}/oauth2/v2.0/token`.
    pub(crate) fn issue(
        &mut self,
        now: Timestamp,
        token_url: &str,
        form: &HashMap<String, String>,
    ) -> Result<Value, (u16, Value)> {
        let result = self.check_request(now, token_url, form);
        match &result {
            Ok(_) => self.stats.tokens_issued += 1,
            Err(_) => self.stats.tokens_refused += 1,
        }
        result
    }

    fn check_request(
        &mut self,
        now: Timestamp,
        token_url: &str,
        form: &HashMap<String, String>,
    ) -> Result<Value, (u16, Value)> {
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if get("grant_type") != "client_credentials" {
            return Err(entra_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
                now,
            ));
        }
        let client_id = get("client_id");
        if client_id.is_empty() {
            return Err(entra_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
                now,
            ));
        }
        let Some(resource) = get("scope").strip_suffix("/.default") else {
            return Err(entra_error(
                400,
                "invalid_scope",
                1002012,
                "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                now,
            ));
        };
        if let Some(secret) = form.get("client_secret") {
            let ok = match &self.client_secret {
                Some(expected) => secret == expected,
                None => !secret.is_empty(),
            };
            if !ok {
                return Err(entra_error(
                    401,
                    "invalid_client",
                    7000215,
                    &format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                    now,
                ));
            }
        } else if get("client_assertion_type")
            == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        {
            self.verify_assertion(now, token_url, client_id, get("client_assertion"))?;
            self.stats.assertions_verified += 1;
        } else {
            return Err(entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                now,
            ));
        }
        let claims = json!({
            "aud": resource,
            "iat": now.as_millisecond(),
            "exp": now.as_millisecond() + self.lifetime_seconds as i64 * 1000,
            "appid": client_id,
            "n": uuid::Uuid::new_v4().to_string(),
        });
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": self.lifetime_seconds,
            "ext_expires_in": self.lifetime_seconds,
            "access_token": format!("mwsim.{}", B64URL.encode(claims.to_string())),
        }))
    }

    fn verify_assertion(
        &self,
        now: Timestamp,
        token_url: &str,
        client_id: &str,
        jwt: &str,
    ) -> Result<(), (u16, Value)> {
        let fail = |code: u32, text: &str| entra_error(401, "invalid_client", code, text, now);
        let Some((public_thumbprint, key)) = &self.certificate else {
            return Err(fail(
                700027,
                "Client assertion contains an invalid signature. [Reason - The key was not found.]",
            ));
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        if parts.len() != 3 {
            return Err(fail(50027, "JWT token is invalid or malformed."));
        }
        let decode =
            |p: &str| -> Option<Value> { serde_json::from_slice(&B64URL.decode(p).ok()?).ok() };
        let (Some(header), Some(claims), Ok(signature)) =
            (decode(parts[0]), decode(parts[1]), B64URL.decode(parts[2]))
        else {
            return Err(fail(50027, "JWT token is invalid or malformed."));
        };
        if header["x5t#S256"].as_str() != Some(public_thumbprint.as_str()) {
            return Err(fail(
                700027,
                "Client assertion contains an invalid signature. [Reason - The key was not found.]",
            ));
        }
        let message = format!("{}.{}", parts[0], parts[1]);
        let verified = match header["alg"].as_str() {
            Some("PS256") => rsa::pss::Signature::try_from(signature.as_slice())
                .ok()
                .is_some_and(|sig| {
                    rsa::pss::VerifyingKey::<Sha256>::new(key.clone())
                        .verify(message.as_bytes(), &sig)
                        .is_ok()
                }),
            Some("RS256") => rsa::pkcs1v15::Signature::try_from(signature.as_slice())
                .ok()
                .is_some_and(|sig| {
                    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                        .verify(message.as_bytes(), &sig)
                        .is_ok()
                }),
            _ => false,
        };
        if !verified {
            return Err(fail(
                700027,
                "Client assertion failed signature validation.",
            ));
        }
        if claims["aud"].as_str() != Some(token_url) {
            return Err(fail(
                700212,
                &format!(
                    "No matching federated identity record found for presented assertion audience '{}'.",
                    claims["aud"]
                ),
            ));
        }
        if claims["iss"].as_str() != Some(client_id) || claims["sub"].as_str() != Some(client_id) {
            return Err(fail(
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            ));
        }
        let (nbf, exp) = (
            claims["nbf"].as_i64().unwrap_or(i64::MAX),
            claims["exp"].as_i64().unwrap_or(0),
        );
        let t = now.as_second();
        if claims["jti"].as_str().is_none_or(str::is_empty)
            || nbf > t + 300
            || exp <= t
            || exp - nbf > 3600
        {
            return Err(fail(
                700024,
                "Client assertion is not within its valid time range.",
            ));
        }
        Ok(())
    }

    /// Checks an API call's bearer token: issued by us, unexpired, not revoked, for one of `audiences`.
    pub(crate) fn check(
        &mut self,
        now: Timestamp,
        authorization: Option<&str>,
        audiences: &[&str],
    ) -> Result<(), ServiceFault> {
        let result = (|| {
            let token = authorization
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or_else(|| unauthorised("Access token is empty."))?;
            let claims: Value = token
                .strip_prefix("mwsim.")
                .and_then(|c| B64URL.decode(c).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| {
                    unauthorised("Access token validation failure. Invalid audience.")
                })?;
            let (iat, exp) = (
                claims["iat"].as_i64().unwrap_or(0),
                claims["exp"].as_i64().unwrap_or(0),
            );
            if exp <= now.as_millisecond() {
                return Err(unauthorised(
                    "Lifetime validation failed, the token is expired.",
                ));
            }
            if self
                .revoked_before
                .is_some_and(|r| iat <= r.as_millisecond())
            {
                return Err(unauthorised("The token has been revoked."));
            }
            let aud = claims["aud"].as_str().unwrap_or("");
            if !audiences
                .iter()
                .any(|a| a.trim_end_matches('/') == aud.trim_end_matches('/'))
            {
                return Err(unauthorised(
                    "Access token validation failure. Invalid audience.",
                ));
            }
            Ok(())
        })();
        if result.is_err() {
            self.stats.calls_unauthorised += 1;
        }
        result
    }
}

fn public_key(certificate_der: &[u8]) -> Result<RsaPublicKey, String> {
    use rsa::pkcs8::DecodePublicKey;
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(certificate_der).map_err(|e| e.to_string())?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| e.to_string())
}
