//! Uploads as the client makes them — placement on the ledger's free
//! bytes, the client's encoder, staging and proposals answered by the nodes'
//! real staging and proposal cores — and owners' own transactions.

use super::*;

impl World {
    /// One upload as the client makes it: real data and Reed-Solomon
    /// parity, placed by the client's placement over the providers the
    /// ledger lists with what it says they have free, one proposal per
    /// provider answered by the node's real proposal core (terms, root,
    /// capacity, ownership). Any refusal fails the upload, as it does the
    /// real client's; what other nodes signed is never opened and their
    /// retention lets it go.
    pub(super) fn upload(&mut self, number: u32) {
        let scenario = &self.scenario;
        let (k, m) = (usize::from(scenario.data_shards), usize::from(scenario.parity_shards));
        let owner = identity(&mut self.rng);
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&number.to_le_bytes());
        key[4..12].copy_from_slice(&self.seed.to_le_bytes());
        let providers = strand_contracts::query::providers_by_domain(self.state(), &Default::default(), 0);
        let candidates: Vec<strand_client::placement::Candidate> = providers
            .iter()
            .map(|(account, provider)| strand_client::placement::Candidate {
                account: *account,
                organisation: provider.registration.domain.organisation.clone(),
                site: provider.registration.domain.site.clone(),
                free_bytes: provider.free_bytes(),
            })
            .collect();
        let mut placement_seed = [0u8; 32];
        self.rng.fill(&mut placement_seed[..]);
        let placed = strand_client::placement::place(
            u64::from(scenario.stripes),
            k + m,
            &candidates,
            u64::from(scenario.fragment_bytes),
            &placement_seed,
        );
        let Ok(placements) = placed else {
            *self.proposals.outcomes.entry("no_placement".into()).or_default() += 1;
            self.proposals.uploads_failed += 1;
            return;
        };
        let accounts: Vec<AccountId> = providers.iter().map(|(account, _)| *account).collect();
        // A file encoded by the client's real encoder (encrypted,
        // scrambled, Reed-Solomon), its last chunk partly padding.
        let params = strand_core::CodecParams {
            chunk_size: scenario.fragment_bytes,
            data_shards: scenario.data_shards,
            parity_shards: scenario.parity_shards,
        };
        let chunk = u64::from(scenario.fragment_bytes);
        let length = u64::from(scenario.stripes) * k as u64 * chunk - self.rng.random_range(0..chunk);
        let mut file = vec![0u8; usize::try_from(length).expect("a scenario's upload fits in memory")];
        self.rng.fill(&mut file[..]);
        let secrets = strand_core::UploadSecrets {
            upload_id: strand_core::UploadId::from_bytes(key),
            master_key: strand_core::keys::MasterKey::random(&mut self.rng),
        };
        let mut sink = strand_core::io::MemoryStore::new();
        let index = strand_core::encode(&file[..], &mut sink, params, &secrets, 1, |_| {})
            .expect("the scenario check keeps the codec parameters valid");
        // The owner's encoded fragments, by id.
        let mut fragments: BTreeMap<[u8; 32], Vec<u8>> = BTreeMap::new();
        let ids: Vec<Vec<[u8; 32]>> = (0..placements.len() as u64)
            .map(|stripe| index.stripe(stripe).iter().map(|id| *id.as_bytes()).collect())
            .collect();
        for id in ids.iter().flatten() {
            if let Some(bytes) = sink.get(&strand_core::FragmentId::from_bytes(*id)) {
                fragments.insert(*id, bytes);
            }
        }
        let map = StripeMap::from_placement(&placements, &accounts, |stripe, shard| ids[stripe][shard]);
        let mut used: Vec<usize> = placements.iter().flatten().copied().collect();
        used.sort_unstable();
        used.dedup();
        let chain = self.state().params.chain;
        let term_epochs = u32::try_from(scenario.fault_epochs + scenario.liveness_epochs + 8).unwrap_or(u32::MAX);
        let owner_account = AccountId::of(&owner.public_key());
        let record = UploadRecord::from_placement(index, &placements, &accounts)
            .expect("a scenario's placement is within a record's limits");
        // Staging first, as the client does: every provider pulls and
        // holds its fragments under a reservation before the proposals.
        let source = FragmentSource { endpoint: owner_account.0, addresses: Vec::new() };
        let fragment_size = u32::try_from(params.fragment_size()).expect("at most 1 MiB and a tag");
        let now = self.instant();
        for &candidate in &used {
            let provider = accounts[candidate];
            let Some(&index) = self.by_account.get(&provider) else { continue };
            let fragment_ids = map.fragments_of(&provider);
            for batch in fragment_ids.chunks(strand_wire::STAGED_FRAGMENTS_MAX) {
                let stage = Stage {
                    upload: key,
                    fragment_count: fragment_ids.len() as u32,
                    fragment_size,
                    source: source.clone(),
                    fragment_ids: batch.to_vec(),
                };
                if let Err(label) = self.stage(index, owner_account, &stage, &fragments, now) {
                    *self.proposals.outcomes.entry(format!("stage_{label}")).or_default() += 1;
                    self.proposals.uploads_failed += 1;
                    return;
                }
            }
        }
        self.last_upload_ms = self.time_ms;
        let mut signed = Vec::with_capacity(used.len());
        for &candidate in &used {
            let provider = accounts[candidate];
            let fragment_ids = map.fragments_of(&provider);
            let terms = ContractTerms {
                upload: key,
                owner: owner_account,
                provider,
                fragment_root: Digest(strand_proof_of_storage::merkle::root(&fragment_ids)),
                fragment_count: fragment_ids.len() as u32,
                fragment_size,
                data_shards: self.scenario.data_shards,
                parity_shards: self.scenario.parity_shards,
                stripe_count: u64::from(self.scenario.stripes),
                stripes_root: map.root(),
                term_epochs,
                proof_policy: ProofPolicy {
                    challenges_per_epoch: self.scenario.challenges_per_epoch,
                    strikes_max: self.scenario.strikes_max,
                },
            };
            let proposal = Proposal { terms, fragment_ids, source: source.clone(), stripe_map: map.clone() };
            let Some(&index) = self.by_account.get(&provider) else { continue };
            let answer = self.propose(index, &proposal, &fragments);
            *self.proposals.outcomes.entry(answer.map_or_else(|label| label, |_| "accepted").into()).or_default() += 1;
            match answer {
                Ok(signature) => signed.push((proposal.terms, signature)),
                Err(_) => {
                    self.proposals.uploads_failed += 1;
                    return;
                }
            }
        }
        let owner_nonce = signed.len() as u64;
        for (owner_nonce, (terms, provider_signature)) in (1..).zip(signed) {
            let body = Body::OpenContract { terms, provider_signature };
            self.backlog.push_back(Transaction::sign(chain, &owner, owner_nonce, body).to_bytes());
        }
        self.uploads.push(Upload {
            map,
            k: self.scenario.data_shards,
            key,
            owner: owner_account,
            owner_secret: *owner.secret_bytes(),
            owner_nonce,
            record,
        });
    }

    /// Node `index` answers a staging request with its real staging core:
    /// ownership and capacity (shared with its agreements and other
    /// reservations), then pulls the fragments named and holds them.
    fn stage(
        &mut self,
        index: usize,
        owner: AccountId,
        stage: &Stage,
        fragments: &BTreeMap<[u8; 32], Vec<u8>>,
        now: Instant,
    ) -> Result<(), &'static str> {
        if self.nodes[index].health != Health::Up {
            return Err("unreachable");
        }
        let node = &mut self.nodes[index];
        let pull = node.keeper.admit_stage(owner, stage, now).map_err(|refusal| refusal.label())?;
        for id in &pull {
            let bytes = fragments.get(id).filter(|bytes| blake3::hash(bytes).as_bytes() == id).ok_or("fetch")?;
            node.store.insert(*id, bytes.clone());
        }
        node.keeper.staging.held(&(owner, stage.upload), &pull, now);
        Ok(())
    }

    /// Node `index` answers `proposal` with its real proposal core, as the
    /// daemon does: registered, terms within its policy, the root and the
    /// stripe map, then capacity and ownership in one step; the fragments
    /// to fetch come from the owner and are checked against their ids;
    /// then the node countersigns. A refusal's label otherwise.
    fn propose(
        &mut self,
        index: usize,
        proposal: &Proposal,
        fragments: &BTreeMap<[u8; 32], Vec<u8>>,
    ) -> Result<Signature, &'static str> {
        let (height, chain) = (self.state().height, self.state().params.chain);
        if self.nodes[index].health != Health::Up {
            return Err("unreachable");
        }
        if !self.state().providers.contains(&self.nodes[index].account) {
            return Err("not_ready");
        }
        let node = &mut self.nodes[index];
        let policy = *node.keeper.policy();
        proposal::check_terms(proposal, &node.account, &policy).map_err(|refusal| refusal.label())?;
        proposal::check_root(proposal).map_err(|refusal| refusal.label())?;
        let admission = node.keeper.admit_proposal(proposal).map_err(|refusal| refusal.label())?;
        for id in &admission.fetch {
            match fragments.get(id) {
                Some(bytes) if blake3::hash(bytes).as_bytes() == id => {
                    node.store.insert(*id, bytes.clone());
                }
                _ => {
                    forget(node, &proposal.terms.id());
                    return Err("fetch");
                }
            }
        }
        node.keeper.signed(&proposal.terms.id(), height);
        Ok(Signature(node.identity.sign(&proposal.terms.signing_message(&chain))))
    }

    /// Signs `body` as the owner of upload `number` (its next nonce) into
    /// the mempool; the transaction's bytes.
    pub(super) fn send_as_owner(&mut self, number: usize, body: Body) -> Vec<u8> {
        let chain = self.state().params.chain;
        let upload = &mut self.uploads[number];
        upload.owner_nonce += 1;
        let owner = Identity::from_secret_bytes(&upload.owner_secret);
        let bytes = Transaction::sign(chain, &owner, upload.owner_nonce, body).to_bytes();
        self.backlog.push_back(bytes.clone());
        bytes
    }
}
