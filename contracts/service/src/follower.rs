//! A follower: keeps its own replica of the ledger by checking and applying
//! finalised blocks from wherever they come (the sequencer's store in
//! process, the TCP service, later gossipsub), optionally persisted in its
//! own store. A forged block is refused with its reason and changes nothing.

use strand_contracts::block::Finality;
use strand_contracts::{Block, BlockRejection, Receipt, Replica};

use crate::client::{ClientError, LedgerClient};
use crate::store::{LedgerStore, StoreError};

/// Blocks asked for per request while catching up.
const CATCH_UP_BATCH_BLOCKS: u32 = 128;
/// Most blocks held waiting for a descendant's certificate (a consortium
/// finalises a run of views at once only after timeouts; hundreds in a row
/// would mean the chain stalled for minutes).
pub const RUN_BLOCKS_MAX: usize = 1024;

/// Why a follower stopped ingesting.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Bytes that are not a block.
    #[error("received bytes that are not a block: {0}")]
    Undecodable(strand_contracts::encoding::EncodingError),
    /// Too many blocks in a row waiting for a certificate.
    #[error("{RUN_BLOCKS_MAX} blocks in a row without a finality certificate")]
    RunTooLong,
    /// A block that does not check out against the replica.
    #[error("refused block {height}: {reason}")]
    Refused {
        /// Its claimed height.
        height: u64,
        /// Why.
        reason: BlockRejection,
    },
    /// The follower's own store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger service could not be asked.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A replica that follows a chain.
pub struct Follower {
    replica: Replica,
    store: Option<LedgerStore>,
    /// Blocks final only through a descendant not yet received.
    run: Vec<Block>,
}

impl Follower {
    /// A follower of `replica`'s chain, persisting to `store` if given.
    pub fn new(replica: Replica, store: Option<LedgerStore>) -> Self {
        Self { replica, store, run: Vec::new() }
    }

    /// The replica.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Writes a snapshot of the current state (at a clean shutdown), so the
    /// next start replays fewer blocks.
    pub fn snapshot(&self) -> Result<(), FollowError> {
        if let Some(store) = &self.store {
            store.snapshot(self.replica.state())?;
        }
        Ok(())
    }

    /// The next height to ask for (after the blocks held for a certificate).
    pub fn next_height(&self) -> u64 {
        self.replica.height() + 1 + self.run.len() as u64
    }

    /// Fetches and applies every block the service has beyond this
    /// replica's head.
    pub async fn catch_up(&mut self, client: &mut LedgerClient) -> Result<(), FollowError> {
        loop {
            let blocks = client.blocks(self.next_height(), CATCH_UP_BATCH_BLOCKS).await?;
            if blocks.is_empty() {
                return Ok(());
            }
            self.ingest(&blocks)?;
        }
    }

    /// Checks and applies encoded blocks in order; stops at the first that
    /// does not check out (the replica keeps everything before it). Blocks
    /// final only through a later block's certificate wait for it (across
    /// calls) and are applied with it.
    pub fn ingest(&mut self, blocks: &[Vec<u8>]) -> Result<Vec<Receipt>, FollowError> {
        let mut receipts = Vec::new();
        for bytes in blocks {
            let block = Block::from_bytes(bytes).map_err(FollowError::Undecodable)?;
            let expected = self.next_height();
            if block.header.height != expected {
                let reason = BlockRejection::WrongHeight { expected, found: block.header.height };
                return Err(FollowError::Refused { height: block.header.height, reason });
            }
            if block.finality == Finality::Descendant {
                if self.run.len() >= RUN_BLOCKS_MAX {
                    self.run.clear();
                    return Err(FollowError::RunTooLong);
                }
                self.run.push(block);
                continue;
            }
            let mut run = std::mem::take(&mut self.run);
            run.push(block);
            let mut next = self.replica.clone();
            let applied = next.apply_run(&run).map_err(|(height, reason)| FollowError::Refused { height, reason })?;
            if let Some(store) = &self.store {
                for (block, (block_receipts, state)) in run.iter().zip(&applied) {
                    store.commit_block(block, block_receipts, state)?;
                }
            }
            self.replica = next;
            receipts.extend(applied.into_iter().flat_map(|(block_receipts, _)| block_receipts));
        }
        Ok(receipts)
    }
}
