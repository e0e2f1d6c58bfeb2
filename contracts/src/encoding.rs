//! The canonical encoding (borsh) with the limits every decoder of untrusted
//! bytes must enforce.

use borsh::{BorshDeserialize, BorshSerialize};

/// Largest encoded transaction.
pub const TRANSACTION_BYTES_MAX: usize = 1 << 20;
/// Largest encoded block.
pub const BLOCK_BYTES_MAX: usize = 16 << 20;

/// Bytes that are not a valid encoding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub enum EncodingError {
    /// Longer than the limit for their kind.
    #[error("{bytes} bytes exceed the limit of {limit}")]
    Oversized {
        /// Length.
        bytes: u64,
        /// Limit.
        limit: u64,
    },
    /// Not a valid encoding (truncated, trailing bytes, bad tag, bad UTF-8).
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// The canonical encoding of `value`.
pub fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("encoding into a Vec cannot fail")
}

/// Decodes exactly one `T` from `bytes` of at most `limit` bytes.
pub fn decode<T: BorshDeserialize>(bytes: &[u8], limit: usize) -> Result<T, EncodingError> {
    if bytes.len() > limit {
        return Err(EncodingError::Oversized { bytes: bytes.len() as u64, limit: limit as u64 });
    }
    borsh::from_slice(bytes).map_err(|error| EncodingError::Malformed(error.to_string()))
}
