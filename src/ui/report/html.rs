//! The report as one self-contained html file an operator can mail to a manager: inline CSS and
//! SVG, no script, no external reference. Markup is kept well-formed XML, so tests can parse it.

use std::fmt::Write;

use super::svg::{
    self, AMBER, BLUE, BROWN, DARK, GREEN, GREY, LIGHT_BLUE, Layer, Line, PURPLE, RED, esc,
};
use super::{LISTED, Report, cut_over, in_progress, side_name};
use crate::exchange::figures::Side;
use crate::format::thousands as th;
use crate::store::Store;

/// Every chart the report draws, by element id, in page order.
pub const CHARTS: [&str; 6] = [
    "chart-cutovers",
    "chart-progress",
    "chart-failures",
    "chart-throughput",
    "chart-stalls",
    "chart-forecast",
];

const STYLE: &str = r#"
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;background:#f3f5f7;color:#1d252c;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1180px;margin:0 auto;padding:18px}
h1{font-size:1.55em;margin:.1em 0 .2em}
h2{font-size:1.15em;margin:0 0 .6em}
p{margin:.3em 0}
.meta{color:#5f6b76}
.banner{border-radius:6px;padding:8px 12px;margin:10px 0;border:1px solid}
.banner.going{background:#fff4e0;border-color:#e08e0b}
.banner.idle{background:#eef6ee;border-color:#2e7d32}
section{background:#fff;border:1px solid #dde2e7;border-radius:8px;padding:14px 16px;margin:14px 0}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:10px}
.tile{border:1px solid #e3e7eb;border-radius:6px;padding:8px 10px}
.tile span{display:block;color:#5f6b76;font-size:.85em}
.tile b{display:block;font-size:1.3em;overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr));gap:14px;padding:0;background:none;border:0}
figure{margin:0;background:#fff;border:1px solid #dde2e7;border-radius:8px;padding:12px 14px;min-width:0}
figcaption{margin-bottom:6px}
figcaption small{display:block;color:#5f6b76}
.key{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85em;color:#3b4650;margin:4px 0}
.key i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
svg{display:block;width:100%;height:auto}
.empty{color:#5f6b76;font-style:italic}
table{border-collapse:collapse;width:100%;font-size:.88em}
th,td{padding:5px 8px;border-bottom:1px solid #e6e9ed;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600;white-space:nowrap}
td{white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.risk td{background:#fff4e0}
td.msg{min-width:16em;white-space:normal;overflow-wrap:anywhere}
pre{overflow-x:auto;font-size:.8em;background:#f6f8fa;padding:10px;border-radius:6px}
ul.runs{padding-left:1.2em}
footer{color:#5f6b76;font-size:.8em;margin:18px 0}
@media (max-width:640px){body{font-size:14px}main{padding:8px}section,figure{padding:10px}.tiles{grid-template-columns:repeat(2,minmax(0,1fr));gap:8px}.tile b{font-size:1.1em}}
@media print{body{background:#fff}section,figure{break-inside:avoid}}
"#;

pub fn html(
    store: &Store,
    now: jiff::Timestamp,
    running: Option<&str>,
    since: Option<jiff::Timestamp>,
) -> crate::store::Result<String> {
    Ok(render(&Report::gather(store, now, running, since)?))
}

fn key(items: &[(&str, &str)]) -> String {
    let mut s = String::from(r#"<div class="key">"#);
    for (name, color) in items {
        let _ = write!(
            s,
            r#"<span><i style="background:{color}"></i>{}</span>"#,
            esc(name)
        );
    }
    s.push_str("</div>");
    s
}

/// A chart in its frame: title, what it shows, its key, and the chart; without one, the title and
/// why there is none (said once).
fn figure(title: &str, about: &str, keys: &[(&str, &str)], chart: Option<String>) -> String {
    match chart {
        Some(c) => format!(
            r#"<figure><figcaption><b>{}</b><small>{}</small></figcaption>{}<div class="scroll">{c}</div></figure>"#,
            esc(title),
            esc(about),
            key(keys)
        ),
        None => format!(
            r#"<figure><figcaption><b>{}</b></figcaption><p class="empty">{}</p></figure>"#,
            esc(title),
            esc(about)
        ),
    }
}

fn table(
    o: &mut String,
    head: &[(&str, bool)],
    rows: impl IntoIterator<Item = (Vec<String>, bool)>,
) {
    o.push_str(r#"<div class="scroll"><table><thead><tr>"#);
    for (h, num) in head {
        let _ = write!(
            o,
            "<th{}>{}</th>",
            if *num { r#" class="n""# } else { "" },
            esc(h)
        );
    }
    o.push_str("</tr></thead><tbody>");
    for (cells, risk) in rows {
        o.push_str(if risk { r#"<tr class="risk">"# } else { "<tr>" });
        for (c, (_, num)) in cells.iter().zip(head) {
            let class = if *num {
                r#" class="n""#
            } else if c.len() > 40 {
                r#" class="msg""#
            } else {
                ""
            };
            let _ = write!(o, "<td{class}>{}</td>", esc(c));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table></div>");
}

fn count(v: f64) -> String {
    th(v.round().max(0.0) as u64)
}

pub(crate) fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let title = format!(
        "Mailbox migration report, {}",
        r.status.plan.as_deref().unwrap_or("no plan")
    );
    let _ = write!(
        o,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/><title>{}</title><style>{STYLE}</style></head><body><main>"#,
        esc(&title)
    );
    let _ = write!(
        o,
        r#"<h1>Mailbox migration report</h1><p class="meta">Generated {} from {}. Plan: {}. Times are {}.</p>"#,
        esc(&r.local(r.now)),
        esc(&r.source),
        esc(r.status.plan.as_deref().unwrap_or("none")),
        esc(r.tz.iana_name().unwrap_or("UTC"))
    );
    match &r.running {
        Some(who) => {
            let _ = write!(
                o,
                r#"<p class="banner going"><b>A run is going</b> ({}): these figures move.</p>"#,
                esc(who)
            );
        }
        None => o.push_str(r#"<p class="banner idle">No run was going when this was written.</p>"#),
    }
    if let Some(t) = r.since {
        let _ = write!(
            o,
            r#"<p class="meta">Lists, failures, throughput and runs show what changed since {}; the standing figures are as of now.</p>"#,
            esc(&r.local(t))
        );
    }
    o.push_str(r#"<section><div class="tiles">"#);
    for (label, value) in r.headline() {
        let _ = write!(
            o,
            r#"<div class="tile"><span>{}</span><b>{}</b></div>"#,
            esc(label),
            esc(&value)
        );
    }
    o.push_str("</div></section>");

    o.push_str(r#"<section class="charts">"#);
    o.push_str(&cutovers(r));
    o.push_str(&progress(r));
    o.push_str(&failures(r));
    o.push_str(&throughput(r));
    o.push_str(&stalls(r));
    o.push_str(&forecast_chart(r));
    o.push_str("</section>");

    if let Some(f) = &r.forecast {
        let _ = write!(
            o,
            "<section><h2>Forecast</h2><p>Made {} on {}. The estate finishes <b>{}</b>; <b>{}</b> wave(s) at risk.</p>",
            esc(&r.forecast_made()),
            esc(&f.basis),
            esc(&f.base.finish.map_or_else(|| "-".into(), |t| r.local(t))),
            f.base.at_risk
        );
        if f.base.without_a_wave > 0 {
            let _ = write!(
                o,
                "<p>{} mailbox(es) would have no later wave to roll to.</p>",
                th(f.base.without_a_wave)
            );
        }
        table(
            &mut o,
            &[
                ("wave", false),
                ("window", false),
                ("mailboxes", true),
                ("ready when it opens", true),
                ("expected to miss", true),
                ("rolls to", false),
                ("risk", false),
            ],
            f.base.waves.iter().map(|w| {
                (
                    vec![
                        w.wave.clone(),
                        w.window.clone(),
                        th(w.mailboxes),
                        format!("{:.1}%", 100.0 * w.ready_share),
                        th(w.miss),
                        w.rolls_to.clone().unwrap_or_default(),
                        w.risk.clone().unwrap_or_default(),
                    ],
                    w.risk.is_some(),
                )
            }),
        );
        o.push_str("</section>");
    }

    if !r.licences.by_status.is_empty() {
        let _ = write!(
            o,
            "<section><h2>Licences</h2><p>Checked before cut-over: {}.</p>",
            esc(&r.licence_counts())
        );
        if !r.licences.unlicensed.is_empty() {
            table(
                &mut o,
                &[
                    ("mailbox", false),
                    ("wave", false),
                    ("finding", false),
                    ("why", false),
                ],
                r.licences.unlicensed.iter().map(|(a, w, s, why)| {
                    (vec![a.clone(), w.clone(), s.clone(), why.clone()], false)
                }),
            );
        }
        o.push_str("</section>");
    }

    if !r.notices.is_empty() {
        o.push_str(
            r#"<section><h2>Notices to users</h2><p class="meta">Dropped: too late (the window opened first) or superseded by a later notice. Uncertain: a call cut off; never sent again.</p>"#,
        );
        let mut head = vec![("notice", false)];
        head.extend(super::NOTICE_STATUSES.iter().map(|s| (*s, true)));
        table(
            &mut o,
            &head,
            r.notices.iter().map(|(kind, n)| {
                let mut cells = vec![kind.clone()];
                cells.extend(n.iter().map(|c| th(*c)));
                (cells, false)
            }),
        );
        o.push_str("</section>");
    }

    let at = &r.attention;
    for (title, total, list, about) in [
        (
            "Needs attention",
            at.person_total,
            &at.person,
            "Failed for good, waiting for approval, without a licence, or held by mailwave with no later wave: a person must act (retry, approve, license, re-plan). Holds an operator placed are under Operator actions.",
        ),
        (
            "Will be retried by the run",
            at.retrying_total,
            &at.retrying,
            "Transient failures: the run retries these itself; nothing to do unless they stay.",
        ),
    ] {
        let _ = write!(
            o,
            "<section><h2>{} ({})</h2><p class=\"meta\">{}</p>",
            esc(title),
            th(total),
            esc(about)
        );
        if list.is_empty() {
            o.push_str(r#"<p class="empty">None.</p>"#);
        } else {
            if total as usize > list.len() {
                let _ = write!(
                    o,
                    "<p>The first {LISTED} are listed; <code>mailwave report --format csv</code> lists them all.</p>"
                );
            }
            table(
                &mut o,
                &[
                    ("mailbox", false),
                    ("wave", false),
                    ("state", false),
                    ("class", false),
                    ("the service's message", false),
                ],
                list.iter().map(|a| {
                    (
                        vec![
                            a.address.clone(),
                            a.wave.clone(),
                            a.state.to_string(),
                            a.class.clone().unwrap_or_default(),
                            a.reason.clone().unwrap_or_default(),
                        ],
                        false,
                    )
                }),
            );
        }
        o.push_str("</section>");
    }

    o.push_str("<section><h2>Waves</h2>");
    table(
        &mut o,
        &[
            ("wave", false),
            ("window", false),
            ("mailboxes", true),
            ("cut over", true),
            ("with warnings", true),
            ("in progress", true),
            ("not started", true),
            ("failed", true),
            ("held", true),
            ("skipped", true),
            ("capacity", true),
        ],
        r.status.waves.iter().map(|w| {
            let s = &w.states;
            (
                vec![
                    w.id.clone(),
                    super::md::window(r, &w.window_start, &w.window_end),
                    th(w.total),
                    th(s["completed"]),
                    th(s["completed_with_warning"]),
                    th(in_progress(s)),
                    th(s["planned"]),
                    th(s["failed"]),
                    th(s["held"]),
                    th(s["skipped"]),
                    th(w.capacity.max(0) as u64),
                ],
                false,
            )
        }),
    );
    o.push_str("</section>");

    if !r.failures.is_empty() {
        o.push_str("<section><h2>Failures by reason</h2>");
        table(
            &mut o,
            &[("class", false), ("reason", false), ("mailboxes", true)],
            r.failures.iter().map(|f| {
                (
                    vec![f.class.clone(), f.reason.clone(), th(f.mailboxes)],
                    false,
                )
            }),
        );
        o.push_str("</section>");
    }

    if r.analysis.total.moves > 0 {
        let _ = write!(
            o,
            "<section><h2>Move analytics</h2><pre>{}</pre></section>",
            esc(&crate::analytics::text(&r.analysis))
        );
    }

    let actions = r.action_rows();
    if !actions.is_empty() {
        o.push_str("<section><h2>Operator actions</h2>");
        table(
            &mut o,
            &[
                ("when", false),
                ("who", false),
                ("what", false),
                ("mailboxes", false),
                ("reason", false),
                ("outcome", false),
            ],
            actions.into_iter().map(|row| (row.to_vec(), false)),
        );
        o.push_str("</section>");
    }

    // The whole line is escaped below, then its `**` made bold.
    let runs = r.runs_in_words(str::to_string);
    if !runs.is_empty() {
        o.push_str(r#"<section><h2>Runs</h2><ul class="runs">"#);
        for run in runs {
            // The words mark the outcome in **bold**, as Markdown does.
            let mut text = esc(&run);
            while let (Some(a), true) = (text.find("**"), text.matches("**").count() >= 2) {
                text.replace_range(a..a + 2, "<b>");
                if let Some(b) = text.find("**") {
                    text.replace_range(b..b + 2, "</b>");
                }
            }
            let _ = write!(o, "<li>{}</li>", text.replace('`', ""));
        }
        o.push_str("</ul></section>");
    }
    let _ = writeln!(
        o,
        "<footer>mailwave {}: this file is self-contained (no scripts, no external references).</footer></main></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    o
}

fn cutovers(r: &Report) -> String {
    let waves = &r.status.waves;
    let about =
        "Each wave's mailboxes by where they stand; the dark tick is the window's capacity.";
    let chart = (!waves.is_empty()).then(|| {
        let cats: Vec<String> = waves
            .iter()
            .map(|w| {
                w.window_start
                    .parse::<jiff::Timestamp>()
                    .map(|t| r.day(t))
                    .unwrap_or_else(|_| w.date.clone())
            })
            .collect();
        let layer = |name, color, f: &dyn Fn(&crate::store::status::StateCounts) -> u64| Layer {
            name,
            color,
            values: waves.iter().map(|w| f(&w.states) as f64).collect(),
        };
        svg::columns(
            "chart-cutovers",
            "Cut-overs per window against capacity",
            &cats,
            &[
                layer("cut over", GREEN, &cut_over),
                layer("in progress", LIGHT_BLUE, &in_progress),
                layer("failed or held", RED, &|s| s["failed"] + s["held"]),
                layer("not started or skipped", GREY, &|s| {
                    s["planned"] + s["skipped"]
                }),
            ],
            Some(&Layer {
                name: "capacity",
                color: DARK,
                values: waves.iter().map(|w| w.capacity.max(0) as f64).collect(),
            }),
            None,
            &count,
        )
    });
    figure(
        "Cut-overs per window against capacity",
        about,
        &[
            ("cut over", GREEN),
            ("in progress", LIGHT_BLUE),
            ("failed or held", RED),
            ("not started or skipped", GREY),
            ("capacity", DARK),
        ],
        chart,
    )
}

fn progress(r: &Report) -> String {
    let (plan, done) = r.progress();
    let waves = &r.status.waves;
    let starts: Vec<jiff::Timestamp> = waves
        .iter()
        .filter_map(|w| w.window_start.parse().ok())
        .collect();
    let chart = (!plan.is_empty()).then(|| {
        let first = starts
            .iter()
            .copied()
            .chain(
                done.first()
                    .map(|d| d.0 - jiff::SignedDuration::from_hours(1)),
            )
            .min()
            .unwrap_or(r.now);
        let last = plan.last().map_or(r.now, |p| p.0).max(r.now);
        // The plan climbs inside each window and stays flat between them.
        let mut plan_line = vec![(first, 0.0)];
        let mut sorted: Vec<(jiff::Timestamp, jiff::Timestamp, u64)> = waves
            .iter()
            .filter_map(|w| {
                Some((
                    w.window_start.parse().ok()?,
                    w.window_end.parse().ok()?,
                    w.total,
                ))
            })
            .collect();
        sorted.sort();
        let mut sum = 0u64;
        for (s, e, n) in sorted {
            plan_line.push((s, sum as f64));
            sum += n;
            plan_line.push((e, sum as f64));
        }
        // Flat between the hours with cut-overs, climbing within them.
        let mut done_line = vec![(first, 0.0)];
        let mut before = 0.0;
        for &(end, n) in &done {
            done_line.push((end - jiff::SignedDuration::from_hours(1), before));
            before = n as f64;
            done_line.push((end, before));
        }
        if let Some(&(_, n)) = done.last() {
            done_line.push((r.now.min(last), n as f64));
        }
        let day = |t| r.day(t);
        svg::lines(
            "chart-progress",
            "Cumulative cut-overs against the plan",
            &[
                Line {
                    name: "planned",
                    color: DARK,
                    points: plan_line,
                    dashed: true,
                    area: false,
                },
                Line {
                    name: "cut over",
                    color: GREEN,
                    points: done_line,
                    dashed: false,
                    area: true,
                },
            ],
            (first, last),
            Some(r.now),
            &day,
            &count,
        )
    });
    figure(
        "Progress against the plan",
        "Mailboxes cut over so far against what the plan has cut over by each window's close.",
        &[("planned (dashed)", DARK), ("cut over", GREEN)],
        chart,
    )
}

fn failures(r: &Report) -> String {
    const SHOWN: usize = 10;
    let mut rows: Vec<(String, f64, &str)> = r
        .failures
        .iter()
        .take(SHOWN)
        .map(|f| {
            let color = match f.class.as_str() {
                "transient" => AMBER,
                "needs_approval" => BLUE,
                _ => RED,
            };
            (
                format!("{} ({})", f.reason, f.class),
                f.mailboxes as f64,
                color,
            )
        })
        .collect();
    let rest: u64 = r.failures.iter().skip(SHOWN).map(|f| f.mailboxes).sum();
    if rest > 0 {
        rows.push(("every other reason".into(), rest as f64, GREY));
    }
    let chart = (!rows.is_empty())
        .then(|| svg::bars("chart-failures", "Failures by reason", &rows, &count));
    figure(
        "Failures by reason",
        if chart.is_some() {
            "Failed mailboxes by the service's error type."
        } else {
            "No mailbox has failed."
        },
        &[
            ("needs a person", RED),
            ("transient: the run retries", AMBER),
            ("needs approval", BLUE),
        ],
        chart,
    )
}

fn throughput(r: &Report) -> String {
    let (buckets, hours) = r.throughput();
    let chart = (buckets.len() >= 2).then(|| {
        let from = buckets[0].0;
        let to = buckets[buckets.len() - 1].0 + jiff::SignedDuration::from_hours(hours);
        let label = |t: jiff::Timestamp| {
            if hours >= 24 {
                r.day(t)
            } else {
                t.round(jiff::Unit::Hour)
                    .unwrap_or(t)
                    .to_zoned(r.tz.clone())
                    .strftime("%-d %b %H:00")
                    .to_string()
            }
        };
        svg::lines(
            "chart-throughput",
            "Data copied, GB an hour",
            &[Line {
                name: "GB copied an hour",
                color: BLUE,
                points: buckets,
                dashed: false,
                area: true,
            }],
            (from, to),
            None,
            &label,
            &|v| format!("{v:.0}"),
        )
    });
    figure(
        "Throughput (GB an hour)",
        &if chart.is_some() {
            format!(
                "Data the moves copied, per hour (averaged over {hours} h): each move's bytes spread over its initial seeding."
            )
        } else {
            "No move figures yet: a run reads them as moves finish (run.collect_statistics).".into()
        },
        &[("GB an hour", BLUE)],
        chart,
    )
}

fn stalls(r: &Report) -> String {
    let rows: Vec<(String, f64, &str)> = r
        .stalls()
        .into_iter()
        .map(|(cause, side, share)| {
            let color = match side {
                Side::Source => PURPLE,
                Side::Target => BLUE,
                Side::Either => BROWN,
            };
            (
                format!("{cause}, {}", side_name(side)),
                100.0 * share,
                color,
            )
        })
        .collect();
    let chart = (!rows.is_empty()).then(|| {
        svg::bars("chart-stalls", "Stall time by cause", &rows, &|v| {
            format!("{v:.2}%")
        })
    });
    figure(
        "Stall time by cause",
        if chart.is_some() {
            "Time moves spent stalled, by cause, as a share of their time in progress."
        } else {
            "No stalls measured yet."
        },
        &[
            ("source side", PURPLE),
            ("target side", BLUE),
            ("either side", BROWN),
        ],
        chart,
    )
}

fn forecast_chart(r: &Report) -> String {
    let chart = r
        .forecast
        .as_ref()
        .filter(|f| !f.base.waves.is_empty())
        .map(|f| {
            let waves = &f.base.waves;
            let cats: Vec<String> = waves.iter().map(|w| r.day(w.window_start)).collect();
            let pick = |risky: bool| Layer {
                name: if risky { "at risk" } else { "ready" },
                color: if risky { AMBER } else { GREEN },
                values: waves
                    .iter()
                    .map(|w| {
                        if w.risk.is_some() == risky {
                            100.0 * w.ready_share
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            };
            svg::columns(
                "chart-forecast",
                "Share of each coming wave expected ready when its window opens",
                &cats,
                &[pick(false), pick(true)],
                None,
                Some((100.0 * f.ready_target, "target")),
                &|v| format!("{v:.0}%"),
            )
        });
    figure(
        "Forecast: ready when the window opens",
        &match &r.forecast {
            Some(f) if chart.is_some() => format!(
                "Share of each coming wave expected copied by its window (made {}; {}).",
                r.forecast_made(),
                f.basis
            ),
            Some(_) => "The forecast has no wave still to come.".into(),
            None => r.no_forecast(),
        },
        &[("ready", GREEN), ("at risk", AMBER), ("target", RED)],
        chart,
    )
}
