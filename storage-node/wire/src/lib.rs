//! Messages between a data owner's client and a storage node, carried by
//! libp2p request-response (`/strand/contract/1`).
//!
//! Negotiation: the owner sends a [`Proposal`] (the contract terms, the
//! fragment ids the root commits to, and where to pull the fragments from);
//! the node checks it, pulls and verifies every fragment over iroh-blobs,
//! and answers [`Response::Accepted`] with its countersignature, or
//! [`Response::Refused`] with a reason. The owner then opens the contract on
//! the ledger with both signatures.
//!
//! Staging: while the owner is still encoding (the terms' roots are not
//! known yet), it sends [`Stage`] requests naming fragments as they are
//! produced, and the node pulls them right away under a reservation for the
//! upload. The final [`Proposal`] then finds them already held, so transfer
//! overlaps encoding and the owner keeps only a bounded window in memory.
//! Staged fragments that no proposal claims are released when the
//! reservation goes idle, and at the node's next start.

use borsh::{BorshDeserialize, BorshSerialize};
use strand_contracts::encoding::{self, EncodingError};
use strand_contracts::transaction::ContractTerms;
use strand_contracts::{Digest, Signature};

/// Protocol name on libp2p.
pub const CONTRACT_PROTOCOL: &str = "/strand/contract/1";
/// Largest encoded message (a proposal carries 32 bytes per fragment: this
/// allows contracts of up to ~500,000 fragments).
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// Where a node can fetch fragments: an iroh endpoint.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct FragmentSource {
    /// The iroh endpoint id (the owner's ed25519 key).
    pub endpoint: [u8; 32],
    /// Direct socket addresses, as text (`127.0.0.1:4433`).
    pub addresses: Vec<String>,
}

/// An offer of a storage contract.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// The terms; `provider` must be the node asked.
    pub terms: ContractTerms,
    /// The fragment ids, in the order `terms.fragment_root` commits to.
    pub fragment_ids: Vec<[u8; 32]>,
    /// Where to pull them from.
    pub source: FragmentSource,
    /// The upload's stripe map, committed by `terms.stripes_root`: kept by
    /// the node so a repairer can rebuild a lost contract of the upload
    /// without the owner.
    pub stripe_map: strand_contracts::stripes::StripeMap,
}

/// A fragment's place in a credential's range scope: the proof that it is
/// under the scope's `fragments_root` at `index`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ScopeMembership {
    /// Position in the scope's fragment list.
    pub index: u32,
    /// The fragment id.
    pub fragment: [u8; 32],
    /// rs_merkle proof nodes.
    pub proof: Vec<[u8; 32]>,
}

/// A grantee naming the credential it reads under. The node checks it
/// against its ledger replica now and again at every get.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Presentation {
    /// The credential id (from the granting transaction).
    pub credential: Digest,
    /// For a range scope, the fragments wanted from this node with their
    /// membership proofs; empty for a whole-upload scope.
    pub fragments: Vec<ScopeMembership>,
}

/// Fragments a node should pull now for an upload whose proposal will
/// follow. Every request of one reservation repeats the same header.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Stage {
    /// The upload id the proposal's terms will carry.
    pub upload: strand_contracts::types::UploadKey,
    /// Fragments the proposal will ask this node to store (the reservation).
    pub fragment_count: u32,
    /// Size of each fragment.
    pub fragment_size: u32,
    /// Where to pull them from.
    pub source: FragmentSource,
    /// The fragments to pull now.
    pub fragment_ids: Vec<[u8; 32]>,
}

/// Most fragments named in one [`Stage`] request.
pub const STAGED_FRAGMENTS_MAX: usize = 4096;

/// Most memberships in one presentation.
pub const PRESENTED_FRAGMENTS_MAX: usize = 100_000;

/// What a client asks a node.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// Store these fragments under these terms.
    Propose(Proposal),
    /// Read under this credential.
    Present(Presentation),
    /// Pull these fragments now, ahead of the proposal.
    Stage(Stage),
    /// A repairer opens repair reads under a ledger repair order: the
    /// node answers with the upload's stripe map and releases each fragment
    /// of the upload it holds once, while the order is open.
    Repair {
        /// The order's id.
        order: Digest,
    },
}

/// Why a node refused a proposal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, BorshSerialize, BorshDeserialize)]
pub enum Refusal {
    /// The terms name another provider.
    #[error("the terms name another provider")]
    NotForThisNode,
    /// The fragment list does not match the terms.
    #[error("the fragment ids do not match the terms' root or count")]
    FragmentsMismatch,
    /// Not enough free space.
    #[error("not enough free capacity: {free_bytes} bytes free, {needed_bytes} needed")]
    NoCapacity {
        /// Free bytes.
        free_bytes: u64,
        /// Needed bytes.
        needed_bytes: u64,
    },
    /// The terms are outside what this node accepts.
    #[error("unacceptable terms: {0}")]
    Terms(String),
    /// Fetching the fragments failed.
    #[error("could not fetch the fragments: {0}")]
    Fetch(String),
    /// The node is not ready (not registered, ledger behind).
    #[error("node not ready: {0}")]
    NotReady(String),
    /// A fragment named is held here for another owner: a fragment belongs
    /// to the contracts that hold it, and ciphertext is never shared.
    #[error("fragment {fragment} is held here for another owner")]
    HeldForAnotherOwner {
        /// The fragment (hex).
        fragment: String,
    },
    /// Too much in flight from this peer or on this node: try later.
    #[error("busy: {0}")]
    Busy(String),
    /// The stripe map does not match the terms or the fragment list.
    #[error("the stripe map does not match: {0}")]
    StripeMap(String),
}

impl Refusal {
    /// Every [`Self::label`] (metrics show each from the start, at zero).
    pub const LABELS: [&'static str; 9] = [
        "not_for_this_node",
        "fragments_mismatch",
        "no_capacity",
        "terms",
        "fetch",
        "not_ready",
        "held_for_another_owner",
        "busy",
        "stripe_map",
    ];

    /// A short fixed label (metrics, logs).
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotForThisNode => "not_for_this_node",
            Self::FragmentsMismatch => "fragments_mismatch",
            Self::NoCapacity { .. } => "no_capacity",
            Self::Terms(_) => "terms",
            Self::Fetch(_) => "fetch",
            Self::NotReady(_) => "not_ready",
            Self::HeldForAnotherOwner { .. } => "held_for_another_owner",
            Self::Busy(_) => "busy",
            Self::StripeMap(_) => "stripe_map",
        }
    }
}

/// What a node answers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Response {
    /// Stored; the provider's signature over the terms.
    Accepted {
        /// The contract id.
        contract: Digest,
        /// The provider's countersignature.
        signature: Signature,
    },
    /// Not stored.
    Refused(Refusal),
    /// The presentation holds: this many fragments here are open to the
    /// requester (while the credential stays valid).
    Presented {
        /// Fragments opened.
        fragments: u32,
    },
    /// The presentation was refused: the gate's reason code
    /// (`no_credential`, `not_grantee`, `wrong_upload`, `expired`,
    /// `revoked`, `out_of_scope`, `ledger_too_stale`, `busy`).
    Denied {
        /// The reason code.
        code: String,
    },
    /// The staged fragments are held (until the proposal, or until the
    /// reservation goes idle).
    Staged {
        /// Fragments of this upload now held here.
        fragments: u32,
    },
    /// Repair reads are open: the upload's stripe map (the repairer checks
    /// it against the terms' `stripes_root`).
    RepairOpen {
        /// The map.
        stripe_map: strand_contracts::stripes::StripeMap,
    },
}

/// Encodes a message.
pub fn encode<T: BorshSerialize>(message: &T) -> Vec<u8> {
    encoding::encode(message)
}

/// Decodes a message from a peer.
pub fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, EncodingError> {
    encoding::decode(bytes, MESSAGE_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Regenerating these vectors is an explicit approval of a new format
    /// (and calls for a new protocol name).
    #[test]
    fn staging_messages_match_fixed_vectors() {
        let stage = Request::Stage(Stage {
            upload: [7; 16],
            fragment_count: 3,
            fragment_size: 1 << 20,
            source: FragmentSource { endpoint: [9; 32], addresses: vec!["127.0.0.1:4433".into()] },
            fragment_ids: vec![[1; 32], [2; 32]],
        });
        let encoded = encode(&stage);
        // Variant 2 (Stage), upload id, count and size (LE), source endpoint,
        // one address ("127.0.0.1:4433"), two fragment ids.
        assert_eq!(
            hex(&encoded),
            concat!(
                "020707070707070707070707070707070703000000000010000909090909090909090909090909090909090909090909",
                "090909090909090909010000000e0000003132372e302e302e313a343433330200000001010101010101010101010101",
                "010101010101010101010101010101010101010202020202020202020202020202020202020202020202020202020202",
                "020202",
            )
        );
        assert_eq!(decode::<Request>(&encoded).expect("decodes"), stage);
        let staged = Response::Staged { fragments: 2 };
        let encoded = encode(&staged);
        // Variant 4 (Staged), count (LE).
        assert_eq!(hex(&encoded), "0402000000");
        assert_eq!(decode::<Response>(&encoded).expect("decodes"), staged);
    }

    /// Refusals added in version 1 of the protocol after the first ones:
    /// appended variants, so the earlier ones keep their tags.
    #[test]
    fn refusal_fixed_vectors() {
        let held = Response::Refused(Refusal::HeldForAnotherOwner { fragment: "ab".into() });
        // Variant 1 (Refused), refusal variant 6, string "ab".
        assert_eq!(hex(&encode(&held)), "0106020000006162");
        let busy = Response::Refused(Refusal::Busy("x".into()));
        assert_eq!(hex(&encode(&busy)), "01070100000078");
        assert_eq!(hex(&encode(&Response::Refused(Refusal::NotForThisNode))), "0100");
        for refusal in [held, busy] {
            assert_eq!(decode::<Response>(&encode(&refusal)).expect("decodes"), refusal);
        }
    }

    #[test]
    fn truncated_or_padded_messages_are_refused() {
        let encoded = encode(&Response::Staged { fragments: 2 });
        for length in 0..encoded.len() {
            assert!(decode::<Response>(&encoded[..length]).is_err(), "truncated to {length}");
        }
        let mut padded = encoded.clone();
        padded.push(0);
        assert!(decode::<Response>(&padded).is_err());
    }
}
