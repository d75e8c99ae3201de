//! The parts of the version page a reviewer reads before a promotion: the
//! model card, the format and signature, the environment, and the files
//! with their digests. Markup only; the version page gathers the data.

use maud::{Markup, html};

use modelwatch_registry::{ModelMetadata, SignatureField};
use modelwatch_types::records::DataType;

use crate::artifacts::{FilesState, VersionFiles};
use crate::ui::layout;

/// Most files listed on the page; the rest are counted.
const FILES_SHOWN: usize = 200;

pub fn model_card(m: &ModelMetadata) -> Markup {
    let Some(card) = &m.model_card else {
        return html! { p.empty #model-card { "No model card: set one with "
        code { "modelwatch versions update MODEL VERSION --model-card card.yaml" } "." } };
    };
    let sections = [
        ("Intended use", &card.intended_use),
        ("Limitations", &card.limitations),
        ("Evaluation data", &card.evaluation_data),
        ("Ethical considerations", &card.ethical_considerations),
    ];
    html! {
        dl.summary #model-card {
            @for (title, text) in sections {
                dt { (title) }
                dd { @match text { Some(t) if !t.is_empty() => { (t) }, _ => { span.empty { "not stated" } } } }
            }
        }
    }
}

pub fn format_and_signature(m: &ModelMetadata) -> Markup {
    html! {
        dl.summary #format {
            dt { "flavors" }
            dd { @if m.flavors.is_empty() { "—" } @for f in &m.flavors { span.alias { (f) } " " } }
        }
        @match &m.signature {
            None => { p.empty #signature { "No signature." } }
            Some(sig) => {
                div.two #signature {
                    (fields("Inputs", &sig.inputs))
                    (fields("Outputs", &sig.outputs))
                }
            }
        }
        @if let Some(example) = &m.input_example {
            details #input-example { summary { "Input example" } (layout::json_block(example)) }
        }
    }
}

fn fields(caption: &str, fields: &[SignatureField]) -> Markup {
    html! {
        table {
            caption { (caption) }
            @if fields.is_empty() { tr { td.empty { "none" } } }
            @for f in fields {
                tr {
                    th { (f.name.as_deref().unwrap_or("(tensor)")) }
                    td { (type_text(f)) @if !f.required { " " span.k { "optional" } } }
                }
            }
        }
    }
}

fn type_text(f: &SignatureField) -> String {
    let name = serde_json::to_value(f.data_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match (f.data_type, &f.dtype, &f.shape) {
        (DataType::Tensor, Some(dtype), Some(shape)) => format!("tensor {dtype} {shape:?}"),
        (DataType::Tensor, Some(dtype), None) => format!("tensor {dtype}"),
        _ => name,
    }
}

pub fn environment(m: &ModelMetadata) -> Markup {
    let Some(env) = &m.environment else {
        return html! { p.empty #environment { "No environment recorded." } };
    };
    html! {
        dl.summary #environment {
            dt { "python" } dd { (env.python_version.as_deref().unwrap_or("—")) }
            dt { "container image" } dd { @match &env.container_image { Some(i) => { code { (i) } }, None => { "—" } } }
            dt { "requirements" }
            dd { @if env.requirements.is_empty() { "—" } ul { @for r in &env.requirements { li { code { (r) } } } } }
            @if !env.conda_dependencies.is_empty() {
                dt { "conda" }
                dd { ul { @for r in &env.conda_dependencies { li { code { (r) } } } } }
            }
        }
    }
}

pub fn files(files: &VersionFiles) -> Markup {
    let state = files.state.api().as_str();
    let total = files.manifest.total_bytes();
    html! {
        p #files-state {
            "Files " strong { (state) } ": " (files.manifest.files.len()) " files, "
            (human_bytes(total))
            @if files.state == FilesState::External { " (stored outside modelwatch)" }
        }
        @if !files.manifest.files.is_empty() {
            table #files {
                tr { th { "path" } th.num { "size" } th { "sha256" } }
                @for (path, entry) in files.manifest.files.iter().take(FILES_SHOWN) {
                    tr { td { code { (path) } } td.num { (human_bytes(entry.size)) } td { code.digest { (entry.sha256) } } }
                }
            }
            @if files.manifest.files.len() > FILES_SHOWN {
                p.empty { (files.manifest.files.len() - FILES_SHOWN) " more: "
                    code { "modelwatch artifacts ls" } }
            }
        }
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_registry::{ModelCard, Signature};

    #[test]
    fn a_card_shows_each_section_and_says_what_is_missing() {
        let m = ModelMetadata {
            model_card: Some(ModelCard {
                intended_use: Some("scoring card payments".into()),
                ..Default::default()
            }),
            signature: Some(Signature {
                inputs: vec![SignatureField {
                    name: None,
                    data_type: DataType::Tensor,
                    required: true,
                    dtype: Some("float64".into()),
                    shape: Some(vec![-1, 4]),
                }],
                outputs: vec![],
            }),
            ..Default::default()
        };
        let card = model_card(&m).into_string();
        assert!(card.contains("scoring card payments"));
        assert_eq!(card.matches("not stated").count(), 3);
        assert!(
            model_card(&ModelMetadata::default())
                .into_string()
                .contains("No model card")
        );
        let sig = format_and_signature(&m).into_string();
        assert!(sig.contains("tensor float64 [-1, 4]"), "{sig}");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
    }
}
