//! A provider's answers to one contract's challenges for one epoch, their
//! versioned encoding, and their verification (what the ledger runs). The
//! challenges themselves come from the provider's epoch schedule
//! ([`crate::schedule`]); a contract's answers cover its share of them, in
//! schedule order.
//!
//! Encoding v1 (borsh): `version: u8 = 1`, the distinct challenged fragments
//! as `(index u32, id [u8; 32])` ascending by index, one rs_merkle
//! multi-proof that those ids sit at those indices under the contract's
//! fragment root, then one [`ChunkProof`] per challenge in challenge order.
//! Sharing one inclusion proof across the epoch's challenges keeps the
//! answers compact: about 1.4 KiB per challenge for 1 MiB fragments.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::challenge::Challenge;
use crate::chunk::{self, ChunkProof};
use crate::merkle;

/// The encoding's version.
pub const VERSION: u8 = 1;

/// What the ledger knows of a contract that its answers are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commitment {
    /// The contract id.
    pub contract: [u8; 32],
    /// Merkle root of its fragment ids.
    pub fragment_root: [u8; 32],
    /// How many ids the root commits to.
    pub fragment_count: u32,
    /// Bytes of each fragment.
    pub fragment_size: u32,
}

/// The answers as encoded.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Answers {
    /// [`VERSION`].
    pub version: u8,
    /// The distinct challenged fragments, ascending by index.
    pub fragments: Vec<(u32, [u8; 32])>,
    /// rs_merkle multi-proof of `fragments` under the contract's root.
    pub inclusion: Vec<[u8; 32]>,
    /// One per challenge, in challenge order.
    pub chunks: Vec<ChunkProof>,
}

impl Answers {
    /// Encodes the answers.
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }
}

/// Why answers fail. Recorded on the ledger with the failing epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, thiserror::Error)]
pub enum Fault {
    /// Not decodable as answers, or of an unknown version.
    #[error("the answers are not decodable (or of an unknown version)")]
    Undecodable,
    /// Not one chunk proof per challenge.
    #[error("{found} chunk proofs for {expected} challenges")]
    WrongCount {
        /// Challenges.
        expected: u16,
        /// Proofs given.
        found: u32,
    },
    /// The fragments listed are not exactly the challenged ones.
    #[error("the fragments listed are not the challenged ones")]
    WrongFragments,
    /// The fragment ids are not under the contract's root at those indices.
    #[error("the fragment ids are not the contract's (Merkle inclusion fails)")]
    NotInContract,
    /// A challenged chunk does not hash into its fragment id.
    #[error("challenge {challenge}: chunk {chunk} of fragment {fragment} does not match the fragment id")]
    ChunkMismatch {
        /// Index of the challenge.
        challenge: u16,
        /// Fragment index in the contract.
        fragment: u32,
        /// Chunk index in the fragment.
        chunk: u32,
    },
}

/// Builds the answers for `challenges` given the contract's fragment ids in
/// order and a proof per challenge (in challenge order).
pub fn build(fragment_ids: &[[u8; 32]], challenges: &[Challenge], chunks: Vec<ChunkProof>) -> Answers {
    let fragments: BTreeMap<u32, [u8; 32]> =
        challenges.iter().filter_map(|c| fragment_ids.get(c.fragment as usize).map(|id| (c.fragment, *id))).collect();
    let indices: Vec<usize> = fragments.keys().map(|index| *index as usize).collect();
    let inclusion = merkle::prove(fragment_ids, &indices).nodes;
    Answers { version: VERSION, fragments: fragments.into_iter().collect(), inclusion, chunks }
}

/// Checks encoded answers to `challenges` (the contract's share of its
/// provider's schedule, in order) against the contract. Deterministic; never
/// panics on hostile bytes.
pub fn verify(commitment: &Commitment, challenges: &[Challenge], bytes: &[u8]) -> Result<(), Fault> {
    let answers = Answers::try_from_slice(bytes).map_err(|_| Fault::Undecodable)?;
    if answers.version != VERSION {
        return Err(Fault::Undecodable);
    }
    if answers.chunks.len() != challenges.len() {
        return Err(Fault::WrongCount {
            expected: u16::try_from(challenges.len()).unwrap_or(u16::MAX),
            found: u32::try_from(answers.chunks.len()).unwrap_or(u32::MAX),
        });
    }
    let wanted: std::collections::BTreeSet<u32> = challenges.iter().map(|c| c.fragment).collect();
    let listed: Vec<u32> = answers.fragments.iter().map(|(index, _)| *index).collect();
    if !listed.iter().copied().eq(wanted.iter().copied()) {
        return Err(Fault::WrongFragments);
    }
    let items: Vec<(usize, [u8; 32])> = answers.fragments.iter().map(|(index, id)| (*index as usize, *id)).collect();
    let proof = merkle::InclusionProof { nodes: answers.inclusion.clone() };
    if !merkle::verify(&commitment.fragment_root, &items, commitment.fragment_count as usize, &proof) {
        return Err(Fault::NotInContract);
    }
    let ids: BTreeMap<u32, [u8; 32]> = answers.fragments.iter().copied().collect();
    for (number, (challenge, proof)) in challenges.iter().zip(&answers.chunks).enumerate() {
        let id = ids.get(&challenge.fragment).ok_or(Fault::WrongFragments)?;
        if !chunk::verify(id, u64::from(commitment.fragment_size), u64::from(challenge.chunk), proof) {
            return Err(Fault::ChunkMismatch {
                challenge: u16::try_from(number).unwrap_or(u16::MAX),
                fragment: challenge.fragment,
                chunk: challenge.chunk,
            });
        }
    }
    Ok(())
}
