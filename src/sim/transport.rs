//! InvokeCommand straight into the in-process simulator: the same bodies, pages and errors as over
//! HTTP, without sockets or tokens. `mailwave demo`, the engine tests and the benchmark use it. The
//! simulator implements the client's transport trait from its side, so production code never
//! imports the simulator.

use std::sync::Arc;

use serde_json::Value;

use super::{Cursor, Simulator};
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
