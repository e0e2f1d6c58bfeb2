//! The ledger state: everything the chain has recorded, as tables.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::block::ValidatorSet;
use crate::encoding::{self, EncodingError};
use crate::governance::{ValidatorChange, ValidatorProposal};
use crate::table::Table;
use crate::transaction::{AccessReceipt, ContractTerms, CredentialGrant, ProviderRegistration, ReadAuthority};
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
    /// The contracts it owes proofs for (see [`crate::roster`]).
    pub roster: RosterSummary,
    /// Whether it answers at all.
    pub liveness: Liveness,
    /// Its place in registration order ([`LedgerState::provider_index`]),
    /// where repair draws candidates from.
    pub index: u32,
    /// Epoch it asked to leave in ([`crate::transaction::Body::Drain`]): it
    /// gets no new contracts or repair orders, and its contracts are moved
    /// to other providers by repair.
    pub draining_since: Option<u64>,
    /// Draining: roster slots not yet queued for repair are `1..=cursor`.
    pub drain_cursor: u32,
    /// Repair orders it is working on.
    pub repairs_in_flight: u32,
    /// Epoch its last repair order expired unreported: it is named in no
    /// new order for [`crate::repair::REPAIR_BACKOFF_EPOCHS`] after (a
    /// provider with no contracts owes no proofs, so a dead one shows only
    /// here).
    pub repair_expired_at: Option<u64>,
}

/// A provider's roster of contracts owing proofs, in summary; the slots
/// themselves are in [`LedgerState::roster`]. Changed only at epoch
/// boundaries, so an epoch's schedule is fixed for the whole epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RosterSummary {
    /// Contracts in the roster (slots `1..=contracts`).
    pub contracts: u32,
    /// Their BLAKE3 chunks.
    pub chunks: u64,
    /// Their `challenges_per_epoch`, summed.
    pub demand: u64,
    /// Where the rotation starts (taken modulo `contracts`); moves on by the
    /// epoch's rotation challenges at every epoch boundary.
    pub cursor: u64,
}

/// Whether a provider answers its epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Liveness {
    /// Epochs it submitted proofs for.
    pub submitted_epochs: u64,
    /// Epochs it owed proofs and submitted nothing.
    pub missed_epochs: u64,
    /// Consecutive missed epochs up to the last one closed.
    pub missed_in_row: u16,
    /// Declared unresponsive (`missed_in_row` reached the limit) at this
    /// epoch: its contracts are being declared lost, a bounded number per
    /// epoch, until it submits again.
    pub unresponsive_since: Option<u64>,
    /// The last epoch closed while it held contracts.
    pub last_closed_epoch: Option<u64>,
    /// Missed epochs among the last 64 closed: bit `k` is a miss in epoch
    /// `last_closed_epoch - k`.
    pub recent_misses: u64,
}

impl Liveness {
    /// Records the close of `epoch`, missed or not.
    pub fn closed(&mut self, epoch: u64, missed: bool) {
        self.recent_misses = remember(self.recent_misses, self.last_closed_epoch, epoch, missed);
        self.last_closed_epoch = Some(epoch);
    }

    /// Whether the provider missed `epoch` (known for the 64 epochs up to
    /// the last closed).
    pub fn missed_in(&self, epoch: u64) -> bool {
        remembered(self.recent_misses, self.last_closed_epoch, epoch)
    }
}

impl Provider {
    /// A provider registered now with `registration`, the `index`-th one.
    pub fn registered(registration: ProviderRegistration, height: u64, index: u32) -> Self {
        Self {
            registration,
            registered_at_height: height,
            committed_bytes: 0,
            roster: RosterSummary::default(),
            liveness: Liveness::default(),
            index,
            draining_since: None,
            drain_cursor: 0,
            repairs_in_flight: 0,
            repair_expired_at: None,
        }
    }

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

impl ContractStatus {
    /// Names of the statuses, in [`Self::code`] order.
    pub const NAMES: [&'static str; 4] = ["active", "lost", "closed", "expired"];

    /// Its place in [`Self::NAMES`] (the key of `contract_counts`).
    pub fn code(&self) -> u8 {
        match self {
            Self::Active => 0,
            Self::Lost { .. } => 1,
            Self::Closed { .. } => 2,
            Self::Expired { .. } => 3,
        }
    }
}

/// Proof accounting of one contract: its checks (epochs in which its
/// provider's schedule challenged it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProofTally {
    /// Checks answered (passed or failed).
    pub submitted: u64,
    /// Checks answered correctly.
    pub passed: u64,
    /// Checks its provider's submission left unanswered.
    pub missed: u64,
    /// Checks answered wrongly.
    pub failed: u64,
    /// Consecutive failed or unanswered checks (a pass clears them),
    /// against the policy's limit.
    pub strikes: u64,
    /// Epoch of the last check, if any.
    pub last_checked_epoch: Option<u64>,
    /// Passed checks of the last 64 epochs: bit `k` is a pass in epoch
    /// `last_checked_epoch - k`. Passes are the common case: they are kept
    /// here, in the contract's own record, and only failures get a record
    /// of their own ([`LedgerState::proofs`]).
    pub recent_passes: u64,
}

/// `bits`, a bitmap of the 64 epochs up to `last` (bit `k` is epoch
/// `last - k`), moved on to `epoch` with that epoch's bit `set`.
fn remember(bits: u64, last: Option<u64>, epoch: u64, set: bool) -> u64 {
    let shift = last.map_or(64, |last| epoch.saturating_sub(last));
    let kept = if shift >= 64 { 0 } else { bits << shift };
    kept | u64::from(set)
}

/// Whether `epoch`'s bit is set in `bits`, the 64 epochs up to `last`.
fn remembered(bits: u64, last: Option<u64>, epoch: u64) -> bool {
    let Some(back) = last.and_then(|last| last.checked_sub(epoch)) else { return false };
    back < 64 && bits >> back & 1 == 1
}

impl ProofTally {
    /// Records a check in `epoch` (not before the last one).
    pub fn checked(&mut self, epoch: u64, passed: bool) {
        self.recent_passes = remember(self.recent_passes, self.last_checked_epoch, epoch, passed);
        self.last_checked_epoch = Some(epoch);
    }

    /// Whether a check in `epoch` passed (known for the 64 epochs up to the
    /// last check).
    pub fn passed_in(&self, epoch: u64) -> bool {
        remembered(self.recent_passes, self.last_checked_epoch, epoch)
    }
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
    /// Its slot in its provider's roster while it owes proofs.
    pub roster_slot: Option<u32>,
    /// The provider holding it now: the one in the terms until a repair
    /// moves it (the owner's signature on the terms and the repair order
    /// authorise the move; the id stays).
    pub holder: AccountId,
    /// Where it is in repair.
    pub repair: RepairState,
    /// Times it was moved to another provider.
    pub repairs: u32,
}

/// A contract's place in repair ([`crate::repair`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum RepairState {
    /// Not being repaired.
    #[default]
    None,
    /// Waiting for an order since an epoch (lost, or its holder drains).
    Queued {
        /// Epoch it was queued in.
        since: u64,
        /// Orders it had before (each ran past its deadline).
        attempt: u32,
        /// The repairer of the last order that ran past its deadline (not
        /// drawn again for it).
        failed: Option<AccountId>,
    },
    /// An order names a repairer.
    Ordered {
        /// The order's id.
        order: Digest,
    },
}

impl Contract {
    /// A contract opened now with `terms`, held by their provider.
    pub fn opened(terms: ContractTerms, height: u64, epoch: u64) -> Self {
        let holder = terms.provider;
        Self {
            terms,
            opened_at_height: height,
            opened_in_epoch: epoch,
            status: ContractStatus::Active,
            proofs: ProofTally::default(),
            roster_slot: None,
            holder,
            repair: RepairState::None,
            repairs: 0,
        }
    }

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

    /// BLAKE3 chunks the contract holds (its weight in the schedule).
    pub fn chunks(&self) -> u64 {
        strand_proof_of_storage::challenge::contract_chunks(self.terms.fragment_count, self.terms.fragment_size)
    }
}

/// An upload: its owner and contracts.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Upload {
    /// Who may grant and revoke.
    pub owner: AccountId,
    /// Its contracts, in the order opened.
    pub contracts: Vec<Digest>,
    /// Its contracts lost and not yet repaired (repair priority: a
    /// contract holds at most one fragment of a stripe, so this bounds the
    /// fragments any stripe lost).
    pub lost: u32,
    /// Its contracts in the repair queue.
    pub queued: u32,
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

/// Status of one check of one contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProofStatus {
    /// Answered, and the answers verified.
    Passed,
    /// Answered wrongly: why.
    Failed(Fault),
    /// Challenged, and the provider's submission carried no answer for it.
    Missed,
}

/// One check of one contract in one epoch.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProofRecord {
    /// The submission that carried (or left out) the answers.
    pub transaction: Option<Digest>,
    /// Height of the block that carried it.
    pub at_height: u64,
    /// Verdict.
    pub status: ProofStatus,
}

/// What became of a provider's epoch: its one submission, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProofSlot {
    /// The submit-proofs transaction.
    Submitted(Digest),
    /// It owed proofs and submitted nothing (recorded at the next epoch's
    /// first block).
    Missed,
}

/// Reads of one upload by one reader under one credential (or as owner),
/// summed over access batches older than the history kept in full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccessTotal {
    /// Fragments released.
    pub fragments: u64,
    /// Bytes released.
    pub bytes: u64,
    /// First epoch counted.
    pub first_epoch: u64,
    /// Last epoch counted.
    pub last_epoch: u64,
}

/// A contract's place in its provider's roster: the slot's contract, its
/// chunks, and the Fenwick-tree node over chunks that makes byte sampling
/// `O(log n)` ([`crate::roster`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RosterSlot {
    /// The contract.
    pub contract: Digest,
    /// Its chunks.
    pub chunks: u64,
    /// Fenwick node: chunks of the slots `(slot - lowbit(slot), slot]`.
    pub tree: u64,
}

/// A contract its provider's next challenges re-check first: its last check
/// failed or was missed, or a repairer accused it of serving bad bytes.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Suspect {
    /// Epoch it became suspect (re-checked from the next one).
    pub since: u64,
    /// The accusation, when a repairer made one (kept until the contract
    /// passes a check, leaves the roster, or is lost).
    pub accusation: Option<Accusation>,
}

/// A repairer's report that a holder served a fragment whose bytes did not
/// verify against its id (`ReportBadSibling`). The ledger saw no transfer:
/// the report is a claim, answered by challenging that very fragment in
/// the holder's next epochs; a failed check there is the ledger's evidence
/// (a proof record with its reason, and a strike as for any failure).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Accusation {
    /// The repairer that reported.
    pub reporter: AccountId,
    /// The repair order it read under.
    pub order: Digest,
    /// Index of the fragment in the accused contract's committed list.
    pub fragment: u32,
    /// The first 1 KiB chunk that failed (its 16 KiB group is challenged).
    pub chunk: u32,
    /// Epoch of the report.
    pub epoch: u64,
    /// The transaction that carried it.
    pub transaction: Digest,
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

/// Why a contract is repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum RepairReason {
    /// Declared lost (strikes, or an unresponsive provider).
    Lost,
    /// Its provider drains (leaves on purpose; it still holds the bytes).
    Drain,
}

/// An order to rebuild a contract's fragments on a new provider
/// ([`crate::repair`]).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RepairOrder {
    /// The contract to rebuild.
    pub contract: Digest,
    /// Its upload (the siblings a repairer may read).
    pub upload: UploadKey,
    /// The provider named to rebuild it.
    pub repairer: AccountId,
    /// The provider that held it.
    pub previous: AccountId,
    /// Why.
    pub reason: RepairReason,
    /// Epoch of the order (issued at its first block).
    pub issued_epoch: u64,
    /// Last epoch in which the repairer may report; past it the order is
    /// reassigned.
    pub deadline_epoch: u64,
    /// Orders issued for this contract before this one (0: the first).
    pub attempt: u32,
    /// Reported done: the contract moves at the next epoch's first block.
    pub reported: bool,
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
    /// Per (epoch, contract): a check that failed or went unanswered, with
    /// the reason; kept for [`PROOF_HISTORY_EPOCHS`]. (Passes are in the
    /// contract's tally.)
    pub proofs: Table<(u64, Digest), ProofRecord>,
    /// Per (epoch, provider): its one submission, or the miss; the current
    /// and previous epoch's only (the provider's liveness keeps the rest).
    pub proof_slots: Table<(u64, AccountId), ProofSlot>,
    /// Per (epoch, provider): access receipts; kept in full for
    /// [`ACCESS_HISTORY_EPOCHS`], then summed into `access_totals`.
    pub access: Table<(u64, AccountId), AccessBatch>,
    /// Per (upload, reader, authority): reads older than the full history.
    pub access_totals: Table<AccessTotalKey, AccessTotal>,
    /// Per epoch: the beacon challenges derive from (the single sequencer:
    /// hash of the block that closed the previous epoch; a consortium: its
    /// threshold signature, [`crate::beacon`]); the current and previous
    /// epoch's.
    pub beacons: Table<u64, Digest>,
    /// A consortium's beacon not yet carried by a block: (epoch, hash of
    /// the block that closed the epoch before).
    pub beacon_due: Option<(u64, Digest)>,
    /// Per (provider, slot 1..): its contracts owing proofs.
    pub roster: Table<(AccountId, u32), RosterSlot>,
    /// Per (provider, contract): contracts whose last check failed or that
    /// a repairer accused of serving bad bytes.
    pub suspects: Table<(AccountId, Digest), Suspect>,
    /// Per (epoch, contract): contracts to add to or remove from their
    /// provider's roster at that epoch's first block.
    pub roster_changes: Table<(u64, Digest), ()>,
    /// Per (epoch, contract): contracts whose term ends before that epoch.
    pub expiries: Table<(u64, Digest), ()>,
    /// Open repair orders.
    pub repair_orders: Table<Digest, RepairOrder>,
    /// Every provider by registration order (repair samples it).
    pub provider_index: Table<u32, AccountId>,
    /// Uploads with queued contracts, most lost contracts first
    /// (`u32::MAX - lost`).
    pub repair_uploads: Table<(u32, UploadKey), ()>,
    /// Queued contracts per upload, oldest first.
    pub repair_queue: Table<(UploadKey, u64, Digest), ()>,
    /// Open orders by deadline.
    pub repair_deadlines: Table<(u64, Digest), ()>,
    /// Reported orders' contracts, by the epoch they move in.
    pub repair_moves: Table<(u64, Digest), ()>,
    /// Contracts per (upload, holder): who already holds part of an upload.
    pub upload_holders: Table<(UploadKey, AccountId), u32>,
    /// Contracts per (upload, organisation of the holder when it got it).
    pub upload_domains: Table<(UploadKey, String), u32>,
    /// Contracts per status ([`ContractStatus::code`]): what operators
    /// count, without a pass over the contracts.
    pub contract_counts: Table<u8, u64>,
    /// The validators finalising blocks in the current epoch: the
    /// genesis's, until a change takes effect ([`crate::governance`]).
    pub validators: ValidatorSet,
    /// An approved change of validators, waiting for its epoch.
    pub validator_change: Option<ValidatorChange>,
    /// Open proposals to change the validators, by id.
    pub validator_proposals: Table<Digest, ValidatorProposal>,
}

/// Key of an access total: the upload, the reader, and what it read under.
pub type AccessTotalKey = (UploadKey, AccountId, ReadAuthority);

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
    proofs: Vec<((u64, Digest), ProofRecord)>,
    proof_slots: Vec<((u64, AccountId), ProofSlot)>,
    access: Vec<((u64, AccountId), AccessBatch)>,
    access_totals: Vec<(AccessTotalKey, AccessTotal)>,
    beacons: Vec<(u64, Digest)>,
    beacon_due: Option<(u64, Digest)>,
    roster: Vec<((AccountId, u32), RosterSlot)>,
    suspects: Vec<((AccountId, Digest), Suspect)>,
    roster_changes: Vec<((u64, Digest), ())>,
    expiries: Vec<((u64, Digest), ())>,
    repair_orders: Vec<(Digest, RepairOrder)>,
    provider_index: Vec<(u32, AccountId)>,
    repair_uploads: Vec<((u32, UploadKey), ())>,
    repair_queue: Vec<((UploadKey, u64, Digest), ())>,
    repair_deadlines: Vec<((u64, Digest), ())>,
    repair_moves: Vec<((u64, Digest), ())>,
    upload_holders: Vec<((UploadKey, AccountId), u32)>,
    upload_domains: Vec<((UploadKey, String), u32)>,
    contract_counts: Vec<(u8, u64)>,
    validators: ValidatorSet,
    validator_change: Option<ValidatorChange>,
    validator_proposals: Vec<(Digest, ValidatorProposal)>,
}

/// Version of the snapshot encoding (3: repair; 4: the beacon due; 5: the
/// validators and their governance; the rules of block version 5).
pub const SNAPSHOT_VERSION: u16 = 5;

/// Epochs a failed or unanswered check is kept in the state with its reason
/// (a week of one-hour epochs); it lives on in the contract's tally and in
/// the blocks.
pub const PROOF_HISTORY_EPOCHS: u64 = 168;
/// Epochs of access batches kept in full (30 days of one-hour epochs);
/// older ones are summed per (upload, reader, credential).
pub const ACCESS_HISTORY_EPOCHS: u64 = 720;

impl LedgerState {
    /// The empty state of a chain, before its genesis names validators.
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
            access_totals: Table::default(),
            beacons: Table::default(),
            beacon_due: None,
            roster: Table::default(),
            suspects: Table::default(),
            roster_changes: Table::default(),
            expiries: Table::default(),
            repair_orders: Table::default(),
            provider_index: Table::default(),
            repair_uploads: Table::default(),
            repair_queue: Table::default(),
            repair_deadlines: Table::default(),
            repair_moves: Table::default(),
            upload_holders: Table::default(),
            upload_domains: Table::default(),
            contract_counts: Table::default(),
            validators: ValidatorSet {
                ordering: crate::block::Ordering::Sequencer,
                validators: Vec::new(),
                quorum: 1,
                beacon_key: None,
            },
            validator_change: None,
            validator_proposals: Table::default(),
        }
    }

    /// The validators that finalise the block at `height`, the next one or
    /// a later one in the current epoch or the next: the scheduled change's
    /// set from its effective epoch on.
    pub fn validators_at(&self, height: u64) -> &ValidatorSet {
        match &self.validator_change {
            Some(change) if self.params.epoch_of(height) >= change.effective_epoch => &change.set,
            _ => &self.validators,
        }
    }

    /// The epoch of the current height.
    pub fn epoch(&self) -> u64 {
        self.params.epoch_of(self.height)
    }

    /// Counts a contract's move from status `from` (`None`: a new
    /// contract) to `to`.
    pub(crate) fn count_status(&mut self, from: Option<&ContractStatus>, to: &ContractStatus) {
        if let Some(from) = from {
            let count = self.contract_counts.get(&from.code()).copied().unwrap_or(0);
            self.contract_counts.insert(from.code(), count.saturating_sub(1));
        }
        let count = self.contract_counts.get(&to.code()).copied().unwrap_or(0);
        self.contract_counts.insert(to.code(), count.saturating_add(1));
    }

    /// Contracts per status, in [`ContractStatus::NAMES`] order: O(1).
    pub fn contracts_by_status(&self) -> [u64; 4] {
        std::array::from_fn(|code| self.contract_counts.get(&(code as u8)).copied().unwrap_or(0))
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
            self.access_totals.root("access_totals"),
            self.beacons.root("beacons"),
            self.roster.root("roster"),
            self.suspects.root("suspects"),
            self.roster_changes.root("roster_changes"),
            self.expiries.root("expiries"),
            self.repair_orders.root("repair_orders"),
            self.provider_index.root("provider_index"),
            self.repair_uploads.root("repair_uploads"),
            self.repair_queue.root("repair_queue"),
            self.repair_deadlines.root("repair_deadlines"),
            self.repair_moves.root("repair_moves"),
            self.upload_holders.root("upload_holders"),
            self.upload_domains.root("upload_domains"),
            self.contract_counts.root("contract_counts"),
            self.validator_proposals.root("validator_proposals"),
        ];
        // Not `head`: the state root goes into the header whose hash becomes
        // the head, so it cannot commit to it.
        let header =
            encoding::encode(&(&self.params, self.height, &self.beacon_due, &self.validators, &self.validator_change));
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
            access_totals: self.access_totals.to_entries(),
            beacons: self.beacons.to_entries(),
            beacon_due: self.beacon_due,
            roster: self.roster.to_entries(),
            suspects: self.suspects.to_entries(),
            roster_changes: self.roster_changes.to_entries(),
            expiries: self.expiries.to_entries(),
            repair_orders: self.repair_orders.to_entries(),
            provider_index: self.provider_index.to_entries(),
            repair_uploads: self.repair_uploads.to_entries(),
            repair_queue: self.repair_queue.to_entries(),
            repair_deadlines: self.repair_deadlines.to_entries(),
            repair_moves: self.repair_moves.to_entries(),
            upload_holders: self.upload_holders.to_entries(),
            upload_domains: self.upload_domains.to_entries(),
            contract_counts: self.contract_counts.to_entries(),
            validators: self.validators.clone(),
            validator_change: self.validator_change.clone(),
            validator_proposals: self.validator_proposals.to_entries(),
        })
    }

    /// A state from its snapshot encoding.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, EncodingError> {
        let snapshot: Snapshot = encoding::decode(bytes, usize::MAX)?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(EncodingError::Malformed(format!(
                "snapshot version {} is not supported (this build reads {SNAPSHOT_VERSION}; a ledger written by an \
                 older build follows older rules: start a new chain in a new data directory)",
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
            access_totals: Table::from_entries(snapshot.access_totals),
            beacons: Table::from_entries(snapshot.beacons),
            beacon_due: snapshot.beacon_due,
            roster: Table::from_entries(snapshot.roster),
            suspects: Table::from_entries(snapshot.suspects),
            roster_changes: Table::from_entries(snapshot.roster_changes),
            expiries: Table::from_entries(snapshot.expiries),
            repair_orders: Table::from_entries(snapshot.repair_orders),
            provider_index: Table::from_entries(snapshot.provider_index),
            repair_uploads: Table::from_entries(snapshot.repair_uploads),
            repair_queue: Table::from_entries(snapshot.repair_queue),
            repair_deadlines: Table::from_entries(snapshot.repair_deadlines),
            repair_moves: Table::from_entries(snapshot.repair_moves),
            upload_holders: Table::from_entries(snapshot.upload_holders),
            upload_domains: Table::from_entries(snapshot.upload_domains),
            contract_counts: Table::from_entries(snapshot.contract_counts),
            validators: snapshot.validators,
            validator_change: snapshot.validator_change,
            validator_proposals: Table::from_entries(snapshot.validator_proposals),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_and_misses_are_remembered_for_64_epochs() {
        let mut tally = ProofTally::default();
        assert!(!tally.passed_in(0));
        tally.checked(10, true);
        tally.checked(12, false);
        tally.checked(13, true);
        assert!(tally.passed_in(10) && !tally.passed_in(11) && !tally.passed_in(12) && tally.passed_in(13));
        assert!(!tally.passed_in(14), "not checked yet");
        tally.checked(13 + 63, true);
        assert!(tally.passed_in(13), "63 epochs back");
        assert!(!tally.passed_in(10), "beyond 64 epochs: forgotten");
        tally.checked(1_000, false);
        assert_eq!(tally.recent_passes, 0, "a jump of more than 64 epochs forgets everything");

        let mut liveness = Liveness::default();
        liveness.closed(5, true);
        liveness.closed(6, false);
        liveness.closed(9, true);
        assert!(liveness.missed_in(5) && !liveness.missed_in(6) && !liveness.missed_in(7) && liveness.missed_in(9));
        assert!(!liveness.missed_in(10) && !liveness.missed_in(u64::MAX));
    }
}
