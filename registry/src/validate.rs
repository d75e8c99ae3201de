//! Input validation shared by every backend, so SQLite and a later PostgreSQL
//! store accept exactly the same requests.

use crate::error::{Error, Result};
use crate::types::{
    Features, Lineage, ModelMetadata, NewModel, NewRecommendation, NewVersion, SignatureField, Tags,
};

const MAX_NAME: usize = 128;
const MAX_TEXT: usize = 16 * 1024;
const MAX_TAG_KEY: usize = 250;
const MAX_TAG_VALUE: usize = 5000;
const MAX_TAGS: usize = 100;

/// Model names: letters, digits, `.`, `_`, `-`; starting with a letter or
/// digit; at most 128 characters. They appear in URLs and SQL unquoted.
pub fn model_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "{name:?} is not a valid model name: use 1-{MAX_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

/// Alias names (see [`modelwatch_types::check_alias_name`]).
pub fn alias_name(name: &str) -> Result<()> {
    Ok(modelwatch_types::check_alias_name(name)?)
}

/// Token names follow the model-name rules.
pub fn token_name(name: &str) -> Result<()> {
    model_name(name).map_err(|_| {
        Error::invalid(
            "name",
            format!("{name:?} is not a valid token name: use 1-{MAX_NAME} letters, digits, '.', '_' or '-'"),
        )
    })
}

pub fn version_number(version: i64) -> Result<()> {
    if version >= 1 {
        Ok(())
    } else {
        Err(Error::invalid(
            "version",
            format!("version numbers start at 1, got {version}"),
        ))
    }
}

pub fn tag_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= MAX_TAG_KEY
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | ' '));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "tag",
            format!(
                "{key:?} is not a valid tag key: use 1-{MAX_TAG_KEY} letters, digits, spaces or . _ - / :"
            ),
        ))
    }
}

pub fn tag_value(key: &str, value: &str) -> Result<()> {
    if value.len() > MAX_TAG_VALUE {
        return Err(Error::invalid(
            "tag",
            format!(
                "value of tag {key:?} is {} bytes; the limit is {MAX_TAG_VALUE}",
                value.len()
            ),
        ));
    }
    Ok(())
}

pub fn tags(tags: &Tags) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags per record"),
        ));
    }
    for (k, v) in tags {
        tag_key(k)?;
        tag_value(k, v)?;
    }
    Ok(())
}

/// Most bytes of the reason given for an alias move.
pub const MAX_REASON: usize = 4096;

/// Characters that reorder how text is displayed (bidirectional overrides
/// and isolates, the "Trojan Source" characters): they make a record read
/// differently from what it holds, so no text field accepts them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

/// Free text: at most `max` bytes, no control characters but tab and line
/// breaks (`multiline`), no bidirectional controls.
fn checked_text(field: &str, value: &str, max: usize, multiline: bool) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(
            field,
            format!("is {} bytes; the limit is {max}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|&c| {
        is_bidi_control(c) || (c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    }) {
        return Err(Error::invalid(
            field,
            format!(
                "contains the control character U+{:04X}; remove control characters{}",
                c as u32,
                if multiline {
                    " (tabs and line breaks are fine)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

/// Multi-line free text (descriptions).
fn text(field: &str, value: &str) -> Result<()> {
    checked_text(field, value, MAX_TEXT, true)
}

/// One line of free text (owners, URIs, run ids).
fn line(field: &str, value: &str) -> Result<()> {
    checked_text(field, value, MAX_TEXT, false)
}

/// The reason given for moving, deleting or rolling back an alias.
pub fn reason(value: &str) -> Result<()> {
    checked_text("reason", value, MAX_REASON, true)
}

/// `sha256:` followed by 64 lowercase hex digits.
pub fn digest(field: &str, value: &str) -> Result<()> {
    let hex = value.strip_prefix("sha256:");
    let ok =
        hex.is_some_and(|h| h.len() == 64 && h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{value:?} is not a sha256 digest: expected \"sha256:\" followed by 64 lowercase hex digits"
            ),
        ))
    }
}

pub fn new_model(m: &NewModel) -> Result<()> {
    model_name(&m.name)?;
    text("description", &m.description)?;
    line("owner", &m.owner)?;
    tags(&m.tags)
}

pub fn new_version(v: &NewVersion) -> Result<()> {
    text("description", &v.description)?;
    if let Some(uri) = &v.source_uri {
        if uri.is_empty() {
            return Err(Error::invalid("source_uri", "must not be empty when given"));
        }
        line("source_uri", uri)?;
    }
    if let Some(d) = &v.artifact_digest {
        digest("artifact_digest", d)?;
    }
    if let Some(run) = &v.run_id {
        line("run_id", run)?;
    }
    if let Some(uri) = &v.reference_uri {
        if uri.is_empty() {
            return Err(Error::invalid(
                "reference_uri",
                "must not be empty when given",
            ));
        }
        line("reference_uri", uri)?;
    }
    lineage(&v.lineage)?;
    features(&v.features)?;
    metadata(&v.metadata)?;
    tags(&v.tags)
}

const MAX_FLAVORS: usize = 32;
const MAX_SIGNATURE_FIELDS: usize = MAX_FEATURES;
const MAX_REQUIREMENTS: usize = 2_000;

/// A version's metadata: bounded lists, one-line names, a container image
/// pinned by digest, an input example of at most
/// [`modelwatch_types::records::MAX_INPUT_EXAMPLE_BYTES`].
pub fn metadata(m: &ModelMetadata) -> Result<()> {
    if m.flavors.len() > MAX_FLAVORS {
        return Err(Error::invalid(
            "metadata.flavors",
            format!("at most {MAX_FLAVORS} flavors (got {})", m.flavors.len()),
        ));
    }
    for flavor in &m.flavors {
        if flavor.is_empty() || flavor.len() > MAX_NAME {
            return Err(Error::invalid(
                "metadata.flavors",
                format!("flavor {flavor:?} must be 1-{MAX_NAME} bytes"),
            ));
        }
        line("metadata.flavors", flavor)?;
    }
    if let Some(sig) = &m.signature {
        signature_fields("metadata.signature.inputs", &sig.inputs)?;
        signature_fields("metadata.signature.outputs", &sig.outputs)?;
    }
    if let Some(example) = &m.input_example {
        let size = example.to_string().len();
        let max = modelwatch_types::records::MAX_INPUT_EXAMPLE_BYTES;
        if size > max {
            return Err(Error::invalid(
                "metadata.input_example",
                format!("{size} bytes of JSON; at most {max}: keep a few rows as the example"),
            ));
        }
    }
    if let Some(env) = &m.environment {
        if let Some(python) = &env.python_version {
            line("metadata.environment.python_version", python)?;
        }
        for (field, list) in [
            ("metadata.environment.requirements", &env.requirements),
            (
                "metadata.environment.conda_dependencies",
                &env.conda_dependencies,
            ),
        ] {
            if list.len() > MAX_REQUIREMENTS {
                return Err(Error::invalid(
                    field,
                    format!("at most {MAX_REQUIREMENTS} entries (got {})", list.len()),
                ));
            }
            for entry in list {
                line(field, entry)?;
            }
        }
        if let Some(image) = &env.container_image {
            container_image(image)?;
        }
    }
    if let Some(card) = &m.model_card {
        for (field, value) in [
            ("metadata.model_card.intended_use", &card.intended_use),
            ("metadata.model_card.limitations", &card.limitations),
            ("metadata.model_card.evaluation_data", &card.evaluation_data),
            (
                "metadata.model_card.ethical_considerations",
                &card.ethical_considerations,
            ),
        ] {
            if let Some(v) = value {
                text(field, v)?;
            }
        }
    }
    Ok(())
}

fn signature_fields(field: &str, fields: &[SignatureField]) -> Result<()> {
    if fields.len() > MAX_SIGNATURE_FIELDS {
        return Err(Error::invalid(
            field,
            format!(
                "at most {MAX_SIGNATURE_FIELDS} fields (got {})",
                fields.len()
            ),
        ));
    }
    for f in fields {
        if let Some(name) = &f.name {
            if name.is_empty() || name.len() > 256 {
                return Err(Error::invalid(
                    field,
                    format!("field name {name:?} must be 1-256 bytes"),
                ));
            }
            line(field, name)?;
        }
        if let Some(dtype) = &f.dtype {
            line(field, dtype)?;
        }
    }
    Ok(())
}

/// `<image>@sha256:<64 hex>`: a tag can move, a digest cannot.
fn container_image(image: &str) -> Result<()> {
    let field = "metadata.environment.container_image";
    line(field, image)?;
    let pinned = image
        .rsplit_once('@')
        .is_some_and(|(name, d)| !name.is_empty() && digest(field, d).is_ok());
    if pinned {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{image:?} is not pinned by digest: give it as <image>@sha256:<64 hex> (docker inspect --format '{{{{index .RepoDigests 0}}}}' <image>)"
            ),
        ))
    }
}

/// Most features a version may declare.
pub const MAX_FEATURES: usize = 10_000;

/// Feature names: 1–256 bytes, not one of the reserved upload columns
/// (`ts`, `inference_id`, `prediction`, `label`), no control characters.
pub fn features(f: &Features) -> Result<()> {
    if f.len() > MAX_FEATURES {
        return Err(Error::invalid(
            "features",
            format!("at most {MAX_FEATURES} features (got {})", f.len()),
        ));
    }
    for name in f.keys() {
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "features",
                format!("feature name {name:?} must be 1-256 bytes without control characters"),
            ));
        }
        if RESERVED_COLUMNS.contains(&name.as_str()) {
            return Err(Error::invalid(
                "features",
                format!(
                    "{name:?} is a reserved upload column ({}), not a feature; rename the feature",
                    RESERVED_COLUMNS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Upload columns that are not features.
pub const RESERVED_COLUMNS: &[&str] = &["ts", "inference_id", "prediction", "label"];

pub fn lineage(l: &Lineage) -> Result<()> {
    for (i, data) in l.training_data.iter().enumerate() {
        if data.uri.is_empty() {
            return Err(Error::invalid(
                format!("lineage.training_data[{i}].uri"),
                "must not be empty",
            ));
        }
        if let Some(d) = &data.digest {
            digest(&format!("lineage.training_data[{i}].digest"), d)?;
        }
    }
    if let Some(parent) = l.parent_version {
        version_number(parent).map_err(|_| {
            Error::invalid(
                "lineage.parent_version",
                format!("{parent} is not a version number"),
            )
        })?;
    }
    for (name, value) in &l.metrics {
        if !value.is_finite() {
            return Err(Error::invalid(
                format!("lineage.metrics.{name}"),
                "metrics must be finite numbers",
            ));
        }
    }
    Ok(())
}

pub fn new_recommendation(r: &NewRecommendation) -> Result<()> {
    if r.reason.trim().is_empty() {
        return Err(Error::invalid(
            "reason",
            "say why the recommendation is raised",
        ));
    }
    text("reason", &r.reason)?;
    if !r.evidence.is_object() {
        return Err(Error::invalid("evidence", "must be a JSON object"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        for ok in ["fraud", "fraud-detector.v2", "A_1", "9lives"] {
            model_name(ok).unwrap();
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(model_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn alias_names() {
        for ok in ["production", "staging", "champion-2", "v", "vx1"] {
            alias_name(ok).unwrap();
        }
        for bad in ["latest", "v1", "V22", "1prod", "", "prod uction"] {
            assert!(alias_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn digests() {
        digest("d", &format!("sha256:{}", "a".repeat(64))).unwrap();
        for bad in [
            "sha256:abc",
            "md5:00",
            &format!("sha256:{}", "A".repeat(64)),
            "",
        ] {
            assert!(digest("d", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn lineage_rejects_non_finite_metrics_and_bad_parent() {
        let mut l = Lineage::default();
        l.metrics.insert("auc".into(), f64::NAN);
        assert!(lineage(&l).is_err());
        let l = Lineage {
            parent_version: Some(0),
            ..Default::default()
        };
        assert!(lineage(&l).is_err());
    }
}
