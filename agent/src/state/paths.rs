//! Lexical path resolution, as Falco does it for `fd.name`: join a relative path to the process's
//! cwd or to the directory fd it was opened against, and fold `.` and `..` without touching the
//! filesystem (the path may be gone, or belong to another mount namespace).

/// Resolves `path` against `base` (an absolute directory) and normalises the result.
pub fn resolve(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        return normalize(path);
    }
    if path.is_empty() {
        return normalize(base);
    }
    let mut joined = String::with_capacity(base.len() + 1 + path.len());
    joined.push_str(base);
    joined.push('/');
    joined.push_str(path);
    normalize(&joined)
}

/// Folds `.`, `..` and repeated slashes of an absolute path; a relative one is returned with the
/// same folding, still relative.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() && !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    if absolute { format!("/{body}") } else { body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths() {
        assert_eq!(resolve("/home/u", "notes.txt"), "/home/u/notes.txt");
        assert_eq!(resolve("/home/u", "../v/./x"), "/home/v/x");
        assert_eq!(resolve("/", "etc//passwd"), "/etc/passwd");
        assert_eq!(resolve("/tmp", "/etc/shadow"), "/etc/shadow");
        assert_eq!(resolve("/tmp", ""), "/tmp");
    }

    #[test]
    fn never_climbs_above_root() {
        assert_eq!(normalize("/../../etc"), "/etc");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("a/../../b"), "../b");
    }
}
