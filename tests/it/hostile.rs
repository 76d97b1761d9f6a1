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
