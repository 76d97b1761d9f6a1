//! InvokeCommand over HTTPS: `POST {exchange}/adminapi/beta/{tenant}/InvokeCommand` with the headers
//! the ExchangeOnlineManagement module sends. A 401 renews the token once and retries; nothing else is
//! retried here (the engine decides).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Call, Failure, Page, Transport};
use crate::auth::{Resource, TokenProvider};

/// The system mailbox requests are anchored to.
const ANCHOR: &str = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";

pub struct RestTransport {
    http: reqwest::Client,
    url: String,
    anchor: String,
    tokens: Arc<TokenProvider>,
    page_size: usize,
}

impl RestTransport {
    pub fn new(
        http: reqwest::Client,
        exchange: &str,
        tenant: &str,
        tokens: Arc<TokenProvider>,
    ) -> RestTransport {
        RestTransport {
            http,
            url: format!(
                "{}/adminapi/beta/{tenant}/InvokeCommand",
                exchange.trim_end_matches('/')
            ),
            anchor: format!("{ANCHOR}@{tenant}"),
            tokens,
            page_size: 1000,
        }
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
        let url = next_link.unwrap_or(&self.url);
        let mut renewed = false;
        loop {
            let token = if renewed {
                self.tokens.renew(Resource::Exchange).await
            } else {
                self.tokens.token(Resource::Exchange).await
            }
            .map_err(|e| match e {
                // Not reaching Entra ID is a network problem; only its refusal is an auth failure.
                crate::auth::AuthError::Network { .. } => failure(0, e.to_string()),
                _ => failure(401, e.to_string()),
            })?;
            let response = self
                .http
                .post(url)
                .bearer_auth(token.expose())
                .header("X-AnchorMailbox", &self.anchor)
                .header("Prefer", format!("odata.maxpagesize={}", self.page_size))
                .header("X-CmdletName", cmdlet)
                .header("X-ResponseFormat", "json")
                .header("client-request-id", call.correlation.to_string())
                .json(body)
                .send()
                .await
                .map_err(|e| failure(0, e.without_url().to_string()))?;
            let status = response.status().as_u16();
            if status == 401 && !renewed {
                tracing::debug!(cmdlet, "401 from Exchange: renewing the token once");
                renewed = true;
                continue;
            }
            let retry_after = retry_after(&response);
            let bytes = response
                .bytes()
                .await
                .map_err(|e| failure(0, e.without_url().to_string()))?;
            if (200..300).contains(&status) {
                let v: Envelope = serde_json::from_slice(&bytes)
                    .map_err(|e| failure(502, format!("unreadable answer: {e}")))?;
                return Ok(Page {
                    value: v.value.unwrap_or_else(empty_array),
                    next_link: v.next_link,
                    warnings: v
                        .warnings
                        .into_iter()
                        .filter_map(|w| w.as_str().map(str::to_string))
                        .collect(),
                });
            }
            let body = if bytes.is_empty() {
                None
            } else {
                Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    json!({"error": {"message": String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>()}})
                }))
            };
            return Err(Failure {
                status,
                body,
                retry_after,
            });
        }
    }
}

/// An InvokeCommand success. `value` is kept as text: the client reads it into the records it needs.
#[derive(serde::Deserialize)]
struct Envelope {
    value: Option<Box<serde_json::value::RawValue>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@adminapi.warnings", default)]
    warnings: Vec<Value>,
}

fn empty_array() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("[]".into()).expect("[] is JSON")
}
