//! Contract tests: mailwave's real HTTP clients (auth, InvokeCommand, Graph) against the simulator
//! served on 127.0.0.1, port 0. Every error class, paging, the report's 302, token renewal and
//! certificate assertions.

use std::sync::Arc;
use std::time::Duration;

use mailwave::auth::{AuthError, Credential, Resource, TokenProvider};
use mailwave::config::Config;
use mailwave::directory::graph::{GraphClient, RestGraph};
use mailwave::directory::{Directory, ensure_exchange_licence};
use mailwave::exchange::rest::RestTransport;
use mailwave::exchange::{Call, ExchangeClient, MoveService, MoveStatus, NewMove, ServiceError};
use mailwave::secrets::{Algorithm, Secret};
use mailwave::sim::{Profile, Simulator};
use mailwave::time::Clock;
use serde_json::{Map, json};

use crate::helpers::fixture;

struct Harness {
    sim: Arc<Simulator>,
    base: String,
    config: Config,
}

async fn harness(profile: Profile) -> Harness {
    let clock = Clock::real();
    let sim = Arc::new(Simulator::new(profile, 11, clock).unwrap());
    let (addr, _task) = mailwave::sim::http::start(sim.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(addr.ip().is_loopback());
    let base = format!("http://{addr}");
    let config = Config::parse(
        std::path::Path::new("mailwave.toml"),
        &format!(
            "[tenant]\nid = \"contoso.onmicrosoft.com\"\nclient_id = \"11111111-2222-3333-4444-555555555555\"\n\
             [endpoints]\nauthority = \"{base}\"\nexchange = \"{base}\"\ngraph = \"{base}\"\n"
        ),
    )
    .unwrap();
    Harness { sim, base, config }
}

impl Harness {
    fn tokens(&self, credential: Credential) -> Arc<TokenProvider> {
        Arc::new(
            TokenProvider::new(
                self.config.run.http(),
                &self.config,
                credential,
                self.sim.clock(),
            )
            .unwrap(),
        )
    }

    fn exchange(&self, credential: Credential) -> ExchangeClient<RestTransport> {
        let transport = RestTransport::new(
            self.config.run.http(),
            &self.config.endpoints.exchange,
            &self.config.tenant.id,
            self.tokens(credential),
        )
        .unwrap();
        ExchangeClient::new(transport, self.sim.clock())
    }

    fn graph(&self) -> GraphClient<RestGraph> {
        GraphClient::new(
            RestGraph::new(
                self.config.run.http(),
                &self.config.endpoints.graph,
                self.tokens(secret()),
            )
            .unwrap(),
        )
    }
}

fn secret() -> Credential {
    Credential::Secret(Secret::new("s3cr3t-value"))
}

fn quiet() -> Profile {
    Profile {
        replication_lag_seconds: 0.0,
        exchange_requests_per_second: 10_000.0,
        exchange_burst: 10_000,
        client_secret: Some("s3cr3t-value".into()),
        ..Profile::default().without_failures()
    }
}

fn new_move(who: &str) -> NewMove {
    NewMove {
        identity: who.into(),
        batch_name: "mw-2027-01-04".into(),
        complete_after: "2027-01-04T20:00:00Z".parse().unwrap(),
        remote_host_name: "hybrid.contoso.com".into(),
        target_delivery_domain: "contoso.mail.onmicrosoft.com".into(),
        source_endpoint: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_pages_and_statistics() {
    let h = harness(Profile {
        max_page_size: 50,
        ..quiet()
    })
    .await;
    let ex = h.exchange(secret());
    for i in 0..120 {
        let r = ex
            .create(Call::new(), &new_move(&format!("user{i}@contoso.com")))
            .await
            .unwrap();
        assert_eq!(r.status, MoveStatus::Queued);
        assert_eq!(r.batch_name, "mw-2027-01-04");
        assert_eq!(
            r.complete_after,
            Some("2027-01-04T20:00:00Z".parse().unwrap())
        );
    }
    // 120 requests over pages of 50: the client follows @odata.nextLink to the end.
    let all = ex
        .list_batch(Call::new(), "mw-2027-01-04", None)
        .await
        .unwrap();
    assert_eq!(all.len(), 120);
    assert_eq!(
        h.sim.stats().by_cmdlet["Get-MoveRequest"].0,
        3,
        "three pages"
    );
    let failed = ex
        .list_batch(Call::new(), "mw-2027-01-04", Some("Failed"))
        .await
        .unwrap();
    assert!(failed.is_empty(), "no failures in a quiet profile");
    let stats = ex
        .statistics(Call::new(), "user7@contoso.com")
        .await
        .unwrap();
    assert!(
        stats.total_mailbox_size.unwrap() > 0,
        "ByteQuantifiedSize parsed"
    );
    assert!(stats.data_consistency_score.is_some());
    let limits = ex.endpoint_limits(Call::new(), None).await.unwrap();
    assert_eq!(limits.max_concurrent_migrations, 100);
    assert_eq!(
        h.sim.stats().missing_client_request_id,
        0,
        "every request carried a client-request-id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_over_http() {
    let h = harness(Profile {
        replication_lag_seconds: 600.0,
        ..quiet()
    })
    .await;
    let ex = h.exchange(secret());
    let created = ex
        .create(Call::new(), &new_move("amy@contoso.com"))
        .await
        .unwrap();
    assert_eq!(created.identity, "amy@contoso.com");

    // Duplicate create: the exact text classifies as already-exists.
    let dup = ex
        .create(Call::new(), &new_move("amy@contoso.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(&dup, ServiceError::AlreadyExists { completed: false, message } if message.contains("already has a pending request")),
        "{dup}"
    );

    // Replication lag: a 404 for a request created moments ago is not "missing".
    let now = h.sim.clock().now();
    let lag = ex
        .get(Call::new().created_at(Some(now)), "amy@contoso.com")
        .await
        .unwrap_err();
    assert!(
        matches!(lag, ServiceError::NotYetReplicated { .. }),
        "{lag}"
    );
    let missing = ex.get(Call::new(), "nobody@contoso.com").await.unwrap_err();
    assert!(
        matches!(&missing, ServiceError::NotFound { message } if message.contains("couldn't be found")),
        "{missing}"
    );

    // 403 with an empty body: a cmdlet outside the role.
    let denied = ex
        .invoke_raw(Call::new(), "Get-Mailbox", Map::new())
        .await
        .unwrap_err();
    assert_eq!(
        denied,
        ServiceError::Permission {
            cmdlet: "Get-Mailbox".into()
        }
    );

    // 400: an unknown parameter.
    let mut p = Map::new();
    p.insert("Identity".into(), json!("amy@contoso.com"));
    p.insert("Colour".into(), json!("blue"));
    let bad = ex
        .invoke_raw(Call::new(), "Get-MoveRequest", p)
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, ServiceError::BadRequest { message } if message.contains("Colour")),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_injected_faults() {
    let h = harness(Profile {
        exchange_requests_per_second: 0.5,
        exchange_burst: 2,
        ..quiet()
    })
    .await;
    let ex = h.exchange(secret());
    let mut throttled = None;
    for _ in 0..4 {
        if let Err(e) = ex.endpoint_limits(Call::new(), None).await {
            throttled = Some(e);
            break;
        }
    }
    match throttled {
        Some(ServiceError::Throttled { retry_after }) => {
            assert!(
                retry_after > Duration::ZERO && retry_after <= Duration::from_secs(2),
                "{retry_after:?}"
            );
        }
        other => panic!("expected a 429, got {other:?}"),
    }

    let h = harness(Profile {
        injected_5xx_share: 1.0,
        ..quiet()
    })
    .await;
    let ex = h.exchange(secret());
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..12 {
        match ex
            .create(Call::new(), &new_move(&format!("f{i}@contoso.com")))
            .await
        {
            Err(ServiceError::Transient { status, message }) => {
                assert!(message.contains("StorageTransientException"), "{message}");
                seen.insert(status);
            }
            other => panic!("expected a transient fault, got {other:?}"),
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![503, 504]);
    // A 504 comes after the work was done: some of those creates exist on the service.
    let made = h.sim.with_moves(|m| m.moves().len());
    assert!(made > 0 && made < 12, "{made}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_renewed_on_401_and_scoped() {
    let h = harness(quiet()).await;
    let ex = h.exchange(secret());
    ex.endpoint_limits(Call::new(), None).await.unwrap();
    ex.endpoint_limits(Call::new(), None).await.unwrap();
    assert_eq!(h.sim.with_identity(|i| i.stats.tokens_issued), 1, "cached");
    // Revoked: the next call gets a 401, renews once, and succeeds.
    let now = h.sim.clock().now();
    h.sim.with_identity(|i| i.revoke_all(now));
    tokio::time::sleep(Duration::from_millis(5)).await;
    ex.endpoint_limits(Call::new(), None).await.unwrap();
    assert_eq!(h.sim.with_identity(|i| i.stats.tokens_issued), 2);
    assert_eq!(h.sim.with_identity(|i| i.stats.calls_unauthorised), 1);

    // A token for another resource is refused by InvokeCommand.
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!(
            "{}/contoso.onmicrosoft.com/oauth2/v2.0/token",
            h.base
        ))
        .form(&[
            ("client_id", "x"),
            ("scope", "https://management.azure.com/.default"),
            ("grant_type", "client_credentials"),
            ("client_secret", "s3cr3t-value"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status = http
        .post(format!(
            "{}/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand",
            h.base
        ))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"CmdletInput": {"CmdletName": "Get-MigrationEndpoint", "Parameters": {}}}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_is_renewed_before_it_expires() {
    let h = harness(Profile {
        token_lifetime_seconds: 240,
        ..quiet()
    })
    .await;
    let tokens = h.tokens(secret());
    tokens.token(Resource::Exchange).await.unwrap();
    // Four minutes is inside the five-minute renewal margin: every call fetches a fresh token.
    tokens.token(Resource::Exchange).await.unwrap();
    assert_eq!(h.sim.with_identity(|i| i.stats.tokens_issued), 2);
    tokens.token(Resource::Graph).await.unwrap();
    assert_eq!(
        h.sim.with_identity(|i| i.stats.tokens_issued),
        3,
        "one token per resource"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_shows_the_entra_error_without_the_secret() {
    let h = harness(quiet()).await;
    let tokens = h.tokens(Credential::Secret(Secret::new("wrong-secret-9f8e7d")));
    let err = tokens.token(Resource::Exchange).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, AuthError::Entra { code, .. } if code == "AADSTS7000215"),
        "{text}"
    );
    assert!(text.contains("Invalid client secret provided"), "{text}");
    assert_eq!(
        text.matches("AADSTS7000215").count(),
        1,
        "said once: {text}"
    );
    assert!(!text.contains("wrong-secret-9f8e7d"), "{text}");
    let ex = h.exchange(Credential::Secret(Secret::new("wrong-secret-9f8e7d")));
    let err = ex.endpoint_limits(Call::new(), None).await.unwrap_err();
    assert!(matches!(err, ServiceError::Auth { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-secret-9f8e7d"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_assertions_are_verified_ps256_and_rs256() {
    let profile = Profile {
        certificate: Some(fixture("test-cert-public.pem")),
        ..quiet()
    };
    let h = harness(profile).await;
    for alg in [Algorithm::Ps256, Algorithm::Rs256] {
        let cred = Credential::from_pem_file(&fixture("test-cert.pem"), alg).unwrap();
        h.tokens(cred).token(Resource::Exchange).await.unwrap();
    }
    assert_eq!(h.sim.with_identity(|i| i.stats.assertions_verified), 2);

    // An assertion signed by another key is refused.
    let other = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let Credential::Certificate { certificate, .. } =
        Credential::from_pem_file(&fixture("test-cert.pem"), Algorithm::Ps256).unwrap()
    else {
        unreachable!()
    };
    let forged = Credential::Certificate {
        key: Arc::new(other),
        certificate,
        algorithm: Algorithm::Ps256,
    };
    let err = h
        .tokens(forged)
        .token(Resource::Exchange)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::Entra { code, .. } if code == "AADSTS700027"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_users_report_licences_and_mail() {
    let h = harness(Profile {
        directory_users: 2_500,
        ..quiet()
    })
    .await;
    let graph = h.graph();
    let users = graph.list_users().await.unwrap();
    assert_eq!(
        users.len(),
        2_475,
        "2,500 less the 1% deleted, over three pages of 999"
    );

    let mut csv = Vec::new();
    let size = graph.mailbox_usage_report("D7", &mut csv).await.unwrap();
    assert_eq!(size, csv.len() as u64);
    let stats = h.sim.with_directory(|d| d.stats.clone());
    assert_eq!(stats.report_downloads, 1);
    assert_eq!(
        stats.report_downloads_with_authorization, 0,
        "the bearer token must not follow the 302"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &csv).unwrap();
    let (inv, _) = mailwave::inventory::read_mailboxes(file.path(), &Default::default()).unwrap();
    assert_eq!(inv.mailboxes.len() as u64 + inv.deleted_skipped, 2_500);
    assert_eq!(inv.deleted_skipped, 25);
    assert!(mailwave::inventory::check_not_concealed(csv.as_slice()).is_ok());

    let skus = graph.subscribed_skus().await.unwrap();
    assert!(skus[0].includes_exchange());
    let unlicensed = &users
        .iter()
        .find(|u| u.licences.is_empty())
        .unwrap()
        .user_principal_name;
    assert!(
        ensure_exchange_licence(&graph, unlicensed, &skus, &skus[0].sku_id)
            .await
            .unwrap()
    );
    assert!(
        !ensure_exchange_licence(&graph, unlicensed, &skus, &skus[0].sku_id)
            .await
            .unwrap(),
        "already licensed"
    );

    let sender = &users[0].user_principal_name;
    let message = |subject: &str| mailwave::directory::Message {
        to: vec!["ops@contoso.com".to_string()],
        subject: subject.into(),
        body: "Hello".into(),
        html: false,
        reply_to: Some("servicedesk@contoso.com".into()),
    };
    for _ in 0..30 {
        graph
            .send_mail(sender, &message("Your mailbox moves tonight"))
            .await
            .unwrap();
    }
    let err = graph
        .send_mail(sender, &message("one too many"))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Throttled { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concealed_report_names_are_detected() {
    let h = harness(Profile {
        directory_users: 50,
        conceal_names: true,
        ..quiet()
    })
    .await;
    let mut csv = Vec::new();
    h.graph()
        .mailbox_usage_report("D30", &mut csv)
        .await
        .unwrap();
    let err = mailwave::inventory::check_not_concealed(csv.as_slice()).unwrap_err();
    assert!(err.contains("displayConcealedNames"), "{err}");
}

#[test]
fn import_from_graph_through_the_binary() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let h = runtime.block_on(harness(Profile {
        directory_users: 300,
        ..quiet()
    }));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[tenant]\nid = \"contoso.onmicrosoft.com\"\nclient_id = \"c\"\nclient_secret_env = \"MW_TEST_SECRET\"\n\
         [endpoints]\nauthority = \"{0}\"\nexchange = \"{0}\"\ngraph = \"{0}\"\n",
        h.base
    );
    std::fs::write(dir.path().join("mailwave.toml"), config).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mailwave"))
            .args(["inventory", "import", "--from-graph", "--period", "D30"])
            .current_dir(dir.path())
            .env("MW_TEST_SECRET", "s3cr3t-value")
            .env("MAILWAVE_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mailboxes        297"), "{stdout}");
    assert!(stdout.contains("deleted, skipped 3"), "{stdout}");
    assert!(!stdout.contains("s3cr3t-value"));

    // Concealed names: refused, with the setting named, and nothing stored.
    let h2 = runtime.block_on(harness(Profile {
        directory_users: 40,
        conceal_names: true,
        ..quiet()
    }));
    let config = std::fs::read_to_string(dir.path().join("mailwave.toml"))
        .unwrap()
        .replace(&h.base, &h2.base);
    std::fs::write(dir.path().join("mailwave.toml"), config).unwrap();
    let before = std::fs::read(dir.path().join("state/mailwave.db")).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("displayConcealedNames"));
    assert_eq!(
        std::fs::read(dir.path().join("state/mailwave.db")).unwrap(),
        before
    );
}

#[test]
fn sim_serve_prints_its_address_and_serves() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mailwave"))
        .args([
            "sim",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "3",
            "--speed",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .env("MAILWAVE_LOG", "warn")
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("mailwave simulator listening on ")
        .unwrap()
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");
    let clock = lines.next().unwrap().unwrap();
    assert!(clock.starts_with("clock scaled:60:"), "{clock}");
    let stats: serde_json::Value = tokio::runtime::Runtime::new().unwrap().block_on(async {
        reqwest::get(format!("{base}/_sim/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(stats["exchange"]["throttled"], 0);
    child.kill().unwrap();
    child.wait().unwrap();
}
