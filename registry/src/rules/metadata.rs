//! A version's metadata: what a change to it may touch, and the features
//! a signature declares.

use crate::error::{Error, Result};
use crate::types::{Features, MetadataUpdate, ModelMetadata, Version};
use crate::validate::RESERVED_COLUMNS;

/// The features a version gets from its signature: none when it already
/// declares features (declared ones win) or has no signature. Inputs
/// named like a reserved upload column (`prediction`, …) are not features.
pub fn features_from_signature(current: &Features, metadata: &ModelMetadata) -> Option<Features> {
    if !current.is_empty() {
        return None;
    }
    let mut features = metadata.signature.as_ref()?.features();
    features.retain(|name, _| !RESERVED_COLUMNS.contains(&name.as_str()));
    (!features.is_empty()).then_some(features)
}

/// The metadata after `update`, or a conflict when it would change what
/// describes files that are already fixed (the version records an
/// `artifact_digest`): the model card alone stays editable.
pub fn updated(before: &Version, update: MetadataUpdate) -> Result<ModelMetadata> {
    if before.artifact_digest.is_some() && update.touches_files() {
        return Err(Error::Conflict(format!(
            "version {} of model {:?} has its files fixed (artifact_digest {}); its flavors, signature, input example and environment describe them and cannot change: register a new version (the model card can still be edited)",
            before.version,
            before.model,
            before.artifact_digest.as_deref().unwrap_or(""),
        )));
    }
    Ok(update.apply(before.metadata.clone()))
}

/// The metadata after sealing: sections read from the sealed files fill
/// the ones not declared before.
pub fn sealed(before: &ModelMetadata, read: ModelMetadata) -> ModelMetadata {
    before.clone().or(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FeatureKind, ModelCard, Signature, SignatureField};
    use modelwatch_types::records::DataType;

    fn field(name: &str, data_type: DataType) -> SignatureField {
        SignatureField {
            name: Some(name.into()),
            data_type,
            required: true,
            dtype: None,
            shape: None,
        }
    }

    fn with_signature() -> ModelMetadata {
        ModelMetadata {
            signature: Some(Signature {
                inputs: vec![
                    field("age", DataType::Long),
                    field("prediction", DataType::Double),
                ],
                outputs: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_signature_declares_features_only_when_none_are_declared() {
        let declared = features_from_signature(&Features::new(), &with_signature()).unwrap();
        assert_eq!(
            declared.into_iter().collect::<Vec<_>>(),
            vec![("age".to_string(), FeatureKind::Numeric)]
        );
        let mut current = Features::new();
        current.insert("x".into(), FeatureKind::Categorical);
        assert_eq!(features_from_signature(&current, &with_signature()), None);
        assert_eq!(
            features_from_signature(&Features::new(), &ModelMetadata::default()),
            None
        );
    }

    #[test]
    fn sealed_files_fix_their_description_but_not_the_model_card() {
        let json = serde_json::json!({
            "model": "m", "version": 2, "description": "", "source_uri": null,
            "artifact_digest": format!("sha256:{}", "a".repeat(64)), "run_id": null,
            "lineage": {}, "tags": {}, "features": {}, "reference_uri": null,
            "status": "ready", "stage": "None", "aliases": [], "health": null,
            "recommendations": [], "created_by": "t",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        });
        let mut sealed: Version = serde_json::from_value(json).unwrap();
        let signature = MetadataUpdate {
            signature: with_signature().signature,
            ..Default::default()
        };
        assert!(matches!(
            updated(&sealed, signature.clone()),
            Err(Error::Conflict(_))
        ));
        let card = MetadataUpdate {
            model_card: Some(ModelCard {
                limitations: Some("not for minors".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(updated(&sealed, card).unwrap().model_card.is_some());
        sealed.artifact_digest = None;
        assert!(updated(&sealed, signature).unwrap().signature.is_some());
    }
}
