//! Property tests of every reader mailwave points at input it did not write: the inventory, delegate
//! and Graph report CSVs, the configuration, the bank-holiday JSON, plan folders, and every service
//! answer parser (the InvokeCommand envelope and errors, the token answer, Graph JSON, the
//! ByteQuantifiedSize). Each one gets mutations of the corpus in `tests/fuzz-corpus/<reader>/` (real
//! files and answers, edited byte by byte) and arbitrary bytes, a bounded number of cases each;
//! the property is that it answers, with a value or an error, and never panics. proptest keeps
//! any failing case in `proptest-regressions/`, which is committed. `cargo test` runs 256 cases of
//! each; `MAILWAVE_FUZZ_CASES=100000 cargo test --release fuzz` is a longer campaign.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;

fn corpus(reader: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(reader);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no corpus for {reader}");
    out
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let interesting = prop::sample::select(vec![
        b",".to_vec(),
        b"\"".to_vec(),
        b"\n".to_vec(),
        b"\r\n".to_vec(),
        b"\0".to_vec(),
        vec![0xff, 0xfe],
        b"{".to_vec(),
        b"]".to_vec(),
        b"@".to_vec(),
        b"\\u0000".to_vec(),
        b"99999999999999999999999".to_vec(),
        b"-1".to_vec(),
        b"null".to_vec(),
        "\u{202e}é".as_bytes().to_vec(),
    ]);
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), interesting).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), 1usize..256).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ];
    prop::collection::vec(edit, 0..8)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len().max(1);
        match e {
            Edit::Replace(i, b) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] = *b;
                }
            }
            Edit::Insert(i, b) => {
                let i = i % len.min(bytes.len() + 1);
                bytes.splice(i..i, b.iter().copied());
            }
            Edit::Delete(i, n) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    let end = (i + n).min(bytes.len());
                    bytes.drain(i..end);
                }
            }
            Edit::Duplicate(i, n) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    let end = (i + n).min(bytes.len());
                    let piece = bytes[i..end].to_vec();
                    bytes.splice(i..i, piece);
                }
            }
        }
    }
    bytes
}

/// Inputs for a reader: a corpus entry edited, or arbitrary bytes.
fn inputs(reader: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = corpus(reader).into_iter().map(|(_, b)| b).collect();
    prop_oneof![
        4 => (prop::sample::select(seeds), edits()).prop_map(|(s, e)| apply(s, &e)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Text that came in and is clean: no control characters, no longer than `max` characters.
fn clean(text: &str, max: usize) -> bool {
    text.chars().count() <= max && !text.chars().any(char::is_control)
}

/// `text` as Excel's "Unicode Text" saves it: UTF-16 LE after a byte-order mark.
fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in text.trim_start_matches('\u{feff}').encode_utf16() {
        out.extend(u.to_le_bytes());
    }
    out
}

/// `n` cases in `cargo test`; `MAILWAVE_FUZZ_CASES` for a longer campaign.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("MAILWAVE_FUZZ_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(n),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

#[test]
fn every_corpus_entry_reads_as_it_is() {
    // The seeds themselves: each one a reader accepts or refuses by design, without a panic.
    for reader in [
        "inventory",
        "delegates",
        "config",
        "holidays",
        "plan",
        "envelope",
        "error",
        "token",
        "graph",
        "bytes",
    ] {
        assert!(!corpus(reader).is_empty());
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in corpus("inventory") {
        let path = file_with(dir.path(), &name, &bytes);
        let _ = mailwave::inventory::read_mailboxes(&path, &Default::default());
    }
    let good = corpus("envelope");
    assert!(
        good.iter()
            .all(|(_, b)| mailwave::exchange::rest::read_success(b).is_ok())
    );
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn inventories_and_usage_reports(bytes in inputs("inventory")) {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), "inventory.csv", &bytes);
        for skip_invalid in [false, true] {
            let opts = mailwave::inventory::ImportOptions { skip_invalid, ..Default::default() };
            if let Ok((inv, rejected)) = mailwave::inventory::read_mailboxes(&path, &opts) {
                prop_assert!(skip_invalid || rejected.is_empty());
                prop_assert!(inv.mailboxes.iter().all(|m| m.address.contains('@')));
                // Everything read is clean where it was read.
                for m in &inv.mailboxes {
                    prop_assert!(clean(&m.address, 320), "{:?}", m.address);
                    prop_assert!(m.display_name.as_deref().is_none_or(|d| clean(d, 256)), "{:?}", m.display_name);
                }
                prop_assert!(inv.organisations.iter().all(|o| clean(o, 256)));
                prop_assert!(rejected.iter().all(|r| clean(&r.raw, 500) && clean(&r.column, 4096)));
            }
        }
        let _ = mailwave::inventory::check_not_concealed(bytes.as_slice());
        // The same text saved as Excel's Unicode Text reads the same.
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let wide = file_with(dir.path(), "unicode.txt", &utf16le(text));
            let opts = mailwave::inventory::ImportOptions { skip_invalid: true, ..Default::default() };
            let narrow = mailwave::inventory::read_mailboxes(&path, &opts).map(|(inv, r)| (inv.mailboxes, r.len()));
            let wide = mailwave::inventory::read_mailboxes(&wide, &opts).map(|(inv, r)| (inv.mailboxes, r.len()));
            prop_assert_eq!(narrow.ok(), wide.ok());
        }
    }

    #[test]
    fn delegates(bytes in inputs("delegates")) {
        let dir = tempfile::tempdir().unwrap();
        let estate = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/estate.csv")).unwrap();
        let inv_path = file_with(dir.path(), "estate.csv", &estate);
        let (mut inv, _) = mailwave::inventory::read_mailboxes(&inv_path, &Default::default()).unwrap();
        let path = file_with(dir.path(), "delegates.csv", &bytes);
        let opts = mailwave::inventory::ImportOptions { skip_invalid: true, ..Default::default() };
        if mailwave::inventory::read_delegates(&path, &mut inv, &opts).is_ok() {
            let n = inv.mailboxes.len() as u32;
            prop_assert!(inv.delegations.iter().all(|&(a, b)| a < n && b < n && a != b));
        }
    }

    #[test]
    fn configurations(bytes in inputs("config")) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = mailwave::config::Config::parse(Path::new("mailwave.toml"), &text) {
            // An error names the file; a secret in the file is never echoed.
            prop_assert!(e.to_string().starts_with("mailwave.toml"));
        }
    }

    #[test]
    fn bank_holidays(bytes in inputs("holidays")) {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(dir.path(), "holidays.json", &bytes);
        let _ = mailwave::plan::calendar::read_bank_holidays(&path, "england-and-wales");
    }

    #[test]
    fn plan_folders(plan in inputs("plan"), batch in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in corpus("plan") {
            if name != "plan.json" {
                file_with(dir.path(), &name, &bytes);
            }
        }
        file_with(dir.path(), "plan.json", &plan);
        let _ = mailwave::plan::files::read(dir.path());
        file_with(dir.path(), "mw-2027-01-05.b001.csv", &batch);
        let _ = mailwave::plan::files::read(dir.path());
    }

    #[test]
    fn invokecommand_answers(bytes in inputs("envelope")) {
        if let Ok(page) = mailwave::exchange::rest::read_success(&bytes) {
            let _ = page.read::<Value>("Get-MoveRequest");
            for v in page.read::<Value>("Get-MoveRequest").unwrap_or_default() {
                let r = mailwave::exchange::parse_request(&v);
                prop_assert!(clean(&r.identity, 320) && clean(&r.display_name, 256) && clean(&r.batch_name, 256));
                let _ = mailwave::exchange::parse_statistics(&v);
            }
        }
        let v = json(&bytes);
        let s = mailwave::exchange::parse_statistics(&v);
        prop_assert!(clean(&s.message, 4096) && clean(&s.request.display_name, 256));
        prop_assert!(s.failure.as_ref().is_none_or(|f| clean(&f.message, 4096)));
        prop_assert!(s.figures.source_server.as_deref().is_none_or(|n| clean(n, 256)));
    }

    #[test]
    fn error_answers(bytes in inputs("error"), status in prop::sample::select(vec![0u16, 200, 302, 400, 401, 403, 404, 429, 500, 502, 503, 504, 999]), retry in prop::option::of("[0-9.e+-]{0,12}")) {
        let v = json(&bytes);
        let body = (!bytes.is_empty()).then_some(&v);
        let e = mailwave::exchange::error::classify(status, body, retry.as_deref(), "New-MoveRequest", false);
        prop_assert!(clean(&e.to_string(), 4096 + 300), "{}", e);
        let (kind, text) = mailwave::exchange::error::reason(&v);
        prop_assert!(clean(&kind, 256) && clean(&text, 4096));
        let g = mailwave::directory::classify(status, body, retry.as_deref());
        prop_assert!(clean(&g.to_string(), 4096 + 300), "{}", g);
        if let mailwave::exchange::ServiceError::Throttled { retry_after } = g {
            prop_assert!(retry_after <= std::time::Duration::from_secs(86_400));
        }
    }

    #[test]
    fn token_answers(bytes in inputs("token")) {
        if let Ok((token, lifetime)) = mailwave::auth::parse_token_answer(&String::from_utf8_lossy(&bytes)) {
            prop_assert!(!token.is_empty());
            prop_assert!((0..=86_400).contains(&lifetime));
        }
    }

    #[test]
    fn graph_json(bytes in inputs("graph")) {
        let v = json(&bytes);
        let user = mailwave::directory::User::from_json(&v);
        prop_assert!(clean(&user.user_principal_name, 320) && user.mail.as_deref().is_none_or(|m| clean(m, 320)));
        let sku = mailwave::directory::Sku::from_json(&v);
        let _ = mailwave::directory::has_exchange_licence(&user, &[sku]);
    }

    #[test]
    fn byte_quantified_sizes(bytes in inputs("bytes"), n in any::<u64>()) {
        let _ = mailwave::exchange::parse_byte_quantified(&json(&bytes));
        // What the service writes reads back exactly.
        let written = Value::String(mailwave::sim::moves::byte_quantified(n));
        prop_assert_eq!(mailwave::exchange::parse_byte_quantified(&written), Some(n));
    }
}

// ---- operator input that must never end in a panic (issue 20, finding 7) ----------------------

/// A duration as an operator may write one: any number, any unit, or none.
fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[0-9]{1,25}",
        Just("999999999999999".to_string()),
    ];
    let unit = prop::sample::select(vec![
        "d", "h", "m", "s", "ms", "", " d", "days", "y", "w", "dd",
    ]);
    prop_oneof![
        4 => (number, unit).prop_map(|(n, u)| format!("{n}{u}")),
        1 => "\\PC{0,12}",
    ]
}

/// A 22-byte name shaped like a batch file, with multi-byte characters anywhere in it.
fn batch_like_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "mw-[0-9é€]{4}-[0-9é]{2}-[0-9é]{2}[.é]b[0-9é]{3}\\.csv",
        "\\PC{0,30}",
        prop::collection::vec(any::<u8>(), 0..30)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn config_durations(d in duration_text(), key in 0usize..10) {
        let text = match key {
            0 => format!("[notices]\nbefore = [{d:?}]\n"),
            1 => format!("[licences]\nbefore = {d:?}\n"),
            _ => {
                let k = ["resume_backoff", "prestage_poll", "cutover_poll", "cutover_margin",
                         "stop_grace", "unreachable_timeout", "call_timeout", "action_poll"][key - 2];
                format!("[run]\n{k} = {d:?}\n")
            }
        };
        match mailwave::config::Config::parse(Path::new("mailwave.toml"), &text) {
            Ok(c) => {
                let most = jiff::SignedDuration::from_hours(24 * 60);
                prop_assert!(c.notices.before.iter().all(|b| b.is_positive() && *b <= most));
                prop_assert!(c.licences.before.is_positive() && c.licences.before <= most);
            }
            Err(e) => prop_assert!(e.to_string().starts_with("mailwave.toml, line ")),
        }
    }

    #[test]
    fn plan_file_names(name in batch_like_name()) {
        if mailwave::plan::files::is_batch_name(&name) {
            prop_assert!(name.is_ascii() && name.len() == 22, "{name}");
        }
        // The same name in a plan folder a plan is written over: refused or replaced, no panic.
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("plan");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("plan.json"), "{}").unwrap();
        if !name.is_empty() && !name.contains(['/', '\0']) && name != "." && name != ".." {
            let _ = std::fs::write(folder.join(&name), "EmailAddress\n");
        }
        let (_, json) = corpus("plan").into_iter().find(|(n, _)| n == "plan.json").unwrap();
        let plan: mailwave::plan::Plan = serde_json::from_slice(&json).unwrap();
        let _ = mailwave::plan::files::write(&plan, &folder);
    }

    #[test]
    fn clock_specs(
        speed in prop_oneof![
            any::<f64>().prop_map(|f| f.to_string()),
            "[0-9eE+.-]{0,12}",
            prop::sample::select(vec!["inf".to_string(), "NaN".into(), "1e308".into(), "1e-308".into()]),
        ],
        real in prop::sample::select(vec!["-009999-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2026-11-21T10:00:00Z", "9999-12-31T23:59:59Z"]),
        sim in prop::sample::select(vec!["-009999-01-01T00:00:00Z", "2027-01-04T18:00:00Z", "9999-12-31T23:59:59Z"]),
    ) {
        let text = format!("scaled:{speed}:{real}:{sim}");
        if let Ok(spec) = text.parse::<mailwave::time::ClockSpec>() {
            prop_assert!((mailwave::time::clock::MIN_SPEED..=mailwave::time::clock::MAX_SPEED).contains(&spec.speed));
            let clock = mailwave::time::Clock::from_spec(spec);
            let _ = clock.now();
            let _ = clock.spec().map(|s| s.to_string());
        }
    }
}

/// `watch --once` at any frame size the command line takes: a frame or a refusal (exit 2),
/// never a panic or a frame larger than asked.
#[test]
fn watch_frame_sizes_through_the_binary() {
    use crate::helpers::*;
    let p = Project::new(SMALL_CONFIG);
    planned_estate(&p, 12, jiff::civil::date(2027, 3, 1));
    let mut runner = proptest::test_runner::TestRunner::new(cases(12));
    let sizes = prop_oneof![
        (any::<u16>(), any::<u16>()),
        (0u16..600, 0u16..600),
        Just((65535u16, 65535u16)),
    ];
    runner
        .run(&sizes, |(w, h)| {
            let out = p.run(&[
                "watch",
                "--once",
                "--width",
                &w.to_string(),
                "--height",
                &h.to_string(),
            ]);
            let code = out.status.code();
            prop_assert!(
                code == Some(0) || code == Some(2),
                "{w}x{h}: {}",
                stderr(&out)
            );
            if code == Some(0) {
                let text = stdout(&out);
                let (most_w, most_h) = (w.clamp(80, 500) as usize, h.clamp(20, 500) as usize);
                prop_assert!(text.lines().count() <= most_h, "{w}x{h}");
                prop_assert!(text.lines().all(|l| l.chars().count() <= most_w), "{w}x{h}");
            } else {
                prop_assert!(w > 500 || h > 500, "{w}x{h} refused: {}", stderr(&out));
            }
            Ok(())
        })
        .unwrap();
}
