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
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) interval: f64,
    /// Print one frame as plain text and exit (for logs, or where there is no terminal).
    #[arg(long)]
    pub once: bool,
    /// Width of the `--once` frame, in columns.
    #[arg(long, default_value_t = 132)]
    pub width: u16,
    /// Height of the `--once` frame, in lines.
    #[arg(long, default_value_t = 40)]
    pub height: u16,
}

fn read(store: &Store, cli: &Cli, scroll: Option<usize>) -> anyhow::Result<View> {
    let status = store.status(cli.clock().now(), None)?;
    let (attention, _) = store.attention(0)?;
    let last_run = store
        .last_run()?
        .map(|(id, command, outcome, _)| (id, command, outcome));
    let scroll = scroll.unwrap_or_else(|| watch::first_open_wave(&status));
    Ok(View {
        status,
        attention,
        last_run,
        running: crate::store::lock::holder(&cli.state),
        scroll,
    })
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<i32> {
    if !(args.interval.is_finite() && args.interval >= 0.2) {
        errln!("error: --interval must be at least 0.2 seconds");
        return Ok(exit::BAD_INPUT);
    }
    let store = Store::open_read_only(&cli.state)?;
    if args.once {
        let view = read(&store, cli, None)?;
        out!(
            "{}",
            watch::render_text(&view, args.width.max(40), args.height.max(12))
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
        Duration::from_secs_f64(args.interval),
    );
    ratatui::restore();
    result.map(|()| exit::OK)
}

fn live(
    terminal: &mut ratatui::DefaultTerminal,
    store: &Store,
    cli: &Cli,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut view = read(store, cli, None)?;
    let mut refreshed = Instant::now();
    loop {
        terminal.draw(|f| watch::draw(f, &view))?;
        let wait = interval.saturating_sub(refreshed.elapsed());
        if event::poll(wait)? {
            if let Event::Key(key) = event::read()?
                && key.kind == KeyEventKind::Press
            {
                let last = view.status.waves.len().saturating_sub(1);
                match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(());
                    }
                    KeyCode::Down => view.scroll = (view.scroll + 1).min(last),
                    KeyCode::Up => view.scroll = view.scroll.saturating_sub(1),
                    KeyCode::PageDown => view.scroll = (view.scroll + 10).min(last),
                    KeyCode::PageUp => view.scroll = view.scroll.saturating_sub(10),
                    KeyCode::Home => view.scroll = 0,
                    KeyCode::End => view.scroll = last,
                    _ => {}
                }
            }
            continue;
        }
        view = read(store, cli, Some(view.scroll))?;
        refreshed = Instant::now();
    }
}
