//! `mailwave preflight`: before a wave, ask the service what would stop it. Each check passes,
//! warns or fails, with the figures behind it; the exit code is the worst of them (0 all pass, 3
//! warnings, 1 failures). Nothing is changed, on the service or in the state database.
//!
//! The checks: both tokens; that the app's Exchange role allows the move cmdlets (a listing of
//! a batch that does not exist, which changes nothing); the migration endpoint and its
//! concurrency; per wave, that every mailbox has a cloud object (Graph users, listed once), has no
//! move request in another batch (the tenant's requests, listed once), holds an Exchange Online
//! licence or that enough free seats exist (`subscribedSkus`), that pre-staging starts in time,
//! and the capacity left in the window.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use super::{BadInput, Cli, exit};
use crate::auth::{Credential, Resource, TokenProvider};
use crate::config::Config;
use crate::directory::graph::{GraphClient, RestGraph};
use crate::directory::{Directory, Sku, User, has_exchange_licence};
use crate::engine::jobs::{Executor, Retry};
use crate::exchange::rest::RestTransport;
use crate::exchange::{Call, ExchangeClient, MoveService, ServiceError, gather};
use crate::format::few;
use crate::store::status::WaveStatus;
use crate::store::{State, Store};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Check these waves (`mw-YYYY-MM-DD`).
    #[arg(long = "wave", value_name = "WAVE", conflicts_with = "next")]
    pub waves: Vec<String>,
    /// Check the next N waves whose windows have not closed (default 1).
    #[arg(long, value_name = "N")]
    pub next: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
    pub verdict: Verdict,
    pub detail: String,
}

fn check(check: &'static str, wave: Option<&str>, verdict: Verdict, detail: String) -> Check {
    Check {
        check,
        wave: wave.map(str::to_string),
        verdict,
        detail,
    }
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    let config = Config::load(&cli.config)?;
    let clock = cli.clock();
    let now = clock.now();
    let store = Store::open_read_only(&cli.state)?;
    let status = store.status(now, None)?;
    let waves: Vec<WaveStatus> = if args.waves.is_empty() {
        status
            .waves
            .iter()
            .filter(|w| w.window_end.parse::<Timestamp>().is_ok_and(|end| end > now))
            .take(args.next.unwrap_or(1))
            .cloned()
            .collect()
    } else {
        let mut out = Vec::new();
        for id in &args.waves {
            let w = status.waves.iter().find(|w| &w.id == id).ok_or_else(|| {
                BadInput(format!(
                    "--wave: no wave {id} in the state database (see `mailwave status`)"
                ))
            })?;
            out.push(w.clone());
        }
        out
    };
    if waves.is_empty() {
        return Err(BadInput("no wave ahead to check (see `mailwave status`)".into()).into());
    }
    let view = RunView {
        holder: crate::store::lock::holder(&cli.state),
        in_flight: ["submitted", "syncing"]
            .iter()
            .map(|s| status.totals.get(s).copied().unwrap_or(0))
            .sum::<u64>()
            + store
                .open_intents()?
                .iter()
                .filter(|i| i.operation == "create")
                .count() as u64,
    };
    let mut members: HashMap<String, Vec<(String, State)>> = HashMap::new();
    for w in &waves {
        let list = store
            .wave_facts(&w.id)?
            .into_iter()
            .map(|f| (f.address, f.state))
            .collect();
        members.insert(w.id.clone(), list);
    }
    drop(store);

    let credential = Credential::from_config(&config)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let checks = runtime.block_on(async {
        let policy = config.run.http();
        let tokens = Arc::new(TokenProvider::new(policy, &config, credential, clock)?);
        let exchange = ExchangeClient::new(
            RestTransport::new(
                policy,
                &config.endpoints.exchange,
                &config.tenant.id,
                tokens.clone(),
            )
            .map_err(BadInput)?,
            clock,
        );
        let graph = GraphClient::new(
            RestGraph::new(policy, &config.endpoints.graph, tokens.clone()).map_err(BadInput)?,
        );
        // Every call goes as a run's would: at `run.requests_per_second`, a 429 waited out and
        // asked again, a transient failure retried. Ctrl-C ends the command as it is.
        let stop = tokio_util::sync::CancellationToken::new();
        let exchange = Executor::new(Arc::new(exchange), clock, &config.run, stop.clone());
        let graph = Executor::new(Arc::new(graph), clock, &config.run, stop);
        anyhow::Ok(
            checks(
                &config, now, &tokens, &exchange, &graph, &waves, &members, &view,
            )
            .await,
        )
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));

    let worst = checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Pass);
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "generated_at": now.to_string(),
                "verdict": worst,
                "checks": checks,
            }))?
        );
    } else {
        for c in &checks {
            outln!(
                "{:<4}  {:<22} {:<14} {}",
                c.verdict.name(),
                c.check,
                c.wave.as_deref().unwrap_or("-"),
                c.detail
            );
        }
        let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
        outln!(
            "\n{} passed, {} warnings, {} failures",
            count(Verdict::Pass),
            count(Verdict::Warn),
            count(Verdict::Fail)
        );
    }
    Ok(match worst {
        Verdict::Pass => exit::OK,
        Verdict::Warn => exit::NEEDS_ATTENTION,
        Verdict::Fail => exit::FAILURE,
    })
}

/// A service error as one line of a check.
fn failed(what: &str, e: &ServiceError) -> String {
    format!("{what}: {e}")
}

/// What the run would see now, to say why mailboxes have no request yet: who holds the database,
/// and the moves in flight (copying, or created without an answer yet) across the estate.
struct RunView {
    holder: Option<String>,
    in_flight: u64,
}

#[allow(clippy::too_many_arguments)]
async fn checks<T, G>(
    config: &Config,
    now: Timestamp,
    tokens: &Arc<TokenProvider>,
    exchange: &Executor<ExchangeClient<T>>,
    graph: &Executor<GraphClient<G>>,
    waves: &[WaveStatus],
    members: &HashMap<String, Vec<(String, State)>>,
    view: &RunView,
) -> Vec<Check>
where
    T: crate::exchange::Transport,
    G: crate::directory::graph::GraphTransport,
{
    let mut out = Vec::new();
    let mut ok_tokens = [false; 2];
    for (i, (name, resource)) in [
        ("exchange token", Resource::Exchange),
        ("graph token", Resource::Graph),
    ]
    .into_iter()
    .enumerate()
    {
        match tokens.token(resource).await {
            Ok(_) => {
                ok_tokens[i] = true;
                out.push(check(name, None, Verdict::Pass, "issued".into()));
            }
            Err(e) => out.push(check(name, None, Verdict::Fail, e.to_string())),
        }
    }

    let (ex, g) = (&exchange.service, &graph.service);
    // Exchange: a listing of a batch that cannot exist proves the role allows Get-MoveRequest.
    let mut requests: Option<Vec<crate::exchange::MoveRequest>> = None;
    // The run's own cap on moves in flight; as the run assumes when the endpoint cannot be read.
    let mut cap = (
        config.run.max_in_flight.min(200),
        "run.max_in_flight, or 200 while the migration endpoint cannot be read".to_string(),
    );
    if ok_tokens[0] {
        match exchange
            .call("Get-MoveRequest", Retry::Transient, || {
                ex.list_batch(Call::new(), "mailwave-preflight-probe", None)
            })
            .await
        {
            Ok(_) => out.push(check(
                "move cmdlets",
                None,
                Verdict::Pass,
                "Get-MoveRequest answered (the app's Exchange role allows the move cmdlets)".into(),
            )),
            Err(e) => out.push(check(
                "move cmdlets",
                None,
                Verdict::Fail,
                failed("Get-MoveRequest", &e),
            )),
        }
        let endpoint = config.migration.source_endpoint.as_deref();
        match exchange
            .call("Get-MigrationEndpoint", Retry::Transient, || {
                ex.endpoint_limits(Call::new(), endpoint)
            })
            .await
        {
            Ok(l) => {
                cap = (
                    crate::engine::policy::in_flight_cap(
                        config.run.max_in_flight,
                        l.max_concurrent_migrations,
                    ),
                    format!(
                        "run.max_in_flight {}, at most twice MaxConcurrentMigrations {}",
                        config.run.max_in_flight, l.max_concurrent_migrations
                    ),
                );
                out.push(check(
                    "migration endpoint",
                    None,
                    Verdict::Pass,
                    format!(
                        "{}: MaxConcurrentMigrations {}",
                        endpoint.unwrap_or("the default endpoint"),
                        l.max_concurrent_migrations
                    ),
                ));
            }
            Err(e) => out.push(check(
                "migration endpoint",
                None,
                Verdict::Fail,
                failed("Get-MigrationEndpoint", &e),
            )),
        }
        let call = &Call::new();
        let listing = gather("Get-MoveRequest", |next| {
            exchange.call("Get-MoveRequest", Retry::Transient, move || {
                ex.tenant_requests_page(call, next.clone())
            })
        });
        match listing.await {
            Ok(list) => requests = Some(list),
            Err(e) => out.push(check(
                "existing requests",
                None,
                Verdict::Fail,
                failed("listing the tenant's move requests", &e),
            )),
        }
    }

    // Graph: every user once, and the licences.
    let mut users: Option<(HashMap<String, User>, Vec<Sku>)> = None;
    if ok_tokens[1] {
        let listed = gather("users", |next| {
            graph.call("users", Retry::Transient, move || {
                g.users_page(next.clone())
            })
        })
        .await;
        let skus = graph
            .call("subscribedSkus", Retry::Transient, || g.subscribed_skus())
            .await;
        match (listed, skus) {
            (Ok(list), Ok(skus)) => {
                let mut by_address = HashMap::new();
                for u in list {
                    if let Some(m) = &u.mail {
                        by_address.insert(m.to_ascii_lowercase(), u.clone());
                    }
                    by_address.insert(u.user_principal_name.to_ascii_lowercase(), u);
                }
                users = Some((by_address, skus));
            }
            (Err(e), _) | (_, Err(e)) => out.push(check(
                "directory",
                None,
                Verdict::Fail,
                failed("listing users and licences", &e),
            )),
        }
    }
    let free_seats: u64 = users
        .as_ref()
        .map(|(_, skus)| {
            skus.iter()
                .filter(|s| s.includes_exchange())
                .map(|s| s.enabled.saturating_sub(s.consumed))
                .sum()
        })
        .unwrap_or(0);
    let mut seats_left = free_seats;

    for w in waves {
        let id = Some(w.id.as_str());
        let list = &members[&w.id];
        // What is still to move: completed and skipped mailboxes need nothing.
        let to_move: Vec<&String> = list
            .iter()
            .filter(|(_, s)| {
                !matches!(
                    s,
                    State::Completed | State::CompletedWithWarning | State::Skipped
                )
            })
            .map(|(a, _)| a)
            .collect();

        if let Some((by_address, skus)) = &users {
            let missing: Vec<String> = to_move
                .iter()
                .filter(|a| !by_address.contains_key(&a.to_ascii_lowercase()))
                .map(|a| a.to_string())
                .collect();
            out.push(if missing.is_empty() {
                check(
                    "mail users",
                    id,
                    Verdict::Pass,
                    format!("all {} found in the directory", to_move.len()),
                )
            } else {
                check(
                    "mail users",
                    id,
                    Verdict::Fail,
                    format!(
                        "{} of {} have no cloud object (is directory sync scoped to them?): {}",
                        missing.len(),
                        to_move.len(),
                        few(&missing, 5)
                    ),
                )
            });
            let unlicensed: Vec<String> = to_move
                .iter()
                .filter_map(|a| by_address.get(&a.to_ascii_lowercase()).map(|u| (a, u)))
                .filter(|(_, u)| !has_exchange_licence(u, skus))
                .map(|(a, _)| a.to_string())
                .collect();
            let need = unlicensed.len() as u64;
            out.push(if need == 0 {
                check("licences", id, Verdict::Pass, "every mailbox holds an Exchange Online licence".into())
            } else if need <= seats_left {
                seats_left -= need;
                check(
                    "licences",
                    id,
                    Verdict::Warn,
                    format!(
                        "{need} need an Exchange Online licence before they cut over ({} seats free): {}",
                        seats_left + need,
                        few(&unlicensed, 5)
                    ),
                )
            } else {
                let free = seats_left;
                seats_left = 0;
                check(
                    "licences",
                    id,
                    Verdict::Fail,
                    format!(
                        "{need} need an Exchange Online licence and only {free} seats are free: buy {} more",
                        need - free
                    ),
                )
            });
        }

        if let Some(requests) = &requests {
            let wanted: HashSet<String> = to_move.iter().map(|a| a.to_ascii_lowercase()).collect();
            let conflicts: Vec<String> = requests
                .iter()
                .filter(|r| {
                    wanted.contains(&r.identity.to_ascii_lowercase()) && r.batch_name != w.id
                })
                .map(|r| {
                    format!(
                        "{} ({:?} in {})",
                        r.identity,
                        r.status,
                        if r.batch_name.is_empty() {
                            "no batch"
                        } else {
                            &r.batch_name
                        }
                    )
                })
                .collect();
            out.push(if conflicts.is_empty() {
                check("existing requests", id, Verdict::Pass, "no move request in another batch".into())
            } else {
                check(
                    "existing requests",
                    id,
                    Verdict::Fail,
                    format!(
                        "{} already have a move request outside this wave (remove them, or skip the mailboxes): {}",
                        conflicts.len(),
                        few(&conflicts, 5)
                    ),
                )
            });
        }

        out.push(timing(
            config,
            now,
            w,
            list,
            &why_unstarted(config, now, view, &cap),
        ));
        // Skipped mailboxes take no cut-over.
        let moving = list.iter().filter(|(_, s)| *s != State::Skipped).count();
        out.push(capacity(w, moving as i64));
    }
    out
}

/// Why mailboxes whose pre-stage has begun have no request yet, as the run sees it: no run is
/// going, the run creates requests only in `run.prestage_window`, or it is at its in-flight cap
/// (the rest are created as copies finish); otherwise it is creating them.
fn why_unstarted(config: &Config, now: Timestamp, view: &RunView, cap: &(u64, String)) -> String {
    let run = view
        .holder
        .as_deref()
        .filter(|h| h.starts_with("mailwave run"));
    let Some(run) = run else {
        return "no run is going: start `mailwave run` (or `mailwave run --once` from cron)".into();
    };
    let since = run.split(" on host ").next().unwrap_or(run);
    if let Some(window) = config.run.prestage_window
        && !crate::engine::policy::in_local_window(window, now, &config.schedule.timezone)
    {
        return format!(
            "not yet due: `{since}` creates requests only in run.prestage_window {window} ({})",
            config
                .schedule
                .timezone
                .iana_name()
                .unwrap_or("schedule.timezone")
        );
    }
    let (limit, why) = cap;
    if view.in_flight >= *limit {
        return format!(
            "`{since}` is at its in-flight cap: {} moves in flight of {limit} ({why}); the rest are created as copies finish",
            view.in_flight
        );
    }
    format!(
        "`{since}` is creating them ({} moves in flight of its cap {limit}), earlier waves first, at run.requests_per_second",
        view.in_flight
    )
}

/// Whether pre-staging starts in time; `why` says why mailboxes have no request yet.
fn timing(
    config: &Config,
    now: Timestamp,
    w: &WaveStatus,
    list: &[(String, State)],
    why: &str,
) -> Check {
    let id = Some(w.id.as_str());
    let tz = config.schedule.timezone.clone();
    let at = |s: &str| crate::format::local_text(s, &tz);
    let parse = |s: &str| s.parse::<Timestamp>().unwrap_or(now);
    let (prestage, start, end) = (
        parse(&w.prestage_start),
        parse(&w.window_start),
        parse(&w.window_end),
    );
    let planned = list.iter().filter(|(_, s)| *s == State::Planned).count();
    let hours = |d: jiff::SignedDuration| format!("{:.1} h", d.as_secs_f64() / 3600.0);
    if now >= end {
        check(
            "pre-stage",
            id,
            Verdict::Fail,
            format!("its window closed at {}", at(&w.window_end)),
        )
    } else if now >= start && planned > 0 {
        check(
            "pre-stage",
            id,
            Verdict::Fail,
            format!(
                "its window opened at {} and {planned} mailboxes have no request yet: {why}",
                at(&w.window_start)
            ),
        )
    } else if now >= prestage && planned > 0 {
        check(
            "pre-stage",
            id,
            Verdict::Warn,
            format!(
                "pre-staging began at {}; {planned} mailboxes have no request yet, {} before the window: {why}",
                at(&w.prestage_start),
                hours(start.duration_since(now))
            ),
        )
    } else if now >= prestage {
        check(
            "pre-stage",
            id,
            Verdict::Pass,
            format!(
                "every mailbox has its request; the window opens {}",
                at(&w.window_start)
            ),
        )
    } else {
        check(
            "pre-stage",
            id,
            Verdict::Pass,
            format!(
                "starts {} (in {}), {} before the window",
                at(&w.prestage_start),
                hours(prestage.duration_since(now)),
                hours(start.duration_since(prestage))
            ),
        )
    }
}

/// The capacity left in the wave's window.
fn capacity(w: &WaveStatus, mailboxes: i64) -> Check {
    let id = Some(w.id.as_str());
    if mailboxes > w.capacity {
        check(
            "capacity",
            id,
            Verdict::Warn,
            format!(
                "{mailboxes} mailboxes against a capacity of {}: overfilled by {}",
                w.capacity,
                mailboxes - w.capacity
            ),
        )
    } else {
        check(
            "capacity",
            id,
            Verdict::Pass,
            format!(
                "{mailboxes} of {}; room for {} more",
                w.capacity,
                w.capacity - mailboxes
            ),
        )
    }
}
