//! Discovery: include/exclude globs compiled once, and a walk from each pattern's literal prefix
//! that lists the regular files currently at matched paths (symlinks followed).

use std::collections::HashSet;
use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

use crate::TailError;

/// A regular file at a matched path.
pub(crate) struct Found {
    pub(crate) path: PathBuf,
    pub(crate) meta: Metadata,
}

/// Compiled include/exclude patterns and the directories to walk.
pub(crate) struct Matcher {
    include: GlobSet,
    exclude: GlobSet,
    /// Walk roots with their maximum depth (`None`: unbounded, the pattern has `**`).
    roots: Vec<(PathBuf, Option<usize>)>,
}

// === impl Matcher ===

impl Matcher {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Matcher, TailError> {
        let mut roots: Vec<(PathBuf, Option<usize>)> = Vec::new();
        for pattern in include {
            let root = literal_root(pattern);
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        Ok(Matcher {
            include: build_set(include)?,
            exclude: build_set(exclude)?,
            roots,
        })
    }

    pub(crate) fn is_match(&self, path: &Path) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
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
                    Ok(meta) if meta.is_file() => {
                        seen.insert(path.to_path_buf());
                        found.push(Found {
                            path: path.to_path_buf(),
                            meta,
                        });
                    }
                    Ok(_) => {}
                    Err(error) => log_walk_error(&error),
                }
            }
        }
        found
    }
}

fn build_set(patterns: &[String]) -> Result<GlobSet, TailError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(compile(pattern)?);
    }
    set.build().map_err(|source| TailError::Glob {
        pattern: patterns.join(","),
        source,
    })
}

fn compile(pattern: &str) -> Result<Glob, TailError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|source| TailError::Glob {
            pattern: pattern.to_owned(),
            source,
        })
}

/// The directory to walk for `pattern` (its components before the first glob metacharacter) and
/// how deep to walk.
fn literal_root(pattern: &str) -> (PathBuf, Option<usize>) {
    let mut root = PathBuf::new();
    let mut rest = Vec::new();
    for component in Path::new(pattern).components() {
        let text = component.as_os_str().to_string_lossy();
        let is_glob = text.contains(['*', '?', '[', '{']);
        if rest.is_empty() && !is_glob {
            root.push(component);
        } else {
            rest.push(component);
        }
    }
    if root.as_os_str().is_empty() {
        root.push(Component::CurDir);
    }
    let unbounded = rest
        .iter()
        .any(|c| c.as_os_str().to_string_lossy().contains("**"));
    (root, if unbounded { None } else { Some(rest.len()) })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_roots_and_depths() {
        assert_eq!(
            literal_root("/var/log/*.log"),
            (PathBuf::from("/var/log"), Some(1))
        );
        assert_eq!(
            literal_root("/var/log/**/*.log"),
            (PathBuf::from("/var/log"), None)
        );
        assert_eq!(
            literal_root("/var/*/app/*.log"),
            (PathBuf::from("/var"), Some(3))
        );
        assert_eq!(
            literal_root("/var/log/syslog"),
            (PathBuf::from("/var/log/syslog"), Some(0))
        );
    }

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
