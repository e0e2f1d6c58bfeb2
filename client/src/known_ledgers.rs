//! The chains this client has met, like SSH's known hosts: the first time a
//! ledger service answers at an address, the chain it presents (its genesis
//! hash) is pinned in `$STRAND_HOME/known_ledgers`; a service that later
//! presents another chain at that address is refused, so a client trusts a
//! chain, not whichever server answers.
//!
//! Format (v1): one line per address, `address chain-id name`, the name
//! being the rest of the line. Lines starting with `#` are comments.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use strand_contracts::Digest;
use strand_contracts::block::Genesis;

/// The file's name in the strand home.
pub const FILE_NAME: &str = "known_ledgers";

/// Why a chain could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum KnownLedgerError {
    /// The service presents another chain than the one met first there.
    #[error(
        "the ledger service at {address} presents chain {found} ({name}), but this client first met chain \
         {expected} there (line {line} of {file}). A ledger cannot change its chain: if that network was reset \
         on purpose, delete that line and run the command again; otherwise another server answers at this address"
    )]
    ChainChanged {
        /// The address.
        address: String,
        /// The chain pinned.
        expected: Digest,
        /// The chain presented.
        found: Digest,
        /// The name in the presented genesis.
        name: String,
        /// The pin file.
        file: PathBuf,
        /// Its line.
        line: usize,
    },
    /// The pin file cannot be read or written.
    #[error("cannot use {file}: {source}")]
    Io {
        /// The pin file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks `genesis`, presented by the service at `address`, against the
/// chain pinned for that address in `home`, pinning it on first contact.
pub fn check(home: &Path, address: &str, genesis: &Genesis) -> Result<(), Box<KnownLedgerError>> {
    let file = home.join(FILE_NAME);
    let io = |source| Box::new(KnownLedgerError::Io { file: file.clone(), source });
    let found = genesis.chain();
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(io(error)),
    };
    for (number, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        if line.trim_start().starts_with('#') || words.next() != Some(address) {
            continue;
        }
        let pinned = words.next().and_then(|chain| chain.parse::<Digest>().ok());
        if pinned == Some(found) {
            return Ok(());
        }
        return Err(Box::new(KnownLedgerError::ChainChanged {
            address: address.to_string(),
            expected: pinned.unwrap_or_default(),
            found,
            name: genesis.name.clone(),
            file,
            line: number + 1,
        }));
    }
    std::fs::create_dir_all(home).map_err(io)?;
    let mut pins = std::fs::OpenOptions::new().create(true).append(true).open(&file).map_err(io)?;
    // One write per line: concurrent first contacts append whole lines.
    let name: String = genesis.name.chars().filter(|c| !c.is_control()).collect();
    pins.write_all(format!("{address} {found} {name}\n").as_bytes()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand_contracts::block::ValidatorSet;

    fn genesis(name: &str) -> Genesis {
        Genesis {
            name: name.into(),
            validators: ValidatorSet {
                ordering: strand_contracts::block::Ordering::Sequencer,
                validators: vec![],
                quorum: 1,
                beacon_key: None,
            },
            epoch_blocks: 10,
            timestamp_ms: 1,
        }
    }

    #[test]
    fn the_first_chain_met_is_pinned_and_another_refused() {
        let home = tempfile::tempdir().expect("home");
        let (first, other) = (genesis("strand devnet"), genesis("impostor"));
        check(home.path(), "127.0.0.1:7400", &first).expect("first contact pins");
        check(home.path(), "127.0.0.1:7400", &first).expect("the same chain again");
        check(home.path(), "127.0.0.1:7401", &other).expect("another address is another pin");
        let error = check(home.path(), "127.0.0.1:7400", &other).expect_err("another chain at a pinned address");
        let message = error.to_string();
        assert!(message.contains(&first.chain().to_string()) && message.contains(&other.chain().to_string()));
        assert!(message.contains("line 1 of") && message.contains("delete that line"), "{message}");
        let text = std::fs::read_to_string(home.path().join(FILE_NAME)).expect("pins");
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with(&format!("127.0.0.1:7400 {} strand devnet\n", first.chain())));
    }
}
