//! Shared fixtures: a project folder with config, estates, and a way to run the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mailwave::config::Config;
use mailwave::inventory::{self, groups, synth};
use mailwave::plan::{self, Calendar, files};
use mailwave::store::Store;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A temporary project folder with `mailwave.toml` (small capacities) and the bank-holiday file.
pub struct Project {
    pub dir: tempfile::TempDir,
}

pub const SMALL_CONFIG: &str = r#"[tenant]
id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "MAILWAVE_TEST_SECRET"

[migration]
remote_host_name = "hybrid.contoso.com"
target_delivery_domain = "contoso.mail.onmicrosoft.com"

[schedule]
timezone = "Europe/London"
weekday_capacity = 3
weekend_capacity = 5
cutover_window = "20:00-06:00"
prestage_days = 7
blackout = ["2026-12-24"]
bank_holidays = "schedules/uk-bank-holidays.json"
"#;

impl Project {
    pub fn new(config: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("schedules")).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules/uk-bank-holidays.json"),
            dir.path().join("schedules/uk-bank-holidays.json"),
        )
        .unwrap();
        std::fs::write(dir.path().join("mailwave.toml"), config).unwrap();
        // Whatever the umask: commands that sign in refuse a config others can change.
        std::fs::set_permissions(
            dir.path().join("mailwave.toml"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        Project { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn db(&self) -> PathBuf {
        self.path("state/mailwave.db")
    }

    /// Runs the binary in the project folder.
    pub fn run(&self, args: &[&str]) -> Output {
        run_in(self.dir.path(), args)
    }

    /// Runs the binary in the project folder with its clock at `at` (RFC 3339), moving at real
    /// speed from there: for commands whose answer depends on the date, so they never depend on
    /// the day the suite runs.
    pub fn run_at(&self, at: &str, args: &[&str]) -> Output {
        let clock = format!("scaled:1:{}:{at}", jiff::Timestamp::now());
        let mut all = vec!["--clock", clock.as_str()];
        all.extend_from_slice(args);
        run_in(self.dir.path(), &all)
    }

    pub fn config(&self) -> Config {
        Config::load(&self.path("mailwave.toml")).unwrap()
    }
}

/// Runs the binary in `cwd` (anywhere: a project is found through `--config`), with no project
/// named by the environment.
pub fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailwave"))
        .args(args)
        .current_dir(cwd)
        .env_remove("MAILWAVE_CONFIG")
        .env_remove("MAILWAVE_STATE")
        .env_remove("MAILWAVE_ENDPOINTS_BASE")
        .env("MAILWAVE_LOG", "warn")
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Imports a synthetic estate of `n` mailboxes and loads a plan for it (library calls, no binary).
pub fn planned_estate(project: &Project, n: usize, start: jiff::civil::Date) -> plan::Plan {
    let mut inv = synth::generate(&synth::EstateSpec::new(n, 42));
    groups::assign(&mut inv, 50);
    let mut store = Store::create(&project.db()).unwrap();
    let summary = inventory::summary::ImportSummary::of(&inv, 0);
    store
        .replace_inventory(
            &inv,
            "synthetic",
            0,
            &serde_json::to_string(&summary).unwrap(),
            jiff::Timestamp::now(),
        )
        .unwrap();
    let (inv, _) = store.load_inventory().unwrap();
    let calendar = Calendar::from_schedule(&project.config().schedule).unwrap();
    let plan = plan::build(&inv, &calendar, start, "test").unwrap();
    let dir = project.path("schedules/test");
    files::write(&plan, &dir).unwrap();
    store
        .load_plan(&files::read(&dir).unwrap(), jiff::Timestamp::now())
        .unwrap();
    plan
}

/// Every file in a folder with its bytes, sorted by name.
pub fn folder_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The html report parsed as the XML it must be; a report that is not well-formed fails the test.
pub fn html_report(html: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse_with_options(
        html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("the html report is not well-formed: {e}"))
}
