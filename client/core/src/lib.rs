//! Strand's core: what the client, the storage node and the simulator share,
//! with no network, no async runtime and no ledger.
//!
//! - [`identity`]: ed25519 identities and their key files.
//! - [`ids`]: fragment ids (BLAKE3 of the fragment, as iroh-blobs names blobs)
//!   and upload ids.
//! - The codec, in data-path order: [`params`] (chunk size, k, m, layout),
//!   [`scramble`] (keyed permutation of chunk positions), [`keys`] (per-upload
//!   master key and per-chunk keys), [`chunk_cipher`] (ChaCha20-Poly1305 per
//!   chunk), [`encode`] and [`decode`] (Reed-Solomon stripes with
//!   reed-solomon-simd, streaming, parallel, bounded memory), [`file_hash`]
//!   (the whole file's BLAKE3 from independently hashed chunks).
//! - [`index`]: the recovery index format; [`seal`]: sealing it to its owner
//!   (HPKE to the X25519 form of the owner's ed25519 key).
//! - [`io`]: the narrow boundary the codec reads and writes through;
//!   `keyfile`: identity key files (PKCS#8 PEM, mode 0600), with the `fs` feature.
//!
//! Must not depend on: tokio or any async runtime, libp2p, iroh, redb, or
//! anything else in the workspace.

pub mod chunk_cipher;
pub mod decode;
pub mod encode;
pub mod file_hash;
pub mod identity;
pub mod ids;
pub mod index;
pub mod io;
#[cfg(feature = "fs")]
pub mod keyfile;
pub mod keys;
pub mod params;
pub mod partial;
pub mod pipeline;
pub mod scramble;
pub mod seal;
pub mod units;

pub use decode::{DecodeError, DecodeReport, FragmentIssue, FragmentProblem, UnrecoverableStripe, decode};
pub use encode::{EncodeError, UploadSecrets, encode, encode_named};
pub use identity::{Identity, IdentityError, PublicKey};
pub use ids::{FragmentId, UploadId};
pub use index::{IndexFormatError, RecoveryIndex};
pub use params::{CodecParams, Layout, ParamsError};
pub use seal::{OpenError, SealKind};

/// Seals a recovery index to its owner.
pub fn seal_index(index: &RecoveryIndex, owner: &PublicKey, rng: &mut impl rand_core::CryptoRng) -> Vec<u8> {
    seal::seal(SealKind::RecoveryIndex, &index.to_bytes(), owner, rng)
}

/// Why a sealed recovery index could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenIndexError {
    /// The seal failed: wrong key, altered, truncated.
    #[error(transparent)]
    Seal(#[from] OpenError),
    /// The seal was intact but its content is not a valid index.
    #[error(transparent)]
    Format(#[from] IndexFormatError),
}

/// Opens a sealed recovery index with the owner's identity.
pub fn open_index(sealed: &[u8], owner: &Identity) -> Result<RecoveryIndex, OpenIndexError> {
    let bytes = zeroize::Zeroizing::new(seal::open(SealKind::RecoveryIndex, sealed, owner)?);
    Ok(RecoveryIndex::from_bytes(&bytes)?)
}
