//! A folder standing in for an S3 bucket: keys are relative paths. A key prefix can be
//! mounted on another folder (the embedded bus reads its input from one).

use async_trait::async_trait;
use busline_core::PortError;
use busline_core::ports::{ObjectInfo, ObjectReader, ObjectStore};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An object store on the local file system.
#[derive(Debug, Clone)]
pub struct FolderStore {
    bucket: String,
    root: PathBuf,
    mounts: Vec<(String, PathBuf)>,
}

static PARTIAL_SEQ: AtomicU64 = AtomicU64::new(0);

impl FolderStore {
    /// A store named `bucket` whose keys are paths under `root`.
    pub fn new(bucket: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        FolderStore {
            bucket: bucket.into(),
            root: root.into(),
            mounts: Vec::new(),
        }
    }

    /// Serves keys starting with `prefix` (which must end in `/`) from `folder`.
    pub fn mount(mut self, prefix: impl Into<String>, folder: impl Into<PathBuf>) -> Self {
        self.mounts.push((prefix.into(), folder.into()));
        // Longest prefix first, so nested mounts win.
        self.mounts
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }

    /// The folder and key prefix that serve `key`.
    fn place<'a>(&'a self, key: &'a str) -> (&'a Path, &'a str) {
        for (prefix, folder) in &self.mounts {
            if let Some(rest) = key.strip_prefix(prefix.as_str()) {
                return (folder, rest);
            }
        }
        (&self.root, key)
    }

    /// The file that holds `key`; keys that would leave the folder are refused.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, PortError> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|segment| segment.is_empty() || segment == "." || segment == "..");
        if bad {
            return Err(PortError::permanent(
                self.resource(key),
                "invalid key: it must be a relative path without empty, '.' or '..' segments",
            ));
        }
        let (folder, rest) = self.place(key);
        Ok(folder.join(rest))
    }

    fn resource(&self, key: &str) -> String {
        format!("{}/{key}", self.bucket)
    }

    fn io_error(&self, key: &str, err: std::io::Error) -> PortError {
        match err.kind() {
            std::io::ErrorKind::NotFound => PortError::NotFound {
                resource: self.resource(key),
            },
            std::io::ErrorKind::PermissionDenied => {
                PortError::permanent(self.resource(key), err.to_string())
            }
            _ => PortError::retryable(self.resource(key), err.to_string()),
        }
    }
}

#[async_trait]
impl ObjectStore for FolderStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        let store = self.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || store.list_blocking(&prefix))
            .await
            .map_err(|err| PortError::retryable(self.resource(""), err.to_string()))?
    }

    async fn get_from(&self, key: &str, offset: u64) -> Result<ObjectReader, PortError> {
        use tokio::io::AsyncSeekExt;
        let path = self.path_of(key)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|err| self.io_error(key, err))?;
        if file
            .metadata()
            .await
            .map_err(|err| self.io_error(key, err))?
            .is_dir()
        {
            return Err(PortError::NotFound {
                resource: self.resource(key),
            });
        }
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|err| self.io_error(key, err))?;
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            256 * 1024,
            file,
        )))
    }

    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), PortError> {
        write(self.path_of(key)?, body, |partial, path| {
            std::fs::rename(partial, path)
        })
        .await
        .map_err(|err| self.io_error(key, err))
    }

    async fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<bool, PortError> {
        // A hard link to the finished file fails when the key exists: only one writer wins.
        let linked = write(self.path_of(key)?, body, |partial, path| {
            let linked = std::fs::hard_link(partial, path);
            std::fs::remove_file(partial)?;
            linked
        })
        .await;
        match linked {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(self.io_error(key, err)),
        }
    }
}

/// Writes `body` aside, then `finish`es the partial file into `path`.
async fn write(
    path: PathBuf,
    body: Vec<u8>,
    finish: fn(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    // Written aside and then put in place, so a reader never sees half an object and a
    // rewrite replaces it whole; on a blocking thread of its own, so a caller that stops
    // waiting (a function killed mid-put) leaves the object whole or absent, never a stray
    // partial file.
    let partial = path.with_extension(format!(
        "partial-{}-{}",
        std::process::id(),
        PARTIAL_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    tokio::task::spawn_blocking(move || {
        std::fs::write(&partial, body).and_then(|()| finish(&partial, &path))
    })
    .await
    .map_err(std::io::Error::other)?
}

impl FolderStore {
    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        let mut found = Vec::new();
        let mut sources: Vec<(&str, &Path)> = self
            .mounts
            .iter()
            .map(|(p, f)| (p.as_str(), f.as_path()))
            .collect();
        sources.push(("", &self.root));
        for (key_prefix, folder) in sources {
            // Skip folders whose keys cannot match the prefix.
            if !(key_prefix.starts_with(prefix) || prefix.starts_with(key_prefix))
                || !folder.exists()
            {
                continue;
            }
            for entry in walkdir::WalkDir::new(folder).sort_by_file_name() {
                let entry = entry
                    .map_err(|err| PortError::retryable(self.resource(prefix), err.to_string()))?;
                if !entry.file_type().is_file() {
                    continue;
                }
                let Ok(relative) = entry.path().strip_prefix(folder) else {
                    continue;
                };
                let relative = relative
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                if relative.contains(".partial-") {
                    continue;
                }
                let key = format!("{key_prefix}{relative}");
                // A root key that a mount serves belongs to the mount, not the root.
                if key_prefix.is_empty()
                    && self.mounts.iter().any(|(p, _)| key.starts_with(p.as_str()))
                {
                    continue;
                }
                if key.starts_with(prefix) {
                    let size = entry
                        .metadata()
                        .map_err(|err| PortError::retryable(self.resource(&key), err.to_string()))?
                        .len();
                    found.push(ObjectInfo { key, size });
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}
