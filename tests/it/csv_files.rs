//! Export files as admins really have them, planned against a seeded simulator with a known
//! truth: merged columns, broken quotes, line endings, Excel's rows and separators, stale data.
//! Whatever the file, an active user is never planned for removal.

use std::path::Path;

use chrono::Utc;
use reseat::app::AppState;
use reseat::sim::SimHandle;
use reseat::sweep::config::Mode;
use reseat::sweep::store::{self, PlanItem};
use reseat::sweep::{Planned, Source, SweepError};

use crate::support::TestDb;
use crate::sweep::{
    assert_same, decisions, expected, export_csv, hidden, seeded, state_for, state_with,
};

const USERS: usize = 150;

/// The simulator's export as a header and rows.
fn export_rows(sim: &SimHandle, dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let path = dir.join("source.csv");
    export_csv(sim, &path);
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// One line per row (the separator and quoting of the csv crate), no line end.
fn line(fields: &[String], separator: u8) -> String {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(separator)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(fields).unwrap();
    let mut text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
    text.pop();
    text
}

async fn plan(state: &AppState, file: &Path) -> Result<Planned, SweepError> {
    reseat::sweep::plan(
        state,
        &[Source::Csv(file.to_owned())],
        Utc::now(),
        &hidden(),
    )
    .await
}

async fn items(state: &AppState, planned: &Planned) -> Vec<PlanItem> {
    store::items(&state.db, &planned.plan_id).await.unwrap()
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

#[tokio::test]
async fn a_second_column_of_one_product_never_hides_the_newest_activity() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_for(&sim, &db, Mode::DryRun).await;
        let site = &sim.config().site_name;
        let dir = tempfile::tempdir().unwrap();
        let (mut header, mut rows) = export_rows(&sim, dir.path());
        // "Jira Software" after the rename says "Never accessed" for everybody, and a repeated
        // Confluence header too: read last, each used to win.
        header.push(format!("Last seen in Jira Software - {site}"));
        header.push(format!("Last seen in Confluence - {site}"));
        for row in &mut rows {
            row.push("Never accessed".into());
            row.push("Never accessed".into());
        }
        let mut text = line(&header, b',');
        for row in &rows {
            text.push('\n');
            text.push_str(&line(row, b','));
        }
        let file = dir.path().join("merged.csv");
        std::fs::write(&file, text).unwrap();
        let planned = plan(&state, &file).await.unwrap();
        let items = items(&state, &planned).await;
        assert_same(&decisions(&items), &expected(&sim), &items);
        let lines = reseat::sweep::plan::summary_lines(&planned.summary);
        for merged in [
            format!("Last seen in Jira - {site} + Last seen in Jira Software - {site}"),
            format!("Last seen in Confluence - {site} + Last seen in Confluence - {site}"),
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("csv: columns merged") && l.contains(&merged)),
                "{lines:#?}"
            );
        }
        sim.shutdown().await;
    }
}

/// Index of a row whose account keeps Jira (active, not exempt) and whose next row's name, like
/// its own, needs no quoting.
fn active_then_next(
    sim: &SimHandle,
    header: &[String],
    rows: &[Vec<String>],
    want_next: &str,
) -> usize {
    let truth = expected(sim);
    let name = column(header, "User name");
    let plain = |row: &Vec<String>| !row[name].contains([',', '"', '\n']);
    (0..rows.len() - 1)
        .find(|&i| {
            let decision = |row: &Vec<String>| {
                truth
                    .get(&(row[0].clone(), "jira-software".to_owned()))
                    .cloned()
            };
            decision(&rows[i]).as_deref() == Some("keep")
                && decision(&rows[i + 1]).as_deref() == Some(want_next)
                && plain(&rows[i])
                && plain(&rows[i + 1])
        })
        .unwrap()
}

#[tokio::test]
async fn an_unbalanced_quote_costs_the_joined_accounts_and_removes_nobody() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_with(&sim, &db, Mode::DryRun, |config| {
            config.sweep.csv.max_bad_row_percent = 5.0;
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (header, rows) = export_rows(&sim, dir.path());
        let name = column(&header, "User name");
        // An active user's name opens a quote; the next user's quoted name closes it. That
        // next user is idle: read as one record, the active user would get the idle date.
        let i = active_then_next(&sim, &header, &rows, "remove");
        let mut text = line(&header, b',');
        for (n, row) in rows.iter().enumerate() {
            let mut fields: Vec<String> = row
                .iter()
                .map(|f| line(std::slice::from_ref(f), b','))
                .collect();
            if n == i {
                fields[name] = format!("\"{}", row[name]);
            }
            if n == i + 1 {
                fields[name] = format!("\"{}\"", row[name]);
            }
            text.push('\n');
            text.push_str(&fields.join(","));
        }
        let file = dir.path().join("joined.csv");
        std::fs::write(&file, &text).unwrap();
        let planned = plan(&state, &file).await.unwrap();
        let items = items(&state, &planned).await;
        for account in [&rows[i][0], &rows[i + 1][0]] {
            for item in items.iter().filter(|it| &it.account_id == account) {
                assert_ne!(item.decision, "remove", "{item:?}");
            }
        }
        let active = items
            .iter()
            .find(|it| it.account_id == rows[i][0] && it.product == "jira-software")
            .unwrap();
        assert_eq!(active.decision, "unknown", "{active:?}");
        let summary = &planned.summary;
        assert_eq!((summary.csv_bad_rows, summary.csv_lost_accounts), (1, 2));
        assert!(
            summary.csv_errors[0].starts_with(&format!("line {}: ", i + 2))
                && summary.csv_errors[0].contains("unbalanced quote"),
            "{:?}",
            summary.csv_errors
        );
        let lines = reseat::sweep::plan::summary_lines(summary);
        assert!(
            lines.contains(&format!(
                "csv: {} rows, 1 bad (costing up to 2 accounts)",
                summary.csv_rows
            )),
            "{lines:#?}"
        );

        // A quote never closed: the rest of the file is one field; the file is refused.
        let mut text = line(&header, b',');
        for (n, row) in rows.iter().enumerate() {
            // Nothing after the open quote may close it.
            let mut fields: Vec<String> = row
                .iter()
                .map(|f| f.replace(['"', ',', '\n'], " "))
                .collect();
            if n == i {
                fields[name] = format!("\"{}", fields[name]);
            }
            text.push('\n');
            text.push_str(&fields.join(","));
        }
        let file = dir.path().join("unclosed.csv");
        std::fs::write(&file, &text).unwrap();
        let err = plan(&state, &file).await.unwrap_err().to_string();
        let lost = rows.len() - i;
        assert!(
            err.contains(&format!("rows are bad, costing up to {lost} accounts")),
            "{err}"
        );
        assert!(err.contains(&format!("line {}: ", i + 2)), "{err}");
        sim.shutdown().await;
    }
}

/// The export with one bad row after row `bad` and a blank line after row `blank`, the given
/// line end and an optional byte-order mark; the bad row's physical line.
fn with_bad_row(
    header: &[String],
    rows: &[Vec<String>],
    bad: usize,
    blank: usize,
    end: &str,
    bom: bool,
) -> (String, usize) {
    let mut lines = vec![line(header, b',')];
    let mut bad_line = 0;
    for (n, row) in rows.iter().enumerate() {
        lines.push(line(row, b','));
        if n == blank {
            lines.push(String::new());
        }
        if n == bad {
            let mut broken = row.clone();
            broken[0] = "not an account".into();
            lines.push(line(&broken, b','));
            bad_line = lines.len();
        }
    }
    let prefix = if bom { "\u{feff}" } else { "" };
    (format!("{prefix}{}{end}", lines.join(end)), bad_line)
}

#[tokio::test]
async fn bad_rows_are_reported_at_their_physical_line_whatever_the_line_ends() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_with(&sim, &db, Mode::DryRun, |config| {
            config.sweep.csv.max_bad_row_percent = 5.0;
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (header, rows) = export_rows(&sim, dir.path());
        for (label, end, bom) in [
            ("LF", "\n", false),
            ("CRLF with a BOM, as Excel writes it", "\r\n", true),
            ("CR only", "\r", false),
        ] {
            let (text, bad_line) = with_bad_row(&header, &rows, 40, 10, end, bom);
            assert_eq!(bad_line, 44, "header, 41 rows, a blank line, the bad row");
            let file = dir.path().join("lines.csv");
            std::fs::write(&file, text).unwrap();
            let planned = plan(&state, &file).await.unwrap();
            assert_eq!(planned.summary.csv_bad_rows, 1, "{label}");
            assert!(
                planned.summary.csv_errors[0].starts_with("line 44: "),
                "{label}: {:?}",
                planned.summary.csv_errors
            );
            let items = items(&state, &planned).await;
            assert_same(&decisions(&items), &expected(&sim), &items);
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn separator_only_rows_and_products_not_swept_cost_nothing() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_for(&sim, &db, Mode::DryRun).await;
        let site = &sim.config().site_name;
        let dir = tempfile::tempdir().unwrap();
        let (mut header, mut rows) = export_rows(&sim, dir.path());
        // Jira Product Discovery is known to reseat but not swept here: "No access" under it
        // decides nothing.
        header.push(format!("Jira Product Discovery - {site}"));
        header.push(format!("Last seen in Jira Product Discovery - {site}"));
        for row in &mut rows {
            row.push(String::new());
            row.push("No access".into());
        }
        let empty = ",".repeat(header.len() - 1);
        let mut text = line(&header, b',');
        for (n, row) in rows.iter().enumerate() {
            text.push_str("\r\n");
            text.push_str(&line(row, b','));
            // Excel's separator-only rows, 2.4 % of the file and more.
            if n % 40 == 0 {
                text.push_str("\r\n");
                text.push_str(&empty);
            }
        }
        let file = dir.path().join("excel.csv");
        std::fs::write(&file, text).unwrap();
        let planned = plan(&state, &file).await.unwrap();
        let items = items(&state, &planned).await;
        assert_same(&decisions(&items), &expected(&sim), &items);
        let summary = &planned.summary;
        assert_eq!(summary.csv_bad_rows, 0, "{:?}", summary.csv_errors);
        let skipped = rows.len().div_ceil(40);
        let lines = reseat::sweep::plan::summary_lines(summary);
        assert!(
            lines.contains(&format!("csv: {skipped} separator-only rows skipped")),
            "{lines:#?}"
        );
        assert!(
            lines.contains(&format!(
                "csv: Last seen in Jira Product Discovery - {site}: {} unreadable values ignored (the product is not swept)",
                rows.len()
            )),
            "{lines:#?}"
        );
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_semicolon_file_plans_like_the_comma_file() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_for(&sim, &db, Mode::DryRun).await;
        let dir = tempfile::tempdir().unwrap();
        let (header, rows) = export_rows(&sim, dir.path());
        let mut text = format!("\u{feff}{}", line(&header, b';'));
        for row in &rows {
            text.push_str("\r\n");
            text.push_str(&line(row, b';'));
        }
        let file = dir.path().join("semicolon.csv");
        std::fs::write(&file, text).unwrap();
        let planned = plan(&state, &file).await.unwrap();
        let items = items(&state, &planned).await;
        assert_same(&decisions(&items), &expected(&sim), &items);
        assert!(
            planned
                .summary
                .csv_notes
                .contains(&"read as ';'-separated".to_owned()),
            "{:?}",
            planned.summary.csv_notes
        );

        // A `;` header that is no export: the refusal names the separator.
        let file = dir.path().join("other.csv");
        std::fs::write(&file, "Benutzer-ID;Name;Zuletzt gesehen\r\n1;2;3\r\n").unwrap();
        let err = plan(&state, &file).await.unwrap_err().to_string();
        assert!(err.contains("(read as `;`-separated)"), "{err}");
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_stale_export_is_flagged_when_planned_and_the_plan_is_still_stored() {
    for db in TestDb::all().await {
        let sim = seeded(USERS).await;
        let state = state_for(&sim, &db, Mode::DryRun).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("export.csv");
        export_csv(&sim, &file);
        // Planned 199 days after the export was taken.
        let later = Utc::now() + chrono::Duration::days(199);
        let planned = reseat::sweep::plan(&state, &[Source::Csv(file)], later, &hidden())
            .await
            .unwrap();
        let stale = planned.summary.stale.clone().unwrap();
        assert!(
            stale.contains("older than sweep.limits.stale_after"),
            "{stale}"
        );
        let lines = reseat::sweep::plan::summary_lines(&planned.summary);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("warning: the newest activity")
                    && l.ends_with("apply will refuse this plan")),
            "{lines:#?}"
        );
        // Stored, with its warning, for the admin pages and apply.
        let stored = store::get_plan(&state.db, &planned.plan_id)
            .await
            .unwrap()
            .unwrap();
        let summary = reseat::sweep::plan::PlanSummary::parse(&stored.id, &stored.summary).unwrap();
        assert_eq!(summary.stale.as_deref(), Some(stale.as_str()));
        assert!(!items(&state, &planned).await.is_empty());
        sim.shutdown().await;
    }
}
