//! Messages between a data owner's client and a storage node, carried by
//! libp2p request-response (`/strand/contract/1`).
//!
//! Negotiation: the owner sends a [`Proposal`] (the contract terms, the
//! fragment ids the root commits to, and where to pull the fragments from);
//! the node checks it, pulls and verifies every fragment over iroh-blobs,
//! and answers [`Response::Accepted`] with its countersignature, or
//! [`Response::Refused`] with a reason. The owner then opens the contract on
//! the ledger with both signatures.

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

/// Most memberships in one presentation.
pub const PRESENTED_FRAGMENTS_MAX: usize = 100_000;

/// What a client asks a node.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// Store these fragments under these terms.
    Propose(Proposal),
    /// Read under this credential.
    Present(Presentation),
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
}

/// Encodes a message.
pub fn encode<T: BorshSerialize>(message: &T) -> Vec<u8> {
    encoding::encode(message)
}

/// Decodes a message from a peer.
pub fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, EncodingError> {
    encoding::decode(bytes, MESSAGE_BYTES_MAX)
}
