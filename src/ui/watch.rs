//! The live dashboard (`mailwave watch`): the estate's progress read from the state database every few
//! seconds, drawn with ratatui. It only reads, so it can run beside a `run` (or on another machine
//! that sees the database file) and be closed at any time.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Gauge, Paragraph, Row, Table};

use crate::format::thousands;
use crate::store::status::{AttentionRow, Status, WaveStatus};

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
    /// The selected wave (the first row shown; the operator scrolls).
    pub(crate) scroll: usize,
    /// The plan's time zone: every time is shown in it, with the year.
    pub(crate) tz: jiff::tz::TimeZone,
    /// The selected wave's mailboxes that need the operator, with the service's message.
    pub(crate) wave_attention: Vec<AttentionRow>,
    /// Cut-overs per hour over the last day, oldest first.
    pub(crate) throughput: Vec<u64>,
    /// A mailbox search (`/`): what is typed, and what it found.
    pub(crate) search: Option<Search>,
    pub(crate) help: bool,
    /// Live on a terminal (key hints shown), or one frame for a log (`--once`).
    pub(crate) interactive: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Search {
    pub query: String,
    /// Still typing (Enter runs it).
    pub editing: bool,
    pub results: Vec<AttentionRow>,
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

/// `2027-01-04T20:00:00Z` -> `2027-01-04 20:00 GMT` in the plan's zone.
fn local_time(t: &str, tz: &jiff::tz::TimeZone) -> String {
    crate::format::local_text(t, tz)
}

/// `2027-01-04T20:00:00Z` -> `20:00` in the plan's zone.
fn clock_time(t: &str, tz: &jiff::tz::TimeZone) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.to_zoned(tz.clone()).strftime("%H:%M").to_string())
        .unwrap_or_else(|_| t.to_string())
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

/// One wave's line: greyed when it is all cut over, yellow while some of it needs the operator,
/// cyan for a pilot; the selected wave is reversed.
fn wave_row(
    w: &WaveStatus,
    tz: &jiff::tz::TimeZone,
    selected: bool,
    with_bar: bool,
) -> Row<'static> {
    let done = count(&w.states, &DONE);
    let failed = count(&w.states, &["failed", "held"]);
    let copying = count(&w.states, &["submitted", "syncing"]);
    let mut style = if done + count(&w.states, &["skipped"]) == w.total && w.total > 0 {
        Style::default().fg(Color::DarkGray)
    } else if failed > 0 {
        Style::default().fg(Color::Yellow)
    } else if w.pilot {
        Style::default().fg(Color::Cyan)
    } else {
        Style::default()
    };
    if selected {
        style = style.add_modifier(Modifier::REVERSED);
    }
    let mut cells = vec![
        Cell::from(w.id.clone()),
        Cell::from(format!(
            "{}-{}",
            clock_time(&w.window_start, tz),
            clock_time(&w.window_end, tz)
        )),
        Cell::from(Line::from(thousands(w.total)).right_aligned()),
        Cell::from(Line::from(format!("{:.1}%", percent(done, w.total))).right_aligned()),
        Cell::from(bar(done, w.total, 24)),
        Cell::from(Line::from(thousands(count(&w.states, &["planned"]))).right_aligned()),
        Cell::from(Line::from(thousands(copying)).right_aligned()),
        Cell::from(Line::from(thousands(count(&w.states, &["synced"]))).right_aligned()),
        Cell::from(Line::from(thousands(count(&w.states, &["completing"]))).right_aligned()),
        Cell::from(Line::from(thousands(failed)).right_aligned()),
    ];
    if !with_bar {
        cells.remove(BAR_COLUMN);
    }
    Row::new(cells).style(style)
}

/// The column of the text bar, left out below [`BAR_FROM_WIDTH`] columns so no figure is cut.
const BAR_COLUMN: usize = 4;
const BAR_FROM_WIDTH: u16 = 100;

/// How long the rest of the estate takes at the last day's pace.
fn eta(view: &View) -> String {
    let s = &view.status;
    let left = s
        .mailboxes
        .saturating_sub(count(&s.totals, &DONE) + count(&s.totals, &["skipped"]));
    let per_day: u64 = view.throughput.iter().sum();
    if left == 0 {
        return "every mailbox is done".into();
    }
    if per_day == 0 {
        return format!("{} left; no cut-over in the last 24 h", thousands(left));
    }
    format!(
        "{} left; at the last 24 h's pace ({}/day) about {:.1} days",
        thousands(left),
        thousands(per_day),
        left as f64 / per_day as f64
    )
}

const HELP: &str = "\
↑ ↓        select a wave (PgUp PgDn Home End: faster)
/          search mailboxes by address; Enter runs it, Esc closes it
?          this help
q  Esc     quit

Rows: grey all cut over · yellow some need you · cyan a pilot wave.
Times are in the plan's time zone. Nothing here changes anything:
act with `mailwave mailbox ...` and `mailwave wave ...`.";

/// Draws the dashboard into `frame`.
pub(crate) fn draw(frame: &mut Frame, view: &View) {
    let s = &view.status;
    let tz = &view.tz;
    let [head, gauge, totals, spark, waves, detail, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(3),
        Constraint::Length(4),
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(7),
        Constraint::Length(if view.interactive { 1 } else { 0 }),
    ])
    .areas(frame.area());

    let running = view
        .running
        .as_deref()
        .map_or("no run in progress".to_string(), |r| {
            format!("running: {r}")
        });
    let last = view.last_run.as_ref().map_or(
        "no finished run yet".to_string(),
        |(id, command, outcome)| format!("last run #{id} ({command}): {outcome}"),
    );
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled("mailwave", Style::default().add_modifier(Modifier::BOLD)),
                Span::raw(format!(
                    " · plan {} · {} mailboxes · {}",
                    s.plan.as_deref().unwrap_or("(none loaded)"),
                    thousands(s.mailboxes),
                    local_time(&s.generated_at, tz),
                )),
            ]),
            Line::from(format!("{running} · {last}")),
        ]),
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
            local_time(&n.window_start, tz),
            thousands(n.mailboxes)
        ),
        None => "no cut-over ahead".to_string(),
    })];
    if view.attention > 0 {
        second.push(Span::raw(" · "));
        second.push(Span::styled(
            format!("{} need attention", thousands(view.attention)),
            Style::default().fg(Color::Yellow),
        ));
    }
    if let Some(f) = &s.forecast {
        second.push(Span::raw(" · "));
        let text = match f.waves_at_risk.first() {
            Some((w, ready)) => format!(
                "forecast: {} wave(s) at risk, first {w} ({:.0}% ready)",
                f.at_risk,
                100.0 * ready
            ),
            None => "forecast: every wave ready".to_string(),
        };
        second.push(Span::styled(
            text,
            Style::default().fg(if f.at_risk > 0 {
                Color::Red
            } else {
                Color::Green
            }),
        ));
    }
    let mut lines = vec![Line::from(states)];
    lines.push(Line::from(second));
    frame.render_widget(
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: true }),
        totals,
    );

    let label = format!(
        "cut-overs/h, 24 h (max {}) ",
        thousands(view.throughput.iter().copied().max().unwrap_or(0))
    );
    let [spark, spark_eta] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(spark);
    let [spark_label, spark_bars] = Layout::horizontal([
        Constraint::Length(label.chars().count() as u16),
        Constraint::Length(24),
    ])
    .areas(spark);
    frame.render_widget(Paragraph::new(label), spark_label);
    frame.render_widget(
        ratatui::widgets::Sparkline::default()
            .data(view.throughput.clone())
            .style(Style::default().fg(Color::Green)),
        spark_bars,
    );
    frame.render_widget(Paragraph::new(eta(view)), spark_eta);

    let with_bar = frame.area().width >= BAR_FROM_WIDTH;
    let rows: Vec<Row> = s
        .waves
        .iter()
        .enumerate()
        .skip(view.scroll)
        .map(|(i, w)| wave_row(w, tz, view.interactive && i == view.scroll, with_bar))
        .collect();
    let zone = tz.iana_name().unwrap_or("local");
    let mut widths = vec![
        Constraint::Length(13),
        Constraint::Length(11),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
    ];
    let mut header = vec![
        Cell::from("wave"),
        Cell::from("window"),
        Cell::from(Line::from("total").right_aligned()),
        Cell::from(Line::from("done").right_aligned()),
        Cell::from(""),
        Cell::from(Line::from("planned").right_aligned()),
        Cell::from(Line::from("copying").right_aligned()),
        Cell::from(Line::from("synced").right_aligned()),
        Cell::from(Line::from("cutover").right_aligned()),
        // Both need the operator: a failed move and a held mailbox.
        Cell::from(Line::from("f/held").right_aligned()),
    ];
    if !with_bar {
        widths.remove(BAR_COLUMN);
        header.remove(BAR_COLUMN);
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::default().borders(Borders::ALL).title(format!(
            " waves {}-{} of {} · {zone} ",
            (view.scroll + 1).min(s.waves.len()),
            s.waves.len(),
            s.waves.len()
        )));
    frame.render_widget(table, waves);

    // Below the waves: search results, or the selected wave's mailboxes that need the operator.
    let (title, found) = match &view.search {
        Some(search) => (
            format!(
                " search: {}{} ",
                search.query,
                if search.editing { "_" } else { "" }
            ),
            &search.results,
        ),
        None => (
            match s.waves.get(view.scroll) {
                Some(w) => format!(" {} needs attention: {} ", w.id, view.wave_attention.len()),
                None => " needs attention ".into(),
            },
            &view.wave_attention,
        ),
    };
    let lines: Vec<Line> = if found.is_empty() {
        vec![Line::from(
            if view.search.as_ref().is_some_and(|s| !s.editing) {
                "no mailbox matches"
            } else if view.search.is_some() {
                "type part of an address, then Enter"
            } else {
                "nothing: no mailbox of this wave has failed or is held"
            },
        )]
    } else {
        found
            .iter()
            .flat_map(|a| {
                // A message is only news while the mailbox is failed or held.
                let reason = matches!(
                    a.state,
                    crate::store::State::Failed | crate::store::State::Held
                )
                .then(|| a.reason.as_deref())
                .flatten();
                [
                    Line::from(format!(
                        "{} · {} · {}{}",
                        a.address,
                        a.wave,
                        a.state,
                        a.class
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default(),
                    )),
                    Line::styled(
                        reason.map(|r| format!("  {r}")).unwrap_or_default(),
                        Style::default().fg(Color::Yellow),
                    ),
                ]
            })
            .filter(|l| l.width() > 0)
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        detail,
    );

    if view.interactive {
        frame.render_widget(
            Paragraph::new("q quit · ↑↓ select a wave · / search · ? help"),
            foot,
        );
    }
    if view.help {
        let area = frame.area();
        let w = 76.min(area.width);
        let h = 12.min(area.height);
        let popup = Rect::new((area.width - w) / 2, (area.height - h) / 2, w, h);
        frame.render_widget(ratatui::widgets::Clear, popup);
        frame.render_widget(
            Paragraph::new(HELP).block(Block::default().borders(Borders::ALL).title(" help ")),
            popup,
        );
    }
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
    let kept = out.trim_end_matches('\n').len();
    out.truncate(kept);
    out.push('\n');
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
                needs_person: Default::default(),
                forecast: None,
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
            tz: jiff::tz::TimeZone::get("Europe/London").unwrap(),
            wave_attention: vec![AttentionRow {
                address: "carol@contoso.com".into(),
                wave: "mw-2027-01-05".into(),
                state: crate::store::State::Failed,
                class: Some("permanent".into()),
                reason: Some("TooManyBadItemsPermanentException: 51 bad items".into()),
            }],
            throughput: (0..24).map(|h| if h >= 20 { 2_500 } else { 0 }).collect(),
            search: None,
            help: false,
            interactive: true,
        }
    }

    /// Compares a screen with its snapshot in src/ui/snapshots/ (MAILWAVE_UPDATE_SNAPSHOTS=1
    /// rewrites them; review the diff before committing).
    fn snapshot(name: &str, text: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/ui/snapshots")
            .join(format!("{name}.txt"));
        if std::env::var_os("MAILWAVE_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (MAILWAVE_UPDATE_SNAPSHOTS=1 writes it)",
                path.display()
            )
        });
        assert!(
            want == text,
            "{name}: the screen differs from {}\n--- want\n{want}\n--- got\n{text}",
            path.display()
        );
    }

    #[test]
    fn screens_match_their_snapshots_from_80_columns_up() {
        let mut v = view();
        v.scroll = 1;
        snapshot("watch-80x30", &render_text(&v, 80, 30));
        snapshot("watch-132x30", &render_text(&v, 132, 30));
        v.help = true;
        snapshot("watch-help", &render_text(&v, 100, 30));
        v.help = false;
        v.search = Some(Search {
            query: "carol".into(),
            editing: false,
            results: v.wave_attention.clone(),
        });
        snapshot("watch-search", &render_text(&v, 100, 30));
        v.search = None;
        v.interactive = false;
        snapshot("watch-once", &render_text(&v, 100, 30));
    }

    #[test]
    fn no_figure_is_lost_at_80_columns() {
        let mut v = view();
        v.scroll = 1;
        let text = render_text(&v, 80, 30);
        for figure in [
            "8,993",
            "10,000",
            "10.0%",
            "1,000",
            "7",
            "20:00-06:00",
            "Tue 5 Jan 2027 21:30 GMT",
        ] {
            assert!(
                text.contains(figure),
                "{figure} missing at 80 columns:\n{text}"
            );
        }
        assert!(
            text.contains("skipped 0"),
            "the state totals wrap, not cut:\n{text}"
        );
        assert!(text.contains("TooManyBadItemsPermanentException"), "{text}");
        assert!(
            text.contains("about 2.0 days"),
            "ETA at the last day's pace: {text}"
        );
    }

    #[test]
    fn the_frame_shows_progress_per_wave_and_what_needs_the_operator() {
        let v = view();
        let text = render_text(&v, 132, 30);
        assert!(text.contains("plan jan · 30,000 mailboxes"), "{text}");
        assert!(text.contains("10,000 of 30,000 (33.3%)"), "{text}");
        assert!(
            text.contains("next cut-over mw-2027-01-06 at Wed 6 Jan 2027 20:00 GMT"),
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
        let text = render_text(&v, 132, 30);
        assert!(!text.contains("mw-2027-01-04 "), "{text}");
        assert!(text.contains("waves 2-3 of 3"), "{text}");
        v.running = Some("run on host h, pid 1, since 2027-01-05T20:00:00Z".into());
        let text = render_text(&v, 132, 30);
        assert!(text.contains("running: run on host h, pid 1"), "{text}");
    }

    #[test]
    fn bars() {
        assert_eq!(bar(1, 4, 8), "██░░░░░░");
        assert_eq!(bar(5, 4, 4), "████");
        assert_eq!(bar(0, 0, 3), "░░░");
    }
}
