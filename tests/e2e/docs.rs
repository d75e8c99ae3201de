//! The documentation's links: every relative Markdown link in README.md,
//! ARCHITECTURE.md, BENCHMARKS.md and docs/ must point at a file or
//! directory that exists and, when it names an `#anchor`, at a heading of the
//! target file with that GitHub anchor. Text moves between these files; a
//! link left pointing at where it used to be is a dead end for the reader.
//! README.md must also stay the short front door (the reference lives in
//! docs/).
//!
//! Only std: reading files and a little string scanning need nothing more.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// Past this README.md stops being a front door and becomes the reference
/// again.
const README_MAX_LINES: usize = 400;

/// Links to other sites are not checked: the test must not depend on the
/// network, and those pages are not ours to keep stable.
const EXTERNAL_PREFIXES: &[&str] = &["http://", "https://", "mailto:"];

#[test]
fn every_link_in_the_docs_resolves() {
    let root = repository_root();

    let readme = read(&root.join("README.md"));
    let readme_lines = readme.lines().count();
    assert!(
        readme_lines <= README_MAX_LINES,
        "README.md has {readme_lines} lines, more than {README_MAX_LINES}: \
         reference material belongs in docs/"
    );

    let mut anchors_by_file = HashMap::new();
    let mut broken = Vec::new();
    for file in documentation_files(&root) {
        let markdown = read(&file);
        for link in inline_links(&markdown) {
            if EXTERNAL_PREFIXES
                .iter()
                .any(|prefix| link.target.starts_with(prefix))
            {
                continue;
            }
            if let Err(why) = resolve(&root, &file, &link.target, &mut anchors_by_file) {
                broken.push(format!(
                    "{}: {}: {why}",
                    relative_to(&root, &file),
                    link.as_written
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s) in the documentation:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

fn repository_root() -> PathBuf {
    // This test crate lives in tests/, one level below the repository.
    PathBuf::from(crate::support::manifest_dir()).join("..")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn relative_to(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn documentation_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
        .iter()
        .map(|name| root.join(name))
        .collect();
    collect_markdown(&root.join("docs"), &mut files);
    files
}

fn collect_markdown(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    // Sorted, so the failure message lists files in a stable order.
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_markdown(&path, files);
        } else if is_markdown(&path) {
            files.push(path);
        }
    }
}

fn is_markdown(path: &Path) -> bool {
    path.extension().is_some_and(|extension| extension == "md")
}

/// Checks one link target of `file`: the path relative to the linking file's
/// folder (the file itself for `#anchor`), then the anchor among the target's
/// headings.
fn resolve(
    root: &Path,
    file: &Path,
    target: &str,
    anchors_by_file: &mut HashMap<PathBuf, BTreeSet<String>>,
) -> Result<(), String> {
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let destination = if path.is_empty() {
        file.to_path_buf()
    } else {
        file.parent().expect("a file has a folder").join(path)
    };
    let shown = relative_to(root, &destination);
    if !destination.exists() {
        return Err(format!("{shown} does not exist"));
    }
    let Some(anchor) = anchor else {
        return Ok(());
    };
    if !destination.is_file() || !is_markdown(&destination) {
        return Err(format!(
            "#{anchor} points into {shown}, which is not a Markdown file"
        ));
    }
    let anchors = anchors_by_file
        .entry(destination.clone())
        .or_insert_with(|| heading_anchors(&read(&destination)));
    if anchors.contains(anchor) {
        Ok(())
    } else {
        Err(format!("{shown} has no heading with the anchor #{anchor}"))
    }
}

/// Lines outside fenced code blocks: a `[x](y)` or a `# comment` inside an
/// example is code, neither a link nor a heading.
fn prose_lines(markdown: &str) -> impl Iterator<Item = &str> {
    let mut in_fence = false;
    markdown.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            return false;
        }
        !in_fence
    })
}

struct InlineLink {
    /// `[text](target)`, for the failure message.
    as_written: String,
    target: String,
}

/// The inline links `[text](target)` of a file. The text holds no `]` and the
/// target no `)` or whitespace, which is all these files need; a title
/// (`[text](target "title")`) or a reference-style link is not recognised.
fn inline_links(markdown: &str) -> Vec<InlineLink> {
    let mut links = Vec::new();
    for line in prose_lines(markdown) {
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            let after_open = &rest[open + 1..];
            let link_end = after_open.find(']').and_then(|close| {
                let after_text = after_open[close + 1..].strip_prefix('(')?;
                let end = after_text.find(|c: char| c == ')' || c.is_whitespace())?;
                let after_link = after_text[end..].strip_prefix(')')?;
                Some((&after_text[..end], after_link))
            });
            match link_end {
                Some((target, after_link)) => {
                    let as_written = &rest[open..rest.len() - after_link.len()];
                    links.push(InlineLink {
                        as_written: as_written.to_string(),
                        target: target.to_string(),
                    });
                    rest = after_link;
                }
                None => rest = after_open,
            }
        }
    }
    links
}

/// The anchors GitHub gives a file's ATX headings: the slug of each, and for
/// a repeated slug `-1`, `-2`, … in order.
fn heading_anchors(markdown: &str) -> BTreeSet<String> {
    let mut times_seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = BTreeSet::new();
    for line in prose_lines(markdown) {
        let level = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&level) {
            continue;
        }
        let Some(text) = line[level..].strip_prefix(' ') else {
            continue;
        };
        let slug = github_slug(without_closing_hashes(text));
        let seen = times_seen.entry(slug.clone()).or_insert(0);
        let anchor = match *seen {
            0 => slug,
            repeats => format!("{slug}-{repeats}"),
        };
        *seen += 1;
        anchors.insert(anchor);
    }
    anchors
}

/// `## Title ##` is the heading `Title`; `## C#` keeps its `#`.
fn without_closing_hashes(text: &str) -> &str {
    let text = text.trim_end();
    let without = text.trim_end_matches('#');
    if without.len() < text.len() && without.ends_with(char::is_whitespace) {
        without.trim()
    } else {
        text.trim()
    }
}

/// GitHub's heading slug: lowercase, keep only alphanumerics, spaces, `-`
/// and `_` (so backticks, dots, slashes, parentheses, colons and apostrophes
/// go), then each space becomes `-`.
fn github_slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}
