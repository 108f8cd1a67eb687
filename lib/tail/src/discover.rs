//! Discovery: include/exclude globs compiled once, and a walk from each pattern's literal prefix
//! that lists the regular files currently at matched paths (symlinks followed), each with its
//! identity. Path styles (Unix, Windows drive letters and backslashes) are in `pattern.rs`.

mod pattern;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

use self::pattern::PathStyle;
use crate::TailError;
use crate::identity::FileId;

/// A regular file at a matched path.
pub(crate) struct Found {
    pub(crate) path: PathBuf,
    pub(crate) id: FileId,
}

/// Compiled include/exclude patterns and the directories to walk.
pub(crate) struct Matcher {
    style: PathStyle,
    include: GlobSet,
    exclude: GlobSet,
    /// Walk roots with their maximum depth (`None`: unbounded, the pattern has `**`).
    roots: Vec<(PathBuf, Option<usize>)>,
}

// === impl Matcher ===

impl Matcher {
    /// Patterns in the platform's path style.
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Matcher, TailError> {
        let style = PathStyle::NATIVE;
        let mut roots: Vec<(PathBuf, Option<usize>)> = Vec::new();
        for pattern in include {
            let root = style.literal_root(pattern);
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        Ok(Matcher {
            style,
            include: build_set(include, style)?,
            exclude: build_set(exclude, style)?,
            roots,
        })
    }

    pub(crate) fn is_match(&self, path: &Path) -> bool {
        let path = self.style.match_form(path);
        self.include.is_match(&path) && !self.exclude.is_match(&path)
    }

    /// Lists the regular files at matched paths, each path once.
    pub(crate) fn scan(&self) -> Vec<Found> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for (root, depth) in &self.roots {
            let mut walk = WalkDir::new(root).follow_links(true);
            if let Some(depth) = depth {
                walk = walk.max_depth(*depth);
            }
            for entry in walk {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(error) => {
                        log_walk_error(&error);
                        continue;
                    }
                };
                let path = entry.path();
                if !self.is_match(path) || seen.contains(path) {
                    continue;
                }
                match entry.metadata() {
                    Ok(meta) if meta.is_file() => match FileId::of_found(path, &meta) {
                        Ok(id) => {
                            seen.insert(path.to_path_buf());
                            found.push(Found {
                                path: path.to_path_buf(),
                                id,
                            });
                        }
                        Err(error) => log_id_error(path, &error),
                    },
                    Ok(_) => {}
                    Err(error) => log_walk_error(&error),
                }
            }
        }
        found
    }
}

/// Checks that `pattern` compiles as the tailer compiles it (platform path style).
pub(crate) fn check_glob(pattern: &str) -> Result<(), TailError> {
    compile(pattern, PathStyle::NATIVE).map(drop)
}

fn build_set(patterns: &[String], style: PathStyle) -> Result<GlobSet, TailError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(compile(pattern, style)?);
    }
    set.build().map_err(|source| TailError::Glob {
        pattern: patterns.join(","),
        source,
    })
}

fn compile(pattern: &str, style: PathStyle) -> Result<globset::Glob, TailError> {
    style.compile(pattern).map_err(|source| TailError::Glob {
        pattern: pattern.to_owned(),
        source,
    })
}

fn log_walk_error(error: &walkdir::Error) {
    let not_found = error
        .io_error()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    if not_found {
        tracing::debug!(error = %error, "Glob root or entry vanished during scan.");
    } else {
        tracing::warn!(error = %error, "Cannot scan path for files.");
    }
}

/// A file that vanished between listing and identifying is normal churn; anything else is not.
fn log_id_error(path: &Path, error: &std::io::Error) {
    if error.kind() == std::io::ErrorKind::NotFound {
        tracing::debug!(path = %path.display(), %error, "File vanished during scan.");
    } else {
        tracing::warn!(path = %path.display(), %error, "Cannot read the identity of a file.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_honours_include_exclude_and_depth() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).expect("mkdir");
        for name in ["x.log", "y.txt", "skip.log", "a/b/deep.log"] {
            std::fs::write(dir.path().join(name), b"1\n").expect("write");
        }
        let base = dir.path().display();
        let include = vec![format!("{base}/*.log"), format!("{base}/**/deep.log")];
        let exclude = vec![format!("{base}/skip.log")];
        let matcher = Matcher::new(&include, &exclude).expect("valid globs");
        let mut names: Vec<_> = matcher.scan().into_iter().map(|f| f.path).collect();
        names.sort();
        assert_eq!(
            names,
            vec![dir.path().join("a/b/deep.log"), dir.path().join("x.log")]
        );
    }
}
