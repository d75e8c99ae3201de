//! Writing the dashboards and provisioning files into a directory, with the
//! provisioning filled in for the user's Prometheus, modelwatch and Grafana
//! paths. It refuses to overwrite unless told to, and checks every target
//! before writing any, so a refused export leaves the directory as it was.

use std::path::{Path, PathBuf};

use crate::{DASHBOARDS_DIR, DATASOURCES_PATH, Error, PROVIDER_PATH, Result, files};

/// The values the embedded provisioning files carry, each exactly once, and
/// which [`ExportOptions`] replaces.
pub(crate) const DEFAULT_PROMETHEUS_URL: &str = "url: http://127.0.0.1:9090";
pub(crate) const DEFAULT_POSTGRES_HOST: &str = "url: 127.0.0.1:5433";
pub(crate) const DEFAULT_DASHBOARDS_PATH: &str = "path: /var/lib/grafana/dashboards/modelwatch";

/// How the exported provisioning should point Grafana at things.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// URL of the Prometheus server that scrapes modelwatch (default
    /// `http://127.0.0.1:9090`).
    pub prometheus_url: Option<String>,
    /// `host:port` of modelwatch's PostgreSQL listener (default
    /// `127.0.0.1:5433`).
    pub postgres_host: Option<String>,
    /// Where Grafana will find the dashboard files, when it sees them at
    /// another path than the export (a container's mount point). Default:
    /// the absolute path of `DIR/grafana`.
    pub grafana_path: Option<String>,
    /// Overwrite files that exist.
    pub force: bool,
}

/// Writes every dashboard and provisioning file under `dir` (created if
/// missing) and returns the paths written, in order.
pub fn export(dir: &Path, options: &ExportOptions) -> Result<Vec<PathBuf>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    if !options.force {
        let existing: Vec<String> = files()
            .filter(|f| dir.join(f.path).exists())
            .map(|f| f.path.to_string())
            .collect();
        if !existing.is_empty() {
            return Err(Error::Exists {
                dir: dir.to_path_buf(),
                paths: existing,
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let grafana_path = match &options.grafana_path {
        Some(p) => p.clone(),
        None => std::path::absolute(dir.join(DASHBOARDS_DIR))
            .map_err(io(dir))?
            .display()
            .to_string(),
    };
    let mut written = Vec::new();
    for file in files() {
        let contents = match file.path {
            DATASOURCES_PATH => {
                let mut text = file.contents.to_string();
                if let Some(url) = &options.prometheus_url {
                    text = text.replace(DEFAULT_PROMETHEUS_URL, &format!("url: {url}"));
                }
                if let Some(host) = &options.postgres_host {
                    text = text.replace(DEFAULT_POSTGRES_HOST, &format!("url: {host}"));
                }
                text
            }
            PROVIDER_PATH => file
                .contents
                .replace(DEFAULT_DASHBOARDS_PATH, &format!("path: {grafana_path}")),
            _ => file.contents.to_string(),
        };
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, contents).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PROVISIONING;

    #[test]
    fn each_replaced_default_is_in_its_file_exactly_once() {
        let text = |p: &str| PROVISIONING.iter().find(|f| f.path == p).unwrap().contents;
        for (file, default) in [
            (DATASOURCES_PATH, DEFAULT_PROMETHEUS_URL),
            (DATASOURCES_PATH, DEFAULT_POSTGRES_HOST),
            (PROVIDER_PATH, DEFAULT_DASHBOARDS_PATH),
        ] {
            assert_eq!(
                text(file).matches(default).count(),
                1,
                "{default} in {file}"
            );
        }
    }

    #[test]
    fn the_datasources_take_the_token_from_the_environment() {
        let ds = PROVISIONING
            .iter()
            .find(|f| f.path == DATASOURCES_PATH)
            .unwrap()
            .contents;
        for want in [
            "type: prometheus",
            "type: grafana-postgresql-datasource",
            "database: modelwatch",
            "password: $MODELWATCH_TOKEN",
            "sslmode: disable",
        ] {
            assert!(ds.contains(want), "{want}");
        }
    }

    #[test]
    fn exports_fills_in_the_options_and_refuses_to_overwrite() {
        let dir =
            std::env::temp_dir().join(format!("modelwatch-dashboards-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = ExportOptions {
            prometheus_url: Some("http://prom:9090".into()),
            postgres_host: Some("modelwatch:5433".into()),
            grafana_path: Some("/etc/dashboards/modelwatch".into()),
            force: false,
        };
        let written = export(&dir, &options).unwrap();
        assert_eq!(written.len(), files().count());
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
        let ds = read(DATASOURCES_PATH);
        assert!(ds.contains("url: http://prom:9090") && ds.contains("url: modelwatch:5433"));
        assert!(read(PROVIDER_PATH).contains("path: /etc/dashboards/modelwatch"));
        for f in crate::DASHBOARDS {
            assert_eq!(read(f.path), f.contents);
        }

        std::fs::write(dir.join(DATASOURCES_PATH), "mine").unwrap();
        let err = export(&dir, &ExportOptions::default()).unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            read(DATASOURCES_PATH),
            "mine",
            "a refused export writes nothing"
        );

        let forced = ExportOptions {
            force: true,
            ..Default::default()
        };
        export(&dir, &forced).unwrap();
        assert!(read(DATASOURCES_PATH).contains(DEFAULT_PROMETHEUS_URL));
        let absolute = std::path::absolute(dir.join(DASHBOARDS_DIR)).unwrap();
        assert!(read(PROVIDER_PATH).contains(&format!("path: {}", absolute.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
