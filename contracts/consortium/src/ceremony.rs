//! The beacon key without a dealer: a distributed key generation among the
//! validators (commonware's `bls12381::dkg::feldman_desmedt`, Joint-Feldman
//! with acknowledgements and reveals), run as a ceremony over files in a
//! directory the organisations share, in four steps each member runs in
//! turn:
//!
//! 1. **deal**: each member, as a dealer, makes a random polynomial, writes
//!    its public commitment, signed, and to each member that member's
//!    evaluation, sealed to its key (HPKE, `strand_core::seal`) and signed.
//!    The dealer's randomness is a seed kept in its own secret directory
//!    (mode 0600), so step 3 can rebuild the same dealer.
//! 2. **ack**: each member, as a player, opens what every dealer sent it,
//!    checks it against the dealer's commitment, and writes its signed
//!    acknowledgement.
//! 3. **log**: each dealer collects the acknowledgements and writes its
//!    signed log (a player that did not acknowledge gets its evaluation
//!    revealed there, so no dealer can withhold a share).
//! 4. **finish**: each member combines the logs into its share of the key;
//!    anyone can derive the public key from the logs alone ([`key`]), which
//!    goes into the genesis (or a governance proposal).
//!
//! Nobody ever holds the secret key: it is the sum of the dealers' secrets,
//! and each share is the sum of evaluations no single party knows all of.
//! Fewer than `t = n - (n-1)/3` members learn nothing of the beacons; a
//! dealer that sends a bad evaluation is caught by its player's check. Every
//! file is signed by its author and checked against the ceremony's members;
//! private evaluations travel only sealed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use commonware_codec::{Decode as _, DecodeExt as _, Encode as _};
use commonware_cryptography::bls12381::dkg::feldman_desmedt::{
    Dealer, DealerPrivMsg, DealerPubMsg, Info, Logs, Player, PlayerAck, Reveal, SignedDealerLog, observe,
};
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::ed25519;
use commonware_parallel::Sequential;
use commonware_utils::N3f1;
use commonware_utils::ordered::Set;
use rand_core::SeedableRng as _;
use strand_contracts::AccountId;
use strand_contracts::beacon::Bls;
use strand_core::seal::{SealKind, open, seal};
use strand_core::{Identity, keyfile};

/// Domain of every signature on a ceremony file.
const FILE_DOMAIN: &[u8] = b"strand beacon ceremony v1";
/// The ceremony's description in its directory.
pub const CEREMONY_FILE: &str = "ceremony";

/// A ceremony: its round (0 for a genesis; a governance change's effective
/// epoch) and its members (the validators that will hold shares).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceremony {
    /// Names the ceremony (the chain's name, or a proposal's purpose).
    pub name: String,
    /// The round (a counter bound into every message).
    pub round: u64,
    /// The members, sorted by key (share index = position).
    pub members: Vec<AccountId>,
}

impl Ceremony {
    /// Writes a new ceremony into `directory` (refusing to overwrite one).
    pub fn create(directory: &Path, name: &str, round: u64, members: &[AccountId]) -> anyhow::Result<Self> {
        let mut sorted = members.to_vec();
        sorted.sort();
        sorted.dedup();
        anyhow::ensure!(sorted.len() == members.len(), "a member is listed twice");
        anyhow::ensure!(
            (4..=strand_contracts::block::VALIDATORS_MAX).contains(&sorted.len()),
            "a consortium has 4 to {} validators",
            strand_contracts::block::VALIDATORS_MAX
        );
        anyhow::ensure!(!name.contains('\n') && name.len() <= 256, "the name is one line of at most 256 bytes");
        std::fs::create_dir_all(directory).with_context(|| format!("cannot create {}", directory.display()))?;
        let path = directory.join(CEREMONY_FILE);
        anyhow::ensure!(!path.exists(), "{} exists: one ceremony per directory", path.display());
        let ceremony = Self { name: name.to_string(), round, members: sorted };
        let mut text = format!("name {}\nround {round}\n", ceremony.name);
        for member in &ceremony.members {
            text.push_str(&format!("member {member}\n"));
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(ceremony)
    }

    /// Reads the ceremony in `directory`.
    pub fn read(directory: &Path) -> anyhow::Result<Self> {
        let path = directory.join(CEREMONY_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let (mut name, mut round, mut members) = (None, None, Vec::new());
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("name", value)) => name = Some(value.to_string()),
                Some(("round", value)) => round = value.parse().ok(),
                Some(("member", value)) => members
                    .push(value.parse().map_err(|_| anyhow::anyhow!("{}: bad member '{value}'", path.display()))?),
                _ => anyhow::bail!("{}: unexpected line '{line}'", path.display()),
            }
        }
        let name = name.with_context(|| format!("{}: no name", path.display()))?;
        let round = round.with_context(|| format!("{}: no round", path.display()))?;
        let mut sorted = members.clone();
        sorted.sort();
        sorted.dedup();
        anyhow::ensure!(
            sorted == members && members.len() >= 4,
            "{}: members not sorted, distinct, ≥ 4",
            path.display()
        );
        Ok(Self { name, round, members })
    }

    fn keys(&self) -> anyhow::Result<Set<ed25519::PublicKey>> {
        let keys: Vec<ed25519::PublicKey> = self
            .members
            .iter()
            .map(|account| {
                ed25519::PublicKey::decode(bytes::Bytes::copy_from_slice(&account.0))
                    .map_err(|_| anyhow::anyhow!("member {account} is not an ed25519 key"))
            })
            .collect::<anyhow::Result<_>>()?;
        Set::try_from(keys).map_err(|_| anyhow::anyhow!("a member is listed twice"))
    }

    fn info(&self) -> anyhow::Result<Info<Bls, ed25519::PublicKey>> {
        let keys = self.keys()?;
        let namespace = [b"strand beacon dkg v1 ".as_slice(), self.name.as_bytes()].concat();
        Info::new::<N3f1>(&namespace, self.round, None, Mode::NonZeroCounter, Reveal::V1, keys.clone(), keys)
            .map_err(|error| anyhow::anyhow!("the ceremony cannot run: {error:?}"))
    }

    fn max(&self) -> std::num::NonZeroU32 {
        std::num::NonZeroU32::new(self.members.len() as u32).expect("≥ 4 members")
    }

    fn member(&self, identity: &Identity) -> anyhow::Result<AccountId> {
        let account = AccountId::of(&identity.public_key());
        anyhow::ensure!(self.members.contains(&account), "key {account} is not a member of this ceremony");
        Ok(account)
    }
}

fn engine_key(identity: &Identity) -> anyhow::Result<ed25519::PrivateKey> {
    crate::validator::engine_key(identity)
}

/// `author`'s signature over a file's bytes, named by `what`.
fn signed(identity: &Identity, round: u64, what: &str, bytes: &[u8]) -> Vec<u8> {
    let message = [FILE_DOMAIN, &round.to_le_bytes(), what.as_bytes(), bytes].concat();
    [identity.sign(&message).as_slice(), bytes].concat()
}

/// The bytes of a file `author` signed, checked.
fn verified(author: &AccountId, round: u64, what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(file.len() >= 64, "{} is too short to be signed", path.display());
    let (signature, bytes) = file.split_at(64);
    let message = [FILE_DOMAIN, &round.to_le_bytes(), what.as_bytes(), bytes].concat();
    let signature = strand_contracts::Signature(signature.try_into().expect("64 bytes"));
    anyhow::ensure!(signature.verify(author, &message), "{} is not signed by {author}", path.display());
    Ok(bytes.to_vec())
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    anyhow::ensure!(!path.exists(), "{} exists: this step ran already", path.display());
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn dealing_path(directory: &Path, dealer: &AccountId) -> PathBuf {
    directory.join(format!("dealing-{dealer}.pub"))
}

fn private_path(directory: &Path, dealer: &AccountId, player: &AccountId) -> PathBuf {
    directory.join(format!("dealing-{dealer}-to-{player}.sealed"))
}

fn ack_path(directory: &Path, dealer: &AccountId, player: &AccountId) -> PathBuf {
    directory.join(format!("ack-{dealer}-by-{player}"))
}

fn log_path(directory: &Path, dealer: &AccountId) -> PathBuf {
    directory.join(format!("log-{dealer}"))
}

fn seed_path(secrets: &Path, ceremony: &Ceremony) -> PathBuf {
    secrets.join(format!("beacon-dkg-{}-round-{}.seed", hex::encode(&ceremony.name), ceremony.round))
}

/// The dealer of `identity`, rebuilt from its seed.
#[allow(clippy::type_complexity)]
fn dealer(
    ceremony: &Ceremony,
    identity: &Identity,
    seed: [u8; 32],
) -> anyhow::Result<(Dealer<Bls, ed25519::PrivateKey>, DealerPubMsg<Bls>, Vec<(ed25519::PublicKey, DealerPrivMsg)>)> {
    Dealer::start::<N3f1>(rand_chacha::ChaCha20Rng::from_seed(seed), ceremony.info()?, engine_key(identity)?, None)
        .map_err(|error| anyhow::anyhow!("cannot deal: {error:?}"))
}

fn account_of(key: &ed25519::PublicKey) -> AccountId {
    crate::app::account(key)
}

/// Step 1: deals as `identity`: writes the signed commitment and each
/// member's sealed, signed evaluation into `directory`; keeps the seed in
/// `secrets`.
pub fn deal(directory: &Path, identity: &Identity, secrets: &Path) -> anyhow::Result<()> {
    let ceremony = Ceremony::read(directory)?;
    let me = ceremony.member(identity)?;
    std::fs::create_dir_all(secrets).with_context(|| format!("cannot create {}", secrets.display()))?;
    let seed_file = seed_path(secrets, &ceremony);
    anyhow::ensure!(
        !seed_file.exists() && !dealing_path(directory, &me).exists(),
        "this member has dealt in this ceremony already (its seed is {}): each member deals once",
        seed_file.display()
    );
    let mut seed = [0u8; 32];
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut seed);
    let (_, public, private) = dealer(&ceremony, identity, seed)?;
    keyfile::write_secret(&seed_file, hex::encode(seed).as_bytes(), false).context("cannot keep the dealer's seed")?;
    write_new(&dealing_path(directory, &me), &signed(identity, ceremony.round, "commitment", &public.encode()))?;
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    for (player, message) in private {
        let player = account_of(&player);
        let recipient = strand_core::PublicKey::from_bytes(&player.0)
            .ok_or_else(|| anyhow::anyhow!("member {player} is not an ed25519 key"))?;
        let sealed = seal(SealKind::BeaconDealing, &message.encode(), &recipient, &mut rng);
        let what = format!("evaluation for {player}");
        write_new(&private_path(directory, &me, &player), &signed(identity, ceremony.round, &what, &sealed))?;
    }
    Ok(())
}

/// What dealer `dealer` sent `me`: its commitment and my evaluation,
/// checked (signatures, seal).
fn received(
    directory: &Path,
    ceremony: &Ceremony,
    identity: &Identity,
    dealer: &AccountId,
) -> anyhow::Result<(DealerPubMsg<Bls>, DealerPrivMsg)> {
    let me = AccountId::of(&identity.public_key());
    let public = verified(dealer, ceremony.round, "commitment", &dealing_path(directory, dealer))?;
    let public = DealerPubMsg::<Bls>::decode_cfg(public, &ceremony.max())
        .map_err(|error| anyhow::anyhow!("dealer {dealer}'s commitment does not decode: {error}"))?;
    let what = format!("evaluation for {me}");
    let sealed = verified(dealer, ceremony.round, &what, &private_path(directory, dealer, &me))?;
    let opened = open(SealKind::BeaconDealing, &sealed, identity)
        .map_err(|error| anyhow::anyhow!("dealer {dealer}'s evaluation does not open: {error}"))?;
    let private = DealerPrivMsg::decode(opened)
        .map_err(|error| anyhow::anyhow!("dealer {dealer}'s evaluation does not decode: {error}"))?;
    Ok((public, private))
}

/// A player that has taken every dealing it can, and for each dealer the
/// acknowledgement or why there is none.
#[allow(clippy::type_complexity)]
fn play(
    directory: &Path,
    ceremony: &Ceremony,
    identity: &Identity,
) -> anyhow::Result<(Player<Bls, ed25519::PrivateKey>, Vec<(AccountId, Result<PlayerAck<ed25519::PublicKey>, String>)>)>
{
    let mut player = Player::new(ceremony.info()?, engine_key(identity)?)
        .map_err(|error| anyhow::anyhow!("cannot play: {error:?}"))?;
    let mut acks = Vec::new();
    for key in ceremony.keys()?.iter() {
        let dealer = &account_of(key);
        let key = key.clone();
        let ack = received(directory, ceremony, identity, dealer).and_then(|(public, private)| {
            match player.dealer_message::<N3f1>(key, public, private) {
                Ok(Some(ack)) => Ok(ack),
                Ok(None) => anyhow::bail!("a second dealing from {dealer}"),
                Err(error) => anyhow::bail!("dealer {dealer}'s evaluation does not match its commitment: {error:?}"),
            }
        });
        acks.push((*dealer, ack.map_err(|error| error.to_string())));
    }
    Ok((player, acks))
}

/// Step 2: acknowledges, as `identity`, every dealing that checks out;
/// returns the dealers whose dealing did not, with why (they will have to
/// reveal this member's evaluation, or be left out).
pub fn ack(directory: &Path, identity: &Identity) -> anyhow::Result<Vec<(AccountId, String)>> {
    let ceremony = Ceremony::read(directory)?;
    let me = ceremony.member(identity)?;
    let (_, acks) = play(directory, &ceremony, identity)?;
    let mut refused = Vec::new();
    for (dealer, ack) in acks {
        match ack {
            Ok(ack) => write_new(&ack_path(directory, &dealer, &me), &ack.encode())?,
            Err(reason) => refused.push((dealer, reason)),
        }
    }
    Ok(refused)
}

/// Step 3: as dealer `identity`, takes the members' acknowledgements and
/// writes its signed log; returns the members whose evaluation it reveals
/// (no valid acknowledgement).
pub fn log(directory: &Path, identity: &Identity, secrets: &Path) -> anyhow::Result<Vec<AccountId>> {
    let ceremony = Ceremony::read(directory)?;
    let me = ceremony.member(identity)?;
    let seed_text = std::fs::read_to_string(seed_path(secrets, &ceremony))
        .context("this member's dealer seed is missing (step 1 ran elsewhere?)")?;
    let seed: [u8; 32] = hex::decode(seed_text.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .context("the dealer's seed is damaged")?;
    let (mut dealer, public, _) = dealer(&ceremony, identity, seed)?;
    let written = verified(&me, ceremony.round, "commitment", &dealing_path(directory, &me))?;
    anyhow::ensure!(written == public.encode().to_vec(), "the seed does not rebuild this member's dealing");
    let mut revealed = Vec::new();
    for key in ceremony.keys()?.iter() {
        let player = account_of(key);
        let taken = std::fs::read(ack_path(directory, &me, &player))
            .ok()
            .and_then(|bytes| PlayerAck::<ed25519::PublicKey>::decode(bytes).ok())
            .is_some_and(|ack| dealer.receive_player_ack(key.clone(), ack).is_ok());
        if !taken {
            revealed.push(player);
        }
    }
    let log = dealer.finalize::<N3f1>();
    write_new(&log_path(directory, &me), &log.encode())?;
    Ok(revealed)
}

fn logs(directory: &Path, ceremony: &Ceremony) -> anyhow::Result<Logs<Bls, ed25519::PublicKey, N3f1>> {
    let info = ceremony.info()?;
    let mut logs = Logs::<Bls, ed25519::PublicKey, N3f1>::new(info.clone());
    for dealer in &ceremony.members {
        let Ok(bytes) = std::fs::read(log_path(directory, dealer)) else { continue };
        let Ok(log) = SignedDealerLog::<Bls, ed25519::PublicKey>::decode_cfg(bytes, &ceremony.max()) else {
            anyhow::bail!("dealer {dealer}'s log does not decode");
        };
        let (author, log) = log.check(&info).with_context(|| format!("dealer {dealer}'s log does not check out"))?;
        anyhow::ensure!(account_of(&author) == *dealer, "the log under {dealer}'s name is another dealer's");
        logs.record(author, log);
    }
    Ok(logs)
}

/// The beacon key (for the genesis or a governance proposal) from the
/// ceremony's logs, as anyone can derive it.
pub fn key(directory: &Path) -> anyhow::Result<Vec<u8>> {
    let ceremony = Ceremony::read(directory)?;
    let output = observe::<Bls, ed25519::PublicKey, N3f1>(
        &mut rand_core::UnwrapErr(getrandom::SysRng),
        logs(directory, &ceremony)?,
        &Sequential,
    )
    .map_err(|failure| anyhow::anyhow!("the ceremony failed: {failure:?}"))?;
    Ok(strand_contracts::beacon::encode_key(output.public()))
}

/// Step 4: this member's share of the key, from the logs and the dealings
/// it received; returns the share (commonware's encoding) and the key.
pub fn finish(directory: &Path, identity: &Identity) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let ceremony = Ceremony::read(directory)?;
    ceremony.member(identity)?;
    let (player, _) = play(directory, &ceremony, identity)?;
    let (output, share): (_, Share) = player
        .finalize::<N3f1>(&mut rand_core::UnwrapErr(getrandom::SysRng), logs(directory, &ceremony)?, &Sequential)
        .map_err(|error| anyhow::anyhow!("cannot derive this member's share: {error:?}"))?;
    Ok((share.encode().to_vec(), strand_contracts::beacon::encode_key(output.public())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<Identity> {
        (1..=4u8).map(|seed| Identity::from_secret_bytes(&[seed + 40; 32])).collect()
    }

    #[test]
    fn four_members_make_a_key_nobody_dealt_and_its_shares_sign_beacons() {
        let directory = tempfile::tempdir().expect("directory");
        let secrets: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().expect("secrets")).collect();
        let members = members();
        let accounts: Vec<AccountId> = members.iter().map(|m| AccountId::of(&m.public_key())).collect();
        Ceremony::create(directory.path(), "test", 0, &accounts).expect("ceremony");
        for (member, secret) in members.iter().zip(&secrets) {
            deal(directory.path(), member, secret.path()).expect("deal");
        }
        assert!(deal(directory.path(), &members[0], secrets[0].path()).is_err(), "dealing twice is refused");
        // A member's evaluation from dealer 0, signed by someone else:
        // refused, not acknowledged.
        let forged = private_path(directory.path(), &accounts[0], &accounts[3]);
        let mut bytes = std::fs::read(&forged).expect("file");
        bytes[70] ^= 1;
        std::fs::write(&forged, &bytes).expect("write");
        for member in &members[..3] {
            assert!(ack(directory.path(), member).expect("ack").is_empty(), "every dealing checks out");
        }
        let refused = ack(directory.path(), &members[3]).expect("ack");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, accounts[0]);
        assert!(refused[0].1.contains("not signed by"), "{}", refused[0].1);
        for (index, (member, secret)) in members.iter().zip(&secrets).enumerate() {
            let revealed = log(directory.path(), member, secret.path()).expect("log");
            // Dealer 0 reveals member 3's evaluation (no valid ack).
            assert_eq!(revealed, if index == 0 { vec![accounts[3]] } else { Vec::new() });
        }
        let key_bytes = key(directory.path()).expect("the key from the logs");
        let key = strand_contracts::beacon::decode_key(&key_bytes, 4, 3).expect("a key for 3 of 4");
        let mut shares = Vec::new();
        for member in &members {
            let (share, their_key) = finish(directory.path(), member).expect("finish");
            assert_eq!(their_key, key_bytes, "every member derives the same key");
            let share = Share::decode(share).expect("share");
            assert_eq!(key.partial_public(share.index).expect("index"), share.public::<Bls>());
            shares.push(share);
        }
        // Any three shares sign a beacon that verifies under the key.
        use commonware_cryptography::bls12381::primitives::ops::threshold;
        let (chain, closing) = (strand_contracts::Digest([1; 32]), strand_contracts::Digest([2; 32]));
        let text = strand_contracts::beacon::message(&chain, 1, &closing);
        let partials: Vec<_> = shares[1..]
            .iter()
            .map(|share| threshold::sign_message::<Bls>(share, strand_contracts::beacon::BEACON_NAMESPACE, &text))
            .collect();
        let point = threshold::recover::<Bls, _>(&key, partials.iter(), &Sequential).expect("3 of 4");
        let signature =
            strand_contracts::beacon::BeaconSignature(point.encode().to_vec().try_into().expect("48 bytes"));
        strand_contracts::beacon::verify(&key, &chain, 1, &closing, &signature).expect("the beacon verifies");
        // No file in the shared directory holds a share in the clear.
        for entry in std::fs::read_dir(directory.path()).expect("directory") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
            for share in &shares {
                let private = share.encode().to_vec();
                assert!(!bytes.windows(private.len()).any(|window| window == private.as_slice()));
            }
        }
    }
}
