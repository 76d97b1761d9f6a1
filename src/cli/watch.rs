//! `mailwave watch`: the live dashboard. Reads the state database every `--interval` and redraws; it
//! never writes, so it runs beside a `run` and can be closed at any moment.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use super::{Cli, exit};
use crate::store::Store;
use crate::ui::watch::{self, View};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds between refreshes (0.2 to 3600).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) interval: f64,
    /// Print one frame as plain text and exit (for logs, or where there is no terminal).
    #[arg(long)]
    pub once: bool,
    /// Width of the `--once` frame, in columns (80 to 500; less is drawn at 80).
    #[arg(long, default_value_t = 100, value_parser = frame_size)]
    pub width: u16,
    /// Height of the `--once` frame, in lines (20 to 500; less is drawn at 20).
    #[arg(long, default_value_t = 40, value_parser = frame_size)]
    pub height: u16,
}

/// The widest and tallest `--once` frame: every cell of it is allocated up front.
const MAX_FRAME: u16 = 500;

/// A `--once` frame size: every cell is allocated up front, so it is bounded.
fn frame_size(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n <= MAX_FRAME as u64 => Ok(n as u16),
        Ok(_) => Err(format!("at most {MAX_FRAME}")),
        Err(_) => Err("not a whole number".into()),
    }
}

/// What the dashboard keeps between refreshes.
struct Keep {
    scroll: Option<usize>,
    search: Option<watch::Search>,
    help: bool,
    /// The last day's cut-overs per hour, and when they were counted (a scan of every mailbox,
    /// so at most every 30 seconds).
    throughput: Option<(Instant, Vec<u64>)>,
}

fn read(
    store: &Store,
    cli: &Cli,
    tz: &jiff::tz::TimeZone,
    keep: &mut Keep,
    interactive: bool,
) -> anyhow::Result<View> {
    let now = cli.current_clock().now();
    let status = store.status(now, None)?;
    let (attention, _) = store.attention(0)?;
    let last_run = store
        .last_run()?
        .map(|(id, command, outcome, _)| (id, command, outcome));
    let scroll = keep
        .scroll
        .unwrap_or_else(|| watch::first_open_wave(&status))
        .min(status.waves.len().saturating_sub(1));
    let wave_attention = match status.waves.get(scroll) {
        Some(w) => store.attention_in_wave(&w.id, 5)?,
        None => Vec::new(),
    };
    let stale = keep
        .throughput
        .as_ref()
        .is_none_or(|(at, _)| at.elapsed() >= Duration::from_secs(30));
    if stale {
        keep.throughput = Some((Instant::now(), store.completions_per_hour(now, 24)?));
    }
    if let Some(search) = keep
        .search
        .as_mut()
        .filter(|s| !s.editing && !s.query.is_empty())
    {
        search.results = store.search_mailboxes(&search.query, 5)?;
    }
    Ok(View {
        status,
        attention,
        last_run,
        running: crate::store::lock::holder(&cli.state),
        scroll,
        tz: tz.clone(),
        wave_attention,
        throughput: keep
            .throughput
            .as_ref()
            .map(|(_, t)| t.clone())
            .unwrap_or_default(),
        search: keep.search.clone(),
        help: keep.help,
        interactive,
    })
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    if !(0.2..=3600.0).contains(&args.interval) {
        errln!("error: --interval must be from 0.2 to 3600 seconds");
        return Ok(exit::BAD_INPUT);
    }
    let store = Store::open_read_only(&cli.state)?;
    let tz = super::plan_zone(cli, &store);
    let mut keep = Keep {
        scroll: None,
        search: None,
        help: false,
        throughput: None,
    };
    if args.once {
        let view = read(&store, cli, &tz, &mut keep, false)?;
        out!(
            "{}",
            watch::render_text(
                &view,
                args.width.clamp(80, MAX_FRAME),
                args.height.clamp(20, MAX_FRAME)
            )
        );
        return Ok(exit::OK);
    }
    if !std::io::stdout().is_terminal() {
        errln!(
            "error: watch draws on a terminal and stdout is not one; use `mailwave status` or `mailwave watch --once`"
        );
        return Ok(exit::BAD_INPUT);
    }
    let mut terminal = ratatui::init();
    let result = live(
        &mut terminal,
        &store,
        cli,
        &tz,
        &mut keep,
        Duration::from_secs_f64(args.interval),
    );
    ratatui::restore();
    result.map(|()| exit::OK)
}

fn live(
    terminal: &mut ratatui::DefaultTerminal,
    store: &Store,
    cli: &Cli,
    tz: &jiff::tz::TimeZone,
    keep: &mut Keep,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut view = read(store, cli, tz, keep, true)?;
    let mut refreshed = Instant::now();
    loop {
        terminal.draw(|f| watch::draw(f, &view))?;
        let wait = interval.saturating_sub(refreshed.elapsed());
        if event::poll(wait)? {
            if let Event::Key(key) = event::read()?
                && key.kind == KeyEventKind::Press
            {
                if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
                    return Ok(());
                }
                let last = view.status.waves.len().saturating_sub(1);
                let mut reread = false;
                let open = keep.search.is_some() || keep.help;
                match (keep.search.as_mut().filter(|s| s.editing), key.code) {
                    // Typing a search.
                    (Some(search), KeyCode::Enter) => {
                        search.editing = false;
                        reread = true;
                    }
                    (Some(_), KeyCode::Esc) => keep.search = None,
                    (Some(search), KeyCode::Backspace) => {
                        search.query.pop();
                    }
                    (Some(search), KeyCode::Char(c)) => search.query.push(c),
                    (Some(_), _) => {}
                    (None, KeyCode::Esc) if open => {
                        keep.search = None;
                        keep.help = false;
                    }
                    (None, KeyCode::Char('q') | KeyCode::Esc) => return Ok(()),
                    (None, KeyCode::Char('?')) => keep.help = !keep.help,
                    (None, KeyCode::Char('/')) => {
                        keep.search = Some(watch::Search {
                            editing: true,
                            ..Default::default()
                        });
                    }
                    (None, code) => {
                        let at = view.scroll;
                        let to = match code {
                            KeyCode::Down => (at + 1).min(last),
                            KeyCode::Up => at.saturating_sub(1),
                            KeyCode::PageDown => (at + 10).min(last),
                            KeyCode::PageUp => at.saturating_sub(10),
                            KeyCode::Home => 0,
                            KeyCode::End => last,
                            _ => at,
                        };
                        if to != at {
                            keep.scroll = Some(to);
                            reread = true;
                        }
                    }
                }
                if reread {
                    view = read(store, cli, tz, keep, true)?;
                    refreshed = Instant::now();
                } else {
                    view.search = keep.search.clone();
                    view.help = keep.help;
                }
            }
            continue;
        }
        keep.scroll = Some(view.scroll);
        view = read(store, cli, tz, keep, true)?;
        refreshed = Instant::now();
    }
}
