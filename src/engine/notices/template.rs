//! Notice templates: `before`, `after`, `correction` and `reconfirm`, each `.txt` or `.html`, in the
//! templates folder, and per organisation in a sub-folder named after it (a project without a
//! `reconfirm` gets the starter's text). The first line is `Subject: ...`,
//! the rest the body. `{placeholder}`s are filled per user; `{{` and `}}` are braces. A template
//! naming a placeholder mailwave does not know is refused when it is loaded, with its file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every placeholder a template may use.
pub const PLACEHOLDERS: [&str; 9] = [
    "display_name",
    "address",
    "date",
    "window",
    "wave",
    "organisation",
    "help_link",
    "reply_to",
    "old_date",
];

/// The notices, by template name.
pub const KINDS: [&str; 4] = ["before", "after", "correction", "reconfirm"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}:{line}: {message}", path.display())]
pub struct TemplateError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    subject: Vec<Piece>,
    body: Vec<Piece>,
    html: bool,
}

/// The values of one message's placeholders, by [`PLACEHOLDERS`] index.
pub type Values = [String; PLACEHOLDERS.len()];

/// The templates of a folder: the default set and each organisation's overrides.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    sets: HashMap<Option<String>, HashMap<&'static str, Template>>,
}

fn parse_line(text: &str, path: &Path, line: usize) -> Result<Vec<Piece>, TemplateError> {
    let err = |message: String| TemplateError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::new();
    let mut text_run = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        text_run.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            text_run.push(c as char);
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err(err("a lone \"}\" (write \"}}\" for a brace)".into()));
        }
        let Some(end) = after.find('}') else {
            return Err(err(
                "a \"{\" that is not closed (write \"{{\" for a brace)".into()
            ));
        };
        let name = after[..end].trim();
        let Some(field) = PLACEHOLDERS.iter().position(|p| *p == name) else {
            return Err(err(format!(
                "unknown placeholder {{{name}}}; known: {}",
                PLACEHOLDERS.join(", ")
            )));
        };
        if !text_run.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text_run)));
        }
        out.push(Piece::Field(field));
        rest = &after[end + 1..];
    }
    text_run.push_str(rest);
    if !text_run.is_empty() {
        out.push(Piece::Text(text_run));
    }
    Ok(out)
}

fn parse(path: &Path, text: &str, html: bool) -> Result<Template, TemplateError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let Some(subject) = first
        .strip_prefix("Subject:")
        .or_else(|| first.strip_prefix("subject:"))
    else {
        return Err(TemplateError {
            path: path.to_path_buf(),
            line: 1,
            message: "the first line must be \"Subject: ...\"".into(),
        });
    };
    let subject = parse_line(subject.trim(), path, 1)?;
    let mut body = Vec::new();
    for (i, line) in lines.enumerate() {
        if i == 0 && line.trim().is_empty() {
            continue;
        }
        body.extend(parse_line(line, path, i + 2)?);
        body.push(Piece::Text("\n".into()));
    }
    Ok(Template {
        subject,
        body,
        html,
    })
}

/// The templates in one folder, by kind (a kind with both `.html` and `.txt` is refused).
fn read_set(dir: &Path) -> Result<HashMap<&'static str, Template>, TemplateError> {
    let mut set = HashMap::new();
    for kind in KINDS {
        let mut found = None;
        for (ext, html) in [("txt", false), ("html", true)] {
            let path = dir.join(format!("{kind}.{ext}"));
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(TemplateError {
                        path,
                        line: 1,
                        message: format!("cannot read it: {e}"),
                    });
                }
            };
            if found.is_some() {
                return Err(TemplateError {
                    path,
                    line: 1,
                    message: format!("both {kind}.txt and {kind}.html: keep one"),
                });
            }
            found = Some(parse(&path, &text, html)?);
        }
        if let Some(t) = found {
            set.insert(kind, t);
        }
    }
    Ok(set)
}

impl Templates {
    /// Reads and checks every template under `dir`; `needed` kinds must exist in the default set.
    pub fn load(dir: &Path, needed: &[&str]) -> Result<Templates, TemplateError> {
        let mut sets = HashMap::new();
        let default = read_set(dir)?;
        for kind in needed {
            if !default.contains_key(kind) {
                return Err(TemplateError {
                    path: dir.join(format!("{kind}.txt")),
                    line: 1,
                    message: format!(
                        "missing: the {kind} notice needs {kind}.txt or {kind}.html in {}",
                        dir.display()
                    ),
                });
            }
        }
        let mut default = default;
        if !default.contains_key("reconfirm") {
            // Projects made before re-confirmations existed have none: the starter's text goes.
            let (name, text) = STARTERS[3];
            default.insert("reconfirm", parse(&dir.join(name), text, false)?);
        }
        sets.insert(None, default);
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut orgs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            orgs.sort();
            for org in orgs {
                let name = org
                    .file_name()
                    .map(|n| n.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                sets.insert(Some(name), read_set(&org)?);
            }
        }
        Ok(Templates { sets })
    }

    /// Whether any template (of any organisation) uses placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        let Some(i) = PLACEHOLDERS.iter().position(|p| *p == name) else {
            return false;
        };
        self.sets.values().flat_map(HashMap::values).any(|t| {
            t.subject
                .iter()
                .chain(&t.body)
                .any(|p| matches!(p, Piece::Field(f) if *f == i))
        })
    }

    /// Subject, body and whether it is html, for `kind` to a user of `organisation`.
    pub fn render(
        &self,
        kind: &str,
        organisation: Option<&str>,
        values: &Values,
    ) -> Option<(String, String, bool)> {
        let t = organisation
            .and_then(|o| self.sets.get(&Some(o.to_ascii_lowercase())))
            .and_then(|set| set.get(kind))
            .or_else(|| self.sets.get(&None)?.get(kind))?;
        let fill = |pieces: &[Piece], html: bool| {
            let mut out = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Field(i) if html => out.push_str(&crate::text::html(&values[*i])),
                    Piece::Field(i) => out.push_str(&values[*i]),
                }
            }
            out
        };
        Some((
            fill(&t.subject, false).replace(['\r', '\n'], " "),
            fill(&t.body, t.html),
            t.html,
        ))
    }
}

/// Starter templates `mailwave init` writes (and the demo uses).
pub const STARTERS: [(&str, &str); 4] = [
    (
        "before.txt",
        "Subject: Your mailbox moves on {date}\n\nDear {display_name},\n\nYour mailbox {address} moves to Exchange Online on {date}, between {window}.\nYou do not need to do anything. Outlook may ask you to restart it the next morning.\n\nQuestions: {help_link} or reply to {reply_to}.\n",
    ),
    (
        "after.txt",
        "Subject: Your mailbox has moved\n\nDear {display_name},\n\nYour mailbox {address} is now in Exchange Online. If Outlook asks, restart it.\n\nQuestions: {help_link} or reply to {reply_to}.\n",
    ),
    (
        "correction.txt",
        "Subject: Change to your mailbox move\n\nDear {display_name},\n\nWe told you your mailbox {address} would move on {old_date}. That has changed: it now moves on {date}, between {window}.\n\nQuestions: {help_link} or reply to {reply_to}.\n",
    ),
    (
        "reconfirm.txt",
        "Subject: Your mailbox moves on {date} after all\n\nDear {display_name},\n\nWe told you the move of your mailbox {address} would be on a date we would confirm. It is confirmed: it moves on {date}, between {window}.\nYou do not need to do anything.\n\nQuestions: {help_link} or reply to {reply_to}.\n",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        std::array::from_fn(|i| format!("<{}>", PLACEHOLDERS[i]))
    }

    #[test]
    fn placeholders_are_filled_and_unknown_ones_refused_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in STARTERS {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let t = Templates::load(dir.path(), &KINDS).unwrap();
        let (subject, body, html) = t.render("before", None, &values()).unwrap();
        assert_eq!(subject, "Your mailbox moves on <date>");
        assert!(body.contains("Your mailbox <address> moves"), "{body}");
        assert!(!html);

        // Per organisation, in html: values are escaped.
        std::fs::create_dir(dir.path().join("Org7")).unwrap();
        std::fs::write(
            dir.path().join("Org7/after.html"),
            "Subject: Moved, {display_name}\n<p>{{braces}} {address}</p>\n",
        )
        .unwrap();
        let t = Templates::load(dir.path(), &KINDS).unwrap();
        let (subject, body, html) = t.render("after", Some("org7"), &values()).unwrap();
        assert_eq!(subject, "Moved, <display_name>");
        assert_eq!(body, "<p>{braces} &lt;address&gt;</p>\n");
        assert!(html);
        assert!(!t.render("after", Some("other"), &values()).unwrap().2);

        std::fs::write(
            dir.path().join("Org7/before.txt"),
            "Subject: hi\n\nline two\nthe {dat} is wrong\n",
        )
        .unwrap();
        let e = Templates::load(dir.path(), &KINDS).unwrap_err();
        assert_eq!(e.path, dir.path().join("Org7/before.txt"));
        assert_eq!(e.line, 4);
        assert!(e.message.contains("unknown placeholder {dat}"), "{e}");
        std::fs::remove_file(dir.path().join("Org7/before.txt")).unwrap();

        std::fs::remove_file(dir.path().join("correction.txt")).unwrap();
        let e = Templates::load(dir.path(), &KINDS).unwrap_err();
        assert!(e.message.contains("missing"), "{e}");
        std::fs::write(dir.path().join("correction.txt"), "no subject\n").unwrap();
        let e = Templates::load(dir.path(), &KINDS).unwrap_err();
        assert_eq!(e.line, 1);
    }
}
