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

/// Guards a listing's paging: a link that comes back, more pages than any listing can have, or
/// more records in all, ends it with an error instead of a loop or a process out of memory.
#[derive(Debug, Default)]
pub struct Pager {
    seen: std::collections::HashSet<String>,
    records: usize,
}

/// The most pages one listing may take: ten million requests at a thousand a page.
pub const MAX_PAGES: usize = 10_000;
/// The most records one listing may gather (users or move requests; NHSmail has 2.1 million),
/// however many a page holds.
pub const MAX_RECORDS: usize = 5_000_000;

/// Gathers a listing page by page into records: `page` fetches one page (the first with `None`,
/// then each `nextLink`) and reads it into records at once, so no more than one page is ever
/// held as text; the [`Pager`] bounds the pages and the records in all.
pub async fn gather<R, F, Fut>(what: &str, mut page: F) -> Res<Vec<R>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Res<(Vec<R>, Option<String>)>>,
{
    let mut out = Vec::new();
    let mut pager = Pager::default();
    let mut next = None;
    loop {
        let (records, link) = page(next.take()).await?;
        pager.took(what, records.len())?;
        out.extend(records);
        match link {
            Some(link) => next = Some(pager.follow(what, link)?),
            None => return Ok(out),
        }
    }
}

impl Pager {
    /// Counts a page's records against the listing's total.
    pub fn took(&mut self, what: &str, records: usize) -> Res<()> {
        self.records = self.records.saturating_add(records);
        if self.records > MAX_RECORDS {
            return Err(ServiceError::Transient {
                status: 502,
                message: format!("{what}: more than {MAX_RECORDS} records; the listing was ended"),
            });
        }
        Ok(())
    }

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

fn text<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A move request as the service writes it. Read straight from the answer's text; a field that is
/// missing or not a string reads as empty, as the service leaves out what does not apply.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct WireRequest {
    #[serde(deserialize_with = "lenient_address")]
    identity: String,
    #[serde(deserialize_with = "lenient_name")]
    display_name: String,
    #[serde(deserialize_with = "lenient_name")]
    exchange_guid: String,
    #[serde(deserialize_with = "lenient_name")]
    status: String,
    #[serde(deserialize_with = "lenient_name")]
    status_detail: String,
    #[serde(deserialize_with = "lenient_name")]
    batch_name: String,
    #[serde(deserialize_with = "lenient_name")]
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

/// A name the service gives (display name, status, batch): read leniently, cleaned here once.
fn lenient_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient_text(d).map(|s| crate::text::clean_owned(s, crate::text::NAME))
}

/// An identity (an address): read leniently, cleaned here once.
fn lenient_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient_text(d).map(|s| crate::text::clean_owned(s, crate::text::ADDRESS))
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
            .map(crate::text::name)
    };
    let message = crate::text::message(text(v, "Message"));
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

    /// One page of a cmdlet's answer read as `R`s, and the link to the next page if any. A caller
    /// that paces its own requests (preflight) pages with this and [`gather`].
    pub async fn page<R: serde::de::DeserializeOwned>(
        &self,
        call: &Call,
        cmdlet: &str,
        body: &Value,
        next: Option<&str>,
    ) -> Res<(Vec<R>, Option<String>)> {
        let page = self.invoke_page(call, cmdlet, body, next).await?;
        Ok((page.read::<R>(cmdlet)?, page.next_link))
    }

    /// Runs a cmdlet and gathers every page, read as `R`s.
    async fn invoke<R: serde::de::DeserializeOwned>(
        &self,
        call: &Call,
        cmdlet: &str,
        parameters: Map<String, Value>,
    ) -> Res<Vec<R>> {
        let body = &cmdlet_body(cmdlet, parameters);
        gather(cmdlet, |next| async move {
            self.page::<R>(call, cmdlet, body, next.as_deref()).await
        })
        .await
    }

    /// One page of every move request in the tenant, whatever its batch (preflight's look for
    /// requests in the way of a wave).
    pub async fn tenant_requests_page(
        &self,
        call: &Call,
        next: Option<String>,
    ) -> Res<(Vec<MoveRequest>, Option<String>)> {
        let mut p = Map::new();
        p.insert("ResultSize".into(), json!("Unlimited"));
        let body = cmdlet_body("Get-MoveRequest", p);
        let (requests, next) = self
            .page::<WireRequest>(call, "Get-MoveRequest", &body, next.as_deref())
            .await?;
        Ok((requests.into_iter().map(MoveRequest::from).collect(), next))
    }

    /// Runs a cmdlet that answers one object (a create, `-Identity`): the first of its first page.
    /// No further page is asked for, so an answer cannot grow past one page.
    async fn invoke_one(
        &self,
        call: &Call,
        cmdlet: &str,
        parameters: Map<String, Value>,
    ) -> Res<Value> {
        let body = cmdlet_body(cmdlet, parameters);
        let (values, _) = self.page::<Value>(call, cmdlet, &body, None).await?;
        values
            .into_iter()
            .next()
            .ok_or_else(|| ServiceError::Permanent {
                status: 200,
                message: format!("{cmdlet} answered with no object"),
            })
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
        Ok(parse_request(
            &self.invoke_one(&call, "New-MoveRequest", p).await?,
        ))
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
        Ok(parse_request(
            &self.invoke_one(&call, "Get-MoveRequest", p).await?,
        ))
    }

    async fn statistics(&self, call: Call, identity: &str) -> Res<MoveStatistics> {
        let mut p = Map::new();
        p.insert("Identity".into(), json!(identity));
        Ok(parse_statistics(
            &self
                .invoke_one(&call, "Get-MoveRequestStatistics", p)
                .await?,
        ))
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
        let v = self.invoke_one(&call, "Get-MigrationEndpoint", p).await?;
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

    #[tokio::test]
    async fn a_listing_ends_past_its_total_however_its_pages_are_cut() {
        // Pages of a million records (zero-sized: the cap is what is tested, not memory), each
        // with a new link: the sixth passes the total and ends the listing.
        let mut pages = 0;
        let e = gather::<(), _, _>("Get-MoveRequest", |_| {
            pages += 1;
            let n = pages;
            async move { Ok((vec![(); 1_000_000], Some(format!("https://h/next?{n}")))) }
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("more than 5000000 records"), "{e}");
        assert_eq!(pages, 6);
        let all = gather::<u8, _, _>("users", |next| async move {
            Ok(match next {
                None => (vec![1, 2], Some("https://h/2".to_string())),
                Some(_) => (vec![3], None),
            })
        })
        .await
        .unwrap();
        assert_eq!(all, [1, 2, 3]);
    }

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
