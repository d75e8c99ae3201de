"""Drives modelwatch's MLflow REST API with the real MLflow client.

Reads MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN (as any MLflow user
would), calls every MlflowClient method modelwatch supports, and prints one
JSON object of what the client saw, for tests/e2e/mlflow.rs to check
against the native API. Any unexpected client error fails the script.
"""

import json
import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException


def version_view(mv):
    return {
        "name": mv.name,
        "version": mv.version,
        "stage": mv.current_stage,
        "status": mv.status,
        "source": mv.source,
        "run_id": mv.run_id,
        "description": mv.description,
        "tags": dict(mv.tags),
        "aliases": sorted(mv.aliases),
    }


def error_code(call):
    try:
        call()
    except MlflowException as e:
        return e.error_code
    raise AssertionError("the call should have failed")


def main():
    c = MlflowClient()
    out = {}

    # Tracking: the experiment and run a version's lineage comes from.
    out["default_experiment"] = c.get_experiment_by_name("Default").experiment_id
    out["missing_experiment"] = c.get_experiment_by_name("no-such-experiment")
    exp_id = c.create_experiment("fraud-training", tags={"team": "risk"})
    out["experiment"] = {"id": exp_id, "name": c.get_experiment(exp_id).name}
    run = c.create_run(exp_id, run_name="train-1", tags={"git_commit": "abc123"})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    c.log_batch(
        run_id,
        metrics=[Metric("auc", 0.91, now, 1), Metric("auc", 0.93, now, 2)],
        params=[Param("learning_rate", "0.01")],
        tags=[RunTag("dataset", "cards-2026-10")],
    )
    c.log_metric(run_id, "loss", 0.2, timestamp=now, step=3)
    c.log_param(run_id, "max_depth", "6")
    c.set_tag(run_id, "owner", "risk-team")
    c.set_terminated(run_id, "FINISHED")
    r = c.get_run(run_id)
    out["run"] = {
        "id": run_id,
        "status": r.info.status,
        "metrics": r.data.metrics,
        "params": r.data.params,
        "tags": {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")},
    }

    # Registered models.
    c.create_registered_model("fraud", tags={"team": "risk"}, description="draft")
    c.update_registered_model("fraud", description="card fraud")
    c.set_registered_model_tag("fraud", "tier", "1")
    c.set_registered_model_tag("fraud", "temporary", "x")
    c.delete_registered_model_tag("fraud", "temporary")
    rm = c.get_registered_model("fraud")
    out["model"] = {"name": rm.name, "description": rm.description, "tags": dict(rm.tags)}

    # Versions.
    mv1 = c.create_model_version(
        "fraud", "s3://models/fraud/1", run_id=run_id, tags={"framework": "xgboost"},
        description="first",
    )
    c.create_model_version("fraud", "s3://models/fraud/2")
    c.create_model_version("fraud", "s3://models/fraud/3")
    out["created"] = version_view(mv1)
    c.update_model_version("fraud", "1", description="first, reviewed")
    c.set_model_version_tag("fraud", "1", "validated", "true")
    c.set_model_version_tag("fraud", "2", "framework", "lightgbm")
    c.delete_model_version_tag("fraud", "1", "framework")
    out["version1"] = version_view(c.get_model_version("fraud", "1"))
    out["download_uri"] = c.get_model_version_download_uri("fraud", "1")

    # Aliases.
    c.set_registered_model_alias("fraud", "champion", "1")
    c.set_registered_model_alias("fraud", "challenger", "3")
    c.delete_registered_model_alias("fraud", "challenger")
    out["champion"] = version_view(c.get_model_version_by_alias("fraud", "champion"))
    out["model_aliases"] = dict(c.get_registered_model("fraud").aliases)

    # Stages.
    c.transition_model_version_stage("fraud", "1", "Production")
    moved = c.transition_model_version_stage(
        "fraud", "2", "Production", archive_existing_versions=True
    )
    c.transition_model_version_stage("fraud", "3", "staging")
    out["transitioned"] = version_view(moved)
    out["stages"] = {
        v: c.get_model_version("fraud", v).current_stage for v in ("1", "2", "3")
    }
    out["latest_production"] = [
        v.version for v in c.get_latest_versions("fraud", stages=["Production"])
    ]
    out["latest_all"] = sorted(
        (v.current_stage, v.version) for v in c.get_latest_versions("fraud")
    )

    # Searches, with filters and paging.
    out["by_name"] = sorted(v.version for v in c.search_model_versions("name = 'fraud'"))
    out["by_run"] = [v.version for v in c.search_model_versions(f"run_id = '{run_id}'")]
    out["by_tag"] = [
        v.version for v in c.search_model_versions("name='fraud' AND tags.framework = 'lightgbm'")
    ]
    out["by_number"] = sorted(
        v.version
        for v in c.search_model_versions("name = 'fraud' AND version_number IN (1, 3)")
    )
    pages, token = [], None
    while True:
        page = c.search_model_versions(
            "name = 'fraud'", max_results=2, order_by=["version_number ASC"], page_token=token
        )
        pages.append([v.version for v in page])
        token = page.token
        if not token:
            break
    out["version_pages"] = pages
    c.create_registered_model("fraud-shadow")
    c.create_registered_model("churn")
    out["model_search"] = [m.name for m in c.search_registered_models("name LIKE 'fraud%'")]
    pages, token = [], None
    while True:
        page = c.search_registered_models(max_results=2, page_token=token)
        pages.append([m.name for m in page])
        token = page.token
        if not token:
            break
    out["model_pages"] = pages

    # Rename and delete.
    c.rename_registered_model("fraud-shadow", "fraud-canary")
    c.create_model_version("fraud-canary", "s3://models/canary/1")
    out["renamed"] = c.get_registered_model("fraud-canary").name
    c.delete_model_version("fraud-canary", "1")
    c.delete_registered_model("fraud-canary")

    # Errors the client turns into exceptions.
    out["errors"] = {
        "missing_model": error_code(lambda: c.get_registered_model("fraud-canary")),
        "duplicate_model": error_code(lambda: c.create_registered_model("fraud")),
        "missing_version": error_code(lambda: c.get_model_version("fraud", "99")),
        "bad_filter": error_code(lambda: c.search_model_versions("name ~ 'x'")),
        "param_change": error_code(lambda: c.log_param(run_id, "learning_rate", "0.5")),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
