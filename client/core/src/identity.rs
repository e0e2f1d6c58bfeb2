//! Identities: one ed25519 key per participant. The same key is a ledger
//! account, (later) a libp2p peer id and an iroh endpoint id, and the key a
//! recovery index or credential is sealed to.
//!
//! Key files are PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, RFC 8410), the
//! standard format `openssl pkey` reads.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// Length of a public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// A participant's secret key.
pub struct Identity {
    signing_key: SigningKey,
}

/// A participant's public key: its name on the ledger and the network.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

/// A key file or key string that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The PEM text is not an ed25519 PKCS#8 private key.
    #[error("not an ed25519 private key in PKCS#8 PEM form ({reason}); create one with `strand keygen`")]
    BadKeyFile {
        /// What the decoder said.
        reason: String,
    },
    /// A public key string that is not 64 hex digits of a valid point.
    #[error("'{input}' is not a strand public key: expected 64 hex digits of an ed25519 key")]
    BadPublicKey {
        /// The input, truncated.
        input: String,
    },
}

impl Identity {
    /// A fresh random identity.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        Self { signing_key: SigningKey::generate(rng) }
    }

    /// An identity from its 32 secret bytes (tests and simulations).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self { signing_key: SigningKey::from_bytes(secret) }
    }

    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, IdentityError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|signing_key| Self { signing_key })
            .map_err(|error| IdentityError::BadKeyFile { reason: error.to_string() })
    }

    /// The PKCS#8 PEM form, for a key file.
    pub fn to_pem(&self) -> Zeroizing<String> {
        self.signing_key.to_pkcs8_pem(LineEnding::LF).expect("encoding a valid ed25519 key as PKCS#8 cannot fail")
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing_key.verifying_key())
    }

    /// Signs `message`. Callers put a versioned domain-separation prefix in
    /// the message (`"strand transaction v1"`, ...), so a signature made for
    /// one purpose is never valid for another.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing_key.sign(message).to_bytes()
    }

    /// The 32 secret bytes (for handing the same key to libp2p and iroh).
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing_key.to_bytes())
    }

    /// The X25519 secret that pairs with [`PublicKey::x25519_bytes`], for
    /// opening what was sealed to this identity.
    pub(crate) fn x25519_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing_key.to_scalar_bytes())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.public_key().short())
    }
}

impl PublicKey {
    /// Parses raw bytes.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Option<Self> {
        VerifyingKey::from_bytes(bytes).ok().map(Self)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// First hex digits, for log lines.
    pub fn short(&self) -> String {
        hex::encode(&self.as_bytes()[..5])
    }

    /// Whether `signature` is this key's signature of `message`, under
    /// ed25519's strict rules (no malleable signatures, no weak keys).
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        self.0.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature)).is_ok()
    }

    /// The birationally equivalent X25519 public key (RFC 7748 Montgomery
    /// form), used to seal data to this identity.
    pub(crate) fn x25519_bytes(&self) -> [u8; 32] {
        self.0.to_montgomery().to_bytes()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}

impl FromStr for PublicKey {
    type Err = IdentityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = || IdentityError::BadPublicKey { input: input.chars().take(80).collect() };
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        hex::decode_to_slice(input.trim(), &mut bytes).map_err(|_| bad())?;
        Self::from_bytes(&bytes).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_public_key() {
        let identity = Identity::from_secret_bytes(&[7; 32]);
        let pem = identity.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = Identity::from_pem(&pem).expect("valid pem");
        assert_eq!(again.public_key(), identity.public_key());
        let text = identity.public_key().to_string();
        assert_eq!(text.parse::<PublicKey>().expect("hex"), identity.public_key());
    }

    #[test]
    fn signatures_verify_only_for_their_key_and_message() {
        let identity = Identity::from_secret_bytes(&[7; 32]);
        let other = Identity::from_secret_bytes(&[8; 32]);
        let signature = identity.sign(b"strand test v1 hello");
        assert!(identity.public_key().verify(b"strand test v1 hello", &signature));
        assert!(!identity.public_key().verify(b"strand test v1 hellO", &signature));
        assert!(!other.public_key().verify(b"strand test v1 hello", &signature));
    }

    #[test]
    fn rejects_garbage_keys_with_a_hint() {
        let error = Identity::from_pem("hello").expect_err("not pem");
        assert!(error.to_string().contains("strand keygen"), "{error}");
        assert!("zz".parse::<PublicKey>().is_err());
    }
}
