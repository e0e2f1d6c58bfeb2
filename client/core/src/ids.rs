//! Identifiers that cross process boundaries: fragment ids and upload ids.

use std::fmt;
use std::str::FromStr;

/// Length of a [`FragmentId`] in bytes.
pub const FRAGMENT_ID_LEN: usize = 32;
/// Length of an [`UploadId`] in bytes.
pub const UPLOAD_ID_LEN: usize = 16;
/// Hex digits shown by the `short` forms used in logs.
const SHORT_HEX_LEN: usize = 10;

/// The name of a fragment: the BLAKE3 hash of its bytes, the same hash
/// iroh-blobs uses for a blob, so a node can serve a fragment by its id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragmentId([u8; FRAGMENT_ID_LEN]);

impl FragmentId {
    /// The id of `fragment`.
    pub fn of(fragment: &[u8]) -> Self {
        Self(*blake3::hash(fragment).as_bytes())
    }

    /// Wraps raw bytes already known to be a fragment id.
    pub const fn from_bytes(bytes: [u8; FRAGMENT_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; FRAGMENT_ID_LEN] {
        &self.0
    }

    /// First hex digits, for log lines (`fragment = %id.short()`).
    pub fn short(&self) -> String {
        hex::encode(&self.0[..SHORT_HEX_LEN / 2])
    }
}

/// The per-upload random identifier; it is bound into every chunk's
/// associated data so that a chunk cannot be moved between uploads.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId([u8; UPLOAD_ID_LEN]);

impl UploadId {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; UPLOAD_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh random upload id.
    pub fn random(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut bytes = [0u8; UPLOAD_ID_LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; UPLOAD_ID_LEN] {
        &self.0
    }

    /// First hex digits, for log lines.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..SHORT_HEX_LEN / 2])
    }
}

/// A hex string that is not a valid id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{input}' is not a {kind}: expected {expected_hex_digits} hex digits")]
pub struct ParseIdError {
    input: String,
    kind: &'static str,
    expected_hex_digits: usize,
}

fn parse_hex<const N: usize>(input: &str, kind: &'static str) -> Result<[u8; N], ParseIdError> {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(input, &mut bytes).map_err(|_| ParseIdError {
        input: input.chars().take(80).collect(),
        kind,
        expected_hex_digits: N * 2,
    })?;
    Ok(bytes)
}

macro_rules! hex_id_impls {
    ($type:ident, $kind:literal) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($type), "({})"), self.short())
            }
        }

        impl FromStr for $type {
            type Err = ParseIdError;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                parse_hex(input, $kind).map(Self)
            }
        }
    };
}

hex_id_impls!(FragmentId, "fragment id");
hex_id_impls!(UploadId, "upload id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_id_is_plain_blake3_of_the_bytes() {
        let id = FragmentId::of(b"abc");
        assert_eq!(id.to_string(), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        assert_eq!(id.short(), "6437b3ac38");
    }

    #[test]
    fn ids_round_trip_through_hex_and_reject_garbage() {
        let upload = UploadId::from_bytes([7; UPLOAD_ID_LEN]);
        assert_eq!(upload.to_string().parse::<UploadId>(), Ok(upload));
        let error = "xyz".parse::<UploadId>().expect_err("not hex");
        assert!(error.to_string().contains("32 hex digits"), "{error}");
        assert!("00".repeat(31).parse::<FragmentId>().is_err());
    }
}
