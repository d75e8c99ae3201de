//! `modelwatch serve` itself: configuration precedence, the first admin
//! token, refusing unsafe settings, graceful shutdown, and the CLI's
//! behaviour when no daemon answers.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn data_dir_precedence_is_flag_then_env_then_file_then_default() {
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| root.path().join(name);
    let config = root.path().join("modelwatch.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", dir("from-file").display().to_string()),
    )
    .unwrap();
    let config_arg = || vec!["--config".to_string(), config.display().to_string()];

    // File only.
    let d = Daemon::start_in(
        dir("unused"),
        None,
        Start {
            args: config_arg(),
            data_dir_flag: false,
            ..Default::default()
        },
    );
    assert!(dir("from-file").join("registry.sqlite").exists());
    drop(d);
    // Environment beats the file.
    let d = Daemon::start_in(
        dir("unused"),
        None,
        Start {
            args: config_arg(),
            env: vec![(
                "MODELWATCH_DATA_DIR".into(),
                dir("from-env").display().to_string(),
            )],
            data_dir_flag: false,
            ..Default::default()
        },
    );
    assert!(dir("from-env").join("registry.sqlite").exists());
    drop(d);
    // The flag beats both.
    let mut args = config_arg();
    args.extend([
        "--data-dir".to_string(),
        dir("from-flag").display().to_string(),
    ]);
    let d = Daemon::start_in(
        dir("unused"),
        None,
        Start {
            args,
            env: vec![(
                "MODELWATCH_DATA_DIR".into(),
                dir("from-env-2").display().to_string(),
            )],
            data_dir_flag: false,
            ..Default::default()
        },
    );
    assert!(dir("from-flag").join("registry.sqlite").exists());
    assert!(!dir("from-env-2").exists());
    drop(d);
    assert!(!dir("unused").exists());
}

#[tokio::test]
async fn first_start_prints_an_admin_token_once_and_stores_only_its_hash() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let d = Daemon::start_in(
        data.clone(),
        None,
        Start {
            bootstrap: false,
            ..Default::default()
        },
    );
    let announcement = d.next_stdout_line().expect("an announcement on stdout");
    assert!(
        announcement.contains("shown only this once"),
        "{announcement}"
    );
    let token = d
        .next_stdout_line()
        .expect("the token on stdout")
        .trim()
        .to_string();
    assert!(token.starts_with("mw_"), "not a token: {token:?}");
    let http = d.http().with_token(Some(&token));
    assert_eq!(http.get("/api/v1/tokens").await.0, 200);
    let (exit, _) = d.terminate();
    assert!(exit.success());
    let dump = Command::new("sqlite3")
        .arg(data.join("registry.sqlite"))
        .arg(".dump tokens")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&dump.stdout).contains(&token),
        "the secret itself was stored"
    );

    // A second start finds the admin token and prints nothing.
    let d = Daemon::start_in(
        data,
        None,
        Start {
            bootstrap: false,
            ..Default::default()
        },
    );
    assert_eq!(
        d.http()
            .with_token(Some(&token))
            .get("/api/v1/models")
            .await
            .0,
        200
    );
    let printed = d.stdout.clone();
    let (exit, _) = d.terminate();
    assert!(exit.success());
    let printed = printed.lock().unwrap().clone();
    assert!(
        !printed.contains("mw_"),
        "a second token was printed: {printed}"
    );
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_the_data_survives() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let d = Daemon::start_in(data.clone(), None, Start::default());
    assert_eq!(
        d.http()
            .post("/api/v1/models", json!({"name": "kept"}))
            .await
            .0,
        201
    );
    assert_eq!(d.http().get("/readyz").await.0, 200);
    let (exit, log) = d.terminate();
    assert!(exit.success(), "exit status {exit:?}\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    let d = Daemon::start_in(data, None, Start::default());
    assert_eq!(d.http().get("/api/v1/models/kept").await.0, 200);
}

#[test]
fn no_auth_is_refused_on_a_public_address() {
    let o = Command::new(binary())
        .args(["serve", "--no-auth", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--no-auth is only allowed on a loopback"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn no_auth_on_loopback_warns_and_lets_requests_through() {
    let d = Daemon::start_with(Start {
        args: vec!["--no-auth".into()],
        bootstrap: false,
        ..Default::default()
    });
    assert!(
        d.stderr
            .lock()
            .unwrap()
            .contains("authentication is DISABLED")
    );
    assert_eq!(
        d.http()
            .with_token(None)
            .post("/api/v1/models", json!({"name": "open"}))
            .await
            .0,
        201
    );
}

#[test]
fn the_cli_says_clearly_when_no_daemon_answers() {
    let o = Command::new(binary())
        .args(["models", "list"])
        .env("MODELWATCH_URL", "http://127.0.0.1:9")
        .env("MODELWATCH_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("cannot reach modelwatch at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("MODELWATCH_URL"), "{err}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let d = Daemon::start_with(Start::args(&["--log-format", "json"]));
    let log = d.stderr.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|l| l.contains("listening on") && l.contains("\"api\""))
        .expect("listening line of the API listener");
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("listening on http://127.0.0.1:")
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_and_refuses_new_ones() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut d = Daemon::start();
    let addr = d.url.trim_start_matches("http://").to_string();
    let body = br#"{"sql": "SELECT 41 + 1 AS answer"}"#;
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // `Expect: 100-continue` makes the daemon say when the handler starts
    // reading the body: from then on the request is in flight.
    let head = format!(
        "POST /api/v1/sql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");

    d.signal("TERM");
    // The listener closes: a new connection is refused (poll until the
    // signal has been handled; the old request is still waiting for its body).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting connections 30 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""answer":42"#), "{response}");
    let exit = d.child.wait().unwrap();
    assert!(exit.success(), "exit status {exit}");
}

#[tokio::test]
async fn a_token_with_an_expiry_works_until_then_and_is_refused_after() {
    let d = Daemon::start();
    let admin = d.http();
    let out = d.cli(&[
        "token",
        "create",
        "--name",
        "contractor",
        "--role",
        "reader",
        "--expires-in",
        "3s",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let expires_at = created["expires_at"].as_str().unwrap().to_string();
    let secret = created["token"].as_str().unwrap().to_string();
    let contractor = admin.with_token(Some(&secret));
    assert_eq!(contractor.get("/api/v1/models").await.0, 200);
    let listed = admin.get_expect("/api/v1/tokens", 200).await;
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "contractor")
        .unwrap()
        .clone();
    assert_eq!(row["expires_at"], expires_at.as_str());

    // Refused once the time has passed: on every request, cached or not.
    let refusal = wait_for(Duration::from_secs(20), "the token to expire", || {
        let contractor = contractor.clone();
        async move {
            match contractor.get("/api/v1/models").await {
                (401, body) => Ok(body),
                (status, _) => Err(format!("still {status}")),
            }
        }
    })
    .await;
    assert!(error_message(&refusal).contains("expired at"), "{refusal}");

    // Bad expiries are refused, nothing created.
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let body = admin
        .post_expect(
            "/api/v1/tokens",
            json!({"name": "late", "role": "reader", "expires_at": past}),
            400,
        )
        .await;
    assert!(error_message(&body).contains("not in the future"), "{body}");
    for bad in ["0s", "5x", "soon"] {
        let out = d.cli(&[
            "token",
            "create",
            "--name",
            "x",
            "--role",
            "reader",
            "--expires-in",
            bad,
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
    let listed = admin.get_expect("/api/v1/tokens", 200).await;
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "late" || t["name"] == "x")
    );
}

#[tokio::test]
async fn a_plain_listener_off_loopback_is_warned_about() {
    let d = Daemon::start_with(Start::args(&["--otlp-http-listen", "0.0.0.0:0"]));
    let log = d.stderr.lock().unwrap().clone();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("plain text on a non-loopback address"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("listener=\"otlp-http\""), "{log}");
}
