use commonware_actor::Feedback;
use commonware_broadcast::buffered;
use bytes::BufMut;
use commonware_codec::{Buf, Encode, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use commonware_consensus::{
    Application, Block as _, Heightable, Reporter,
    marshal::{
        self, Update, ancestry::Ancestry, core::Actor as MarshalActor,
        resolver::p2p as marshal_resolver, standard::{Inline, Standard},
    },
    simplex::{self, ForwardPolicy, SkipBudget, SkipPolicy, elector::RoundRobin, scheme::ed25519::Scheme, types::Context},
    types::{Epoch, FixedEpocher, Height, ViewDelta},
};
use commonware_cryptography::{
    Digested, Digestible, Hasher, Sha256, Signer as _, certificate::{ConstantProvider, Verifier as _}, ed25519, sha256,
};
use commonware_p2p::simulated::{self, Link, Network};
use commonware_parallel::Sequential;
use commonware_runtime::{Spawner, Clock, Quota, Runner, Supervisor as _, buffer::paged::CacheRef, deterministic};
use commonware_storage::{archive::prunable, translator::TwoCap};
use commonware_utils::{Acknowledgement, NZDuration, NZU16, NZU32, NZU64, NZUsize, TryCollect, ordered::Set};
use futures::StreamExt;
use std::{sync::{Arc, Mutex}, time::Duration};

type D = sha256::Digest;
type Pk = ed25519::PublicKey;
type Ctx = Context<D, Pk>;
const NAMESPACE: &[u8] = b"strand-probe";

/// Stand-in for Strand's block: parent digest, height, payload.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Blk { parent: D, height: Height, payload: u64 }

impl Write for Blk {
    fn write(&self, w: &mut impl BufMut) { self.parent.write(w); self.height.write(w); self.payload.write(w); }
}
impl EncodeSize for Blk {
    fn encode_size(&self) -> usize { self.parent.encode_size() + self.height.encode_size() + self.payload.encode_size() }
}
impl Read for Blk {
    type Cfg = ();
    fn read_cfg(r: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Self { parent: D::read(r)?, height: Height::read(r)?, payload: u64::read(r)? })
    }
}
impl Digestible for Blk {
    type Digest = D;
    fn digest(&self) -> D { Sha256::hash(&[&self.encode()]) }
}
impl Heightable for Blk { fn height(&self) -> Height { self.height } }
impl commonware_consensus::Block for Blk { fn parent(&self) -> D { self.parent } }

/// Application: builds/verifies blocks (via Inline) and receives finalized blocks from marshal.
#[derive(Clone, Default)]
struct App { finalized: Arc<Mutex<Vec<u64>>> }

impl App {
    fn tip(&self) -> u64 { self.finalized.lock().unwrap().iter().copied().max().unwrap_or(0) }
    fn check_contiguous(&self) {
        let f = self.finalized.lock().unwrap();
        let mut seen = 0u64;
        for &h in f.iter() { assert!(h <= seen + 1, "gap: {h} after {seen}"); seen = seen.max(h); }
    }
}

impl<E: Send + 'static> Application<E> for App {
    type SigningScheme = Scheme;
    type Context = Ctx;
    type Block = Blk;
    type Input = ();

    async fn propose(&mut self, (_e, ctx): (E, Ctx), mut ancestry: impl Ancestry<Blk>, _: ()) -> Option<Digested<Blk>> {
        let parent = ancestry.next().await?; // first item = parent
        let block = Blk { parent: parent.digest(), height: parent.height().next(), payload: ctx.round.view().get() };
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(&mut self, _ctx: (E, Ctx), mut ancestry: impl Ancestry<Blk>) -> bool {
        let Some(block) = ancestry.next().await else { return false }; // first item = candidate
        let Some(parent) = ancestry.next().await else { return false };
        block.parent() == parent.digest() && block.height() == parent.height().next()
    }
}

impl Reporter for App {
    type Activity = Update<Blk>;
    fn report(&mut self, activity: Update<Blk>) -> Feedback {
        if let Update::Block(block, ack) = activity {
            self.finalized.lock().unwrap().push(block.height().get());
            ack.acknowledge(); // marshal waits for this before delivering the next block
        }
        Feedback::Ok
    }
}

fn archive<C>(prefix: &str, name: &str, page_cache: &CacheRef, codec_config: C) -> prunable::Config<TwoCap, C> {
    prunable::Config {
        translator: TwoCap, metadata_partition: format!("{prefix}-{name}-metadata"),
        key_partition: format!("{prefix}-{name}-key"), key_page_cache: page_cache.clone(),
        value_partition: format!("{prefix}-{name}-value"), compression: None, codec_config,
        items_per_section: NZU64!(10), key_write_buffer: NZUsize!(1 << 16), value_write_buffer: NZUsize!(1 << 16),
        replay_buffer: NZUsize!(1 << 16),
    }
}

