//! `strand ledger`: inspect the chain. Answers about accounts come from the
//! client's own replica (`$STRAND_HOME/ledger/<chain>.redb`), kept by
//! checking every block, so a lying service cannot invent contracts or
//! credentials.

use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};
use strand_contracts::block::Genesis;
use strand_contracts::query;
use strand_contracts::state::ContractStatus;
use strand_contracts::transaction::Scope;
use strand_contracts::{AccountId, Block, Digest, Outcome};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::follower::Follower;
use strand_ledger_service::protocol::TransactionStatus;
use strand_ledger_service::store::LedgerStore;

/// Connects to the ledger service at `address` and checks the chain it
/// presents against the one pinned for that address in `home`
/// ([`crate::known_ledgers`]; pinned on first contact).
pub async fn connect(address: &str, home: &Path) -> anyhow::Result<(LedgerClient, Genesis)> {
    let mut client = LedgerClient::connect(address).await?;
    let genesis = client.genesis().await?;
    crate::known_ledgers::check(home, address, &genesis)?;
    Ok((client, genesis))
}

/// Brings the local replica in `home` up to the service's head, checking
/// every block; returns it.
pub async fn sync(client: &mut LedgerClient, genesis: &Genesis, home: &Path) -> anyhow::Result<Follower> {
    let directory = home.join("ledger");
    std::fs::create_dir_all(&directory).with_context(|| format!("cannot create {}", directory.display()))?;
    let path = directory.join(format!("{}.redb", genesis.chain().short()));
    let (store, replica) =
        LedgerStore::open(&path, genesis).with_context(|| format!("cannot open {}", path.display()))?;
    let mut follower = Follower::new(replica, Some(store));
    follower.catch_up(client).await.context("cannot bring the local ledger replica up to date")?;
    Ok(follower)
}

/// The service's status as JSON, with the validators of the current epoch
/// and any scheduled change, from the local replica (brought up to date,
/// every block checked).
pub async fn status(client: &mut LedgerClient, genesis: &Genesis, home: &Path) -> anyhow::Result<Value> {
    let status = client.status().await?;
    let follower = sync(client, genesis, home).await?;
    let state = follower.replica().state();
    let members = |set: &strand_contracts::ValidatorSet| {
        set.validators
            .iter()
            .map(|validator| {
                json!({
                    "account": validator.account.to_string(),
                    "organisation": validator.organisation,
                    "ledger": validator.ledger,
                })
            })
            .collect::<Vec<_>>()
    };
    let change = state.validator_change.as_ref().map(|change| {
        json!({
            "effective_epoch": change.effective_epoch,
            "proposal": change.proposal.to_string(),
            "validators": members(&change.set),
        })
    });
    Ok(json!({
        "chain": status.chain.to_string(),
        "name": genesis.name,
        "height": status.height,
        "head": status.head.to_string(),
        "epoch": status.epoch,
        "epoch_blocks": genesis.epoch_blocks,
        "mempool": status.mempool,
        "ordering": format!("{:?}", genesis.validators.ordering).to_lowercase(),
        "validators": members(&state.validators),
        "validator_change": change,
        "open_validator_proposals": state.validator_proposals.len(),
    }))
}

fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Accepted => json!({ "accepted": true }),
        Outcome::Rejected(rejection) => json!({ "accepted": false, "reason": rejection.to_string() }),
    }
}

/// A block with each transaction's outcome, as JSON.
pub async fn block(client: &mut LedgerClient, height: u64) -> anyhow::Result<Value> {
    let bytes = client.blocks(height, 1).await?;
    let block = bytes
        .first()
        .map(|bytes| Block::from_bytes(bytes))
        .transpose()?
        .filter(|block| block.header.height == height)
        .with_context(|| format!("no block at height {height} yet"))?;
    let mut transactions = Vec::new();
    for bytes in &block.transactions {
        let hash = strand_contracts::transaction::transaction_hash(bytes);
        let outcome = match client.transaction(hash).await? {
            TransactionStatus::Finalised { outcome, .. } => outcome_json(&outcome),
            other => json!({ "status": format!("{other:?}") }),
        };
        let kind = strand_contracts::Transaction::from_bytes(bytes)
            .map_or("undecodable".to_string(), |transaction| transaction.body.kind().replace('_', "-"));
        transactions.push(json!({ "hash": hash.to_string(), "kind": kind, "outcome": outcome }));
    }
    let header = &block.header;
    Ok(json!({
        "height": header.height,
        "hash": header.hash().to_string(),
        "parent": header.parent.to_string(),
        "timestamp_ms": header.timestamp_ms,
        "state_root": header.state_root.to_string(),
        "proposer": header.proposer.to_string(),
        "signatures": block.finality.signers(),
        "transactions": transactions,
    }))
}

/// What became of a transaction, as JSON.
pub async fn transaction(client: &mut LedgerClient, hash: &str) -> anyhow::Result<Value> {
    let digest: Digest = hash.parse().with_context(|| format!("'{hash}' is not a transaction hash (64 hex digits)"))?;
    Ok(match client.transaction(digest).await? {
        TransactionStatus::Unknown => json!({ "hash": hash, "status": "unknown" }),
        TransactionStatus::Pending => json!({ "hash": hash, "status": "pending" }),
        TransactionStatus::Dropped(reason) => json!({ "hash": hash, "status": "dropped", "reason": reason }),
        TransactionStatus::Finalised { height, index, outcome } => json!({
            "hash": hash, "status": "finalised", "height": height, "index": index, "outcome": outcome_json(&outcome),
        }),
    })
}

fn status_text(status: &ContractStatus) -> String {
    match status {
        ContractStatus::Active => "active".into(),
        ContractStatus::Closed { at_height } => format!("closed at height {at_height}"),
        ContractStatus::Expired { at_epoch } => format!("expired at epoch {at_epoch}"),
        ContractStatus::Lost { at_epoch } => format!("lost at epoch {at_epoch}"),
    }
}

/// An account's nonce, provider record, contracts and credentials, from the
/// verified local replica.
pub fn account(follower: &Follower, key: &str) -> anyhow::Result<Value> {
    let account: AccountId = key.parse().with_context(|| format!("'{key}' is not a public key (64 hex digits)"))?;
    let state = follower.replica().state();
    let contracts: Vec<Value> = query::contracts_of_account(state, &account)
        .iter()
        .map(|(id, contract)| {
            json!({
                "id": id.to_string(),
                "upload": hex::encode(contract.terms.upload),
                "role": if contract.terms.owner == account { "owner" } else { "provider" },
                "owner": contract.terms.owner.to_string(),
                "provider": contract.holder.to_string(),
                "fragments": contract.terms.fragment_count,
                "fragment_bytes": contract.terms.fragment_size,
                "term_epochs": contract.terms.term_epochs,
                "status": status_text(&contract.status),
                "proofs": { "submitted": contract.proofs.submitted, "missed": contract.proofs.missed,
                            "failed": contract.proofs.failed, "strikes": contract.proofs.strikes },
            })
        })
        .collect();
    let credentials: Vec<Value> = query::credentials_of_account(state, &account)
        .iter()
        .map(|(id, credential)| {
            json!({
                "id": id.to_string(),
                "upload": hex::encode(credential.grant.upload),
                "grantee": credential.grant.grantee.to_string(),
                "scope": match &credential.grant.scope { Scope::Upload => "whole upload".to_string(),
                    Scope::Ranges { ranges, .. } => format!("{} byte range(s)", ranges.len()) },
                "purpose": credential.grant.purpose,
                "granted_at_height": credential.granted_at_height,
                "expires_at_height": credential.grant.expires_at_height,
                "revoked_at_height": credential.revoked_at_height,
            })
        })
        .collect();
    let provider = state.providers.get(&account).map(|provider| {
        json!({
            "endpoints": provider.registration.endpoints,
            "capacity_bytes": provider.registration.capacity_bytes,
            "committed_bytes": provider.committed_bytes,
            "organisation": provider.registration.domain.organisation,
            "site": provider.registration.domain.site,
            "jurisdiction": provider.registration.domain.jurisdiction,
        })
    });
    Ok(json!({
        "account": account.to_string(),
        "replica_height": follower.replica().height(),
        "nonce": state.accounts.get(&account).map_or(0, |account| account.nonce),
        "provider": provider,
        "contracts": contracts,
        "credentials": credentials,
    }))
}
