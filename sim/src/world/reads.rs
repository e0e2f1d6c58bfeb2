//! Reads: owners and researchers read with the client's real decoder and
//! download plan over simulated links, every fetch decided by the holder's
//! real gate; credentials granted, presented and revoked; strangers refused.

use super::*;

impl World {
    /// What node `holder` sends for `fragment`: its stored bytes, bad ones
    /// from a liar (one 1 KiB chunk, drawn from the id); and the first bad
    /// chunk, if any.
    pub(super) fn serve(&self, holder: usize, fragment: &[u8; 32]) -> (Vec<u8>, Option<u64>) {
        let mut bytes = self.nodes[holder].store[fragment].clone();
        if let Some(&chunk) = self.nodes[holder].corrupted.get(fragment) {
            return (bytes, Some(chunk));
        }
        if self.scenario.lying.contains(&(holder as u32)) {
            let drawn = u64::from_le_bytes(fragment[..8].try_into().expect("8 bytes"));
            let chunk = drawn % (bytes.len() as u64 / 1024).max(1);
            bytes[(chunk * 1024) as usize] ^= 0xa5;
            return (bytes, Some(chunk));
        }
        (bytes, None)
    }

    /// An owner reads one of its uploads back with the client's real
    /// decoder (data shards first, parity when one is missing or bad, the
    /// file's hash at the end) from the holders the ledger names now, each
    /// fetch decided by the holder's real gate. The read must succeed
    /// whenever every stripe has k good fragments on answering holders,
    /// and must never return other bytes.
    pub(super) fn download(&mut self) {
        if self.uploads.is_empty() {
            return;
        }
        let number = self.rng.random_range(0..self.uploads.len());
        let upload = &self.uploads[number];
        let (owner, record) = (upload.owner, upload.record.clone());
        let read = self.read(number, owner, record);
        self.downloads.0 += 1;
        match read.outcome {
            Ok(degraded) => self.downloads.2 += u64::from(degraded),
            Err(error) => {
                self.downloads.1 += 1;
                if read.readable {
                    self.violation(format!(
                        "upload {number}: every stripe had k good fragments answering, the owner's read failed: {error}"
                    ));
                }
            }
        }
        for refusal in read.refusals {
            self.violation(format!("upload {number}: a holder's gate refused the owner: {refusal}"));
        }
    }

    /// `reader` reads upload `number` with the client's real decoder and
    /// `record` (the owner's, or the one a credential sealed): from the
    /// holders the ledger names now, each fetch decided by the holder's
    /// real gate; what the gates released is receipted by the holders'
    /// receipts core.
    fn read(&mut self, number: usize, reader: AccountId, record: UploadRecord) -> Read {
        let upload = &self.uploads[number];
        let placement = Placement::Whole(Box::new(record)).current(self.state(), &upload.key);
        let Placement::Whole(record) = &placement else { unreachable!("a whole placement stays whole") };
        let index = record.index.clone();
        let source = Holders {
            world: self,
            placement,
            reader,
            refusals: Default::default(),
            released: Default::default(),
            speeds: Default::default(),
            elapsed_ms: Default::default(),
            unreachable: Default::default(),
        };
        let mut output = Vec::new();
        let decoded = strand_core::decode(&index, &source, &mut output, None, 1, |_| {});
        let took = *lock(&source.elapsed_ms);
        let refusals = source.refusals.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let released = source.released.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.read_ms.push(took);
        let readable = self.readable(number);
        let outcome = match decoded {
            Ok(report) if blake3::hash(&output) == index.file_hash && report.file_hash_verified => {
                Ok(!report.degraded.is_empty())
            }
            Ok(_) => {
                self.violation(format!("upload {number}: a read returned other bytes than the file"));
                Err("other bytes".to_string())
            }
            Err(error) => Err(error.to_string()),
        };
        let epoch = self.state().epoch();
        for &(holder, upload, authority, bytes) in &released {
            if self.nodes[holder].receipts.record(epoch, upload, authority, reader, bytes) {
                self.gate.receipted_bytes += bytes;
            }
        }
        Read { outcome, readable, refusals, released }
    }

    /// Each fault epoch: the revocations planned for it, a read by every
    /// grantee whose credential is on the ledger and ended at most an epoch
    /// ago, and new grants.
    pub(super) fn credentials(&mut self, epoch: u64) {
        let revoking: Vec<(usize, Digest)> = self
            .grants
            .iter()
            .filter(|grant| grant.revoke && grant.granted_epoch + 1 == epoch)
            .map(|grant| (grant.upload, grant.credential))
            .collect();
        for (upload, credential) in revoking {
            self.send_as_owner(upload, Body::RevokeCredential { credential });
            self.credential_counts.revoked += 1;
        }
        let (height, window) = (self.state().height, self.scenario.epoch_blocks);
        for index in 0..self.grants.len() {
            let Some(record) = self.state().credentials.get(&self.grants[index].credential) else { continue };
            let ended = record.revoked_at_height.unwrap_or(u64::MAX).min(record.grant.expires_at_height);
            if height <= ended.saturating_add(window) {
                self.grantee_read(index);
            }
        }
        for _ in 0..self.scenario.grants_per_epoch {
            self.grant(epoch);
        }
    }

    /// An owner grants a new researcher its whole upload, with the client's
    /// grant (the upload record sealed to the grantee).
    fn grant(&mut self, epoch: u64) {
        if self.uploads.is_empty() {
            return;
        }
        let upload = self.rng.random_range(0..self.uploads.len());
        let grantee = identity(&mut self.rng);
        let expires = self.state().height + self.scenario.grant_epochs * self.scenario.epoch_blocks;
        let granted = strand_client::credentials::whole_upload_grant(
            &self.uploads[upload].record,
            &grantee.public_key(),
            expires,
            "simulated research",
            &mut self.rng,
        );
        let grant = match granted {
            Ok(grant) => grant,
            Err(error) => return self.violation(format!("upload {upload}: the owner cannot grant it: {error:#}")),
        };
        let bytes = self.send_as_owner(upload, Body::GrantCredential(grant));
        let credential = credential_id(&transaction_hash(&bytes));
        let revoke = self.rng.random_bool(self.scenario.revoke_probability);
        self.grants.push(Grant {
            upload,
            grantee_secret: *grantee.secret_bytes(),
            grantee: AccountId::of(&grantee.public_key()),
            credential,
            granted_epoch: epoch,
            revoke,
        });
        self.credential_counts.granted += 1;
    }

    /// Grantee `index` opens its credential's key material, presents the
    /// credential to every holder the ledger names now (the node's real
    /// presentation check) and reads the upload. While the credential holds
    /// the read must succeed whenever the data is readable; once it is
    /// revoked or expired, no holder may release a fragment.
    fn grantee_read(&mut self, index: usize) {
        let (number, credential, reader) =
            (self.grants[index].upload, self.grants[index].credential, self.grants[index].grantee);
        let grantee = Identity::from_secret_bytes(&self.grants[index].grantee_secret);
        let key = self.uploads[number].key;
        let state = self.leader.state();
        let valid = query::credential_decision(state, &credential, &reader, &key, None, state.height).is_ok();
        let record = match strand_client::credentials::grantee_record(&grantee, state, &credential) {
            Ok(record) => record,
            Err(error) => return self.violation(format!("grantee of {}: {error:#}", credential.short())),
        };
        let providers = Placement::Whole(Box::new(record.clone())).current(state, &key).providers();
        for provider in providers {
            let Some(&holder) = self.by_account.get(&provider) else { continue };
            let node = &mut self.nodes[holder];
            if node.health != Health::Up {
                continue;
            }
            let presented = gate::present(
                &reader,
                &credential,
                &[],
                &node.keeper.holdings,
                state,
                gate::Freshness::CURRENT,
                &mut node.presentations,
            );
            if let (true, Err(refusal)) = (valid, presented) {
                let what = format!("node {holder} refused a valid credential's presentation: {}", refusal.label());
                self.violations.push(what);
            }
        }
        let read = self.read(number, reader, record);
        let counts = &mut self.credential_counts;
        counts.releases += read.released.len() as u64;
        if !valid {
            counts.reads_after_end += 1;
            if read.outcome.is_ok() || !read.released.is_empty() {
                let (released, read) = (read.released.len(), if read.outcome.is_ok() { "read" } else { "not read" });
                self.violation(format!(
                    "credential {}: after it was revoked or expired the upload was {read}, {released} fragments receipted",
                    credential.short()
                ));
            }
            return;
        }
        counts.reads += 1;
        match read.outcome {
            Ok(degraded) => counts.reads_degraded += u64::from(degraded),
            Err(error) => {
                counts.reads_failed += 1;
                if read.readable {
                    self.violation(format!(
                        "credential {}: a readable upload's read failed: {error}",
                        credential.short()
                    ));
                }
            }
        }
        for refusal in read.refusals {
            self.violation(format!(
                "credential {}: a holder refused a valid credential: {refusal}",
                credential.short()
            ));
        }
    }

    /// Whether every stripe of upload `number` has k good fragments (not
    /// corrupted, not from a liar) on answering holders.
    fn readable(&self, number: usize) -> bool {
        let upload = &self.uploads[number];
        upload.map.stripes.iter().all(|shards| {
            let good = shards
                .iter()
                .filter(|(id, _)| {
                    self.nodes.iter().enumerate().any(|(index, node)| {
                        node.health == Health::Up
                            && node.store.contains_key(id)
                            && !node.corrupted.contains_key(id)
                            && !self.scenario.lying.contains(&(index as u32))
                    })
                })
                .count();
            good >= usize::from(upload.k)
        })
    }

    /// A peer with no order asks a node for one of its fragments: a random
    /// key, or another provider naming an open order that is not its own.
    pub(super) fn stranger_read(&mut self) {
        let holders: Vec<usize> = (0..self.nodes.len())
            .filter(|&index| self.nodes[index].health == Health::Up && !self.nodes[index].keeper.holdings.is_empty())
            .collect();
        if holders.is_empty() {
            return;
        }
        let holder = holders[self.rng.random_range(0..holders.len())];
        let ids: Vec<[u8; 32]> = self.nodes[holder]
            .keeper
            .holdings
            .agreements()
            .flat_map(|(_, agreement)| agreement.fragment_ids.iter().copied())
            .collect();
        let fragment = ids[self.rng.random_range(0..ids.len())];
        let orders: Vec<(Digest, AccountId)> =
            self.state().repair_orders.iter().map(|(id, order)| (*id, order.repairer)).collect();
        let (requester, order) = match orders.get(self.rng.random_range(0..orders.len().max(1))) {
            Some(&(order, repairer)) if self.rng.random_bool(0.5) => {
                let other = self.nodes[self.rng.random_range(0..self.nodes.len())].account;
                if other == repairer {
                    return; // that one may read
                }
                (other, order)
            }
            _ => {
                let mut bytes = [0u8; 32];
                self.rng.fill(&mut bytes[..]);
                (AccountId(bytes), Digest(bytes))
            }
        };
        if self.gate_read(holder, &requester, &order, &fragment).is_ok() {
            self.violation(format!("a stranger read a fragment under order {}", order.short()));
        }
    }
}

/// The holders of an upload, as the client's decoder fetches from them:
/// the holder the ledger names now, its health, its real gate, its bytes.
struct Holders<'a> {
    world: &'a World,
    placement: Placement,
    reader: AccountId,
    /// Gate refusals of the reader.
    refusals: std::sync::Mutex<Vec<String>>,
    /// What the gates released, to be receipted.
    released: std::sync::Mutex<Vec<Release>>,
    /// The client's per-download provider speeds.
    speeds: std::sync::Mutex<strand_client::speed::Speeds>,
    /// Simulated milliseconds the read has taken so far.
    elapsed_ms: std::sync::Mutex<u64>,
    /// Providers that did not answer (the client's `unreachable`).
    unreachable: std::sync::Mutex<BTreeSet<AccountId>>,
}

/// A read's outcome: whether it was rebuilt from parity, or why it failed;
/// whether the data was readable; the gates' refusals and releases.
struct Read {
    outcome: Result<bool, String>,
    readable: bool,
    refusals: Vec<String>,
    released: Vec<Release>,
}

impl Holders<'_> {
    /// What the holder of `location` answers, and after how many simulated
    /// milliseconds: its latency (and its bandwidth for the bytes), or the
    /// client's connect timeout when it does not answer.
    fn answer(
        &self,
        location: strand_core::io::FragmentLocation,
        id: &strand_core::FragmentId,
        length_max: usize,
        into: &mut Vec<u8>,
    ) -> (std::io::Result<bool>, u64) {
        let Some(provider) = self.placement.provider_of(location.stripe, location.shard) else { return (Ok(false), 0) };
        let unreachable = || std::io::Error::other(format!("provider {} does not answer", provider.short()));
        // One that did not answer is not asked again in this download.
        if lock(&self.unreachable).contains(&provider) {
            return (Err(unreachable()), 0);
        }
        let Some(&holder) = self.world.by_account.get(&provider) else {
            return (Err(unreachable()), CONNECT_TIMEOUT_MS);
        };
        let node = &self.world.nodes[holder];
        if node.health != Health::Up {
            lock(&self.unreachable).insert(provider);
            return (Err(unreachable()), CONNECT_TIMEOUT_MS);
        }
        let latency = node.latency_ms;
        let fragment = *id.as_bytes();
        let state = self.world.leader.state();
        let decided = gate::decide_get(
            &self.reader,
            &fragment,
            &node.keeper.holdings,
            state,
            gate::Freshness::CURRENT,
            &node.presentations,
        );
        let credential = match decided {
            Ok(credential) => credential,
            // A node that let the fragment go says so, as iroh-blobs does.
            Err(gate::Refusal::UnknownFragment) => return (Ok(false), latency),
            Err(refusal) => {
                let mut refusals = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                refusals.push(format!("node {holder}: {}", refusal.label()));
                return (Err(std::io::Error::other(refusal.label())), latency);
            }
        };
        if !node.store.contains_key(&fragment) {
            return (Ok(false), latency);
        }
        let (bytes, _) = self.world.serve(holder, &fragment);
        if bytes.len() > length_max {
            return (Ok(false), latency);
        }
        if let Some((upload, authority, size)) =
            gate::receipt_of(&self.reader, &fragment, credential, &node.keeper.holdings)
        {
            let mut released = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            released.push((holder, upload, authority, size));
        }
        let transfer = bytes.len() as u64 * 1_000 / node.bytes_per_s.max(1);
        *into = bytes;
        (Ok(true), latency + transfer)
    }

    /// The reader's simulated time now.
    fn now(&self) -> Instant {
        self.world.instant() + Duration::from_millis(*lock(&self.elapsed_ms))
    }

    fn provider(&self, location: strand_core::io::FragmentLocation) -> AccountId {
        self.placement.provider_of(location.stripe, location.shard).unwrap_or(AccountId([0; 32]))
    }
}

/// The client's download plan over simulated links: a fetch waits no longer
/// than the client's hedge (`Speeds::hedge_after`), a provider that stalls
/// is passed over (`Speeds::stalled`), siblings are asked fastest first
/// (`Speeds::expected_seconds`) and raced `needed` at a time with one more
/// started whenever the hedge passes without an arrival, as
/// `NetworkSource` does. Time adds up fetch after fetch (a one-thread
/// decoder).
impl strand_core::io::FragmentSource for Holders<'_> {
    fn fetch(
        &self,
        location: strand_core::io::FragmentLocation,
        id: &strand_core::FragmentId,
        length_max: usize,
        into: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        let provider = self.provider(location);
        let now = self.now();
        if lock(&self.speeds).is_stalled(&provider, now) {
            return Err(std::io::Error::other("passed over: stalled"));
        }
        let hedge = lock(&self.speeds).hedge_after().as_millis() as u64;
        let (outcome, took) = self.answer(location, id, length_max, into);
        let mut speeds = lock(&self.speeds);
        if took > hedge {
            *lock(&self.elapsed_ms) += hedge;
            speeds.stalled(provider, now + Duration::from_millis(hedge));
            return Err(std::io::Error::other("stalled"));
        }
        *lock(&self.elapsed_ms) += took;
        if matches!(outcome, Ok(true)) {
            speeds.arrived(provider, Duration::from_millis(took));
        }
        outcome
    }

    fn fetch_any(
        &self,
        candidates: &[(strand_core::io::FragmentLocation, strand_core::FragmentId)],
        needed: usize,
        length_max: usize,
        buffers: &mut [Vec<u8>],
    ) -> Vec<Option<std::io::Result<bool>>> {
        let mut outcomes: Vec<Option<std::io::Result<bool>>> = candidates.iter().map(|_| None).collect();
        // In flight: (finish, candidate, outcome, took).
        let mut running: Vec<(u64, usize, std::io::Result<bool>, u64)> = Vec::new();
        let (mut now, mut next, mut arrived) = (0u64, 0usize, 0usize);
        let mut start = |index: usize, at: u64, running: &mut Vec<(u64, usize, std::io::Result<bool>, u64)>| {
            let (location, id) = candidates[index];
            let (outcome, took) = self.answer(location, &id, length_max, &mut buffers[index]);
            running.push((at + took, index, outcome, took));
        };
        while arrived < needed {
            while running.len() < needed - arrived && next < candidates.len() {
                start(next, now, &mut running);
                next += 1;
            }
            let Some(first) = (0..running.len()).min_by_key(|&at| (running[at].0, running[at].1)) else { break };
            let hedge = lock(&self.speeds).hedge_after().as_millis() as u64;
            if next < candidates.len() && now + hedge < running[first].0 {
                // Slow: ask one more, keep waiting for the others too.
                now += hedge;
                start(next, now, &mut running);
                next += 1;
                continue;
            }
            let (finish, index, outcome, took) = running.swap_remove(first);
            now = finish;
            if matches!(outcome, Ok(true)) {
                arrived += 1;
                lock(&self.speeds).arrived(self.provider(candidates[index].0), Duration::from_millis(took));
            }
            outcomes[index] = Some(outcome);
        }
        *lock(&self.elapsed_ms) += now;
        outcomes
    }

    fn rank(&self, candidates: &mut [(strand_core::io::FragmentLocation, strand_core::FragmentId)]) {
        let (now, speeds) = (self.now(), lock(&self.speeds).clone());
        candidates.sort_by(|(left, _), (right, _)| {
            let (left, right) = (self.provider(*left), self.provider(*right));
            speeds.expected_seconds(&left, now).total_cmp(&speeds.expected_seconds(&right, now))
        });
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long the client waits to connect to a provider that does not
/// answer (`download.rs`).
const CONNECT_TIMEOUT_MS: u64 = 5_000;
