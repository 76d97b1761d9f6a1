//! Notices to users ([`crate::config::Notices`]): before their window opens (each `before` offset),
//! after their mailbox has moved, a correction when a date they were told no longer holds, and a
//! re-confirmation when a mailbox they were told would move on "a date we will confirm" moves again
//! ([`follow_up`] says which is owed, and when). The notifier runs beside the coordinator in
//! `mailwave run`: every minute, when an operator action was applied, and when a notice falls
//! due, it works out what is due from the state database, and sends it through the pool of
//! senders via Graph `sendMail`.
//!
//! Exactly once: each notice's row is committed as 'sending' before its call and updated after. A
//! call whose outcome is unknown (the run was killed, the call timed out after it left) is marked
//! 'uncertain' and never sent again: a user may miss a notice, and the reports say how many, but
//! nobody gets two. A "before" notice that could not go before its window opened is dropped and
//! counted; when several offsets are due at once (mailwave was down), only the latest goes.

pub mod follow_up;
pub mod pool;
pub mod template;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Notices, Window};
use crate::directory::{Mailer, Message, ServiceError};
use crate::store::notices::{Due, NoticeWave};
use crate::store::records::{Record, Written};
use crate::store::writer::WriterHandle;
use crate::store::{Store, StoreError};
use crate::time::Clock;
use pool::{Pool, Wait};
use template::{PLACEHOLDERS, Templates, Values};

/// How often the notifier looks for what is due when nothing is.
const TICK: SignedDuration = SignedDuration::from_secs(60);
/// Notices read from the database at once.
const BATCH: usize = 2_000;
/// "after" notices go to mailboxes that completed in this long before now (not to a whole
/// estate that moved before notices were switched on).
const AFTER_WITHIN: SignedDuration = SignedDuration::from_hours(7 * 24);
/// A failing notice (the service's fault) is tried this many times.
const ATTEMPTS: i64 = 5;

/// What the notices came to in one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NoticeSummary {
    pub sent: u64,
    pub corrections: u64,
    /// Users told "a date we will confirm" and sent the new date.
    pub reconfirmations: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Left unknown by a crash or a cut-off call (found at the start or made in this run).
    pub uncertain: u64,
    pub throttled: u64,
    /// html reports mailed to `[notify] report_to` (one a closed window).
    pub reports_mailed: u64,
    /// Messages by sender in this run.
    pub by_sender: BTreeMap<String, u64>,
    /// Senders rested for the run, and why.
    pub rested: BTreeMap<String, String>,
}

/// A notice offset as the kind names it: "7d", "36h", "90m".
pub fn offset_label(d: SignedDuration) -> String {
    let m = d.as_secs() / 60;
    if m % 1440 == 0 {
        format!("{}d", m / 1440)
    } else if m % 60 == 0 {
        format!("{}h", m / 60)
    } else {
        format!("{m}m")
    }
}

pub fn before_kind(d: SignedDuration) -> String {
    format!("before:{}", offset_label(d))
}

/// Whether local time `t` is within the quiet hours.
pub fn quiet(q: &Window, tz: &TimeZone, t: Timestamp) -> bool {
    let time = t.to_zoned(tz.clone()).time();
    if q.crosses_midnight() {
        time >= q.start || time < q.end
    } else {
        time >= q.start && time < q.end
    }
}

/// When the quiet hours around `t` end.
fn quiet_end(q: &Window, tz: &TimeZone, t: Timestamp) -> Timestamp {
    let z = t.to_zoned(tz.clone());
    let today = z.date().to_datetime(q.end);
    let end = if z.time() < q.end {
        today
    } else {
        today + SignedDuration::from_hours(24)
    };
    end.to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .unwrap_or(t + SignedDuration::from_hours(1))
}

/// The busiest day of notices a plan needs (local date, notices that day) and the senders it
/// takes to carry it within the limits: `waves` are (window start, mailboxes). Each "before"
/// offset falls on its own day; the "after" notices on the cut-over day.
pub fn busiest_day(
    waves: &[(Timestamp, u64)],
    config: &Notices,
    tz: &TimeZone,
) -> Option<(jiff::civil::Date, u64, u64)> {
    let mut days: BTreeMap<jiff::civil::Date, u64> = BTreeMap::new();
    for &(start, n) in waves {
        for off in &config.before {
            *days
                .entry((start - *off).to_zoned(tz.clone()).date())
                .or_default() += n;
        }
        if config.after {
            *days.entry(start.to_zoned(tz.clone()).date()).or_default() += n;
        }
    }
    let (day, load) = days
        .into_iter()
        .max_by_key(|(d, n)| (*n, std::cmp::Reverse(*d)))?;
    // A sender's day: its recipients' limit, or its minute's limit over the hours it may send.
    let awake_minutes = match &config.quiet_hours {
        Some(q) => {
            let (s, e) = (
                q.start.hour() as i64 * 60 + q.start.minute() as i64,
                q.end.hour() as i64 * 60 + q.end.minute() as i64,
            );
            1440 - (e - s).rem_euclid(1440)
        }
        None => 1440,
    };
    let per_sender = (config.per_day as u64).min(config.per_minute as u64 * awake_minutes as u64);
    Some((day, load, load.div_ceil(per_sender.max(1))))
}

/// A network failure that proves the message never reached the service: no connection, or no
/// token to send it with. Any other (a timeout, a reset) may have come after the service took it.
fn never_left(message: &str) -> bool {
    message.starts_with("could not connect")
        || message.starts_with("cannot reach the token endpoint")
}

/// `{display_name}` for a user the inventory gives no name: "Dear colleague,".
pub const NO_NAME: &str = "colleague";

/// Everything needed to fill a notice's placeholders for one mailbox.
pub fn values(
    config: &Notices,
    tz: &TimeZone,
    due: &Due,
    window: Option<(&str, Timestamp, Timestamp)>,
    old_start: Option<Timestamp>,
) -> Values {
    let date = |t: Timestamp| t.to_zoned(tz.clone()).strftime("%A %-d %B %Y").to_string();
    let mut v: Values = Default::default();
    let set = |v: &mut Values, name: &str, value: String| {
        if let Some(i) = PLACEHOLDERS.iter().position(|p| *p == name) {
            v[i] = value;
        }
    };
    // Never the address's local part ("Dear j.smith7"): a neutral word reads better.
    set(
        &mut v,
        "display_name",
        due.display_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| NO_NAME.to_string()),
    );
    set(&mut v, "address", due.address.clone());
    set(
        &mut v,
        "organisation",
        due.organisation.clone().unwrap_or_default(),
    );
    set(
        &mut v,
        "help_link",
        config.help_link.clone().unwrap_or_default(),
    );
    set(
        &mut v,
        "reply_to",
        config.reply_to.clone().unwrap_or_default(),
    );
    match window {
        Some((wave, start, end)) => {
            set(&mut v, "date", date(start));
            let z = |t: Timestamp| t.to_zoned(tz.clone());
            set(
                &mut v,
                "window",
                format!(
                    "{} and {} {}",
                    z(start).strftime("%H:%M"),
                    z(end).strftime("%H:%M"),
                    z(start).strftime("%Z")
                ),
            );
            set(&mut v, "wave", wave.to_string());
        }
        None => {
            set(&mut v, "date", "a date we will confirm".into());
            set(&mut v, "window", "a time we will confirm".into());
        }
    }
    if let Some(t) = old_start {
        set(&mut v, "old_date", date(t));
    }
    v
}

/// Renders the html report for mail (the command line supplies it: reports sit above the engine).
pub type ReportFn =
    Arc<dyn Fn(&Store, Timestamp) -> Result<String, StoreError> + Send + Sync + 'static>;

pub struct Notifier {
    pub store_path: PathBuf,
    pub config: Notices,
    pub timezone: TimeZone,
    /// The notice templates; None: no notices to users (only the report, if any).
    pub templates: Option<Templates>,
    /// Where the report goes after each window closes, and how it is rendered.
    pub report_to: Vec<String>,
    pub report: Option<ReportFn>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Clock,
    /// How long a stop waits for the calls in flight.
    pub stop_grace: SignedDuration,
    /// The webhook's alerts, when one is set.
    pub alerts: Option<tokio::sync::mpsc::UnboundedSender<super::Alert>>,
    /// Told when the run has applied an operator action: what users are owed may have changed.
    pub actions_applied: Arc<tokio::sync::Notify>,
    /// What it records goes through the run's writer; it reads on a connection of its own.
    pub writer: WriterHandle,
}

/// After an action is applied, the notices look again this much later (the run's writer commits
/// what it is sent within milliseconds).
const AFTER_ACTION: SignedDuration = SignedDuration::from_secs(2);

/// What the notifier remembers between looks at the database, so that each look reads only what
/// may have changed: a 2.1-million-mailbox estate is not scanned every minute.
#[derive(Default)]
struct Cursor {
    /// The last event seen (None: look at everything, as at the start).
    seen_event: Option<i64>,
    /// (wave, kind) whose "before" notices were all handed out, and when.
    covered: HashMap<(i64, String), Timestamp>,
    /// (wave, kind) whose missed notices were recorded as dropped in this run.
    dropped: std::collections::HashSet<(i64, String)>,
    /// Notices to try again, and when.
    retries: Vec<(Timestamp, Due)>,
    /// Users owed a correction later, and when: looked at again then (nothing else may change).
    later: HashMap<i64, Timestamp>,
    /// When the next "before" notice falls due, as of the last look.
    next_before: Option<Timestamp>,
    /// A look asked for by an applied action.
    poke: Option<Timestamp>,
}

impl Cursor {
    /// The soonest moment something may fall due without any event.
    fn next_due(&self) -> Option<Timestamp> {
        self.later
            .values()
            .copied()
            .chain(self.next_before)
            .chain(self.poke)
            .min()
    }
}

/// A wave's "before" notices handed out are looked at again after this long (a reschedule into
/// it, a retry that fell due).
const RECHECK: SignedDuration = SignedDuration::from_mins(15);

/// The placeholders the templates use whose `[notices]` key is not set: users would read an
/// empty link or address there ("Questions:  or reply to ."). Each with its key.
pub fn unset_placeholders(config: &Notices, templates: &Templates) -> Vec<&'static str> {
    let mut out = Vec::new();
    if config.help_link.is_none() && templates.uses("help_link") {
        out.push("{help_link} (notices.help_link)");
    }
    if config.reply_to.is_none() && templates.uses("reply_to") {
        out.push("{reply_to} (notices.reply_to)");
    }
    out
}

/// How many rows a record touched.
fn count(w: Written) -> u64 {
    match w {
        Written::Count(n) => n,
        Written::Done | Written::Id(_) => 0,
    }
}

/// One send's result, back from its task.
struct Sent {
    sender: usize,
    id: i64,
    due: Due,
    result: Result<(), ServiceError>,
}

impl Notifier {
    /// Sends what is due until `stop`, or, once `engine_done` is cancelled, until nothing is due.
    pub async fn run(
        self,
        stop: CancellationToken,
        engine_done: CancellationToken,
    ) -> Result<NoticeSummary, StoreError> {
        let mut store = Store::open_read_only(&self.store_path)?;
        let mut summary = NoticeSummary {
            uncertain: count(self.writer.record(Record::SettleOpenNotices).await?),
            ..NoticeSummary::default()
        };
        let now = self.clock.now();
        let history = store.sender_history(now - SignedDuration::from_hours(24))?;
        let mut pool = Pool::new(
            &self.config.senders,
            self.config.per_minute,
            self.config.per_day,
            &history,
        );
        let mut queue: VecDeque<Due> = VecDeque::new();
        let mut flying: JoinSet<Sent> = JoinSet::new();
        let mut windows: HashMap<i64, (String, Timestamp, Timestamp)> = HashMap::new();
        let mut last_collect: Option<Timestamp> = None;
        let mut cursor = Cursor::default();
        let (mut last_reports, mut final_reports): (Option<Timestamp>, bool) = (None, false);
        loop {
            if stop.is_cancelled() {
                break;
            }
            let now = self.clock.now();
            let hushed = self
                .config
                .quiet_hours
                .as_ref()
                .is_some_and(|q| quiet(q, &self.timezone, now));
            // The reports, for operators, ignore the quiet hours; a finished run mails the last.
            let all_done = engine_done.is_cancelled();
            if last_reports.is_none_or(|t| now >= t + TICK) || (all_done && !final_reports) {
                final_reports = all_done;
                last_reports = Some(now);
                let reports = self
                    .reports_due(&mut store, now, all_done, &mut pool)
                    .await?;
                for (wave_id, i, message) in reports {
                    let sender = pool.address(i).to_string();
                    // A stop is never held up by a call that hangs: the report's row stays
                    // 'sending' and the next run counts it uncertain.
                    let result = tokio::select! {
                        _ = stop.cancelled() => break,
                        r = self.mailer.send(&sender, &message) => r,
                    };
                    self.report_outcome((wave_id, i), result, &mut pool, &mut summary)
                        .await?;
                }
            }
            if queue.is_empty()
                && !hushed
                && last_collect.is_none_or(|t| now >= t + TICK || flying.is_empty())
            {
                windows = store
                    .waves()?
                    .into_iter()
                    .map(|w| (w.id, (w.name.clone(), w.window_start, w.window_end)))
                    .collect();
                if self.templates.is_some() {
                    queue = self
                        .collect(&mut store, now, &mut pool, &mut cursor, &mut summary)
                        .await?;
                }
                last_collect = Some(now);
            }
            if queue.is_empty() && flying.is_empty() && engine_done.is_cancelled() {
                break;
            }
            // Send what the pool allows now.
            let mut wake = now + TICK;
            if let Some(at) = cursor.next_due().filter(|at| *at > now) {
                wake = wake.min(at);
            }
            if cursor.poke.is_some_and(|at| at <= now) {
                cursor.poke = None;
            }
            if hushed {
                if let Some(q) = &self.config.quiet_hours {
                    wake = quiet_end(q, &self.timezone, now);
                }
            } else {
                while let Some(due) = queue.front() {
                    match pool.pick(now) {
                        Ok(i) => {
                            let due = due.clone();
                            queue.pop_front();
                            let Some(message) = self.message(&due, &windows).await? else {
                                continue;
                            };
                            let sender = pool.address(i).to_string();
                            let id = self.sending(&due, &sender, now).await?;
                            let mailer = self.mailer.clone();
                            flying.spawn(async move {
                                let result = mailer.send(&sender, &message).await;
                                Sent {
                                    sender: i,
                                    id,
                                    due,
                                    result,
                                }
                            });
                        }
                        Err(Wait::Until(at)) => {
                            wake = wake.min(at);
                            break;
                        }
                        Err(Wait::Busy) => break,
                        Err(Wait::NoneLeft) => {
                            if flying.is_empty() {
                                tracing::error!(
                                    "every notice sender is rested: no notice can be sent in this run"
                                );
                                return Ok(self.finish(summary, &pool));
                            }
                            break;
                        }
                    }
                }
            }
            let sleep = self
                .clock
                .sleep(wake.duration_since(now).max(SignedDuration::from_millis(1)));
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(done) = flying.join_next(), if !flying.is_empty() => {
                    if let Ok(sent) = done {
                        self.outcome(sent, &mut pool, &mut queue, &mut cursor, &mut summary).await?;
                    }
                }
                _ = engine_done.cancelled(), if !engine_done.is_cancelled() => {}
                _ = self.actions_applied.notified() => {
                    cursor.poke = Some(self.clock.now() + AFTER_ACTION);
                }
                _ = sleep => {}
            }
        }
        // Stopping: the calls on the wire may finish within the grace; the rest stay 'sending'
        // and are settled as uncertain by the next run.
        let grace = self.clock.sleep(self.stop_grace);
        tokio::pin!(grace);
        while !flying.is_empty() {
            tokio::select! {
                Some(done) = flying.join_next() => {
                    if let Ok(sent) = done {
                        self.outcome(sent, &mut pool, &mut queue, &mut cursor, &mut summary).await?;
                    }
                }
                _ = &mut grace => {
                    flying.abort_all();
                    break;
                }
            }
        }
        Ok(self.finish(summary, &pool))
    }

    fn finish(&self, mut summary: NoticeSummary, pool: &Pool) -> NoticeSummary {
        for (sender, n, rested) in pool.report() {
            if n > 0 {
                summary.by_sender.insert(sender.clone(), n);
            }
            if let Some(why) = rested {
                summary.rested.insert(sender, why);
            }
        }
        summary
    }

    /// What is due now, most urgent first: corrections, retries, then "before" notices of the
    /// soonest wave, then "after" notices. Records the notices no longer worth sending as dropped.
    async fn collect(
        &self,
        store: &mut Store,
        now: Timestamp,
        pool: &mut Pool,
        cursor: &mut Cursor,
        summary: &mut NoticeSummary,
    ) -> Result<VecDeque<Due>, StoreError> {
        let limit = pool.room(now, 5).clamp(1, BATCH);
        let last_event = store.last_event_id()?;
        let mut out: VecDeque<Due> = VecDeque::new();
        let before = &self.config.before;
        // Waves that opened in the last two days: what never went is dropped (once a run).
        for w in store.waves_opening(now - SignedDuration::from_hours(48), now)? {
            for off in before {
                let kind = before_kind(*off);
                if cursor.dropped.insert((w.id, kind.clone())) {
                    summary.dropped += self
                        .drop_notices(&w, kind, "the window opened before it could go", now)
                        .await?;
                }
            }
        }
        let mut complete = true;
        out.extend(self.follow_ups(store, now, limit, cursor)?);
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut cursor.retries)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        cursor.retries = later;
        out.extend(ready.into_iter().map(|(_, d)| d));
        if let Some(longest) = before.first() {
            // A notice falling due before the next look is waited for, not found a tick late.
            let soon = now + *longest + TICK;
            let opening: Vec<NoticeWave> =
                store.waves_opening(now + SignedDuration::from_millis(1), soon)?;
            cursor.next_before = opening
                .iter()
                .flat_map(|w| before.iter().map(|off| w.window_start - *off))
                .filter(|at| *at > now)
                .min();
            for w in opening
                .into_iter()
                .filter(|w| w.window_start <= now + *longest)
            {
                // The latest offset now due; earlier ones not sent are superseded by it.
                let Some(current) = before
                    .iter()
                    .rev()
                    .find(|off| w.window_start - **off <= now)
                else {
                    continue;
                };
                for off in before.iter().filter(|o| *o > current) {
                    let kind = before_kind(*off);
                    if cursor.dropped.insert((w.id, kind.clone())) {
                        summary.dropped += self
                            .drop_notices(&w, kind, "superseded by a later notice", now)
                            .await?;
                    }
                }
                let kind = before_kind(*current);
                let key = (w.id, kind.clone());
                if cursor.covered.get(&key).is_some_and(|t| now < *t + RECHECK) {
                    continue;
                }
                let room = limit.saturating_sub(out.len());
                if room == 0 {
                    break;
                }
                let waiting: Vec<i64> = cursor.later.keys().copied().collect();
                let found = store.due_before(&w, (&kind, *current), now, &waiting, room)?;
                if found.looked < room {
                    cursor.covered.insert(key, now);
                }
                let superseded = found
                    .superseded
                    .into_iter()
                    .map(|d| Record::Superseded {
                        due: Box::new(d),
                        at: now,
                    })
                    .collect();
                self.writer.records(superseded).await?;
                out.extend(found.due);
            }
        }
        if self.config.after {
            let room = limit.saturating_sub(out.len());
            let after = store.due_after(now - AFTER_WITHIN, now, cursor.seen_event, room)?;
            complete &= after.len() < room;
            out.extend(after);
        }
        if complete {
            cursor.seen_event = Some(last_event);
        }
        // A notice can be found twice (a retry also owed by its wave): once is enough.
        let mut seen = std::collections::HashSet::new();
        out.retain(|d| seen.insert((d.mailbox_id, d.kind.clone(), d.told_start, d.answers)));
        Ok(out)
    }

    /// The corrections and re-confirmations due now (at most `limit`), among the users whose
    /// mailboxes changed since the last look and those owed one later that is now due; who is
    /// owed one later is remembered until then.
    fn follow_ups(
        &self,
        store: &Store,
        now: Timestamp,
        limit: usize,
        cursor: &mut Cursor,
    ) -> Result<Vec<Due>, StoreError> {
        let ready: Vec<i64> = cursor
            .later
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &ready {
            cursor.later.remove(id);
        }
        let mut out = Vec::new();
        for owed in store.owed_follow_ups(cursor.seen_event, &ready, now)? {
            let id = owed.due.mailbox_id;
            cursor.later.remove(&id);
            if owed.silenced {
                continue;
            }
            let Some(f) = follow_up::owed(&owed, self.config.correction_lead, now) else {
                continue;
            };
            if f.at > now || out.len() >= limit {
                cursor.later.insert(id, f.at);
                continue;
            }
            out.push(Due {
                kind: f.kind.name().to_string(),
                told_start: f.to.map_or(0, |t| t.as_millisecond()),
                ..owed.due
            });
        }
        Ok(out)
    }

    /// The html reports owed (each wave whose window closed in the last day, once), each with a
    /// sender picked and its row committed as 'sending' before the call.
    async fn reports_due(
        &self,
        store: &mut Store,
        now: Timestamp,
        all_done: bool,
        pool: &mut Pool,
    ) -> Result<Vec<(i64, usize, Message)>, StoreError> {
        let mut out = Vec::new();
        let Some(render) = self.report.as_ref().filter(|_| !self.report_to.is_empty()) else {
            return Ok(out);
        };
        for wave in store.reports_owed(now - SignedDuration::from_hours(24), now, all_done)? {
            let Ok(i) = pool.pick(now) else {
                break; // no sender free now: the next look tries again
            };
            let local = |t: Timestamp| {
                t.to_zoned(self.timezone.clone())
                    .strftime("%a %-d %b %H:%M %Z")
                    .to_string()
            };
            let subject = if now >= wave.window_end {
                format!(
                    "mailwave: {} window closed ({})",
                    wave.name,
                    local(wave.window_end)
                )
            } else {
                format!(
                    "mailwave: {} done, the run has finished ({})",
                    wave.name,
                    local(now)
                )
            };
            let message = Message {
                to: self.report_to.clone(),
                subject,
                body: render(store, now)?,
                html: true,
                reply_to: self.config.reply_to.clone(),
            };
            self.writer
                .record(Record::ReportMailed {
                    wave_id: wave.id,
                    status: "sending",
                    sender: pool.address(i).to_string(),
                    reason: None,
                    at: now,
                })
                .await?;
            out.push((wave.id, i, message));
        }
        Ok(out)
    }

    async fn report_outcome(
        &self,
        (wave_id, i): (i64, usize),
        result: Result<(), ServiceError>,
        pool: &mut Pool,
        summary: &mut NoticeSummary,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let sender = pool.address(i).to_string();
        let (status, reason) = match result {
            Ok(()) => {
                pool.sent(i, now);
                summary.reports_mailed += 1;
                ("sent", None)
            }
            Err(ServiceError::Throttled { retry_after }) => {
                pool.throttled(
                    i,
                    now + SignedDuration::try_from(retry_after).unwrap_or(TICK),
                );
                ("retry", Some("throttled".to_string()))
            }
            Err(e) => {
                pool.released(i);
                tracing::warn!(error = %e, "could not mail the report");
                ("failed", Some(e.to_string()))
            }
        };
        self.writer
            .record(Record::ReportMailed {
                wave_id,
                status,
                sender,
                reason,
                at: now,
            })
            .await?;
        Ok(())
    }

    /// Records that a notice is being sent by `sender` (committed before the call goes); its id.
    async fn sending(&self, due: &Due, sender: &str, now: Timestamp) -> Result<i64, StoreError> {
        match self
            .writer
            .record(Record::NoticeSending {
                due: Box::new(due.clone()),
                sender: sender.to_string(),
                at: now,
            })
            .await?
        {
            Written::Id(id) => Ok(id),
            Written::Done | Written::Count(_) => Err(StoreError::WriterGone),
        }
    }

    /// Records what came of a notice.
    async fn settle(
        &self,
        id: i64,
        status: &'static str,
        reason: Option<String>,
        next_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.writer
            .record(Record::NoticeOutcome {
                id,
                status,
                reason,
                next_at,
                at: self.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// Records `kind` of wave `w` as dropped for everyone not told yet; how many.
    async fn drop_notices(
        &self,
        w: &NoticeWave,
        kind: String,
        reason: &'static str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        Ok(count(
            self.writer
                .record(Record::DropNotices {
                    wave: w.clone(),
                    kind,
                    reason,
                    at: now,
                })
                .await?,
        ))
    }

    /// The message for one notice (None: no template for it; recorded as failed).
    async fn message(
        &self,
        due: &Due,
        windows: &HashMap<i64, (String, Timestamp, Timestamp)>,
    ) -> Result<Option<Message>, StoreError> {
        let base = due.kind.split(':').next().unwrap_or(&due.kind);
        let window = windows
            .get(&due.wave_id)
            .filter(|_| !(base == "correction" && due.told_start == 0))
            .map(|(name, s, e)| (name.as_str(), *s, *e));
        let old = (due.old_start > 0).then(|| crate::store::from_millis(due.old_start));
        let values = values(&self.config, &self.timezone, due, window, old);
        match self
            .templates
            .as_ref()
            .and_then(|t| t.render(base, due.organisation.as_deref(), &values))
        {
            Some((subject, body, html)) => Ok(Some(Message {
                to: vec![due.address.clone()],
                subject,
                body,
                html,
                reply_to: self.config.reply_to.clone(),
            })),
            None => {
                let id = self.sending(due, "", self.clock.now()).await?;
                self.settle(id, "failed", Some(format!("no {base} template")), None)
                    .await?;
                Ok(None)
            }
        }
    }

    async fn outcome(
        &self,
        sent: Sent,
        pool: &mut Pool,
        queue: &mut VecDeque<Due>,
        cursor: &mut Cursor,
        summary: &mut NoticeSummary,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let Sent {
            sender,
            id,
            due,
            result,
        } = sent;
        match result {
            Ok(()) => {
                pool.sent(sender, now);
                self.settle(id, "sent", None, None).await?;
                match due.kind.as_str() {
                    "correction" => summary.corrections += 1,
                    "reconfirm" => summary.reconfirmations += 1,
                    _ => summary.sent += 1,
                }
            }
            Err(ServiceError::Throttled { retry_after }) => {
                summary.throttled += 1;
                let wait = SignedDuration::try_from(retry_after).unwrap_or(TICK);
                pool.throttled(sender, now + wait);
                self.settle(id, "retry", Some("throttled".into()), Some(now))
                    .await?;
                queue.push_front(due);
            }
            // The sender itself was refused: another takes the notice.
            Err(e @ (ServiceError::NotFound { .. } | ServiceError::Permanent { .. })) => {
                let reason = e.to_string();
                if pool.refused(sender, &reason) {
                    tracing::error!(sender = pool.address(sender), reason = %reason, "notice sender rested for the run");
                    if let Some(tx) = &self.alerts {
                        let _ = tx.send(super::Alert::SenderRested {
                            sender: pool.address(sender).to_string(),
                            reason: reason.clone(),
                        });
                    }
                }
                self.settle(id, "retry", Some(reason), Some(now)).await?;
                queue.push_back(due);
            }
            Err(ServiceError::BadRequest { message }) => {
                pool.released(sender);
                summary.failed += 1;
                self.settle(id, "failed", Some(message), None).await?;
            }
            // A 504, a call cut off after it left, or a 2xx that is not sendMail's clean 202.
            Err(ServiceError::Transient { status, message })
                if status == 504
                    || (200..300).contains(&status)
                    || (status == 0 && !never_left(&message)) =>
            {
                // It may have gone: never sent again.
                pool.sent(sender, now);
                summary.uncertain += 1;
                self.settle(id, "uncertain", Some(message), None).await?;
            }
            Err(e) => {
                pool.released(sender);
                if due.attempts + 1 >= ATTEMPTS {
                    summary.failed += 1;
                    self.settle(id, "failed", Some(e.to_string()), None).await?;
                } else {
                    let backoff = SignedDuration::from_mins(5 * (due.attempts + 1));
                    self.settle(id, "retry", Some(e.to_string()), Some(now + backoff))
                        .await?;
                    let mut due = due;
                    due.attempts += 1;
                    cursor.retries.push((now + backoff, due));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weekend_of_83000_a_day_needs_17_senders() {
        let tz = TimeZone::get("Europe/London").unwrap();
        let at = |d: i8, n: u64| {
            (
                jiff::civil::date(2027, 1, d)
                    .at(20, 0, 0, 0)
                    .to_zoned(tz.clone())
                    .unwrap()
                    .timestamp(),
                n,
            )
        };
        // Thursday and Friday 22,000, Saturday and Sunday 83,000.
        let waves = [at(7, 22_000), at(8, 22_000), at(9, 83_000), at(10, 83_000)];
        let config = Notices {
            enabled: true,
            quiet_hours: Some(Window::parse("21:00-07:00").unwrap()),
            ..Notices::default()
        };
        let (day, load, needed) = busiest_day(&waves, &config, &tz).unwrap();
        // Saturday: its own 83,000 "after" and Sunday's 83,000 "1d".
        assert_eq!(day, jiff::civil::date(2027, 1, 9));
        assert_eq!(load, 166_000);
        assert_eq!(needed, 17);
        // Quiet from 18:00 to 09:00 leaves 9 hours: 30 a minute is 16,200, the day's 10,000 binds.
        let short = Notices {
            quiet_hours: Some(Window::parse("18:00-09:00").unwrap()),
            per_day: 20_000,
            ..config.clone()
        };
        assert_eq!(busiest_day(&waves, &short, &tz).unwrap().2, 11);
        assert_eq!(offset_label(SignedDuration::from_hours(36)), "36h");
        assert_eq!(before_kind(SignedDuration::from_hours(168)), "before:7d");
    }

    #[test]
    fn only_failures_that_prove_nothing_went_are_retried() {
        assert!(never_left(
            "could not connect: Connection refused (os error 111)"
        ));
        assert!(never_left(
            "cannot reach the token endpoint https://login.example/t: timed out"
        ));
        assert!(!never_left("timed out"));
        assert!(!never_left("the answer broke off: connection reset"));
    }

    #[test]
    fn quiet_hours_across_midnight() {
        let tz = TimeZone::get("Europe/London").unwrap();
        let q = Window::parse("21:00-07:00").unwrap();
        let t = |h: i8, m: i8| {
            jiff::civil::date(2027, 7, 1)
                .at(h, m, 0, 0)
                .to_zoned(tz.clone())
                .unwrap()
                .timestamp()
        };
        assert!(quiet(&q, &tz, t(21, 0)));
        assert!(quiet(&q, &tz, t(3, 0)));
        assert!(!quiet(&q, &tz, t(7, 0)));
        assert!(!quiet(&q, &tz, t(20, 59)));
        assert_eq!(
            quiet_end(&q, &tz, t(22, 30)),
            t(7, 0) + SignedDuration::from_hours(24)
        );
        assert_eq!(quiet_end(&q, &tz, t(3, 0)), t(7, 0));
    }
}
