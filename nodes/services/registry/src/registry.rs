//! The registry's rules over a [`Store`] and a [`BlobStore`].
//!
//! A model has versions. A version is registered `pending`; files are uploaded
//! to it (each one a blob, named by the client); finalizing it checks the files
//! and makes it `ready` — or `failed`, saying why. A ready or failed version
//! never changes again. Only ready versions are listed and served. Aliases
//! (`production`, `staging`, …) point at ready versions and can be moved.
//!
//! Changes are serialized by one lock and each is one atomic store batch.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::blobs::{BlobError, BlobStore, Stored};
use crate::store::{self, Store, StoreError, Write};

/// The body of `POST /models/register`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The model's ID (letters, digits, `.`, `_`, `-`).
    pub model_id: String,
    /// A human-readable name.
    pub name: String,
    /// The version to register (same characters as an ID).
    pub version: String,
    /// What kind of model (`vision`, `snn`, …).
    #[serde(default)]
    pub model_type: Option<String>,
    /// What made it (`evospike`, `pytorch`, …).
    #[serde(default)]
    pub framework: Option<String>,
    /// When the client says it was created (free text, e.g. RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Free-form description.
    #[serde(default)]
    pub description: Option<String>,
    /// Free-form metadata (metrics, provenance, …).
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Where a version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Registered; files may be uploaded.
    Pending,
    /// Finalized and checked; immutable, listed and served.
    Ready,
    /// Finalizing found a problem; immutable, never served.
    Failed,
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FileRecord {
    /// Its sha256 (hex), which is also its blob's name.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A version as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct VersionRecord {
    /// The model.
    pub model_id: String,
    /// The version.
    pub version: String,
    /// Its state.
    pub state: VersionState,
    /// What was registered.
    pub name: String,
    /// See [`RegisterRequest::model_type`].
    pub model_type: Option<String>,
    /// See [`RegisterRequest::framework`].
    pub framework: Option<String>,
    /// See [`RegisterRequest::created_at`].
    pub created_at: Option<String>,
    /// See [`RegisterRequest::description`].
    pub description: Option<String>,
    /// See [`RegisterRequest::metadata`].
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// When the registry registered it (Unix seconds).
    pub registered_at: u64,
    /// Order of registration within the model (0, 1, …).
    pub seq: u64,
    /// Its files by name.
    pub files: BTreeMap<String, FileRecord>,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VersionRecord {
    fn same_registration(&self, req: &RegisterRequest) -> bool {
        self.name == req.name
            && self.model_type == req.model_type
            && self.framework == req.framework
            && self.created_at == req.created_at
            && self.description == req.description
            && self.metadata == req.metadata
    }
}

/// A model as `GET /models/{model_id}` shows it: its ready versions only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelView {
    /// The model.
    pub model_id: String,
    /// The name of its latest version.
    pub name: String,
    /// The latest ready version, if any.
    pub latest: Option<String>,
    /// Ready versions, oldest first.
    pub versions: Vec<VersionRecord>,
    /// Aliases → versions.
    pub aliases: BTreeMap<String, String>,
}

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// No such model, version, alias or file.
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A stored record does not parse.
    #[error("stored record {key} is corrupt")]
    Corrupt {
        /// Its key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Checks an ID, version, alias or file name: 1–128 of `A-Z a-z 0-9 . _ -`,
/// not starting with `.`.
pub fn check_name(what: &str, value: &str) -> Result<(), RegistryError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{what} `{value}` must be 1-128 letters, digits, `.`, `_` or `-`, not starting with `.`"
        )))
    }
}

/// The registry.
pub struct Registry {
    store: Box<dyn Store>,
    blobs: BlobStore,
    writes: Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("blobs", &self.blobs)
            .finish()
    }
}

fn version_key(model_id: &str, version: &str) -> String {
    format!("{model_id}/{version}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Registry {
    /// A registry over `store` and `blobs`.
    pub fn new(store: Box<dyn Store>, blobs: BlobStore) -> Registry {
        Registry {
            store,
            blobs,
            writes: Mutex::new(()),
        }
    }

    /// Opens the registry kept in `data_dir` (`state.redb` and `blobs/`).
    ///
    /// # Errors
    /// The directory, the store or the blob store cannot be opened.
    pub fn open(data_dir: &Path) -> Result<Registry, RegistryError> {
        std::fs::create_dir_all(data_dir).map_err(|source| BlobError::Io {
            action: "create",
            path: data_dir.to_owned(),
            source,
        })?;
        let store = store::RedbStore::open(&data_dir.join("state.redb"), &store::TABLES)?;
        let blobs = BlobStore::open(data_dir)?;
        let registry = Registry::new(Box::new(store), blobs);
        let removed = registry.collect_garbage()?;
        if removed > 0 {
            tracing::info!(removed, "removed files no version refers to");
        }
        Ok(registry)
    }

    /// Removes the blobs no version refers to — a file replaced while its version
    /// was pending, or one stored just before a crash, before its version recorded
    /// it — and returns how many. Run at start, while no upload is in progress.
    ///
    /// # Errors
    /// The store or the blob directory cannot be read, or a blob removed.
    pub fn collect_garbage(&self) -> Result<usize, RegistryError> {
        let _guard = self.lock();
        let mut referenced = std::collections::BTreeSet::new();
        for (key, bytes) in self.store.scan(store::VERSIONS, "")? {
            let record: VersionRecord = parse(&key, &bytes)?;
            referenced.extend(record.files.into_values().map(|f| f.sha256));
        }
        let mut removed = 0;
        for hash in self.blobs.hashes()? {
            if !referenced.contains(&hash) {
                self.blobs.remove(&hash)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new pending version. Registering the same version again with
    /// the same fields is a no-op (`Ok((record, false))`); with other fields it
    /// is a conflict.
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] for a bad ID or version,
    /// [`RegistryError::Conflict`] as above.
    pub fn register(&self, req: RegisterRequest) -> Result<(VersionRecord, bool), RegistryError> {
        check_name("model_id", &req.model_id)?;
        check_name("version", &req.version)?;
        if req.name.trim().is_empty() {
            return Err(RegistryError::Invalid("name must not be empty".into()));
        }
        let _guard = self.lock();
        if let Some(existing) = self.version(&req.model_id, &req.version)? {
            return if existing.same_registration(&req) {
                Ok((existing, false))
            } else {
                Err(RegistryError::Conflict(format!(
                    "model {} version {} is already registered with other fields",
                    req.model_id, req.version
                )))
            };
        }
        let seq = self.versions(&req.model_id)?.len() as u64;
        let record = VersionRecord {
            model_id: req.model_id.clone(),
            version: req.version.clone(),
            state: VersionState::Pending,
            name: req.name,
            model_type: req.model_type,
            framework: req.framework,
            created_at: req.created_at,
            description: req.description,
            metadata: req.metadata,
            registered_at: now(),
            seq,
            files: BTreeMap::new(),
            error: None,
        };
        let mut batch = vec![self.put_version(&record)];
        if self.store.get(store::MODELS, &req.model_id)?.is_none() {
            let model = serde_json::json!({ "model_id": req.model_id, "registered_at": now() });
            batch.push(Write::Put(
                store::MODELS,
                req.model_id.clone(),
                model.to_string().into_bytes(),
            ));
        }
        self.store.write(batch)?;
        Ok((record, true))
    }

    fn put_version(&self, record: &VersionRecord) -> Write {
        Write::Put(
            store::VERSIONS,
            version_key(&record.model_id, &record.version),
            serde_json::to_vec(record).unwrap_or_default(),
        )
    }

    /// Whether model `model_id` exists.
    pub fn has_model(&self, model_id: &str) -> Result<bool, RegistryError> {
        Ok(self.store.get(store::MODELS, model_id)?.is_some())
    }

    /// Version `version` of `model_id`, in any state.
    pub fn version(
        &self,
        model_id: &str,
        version: &str,
    ) -> Result<Option<VersionRecord>, RegistryError> {
        let key = version_key(model_id, version);
        self.store
            .get(store::VERSIONS, &key)?
            .map(|bytes| parse(&key, &bytes))
            .transpose()
    }

    /// Every version of `model_id`, in registration order.
    pub fn versions(&self, model_id: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let mut versions = self
            .store
            .scan(store::VERSIONS, &format!("{model_id}/"))?
            .into_iter()
            .map(|(key, bytes)| parse::<VersionRecord>(&key, &bytes))
            .collect::<Result<Vec<_>, _>>()?;
        versions.sort_by_key(|v| v.seq);
        Ok(versions)
    }

    /// The version `model_id` must have in `state`, or why not.
    fn version_in(&self, model_id: &str, version: &str) -> Result<VersionRecord, RegistryError> {
        if !self.has_model(model_id)? {
            return Err(RegistryError::NotFound(format!("no model {model_id}")));
        }
        self.version(model_id, version)?.ok_or_else(|| {
            RegistryError::NotFound(format!("model {model_id} has no version {version}"))
        })
    }

    /// Adds file `filename` (already stored as a blob) to a pending version,
    /// replacing a file of that name.
    ///
    /// # Errors
    /// Unknown model or version (not found); the version is not pending (conflict).
    pub fn attach(
        &self,
        model_id: &str,
        version: &str,
        filename: &str,
        blob: &Stored,
    ) -> Result<VersionRecord, RegistryError> {
        let _guard = self.lock();
        let mut record = self.version_in(model_id, version)?;
        if record.state != VersionState::Pending {
            return Err(immutable(&record));
        }
        record.files.insert(
            filename.to_owned(),
            FileRecord {
                sha256: blob.sha256.clone(),
                size: blob.size,
            },
        );
        self.store.write(vec![self.put_version(&record)])?;
        Ok(record)
    }

    /// Checks that an upload may go to this version (before its body is read).
    ///
    /// # Errors
    /// As [`Registry::attach`].
    pub fn check_upload(&self, model_id: &str, version: &str) -> Result<(), RegistryError> {
        let record = self.version_in(model_id, version)?;
        if record.state != VersionState::Pending {
            return Err(immutable(&record));
        }
        Ok(())
    }

    /// Finalizes a pending version: `ready` when its files check out, `failed`
    /// (with the reason) otherwise. A model's files (`model.json` and
    /// `weights.safetensors`) must load as an evospike model.
    ///
    /// # Errors
    /// Unknown model or version (not found); the version is not pending (conflict).
    pub fn finalize(&self, model_id: &str, version: &str) -> Result<VersionRecord, RegistryError> {
        let _guard = self.lock();
        let mut record = self.version_in(model_id, version)?;
        if record.state != VersionState::Pending {
            return Err(immutable(&record));
        }
        match self.check_files(&record) {
            Ok(()) => record.state = VersionState::Ready,
            Err(problem) => {
                record.state = VersionState::Failed;
                record.error = Some(problem);
            }
        }
        self.store.write(vec![self.put_version(&record)])?;
        Ok(record)
    }

    fn check_files(&self, record: &VersionRecord) -> Result<(), String> {
        use evospike_learning::model::{Model, MANIFEST_FILE, WEIGHTS_FILE};
        if record.files.is_empty() {
            return Err("no file was uploaded".into());
        }
        let manifest = record.files.get(MANIFEST_FILE);
        let weights = record.files.get(WEIGHTS_FILE);
        let evospike = record.framework.as_deref() == Some("evospike");
        if manifest.is_none() && weights.is_none() && !evospike {
            return Ok(());
        }
        let (Some(manifest), Some(weights)) = (manifest, weights) else {
            return Err(format!(
                "an evospike model needs both {MANIFEST_FILE} and {WEIGHTS_FILE}"
            ));
        };
        let dir = self
            .blobs
            .tmp_dir()
            .join(format!("check-{:016x}", rand::random::<u64>()));
        let result = (|| {
            std::fs::create_dir(&dir).map_err(|e| format!("cannot check the model: {e}"))?;
            for (name, file) in [(MANIFEST_FILE, manifest), (WEIGHTS_FILE, weights)] {
                let blob = self.blobs.path(&file.sha256);
                std::fs::hard_link(&blob, dir.join(name))
                    .or_else(|_| std::fs::copy(&blob, dir.join(name)).map(drop))
                    .map_err(|e| format!("cannot check the model: {e}"))?;
            }
            Model::load(&dir).map(drop).map_err(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    let s_text = s.to_string();
                    if !text.contains(&s_text) {
                        text.push_str(&format!(": {s_text}"));
                    }
                    source = s.source();
                }
                // Name the files as the client uploaded them, not our scratch copy.
                let scratch = format!("{}{}", dir.display(), std::path::MAIN_SEPARATOR);
                format!("the model does not load: {}", text.replace(&scratch, ""))
            })
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// Points `alias` of `model_id` at a ready version.
    ///
    /// # Errors
    /// Unknown model or version (not found); the version is not ready (conflict).
    pub fn set_alias(
        &self,
        model_id: &str,
        alias: &str,
        version: &str,
    ) -> Result<(), RegistryError> {
        check_name("alias", alias)?;
        let _guard = self.lock();
        let record = self.version_in(model_id, version)?;
        if record.state != VersionState::Ready {
            return Err(RegistryError::Conflict(format!(
                "model {model_id} version {version} is {}, and an alias may only name a ready version",
                state_name(record.state)
            )));
        }
        self.store.write(vec![Write::Put(
            store::ALIASES,
            version_key(model_id, alias),
            version.as_bytes().to_vec(),
        )])?;
        Ok(())
    }

    /// The aliases of `model_id`.
    pub fn aliases(&self, model_id: &str) -> Result<BTreeMap<String, String>, RegistryError> {
        let prefix = format!("{model_id}/");
        Ok(self
            .store
            .scan(store::ALIASES, &prefix)?
            .into_iter()
            .map(|(key, value)| {
                (
                    key[prefix.len()..].to_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                )
            })
            .collect())
    }

    /// Model `model_id` with its ready versions.
    ///
    /// # Errors
    /// Unknown model (not found).
    pub fn model(&self, model_id: &str) -> Result<ModelView, RegistryError> {
        if !self.has_model(model_id)? {
            return Err(RegistryError::NotFound(format!("no model {model_id}")));
        }
        let all = self.versions(model_id)?;
        let name = all.last().map(|v| v.name.clone()).unwrap_or_default();
        let versions: Vec<_> = all
            .into_iter()
            .filter(|v| v.state == VersionState::Ready)
            .collect();
        Ok(ModelView {
            model_id: model_id.to_owned(),
            name,
            latest: versions.last().map(|v| v.version.clone()),
            versions,
            aliases: self.aliases(model_id)?,
        })
    }

    /// Every model that has a ready version.
    pub fn models(&self) -> Result<Vec<ModelView>, RegistryError> {
        let mut out = Vec::new();
        for (model_id, _) in self.store.scan(store::MODELS, "")? {
            let view = self.model(&model_id)?;
            if !view.versions.is_empty() {
                out.push(view);
            }
        }
        Ok(out)
    }

    /// The ready version a download asks for: `version`, else `alias`, else the
    /// latest ready one.
    ///
    /// # Errors
    /// Unknown model, version or alias, or no ready version (not found).
    pub fn resolve(
        &self,
        model_id: &str,
        version: Option<&str>,
        alias: Option<&str>,
    ) -> Result<VersionRecord, RegistryError> {
        let view = self.model(model_id)?;
        let wanted = match (version, alias) {
            (Some(v), _) => Some(v.to_owned()),
            (None, Some(a)) => Some(view.aliases.get(a).cloned().ok_or_else(|| {
                RegistryError::NotFound(format!("model {model_id} has no alias {a}"))
            })?),
            (None, None) => None,
        };
        match wanted {
            Some(v) => view.versions.into_iter().find(|r| r.version == v).ok_or_else(|| {
                RegistryError::NotFound(format!("model {model_id} has no ready version {v}"))
            }),
            None => view.versions.into_iter().last().ok_or_else(|| {
                RegistryError::NotFound(format!(
                    "model {model_id} has no ready version yet (upload its files, then finalize a version)"
                ))
            }),
        }
    }

    /// Counts for the metrics: (models, ready versions).
    pub fn counts(&self) -> Result<(usize, usize), RegistryError> {
        let models = self.models()?;
        let versions = models.iter().map(|m| m.versions.len()).sum();
        Ok((models.len(), versions))
    }
}

fn state_name(state: VersionState) -> &'static str {
    match state {
        VersionState::Pending => "pending",
        VersionState::Ready => "ready",
        VersionState::Failed => "failed",
    }
}

fn immutable(record: &VersionRecord) -> RegistryError {
    RegistryError::Conflict(format!(
        "model {} version {} is {} and can no longer change; register a new version",
        record.model_id,
        record.version,
        state_name(record.state)
    ))
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|source| RegistryError::Corrupt {
        key: key.to_owned(),
        source,
    })
}
