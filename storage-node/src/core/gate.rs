//! Who may take a fragment from this node, or give it one.
//!
//! Every get and push on the data plane (iroh-blobs) is decided here from
//! the node's own ledger replica and holdings: no bearer tokens, the iroh
//! connection already proves the requester's key. A get is served if and
//! only if the requester is the owner of the contract holding the fragment,
//! or has presented a credential that, at the replica's current height, is
//! the requester's own, for that upload, unexpired, unrevoked and covers the
//! fragment. Presentations only say which credential to check: the decision
//! is taken again from the ledger at every get, so a revocation stops the
//! rest of a transfer in progress.

use std::collections::HashMap;
use std::time::Duration;

use strand_contracts::query::{self, FragmentMembership};
use strand_contracts::state::{ContractStatus, LedgerState};
use strand_contracts::transaction::{ReadAuthority, Scope};
use strand_contracts::types::UploadKey;
use strand_contracts::{AccountId, Digest};

use crate::core::holdings::{AgreementState, Holdings};

/// Why a request was refused. Each has a fixed metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The node holds no such fragment.
    #[error("unknown fragment")]
    UnknownFragment,
    /// The requester is not the owner and presented no credential for it.
    #[error("no credential presented for this fragment")]
    NoCredential,
    /// The presented credential is someone else's.
    #[error("the credential was granted to another key")]
    NotGrantee,
    /// The presented credential is for another upload.
    #[error("the credential is for another upload")]
    WrongUpload,
    /// The credential expired.
    #[error("the credential has expired")]
    Expired,
    /// The credential was revoked.
    #[error("the credential was revoked")]
    Revoked,
    /// The fragment is not in the credential's scope.
    #[error("the fragment is outside the credential's scope")]
    OutOfScope,
    /// A push of a fragment the node did not agree to store.
    #[error("push of a fragment the node did not agree to store")]
    NotAgreed,
    /// The contract is closed, expired or lost on the ledger.
    #[error("the contract is no longer active")]
    ContractInactive,
    /// The node's replica is too far behind to decide safely.
    #[error("the node's ledger replica is too stale to decide")]
    LedgerTooStale,
    /// The node holds as many presentations as it keeps.
    #[error("the node holds too many credential presentations; try later")]
    Busy,
}

impl Refusal {
    /// Every [`Self::label`] (metrics show each from the start, at zero).
    pub const LABELS: [&'static str; 11] = [
        "unknown_fragment",
        "no_credential",
        "not_grantee",
        "wrong_upload",
        "expired",
        "revoked",
        "out_of_scope",
        "not_agreed",
        "contract_inactive",
        "ledger_too_stale",
        "busy",
    ];

    /// The `reason` label of the refusal metrics (and the code clients see).
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownFragment => "unknown_fragment",
            Self::NoCredential => "no_credential",
            Self::NotGrantee => "not_grantee",
            Self::WrongUpload => "wrong_upload",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::OutOfScope => "out_of_scope",
            Self::NotAgreed => "not_agreed",
            Self::ContractInactive => "contract_inactive",
            Self::LedgerTooStale => "ledger_too_stale",
            Self::Busy => "busy",
        }
    }

    fn of(refusal: query::Refusal) -> Self {
        match refusal {
            query::Refusal::NoCredential(_) => Self::NoCredential,
            query::Refusal::NotGrantee => Self::NotGrantee,
            query::Refusal::WrongUpload => Self::WrongUpload,
            query::Refusal::Expired(_) => Self::Expired,
            query::Refusal::Revoked(_) => Self::Revoked,
            query::Refusal::OutOfScope => Self::OutOfScope,
        }
    }
}

/// How far behind the service's head a replica may be and still decide for
/// grantees: two blocks, so a revocation the node has heard of but not yet
/// applied is honoured within two block intervals.
pub const LEDGER_LAG_BLOCKS_MAX: u64 = 2;
/// How long the replica may go without a new block and still decide for
/// anyone but owners. The sequencer writes a block every interval (1 s by
/// default), empty or not, so ten seconds of silence means the node is cut
/// off from the ledger: a revocation could be waiting unseen. Fail closed.
pub const LEDGER_SILENCE_MAX: Duration = Duration::from_secs(10);

/// How current the node's replica is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// Blocks behind the latest head the node knows of.
    pub lag_blocks: u64,
    /// Time since the replica last applied a block.
    pub silent_for: Duration,
}

impl Freshness {
    /// A replica that is current.
    pub const CURRENT: Self = Self { lag_blocks: 0, silent_for: Duration::ZERO };

    fn too_stale(&self) -> bool {
        self.lag_blocks > LEDGER_LAG_BLOCKS_MAX || self.silent_for > LEDGER_SILENCE_MAX
    }
}

/// Blocks after its expiry or revocation a presentation is still kept.
pub const PRUNE_AFTER_BLOCKS: u64 = 600;

/// Most presentations kept (oldest evicted first is not needed: a full table
/// refuses new ones until credentials expire or are revoked).
pub const PRESENTATIONS_MAX: usize = 200_000;

/// Credentials requesters presented: which credential to check for which
/// (requester, upload) or, for range scopes, (requester, fragment) with the
/// fragment's membership proof. Bounded.
#[derive(Clone, Debug, Default)]
pub struct Presentations {
    whole: HashMap<(AccountId, UploadKey), Digest>,
    ranged: HashMap<(AccountId, [u8; 32]), (Digest, FragmentMembership)>,
}

impl Presentations {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.whole.len() + self.ranged.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries whose credential does not exist, or expired or was
    /// revoked more than [`PRUNE_AFTER_BLOCKS`] blocks before `ledger`'s
    /// height (until then a replayed presentation is refused with the
    /// precise reason, expired or revoked, rather than "no credential").
    /// Reads only: the daemon finds them under a read lock and removes them
    /// with [`Presentations::remove`] under a short write lock.
    pub fn stale(&self, ledger: &LedgerState) -> Stale {
        let horizon = ledger.height.saturating_sub(PRUNE_AFTER_BLOCKS);
        let live = |credential: &Digest| {
            ledger.credentials.get(credential).is_some_and(|record| {
                record.revoked_at_height.is_none_or(|revoked| revoked >= horizon)
                    && record.grant.expires_at_height >= horizon
            })
        };
        Stale {
            whole: self.whole.iter().filter(|(_, credential)| !live(credential)).map(|(key, _)| *key).collect(),
            ranged: self.ranged.iter().filter(|(_, (credential, _))| !live(credential)).map(|(key, _)| *key).collect(),
        }
    }

    /// Removes what [`Presentations::stale`] found.
    pub fn remove(&mut self, stale: &Stale) {
        for key in &stale.whole {
            self.whole.remove(key);
        }
        for key in &stale.ranged {
            self.ranged.remove(key);
        }
    }

    /// Drops the stale entries ([`Presentations::stale`]).
    pub fn prune(&mut self, ledger: &LedgerState) {
        let stale = self.stale(ledger);
        self.remove(&stale);
    }
}

/// Presentations to drop.
#[derive(Clone, Debug, Default)]
pub struct Stale {
    whole: Vec<(AccountId, UploadKey)>,
    ranged: Vec<(AccountId, [u8; 32])>,
}

impl Stale {
    /// Whether there is nothing to drop.
    pub fn is_empty(&self) -> bool {
        self.whole.is_empty() && self.ranged.is_empty()
    }
}

/// What a presentation established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presented {
    /// Fragments held here that the credential now opens for the requester.
    pub fragments: usize,
}

/// A presentation checked against the ledger, ready to be recorded.
#[derive(Clone, Debug)]
pub struct Checked {
    credential: Digest,
    upload: UploadKey,
    /// For a range scope, the memberships that hold; `None` for the whole
    /// upload.
    ranged: Option<Vec<FragmentMembership>>,
    /// Fragments opened.
    fragments: usize,
}

/// What of a presentation concerns this node: the upload its credential is
/// for, the memberships of fragments held here for that upload, and how
/// many of the upload's fragments are held here. Cheap (lookups only):
/// the daemon runs it under its read lock and the checks outside any.
pub fn held_here(
    credential: &Digest,
    memberships: Vec<FragmentMembership>,
    holdings: &Holdings,
    ledger: &LedgerState,
) -> Result<(Vec<FragmentMembership>, usize), Refusal> {
    let record = ledger.credentials.get(credential).ok_or(Refusal::NoCredential)?;
    let upload = record.grant.upload;
    let held = memberships
        .into_iter()
        .filter(|membership| {
            holdings.holders(&membership.fragment).any(|(_, agreement)| agreement.terms.upload == upload)
        })
        .collect();
    let whole = holdings.of_upload(&upload).map(|(_, agreement)| agreement.fragment_ids.len()).sum();
    Ok((held, whole))
}

/// Checks `requester`'s presentation of `credential` against the ledger now
/// (`held` and `held_whole` from [`held_here`]). Refuses with the reason a
/// get would get. Merkle work proportional to the memberships; holds no
/// lock.
pub fn check_presentation(
    requester: &AccountId,
    credential: &Digest,
    held: Vec<FragmentMembership>,
    held_whole: usize,
    ledger: &LedgerState,
    freshness: Freshness,
) -> Result<Checked, Refusal> {
    if freshness.too_stale() {
        return Err(Refusal::LedgerTooStale);
    }
    let record = ledger.credentials.get(credential).ok_or(Refusal::NoCredential)?;
    let upload = record.grant.upload;
    let decide = |membership: Option<&FragmentMembership>| {
        query::credential_decision(ledger, credential, requester, &upload, membership, ledger.height)
            .map(|_| ())
            .map_err(Refusal::of)
    };
    match &record.grant.scope {
        Scope::Upload => {
            decide(None)?;
            Ok(Checked { credential: *credential, upload, ranged: None, fragments: held_whole })
        }
        Scope::Ranges { .. } => {
            let mut opened = Vec::new();
            let mut last_refusal = Refusal::OutOfScope;
            for membership in held {
                match decide(Some(&membership)) {
                    Ok(()) => opened.push(membership),
                    Err(refusal) => last_refusal = refusal,
                }
            }
            if opened.is_empty() {
                // Not one fragment here: say why. A refusal for the whole
                // credential (revoked, expired, someone else's) comes first;
                // for a range scope `decide(None)` is at least out of scope.
                return Err(match decide(None) {
                    Err(Refusal::OutOfScope) | Ok(()) => last_refusal,
                    Err(other) => other,
                });
            }
            let fragments = opened.len();
            Ok(Checked { credential: *credential, upload, ranged: Some(opened), fragments })
        }
    }
}

impl Presentations {
    /// Records a checked presentation of `requester` (brief: the lock the
    /// gate reads is held only for this). Refuses with `Busy` when full.
    pub fn record(&mut self, requester: &AccountId, checked: Checked) -> Result<Presented, Refusal> {
        let Checked { credential, upload, ranged, fragments } = checked;
        match ranged {
            None => {
                if self.len() >= PRESENTATIONS_MAX && !self.whole.contains_key(&(*requester, upload)) {
                    return Err(Refusal::Busy);
                }
                self.whole.insert((*requester, upload), credential);
            }
            Some(memberships) => {
                if self.len().saturating_add(memberships.len()) > PRESENTATIONS_MAX {
                    return Err(Refusal::Busy);
                }
                for membership in memberships {
                    self.ranged.insert((*requester, membership.fragment), (credential, membership));
                }
            }
        }
        Ok(Presented { fragments })
    }
}

/// Records `requester`'s presentation of `credential` (with, for a range
/// scope, membership proofs of the fragments it wants), after checking it
/// against the ledger now: [`held_here`], [`check_presentation`] and
/// [`Presentations::record`] in one.
pub fn present(
    requester: &AccountId,
    credential: &Digest,
    memberships: &[FragmentMembership],
    holdings: &Holdings,
    ledger: &LedgerState,
    freshness: Freshness,
    presentations: &mut Presentations,
) -> Result<Presented, Refusal> {
    if freshness.too_stale() {
        return Err(Refusal::LedgerTooStale);
    }
    let (held, whole) = held_here(credential, memberships.to_vec(), holdings, ledger)?;
    let checked = check_presentation(requester, credential, held, whole, ledger, freshness)?;
    presentations.record(requester, checked)
}

/// Whether `requester` may get `fragment` now; `Ok(Some(credential))` when
/// served under a credential (to be receipted), `Ok(None)` for an owner.
///
/// Decided per contract holding the fragment: the owner of any of them may
/// read back whatever the node still holds, whatever the ledger says of the
/// contract (strikes that declare fragments lost must not stop the owner,
/// or later a repairer, from reading what is left). Anyone else needs a
/// presented credential for the upload of a holding contract that is active
/// on the ledger; a stale replica fails closed.
pub fn decide_get(
    requester: &AccountId,
    fragment: &[u8; 32],
    holdings: &Holdings,
    ledger: &LedgerState,
    freshness: Freshness,
    presentations: &Presentations,
) -> Result<Option<Digest>, Refusal> {
    let mut holders = holdings.holders(fragment).peekable();
    if holders.peek().is_none() {
        return Err(Refusal::UnknownFragment);
    }
    let holders: Vec<(&Digest, &crate::core::holdings::Agreement)> = holders.collect();
    if holders.iter().any(|(_, agreement)| agreement.terms.owner == *requester) {
        return Ok(None);
    }
    if freshness.too_stale() {
        return Err(Refusal::LedgerTooStale);
    }
    let mut refusal = Refusal::ContractInactive;
    for (contract, agreement) in holders {
        if ledger.contracts.get(contract).map(|contract| contract.status) != Some(ContractStatus::Active) {
            continue;
        }
        let upload = agreement.terms.upload;
        let (credential, membership) = if let Some(credential) = presentations.whole.get(&(*requester, upload)) {
            (credential, None)
        } else if let Some((credential, membership)) = presentations.ranged.get(&(*requester, *fragment)) {
            (credential, Some(membership))
        } else {
            refusal = Refusal::NoCredential;
            continue;
        };
        match query::credential_decision(ledger, credential, requester, &upload, membership, ledger.height) {
            Ok(_) => return Ok(Some(*credential)),
            Err(reason) => refusal = Refusal::of(reason),
        }
    }
    Err(refusal)
}

/// How a get [`decide_get`] allowed is receipted: the upload, under what
/// authority (the owner's own read, or the credential), and the bytes (the
/// whole fragment). For an owner, one of its own contracts holding the
/// fragment; for a grantee, the contract the fragment is held under.
pub fn receipt_of(
    requester: &AccountId,
    fragment: &[u8; 32],
    credential: Option<Digest>,
    holdings: &Holdings,
) -> Option<(UploadKey, ReadAuthority, u64)> {
    holdings.holders(fragment).find(|(_, agreement)| credential.is_some() || agreement.terms.owner == *requester).map(
        |(_, agreement)| {
            let authority = credential.map_or(ReadAuthority::Owner, ReadAuthority::Credential);
            (agreement.terms.upload, authority, u64::from(agreement.terms.fragment_size))
        },
    )
}

/// Whether `sender` may push `fragment`: only the owner of an agreement
/// holding it that the node is still fetching.
pub fn decide_push(sender: &AccountId, fragment: &[u8; 32], holdings: &Holdings) -> Result<(), Refusal> {
    let fetching = holdings
        .holders(fragment)
        .any(|(_, agreement)| agreement.state == AgreementState::Fetching && agreement.terms.owner == *sender);
    if fetching { Ok(()) } else { Err(Refusal::NotAgreed) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::{empty_ledger, terms};
    use crate::core::holdings::Agreement;
    use strand_contracts::state::{Contract, Credential};
    use strand_contracts::transaction::CredentialGrant;
    use strand_proof_of_storage::merkle;

    const OWNER: AccountId = AccountId([9; 32]);
    const GRANTEE: AccountId = AccountId([7; 32]);
    const STRANGER: AccountId = AccountId([8; 32]);

    fn held(state: AgreementState) -> Holdings {
        let mut holdings = Holdings::default();
        holdings.insert(Agreement { terms: terms(OWNER, 1), fragment_ids: vec![[5; 32], [6; 32]], state });
        holdings
    }

    /// A ledger where upload 1's contract is active and credentials exist.
    fn ledger(height: u64, credentials: &[(u8, AccountId, Scope, u64, Option<u64>)]) -> LedgerState {
        let mut state = empty_ledger();
        state.height = height;
        let terms = terms(OWNER, 1);
        state.contracts.insert(terms.id(), Contract::opened(terms, 1, 0));
        for (id, grantee, scope, expires_at_height, revoked_at_height) in credentials {
            let grant = CredentialGrant {
                upload: [1; 16],
                grantee: *grantee,
                scope: scope.clone(),
                expires_at_height: *expires_at_height,
                purpose: "test".into(),
                sealed_key_material: Vec::new(),
            };
            state.credentials.insert(
                Digest([*id; 32]),
                Credential { grant, granted_at_height: 1, revoked_at_height: *revoked_at_height },
            );
        }
        state
    }

    fn ranges_scope(fragments: &[[u8; 32]]) -> Scope {
        Scope::Ranges {
            ranges: vec![(0, 10)],
            fragments_root: Digest(merkle::root(fragments)),
            fragment_count: fragments.len() as u32,
        }
    }

    fn membership(fragments: &[[u8; 32]], index: usize) -> FragmentMembership {
        FragmentMembership { index, fragment: fragments[index], proof: merkle::prove(fragments, &[index]) }
    }

    #[test]
    fn owner_always_reads_and_only_agreed_fragments_are_pushed() {
        let holdings = held(AgreementState::Fetching);
        let state = empty_ledger();
        let none = Presentations::default();
        assert_eq!(decide_get(&OWNER, &[5; 32], &holdings, &state, Freshness::CURRENT, &none), Ok(None));
        let stale = Freshness { lag_blocks: 1000, silent_for: Duration::from_secs(3600) };
        assert_eq!(
            decide_get(&OWNER, &[5; 32], &holdings, &state, stale, &none),
            Ok(None),
            "the owner reads back whatever is held"
        );
        assert_eq!(
            decide_get(&STRANGER, &[5; 32], &holdings, &state, Freshness::CURRENT, &none),
            Err(Refusal::ContractInactive)
        );
        assert_eq!(
            decide_get(&OWNER, &[7; 32], &holdings, &state, Freshness::CURRENT, &none),
            Err(Refusal::UnknownFragment)
        );
        assert_eq!(decide_push(&OWNER, &[6; 32], &holdings), Ok(()));
        assert_eq!(decide_push(&STRANGER, &[6; 32], &holdings), Err(Refusal::NotAgreed));
        assert_eq!(decide_push(&OWNER, &[7; 32], &holdings), Err(Refusal::NotAgreed));
        let signed = held(AgreementState::Signed { at_height: 3 });
        assert_eq!(decide_push(&OWNER, &[6; 32], &signed), Err(Refusal::NotAgreed), "no pushes once signed");
    }

    #[test]
    fn whole_upload_credentials_open_every_fragment_until_expiry_or_revocation() {
        let holdings = held(AgreementState::Signed { at_height: 1 });
        let state = ledger(
            50,
            &[
                (1, GRANTEE, Scope::Upload, 100, None),
                (2, GRANTEE, Scope::Upload, 40, None),
                (3, GRANTEE, Scope::Upload, 100, Some(45)),
            ],
        );
        let mut presented = Presentations::default();
        let now = Freshness::CURRENT;
        assert_eq!(
            decide_get(&GRANTEE, &[5; 32], &holdings, &state, now, &presented),
            Err(Refusal::NoCredential),
            "nothing presented"
        );
        assert_eq!(
            present(&STRANGER, &Digest([1; 32]), &[], &holdings, &state, now, &mut presented),
            Err(Refusal::NotGrantee),
            "another person's credential"
        );
        assert_eq!(
            present(&GRANTEE, &Digest([4; 32]), &[], &holdings, &state, now, &mut presented),
            Err(Refusal::NoCredential)
        );
        assert_eq!(
            present(&GRANTEE, &Digest([2; 32]), &[], &holdings, &state, now, &mut presented),
            Err(Refusal::Expired)
        );
        assert_eq!(
            present(&GRANTEE, &Digest([3; 32]), &[], &holdings, &state, now, &mut presented),
            Err(Refusal::Revoked)
        );
        assert_eq!(
            present(&GRANTEE, &Digest([1; 32]), &[], &holdings, &state, now, &mut presented),
            Ok(Presented { fragments: 2 })
        );
        assert_eq!(decide_get(&GRANTEE, &[5; 32], &holdings, &state, now, &presented), Ok(Some(Digest([1; 32]))));
        assert_eq!(decide_get(&GRANTEE, &[6; 32], &holdings, &state, now, &presented), Ok(Some(Digest([1; 32]))));
        assert_eq!(decide_get(&STRANGER, &[6; 32], &holdings, &state, now, &presented), Err(Refusal::NoCredential));

        // The decision is taken again at every get: revoked at 60, refused from 60 on.
        let mut later = ledger(60, &[(1, GRANTEE, Scope::Upload, 100, Some(60))]);
        assert_eq!(decide_get(&GRANTEE, &[5; 32], &holdings, &later, now, &presented), Err(Refusal::Revoked));
        later = ledger(101, &[(1, GRANTEE, Scope::Upload, 100, None)]);
        assert_eq!(decide_get(&GRANTEE, &[5; 32], &holdings, &later, now, &presented), Err(Refusal::Expired));

        // A stale replica fails closed for grantees.
        let lagging = Freshness { lag_blocks: LEDGER_LAG_BLOCKS_MAX + 1, silent_for: Duration::ZERO };
        assert_eq!(
            decide_get(&GRANTEE, &[5; 32], &holdings, &state, lagging, &presented),
            Err(Refusal::LedgerTooStale)
        );
        let silent = Freshness { lag_blocks: 0, silent_for: LEDGER_SILENCE_MAX + Duration::from_millis(1) };
        assert_eq!(decide_get(&GRANTEE, &[5; 32], &holdings, &state, silent, &presented), Err(Refusal::LedgerTooStale));
        let edge = Freshness { lag_blocks: LEDGER_LAG_BLOCKS_MAX, silent_for: LEDGER_SILENCE_MAX };
        assert_eq!(
            decide_get(&GRANTEE, &[5; 32], &holdings, &state, edge, &presented),
            Ok(Some(Digest([1; 32]))),
            "the limits themselves still decide"
        );

        // Pruning keeps a revoked credential's presentations for a while
        // (the precise refusal), then forgets them.
        presented.prune(&ledger(60, &[(1, GRANTEE, Scope::Upload, 100, Some(60))]));
        assert_eq!(presented.len(), 1);
        presented.prune(&ledger(60 + PRUNE_AFTER_BLOCKS + 1, &[(1, GRANTEE, Scope::Upload, 10_000, Some(60))]));
        assert!(presented.is_empty());
    }

    #[test]
    fn range_credentials_open_exactly_the_proven_fragments() {
        let holdings = held(AgreementState::Signed { at_height: 1 });
        // The scope covers fragment [5; 32] (and one held elsewhere), not [6; 32].
        let scope_fragments = [[5; 32], [42; 32]];
        let state = ledger(50, &[(1, GRANTEE, ranges_scope(&scope_fragments), 100, None)]);
        let mut presented = Presentations::default();
        let now = Freshness::CURRENT;
        // A forged membership for [6; 32] (proof of another index) does not verify.
        let mut forged = membership(&scope_fragments, 1);
        forged.fragment = [6; 32];
        assert_eq!(
            present(&GRANTEE, &Digest([1; 32]), &[forged], &holdings, &state, now, &mut presented),
            Err(Refusal::OutOfScope)
        );
        let inside = membership(&scope_fragments, 0);
        assert_eq!(
            present(&GRANTEE, &Digest([1; 32]), &[inside], &holdings, &state, now, &mut presented),
            Ok(Presented { fragments: 1 })
        );
        assert_eq!(decide_get(&GRANTEE, &[5; 32], &holdings, &state, now, &presented), Ok(Some(Digest([1; 32]))));
        assert_eq!(
            decide_get(&GRANTEE, &[6; 32], &holdings, &state, now, &presented),
            Err(Refusal::NoCredential),
            "outside the range"
        );
        let revoked = ledger(60, &[(1, GRANTEE, ranges_scope(&scope_fragments), 100, Some(55))]);
        assert_eq!(decide_get(&GRANTEE, &[5; 32], &holdings, &revoked, now, &presented), Err(Refusal::Revoked));
        let mut again = Presentations::default();
        assert_eq!(
            present(
                &GRANTEE,
                &Digest([1; 32]),
                &[membership(&scope_fragments, 0)],
                &holdings,
                &revoked,
                now,
                &mut again
            ),
            Err(Refusal::Revoked),
            "replayed after revocation"
        );
    }
}
