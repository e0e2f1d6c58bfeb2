//! Identity key files: PKCS#8 PEM, readable only by their owner.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::identity::{Identity, IdentityError};

/// Environment variable naming strand's home directory.
pub const HOME_VARIABLE: &str = "STRAND_HOME";

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// No key file where one was expected.
    #[error("no key file at {path}: create one with `strand keygen` or pass --key")]
    Missing {
        /// Where we looked.
        path: PathBuf,
    },
    /// Refusing to overwrite an identity.
    #[error(
        "{path} already exists: refusing to overwrite an identity (use --force to replace it, and lose access to everything sealed to it)"
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A key file others can read.
    #[error("key file {path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The content is not a key.
    #[error("key file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: IdentityError,
    },
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// strand's home: `$STRAND_HOME`, else `~/.strand`, else `./.strand`.
pub fn strand_home() -> PathBuf {
    if let Some(home) = std::env::var_os(HOME_VARIABLE) {
        return PathBuf::from(home);
    }
    std::env::var_os("HOME").map_or_else(|| PathBuf::from(".strand"), |home| PathBuf::from(home).join(".strand"))
}

/// The default key file: `<strand home>/identity.pem`.
pub fn default_key_path() -> PathBuf {
    strand_home().join("identity.pem")
}

/// Writes `identity` to `path` with mode 0600, never replacing an existing
/// file unless `force`.
pub fn write(path: &Path, identity: &Identity, force: bool) -> Result<(), KeyFileError> {
    write_secret(path, identity.to_pem().as_bytes(), force)
}

/// Writes secret `bytes` (a key, a share) to `path` with mode 0600, synced,
/// never replacing an existing file unless `force`.
pub fn write_secret(path: &Path, bytes: &[u8], force: bool) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io)?;
    }
    if force {
        // A fresh file, so the mode below applies even if the old one was lax.
        match fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(io(error)),
            _ => {}
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => KeyFileError::Exists { path: path.to_path_buf() },
        _ => io(error),
    })?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads the identity in `path`, creating it first (mode 0600) if there is
/// none: what a daemon does on its first start.
pub fn load_or_create(path: &Path, rng: &mut impl rand_core::CryptoRng) -> Result<Identity, KeyFileError> {
    if !path.exists() {
        write(path, &Identity::generate(rng), false)?;
    }
    read(path)
}

/// Reads the identity in `path`, refusing files others can read.
pub fn read(path: &Path) -> Result<Identity, KeyFileError> {
    let text = fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => KeyFileError::Missing { path: path.to_path_buf() },
        _ => KeyFileError::Io { path: path.to_path_buf(), source },
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|source| KeyFileError::Io { path: path.to_path_buf(), source })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions { path: path.to_path_buf(), mode: mode & 0o777 });
        }
    }
    let text = zeroize::Zeroizing::new(text);
    Identity::from_pem(&text).map_err(|source| KeyFileError::Invalid { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_0600_refuses_overwrite_and_reads_back() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("nested/identity.pem");
        let identity = Identity::from_secret_bytes(&[5; 32]);
        write(&path, &identity, false).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(write(&path, &identity, false), Err(KeyFileError::Exists { .. })));
        assert_eq!(read(&path).expect("read").public_key(), identity.public_key());
        write(&path, &Identity::from_secret_bytes(&[6; 32]), true).expect("forced");
        assert_ne!(read(&path).expect("read").public_key(), identity.public_key());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_key_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("identity.pem");
        write(&path, &Identity::from_secret_bytes(&[5; 32]), false).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = read(&path).expect_err("world readable");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}
