//! `modelwatch bench ui`: how long the web UI's heaviest pages take and
//! how much they weigh, on a registry seeded to the sizes issue 19 names —
//! 1,000 models × 20 versions for the models page, a version with many
//! evaluations' drift results for the version page.
//!
//! The drift results come from the daemon's own evaluator
//! (`POST /api/v1/evaluate`, `--evaluations` times on one drifting
//! version), so the page reads the rows a real policy writes; their
//! timestamps are minutes apart rather than spread over 30 days, which
//! changes nothing the page does (it reads and thins every row of the
//! last 30 days). Seeding is skipped for what already exists, so reruns on
//! one data directory measure only.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use serde_json::{Value, json};

use modelwatch_client::Client;

use crate::bench::percentile_ms;
use crate::error::{Error, Result};
use crate::report;

#[derive(Debug, Args)]
pub struct UiBenchArgs {
    /// Models to seed for the models page.
    #[arg(long, default_value_t = 1000)]
    models: usize,
    /// Versions per seeded model.
    #[arg(long, default_value_t = 20)]
    versions: usize,
    /// Evaluations of the drifting version (each writes one row per feature).
    #[arg(long, default_value_t = 720)]
    evaluations: usize,
    /// Timed requests per page.
    #[arg(long, default_value_t = 200)]
    requests: usize,
}

const DRIFT_MODEL: &str = "uibench-drift";

#[derive(Debug, serde::Serialize)]
struct PageResult {
    page: String,
    requests: usize,
    p50_ms: f64,
    p99_ms: f64,
    /// HTML bytes of the page (the stylesheet is the only other asset).
    bytes: usize,
}

/// A plain HTTP client with the bench's token as bearer (API) and as the
/// UI's session cookie.
struct Http {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(u16, String)> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("cookie", format!("modelwatch_session={}", self.token));
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let res = req
            .send()
            .await
            .map_err(|e| Error::local(format!("{path}: {e}")))?;
        let status = res.status().as_u16();
        Ok((
            status,
            res.text().await.map_err(|e| Error::local(e.to_string()))?,
        ))
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<(u16, String)> {
        self.send(
            method,
            path,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    /// Fails unless the answer is one of `ok`.
    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
        ok: &[u16],
    ) -> Result<()> {
        let (status, text) = self.json(method, path, body).await?;
        if ok.contains(&status) {
            Ok(())
        } else {
            Err(Error::local(format!("{path}: {status} {text}")))
        }
    }
}

/// NDJSON rows: `amount` around `center`, `country` cycling.
fn rows(n: usize, center: f64, age_s: f64) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp() as f64;
    let mut out = String::new();
    for i in 0..n {
        let amount = center + ((i * 37) % 21) as f64 - 10.0;
        let country = ["de", "fr", "it"][i % 3];
        out.push_str(&json!({"ts": now - age_s, "amount": amount, "country": country}).to_string());
        out.push('\n');
    }
    out.into_bytes()
}

async fn seed_models(h: &Http, models: usize, versions: usize) -> Result<()> {
    let last = format!("/api/v1/models/uibench-{:04}", models.saturating_sub(1));
    if h.send(reqwest::Method::GET, &last, None).await?.0 == 200 {
        return Ok(());
    }
    eprintln!("seeding {models} models × {versions} versions …");
    let started = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..models)
        .map(|m| async move {
            let name = format!("uibench-{m:04}");
            let body = json!({"name": name, "owner": format!("team-{}", m % 10), "tags": {"tier": "bench"}});
            h.expect(reqwest::Method::POST, "/api/v1/models", body, &[201, 409]).await?;
            let (status, text) = h.send(reqwest::Method::GET, &format!("/api/v1/models/{name}"), None).await?;
            let have = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["latest_version"].as_u64()).unwrap_or(0);
            if status != 200 {
                return Err(Error::local(format!("{name}: {status} {text}")));
            }
            for v in have as usize..versions {
                let body = json!({"lineage": {"metrics": {"auc": 0.8 + (v as f64) / 1000.0}}});
                h.expect(reqwest::Method::POST, &format!("/api/v1/models/{name}/versions"), body, &[201]).await?;
            }
            if have == 0 {
                let alias = json!({"version": versions, "reason": "bench"});
                h.expect(reqwest::Method::PUT, &format!("/api/v1/models/{name}/aliases/production"), alias, &[200]).await?;
            }
            Ok(())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn seed_drift(h: &Http, evaluations: usize) -> Result<()> {
    let model = format!("/api/v1/models/{DRIFT_MODEL}");
    if h.send(reqwest::Method::GET, &model, None).await?.0 != 200 {
        h.expect(
            reqwest::Method::POST,
            "/api/v1/models",
            json!({"name": DRIFT_MODEL}),
            &[201],
        )
        .await?;
        h.expect(
            reqwest::Method::POST,
            &format!("{model}/versions"),
            json!({}),
            &[201],
        )
        .await?;
        let (status, text) = h
            .send(
                reqwest::Method::POST,
                &format!("{model}/versions/1/reference"),
                Some(("application/x-ndjson", rows(600, 100.0, 86_400.0))),
            )
            .await?;
        if status != 200 {
            return Err(Error::local(format!("reference upload: {status} {text}")));
        }
        h.expect(
            reqwest::Method::PUT,
            &format!("{model}/aliases/production"),
            json!({"version": 1}),
            &[200],
        )
        .await?;
        let policy = json!({"alias": "production", "current_window": "1d", "min_rows": 100, "interval": "24h", "persistence": 1});
        h.expect(
            reqwest::Method::PUT,
            &format!("{model}/policy"),
            policy,
            &[200],
        )
        .await?;
        let (status, text) = h
            .send(
                reqwest::Method::POST,
                &format!("{model}/versions/1/inferences"),
                Some(("application/x-ndjson", rows(300, 130.0, 60.0))),
            )
            .await?;
        if status != 200 {
            return Err(Error::local(format!("inference upload: {status} {text}")));
        }
    }
    let sql = json!({"sql": format!("SELECT count(DISTINCT evaluation_id) AS n FROM drift_results WHERE model = '{DRIFT_MODEL}'")});
    let (_, text) = h.json(reqwest::Method::POST, "/api/v1/sql", sql).await?;
    let have = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["rows"][0]["n"].as_u64())
        .unwrap_or(0) as usize;
    if have < evaluations {
        eprintln!(
            "evaluating {DRIFT_MODEL} {} more times …",
            evaluations - have
        );
    }
    for i in have..evaluations {
        h.expect(
            reqwest::Method::POST,
            "/api/v1/evaluate",
            json!({"model": DRIFT_MODEL}),
            &[200],
        )
        .await?;
        if (i + 1) % 100 == 0 {
            eprintln!("  {}/{evaluations}", i + 1);
        }
    }
    Ok(())
}

async fn measure(h: &Http, page: &str, requests: usize) -> Result<PageResult> {
    let mut latencies = Vec::with_capacity(requests);
    let mut bytes = 0;
    // One request first, unmeasured: it warms caches the way a person's
    // second look at a page would find them.
    h.send(reqwest::Method::GET, page, None).await?;
    for _ in 0..requests {
        let started = Instant::now();
        let (status, text) = h.send(reqwest::Method::GET, page, None).await?;
        latencies.push(started.elapsed());
        if status != 200 {
            return Err(Error::local(format!(
                "{page}: {status} {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        bytes = text.len();
    }
    latencies.sort();
    Ok(PageResult {
        page: page.to_string(),
        requests,
        p50_ms: percentile_ms(&latencies, 0.5),
        p99_ms: percentile_ms(&latencies, 0.99),
        bytes,
    })
}

pub async fn run(client: &Client, json_out: bool, args: UiBenchArgs) -> Result<ExitCode> {
    let token = client
        .token()
        .ok_or_else(|| {
            Error::local("bench ui needs a token (--token or MODELWATCH_TOKEN) with role editor")
        })?
        .to_string();
    let h = Http {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::local(e.to_string()))?,
        base: client.base_url().trim_end_matches('/').to_string(),
        token,
    };
    seed_models(&h, args.models, args.versions).await?;
    seed_drift(&h, args.evaluations).await?;
    let pages = [
        "/ui/models".to_string(),
        "/ui/models?q=uibench-05".to_string(),
        "/ui/models/uibench-0500".to_string(),
        format!("/ui/models/{DRIFT_MODEL}/versions/1"),
        "/ui/recommendations".to_string(),
        "/ui/audit".to_string(),
    ];
    let mut results = Vec::new();
    for page in &pages {
        results.push(measure(&h, page, args.requests).await?);
    }
    let (_, css) = h
        .send(reqwest::Method::GET, "/ui/assets/modelwatch.css", None)
        .await?;
    report::print(
        json_out,
        &json!({"pages": results, "stylesheet_bytes": css.len()}),
        |_| {
            println!(
                "{:<45} {:>8} {:>9} {:>9} {:>9}",
                "page", "requests", "p50 ms", "p99 ms", "KiB"
            );
            for r in &results {
                println!(
                    "{:<45} {:>8} {:>9.2} {:>9.2} {:>9.1}",
                    r.page,
                    r.requests,
                    r.p50_ms,
                    r.p99_ms,
                    r.bytes as f64 / 1024.0
                );
            }
            println!(
                "stylesheet: {:.1} KiB (the only other asset; no script)",
                css.len() as f64 / 1024.0
            );
        },
    );
    Ok(ExitCode::SUCCESS)
}
