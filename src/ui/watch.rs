//! The live dashboard (`mailwave watch`): the estate's progress read from the state database every few
//! seconds, drawn with ratatui. It only reads, so it can run beside a `run` (or on another machine
//! that sees the database file) and be closed at any time.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Gauge, Paragraph, Row, Table};

use crate::format::thousands;
use crate::store::status::{Status, WaveStatus};

/// What one frame shows.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub status: Status,
    /// Mailboxes failed or held (they need the operator).
    pub attention: u64,
    /// The last finished run: (id, command, outcome).
    pub(crate) last_run: Option<(i64, String, String)>,
    /// Who holds the run lock now, if anyone ("mailwave run on host, pid N").
    pub running: Option<String>,
    /// First wave row shown (the operator scrolls).
    pub(crate) scroll: usize,
}

const DONE: [&str; 2] = ["completed", "completed_with_warning"];

fn count(states: &crate::store::status::StateCounts, names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| states.get(n).copied().unwrap_or(0))
        .sum()
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A text bar `width` cells wide.
fn bar(part: u64, whole: u64, width: usize) -> String {
    let filled = if whole == 0 {
        0
    } else {
        ((part as f64 / whole as f64) * width as f64).round() as usize
    };
    let filled = filled.min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// `2027-01-04T20:00:00Z` -> `01-04 20:00`.
fn short_time(t: &str) -> String {
    t.get(5..16).unwrap_or(t).replacen('T', " ", 1)
}

/// The states in lifecycle order, with the short names `status` uses.
const STATES: [(&str, &str); 10] = [
    ("planned", "planned"),
    ("submitted", "submitted"),
    ("syncing", "syncing"),
    ("synced", "synced"),
    ("completing", "cutting over"),
    ("completed", "done"),
    ("completed_with_warning", "warning"),
    ("failed", "failed"),
    ("held", "held"),
    ("skipped", "skipped"),
];

/// One wave's line: greyed when it is all cut over, yellow while some of it needs the operator.
fn wave_row(w: &WaveStatus) -> Row<'static> {
    let done = count(&w.states, &DONE);
    let failed = count(&w.states, &["failed", "held"]);
    let copying = count(&w.states, &["submitted", "syncing"]);
    let style = if done + count(&w.states, &["skipped"]) == w.total && w.total > 0 {
        Style::default().fg(Color::DarkGray)
    } else if failed > 0 {
        Style::default().fg(Color::Yellow)
    } else {
        Style::default()
    };
    Row::new(vec![
        Cell::from(format!("{}{}", w.id, if w.pilot { " (pilot)" } else { "" })),
        Cell::from(format!(
            "{}-{}",
            short_time(&w.window_start),
            w.window_end.get(11..16).unwrap_or("")
        )),
        Cell::from(thousands(w.total)),
        Cell::from(format!(
            "{} {:>5.1}%",
            bar(done, w.total, 16),
            percent(done, w.total)
        )),
        Cell::from(thousands(count(&w.states, &["planned"]))),
        Cell::from(thousands(copying)),
        Cell::from(thousands(count(&w.states, &["synced"]))),
        Cell::from(thousands(count(&w.states, &["completing"]))),
        Cell::from(thousands(failed)),
    ])
    .style(style)
}

/// Draws the dashboard into `frame`.
pub(crate) fn draw(frame: &mut Frame, view: &View) {
    let s = &view.status;
    let [head, gauge, totals, waves, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let running = view
        .running
        .as_deref()
        .map_or("no run in progress".to_string(), |r| {
            format!("running: {r}")
        });
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("mailwave", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                " · plan {} · {} mailboxes · {} · {}",
                s.plan.as_deref().unwrap_or("(none loaded)"),
                thousands(s.mailboxes),
                short_time(&s.generated_at),
                running
            )),
        ])),
        head,
    );

    let done = count(&s.totals, &DONE);
    frame.render_widget(
        Gauge::default()
            .block(Block::default().borders(Borders::ALL).title(" cut over "))
            .gauge_style(Style::default().fg(Color::Green))
            .ratio((percent(done, s.mailboxes) / 100.0).clamp(0.0, 1.0))
            .label(format!(
                "{} of {} ({:.1}%)",
                thousands(done),
                thousands(s.mailboxes),
                percent(done, s.mailboxes)
            )),
        gauge,
    );

    let mut states: Vec<Span> = Vec::new();
    for (name, short) in STATES {
        if !states.is_empty() {
            states.push(Span::raw(" · "));
        }
        let n = count(&s.totals, &[name]);
        states.push(Span::raw(format!("{short} {}", thousands(n))));
    }
    let mut second = vec![Span::raw(match &s.next_wave {
        Some(n) => format!(
            "next cut-over {} at {} ({} mailboxes)",
            n.id,
            short_time(&n.window_start),
            thousands(n.mailboxes)
        ),
        None => "no cut-over ahead".to_string(),
    })];
    if view.attention > 0 {
        second.push(Span::raw(" · "));
        second.push(Span::styled(
            format!(
                "{} need attention (mailwave report)",
                thousands(view.attention)
            ),
            Style::default().fg(Color::Yellow),
        ));
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(states), Line::from(second)]),
        totals,
    );

    let rows: Vec<Row> = s.waves.iter().skip(view.scroll).map(wave_row).collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(24),
            Constraint::Length(18),
            Constraint::Length(10),
            Constraint::Length(24),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new(vec![
            "wave",
            "window (UTC)",
            "total",
            "cut over",
            "planned",
            "copying",
            "synced",
            "cutover",
            "failed",
        ])
        .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::default().borders(Borders::ALL).title(format!(
        " waves {}-{} of {} ",
        (view.scroll + 1).min(s.waves.len()),
        s.waves.len(),
        s.waves.len()
    )));
    frame.render_widget(table, waves);

    let last = view.last_run.as_ref().map_or(
        "no finished run yet".to_string(),
        |(id, command, outcome)| format!("last run #{id} ({command}): {outcome}"),
    );
    frame.render_widget(
        Paragraph::new(format!("{last} · q quit · ↑↓ PgUp PgDn scroll")),
        foot,
    );
}

/// The first wave worth showing: the earliest with work left (so a long plan opens where it is).
pub(crate) fn first_open_wave(status: &Status) -> usize {
    status
        .waves
        .iter()
        .position(|w| count(&w.states, &DONE) + count(&w.states, &["skipped"]) < w.total)
        .unwrap_or(0)
}

/// One frame as plain text (`watch --once`, logs, tests), `width` x `height` cells.
pub(crate) fn render_text(view: &View, width: u16, height: u16) -> String {
    let backend = ratatui::backend::TestBackend::new(width, height);
    let mut terminal = ratatui::Terminal::new(backend).expect("a test backend never fails");
    terminal
        .draw(|f| draw(f, view))
        .expect("a test backend never fails");
    let buffer = terminal.backend().buffer();
    let area: Rect = *buffer.area();
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::status::{NextWave, StateCounts};

    fn counts(pairs: &[(&'static str, u64)]) -> StateCounts {
        let mut c: StateCounts = crate::store::lifecycle::ALL_STATES
            .iter()
            .map(|s| (s.name(), 0))
            .collect();
        for (k, v) in pairs {
            c.insert(k, *v);
        }
        c
    }

    fn wave(id: &str, total: u64, states: &[(&'static str, u64)]) -> WaveStatus {
        WaveStatus {
            id: id.into(),
            seq: 1,
            date: id[3..].into(),
            pilot: false,
            capacity: 22_000,
            window_start: format!("{}T20:00:00Z", &id[3..]),
            window_end: format!("{}T06:00:00Z", &id[3..]),
            prestage_start: format!("{}T20:00:00Z", &id[3..]),
            total,
            states: counts(states),
            oldest_unsynced: None,
        }
    }

    fn view() -> View {
        View {
            status: Status {
                format: 1,
                generated_at: "2027-01-05T21:30:00Z".into(),
                plan: Some("jan".into()),
                mailboxes: 30_000,
                totals: counts(&[
                    ("completed", 9_000),
                    ("completed_with_warning", 1_000),
                    ("synced", 12_000),
                    ("failed", 7),
                    ("planned", 7_993),
                ]),
                failures: Default::default(),
                next_wave: Some(NextWave {
                    id: "mw-2027-01-06".into(),
                    window_start: "2027-01-06T20:00:00Z".into(),
                    mailboxes: 10_000,
                }),
                waves: vec![
                    wave("mw-2027-01-04", 10_000, &[("completed", 10_000)]),
                    wave(
                        "mw-2027-01-05",
                        10_000,
                        &[
                            ("completed_with_warning", 1_000),
                            ("synced", 8_993),
                            ("failed", 7),
                        ],
                    ),
                    wave(
                        "mw-2027-01-06",
                        10_000,
                        &[("synced", 3_007), ("planned", 6_993)],
                    ),
                ],
            },
            attention: 7,
            last_run: Some((3, "run".into(), "stopped".into())),
            running: None,
            scroll: 0,
        }
    }

    #[test]
    fn the_frame_shows_progress_per_wave_and_what_needs_the_operator() {
        let v = view();
        let text = render_text(&v, 132, 20);
        assert!(text.contains("plan jan · 30,000 mailboxes"), "{text}");
        assert!(text.contains("10,000 of 30,000 (33.3%)"), "{text}");
        assert!(
            text.contains("next cut-over mw-2027-01-06 at 01-06 20:00"),
            "{text}"
        );
        assert!(text.contains("7 need attention"), "{text}");
        assert!(text.contains("last run #3 (run): stopped"), "{text}");
        assert!(text.contains("no run in progress"), "{text}");
        let row = |id: &str| {
            text.lines()
                .find(|l| l.contains(id) && !l.contains("next cut-over"))
                .unwrap_or_else(|| panic!("{id} missing:\n{text}"))
                .to_string()
        };
        assert!(row("mw-2027-01-04").contains("100.0%"), "{text}");
        assert!(row("mw-2027-01-05").contains(" 10.0%"), "{text}");
        assert!(row("mw-2027-01-05").contains("8,993"), "{text}");
        assert!(row("mw-2027-01-06").contains("  0.0%"), "{text}");
        assert!(row("mw-2027-01-06").contains("6,993"), "{text}");
    }

    #[test]
    fn a_long_plan_opens_at_its_first_wave_with_work_left_and_scrolls() {
        let mut v = view();
        assert_eq!(first_open_wave(&v.status), 1);
        v.scroll = first_open_wave(&v.status);
        let text = render_text(&v, 132, 20);
        assert!(!text.contains("mw-2027-01-04"), "{text}");
        assert!(text.contains("waves 2-3 of 3"), "{text}");
        v.running = Some("run on host h, pid 1, since 2027-01-05T20:00:00Z".into());
        let text = render_text(&v, 132, 20);
        assert!(text.contains("running: run on host h, pid 1"), "{text}");
    }

    #[test]
    fn bars() {
        assert_eq!(bar(1, 4, 8), "██░░░░░░");
        assert_eq!(bar(5, 4, 4), "████");
        assert_eq!(bar(0, 0, 3), "░░░");
    }
}
