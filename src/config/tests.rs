use super::*;

fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reseat.toml");
    std::fs::write(&file, toml_text).unwrap();
    Config::load(&Sources {
        file: Some(file),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let config = load("", &[]).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:8080");
    assert_eq!(config.database.url, "sqlite://reseat.db");
}

#[test]
fn environment_overrides_the_file() {
    let config = load(
        "[server]\nlisten = \"127.0.0.1:9000\"\n",
        &[
            ("RESEAT_SERVER__LISTEN", "0.0.0.0:7000"),
            ("RESEAT_QUEUE__WORKERS", "9"),
            ("RESEAT_QUEUE__LEASE", "2m"),
            ("RESEAT_TEST_DATABASE_URL", "not a config key"),
        ],
    )
    .unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:7000");
    assert_eq!(config.queue.workers, 9);
    assert_eq!(config.queue.lease, Duration::from_secs(120));
}

#[test]
fn a_bad_duration_names_the_key() {
    let error = load("[queue]\nlease = \"ninety\"\n", &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "config: queue.lease: expected a duration like \"90d\", got \"ninety\""
    );
}

#[test]
fn an_unknown_key_suggests_the_closest() {
    let error = load("[server]\nlisen = \"127.0.0.1:1\"\n", &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "config: server.lisen: unknown key; did you mean \"listen\"?"
    );
    let error = load("[serer]\n", &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "config: serer: unknown key; did you mean \"server\"?"
    );
}

#[test]
fn an_unknown_key_from_the_environment_names_the_variable() {
    let error = load("", &[("RESEAT_SERVER__LISTN", "x")]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "config: server.listn (from RESEAT_SERVER__LISTN): unknown key; did you mean \"listen\"?"
    );
}

#[test]
fn a_wrong_type_names_the_key() {
    let error = load("[queue]\nworkers = \"many\"\n", &[]).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("config: queue.workers: invalid type"),
        "{error}"
    );
}

#[test]
fn a_syntax_error_names_the_line() {
    let error = load("[server]\nlisten = \n", &[]).unwrap_err();
    assert!(error.place.ends_with("reseat.toml line 2"), "{error}");
}

#[test]
fn a_bad_listen_address_is_refused() {
    let error = load("[server]\nlisten = \"localhost\"\n", &[]).unwrap_err();
    assert_eq!(error.place, "server.listen");
}

#[test]
fn secrets_come_from_files_and_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("db-url");
    std::fs::write(&secret, "sqlite://from-file.db\n").unwrap();
    let config = load(
        &format!(
            "[database]\nurl_file = {:?}\n",
            secret.display().to_string()
        ),
        &[],
    )
    .unwrap();
    assert_eq!(config.database.url, "sqlite://from-file.db");

    let error = load("[database]\nurl_file = \"/nonexistent/secret\"\n", &[]).unwrap_err();
    assert_eq!(error.place, "database.url_file");
    assert!(
        error.message.contains("cannot read the secret file"),
        "{error}"
    );
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let error = Config::load(&Sources {
        file: Some("/nonexistent/reseat.toml".into()),
        env: vec![],
    })
    .unwrap_err();
    assert_eq!(error.place, "/nonexistent/reseat.toml");
}
