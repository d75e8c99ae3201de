//! Reading the metadata of a set of files from the store: the `MLmodel`
//! at their root and the companions it names, each read in full only
//! when it is small (the rules are in [`crate::mlmodel`]).

use futures::TryStreamExt;

use crate::Result;
use crate::manifest::Manifest;
use crate::mlmodel::{Described, MAX_DESCRIPTION_FILE_BYTES, MLMODEL_FILE, MlModel};
use crate::store::ArtifactStore;

impl ArtifactStore {
    /// What the files of `manifest` say about themselves: nothing when
    /// there is no `MLmodel` at their root. An `MLmodel` too large or not
    /// YAML is reported in [`Described::skipped`]; a stored file that fails
    /// verification is an error (the store is damaged).
    pub async fn describe(&self, manifest: &Manifest) -> Result<Described> {
        if let Some(entry) = manifest.files.get(MLMODEL_FILE)
            && entry.size > MAX_DESCRIPTION_FILE_BYTES
        {
            return Ok(Described {
                skipped: vec![format!(
                    "{MLMODEL_FILE} is {} bytes, more than the {MAX_DESCRIPTION_FILE_BYTES} read",
                    entry.size
                )],
                ..Default::default()
            });
        }
        let Some(text) = self.small_file(manifest, MLMODEL_FILE).await? else {
            return Ok(Described::default());
        };
        let model = match MlModel::parse(&String::from_utf8_lossy(&text)) {
            Ok(m) => m,
            Err(why) => {
                return Ok(Described {
                    skipped: vec![why],
                    ..Default::default()
                });
            }
        };
        let mut companions = Vec::new();
        for path in model.companions() {
            if let Some(bytes) = self.small_file(manifest, &path).await? {
                companions.push((path, bytes));
            }
        }
        Ok(model.describe(|path| {
            companions
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, b)| b.clone())
        }))
    }

    /// A file's bytes when the manifest has it and it is at most
    /// [`MAX_DESCRIPTION_FILE_BYTES`].
    async fn small_file(&self, manifest: &Manifest, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(entry) = manifest.files.get(path) else {
            return Ok(None);
        };
        if entry.size > MAX_DESCRIPTION_FILE_BYTES {
            return Ok(None);
        }
        let chunks: Vec<bytes::Bytes> = self.open(entry).await?.try_collect().await?;
        Ok(Some(chunks.concat()))
    }
}
