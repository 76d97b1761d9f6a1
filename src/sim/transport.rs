//! InvokeCommand straight into the in-process simulator: the same bodies, pages and errors as over
//! HTTP, without sockets or tokens. `mailwave demo`, the engine tests and the benchmark use it. The
//! simulator implements the client's transport trait from its side, so production code never
//! imports the simulator.

use std::sync::Arc;

use serde_json::Value;

use super::{Cursor, Simulator};
use crate::directory::graph::{GraphReply, GraphTransport, Method};
use crate::exchange::{Call, Failure, Page, Transport};

pub struct LocalTransport {
    sim: Arc<Simulator>,
    page_size: usize,
}

impl LocalTransport {
    pub fn new(sim: Arc<Simulator>) -> LocalTransport {
        LocalTransport {
            sim,
            page_size: 1000,
        }
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.sim
    }
}

impl Transport for LocalTransport {
    async fn post(
        &self,
        _call: &Call,
        cmdlet: &str,
        body: &Value,
        next_link: Option<&str>,
    ) -> Result<Page, Failure> {
        let params = body["CmdletInput"]["Parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let cursor = next_link
            .and_then(|l| l.strip_prefix("local:"))
            .and_then(Cursor::parse)
            .unwrap_or_default();
        match self.sim.invoke(cmdlet, &params, cursor, self.page_size) {
            Ok(ok) => Ok(Page {
                next_link: ok.next.map(|c| format!("local:{}", c.token())),
                value: ok.value,
                warnings: ok.warnings,
            }),
            Err(fault) => Err(Failure {
                status: fault.status,
                body: fault.body,
                retry_after: fault.retry_after.map(|s| format!("{s}")),
            }),
        }
    }
}

/// Graph straight into the in-process simulator (users, licences, sendMail), with the same
/// request budget and answers as over HTTP: the demo, the notices tests and their benchmark.
pub struct LocalGraph {
    sim: Arc<Simulator>,
}

impl LocalGraph {
    pub fn new(sim: Arc<Simulator>) -> LocalGraph {
        LocalGraph { sim }
    }
}

/// One Graph request inside the simulator (its budget counted): the answer's JSON (None for an
/// empty 202), or the fault. Users, licences, sendMail and `$batch`.
pub(crate) fn graph_route(
    sim: &Simulator,
    method: Method,
    target: &str,
    body: &Value,
) -> Result<Option<Value>, super::ServiceFault> {
    sim.graph_call()?;
    let path = target.split('?').next().unwrap_or(target);
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let now = sim.clock().now();
    match (method, parts.as_slice()) {
        (Method::Get, ["v1.0", "subscribedSkus"]) => {
            Ok(Some(sim.with_directory(|d| d.subscribed_skus())))
        }
        (Method::Get, ["v1.0", "users", u]) => sim
            .with_directory(|d| d.get_user(&percent_decode(u)))
            .map(Some),
        (Method::Post, ["v1.0", "users", u, "assignLicense"]) => sim
            .with_directory(|d| d.assign_license(&percent_decode(u), body))
            .map(Some),
        (Method::Post, ["v1.0", "users", u, "sendMail"]) => sim
            .with_directory(|d| d.send_mail(now, &percent_decode(u), body))
            .map(|()| None),
        (Method::Post, ["v1.0", "$batch"]) => Ok(Some(batch(sim, body))),
        _ => Err(super::ServiceFault {
            status: 404,
            body: Some(
                serde_json::json!({"error": {"code": "BadRequest", "message": format!("no such resource in the simulator: {target}")}}),
            ),
            retry_after: None,
        }),
    }
}

/// `POST /v1.0/$batch`: at most 20 requests, each answered (or throttled) on its own.
pub(crate) fn batch(sim: &Simulator, body: &Value) -> Value {
    let requests = body["requests"].as_array().cloned().unwrap_or_default();
    if requests.len() > crate::directory::BATCH {
        return serde_json::json!({"error": {"code": "BadRequest", "message": "A batch may hold at most 20 requests."}});
    }
    let responses: Vec<Value> = requests
        .iter()
        .map(|r| {
            let method = match r["method"].as_str() {
                Some("POST") => Method::Post,
                _ => Method::Get,
            };
            let url = format!("/v1.0{}", r["url"].as_str().unwrap_or(""));
            let id = r["id"].clone();
            match graph_route(sim, method, &url, &r["body"]) {
                Ok(v) => serde_json::json!({"id": id, "status": if v.is_some() { 200 } else { 202 }, "body": v.unwrap_or(Value::Null)}),
                Err(f) => {
                    let mut a = serde_json::json!({"id": id, "status": f.status, "body": f.body.unwrap_or(Value::Null)});
                    if let Some(s) = f.retry_after {
                        a["headers"] = serde_json::json!({"Retry-After": format!("{}", s.ceil() as u64)});
                    }
                    a
                }
            }
        })
        .collect();
    serde_json::json!({"responses": responses})
}

impl GraphTransport for LocalGraph {
    async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
    ) -> Result<GraphReply, Failure> {
        let reply = |status: u16, body: Option<Value>, retry_after: Option<f64>| GraphReply {
            status,
            location: None,
            retry_after: retry_after.map(|s| format!("{}", s.ceil() as u64)),
            body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        };
        Ok(
            match graph_route(&self.sim, method, target, body.unwrap_or(&Value::Null)) {
                Ok(Some(v)) => reply(200, Some(v), None),
                Ok(None) => reply(202, None, None),
                Err(f) => reply(f.status, f.body, f.retry_after),
            },
        )
    }

    async fn download(
        &self,
        _url: &str,
        _to: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, Failure> {
        Err(Failure {
            status: 404,
            body: None,
            retry_after: None,
        })
    }
}

/// `%40` and friends back to characters (a user segment is percent-encoded by the client).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..(i + 3).min(s.len())], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
