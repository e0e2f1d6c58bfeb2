//! The nodes' duties: proofs from the prover core, repair with the repair
//! core through the holders' real gates, receipts put on the ledger.

use super::*;

impl World {
    /// Node `index` answers `epoch`'s schedule from the bytes it holds; a
    /// contract with a challenged fragment missing is left out (missed).
    pub(super) fn submit_proofs(&mut self, index: usize, epoch: u64) {
        if self.nodes[index].health != Health::Up || self.state().epoch() != epoch {
            return;
        }
        let account = self.nodes[index].account;
        if epoch == 1 && self.scenario.deleting.is_some_and(|(count, _)| index < count as usize) {
            let Some((_, scheduled)) = strand_contracts::proofs::schedule(self.state(), &account, epoch) else {
                return;
            };
            self.sample_detection(index, &scheduled);
        }
        // The node's prover core decides; the store here is memory.
        let node = &self.nodes[index];
        let Some(duty) = prover::due(self.leader.state(), &account, &node.keeper.holdings, false) else { return };
        let body = prover::answer_from(&duty, &MemoryStore(&node.store));
        if self.scenario.late.contains(&(index as u32)) && self.rng.random_bool(self.scenario.late_probability) {
            // Computed in time, delivered after the epoch ended.
            let epoch_ms = self.scenario.block_ms * self.scenario.epoch_blocks;
            let next = (self.time_ms / epoch_ms + 1) * epoch_ms + self.scenario.block_ms;
            self.queue.push(next, Event::Late { node: index, body: Box::new(body) });
        } else {
            self.send(index, body);
        }
    }

    /// For a node that deleted part of what it holds, at its first proof
    /// epoch: the chance its challenges miss every deleted chunk, as the
    /// policy states it — `∏ (1 − f)` over its challenges, `f` the deleted
    /// fraction of the bytes a challenge is drawn from (its contract for a
    /// rotation challenge, all its bytes for a byte challenge) — and
    /// whether they did.
    fn sample_detection(&mut self, index: usize, scheduled: &[strand_proof_of_storage::schedule::Scheduled]) {
        use strand_proof_of_storage::schedule::Reason;
        let node = &self.nodes[index];
        let missing = |ids: &[[u8; 32]]| ids.iter().filter(|id| !node.store.contains_key(*id)).count();
        let (mut all, mut gone) = (0usize, 0usize);
        for (_, agreement) in node.keeper.holdings.agreements() {
            all += agreement.fragment_ids.len();
            gone += missing(&agreement.fragment_ids);
        }
        let mut predicted = 1.0;
        let mut clean = true;
        for challenge in scheduled {
            let Some(ids) = node.keeper.holdings.agreement(&Digest(challenge.contract)).map(|held| &held.fragment_ids)
            else {
                continue;
            };
            let fraction = match challenge.reason {
                Reason::Bytes => gone as f64 / all.max(1) as f64,
                Reason::Rotation | Reason::Suspect => missing(ids) as f64 / ids.len().max(1) as f64,
            };
            predicted *= 1.0 - fraction;
            let held = ids.get(challenge.challenge.fragment as usize).is_some_and(|id| node.store.contains_key(id));
            clean &= held;
        }
        self.detection_samples.push((predicted, clean));
    }

    /// Node `index` rebuilds the contract of `order` with the node's repair
    /// core: the plan from the stripe map, k siblings per stripe from
    /// holders that answer, the lost shard rebuilt and checked.
    pub(super) fn repair(&mut self, index: usize, order_id: &Digest) {
        let state = self.state().clone();
        let Some(order) = state.repair_orders.get(order_id).cloned() else { return };
        let open = !order.reported && state.epoch() <= order.deadline_epoch;
        if !open || self.nodes[index].health != Health::Up || !self.nodes[index].repaired.insert(*order_id) {
            return;
        }
        let Some(contract) = state.contracts.get(&order.contract) else { return };
        let terms = contract.terms.clone();
        let Some(upload) = self.uploads.iter().find(|upload| upload.map.root() == terms.stripes_root) else { return };
        let map = upload.map.clone();
        let Ok(work) = strand_node::core::repair::plan(&terms, &map, &state) else { return };
        // Capacity and ownership as for a proposal, recorded as fetching
        // until every shard is rebuilt (the daemon's order).
        let contract_id = terms.id();
        if let Err(refusal) = self.nodes[index].keeper.admit_repair(&terms, &map.fragments_of(&terms.provider)) {
            *self.proposals.outcomes.entry(format!("repair_{}", refusal.label())).or_default() += 1;
            return;
        }
        let (k, m) = (terms.data_shards, terms.parity_shards);
        let mut rebuilt = Vec::with_capacity(work.len());
        for stripe in &work {
            let mut shards = Vec::with_capacity(usize::from(k));
            for sibling in &stripe.siblings {
                if shards.len() == usize::from(k) {
                    break;
                }
                let Some(&holder) = self.by_account.get(&sibling.holder) else { continue };
                if !self.serves(holder, &sibling.fragment) {
                    continue;
                }
                let requester = self.nodes[index].account;
                if let Err(refusal) = self.gate_read(holder, &requester, order_id, &sibling.fragment) {
                    self.violation(format!(
                        "order {}: a holder's gate refused the order's own repairer: {refusal}",
                        order_id.short()
                    ));
                    continue;
                }
                let (bytes, bad_chunk) = self.serve(holder, &sibling.fragment);
                self.repair_read_bytes += bytes.len() as u64;
                // Verified as it streams (BLAKE3 tree): a bad chunk stops the
                // read there, and the repairer accuses the sibling.
                if *blake3::hash(&bytes).as_bytes() != sibling.fragment {
                    let chunk = bad_chunk.unwrap_or(0);
                    if self.accused.insert((*order_id, sibling.contract)) {
                        self.gate.bad_siblings_reported += 1;
                        let report = Body::ReportBadSibling {
                            order: *order_id,
                            contract: sibling.contract,
                            fragment: sibling.index,
                            chunk: u32::try_from(chunk).unwrap_or(u32::MAX),
                        };
                        self.send(index, report);
                    }
                    continue;
                }
                shards.push((sibling.shard, bytes));
            }
            let Ok(bytes) = strand_node::core::repair::rebuild(k, m, stripe.shard, &shards) else {
                forget(&mut self.nodes[index], &contract_id);
                return;
            };
            if *blake3::hash(&bytes).as_bytes() != stripe.fragment {
                forget(&mut self.nodes[index], &contract_id);
                self.violation(format!("order {}: a rebuilt shard is not the lost fragment", order_id.short()));
                return;
            }
            rebuilt.push((stripe.fragment, bytes));
        }
        let node = &mut self.nodes[index];
        for (id, bytes) in rebuilt {
            self.repair_written_bytes += bytes.len() as u64;
            node.store.insert(id, bytes);
        }
        node.keeper.signed(&contract_id, state.height);
        self.send(index, Body::RecordRepair { order: *order_id, contract: order.contract });
    }

    /// Node `holder`'s gate on a repair read of `fragment` by `requester`
    /// under `order`: the node's real check and per-order budget; a
    /// release is also checked against the ledger (the invariant: no node
    /// releases what the ledger does not allow).
    pub(super) fn gate_read(
        &mut self,
        holder: usize,
        requester: &AccountId,
        order: &Digest,
        fragment: &[u8; 32],
    ) -> Result<(), &'static str> {
        let state = self.leader.state();
        let node = &mut self.nodes[holder];
        let decided = check_request(requester, order, state, &node.keeper.holdings)
            .map_err(|refusal| refusal.label())
            .and_then(|(_, open)| {
                node.reads.grant(*requester, *order, &open);
                node.reads.decide(requester, fragment, Extent::Whole, &node.keeper.holdings, state).ok_or("over_budget")
            });
        match decided {
            Ok((granted, upload, bytes)) => {
                let epoch = state.epoch();
                if node.receipts.record(epoch, upload, ReadAuthority::Repair(granted), *requester, bytes) {
                    self.gate.receipted_bytes += bytes;
                }
                let allowed = state.repair_orders.get(&granted).is_some_and(|open| {
                    open.repairer == *requester && !open.reported && state.epoch() <= open.deadline_epoch
                });
                if !allowed {
                    self.violation(format!(
                        "a gate released a fragment under order {} it does not allow",
                        granted.short()
                    ));
                }
                self.gate.releases += 1;
                Ok(())
            }
            Err(label) => {
                *self.gate.refusals.entry(label.to_string()).or_default() += 1;
                Err(label)
            }
        }
    }

    /// Every answering node puts its closed epochs' receipts on the ledger,
    /// as the daemon does: a batch for the previous epoch or the current
    /// one; older ones are too late (counted).
    pub(super) fn submit_receipts(&mut self, epoch: u64) {
        for index in 0..self.nodes.len() {
            if self.nodes[index].health != Health::Up {
                continue;
            }
            for (batch_epoch, receipts) in self.nodes[index].receipts.take_closed(epoch) {
                if batch_epoch + 1 < epoch {
                    self.gate.receipts_too_late_bytes += receipts.iter().map(|receipt| receipt.bytes).sum::<u64>();
                    continue;
                }
                self.send(index, Body::AccessReceipts { epoch: batch_epoch, receipts });
            }
        }
    }

    /// The ledger's record of who read what, in bytes (owners, grantees
    /// and repairers): recent batches and the totals older ones were summed
    /// into.
    pub(super) fn ledger_receipted_bytes(&self) -> u64 {
        let state = self.leader.state();
        let recent: u64 =
            state.access.iter().flat_map(|(_, batch)| batch.receipts.iter()).map(|receipt| receipt.bytes).sum();
        let summed: u64 = state.access_totals.iter().map(|(_, total)| total.bytes).sum();
        recent + summed
    }
}
