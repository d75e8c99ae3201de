"""The real MlflowClient's workload, timed end to end against any MLflow
REST server (modelwatch's /api/2.0/mlflow or `mlflow server`).

Reads MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN for modelwatch), runs
ITERATIONS rounds of what a deployment pipeline does per model version
(create the version, set an alias, look it up, search by run id, tag it) and
prints one JSON line: total seconds, client calls per second, and the mean
milliseconds of each call. The client itself (Python, requests, protobuf)
is a large part of each call's time, which is why the throughput
benchmark uses `modelwatch bench mlflow` instead.
    python scripts/bench_mlflow_client.py [ITERATIONS]
"""

import json
import sys
import time

from mlflow import MlflowClient


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    c = MlflowClient()
    name = f"client-bench-{int(time.time() * 1000)}"
    c.create_registered_model(name)
    spent = {k: 0.0 for k in ("create_version", "set_alias", "get_by_alias", "search", "set_tag")}

    def timed(key, call):
        t = time.perf_counter()
        result = call()
        spent[key] += time.perf_counter() - t
        return result

    start = time.perf_counter()
    for i in range(iterations):
        mv = timed(
            "create_version",
            lambda: c.create_model_version(name, f"s3://bench/{name}/{i}", run_id=f"run{i}"),
        )
        timed("set_alias", lambda: c.set_registered_model_alias(name, "champion", mv.version))
        timed("get_by_alias", lambda: c.get_model_version_by_alias(name, "champion"))
        timed("search", lambda: c.search_model_versions(f"name = '{name}' AND run_id = 'run{i}'"))
        timed("set_tag", lambda: c.set_model_version_tag(name, mv.version, "validated", "true"))
    total = time.perf_counter() - start
    calls = iterations * len(spent)
    print(json.dumps({
        "iterations": iterations,
        "seconds": round(total, 3),
        "calls_per_second": round(calls / total, 1),
        "mean_ms": {k: round(v / iterations * 1000, 2) for k, v in spent.items()},
    }))


if __name__ == "__main__":
    main()
