//! The reports, from a plan stopped halfway on the simulator (waves done, one open, more to come,
//! failures, move figures and a forecast): the html file's structure and self-containment, the
//! Markdown saying the same, the rows round-tripping between csv and json, `--since`, and, where
//! Chromium is installed, the html laid out by a real browser at desktop and phone widths.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use mailwave::engine::RunOptions;
use mailwave::exchange::ExchangeClient;
use mailwave::sim::transport::LocalTransport;
use mailwave::sim::{Profile, Simulator};
use mailwave::store::Store;
use mailwave::time::Clock;
use mailwave::ui::report::CHARTS;

use crate::engine::{engine_config, run_session};
use crate::helpers::*;

/// A project stopped when its third wave's window opened, and the clock spec that makes the
/// command line agree it is that moment.
pub async fn halfway() -> (Project, String, Timestamp) {
    let p = Project::new(&engine_config(40, 80, ""));
    let plan = planned_estate(&p, 400, date(2027, 1, 4));
    let origin = plan.waves[0].prestage_start_utc - SignedDuration::from_hours(1);
    let clock = Clock::tokio(origin, 1.0);
    let profile = Profile {
        transient_failure_share: 0.03,
        permanent_failure_share: 0.03,
        ..Profile::default()
    };
    let sim = Arc::new(Simulator::new(profile, 7, clock).unwrap());
    {
        let store = Store::open_read_only(&p.db()).unwrap();
        sim.know_inventory(&store.load_inventory().unwrap().0);
    }
    let service = Arc::new(ExchangeClient::new(LocalTransport::new(sim), clock));
    let cut = plan.waves[2].window_start_utc + SignedDuration::from_mins(30);
    let summary = run_session(
        &p,
        clock,
        service,
        RunOptions {
            until: Some(cut),
            ..RunOptions::default()
        },
    )
    .await;
    assert_eq!(summary.outcome, "until", "{summary:#?}");
    let now = clock.now();
    let spec = format!("scaled:1:{}:{now}", Timestamp::now());
    (p, spec, now)
}

fn with_clock<'a>(spec: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--clock", spec];
    v.extend_from_slice(args);
    v
}

/// Every element and attribute that could fetch something from elsewhere, anywhere in the page.
fn external_references(doc: &roxmltree::Document) -> Vec<String> {
    const FETCHING: [&str; 10] = [
        "script", "link", "img", "iframe", "object", "embed", "video", "audio", "source", "image",
    ];
    let mut found = Vec::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        let name = n.tag_name().name();
        if FETCHING.contains(&name) {
            found.push(format!("<{name}>"));
        }
        for a in n.attributes() {
            let v = a.value().trim().to_ascii_lowercase();
            let fetches = ["src", "href", "srcset", "action", "poster", "data"].contains(&a.name())
                && !v.starts_with('#');
            if fetches || v.contains("url(") || v.contains("http:") || v.contains("https:") {
                found.push(format!("{name} {}={:?}", a.name(), a.value()));
            }
        }
        if name == "style" {
            let css = n.text().unwrap_or("").to_ascii_lowercase();
            if css.contains("url(") || css.contains("@import") || css.contains("@font-face") {
                found.push("a stylesheet that fetches".into());
            }
        }
    }
    found
}

#[tokio::test(start_paused = true)]
async fn the_reports_show_a_plan_halfway_and_say_the_same_in_every_format() {
    let (p, spec, now) = halfway().await;
    let out = p.run(&with_clock(&spec, &["forecast"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let db = Store::open_read_only(&p.db()).unwrap();
    let status = db.status(now, None).unwrap();
    let done = status.totals["completed"] + status.totals["completed_with_warning"];
    let started = ["submitted", "syncing", "synced", "completing"]
        .iter()
        .map(|s| status.totals[*s])
        .sum::<u64>();
    assert!(
        done > 0 && started > 0 && status.totals["planned"] > 0,
        "{status:#?}"
    );
    assert!(
        status.totals["failed"] > 0,
        "the profile fails some: {status:#?}"
    );

    // html: one well-formed, self-contained file with every chart drawn.
    let out = p.run(&with_clock(
        &spec,
        &["report", "--format", "html", "--out", "r.html"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(p.path("r.html")).unwrap();
    let doc = html_report(&html);
    assert_eq!(external_references(&doc), Vec::<String>::new());
    for id in CHARTS {
        let svg = doc
            .descendants()
            .find(|n| n.attribute("id") == Some(id))
            .unwrap_or_else(|| panic!("chart {id} missing"));
        assert_eq!(svg.tag_name().name(), "svg", "{id}");
        let shapes = svg
            .descendants()
            .filter(|n| ["rect", "polyline", "polygon"].contains(&n.tag_name().name()))
            .count();
        assert!(shapes >= 2, "{id} draws {shapes} shapes");
    }
    let text_of = |n: roxmltree::Node| {
        n.descendants()
            .filter(|t| t.is_text())
            .filter_map(|t| t.text())
            .collect::<String>()
    };
    let tiles: BTreeMap<String, String> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("tile"))
        .map(|n| {
            let mut parts = n.children().filter(|c| c.is_element()).map(text_of);
            (parts.next().unwrap(), parts.next().unwrap())
        })
        .collect();
    let th = |n: u64| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    assert!(tiles["cut over"].starts_with(&th(done)), "{tiles:?}");
    assert_eq!(tiles["in progress (started)"], th(started), "{tiles:?}");
    assert_eq!(tiles["not started"], th(status.totals["planned"]));
    assert!(tiles.contains_key("forecast finish"), "{tiles:?}");
    assert!(html.contains("No run was going"));
    assert!(html.contains("Will be retried by the run"));

    // md: the same figures and the same sections, as text.
    let out = p.run(&with_clock(&spec, &["report"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let md = stdout(&out);
    for (label, value) in &tiles {
        assert!(
            md.contains(&format!("- **{label}**: {value}")),
            "md lacks {label}: {value}\n{md}"
        );
    }
    for section in [
        "## Waves",
        "## Progress against the plan",
        "## Failures by reason",
        "## Throughput",
        "## Stall time by cause",
        "## Move analytics",
        "## Forecast",
        "## Runs",
    ] {
        assert!(md.contains(section), "md lacks {section}\n{md}");
    }
    assert!(md.contains(": **until**. It cut over"), "{md}");

    // A report written while a run holds the lock says so.
    {
        let _lock = mailwave::store::lock::RunLock::acquire(&p.db(), "mailwave run").unwrap();
        let out = p.run(&with_clock(&spec, &["report", "--format", "html"]));
        assert!(stdout(&out).contains("A run is going"), "{}", stderr(&out));
    }

    // csv and json: the same rows, the move figures included.
    let out = p.run(&with_clock(
        &spec,
        &["report", "--format", "csv", "--out", "all.csv"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.run(&with_clock(&spec, &["report", "--format", "json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut csv = csv::Reader::from_path(p.path("all.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), json.len());
    assert_eq!(json.len() as u64, status.mailboxes);
    let plain = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut with_figures = 0;
    for (rec, row) in records.iter().zip(&json) {
        for (h, cell) in headers.iter().zip(rec.iter()) {
            let value = match h.strip_prefix("move_") {
                Some(f) => row["move"].get(f).map(plain).unwrap_or_default(),
                None => plain(&row[h]),
            };
            assert_eq!(cell, value, "{h} of {}", row["address"]);
        }
        if row["state"] == "completed" {
            with_figures += 1;
            let m = &row["move"];
            assert_eq!(m["status"], "Completed", "{row}");
            assert!(m["bytes_transferred"].as_u64().unwrap() > 0, "{row}");
            assert!(m["in_progress_s"].as_f64().unwrap() > 0.0, "{row}");
            assert!(
                m["completed_at"]
                    .as_str()
                    .unwrap()
                    .parse::<Timestamp>()
                    .is_ok()
            );
        }
    }
    assert!(with_figures > 0);

    // --since: only the mailboxes whose state changed since then.
    let since = now - SignedDuration::from_hours(2);
    let changed = rusqlite::Connection::open(p.db())
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM mailbox_state WHERE updated_at >= ?1",
            [since.as_millisecond()],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize;
    let out = p.run(&with_clock(
        &spec,
        &["report", "--format", "json", "--since", "2h"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let recent: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        changed > 0 && changed < json.len(),
        "{changed} of {}",
        json.len()
    );
    // The command's clock moved on a little since `now`: a row or two may join.
    assert!(
        recent.len() >= changed && recent.len() <= changed + 2,
        "{} rows, {changed} changed",
        recent.len()
    );
    let out = p.run(&with_clock(&spec, &["report", "--since", "yesterday"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--since"), "{}", stderr(&out));

    in_a_browser(&p.path("r.html"));
}

/// Where Chromium is installed: the report laid out at desktop and phone widths, measured by a
/// script added to a copy (the report itself has none): no sideways scrolling, every chart inside
/// the page and wide enough to read, no chart text below 6 px, no two labels of a chart meeting,
/// the "now" mark inside its chart; at 390 px the headline tiles in two columns, and wide tables
/// scrolling inside their own box with the service's message wrapped.
fn in_a_browser(report: &Path) {
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        // CI installs Chromium and sets this, so a browser check skipped there is a failure.
        assert!(
            std::env::var_os("MAILWAVE_REQUIRE_BROWSER").is_none_or(|v| v != "1"),
            "MAILWAVE_REQUIRE_BROWSER=1 and no Chromium installed: the html report was not checked in a browser"
        );
        println!("NOTE: no Chromium installed; the html report was not checked in a browser");
        return;
    };
    let probe = format!(
        r#"<script>
addEventListener('load', () => {{
  const ids = {ids:?};
  const w = innerWidth;
  const out = {{ width: w, scroll: document.documentElement.scrollWidth, charts: {{}}, smallest: 99 }};
  for (const id of ids) {{
    const r = document.getElementById(id).getBoundingClientRect();
    out.charts[id] = [r.left, r.right, r.width, r.height];
  }}
  for (const t of document.querySelectorAll('svg text')) {{
    const h = parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a;
    out.smallest = Math.min(out.smallest, h);
  }}
  out.overlaps = [];
  out.now = [];
  for (const svg of document.querySelectorAll('svg')) {{
    const box = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()]);
    for (let i = 0; i < texts.length; i++) {{
      for (let j = i + 1; j < texts.length; j++) {{
        const [a, ra] = texts[i], [b, rb] = texts[j];
        const x = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
        const y = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
        if (x > 0.5 && y > 0.5) out.overlaps.push(svg.id + ': ' + a + ' / ' + b);
      }}
    }}
    for (const [t, r] of texts.filter(([t]) => t === 'now')) {{
      out.now.push([svg.id, r.left >= box.left - 0.5 && r.right <= box.right + 0.5]);
    }}
  }}
  const tiles = document.querySelector('.tiles');
  out.tile_columns = getComputedStyle(tiles).gridTemplateColumns.split(' ').length;
  out.tables = [...document.querySelectorAll('.scroll > table')].map(t => {{
    const s = t.parentElement;
    return [s.getBoundingClientRect().right, s.scrollWidth > s.clientWidth];
  }});
  out.messages = [...document.querySelectorAll('td.msg')].map(td => [
    getComputedStyle(td).whiteSpace, td.getBoundingClientRect().width]);
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  parent.document.body.appendChild(pre);
}});
</script></body>"#,
        ids = CHARTS
    );
    let html = std::fs::read_to_string(report)
        .unwrap()
        .replace("</body>", &probe);
    // Headless Chromium will not make a window narrower than 500 px: the page goes in a frame
    // of the width wanted, and the probe reports to the frame's parent.
    let srcdoc = html.replace('&', "&amp;").replace('"', "&quot;");
    let copy = report.with_file_name("probe.html");
    for (width, least) in [(1280, 500.0_f64), (390, 300.0)] {
        std::fs::write(
            &copy,
            format!(
                r#"<!DOCTYPE html><html><body style="margin:0"><iframe style="border:0;width:{width}px;height:900px" srcdoc="{srcdoc}"></iframe></body></html>"#
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                &format!("--window-size={},1000", width + 40),
                "--virtual-time-budget=5000",
                "--dump-dom",
            ])
            .arg(&copy)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
            s
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "Chromium did not finish in 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let dom = reader.join().unwrap();
        let json = dom
            .split("<pre id=\"probe\">")
            .nth(1)
            .and_then(|s| s.split("</pre>").next())
            .unwrap_or_else(|| panic!("no probe output at {width}px: {dom:.500}"))
            .replace("&quot;", "\"");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        println!("browser at {width}px: {v}");
        let page = v["width"].as_f64().unwrap();
        assert!(
            v["scroll"].as_f64().unwrap() <= page + 1.0,
            "the page scrolls sideways at {width}px: {v}"
        );
        for id in CHARTS {
            let r = &v["charts"][id];
            let (left, right, w, h) = (
                r[0].as_f64().unwrap(),
                r[1].as_f64().unwrap(),
                r[2].as_f64().unwrap(),
                r[3].as_f64().unwrap(),
            );
            assert!(
                left >= 0.0 && right <= page + 1.0,
                "{id} outside the page at {width}px: {v}"
            );
            assert!(
                w >= least.min(page - 60.0) && h > 40.0,
                "{id} at {width}px: {v}"
            );
        }
        assert!(
            v["smallest"].as_f64().unwrap() >= 6.0,
            "chart text too small at {width}px: {v}"
        );
        assert_eq!(
            v["overlaps"],
            serde_json::json!([]),
            "chart labels meet at {width}px"
        );
        let now = v["now"].as_array().unwrap();
        assert!(!now.is_empty(), "a chart marks now: {v}");
        assert!(
            now.iter().all(|n| n[1] == true),
            "the now mark leaves its chart at {width}px: {v}"
        );
        for t in v["tables"].as_array().unwrap() {
            assert!(
                t[0].as_f64().unwrap() <= page + 1.0,
                "a table's box leaves the page at {width}px: {v}"
            );
        }
        let messages = v["messages"].as_array().unwrap();
        assert!(!messages.is_empty(), "the service's messages are listed");
        for m in messages {
            assert_eq!(m[0], "normal", "a message is wrapped: {v}");
            assert!(m[1].as_f64().unwrap() <= page, "{v}");
        }
        if width == 390 {
            assert_eq!(v["tile_columns"], 2, "headline tiles at 390px: {v}");
            assert!(
                v["tables"].as_array().unwrap().iter().any(|t| t[1] == true),
                "a wide table scrolls in its own box at 390px: {v}"
            );
        }
    }
}

/// Where a person reads a time, `YYYY-MM-DDTHH:MM` machine times that slipped through.
fn machine_times(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    (0..b.len())
        .filter(|&i| {
            [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15]
                .iter()
                .all(|&k| digit(i + k))
                && b.get(i + 4) == Some(&b'-')
                && b.get(i + 10) == Some(&b'T')
        })
        .map(|i| text[i..(i + 20).min(text.len())].to_string())
        .collect()
}

/// One time format for people, in the plan's zone with its abbreviation, in status, watch, the
/// forecast and the reports; RFC 3339 UTC in JSON and csv.
#[tokio::test(start_paused = true)]
async fn people_read_times_in_the_plans_zone_and_machines_in_utc() {
    let (p, spec, now) = halfway().await;
    let db = Store::open_read_only(&p.db()).unwrap();
    let status = db.status(now, None).unwrap();
    let next = status.next_wave.clone().unwrap();
    let london = jiff::tz::TimeZone::get("Europe/London").unwrap();
    let next_local = mailwave::format::local(next.window_start.parse().unwrap(), &london);
    assert!(next_local.ends_with(" GMT"), "{next_local}");
    let run = |args: &[&str]| {
        let out = p.run(&with_clock(&spec, args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let forecast = run(&["forecast"]);
    let text = run(&["status"]);
    assert!(
        text.contains(&format!("cuts over from {next_local}")),
        "{text}"
    );
    let watch = run(&["watch", "--once"]);
    assert!(
        watch.contains(&format!("next cut-over {} at {next_local}", next.id)),
        "{watch}"
    );
    let md = run(&["report"]);
    for (what, text) in [
        ("forecast", &forecast),
        ("status", &text),
        ("watch", &watch),
        ("report", &md),
    ] {
        assert!(
            machine_times(text).is_empty(),
            "{what} shows machine times: {:?}\n{text}",
            machine_times(text)
        );
    }
    // JSON and csv: RFC 3339 UTC.
    let json: serde_json::Value = serde_json::from_str(&run(&["status", "--json"])).unwrap();
    assert!(
        json["next_wave"]["window_start"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let finish_at = json["forecast"]["finish_at"].as_str().unwrap();
    assert!(finish_at.parse::<Timestamp>().is_ok(), "{finish_at}");
    let csv = run(&["report", "--format", "csv"]);
    assert!(!machine_times(&csv).is_empty());
    assert!(!csv.contains(" GMT"), "csv keeps to UTC");
}

/// The text of an html report, without its markup.
fn html_text(html: &str) -> String {
    let doc = roxmltree::Document::parse_with_options(
        html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap();
    doc.descendants()
        .filter(|t| t.is_text())
        .filter_map(|t| t.text())
        .collect::<Vec<_>>()
        .join(" ")
}

/// "No forecast" is said once; a forecast is shown with its age, and said to be older than the
/// last run when a run has gone since; a forecast of waves that have all opened is left out.
#[tokio::test(start_paused = true)]
async fn a_forecast_shows_its_age_and_is_left_out_once_it_says_nothing() {
    let (p, spec, now) = halfway().await;
    let html = |spec: &str| {
        let out = p.run(&with_clock(spec, &["report", "--format", "html"]));
        assert!(out.status.success(), "{}", stderr(&out));
        html_text(&stdout(&out))
    };
    let text = html(&spec);
    assert_eq!(
        text.matches("No forecast").count(),
        1,
        "said once, not in the caption and again below it: {text}"
    );

    let out = p.run(&with_clock(&spec, &["forecast"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = html(&spec);
    assert!(!text.contains("No forecast"), "{text}");
    assert!(!text.contains("before the last run"), "{text}");
    assert!(text.contains("minutes ago"), "its age: {text}");

    // A run (here, a hold applied with no run going) after the forecast: it is labelled.
    let planned = Store::open_read_only(&p.db())
        .unwrap()
        .status(now, None)
        .unwrap()
        .waves
        .iter()
        .rev()
        .find(|w| w.states["planned"] > 0)
        .map(|w| w.id.clone())
        .unwrap();
    let someone = Store::open_read_only(&p.db())
        .unwrap()
        .wave_addresses(&planned)
        .unwrap()[0]
        .clone();
    let out = p.run(&with_clock(
        &spec,
        &["mailbox", "hold", &someone, "--split"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = html(&spec);
    assert!(
        text.contains("before the last run (run `mailwave forecast` again)"),
        "{text}"
    );
    assert!(
        text.contains("forecast finish (made before the last run)"),
        "{text}"
    );

    // A month on, every wave it covers has opened: it is left out, and the report says why.
    let later = format!(
        "scaled:1:{}:{}",
        Timestamp::now(),
        now + SignedDuration::from_hours(24 * 30)
    );
    let text = html(&later);
    assert!(!text.contains("forecast finish"), "{text}");
    assert_eq!(text.matches("No forecast").count(), 1, "{text}");
    assert!(text.contains("every wave of the last one"), "{text}");
    let out = p.run(&with_clock(&later, &["report"]));
    let md = stdout(&out);
    assert!(
        md.contains("## Forecast\n\nNo forecast: every wave of the last one")
            && !md.contains("ready when it opens"),
        "{md}"
    );
}

/// 60 mailboxes run to the end without failures on the paused clock, and a clock spec an hour
/// after the last window closed.
async fn finished_estate() -> (Project, String) {
    let p = Project::new(&engine_config(40, 80, ""));
    let outcome = crate::engine::run_to_end(
        &p,
        60,
        date(2027, 1, 4),
        Profile {
            transient_failure_share: 0.0,
            permanent_failure_share: 0.0,
            dcs_investigate_share: 0.0,
            dcs_poor_share: 0.0,
            ..Profile::default()
        },
        RunOptions::default(),
    )
    .await;
    assert_eq!(outcome.summary.outcome, "finished");
    let end = outcome.plan.waves.last().unwrap().window_end_utc + SignedDuration::from_hours(1);
    let spec = format!("scaled:1:{}:{end}", Timestamp::now());
    (p, spec)
}

/// A forecast made once nothing is left to move forecasts nothing: the reports leave it out.
#[tokio::test(start_paused = true)]
async fn a_forecast_of_a_finished_estate_is_left_out() {
    let (p, spec) = finished_estate().await;
    let out = p.run(&with_clock(&spec, &["forecast"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.run(&with_clock(&spec, &["report", "--format", "html"]));
    let text = html_text(&stdout(&out));
    assert!(!text.contains("forecast finish"), "{text}");
    assert_eq!(
        text.matches("No forecast: nothing is left to move.")
            .count(),
        1,
        "{text}"
    );
    // The md report says why it has no forecast, as the html does (commit ce50295), and shows none.
    let out = p.run(&with_clock(&spec, &["report"]));
    let md = stdout(&out);
    assert!(!md.contains("The estate finishes"), "{md}");
    assert_eq!(
        md.matches("## Forecast\n\nNo forecast: nothing is left to move.")
            .count(),
        1,
        "{md}"
    );
}

/// The md report of a finished estate as an operator reads it: a fixed estate, seed and paused
/// clock, printed at a fixed time, compared with its committed snapshot (tests/it/snapshots/). The
/// database's temporary path is the one thing that differs between runs, and is masked.
#[tokio::test(start_paused = true)]
async fn the_md_report_reads_as_it_did() {
    let (p, spec) = finished_estate().await;
    let out = p.run(&with_clock(&spec, &["report"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let db = p.db().display().to_string();
    let md = stdout(&out).replace(&db, "[state/mailwave.db]");
    insta::assert_snapshot!(md);
}
