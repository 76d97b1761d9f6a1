//! Hostile files: what an operator's tools, a mistake or an attacker can put where mailwave reads
//! and writes. Each is refused with file, line and reason, exits 2, and changes nothing.

use std::path::Path;

use crate::helpers::*;

const BAD_INPUT: i32 = 2;

fn planned() -> Project {
    let p = Project::new(SMALL_CONFIG);
    let out = p.run(&[
        "inventory",
        "import",
        fixture("estate.csv").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.run(&["plan", "--start", "2027-01-04", "--name", "jan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    p
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_plan_never_replaces_a_folder_that_is_not_a_plan() {
    let p = planned();
    let docs = p.path("schedules/minutes");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("board-minutes.docx"), "precious").unwrap();
    let out = p.run(&["plan", "--start", "2027-01-04", "--name", "minutes"]);
    assert_eq!(out.status.code(), Some(BAD_INPUT), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds more than a mailwave plan"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(docs.join("board-minutes.docx")).unwrap(),
        "precious"
    );
    // A plan folder is replaced as before.
    let out = p.run(&["plan", "--start", "2027-01-11", "--name", "jan"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_plan_folder_is_read_only_on_its_own_files() {
    let p = planned();
    let dir = p.path("schedules/jan");
    let before = std::fs::read(p.db()).unwrap();
    let plan_json = std::fs::read_to_string(dir.join("plan.json")).unwrap();
    let first: serde_json::Value = serde_json::from_str(&plan_json).unwrap();
    let batch = first["waves"][0]["batches"][0]
        .as_str()
        .unwrap()
        .to_string();
    for (evil, why) in [
        ("../../../../etc/passwd", "is not a batch file name"),
        ("/dev/zero", "is not a batch file name"),
        ("mw-2027-01-04.b001.csv/../x", "is not a batch file name"),
    ] {
        std::fs::write(dir.join("plan.json"), plan_json.replace(&batch, evil)).unwrap();
        let out = p.run(&["plan", "--load", dir.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(BAD_INPUT),
            "{evil}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(why), "{evil}: {}", stderr(&out));
        assert!(stderr(&out).contains("plan.json"), "{}", stderr(&out));
    }
    // A wave whose fields disagree.
    let mut v = first.clone();
    v["waves"][0]["window_end_utc"] = v["waves"][0]["window_start_utc"].clone();
    std::fs::write(dir.join("plan.json"), v.to_string()).unwrap();
    let out = p.run(&["plan", "--load", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(BAD_INPUT), "{}", stderr(&out));
    assert!(stderr(&out).contains("disagree"), "{}", stderr(&out));
    // A batch file that is a link to somewhere else.
    #[cfg(unix)]
    {
        std::fs::write(dir.join("plan.json"), &plan_json).unwrap();
        std::fs::remove_file(dir.join(&batch)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join(&batch)).unwrap();
        let out = p.run(&["plan", "--load", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(BAD_INPUT), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("not a plain file"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(p.db()).unwrap(), before, "nothing was loaded");
}

#[test]
fn an_endless_line_or_row_is_refused_before_it_is_an_inventory() {
    let p = planned();
    let before = std::fs::read(p.db()).unwrap();
    // One line of a hundred thousand fields (the real one was 50 MB of six million).
    let mut row = String::from("EmailAddress,SizeBytes\nx@contoso.com");
    for _ in 0..100_000 {
        row.push_str(",1");
    }
    row.push('\n');
    std::fs::write(p.path("wide.csv"), &row).unwrap();
    // A header of 300 columns, short enough to be read.
    let header: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
    std::fs::write(
        p.path("columns.csv"),
        format!("EmailAddress,{}\na@contoso.com\n", header.join(",")),
    )
    .unwrap();
    // A row of 300 fields.
    std::fs::write(
        p.path("fields.csv"),
        format!("EmailAddress\na@contoso.com{}\n", ",x".repeat(300)),
    )
    .unwrap();
    for (file, line, why) in [
        ("wide.csv", "line 2", "longer than 65536 bytes"),
        ("columns.csv", "line 1", "the header has 301 columns"),
        ("fields.csv", "line 2", "the row has 301 fields"),
    ] {
        for extra in [&[][..], &["--skip-invalid"][..]] {
            let mut args = vec!["inventory", "import", file];
            args.extend_from_slice(extra);
            let out = p.run(&args);
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(BAD_INPUT),
                "{file} {extra:?}: {err}"
            );
            assert!(
                err.contains(&format!("{file}, {line}: ")) && err.contains(why),
                "{file}: {err}"
            );
            assert!(
                err.len() < 600,
                "the message does not echo the file: {} bytes",
                err.len()
            );
        }
    }
    assert_eq!(
        std::fs::read(p.db()).unwrap(),
        before,
        "nothing was imported"
    );
}

#[cfg(unix)]
#[test]
fn what_mailwave_writes_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new(SMALL_CONFIG);
    std::fs::write(
        p.path("bad.csv"),
        "EmailAddress\nok@contoso.com\nnot an address\n",
    )
    .unwrap();
    let out = p.run(&[
        "--log-file",
        "state/run.log",
        "inventory",
        "import",
        "bad.csv",
        "--skip-invalid",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.run(&["plan", "--start", "2027-01-04", "--name", "jan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = p.run(&["report", "--out", "report.md"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = p.path("schedules/jan");
    let batch = std::fs::read_dir(&plan)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    for file in [
        p.db(),
        p.path("state/inventory-rejected.csv"),
        p.path("state/run.log"),
        plan.join("plan.json"),
        batch,
        p.path("report.md"),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&plan), 0o700);
    // A database someone made readable is narrowed by the next command that writes.
    std::fs::set_permissions(p.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = p.run(&["plan", "--start", "2027-01-11", "--name", "jan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&p.db()), 0o600);
}

// ---- hostile networks ----------------------------------------------------------------------------

mod net {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use mailwave::auth::{Credential, TokenProvider};
    use mailwave::config::Config;
    use mailwave::exchange::rest::RestTransport;
    use mailwave::exchange::{Call, ExchangeClient, MoveService, ServiceError};
    use mailwave::secrets::Secret;
    use serde_json::json;

    use crate::misbehave::{self, Reply, Server};

    /// Two seconds for every call: long enough for loopback, short enough for a test.
    const CALL: Duration = Duration::from_secs(2);

    fn config(base: &str) -> Config {
        Config::parse(
            std::path::Path::new("mailwave.toml"),
            &format!(
                "[tenant]\nid = \"contoso.onmicrosoft.com\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n\
                 [endpoints]\nauthority = \"{base}\"\nexchange = \"{base}\"\ngraph = \"{base}\"\n\
                 [run]\ncall_timeout = \"2s\"\n"
            ),
        )
        .unwrap()
    }

    fn client(server: &Server) -> ExchangeClient<RestTransport> {
        let config = config(&server.base);
        let clock = mailwave::time::Clock::real();
        let tokens = Arc::new(
            TokenProvider::new(
                config.run.http(),
                &config,
                Credential::Secret(Secret::new("net-test-secret")),
                clock,
            )
            .unwrap(),
        );
        let transport = RestTransport::new(
            config.run.http(),
            &config.endpoints.exchange,
            &config.tenant.id,
            tokens,
        )
        .unwrap();
        ExchangeClient::new(transport, clock)
    }

    /// A gzip stream of `data` in stored (uncompressed) deflate blocks, for a `Content-Encoding:
    /// gzip` answer that a decompressing client would read as valid JSON.
    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        let crc = !crc;
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        out.push(1); // the final block, stored
        let len = data.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// What a call ends in, and how long it took.
    async fn call(server: &Server) -> (Result<(), ServiceError>, Duration) {
        let ex = client(server);
        let start = Instant::now();
        let r = ex.get(Call::new(), "amy@contoso.com").await.map(|_| ());
        (r, start.elapsed())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_misbehaviour_ends_in_bounded_time_with_a_classified_error() {
        let html = b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec();
        let cases: Vec<(&str, Reply, &str)> = vec![
            ("stall before headers", Reply::Stall, "timed out"),
            (
                "stall mid-body",
                Reply::StallMidBody {
                    length: 1000,
                    partial: b"{\"value\": [".to_vec(),
                },
                "stopped part-way: timed out",
            ),
            (
                "a huge declared body",
                Reply::Raw(200, vec![], vec![b' '; 40 << 20]),
                "larger than",
            ),
            (
                "an endless body",
                Reply::Stream {
                    fill: b' ',
                    total: 200 << 20,
                },
                "larger than",
            ),
            (
                "a gzip answer (never decompressed)",
                Reply::Raw(
                    200,
                    vec![("content-encoding".into(), "gzip".into())],
                    gzip(br#"{"value":[{"MaxConcurrentMigrations":100}]}"#),
                ),
                "unreadable answer",
            ),
            (
                "malformed JSON",
                Reply::Raw(200, vec![], b"{\"value\": [".to_vec()),
                "unreadable answer",
            ),
            (
                "the wrong shape",
                Reply::Json(200, Some(json!({"result": "ok"}))),
                "without a value",
            ),
            (
                "a redirect loop",
                Reply::Raw(
                    302,
                    vec![(
                        "location".into(),
                        "/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand".into(),
                    )],
                    vec![],
                ),
                "was not followed",
            ),
            ("a dropped connection", Reply::Drop, "request failed"),
            (
                "200 with an error body",
                Reply::Json(
                    200,
                    Some(
                        json!({"error": {"code": "InternalError", "message": "Error executing cmdlet",
                        "details": [{"message": "Ex1|System.Exception|the backend is on fire"}]}}),
                    ),
                ),
                "the backend is on fire",
            ),
            ("500 with HTML", Reply::Raw(500, vec![], html), "<html>"),
        ];
        for (what, reply, says) in cases {
            let server = Server::start(misbehave::exchange({
                let reply = reply.clone();
                move |_, _| reply.clone()
            }));
            let (result, took) = call(&server).await;
            let e = result.expect_err(what);
            assert!(
                took < CALL * 2 + Duration::from_secs(1),
                "{what}: took {took:?}"
            );
            assert!(
                matches!(e, ServiceError::Transient { .. }),
                "{what}: a misbehaving answer is a transient failure, not a success or a verdict: {e}"
            );
            assert!(e.to_string().contains(says), "{what}: {e}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_token_never_leaves_the_origin_and_paging_cannot_loop() {
        // A listing whose next page is on another host: not followed, no token sent there.
        let server = Server::start(misbehave::exchange(|_, _| {
            Reply::Json(
                200,
                Some(json!({"value": [], "@odata.nextLink": "https://evil.example/steal"})),
            )
        }));
        let ex = client(&server);
        let e = ex
            .list_batch(Call::new(), "mw-2027-01-04", None)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("leads to another host (evil.example)"),
            "{e}"
        );

        // A listing that points to itself: ended, not followed for ever.
        let server = Server::start(misbehave::exchange(|req, _| {
            let next = format!(
                "http://{}{}?$skiptoken=1",
                req.header("host").unwrap(),
                req.path.split('?').next().unwrap()
            );
            Reply::Json(200, Some(json!({"value": [], "@odata.nextLink": next})))
        }));
        let ex = client(&server);
        let e = ex
            .list_batch(Call::new(), "mw-2027-01-04", None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("same nextLink twice"), "{e}");
        let calls = server
            .requests()
            .iter()
            .filter(|r| r.cmdlet().is_some())
            .count();
        assert_eq!(calls, 2, "the first page and the repeated one");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_endpoint_that_redirects_or_stalls_never_gets_the_secret_twice_nor_blocks_everyone()
     {
        // A redirect: the form with the secret is not posted again anywhere.
        let server = Server::start(|req, _| {
            if req.path.contains("/oauth2/") {
                Reply::Raw(
                    307,
                    vec![("location".into(), "http://127.0.0.2:9/steal".into())],
                    vec![],
                )
            } else {
                misbehave::endpoint()
            }
        });
        let (result, _) = call(&server).await;
        let e = result.unwrap_err();
        assert!(e.to_string().contains("redirect"), "{e}");
        assert!(!e.to_string().contains("net-test-secret"), "{e}");
        assert_eq!(
            server.requests().len(),
            1,
            "one token request, not re-posted"
        );

        // A stalled token endpoint: eight callers at once all end within one token timeout,
        // not one after another.
        let server = Server::start(|req, _| {
            if req.path.contains("/oauth2/") {
                Reply::Stall
            } else {
                misbehave::endpoint()
            }
        });
        let ex = Arc::new(client(&server));
        let start = Instant::now();
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let ex = ex.clone();
                tokio::spawn(async move { ex.endpoint_limits(Call::new(), None).await })
            })
            .collect();
        for c in calls {
            let e = c.await.unwrap().unwrap_err();
            assert!(
                e.to_string().contains("token endpoint") && e.to_string().contains("timed out")
                    || e.to_string().contains("no answer within 2 s"),
                "{e}"
            );
        }
        assert!(
            start.elapsed() < CALL + Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let token_requests = server
            .requests()
            .iter()
            .filter(|r| r.path.contains("/oauth2/"))
            .count();
        assert_eq!(token_requests, 1, "one fetch for all eight callers");
    }

    fn graph(
        server: &Server,
    ) -> mailwave::directory::graph::GraphClient<mailwave::directory::graph::RestGraph> {
        let config = config(&server.base);
        let tokens = Arc::new(
            TokenProvider::new(
                config.run.http(),
                &config,
                Credential::Secret(Secret::new("net-test-secret")),
                mailwave::time::Clock::real(),
            )
            .unwrap(),
        );
        mailwave::directory::graph::GraphClient::new(
            mailwave::directory::graph::RestGraph::new(
                config.run.http(),
                &config.endpoints.graph,
                tokens,
            )
            .unwrap(),
        )
    }

    /// Finding 11: Graph's 2xx answers were taken as they came: a sendMail answered 200 with an
    /// error in it counted as sent. Now a 2xx with an error or another shape is a classified
    /// error, and sendMail is a success only as a clean 202 (otherwise its status is kept, so the
    /// notices count it uncertain).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn graph_answers_are_checked_like_exchanges() {
        use mailwave::directory::{Directory, Message};
        let error =
            json!({"error": {"code": "ErrorMessageSubmissionBlocked", "message": "blocked"}});
        // What each call says of each answer (None: it is a fine answer for that call).
        let cases: Vec<(Reply, [Option<&str>; 3])> = vec![
            (
                Reply::Json(200, Some(error.clone())),
                [Some("an error in a success answer"); 3],
            ),
            (
                Reply::Json(200, Some(json!({"value": [{"foo": 1}]}))),
                [Some("without an id"), None, Some("without an id")],
            ),
            (
                Reply::Json(200, Some(json!({"users": []}))),
                [
                    Some("without a value list"),
                    Some("without a value list"),
                    Some("without an id"),
                ],
            ),
            (
                Reply::Raw(200, vec![], b"<html>sign in</html>".to_vec()),
                [Some("unreadable answer"); 3],
            ),
        ];
        for (reply, expected) in cases {
            let shown = format!("{reply:?}");
            let server = Server::start(misbehave::exchange(move |_, _| reply.clone()));
            let g = graph(&server);
            let got = [
                g.list_users().await.map(|_| ()),
                g.subscribed_skus().await.map(|_| ()),
                g.get_user("amy@contoso.com").await.map(|_| ()),
            ];
            for (got, expected) in got.into_iter().zip(expected) {
                match (got, expected) {
                    (Ok(()), None) => {}
                    (Err(e @ ServiceError::Transient { status: 502, .. }), Some(why))
                        if e.to_string().contains(why) => {}
                    (got, expected) => panic!("{shown}: {got:?}, expected {expected:?}"),
                }
            }
        }

        let message = Message {
            to: vec!["amy@contoso.com".into()],
            subject: "Your mailbox moves tonight".into(),
            body: "Hello".into(),
            html: false,
            reply_to: None,
        };
        for (reply, sent) in [
            (Reply::Json(202, None), true),
            (Reply::Json(200, Some(error.clone())), false),
            (Reply::Json(200, None), false),
            (Reply::Json(204, None), false),
            (Reply::Json(202, Some(error.clone())), false),
        ] {
            let shown = format!("{reply:?}");
            let server = Server::start(misbehave::exchange(move |_, _| reply.clone()));
            let r = graph(&server)
                .send_mail("notices01@contoso.com", &message)
                .await;
            match r {
                Ok(()) => assert!(sent, "{shown} counted as sent"),
                Err(ServiceError::Transient { status, message }) => {
                    assert!(!sent, "{shown}: {message}");
                    assert!((200..300).contains(&status), "{shown}: kept as {status}");
                    assert!(message.contains("may have gone"), "{message}");
                }
                Err(e) => panic!("{shown}: {e:?}"),
            }
        }
    }

    /// Finding 10, the usage report: it was read whole into memory (up to 4 GiB). Now it goes to
    /// the file as it arrives: a download that stalls after its first megabyte has already
    /// handed that megabyte on when it times out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_usage_report_is_written_as_it_arrives() {
        use mailwave::directory::Directory;
        let server = Server::start(misbehave::exchange(|req, _| {
            if req.path.contains("getMailboxUsageDetail") {
                let host = req.header("host").unwrap_or_default().to_string();
                Reply::Raw(
                    302,
                    vec![("location".into(), format!("http://{host}/download/r.csv"))],
                    vec![],
                )
            } else {
                Reply::StallMidBody {
                    length: 64 << 20,
                    partial: vec![b'x'; 1 << 20],
                }
            }
        }));
        struct Counted(Arc<std::sync::atomic::AtomicUsize>);
        impl std::io::Write for Counted {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .fetch_add(b.len(), std::sync::atomic::Ordering::SeqCst);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut to = Counted(written.clone());
        let start = Instant::now();
        let e = graph(&server)
            .mailbox_usage_report("D7", &mut to)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("report download"), "{e}");
        assert!(start.elapsed() < CALL * 3, "{:?}", start.elapsed());
        assert_eq!(
            written.load(std::sync::atomic::Ordering::SeqCst),
            1 << 20,
            "the first megabyte was written before the answer ended"
        );
    }
}

// ---- hostile text ----------------------------------------------------------------------------

/// What a terminal, a report or a ticket must never be handed raw: C0 and C1 controls (ESC starts
/// escape sequences) and DEL. Line ends are the output's own.
fn assert_no_controls(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\n') {
        panic!("{what} holds {c:?}:\n{text}");
    }
}

/// Text planted by `sim serve` before every failure message and source server name: a formula,
/// terminal escapes that clear the screen and turn it red, markup that would run in a browser, a
/// table bar and an entity.
const PLANTED: &str = "=cmd|' /C calc'!A0\u{1b}[2J\u{1b}[31m<b onmouseover='x'>|&amp;</b> ";

/// Finding 2 and 3 of issue 20, as they were found: a service message carrying `ESC[2J ESC[31m`
/// reached `mailbox show`, `status`, the run summary and the md report raw, and made the html
/// report invalid XML; csv cells from the service went out as formulas. Addresses with a bar broke
/// the md tables. Here a run at 600x against `sim serve` planting such text, then every output.
#[test]
fn text_from_the_service_reaches_every_output_clean() {
    use crate::live::{CRASH_PROFILE, mailwave, served_project};
    use jiff::{SignedDuration, Timestamp};
    let window_start: Timestamp = "2027-02-01T20:00:00Z".parse().unwrap();
    let origin = window_start - SignedDuration::from_mins(30);
    let clock = format!("scaled:600:{}:{origin}", Timestamp::now());
    let schedule = "weekday_capacity = 100\nweekend_capacity = 100\ncutover_window = \"20:00-20:40\"\nprestage_days = 1";
    let run = "requests_per_second = 50\nburst = 50\nmax_parallel_calls = 16\ncutover_margin = \"5m\"\n\
               cutover_poll = \"1m\"\nprestage_poll = \"1m\"\nresume_backoff = \"1m\"\nresume_attempts = 1";
    let profile = CRASH_PROFILE
        .replace(
            "permanent_failure_share = 0.0",
            "permanent_failure_share = 0.4",
        )
        .replace("injected_5xx_share = 0.01", "injected_5xx_share = 0.0");
    // TOML has no raw ESC: it is written as its escape.
    let planted = PLANTED.replace('\u{1b}', "\\u001B");
    let profile = format!("{profile}planted_text = \"{planted}\"\n");
    let (p, mut sim, _) = served_project(&clock, schedule, run, &profile);
    // Addresses Exchange accepts that carry Markdown's bar, emphasis and code marks.
    let mut csv = String::from("EmailAddress,SizeBytes,ItemCount,SourceDatabase\n");
    for i in 0..40 {
        csv.push_str(&format!(
            "ops|{i:02}*team`x@contoso.com,{},{},DB{}\n",
            100_000_000 + i * 1_000,
            1_000 + i,
            i % 3
        ));
    }
    std::fs::write(p.path("mailboxes.csv"), csv).unwrap();
    let cli = |args: &[&str]| {
        let out = mailwave(&p, &clock, args, "cli.log").output().unwrap();
        let log = std::fs::read_to_string(p.path("cli.log")).unwrap();
        assert_no_controls(&format!("{args:?}'s log"), &log);
        (out.status.code(), stdout(&out), log)
    };
    for args in [
        &["inventory", "import", "mailboxes.csv"][..],
        &["plan", "--start", "2027-02-01"],
    ] {
        let (code, out, log) = cli(args);
        assert_eq!(code, Some(0), "{args:?}: {out}{log}");
    }
    let (code, summary, log) = cli(&["run"]);
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(code, Some(3), "some need a person: {summary}{log}");
    assert_no_controls("the run summary", &summary);
    assert!(
        summary.contains("\u{FFFD}[2J\u{FFFD}[31m"),
        "the service's reason is shown, cleaned: {summary}"
    );

    let (_, json, _) = cli(&["report", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r["failure_class"] == "permanent")
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert!(!failed.is_empty(), "{json}");
    let (_, show, _) = cli(&["mailbox", "show", failed[0]]);
    let (_, status, _) = cli(&["status"]);
    let (_, analyze, _) = cli(&["analyze", "--by", "source"]);
    let (_, watch, _) = cli(&["watch", "--once", "--width", "160", "--height", "60"]);
    let (_, md, _) = cli(&["report"]);
    for (what, text) in [
        ("mailbox show", &show),
        ("status", &status),
        ("analyze", &analyze),
        ("watch", &watch),
        ("the md report", &md),
    ] {
        assert_no_controls(what, text);
    }
    assert!(show.contains("\u{FFFD}[31m<b onmouseover"), "{show}");

    // md: every row of the attention table has its six bars, and no markup is raw.
    let attention = md
        .split("## Needs attention")
        .nth(1)
        .expect("a Needs attention section")
        .split("\n\n")
        .nth(1)
        .unwrap();
    let unescaped_bars = |line: &str| {
        let b = line.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    };
    for line in attention.lines() {
        assert_eq!(unescaped_bars(line), 6, "{line}");
    }
    assert!(attention.contains("ops\\|"), "{attention}");
    assert!(
        md.match_indices('<').all(|(i, _)| md[..i].ends_with('\\')),
        "raw html in the md report:\n{md}"
    );

    // html: well-formed XML, the planted markup text and never an element or attribute.
    let out = cli(&["report", "--format", "html", "--out", "r.html"]);
    assert_eq!(out.0, Some(0), "{}{}", out.1, out.2);
    let html = std::fs::read_to_string(p.path("r.html")).unwrap();
    let doc = html_report(&html);
    assert!(
        doc.descendants()
            .all(|n| n.attribute("onmouseover").is_none()),
        "markup from the service became markup"
    );
    assert!(
        doc.descendants()
            .any(|n| n.text().is_some_and(|t| t.contains("<b onmouseover='x'>"))),
        "the service's text is shown as text"
    );

    // csv: text from the service is shown, not run; json keeps the value as it came (cleaned).
    let (code, _, log) = cli(&["report", "--format", "csv", "--out", "r.csv"]);
    assert_eq!(code, Some(0), "{log}");
    let mut reader = csv::Reader::from_path(p.path("r.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let server = headers
        .iter()
        .position(|h| h == "move_source_server")
        .unwrap();
    let mut guarded = 0;
    for record in reader.records() {
        let record = record.unwrap();
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']) || cell.parse::<f64>().is_ok(),
                "a formula in the csv: {cell:?}"
            );
            assert_no_controls("a csv cell", cell);
        }
        if record[server].starts_with("'=cmd") {
            guarded += 1;
        }
    }
    assert!(guarded > 0, "source servers came from the service");
    assert!(
        rows.iter().any(|r| r["move"]["source_server"]
            .as_str()
            .is_some_and(|s| s.starts_with("=cmd"))),
        "json keeps the raw value"
    );
    // The report fed back: its failed rows, kept as a spreadsheet would (guards and all), are
    // what `--from-file` takes.
    let mut reader = csv::Reader::from_path(p.path("r.csv")).unwrap();
    let mut writer = csv::Writer::from_path(p.path("failed.csv")).unwrap();
    writer.write_record(reader.headers().unwrap()).unwrap();
    let class = headers.iter().position(|h| h == "failure_class").unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        if &record[class] == "permanent" {
            writer.write_record(&record).unwrap();
        }
    }
    writer.flush().unwrap();
    let (code, out, log) = cli(&[
        "mailbox",
        "retry",
        "--from-file",
        "failed.csv",
        "--force",
        "--dry-run",
    ]);
    assert_eq!(code, Some(0), "{out}{log}");
    // One line a mailbox, then what users are told.
    let rows = out.lines().filter(|l| !l.starts_with("notices:")).count();
    assert_eq!(rows, failed.len(), "{out}");
    assert!(out.contains(failed[0]), "{out}");
}

/// Finding 4 of issue 20: html notices escaped `"` but not `'`, so a display name broke out of an
/// attribute and `o'brien@...` broke `href='mailto:...'`. `notices preview` renders what a user
/// gets.
#[test]
fn a_notice_keeps_names_inside_their_attributes() {
    use mailwave::engine::notices::template::STARTERS;
    let p = Project::new(&format!(
        "{SMALL_CONFIG}\n[notices]\ntemplates = \"schedules/notices\"\n"
    ));
    let dir = p.path("schedules/notices");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in STARTERS.iter().filter(|(n, _)| !n.starts_with("before")) {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(
        dir.join("before.html"),
        "Subject: Your move\n<p><a title='{display_name}' href='mailto:{address}'>{display_name}</a></p>\n",
    )
    .unwrap();
    std::fs::write(
        p.path("users.csv"),
        "EmailAddress,Display Name\no'brien@contoso.com,Alice' onmouseover='alert(1)\nbob@contoso.com,Bob\n",
    )
    .unwrap();
    for args in [
        &["inventory", "import", "users.csv"][..],
        &["plan", "--start", "2027-01-04"],
    ] {
        let out = p.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let out = p.run(&["notices", "preview", "o'brien@contoso.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let html = text
        .lines()
        .find(|l| l.starts_with("<p>"))
        .unwrap_or_else(|| panic!("no html body: {text}"));
    let doc = roxmltree::Document::parse(html).unwrap_or_else(|e| panic!("{e}: {html}"));
    let a = doc
        .descendants()
        .find(|n| n.has_tag_name("a"))
        .expect("the link");
    assert_eq!(a.attributes().count(), 2, "{html}");
    assert_eq!(a.attribute("title"), Some("Alice' onmouseover='alert(1)"));
    assert_eq!(a.attribute("href"), Some("mailto:o'brien@contoso.com"));
    assert_eq!(a.text(), Some("Alice' onmouseover='alert(1)"));
}

/// Finding 3 of issue 20, the import side: `=1+cmd|'/Ccalc'!A0@contoso.com` was accepted and
/// became the first cell of a batch file's row. It is refused (a batch file cannot guard it), and
/// the rejected-rows file, which holds what the file held, guards every formula.
#[test]
fn an_address_that_is_a_formula_is_refused_and_its_row_kept_harmless() {
    let p = Project::new(SMALL_CONFIG);
    std::fs::write(
        p.path("m.csv"),
        "EmailAddress,Display Name\nok@contoso.com,Ok\n=1+cmd|'/Ccalc'!A0@contoso.com,@SUM(A1)\n",
    )
    .unwrap();
    let out = p.run(&["inventory", "import", "m.csv"]);
    assert_eq!(out.status.code(), Some(BAD_INPUT));
    assert!(
        stderr(&out).contains("m.csv, line 3, column EmailAddress")
            && stderr(&out).contains("formula"),
        "{}",
        stderr(&out)
    );
    assert!(!p.db().exists(), "nothing was stored");
    let out = p.run(&["inventory", "import", "m.csv", "--skip-invalid"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut rejected = csv::Reader::from_path(p.path("state/inventory-rejected.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = rejected.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    let cells: Vec<&str> = rows[0].iter().collect();
    assert!(
        cells[3].starts_with("\"=1+cmd") && cells[4].starts_with("'=1+cmd"),
        "{cells:?}"
    );
    for cell in cells {
        assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell:?}");
    }
}

/// Finding 6 of issue 20: a quoted field could span many lines (800 lines of 60 kB imported one
/// mailbox with a 48 MB display name). Every CSV reader now holds a row to 64 KiB however many
/// lines it spans, and says where it began.
#[test]
fn no_csv_reader_takes_a_row_that_runs_on() {
    let p = planned();
    let before = std::fs::read(p.db()).unwrap();
    let open_quote = |header: &str, good: &str, bad: &str| {
        let mut s = format!("{header}\n{good}\n{bad},\"Runs on");
        for _ in 0..2_000 {
            s.push_str(&format!("{}\n", "x".repeat(59)));
        }
        s
    };
    let usage = "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte)";
    for (file, content) in [
        (
            "mailboxes.csv",
            open_quote(
                "EmailAddress,Display Name",
                "alice@contoso.com,Alice",
                "bob@contoso.com",
            ),
        ),
        (
            "delegates.csv",
            open_quote(
                "Mailbox,Delegate",
                "alice@contoso.com,bob@contoso.com",
                "bob@contoso.com",
            ),
        ),
        (
            "usage.csv",
            open_quote(
                usage,
                "2027-01-01,alice@contoso.com,Alice,False,,,,1,1",
                "2027-01-01,bob@contoso.com",
            ),
        ),
        (
            "addresses.csv",
            open_quote(
                "EmailAddress,Note",
                "alice@contoso.com,x",
                "bob@contoso.com",
            ),
        ),
        (
            "senders.csv",
            open_quote(
                "Sender,Note",
                "notices01@contoso.com,x",
                "notices02@contoso.com",
            ),
        ),
    ] {
        std::fs::write(p.path(file), content).unwrap();
    }
    let estate = fixture("estate.csv");
    let estate = estate.to_str().unwrap();
    let config = std::fs::read_to_string(p.path("mailwave.toml")).unwrap();
    let senders = format!("{config}\n[notices]\nsenders_file = \"senders.csv\"\n");
    for (file, args, config) in [
        (
            "mailboxes.csv",
            vec!["inventory", "import", "mailboxes.csv"],
            &config,
        ),
        (
            "delegates.csv",
            vec![
                "inventory",
                "import",
                estate,
                "--delegates",
                "delegates.csv",
            ],
            &config,
        ),
        (
            "usage.csv",
            vec!["inventory", "import", estate, "--sizes", "usage.csv"],
            &config,
        ),
        (
            "addresses.csv",
            vec!["mailbox", "hold", "--from-file", "addresses.csv"],
            &config,
        ),
        (
            "senders.csv",
            vec!["plan", "--start", "2027-01-04", "--dry-run"],
            &senders,
        ),
    ] {
        std::fs::write(p.path("mailwave.toml"), config).unwrap();
        let out = p.run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(BAD_INPUT), "{file}: {err}");
        assert!(
            err.contains(&format!("{file}, line 3")) && err.contains("longer than 65536 bytes"),
            "{file}: {err}"
        );
        assert!(err.contains("quote left open"), "{file}: {err}");
        assert!(
            err.len() < 600,
            "{file}: the message does not echo the file"
        );
    }
    std::fs::write(p.path("mailwave.toml"), &config).unwrap();

    // A batch file of the plan, edited by hand the same way.
    let dir = p.path("schedules/jan");
    let batch = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    let good = std::fs::read_to_string(&batch).unwrap();
    let first = good.lines().nth(1).unwrap();
    std::fs::write(&batch, open_quote("EmailAddress", first, "x@contoso.com")).unwrap();
    let out = p.run(&["plan", "--load", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(BAD_INPUT), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(", line 3: the row is longer than 65536 bytes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(p.db()).unwrap(), before, "nothing changed");
}
