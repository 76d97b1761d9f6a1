//! Microsoft Graph: the few calls mailwave makes (users, one user, subscribed SKUs, assignLicense,
//! sendMail, the mailbox usage report), built on the same HTTP policy as every other client.
//!
//! One client ([`GraphClient`]) builds the requests, follows `@odata.nextLink` (same origin only,
//! no loops) and classifies errors; a [`GraphTransport`] carries them: over HTTPS with a token
//! ([`RestGraph`]), or, from the simulator's side, in process.
//!
//! Why not graph-rs-sdk (README's dependency table says the same): it only accepts Microsoft's
//! hosts unless its `test-util` feature is on, and that feature also lifts its https requirement,
//! so a release build that can rehearse against `mailwave sim serve` is one that will talk to any
//! host over any scheme; its client follows redirects with the token on the same host, which
//! cannot be turned off; and it brings jsonwebtoken 9 (a published advisory), handlebars and a
//! second HTTP stack for six endpoints.

use std::future::Future;
use std::sync::Arc;

use reqwest::Url;
use serde_json::{Value, json};

use super::{
    BATCH, BatchAnswer, Directory, Licensing, Message, Res, ServiceError, Sku, User, classify,
    mail_body,
};
use crate::auth::{Resource, TokenProvider};
use crate::exchange::Failure;
use crate::http::{self, CallClass, Policy};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// A Graph answer: its status, the `Location` of a redirect, `Retry-After`, and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphReply {
    pub status: u16,
    pub location: Option<String>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Carries one Graph request: `target` is a path under the Graph root (`/v1.0/users?...`), or an
/// absolute `@odata.nextLink` of an earlier answer.
pub trait GraphTransport: Send + Sync + 'static {
    fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> impl Future<Output = Result<GraphReply, Failure>> + Send;
    /// Fetches a short-lived download URL, without the token, into `to`; returns the bytes
    /// written.
    fn download(
        &self,
        url: &str,
        to: &mut (dyn std::io::Write + Send),
    ) -> impl Future<Output = Result<u64, Failure>> + Send;
}

/// The one [`Directory`] implementation, over any transport.
pub struct GraphClient<T> {
    transport: T,
}

const USER_FIELDS: &str = "id,userPrincipalName,mail,assignedLicenses,accountEnabled";

/// A user id or principal name as one path segment.
fn segment(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn failure_of(reply: &GraphReply) -> ServiceError {
    let body: Option<Value> = serde_json::from_slice(&reply.body).ok();
    classify(reply.status, body.as_ref(), reply.retry_after.as_deref())
}

fn json_of(reply: &GraphReply, what: &str) -> Res<Value> {
    serde_json::from_slice(&reply.body).map_err(|e| ServiceError::Transient {
        status: 502,
        message: format!("{what}: unreadable answer ({e})"),
    })
}

/// A 2xx answer that is not what Graph answers (an error inside it, another shape) is a transient
/// failure, never a success: as Exchange's answers are read.
pub(crate) fn wrong_answer(what: &str, why: impl std::fmt::Display) -> ServiceError {
    ServiceError::Transient {
        status: 502,
        message: format!("{what}: {why}"),
    }
}

/// An `error` object inside a 2xx answer, as the failure it is.
fn error_inside(v: &Value, what: &str) -> Res<()> {
    match v.get("error") {
        Some(e) => Err(wrong_answer(
            what,
            format_args!(
                "an error in a success answer: {}",
                e["message"].as_str().unwrap_or("(no message)")
            ),
        )),
        None => Ok(()),
    }
}

/// The `value` list of a listing answer.
fn value_list<'a>(v: &'a Value, what: &str) -> Res<&'a Vec<Value>> {
    v["value"]
        .as_array()
        .ok_or_else(|| wrong_answer(what, "an answer without a value list"))
}

/// A user as Graph gives one: an object with its id and principal name.
fn user_of(v: &Value, what: &str) -> Res<User> {
    if !(v["id"].is_string() && v["userPrincipalName"].is_string()) {
        return Err(wrong_answer(
            what,
            "a user without an id or userPrincipalName: not Graph's shape",
        ));
    }
    Ok(User::from_json(v))
}

fn failed(f: Failure) -> ServiceError {
    if f.status == 0 {
        ServiceError::Transient {
            status: 0,
            message: f
                .body
                .as_ref()
                .and_then(|b| b["error"]["message"].as_str().map(crate::text::message))
                .unwrap_or_default(),
        }
    } else {
        classify(f.status, f.body.as_ref(), f.retry_after.as_deref())
    }
}

impl<T: GraphTransport> GraphClient<T> {
    pub fn new(transport: T) -> GraphClient<T> {
        GraphClient { transport }
    }

    /// One request; a 2xx answer's JSON (`Null` when empty), else the classified error.
    async fn call(&self, method: Method, target: &str, body: Option<&Value>) -> Res<Value> {
        let reply = self
            .transport
            .send(method, target, body)
            .await
            .map_err(failed)?;
        if !(200..300).contains(&reply.status) {
            return Err(failure_of(&reply));
        }
        if reply.body.is_empty() {
            return Ok(Value::Null);
        }
        let v = json_of(&reply, target)?;
        error_inside(&v, target)?;
        Ok(v)
    }
}

impl<T: GraphTransport> GraphClient<T> {
    /// `POST /v1.0/$batch` with up to [`BATCH`] requests (method, URL under /v1.0, body); the
    /// answers in the order asked.
    pub async fn batch(
        &self,
        requests: &[(Method, String, Option<Value>)],
    ) -> Res<Vec<BatchAnswer>> {
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(BATCH) {
            let body = json!({"requests": chunk.iter().enumerate().map(|(i, (m, url, b))| {
                let mut r = json!({"id": i.to_string(), "method": match m { Method::Get => "GET", Method::Post => "POST" }, "url": url});
                if let Some(b) = b {
                    r["body"] = b.clone();
                    r["headers"] = json!({"Content-Type": "application/json"});
                }
                r
            }).collect::<Vec<_>>()});
            let v = self.call(Method::Post, "/v1.0/$batch", Some(&body)).await?;
            let responses = v["responses"]
                .as_array()
                .ok_or_else(|| wrong_answer("$batch", "an answer without a responses list"))?;
            let mut answers: Vec<Option<BatchAnswer>> = vec![None; chunk.len()];
            for r in responses {
                let Some(i) = r["id"].as_str().and_then(|i| i.parse::<usize>().ok()) else {
                    continue;
                };
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(BatchAnswer {
                        status: r["status"].as_u64().unwrap_or(0) as u16,
                        retry_after: r["headers"]["Retry-After"]
                            .as_str()
                            .map(str::to_string)
                            .or_else(|| r["headers"]["retry-after"].as_str().map(str::to_string)),
                        body: r["body"].clone(),
                    });
                }
            }
            // A request the answer left out counts as a transient failure, to be asked again.
            out.extend(answers.into_iter().map(|a| {
                a.unwrap_or(BatchAnswer {
                    status: 503,
                    retry_after: None,
                    body: json!({"error": {"message": "no answer in the batch"}}),
                })
            }));
        }
        Ok(out)
    }
}

impl<T: GraphTransport> Licensing for GraphClient<T> {
    fn users<'a>(
        &'a self,
        upns: &'a [String],
    ) -> std::pin::Pin<Box<dyn Future<Output = Res<Vec<BatchAnswer>>> + Send + 'a>> {
        Box::pin(async move {
            let requests: Vec<(Method, String, Option<Value>)> = upns
                .iter()
                .map(|u| {
                    (
                        Method::Get,
                        format!("/users/{}?$select={USER_FIELDS}", segment(u)),
                        None,
                    )
                })
                .collect();
            self.batch(&requests).await
        })
    }

    fn skus(&self) -> std::pin::Pin<Box<dyn Future<Output = Res<Vec<Sku>>> + Send + '_>> {
        Box::pin(self.subscribed_skus())
    }

    fn assign<'a>(
        &'a self,
        upns: &'a [String],
        sku_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Res<Vec<BatchAnswer>>> + Send + 'a>> {
        Box::pin(async move {
            let body = json!({"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []});
            let requests: Vec<(Method, String, Option<Value>)> = upns
                .iter()
                .map(|u| {
                    (
                        Method::Post,
                        format!("/users/{}/assignLicense", segment(u)),
                        Some(body.clone()),
                    )
                })
                .collect();
            self.batch(&requests).await
        })
    }
}

impl<T: GraphTransport> GraphClient<T> {
    /// One page of the users (the first with `None`, then each `@odata.nextLink`), read into
    /// records. A caller that paces its own requests (preflight) pages with this and
    /// [`crate::exchange::gather`].
    pub async fn users_page(&self, next: Option<String>) -> Res<(Vec<User>, Option<String>)> {
        let target = next.unwrap_or_else(|| format!("/v1.0/users?$select={USER_FIELDS}&$top=999"));
        let v = self.call(Method::Get, &target, None).await?;
        let users = value_list(&v, "users")?
            .iter()
            .map(|u| user_of(u, "users"))
            .collect::<Res<Vec<User>>>()?;
        Ok((users, v["@odata.nextLink"].as_str().map(str::to_string)))
    }
}

impl<T: GraphTransport> Directory for GraphClient<T> {
    async fn list_users(&self) -> Res<Vec<User>> {
        crate::exchange::gather("users", |next| self.users_page(next)).await
    }

    async fn mailbox_usage_report(
        &self,
        period: &str,
        to: &mut (dyn std::io::Write + Send),
    ) -> Res<u64> {
        let target = format!("/v1.0/reports/getMailboxUsageDetail(period='{period}')");
        let reply = self
            .transport
            .send(Method::Get, &target, None)
            .await
            .map_err(failed)?;
        match reply.status {
            // The documented answer: a redirect to a short-lived URL that needs no token (and must
            // not get one).
            302 | 303 | 307 => {
                let location = reply.location.ok_or_else(|| ServiceError::Permanent {
                    status: reply.status,
                    message: "the report's redirect has no Location".into(),
                })?;
                self.transport.download(&location, to).await.map_err(failed)
            }
            200..=299 => {
                to.write_all(&reply.body)
                    .map_err(|e| ServiceError::Permanent {
                        status: 0,
                        message: format!("the report could not be written: {e}"),
                    })?;
                Ok(reply.body.len() as u64)
            }
            _ => Err(failure_of(&reply)),
        }
    }

    async fn subscribed_skus(&self) -> Res<Vec<Sku>> {
        let v = self.call(Method::Get, "/v1.0/subscribedSkus", None).await?;
        Ok(value_list(&v, "subscribedSkus")?
            .iter()
            .map(Sku::from_json)
            .collect())
    }

    async fn get_user(&self, user: &str) -> Res<User> {
        let target = format!("/v1.0/users/{}?$select={USER_FIELDS}", segment(user));
        user_of(&self.call(Method::Get, &target, None).await?, "user")
    }

    async fn assign_licence(&self, user: &str, sku_id: &str) -> Res<()> {
        let body =
            json!({"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []});
        let target = format!("/v1.0/users/{}/assignLicense", segment(user));
        self.call(Method::Post, &target, Some(&body))
            .await
            .map(|_| ())
    }

    async fn send_mail(&self, sender: &str, message: &Message) -> Res<()> {
        let body = mail_body(message);
        let target = format!("/v1.0/users/{}/sendMail", segment(sender));
        let reply = self
            .transport
            .send(Method::Post, &target, Some(&body))
            .await
            .map_err(failed)?;
        match reply.status {
            // What Graph answers a message it took: 202 Accepted, with nothing in it.
            202 if reply.body.iter().all(u8::is_ascii_whitespace) => Ok(()),
            // Anything else that says 2xx reached Graph, so the message may have gone: the
            // status is kept, and the notices count it uncertain, never sent and never again.
            status @ 200..=299 => Err(ServiceError::Transient {
                status,
                message: format!(
                    "sendMail answered {status}{}, not a plain 202 Accepted: the message may have gone",
                    if reply.body.is_empty() {
                        ""
                    } else {
                        " with a body"
                    }
                ),
            }),
            _ => Err(failure_of(&reply)),
        }
    }
}

/// Graph over HTTPS with a token from Entra ID.
pub struct RestGraph {
    http: reqwest::Client,
    policy: Policy,
    base: Url,
    tokens: Arc<TokenProvider>,
}

impl RestGraph {
    /// `graph` is the validated endpoint (`[endpoints] graph`).
    pub fn new(
        policy: Policy,
        graph: &str,
        tokens: Arc<TokenProvider>,
    ) -> Result<RestGraph, String> {
        Ok(RestGraph {
            http: policy.client().map_err(|e| http::describe(&e))?,
            base: Url::parse(graph.trim_end_matches('/'))
                .map_err(|e| format!("[endpoints] graph: {e}"))?,
            policy,
            tokens,
        })
    }

    fn url_of(&self, target: &str) -> Result<Url, Failure> {
        let bad = |m: String| Failure {
            status: 502,
            body: Some(json!({"error": {"message": m}})),
            retry_after: None,
        };
        if target.starts_with('/') {
            return Url::parse(&format!(
                "{}{target}",
                self.base.as_str().trim_end_matches('/')
            ))
            .map_err(|e| bad(format!("{target}: {e}")));
        }
        let url = Url::parse(target).map_err(|_| bad("an unreadable nextLink".into()))?;
        if !http::same_origin(&url, &self.base) {
            return Err(bad(format!(
                "a nextLink to another host ({}) was not followed",
                url.host_str().unwrap_or("none")
            )));
        }
        Ok(url)
    }
}

fn network(message: String) -> Failure {
    Failure {
        status: 0,
        body: Some(json!({"error": {"message": message}})),
        retry_after: None,
    }
}

impl GraphTransport for RestGraph {
    async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<GraphReply, Failure> {
        let url = self.url_of(target)?;
        let mut rejected = None;
        loop {
            let token = match &rejected {
                Some(r) => self.tokens.renew(Resource::Graph, r).await,
                None => self.tokens.token(Resource::Graph).await,
            }
            .map_err(|e| match e {
                crate::auth::AuthError::Network { .. } => network(e.to_string()),
                _ => Failure {
                    status: 401,
                    body: Some(json!({"error": {"message": e.to_string()}})),
                    retry_after: None,
                },
            })?;
            let request = match method {
                Method::Get => self.http.get(url.clone()),
                Method::Post => self.http.post(url.clone()),
            };
            let request = match body {
                Some(b) => request.json(b),
                None => request,
            };
            let response = request
                .timeout(self.policy.total(CallClass::Graph))
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(|e| network(http::describe(&e)))?;
            let status = response.status().as_u16();
            if status == 401 && rejected.is_none() {
                rejected = Some(token);
                continue;
            }
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string);
            let retry_after = crate::exchange::rest::retry_after(&response);
            let body = http::read_capped(response, self.policy.body_cap(CallClass::Graph))
                .await
                .map_err(|e| network(e.to_string()))?;
            return Ok(GraphReply {
                status,
                location,
                retry_after,
                body,
            });
        }
    }

    async fn download(
        &self,
        url: &str,
        to: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, Failure> {
        // A fresh request without the token; the URL is never put in a message (it is a
        // credential until it expires).
        let url = http::check_endpoint(url)
            .map_err(|e| network(format!("the report's download address is refused: {e}")))?;
        let response = self
            .http
            .get(url)
            .timeout(self.policy.total(CallClass::Report))
            .send()
            .await
            .map_err(|e| network(format!("report download: {}", http::describe(&e))))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(Failure {
                status,
                body: Some(
                    json!({"error": {"message": format!("the report download answered {status}")}}),
                ),
                retry_after: None,
            });
        }
        // Hundreds of MB for a large tenant: written out as it comes, never held.
        http::copy_capped(response, self.policy.body_cap(CallClass::Report), to)
            .await
            .map_err(|e| network(format!("report download: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_one_path_segment() {
        assert_eq!(
            segment("alice.smith@contoso.com"),
            "alice.smith@contoso.com"
        );
        assert_eq!(segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(segment("ümlaut@x"), "%C3%BCmlaut@x");
    }
}
