//! Exit codes scripts can rely on, and how errors map to them.

use strand_core::{DecodeError, OpenIndexError};

use crate::keyfile::KeyFileError;

/// Exit codes of the `strand` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Success.
    Ok = 0,
    /// Any other failure (I/O, bad input file, ...).
    Failure = 1,
    /// The command line was wrong (clap's own code).
    Usage = 2,
    /// Too many fragments of some stripe are missing or damaged.
    Unrecoverable = 3,
    /// Data failed authentication or the file hash: tampering or a
    /// mismatched index.
    Integrity = 4,
    /// The key or the sealed index cannot be used (wrong key, altered or
    /// truncated index, bad key file).
    KeyOrIndex = 5,
}

impl ExitStatus {
    /// The status that best describes `error`, from the first cause in its
    /// chain that strand recognises.
    pub fn of(error: &anyhow::Error) -> Self {
        for cause in error.chain() {
            if let Some(decode) = cause.downcast_ref::<DecodeError>() {
                return match decode {
                    DecodeError::Unrecoverable { .. } => Self::Unrecoverable,
                    DecodeError::Authentication(_) | DecodeError::FileHash { .. } => Self::Integrity,
                    DecodeError::Range { .. } | DecodeError::NotGranted { .. } => Self::Usage,
                    DecodeError::Write(_) => Self::Failure,
                };
            }
            if cause.is::<OpenIndexError>() || cause.is::<KeyFileError>() {
                return Self::KeyOrIndex;
            }
            if cause.is::<crate::units::UnitError>() || cause.is::<strand_core::ParamsError>() {
                return Self::Usage;
            }
        }
        Self::Failure
    }
}

/// The error and its causes on one line, each cause said once: many errors
/// already quote their cause in their own message.
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error =
            anyhow::Error::new(io).context("cannot reach the ledger: connection refused").context("status failed");
        assert_eq!(describe(&error), "status failed: cannot reach the ledger: connection refused");
    }
}
