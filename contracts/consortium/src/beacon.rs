//! The validators' side of the beacon ([`strand_contracts::beacon`]): each
//! signs its share over the block that closed an epoch once that block is
//! final in its own replica, sends it to the others, and recovers the
//! threshold signature from any `t` valid shares; a leader carries it in
//! its next proposal.
//!
//! Bounds, against peers that flood: shares are kept for the finalised
//! epoch and the next only, one per validator per epoch, the first valid
//! one (a validator's position in the key-sorted set is its share's index,
//! so a peer can only send its own; an honest validator signs one closing
//! block per epoch). Verifying costs a pairing check: a peer gets at most
//! [`BAD_SHARES_MAX`] failed checks per epoch, then its shares for that
//! epoch are dropped unread.

use std::collections::BTreeMap;

use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::ops::threshold;
use commonware_cryptography::bls12381::primitives::sharing::Sharing;
use commonware_cryptography::bls12381::primitives::variant::{PartialSignature, Variant};
use commonware_parallel::Sequential;
use commonware_utils::Participant;
use strand_contracts::beacon::{BEACON_NAMESPACE, BeaconSignature, Bls, SIGNATURE_BYTES, message};
use strand_contracts::{AccountId, Digest};

/// Failed share checks per peer per epoch before its shares are dropped
/// unverified.
pub const BAD_SHARES_MAX: u32 = 3;

/// Bytes of a share message: epoch, closing block hash, index, signature.
pub const SHARE_MESSAGE_BYTES: usize = 8 + 32 + 4 + SIGNATURE_BYTES;

/// Reads a validator's share file
/// ([`strand_contracts::beacon::share_file_text`]).
pub fn decode_share(text: &str) -> anyhow::Result<Share> {
    let bytes = hex::decode(text.trim()).map_err(|_| anyhow::anyhow!("not hex"))?;
    Share::decode(bytes).map_err(|error| anyhow::anyhow!("not a beacon share: {error}"))
}

/// One validator's beacon shares and the signatures recovered from them.
pub struct Beacons {
    chain: Digest,
    key: Sharing<Bls>,
    /// `key`'s encoding, to see when a change of validators brings another.
    key_bytes: Vec<u8>,
    me: AccountId,
    /// This validator's share of `key`, if it holds one.
    share: Option<Share>,
    /// Its shares of other keys (dealt for a change of validators).
    spares: Vec<Share>,
    /// Where more shares may be put while it runs (read when a new key
    /// needs a share it does not hold).
    share_directory: Option<std::path::PathBuf>,
    /// Validators sorted by key: position = share index.
    signers: Vec<AccountId>,
    /// Per epoch, per signer index: the closing hash it signed, and its share.
    shares: BTreeMap<u64, BTreeMap<u32, (Digest, PartialSignature<Bls>)>>,
    recovered: BTreeMap<u64, (Digest, BeaconSignature)>,
    /// Per (epoch, signer index): failed checks.
    bad: BTreeMap<(u64, u32), u32>,
    /// Epochs below it are no longer kept.
    floor: u64,
}

/// Why a received share was not kept.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShareRejection {
    /// Wrong length or not a point.
    #[error("malformed beacon share")]
    Malformed,
    /// Not from a validator, or with another validator's index.
    #[error("beacon share with an index that is not its sender's")]
    NotSenders,
    /// For an epoch outside the window.
    #[error("beacon share for epoch {0}, outside the kept window")]
    Window(u64),
    /// Does not verify.
    #[error("beacon share does not verify")]
    BadSignature,
    /// This validator already sent a valid share for the epoch.
    #[error("a second beacon share for epoch {0}")]
    Duplicate(u64),
    /// Too many shares from this peer failed their check this epoch.
    #[error("too many bad beacon shares for epoch {0}: dropped unread")]
    Flood(u64),
}

impl Beacons {
    /// For `chain` with the genesis's `key`, this validator's `share`, and
    /// the validators sorted by key. Errors if the share is not the one of
    /// `me` under `key`.
    pub fn new(
        chain: Digest,
        key: Sharing<Bls>,
        share: Share,
        signers: Vec<AccountId>,
        me: &AccountId,
    ) -> anyhow::Result<Self> {
        let position = signers.iter().position(|signer| signer == me);
        let position = position.ok_or_else(|| anyhow::anyhow!("{me} is not one of the genesis's validators"))?;
        anyhow::ensure!(
            position == share.index.get() as usize,
            "this beacon share (index {}) is not validator {me}'s (its share has index {position}, its place in \
             the key-sorted set)",
            share.index.get()
        );
        let public = key.partial_public(share.index).map_err(|error| anyhow::anyhow!("{error}"))?;
        anyhow::ensure!(
            public == share.public::<Bls>(),
            "this beacon share does not belong to the genesis's beacon key"
        );
        Ok(Self {
            chain,
            key_bytes: key.encode().to_vec(),
            key,
            me: *me,
            share: Some(share),
            spares: Vec::new(),
            share_directory: None,
            signers,
            shares: BTreeMap::new(),
            recovered: BTreeMap::new(),
            bad: BTreeMap::new(),
            floor: 0,
        })
    }

    /// For a validator that is not (yet) one of `set`'s, or holds its share
    /// among `shares` (with shares of keys a change of validators brings):
    /// it signs with the share of the key in use, if it holds one.
    pub fn following(
        chain: Digest,
        set: &strand_contracts::ValidatorSet,
        me: AccountId,
        shares: Vec<Share>,
    ) -> anyhow::Result<Self> {
        let key = set.beacon_key()?.ok_or_else(|| anyhow::anyhow!("the set has no beacon key"))?;
        let mut beacons = Self {
            chain,
            key,
            key_bytes: Vec::new(),
            me,
            share: None,
            spares: shares,
            share_directory: None,
            signers: set.sorted(),
            shares: BTreeMap::new(),
            recovered: BTreeMap::new(),
            bad: BTreeMap::new(),
            floor: 0,
        };
        beacons.follow(set)?;
        Ok(beacons)
    }

    /// This validator's shares of keys a change of validators will bring
    /// (used from the epoch their key takes effect).
    pub fn with_spare_shares(mut self, shares: Vec<Share>) -> Self {
        self.spares.extend(shares);
        self
    }

    /// Reads shares put in `directory` (files of
    /// [`strand_contracts::beacon::share_file_text`]) when a change of
    /// validators brings a key it holds no share of: an operator hands a
    /// new share to a running validator by putting it there.
    pub fn with_share_directory(mut self, directory: std::path::PathBuf) -> Self {
        self.share_directory = Some(directory);
        self
    }

    fn read_share_directory(&self) -> Vec<Share> {
        let Some(directory) = &self.share_directory else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(directory) else { return Vec::new() };
        entries
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
            .filter_map(|text| decode_share(&text).ok())
            .collect()
    }

    /// Follows `set`'s beacon key (the validators of the epoch whose beacon
    /// is due): when it is another key than the one in use (a change of
    /// validators took effect), shares and signatures of the old key are
    /// dropped, and this validator signs with its share of the new key if
    /// it holds one. Returns whether the key changed.
    pub fn follow(&mut self, set: &strand_contracts::ValidatorSet) -> anyhow::Result<bool> {
        let Some(bytes) = set.beacon_key.as_deref() else { return Ok(false) };
        if bytes == self.key_bytes.as_slice() {
            return Ok(false);
        }
        let key = set.beacon_key()?.ok_or_else(|| anyhow::anyhow!("the set has no beacon key"))?;
        self.signers = set.sorted();
        let position = self.signers.iter().position(|signer| *signer == self.me);
        let fits = |share: &Share| {
            position == Some(share.index.get() as usize)
                && key.partial_public(share.index).is_ok_and(|public| public == share.public::<Bls>())
        };
        let mut candidates: Vec<Share> = self.share.take().into_iter().chain(self.spares.drain(..)).collect();
        if !candidates.iter().any(fits) {
            candidates.extend(self.read_share_directory());
        }
        if let Some(found) = candidates.iter().position(fits) {
            self.share = Some(candidates.remove(found));
        }
        tracing::info!(
            signs = self.share.is_some(),
            validators = self.signers.len(),
            "consortium.beacon a new beacon key is in use"
        );
        self.spares = candidates;
        self.key = key;
        self.key_bytes = bytes.to_vec();
        self.shares.clear();
        self.recovered.clear();
        self.bad.clear();
        Ok(true)
    }

    /// Whether this validator holds a share of the key in use.
    pub fn signs(&self) -> bool {
        self.share.is_some()
    }

    /// Signs this validator's share for `epoch` (whose previous epoch was
    /// closed by the final block `closing`), keeps it, and returns the
    /// message to send; `None` if it holds no share of the key in use.
    pub fn sign(&mut self, epoch: u64, closing: Digest) -> Option<Vec<u8>> {
        let share = self.share.as_ref()?;
        let partial = threshold::sign_message::<Bls>(share, BEACON_NAMESPACE, &message(&self.chain, epoch, &closing));
        let bytes = encode(epoch, &closing, &partial);
        self.keep(epoch, closing, partial);
        Some(bytes)
    }

    /// Takes a share sent by validator `from`; `finalised_epoch` bounds the
    /// window kept (that epoch and the next).
    pub fn receive(&mut self, from: &AccountId, bytes: &[u8], finalised_epoch: u64) -> Result<(), ShareRejection> {
        let (epoch, closing, partial) = decode(bytes).ok_or(ShareRejection::Malformed)?;
        if self.signers.get(partial.index.get() as usize) != Some(from) {
            return Err(ShareRejection::NotSenders);
        }
        if epoch < finalised_epoch || epoch > finalised_epoch.saturating_add(1) {
            return Err(ShareRejection::Window(epoch));
        }
        let index = partial.index.get();
        if let Some((kept, old)) = self.shares.get(&epoch).and_then(|shares| shares.get(&index)) {
            // Resent (fine), or a second one (refused unread).
            return if *kept == closing && *old == partial { Ok(()) } else { Err(ShareRejection::Duplicate(epoch)) };
        }
        let failures = self.bad.entry((epoch, index)).or_default();
        if *failures >= BAD_SHARES_MAX {
            return Err(ShareRejection::Flood(epoch));
        }
        if threshold::verify_message::<Bls>(
            &self.key,
            BEACON_NAMESPACE,
            &message(&self.chain, epoch, &closing),
            &partial,
        )
        .is_err()
        {
            *failures += 1;
            return Err(ShareRejection::BadSignature);
        }
        self.floor = self.floor.max(finalised_epoch);
        self.keep(epoch, closing, partial);
        Ok(())
    }

    fn keep(&mut self, epoch: u64, closing: Digest, partial: PartialSignature<Bls>) {
        self.shares = self.shares.split_off(&self.floor);
        self.recovered = self.recovered.split_off(&self.floor);
        self.bad = self.bad.split_off(&(self.floor, 0));
        let shares = self.shares.entry(epoch).or_default();
        shares.insert(partial.index.get(), (closing, partial));
        if self.recovered.get(&epoch).is_some_and(|(hash, _)| *hash == closing) {
            return;
        }
        let agreeing: Vec<&PartialSignature<Bls>> =
            shares.values().filter(|(hash, _)| *hash == closing).map(|(_, partial)| partial).collect();
        if agreeing.len() < self.key.required() as usize {
            return;
        }
        let Ok(point) = threshold::recover::<Bls, _>(&self.key, agreeing, &Sequential) else { return };
        let Ok(bytes) = <[u8; SIGNATURE_BYTES]>::try_from(point.encode().as_ref()) else { return };
        let signature = BeaconSignature(bytes);
        // Every kept share verified, so this is the signature; checked
        // anyway, as a follower will.
        if strand_contracts::beacon::verify(&self.key, &self.chain, epoch, &closing, &signature).is_ok() {
            self.recovered.insert(epoch, (closing, signature));
        }
    }

    /// The recovered signature for `epoch` over `closing`, if any.
    pub fn recovered(&self, epoch: u64, closing: &Digest) -> Option<BeaconSignature> {
        self.recovered.get(&epoch).filter(|(hash, _)| hash == closing).map(|(_, signature)| *signature)
    }
}

fn encode(epoch: u64, closing: &Digest, partial: &PartialSignature<Bls>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SHARE_MESSAGE_BYTES);
    bytes.extend_from_slice(&epoch.to_le_bytes());
    bytes.extend_from_slice(&closing.0);
    bytes.extend_from_slice(&partial.index.get().to_le_bytes());
    bytes.extend_from_slice(&partial.value.encode());
    bytes
}

fn decode(bytes: &[u8]) -> Option<(u64, Digest, PartialSignature<Bls>)> {
    if bytes.len() != SHARE_MESSAGE_BYTES {
        return None;
    }
    let epoch = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let closing = Digest(bytes[8..40].try_into().ok()?);
    let index = u32::from_le_bytes(bytes[40..44].try_into().ok()?);
    let value = <Bls as Variant>::Signature::decode(bytes[44..].to_vec()).ok()?;
    Some((epoch, closing, PartialSignature { index: Participant::new(index), value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: u32) -> (Vec<Beacons>, Vec<AccountId>) {
        let (key, shares) = strand_contracts::beacon::deal(n, [9; 32]);
        let signers: Vec<AccountId> = (0..n).map(|i| AccountId([i as u8 + 1; 32])).collect();
        let chain = Digest([5; 32]);
        let beacons = (0..n as usize)
            .map(|i| {
                let key = strand_contracts::beacon::decode_key(&key, n, n - (n - 1) / 3).expect("key");
                let share = Share::decode(shares[i].clone()).expect("share");
                Beacons::new(chain, key, share, signers.clone(), &signers[i]).expect("own share")
            })
            .collect();
        (beacons, signers)
    }

    /// Validator `index`'s share message over `closing` for epoch 3.
    fn beacons_sign(signers: &[AccountId], index: usize, closing: Digest) -> Vec<u8> {
        let (mut beacons, _) = set(signers.len() as u32);
        beacons[index].sign(3, closing).expect("a share")
    }

    #[test]
    fn three_of_four_shares_recover_the_beacon_and_peers_cannot_pose_as_others() {
        let (mut beacons, signers) = set(4);
        let closing = Digest([7; 32]);
        let messages: Vec<Vec<u8>> = beacons.iter_mut().map(|b| b.sign(3, closing).expect("a share")).collect();
        let me = &mut beacons[0];
        assert_eq!(me.recovered(3, &closing), None);
        assert_eq!(me.receive(&signers[2], &messages[1], 3), Err(ShareRejection::NotSenders));
        assert_eq!(me.receive(&signers[1], &messages[1][..10], 3), Err(ShareRejection::Malformed));
        assert_eq!(me.receive(&signers[1], &messages[1], 5), Err(ShareRejection::Window(3)));
        let mut tampered = messages[1].clone();
        tampered[9] ^= 1; // another closing hash than the one signed
        assert_eq!(me.receive(&signers[1], &tampered, 3), Err(ShareRejection::BadSignature));
        me.receive(&signers[1], &messages[1], 3).expect("valid");
        me.receive(&signers[1], &messages[1], 3).expect("resent: fine");
        assert_eq!(me.recovered(3, &closing), None, "two of four");
        // Validator 3 floods bad shares: after three failed checks, even its
        // valid share is dropped unread this epoch.
        let mut bad = messages[3].clone();
        bad[9] ^= 1;
        for _ in 0..BAD_SHARES_MAX {
            assert_eq!(me.receive(&signers[3], &bad, 3), Err(ShareRejection::BadSignature));
        }
        assert_eq!(me.receive(&signers[3], &messages[3], 3), Err(ShareRejection::Flood(3)));
        let (mut beacons, signers) = set(4);
        let messages: Vec<Vec<u8>> = beacons.iter_mut().map(|b| b.sign(3, closing).expect("a share")).collect();
        let me = &mut beacons[0];
        me.receive(&signers[1], &messages[1], 3).expect("valid");
        // A second, different valid share from the same validator (another
        // closing block) is refused without a check.
        let other_closing = beacons_sign(&signers, 1, Digest([6; 32]));
        let me = &mut beacons[0];
        assert_eq!(me.receive(&signers[1], &other_closing, 3), Err(ShareRejection::Duplicate(3)));
        me.receive(&signers[3], &messages[3], 3).expect("valid");
        let signature = me.recovered(3, &closing).expect("three of four");
        assert!(me.recovered(3, &Digest([8; 32])).is_none());
        // Another three give the same signature.
        let other = &mut beacons[2];
        other.receive(&signers[1], &messages[1], 2).expect("next epoch is in the window");
        other.receive(&signers[0], &messages[0], 2).expect("valid");
        assert_eq!(other.recovered(3, &closing), Some(signature));
    }
}
