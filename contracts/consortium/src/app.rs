//! The Strand application inside the engine: builds proposals from the
//! mempool on the post-state of their parent, verifies others' proposals by
//! re-executing them, and applies finalised blocks (with their certificate)
//! to the finalised replica and its durable store, in height order.
//!
//! Blocks are proposed and voted on before they are final, and several
//! forks may be live: the post-state of every block proposed or verified and
//! not yet final is kept by hash (a state clone is O(1)); those at or below
//! the finalised height are dropped when a block becomes final.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use commonware_consensus::marshal::Update;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::{Context, Finalization};
use commonware_consensus::{Application, Block as _, Reporter};
use commonware_cryptography::{Digested, Digestible as _, ed25519};
use commonware_runtime::Clock;
use commonware_utils::Acknowledgement as _;
use futures::channel::mpsc;
use futures::{FutureExt as _, StreamExt as _};
use strand_contracts::apply::VerifiedSignatures;
use strand_contracts::block::{Certificate, Finality};
use strand_contracts::mempool::Mempool;
use strand_contracts::{AccountId, Block, LedgerState, Receipt, Replica, Signature};

use crate::beacon::Beacons;
use crate::block::{Candidate, Digest};

/// Transaction hashes remembered as signature-checked (about 64 bytes
/// each).
pub const VERIFIED_SIGNATURES_MAX: usize = 200_000;

/// How often the beacon exchange looks at the finalised replica.
pub const BEACON_POLL: Duration = Duration::from_millis(100);
/// How often a validator sends its beacon share again while the beacon is
/// due (peers that restarted or were cut off get it).
pub const BEACON_RESEND: Duration = Duration::from_secs(1);

/// The engine's proposal context.
pub type Ctx = Context<Digest, ed25519::PublicKey>;

/// How far ahead of a validator's clock a proposal's timestamp may be.
pub const TIMESTAMP_AHEAD_MAX: Duration = Duration::from_secs(10);

/// Where finalised blocks go: the validator's ledger store, or a simulated
/// disk. Called before the engine is told the block was processed, so a
/// block acknowledged to the engine is durable.
pub trait Ledger: Send + 'static {
    /// Commits a finalised block with its receipts and the state after it.
    fn commit(&mut self, block: &Block, receipts: &[Receipt], state: &LedgerState) -> Result<(), String>;

    /// Called after a block is committed, with the hashes of transactions
    /// the new state made stale in the mempool (not included, nonce used).
    fn dropped(&mut self, _stale: &[strand_contracts::Digest]) {}
}

/// How large and how frequent proposals are.
#[derive(Clone, Copy, Debug)]
pub struct BlockLimits {
    /// Most transactions.
    pub transactions_max: usize,
    /// Most transaction bytes.
    pub bytes_max: usize,
    /// Least time between a block's timestamp and its parent's: a leader
    /// waits this long after its parent before proposing, so an idle chain
    /// does not spin (and epochs, counted in blocks, keep their length in
    /// time). Keep the leader timeout well above it.
    pub interval: Duration,
}

impl Default for BlockLimits {
    fn default() -> Self {
        Self { transactions_max: 5_000, bytes_max: 8 << 20, interval: Duration::from_millis(500) }
    }
}

struct Shared {
    finalised: Replica,
    /// Post-states of blocks proposed or verified, not yet final, by hash.
    /// With the block's receipts: a block that becomes final is committed
    /// from here, without executing it again.
    pending: HashMap<strand_contracts::Digest, (Replica, Vec<Receipt>)>,
    mempool: Arc<Mutex<Mempool>>,
    ledger: Box<dyn Ledger>,
}

/// The application: cheap to clone, all clones share one state.
#[derive(Clone)]
pub struct App {
    shared: Arc<Mutex<Shared>>,
    beacons: Arc<Mutex<Beacons>>,
    verified: Arc<VerifiedSignatures>,
    account: AccountId,
    limits: BlockLimits,
    finalised: mpsc::UnboundedSender<(Digested<Candidate>, commonware_utils::acknowledgement::Exact)>,
}

/// Finalised blocks waiting for their certificate and commit: the other
/// half of [`App::new`], run by [`App::apply_finalised`].
pub struct Finalised(mpsc::UnboundedReceiver<(Digested<Candidate>, commonware_utils::acknowledgement::Exact)>);

/// The account of an engine key.
pub fn account(key: &ed25519::PublicKey) -> AccountId {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(key.as_ref());
    AccountId(bytes)
}

/// Strand's certificate from the engine's finalization.
pub fn certificate(finalization: &Finalization<Scheme, Digest>) -> Certificate {
    let round = finalization.proposal.round;
    let evidence = &finalization.certificate;
    Certificate {
        epoch: round.epoch().get(),
        view: round.view().get(),
        parent_view: finalization.proposal.parent.get(),
        signers: evidence.signers.iter().map(|signer| signer.get()).collect(),
        signatures: evidence
            .signatures
            .iter()
            .map(|signature| {
                let mut bytes = [0u8; 64];
                bytes.copy_from_slice(signature.get().map(|s| s.as_ref()).unwrap_or(&[0u8; 64][..]));
                Signature(bytes)
            })
            .collect(),
    }
}

fn now_ms(clock: &impl Clock) -> u64 {
    clock.current().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl App {
    /// An application over `finalised` (the replica loaded from the store),
    /// proposing as `account` from `mempool`, with this validator's beacon
    /// share.
    pub fn new(
        finalised: Replica,
        ledger: Box<dyn Ledger>,
        mempool: Arc<Mutex<Mempool>>,
        account: AccountId,
        limits: BlockLimits,
        beacons: Beacons,
    ) -> (Self, Finalised) {
        let (sender, receiver) = mpsc::unbounded();
        let verified = Arc::new(VerifiedSignatures::new(VERIFIED_SIGNATURES_MAX));
        let finalised = finalised.with_verified_signatures(Arc::clone(&verified));
        let shared = Shared { finalised, pending: HashMap::new(), mempool, ledger };
        let app = Self {
            shared: Arc::new(Mutex::new(shared)),
            beacons: Arc::new(Mutex::new(beacons)),
            verified,
            account,
            limits,
            finalised: sender,
        };
        (app, Finalised(receiver))
    }

    /// Signatures this validator checked (its mempool's admissions):
    /// executing a proposal skips them.
    pub fn verified_signatures(&self) -> &VerifiedSignatures {
        &self.verified
    }

    /// The beacon shares and signatures.
    pub fn beacons(&self) -> MutexGuard<'_, Beacons> {
        self.beacons.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs the beacon's exchange until the channel closes: signs this
    /// validator's share once the finalised replica shows a beacon due (its
    /// head closed an epoch, or a block since has not carried the beacon),
    /// sends it to every validator and again every
    /// [`BEACON_RESEND`] while it is due, and keeps the valid shares peers
    /// send.
    pub async fn exchange_beacon<E, S, R>(&self, clock: E, (mut sender, mut receiver): (S, R))
    where
        E: Clock,
        S: commonware_p2p::Sender<PublicKey = ed25519::PublicKey>,
        R: commonware_p2p::Receiver<PublicKey = ed25519::PublicKey>,
    {
        // The share sent last (signed once per due beacon), and when.
        let mut sent: Option<((u64, strand_contracts::Digest), Vec<u8>, std::time::SystemTime)> = None;
        let mut epoch = self.finalised().state().epoch();
        let mut poll = clock.current() + BEACON_POLL;
        loop {
            // A fixed deadline, so a stream of peers' messages cannot put
            // off this validator's own poll.
            futures::select! {
                received = receiver.recv().fuse() => {
                    let Ok((peer, bytes)) = received else { return };
                    if let Err(rejection) = self.beacons().receive(&account(&peer), bytes.as_ref(), epoch) {
                        tracing::debug!(%peer, %rejection, "consortium.beacon share refused");
                    }
                    continue;
                }
                _ = clock.sleep_until(poll).fuse() => {}
            }
            poll = clock.current() + BEACON_POLL;
            // Looked at on the poll only (not once per message a peer sends).
            let replica = self.finalised();
            epoch = replica.state().epoch();
            let Some(due) = replica.beacon_due() else { continue };
            // The due epoch's validators make its beacon (a change of
            // validators brings their key).
            let params = &replica.state().params;
            let set = replica.state().validators_at(due.0.saturating_mul(params.epoch_blocks));
            if let Err(error) = self.beacons().follow(set) {
                tracing::error!(%error, "consortium.beacon the validators' beacon key does not decode");
                continue;
            }
            let now = clock.current();
            let message = match sent.take() {
                Some((last, message, at)) if last == due => {
                    if now.duration_since(at).unwrap_or_default() < BEACON_RESEND {
                        sent = Some((last, message, at));
                        continue;
                    }
                    message
                }
                _ => match self.beacons().sign(due.0, due.1) {
                    Some(message) => message,
                    // No share of this key: others make the beacon.
                    None => continue,
                },
            };
            let _ = sender.send(commonware_p2p::Recipients::All, message.clone(), false);
            sent = Some((due, message, now));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The finalised replica.
    pub fn finalised(&self) -> Replica {
        self.lock().finalised.clone()
    }

    /// The replica after `first` (the newest block of `ancestry`'s chain),
    /// re-executing any ancestors not yet known back to the finalised head.
    /// `None` if the chain does not extend the finalised head, or a block in
    /// it does not check out.
    async fn after(&self, first: Digested<Candidate>, ancestry: &mut impl Ancestry<Candidate>) -> Option<Replica> {
        let mut chain = vec![first];
        loop {
            let oldest = chain.last().expect("non-empty").inner();
            let (hash, parent_hash, height) = (oldest.hash(), oldest.header.parent, oldest.header.height);
            {
                let shared = self.lock();
                let head = shared.finalised.head().hash();
                let known = if hash == head {
                    // The finalised head itself.
                    chain.pop();
                    Some(shared.finalised.clone())
                } else if let Some((replica, _)) = shared.pending.get(&hash) {
                    chain.pop();
                    Some(replica.clone())
                } else if parent_hash == head {
                    Some(shared.finalised.clone())
                } else {
                    shared.pending.get(&parent_hash).map(|(replica, _)| replica.clone())
                };
                if let Some(mut replica) = known {
                    drop(shared);
                    // Apply the unknown blocks, oldest first.
                    for block in chain.iter().rev() {
                        let receipts =
                            replica.apply_unfinalised(&block.inner().header, &block.inner().transactions).ok()?;
                        self.lock().pending.insert(block.inner().hash(), (replica.clone(), receipts));
                    }
                    return Some(replica);
                }
                if height <= shared.finalised.height() {
                    return None;
                }
            }
            chain.push(ancestry.next().await?);
        }
    }

    /// Applies finalised blocks in order as the engine delivers them: each
    /// gets its certificate from `finalizations` (or is final through a
    /// descendant's), is checked, committed, and only then acknowledged. A
    /// block already applied (redelivered after a restart) is acknowledged
    /// again without change.
    pub async fn apply_finalised<F, Fut>(&self, mut finalised: Finalised, finalizations: F)
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Option<Finalization<Scheme, Digest>>>,
    {
        while let Some((block, acknowledgement)) = finalised.0.next().await {
            let candidate = block.inner();
            let height = candidate.header.height;
            if height <= self.lock().finalised.height() {
                acknowledgement.acknowledge();
                continue;
            }
            let finality = match finalizations(height).await {
                Some(finalization) if finalization.proposal.payload == block.digest() => {
                    Finality::Certificate(certificate(&finalization))
                }
                _ => Finality::Descendant,
            };
            let block =
                Block { header: candidate.header.clone(), transactions: candidate.transactions.clone(), finality };
            let mut shared = self.lock();
            let hash = block.header.hash();
            let executed = shared
                .pending
                .get(&hash)
                .filter(|(replica, _)| {
                    block.header.parent == shared.finalised.head().hash() && replica.head().hash() == hash
                })
                .cloned();
            let (next, applied) = match executed {
                // Executed when it was proposed or verified, on this same
                // parent: only the certificate is left to check.
                Some((next, receipts)) => {
                    let checked = match &block.finality {
                        Finality::Descendant => Ok(()),
                        finality => shared.finalised.check_finality(&hash, finality),
                    };
                    (next, checked.map(|()| receipts).map_err(strand_contracts::BlockRejection::from))
                }
                None => {
                    let mut next = shared.finalised.clone();
                    let applied = if block.finality == Finality::Descendant {
                        // The engine finalised it through a descendant it
                        // already verified; followers check that
                        // descendant's certificate.
                        next.apply_unfinalised(&block.header, &block.transactions)
                    } else {
                        next.apply(&block)
                    };
                    (next, applied)
                }
            };
            let receipts = match applied {
                Ok(receipts) => receipts,
                Err(error) => {
                    // The engine finalised a block this replica refuses:
                    // never acknowledge it (the engine stops delivering),
                    // and say so loudly.
                    tracing::error!(height, %error, "consortium.apply a finalised block does not check out; halting delivery");
                    return;
                }
            };
            if let Err(error) = shared.ledger.commit(&block, &receipts, next.state()) {
                tracing::error!(height, %error, "consortium.apply cannot commit a finalised block; halting delivery");
                return;
            }
            let included: std::collections::HashSet<strand_contracts::Digest> =
                receipts.iter().map(|receipt| receipt.transaction).collect();
            let stale: Vec<strand_contracts::Digest> = {
                let mut mempool = shared.mempool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                mempool.prune(next.state()).into_iter().filter(|hash| !included.contains(hash)).collect()
            };
            shared.ledger.dropped(&stale);
            shared.pending.retain(|_, (replica, _)| replica.height() > height);
            shared.finalised = next;
            drop(shared);
            acknowledgement.acknowledge();
        }
    }
}

impl<E: Clock + Send + 'static> Application<E> for App {
    type SigningScheme = Scheme;
    type Context = Ctx;
    type Block = Candidate;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, _context): (E, Ctx),
        mut ancestry: impl Ancestry<Candidate>,
        _: (),
    ) -> Option<Digested<Candidate>> {
        let parent = ancestry.next().await?;
        let due = parent.inner().header.timestamp_ms.saturating_add(self.limits.interval.as_millis() as u64);
        let now = now_ms(&clock);
        if now < due {
            clock.sleep(Duration::from_millis(due - now)).await;
        }
        let mut replica = self.after(parent, &mut ancestry).await?;
        let transactions = {
            let shared = self.lock();
            let mempool = shared.mempool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            mempool.select(replica.state(), self.limits.transactions_max, self.limits.bytes_max)
        };
        // The beacon, if one is due and this validator has recovered it
        // (otherwise a later block carries it).
        let beacon = replica.beacon_due().and_then(|(epoch, closing)| self.beacons().recovered(epoch, &closing));
        let (header, receipts) = replica.build(now_ms(&clock), &transactions, self.account, beacon);
        let candidate = Candidate::new(header, transactions);
        let hash = candidate.hash();
        self.lock().pending.insert(hash, (replica, receipts));
        Some(Digested::precomputed(candidate, crate::block::digest(&hash)))
    }

    async fn verify(&mut self, (clock, context): (E, Ctx), mut ancestry: impl Ancestry<Candidate>) -> bool {
        let Some(candidate) = ancestry.next().await else { return false };
        let Some(parent) = ancestry.next().await else { return false };
        let header = &candidate.inner().header;
        if candidate.parent() != parent.digest() || header.proposer != account(&context.leader) {
            return false;
        }
        if header.timestamp_ms > now_ms(&clock).saturating_add(TIMESTAMP_AHEAD_MAX.as_millis() as u64) {
            tracing::warn!(height = header.height, "consortium.verify a proposal from the future");
            return false;
        }
        let Some(mut replica) = self.after(parent, &mut ancestry).await else { return false };
        match replica.apply_unfinalised(header, &candidate.inner().transactions) {
            Ok(receipts) => {
                self.lock().pending.insert(candidate.inner().hash(), (replica, receipts));
                true
            }
            Err(error) => {
                tracing::warn!(height = header.height, %error, "consortium.verify refused a proposal");
                false
            }
        }
    }
}

impl Reporter for App {
    type Activity = Update<Candidate>;

    fn report(&mut self, update: Update<Candidate>) -> commonware_actor::Feedback {
        if let Update::Block(block, acknowledgement) = update {
            // Applied in order by `apply_finalised`; the engine delivers the
            // next block only after this one is acknowledged.
            let _ = self.finalised.unbounded_send((block, acknowledgement));
        }
        commonware_actor::Feedback::Ok
    }
}
