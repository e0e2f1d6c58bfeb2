//! The ledger service's metrics, fed the blocks of a small chain: proof
//! epochs per provider by outcome, transactions by kind and outcome,
//! rejections by reason, and uploads by health once contracts are lost.

#[path = "../../tests/support/mod.rs"]
mod support;

use strand_contracts::Outcome;
use strand_contracts::transaction::{Body, ContractTerms};
use strand_core::Identity;
use strand_ledger_service::metrics::{LedgerMetrics, Observer};
use support::*;

/// The sum of the samples of `series` (a name with its labels, as rendered).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Watched {
    chain: Chain,
    metrics: LedgerMetrics,
    observer: Observer,
}

impl Watched {
    fn new() -> Self {
        Self { chain: Chain::new(), metrics: LedgerMetrics::new(), observer: Observer::default() }
    }

    /// One block of `transactions`, observed.
    fn block(&mut self, transactions: Vec<Vec<u8>>) -> Vec<Outcome> {
        let receipts = self.chain.block(transactions);
        let block = self.chain.blocks.last().expect("the block");
        self.metrics.block(&mut self.observer, block, &receipts, self.chain.replica.state());
        receipts.into_iter().map(|receipt| receipt.outcome).collect()
    }

    fn submit(&mut self, sender: &Identity, body: Body) -> Outcome {
        let transaction = self.chain.transaction(sender, body);
        self.block(vec![transaction]).remove(0)
    }

    /// Observed empty blocks until the current epoch is `epoch`.
    fn enter_epoch(&mut self, epoch: u64) {
        while self.chain.replica.state().epoch() < epoch {
            self.block(Vec::new());
        }
    }

    fn open(&mut self, owner: &Identity, provider: &Identity, upload: u8) {
        let body = open_contract(&self.chain, terms(owner, provider, upload), provider);
        assert_eq!(self.submit(owner, body), Outcome::Accepted);
    }

    fn text(&self) -> String {
        self.metrics.render()
    }
}

#[test]
fn proof_epochs_are_counted_per_provider_passed_missed_and_failed() {
    let mut watched = Watched::new();
    let (owner, provider) = (identity(1), identity(2));
    assert_eq!(watched.submit(&provider, registration("gene-bank-a")), Outcome::Accepted);
    watched.open(&owner, &provider, 1);
    let label = hex::encode(account(&provider).0);
    let series = |outcome: &str| {
        format!("strand_ledger_provider_proof_epochs_total{{outcome=\"{outcome}\",provider=\"{label}\"}}")
    };
    let since = format!("strand_ledger_provider_epochs_since_proof{{provider=\"{label}\"}}");

    // Epoch 1 answered: counted as passed at epoch 2's first block.
    watched.enter_epoch(1);
    assert_eq!(watched.submit(&provider, honest_submission(&watched.chain, &provider)), Outcome::Accepted);
    watched.enter_epoch(2);
    let text = watched.text();
    assert_eq!((value(&text, &series("passed")), value(&text, &series("missed"))), (1.0, 0.0), "{text}");
    assert_eq!(value(&text, &since), 0.0, "{text}");

    // Epoch 2 silent: missed, one epoch since the last proof.
    watched.enter_epoch(3);
    let text = watched.text();
    assert_eq!((value(&text, &series("passed")), value(&text, &series("missed"))), (1.0, 1.0), "{text}");
    assert_eq!(value(&text, &since), 1.0, "{text}");

    // Epoch 3 answered wrongly: failed (a submission, so not missed).
    let Body::SubmitProofs { epoch, mut proofs } = honest_submission(&watched.chain, &provider) else {
        unreachable!("a submission")
    };
    proofs[0].answers.iter_mut().for_each(|byte| *byte ^= 0xff);
    assert_eq!(watched.submit(&provider, Body::SubmitProofs { epoch, proofs }), Outcome::Accepted);
    watched.enter_epoch(4);
    let text = watched.text();
    assert_eq!(
        (value(&text, &series("passed")), value(&text, &series("failed")), value(&text, &series("missed"))),
        (1.0, 1.0, 1.0),
        "{text}"
    );

    // Transactions by kind and outcome; rejections by reason.
    assert_eq!(value(&text, "strand_ledger_transactions_total{kind=\"submit_proofs\",outcome=\"accepted\"}"), 2.0);
    assert_eq!(watched.submit(&provider, honest_submission(&watched.chain, &provider)), Outcome::Accepted);
    let duplicate = honest_submission(&watched.chain, &provider);
    assert!(matches!(watched.submit(&provider, duplicate), Outcome::Rejected(_)));
    let text = watched.text();
    assert_eq!(value(&text, "strand_ledger_transactions_total{kind=\"submit_proofs\",outcome=\"rejected\"}"), 1.0);
    assert_eq!(value(&text, "strand_ledger_transactions_rejected_total{reason=\"duplicate_submission\"}"), 1.0);
    assert_eq!(
        value(&text, "strand_ledger_transactions_rejected_total{reason=\"bad_signature\"}"),
        0.0,
        "shown at zero"
    );
    assert!(value(&text, "strand_ledger_block_interval_seconds_count") > 10.0);
    assert_eq!(value(&text, "strand_ledger_height"), watched.chain.replica.height() as f64);
}

#[test]
fn uploads_that_lose_as_many_contracts_as_their_parity_are_at_risk() {
    let mut watched = Watched::new();
    let owner = identity(1);
    let (a, b, c) = (identity(2), identity(3), identity(4));
    let registrations = [(&a, "org-a"), (&b, "org-b"), (&c, "org-c")]
        .map(|(provider, organisation)| watched.chain.transaction(provider, registration(organisation)));
    assert!(watched.block(registrations.to_vec()).iter().all(|outcome| *outcome == Outcome::Accepted));
    // Upload 1 on a and b (RS(4+2): parity 2); upload 2 on a only; upload 3
    // on c; all in epoch 0.
    let opens = [(&a, 1), (&b, 1), (&a, 2), (&c, 3)].map(|(provider, upload)| {
        // Terms long enough that lost contracts are still owed repair.
        let terms = ContractTerms { term_epochs: 100, ..terms(&owner, provider, upload) };
        let body = open_contract(&watched.chain, terms, provider);
        watched.chain.transaction(&owner, body)
    });
    assert!(watched.block(opens.to_vec()).iter().all(|outcome| *outcome == Outcome::Accepted));
    // a and b fall silent; c answers every epoch.
    for epoch in 1..=4 {
        watched.enter_epoch(epoch);
        if epoch < 4 {
            assert_eq!(watched.submit(&c, honest_submission(&watched.chain, &c)), Outcome::Accepted);
        }
    }
    let text = watched.text();
    let health = |name: &str| value(&text, &format!("strand_ledger_uploads{{health=\"{name}\"}}"));
    assert_eq!(
        (health("healthy"), health("degraded"), health("at_risk"), health("beyond_parity")),
        (1.0, 1.0, 1.0, 0.0),
        "{text}"
    );
    assert_eq!(value(&text, "strand_ledger_contracts{status=\"lost\"}"), 3.0, "{text}");
    assert!(
        value(&text, "strand_ledger_repair_orders_open") + value(&text, "strand_ledger_repair_queued_contracts") >= 3.0
    );
    // Declared lost at this close, the silent providers owe nothing from
    // the next: no epochs-since series then.
    let silent = hex::encode(account(&a).0);
    let since = format!("strand_ledger_provider_epochs_since_proof{{provider=\"{silent}\"}}");
    assert_eq!(value(&text, &since), 3.0, "three missed in a row: {text}");
    watched.enter_epoch(5);
    let text = watched.text();
    assert!(!text.contains(&since), "{text}");
    assert!(
        value(&text, &format!("strand_ledger_provider_proof_epochs_total{{outcome=\"missed\",provider=\"{silent}\"}}"))
            >= 3.0
    );
}
