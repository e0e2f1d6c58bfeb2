//! The block the engine orders: a Strand header and its transactions,
//! named by the header's hash. Finality evidence is not part of it: the
//! certificate is made by voting on this block's digest.

use bytes::{Buf, BufMut};
use commonware_codec::{EncodeSize, Error as CodecError, Read, Write};
use commonware_consensus::Heightable;
use commonware_consensus::types::Height;
use commonware_cryptography::{Digestible, sha256};
use strand_contracts::BlockHeader;
use strand_contracts::encoding::{self, BLOCK_BYTES_MAX};

/// The engine's digest: the 32 bytes of the Strand header's hash.
pub type Digest = sha256::Digest;

/// The engine's view of a Strand digest.
pub fn digest(hash: &strand_contracts::Digest) -> Digest {
    sha256::Digest(hash.0)
}

/// A proposed block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The header (what is signed, through its hash).
    pub header: BlockHeader,
    /// The transactions' bytes.
    pub transactions: Vec<Vec<u8>>,
    hash: strand_contracts::Digest,
}

/// The encoded body: borsh of the header, then the transactions (the same
/// bytes as a struct of the two; encoded from references, without copies).
#[derive(borsh::BorshDeserialize)]
struct Body {
    header: BlockHeader,
    transactions: Vec<Vec<u8>>,
}

impl Candidate {
    /// A candidate block.
    pub fn new(header: BlockHeader, transactions: Vec<Vec<u8>>) -> Self {
        let hash = header.hash();
        Self { header, transactions, hash }
    }

    /// The header's hash.
    pub fn hash(&self) -> strand_contracts::Digest {
        self.hash
    }

    fn body_bytes(&self) -> Vec<u8> {
        encoding::encode(&(&self.header, &self.transactions))
    }
}

impl Write for Candidate {
    fn write(&self, buffer: &mut impl BufMut) {
        let body = self.body_bytes();
        buffer.put_u32(body.len() as u32);
        buffer.put_slice(&body);
    }
}

impl EncodeSize for Candidate {
    fn encode_size(&self) -> usize {
        // borsh: the header, then a u32 count and each transaction as a u32
        // length and its bytes.
        4 + borsh::object_length(&self.header).unwrap_or(0)
            + 4
            + self.transactions.iter().map(|transaction| 4 + transaction.len()).sum::<usize>()
    }
}

impl Read for Candidate {
    type Cfg = ();

    /// Bytes from any peer: bounded by the block limit before anything is
    /// allocated, and decoded without panicking.
    fn read_cfg(buffer: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        if buffer.remaining() < 4 {
            return Err(CodecError::EndOfBuffer);
        }
        let length = buffer.get_u32() as usize;
        if length > BLOCK_BYTES_MAX {
            return Err(CodecError::InvalidLength(length));
        }
        if buffer.remaining() < length {
            return Err(CodecError::EndOfBuffer);
        }
        let mut body = vec![0u8; length];
        buffer.copy_to_slice(&mut body);
        let Body { header, transactions } = encoding::decode::<Body>(&body, BLOCK_BYTES_MAX)
            .map_err(|_| CodecError::Invalid("strand block", "malformed encoding"))?;
        Ok(Self::new(header, transactions))
    }
}

impl Digestible for Candidate {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        digest(&self.hash)
    }
}

impl Heightable for Candidate {
    fn height(&self) -> Height {
        Height::new(self.header.height)
    }
}

impl commonware_consensus::Block for Candidate {
    fn parent(&self) -> Digest {
        digest(&self.header.parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::{DecodeExt, Encode};

    fn candidate() -> Candidate {
        let genesis = strand_contracts::Genesis {
            name: "t".into(),
            validators: strand_contracts::ValidatorSet::sequencer(strand_contracts::AccountId([1; 32])),
            epoch_blocks: 4,
            timestamp_ms: 5,
        };
        let mut replica = strand_contracts::Replica::new(&genesis);
        let transactions = vec![vec![1, 2, 3], vec![4; 300]];
        let (header, _) = replica.build(6, &transactions, strand_contracts::AccountId([2; 32]), None);
        Candidate::new(header, transactions)
    }

    #[test]
    fn a_candidate_round_trips_and_its_size_is_exact() {
        let block = candidate();
        let bytes = block.encode();
        assert_eq!(bytes.len(), block.encode_size());
        assert_eq!(Candidate::decode(bytes).expect("decodes"), block);
    }

    #[test]
    fn hostile_bytes_are_refused_without_panic_or_allocation() {
        let bytes = candidate().encode().to_vec();
        // A length of 4 GiB, a truncated body, a short body, trailing bytes.
        let huge = [&u32::MAX.to_be_bytes()[..], &bytes[4..]].concat();
        assert!(Candidate::decode(bytes::Bytes::copy_from_slice(&huge[..])).is_err());
        assert!(Candidate::decode(bytes::Bytes::copy_from_slice(&bytes[..bytes.len() - 1])).is_err());
        // A body one byte shorter than its block: not a block.
        let mut damaged = bytes.clone();
        damaged[3] -= 1;
        assert!(Candidate::decode(bytes::Bytes::copy_from_slice(&damaged[..])).is_err());
        let trailing = [&bytes[..], &[0]].concat();
        assert!(Candidate::decode(bytes::Bytes::copy_from_slice(&trailing[..])).is_err());
        for length in 0..bytes.len().min(64) {
            let _ = Candidate::decode(bytes::Bytes::copy_from_slice(&bytes[..length]));
        }
    }
}
