//! `[tenant]`: who mailwave signs in as.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx};

#[derive(Debug, Clone, Default)]
pub struct Tenant {
    pub id: String,
    pub client_id: String,
    /// Name of the environment variable that holds the client secret. The secret itself is never
    /// in the file.
    pub client_secret_env: Option<String>,
    pub certificate: Option<PathBuf>,
    /// Signature of certificate client assertions: PS256 (default) or RS256.
    pub assertion_algorithm: crate::secrets::Algorithm,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    id: Option<Spanned<String>>,
    client_id: Option<String>,
    client_secret_env: Option<Spanned<String>>,
    certificate: Option<String>,
    assertion_algorithm: Option<Spanned<String>>,
    /// Refused with a clear message: secrets do not belong in the file.
    client_secret: Option<Spanned<toml::Value>>,
}

/// A tenant id: a GUID, or a domain name (it goes into URLs and a header, so nothing else).
pub fn valid_tenant(id: &str) -> bool {
    if uuid::Uuid::try_parse(id).is_ok() && id.len() == 36 {
        return true;
    }
    id.len() <= 253
        && id.contains('.')
        && id.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl Tenant {
    pub(super) fn from_raw(cx: &Ctx, raw: RawTenant, base: &Path) -> Result<Tenant, ConfigError> {
        if let Some(secret) = &raw.client_secret {
            return Err(cx.invalid(
                secret.span(),
                "tenant.client_secret",
                "secrets are not read from the config file; put the secret in an environment \
                 variable and name it with client_secret_env",
            ));
        }
        let assertion_algorithm = match &raw.assertion_algorithm {
            None => Tenant::default().assertion_algorithm,
            Some(a) => match a.get_ref().as_str() {
                "PS256" => crate::secrets::Algorithm::Ps256,
                "RS256" => crate::secrets::Algorithm::Rs256,
                other => {
                    return Err(cx.invalid(
                        a.span(),
                        "tenant.assertion_algorithm",
                        format!("{other:?} is not PS256 or RS256"),
                    ));
                }
            },
        };
        let id_span = raw.id.as_ref().map(|s| s.span()).unwrap_or(0..0);
        let given = raw.id.is_some();
        let id = raw.id.map(|s| s.into_inner()).unwrap_or_default();
        // Absent is fine for commands that never sign in; given, it must be a tenant (an empty
        // one would make the token address `{authority}//oauth2/...`).
        if given && !valid_tenant(&id) {
            return Err(cx.invalid(
                id_span,
                "tenant.id",
                "is neither a tenant GUID nor a domain name (for example \"contoso.onmicrosoft.com\")",
            ));
        }
        Ok(Tenant {
            assertion_algorithm,
            id,
            client_id: raw.client_id.unwrap_or_default(),
            client_secret_env: raw.client_secret_env.map(|s| s.into_inner()),
            certificate: raw.certificate.map(|c| base.join(c)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConfigError;
    use super::super::tests::parse;

    #[test]
    fn secret_in_file_is_refused_without_echoing_it() {
        let e = parse("[tenant]\nclient_secret = \"hunter2-very-secret\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("client_secret_env"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn tenants_are_checked() {
        for ok in [
            "contoso.onmicrosoft.com",
            "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "a-b.example.org",
        ] {
            assert!(parse(&format!("[tenant]\nid = \"{ok}\"\n")).is_ok(), "{ok}");
        }
        for bad in [
            "contoso",
            "../../etc",
            "a b.com",
            "contoso.com/x",
            "-x.com",
            "x.com\r\nX-Evil: 1",
            "",
        ] {
            let e = parse(&format!("[tenant]\nid = {bad:?}\n")).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key, .. } if key == "tenant.id"),
                "{bad}: {e}"
            );
        }
    }
}
