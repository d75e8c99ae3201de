//! Reading a version's metadata from MLflow's files: the `MLmodel` at the
//! root of a model's files names its flavors and signature and points at
//! the input example and the environment files beside it.
//!
//! Pure: the caller reads the files (at most [`MAX_DESCRIPTION_FILE_BYTES`]
//! each) and hands their bytes over. Reading is lenient by design: an
//! `MLmodel` written by another MLflow version may carry sections this
//! does not know, and a section that cannot be read is left out (with the
//! reason in [`Described::skipped`]) rather than refusing the files, which
//! are the user's and valid whatever their metadata says.

use std::collections::BTreeMap;

use modelwatch_types::records::{
    DataType, Environment, MAX_INPUT_EXAMPLE_BYTES, ModelMetadata, Signature, SignatureField,
};
use serde::Deserialize;
use serde_json::Value;

/// The file at the root of an MLflow model.
pub const MLMODEL_FILE: &str = "MLmodel";

/// The most read of an `MLmodel` or an environment file.
pub const MAX_DESCRIPTION_FILE_BYTES: u64 = 1024 * 1024;

/// An `MLmodel`, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MlModel {
    flavors: Vec<String>,
    signature: Option<Signature>,
    python_version: Option<String>,
    input_example: Option<String>,
    python_env: Option<String>,
    conda: Option<String>,
    skipped: Vec<String>,
}

/// What was read, and what could not be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Described {
    pub metadata: ModelMetadata,
    /// Sections left out, each with why.
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
struct RawMlModel {
    #[serde(default)]
    flavors: BTreeMap<String, serde_yaml_ng::Value>,
    #[serde(default)]
    signature: Option<RawSignature>,
    #[serde(default)]
    saved_input_example_info: Option<RawExampleInfo>,
}

#[derive(Deserialize)]
struct RawSignature {
    #[serde(default)]
    inputs: Option<String>,
    #[serde(default)]
    outputs: Option<String>,
}

#[derive(Deserialize)]
struct RawExampleInfo {
    artifact_path: Option<String>,
}

/// `python_env.yaml`.
#[derive(Deserialize)]
struct RawPythonEnv {
    python: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    dependencies: Vec<String>,
}

impl MlModel {
    /// Reads an `MLmodel`'s text. Only a text that is not YAML at all is
    /// an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawMlModel = serde_yaml_ng::from_str(text)
            .map_err(|e| format!("{MLMODEL_FILE} is not the YAML MLflow writes: {e}"))?;
        let mut model = MlModel {
            flavors: raw.flavors.keys().cloned().collect(),
            ..Default::default()
        };
        if let Some(pyfunc) = raw.flavors.get("python_function") {
            model.python_version = yaml_text(pyfunc.get("python_version"));
            if let Some(env) = pyfunc.get("env") {
                // Older MLmodels name the conda file directly (`env: conda.yaml`).
                model.conda = yaml_text(env.get("conda")).or_else(|| yaml_text(Some(env)));
                model.python_env = yaml_text(env.get("virtualenv"));
            }
        }
        if let Some(sig) = raw.signature {
            let mut signature = Signature::default();
            for (side, text, into) in [
                ("inputs", sig.inputs, &mut signature.inputs),
                ("outputs", sig.outputs, &mut signature.outputs),
            ] {
                let Some(text) = text else { continue };
                match signature_fields(&text) {
                    Ok(fields) => *into = fields,
                    Err(e) => model.skipped.push(format!("signature {side}: {e}")),
                }
            }
            if !signature.inputs.is_empty() || !signature.outputs.is_empty() {
                model.signature = Some(signature);
            }
        }
        model.input_example = raw.saved_input_example_info.and_then(|i| i.artifact_path);
        Ok(model)
    }

    /// The files beside the `MLmodel` that the description reads, relative
    /// to the model's root: the input example, the environment files, and
    /// `requirements.txt`.
    pub fn companions(&self) -> Vec<String> {
        let mut paths: Vec<String> = [&self.input_example, &self.python_env, &self.conda]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if self.python_env.is_some() {
            paths.push("requirements.txt".into());
        }
        paths
    }

    /// The metadata, given the companions' bytes (`read` answers `None`
    /// for one that is missing or too large).
    pub fn describe(self, read: impl Fn(&str) -> Option<Vec<u8>>) -> Described {
        let mut skipped = self.skipped;
        let input_example = self.input_example.as_deref().and_then(|path| {
            let bytes = read(path)?;
            if bytes.len() > MAX_INPUT_EXAMPLE_BYTES {
                skipped.push(format!(
                    "input example {path}: {} bytes, more than the {MAX_INPUT_EXAMPLE_BYTES} kept",
                    bytes.len()
                ));
                return None;
            }
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| skipped.push(format!("input example {path}: not JSON: {e}")))
                .ok()
        });
        let mut environment = Environment {
            python_version: self.python_version,
            ..Default::default()
        };
        if let Some(path) = &self.python_env
            && let Some(bytes) = read(path)
        {
            match serde_yaml_ng::from_slice::<RawPythonEnv>(&bytes) {
                Ok(env) => {
                    if let Some(python) = yaml_text(env.python.as_ref()) {
                        environment.python_version = Some(python);
                    }
                    let inline = env.dependencies.iter().filter(|d| !d.starts_with('-'));
                    environment.requirements.extend(inline.cloned());
                }
                Err(e) => skipped.push(format!("environment {path}: {e}")),
            }
            if let Some(bytes) = read("requirements.txt") {
                environment
                    .requirements
                    .extend(requirement_lines(&String::from_utf8_lossy(&bytes)));
            }
        }
        if let Some(path) = &self.conda
            && let Some(bytes) = read(path)
        {
            match conda_dependencies(&bytes) {
                Ok(deps) => environment.conda_dependencies = deps,
                Err(e) => skipped.push(format!("conda environment {path}: {e}")),
            }
        }
        let environment = (environment != Environment::default()).then_some(environment);
        Described {
            metadata: ModelMetadata {
                flavors: self.flavors,
                signature: self.signature,
                input_example,
                environment,
                model_card: None,
            },
            skipped,
        }
    }
}

fn yaml_text(v: Option<&serde_yaml_ng::Value>) -> Option<String> {
    match v? {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// MLflow's signature side: a JSON list of columns (`{"type": "double",
/// "name": "x", "required": true}`) or tensors (`{"type": "tensor",
/// "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}`).
fn signature_fields(text: &str) -> Result<Vec<SignatureField>, String> {
    let raw: Vec<Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON list: {e}"))?;
    Ok(raw
        .iter()
        .map(|f| {
            let spec = f.get("tensor-spec");
            SignatureField {
                name: f.get("name").and_then(Value::as_str).map(str::to_owned),
                data_type: data_type(f.get("type").and_then(Value::as_str).unwrap_or("")),
                required: f.get("required").and_then(Value::as_bool).unwrap_or(true),
                dtype: spec
                    .and_then(|s| s.get("dtype"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                shape: spec.and_then(|s| s.get("shape")).and_then(|s| {
                    s.as_array()?
                        .iter()
                        .map(Value::as_i64)
                        .collect::<Option<Vec<_>>>()
                }),
            }
        })
        .collect())
}

fn data_type(name: &str) -> DataType {
    match name {
        "double" => DataType::Double,
        "float" => DataType::Float,
        "long" => DataType::Long,
        "integer" => DataType::Integer,
        "boolean" => DataType::Boolean,
        "string" => DataType::String,
        "binary" => DataType::Binary,
        "datetime" => DataType::Datetime,
        "tensor" => DataType::Tensor,
        "array" => DataType::Array,
        "object" => DataType::Object,
        "map" => DataType::Map,
        _ => DataType::Any,
    }
}

/// A `requirements.txt`'s requirements: no comments, blank lines or pip
/// options.
fn requirement_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .map(str::to_owned)
}

/// A `conda.yaml`'s dependencies, pip's nested list flattened as `pip:…`.
fn conda_dependencies(bytes: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Conda {
        #[serde(default)]
        dependencies: Vec<serde_yaml_ng::Value>,
    }
    let conda: Conda = serde_yaml_ng::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut deps = Vec::new();
    for d in conda.dependencies {
        match d {
            serde_yaml_ng::Value::String(s) => deps.push(s),
            serde_yaml_ng::Value::Mapping(m) => {
                for (k, v) in m {
                    let (Some(k), Some(list)) = (k.as_str(), v.as_sequence()) else {
                        continue;
                    };
                    deps.extend(
                        list.iter()
                            .filter_map(|x| x.as_str())
                            .map(|x| format!("{k}:{x}")),
                    );
                }
            }
            _ => {}
        }
    }
    Ok(deps)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `mlflow.sklearn.log_model` 3.x writes, with a DataFrame input
    /// example.
    const MLMODEL: &str = r#"artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.2
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.9.1
mlflow_version: 3.17.2
model_size_bytes: 880
model_uuid: 0b6b0b9c
saved_input_example_info:
  artifact_path: input_example.json
  serving_input_path: serving_input_example.json
  type: dataframe
  pandas_orient: split
signature:
  inputs: '[{"type": "double", "name": "x1", "required": true}, {"type": "string",
    "name": "segment", "required": false}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'
  params: null
utc_time_created: '2026-12-07 10:00:00.000000'
"#;

    fn files(path: &str) -> Option<Vec<u8>> {
        let text = match path {
            "input_example.json" => r#"{"columns": ["x1", "segment"], "data": [[0.5, "a"]]}"#,
            "python_env.yaml" => {
                "python: 3.11.2\nbuild_dependencies:\n- pip==24.0\ndependencies:\n- -r requirements.txt\n"
            }
            "requirements.txt" => "mlflow==3.17.2\n# pinned\nscikit-learn==1.9.1\n\n",
            "conda.yaml" => {
                "channels:\n- conda-forge\ndependencies:\n- python=3.11.2\n- pip<=24.0\n- pip:\n  - mlflow==3.17.2\n"
            }
            _ => return None,
        };
        Some(text.as_bytes().to_vec())
    }

    #[test]
    fn an_sklearn_mlmodel_gives_flavors_signature_example_and_environment() {
        let model = MlModel::parse(MLMODEL).unwrap();
        assert_eq!(
            model.companions(),
            vec![
                "input_example.json",
                "python_env.yaml",
                "conda.yaml",
                "requirements.txt"
            ]
        );
        let d = model.describe(files);
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
        let m = d.metadata;
        assert_eq!(m.flavors, vec!["python_function", "sklearn"]);
        let sig = m.signature.unwrap();
        assert_eq!(sig.inputs.len(), 2);
        assert_eq!(sig.inputs[0].name.as_deref(), Some("x1"));
        assert_eq!(sig.inputs[0].data_type, DataType::Double);
        assert!(!sig.inputs[1].required);
        assert_eq!(sig.outputs[0].data_type, DataType::Tensor);
        assert_eq!(sig.outputs[0].dtype.as_deref(), Some("float64"));
        assert_eq!(sig.outputs[0].shape, Some(vec![-1]));
        assert_eq!(m.input_example.unwrap()["data"][0][1], "a");
        let env = m.environment.unwrap();
        assert_eq!(env.python_version.as_deref(), Some("3.11.2"));
        assert_eq!(
            env.requirements,
            vec!["mlflow==3.17.2", "scikit-learn==1.9.1"]
        );
        assert_eq!(
            env.conda_dependencies,
            vec!["python=3.11.2", "pip<=24.0", "pip:mlflow==3.17.2"]
        );
    }

    #[test]
    fn unreadable_sections_are_skipped_with_why_and_garbage_is_refused() {
        let broken = MLMODEL.replace(
            r#"outputs: '[{"type": "tensor""#,
            r#"outputs: '[{"type": "tensor" oops"#,
        );
        let model = MlModel::parse(&broken).unwrap();
        let d = model.describe(|p| {
            if p == "input_example.json" {
                Some(vec![b'x'; MAX_INPUT_EXAMPLE_BYTES + 1])
            } else {
                None
            }
        });
        assert_eq!(d.metadata.signature.unwrap().outputs, vec![]);
        assert!(d.metadata.input_example.is_none());
        assert!(d.metadata.environment.is_some(), "python_version stays");
        assert_eq!(d.skipped.len(), 2, "{:?}", d.skipped);
        assert!(d.skipped[0].starts_with("signature outputs"));
        assert!(d.skipped[1].contains("more than"));

        assert!(MlModel::parse(": : :\n\t- [").is_err());
        assert_eq!(
            MlModel::parse("flavors: {}\n")
                .unwrap()
                .describe(files)
                .metadata,
            ModelMetadata::default()
        );
    }
}
