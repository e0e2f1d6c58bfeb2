//! A download stops waiting for a provider that accepts requests but never
//! answers: the chunks it holds are rebuilt from their stripes' siblings,
//! the stripes are reported degraded, and the provider is reported stalled.
//! In-process providers on 127.0.0.1 (real iroh endpoints and blob servers).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use strand_client::download::{NetworkSource, Placement, decode_from};
use strand_contracts::AccountId;
use strand_core::io::MemoryStore;
use strand_core::{CodecParams, Identity, UploadSecrets};

/// Accepts every request and never answers, until the peer goes away.
#[derive(Debug, Clone)]
struct Stall;

impl iroh::protocol::ProtocolHandler for Stall {
    async fn accept(&self, connection: iroh::endpoint::Connection) -> Result<(), iroh::protocol::AcceptError> {
        let mut held = Vec::new();
        while let Ok(stream) = connection.accept_bi().await {
            held.push(stream);
        }
        Ok(())
    }
}

const PROVIDERS: usize = 6;
const STALLED: usize = 0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_provider_is_passed_over_and_its_stripes_rebuilt_from_parity() {
    let params = CodecParams { chunk_size: 64 << 10, data_shards: 4, parity_shards: 2 };
    let data: Vec<u8> =
        (0..(25 * (64 << 10) + 100) as u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let secrets = UploadSecrets::generate(&mut rand::rng());
    let mut fragments = MemoryStore::new();
    let index = strand_core::encode(&data[..], &mut fragments, params, &secrets, 2, |_| {}).expect("encodes");

    // Stripe s, shard j is held by provider (j + s) % 6.
    let identities: Vec<Identity> = (0..PROVIDERS).map(|n| Identity::from_secret_bytes(&[10 + n as u8; 32])).collect();
    let accounts: Vec<AccountId> = identities.iter().map(|identity| AccountId::of(&identity.public_key())).collect();
    let holder = |stripe: u64, shard: usize| (shard + stripe as usize) % PROVIDERS;
    let mut stripes = BTreeMap::new();
    for stripe in 0..index.layout.stripe_count {
        stripes.insert(stripe, (0..6).map(|shard| accounts[holder(stripe, shard)]).collect::<Vec<_>>());
    }

    let mut routers = Vec::new();
    let mut kept = Vec::new();
    let mut stores = Vec::new();
    let mut addresses = HashMap::new();
    for (provider, identity) in identities.iter().enumerate() {
        let endpoint = strand_net::blobs::endpoint(*identity.secret_bytes(), "127.0.0.1:0".parse().expect("address"))
            .await
            .expect("endpoint");
        addresses.insert(accounts[provider], endpoint.bound_sockets());
        if provider == STALLED {
            routers.push(iroh::protocol::Router::builder(endpoint).accept(iroh_blobs::ALPN, Stall).spawn());
            continue;
        }
        let store = iroh_blobs::store::mem::MemStore::new();
        for stripe in 0..index.layout.stripe_count {
            for (shard, id) in index.stripe(stripe).iter().enumerate() {
                if holder(stripe, shard) == provider {
                    let bytes = fragments.get(id).expect("encoded");
                    kept.push(store.add_bytes(bytes).temp_tag().await.expect("stored"));
                }
            }
        }
        let gate: strand_net::blobs::Gate = Arc::new(|_, _, _, _| Ok(()));
        routers.push(strand_net::blobs::serve(endpoint, (*store).clone(), gate));
        stores.push(store);
    }

    let reader = Identity::generate(&mut rand::rng());
    let source = NetworkSource::with_addresses(&reader, Placement::Stripes(stripes), addresses).await.expect("source");
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = directory.path().join("copy");
    let (decode_index, decode_output) = (index.clone(), output.clone());
    let (summary, reported) = decode_from(source, move |source| {
        strand_client::offline::decode_with(&decode_index, source, &decode_output, None, 4, |_| {})
    })
    .await
    .expect("the download succeeds without the stalled provider");

    assert_eq!(std::fs::read(&output).expect("output"), data, "byte-identical");
    // Exactly the stripes where the stalled provider holds a data shard that
    // carries a chunk were rebuilt, each naming the stall. (The last stripe's
    // spare slots hold no chunk and are never asked for; the scramble decides
    // which slots those are, so it differs from run to run.)
    let scramble = strand_core::scramble::Scramble::new(&index.master_key.scramble_seed(), index.layout.slot_count());
    let carries_chunk =
        |stripe: u64, shard: usize| scramble.position_of_slot(stripe * 4 + shard as u64) < index.layout.chunk_count;
    let expected: Vec<u64> = (0..index.layout.stripe_count)
        .filter(|&stripe| (0..4).any(|shard| holder(stripe, shard) == STALLED && carries_chunk(stripe, shard)))
        .collect();
    let degraded: Vec<u64> = summary.degraded_stripes.iter().map(|stripe| stripe.stripe).collect();
    assert_eq!(degraded, expected);
    for stripe in &summary.degraded_stripes {
        assert!(stripe.problems.iter().all(|problem| problem.contains("stalled")), "{:?}", stripe.problems);
    }
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert!(reported[0].contains(&accounts[STALLED].short().to_string()) && reported[0].contains("stalled"));
    for router in routers {
        router.shutdown().await.expect("router stops");
    }
    drop((kept, stores));
}
