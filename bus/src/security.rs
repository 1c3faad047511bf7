//! Securing the bus: TLS (optionally mutual), user/password authentication and
//! an access-control list, as parts of [`BusConfig`](crate::BusConfig).
//!
//! Each part maps onto one section of Zenoh's configuration, checked here first so
//! that a mistake is reported naming the setting and the file, instead of a Zenoh
//! error deep in the session opening:
//!
//! | evospike | Zenoh |
//! |---|---|
//! | [`TlsConfig::ca`] | `transport/link/tls/root_ca_certificate` |
//! | [`TlsConfig::cert`], [`TlsConfig::key`] | `…/listen_certificate`, `…/listen_private_key`, and the same files as `…/connect_certificate`, `…/connect_private_key` |
//! | [`TlsConfig::mtls`] | `…/enable_mtls` |
//! | [`AuthConfig::user`], [`AuthConfig::password`] | `transport/auth/usrpwd/user`, `…/password` |
//! | [`AuthConfig::users_file`] | `transport/auth/usrpwd/dictionary_file` (`user:password` lines) |
//! | [`BusConfig::acl`](crate::BusConfig::acl) | `access_control` (the file holds that object, JSON) |
//!
//! One certificate per machine serves both directions: a router presents it to
//! the sessions that connect, and a session presents it to the router it connects
//! to when the router asks for client certificates (mutual TLS).
//!
//! ```
//! use evospike_bus::{BusConfig, TlsConfig};
//! let config = BusConfig {
//!     connect: vec!["tls/10.0.0.1:7447".into()],
//!     tls: Some(TlsConfig { ca: "/no/such/ca.pem".into(), ..TlsConfig::default() }),
//!     ..BusConfig::default()
//! };
//! let err = config.to_zenoh().unwrap_err().to_string();
//! assert!(err.contains("tls.ca") && err.contains("/no/such/ca.pem"), "{err}");
//! ```

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

/// TLS between sessions: certificates and keys are PEM files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate authority that signed every certificate of the cluster.
    pub ca: PathBuf,
    /// This machine's certificate (a router's server certificate, and the client
    /// certificate presented under mutual TLS).
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
    /// Mutual TLS: a router accepts only sessions that present a certificate
    /// signed by `ca`; a session presents `cert`.
    pub mtls: bool,
}

/// User/password authentication of sessions (Zenoh `usrpwd`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The user this session authenticates as.
    pub user: Option<String>,
    /// Its password.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// A cluster secret (a file) that the password is derived from when no
    /// password is given: [`derive_password`] of the secret and the user.
    pub secret_file: Option<PathBuf>,
    /// A router's (or listening peer's) dictionary of accepted users, one
    /// `user:password` per line.
    pub users_file: Option<PathBuf>,
}

impl AuthConfig {
    /// Whether anything is set.
    pub fn is_empty(&self) -> bool {
        self.user.is_none()
            && self.password.is_none()
            && self.secret_file.is_none()
            && self.users_file.is_none()
    }

    /// The password: given, or derived from the secret file.
    fn password(&self) -> Result<Option<String>, SecurityError> {
        match (&self.password, &self.secret_file, &self.user) {
            (Some(password), _, _) => Ok(Some(password.clone())),
            (None, Some(file), Some(user)) => Ok(Some(derive_password(&read_secret(file)?, user))),
            (None, Some(file), None) => Err(SecurityError::new(
                "auth.user",
                Some(file),
                "a secret file is given without a user to derive the password of",
            )),
            (None, None, _) => Ok(None),
        }
    }
}

/// Reads a cluster secret file (its bytes, surrounding whitespace trimmed; at
/// least 16 bytes).
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecurityError> {
    let bytes = std::fs::read(path).map_err(|err| {
        SecurityError::new(
            "auth.secret_file",
            Some(path),
            format!("cannot read: {err}"),
        )
    })?;
    let trimmed = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
    if trimmed.len() < 16 {
        return Err(SecurityError::new(
            "auth.secret_file",
            Some(path),
            "a cluster secret has at least 16 characters (`evospike certs` writes one)",
        ));
    }
    Ok(trimmed)
}

/// The password of `user` in a cluster with `secret`: the hex SHA-256 of the
/// secret, a zero byte and the user name. Every launcher and tool of the cluster
/// derives the same passwords from the one secret file, so no per-node password
/// has to be distributed, and a router's users file can be written from the
/// launch graph alone.
pub fn derive_password(secret: &[u8], user: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(secret);
    hash.update([0u8]);
    hash.update(user.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A security setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("bus security setting {setting}{}: {problem}", path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
pub struct SecurityError {
    /// The setting, e.g. `tls.cert` or `auth.password`.
    pub setting: &'static str,
    /// The file it names, if any.
    pub path: Option<PathBuf>,
    /// What is wrong, and what to do.
    pub problem: String,
}

impl SecurityError {
    fn new(setting: &'static str, path: Option<&Path>, problem: impl Into<String>) -> Self {
        SecurityError {
            setting,
            path: path.map(Path::to_path_buf),
            problem: problem.into(),
        }
    }
}

/// What a PEM file must hold.
#[derive(Debug, Clone, Copy)]
enum PemKind {
    Certificate,
    PrivateKey,
}

/// Reads `path` and checks that it holds at least one well-formed PEM block of
/// `kind` (markers present, body valid base64 of a DER sequence).
fn check_pem(setting: &'static str, path: &Path, kind: PemKind) -> Result<(), SecurityError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| SecurityError::new(setting, Some(path), format!("cannot read: {err}")))?;
    let (label_ok, what): (fn(&str) -> bool, &str) = match kind {
        PemKind::Certificate => (|l| l == "CERTIFICATE", "a PEM certificate"),
        PemKind::PrivateKey => (|l| l.ends_with("PRIVATE KEY"), "a PEM private key"),
    };
    let mut found = false;
    let mut rest = text.as_str();
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_start.find(&end_marker) else {
            return Err(SecurityError::new(
                setting,
                Some(path),
                format!("malformed PEM: `-----BEGIN {label}-----` has no `{end_marker}`"),
            ));
        };
        let body: String = body_start[..body_end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|err| {
                SecurityError::new(
                    setting,
                    Some(path),
                    format!("malformed PEM block {label}: {err}"),
                )
            })?;
        // Every certificate and key is a DER SEQUENCE.
        if der.first() != Some(&0x30) {
            return Err(SecurityError::new(
                setting,
                Some(path),
                format!("malformed PEM block {label}: not DER"),
            ));
        }
        found |= label_ok(label);
        rest = &body_start[body_end + end_marker.len()..];
    }
    if found {
        Ok(())
    } else {
        Err(SecurityError::new(
            setting,
            Some(path),
            format!("does not hold {what}"),
        ))
    }
}

impl TlsConfig {
    /// Checks the files and returns the Zenoh settings, `(key, JSON value)`.
    pub(crate) fn zenoh_settings(&self) -> Result<Vec<(&'static str, String)>, SecurityError> {
        check_pem("tls.ca", &self.ca, PemKind::Certificate)?;
        let mut settings = vec![
            (
                "transport/link/tls/root_ca_certificate",
                path_json(&self.ca),
            ),
            ("transport/link/tls/enable_mtls", json(&self.mtls)),
        ];
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                check_pem("tls.cert", cert, PemKind::Certificate)?;
                check_pem("tls.key", key, PemKind::PrivateKey)?;
                settings.extend([
                    ("transport/link/tls/listen_certificate", path_json(cert)),
                    ("transport/link/tls/listen_private_key", path_json(key)),
                    ("transport/link/tls/connect_certificate", path_json(cert)),
                    ("transport/link/tls/connect_private_key", path_json(key)),
                ]);
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(SecurityError::new(
                    "tls.key",
                    None,
                    "tls.cert is set but its private key is not",
                ))
            }
            (None, Some(_)) => {
                return Err(SecurityError::new(
                    "tls.cert",
                    None,
                    "tls.key is set but its certificate is not",
                ))
            }
        }
        Ok(settings)
    }
}

impl AuthConfig {
    /// Checks the settings and returns the Zenoh ones, `(key, JSON value)`.
    pub(crate) fn zenoh_settings(&self) -> Result<Vec<(&'static str, String)>, SecurityError> {
        let mut settings = Vec::new();
        match (&self.user, &self.password()?) {
            (Some(user), Some(password)) => {
                if user.is_empty() || user.contains(':') {
                    return Err(SecurityError::new(
                        "auth.user",
                        None,
                        format!("{user:?}: a user name is non-empty and has no `:`"),
                    ));
                }
                settings.push(("transport/auth/usrpwd/user", json(user)));
                settings.push(("transport/auth/usrpwd/password", json(password)));
            }
            (None, None) => {}
            (Some(user), None) => {
                return Err(SecurityError::new(
                    "auth.password",
                    None,
                    format!("user {user:?} has no password"),
                ))
            }
            (None, Some(_)) => {
                return Err(SecurityError::new(
                    "auth.user",
                    None,
                    "a password is set without a user",
                ))
            }
        }
        if let Some(file) = &self.users_file {
            check_users_file(file)?;
            settings.push(("transport/auth/usrpwd/dictionary_file", path_json(file)));
        }
        Ok(settings)
    }
}

/// A users file has one `user:password` per line (blank lines allowed).
fn check_users_file(path: &Path) -> Result<(), SecurityError> {
    let setting = "auth.users_file";
    let text = std::fs::read_to_string(path)
        .map_err(|err| SecurityError::new(setting, Some(path), format!("cannot read: {err}")))?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {}
            _ => {
                return Err(SecurityError::new(
                    setting,
                    Some(path),
                    format!("line {}: expected `user:password`", i + 1),
                ))
            }
        }
    }
    Ok(())
}

/// Reads an access-control file: a JSON object as Zenoh's `access_control` section.
pub(crate) fn read_acl(path: &Path) -> Result<String, SecurityError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| SecurityError::new("acl", Some(path), format!("cannot read: {err}")))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| SecurityError::new("acl", Some(path), format!("not JSON: {err}")))?;
    if !value.is_object() {
        return Err(SecurityError::new(
            "acl",
            Some(path),
            "expected a JSON object (Zenoh's access_control section)",
        ));
    }
    Ok(text)
}

fn path_json(path: &Path) -> String {
    json(&path.to_string_lossy())
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A syntactically valid (not cryptographically meaningful) DER sequence.
    const PEM_CERT: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
    const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n";

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn pem_files_are_checked_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let cert = file(dir.path(), "c.pem", PEM_CERT);
        let key = file(dir.path(), "k.pem", PEM_KEY);
        check_pem("tls.cert", &cert, PemKind::Certificate).unwrap();
        check_pem("tls.key", &key, PemKind::PrivateKey).unwrap();
        let err = check_pem("tls.key", &cert, PemKind::PrivateKey).unwrap_err();
        assert!(
            err.to_string().contains("does not hold a PEM private key"),
            "{err}"
        );
        let bad = file(
            dir.path(),
            "bad.pem",
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        );
        let err = check_pem("tls.key", &bad, PemKind::PrivateKey).unwrap_err();
        assert!(err.to_string().contains("malformed PEM"), "{err}");
        let cut = file(
            dir.path(),
            "cut.pem",
            "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n",
        );
        let err = check_pem("tls.key", &cut, PemKind::PrivateKey).unwrap_err();
        assert!(err.to_string().contains("has no"), "{err}");
        let err = check_pem("tls.ca", &dir.path().join("none"), PemKind::Certificate).unwrap_err();
        assert_eq!(err.setting, "tls.ca");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn half_set_pairs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = file(dir.path(), "ca.pem", PEM_CERT);
        let tls = TlsConfig {
            ca,
            cert: Some(dir.path().join("c.pem")),
            key: None,
            mtls: true,
        };
        assert_eq!(tls.zenoh_settings().unwrap_err().setting, "tls.key");
        let auth = AuthConfig {
            user: Some("layer1".into()),
            ..AuthConfig::default()
        };
        assert_eq!(auth.zenoh_settings().unwrap_err().setting, "auth.password");
    }

    #[test]
    fn passwords_derive_from_the_secret_and_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let secret = file(dir.path(), "s", "0123456789abcdef0123\n");
        let auth = AuthConfig {
            user: Some("layer1".into()),
            secret_file: Some(secret.clone()),
            ..AuthConfig::default()
        };
        let settings = auth.zenoh_settings().unwrap();
        let expected = derive_password(b"0123456789abcdef0123", "layer1");
        assert_eq!(settings[1].1, format!("\"{expected}\""));
        assert_ne!(expected, derive_password(b"0123456789abcdef0123", "layer2"));
        let short = file(dir.path(), "t", "short");
        assert!(read_secret(&short).is_err());
    }

    #[test]
    fn users_files_hold_user_password_lines() {
        let dir = tempfile::tempdir().unwrap();
        let good = file(dir.path(), "u", "a:1\n\nb:2\n");
        check_users_file(&good).unwrap();
        let bad = file(dir.path(), "v", "a:1\nb\n");
        let err = check_users_file(&bad).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn acl_files_are_json_objects() {
        let dir = tempfile::tempdir().unwrap();
        let bad = file(dir.path(), "acl.json", "[1]");
        assert!(read_acl(&bad).is_err());
        let good = file(dir.path(), "ok.json", r#"{"enabled": true}"#);
        assert!(read_acl(&good).is_ok());
    }
}
