//! Merkle commitments to ordered lists of 32-byte ids (a contract's fragment
//! ids), with rs_merkle and BLAKE3 as the hasher.
//!
//! Leaves and inner nodes are hashed under different one-byte prefixes
//! (RFC 6962 style: `0x00 ‖ id` for a leaf, `0x01 ‖ left ‖ right` for a node),
//! so an inner node can never pass as a leaf. rs_merkle promotes a lone node
//! at the end of a level unchanged; the leaf count is part of every
//! verification, so the tree's shape is fixed.

use rs_merkle::{Hasher, MerkleProof, MerkleTree};

/// Length of a root or node in bytes.
pub const NODE_LEN: usize = 32;

/// BLAKE3 with leaf/node domain separation, for rs_merkle.
#[derive(Clone, Debug)]
pub struct Blake3Nodes;

impl Hasher for Blake3Nodes {
    type Hash = [u8; NODE_LEN];

    fn hash(data: &[u8]) -> Self::Hash {
        *blake3::hash(data).as_bytes()
    }

    fn concat_and_hash(left: &Self::Hash, right: Option<&Self::Hash>) -> Self::Hash {
        match right {
            Some(right) => {
                let mut hasher = blake3::Hasher::new();
                hasher.update(&[0x01]).update(left).update(right);
                *hasher.finalize().as_bytes()
            }
            None => *left,
        }
    }
}

/// The leaf for an id.
pub fn leaf(id: &[u8; NODE_LEN]) -> [u8; NODE_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x00]).update(id);
    *hasher.finalize().as_bytes()
}

/// The root committing to `ids` in order. An empty list has the all-zero root.
pub fn root(ids: &[[u8; NODE_LEN]]) -> [u8; NODE_LEN] {
    let leaves: Vec<_> = ids.iter().map(leaf).collect();
    MerkleTree::<Blake3Nodes>::from_leaves(&leaves).root().unwrap_or([0; NODE_LEN])
}

/// A proof that some ids sit at given indices under a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The sibling hashes rs_merkle needs, in its order.
    pub nodes: Vec<[u8; NODE_LEN]>,
}

/// Proves that `ids[index]` is under `root(ids)`.
pub fn prove(ids: &[[u8; NODE_LEN]], indices: &[usize]) -> InclusionProof {
    let leaves: Vec<_> = ids.iter().map(leaf).collect();
    let proof = MerkleTree::<Blake3Nodes>::from_leaves(&leaves).proof(indices);
    InclusionProof { nodes: proof.proof_hashes().to_vec() }
}

/// Whether `proof` shows each `(index, id)` under `root` in a list of
/// `leaf_count` ids. Never panics on hostile input.
pub fn verify(
    root: &[u8; NODE_LEN],
    items: &[(usize, [u8; NODE_LEN])],
    leaf_count: usize,
    proof: &InclusionProof,
) -> bool {
    if items.is_empty() || items.iter().any(|(index, _)| *index >= leaf_count) {
        return false;
    }
    let mut sorted: Vec<(usize, [u8; NODE_LEN])> = items.to_vec();
    sorted.sort_by_key(|(index, _)| *index);
    sorted.dedup_by_key(|(index, _)| *index);
    let indices: Vec<usize> = sorted.iter().map(|(index, _)| *index).collect();
    let leaves: Vec<_> = sorted.iter().map(|(_, id)| leaf(id)).collect();
    let proof = MerkleProof::<Blake3Nodes>::new(proof.nodes.clone());
    proof.verify(*root, &indices, &leaves, leaf_count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(count: usize) -> Vec<[u8; 32]> {
        (0..count).map(|i| *blake3::hash(&(i as u64).to_le_bytes()).as_bytes()).collect()
    }

    /// Fixed vector: the commitment is recorded on the ledger.
    #[test]
    fn root_matches_fixed_vector() {
        assert_eq!(hex::encode(root(&ids(5))), "86e123d0c3209a90ef5768a0367c67bb3d04bbfc19aad8bd598f106414a17c0e");
        assert_eq!(root(&[]), [0; 32]);
    }

    proptest! {
        #[test]
        fn honest_proofs_verify_and_any_change_fails(count in 1usize..200, pick in any::<prop::sample::Index>(), flip in 0usize..32) {
            let ids = ids(count);
            let index = pick.index(count);
            let root = root(&ids);
            let proof = prove(&ids, &[index]);
            prop_assert!(verify(&root, &[(index, ids[index])], count, &proof));
            let mut other = ids[index];
            other[flip] ^= 1;
            prop_assert!(!verify(&root, &[(index, other)], count, &proof));
            if count > 1 {
                prop_assert!(!verify(&root, &[((index + 1) % count, ids[index])], count, &proof));
            }
            let mut bad_root = root;
            bad_root[flip] ^= 1;
            prop_assert!(!verify(&bad_root, &[(index, ids[index])], count, &proof));
        }

        #[test]
        fn hostile_proofs_never_panic(
            nodes in proptest::collection::vec(any::<[u8; 32]>(), 0..20),
            count in prop_oneof![0usize..100, 0usize..(1 << 40)],
            index in prop_oneof![0usize..120, any::<usize>()],
        ) {
            let proof = InclusionProof { nodes };
            prop_assert!(!verify(&[0; 32], &[(index, [1; 32])], count, &proof));
        }
    }
}
