//! Searches, renames, stages and the tracking store, through the trait.

use super::Fixture;
use crate::*;
use modelwatch_types::records::DataType;

fn actor() -> Actor {
    Actor::new("ci", Role::Admin)
}

async fn versions(s: &dyn RegistryStore, model: &str, n: usize) {
    s.create_model(
        &actor(),
        NewModel {
            name: model.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 0..n {
        s.create_version(
            &actor(),
            model,
            NewVersion {
                source_uri: Some(format!("s3://b/{model}/{i}")),
                run_id: Some(format!("run{}", i % 2)),
                tags: [("k".to_string(), format!("v{i}"))].into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
}

fn cond(field: Field, op: Op, values: &[&str]) -> Condition {
    Condition {
        field,
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn search(conditions: Vec<Condition>, limit: u32) -> Search {
    Search {
        conditions,
        order_by: vec![OrderBy {
            key: OrderKey::Version,
            descending: false,
        }],
        offset: 0,
        limit,
    }
}

pub async fn version_search_filters_and_pages(fx: &mut Fixture) {
    let s = fx.store();
    versions(&*s, "Fraud", 5).await;
    versions(&*s, "churn", 2).await;
    let numbers = |p: &SearchPage<Version>| {
        p.items
            .iter()
            .map(|v| (v.model.clone(), v.version))
            .collect::<Vec<_>>()
    };
    let p = s
        .search_versions(&search(vec![cond(Field::Name, Op::Eq, &["Fraud"])], 2))
        .await
        .unwrap();
    assert_eq!(numbers(&p), [("Fraud".into(), 1), ("Fraud".into(), 2)]);
    assert_eq!(p.next_offset, Some(2));
    let mut next = search(vec![cond(Field::Name, Op::Eq, &["Fraud"])], 2);
    next.offset = 4;
    let p = s.search_versions(&next).await.unwrap();
    assert_eq!(numbers(&p), [("Fraud".into(), 5)]);
    assert_eq!(p.next_offset, None);

    // LIKE is case-sensitive, ILIKE is not.
    let like = |op, pat: &str| search(vec![cond(Field::Name, op, &[pat])], 100);
    assert_eq!(
        s.search_versions(&like(Op::Like, "fr%"))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    assert_eq!(
        s.search_versions(&like(Op::ILike, "fr%"))
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    assert_eq!(
        s.search_versions(&like(Op::Like, "F_aud"))
            .await
            .unwrap()
            .items
            .len(),
        5
    );

    let p = s
        .search_versions(&search(
            vec![
                cond(Field::RunId, Op::Eq, &["run1"]),
                cond(Field::Version, Op::In, &["2", "3", "4"]),
                cond(Field::Tag("k".into()), Op::Ne, &["v1"]),
            ],
            100,
        ))
        .await
        .unwrap();
    assert_eq!(numbers(&p), [("Fraud".into(), 4)]);
    // A tag nobody has is "not equal" everywhere.
    let p = s
        .search_versions(&search(
            vec![cond(Field::Tag("absent".into()), Op::Ne, &["true"])],
            100,
        ))
        .await
        .unwrap();
    assert_eq!(p.items.len(), 7);
    let p = s
        .search_versions(&search(
            vec![cond(Field::Source, Op::Like, &["s3://b/churn/%"])],
            100,
        ))
        .await
        .unwrap();
    assert_eq!(numbers(&p), [("churn".into(), 1), ("churn".into(), 2)]);
    assert!(matches!(
        s.search_versions(&search(vec![cond(Field::Version, Op::Eq, &["x"])], 10))
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        s.search_models(&search(vec![cond(Field::RunId, Op::Eq, &["x"])], 10))
            .await,
        Err(Error::InvalidArgument { .. })
    ));
}

pub async fn rename_keeps_versions_aliases_and_is_audited(fx: &mut Fixture) {
    let s = fx.store();
    versions(&*s, "old", 2).await;
    s.set_alias(&actor(), "old", "champion", 2, "")
        .await
        .unwrap();
    versions(&*s, "taken", 0).await;
    assert!(matches!(
        s.rename_model(&actor(), "old", "taken").await,
        Err(Error::AlreadyExists { .. })
    ));
    let m = s.rename_model(&actor(), "old", "new").await.unwrap();
    assert_eq!(m.name, "new");
    assert_eq!(m.aliases["champion"], 2);
    assert!(matches!(
        s.get_model("old").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        s.get_version_by_alias("new", "champion")
            .await
            .unwrap()
            .version,
        2
    );
    let audit = s
        .list_audit(
            &AuditFilter {
                action: Some("model.rename".into()),
                ..Default::default()
            },
            &PageRequest::new(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 1);
    assert_eq!(
        audit.items[0].after,
        Some(serde_json::json!({"name": "new"}))
    );
    assert!(s.verify_audit().await.unwrap().ok);
}

pub async fn stages_archive_existing_and_latest_per_stage(fx: &mut Fixture) {
    let s = fx.store();
    versions(&*s, "m", 3).await;
    s.transition_stage(&actor(), "m", 1, Stage::Production, false)
        .await
        .unwrap();
    s.transition_stage(&actor(), "m", 2, Stage::Production, false)
        .await
        .unwrap();
    let v3 = s
        .transition_stage(&actor(), "m", 3, Stage::Production, true)
        .await
        .unwrap();
    assert_eq!(v3.stage, Stage::Production);
    for old in [1, 2] {
        assert_eq!(
            s.get_version("m", old).await.unwrap().stage,
            Stage::Archived
        );
    }
    let latest = s.latest_versions("m", &[]).await.unwrap();
    let pairs: Vec<_> = latest.iter().map(|v| (v.version, v.stage)).collect();
    assert_eq!(pairs, [(2, Stage::Archived), (3, Stage::Production)]);
    assert!(
        s.latest_versions("m", &[Stage::Staging])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.transition_stage(&actor(), "m", 1, Stage::Archived, true)
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    let stage_moves = s
        .list_audit(
            &AuditFilter {
                action: Some("version.stage".into()),
                ..Default::default()
            },
            &PageRequest::new(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stage_moves.items.len(), 5, "3 transitions + 2 archived");
}

pub async fn runs_log_and_become_lineage(fx: &mut Fixture) {
    let s = fx.store();
    assert_eq!(s.get_experiment(0).await.unwrap().name, "Default");
    let e = s
        .create_experiment(
            &actor(),
            NewExperiment {
                name: "exp".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.get_experiment_by_name("exp").await.unwrap().id, e.id);
    assert!(matches!(
        s.get_experiment_by_name("nope").await,
        Err(Error::NotFound { .. })
    ));
    let run = s
        .create_run(
            &actor(),
            NewRun {
                experiment_id: e.id,
                name: "train".into(),
                start_time: Some(1),
                tags: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(run.id.len(), 32);
    let point = |key: &str, value, step| MetricPoint {
        key: key.into(),
        value,
        timestamp: 10,
        step,
    };
    s.log_run(
        &actor(),
        &run.id,
        RunLog {
            metrics: vec![
                point("auc", 0.7, 1),
                point("auc", 0.9, 2),
                point("loss", 0.3, 0),
            ],
            params: [("lr".to_string(), "0.01".to_string())].into(),
            tags: Default::default(),
        },
    )
    .await
    .unwrap();
    // Parameters are write-once.
    let again = RunLog {
        params: [("lr".to_string(), "0.02".to_string())].into(),
        ..Default::default()
    };
    assert!(matches!(
        s.log_run(&actor(), &run.id, again).await,
        Err(Error::InvalidArgument { .. })
    ));
    let nan = RunLog {
        metrics: vec![point("x", f64::NAN, 0)],
        ..Default::default()
    };
    assert!(matches!(
        s.log_run(&actor(), &run.id, nan).await,
        Err(Error::InvalidArgument { .. })
    ));
    let run = s
        .update_run(
            &actor(),
            &run.id,
            RunUpdate {
                status: Some(RunStatus::Finished),
                end_time: Some(2),
                name: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Finished);
    assert_eq!(run.metrics.len(), 2);

    versions(&*s, "m", 0).await;
    let v = s
        .create_version(
            &actor(),
            "m",
            NewVersion {
                run_id: Some(run.id.clone()),
                lineage: Lineage {
                    metrics: [("loss".to_string(), 0.25)].into(),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.lineage.parameters["lr"], "0.01");
    assert_eq!(v.lineage.metrics["auc"], 0.9, "latest step wins");
    assert_eq!(v.lineage.metrics["loss"], 0.25, "explicit lineage wins");
    assert!(s.verify_audit().await.unwrap().ok);
}

pub async fn logged_models_and_metric_history_serve_mlflow_log_model(fx: &mut Fixture) {
    let s = fx.store();
    let run = s
        .create_run(
            &actor(),
            NewRun {
                experiment_id: DEFAULT_EXPERIMENT_ID,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let point = |value, step, timestamp| MetricPoint {
        key: "loss".into(),
        value,
        timestamp,
        step,
    };
    s.log_run(
        &actor(),
        &run.id,
        RunLog {
            metrics: vec![point(0.5, 1, 20), point(0.9, 0, 10), point(0.4, 1, 30)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let history = s.metric_history(&run.id, "loss").await.unwrap();
    let values: Vec<f64> = history.iter().map(|p| p.value).collect();
    assert_eq!(values, [0.9, 0.5, 0.4]);
    assert!(s.metric_history(&run.id, "nope").await.unwrap().is_empty());
    assert!(matches!(
        s.metric_history("no-such-run", "loss").await,
        Err(Error::NotFound { .. })
    ));

    let lm = s
        .create_logged_model(
            &actor(),
            NewLoggedModel {
                experiment_id: DEFAULT_EXPERIMENT_ID,
                name: "model".into(),
                source_run_id: Some(run.id.clone()),
                model_type: String::new(),
                params: [("C".to_string(), "1.0".to_string())].into(),
                tags: [("mlflow.source.type".to_string(), "LOCAL".to_string())].into(),
            },
        )
        .await
        .unwrap();
    assert!(lm.id.starts_with("m-") && lm.id.len() == 34, "{}", lm.id);
    assert_eq!(lm.status, LoggedModelStatus::Pending);
    assert_eq!(s.get_logged_model(&lm.id).await.unwrap(), lm);
    let ready = s
        .update_logged_model(
            &actor(),
            &lm.id,
            LoggedModelUpdate {
                status: Some(LoggedModelStatus::Ready),
                set_tags: [("stage".to_string(), "done".to_string())].into(),
                delete_tags: vec!["mlflow.source.type".into()],
                params: [("C".to_string(), "1.0".to_string())].into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(ready.status, LoggedModelStatus::Ready);
    assert_eq!(
        ready.tags,
        [("stage".to_string(), "done".to_string())].into()
    );
    // Parameters are write-once, as for runs.
    let change = LoggedModelUpdate {
        params: [("C".to_string(), "2.0".to_string())].into(),
        ..Default::default()
    };
    assert!(matches!(
        s.update_logged_model(&actor(), &lm.id, change).await,
        Err(Error::InvalidArgument { .. })
    ));
    let other = s
        .create_logged_model(
            &actor(),
            NewLoggedModel {
                experiment_id: DEFAULT_EXPERIMENT_ID,
                name: "other".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids = |v: Vec<LoggedModel>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let named = s
        .list_logged_models(&[DEFAULT_EXPERIMENT_ID], Some("model"), 10)
        .await
        .unwrap();
    assert_eq!(ids(named), std::slice::from_ref(&lm.id));
    assert_eq!(s.list_logged_models(&[], None, 10).await.unwrap().len(), 2);
    assert_eq!(s.list_logged_models(&[], None, 1).await.unwrap().len(), 1);
    assert!(
        s.list_logged_models(&[42], None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let _ = other;
    assert!(matches!(
        s.get_logged_model("m-0000").await,
        Err(Error::NotFound { .. })
    ));
    let orphan = NewLoggedModel {
        experiment_id: DEFAULT_EXPERIMENT_ID,
        source_run_id: Some("no-such-run".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.create_logged_model(&actor(), orphan).await,
        Err(Error::NotFound { .. })
    ));
    let audited = s
        .list_audit(
            &AuditFilter {
                target_prefix: Some(format!("logged-model/{}", lm.id)),
                ..Default::default()
            },
            &PageRequest::new(Some(10), None).unwrap(),
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audited.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(actions.contains(&"logged_model.create") && actions.contains(&"logged_model.update"));
}

pub async fn sealing_artifacts_records_the_digest_once_and_audits_it(fx: &mut Fixture) {
    let s = fx.store();
    versions(&*s, "sealed", 1).await;
    let digest = format!("sha256:{}", "ab".repeat(32));
    let v = s
        .seal_artifacts(&actor(), "sealed", 1, &digest, ModelMetadata::default())
        .await
        .unwrap();
    assert_eq!(v.artifact_digest.as_deref(), Some(digest.as_str()));
    let other = format!("sha256:{}", "cd".repeat(32));
    assert!(matches!(
        s.seal_artifacts(&actor(), "sealed", 1, &other, ModelMetadata::default())
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.seal_artifacts(&actor(), "sealed", 1, "md5:00", ModelMetadata::default())
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        s.seal_artifacts(&actor(), "sealed", 9, &other, ModelMetadata::default())
            .await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        s.get_version("sealed", 1).await.unwrap().artifact_digest,
        Some(digest)
    );
    assert!(s.verify_audit().await.unwrap().ok);
}

fn signature_of(names: &[(&str, DataType)]) -> Signature {
    Signature {
        inputs: names
            .iter()
            .map(|(n, t)| SignatureField {
                name: Some((*n).into()),
                data_type: *t,
                required: true,
                dtype: None,
                shape: None,
            })
            .collect(),
        outputs: vec![],
    }
}

pub async fn metadata_is_typed_declares_features_and_is_fixed_with_the_files(fx: &mut Fixture) {
    let s = fx.store();
    versions(&*s, "described", 0).await;
    let declared = ModelMetadata {
        flavors: vec!["onnx".into()],
        signature: Some(signature_of(&[
            ("age", DataType::Long),
            ("country", DataType::String),
        ])),
        ..Default::default()
    };
    let v = s
        .create_version(
            &actor(),
            "described",
            NewVersion {
                metadata: declared.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.metadata, declared);
    assert_eq!(
        v.features
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        vec![
            ("age", FeatureKind::Numeric),
            ("country", FeatureKind::Categorical)
        ],
        "the signature declares the features"
    );
    let bad_image = NewVersion {
        metadata: ModelMetadata {
            environment: Some(Environment {
                container_image: Some("serve:latest".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        s.create_version(&actor(), "described", bad_image).await,
        Err(Error::InvalidArgument { .. })
    ));

    // Sealing fills what was not declared from what the files say.
    let read = ModelMetadata {
        flavors: vec!["sklearn".into()],
        environment: Some(Environment {
            python_version: Some("3.11.2".into()),
            requirements: vec!["scikit-learn==1.9.1".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let digest = format!("sha256:{}", "ef".repeat(32));
    let sealed = s
        .seal_artifacts(&actor(), "described", 1, &digest, read.clone())
        .await
        .unwrap();
    assert_eq!(
        sealed.metadata.flavors,
        vec!["onnx".to_string()],
        "declared wins"
    );
    assert_eq!(sealed.metadata.environment, read.environment);
    assert_eq!(sealed.metadata.signature, declared.signature);

    // Fixed with the files, except the model card.
    let touch_signature = VersionUpdate {
        metadata: Some(MetadataUpdate {
            signature: Some(signature_of(&[("x", DataType::Double)])),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        s.update_version(&actor(), "described", 1, touch_signature)
            .await,
        Err(Error::Conflict(_))
    ));
    let card = ModelCard {
        intended_use: Some("Scoring loan applications of adults".into()),
        limitations: Some("Not validated outside the EU".into()),
        ..Default::default()
    };
    let after = s
        .update_version(
            &actor(),
            "described",
            1,
            VersionUpdate {
                metadata: Some(MetadataUpdate {
                    model_card: Some(card.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(after.metadata.model_card, Some(card));
    assert_eq!(after.metadata.environment, read.environment);
    assert_eq!(
        s.get_version("described", 1).await.unwrap().metadata,
        after.metadata
    );

    // The versions view shows each section as a column.
    let rows = s.export_view(RegistryView::Versions).await.unwrap();
    let row = rows
        .iter()
        .find(|r| r["model"] == "described")
        .expect("the version is in the view");
    assert!(row.get("metadata").is_none());
    assert_eq!(row["flavors"], "[\"onnx\"]");
    assert!(
        row["model_card"]
            .as_str()
            .unwrap()
            .contains("Not validated")
    );
    assert!(row["input_example"].is_null());
    assert!(s.verify_audit().await.unwrap().ok);
}
