//! InvokeCommand over HTTPS: `POST {exchange}/adminapi/beta/{tenant}/InvokeCommand` with the headers
//! the ExchangeOnlineManagement module sends, under mailwave's HTTP policy (timeouts, no redirects,
//! capped bodies). A 401 renews the token once and retries; nothing else is retried here (the engine
//! decides). The bearer token only goes to the configured origin: a `nextLink` elsewhere is refused.

use std::sync::Arc;

use reqwest::Url;
use serde_json::{Value, json};

use super::{Call, Failure, Page, Transport};
use crate::auth::{Resource, TokenProvider};
use crate::http::{self, CallClass, Policy};

/// The system mailbox requests are anchored to.
const ANCHOR: &str = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";

pub struct RestTransport {
    http: reqwest::Client,
    policy: Policy,
    url: Url,
    anchor: String,
    tokens: Arc<TokenProvider>,
    page_size: usize,
}

impl RestTransport {
    /// `exchange` is the validated endpoint (`[endpoints] exchange`), `tenant` the validated id.
    pub fn new(
        policy: Policy,
        exchange: &str,
        tenant: &str,
        tokens: Arc<TokenProvider>,
    ) -> Result<RestTransport, String> {
        let url = Url::parse(&format!(
            "{}/adminapi/beta/{tenant}/InvokeCommand",
            exchange.trim_end_matches('/')
        ))
        .map_err(|e| format!("[endpoints] exchange: {e}"))?;
        Ok(RestTransport {
            http: policy.client().map_err(|e| http::describe(&e))?,
            policy,
            url,
            anchor: format!("{ANCHOR}@{tenant}"),
            tokens,
            page_size: 1000,
        })
    }
}

/// A response's `Retry-After`, as the service wrote it (seconds, possibly fractional).
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

fn failure(status: u16, message: impl Into<String>) -> Failure {
    Failure {
        status,
        body: Some(json!({"error": {"message": message.into()}})),
        retry_after: None,
    }
}

impl Transport for RestTransport {
    async fn post(
        &self,
        call: &Call,
        cmdlet: &str,
        body: &Value,
        next_link: Option<&str>,
    ) -> Result<Page, Failure> {
        let url = match next_link {
            None => self.url.clone(),
            Some(link) => {
                let next = Url::parse(link).map_err(|_| {
                    failure(
                        502,
                        format!("{cmdlet}: the service gave an unreadable nextLink"),
                    )
                })?;
                if !http::same_origin(&next, &self.url) {
                    return Err(failure(
                        502,
                        format!(
                            "{cmdlet}: the service's nextLink leads to another host ({}); it was not followed",
                            next.host_str().unwrap_or("none")
                        ),
                    ));
                }
                next
            }
        };
        let mut renewed = false;
        let mut rejected = None;
        loop {
            let token = match &rejected {
                Some(r) => self.tokens.renew(Resource::Exchange, r).await,
                None => self.tokens.token(Resource::Exchange).await,
            }
            .map_err(|e| match e {
                // Not reaching Entra ID is a network problem; only its refusal is an auth failure.
                crate::auth::AuthError::Network { .. } => failure(0, e.to_string()),
                _ => failure(401, e.to_string()),
            })?;
            let response = self
                .http
                .post(url.clone())
                .timeout(self.policy.total(CallClass::Cmdlet))
                .bearer_auth(token.expose())
                .header("X-AnchorMailbox", &self.anchor)
                .header("Prefer", format!("odata.maxpagesize={}", self.page_size))
                .header("X-CmdletName", cmdlet)
                .header("X-ResponseFormat", "json")
                .header("client-request-id", call.correlation.to_string())
                .json(body)
                .send()
                .await
                .map_err(|e| failure(0, http::describe(&e)))?;
            let status = response.status().as_u16();
            if status == 401 && !renewed {
                tracing::debug!(cmdlet, "401 from Exchange: renewing the token once");
                renewed = true;
                rejected = Some(token);
                continue;
            }
            if (300..400).contains(&status) {
                return Err(failure(
                    502,
                    format!("{cmdlet}: answered {status} (a redirect); it was not followed"),
                ));
            }
            let retry_after = retry_after(&response);
            let bytes = http::read_capped(response, self.policy.body_cap(CallClass::Cmdlet))
                .await
                .map_err(|e| failure(0, format!("{cmdlet}: {e}")))?;
            if (200..300).contains(&status) {
                return read_success(&bytes).map_err(|m| failure(502, format!("{cmdlet}: {m}")));
            }
            let body = if bytes.is_empty() {
                None
            } else {
                Some(serde_json::from_slice(&bytes).unwrap_or_else(
                    |_| json!({"error": {"message": format!("not JSON: {}", preview(&bytes))}}),
                ))
            };
            return Err(Failure {
                status,
                body,
                retry_after,
            });
        }
    }
}

/// The first characters of an answer that is not what it should be, on one line, cleaned.
fn preview(bytes: &[u8]) -> String {
    let words = String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    crate::text::message(&words)
}

/// An InvokeCommand success. `value` is kept as text: the client reads it into the records it needs.
#[derive(serde::Deserialize)]
struct Envelope {
    value: Option<Box<serde_json::value::RawValue>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@adminapi.warnings", default)]
    warnings: Vec<Value>,
    error: Option<Value>,
}

/// Reads a 2xx answer: it must be the envelope with a `value` array. One that carries an error,
/// or has another shape, is not a success.
pub fn read_success(bytes: &[u8]) -> Result<Page, String> {
    let v: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| format!("unreadable answer ({e}): {}", preview(bytes)))?;
    if let Some(error) = v.error {
        let (kind, text) = super::error::reason(&json!({ "error": error }));
        return Err(format!("an error in a success answer: {text} {kind}")
            .trim()
            .to_string());
    }
    let value = v
        .value
        .ok_or_else(|| "an answer without a value: not the InvokeCommand shape".to_string())?;
    if !value.get().trim_start().starts_with('[') {
        return Err("an answer whose value is not a list".into());
    }
    Ok(Page {
        value,
        next_link: v.next_link,
        warnings: v
            .warnings
            .into_iter()
            .filter_map(|w| w.as_str().map(crate::text::message))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_envelope_with_a_value_list_is_a_success() {
        let page = read_success(br#"{"@odata.context":"x","value":[{"a":1}],"@odata.nextLink":"https://h/n","@adminapi.warnings":["w"]}"#).unwrap();
        assert_eq!(page.next_link.as_deref(), Some("https://h/n"));
        assert_eq!(page.warnings, vec!["w".to_string()]);
        assert!(read_success(br#"{"value":[]}"#).is_ok());
        let e = read_success(br#"{"error":{"code":"NotFound","message":"Error executing cmdlet","details":[{"message":"Ex|X.NotFoundException|gone"}]}}"#).unwrap_err();
        assert!(e.contains("gone"), "{e}");
        assert!(
            read_success(br#"{"@odata.context":"x"}"#)
                .unwrap_err()
                .contains("without a value")
        );
        assert!(
            read_success(br#"{"value":{"a":1}}"#)
                .unwrap_err()
                .contains("not a list")
        );
        let e = read_success(b"<html><body>Sign in</body></html>").unwrap_err();
        assert!(
            e.contains("unreadable answer") && e.contains("<html>"),
            "{e}"
        );
    }
}
