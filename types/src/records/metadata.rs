//! What a reviewer asks of a model version beyond where its files are: its
//! format, the inputs it takes and the outputs it gives (signature), an
//! example input, what it needs to run (environment), and what it is for
//! (model card).
//!
//! The first four describe the version's files: they are read from an
//! MLflow `MLmodel` when the files are sealed, or declared at
//! registration, and are fixed once the files are. The model card is
//! written by people and may be edited at any time (audited).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::vocabulary::{FeatureKind, Features};

/// The largest input example kept, in bytes of its JSON text.
pub const MAX_INPUT_EXAMPLE_BYTES: usize = 64 * 1024;

/// A version's typed metadata. Every section is optional: absent means
/// not declared (and a gate may require it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelMetadata {
    /// Model formats: the flavors of its `MLmodel` (`python_function`,
    /// `sklearn`, …) or a format name (`onnx`, `torchscript`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flavors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// A small example input (JSON, at most 64 KiB), as MLflow saves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input_example: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_card: Option<ModelCard>,
}

impl ModelMetadata {
    /// Whether any section describing the files is set.
    pub fn describes_files(&self) -> bool {
        !self.flavors.is_empty()
            || self.signature.is_some()
            || self.input_example.is_some()
            || self.environment.is_some()
    }

    /// `self` with every unset section taken from `from` (sections already
    /// set win: what was declared is not overwritten by what was read).
    pub fn or(mut self, from: ModelMetadata) -> ModelMetadata {
        if self.flavors.is_empty() {
            self.flavors = from.flavors;
        }
        self.signature = self.signature.or(from.signature);
        self.input_example = self.input_example.or(from.input_example);
        self.environment = self.environment.or(from.environment);
        self.model_card = self.model_card.or(from.model_card);
        self
    }
}

/// The inputs a model takes and the outputs it gives, as MLflow's
/// signature lists them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    #[serde(default)]
    pub inputs: Vec<SignatureField>,
    #[serde(default)]
    pub outputs: Vec<SignatureField>,
}

impl Signature {
    /// The features its named, scalar inputs declare: numbers are
    /// `numeric`, strings and booleans `categorical`; tensors and nested
    /// types declare none (drift is computed on scalar features).
    pub fn features(&self) -> Features {
        self.inputs
            .iter()
            .filter_map(|f| {
                let kind = match f.data_type {
                    DataType::Double | DataType::Float | DataType::Long | DataType::Integer => {
                        FeatureKind::Numeric
                    }
                    DataType::String | DataType::Boolean => FeatureKind::Categorical,
                    _ => return None,
                };
                Some((f.name.clone()?, kind))
            })
            .collect()
    }
}

/// One input or output column (or tensor) of a signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureField {
    /// The column's name; none for an unnamed tensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Whether the column may be missing from an input.
    #[serde(default = "yes")]
    pub required: bool,
    /// For `tensor`: the element type (`float64`, `int32`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// For `tensor`: its shape, `-1` for a free dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<i64>>,
}

fn yes() -> bool {
    true
}

/// A signature field's type: MLflow's column types, and `tensor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Double,
    Float,
    Long,
    Integer,
    Boolean,
    String,
    Binary,
    Datetime,
    Tensor,
    Array,
    Object,
    Map,
    Any,
}

/// What a version needs to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The Python version it was saved with (`3.11.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
    /// pip requirement lines (`scikit-learn==1.9.1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// conda dependencies (`python=3.11.2`, `pip<=24.0`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conda_dependencies: Vec<String>,
    /// The container image it is served from, pinned by digest
    /// (`registry.example/serve@sha256:<64 hex>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<String>,
}

/// What a version is for, written by the people responsible for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitations: Option<String>,
    /// The data it was evaluated on, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ethical_considerations: Option<String>,
}

/// `PATCH …/versions/{version}` `metadata`: each section given replaces
/// the stored one; sections left out are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavors: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input_example: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_card: Option<ModelCard>,
}

impl MetadataUpdate {
    /// Whether it changes a section describing the files.
    pub fn touches_files(&self) -> bool {
        self.flavors.is_some()
            || self.signature.is_some()
            || self.input_example.is_some()
            || self.environment.is_some()
    }

    /// `base` with the given sections replaced.
    pub fn apply(self, mut base: ModelMetadata) -> ModelMetadata {
        if let Some(f) = self.flavors {
            base.flavors = f;
        }
        if self.signature.is_some() {
            base.signature = self.signature;
        }
        if self.input_example.is_some() {
            base.input_example = self.input_example;
        }
        if self.environment.is_some() {
            base.environment = self.environment;
        }
        if self.model_card.is_some() {
            base.model_card = self.model_card;
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_signature_columns_read_and_declare_scalar_features() {
        let sig = Signature {
            inputs: serde_json::from_str(
                r#"[{"type": "double", "name": "age", "required": true},
                    {"type": "string", "name": "country"},
                    {"type": "boolean", "name": "member", "required": false},
                    {"type": "binary", "name": "photo"},
                    {"type": "tensor", "dtype": "float64", "shape": [-1, 4]}]"#,
            )
            .unwrap(),
            outputs: vec![],
        };
        assert!(!sig.inputs[2].required);
        assert_eq!(sig.inputs[4].shape, Some(vec![-1, 4]));
        let features = sig.features();
        assert_eq!(
            features.into_iter().collect::<Vec<_>>(),
            vec![
                ("age".to_string(), FeatureKind::Numeric),
                ("country".to_string(), FeatureKind::Categorical),
                ("member".to_string(), FeatureKind::Categorical),
            ]
        );
    }

    #[test]
    fn declared_sections_win_over_read_ones_and_updates_replace_only_what_they_name() {
        let declared = ModelMetadata {
            flavors: vec!["onnx".into()],
            ..Default::default()
        };
        let read = ModelMetadata {
            flavors: vec!["sklearn".into()],
            environment: Some(Environment {
                python_version: Some("3.11".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let merged = declared.or(read);
        assert_eq!(merged.flavors, vec!["onnx".to_string()]);
        assert!(merged.environment.is_some());

        let card = ModelCard {
            intended_use: Some("credit scoring".into()),
            ..Default::default()
        };
        let update = MetadataUpdate {
            model_card: Some(card.clone()),
            ..Default::default()
        };
        assert!(!update.touches_files());
        let after = update.apply(merged.clone());
        assert_eq!(after.model_card, Some(card));
        assert_eq!(after.flavors, merged.flavors);
        assert_eq!(after.environment, merged.environment);
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(serde_json::from_str::<ModelMetadata>(r#"{"flavour": []}"#).is_err());
        assert!(serde_json::from_str::<SignatureField>(r#"{"type": "decimal"}"#).is_err());
    }
}
