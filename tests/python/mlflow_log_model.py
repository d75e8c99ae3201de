"""log_model / load_model through modelwatch with the real mlflow package.

Trains a scikit-learn model on a few rows, logs it inside a run with
`registered_model_name`, points `production` at the new version, loads it
back through `models:/<name>@production` and `models:/<name>/<version>`,
downloads the version's files with `mlflow.artifacts.download_artifacts`
and prints one JSON line with what it saw (tests/e2e/artifacts.rs).

Environment: MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN (an approver: the
`production` alias is protected), MODEL_NAME.
"""

import hashlib
import json
import os
import tempfile

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

name = os.environ["MODEL_NAME"]
# Named columns, so the logged signature names the model's inputs.
columns = ["amount", "ratio"]
X = pd.DataFrame(
    [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [0.5, 0.2], [2.5, 0.9]], columns=columns
)
y = np.array([0, 0, 1, 1, 0, 1])
model = LogisticRegression().fit(X, y)
probe = pd.DataFrame([[0.1, 0.3], [2.9, 0.1], [1.4, 0.7], [1.6, 0.2]], columns=columns)

with mlflow.start_run() as run:
    mlflow.log_param("C", "1.0")
    mlflow.log_metric("train_accuracy", float(model.score(X, y)))
    info = mlflow.sklearn.log_model(
        model, name="model", registered_model_name=name, input_example=X[:2]
    )

client = MlflowClient()
version = info.registered_model_version
client.set_registered_model_alias(name, "production", version)

by_alias = mlflow.pyfunc.load_model(f"models:/{name}@production")
by_number = mlflow.sklearn.load_model(f"models:/{name}/{version}")

downloaded = mlflow.artifacts.download_artifacts(
    f"models:/{name}@production", dst_path=tempfile.mkdtemp()
)
# MLflow 3 resolves runs:/<run>/<name> to the logged model through
# logged-models/search; the new version holds the same files.
from_run = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)

files = {}
for root, _, names in os.walk(downloaded):
    for n in names:
        path = os.path.join(root, n)
        rel = os.path.relpath(path, downloaded)
        with open(path, "rb") as f:
            files[rel] = hashlib.sha256(f.read()).hexdigest()

print(
    json.dumps(
        {
            "version": version,
            "run_id": run.info.run_id,
            "model_id": info.model_id,
            "source": client.get_model_version(name, version).source,
            "from_run_version": from_run.version,
            "original": model.predict(probe).tolist(),
            "by_alias": [int(v) for v in by_alias.predict(probe)],
            "by_number": by_number.predict(probe).tolist(),
            "probabilities_equal": bool(
                np.array_equal(model.predict_proba(probe), by_number.predict_proba(probe))
            ),
            "files": files,
        }
    )
)
