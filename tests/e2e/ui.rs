//! The web UI through the real daemon: its forms, sessions and headers
//! over plain HTTP (every refusal leaves the registry as it was), and the
//! whole loop in Debian's chromium driven through chromedriver — log in,
//! find a model, read a drift chart's data, promote through a denying and
//! an allowing gate, roll back with a reason, acknowledge a
//! recommendation, run SQL and download its CSV — with hostile values
//! rendered as text and no script running. Screenshots of every page go to
//! `$CARGO_TARGET_TMPDIR/ui-screenshots/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::monitoring::drifting_fraud_model;
use crate::support::*;

/// What hostile users write where they can.
const HOSTILE_OWNER: &str = "<img src=x onerror=alert(1)>";
const HOSTILE_TAG: &str = "<script>window.__pwned = 1</script>";
const HOSTILE_REASON: &str = "bad canary <b onmouseover=alert(2)>latency</b>";

/// A browser-less client of the UI: cookies kept by hand, redirects not
/// followed, so each answer is seen as the browser would get it.
pub(crate) struct Session {
    url: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl Session {
    pub(crate) fn new(url: &str) -> Session {
        Session {
            url: url.to_string(),
            client: crate::support::http_client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: vec![],
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, res: &reqwest::Response) {
        for set in res.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap();
            assert!(attributes.contains("HttpOnly"), "{set}");
            assert!(attributes.contains("SameSite=Strict"), "{set}");
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let res = self
            .client
            .get(format!("{}{path}", self.url))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String, String) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.url))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode_form(form));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.unwrap();
        self.keep_cookies(&res);
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, location, res.text().await.unwrap())
    }

    /// Signs in with `token`; the answer must be a redirect to the models.
    pub(crate) async fn login(&mut self, token: &str) {
        let (status, _, page) = self.get("/ui/login").await;
        assert_eq!(status, 200);
        let nonce = hidden(&page, "csrf");
        let (status, location, body) = self
            .post(
                "/ui/login",
                &[("csrf", &nonce), ("token", token), ("next", "/ui/models")],
                None,
            )
            .await;
        assert_eq!((status, location.as_str()), (303, "/ui/models"), "{body}");
    }

    /// The session's CSRF token, read from a page's sign-out form.
    async fn csrf(&mut self) -> String {
        let (status, _, page) = self.get("/ui/models").await;
        assert_eq!(status, 200, "{page}");
        hidden(&page, "csrf")
    }
}

/// `application/x-www-form-urlencoded` as a browser sends it.
fn encode_form(fields: &[(&str, &str)]) -> String {
    let enc = |t: &str| {
        t.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first hidden input named `name`.
fn hidden(page: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + needle.len();
    page[start..].split('"').next().unwrap().to_string()
}

/// `fraud` as a drifting `production` model (v1, evaluated), v2 failing the
/// gate (auc 0.7) and v3 passing it (auc 0.91), with hostile owner and tag.
async fn fixture(d: &Daemon) -> (Http, String, String) {
    let admin = d.http();
    let approver = admin.token("release", "approver").await;
    let reader = admin.token("viewer", "reader").await;
    drifting_fraud_model(&admin, json!({"current_window": "1h", "min_rows": 100})).await;
    for auc in [0.7, 0.91] {
        let body =
            json!({"lineage": {"metrics": {"auc": auc, "recall": 0.8}, "parent_version": 1}});
        admin
            .post_expect("/api/v1/models/fraud/versions", body, 201)
            .await;
    }
    let patch = json!({"owner": HOSTILE_OWNER});
    let (status, body) = admin
        .send("PATCH", "/api/v1/models/fraud", Some(patch))
        .await;
    assert_eq!(status, 200, "{body}");
    let tag = json!({"value": HOSTILE_TAG});
    admin
        .put_expect("/api/v1/models/fraud/tags/note", tag, 200)
        .await;
    admin.put_example_gate("fraud", "min_metric.rego").await;
    let out = d.cli(&["evaluate", "--model", "fraud", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    (admin, approver, reader)
}

#[tokio::test]
async fn forms_need_a_session_a_role_and_their_csrf_token() {
    let d = Daemon::start();
    let (admin, approver, reader) = fixture(&d).await;

    // The registry refuses a hostile model name before any page could show it.
    let (status, body) = admin
        .post("/api/v1/models", json!({"name": HOSTILE_OWNER}))
        .await;
    assert_eq!(status, 400, "{body}");

    let mut s = Session::new(&d.url);
    let (status, headers, _) = s.get("/").await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (303, "/ui/models")
    );
    // No session: to the login page, coming back afterwards.
    let (status, headers, _) = s.get("/ui/models/fraud").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui/login?next=%2Fui%2Fmodels%2Ffraud");
    let (status, headers, page) = s.get("/ui/login").await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(!page.contains("<script"), "{page}");

    // Sign-in: the form's nonce must match its cookie, the token must exist.
    let nonce = hidden(&page, "csrf");
    let (status, _, _) = s
        .post(
            "/ui/login",
            &[("csrf", "forged"), ("token", &approver)],
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, page) = s
        .post("/ui/login", &[("csrf", &nonce), ("token", "mw_nope")], None)
        .await;
    assert_eq!(status, 401);
    assert!(page.contains("Unknown, revoked or expired token"), "{page}");
    // A sign-in never sends the browser off the UI.
    let nonce = hidden(&page, "csrf");
    let (status, location, _) = s
        .post(
            "/ui/login",
            &[
                ("csrf", &nonce),
                ("token", &approver),
                ("next", "https://evil.example/"),
            ],
            None,
        )
        .await;
    assert_eq!((status, location.as_str()), (303, "/ui/models"));
    let session_cookie = s
        .cookies
        .iter()
        .find(|(k, _)| k == "modelwatch_session")
        .unwrap()
        .1
        .clone();
    let csrf = s.csrf().await;
    assert!(
        !s.get("/ui/models").await.2.contains(&session_cookie),
        "the token is never in a page"
    );

    // Hostile values come back as text.
    let (_, _, page) = s.get("/ui/models?q=fra").await;
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;window.__pwned = 1&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("<img") && !page.contains("<script"),
        "{page}"
    );
    let (status, _, page) = s
        .get("/ui/sql?q=SELECT%20%27%3Cscript%3Ealert(3)%3C%2Fscript%3E%27%20AS%20x")
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<td>&lt;script&gt;alert(3)&lt;/script&gt;</td>"),
        "{page}"
    );

    // Refusals change nothing: without the token, from another site, or
    // (for the reader) with a role too low even with a valid token.
    let audit_before = admin.audit_len().await;
    let rollback = "/ui/models/fraud/aliases/production/rollback";
    let (status, _, page) = s.post(rollback, &[("reason", "no csrf")], None).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("CSRF"), "{page}");
    let (status, _, _) = s
        .post(
            rollback,
            &[("csrf", &csrf), ("reason", "x-site")],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = s.post("/ui/logout", &[], None).await;
    assert_eq!(status, 403, "sign-out is a form too");

    let mut r = Session::new(&d.url);
    r.login(&reader).await;
    let reader_csrf = r.csrf().await;
    let (_, _, page) = r.get("/ui/models/fraud").await;
    for button in [
        "id=\"promote\"",
        "/rollback\"",
        "name=\"policy\"",
        "Save policy",
    ] {
        assert!(!page.contains(button), "a reader sees {button}: {page}");
    }
    let recs = admin.recommendations_of("fraud", None, None).await;
    let dismiss = format!("/ui/recommendations/{}/dismiss", recs[0].id);
    let forged: [(&str, Vec<(&str, &str)>); 5] = [
        (rollback, vec![("reason", "forged")]),
        (
            "/ui/models/fraud/promote",
            vec![("version", "3"), ("alias", "production")],
        ),
        (
            "/ui/models/fraud/promote/check",
            vec![("version", "3"), ("alias", "production")],
        ),
        ("/ui/models/fraud/policy", vec![("policy", "{}")]),
        (&dismiss, vec![("note", "forged")]),
    ];
    for (path, mut fields) in forged {
        fields.push(("csrf", &reader_csrf));
        let (status, _, page) = r.post(path, &fields, None).await;
        assert_eq!(status, 403, "{path}: {page}");
        assert!(page.contains("role reader"), "{path}: {page}");
    }
    assert_eq!(
        admin.audit_len().await,
        audit_before,
        "a refused form changed the registry"
    );
    let alias = admin
        .get_expect("/api/v1/models/fraud/aliases/production", 200)
        .await;
    assert_eq!(alias["version"], 1);

    // A policy the registry refuses is shown beside the editor, unsaved.
    let (status, _, page) = s
        .post(
            "/ui/models/fraud/policy",
            &[("csrf", &csrf), ("policy", "{\"alias\": 7}")],
            None,
        )
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(
        page.contains("{&quot;alias&quot;: 7}"),
        "the rejected text is kept: {page}"
    );
    assert_eq!(admin.audit_len().await, audit_before);

    // Sign-out forgets the session.
    let (status, location, _) = s.post("/ui/logout", &[("csrf", &csrf)], None).await;
    assert_eq!((status, location.as_str()), (303, "/ui/login"));
    assert_eq!(s.get("/ui/models").await.0, 303);
    // Unknown pages are pages too.
    let (status, headers, page) = r.get("/ui/nothing-here").await;
    assert_eq!(status, 404);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{page}"
    );
}

/// chromedriver on a free port, and a headless chromium session that
/// downloads into `downloads`.
async fn browser(downloads: &Path) -> (KillOnDrop, Client, tempfile::TempDir) {
    let port = free_port();
    let driver = KillOnDrop(
        std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)"),
    );
    let status_url = format!("http://127.0.0.1:{port}/status");
    wait_for(Duration::from_secs(30), "chromedriver to answer", || {
        let url = status_url.clone();
        async move {
            match reqwest::get(&url).await {
                Ok(r) if r.status().is_success() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,1100",
                     format!("--user-data-dir={}", profile.path().display())],
            "prefs": {"download.default_directory": downloads.display().to_string(),
                      "download.prompt_for_download": false}
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session");
    (driver, client, profile)
}

/// The element `css` names, once the page shows it: a click that submits
/// a form returns before the next page has loaded.
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => panic!(
            "{css}: {e}; the page: {}",
            c.source().await.unwrap_or_default()
        ),
    }
}

/// Clicks `css` and returns once the page it leads to has loaded: the old
/// document carries a mark the new one lacks. Counting elements needs
/// this; `find` alone cannot tell the old page from the new one when both
/// show the element.
async fn click_to_next_page(c: &Client, css: &str) {
    c.execute("window.__previous_page = true;", vec![])
        .await
        .unwrap();
    find(c, css).await.click().await.unwrap();
    wait_for(
        Duration::from_secs(30),
        &format!("the page {css} leads to"),
        || async move {
            match c
                .execute(
                    "return [typeof window.__previous_page, document.readyState];",
                    vec![],
                )
                .await
            {
                Ok(state) if state == json!(["undefined", "complete"]) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.unwrap()
}

/// The text of `css` once it contains `needle` (the next page has loaded).
async fn text_with(c: &Client, css: &str, needle: &str) -> String {
    wait_for(
        Duration::from_secs(30),
        &format!("{css} to say {needle:?}"),
        || async move {
            let t = match c.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(e) => return Err(e.to_string()),
            };
            if t.contains(needle) { Ok(t) } else { Err(t) }
        },
    )
    .await
}

async fn count_css(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.unwrap().len()
}

async fn screenshot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// No script ran on the page: no alert is open and the hostile tag's
/// script did not set its flag.
async fn assert_no_script_ran(c: &Client) {
    assert!(c.get_alert_text().await.is_err(), "an alert is open");
    let flag = c
        .execute("return typeof window.__pwned;", vec![])
        .await
        .unwrap();
    assert_eq!(flag, json!("undefined"));
    assert_eq!(
        c.execute("return document.images.length;", vec![])
            .await
            .unwrap(),
        json!(0)
    );
}

#[tokio::test]
async fn the_loop_in_a_real_browser() {
    let d = Daemon::start();
    let (admin, approver, reader) = fixture(&d).await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let (_driver, c, _profile) = browser(downloads.path()).await;
    let url = |path: &str| format!("{}{path}", d.url);

    // Log in: the models page, hostile values shown as text.
    c.goto(&url("/ui/models")).await.unwrap();
    screenshot(&c, &shots, "login").await;
    find(&c, "#token").await.send_keys(&approver).await.unwrap();
    find(&c, "#sign-in").await.click().await.unwrap();
    assert_eq!(text(&c, "#who").await, "release · approver");
    find(&c, "input[name=q]")
        .await
        .send_keys("fra")
        .await
        .unwrap();
    click_to_next_page(&c, "form.search button").await;
    assert_eq!(count_css(&c, "#models tbody tr").await, 1);
    let row = text(&c, "tr[data-model=fraud]").await;
    assert!(
        row.contains(HOSTILE_OWNER) && row.contains(HOSTILE_TAG),
        "{row}"
    );
    assert_no_script_ran(&c).await;
    screenshot(&c, &shots, "models").await;

    // The version page: the drift chart holds what drift_results holds.
    find(&c, "a.model-link").await.click().await.unwrap();
    assert_eq!(text(&c, "#model-name").await, "fraud");
    screenshot(&c, &shots, "model").await;
    c.goto(&url("/ui/models/fraud/versions/1")).await.unwrap();
    let rows = sql(
        &admin,
        "SELECT coalesce(adjusted_p_value, p_value) AS p, threshold FROM drift_results \
         WHERE model = 'fraud' AND version = '1' AND feature = 'amount' ORDER BY ts",
    )
    .await;
    let rows = rows["rows"].as_array().unwrap().clone();
    assert!(!rows.is_empty());
    let points = c
        .find_all(Locator::Css("#drift-amount circle"))
        .await
        .unwrap();
    assert_eq!(points.len(), rows.len());
    let last = points
        .last()
        .unwrap()
        .attr("data-y")
        .await
        .unwrap()
        .unwrap();
    let expected = rows.last().unwrap()["p"].as_f64().unwrap();
    let shown: f64 = last.parse().unwrap();
    assert!(
        (shown - expected).abs() <= 1e-4 * expected.abs().max(1e-9) || shown == expected,
        "{shown} vs {expected}"
    );
    let threshold = find(&c, "#drift-amount line.threshold").await;
    let t: f64 = threshold
        .attr("data-threshold")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(t, rows.last().unwrap()["threshold"].as_f64().unwrap());
    assert_eq!(
        find(&c, "#latest-evaluation tbody tr")
            .await
            .attr("data-feature")
            .await
            .unwrap()
            .as_deref(),
        Some("amount"),
        "the drifted feature ranks first"
    );
    assert!(count_css(&c, "#distribution-chart rect.bar").await > 0);
    screenshot(&c, &shots, "version").await;
    c.execute("document.getElementById('drift').scrollIntoView();", vec![])
        .await
        .unwrap();
    screenshot(&c, &shots, "version-drift").await;

    // Promotion through a denying gate: the reasons, no move.
    c.goto(&url("/ui/models/fraud")).await.unwrap();
    find(&c, "#promote select[name=version]")
        .await
        .select_by_value("2")
        .await
        .unwrap();
    find(&c, "#promote button").await.click().await.unwrap();
    assert_eq!(
        find(&c, "#gate-decision")
            .await
            .attr("data-allowed")
            .await
            .unwrap()
            .as_deref(),
        Some("false")
    );
    assert!(
        text(&c, "#gate-reasons")
            .await
            .contains("below the minimum 0.8")
    );
    assert_eq!(count_css(&c, "#confirm-promotion").await, 0);
    screenshot(&c, &shots, "promotion-denied").await;
    let alias = admin
        .get_expect("/api/v1/models/fraud/aliases/production", 200)
        .await;
    assert_eq!(alias["version"], 1);

    // Through an allowing gate: confirm, and the alias moves.
    c.goto(&url("/ui/models/fraud")).await.unwrap();
    find(&c, "#promote select[name=version]")
        .await
        .select_by_value("3")
        .await
        .unwrap();
    find(&c, "#promote input[name=reason]")
        .await
        .send_keys("auc 0.91")
        .await
        .unwrap();
    find(&c, "#promote button").await.click().await.unwrap();
    find(&c, "#confirm-promotion").await.click().await.unwrap();
    text_with(&c, "p.notice", "the gate allowed").await;
    let alias = admin
        .get_expect("/api/v1/models/fraud/aliases/production", 200)
        .await;
    assert_eq!(alias["version"], 3);
    assert_eq!(alias["history"][0]["actor"], "release");

    // Roll back with a (hostile) reason: audited under this token.
    find(&c, "section[data-alias=production] input[name=reason]")
        .await
        .send_keys(HOSTILE_REASON)
        .await
        .unwrap();
    find(&c, "section[data-alias=production] button.danger")
        .await
        .click()
        .await
        .unwrap();
    text_with(&c, "p.notice", "rolled back").await;
    assert!(
        text(&c, "section[data-alias=production] ol.timeline")
            .await
            .contains(HOSTILE_REASON)
    );
    assert_no_script_ran(&c).await;
    let alias = admin
        .get_expect("/api/v1/models/fraud/aliases/production", 200)
        .await;
    assert_eq!(alias["version"], 1);
    let audit = admin
        .get_expect("/api/v1/audit?action=alias.rollback", 200)
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["actor"], "release", "{entry}");
    assert!(entry.to_string().contains("latency"), "{entry}");

    // v3's page marks both moves, newest first, each with its verdict and
    // its latency and error-rate charts.
    c.goto(&url("/ui/models/fraud/versions/3")).await.unwrap();
    let mut verdicts = Vec::new();
    for section in c.find_all(Locator::Css("section.move")).await.unwrap() {
        let kind = section.attr("data-kind").await.unwrap().unwrap_or_default();
        let verdict = section
            .find(Locator::Css("p.verdict"))
            .await
            .unwrap()
            .attr("data-verdict")
            .await
            .unwrap()
            .unwrap_or_default();
        let charts = section
            .find_all(Locator::Css("figure.chart"))
            .await
            .unwrap()
            .len();
        verdicts.push((kind, verdict, charts));
    }
    let expected = [("rollback", "not-judged", 2), ("set", "no-failure", 2)]
        .map(|(k, v, n)| (k.to_string(), v.to_string(), n));
    assert_eq!(verdicts, expected);

    // Acknowledge the retrain recommendation from the inbox.
    c.goto(&url("/ui/recommendations?kind=retrain"))
        .await
        .unwrap();
    screenshot(&c, &shots, "recommendations").await;
    find(&c, "article.recommendation input[name=note]")
        .await
        .send_keys("retraining on Monday")
        .await
        .unwrap();
    find(&c, "article.recommendation button[value=acknowledge]")
        .await
        .click()
        .await
        .unwrap();
    text_with(&c, "p.notice", "acknowledged").await;
    let recs = admin
        .recommendations_of(
            "fraud",
            Some(modelwatch_client::RecommendationKind::Retrain),
            None,
        )
        .await;
    assert_eq!(recs[0].acknowledged_by.as_deref(), Some("release"));

    // The audit page verifies the chain and shows that rollback.
    c.goto(&url("/ui/audit?action=alias.rollback"))
        .await
        .unwrap();
    assert_eq!(
        find(&c, "#chain-status")
            .await
            .attr("data-ok")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert_eq!(count_css(&c, "#audit tbody tr").await, 1);
    screenshot(&c, &shots, "audit").await;

    // SQL: a hostile result is text; the CSV downloads.
    c.goto(&url("/ui/sql")).await.unwrap();
    let query =
        "SELECT '<script>window.__pwned = 1</script>' AS hostile, count(*) AS n FROM drift_results";
    find(&c, "#sql").await.send_keys(query).await.unwrap();
    find(&c, "#run-sql").await.click().await.unwrap();
    assert_eq!(
        text(&c, "#result tbody td").await,
        "<script>window.__pwned = 1</script>"
    );
    assert_no_script_ran(&c).await;
    screenshot(&c, &shots, "sql").await;
    find(&c, "#download-csv").await.click().await.unwrap();
    let csv_path = downloads.path().join("result.csv");
    let csv = wait_for(Duration::from_secs(30), "the CSV download", || {
        let p = csv_path.clone();
        async move {
            std::fs::read_to_string(&p)
                .ok()
                .filter(|t| t.ends_with('\n'))
                .ok_or_else(|| "not downloaded yet".to_string())
        }
    })
    .await;
    let drift_rows = count_rows(&admin).await;
    assert_eq!(
        csv,
        format!("hostile,n\n<script>window.__pwned = 1</script>,{drift_rows}\n")
    );

    c.goto(&url("/ui/daemon")).await.unwrap();
    assert!(count_css(&c, "tr[data-metric=modelwatch_ingest_rows_total]").await > 0);
    screenshot(&c, &shots, "daemon").await;

    // A reader sees no buttons that change anything.
    find(&c, ".who button").await.click().await.unwrap();
    find(&c, "#token").await.send_keys(&reader).await.unwrap();
    find(&c, "#sign-in").await.click().await.unwrap();
    text_with(&c, "#who", "viewer · reader").await;
    c.goto(&url("/ui/models/fraud")).await.unwrap();
    assert_eq!(text(&c, "#who").await, "viewer · reader");
    assert_eq!(
        count_css(&c, "form[method=post]:not([action='/ui/logout'])").await,
        0
    );
    c.goto(&url("/ui/recommendations")).await.unwrap();
    assert_eq!(count_css(&c, "article.recommendation button").await, 0);
    c.close().await.unwrap();
}

async fn count_rows(admin: &Http) -> i64 {
    let v: Value = sql(admin, "SELECT count(*) AS n FROM drift_results").await;
    v["rows"][0]["n"].as_i64().unwrap()
}

#[tokio::test]
async fn the_version_page_shows_the_model_card_signature_environment_and_files() {
    let d = Daemon::start();
    let admin = d.http();
    let metadata = json!({
        "flavors": ["onnx"],
        "signature": {"inputs": [{"name": "amount", "type": "double"}],
                      "outputs": [{"type": "tensor", "dtype": "float32", "shape": [-1, 2]}]},
        "environment": {"python_version": "3.11.2", "requirements": ["onnxruntime==1.20.0"]},
        "model_card": {"intended_use": HOSTILE_TAG, "limitations": "EU card payments only"}
    });
    admin
        .post_expect("/api/v1/models", json!({"name": "carded"}), 201)
        .await;
    admin
        .post_expect(
            "/api/v1/models/carded/versions",
            json!({"metadata": metadata}),
            201,
        )
        .await;
    let (status, body) = admin
        .raw(
            "PUT",
            "/api/v1/models/carded/versions/1/artifacts/model.onnx",
            "application/octet-stream",
            b"onnx bytes".to_vec(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let reader = admin.token("viewer", "reader").await;
    let mut s = Session::new(&d.url);
    s.login(&reader).await;
    let (status, _, page) = s.get("/ui/models/carded/versions/1").await;
    assert_eq!(status, 200, "{page}");
    // The card, escaped like every user value.
    assert!(page.contains("EU card payments only"), "{page}");
    assert!(!page.contains(HOSTILE_TAG));
    assert!(page.contains("&lt;script&gt;window.__pwned = 1&lt;/script&gt;"));
    assert!(page.contains("not stated"), "unwritten sections say so");
    // Format, signature, environment.
    assert!(page.contains("onnx") && page.contains("amount"), "{page}");
    assert!(page.contains("tensor float32 [-1, 2]"), "{page}");
    assert!(page.contains("onnxruntime==1.20.0"), "{page}");
    // The files, with their digest, still open.
    let sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(b"onnx bytes"))
    };
    assert!(page.contains("model.onnx") && page.contains(&sha), "{page}");
    assert!(page.contains("Files <strong>open</strong>"), "{page}");
}
