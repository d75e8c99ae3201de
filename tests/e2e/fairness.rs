//! Fairness through the real daemon: a credit model's decisions per
//! gender are assessed by the evaluator into `fairness_results`, exported
//! on `/metrics` and handed to the promotion gate, where the example
//! four-fifths policy denies a biased version and allows a fair one.

use serde_json::{Value, json};

use crate::support::*;

const MODEL: &str = "credit";

/// NDJSON inferences of the last minutes: `gender` alternating f/m, `f`
/// approved once every `f_every` rows of its own, `m` once every
/// `m_every`; five rows of a group `x` too small to compare. Labels say
/// the approval was right for every third row.
fn inferences(f_every: usize, m_every: usize) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut out = String::new();
    for i in 0..605 {
        let (gender, nth) = match i {
            600.. => ("x", 0),
            _ if i % 2 == 0 => ("f", i / 2),
            _ => ("m", i / 2),
        };
        let approved = match gender {
            "f" => nth % f_every == 0,
            "m" => nth % m_every == 0,
            _ => true,
        };
        let row = json!({"ts": now - 120.0 + i as f64 * 0.1, "gender": gender, "income": i,
                         "prediction": if approved { "approve" } else { "deny" },
                         "label": if i % 3 == 0 { "approve" } else { "deny" }});
        out.push_str(&format!("{row}\n"));
    }
    out.into_bytes()
}

async fn evaluate(d: &Daemon) -> Value {
    let out = d.cli(&["evaluate", "--model", MODEL, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    report["versions"][0].clone()
}

async fn stored(http: &Http, version: i64, group: Option<&str>, metric: &str) -> f64 {
    let group = group.map_or("group_value IS NULL".to_string(), |g| {
        format!("group_value = '{g}'")
    });
    let rows = sql(
        http,
        &format!(
            "SELECT value FROM fairness_results WHERE model = '{MODEL}' AND version = '{version}' \
             AND attribute = 'gender' AND {group} AND metric = '{metric}' \
             ORDER BY evaluation_id DESC LIMIT 1"
        ),
    )
    .await;
    rows["rows"][0]["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{metric} {group}: {rows}"))
}

#[tokio::test]
async fn the_four_fifths_gate_denies_a_biased_version_and_allows_a_fair_one() {
    let d = Daemon::start();
    let admin = d.http();
    admin
        .post_expect("/api/v1/models", json!({"name": MODEL}), 201)
        .await;
    for (version, (f_every, m_every)) in [(1, (5, 2)), (2, (2, 2))] {
        admin
            .post_expect(&format!("/api/v1/models/{MODEL}/versions"), json!({}), 201)
            .await;
        let (status, reply) = admin
            .raw(
                "POST",
                &format!("/api/v1/models/{MODEL}/versions/{version}/inferences"),
                "application/x-ndjson",
                inferences(f_every, m_every),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
    }
    // A policy naming no attribute is refused, naming the field.
    let (status, body) = admin
        .send(
            "PUT",
            &format!("/api/v1/models/{MODEL}/policy"),
            Some(json!({"fairness": {"attributes": [], "positive_class": "approve"}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("fairness.attributes"), "{body}");
    let policy = json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
                        "fairness": {"attributes": ["gender"], "positive_class": "approve",
                                     "min_disparate_impact_ratio": 0.8}});
    admin
        .put_expect(&format!("/api/v1/models/{MODEL}/policy"), policy, 200)
        .await;
    admin.put_example_gate(MODEL, "four_fifths_rule.rego").await;

    // Version 1 in production: f approved 60 of 300, m 150 of 300.
    admin
        .put_expect(
            &format!("/api/v1/models/{MODEL}/aliases/production"),
            json!({"version": 1}),
            200,
        )
        .await;
    let outcome = evaluate(&d).await;
    let fairness = &outcome["fairness"];
    assert_eq!(fairness["assessed"], true, "{outcome}");
    let gender = &fairness["attributes"][0];
    assert_eq!(gender["rows"], 605, "{outcome}");
    assert_eq!(gender["small_groups"], json!([["x", 5]]), "{outcome}");
    let (f_rate, m_rate) = (60.0 / 300.0, 150.0 / 300.0);
    // Under the policy's four-fifths minimum: degraded.
    assert_eq!(
        fairness["breaches"],
        json!([{"attribute": "gender", "disparate_impact_ratio": f_rate / m_rate, "minimum": 0.8}]),
        "{outcome}"
    );
    let version = admin
        .get_expect(&format!("/api/v1/models/{MODEL}/versions/1"), 200)
        .await;
    assert_eq!(
        version["tags"]["modelwatch.health"], "degraded",
        "{version}"
    );
    assert_eq!(stored(&admin, 1, Some("f"), "selection_rate").await, f_rate);
    assert_eq!(stored(&admin, 1, Some("m"), "selection_rate").await, m_rate);
    assert_eq!(
        stored(&admin, 1, None, "disparate_impact_ratio").await,
        f_rate / m_rate
    );
    assert_eq!(
        stored(&admin, 1, None, "demographic_parity_difference").await,
        m_rate - f_rate
    );
    // True-positive rates from the labels: approvals among rows whose
    // label is `approve`, per group.
    let tpr = |every: usize, parity: usize| {
        let rows: Vec<usize> = (0..600).filter(|i| i % 2 == parity && i % 3 == 0).collect();
        let approved = rows.iter().filter(|&&i| (i / 2) % every == 0).count();
        approved as f64 / rows.len() as f64
    };
    assert_eq!(
        stored(&admin, 1, Some("f"), "true_positive_rate").await,
        tpr(5, 0)
    );
    assert_eq!(
        stored(&admin, 1, None, "equal_opportunity_difference").await,
        (tpr(2, 1) - tpr(5, 0)).abs()
    );

    let (status, gate) = admin
        .send(
            "POST",
            &format!("/api/v1/models/{MODEL}/versions/1/gate"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{gate}");
    assert_eq!(gate["allowed"], false, "{gate}");
    assert_eq!(
        gate["reasons"],
        json!([format!(
            "disparate impact ratio for gender is {}, below the four-fifths rule's 0.8",
            f_rate / m_rate
        )]),
        "{gate}"
    );

    // Version 2 approves both groups alike: allowed.
    admin
        .put_expect(
            &format!("/api/v1/models/{MODEL}/aliases/production"),
            json!({"version": 2}),
            200,
        )
        .await;
    let outcome = evaluate(&d).await;
    assert_eq!(outcome["fairness"]["assessed"], true, "{outcome}");
    assert!(outcome["fairness"].get("breaches").is_none(), "{outcome}");
    assert_eq!(stored(&admin, 2, None, "disparate_impact_ratio").await, 1.0);
    let version = admin
        .get_expect(&format!("/api/v1/models/{MODEL}/versions/2"), 200)
        .await;
    assert_ne!(
        version["tags"]["modelwatch.health"], "degraded",
        "{version}"
    );
    let gate = admin
        .post_expect(
            &format!("/api/v1/models/{MODEL}/versions/2/gate"),
            json!({}),
            200,
        )
        .await;
    assert_eq!(gate["allowed"], true, "{gate}");
    assert_eq!(
        gate["input"]["fairness"]["attributes"]["gender"]["groups"]["f"]["selection_rate"], 0.5,
        "{gate}"
    );

    let metrics = admin.get_text("/metrics").await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("modelwatch_fairness{")
                && l.contains("version=\"2\"")
                && l.contains("metric=\"disparate_impact_ratio\"")
        })
        .unwrap_or_else(|| panic!("no fairness series in {metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("modelwatch_fairness{") && l.contains("version=\"1\"")),
        "the version that left the alias is no longer exported"
    );
}
