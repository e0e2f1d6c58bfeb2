//! The ledger state: everything the chain has recorded, as tables.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::encoding::{self, EncodingError};
use crate::table::Table;
use crate::transaction::{AccessReceipt, ContractTerms, CredentialGrant, ProviderRegistration};
use crate::types::{AccountId, Digest, UploadKey};
pub use strand_proof_of_storage::answers::Fault;

/// Chain-wide constants fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChainParams {
    /// The chain id (hash of the genesis configuration).
    pub chain: Digest,
    /// Blocks per epoch; epochs are derived from heights.
    pub epoch_blocks: u64,
}

impl ChainParams {
    /// The epoch a height belongs to.
    pub fn epoch_of(&self, height: u64) -> u64 {
        height / self.epoch_blocks
    }
}

/// An account's replay protection.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    /// Nonce of the last transaction that counted (0: none yet).
    pub nonce: u64,
}

/// A registered provider.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Provider {
    /// Its latest registration.
    pub registration: ProviderRegistration,
    /// Height of its first registration.
    pub registered_at_height: u64,
    /// Bytes promised under active contracts.
    pub committed_bytes: u64,
}

impl Provider {
    /// Capacity not yet promised.
    pub fn free_bytes(&self) -> u64 {
        self.registration.capacity_bytes.saturating_sub(self.committed_bytes)
    }
}

/// Where a contract is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ContractStatus {
    /// Storing, owes proofs.
    Active,
    /// Closed by its owner at a height.
    Closed {
        /// Height of the close.
        at_height: u64,
    },
    /// Its term ended.
    Expired {
        /// First epoch after the term.
        at_epoch: u64,
    },
    /// Too many strikes: its fragments count as lost (repair acts on it).
    Lost {
        /// Epoch at which the threshold was reached.
        at_epoch: u64,
    },
}

/// Proof accounting of one contract.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProofTally {
    /// Epochs answered (passed or failed).
    pub submitted: u64,
    /// Epochs answered correctly.
    pub passed: u64,
    /// Epochs with no answer by the deadline.
    pub missed: u64,
    /// Epochs answered wrongly.
    pub failed: u64,
    /// Missed plus failed epochs, against the policy's limit.
    pub strikes: u64,
}

/// A storage contract on the ledger.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Contract {
    /// The agreed terms.
    pub terms: ContractTerms,
    /// Height of the block that opened it.
    pub opened_at_height: u64,
    /// Epoch it was opened in; proofs are owed from the next one.
    pub opened_in_epoch: u64,
    /// Its state.
    pub status: ContractStatus,
    /// Its proof accounting.
    pub proofs: ProofTally,
}

impl Contract {
    /// First epoch for which proofs are owed.
    pub fn first_proof_epoch(&self) -> u64 {
        self.opened_in_epoch + 1
    }

    /// Last epoch of the term.
    pub fn last_epoch(&self) -> u64 {
        self.opened_in_epoch + u64::from(self.terms.term_epochs)
    }

    /// Whether proofs are owed for `epoch`.
    pub fn owes_proofs_for(&self, epoch: u64) -> bool {
        self.status == ContractStatus::Active && (self.first_proof_epoch()..=self.last_epoch()).contains(&epoch)
    }

    /// Bytes the contract promises.
    pub fn bytes(&self) -> u64 {
        u64::from(self.terms.fragment_count) * u64::from(self.terms.fragment_size)
    }
}

/// An upload: its owner and contracts.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Upload {
    /// Who may grant and revoke.
    pub owner: AccountId,
    /// Its contracts, in the order opened.
    pub contracts: Vec<Digest>,
}

/// A granted credential.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Credential {
    /// As granted.
    pub grant: CredentialGrant,
    /// Height of the grant.
    pub granted_at_height: u64,
    /// Height of the revocation, effective from that block.
    pub revoked_at_height: Option<u64>,
}

/// Status of one epoch's answers for one contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProofStatus {
    /// Answered, and the answers verified.
    Passed,
    /// Answered wrongly: why.
    Failed(Fault),
    /// No answer by the epoch's last block.
    Missed,
}

/// One epoch's answers for one contract.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProofRecord {
    /// The transaction that carried them (none for a missed epoch).
    pub transaction: Option<Digest>,
    /// Height of the block that carried them, or that recorded the miss.
    pub at_height: u64,
    /// Verdict.
    pub status: ProofStatus,
}

/// One provider's access receipts for one epoch.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccessBatch {
    /// The transaction that carried them.
    pub transaction: Digest,
    /// Height of the block.
    pub at_height: u64,
    /// What was released.
    pub receipts: Vec<AccessReceipt>,
}

/// An order to rebuild lost fragments on a new provider (issued by the
/// repair rules; none are issued yet).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RepairOrder {
    /// The contract whose fragments were lost.
    pub lost_contract: Digest,
    /// The provider named to rebuild them.
    pub repairer: AccountId,
    /// Height of the order.
    pub at_height: u64,
}

/// The whole ledger state after some block.
#[derive(Clone, Debug)]
pub struct LedgerState {
    /// Chain constants.
    pub params: ChainParams,
    /// Height of the last applied block.
    pub height: u64,
    /// Hash of the last applied block.
    pub head: Digest,
    /// Nonces.
    pub accounts: Table<AccountId, Account>,
    /// Registered providers.
    pub providers: Table<AccountId, Provider>,
    /// Storage contracts.
    pub contracts: Table<Digest, Contract>,
    /// Uploads.
    pub uploads: Table<UploadKey, Upload>,
    /// Credentials.
    pub credentials: Table<Digest, Credential>,
    /// Per (contract, epoch): the answers recorded.
    pub proofs: Table<(Digest, u64), ProofRecord>,
    /// Per (provider, epoch): the submit-proofs transaction (one slot each).
    pub proof_slots: Table<(AccountId, u64), Digest>,
    /// Per (provider, epoch): access receipts.
    pub access: Table<(AccountId, u64), AccessBatch>,
    /// Per epoch: the beacon challenges derive from (hash of the block that
    /// closed the previous epoch).
    pub beacons: Table<u64, Digest>,
    /// Open repair orders.
    pub repair_orders: Table<Digest, RepairOrder>,
}

/// The encoded form of a state, for snapshots.
#[derive(BorshSerialize, BorshDeserialize)]
struct Snapshot {
    version: u16,
    params: ChainParams,
    height: u64,
    head: Digest,
    accounts: Vec<(AccountId, Account)>,
    providers: Vec<(AccountId, Provider)>,
    contracts: Vec<(Digest, Contract)>,
    uploads: Vec<(UploadKey, Upload)>,
    credentials: Vec<(Digest, Credential)>,
    proofs: Vec<((Digest, u64), ProofRecord)>,
    proof_slots: Vec<((AccountId, u64), Digest)>,
    access: Vec<((AccountId, u64), AccessBatch)>,
    beacons: Vec<(u64, Digest)>,
    repair_orders: Vec<(Digest, RepairOrder)>,
}

/// Version of the snapshot encoding.
pub const SNAPSHOT_VERSION: u16 = 1;

impl LedgerState {
    /// The empty state of a chain.
    pub fn new(params: ChainParams) -> Self {
        Self {
            params,
            height: 0,
            head: Digest::default(),
            accounts: Table::default(),
            providers: Table::default(),
            contracts: Table::default(),
            uploads: Table::default(),
            credentials: Table::default(),
            proofs: Table::default(),
            proof_slots: Table::default(),
            access: Table::default(),
            beacons: Table::default(),
            repair_orders: Table::default(),
        }
    }

    /// The epoch of the current height.
    pub fn epoch(&self) -> u64 {
        self.params.epoch_of(self.height)
    }

    /// The state root: a commitment to the height and every table.
    pub fn root(&self) -> Digest {
        let roots = [
            self.accounts.root("accounts"),
            self.providers.root("providers"),
            self.contracts.root("contracts"),
            self.uploads.root("uploads"),
            self.credentials.root("credentials"),
            self.proofs.root("proofs"),
            self.proof_slots.root("proof_slots"),
            self.access.root("access"),
            self.beacons.root("beacons"),
            self.repair_orders.root("repair_orders"),
        ];
        // Not `head`: the state root goes into the header whose hash becomes
        // the head, so it cannot commit to it.
        let header = encoding::encode(&(&self.params, self.height));
        Digest::of("strand state root v1", &[&header, roots.as_flattened()])
    }

    /// The snapshot encoding.
    pub fn to_snapshot(&self) -> Vec<u8> {
        encoding::encode(&Snapshot {
            version: SNAPSHOT_VERSION,
            params: self.params.clone(),
            height: self.height,
            head: self.head,
            accounts: self.accounts.to_entries(),
            providers: self.providers.to_entries(),
            contracts: self.contracts.to_entries(),
            uploads: self.uploads.to_entries(),
            credentials: self.credentials.to_entries(),
            proofs: self.proofs.to_entries(),
            proof_slots: self.proof_slots.to_entries(),
            access: self.access.to_entries(),
            beacons: self.beacons.to_entries(),
            repair_orders: self.repair_orders.to_entries(),
        })
    }

    /// A state from its snapshot encoding.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, EncodingError> {
        let snapshot: Snapshot = encoding::decode(bytes, usize::MAX)?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(EncodingError::Malformed(format!(
                "snapshot version {} is not supported (this build reads {SNAPSHOT_VERSION})",
                snapshot.version
            )));
        }
        Ok(Self {
            params: snapshot.params,
            height: snapshot.height,
            head: snapshot.head,
            accounts: Table::from_entries(snapshot.accounts),
            providers: Table::from_entries(snapshot.providers),
            contracts: Table::from_entries(snapshot.contracts),
            uploads: Table::from_entries(snapshot.uploads),
            credentials: Table::from_entries(snapshot.credentials),
            proofs: Table::from_entries(snapshot.proofs),
            proof_slots: Table::from_entries(snapshot.proof_slots),
            access: Table::from_entries(snapshot.access),
            beacons: Table::from_entries(snapshot.beacons),
            repair_orders: Table::from_entries(snapshot.repair_orders),
        })
    }
}
