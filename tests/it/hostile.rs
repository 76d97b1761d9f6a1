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
