//! What a payload may make the load tester reach besides the allowed programs: files only under
//! `-secrets-dir` (a Concord `apiKeyPath`), and remote servers (a load's URL, an nGrinder or
//! Concord server) only on `-allowed-hosts` when it is set.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The most of a key file read.
const SECRET_LIMIT: u64 = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub struct Access {
    secrets_dir: Option<PathBuf>,
    /// Host names (`loadtest.example.com`) and suffixes (`*.example.com`), lower case.
    allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{field} names a file, and files are read only from -secrets-dir, which is not set")]
    NoSecretsDir { field: String },
    #[error("{field} {path:?} is outside -secrets-dir {dir}")]
    OutsideSecretsDir { field: String, path: String, dir: String },
    #[error("{field} {path:?} cannot be read: {reason}")]
    Unreadable {
        field: String,
        path: String,
        reason: String,
    },
    #[error("{field} {url:?} is not an http or https URL")]
    NotAUrl { field: String, url: String },
    #[error("{field} {url:?}: host {host} is not in -allowed-hosts ({allowed})")]
    HostNotAllowed {
        field: String,
        url: String,
        host: String,
        allowed: String,
    },
}

impl AccessError {
    /// Refused by the service's settings (403), rather than a malformed payload (400).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            AccessError::NoSecretsDir { .. }
                | AccessError::OutsideSecretsDir { .. }
                | AccessError::HostNotAllowed { .. }
        )
    }
}

impl Access {
    pub fn new(secrets_dir: Option<PathBuf>, allowed_hosts: Option<Vec<String>>) -> Access {
        Access {
            secrets_dir,
            allowed_hosts: allowed_hosts.map(|hosts| hosts.iter().map(|h| h.trim().to_lowercase()).collect()),
        }
    }

    /// The content of the file `path` names (relative to `-secrets-dir`, or absolute inside it),
    /// after symbolic links are resolved, so no link leads out of the directory.
    pub fn read_secret(&self, field: &str, path: &str) -> Result<String, AccessError> {
        let Some(dir) = &self.secrets_dir else {
            return Err(AccessError::NoSecretsDir { field: field.into() });
        };
        let unreadable = |reason: String| AccessError::Unreadable {
            field: field.into(),
            path: path.into(),
            reason,
        };
        let dir = dir
            .canonicalize()
            .map_err(|e| unreadable(format!("-secrets-dir {}: {e}", dir.display())))?;
        let file = dir.join(Path::new(path)).canonicalize().map_err(|e| {
            if Path::new(path).is_absolute() && !Path::new(path).starts_with(&dir) {
                outside(field, path, &dir)
            } else {
                unreadable(e.to_string())
            }
        })?;
        if !file.starts_with(&dir) {
            return Err(outside(field, path, &dir));
        }
        let mut text = String::new();
        std::fs::File::open(&file)
            .and_then(|f| f.take(SECRET_LIMIT).read_to_string(&mut text))
            .map_err(|e| unreadable(e.to_string()))?;
        Ok(text)
    }

    /// Whether the service may send requests to `url`.
    pub fn check_url(&self, field: &str, url: &str) -> Result<(), AccessError> {
        let not_a_url = || AccessError::NotAUrl {
            field: field.into(),
            url: url.into(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|_| not_a_url())?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(not_a_url());
        }
        let host = parsed.host_str().ok_or_else(not_a_url)?.to_lowercase();
        let Some(allowed) = &self.allowed_hosts else {
            return Ok(());
        };
        let matches = |pattern: &String| match pattern.strip_prefix("*.") {
            Some(suffix) => host.strip_suffix(suffix).is_some_and(|rest| rest.ends_with('.')),
            None => *pattern == host,
        };
        if allowed.iter().any(matches) {
            return Ok(());
        }
        Err(AccessError::HostNotAllowed {
            field: field.into(),
            url: url.into(),
            host,
            allowed: allowed.join(", "),
        })
    }
}

fn outside(field: &str, path: &str, dir: &Path) -> AccessError {
    AccessError::OutsideSecretsDir {
        field: field.into(),
        path: path.into(),
        dir: dir.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_come_only_from_the_secrets_dir() {
        let root = tempfile::tempdir().expect("a directory");
        let secrets = root.path().join("secrets");
        std::fs::create_dir(&secrets).expect("secrets dir");
        std::fs::write(secrets.join("concord"), "key-1\n").expect("key");
        std::fs::write(root.path().join("token"), "service-account-token").expect("outside file");
        std::os::unix::fs::symlink(root.path().join("token"), secrets.join("link")).expect("symlink");
        let access = Access::new(Some(secrets.clone()), None);
        assert_eq!(
            access.read_secret("apiKeyPath", "concord").expect("relative"),
            "key-1\n"
        );
        let absolute = secrets.join("concord").display().to_string();
        assert_eq!(
            access.read_secret("apiKeyPath", &absolute).expect("absolute inside"),
            "key-1\n"
        );
        for escape in [
            "../token".to_string(),
            "link".to_string(),
            root.path().join("token").display().to_string(),
            "/var/run/secrets/kubernetes.io/serviceaccount/token".to_string(),
            "/etc/passwd".to_string(),
        ] {
            let refused = access.read_secret("apiKeyPath", &escape);
            assert!(
                matches!(refused, Err(AccessError::OutsideSecretsDir { .. })),
                "{escape}: {refused:?}"
            );
        }
        let unset = Access::new(None, None).read_secret("apiKeyPath", "/etc/passwd");
        assert!(matches!(unset, Err(AccessError::NoSecretsDir { .. })), "{unset:?}");
    }

    #[test]
    fn hosts_are_held_to_the_list_when_there_is_one() {
        let open = Access::new(None, None);
        assert!(open.check_url("url", "http://anything.example/").is_ok());
        assert!(matches!(
            open.check_url("url", "file:///etc/passwd"),
            Err(AccessError::NotAUrl { .. })
        ));
        let listed = Access::new(
            None,
            Some(vec!["podinfo-canary.test".into(), "*.Loadtest.example".into()]),
        );
        assert!(listed.check_url("url", "http://podinfo-canary.test:9898/").is_ok());
        assert!(listed.check_url("url", "https://ngrinder.loadtest.example/").is_ok());
        for refused in [
            "http://loadtest.example/",
            "http://evil.example/",
            "http://podinfo-canary.test.evil.example/",
            "http://evilloadtest.example/",
        ] {
            assert!(
                matches!(
                    listed.check_url("url", refused),
                    Err(AccessError::HostNotAllowed { .. })
                ),
                "{refused}"
            );
        }
    }
}
