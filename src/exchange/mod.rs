//! Exchange Online's move cmdlets, behind [`MoveService`]. One client ([`ExchangeClient`]) builds the
//! InvokeCommand bodies, follows `@odata.nextLink`, parses the answers and classifies errors; a
//! [`Transport`] carries the bodies: over HTTPS ([`rest::RestTransport`]), or, from the simulator's
//! side, straight into the in-process simulator (`sim::transport::LocalTransport`).

pub mod error;
pub mod figures;
pub mod rest;

use std::future::Future;

use jiff::{SignedDuration, Timestamp};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::time::Clock;
pub use error::ServiceError;

/// One API call's context: the `client-request-id` it carries (also written to the event log), and,
/// for a request that mailwave created, when, so that a 404 moments later reads as replication lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub correlation: uuid::Uuid,
    pub created_at: Option<Timestamp>,
}

impl Call {
    pub fn new() -> Call {
        Call {
            correlation: uuid::Uuid::new_v4(),
            created_at: None,
        }
    }

    pub(crate) fn with_correlation(correlation: [u8; 16]) -> Call {
        Call {
            correlation: uuid::Uuid::from_bytes(correlation),
            created_at: None,
        }
    }

    pub fn created_at(mut self, at: Option<Timestamp>) -> Call {
        self.created_at = at;
        self
    }
}

impl Default for Call {
    fn default() -> Self {
        Call::new()
    }
}

/// How long after a create a 404 is taken for replication lag.
pub(crate) const REPLICATION_GRACE: SignedDuration = SignedDuration::from_mins(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveStatus {
    Queued,
    InProgress,
    Synced,
    AutoSuspended,
    Suspended,
    CompletionInProgress,
    Completed,
    CompletedWithWarning,
    CompletedWithSkippedItems,
    Failed,
    Retrying,
    Other(String),
}

impl MoveStatus {
    pub fn parse(s: &str) -> MoveStatus {
        match s {
            "Queued" => MoveStatus::Queued,
            "InProgress" => MoveStatus::InProgress,
            "Synced" => MoveStatus::Synced,
            "AutoSuspended" => MoveStatus::AutoSuspended,
            "Suspended" => MoveStatus::Suspended,
            "CompletionInProgress" => MoveStatus::CompletionInProgress,
            "Completed" => MoveStatus::Completed,
            "CompletedWithWarning" => MoveStatus::CompletedWithWarning,
            "CompletedWithSkippedItems" => MoveStatus::CompletedWithSkippedItems,
            "Failed" => MoveStatus::Failed,
            "Retrying" => MoveStatus::Retrying,
            other => MoveStatus::Other(other.to_string()),
        }
    }
}

/// What `New-MoveRequest` needs for a remote onboarding move.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMove {
    pub identity: String,
    pub batch_name: String,
    pub complete_after: Timestamp,
    pub remote_host_name: String,
    pub target_delivery_domain: String,
    pub source_endpoint: Option<String>,
}

/// A move request as `Get-MoveRequest` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRequest {
    pub identity: String,
    pub display_name: String,
    pub(crate) exchange_guid: String,
    pub status: MoveStatus,
    pub(crate) status_detail: String,
    pub batch_name: String,
    pub complete_after: Option<Timestamp>,
}

/// The Data Consistency Score Exchange Online gives a move for the items it skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dcs {
    Perfect,
    /// Minor inconsistencies; the move completes on its own.
    Good,
    /// Needs the skipped items approved (`Set-MoveRequest -SkippedItemApprovalTime`) to complete.
    Investigate,
    /// Cannot complete.
    Poor,
}

impl Dcs {
    pub fn parse(s: &str) -> Option<Dcs> {
        [Dcs::Perfect, Dcs::Good, Dcs::Investigate, Dcs::Poor]
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s.trim()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Dcs::Perfect => "Perfect",
            Dcs::Good => "Good",
            Dcs::Investigate => "Investigate",
            Dcs::Poor => "Poor",
        }
    }
}

/// Whether a failed move is worth resuming, as the service's failure type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    Transient,
    Permanent,
}

/// What `Get-MoveRequestStatistics` says of a move's failure.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveFailure {
    pub(crate) kind: FailureKind,
    /// The service's `FailureType`, for example `MailboxReplicationPermanentException`.
    pub(crate) failure_type: String,
    pub message: String,
    pub at: Option<Timestamp>,
}

impl MoveFailure {
    /// `FailureType` names end in `TransientException` or `PermanentException`; the message of a
    /// permanent failure names its exception. Anything else is taken as transient: resumes are
    /// bounded, so a wrong guess costs a few calls, never a move.
    fn classify(failure_type: &str, message: &str) -> FailureKind {
        if failure_type.contains("Permanent") || message.contains("PermanentException") {
            FailureKind::Permanent
        } else {
            FailureKind::Transient
        }
    }

    /// "FailureType: message", as the operator reads it.
    pub(crate) fn describe(&self) -> String {
        if self.failure_type.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.failure_type, self.message)
        }
    }
}

/// `Get-MoveRequestStatistics`.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveStatistics {
    pub request: MoveRequest,
    pub(crate) percent_complete: Option<u32>,
    pub(crate) bytes_transferred: Option<u64>,
    pub total_mailbox_size: Option<u64>,
    pub(crate) total_item_count: Option<u64>,
    pub(crate) items_transferred: Option<u64>,
    /// The service's message about the move (why it waits, why it failed).
    pub message: String,
    /// Set when the service reports a failure type.
    pub failure: Option<MoveFailure>,
    pub(crate) sync_stage: Option<String>,
    pub data_consistency_score: Option<Dcs>,
    /// What explains the move's speed (for the analytics and the forecast).
    pub figures: figures::MoveFigures,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointLimits {
    pub max_concurrent_migrations: u32,
    pub(crate) max_concurrent_incremental_syncs: u32,
}

type Res<T> = Result<T, ServiceError>;

/// The move operations the engine needs.
pub trait MoveService: Send + Sync + 'static {
    fn create(
        &self,
        call: Call,
        request: &NewMove,
    ) -> impl Future<Output = Res<MoveRequest>> + Send;
    /// The requests of a batch (all pages); only those with `status` when given
    /// (`Get-MoveRequest -BatchName -Status`).
    fn list_batch(
        &self,
        call: Call,
        batch: &str,
        status: Option<&str>,
    ) -> impl Future<Output = Res<Vec<MoveRequest>>> + Send;
    /// One page of a batch listing: the requests, and the link to the next page. A caller that
    /// paces its requests (or resumes after a 429) pages with this instead of `list_batch`.
    fn list_page(
        &self,
        call: Call,
        batch: &str,
        status: Option<&str>,
        next: Option<&str>,
    ) -> impl Future<Output = Res<(Vec<MoveRequest>, Option<String>)>> + Send;
    fn get(&self, call: Call, identity: &str) -> impl Future<Output = Res<MoveRequest>> + Send;
    fn statistics(
        &self,
        call: Call,
        identity: &str,
    ) -> impl Future<Output = Res<MoveStatistics>> + Send;
    /// Approves the skipped items (`Set-MoveRequest -SkippedItemApprovalTime`), putting the
    /// request in `batch` with `complete_after` in the same call: an approved move may complete
    /// as soon as its CompleteAfter has come.
    fn approve_skipped_items(
        &self,
        call: Call,
        identity: &str,
        at: Timestamp,
        batch: &str,
        complete_after: Timestamp,
    ) -> impl Future<Output = Res<()>> + Send;
    /// Moves a request to another batch and cut-over (`Set-MoveRequest -BatchName -CompleteAfter`).
    fn reschedule(
        &self,
        call: Call,
        identity: &str,
        batch: &str,
        complete_after: Timestamp,
    ) -> impl Future<Output = Res<()>> + Send;
    fn resume(&self, call: Call, identity: &str) -> impl Future<Output = Res<()>> + Send;
    fn suspend(&self, call: Call, identity: &str) -> impl Future<Output = Res<()>> + Send;
    fn remove(&self, call: Call, identity: &str) -> impl Future<Output = Res<()>> + Send;
    fn endpoint_limits(
        &self,
        call: Call,
        endpoint: Option<&str>,
    ) -> impl Future<Output = Res<EndpointLimits>> + Send;
}

/// A page of an InvokeCommand answer. `value` stays JSON text until the caller reads it into the
/// type it wants, so a page of a thousand move requests is parsed once, straight into records.
#[derive(Debug)]
pub struct Page {
    pub value: Box<RawValue>,
    pub(crate) next_link: Option<String>,
    pub(crate) warnings: Vec<String>,
}

impl Page {
    /// The value array read as `T`s; an answer that does not read is the service's fault (502).
    pub fn read<T: serde::de::DeserializeOwned>(&self, cmdlet: &str) -> Res<Vec<T>> {
        serde_json::from_str(self.value.get()).map_err(|e| ServiceError::Transient {
            status: 502,
            message: format!("unreadable {cmdlet} answer: {e}"),
        })
    }
}

/// Guards a listing's paging: a link that comes back, or more pages than any listing can have,
/// ends it with an error instead of a loop.
#[derive(Debug, Default)]
pub struct Pager {
    seen: std::collections::HashSet<String>,
}

/// The most pages one listing may take: ten million requests at a thousand a page.
pub const MAX_PAGES: usize = 10_000;

impl Pager {
    pub fn follow(&mut self, cmdlet: &str, link: String) -> Res<String> {
        if self.seen.len() >= MAX_PAGES {
            return Err(ServiceError::Transient {
                status: 502,
                message: format!("{cmdlet}: more than {MAX_PAGES} pages; the listing was ended"),
            });
        }
        if !self.seen.insert(link.clone()) {
            return Err(ServiceError::Transient {
                status: 502,
                message: format!(
                    "{cmdlet}: the service gave the same nextLink twice; the listing was ended"
                ),
            });
        }
        Ok(link)
    }
}

/// A failed InvokeCommand answer, before classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// 0 when the request never got an answer (network).
    pub status: u16,
    pub body: Option<Value>,
    pub retry_after: Option<String>,
}

/// Carries one InvokeCommand body to the service (or to `next_link`, for the pages after the first).
pub trait Transport: Send + Sync + 'static {
    fn post(
        &self,
        call: &Call,
        cmdlet: &str,
        body: &Value,
        next_link: Option<&str>,
    ) -> impl Future<Output = Result<Page, Failure>> + Send;
}

/// DateTime parameters: UTC, `yyyy-MM-ddTHH:mm:ss.fffffffZ`.
pub(crate) fn format_datetime(t: Timestamp) -> String {
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let ticks = t.subsec_nanosecond().max(0) / 100;
    format!("{base}.{ticks:07}Z")
}

/// The byte count inside a ByteQuantifiedSize (`"1.234 GB (1,325,000,000 bytes)"`); plain numbers too.
pub fn parse_byte_quantified(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?;
    let inner = match (s.rfind('('), s.rfind(" bytes)")) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    inner.replace(',', "").trim().parse().ok()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// A move request as the service writes it. Read straight from the answer's text; a field that is
/// missing or not a string reads as empty, as the service leaves out what does not apply.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct WireRequest {
    #[serde(deserialize_with = "lenient_text")]
    identity: String,
    #[serde(deserialize_with = "lenient_text")]
    display_name: String,
    #[serde(deserialize_with = "lenient_text")]
    exchange_guid: String,
    #[serde(deserialize_with = "lenient_text")]
    status: String,
    #[serde(deserialize_with = "lenient_text")]
    status_detail: String,
    #[serde(deserialize_with = "lenient_text")]
    batch_name: String,
    #[serde(deserialize_with = "lenient_text")]
    complete_after: String,
}

impl From<WireRequest> for MoveRequest {
    fn from(w: WireRequest) -> MoveRequest {
        MoveRequest {
            status: MoveStatus::parse(&w.status),
            complete_after: parse_time(&w.complete_after),
            identity: w.identity,
            display_name: w.display_name,
            exchange_guid: w.exchange_guid,
            status_detail: w.status_detail,
            batch_name: w.batch_name,
        }
    }
}

/// A string field; anything else (null, a number, an object) reads as empty.
fn lenient_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_unit<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_any(Text)
        }
        fn visit_bool<E>(self, _: bool) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_i64<E>(self, _: i64) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_u64<E>(self, _: u64) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_f64<E>(self, _: f64) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<String, A::Error> {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            Ok(String::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<String, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(String::new())
        }
    }
    d.deserialize_any(Text)
}

pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok().or_else(|| format!("{s}Z").parse().ok())
}

pub fn parse_request(v: &Value) -> MoveRequest {
    <WireRequest as serde::Deserialize>::deserialize(v)
        .unwrap_or_default()
        .into()
}

pub fn parse_statistics(v: &Value) -> MoveStatistics {
    let opt = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let message = text(v, "Message");
    let failure = opt("FailureType").map(|failure_type| MoveFailure {
        kind: MoveFailure::classify(&failure_type, &message),
        message: message.clone(),
        at: opt("FailureTimestamp").and_then(|t| parse_time(&t)),
        failure_type,
    });
    MoveStatistics {
        request: parse_request(v),
        percent_complete: v
            .get("PercentComplete")
            .and_then(Value::as_u64)
            .map(|p| p as u32),
        bytes_transferred: v.get("BytesTransferred").and_then(parse_byte_quantified),
        total_mailbox_size: v.get("TotalMailboxSize").and_then(parse_byte_quantified),
        total_item_count: v.get("TotalMailboxItemCount").and_then(Value::as_u64),
        items_transferred: v.get("ItemsTransferred").and_then(Value::as_u64),
        message,
        failure,
        sync_stage: opt("SyncStage"),
        data_consistency_score: opt("DataConsistencyScore").and_then(|s| Dcs::parse(&s)),
        figures: figures::MoveFigures::parse(v),
    }
}

/// The cmdlet body: `{"CmdletInput":{"CmdletName":..., "Parameters":{...}}}`.
pub(crate) fn cmdlet_body(cmdlet: &str, parameters: Map<String, Value>) -> Value {
    json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}})
}

/// The one [`MoveService`] implementation, over any transport.
pub struct ExchangeClient<T> {
    transport: T,
    clock: Clock,
}

impl<T: Transport> ExchangeClient<T> {
    pub fn new(transport: T, clock: Clock) -> ExchangeClient<T> {
        ExchangeClient { transport, clock }
    }

    /// Runs any cmdlet and gathers every page of its answer.
    pub async fn invoke_raw(
        &self,
        call: Call,
        cmdlet: &str,
        parameters: Map<String, Value>,
    ) -> Res<Vec<Value>> {
        self.invoke(&call, cmdlet, parameters).await
    }

    /// One page of a cmdlet's answer (`next`: the `@odata.nextLink` of the page before).
    async fn invoke_page(
        &self,
        call: &Call,
        cmdlet: &str,
        body: &Value,
        next: Option<&str>,
    ) -> Res<Page> {
        match self.transport.post(call, cmdlet, body, next).await {
            Ok(page) => {
                for w in &page.warnings {
                    tracing::debug!(cmdlet, warning = %w, "service warning");
                }
                Ok(page)
            }
            Err(f) => {
                let recent = call
                    .created_at
                    .is_some_and(|c| self.clock.now().duration_since(c) < REPLICATION_GRACE);
                Err(if f.status == 0 {
                    ServiceError::Transient {
                        status: 0,
                        message: f
                            .body
                            .as_ref()
                            .map(|b| error::reason(b).1)
                            .unwrap_or_default(),
                    }
                } else {
                    error::classify(
                        f.status,
                        f.body.as_ref(),
                        f.retry_after.as_deref(),
                        cmdlet,
                        recent,
                    )
                })
            }
        }
    }

    /// Runs a cmdlet and gathers every page, read as `R`s.
    async fn invoke<R: serde::de::DeserializeOwned>(
        &self,
        call: &Call,
        cmdlet: &str,
        parameters: Map<String, Value>,
    ) -> Res<Vec<R>> {
        let body = cmdlet_body(cmdlet, parameters);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        let mut pager = Pager::default();
        loop {
            let page = self
                .invoke_page(call, cmdlet, &body, next.as_deref())
                .await?;
            out.extend(page.read::<R>(cmdlet)?);
            match page.next_link {
                Some(link) => next = Some(pager.follow(cmdlet, link)?),
                None => return Ok(out),
            }
        }
    }

    async fn identity_cmdlet(
        &self,
        call: Call,
        cmdlet: &str,
        identity: &str,
        extra: &[(&str, Value)],
    ) -> Res<()> {
        let mut p = Map::new();
        p.insert("Identity".into(), json!(identity));
        for (k, v) in extra {
            p.insert((*k).into(), v.clone());
        }
        self.invoke::<serde::de::IgnoredAny>(&call, cmdlet, p)
            .await
            .map(|_| ())
    }
}

fn first(values: Vec<Value>, what: &str) -> Res<Value> {
    values
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::Permanent {
            status: 200,
            message: format!("{what} answered with no object"),
        })
}

impl<T: Transport> MoveService for ExchangeClient<T> {
    async fn create(&self, call: Call, r: &NewMove) -> Res<MoveRequest> {
        let mut p = Map::new();
        p.insert("Identity".into(), json!(r.identity));
        p.insert("Remote".into(), json!(true));
        p.insert("RemoteHostName".into(), json!(r.remote_host_name));
        p.insert(
            "TargetDeliveryDomain".into(),
            json!(r.target_delivery_domain),
        );
        p.insert("BatchName".into(), json!(r.batch_name));
        p.insert(
            "CompleteAfter".into(),
            json!(format_datetime(r.complete_after)),
        );
        if let Some(e) = &r.source_endpoint {
            p.insert("SourceEndpoint".into(), json!(e));
        }
        let v = self.invoke(&call, "New-MoveRequest", p).await?;
        Ok(parse_request(&first(v, "New-MoveRequest")?))
    }

    async fn list_batch(
        &self,
        call: Call,
        batch: &str,
        status: Option<&str>,
    ) -> Res<Vec<MoveRequest>> {
        let mut p = Map::new();
        p.insert("BatchName".into(), json!(batch));
        if let Some(s) = status {
            p.insert("Status".into(), json!(s));
        }
        p.insert("ResultSize".into(), json!("Unlimited"));
        let requests: Vec<WireRequest> = self.invoke(&call, "Get-MoveRequest", p).await?;
        Ok(requests.into_iter().map(MoveRequest::from).collect())
    }

    async fn list_page(
        &self,
        call: Call,
        batch: &str,
        status: Option<&str>,
        next: Option<&str>,
    ) -> Res<(Vec<MoveRequest>, Option<String>)> {
        let mut p = Map::new();
        p.insert("BatchName".into(), json!(batch));
        p.insert("ResultSize".into(), json!("Unlimited"));
        if let Some(s) = status {
            p.insert("Status".into(), json!(s));
        }
        let body = cmdlet_body("Get-MoveRequest", p);
        let page = self
            .invoke_page(&call, "Get-MoveRequest", &body, next)
            .await?;
        Ok((
            page.read::<WireRequest>("Get-MoveRequest")?
                .into_iter()
                .map(MoveRequest::from)
                .collect(),
            page.next_link,
        ))
    }

    async fn get(&self, call: Call, identity: &str) -> Res<MoveRequest> {
        let mut p = Map::new();
        p.insert("Identity".into(), json!(identity));
        let v = self.invoke(&call, "Get-MoveRequest", p).await?;
        Ok(parse_request(&first(v, "Get-MoveRequest")?))
    }

    async fn statistics(&self, call: Call, identity: &str) -> Res<MoveStatistics> {
        let mut p = Map::new();
        p.insert("Identity".into(), json!(identity));
        let v = self.invoke(&call, "Get-MoveRequestStatistics", p).await?;
        Ok(parse_statistics(&first(v, "Get-MoveRequestStatistics")?))
    }

    async fn approve_skipped_items(
        &self,
        call: Call,
        identity: &str,
        at: Timestamp,
        batch: &str,
        complete_after: Timestamp,
    ) -> Res<()> {
        self.identity_cmdlet(
            call,
            "Set-MoveRequest",
            identity,
            &[
                ("SkippedItemApprovalTime", json!(format_datetime(at))),
                ("BatchName", json!(batch)),
                ("CompleteAfter", json!(format_datetime(complete_after))),
            ],
        )
        .await
    }

    async fn reschedule(
        &self,
        call: Call,
        identity: &str,
        batch: &str,
        complete_after: Timestamp,
    ) -> Res<()> {
        self.identity_cmdlet(
            call,
            "Set-MoveRequest",
            identity,
            &[
                ("BatchName", json!(batch)),
                ("CompleteAfter", json!(format_datetime(complete_after))),
            ],
        )
        .await
    }

    async fn resume(&self, call: Call, identity: &str) -> Res<()> {
        self.identity_cmdlet(call, "Resume-MoveRequest", identity, &[])
            .await
    }

    async fn suspend(&self, call: Call, identity: &str) -> Res<()> {
        self.identity_cmdlet(call, "Suspend-MoveRequest", identity, &[])
            .await
    }

    async fn remove(&self, call: Call, identity: &str) -> Res<()> {
        self.identity_cmdlet(
            call,
            "Remove-MoveRequest",
            identity,
            &[("Confirm", json!(false))],
        )
        .await
    }

    async fn endpoint_limits(&self, call: Call, endpoint: Option<&str>) -> Res<EndpointLimits> {
        let mut p = Map::new();
        if let Some(e) = endpoint {
            p.insert("Identity".into(), json!(e));
        }
        let v = first(
            self.invoke(&call, "Get-MigrationEndpoint", p).await?,
            "Get-MigrationEndpoint",
        )?;
        let n = |k: &str| {
            v.get(k).and_then(|x| {
                x.as_u64()
                    .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
            })
        };
        Ok(EndpointLimits {
            max_concurrent_migrations: n("MaxConcurrentMigrations").unwrap_or(100) as u32,
            max_concurrent_incremental_syncs: n("MaxConcurrentIncrementalSyncs").unwrap_or(20)
                as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_have_seven_fraction_digits() {
        let t: Timestamp = "2027-01-04T20:00:00Z".parse().unwrap();
        assert_eq!(format_datetime(t), "2027-01-04T20:00:00.0000000Z");
        let t: Timestamp = "2027-01-04T20:00:00.1234567Z".parse().unwrap();
        assert_eq!(format_datetime(t), "2027-01-04T20:00:00.1234567Z");
    }

    #[test]
    fn statistics_carry_typed_failures_and_grades() {
        let s = parse_statistics(
            &json!({"Status": "Failed", "FailureType": "MailboxReplicationPermanentException",
            "Message": "Error: the source database is not available", "FailureTimestamp": "2027-01-04T20:00:00Z",
            "DataConsistencyScore": "Investigate"}),
        );
        let f = s.failure.unwrap();
        assert_eq!(f.kind, FailureKind::Permanent);
        assert_eq!(f.at, Some("2027-01-04T20:00:00Z".parse().unwrap()));
        assert_eq!(s.data_consistency_score, Some(Dcs::Investigate));
        let s = parse_statistics(
            &json!({"Status": "Failed", "FailureType": "CommunicationErrorTransientException",
            "Message": "The call timed out."}),
        );
        assert_eq!(s.failure.unwrap().kind, FailureKind::Transient);
        let s = parse_statistics(
            &json!({"Status": "InProgress", "FailureType": null, "DataConsistencyScore": "Excellent"}),
        );
        assert!(s.failure.is_none());
        assert_eq!(
            s.data_consistency_score, None,
            "an unknown grade is not guessed"
        );
    }

    #[test]
    fn byte_quantified_sizes() {
        assert_eq!(
            parse_byte_quantified(&json!("1.234 GB (1,325,000,000 bytes)")),
            Some(1_325_000_000)
        );
        assert_eq!(parse_byte_quantified(&json!("0 B (0 bytes)")), Some(0));
        assert_eq!(parse_byte_quantified(&json!(42)), Some(42));
        assert_eq!(parse_byte_quantified(&json!("unlimited")), None);
    }
}
