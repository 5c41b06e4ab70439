//! The command line as a user meets it: `config check`, one-line errors, exit codes.

use std::process::{Command, Output};

use crate::support::{repo_root, reseat_bin};

fn reseat(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(reseat_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RESEAT_DATABASE__URL")
        .output()
        .expect("reseat runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn the_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo_root().join("reseat.example.toml");
    let output = reseat(
        dir.path(),
        &["config", "check", "--config", example.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("[server]") && printed.contains("listen = "),
        "{printed}"
    );
}

fn check_with(contents: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), contents).unwrap();
    reseat(dir.path(), &["config", "check", "--config", "bad.toml"])
}

#[test]
fn a_bad_duration_is_one_line_and_exit_2() {
    let output = check_with("[queue]\nlease = \"ninety\"\n");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "config: queue.lease: expected a duration like \"90d\", got \"ninety\"\n"
    );
}

#[test]
fn an_unknown_key_is_one_line_and_exit_2() {
    let output = check_with("[database]\nurls = \"sqlite://x.db\"\n");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "config: database.urls: unknown key; did you mean \"url\"?\n"
    );
}

#[test]
fn a_missing_secret_file_is_one_line_and_exit_2() {
    let output = check_with("[database]\nurl_file = \"/nonexistent/db-url\"\n");
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.starts_with(
            "config: database.url_file: cannot read the secret file \"/nonexistent/db-url\""
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn an_unreachable_database_is_one_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(reseat_bin())
        .arg("migrate")
        .current_dir(dir.path())
        .env(
            "RESEAT_DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/reseat",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("database.url: cannot connect to postgres://postgres@127.0.0.1:1/reseat"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let output = Command::new(reseat_bin())
        .arg("migrate")
        .current_dir(dir.path())
        .env(
            "RESEAT_DATABASE__URL",
            "sqlite:///nonexistent-dir/reseat.db",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "database.url: the directory /nonexistent-dir for the SQLite file does not exist; create it or point database.url elsewhere\n"
    );
}

#[test]
fn every_command_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["config", "check", "--help"],
    ] {
        let output = reseat(dir.path(), &args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}

#[test]
fn a_missing_required_secret_is_one_line_and_exit_2() {
    let output = check_with("[atlassian]\norg_id = \"0f1e2d3c-aaaa\"\n");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "config: atlassian.admin_api_key: required secret is missing; set atlassian.admin_api_key, atlassian.admin_api_key_file or RESEAT_ATLASSIAN__ADMIN_API_KEY\n"
    );
}

#[test]
fn config_check_redacts_secrets_from_files_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "admin-key-from-file\n").unwrap();
    let hash = reseat::web::admin::auth::hash_password("correct horse").unwrap();
    std::fs::write(
        dir.path().join("reseat.toml"),
        format!(
            "[atlassian]\norg_id = \"0f1e2d3c\"\nadmin_api_key_file = \"key\"\nsite_name = \"acme\"\nsite_email = \"admin@acme.test\"\n[[admin.users]]\nname = \"ana\"\npassword_hash = {hash:?}\n"
        ),
    )
    .unwrap();
    let output = Command::new(reseat_bin())
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("RESEAT_ATLASSIAN__SITE_API_TOKEN", "token-from-env")
        .env(
            "RESEAT_DATABASE__URL",
            "postgres://reseat:db-password-42@db.internal:5432/reseat",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    let all = format!("{printed}{}", stderr(&output));
    assert!(!all.contains("db-password-42"), "{all}");
    assert!(
        printed.contains("postgres://reseat:[redacted]@db.internal:5432/reseat"),
        "{printed}"
    );
    assert!(
        printed.contains("admin_api_key = \"[redacted]\""),
        "{printed}"
    );
    assert!(
        printed.contains("site_api_token = \"[redacted]\""),
        "{printed}"
    );
    assert!(
        !printed.contains("admin-key-from-file") && !printed.contains("token-from-env"),
        "{printed}"
    );
    assert!(printed.contains("name = \"ana\""), "{printed}");
    assert!(
        !printed.contains("$argon2id$"),
        "password hashes are redacted too: {printed}"
    );
}

#[test]
fn demo_starts_and_its_printed_urls_answer() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(reseat_bin())
        .args(["demo", "--port", "0", "--users", "60", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = std::collections::HashMap::new();
    while printed.len() < 3 {
        let line = lines.next().expect("demo prints its URLs").unwrap();
        if let Some((key, value)) = line.split_once(": ") {
            printed.insert(key.to_string(), value.to_string());
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = reqwest::get(format!("{}/readyz", printed["app"]))
            .await
            .unwrap();
        assert_eq!(app.status(), 200);
        let sim = reqwest::get(format!("{}/_sim/info", printed["simulator"]))
            .await
            .unwrap();
        assert_eq!(sim.status(), 200);
    });
    assert!(std::path::Path::new(&printed["outbox"]).is_dir());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_port_in_use_is_said_once_in_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = reseat(dir.path(), &["serve", "--listen", &addr]);
    assert!(!output.status.success());
    let text = stderr(&output);
    let line = text.trim_end();
    assert!(!line.contains('\n'), "one line: {text}");
    assert!(line.contains(&format!("cannot listen on {addr}")), "{text}");
    let cause = line.to_lowercase();
    assert_eq!(
        cause.matches("address already in use").count() + cause.matches("address in use").count(),
        1,
        "{text}"
    );
}
