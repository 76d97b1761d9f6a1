//! Microsoft Graph through graph-rs-sdk, with tokens from [`TokenProvider`]. A 401 renews the token
//! once and retries.
//!
//! One call is made with reqwest instead of the SDK: the mailbox usage report. Graph answers it with a
//! 302 to a short-lived download URL that must be fetched *without* the bearer token. The SDK follows
//! redirects itself (reqwest's `Policy::limited`), and reqwest keeps the Authorization header when the
//! download is on the same host, so only a client that does not follow redirects can guarantee that
//! the token never goes to the download URL.

use std::sync::Arc;

use graph_rs_sdk::{GraphClient, GraphClientConfiguration, ODataQuery};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{Directory, Res, ServiceError, Sku, User, classify, mail_body};
use crate::auth::{Resource, TokenProvider};
use crate::secrets::Secret;

/// Hosts graph-rs-sdk accepts as Microsoft Graph endpoints.
const MICROSOFT_HOSTS: [&str; 6] = [
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "graph.microsoft.de",
    "microsoftgraph.chinacloudapi.cn",
    "canary.graph.microsoft.com",
];

pub struct GraphDirectory {
    /// For the report download: never follows redirects.
    http: reqwest::Client,
    base: String,
    microsoft_host: bool,
    tokens: Arc<TokenProvider>,
    client: Mutex<Option<(Secret, GraphClient)>>,
}

fn token_error(e: crate::auth::AuthError) -> ServiceError {
    match e {
        crate::auth::AuthError::Network { .. } => network(e),
        _ => ServiceError::Auth {
            message: e.to_string(),
        },
    }
}

fn network(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Transient {
        status: 0,
        message: e.to_string(),
    }
}

impl GraphDirectory {
    pub fn new(graph: &str, tokens: Arc<TokenProvider>) -> Result<GraphDirectory, String> {
        let base = graph.trim_end_matches('/').to_string();
        let url =
            graph_rs_sdk::http::Url::parse(&base).map_err(|e| format!("[endpoints] graph: {e}"))?;
        let host = url.host_str().unwrap_or("");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(GraphDirectory {
            http,
            microsoft_host: MICROSOFT_HOSTS.contains(&host),
            base,
            tokens,
            client: Mutex::new(None),
        })
    }

    /// The SDK client for the current token (rebuilt when the token changes).
    async fn client(&self, renew: bool) -> Res<GraphClient> {
        let token = if renew {
            self.tokens.renew(Resource::Graph).await
        } else {
            self.tokens.token(Resource::Graph).await
        }
        .map_err(token_error)?;
        let mut cached = self.client.lock().await;
        if let Some((t, c)) = cached.as_ref()
            && *t == token
        {
            return Ok(c.clone());
        }
        let config = GraphClientConfiguration::new()
            .access_token(token.expose())
            .https_only(self.microsoft_host);
        let mut client = GraphClient::from(config);
        let endpoint =
            graph_rs_sdk::http::Url::parse(&format!("{}/v1.0", self.base)).map_err(network)?;
        if self.microsoft_host {
            client.use_endpoint(&endpoint);
        } else {
            // Only with the `test-util` feature: the simulator on loopback.
            client.use_test_endpoint(&endpoint);
        }
        *cached = Some((token, client.clone()));
        Ok(client)
    }

    /// Runs a request built by `make`, renewing the token once on a 401. Returns the JSON body
    /// (`Value::Null` for an empty one).
    async fn call<F, Fut>(&self, make: F) -> Res<Value>
    where
        F: Fn(GraphClient) -> Fut,
        Fut: std::future::Future<Output = graph_rs_sdk::GraphResult<reqwest::Response>>,
    {
        let mut renew = false;
        loop {
            let client = self.client(renew).await?;
            let response = make(client).await.map_err(network)?;
            let status = response.status().as_u16();
            if status == 401 && !renew {
                renew = true;
                continue;
            }
            let retry_after = crate::exchange::rest::retry_after(&response);
            let bytes = response.bytes().await.map_err(network)?;
            let body: Option<Value> =
                (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap_or(Value::Null));
            if (200..300).contains(&status) {
                return Ok(body.unwrap_or(Value::Null));
            }
            return Err(classify(status, body.as_ref(), retry_after.as_deref()));
        }
    }
}

impl Directory for GraphDirectory {
    async fn list_users(&self) -> Res<Vec<User>> {
        let mut renew = false;
        'attempt: loop {
            let client = self.client(renew).await?;
            let pages = client
                .users()
                .list_user()
                .select(&[
                    "id",
                    "userPrincipalName",
                    "mail",
                    "assignedLicenses",
                    "accountEnabled",
                ])
                .top("999")
                .paging()
                .json::<Value>()
                .await
                .map_err(network)?;
            let mut users = Vec::new();
            for page in pages {
                let status = page.status().as_u16();
                if status == 401 && !renew {
                    renew = true;
                    continue 'attempt;
                }
                let retry_after = page
                    .headers()
                    .get("retry-after")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string);
                let body = page.into_body();
                match body {
                    Ok(v) if (200..300).contains(&status) => {
                        users.extend(
                            v["value"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(User::from_json),
                        );
                    }
                    Ok(v) => return Err(classify(status, Some(&v), retry_after.as_deref())),
                    Err(e) => {
                        let v = serde_json::to_value(&e).unwrap_or(Value::Null);
                        return Err(classify(
                            status,
                            Some(&json!({"error": v.get("error").cloned().unwrap_or(v)})),
                            retry_after.as_deref(),
                        ));
                    }
                }
            }
            return Ok(users);
        }
    }

    async fn mailbox_usage_report(&self, period: &str) -> Res<Vec<u8>> {
        let url = format!(
            "{}/v1.0/reports/getMailboxUsageDetail(period='{period}')",
            self.base
        );
        let mut renew = false;
        loop {
            let token = if renew {
                self.tokens.renew(Resource::Graph).await
            } else {
                self.tokens.token(Resource::Graph).await
            }
            .map_err(token_error)?;
            let response = self
                .http
                .get(&url)
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| network(e.without_url()))?;
            let status = response.status().as_u16();
            if status == 401 && !renew {
                renew = true;
                continue;
            }
            if status == 302 || status == 303 || status == 307 {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|h| h.to_str().ok())
                    .ok_or_else(|| ServiceError::Permanent {
                        status,
                        message: "report redirect without a Location".into(),
                    })?
                    .to_string();
                // A fresh request: no Authorization header goes to the download URL.
                let download = self
                    .http
                    .get(&location)
                    .send()
                    .await
                    .map_err(|e| network(e.without_url()))?;
                let dstatus = download.status().as_u16();
                let bytes = download.bytes().await.map_err(network)?;
                if !(200..300).contains(&dstatus) {
                    return Err(classify(dstatus, None, None));
                }
                return Ok(bytes.to_vec());
            }
            let retry_after = crate::exchange::rest::retry_after(&response);
            let bytes = response.bytes().await.map_err(network)?;
            if (200..300).contains(&status) {
                return Ok(bytes.to_vec());
            }
            let body: Option<Value> = serde_json::from_slice(&bytes).ok();
            return Err(classify(status, body.as_ref(), retry_after.as_deref()));
        }
    }

    async fn subscribed_skus(&self) -> Res<Vec<Sku>> {
        let v = self
            .call(|c| async move { c.subscribed_skus().list_subscribed_sku().send().await })
            .await?;
        Ok(v["value"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Sku::from_json)
            .collect())
    }

    async fn get_user(&self, user: &str) -> Res<User> {
        let v = self
            .call(|c| async move {
                c.user(user)
                    .get_user()
                    .select(&[
                        "id",
                        "userPrincipalName",
                        "mail",
                        "assignedLicenses",
                        "accountEnabled",
                    ])
                    .send()
                    .await
            })
            .await?;
        Ok(User::from_json(&v))
    }

    async fn assign_licence(&self, user: &str, sku_id: &str) -> Res<()> {
        let body =
            json!({"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []});
        self.call(|c| {
            let body = body.clone();
            async move { c.user(user).assign_license(&body).send().await }
        })
        .await
        .map(|_| ())
    }

    async fn send_mail(&self, sender: &str, to: &[String], subject: &str, text: &str) -> Res<()> {
        let body = mail_body(to, subject, text);
        self.call(|c| {
            let body = body.clone();
            async move { c.user(sender).send_mail(&body).send().await }
        })
        .await
        .map(|_| ())
    }
}
