//! A consortium chain's randomness beacon: a threshold BLS12-381 signature
//! (commonware's `bls12381` primitives, the `MinSig` variant) by the
//! validators' shared key over the hash of the block that closed the
//! previous epoch.
//!
//! - **Unique:** for one key and one message there is exactly one valid
//!   signature, whichever `t = n - (n-1)/3` shares made it; a proposer
//!   that carries it in a header has no choice of value, only of carrying
//!   it or not (the next proposer then will).
//! - **Unpredictable until final:** an honest validator signs its share
//!   only for a closing block its replica has already applied as final, and
//!   `t` shares are needed, more than the `f` a Byzantine coalition holds.
//!   So nobody learns an epoch's beacon before the block it signs is final,
//!   and once it is final the value is fixed: the proposer of the closing
//!   block cannot grind it (it would have to try blocks and see their
//!   beacons, which needs honest shares over non-final blocks).
//! - **Verifiable by anyone:** a follower checks it against the group
//!   public key in the genesis ([`crate::ValidatorSet::beacon_key`]), as it
//!   checks finality, without the engine.
//!
//! The ledger applies it at the first block that carries it
//! ([`crate::BlockHeader::beacon`]): until then the epoch's proofs and
//! repair orders wait, and an epoch that closes without a beacon owes no
//! proofs (nobody could derive its challenges).

use borsh::{BorshDeserialize, BorshSerialize};
use commonware_codec::{Decode as _, DecodeExt as _, Encode as _};
use commonware_cryptography::bls12381::primitives::ops;
use commonware_cryptography::bls12381::primitives::sharing::{ModeVersion, Sharing};
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};

use crate::types::Digest;

/// The BLS variant: 48-byte signatures, 96-byte public keys.
pub type Bls = MinSig;

/// The domain every beacon share and signature is made under.
pub const BEACON_NAMESPACE: &[u8] = b"strand beacon v1";

/// Bytes of a (recovered or partial) beacon signature.
pub const SIGNATURE_BYTES: usize = 48;

/// A recovered threshold signature: the beacon's source.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BeaconSignature(pub [u8; SIGNATURE_BYTES]);

impl std::fmt::Debug for BeaconSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BeaconSignature({})", hex::encode(&self.0[..8]))
    }
}

/// Why a beacon does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    /// The genesis's beacon key does not decode for this validator set.
    #[error("the genesis's beacon key is malformed: {0}")]
    Key(String),
    /// A beacon where none is due.
    #[error("block carries a beacon, but none is due")]
    NotDue,
    /// A beacon on a chain without a beacon key (the single sequencer).
    #[error("block carries a beacon, but this chain has no beacon key")]
    NoKey,
    /// Not a point of the group.
    #[error("beacon signature does not decode")]
    Malformed,
    /// Not the validators' signature over the due message.
    #[error("beacon signature does not verify for epoch {epoch}")]
    BadSignature {
        /// The epoch it was for.
        epoch: u64,
    },
}

/// The message whose threshold signature is `epoch`'s beacon on `chain`:
/// the hash of the block that closed the epoch before.
pub fn message(chain: &Digest, epoch: u64, closing: &Digest) -> Vec<u8> {
    [chain.0.as_slice(), &epoch.to_le_bytes(), &closing.0].concat()
}

/// The beacon from its signature.
pub fn beacon_of(signature: &BeaconSignature) -> Digest {
    Digest::of("strand beacon v1", &[&signature.0])
}

/// Decodes a beacon key (the public polynomial of the validators' shares,
/// commonware's encoding) for `participants` validators with threshold
/// `quorum`.
pub fn decode_key(bytes: &[u8], participants: u32, quorum: u32) -> Result<Sharing<Bls>, BeaconError> {
    let max = std::num::NonZeroU32::new(participants).ok_or_else(|| BeaconError::Key("no validators".into()))?;
    // Rejects trailing bytes.
    let sharing = Sharing::<Bls>::decode_cfg(bytes.to_vec(), &(max, ModeVersion::v0()))
        .map_err(|error| BeaconError::Key(error.to_string()))?;
    if sharing.total().get() != participants || sharing.required() != quorum {
        return Err(BeaconError::Key(format!(
            "a key for {} of {}, the set needs {quorum} of {participants}",
            sharing.required(),
            sharing.total()
        )));
    }
    Ok(sharing)
}

/// Encodes a beacon key for the genesis.
pub fn encode_key(sharing: &Sharing<Bls>) -> Vec<u8> {
    sharing.encode().to_vec()
}

/// Checks `signature` as `epoch`'s beacon (the signature over
/// [`message`]) under `key`, and returns the beacon.
pub fn verify(
    key: &Sharing<Bls>,
    chain: &Digest,
    epoch: u64,
    closing: &Digest,
    signature: &BeaconSignature,
) -> Result<Digest, BeaconError> {
    let point = <Bls as Variant>::Signature::decode(signature.0.to_vec()).map_err(|_| BeaconError::Malformed)?;
    ops::verify_message::<Bls>(key.public(), BEACON_NAMESPACE, &message(chain, epoch, closing), &point)
        .map_err(|_| BeaconError::BadSignature { epoch })?;
    Ok(beacon_of(signature))
}

/// A validator's beacon share file: hex of the share's encoding
/// ([`deal`]'s), one line.
pub fn share_file_text(share: &[u8]) -> String {
    format!("{}\n", hex::encode(share))
}

/// A trusted dealer's beacon key and shares for `participants` validators
/// (threshold `n - (n-1)/3`), from `seed` (give it 32 bytes of OS
/// randomness): the key for the genesis, and share `i` (commonware's
/// encoding) for the validator at position `i` of
/// [`crate::ValidatorSet::sorted`]. Whoever sees `t` shares can compute
/// every beacon: the dealer must hand each share to its validator alone and
/// forget them (a distributed key generation removes the dealer; not built).
pub fn deal(participants: u32, seed: [u8; 32]) -> (Vec<u8>, Vec<Vec<u8>>) {
    use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal_anonymous;
    use commonware_cryptography::bls12381::primitives::sharing::Mode;
    use rand_core::SeedableRng as _;
    let n = std::num::NonZeroU32::new(participants.max(1)).expect("at least one");
    let rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let (sharing, shares) = deal_anonymous::<Bls, commonware_utils::N3f1>(rng, Mode::NonZeroCounter, n);
    (encode_key(&sharing), shares.iter().map(|share| share.encode().to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::bls12381::primitives::group::Share;
    use commonware_cryptography::bls12381::primitives::ops::threshold;
    use commonware_parallel::Sequential;

    fn partials(
        shares: &[Vec<u8>],
        which: &[usize],
        text: &[u8],
    ) -> Vec<commonware_cryptography::bls12381::primitives::variant::PartialSignature<Bls>> {
        which
            .iter()
            .map(|&i| {
                let share = Share::decode(shares[i].clone()).expect("share");
                threshold::sign_message::<Bls>(&share, BEACON_NAMESPACE, text)
            })
            .collect()
    }

    fn signature(
        key: &Sharing<Bls>,
        partials: &[commonware_cryptography::bls12381::primitives::variant::PartialSignature<Bls>],
    ) -> Option<BeaconSignature> {
        let point = threshold::recover::<Bls, _>(key, partials.iter(), &Sequential).ok()?;
        Some(BeaconSignature(point.encode().to_vec().try_into().expect("48 bytes")))
    }

    #[test]
    fn any_quorum_of_shares_gives_the_one_beacon_and_fewer_give_none() {
        let (key_bytes, shares) = deal(4, [7; 32]);
        let key = decode_key(&key_bytes, 4, 3).expect("key");
        let (chain, closing) = (Digest([1; 32]), Digest([2; 32]));
        let text = message(&chain, 5, &closing);
        let a = signature(&key, &partials(&shares, &[0, 1, 2], &text)).expect("three of four");
        let b = signature(&key, &partials(&shares, &[3, 1, 0], &text)).expect("another three");
        assert_eq!(a, b, "unique: whichever validators' shares");
        assert_eq!(verify(&key, &chain, 5, &closing, &a), Ok(beacon_of(&a)));
        assert_eq!(verify(&key, &chain, 6, &closing, &a), Err(BeaconError::BadSignature { epoch: 6 }));
        assert_eq!(
            verify(&key, &chain, 5, &Digest([3; 32]), &a),
            Err(BeaconError::BadSignature { epoch: 5 }),
            "bound to the closing block"
        );
        assert!(signature(&key, &partials(&shares, &[0, 1], &text)).is_none(), "two shares recover nothing");
        // Two shares and a forged third (a share of another dealing): what
        // comes out is not the validators' signature.
        let (_, other) = deal(4, [8; 32]);
        let mut mixed = partials(&shares, &[0, 1], &text);
        mixed.extend(partials(&other, &[2], &text));
        let forged = signature(&key, &mixed).expect("interpolates");
        assert_eq!(verify(&key, &chain, 5, &closing, &forged), Err(BeaconError::BadSignature { epoch: 5 }));
        assert_eq!(verify(&key, &chain, 5, &closing, &BeaconSignature([0xff; 48])), Err(BeaconError::Malformed));
    }

    #[test]
    fn a_key_must_fit_the_set() {
        let (key, _) = deal(4, [1; 32]);
        assert!(decode_key(&key, 4, 3).is_ok());
        assert!(matches!(decode_key(&key, 7, 5), Err(BeaconError::Key(_))));
        assert!(matches!(decode_key(&key, 4, 4), Err(BeaconError::Key(_))));
        assert!(matches!(decode_key(&key[..key.len() - 1], 4, 3), Err(BeaconError::Key(_))));
        assert!(matches!(decode_key(&[key.clone(), vec![0]].concat(), 4, 3), Err(BeaconError::Key(_))));
    }
}
