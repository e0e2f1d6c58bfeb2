//! Small value types shared by transactions, state and blocks.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use strand_core::PublicKey;

/// A 32-byte digest (BLAKE3): block hashes, transaction hashes, contract and
/// credential ids, Merkle roots.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// BLAKE3 of `parts` concatenated, under a versioned domain string.
    pub fn of(domain: &str, parts: &[&[u8]]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(domain);
        for part in parts {
            hasher.update(part);
        }
        Self(*hasher.finalize().as_bytes())
    }

    /// First hex digits, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..5])
    }
}

/// An account: an ed25519 public key (the same key is a provider's node id).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    /// The account of `key`.
    pub fn of(key: &PublicKey) -> Self {
        Self(*key.as_bytes())
    }

    /// The public key, if the bytes are a valid ed25519 point.
    pub fn public_key(&self) -> Option<PublicKey> {
        PublicKey::from_bytes(&self.0)
    }

    /// First hex digits, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..5])
    }
}

/// Display as hex, Debug as a short id, parse from hex.
macro_rules! hex_newtype {
    ($type:ident) => {
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

        impl std::str::FromStr for $type {
            type Err = hex::FromHexError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut bytes)?;
                Ok(Self(bytes))
            }
        }
    };
}

hex_newtype!(Digest);
hex_newtype!(AccountId);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..5]))
    }
}

impl Signature {
    /// Whether this is `signer`'s signature of `message`.
    pub fn verify(&self, signer: &AccountId, message: &[u8]) -> bool {
        signer.public_key().is_some_and(|key| key.verify(message, &self.0))
    }
}

/// An upload id as recorded on the ledger.
pub type UploadKey = [u8; 16];
