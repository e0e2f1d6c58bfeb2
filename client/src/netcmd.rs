//! `strand upload`, `download`, `ls`, `status`: the networked commands.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use strand_client::network::{self, UploadOptions};
use strand_client::progress::bytes_bar;
use strand_client::record::UploadRecord;
use strand_client::{credentials, keyfile, ledger, units};
use strand_contracts::query;
use strand_contracts::state::ProofStatus;
use strand_contracts::transaction::ReadAuthority;
use strand_contracts::{AccountId, Digest};
use strand_core::{CodecParams, Identity};

/// Who runs a command, against which ledger, keeping records where.
pub struct Session<'a> {
    /// The ledger service address.
    pub ledger: &'a str,
    /// The owner's identity.
    pub identity: &'a Identity,
    /// Where upload records and the ledger replica live.
    pub home: &'a Path,
    /// JSON output (no progress bars).
    pub json: bool,
}

/// Uploads `file`.
pub async fn upload(
    session: &Session<'_>,
    file: &Path,
    params: CodecParams,
    term_epochs: u32,
    threads: usize,
) -> anyhow::Result<Value> {
    let Session { ledger: address, identity, json, .. } = *session;
    let home = session.home.to_path_buf();
    let (mut client, genesis) = ledger::connect(address, &home).await?;
    let follower = ledger::sync(&mut client, &genesis, &home).await?;
    let length = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?.len();
    let bar = bytes_bar(length, "uploading", json);
    let progress_bar = bar.clone();
    let options = UploadOptions { params, term_epochs, threads };
    let summary =
        network::upload(file, identity, &mut client, follower.replica().state(), &home, options, move |done| {
            progress_bar.set_position(done)
        })
        .await;
    bar.finish_and_clear();
    Ok(serde_json::to_value(summary?)?)
}

/// Downloads an upload (or a range of it).
pub async fn download(
    session: &Session<'_>,
    source: &DownloadSource,
    out: &Path,
    range: Option<String>,
    threads: usize,
) -> anyhow::Result<Value> {
    let Session { ledger: address, identity, json, .. } = *session;
    let home = session.home.to_path_buf();
    let (mut client, genesis) = ledger::connect(address, &home).await?;
    let follower = ledger::sync(&mut client, &genesis, &home).await?;
    let state = follower.replica().state();
    let (granted, presentations) = match source {
        DownloadSource::Owner(upload) => {
            (credentials::Granted::Whole(UploadRecord::load(&home, upload, identity)?), None)
        }
        DownloadSource::Credential(credential) => {
            let credential: Digest = credential
                .parse()
                .map_err(|error| anyhow::anyhow!("'{credential}' is not a credential id: {error}"))?;
            let granted = credentials::granted(identity, state, &credential)?;
            let outcomes = match &granted {
                credentials::Granted::Whole(record) => {
                    credentials::present(identity, record, state, &credential).await?
                }
                credentials::Granted::Range(range) => {
                    credentials::present_range(identity, range, state, &credential).await?
                }
            };
            if outcomes.iter().all(|(_, outcome)| outcome.is_err()) {
                let mut codes: Vec<String> = outcomes.iter().filter_map(|(_, outcome)| outcome.clone().err()).collect();
                codes.sort();
                codes.dedup();
                anyhow::bail!("every provider refused credential {credential}: {}", codes.join(", "));
            }
            let shown: Vec<Value> = outcomes
                .iter()
                .map(|(provider, outcome)| match outcome {
                    Ok(fragments) => json!({ "provider": provider.to_string(), "opened_fragments": fragments }),
                    Err(code) => json!({ "provider": provider.to_string(), "refused": code }),
                })
                .collect();
            (granted, Some(shown))
        }
    };
    let (length, default_range) = match &granted {
        credentials::Granted::Whole(record) => (record.index.layout.file_length, None),
        credentials::Granted::Range(range) => {
            (range.partial.layout.file_length, Some(range.partial.range.0..range.partial.range.1))
        }
    };
    let range = range.map(|text| units::parse_range(&text, length)).transpose()?.or(default_range);
    let total = range.as_ref().map_or(length, |range| range.end.saturating_sub(range.start));
    let bar = bytes_bar(total, "fetching", json);
    let progress_bar = bar.clone();
    let progress = move |done| progress_bar.set_position(done);
    let result = match granted {
        credentials::Granted::Whole(record) => {
            strand_client::download::download(identity, record, state, out, range, threads, progress).await
        }
        credentials::Granted::Range(granted) => {
            strand_client::download::download_partial(
                identity,
                granted.partial,
                granted.stripes,
                state,
                out,
                range,
                threads,
                progress,
            )
            .await
        }
    };
    bar.finish_and_clear();
    let (summary, unreachable) = result?;
    let mut value = serde_json::to_value(summary)?;
    value["unreachable_providers"] = json!(unreachable);
    if let Some(presentations) = presentations {
        value["presentations"] = json!(presentations);
    }
    Ok(value)
}

/// What to download: one's own upload, or under a credential.
pub enum DownloadSource {
    /// An upload id with a record in `STRAND_HOME`.
    Owner(String),
    /// A credential id on the ledger granted to this key.
    Credential(String),
}

/// Grants `grantee` the whole upload.
pub async fn grant(
    session: &Session<'_>,
    upload: &str,
    grantee: &str,
    range: Option<&str>,
    expires: &str,
    purpose: &str,
) -> anyhow::Result<Value> {
    let Session { ledger: address, identity, .. } = *session;
    let record = UploadRecord::load(session.home, upload, identity)?;
    let grantee = credentials::parse_public_key(grantee)?;
    let (mut client, genesis) = ledger::connect(address, session.home).await?;
    let follower = ledger::sync(&mut client, &genesis, session.home).await?;
    let state = follower.replica().state();
    let expires_at_height = credentials::parse_expiry(expires, state.height)?;
    let range = range.map(|text| units::parse_range(text, record.index.layout.file_length)).transpose()?;
    let (credential, height) = match &range {
        None => credentials::grant(identity, &mut client, state, &record, &grantee, expires_at_height, purpose).await?,
        Some(range) => {
            let bounds = (range.start, range.end);
            credentials::grant_range(
                identity,
                &mut client,
                state,
                &record,
                &grantee,
                bounds,
                expires_at_height,
                purpose,
            )
            .await?
        }
    };
    Ok(json!({
        "credential": credential.to_string(),
        "upload": upload,
        "grantee": AccountId::of(&grantee).to_string(),
        "range": range.map(|range| [range.start, range.end]),
        "granted_at_height": height,
        "expires_at_height": expires_at_height,
        "purpose": purpose,
    }))
}

/// Revokes a credential, effective from the block that includes it.
pub async fn revoke(session: &Session<'_>, credential: &str) -> anyhow::Result<Value> {
    let Session { ledger: address, identity, .. } = *session;
    let credential: Digest =
        credential.parse().map_err(|error| anyhow::anyhow!("'{credential}' is not a credential id: {error}"))?;
    let (mut client, genesis) = ledger::connect(address, session.home).await?;
    let follower = ledger::sync(&mut client, &genesis, session.home).await?;
    let body = strand_contracts::transaction::Body::RevokeCredential { credential };
    let (_, height) = credentials::submit_and_wait(identity, &mut client, follower.replica().state(), body).await?;
    Ok(json!({ "credential": credential.to_string(), "revoked_at_height": height }))
}

/// Parses an upload id and brings the local ledger replica up to date.
async fn upload_and_replica(
    address: &str,
    upload: &str,
) -> anyhow::Result<(strand_core::UploadId, strand_ledger_service::follower::Follower)> {
    let key = upload.parse().map_err(|error| anyhow::anyhow!("'{upload}' is not an upload id: {error}"))?;
    let home = keyfile::strand_home();
    let (mut client, genesis) = ledger::connect(address, &home).await?;
    Ok((key, ledger::sync(&mut client, &genesis, &home).await?))
}

/// The credentials of an upload, from the ledger.
pub async fn list_credentials(address: &str, upload: &str) -> anyhow::Result<Value> {
    let (key, follower) = upload_and_replica(address, upload).await?;
    let state = follower.replica().state();
    Ok(json!({ "upload": upload, "height": state.height, "credentials": credentials::list(state, key.as_bytes()) }))
}

/// Lists the owner's uploads with their contracts' state on the ledger.
pub async fn list(address: &str, identity: &Identity) -> anyhow::Result<Value> {
    let home = keyfile::strand_home();
    let (mut client, genesis) = ledger::connect(address, &home).await?;
    let follower = ledger::sync(&mut client, &genesis, &home).await?;
    let state = follower.replica().state();
    let mut uploads = Vec::new();
    for upload in UploadRecord::list(&home) {
        let Ok(record) = UploadRecord::load(&home, &upload, identity) else { continue };
        let key = *record.index.upload_id.as_bytes();
        let contracts = query::contracts_of_upload(state, &key);
        let active = contracts
            .iter()
            .filter(|(_, contract)| contract.status == strand_contracts::state::ContractStatus::Active)
            .count();
        let params = record.index.params();
        uploads.push(json!({
            "upload": upload,
            "bytes": record.index.layout.file_length,
            "code": format!("RS({}+{})", params.data_shards, params.parity_shards),
            "stripes": record.index.layout.stripe_count,
            "contracts": contracts.len(),
            "contracts_active": active,
        }));
    }
    Ok(json!({ "uploads": uploads }))
}

/// The health of every stripe: each fragment's provider checked on the
/// ledger (contract active) and live (reachable over iroh).
pub async fn status(address: &str, identity: &Identity, upload: &str) -> anyhow::Result<Value> {
    let home = keyfile::strand_home();
    let record = UploadRecord::load(&home, upload, identity)?;
    let (mut client, genesis) = ledger::connect(address, &home).await?;
    let follower = ledger::sync(&mut client, &genesis, &home).await?;
    let state = follower.replica().state();
    let key = *record.index.upload_id.as_bytes();
    let contracts = query::contracts_of_upload(state, &key);
    let endpoint = strand_net::blobs::endpoint(*identity.secret_bytes(), "127.0.0.1:0".parse()?).await?;
    let mut healthy_providers = std::collections::HashSet::new();
    let mut providers = Vec::new();
    for provider in &record.providers {
        let contract = contracts.iter().find(|(_, contract)| contract.terms.provider == *provider);
        let Some((id, contract)) = contract else { continue };
        let active = contract.status == strand_contracts::state::ContractStatus::Active;
        // The contract's holder now (repair may have moved it).
        let holder = contract.holder;
        let sockets = state.providers.get(&holder).map(|record| network::endpoints_of(record).iroh).unwrap_or_default();
        let reachable = match strand_net::blobs::remote_address(holder.0, &sockets) {
            Ok(remote) => strand_net::blobs::connect(&endpoint, remote, Duration::from_secs(3)).await.is_ok(),
            Err(_) => false,
        };
        if active && reachable {
            healthy_providers.insert(*provider);
        }
        providers.push(json!({
            "provider": holder.to_string(), "original_provider": provider.to_string(), "contract": id.to_string(),
            "status": format!("{:?}", contract.status), "repair": repair_json(state, contract),
            "reachable": reachable, "proofs": { "submitted": contract.proofs.submitted, "missed": contract.proofs.missed },
        }));
    }
    endpoint.close().await;
    let params = record.index.params();
    let (k, width) = (usize::from(params.data_shards), params.fragments_per_stripe());
    let mut degraded = Vec::new();
    let mut lost = Vec::new();
    for stripe in 0..record.index.layout.stripe_count {
        let healthy =
            (0..width).filter(|&shard| healthy_providers.contains(&record.provider_of(stripe, shard))).count();
        if healthy < k {
            lost.push(stripe);
        } else if healthy < width {
            degraded.push(json!({ "stripe": stripe, "healthy": healthy, "of": width }));
        }
    }
    Ok(json!({
        "upload": upload,
        "stripes": record.index.layout.stripe_count,
        "fragments_per_stripe": width,
        "needed_per_stripe": k,
        "healthy_stripes": record.index.layout.stripe_count as usize - degraded.len() - lost.len(),
        "degraded_stripes": degraded,
        "unrecoverable_stripes": lost,
        "providers": providers,
    }))
}

/// Where a contract is in repair: `health` is healthy, repaired (moved by
/// repair, now healthy), lost (queued for a repairer), under repair (an
/// order names the repairer), or draining (its provider leaves; queued or
/// ordered).
fn repair_json(state: &strand_contracts::LedgerState, contract: &strand_contracts::state::Contract) -> Value {
    use strand_contracts::state::{ContractStatus, RepairState};
    let lost = matches!(contract.status, ContractStatus::Lost { .. });
    let mut value = match contract.repair {
        RepairState::None => json!({
            "health": if lost { "lost" } else if contract.repairs > 0 { "repaired" } else { "healthy" },
            "repairs": contract.repairs,
        }),
        RepairState::Queued { since, attempt, .. } => json!({
            "health": if lost { "lost" } else { "draining" },
            "queued_since_epoch": since, "attempt": attempt, "repairs": contract.repairs,
        }),
        RepairState::Ordered { order } => {
            let record = state.repair_orders.get(&order);
            json!({
                "health": if lost { "under repair" } else { "draining" },
                "order": order.to_string(),
                "repairer": record.map(|order| order.repairer.to_string()),
                "since_epoch": record.map(|order| order.issued_epoch),
                "deadline_epoch": record.map(|order| order.deadline_epoch),
                "reported": record.map(|order| order.reported),
                "repairs": contract.repairs,
            })
        }
    };
    // A repairer's report that this contract's holder served bad bytes,
    // while its next checks answer it.
    let accusation = state
        .suspects
        .get(&(contract.holder, contract.terms.id()))
        .and_then(|suspect| suspect.accusation.as_ref())
        .map(|accusation| {
            json!({
                "by": accusation.reporter.to_string(), "order": accusation.order.to_string(),
                "fragment": accusation.fragment, "chunk": accusation.chunk, "epoch": accusation.epoch,
                "transaction": accusation.transaction.to_string(),
            })
        });
    value["accused_of_bad_bytes"] = accusation.unwrap_or(Value::Null);
    value
}

/// The key file argument or the default.
pub fn identity(key: &Option<PathBuf>) -> anyhow::Result<Identity> {
    Ok(keyfile::read(&key.clone().unwrap_or_else(keyfile::default_key_path))?)
}

/// Proof history of an upload, from the ledger alone: per provider and
/// epoch, each check of its contract (passed, failed with the reason, or
/// left unanswered) and every epoch its provider submitted nothing, over
/// the history the ledger keeps (failures `PROOF_HISTORY_EPOCHS`, passes
/// and silent epochs the last 64).
pub async fn proofs(address: &str, upload: &str) -> anyhow::Result<Value> {
    let (key, follower) = upload_and_replica(address, upload).await?;
    let state = follower.replica().state();
    let contracts = query::contracts_of_upload(state, key.as_bytes());
    if contracts.is_empty() {
        anyhow::bail!("the ledger has no contracts for upload {upload}");
    }
    let current = state.epoch();
    let kept_from = current.saturating_sub(strand_contracts::state::PROOF_HISTORY_EPOCHS);
    let mut providers = Vec::new();
    for (id, contract) in &contracts {
        let provider = contract.holder;
        let last = contract.last_epoch().min(current);
        let liveness = state.providers.get(&provider).map(|record| record.liveness).unwrap_or_default();
        let mut epochs = Vec::new();
        for epoch in contract.first_proof_epoch().max(kept_from)..=last {
            let (verdict, reason, height) = match state.proofs.get(&(epoch, *id)) {
                Some(record) => {
                    let (verdict, reason) = match record.status {
                        ProofStatus::Passed => ("passed", None),
                        ProofStatus::Failed(fault) => ("failed", Some(fault.to_string())),
                        ProofStatus::Missed => {
                            ("missed", Some("no answer for this contract in the provider's submission".to_string()))
                        }
                    };
                    (verdict, reason, Some(record.at_height))
                }
                None if contract.proofs.passed_in(epoch) => ("passed", None, None),
                None if liveness.missed_in(epoch) => {
                    ("missed", Some("the provider submitted nothing by the epoch's last block".to_string()), None)
                }
                // Not challenged this epoch (the schedule reaches every
                // contract in turn), the epoch is still open, or a pass
                // older than the 64 epochs the tally remembers.
                None => continue,
            };
            epochs.push(json!({ "epoch": epoch, "verdict": verdict, "reason": reason, "height": height }));
        }
        let tally = contract.proofs;
        providers.push(json!({
            "provider": provider.to_string(),
            "contract": id.to_string(),
            "status": format!("{:?}", contract.status),
            "passed": tally.passed, "failed": tally.failed, "missed": tally.missed, "strikes": tally.strikes,
            "strikes_max": contract.terms.proof_policy.strikes_max,
            "challenges_per_epoch": contract.terms.proof_policy.challenges_per_epoch,
            "provider_missed_epochs": liveness.missed_epochs,
            "provider_unresponsive_since": liveness.unresponsive_since,
            "original_provider": contract.terms.provider.to_string(),
            "repair": repair_json(state, contract),
            "epochs": epochs,
        }));
    }
    Ok(json!({ "upload": upload, "epoch": current, "height": state.height, "providers": providers }))
}

/// The repair order a read was under, when it was a repair read.
fn repair_order(authority: &ReadAuthority) -> Option<String> {
    match authority {
        ReadAuthority::Repair(order) => Some(order.to_string()),
        ReadAuthority::Owner | ReadAuthority::Credential(_) => None,
    }
}

/// Who read what of an upload and when, from the ledger alone: every access
/// receipt the providers put on the ledger (refused requests are never
/// receipted).
pub async fn audit(address: &str, upload: &str) -> anyhow::Result<Value> {
    let (key, follower) = upload_and_replica(address, upload).await?;
    let state = follower.replica().state();
    let mut reads = Vec::new();
    for ((epoch, provider), batch) in state.access.iter() {
        for receipt in batch.receipts.iter().filter(|receipt| receipt.upload == *key.as_bytes()) {
            let purpose = receipt
                .authority
                .credential()
                .and_then(|credential| state.credentials.get(&credential).map(|record| record.grant.purpose.clone()));
            reads.push(json!({
                "epoch": epoch,
                "height": batch.at_height,
                "provider": provider.to_string(),
                "reader": receipt.requester.to_string(),
                "as": receipt.authority.reader(),
                "credential": receipt.authority.credential().map(|credential| credential.to_string()),
                "repair_order": repair_order(&receipt.authority),
                "purpose": purpose,
                "fragments": receipt.fragments,
                "bytes": receipt.bytes,
            }));
        }
    }
    // Reads older than the history kept in full, summed per reader.
    let mut earlier = Vec::new();
    let from = (*key.as_bytes(), AccountId([0; 32]), ReadAuthority::Owner);
    let to = (*key.as_bytes(), AccountId([0xff; 32]), ReadAuthority::Repair(Digest([0xff; 32])));
    for ((_, reader, authority), total) in state.access_totals.range(from..=to) {
        earlier.push(json!({
            "epochs": [total.first_epoch, total.last_epoch],
            "reader": reader.to_string(),
            "as": authority.reader(),
            "credential": authority.credential().map(|credential| credential.to_string()),
            "repair_order": repair_order(authority),
            "fragments": total.fragments,
            "bytes": total.bytes,
        }));
    }
    reads.sort_by_key(|read| (read["epoch"].as_u64(), read["height"].as_u64()));
    Ok(json!({ "upload": upload, "height": state.height, "reads": reads, "earlier_reads": earlier }))
}
