//! The access matrix on a real local network: each case asserts the exact
//! bytes released (only the authorised fragments, else zero) and the reason
//! code.

mod support;

use std::path::Path;
use std::time::Duration;

use strand_client::credentials;
use strand_client::record::UploadRecord;
use strand_contracts::transaction::{Body, CredentialGrant, Scope};
use strand_contracts::{AccountId, Digest};
use strand_core::Identity;
use strand_tests::{describe, json};
use support::*;

const GRANTEE_BYTES: &str = "strand_node_fragment_bytes_released_to_total{reader=\"grantee\"}";

fn keygen(network: &Network, home: &Path) -> String {
    let output = network.strand_in(home, &["keygen"]);
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).lines().next().expect("public key line").trim().to_string()
}

fn refused_codes(network: &Network, code: &str) -> f64 {
    network.metric_sum(&format!("strand_node_requests_refused_total{{operation=\"get\",reason=\"{code}\"}}"))
}

/// Tries to get `fragment` from node `holder` as `who` over iroh-blobs:
/// returns the bytes received (none when refused).
fn raw_get(
    network: &Network,
    runtime: &tokio::runtime::Runtime,
    who: &Identity,
    holder: usize,
    fragment: [u8; 32],
) -> usize {
    let account = network.node_account(holder);
    let iroh = network.node_iroh(holder);
    runtime.block_on(async {
        let endpoint = strand_net::blobs::endpoint(*who.secret_bytes(), "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("endpoint");
        let remote = strand_net::blobs::remote_address(account, &[iroh]).expect("address");
        let connection = strand_net::blobs::connect(&endpoint, remote, Duration::from_secs(5)).await.expect("connects");
        let got = strand_net::blobs::fetch_bytes(&connection, fragment, Duration::from_secs(10))
            .await
            .map(|bytes| bytes.len())
            .unwrap_or(0);
        endpoint.close().await;
        got
    })
}

/// A fragment node `holder` stores, from the owner's record.
fn fragment_on(network: &Network, record: &UploadRecord, holder: usize) -> [u8; 32] {
    let account = AccountId(network.node_account(holder));
    let width = record.index.params().fragments_per_stripe();
    (0..record.index.layout.stripe_count)
        .flat_map(|stripe| (0..width).map(move |shard| (stripe, shard)))
        .find(|&(stripe, shard)| record.provider_of(stripe, shard) == account)
        .map(|(stripe, shard)| *record.index.stripe(stripe)[shard].as_bytes())
        .expect("the node holds a fragment")
}

#[test]
fn the_access_matrix() {
    // 12-second epochs, so access receipts reach the ledger within the test.
    // Not shorter: the ledger takes a node's receipts only in the epoch after
    // the one they count, and the node killed and restarted below must come
    // back within that (5-second epochs lost its receipts on a loaded CI run).
    let mut network = Network::start_with_epochs(60);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (grantee_home, stranger_home) = (tempfile::tempdir().expect("home"), tempfile::tempdir().expect("home"));
    let grantee_key = keygen(&network, grantee_home.path());
    keygen(&network, stranger_home.path());
    let grantee = strand_core::keyfile::read(&grantee_home.path().join("identity.pem")).expect("grantee key");
    let stranger = strand_core::keyfile::read(&stranger_home.path().join("identity.pem")).expect("stranger key");
    let owner = strand_core::keyfile::read(&network.path("identity.pem")).expect("owner key");

    // Sixteen 64 KiB chunks in four stripes of RS(4+2): 24 fragments, four per node.
    let file = sample(&network.path("cohort.vcf"), 1_000_000, 21);
    let upload = network.upload("cohort.vcf", &["--chunk-size", "64KiB"]);
    let record = UploadRecord::load(network.home.path(), &upload, &owner).expect("record");
    let fragment_size = record.index.params().fragment_size() as f64;
    // A download reads one fragment per chunk of the file (none of padding).
    let data_fragments = record.index.layout.chunk_count as f64;
    let ledger_address = network.ledger.clone();
    let ledger_state = || {
        runtime.block_on(async {
            let home = tempfile::tempdir().expect("replica home");
            let (mut client, genesis) =
                strand_client::ledger::connect(&ledger_address, home.path()).await.expect("ledger");
            strand_client::ledger::sync(&mut client, &genesis, home.path())
                .await
                .expect("sync")
                .replica()
                .state()
                .clone()
        })
    };

    // Owner: reads everything; nothing counts as released to a grantee.
    let output = network.download(&upload, "owner.out", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(std::fs::read(network.path("owner.out")).expect("output") == file);
    assert_eq!(network.metric_sum(GRANTEE_BYTES), 0.0);

    // Grantee of the whole upload: reads exactly the data fragments.
    let output = network.strand(&["grant", &upload, "--to", &grantee_key, "--purpose", "cohort QC", "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let credential = json(&output)["credential"].as_str().expect("credential id").to_string();
    let copy = grantee_home.path().join("copy.vcf");
    let output = network.strand_in(
        grantee_home.path(),
        &["download", "--credential", &credential, "--out", copy.to_str().expect("utf-8"), "--json"],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert!(std::fs::read(&copy).expect("grantee copy") == file, "the grantee reads the file");
    assert_eq!(
        network.metric_sum(GRANTEE_BYTES),
        data_fragments * fragment_size,
        "exactly one fragment per chunk of the file; the download said {}",
        describe(&output)
    );
    let released = network.metric_sum(GRANTEE_BYTES);

    // Grantee of a range (another key, holding only that credential): inside
    // it, exactly the slice, and only the fragment of the one chunk it
    // covers is released.
    let ranger_home = tempfile::tempdir().expect("home");
    let ranger_key = keygen(&network, ranger_home.path());
    let ranger = strand_core::keyfile::read(&ranger_home.path().join("identity.pem")).expect("ranger key");
    let output = network.strand(&[
        "grant",
        &upload,
        "--to",
        &ranger_key,
        "--range",
        "70000..100000",
        "--purpose",
        "region",
        "--json",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let range_credential = json(&output)["credential"].as_str().expect("credential id").to_string();
    let region = ranger_home.path().join("region.vcf");
    let output = network.strand_in(
        ranger_home.path(),
        &["download", "--credential", &range_credential, "--out", region.to_str().expect("utf-8"), "--json"],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        std::fs::read(&region).expect("region") == file[70_000..100_000],
        "the range grantee reads exactly its range"
    );
    assert_eq!(network.metric_sum(GRANTEE_BYTES), released + fragment_size, "one chunk, one fragment released");
    // The node that released it is killed (SIGKILL) a little later and
    // restarted: its pending receipt must still reach the ledger (the audit
    // below checks). Its metrics restart from zero: keep what it had counted.
    let served_by = {
        let slot = strand_core::scramble::Scramble::new(
            &record.index.master_key.scramble_seed(),
            record.index.layout.slot_count(),
        )
        .slot_of_position(70_000 / 65_536);
        let k = u64::from(record.index.params().data_shards);
        let account = record.provider_of(slot / k, (slot % k) as usize);
        (0..6).find(|index| AccountId(network.node_account(*index)) == account).expect("the serving node")
    };
    std::thread::sleep(Duration::from_millis(1500));
    let counted_there = metric(&network.metrics(served_by), GRANTEE_BYTES);
    network.kill(served_by);
    network.restart(served_by);
    let metric_offset = counted_there;
    let released = network.metric_sum(GRANTEE_BYTES) + metric_offset;
    // Asking outside the range: refused before anything is fetched.
    let outside = ranger_home.path().join("outside.vcf");
    let output = network.strand_in(
        ranger_home.path(),
        &[
            "download",
            "--credential",
            &range_credential,
            "--range",
            "0..1000",
            "--out",
            outside.to_str().expect("utf-8"),
        ],
    );
    assert!(!output.status.success() && !outside.exists(), "{}", describe(&output));
    assert!(describe(&output).contains("outside"), "{}", describe(&output));
    // At the node: a fragment outside the scope stays closed, even with a
    // forged membership proof (out_of_scope), and a get of it releases nothing.
    let partial = strand_core::partial::PartialIndex::of(&record.index, 70_000, 100_000).expect("range");
    let scope: Vec<[u8; 32]> = partial.scope_fragments().iter().map(|id| *id.as_bytes()).collect();
    let (holder, outside_fragment) = (0..6)
        .flat_map(|holder| {
            let account = AccountId(network.node_account(holder));
            let record = &record;
            (0..record.index.layout.stripe_count).flat_map(move |stripe| {
                (0..6)
                    .filter(move |shard| record.provider_of(stripe, *shard) == account)
                    .map(move |shard| (holder, *record.index.stripe(stripe)[shard].as_bytes()))
            })
        })
        .find(|(_, fragment)| !scope.contains(fragment))
        .expect("a fragment outside the scope");
    let forged = strand_wire::Presentation {
        credential: range_credential.parse().expect("id"),
        fragments: vec![strand_wire::ScopeMembership {
            index: 0,
            fragment: outside_fragment,
            proof: strand_proof_of_storage::merkle::prove(&scope, &[0]).nodes,
        }],
    };
    let outcomes = runtime
        .block_on(credentials::present_each(
            &ranger,
            &ledger_state(),
            vec![(AccountId(network.node_account(holder)), forged)],
        ))
        .expect("present");
    assert_eq!(outcomes[0].1, Err("out_of_scope".to_string()));
    assert_eq!(raw_get(&network, &runtime, &ranger, holder, outside_fragment), 0);
    assert_eq!((network.metric_sum(GRANTEE_BYTES) + metric_offset), released);

    // Stranger without a credential: refused, zero bytes, reason no_credential.
    let before = refused_codes(&network, "no_credential");
    assert_eq!(raw_get(&network, &runtime, &stranger, 0, fragment_on(&network, &record, 0)), 0);
    assert_eq!(refused_codes(&network, "no_credential"), before + 1.0);

    // Someone presenting another person's credential id: not_grantee, zero bytes.
    let state = ledger_state();
    let credential_id: Digest = credential.parse().expect("id");
    let outcomes = runtime.block_on(credentials::present(&stranger, &record, &state, &credential_id)).expect("present");
    assert!(
        !outcomes.is_empty()
            && outcomes.iter().all(|(_, outcome)| outcome.as_ref().err().map(String::as_str) == Some("not_grantee")),
        "{outcomes:?}"
    );
    assert_eq!(raw_get(&network, &runtime, &stranger, 1, fragment_on(&network, &record, 1)), 0);
    let copy = stranger_home.path().join("stolen.vcf");
    let output = network.strand_in(
        stranger_home.path(),
        &["download", "--credential", &credential, "--out", copy.to_str().expect("utf-8")],
    );
    assert!(!output.status.success() && !copy.exists(), "{}", describe(&output));

    // A credential signed by a non-owner never reaches the ledger.
    let forged = Body::GrantCredential(CredentialGrant {
        upload: *record.index.upload_id.as_bytes(),
        grantee: AccountId::of(&stranger.public_key()),
        scope: Scope::Upload,
        expires_at_height: state.height + 1000,
        purpose: "forged".into(),
        sealed_key_material: Vec::new(),
    });
    let rejected = runtime.block_on(async {
        let (mut client, _) =
            strand_client::ledger::connect(&network.ledger, network.home.path()).await.expect("ledger");
        credentials::submit_and_wait(&stranger, &mut client, &state, forged).await
    });
    let error = rejected.expect_err("a non-owner's grant is rejected").to_string();
    assert!(error.contains("rejected"), "{error}");
    let nothing = runtime
        .block_on(credentials::present(&stranger, &record, &ledger_state(), &Digest([0x11; 32])))
        .expect("present");
    assert!(
        nothing.iter().all(|(_, outcome)| outcome.as_ref().err().map(String::as_str) == Some("no_credential")),
        "{nothing:?}"
    );
    assert_eq!((network.metric_sum(GRANTEE_BYTES) + metric_offset), released, "zero bytes to the stranger");

    // Grantee after expiry: a credential valid for 2 more blocks.
    // Valid for 10 more blocks (2 s): enough for the grant itself to land
    // on a loaded machine; then wait until every node is past its expiry.
    let output = network.strand(&["grant", &upload, "--to", &grantee_key, "--expires", "+10", "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let short_lived = json(&output)["credential"].as_str().expect("credential id").to_string();
    let expiry = json(&output)["expires_at_height"].as_u64().expect("expiry height");
    wait_for_nodes_at(&network, expiry + 1);
    let copy = grantee_home.path().join("late.vcf");
    let output = network.strand_in(
        grantee_home.path(),
        &["download", "--credential", &short_lived, "--out", copy.to_str().expect("utf-8")],
    );
    assert!(!output.status.success() && !copy.exists(), "{}", describe(&output));
    assert!(describe(&output).contains("expired"), "{}", describe(&output));

    // Grantee after revocation, including a presentation made before it
    // replayed afterwards: revoke, next block, refused.
    let state = ledger_state();
    let outcomes = runtime.block_on(credentials::present(&grantee, &record, &state, &credential_id)).expect("present");
    assert!(outcomes.iter().all(|(_, outcome)| outcome.is_ok()), "{outcomes:?}");
    let output = network.strand(&["revoke", &credential, "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let revoked_at = json(&output)["revoked_at_height"].as_u64().expect("height");
    // Effective at a node once it has applied that block (revocation
    // latency is measured in BENCHMARKS.md); wait for every node.
    wait_for_nodes_at(&network, revoked_at);
    let before = refused_codes(&network, "revoked");
    assert_eq!(
        raw_get(&network, &runtime, &grantee, 2, fragment_on(&network, &record, 2)),
        0,
        "the old presentation no longer opens anything"
    );
    assert_eq!(refused_codes(&network, "revoked"), before + 1.0);
    let copy = grantee_home.path().join("revoked.vcf");
    let output = network.strand_in(
        grantee_home.path(),
        &["download", "--credential", &credential, "--out", copy.to_str().expect("utf-8")],
    );
    assert!(!output.status.success() && !copy.exists(), "{}", describe(&output));
    assert!(describe(&output).contains("revoked"), "{}", describe(&output));
    assert_eq!(
        (network.metric_sum(GRANTEE_BYTES) + metric_offset),
        released,
        "nothing released after expiry or revocation"
    );

    // The ledger lists both credentials with their state.
    let output = network.strand(&["credentials", &upload, "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let listed = json(&output)["credentials"].as_array().expect("credentials").clone();
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().any(|c| c["credential"] == credential.as_str()
            && c["status"].as_str().is_some_and(|s| s.starts_with("revoked")))
    );
    assert!(
        listed.iter().any(|c| c["credential"] == short_lived.as_str()
            && c["status"].as_str().is_some_and(|s| s.starts_with("expired")))
    );

    // The audit, from the ledger alone, lists every successful read (the
    // owner's and the grantee's) and no refused one.
    let owner_account = AccountId::of(&owner.public_key()).to_string();
    let grantee_account = AccountId::of(&grantee.public_key()).to_string();
    let ranger_account = AccountId::of(&ranger.public_key()).to_string();
    let started = std::time::Instant::now();
    let reads = loop {
        let output = network.strand(&["audit", &upload, "--json"]);
        assert!(output.status.success(), "{}", describe(&output));
        let reads = json(&output)["reads"].as_array().expect("reads").clone();
        let fragments_of = |who: &str| {
            reads.iter().filter(|r| r["reader"] == who).map(|r| r["fragments"].as_u64().unwrap_or(0)).sum::<u64>()
        };
        if fragments_of(&owner_account) >= record.index.layout.chunk_count
            && fragments_of(&grantee_account) >= record.index.layout.chunk_count
            && fragments_of(&ranger_account) >= 1
        {
            break reads;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "receipts did not reach the ledger: {reads:#?}");
        std::thread::sleep(Duration::from_secs(1));
    };
    let readers: std::collections::BTreeSet<&str> = reads.iter().filter_map(|r| r["reader"].as_str()).collect();
    let expected = [owner_account.as_str(), grantee_account.as_str(), ranger_account.as_str()].into_iter().collect();
    assert_eq!(readers, expected, "no refused reader appears");
    let ranger_reads: Vec<_> = reads.iter().filter(|r| r["reader"] == ranger_account.as_str()).collect();
    assert!(ranger_reads.iter().all(|r| r["credential"] == range_credential.as_str() && r["purpose"] == "region"));
    assert_eq!(
        ranger_reads.iter().map(|r| r["fragments"].as_u64().unwrap_or(0)).sum::<u64>(),
        1,
        "the range read: one fragment"
    );
    let grantee_reads: Vec<_> = reads.iter().filter(|r| r["reader"] == grantee_account.as_str()).collect();
    assert!(
        grantee_reads
            .iter()
            .all(|r| r["as"] == "grantee" && r["credential"] == credential.as_str() && r["purpose"] == "cohort QC")
    );
    let grantee_bytes: u64 =
        reads.iter().filter(|r| r["as"] == "grantee").map(|r| r["bytes"].as_u64().unwrap_or(0)).sum();
    assert_eq!(grantee_bytes as f64, released, "the audit's bytes are the bytes the nodes released to grantees");
    let owner_fragments: u64 = reads
        .iter()
        .filter(|r| r["reader"] == owner_account.as_str())
        .map(|r| r["fragments"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(owner_fragments, record.index.layout.chunk_count, "the owner's one download");

    // A node cut off from the ledger fails closed for grantees (not for the
    // owner) once it has heard no block for LEDGER_SILENCE_MAX (10 s).
    let output = network.strand(&["grant", &upload, "--to", &grantee_key, "--json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let fresh: Digest = json(&output)["credential"].as_str().expect("credential id").parse().expect("id");
    wait_for_nodes_at(&network, json(&output)["granted_at_height"].as_u64().expect("height"));
    let outcomes = runtime.block_on(credentials::present(&grantee, &record, &ledger_state(), &fresh)).expect("present");
    assert!(outcomes.iter().all(|(_, outcome)| outcome.is_ok()), "{outcomes:?}");
    let fragment = fragment_on(&network, &record, 4);
    assert!(raw_get(&network, &runtime, &grantee, 4, fragment) > 0, "served while the ledger is live");
    let sequencer = nix::unistd::Pid::from_raw(network.sequencer.id() as i32);
    nix::sys::signal::kill(sequencer, nix::sys::signal::Signal::SIGSTOP).expect("freeze the sequencer");
    std::thread::sleep(Duration::from_secs(11));
    let stale_before = refused_codes(&network, "ledger_too_stale");
    let grantee_got = raw_get(&network, &runtime, &grantee, 4, fragment);
    let owner_got = raw_get(&network, &runtime, &owner, 4, fragment);
    nix::sys::signal::kill(sequencer, nix::sys::signal::Signal::SIGCONT).expect("thaw the sequencer");
    assert_eq!(grantee_got, 0, "a stale node releases nothing to a grantee");
    assert_eq!(refused_codes(&network, "ledger_too_stale"), stale_before + 1.0);
    assert!(owner_got > 0, "the owner still reads what the node holds");
}

/// Waits until every node's replica has applied block `height` (a grant,
/// a revocation, an expiry takes effect at a node only then).
fn wait_for_nodes_at(network: &Network, height: u64) {
    let started = std::time::Instant::now();
    while (0..6).any(|index| metric(&network.metrics(index), "strand_node_ledger_height") < height as f64) {
        assert!(started.elapsed() < Duration::from_secs(30), "the nodes did not apply block {height} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}
