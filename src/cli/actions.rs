//! Operator actions from the command line: `mailbox hold|release|retry|skip|reschedule|approve` and
//! `wave hold|release|reschedule`. Each mailbox's action is checked against where it stands before
//! anything is recorded (one refusal refuses the lot, exit 2), then recorded in the store with who
//! and why. A running mailwave applies it within `run.action_poll` (at once, told by a signal
//! file); with no run going, this command applies it itself, under the run lock. An action that
//! may let a mailbox complete shows the window the cut-over rule gives it (refused when none is
//! left), and an action on part of a delegation group is refused unless `--with-group` or
//! `--split` says what to do with the rest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{BadInput, Cli, exit};
use crate::config::Config;
use crate::engine::RunOptions;
use crate::engine::policy::{self, ActionCall, ActionStep};
use crate::engine::session::{self, Session};
use crate::exchange::{
    Call, EndpointLimits, MoveRequest, MoveService, MoveStatistics, NewMove, ServiceError,
};
use crate::store::actions::{ActionKind, ActionRequest, MailboxFacts, WaveInfo};
use crate::store::lock::RunLock;
use crate::store::{FailureClass, State, Store, StoreError};
use crate::text::sheet::{Problem, Sheet};

/// What a mailbox action command takes: the mailboxes, and the options of every action.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Mailboxes' addresses (case-insensitive).
    #[arg(value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    /// A CSV with an EmailAddress column (Microsoft's batch format), for many mailboxes.
    #[arg(long, value_name = "CSV")]
    pub from_file: Option<PathBuf>,
    /// Act on the rest of their delegation groups too (mailboxes that delegate move together).
    #[arg(long, conflicts_with = "split")]
    pub with_group: bool,
    /// Act on these mailboxes alone, knowingly splitting them from their delegation groups
    /// (recorded as a split in the audit).
    #[arg(long)]
    pub split: bool,
    #[command(flatten)]
    pub options: Options,
}

/// The options of every action command, on mailboxes or on waves.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Why (kept in the audit and shown with the mailbox).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who (default: the login name: $USER, $LOGNAME, else the system's name for this account).
    #[arg(long)]
    pub by: Option<String>,
    /// Tell users nothing of this change (recorded in the audit); their "before" notices go as usual.
    #[arg(long)]
    pub no_notice: bool,
    /// Say what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for a running mailwave to apply it.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
}

/// One mailbox's action, as the command reports it.
#[derive(Debug, Clone, Serialize)]
struct Line {
    address: String,
    action: ActionKind,
    /// Where it stood when asked.
    state: String,
    wave: String,
    /// What applying it does (dry run), or what came of it.
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
}

/// Who acts: `--by`, else the login name. Cron and root shells often have no `$USER`, so
/// `$LOGNAME` and then the system's own name for the account follow.
fn who(by: &Option<String>) -> String {
    let named = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    named(by.clone())
        .or_else(|| named(std::env::var("USER").ok()))
        .or_else(|| named(std::env::var("LOGNAME").ok()))
        .unwrap_or_else(account_name)
}

/// The system's name for the account this process runs as (`/etc/passwd`, found by the owner of
/// `/proc/self`: no unsafe call to `getpwuid` needed), else its uid, else the host it runs on.
fn account_name() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let name = passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id: u32 = fields.nth(1)?.parse().ok()?;
                (id == uid && !name.is_empty()).then(|| name.to_string())
            });
            return name.unwrap_or_else(|| format!("uid {uid}"));
        }
    }
    format!("an operator on {}", crate::store::lock::host_name())
}

/// Addresses from the command line and `--from-file`, each once.
pub fn addresses(common: &Common) -> anyhow::Result<Vec<String>> {
    let mut out = common.addresses.clone();
    if let Some(path) = &common.from_file {
        out.extend(read_address_file(path)?);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(a.trim().to_ascii_lowercase()));
    if out.is_empty() {
        return Err(BadInput("name at least one mailbox (or --from-file)".into()).into());
    }
    Ok(out)
}

/// The address column of a CSV: Microsoft's batch format (`EmailAddress`; other columns are
/// ignored) as it is, or a `mailwave report --format csv` filtered in a spreadsheet.
fn read_address_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let bad = |p: Problem| BadInput(p.at(path));
    let mut sheet = Sheet::open(path).map_err(bad)?;
    let col = sheet
        .column(&crate::inventory::ADDRESS_COLUMNS)
        .ok_or_else(|| {
            BadInput(format!(
                "{}, line 1: no EmailAddress column",
                path.display()
            ))
        })?;
    let mut out = Vec::new();
    while let Some(row) = sheet.next_row() {
        let address = row.map_err(bad)?.get(col);
        if !address.is_empty() {
            out.push(address.into_owned());
        }
    }
    Ok(out)
}

fn class_of(f: &MailboxFacts) -> Option<FailureClass> {
    f.failure_class.as_deref().and_then(FailureClass::from_name)
}

/// Whether `kind` would be applied to `f` (not refused as it stands).
fn applies(kind: ActionKind, f: &MailboxFacts, force: bool) -> bool {
    !matches!(
        policy::action_step(kind, f.state, class_of(f), f.has_request, false, force),
        ActionStep::Refuse(_)
    )
}

/// What an action does with the delegation groups of the mailboxes it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Groups {
    /// Refuse to act on part of a group.
    Whole,
    /// Act on the rest of each group too.
    WithGroup,
    /// Act on the named mailboxes alone, recorded as a split.
    Split,
}

impl Groups {
    pub fn of(common: &Common) -> Groups {
        match (common.with_group, common.split) {
            (true, _) => Groups::WithGroup,
            (_, true) => Groups::Split,
            _ => Groups::Whole,
        }
    }
}

/// Keeps delegation groups whole: a hold, release, retry, skip or reschedule naming part of a
/// group is refused (naming the members left out), unless `--with-group` (they are added) or
/// `--split` (the named ones go alone, each recorded with the members it leaves). Members the
/// action would not apply to (already moved, already held, ...) are not left out. Returns the
/// mailboxes to act on and, for a split, what each leaves behind.
pub fn keep_groups_whole(
    state: &Path,
    kind: ActionKind,
    named: Vec<MailboxFacts>,
    groups: Groups,
    force: bool,
    json: bool,
) -> anyhow::Result<(Vec<MailboxFacts>, HashMap<i64, String>)> {
    if kind == ActionKind::Approve {
        // Approving lets a mailbox cut over in its own window, which its group shares.
        return Ok((named, HashMap::new()));
    }
    let ids: HashSet<i64> = named.iter().map(|f| f.id).collect();
    let group_ids: Vec<i64> = named.iter().map(|f| f.group_id).collect();
    let mut left: BTreeMap<i64, Vec<MailboxFacts>> = BTreeMap::new();
    for m in Store::open_read_only(state)?.group_facts(&group_ids)? {
        if !ids.contains(&m.id) && applies(kind, &m, force) {
            left.entry(m.group_id).or_default().push(m);
        }
    }
    let names = |g: i64| {
        let v: Vec<String> = left[&g].iter().map(|m| m.address.clone()).collect();
        crate::format::few(&v, 5)
    };
    match groups {
        Groups::Whole => {
            let refused: Vec<Line> = named
                .iter()
                .filter(|f| left.contains_key(&f.group_id))
                .map(|f| Line {
                    address: f.address.clone(),
                    action: kind,
                    state: f.state.to_string(),
                    wave: f.wave.clone(),
                    outcome: format!(
                        "refused: its delegation group also has {} (add --with-group to act on them too, or --split to act on it alone)",
                        names(f.group_id)
                    ),
                    id: None,
                })
                .collect();
            if refused.is_empty() {
                return Ok((named, HashMap::new()));
            }
            print(&refused, json);
            Err(BadInput(format!(
                "{} of {} mailbox(es) would leave part of a delegation group behind; nothing was recorded",
                refused.len(),
                named.len()
            ))
            .into())
        }
        Groups::WithGroup => {
            let mut all = named;
            all.extend(left.into_values().flatten());
            Ok((all, HashMap::new()))
        }
        Groups::Split => {
            let split = named
                .iter()
                .filter(|f| left.contains_key(&f.group_id))
                .map(|f| (f.id, names(f.group_id)))
                .collect();
            Ok((named, split))
        }
    }
}

/// The waves as the cut-over rule sees them, to say where an action that may let a mailbox
/// complete puts its cut-over (the run decides again when it applies it).
struct Windows {
    waves: Vec<WaveInfo>,
    facts: Vec<policy::WindowFacts>,
    now: jiff::Timestamp,
}

impl Windows {
    fn load(cli: &Cli) -> anyhow::Result<Windows> {
        let config = if cli.config.exists() {
            Config::load(&cli.config)?
        } else {
            Config::default()
        };
        let rows = Store::open_read_only(&cli.state)?.waves_for_cutover()?;
        let facts = rows
            .iter()
            .map(|(w, unready)| policy::WindowFacts {
                start: w.window_start,
                usable_until: policy::close_time(
                    w.window_end,
                    config.run.cutover_margin,
                    *unready,
                    config.run.requests_per_second,
                ),
                room: w.mailboxes < w.capacity,
            })
            .collect();
        Ok(Windows {
            waves: rows.into_iter().map(|(w, _)| w).collect(),
            facts,
            now: cli.clock().now(),
        })
    }

    /// Where the cut-over of a mailbox sent to `preferred` goes: `None` while that window can be
    /// given, else the later wave the rule picks, or why none is left.
    fn place(&self, preferred: &str) -> Result<Option<&str>, String> {
        let Some(p) = self.waves.iter().position(|w| w.name == preferred) else {
            return Ok(None);
        };
        match policy::cutover_window(p, self.facts.len(), |i| self.facts[i], self.now) {
            Ok(i) if i == p => Ok(None),
            Ok(i) => Ok(Some(self.waves[i].name.as_str())),
            Err(why) => Err(format!(
                "no window is left for it: {preferred}'s window is closing or closed and {}; reschedule it to a wave with --force, or re-plan",
                why.reason()
            )),
        }
    }
}

/// What applying an action does to a mailbox, in words, or why it is refused.
fn plan_one(
    kind: ActionKind,
    f: &MailboxFacts,
    force: bool,
    target: Option<&str>,
    windows: &Windows,
) -> Result<String, String> {
    let step = policy::action_step(kind, f.state, class_of(f), f.has_request, false, force);
    // What may let the mailbox complete gets a window still ahead or open first.
    let may_complete = matches!(
        (kind, step),
        (ActionKind::Release | ActionKind::Reschedule, _)
            | (ActionKind::Retry | ActionKind::Approve, ActionStep::Call(_))
            | (ActionKind::Retry, ActionStep::Store(State::Planned))
    ) && !matches!(step, ActionStep::Refuse(_) | ActionStep::Later);
    let asked = target.unwrap_or(&f.wave);
    let moved = if may_complete {
        windows.place(asked)?
    } else {
        None
    };
    let target = moved.or(target);
    let what = describe(kind, f, step, target)?;
    Ok(match moved {
        Some(to) => {
            format!("{what}; it cuts over in {to}, as {asked}'s window is closing or closed")
        }
        None => what,
    })
}

fn describe(
    kind: ActionKind,
    f: &MailboxFacts,
    step: ActionStep,
    target: Option<&str>,
) -> Result<String, String> {
    match step {
        ActionStep::Refuse(why) => Err(why.to_string()),
        ActionStep::Later => Ok("after its create is settled".into()),
        ActionStep::Store(to) => Ok(match target {
            Some(t) if to == f.state => format!("moves to {t}"),
            Some(t) => format!("{} -> {to}, in {t}", f.state),
            None if to == f.state => "no change".into(),
            None => format!("{} -> {to}", f.state),
        }),
        ActionStep::Call(call) => Ok(match call {
            ActionCall::Hold => format!(
                "{} -> held; Set-MoveRequest -CompleteAfter a year out (it keeps copying)",
                f.state
            ),
            ActionCall::Move if kind == ActionKind::Reschedule && f.state == State::Held => {
                format!(
                    "Set-MoveRequest -BatchName {}; stays held",
                    target.unwrap_or(&f.wave)
                )
            }
            ActionCall::Move => format!(
                "Set-MoveRequest -BatchName -CompleteAfter of {}",
                target.unwrap_or(&f.wave)
            ),
            ActionCall::Remove if kind == ActionKind::Retry => {
                "Remove-MoveRequest, and a new one in its wave".into()
            }
            ActionCall::Remove => format!("Remove-MoveRequest; {} -> skipped", f.state),
            ActionCall::Resume => format!(
                "Set-MoveRequest -CompleteAfter of {}, then Resume-MoveRequest (removed and created again if it must be)",
                target.unwrap_or(&f.wave)
            ),
            ActionCall::Approve => format!(
                "Set-MoveRequest -SkippedItemApprovalTime now, -CompleteAfter of {}",
                target.unwrap_or(&f.wave)
            ),
        }),
    }
}

/// Checks, records and applies (or waits for a run to apply) `kind` on `mailboxes`.
pub fn act(
    cli: &Cli,
    kind: ActionKind,
    mailboxes: Vec<MailboxFacts>,
    common: &Options,
    force: bool,
    target: Option<&WaveInfo>,
    split: &HashMap<i64, String>,
) -> anyhow::Result<i32> {
    let target_name = target.map(|t| t.name.as_str());
    let windows = Windows::load(cli)?;
    let mut lines = Vec::new();
    let mut refused = Vec::new();
    for f in &mailboxes {
        let line = |outcome: String| Line {
            address: f.address.clone(),
            action: kind,
            state: f.state.to_string(),
            wave: f.wave.clone(),
            outcome,
            id: None,
        };
        match plan_one(kind, f, force, target_name, &windows) {
            Ok(what) => lines.push(line(match split.get(&f.id) {
                Some(left) => format!("{what}; split from its group: {left}"),
                None => what,
            })),
            Err(why) => refused.push(line(format!("refused: {why}"))),
        }
    }
    if !refused.is_empty() {
        print(&refused, common.json);
        return Err(BadInput(format!(
            "{} of {} mailbox(es) cannot be {}; nothing was recorded",
            refused.len(),
            mailboxes.len(),
            past(kind)
        ))
        .into());
    }
    let told = super::notices::what_users_hear(cli, kind, &mailboxes, target, common.no_notice)?;
    let tell = |told: &[String]| {
        for line in told {
            // JSON on standard output stays JSON.
            if common.json {
                errln!("{line}");
            } else {
                outln!("{line}");
            }
        }
    };
    if common.dry_run {
        print(&lines, common.json);
        tell(&told);
        return Ok(exit::OK);
    }
    let by = who(&common.by);
    let requests: Vec<ActionRequest> = mailboxes
        .iter()
        .map(|f| ActionRequest {
            mailbox_id: f.id,
            kind,
            by: by.clone(),
            reason: common.reason.clone(),
            target_wave: target.map(|t| t.id),
            force,
            split: split.get(&f.id).cloned(),
            silent: common.no_notice,
        })
        .collect();
    let now = cli.clock().now();
    // Actions go through the store without the run lock: a running mailwave applies them.
    let ids = Store::open(&cli.state)?.record_actions(&requests, now)?;
    crate::store::actions::signal(&cli.state);
    match RunLock::acquire(&cli.state, &format!("mailwave {} (actions)", kind.name())) {
        Ok(lock) => {
            let code = apply_here(cli, Duration::from_secs(common.wait))?;
            drop(lock);
            if code != exit::OK {
                return Ok(code);
            }
        }
        Err(StoreError::Locked(_)) => {
            wait_for_run(&cli.state, &ids, Duration::from_secs(common.wait))?;
        }
        Err(e) => return Err(e.into()),
    }
    let code = report(cli, kind, &ids, lines, common.json)?;
    // Users hear of what was done or is still to be done, never of what was refused.
    let outcomes = Store::open_read_only(&cli.state)?.actions_by_id(&ids)?;
    let refused: std::collections::HashSet<i64> = outcomes
        .iter()
        .filter(|r| {
            r.outcome
                .as_deref()
                .is_some_and(|o| o.starts_with("refused"))
        })
        .map(|r| r.id)
        .collect();
    if refused.is_empty() {
        tell(&told);
    } else {
        let standing: Vec<MailboxFacts> = mailboxes
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !refused.contains(id))
            .map(|(f, _)| f.clone())
            .collect();
        if !standing.is_empty() {
            let told =
                super::notices::what_users_hear(cli, kind, &standing, target, common.no_notice)?;
            tell(&told);
        }
    }
    Ok(code)
}

fn past(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Hold => "held",
        ActionKind::Release => "released",
        ActionKind::Retry => "retried",
        ActionKind::Skip => "skipped",
        ActionKind::Reschedule => "rescheduled",
        ActionKind::Approve => "approved",
    }
}

/// Waits for a running mailwave to apply the actions, at most `limit`.
fn wait_for_run(state: &Path, ids: &[i64], limit: Duration) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    loop {
        let rows = Store::open_read_only(state)?.actions_by_id(ids)?;
        if rows.iter().all(|r| r.applied_at.is_some()) || start.elapsed() >= limit {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How each action went, from the audit; exit 2 if the run refused any.
fn report(
    cli: &Cli,
    kind: ActionKind,
    ids: &[i64],
    mut lines: Vec<Line>,
    json: bool,
) -> anyhow::Result<i32> {
    let rows = Store::open_read_only(&cli.state)?.actions_by_id(ids)?;
    let mut refused = 0;
    for (line, row) in lines.iter_mut().zip(&rows) {
        line.id = Some(row.id);
        line.outcome = match (&row.applied_at, &row.outcome) {
            (Some(_), Some(o)) => {
                if o.starts_with("refused") {
                    refused += 1;
                }
                o.clone()
            }
            // Pending, and the run has said why (its request is still replicating).
            (None, Some(o)) => o.clone(),
            _ => "pending: the run applies it within run.action_poll".into(),
        };
        if let Some(left) = &row.split {
            line.outcome = format!("{}; split from its group: {left}", line.outcome);
        }
    }
    print(&lines, json);
    if refused > 0 {
        errln!(
            "mailwave: {refused} of {} could not be {}, as the run found them",
            lines.len(),
            past(kind)
        );
        return Ok(exit::BAD_INPUT);
    }
    Ok(exit::OK)
}

fn print(lines: &[Line], json: bool) {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(lines).unwrap_or_default()
        );
        return;
    }
    for l in lines {
        outln!(
            "{:<40} {:<10} {:<14} {:<22} {}",
            l.address,
            l.action.name(),
            l.wave,
            l.state,
            l.outcome
        );
    }
}

/// No run is going: apply the recorded actions here, on the service when they need it (with the
/// configured credential; without one they wait for a run). Like a run, it stops on a signal or
/// after `wait`, ending calls on the wire within `run.stop_grace`: what did not get an answer stays
/// pending for the next run.
fn apply_here(cli: &Cli, wait: Duration) -> anyhow::Result<i32> {
    let config = if cli.config.exists() {
        Config::load(&cli.config)?
    } else {
        Config::default()
    };
    let clock = cli.clock();
    let options = RunOptions {
        actions_only: true,
        ..RunOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let credential = crate::auth::Credential::from_config(&config).ok();
    let report = runtime.block_on(async {
        match credential.filter(|_| !config.tenant.id.is_empty()) {
            Some(credential) => {
                let policy = config.run.http();
                let tokens = Arc::new(crate::auth::TokenProvider::new(
                    policy, &config, credential, clock,
                )?);
                let transport = crate::exchange::rest::RestTransport::new(
                    policy,
                    &config.endpoints.exchange,
                    &config.tenant.id,
                    tokens,
                )
                .map_err(BadInput)?;
                let service = Arc::new(crate::exchange::ExchangeClient::new(transport, clock));
                anyhow::Ok(actions_session(cli, &config, clock, options, wait, service).await)
            }
            None => anyhow::Ok(
                actions_session(cli, &config, clock, options, wait, Arc::new(Offline)).await,
            ),
        }
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    match report {
        Ok(r) if r.summary.fatal.is_some() => {
            errln!(
                "mailwave: applying the actions: {}",
                r.summary.fatal.unwrap_or_default()
            );
            Ok(exit::FAILURE)
        }
        Ok(_) => Ok(exit::OK),
        Err(e) => Err(anyhow::anyhow!(e)),
    }
}

/// An actions-only run session over `service`.
async fn actions_session<S: MoveService>(
    cli: &Cli,
    config: &Config,
    clock: crate::time::Clock,
    options: RunOptions,
    wait: Duration,
    service: Arc<S>,
) -> Result<session::SessionReport, session::SessionError> {
    let (stop, ending) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    let signals = tokio::spawn(super::run::watch_signals(stop.clone()));
    let deadline = tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::time::sleep(wait).await;
            tracing::warn!(
                "the service has not answered within --wait {}s: what is left stays pending for the next run",
                wait.as_secs()
            );
            stop.cancel();
        }
    });
    super::run::watchdog(stop.clone(), ending.clone(), config.run.stop_grace);
    // Applying actions now is not a run: the notices and the report wait for the next one.
    let mut config = config.clone();
    config.notices.enabled = false;
    config.notify.report_to.clear();
    config.licences.sku = None;
    let report = session::run(Session {
        service,
        state: &cli.state,
        config: &config,
        clock,
        options,
        command: "mailwave (actions)",
        paused_time: false,
        stop,
        ending,
        progress: None,
        mailer: None,
    })
    .await;
    signals.abort();
    deadline.abort();
    report
}

/// The service when no credential is configured here: nothing is sent, so actions that need the
/// service stay pending for a run that can.
struct Offline;

fn offline<T>() -> Result<T, ServiceError> {
    Err(ServiceError::NotSent)
}

impl MoveService for Offline {
    async fn create(&self, _: Call, _: &NewMove) -> Result<MoveRequest, ServiceError> {
        offline()
    }
    async fn list_batch(
        &self,
        _: Call,
        _: &str,
        _: Option<&str>,
    ) -> Result<Vec<MoveRequest>, ServiceError> {
        offline()
    }
    async fn list_page(
        &self,
        _: Call,
        _: &str,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<(Vec<MoveRequest>, Option<String>), ServiceError> {
        offline()
    }
    async fn get(&self, _: Call, _: &str) -> Result<MoveRequest, ServiceError> {
        offline()
    }
    async fn statistics(&self, _: Call, _: &str) -> Result<MoveStatistics, ServiceError> {
        offline()
    }
    async fn approve_skipped_items(
        &self,
        _: Call,
        _: &str,
        _: jiff::Timestamp,
        _: &str,
        _: jiff::Timestamp,
    ) -> Result<(), ServiceError> {
        offline()
    }
    async fn reschedule(
        &self,
        _: Call,
        _: &str,
        _: &str,
        _: jiff::Timestamp,
    ) -> Result<(), ServiceError> {
        offline()
    }
    async fn resume(&self, _: Call, _: &str) -> Result<(), ServiceError> {
        offline()
    }
    async fn suspend(&self, _: Call, _: &str) -> Result<(), ServiceError> {
        offline()
    }
    async fn remove(&self, _: Call, _: &str) -> Result<(), ServiceError> {
        offline()
    }
    async fn endpoint_limits(
        &self,
        _: Call,
        _: Option<&str>,
    ) -> Result<EndpointLimits, ServiceError> {
        offline()
    }
}

/// The facts of each address, or bad input naming those that are not in the plan.
pub fn facts_of(state: &Path, addresses: &[String]) -> anyhow::Result<Vec<MailboxFacts>> {
    let store = Store::open_read_only(state)?;
    let mut out = Vec::with_capacity(addresses.len());
    let mut missing = Vec::new();
    for a in addresses {
        match store.mailbox_facts(a.trim())? {
            Some(f) => out.push(f),
            None => missing.push(a.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(BadInput(format!(
            "not in the current plan: {}; nothing was recorded",
            crate::format::few(&missing, 5)
        ))
        .into());
    }
    Ok(out)
}

/// A reschedule's target wave: it must exist, not have opened, and have room (or `--force`).
pub fn target_wave(
    cli: &Cli,
    name: &str,
    arriving: usize,
    force: bool,
) -> anyhow::Result<WaveInfo> {
    let store = Store::open_read_only(&cli.state)?;
    let wave = super::wave_named(&store, name, "--to: ")?;
    check_target(cli, &wave, arriving, force)?;
    Ok(wave)
}

pub fn check_target(
    cli: &Cli,
    wave: &WaveInfo,
    arriving: usize,
    force: bool,
) -> anyhow::Result<()> {
    if cli.clock().now() >= wave.window_start {
        let tz = crate::config::Config::load(&cli.config)
            .map(|c| c.schedule.timezone)
            .unwrap_or(jiff::tz::TimeZone::UTC);
        return Err(BadInput(format!(
            "--to: the window of {} has already opened ({})",
            wave.name,
            crate::format::local(wave.window_start, &tz)
        ))
        .into());
    }
    let after = wave.mailboxes + arriving as i64;
    if after > wave.capacity && !force {
        return Err(BadInput(format!(
            "--to: {} holds {} of its capacity {}; {arriving} more would overfill it (add --force to do it anyway)",
            wave.name, wave.mailboxes, wave.capacity
        ))
        .into());
    }
    Ok(())
}
