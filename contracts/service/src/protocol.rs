//! The ledger service's wire protocol: length-prefixed borsh frames over a
//! byte stream (TCP on loopback for now; the node's libp2p request-response
//! carries the same messages later).
//!
//! Frame: `version: u16 LE ‖ length: u32 LE ‖ payload (borsh)`.

use borsh::{BorshDeserialize, BorshSerialize};
use strand_contracts::Digest;
use strand_contracts::apply::Outcome;
use strand_contracts::block::Genesis;
use strand_contracts::encoding::{self, EncodingError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Version of the framing and messages.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest frame payload (an answer of blocks).
pub const FRAME_BYTES_MAX: usize = 32 << 20;
/// Largest request a server reads: a transaction and its envelope.
pub const REQUEST_BYTES_MAX: usize = strand_contracts::encoding::TRANSACTION_BYTES_MAX + 1024;
/// Buffer reserved before a frame's bytes arrive: larger frames grow as
/// their bytes come, so a length field alone never allocates.
const RESERVE_BYTES_MAX: usize = 64 * 1024;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// The chain's genesis configuration.
    Genesis,
    /// Height, head, epoch, mempool size.
    Status,
    /// Submit transaction bytes; answered once they are durably queued.
    Submit(Vec<u8>),
    /// What became of a transaction.
    Transaction(Digest),
    /// Encoded blocks from a height.
    Blocks {
        /// First height.
        from: u64,
        /// Most blocks.
        count: u32,
    },
    /// Wait until the chain reaches a height (or the timeout passes).
    WaitForHeight {
        /// Height to reach.
        height: u64,
        /// How long to wait at most.
        timeout_ms: u32,
    },
}

/// The chain's state as the service sees it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Status {
    /// Chain id.
    pub chain: Digest,
    /// Height of the last block.
    pub height: u64,
    /// Hash of the last block.
    pub head: Digest,
    /// Current epoch.
    pub epoch: u64,
    /// Transactions waiting.
    pub mempool: u32,
}

/// What became of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TransactionStatus {
    /// Never seen.
    Unknown,
    /// Waiting in the mempool.
    Pending,
    /// In a finalised block.
    Finalised {
        /// Block height.
        height: u64,
        /// Index in the block.
        index: u32,
        /// Accepted or rejected with a reason.
        outcome: Outcome,
    },
    /// Acknowledged once, then found invalid before any block took it.
    Dropped(String),
}

/// What the service answers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Response {
    /// To [`Request::Genesis`].
    Genesis(Genesis),
    /// To [`Request::Status`] and [`Request::WaitForHeight`].
    Status(Status),
    /// To [`Request::Submit`]: the hash, or why it was not admitted.
    Submitted(Result<Digest, String>),
    /// To [`Request::Transaction`].
    Transaction(TransactionStatus),
    /// To [`Request::Blocks`].
    Blocks(Vec<Vec<u8>>),
    /// The request could not be served.
    Error(String),
}

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// Another protocol version.
    #[error("peer speaks protocol version {0}, this build speaks {PROTOCOL_VERSION}")]
    Version(u16),
    /// Bad payload.
    #[error("bad message: {0}")]
    Encoding(#[from] EncodingError),
}

/// Writes one message as a frame.
pub async fn write_frame<T: BorshSerialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameError> {
    let payload = encoding::encode(message);
    let length = u32::try_from(payload.len())
        .map_err(|_| EncodingError::Oversized { bytes: payload.len() as u64, limit: FRAME_BYTES_MAX as u64 })?;
    // One write per frame: a header sent on its own waits, on a socket with
    // Nagle's algorithm, for the peer's delayed acknowledgement (40 ms).
    let mut frame = Vec::with_capacity(6 + payload.len());
    frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(&payload);
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one frame of at most `limit` payload bytes as a message, refusing
/// an oversized frame before reading its payload; the buffer grows as the
/// payload arrives.
pub async fn read_frame<T: BorshDeserialize>(
    stream: &mut (impl AsyncRead + Unpin),
    limit: usize,
) -> Result<T, FrameError> {
    let mut header = [0u8; 6];
    stream.read_exact(&mut header).await?;
    let version = u16::from_le_bytes([header[0], header[1]]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::Version(version));
    }
    let length = u32::from_le_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if length > limit {
        return Err(EncodingError::Oversized { bytes: length as u64, limit: limit as u64 }.into());
    }
    let mut payload = Vec::with_capacity(length.min(RESERVE_BYTES_MAX));
    let read = (&mut *stream).take(length as u64).read_to_end(&mut payload).await?;
    if read != length {
        return Err(FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the frame ended after {read} of {length} bytes"),
        )));
    }
    Ok(encoding::decode(&payload, limit)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(version: u16, length: u32, payload: &[u8]) -> Vec<u8> {
        [&version.to_le_bytes()[..], &length.to_le_bytes(), payload].concat()
    }

    async fn read(bytes: Vec<u8>, limit: usize) -> Result<Request, FrameError> {
        read_frame::<Request>(&mut std::io::Cursor::new(bytes), limit).await
    }

    #[tokio::test]
    async fn hostile_frames_are_refused_without_allocating_their_length() {
        let status = encoding::encode(&Request::Status);
        assert_eq!(read(frame(1, status.len() as u32, &status), 64).await.expect("a request"), Request::Status);
        // A length of 4 GiB: refused at the header, nothing allocated.
        assert!(matches!(read(frame(1, u32::MAX, &[]), REQUEST_BYTES_MAX).await, Err(FrameError::Encoding(_))));
        // A length within the limit whose bytes never come: an early end, not
        // a 1 MiB buffer waiting.
        let truncated = read(frame(1, REQUEST_BYTES_MAX as u32, &[1, 2, 3]), REQUEST_BYTES_MAX).await;
        assert!(
            matches!(truncated, Err(FrameError::Io(ref error)) if error.kind() == std::io::ErrorKind::UnexpectedEof)
        );
        assert!(matches!(read(frame(2, 1, &[1]), 64).await, Err(FrameError::Version(2))));
        assert!(matches!(read(frame(1, 3, &[9, 9, 9]), 64).await, Err(FrameError::Encoding(_))), "not a request");
        assert!(matches!(read(vec![1, 0, 5], 64).await, Err(FrameError::Io(_))), "a truncated header");
    }
}
