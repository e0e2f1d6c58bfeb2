//! The attack-and-fault matrix on a real local network, driven by a hostile
//! peer that speaks the real protocols (libp2p request-response, iroh-blobs,
//! the ledger service). Every case asserts three things:
//! - no byte reached anyone not entitled to it: the hostile peer received
//!   none of the owner's bytes, and the nodes' `released` counters moved by
//!   exactly what the hostile peer was entitled to (its own fragments);
//! - no honest party lost data: the owner's download afterwards is
//!   byte-identical, every stripe whole (and the grantee's, where a case
//!   touched credentials);
//! - the nodes keep serving honest peers: that download used every provider.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use strand_client::record::UploadRecord;
use strand_contracts::transaction::{Body, FailureDomain, ProviderRegistration};
use strand_contracts::{AccountId, Digest, Outcome, Rejection, Transaction};
use strand_ledger_service::protocol::{Response as LedgerResponse, TransactionStatus};
use strand_tests::{describe, json};
use strand_wire::{Presentation, Refusal, Request, Response, Stage};
use support::hostile::*;
use support::*;

/// What a hostile action got.
#[derive(Default)]
struct Got {
    /// Bytes of data the hostile peer is not entitled to that it received.
    unentitled: u64,
    /// Bytes the nodes released that the hostile peer was entitled to (its
    /// own fragments).
    entitled: u64,
}

struct Matrix {
    network: Network,
    runtime: Arc<tokio::runtime::Runtime>,
    upload: String,
    file: Vec<u8>,
    grantee_home: tempfile::TempDir,
    credential: String,
    /// The owner's fragments on each node.
    held: Vec<Vec<[u8; 32]>>,
    fragment_size: u32,
    owner: strand_core::Identity,
    chain: Digest,
    cases: usize,
    seed: u8,
}

const RELEASED: &str = "strand_node_fragment_bytes_released_total";

impl Matrix {
    fn new() -> Self {
        let network = Network::start_with_epochs(60);
        let runtime = Arc::new(tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime"));
        // 1 MB in 64 KiB chunks: four stripes of RS(4+2), four fragments per node.
        let file = sample(&network.path("cohort.vcf"), 1_000_000, 41);
        let upload = network.upload("cohort.vcf", &["--chunk-size", "64KiB"]);
        let owner = strand_core::keyfile::read(&network.path("identity.pem")).expect("owner key");
        let record = UploadRecord::load(network.home.path(), &upload, &owner).expect("record");
        let width = record.index.params().fragments_per_stripe();
        let held = (0..6)
            .map(|node| {
                let account = AccountId(network.node_account(node));
                (0..record.index.layout.stripe_count)
                    .flat_map(|stripe| (0..width).map(move |shard| (stripe, shard)))
                    .filter(|&(stripe, shard)| record.provider_of(stripe, shard) == account)
                    .map(|(stripe, shard)| *record.index.stripe(stripe)[shard].as_bytes())
                    .collect()
            })
            .collect();
        let grantee_home = tempfile::tempdir().expect("grantee home");
        let output = network.strand_in(grantee_home.path(), &["keygen"]);
        assert!(output.status.success(), "{}", describe(&output));
        let grantee_key = String::from_utf8_lossy(&output.stdout).lines().next().expect("key").trim().to_string();
        let output = network.strand(&["grant", &upload, "--to", &grantee_key, "--purpose", "cohort QC", "--json"]);
        assert!(output.status.success(), "{}", describe(&output));
        let credential = json(&output)["credential"].as_str().expect("credential").to_string();
        let ledger = network.ledger.clone();
        let chain = runtime.block_on(async {
            let mut client = strand_ledger_service::client::LedgerClient::connect(&ledger).await.expect("ledger");
            client.genesis().await.expect("genesis").chain()
        });
        let fragment_size = record.index.params().fragment_size() as u32;
        Self {
            network,
            runtime,
            upload,
            file,
            grantee_home,
            credential,
            held,
            fragment_size,
            owner,
            chain,
            cases: 0,
            seed: 100,
        }
    }

    /// A new hostile key.
    fn hostile(&mut self) -> Hostile {
        self.seed += 1;
        Hostile::new(&self.runtime, self.seed)
    }

    fn node(&self, index: usize) -> NodeAddress {
        self.network.node_address(index)
    }

    /// Runs one case (see the module documentation).
    fn case(&mut self, name: &str, action: impl FnOnce(&mut Matrix) -> Got) {
        let started = Instant::now();
        let before = self.network.metric_sum(RELEASED);
        let got = action(self);
        let released = self.network.metric_sum(RELEASED) - before;
        assert_eq!(got.unentitled, 0, "{name}: the hostile peer received bytes it is not entitled to");
        assert_eq!(released, got.entitled as f64, "{name}: the nodes released bytes beyond what was entitled");
        self.owner_reads_everything(name);
        self.cases += 1;
        eprintln!("case {:>2} {name}: ok in {:.1} s", self.cases, started.elapsed().as_secs_f64());
    }

    fn owner_reads_everything(&self, name: &str) {
        let output = self.network.download(&self.upload, "check.out", &[]);
        assert!(output.status.success(), "{name}: the owner's download failed: {}", describe(&output));
        let summary = json(&output);
        assert!(std::fs::read(self.network.path("check.out")).expect("download") == self.file, "{name}: bytes differ");
        assert_eq!(summary["degraded_stripes"].as_array().map(Vec::len), Some(0), "{name}: {summary}");
        assert_eq!(summary["unreachable_providers"].as_array().map(Vec::len), Some(0), "{name}: {summary}");
    }

    fn grantee_reads_everything(&self, name: &str) {
        let copy = self.grantee_home.path().join("copy.vcf");
        let output = self.network.strand_in(
            self.grantee_home.path(),
            &["download", "--credential", &self.credential, "--out", copy.to_str().expect("utf-8"), "--json"],
        );
        assert!(output.status.success(), "{name}: the grantee's download failed: {}", describe(&output));
        assert!(std::fs::read(&copy).expect("copy") == self.file, "{name}: the grantee's bytes differ");
    }

    fn metric(&self, node: usize, name: &str) -> f64 {
        metric(&self.network.metrics(node), name)
    }

    /// Bytes the hostile peer gets of the owner's fragments on `node`,
    /// whole or in part.
    fn steal(&self, hostile: &Hostile, node: usize) -> u64 {
        let address = self.node(node);
        self.held[node]
            .iter()
            .map(|fragment| hostile.get(&address, *fragment) as u64 + hostile.get_range(&address, *fragment, 0..1))
            .sum()
    }
}

fn refused(answer: Result<Response, String>) -> Refusal {
    match answer {
        Ok(Response::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn refused_terms(answer: Result<Response, String>, mentions: &str) {
    match refused(answer) {
        Refusal::Terms(reason) => assert!(reason.contains(mentions), "{reason} should mention {mentions}"),
        other => panic!("expected a terms refusal mentioning {mentions}, got {other:?}"),
    }
}

fn random_ids(count: usize, seed: u8) -> Vec<[u8; 32]> {
    (0..count).map(|index| *blake3::hash(&[seed, index as u8, (index >> 8) as u8]).as_bytes()).collect()
}

/// A proposal with its terms changed by `change`.
fn proposal_with(
    hostile: &Hostile,
    node: &NodeAddress,
    source: &Source,
    change: impl FnOnce(&mut strand_wire::Proposal),
) -> Request {
    let Request::Propose(mut proposal) = hostile.proposal(node, 7, &source.ids, 4096, source) else { unreachable!() };
    change(&mut proposal);
    Request::Propose(proposal)
}

fn own_blobs(seed: u8, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|index| (0..4096u32).map(|byte| (byte as u8) ^ seed ^ index as u8).collect()).collect()
}

#[test]
fn the_attack_and_fault_matrix() {
    let mut matrix = Matrix::new();
    let started = Instant::now();

    // Ownership: fragment ids are public; holding them must not make a
    // stranger their owner.
    matrix.case("a stranger proposes terms over the owner's fragment ids", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(Vec::new()));
        let node = m.node(0);
        let answer = hostile.ask(&node, &hostile.proposal(&node, 1, &m.held[0], m.fragment_size, &source));
        assert!(matches!(refused(answer), Refusal::HeldForAnotherOwner { .. }));
        Got { unentitled: m.steal(&hostile, 0), entitled: 0 }
    });
    matrix.case("a stranger stages the owner's fragment ids", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(Vec::new()));
        let stage = Request::Stage(Stage {
            upload: [2; 16],
            fragment_count: m.held[1].len() as u32,
            fragment_size: m.fragment_size,
            source: source.address.clone(),
            fragment_ids: m.held[1].clone(),
        });
        assert!(matches!(refused(hostile.ask(&m.node(1), &stage)), Refusal::HeldForAnotherOwner { .. }));
        Got { unentitled: m.steal(&hostile, 1), entitled: 0 }
    });
    matrix.case("a stranger slips one of the owner's ids among its own", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(own_blobs(3, 2)));
        let node = m.node(2);
        let before = m.metric(2, "strand_node_contracts_held");
        let mut ids = source.ids.clone();
        ids.push(m.held[2][0]);
        let answer = hostile.ask(&node, &hostile.proposal(&node, 3, &ids, 4096, &source));
        assert!(matches!(refused(answer), Refusal::HeldForAnotherOwner { .. }));
        assert_eq!(m.metric(2, "strand_node_contracts_held"), before, "nothing recorded");
        Got { unentitled: m.steal(&hostile, 2), entitled: 0 }
    });
    matrix.case("a stranger's fetch fails: nothing is kept", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(Vec::new()));
        let node = m.node(3);
        let before = m.metric(3, "strand_node_contracts_held");
        let answer = hostile.ask(&node, &hostile.proposal(&node, 4, &random_ids(3, 4), 4096, &source));
        assert!(matches!(refused(answer), Refusal::Fetch(_)));
        assert_eq!(m.metric(3, "strand_node_contracts_held"), before, "the failed agreement is forgotten");
        Got { unentitled: m.steal(&hostile, 3), entitled: 0 }
    });
    matrix.case("a stranger's own contract is signed and never opened", |m| {
        let hostile = m.hostile();
        let blobs = own_blobs(5, 2);
        let source = hostile.source(SourceKind::Serving(blobs.clone()));
        let node = m.node(4);
        let Request::Propose(proposal) = hostile.proposal(&node, 5, &source.ids, 4096, &source) else { unreachable!() };
        match hostile.ask(&node, &Request::Propose(proposal.clone())) {
            Ok(Response::Accepted { signature, .. }) => {
                assert!(signature.verify(&node.account, &proposal.terms.signing_message(&m.chain)));
            }
            other => panic!("its own fragments are its to store: {other:?}"),
        }
        // It may read its own fragment back, and nothing of the owner's.
        let own = hostile.get(&node, source.ids[0]) as u64;
        assert_eq!(own, 4096);
        Got { unentitled: m.steal(&hostile, 4), entitled: own }
    });

    // Terms outside the node's acceptance policy, each refused with its reason.
    matrix.case("a proposal in the owner's name from another key", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(own_blobs(6, 1)));
        let owner = AccountId::of(&m.owner.public_key());
        let request = proposal_with(&hostile, &m.node(0), &source, |proposal| proposal.terms.owner = owner);
        refused_terms(hostile.ask(&m.node(0), &request), "must come from the owner");
        Got::default()
    });
    matrix.case("terms naming another provider", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(own_blobs(7, 1)));
        let other = m.node(1).account;
        let request = proposal_with(&hostile, &m.node(0), &source, |proposal| proposal.terms.provider = other);
        assert_eq!(refused(hostile.ask(&m.node(0), &request)), Refusal::NotForThisNode);
        Got::default()
    });
    matrix.case("fragment ids that are not the terms' root", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(own_blobs(8, 2)));
        let request = proposal_with(&hostile, &m.node(0), &source, |proposal| proposal.fragment_ids.reverse());
        assert_eq!(refused(hostile.ask(&m.node(0), &request)), Refusal::FragmentsMismatch);
        Got::default()
    });
    matrix.case("hostile proof policies: 0 and 65,535 challenges, 0 and 10,000 strikes", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(own_blobs(9, 1)));
        let node = m.node(1);
        for challenges in [0u16, 49, u16::MAX] {
            let request =
                proposal_with(&hostile, &node, &source, |p| p.terms.proof_policy.challenges_per_epoch = challenges);
            refused_terms(hostile.ask(&node, &request), "challenges per epoch");
        }
        for strikes in [0u16, 11, 10_000] {
            let request = proposal_with(&hostile, &node, &source, |p| p.terms.proof_policy.strikes_max = strikes);
            refused_terms(hostile.ask(&node, &request), "strikes");
        }
        Got::default()
    });
    matrix.case("hostile terms: no term, an endless term", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(own_blobs(10, 1)));
        for term in [0u32, u32::MAX] {
            let request = proposal_with(&hostile, &m.node(2), &source, |proposal| proposal.terms.term_epochs = term);
            refused_terms(hostile.ask(&m.node(2), &request), "term");
        }
        Got::default()
    });
    matrix.case("hostile sizes and counts", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Serving(own_blobs(11, 2)));
        let node = m.node(3);
        for size in [0u32, u32::MAX] {
            let request = proposal_with(&hostile, &node, &source, |proposal| proposal.terms.fragment_size = size);
            refused_terms(hostile.ask(&node, &request), "fragment size");
        }
        let request = proposal_with(&hostile, &node, &source, |proposal| proposal.terms.fragment_count = u32::MAX);
        refused_terms(hostile.ask(&node, &request), "fragment count");
        let request = proposal_with(&hostile, &node, &source, |proposal| proposal.terms.fragment_count = 1_000);
        assert_eq!(refused(hostile.ask(&node, &request)), Refusal::FragmentsMismatch, "a count the ids do not match");
        let request = proposal_with(&hostile, &node, &source, |proposal| proposal.terms.parity_shards = 0);
        refused_terms(hostile.ask(&node, &request), "k and m");
        Got::default()
    });
    matrix.case("a proposal larger than the node's free capacity", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Stalling);
        let size = strand_proof_of_storage::policy::FRAGMENT_BYTES_MAX;
        // 960 fragments of 64 MiB: 60 GiB, more than the devnet's 50 GiB.
        let node = m.node(4);
        let answer = hostile.ask(&node, &hostile.proposal(&node, 12, &random_ids(960, 12), size, &source));
        assert!(matches!(refused(answer), Refusal::NoCapacity { .. }));
        Got::default()
    });
    matrix.case("concurrent proposals that together exceed the capacity", |m| {
        let (first, second) = (m.hostile(), m.hostile());
        let sources = [first.source(SourceKind::Stalling), second.source(SourceKind::Stalling)];
        let size = strand_proof_of_storage::policy::FRAGMENT_BYTES_MAX;
        let node = m.node(5);
        // 30 GiB each: either fits alone, both never do. The admitted one
        // stalls on its source; the other is refused at once.
        let answers: Vec<Result<Response, String>> = std::thread::scope(|scope| {
            let asks: Vec<_> = [(&first, &sources[0], 13u8), (&second, &sources[1], 14u8)]
                .into_iter()
                .map(|(hostile, source, seed)| {
                    let request = hostile.proposal(&node, seed, &random_ids(480, seed), size, source);
                    let node = node.clone();
                    scope.spawn(move || hostile.ask(&node, &request))
                })
                .collect();
            asks.into_iter().map(|ask| ask.join().expect("asked")).collect()
        });
        let no_capacity =
            answers.iter().filter(|answer| matches!(answer, Ok(Response::Refused(Refusal::NoCapacity { .. })))).count();
        let stalled = answers.iter().filter(|answer| answer.is_err()).count();
        assert_eq!((no_capacity, stalled), (1, 1), "{answers:?}");
        let capacity = m.metric(5, "strand_node_capacity_bytes");
        assert!(m.metric(5, "strand_node_committed_bytes") <= capacity);
        Got::default()
    });

    // Floods from one peer: bounded per peer, the node serves the rest.
    matrix.case("a flood of proposals from one peer", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Stalling);
        let node = m.node(0);
        let requests = (0..12u8)
            .map(|index| hostile.proposal(&node, 20 + index, &random_ids(1, 20 + index), 4096, &source))
            .collect();
        let answers = hostile.ask_many(&node, requests, Duration::from_secs(10));
        let busy = answers
            .iter()
            .filter(|answer| match answer {
                Ok(Response::Refused(Refusal::Busy(_))) => true,
                Err(reason) => refused_by_transport(reason),
                _ => false,
            })
            .count();
        assert!(busy >= 8, "at most 4 proposals of one peer in flight: {answers:?}");
        assert!(!answers.iter().any(|answer| matches!(answer, Ok(Response::Accepted { .. }))));
        Got::default()
    });
    matrix.case("a flood of stagings from one peer", |m| {
        let hostile = m.hostile();
        let source = hostile.source(SourceKind::Stalling);
        let node = m.node(1);
        let requests = (0..30u8)
            .map(|index| {
                Request::Stage(Stage {
                    upload: [40 + index; 16],
                    fragment_count: 1,
                    fragment_size: 4096,
                    source: source.address.clone(),
                    fragment_ids: random_ids(1, 40 + index),
                })
            })
            .collect();
        let answers = hostile.ask_many(&node, requests, Duration::from_secs(10));
        // Refused by the node: busy, over libp2p's streams per connection, or
        // the connection itself refused.
        let refused = answers
            .iter()
            .filter(|answer| match answer {
                Ok(Response::Refused(_)) => true,
                Err(reason) => refused_by_transport(reason),
                _ => false,
            })
            .count();
        assert!(refused >= 22, "at most 8 stagings of one peer in flight: {answers:?}");
        assert!(!answers.iter().any(|answer| matches!(answer, Ok(Response::Staged { .. }))));
        assert!(m.metric(1, "strand_node_staging_reserved_bytes") <= 4.0 * 4096.0, "at most 4 reservations per owner");
        Got::default()
    });
    matrix.case("a flood of presentations from one peer", |m| {
        let hostile = m.hostile();
        let node = m.node(2);
        let requests = (0..200u8)
            .map(|index| Request::Present(Presentation { credential: Digest([index; 32]), fragments: Vec::new() }))
            .collect();
        let answers = hostile.ask_many(&node, requests, Duration::from_secs(20));
        assert!(!answers.iter().any(|answer| matches!(answer, Ok(Response::Presented { .. }))), "{answers:?}");
        // Denied, or refused by libp2p's limits (streams per connection,
        // connections per peer): every one answered at once, none opened.
        let denied = answers.iter().filter(|answer| matches!(answer, Ok(Response::Denied { .. }))).count();
        let failed = answers.iter().filter(|answer| answer.is_err()).count();
        assert_eq!((answers.len(), denied + failed), (200, 200), "{denied} denied, {failed} refused by libp2p");
        Got { unentitled: m.steal(&hostile, 2), entitled: 0 }
    });
    matrix.grantee_reads_everything("after a flood of presentations");
    matrix.case("another key presents the grantee's credential", |m| {
        let hostile = m.hostile();
        let credential: Digest = m.credential.parse().expect("credential id");
        let answer = hostile.ask(&m.node(3), &Request::Present(Presentation { credential, fragments: Vec::new() }));
        assert_eq!(answer, Ok(Response::Denied { code: "not_grantee".into() }));
        Got { unentitled: m.steal(&hostile, 3), entitled: 0 }
    });
    matrix.grantee_reads_everything("after another key presented the credential");
    matrix.case("a stranger asks for repair reads under an order that does not exist", |m| {
        let hostile = m.hostile();
        for node in 0..6 {
            let answer = hostile.ask(&m.node(node), &Request::Repair { order: Digest([0x42; 32]) });
            assert_eq!(answer, Ok(Response::Denied { code: "unknown_order".into() }), "node {node}");
        }
        Got { unentitled: (0..6).map(|node| m.steal(&hostile, node)).sum(), entitled: 0 }
    });

    // Bytes that are not messages, to every listener.
    matrix.case("an oversized libp2p frame", |m| {
        let answer = raw_frame(&m.runtime, 90, &m.node(4), u32::MAX.to_be_bytes().to_vec());
        assert!(answer.as_ref().is_ok_and(Vec::is_empty) || answer.is_err(), "{answer:?}");
        Got::default()
    });
    matrix.case("a truncated libp2p frame", |m| {
        let bytes = [&1000u32.to_be_bytes()[..], &[7u8; 10]].concat();
        let answer = raw_frame(&m.runtime, 91, &m.node(5), bytes);
        assert!(answer.as_ref().is_ok_and(Vec::is_empty) || answer.is_err(), "{answer:?}");
        Got::default()
    });
    matrix.case("an undecodable request", |m| {
        let hostile = m.hostile();
        let answer = hostile.ask_bytes(&m.node(0), vec![0xff; 100]).expect("an answer");
        match strand_wire::decode::<Response>(&answer) {
            Ok(Response::Refused(Refusal::Terms(reason))) => assert!(reason.contains("undecodable"), "{reason}"),
            other => panic!("{other:?}"),
        }
        Got::default()
    });

    // The data plane: every get and push goes to the gate.
    matrix.case("a stranger gets the owner's fragments, whole and in part, from every node", |m| {
        let hostile = m.hostile();
        Got { unentitled: (0..6).map(|node| m.steal(&hostile, node)).sum(), entitled: 0 }
    });
    matrix.case("a stranger pushes a fragment", |m| {
        let hostile = m.hostile();
        // iroh-blobs gives a pusher no acknowledgement: what counts is the
        // node's gate refusing it and the node storing nothing.
        let refusals = "strand_node_requests_refused_total{operation=\"push\",reason=\"not_agreed\"}";
        let (refused_before, stored_before) = (m.metric(1, refusals), m.metric(1, "strand_node_fragments_stored"));
        hostile.push(&m.node(1), &[9u8; 4096]);
        assert_eq!(m.metric(1, refusals), refused_before + 1.0, "the gate refused the push");
        assert_eq!(m.metric(1, "strand_node_fragments_stored"), stored_before);
        Got::default()
    });
    matrix.case("several blobs in one request", |m| {
        let hostile = m.hostile();
        Got { unentitled: hostile.get_many(&m.node(2), &m.held[2]), entitled: 0 }
    });
    matrix.case("a flood of connections from one key", |m| {
        let hostile = m.hostile();
        let open = hostile.connection_flood(&m.node(3), 40);
        // Admitted connections stay open after a refused get; the rest are
        // refused at once.
        assert!((1..=strand_net::blobs::CONNECTIONS_PER_REMOTE_MAX).contains(&open), "{open} connections stayed open");
        Got { unentitled: m.steal(&hostile, 3), entitled: 0 }
    });

    // The ledger service.
    let ledger = matrix.network.ledger.clone();
    matrix.case("an oversized ledger frame", |m| {
        let answer = raw_ledger(&m.runtime, &ledger, &ledger_header(1, u32::MAX), false);
        match answer {
            Ok(Some(LedgerResponse::Error(message))) => assert!(message.contains("exceed"), "{message}"),
            other => panic!("{other:?}"),
        }
        Got::default()
    });
    matrix.case("a truncated ledger frame", |m| {
        let bytes = [ledger_header(1, 100), vec![1; 10]].concat();
        let answer = raw_ledger(&m.runtime, &ledger, &bytes, true);
        assert!(matches!(answer, Ok(None) | Ok(Some(LedgerResponse::Error(_)))), "{answer:?}");
        Got::default()
    });
    matrix.case("a ledger frame of another protocol version", |m| {
        let bytes = [ledger_header(9, 1), vec![0]].concat();
        match raw_ledger(&m.runtime, &ledger, &bytes, false) {
            Ok(Some(LedgerResponse::Error(message))) => assert!(message.contains("protocol version 9"), "{message}"),
            other => panic!("{other:?}"),
        }
        Got::default()
    });
    let provider = matrix.hostile();
    matrix.case("a hostile provider reports receipts for epoch u64::MAX", |m| {
        let registration = Body::RegisterProvider(ProviderRegistration {
            endpoints: vec!["iroh:127.0.0.1:1".into()],
            // No capacity: honest uploads never place fragments on it.
            capacity_bytes: 0,
            domain: FailureDomain { organisation: "hostile".into(), site: "h".into(), jurisdiction: "h".into() },
        });
        let registered = provider.transact(&ledger, m.chain, registration);
        assert!(
            matches!(registered, TransactionStatus::Finalised { outcome: Outcome::Accepted, .. }),
            "{registered:?}"
        );
        let receipts = Body::AccessReceipts { epoch: u64::MAX, receipts: Vec::new() };
        match provider.transact(&ledger, m.chain, receipts) {
            TransactionStatus::Finalised {
                outcome: Outcome::Rejected(Rejection::WrongEpoch { found, .. }), ..
            } => {
                assert_eq!(found, u64::MAX)
            }
            other => panic!("{other:?}"),
        }
        Got::default()
    });
    matrix.case("a hostile provider answers for another provider's contract", |m| {
        let owner = AccountId::of(&m.owner.public_key());
        let contract = m.runtime.block_on(async {
            let mut client = strand_ledger_service::client::LedgerClient::connect(&ledger).await.expect("ledger");
            let genesis = client.genesis().await.expect("genesis");
            let mut follower =
                strand_ledger_service::follower::Follower::new(strand_contracts::Replica::new(&genesis), None);
            follower.catch_up(&mut client).await.expect("catch up");
            let state = follower.replica().state();
            let epoch = state.epoch();
            let contract = strand_contracts::query::contracts_of_account(state, &owner)[0].0;
            (contract, epoch)
        });
        let body = Body::SubmitProofs {
            epoch: contract.1,
            proofs: vec![strand_contracts::transaction::ContractProof { contract: contract.0, answers: vec![1] }],
        };
        match provider.transact(&ledger, m.chain, body) {
            TransactionStatus::Finalised { outcome: Outcome::Rejected(rejection), .. } => {
                assert!(matches!(rejection, Rejection::ProofsNotDue(_) | Rejection::WrongEpoch { .. }), "{rejection:?}")
            }
            other => panic!("{other:?}"),
        }
        Got::default()
    });
    matrix.case("a replay of the owner's contract opening", |m| {
        let status = m.runtime.block_on(async {
            let mut client = strand_ledger_service::client::LedgerClient::connect(&ledger).await.expect("ledger");
            let blocks = client.blocks(1, 256).await.expect("blocks");
            let opening = blocks
                .iter()
                .filter_map(|bytes| strand_contracts::Block::from_bytes(bytes).ok())
                .flat_map(|block| block.transactions)
                .find(|bytes| Transaction::from_bytes(bytes).is_ok_and(|t| matches!(t.body, Body::OpenContract { .. })))
                .expect("the owner's contract opening is on the chain");
            submit_and_wait(&mut client, opening).await
        });
        match status {
            TransactionStatus::Dropped(reason) => {
                assert!(reason.contains("already used") || reason.contains("reused"), "{reason}")
            }
            TransactionStatus::Finalised { outcome: Outcome::Rejected(Rejection::NonceReused { .. }), .. } => {}
            other => panic!("{other:?}"),
        }
        Got::default()
    });
    matrix.case("a transaction signed for another chain", |m| {
        let hostile = m.hostile();
        let status = hostile.transact(&ledger, Digest([7; 32]), Body::CloseContract { contract: Digest([1; 32]) });
        match status {
            TransactionStatus::Dropped(reason) => assert!(reason.contains("chain"), "{reason}"),
            other => panic!("{other:?}"),
        }
        Got::default()
    });

    assert!(matrix.cases >= 25, "{} cases", matrix.cases);
    matrix.grantee_reads_everything("at the end");
    // No node panicked on anything it was sent.
    for node in 1..=6 {
        let log =
            std::fs::read_to_string(matrix.network.config.directory.join(format!("node-{node}.log"))).expect("log");
        assert!(!log.contains("panicked"), "node-{node} panicked:\n{log}");
    }
    eprintln!("{} cases in {:.0} s", matrix.cases, started.elapsed().as_secs_f64());
}

/// A request libp2p refused before the node's logic saw it: over the
/// streams one connection may open, or on a connection the node closed
/// (a flooding peer's extra connection, over its connections per peer).
fn refused_by_transport(reason: &str) -> bool {
    reason.contains("max sub-streams") || reason.contains("connection is closed")
}
