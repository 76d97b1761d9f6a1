//! The reports of an NHSmail-scale estate halfway through its plan: `cargo bench --bench report`
//! (MAILWAVE_BENCH_MAILBOXES to change the size). The release binary writes each format as an
//! operator runs it; the state is made by SQL (the first half of the waves cut over with their move
//! figures, 1% of those failed, the next wave copying), so the bench takes minutes, not a run's ten.

mod common;

use common::*;
use mailwave::store::Store;

fn main() {
    let n = estate_size();
    let (work, config_path, config) = bench_project("");
    timed("setup: generate, import and plan", || {
        estate_with_plan(work.path(), n, &config.schedule)
    });
    let db = work.path().join("state/mailwave.db");
    let waves = Store::open_read_only(&db).unwrap().waves().unwrap();
    let half = &waves[waves.len() / 2];
    let now = half.window_start;
    timed(
        "setup: half the plan cut over, with move figures (SQL)",
        || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch(&format!(
            "BEGIN;
             UPDATE mailbox_state SET state = 5, attempts = 1,
                 submitted_at = (SELECT prestage_start FROM waves w WHERE w.id = wave_id),
                 synced_at = (SELECT prestage_start FROM waves w WHERE w.id = wave_id) + 3600000 * (1 + mailbox_id % 20),
                 completed_at = (SELECT window_start FROM waves w WHERE w.id = wave_id) + 60000 * (mailbox_id % 300),
                 updated_at = (SELECT window_start FROM waves w WHERE w.id = wave_id) + 60000 * (mailbox_id % 300)
               WHERE wave_id IN (SELECT id FROM waves WHERE window_end <= {now});
             UPDATE mailbox_state SET state = 7, failure_class = 'permanent',
                 last_error = 'MailboxReplicationPermanentException: Error: The mailbox''s source database is not available.'
               WHERE state = 5 AND mailbox_id % 100 = 7;
             UPDATE mailbox_state SET state = 2, submitted_at = {now} - 86400000, updated_at = {now}
               WHERE wave_id = (SELECT id FROM waves WHERE window_start = {now});
             INSERT INTO move_stats (mailbox_id, collected_at, status, total_size, bytes_transferred,
                 items_transferred, overall, queued, in_progress, idle, suspended, failed, transient_failure,
                 read_throttle, write_throttle, content_indexing, queued_at, started_at, seeded_at,
                 completed_at, complete_after, dcs, source_server, source_database, target_database)
               SELECT s.mailbox_id, s.completed_at, 'Completed', m.size_bytes, m.size_bytes * 105 / 100,
                 m.item_count, 90000.0, 600.0, 3600.0 * (1 + s.mailbox_id % 20), 0.0, 0.0, 0.0, 30.0,
                 60.0 * (s.mailbox_id % 7), 45.0 * (s.mailbox_id % 5), 20.0, s.submitted_at, s.submitted_at + 600000,
                 s.synced_at, s.completed_at, w.window_start, 'Perfect', 'EXCH' || (s.mailbox_id % 40),
                 m.source_database, 'GBRPR01DG' || (s.mailbox_id % 90)
               FROM mailbox_state s JOIN mailboxes m ON m.id = s.mailbox_id JOIN waves w ON w.id = s.wave_id
               WHERE s.state = 5;
             COMMIT;",
            now = now.as_millisecond()
        ))
        .unwrap();
        },
    );
    let clock = format!("scaled:1:{}:{now}", jiff::Timestamp::now());
    let binary = env!("CARGO_BIN_EXE_mailwave");
    let (status, took) = timed("forecast (for the reports to show)", || {
        std::process::Command::new(binary)
            .args(["--clock", &clock, "--state"])
            .arg(&db)
            .arg("--config")
            .arg(&config_path)
            .arg("forecast")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
    });
    assert!(status.success(), "forecast");
    let mut figures = vec![format!("forecast: {:.1} s", took.as_secs_f64())];
    for (format, file) in [
        ("md", "report.md"),
        ("html", "report.html"),
        ("csv", "report.csv"),
        ("json", "report.json"),
    ] {
        let out = work.path().join(file);
        let (status, took) = timed(&format!("report --format {format}"), || {
            std::process::Command::new(binary)
                .args(["--clock", &clock, "--state"])
                .arg(&db)
                .args(["report", "--format", format, "--out"])
                .arg(&out)
                .status()
                .unwrap()
        });
        assert!(status.success(), "report --format {format}");
        let size = std::fs::metadata(&out).unwrap().len();
        figures.push(format!(
            "{format}: {:.1} s, {:.1} MB",
            took.as_secs_f64(),
            size as f64 / 1e6
        ));
    }
    let html = std::fs::read_to_string(work.path().join("report.html")).unwrap();
    for id in mailwave::ui::report::CHARTS {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    println!(
        "REPORT {n} mailboxes, {} waves, halfway: {}",
        waves.len(),
        figures.join("; ")
    );
}
