//! Credentials: grant, revoke and list them on the ledger, and read as a
//! grantee.
//!
//! A whole-upload credential's key material is the upload record (recovery
//! index and placement) sealed to the grantee's own key, so a grantee needs
//! only the ledger and that key. Before reading, the grantee presents the
//! credential to each provider over libp2p (which proves its key); the nodes
//! check it against their own replica then and again at every get.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use strand_contracts::apply::{SEALED_KEY_MATERIAL_BYTES_MAX, credential_id};
use strand_contracts::state::LedgerState;
use strand_contracts::transaction::{Body, CredentialGrant, Scope};
use strand_contracts::{AccountId, Digest, Outcome, Transaction};
use strand_core::Identity;
use strand_core::identity::PublicKey;
use strand_core::partial::PartialIndex;
use strand_core::seal::{self, SealKind};
use strand_ledger_service::client::LedgerClient;
use strand_ledger_service::protocol::TransactionStatus;
use strand_net::p2p;
use strand_wire::{Presentation, Request, Response, ScopeMembership};

use crate::network::endpoints_of;
use crate::record::UploadRecord;

/// Blocks to wait for a transaction to be final.
const FINALISATION_BLOCKS_MAX: u64 = 60;
/// How long a provider may take to answer a presentation.
const PRESENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a provider that has not yet applied the grant is asked again...
const PRESENT_RETRY_WINDOW: Duration = Duration::from_secs(5);
/// ...and how often.
const PRESENT_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// Submits `body` as the next transaction of `sender` and waits until it is
/// final; returns its hash and the height of its block.
pub async fn submit_and_wait(
    sender: &Identity,
    client: &mut LedgerClient,
    state: &LedgerState,
    body: Body,
) -> anyhow::Result<(Digest, u64)> {
    let account = AccountId::of(&sender.public_key());
    let nonce = state.accounts.get(&account).map_or(0, |account| account.nonce) + 1;
    let transaction = Transaction::sign(state.params.chain, sender, nonce, body);
    let hash = client
        .submit(transaction.to_bytes())
        .await?
        .map_err(|reason| anyhow::anyhow!("the ledger service refused the transaction: {reason}"))?;
    let start = client.status().await?.height;
    loop {
        match client.transaction(hash).await? {
            TransactionStatus::Finalised { outcome: Outcome::Accepted, height, .. } => return Ok((hash, height)),
            TransactionStatus::Finalised { outcome: Outcome::Rejected(reason), .. } => {
                bail!("the ledger rejected the transaction: {reason}")
            }
            TransactionStatus::Dropped(reason) => bail!("the transaction was dropped: {reason}"),
            TransactionStatus::Pending | TransactionStatus::Unknown => {
                let height = client.status().await?.height;
                let status = client.wait_for_height(height + 1, Duration::from_secs(5)).await?;
                if status.height > start + FINALISATION_BLOCKS_MAX {
                    bail!("the transaction was not finalised within {FINALISATION_BLOCKS_MAX} blocks");
                }
            }
        }
    }
}

/// Parses a grantee's public key (64 hex digits, as `strand keygen` prints).
pub fn parse_public_key(text: &str) -> anyhow::Result<PublicKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .with_context(|| format!("'{text}' is not a 64-hex-digit public key"))?;
    PublicKey::from_bytes(&bytes).with_context(|| format!("'{text}' is not a valid ed25519 public key"))
}

/// Parses `--expires`: `+N` blocks from `height`, or an absolute height.
pub fn parse_expiry(text: &str, height: u64) -> anyhow::Result<u64> {
    let text = text.trim();
    let value = |digits: &str| digits.parse::<u64>().with_context(|| format!("'{text}' is not +BLOCKS or a HEIGHT"));
    match text.strip_prefix('+') {
        Some(blocks) => Ok(height.saturating_add(value(blocks)?)),
        None => value(text),
    }
}

/// The grant of the whole upload of `record` to `grantee` until
/// `expires_at_height`: the record sealed to the grantee as its key
/// material. Refused when the sealed record is larger than a credential
/// carries.
pub fn whole_upload_grant(
    record: &UploadRecord,
    grantee: &PublicKey,
    expires_at_height: u64,
    purpose: &str,
    rng: &mut impl rand::CryptoRng,
) -> anyhow::Result<CredentialGrant> {
    let sealed = seal::seal(SealKind::GranteeRecord, &record.to_bytes(), grantee, rng);
    if sealed.len() > SEALED_KEY_MATERIAL_BYTES_MAX {
        bail!(
            "this upload's record ({} bytes sealed) is larger than a credential carries ({SEALED_KEY_MATERIAL_BYTES_MAX} bytes): \
             whole-upload grants are limited to uploads of about 1,900 fragments for now",
            sealed.len()
        );
    }
    Ok(CredentialGrant {
        upload: *record.index.upload_id.as_bytes(),
        grantee: AccountId::of(grantee),
        scope: Scope::Upload,
        expires_at_height,
        purpose: purpose.to_string(),
        sealed_key_material: sealed,
    })
}

/// Grants `grantee` the whole upload of `record` until `expires_at_height`.
/// Returns the credential id and the height it was granted at.
pub async fn grant(
    owner: &Identity,
    client: &mut LedgerClient,
    state: &LedgerState,
    record: &UploadRecord,
    grantee: &PublicKey,
    expires_at_height: u64,
    purpose: &str,
) -> anyhow::Result<(Digest, u64)> {
    let grant = whole_upload_grant(record, grantee, expires_at_height, purpose, &mut rand::rng())?;
    let (hash, height) = submit_and_wait(owner, client, state, Body::GrantCredential(grant)).await?;
    Ok((credential_id(&hash), height))
}

/// The credentials of an upload, as the ledger records them.
pub fn list(state: &LedgerState, upload: &[u8; 16]) -> Vec<Value> {
    state
        .credentials
        .iter()
        .filter(|(_, credential)| credential.grant.upload == *upload)
        .map(|(id, credential)| {
            let status = match credential.revoked_at_height {
                Some(height) => format!("revoked at height {height}"),
                None if state.height > credential.grant.expires_at_height => {
                    format!("expired after height {}", credential.grant.expires_at_height)
                }
                None => "active".to_string(),
            };
            let scope = match &credential.grant.scope {
                Scope::Upload => json!("whole upload"),
                Scope::Ranges { ranges, fragment_count, .. } => {
                    json!({ "ranges": ranges, "fragments": fragment_count })
                }
            };
            json!({
                "credential": id.to_string(),
                "grantee": credential.grant.grantee.to_string(),
                "scope": scope,
                "purpose": credential.grant.purpose,
                "granted_at_height": credential.granted_at_height,
                "expires_at_height": credential.grant.expires_at_height,
                "status": status,
            })
        })
        .collect()
}

/// The upload record a credential gives its grantee.
pub fn grantee_record(identity: &Identity, state: &LedgerState, credential: &Digest) -> anyhow::Result<UploadRecord> {
    let record =
        state.credentials.get(credential).with_context(|| format!("the ledger has no credential {credential}"))?;
    if record.grant.grantee != AccountId::of(&identity.public_key()) {
        bail!("credential {credential} was granted to {}, not to this key", record.grant.grantee);
    }
    let bytes = zeroize::Zeroizing::new(
        seal::open(SealKind::GranteeRecord, &record.grant.sealed_key_material, identity)
            .context("cannot open the credential's key material with this key")?,
    );
    let upload = UploadRecord::from_bytes(&bytes)?;
    if upload.index.upload_id.as_bytes() != &record.grant.upload {
        bail!("the credential's key material is for another upload");
    }
    Ok(upload)
}

/// Presents `credential` to every provider of `record`; per provider, the
/// fragments it opened or its refusal code.
pub async fn present(
    identity: &Identity,
    record: &UploadRecord,
    state: &LedgerState,
    credential: &Digest,
) -> anyhow::Result<Vec<(AccountId, Result<u32, String>)>> {
    let mut providers = record.providers.clone();
    providers.sort();
    providers.dedup();
    let requests = providers
        .into_iter()
        .map(|provider| (provider, Presentation { credential: *credential, fragments: Vec::new() }))
        .collect();
    present_each(identity, state, requests).await
}

/// Sends each provider its presentation over libp2p, all at once; per
/// provider, the fragments it opened or its refusal code.
///
/// The grantee found the credential in its own replica, so a provider that
/// answers `no_credential` or `ledger_too_stale` has not applied that block
/// yet (a download right after the grant): it is asked again every
/// [`PRESENT_RETRY_INTERVAL`] for at most [`PRESENT_RETRY_WINDOW`], and only
/// then is its refusal kept (its fragments are then rebuilt from parity).
pub async fn present_each(
    identity: &Identity,
    state: &LedgerState,
    requests: Vec<(AccountId, Presentation)>,
) -> anyhow::Result<Vec<(AccountId, Result<u32, String>)>> {
    let (network, task) = crate::network::node_client(identity, PRESENT_TIMEOUT).await?;
    let ask = |provider: AccountId, presentation: &Presentation| {
        let network = network.clone();
        let address = state.providers.get(&provider).and_then(|record| endpoints_of(record).libp2p);
        let message = strand_wire::encode(&Request::Present(presentation.clone()));
        async move {
            let peer = p2p::peer_id_of(&provider.0).map_err(|error| error.to_string())?;
            let answer = network.request(peer, address, message).await?;
            match strand_wire::decode::<Response>(&answer).map_err(|error| error.to_string())? {
                Response::Presented { fragments } => Ok(fragments),
                Response::Denied { code } => Err(code),
                _ => Err("unexpected answer".to_string()),
            }
        }
    };
    let started = tokio::time::Instant::now();
    let mut outcomes: Vec<Option<Result<u32, String>>> = requests.iter().map(|_| None).collect();
    for attempt in 0.. {
        let pending: Vec<usize> = (0..requests.len()).filter(|&index| lagging(&outcomes[index])).collect();
        if pending.is_empty() || (attempt > 0 && started.elapsed() >= PRESENT_RETRY_WINDOW) {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(PRESENT_RETRY_INTERVAL).await;
        }
        let answers =
            futures::future::join_all(pending.iter().map(|&index| ask(requests[index].0, &requests[index].1))).await;
        for (index, answer) in pending.into_iter().zip(answers) {
            outcomes[index] = Some(answer);
        }
    }
    task.abort();
    Ok(requests
        .into_iter()
        .zip(outcomes)
        .map(|((provider, _), outcome)| (provider, outcome.unwrap_or_else(|| Err("not asked".to_string()))))
        .collect())
}

/// Whether a provider is still to be asked: never asked, or it refused
/// because its replica has not caught up with the grant.
fn lagging(outcome: &Option<Result<u32, String>>) -> bool {
    match outcome {
        None => true,
        Some(Err(code)) => code == "no_credential" || code == "ledger_too_stale",
        Some(Ok(_)) => false,
    }
}

/// What a range credential gives its grantee: the partial index and, for
/// each of its stripes, which provider holds which shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRecord {
    /// Keys and ids of the covered chunks.
    pub partial: PartialIndex,
    /// Per stripe, the provider of each shard.
    pub stripes: BTreeMap<u64, Vec<AccountId>>,
}

impl RangeRecord {
    /// Encoding: partial index length (u32 LE), the partial index, then for
    /// each of its stripes (in order) the k+m provider accounts.
    pub fn to_bytes(&self) -> Vec<u8> {
        let partial = self.partial.to_bytes();
        let mut out = Vec::with_capacity(4 + partial.len() + self.stripes.len() * 6 * 32);
        out.extend_from_slice(&(partial.len() as u32).to_le_bytes());
        out.extend_from_slice(&partial);
        for providers in self.stripes.values() {
            for provider in providers {
                out.extend_from_slice(&provider.0);
            }
        }
        out
    }

    /// Parses a range record; never panics.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let length = bytes.get(..4).map(|field| u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize);
        let partial_bytes =
            length.and_then(|length| bytes.get(4..4usize.checked_add(length)?)).context("truncated range record")?;
        let partial = PartialIndex::from_bytes(partial_bytes)?;
        let width = partial.layout.params.fragments_per_stripe();
        let mut accounts = bytes[4 + partial_bytes.len()..].chunks_exact(32);
        if !accounts.remainder().is_empty() {
            bail!("a range record's placement is not whole accounts");
        }
        let mut stripes = BTreeMap::new();
        for (stripe, _) in partial.stripes() {
            let providers: Vec<AccountId> =
                accounts.by_ref().take(width).map(|account| AccountId(account.try_into().unwrap_or([0; 32]))).collect();
            if providers.len() != width {
                bail!("a range record's placement is truncated");
            }
            stripes.insert(stripe, providers);
        }
        if accounts.next().is_some() {
            bail!("a range record has trailing bytes");
        }
        Ok(Self { partial, stripes })
    }
}

/// What a credential gives its grantee.
pub enum Granted {
    /// The whole upload.
    Whole(UploadRecord),
    /// A byte range.
    Range(RangeRecord),
}

/// The scope list of a range record: its fragment ids as raw bytes, in the
/// order the credential's root commits to.
fn scope_ids(partial: &PartialIndex) -> Vec<[u8; 32]> {
    partial.scope_fragments().iter().map(|id| *id.as_bytes()).collect()
}

/// Grants `grantee` bytes `start..end` of the upload (whole chunks):
/// the scope commits to the fragments of the stripes those chunks sit in,
/// and the key material holds only their chunk keys and ids.
#[allow(clippy::too_many_arguments)]
pub async fn grant_range(
    owner: &Identity,
    client: &mut LedgerClient,
    state: &LedgerState,
    record: &UploadRecord,
    grantee: &PublicKey,
    (start, end): (u64, u64),
    expires_at_height: u64,
    purpose: &str,
) -> anyhow::Result<(Digest, u64)> {
    let partial = PartialIndex::of(&record.index, start, end)
        .with_context(|| format!("bytes {start}..{end} are not a non-empty range of the file"))?;
    let stripes: BTreeMap<u64, Vec<AccountId>> = partial
        .stripes()
        .map(|(stripe, ids)| (stripe, (0..ids.len()).map(|shard| record.provider_of(stripe, shard)).collect()))
        .collect();
    let ids = scope_ids(&partial);
    let scope = Scope::Ranges {
        ranges: vec![(start, end)],
        fragments_root: Digest(strand_proof_of_storage::merkle::root(&ids)),
        fragment_count: u32::try_from(ids.len()).context("too many fragments in the range")?,
    };
    let material = RangeRecord { partial, stripes }.to_bytes();
    let sealed = seal::seal(SealKind::GranteeRange, &material, grantee, &mut rand::rng());
    if sealed.len() > SEALED_KEY_MATERIAL_BYTES_MAX {
        bail!(
            "the range's key material ({} bytes) is larger than a credential carries ({SEALED_KEY_MATERIAL_BYTES_MAX} bytes): grant a smaller range",
            sealed.len()
        );
    }
    let grant = CredentialGrant {
        upload: *record.index.upload_id.as_bytes(),
        grantee: AccountId::of(grantee),
        scope,
        expires_at_height,
        purpose: purpose.to_string(),
        sealed_key_material: sealed,
    };
    let (hash, height) = submit_and_wait(owner, client, state, Body::GrantCredential(grant)).await?;
    Ok((credential_id(&hash), height))
}

/// What `credential` gives this key, opened from the ledger.
pub fn granted(identity: &Identity, state: &LedgerState, credential: &Digest) -> anyhow::Result<Granted> {
    let record =
        state.credentials.get(credential).with_context(|| format!("the ledger has no credential {credential}"))?;
    match record.grant.scope {
        Scope::Upload => grantee_record(identity, state, credential).map(Granted::Whole),
        Scope::Ranges { .. } => {
            if record.grant.grantee != AccountId::of(&identity.public_key()) {
                bail!("credential {credential} was granted to {}, not to this key", record.grant.grantee);
            }
            let bytes = zeroize::Zeroizing::new(
                seal::open(SealKind::GranteeRange, &record.grant.sealed_key_material, identity)
                    .context("cannot open the credential's key material with this key")?,
            );
            let range = RangeRecord::from_bytes(&bytes)?;
            if range.partial.upload_id.as_bytes() != &record.grant.upload {
                bail!("the credential's key material is for another upload");
            }
            Ok(Granted::Range(range))
        }
    }
}

/// Presents a range credential to the providers of its stripes, each with
/// membership proofs of the scope fragments it holds.
pub async fn present_range(
    identity: &Identity,
    range: &RangeRecord,
    state: &LedgerState,
    credential: &Digest,
) -> anyhow::Result<Vec<(AccountId, Result<u32, String>)>> {
    let ids = scope_ids(&range.partial);
    let mut by_provider: BTreeMap<AccountId, Vec<ScopeMembership>> = BTreeMap::new();
    let mut index = 0usize;
    for providers in range.stripes.values() {
        for provider in providers {
            let proof = strand_proof_of_storage::merkle::prove(&ids, &[index]).nodes;
            by_provider.entry(*provider).or_default().push(ScopeMembership {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                fragment: ids[index],
                proof,
            });
            index += 1;
        }
    }
    let requests = by_provider
        .into_iter()
        .map(|(provider, fragments)| (provider, Presentation { credential: *credential, fragments }))
        .collect();
    present_each(identity, state, requests).await
}
