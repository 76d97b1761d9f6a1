//! One project, one database, wherever a command runs: from the project's folder, from a sibling
//! folder with `--config ../proj/mailwave.toml`, and from `/` as cron and systemd run it. Only
//! `init` and the first `inventory import` make a database; every other command that finds none
//! says where it looked and leaves nothing behind.

use std::path::{Path, PathBuf};

use crate::helpers::*;

/// A clock at real speed that reads 08:00 UTC on Monday 4 January 2027 now.
fn monday_morning() -> String {
    format!("scaled:1:{}:2027-01-04T08:00:00Z", jiff::Timestamp::now())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn real(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

fn plan_of(db: &Path) -> Option<String> {
    mailwave::store::Store::open_read_only(db)
        .unwrap()
        .status(jiff::Timestamp::now(), None)
        .unwrap()
        .plan
}

#[test]
fn one_project_has_one_database_found_from_a_sibling_folder_and_from_the_root() {
    let top = tempfile::tempdir().unwrap();
    let stray_at_root = Path::new("/state/mailwave.db").exists();
    let out = run_in(top.path(), &["init", "--dir", "proj"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let proj = real(&top.path().join("proj"));
    let db = proj.join("state/mailwave.db");
    assert!(db.is_file(), "init makes the project's database");
    assert!(
        stdout(&out).contains(&db.display().to_string()),
        "init prints the database's absolute path: {}",
        stdout(&out)
    );
    let config = proj.join("mailwave.toml");
    let config = config.to_str().unwrap();
    let clock = monday_morning();

    // The steps, from a sibling folder: the import lands in the project.
    let elsewhere = top.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let estate = fixture("estate.csv");
    let delegates = fixture("delegates.csv");
    let out = run_in(
        &elsewhere,
        &[
            "--config",
            "../proj/mailwave.toml",
            "inventory",
            "import",
            estate.to_str().unwrap(),
            "--delegates",
            delegates.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("stored in {}", db.display())),
        "{}",
        stdout(&out)
    );
    assert!(entries(&elsewhere).is_empty(), "{:?}", entries(&elsewhere));

    // From the root, as cron runs it: plan, status, an action, a report.
    let root = Path::new("/");
    let out = run_in(
        root,
        &[
            "--config",
            config,
            "--clock",
            &clock,
            "plan",
            "--start",
            "2027-01-05",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(proj.join("schedules/plan-2027-01-05/plan.json").is_file());
    assert_eq!(plan_of(&db).as_deref(), Some("plan-2027-01-05"));
    let out = run_in(root, &["--config", config, "--clock", &clock, "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("plan plan-2027-01-05"),
        "{}",
        stdout(&out)
    );
    let out = run_in(
        root,
        &[
            "--config",
            config,
            "--clock",
            &clock,
            "mailbox",
            "hold",
            "erin@contoso.com",
            "--reason",
            "from the root",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(proj.join("state/mailwave.db.actions").is_file());
    assert!(proj.join("state/mailwave.db.lock").is_file());
    let out = run_in(
        root,
        &[
            "--config", config, "--clock", &clock, "report", "--format", "csv",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("erin@contoso.com"));
    assert_eq!(
        Path::new("/state/mailwave.db").exists(),
        stray_at_root,
        "nothing was made under /"
    );

    // --state is the operator's own path, from where the command runs.
    let out = run_in(
        &elsewhere,
        &[
            "--state",
            "../proj/state/mailwave.db",
            "--clock",
            &clock,
            "status",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("plan plan-2027-01-05"),
        "{}",
        stdout(&out)
    );

    // Nothing here: every command says where it looked and how to point at the project.
    for args in [
        &["status"][..],
        &["run", "--once"],
        &["plan", "--start", "2027-01-05"],
        &["mailbox", "hold", "erin@contoso.com"],
        &["report"],
        &["inventory", "show"],
    ] {
        let out = run_in(&elsewhere, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        let looked = real(&elsewhere).join("state/mailwave.db");
        assert!(
            err.contains(&format!("no state database at {}", looked.display()))
                && err.contains("--config")
                && err.contains("does not exist"),
            "{args:?}: {err}"
        );
    }
    let out = run_in(
        &elsewhere,
        &["inventory", "import", estate.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("mailwave init"), "{}", stderr(&out));
    assert!(entries(&elsewhere).is_empty(), "{:?}", entries(&elsewhere));
}

#[test]
fn a_state_path_in_the_config_is_beside_the_config_and_the_first_import_makes_it() {
    let top = tempfile::tempdir().unwrap();
    let proj = real(top.path()).join("proj");
    std::fs::create_dir_all(proj.join("schedules")).unwrap();
    std::fs::write(
        proj.join("mailwave.toml"),
        format!("{SMALL_CONFIG}\n[state]\npath = \"db/estate.db\"\n"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules/uk-bank-holidays.json"),
        proj.join("schedules/uk-bank-holidays.json"),
    )
    .unwrap();
    let config = proj.join("mailwave.toml");
    let config = config.to_str().unwrap();
    let root = Path::new("/");
    let out = run_in(root, &["--config", config, "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the [state] path of"),
        "{}",
        stderr(&out)
    );
    assert!(!proj.join("db").exists(), "a refused command makes nothing");

    let bad = fixture("bad-address.csv");
    let import = || {
        let out = run_in(
            root,
            &[
                "--config",
                config,
                "inventory",
                "import",
                bad.to_str().unwrap(),
                "--skip-invalid",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    let out = import();
    let db = proj.join("db/estate.db");
    assert!(db.is_file());
    let text = stdout(&out);
    assert!(
        text.contains(&format!("created the state database {}", db.display())),
        "{text}"
    );
    assert!(proj.join("db/inventory-rejected.csv").is_file(), "{text}");
    assert!(!proj.join("state").exists(), "{:?}", entries(&proj));

    // The second import finds it, and says nothing of creating one.
    let out = import();
    assert!(!stdout(&out).contains("created the state database"));
    let out = run_in(root, &["--config", config, "inventory", "show"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
