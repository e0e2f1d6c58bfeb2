//! A replica of the ledger: the state after the last finalised block, and
//! the two ways it moves on: building a block (the sequencer) and checking
//! and applying someone else's (a follower).

use crate::apply::{Receipt, VerifiedSignatures, apply_transaction_with};
use crate::beacon::{BeaconError, BeaconSignature};
use crate::block::{
    BLOCK_VERSION, Block, BlockHeader, Finality, FinalityError, Genesis, ValidatorSet, receipts_root, sign_block,
    transactions_root,
};
use crate::encoding::{self, BLOCK_BYTES_MAX};
use crate::epoch::{begin_epoch, set_beacon};
use crate::state::LedgerState;
use crate::types::{AccountId, Digest};
use strand_core::Identity;

/// Why a follower refused a block. Its state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockRejection {
    /// Not the next height.
    #[error("block at height {found}, expected {expected}")]
    WrongHeight {
        /// Next height.
        expected: u64,
        /// Given.
        found: u64,
    },
    /// Does not extend this replica's head.
    #[error("block's parent {found} is not the head {expected}")]
    WrongParent {
        /// The head.
        expected: Digest,
        /// Given.
        found: Digest,
    },
    /// For another chain or of an unknown version.
    #[error(
        "block is for chain {found} in block version {version}; this is chain {expected} in block version {current}",
        current = crate::block::BLOCK_VERSION
    )]
    WrongChain {
        /// This chain.
        expected: Digest,
        /// Given.
        found: Digest,
        /// Block version.
        version: u16,
    },
    /// Earlier than its parent.
    #[error("block timestamp {found} is before its parent's {parent}")]
    TimestampRegression {
        /// Parent's.
        parent: u64,
        /// Given.
        found: u64,
    },
    /// Not finalised by the validator set.
    #[error("block is not finalised: {0}")]
    Finality(#[from] FinalityError),
    /// The transactions do not match the header.
    #[error("block's transactions do not match its header (altered transaction)")]
    TransactionsRoot,
    /// Too large.
    #[error("block of {bytes} bytes exceeds {BLOCK_BYTES_MAX}")]
    Oversized {
        /// Size.
        bytes: usize,
    },
    /// Re-applying gives different receipts than the header commits to.
    #[error("block's receipts root differs from the re-executed receipts")]
    ReceiptsRoot,
    /// A beacon that is not due or does not verify.
    #[error("block's beacon: {0}")]
    Beacon(#[from] BeaconError),
    /// Re-applying gives a different state.
    #[error("block's state root {claimed} differs from the re-executed {computed}")]
    StateRoot {
        /// In the header.
        claimed: Digest,
        /// Computed.
        computed: Digest,
    },
}

/// The ledger as one participant holds it.
#[derive(Clone, Debug)]
pub struct Replica {
    state: LedgerState,
    head: BlockHeader,
    verified: Option<std::sync::Arc<VerifiedSignatures>>,
}

impl Replica {
    /// A replica at genesis.
    pub fn new(genesis: &Genesis) -> Self {
        let (block, state) = genesis.block();
        Self { state, head: block.header, verified: None }
    }

    /// A replica resumed from a stored state (which holds its validators)
    /// and the header of its block.
    pub fn resume(_genesis: &Genesis, state: LedgerState, head: BlockHeader) -> Self {
        Self { state, head, verified: None }
    }

    /// Skips the signature check of transactions `verified` holds when
    /// executing blocks (kept by clones).
    pub fn with_verified_signatures(mut self, verified: std::sync::Arc<VerifiedSignatures>) -> Self {
        self.verified = Some(verified);
        self
    }

    /// The state after the last block.
    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    /// The last block's header.
    pub fn head(&self) -> &BlockHeader {
        &self.head
    }

    /// Height of the last block.
    pub fn height(&self) -> u64 {
        self.head.height
    }

    /// Executes `transactions` as the next block on a copy of the state,
    /// after the epoch boundary's work and the beacon the block carries.
    fn execute(
        &self,
        transactions: &[Vec<u8>],
        beacon: Option<&BeaconSignature>,
    ) -> Result<(LedgerState, Vec<Receipt>), BeaconError> {
        let mut state = self.state.clone();
        let height = self.head.height + 1;
        state.height = height;
        let epoch = state.params.epoch_of(height);
        let closing = self.head.hash();
        if epoch != state.params.epoch_of(self.head.height) {
            // A change of validators takes effect first: the epoch's beacon
            // is the new set's.
            crate::governance::begin_epoch(&mut state, epoch);
            // The sequencer's beacon is the hash of the block that closed the
            // previous epoch: unknown to anyone until that block existed,
            // chosen by the sequencer, which the chain trusts anyway. A
            // consortium's is the validators' threshold signature over that
            // hash, carried by a later block.
            let sequencer_beacon = state.validators.beacon_key.is_none().then_some(closing);
            begin_epoch(&mut state, epoch, sequencer_beacon, closing);
        }
        if let Some(signature) = beacon {
            let key = state.validators.beacon_key()?.ok_or(BeaconError::NoKey)?;
            let (due_epoch, due_closing) = state.beacon_due.ok_or(BeaconError::NotDue)?;
            let value = crate::beacon::verify(&key, &state.params.chain, due_epoch, &due_closing, signature)?;
            set_beacon(&mut state, due_epoch, value);
        }
        let verified = self.verified.as_deref();
        let receipts = transactions.iter().map(|bytes| apply_transaction_with(&mut state, bytes, verified)).collect();
        Ok((state, receipts))
    }

    /// The beacon the next block may carry: (epoch, hash of the block that
    /// closed the epoch before), whose threshold signature it is. `None` on
    /// a sequencer's chain or when the current epoch has its beacon.
    pub fn beacon_due(&self) -> Option<(u64, Digest)> {
        self.validators_next().beacon_key.as_ref()?;
        let params = &self.state.params;
        let next = params.epoch_of(self.head.height + 1);
        if next != params.epoch_of(self.head.height) {
            return Some((next, self.head.hash()));
        }
        self.state.beacon_due
    }

    /// The validators that finalised this replica's last block's epoch
    /// (the current set; see [`Self::validators_next`]).
    pub fn validators(&self) -> &ValidatorSet {
        &self.state.validators
    }

    /// The validators that finalise the next block: the current set, or
    /// the new one when the next block starts the epoch a change takes
    /// effect in.
    pub fn validators_next(&self) -> &ValidatorSet {
        self.state.validators_at(self.head.height + 1)
    }

    /// Builds and applies the next block's header over `transactions`,
    /// without finality evidence (a consortium proposer's path: the
    /// certificate comes after the validators vote on the header's hash),
    /// carrying `beacon` if it checks out as the one due (otherwise
    /// without: the next block can carry it).
    pub fn build(
        &mut self,
        timestamp_ms: u64,
        transactions: &[Vec<u8>],
        proposer: AccountId,
        beacon: Option<BeaconSignature>,
    ) -> (BlockHeader, Vec<Receipt>) {
        let (beacon, (mut state, receipts)) =
            match beacon.and_then(|b| Some((b, self.execute(transactions, Some(&b)).ok()?))) {
                Some((beacon, executed)) => (Some(beacon), executed),
                None => (None, self.execute(transactions, None).expect("a block without a beacon always executes")),
            };
        let header = BlockHeader {
            version: BLOCK_VERSION,
            chain: state.params.chain,
            height: self.head.height + 1,
            parent: self.head.hash(),
            timestamp_ms: timestamp_ms.max(self.head.timestamp_ms),
            transactions_root: transactions_root(transactions),
            receipts_root: receipts_root(&receipts),
            state_root: state.root(),
            proposer,
            beacon,
        };
        state.head = header.hash();
        self.state = state;
        self.head = header.clone();
        (header, receipts)
    }

    /// Builds, signs and applies the next block (the sequencer's path).
    pub fn propose(
        &mut self,
        timestamp_ms: u64,
        transactions: Vec<Vec<u8>>,
        proposer: &Identity,
    ) -> (Block, Vec<Receipt>) {
        let (header, receipts) = self.build(timestamp_ms, &transactions, AccountId::of(&proposer.public_key()), None);
        let finality = Finality::Signatures(vec![sign_block(&header.hash(), proposer)]);
        (Block { header, transactions, finality }, receipts)
    }

    /// Checks that `finality` finalises the next block, whose hash is
    /// `hash`: by the validators of its epoch, taken from the state before
    /// it; a consortium's certificate must be from the engine instance of
    /// that epoch.
    pub fn check_finality(&self, hash: &Digest, finality: &Finality) -> Result<(), FinalityError> {
        let height = self.head.height + 1;
        let epoch = self.state.params.epoch_of(height);
        if let Finality::Certificate(certificate) = finality
            && certificate.epoch != epoch
        {
            return Err(FinalityError::WrongEpoch { found: certificate.epoch, expected: epoch });
        }
        self.validators_next().check(&self.state.params.chain, hash, finality)
    }

    /// Checks `block` against this replica, finality included, and applies
    /// it (a follower's path). On any error the replica is unchanged.
    pub fn apply(&mut self, block: &Block) -> Result<Vec<Receipt>, BlockRejection> {
        if block.header.height == self.head.height + 1 {
            self.check_finality(&block.header.hash(), &block.finality)?;
        }
        let bytes = encoding::encode(block).len();
        if bytes > BLOCK_BYTES_MAX {
            return Err(BlockRejection::Oversized { bytes });
        }
        self.apply_unfinalised(&block.header, &block.transactions)
    }

    /// Applies a run of blocks of which only the last carries its own
    /// finality evidence and every earlier one is [`Finality::Descendant`]:
    /// the last block's certificate finalises its ancestors through the hash
    /// chain. All or nothing: on an error the replica is unchanged, and the
    /// error names the height of the block that failed. Returns each block's
    /// receipts and the state after it (cloning a state is O(1)).
    #[allow(clippy::type_complexity)]
    pub fn apply_run(&mut self, blocks: &[Block]) -> Result<Vec<(Vec<Receipt>, LedgerState)>, (u64, BlockRejection)> {
        let Some((last, earlier)) = blocks.split_last() else { return Ok(Vec::new()) };
        let mut next = self.clone();
        let mut receipts = Vec::with_capacity(blocks.len());
        for block in earlier {
            let height = block.header.height;
            if block.finality != Finality::Descendant {
                return Err((
                    height,
                    BlockRejection::Finality(FinalityError::Malformed("a certified block inside a run")),
                ));
            }
            let bytes = encoding::encode(block).len();
            if bytes > BLOCK_BYTES_MAX {
                return Err((height, BlockRejection::Oversized { bytes }));
            }
            let block_receipts =
                next.apply_unfinalised(&block.header, &block.transactions).map_err(|error| (height, error))?;
            receipts.push((block_receipts, next.state.clone()));
        }
        // The parent links were checked block by block; the last block's
        // evidence now finalises them all.
        let block_receipts = next.apply(last).map_err(|error| (last.header.height, error))?;
        receipts.push((block_receipts, next.state.clone()));
        *self = next;
        Ok(receipts)
    }

    /// Checks a proposed block (header and transactions) against this
    /// replica and applies it, everything but finality: what a consortium
    /// validator checks before voting. On any error the replica is
    /// unchanged.
    pub fn apply_unfinalised(
        &mut self,
        header: &BlockHeader,
        transactions: &[Vec<u8>],
    ) -> Result<Vec<Receipt>, BlockRejection> {
        let expected_height = self.head.height + 1;
        if header.height != expected_height {
            return Err(BlockRejection::WrongHeight { expected: expected_height, found: header.height });
        }
        if header.chain != self.state.params.chain || header.version != BLOCK_VERSION {
            return Err(BlockRejection::WrongChain {
                expected: self.state.params.chain,
                found: header.chain,
                version: header.version,
            });
        }
        let head_hash = self.head.hash();
        if header.parent != head_hash {
            return Err(BlockRejection::WrongParent { expected: head_hash, found: header.parent });
        }
        if header.timestamp_ms < self.head.timestamp_ms {
            return Err(BlockRejection::TimestampRegression {
                parent: self.head.timestamp_ms,
                found: header.timestamp_ms,
            });
        }
        let hash = header.hash();
        if transactions_root(transactions) != header.transactions_root {
            return Err(BlockRejection::TransactionsRoot);
        }
        let (mut state, receipts) = self.execute(transactions, header.beacon.as_ref())?;
        let computed = state.root();
        if computed != header.state_root {
            return Err(BlockRejection::StateRoot { claimed: header.state_root, computed });
        }
        if receipts_root(&receipts) != header.receipts_root {
            return Err(BlockRejection::ReceiptsRoot);
        }
        state.head = hash;
        self.state = state;
        self.head = header.clone();
        Ok(receipts)
    }
}
