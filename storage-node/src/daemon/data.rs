//! The data plane: the fragment store and its gate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use iroh_blobs::store::GcConfig;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::store::fs::options::Options;
use strand_contracts::AccountId;
use strand_net::blobs::{Gate, Operation};

use super::Node;
use crate::core::gate;

/// Opens the fragment store with garbage collection of untagged blobs (a
/// fragment is kept exactly while its tag `fragment/<hex>` exists).
pub(super) async fn open_store(directory: &Path) -> anyhow::Result<iroh_blobs::api::Store> {
    std::fs::create_dir_all(directory)?;
    let mut options = Options::new(directory);
    options.gc = Some(GcConfig { interval: Duration::from_secs(30), add_protected: None });
    let store = FsStore::load_with_opts(directory.join("blobs.db"), options).await?;
    Ok((*store).clone())
}

/// The tag that keeps a fragment in the store.
pub(super) fn tag_of(fragment: &[u8; 32]) -> String {
    format!("fragment/{}", hex::encode(fragment))
}

/// Where staged fragments are tagged: every tag of one reservation.
pub(super) fn staging_prefix(key: &crate::core::staging::Key) -> String {
    format!("{STAGING_TAGS}{}/{}/", hex::encode(key.0.0), hex::encode(key.1))
}

/// The prefix of every staging tag.
pub(super) const STAGING_TAGS: &str = "staging/";

/// Serves fragments, every request decided by the node's gate.
pub(super) fn serve(node: &Arc<Node>) -> iroh::protocol::Router {
    let decider = Arc::clone(node);
    let gate: Gate = Arc::new(move |operation, remote, fragment| {
        let requester = AccountId(remote);
        let holdings = decider.holdings();
        // One O(1) snapshot of the replica decides and dates the release.
        let ledger = decider.ledger();
        let decision = match operation {
            Operation::Get => gate::decide_get(
                &requester,
                &fragment,
                &holdings,
                &ledger,
                decider.freshness(),
                &decider.presentations(),
            ),
            Operation::Push => gate::decide_push(&requester, &fragment, &holdings).map(|()| None),
        };
        let label = match operation {
            Operation::Get => "get",
            Operation::Push => "push",
        };
        match decision {
            Ok(credential) => {
                decider.metrics.requests_served.with_label_values(&[label]).inc();
                let released = holdings.agreement_of(&fragment).filter(|_| operation == Operation::Get);
                if let Some((_, agreement)) = released {
                    let bytes = u64::from(agreement.terms.fragment_size);
                    let epoch = ledger.params.epoch_of(ledger.height);
                    if !decider.receipts().record(epoch, agreement.terms.upload, credential, requester, bytes) {
                        // More distinct readers in this epoch than a batch holds.
                        decider.metrics.receipts_dropped.inc();
                    }
                    decider.metrics.fragment_bytes_released.inc_by(bytes);
                    let reader = if credential.is_some() { "grantee" } else { "owner" };
                    decider.metrics.fragment_bytes_released_to.with_label_values(&[reader]).inc_by(bytes);
                }
                Ok(())
            }
            Err(refusal) => {
                decider.metrics.requests_refused.with_label_values(&[label, refusal.label()]).inc();
                Err(refusal.label())
            }
        }
    });
    strand_net::blobs::serve(node.endpoint.clone(), node.store.clone(), gate)
}
