//! Sealing: encrypting a record so only one identity can read it.
//!
//! The construction is HPKE (RFC 9180) in base mode with
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, from the
//! `hpke` crate, to the X25519 form of the recipient's ed25519 key (the
//! standard birational map, as libsodium's `crypto_sign_ed25519_pk_to_curve25519`
//! and age's ssh-ed25519 recipients use). Reusing the signing key for key
//! agreement keeps one identity per participant, which the design asks for;
//! the joint use of one key for Ed25519 and an X25519 KEM is analysed in
//! "On using the same key pair for Ed25519 and an X25519 based KEM"
//! (Thormarker, 2021).
//!
//! # Format, version 1 (integers little endian)
//! ```text
//! magic            8   "STRNDSEL"
//! version          2   1
//! kind             2   what is inside (1 = recovery index, 2 = upload record,
//!                      3/4 = grantee records, 5 = a beacon key dealing)
//! recipient       32   ed25519 public key the record is sealed to
//! encapsulated    32   HPKE encapsulated key
//! plaintext len    8
//! ciphertext       plaintext len + 16
//! ```
//! The header (everything before the ciphertext) is the AEAD's associated
//! data and the HPKE info string names the kind and version, so no header
//! field can be changed without the open failing.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};

use crate::identity::{Identity, PUBLIC_KEY_LEN, PublicKey};

/// Magic bytes that open a sealed record.
pub const SEAL_MAGIC: &[u8; 8] = b"STRNDSEL";
/// The sealed-record format version this build writes and reads.
pub const SEAL_FORMAT_VERSION: u16 = 1;
/// Bytes of the header.
pub const SEAL_HEADER_LEN: usize = 8 + 2 + 2 + PUBLIC_KEY_LEN + 32 + 8;
const AEAD_TAG_LEN: usize = 16;

/// What a sealed record holds; each kind has its own HPKE info string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealKind {
    /// A recovery index, sealed to its owner.
    RecoveryIndex,
    /// An upload record (index plus placement), sealed to its owner.
    UploadRecord,
    /// An upload record sealed to a credential's grantee (the credential's
    /// key material for a whole-upload scope).
    GranteeRecord,
    /// A range grantee's partial index and placement.
    GranteeRange,
    /// A validator's evaluation of another's polynomial in the beacon key's
    /// distributed generation (strand-consortium's ceremony).
    BeaconDealing,
}

impl SealKind {
    fn code(self) -> u16 {
        match self {
            Self::RecoveryIndex => 1,
            Self::UploadRecord => 2,
            Self::GranteeRecord => 3,
            Self::GranteeRange => 4,
            Self::BeaconDealing => 5,
        }
    }

    fn info(self) -> &'static [u8] {
        match self {
            Self::RecoveryIndex => b"strand sealed recovery index v1",
            Self::UploadRecord => b"strand sealed upload record v1",
            Self::GranteeRecord => b"strand sealed grantee record v1",
            Self::GranteeRange => b"strand sealed grantee range v1",
            Self::BeaconDealing => b"strand sealed beacon dealing v1",
        }
    }
}

/// A sealed record that cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Not a sealed strand record.
    #[error("not a sealed strand record (bad magic bytes)")]
    BadMagic,
    /// Shorter or longer than its header says.
    #[error("sealed record is truncated or extended: {actual} bytes, its header says {expected}")]
    Length {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Written by an unknown format version.
    #[error(
        "sealed record format version {found} is not supported (this build reads {SEAL_FORMAT_VERSION}): upgrade strand"
    )]
    UnsupportedVersion {
        /// Version found.
        found: u16,
    },
    /// Holds another kind of record.
    #[error("sealed record holds kind {found}, expected kind {expected}")]
    WrongKind {
        /// Kind found.
        found: u16,
        /// Kind expected.
        expected: u16,
    },
    /// Sealed to another identity.
    #[error("sealed to key {sealed_to}, not to yours ({yours}): use the key it was sealed to")]
    WrongRecipient {
        /// The recipient written in the record.
        sealed_to: String,
        /// The key that tried to open it.
        yours: String,
    },
    /// The header names this recipient but decryption failed.
    #[error("sealed record was altered: its authentication failed")]
    Altered,
}

/// Seals `plaintext` so that only `recipient` can open it.
pub fn seal(kind: SealKind, plaintext: &[u8], recipient: &PublicKey, rng: &mut impl rand_core::CryptoRng) -> Vec<u8> {
    let recipient_key = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&recipient.x25519_bytes())
        .expect("32 bytes are always an X25519 public key");
    let mut header = Vec::with_capacity(SEAL_HEADER_LEN + plaintext.len() + AEAD_TAG_LEN);
    header.extend_from_slice(SEAL_MAGIC);
    header.extend_from_slice(&SEAL_FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&kind.code().to_le_bytes());
    header.extend_from_slice(recipient.as_bytes());
    // The encapsulated key is only known after sealing, but it must be in the
    // associated data: seal in two steps, set up the sender first.
    let (encapsulated, mut context) = hpke::setup_sender_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &recipient_key,
        kind.info(),
        rng,
    )
    .expect("HPKE setup with a valid X25519 key cannot fail");
    header.extend_from_slice(&encapsulated.to_bytes());
    header.extend_from_slice(&(plaintext.len() as u64).to_le_bytes());
    let ciphertext = context.seal(plaintext, &header).expect("HPKE seal of an in-memory record cannot fail");
    header.extend_from_slice(&ciphertext);
    header
}

/// Opens a record sealed to `identity`.
pub fn open(kind: SealKind, sealed: &[u8], identity: &Identity) -> Result<Vec<u8>, OpenError> {
    if sealed.len() >= SEAL_MAGIC.len() && &sealed[..SEAL_MAGIC.len()] != SEAL_MAGIC {
        return Err(OpenError::BadMagic);
    }
    if sealed.len() < SEAL_HEADER_LEN {
        return Err(OpenError::Length { expected: SEAL_HEADER_LEN as u64, actual: sealed.len() as u64 });
    }
    let (header, ciphertext) = sealed.split_at(SEAL_HEADER_LEN);
    let field = |start: usize, len: usize| &header[start..start + len];
    let version = u16::from_le_bytes(field(8, 2).try_into().expect("2 bytes"));
    if version != SEAL_FORMAT_VERSION {
        return Err(OpenError::UnsupportedVersion { found: version });
    }
    let found_kind = u16::from_le_bytes(field(10, 2).try_into().expect("2 bytes"));
    if found_kind != kind.code() {
        return Err(OpenError::WrongKind { found: found_kind, expected: kind.code() });
    }
    let recipient = field(12, PUBLIC_KEY_LEN);
    if recipient != identity.public_key().as_bytes() {
        return Err(OpenError::WrongRecipient {
            sealed_to: hex::encode(recipient),
            yours: identity.public_key().to_string(),
        });
    }
    let plaintext_len = u64::from_le_bytes(field(12 + PUBLIC_KEY_LEN + 32, 8).try_into().expect("8 bytes"));
    // A hostile length field must not overflow the arithmetic (found by
    // the `sealed_record` fuzz target).
    let expected = plaintext_len.checked_add((SEAL_HEADER_LEN + AEAD_TAG_LEN) as u64);
    if expected != Some(sealed.len() as u64) {
        return Err(OpenError::Length { expected: expected.unwrap_or(u64::MAX), actual: sealed.len() as u64 });
    }
    let encapsulated = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(field(12 + PUBLIC_KEY_LEN, 32))
        .map_err(|_| OpenError::Altered)?;
    let secret = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&*identity.x25519_secret_bytes())
        .expect("32 bytes are always an X25519 secret");
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &secret,
        &encapsulated,
        kind.info(),
        ciphertext,
        header,
    )
    .map_err(|_| OpenError::Altered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(1)
    }

    #[test]
    fn only_the_recipient_opens() {
        let owner = Identity::from_secret_bytes(&[1; 32]);
        let stranger = Identity::from_secret_bytes(&[2; 32]);
        let sealed = seal(SealKind::RecoveryIndex, b"genome keys", &owner.public_key(), &mut rng());
        assert_eq!(open(SealKind::RecoveryIndex, &sealed, &owner).as_deref(), Ok(&b"genome keys"[..]));
        assert!(matches!(open(SealKind::RecoveryIndex, &sealed, &stranger), Err(OpenError::WrongRecipient { .. })));
    }

    #[test]
    fn every_damage_has_its_own_error() {
        let owner = Identity::from_secret_bytes(&[1; 32]);
        let sealed = seal(SealKind::RecoveryIndex, b"genome keys", &owner.public_key(), &mut rng());
        let open_it = |bytes: &[u8]| open(SealKind::RecoveryIndex, bytes, &owner);
        for at in [SEAL_HEADER_LEN, sealed.len() - 1, 12 + PUBLIC_KEY_LEN] {
            let mut altered = sealed.clone();
            altered[at] ^= 0x40;
            assert_eq!(open_it(&altered), Err(OpenError::Altered), "byte {at}");
        }
        assert!(matches!(open_it(&sealed[..sealed.len() - 1]), Err(OpenError::Length { .. })));
        assert!(matches!(open_it(&sealed[..30]), Err(OpenError::Length { .. })));
        let mut magic = sealed.clone();
        magic[0] = 0;
        assert_eq!(open_it(&magic), Err(OpenError::BadMagic));
        let mut version = sealed.clone();
        version[8] = 2;
        assert_eq!(open_it(&version), Err(OpenError::UnsupportedVersion { found: 2 }));
        let mut kind = sealed;
        kind[10] = 9;
        assert!(matches!(open_it(&kind), Err(OpenError::WrongKind { found: 9, .. })));
    }

    #[test]
    fn a_huge_length_field_is_a_length_error_not_an_overflow() {
        let owner = Identity::from_secret_bytes(&[7; 32]);
        let mut sealed = seal(SealKind::RecoveryIndex, b"x", &owner.public_key(), &mut rng());
        let length_at = 12 + PUBLIC_KEY_LEN + 32;
        for huge in [u64::MAX, u64::MAX - 15, u64::MAX - (SEAL_HEADER_LEN as u64) - 15] {
            sealed[length_at..length_at + 8].copy_from_slice(&huge.to_le_bytes());
            assert!(matches!(open(SealKind::RecoveryIndex, &sealed, &owner), Err(OpenError::Length { .. })), "{huge}");
        }
    }

    #[test]
    fn sealing_twice_gives_unrelated_bytes() {
        let owner = Identity::from_secret_bytes(&[1; 32]);
        let mut rng = rng();
        let first = seal(SealKind::RecoveryIndex, b"same", &owner.public_key(), &mut rng);
        let second = seal(SealKind::RecoveryIndex, b"same", &owner.public_key(), &mut rng);
        assert_ne!(first[SEAL_HEADER_LEN..], second[SEAL_HEADER_LEN..]);
    }
}
