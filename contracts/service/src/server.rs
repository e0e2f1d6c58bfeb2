//! Serves the ledger protocol on a TCP listener (loopback in devnets).

use std::sync::Arc;
use std::time::Duration;

use strand_contracts::block::Genesis;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::ordering::OrderingService;
use crate::protocol::{FrameError, REQUEST_BYTES_MAX, Request, Response, read_frame, write_frame};

/// Most connections served at once; more wait for a free place.
pub const CONNECTIONS_MAX: usize = 256;
/// A connection idle for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most blocks in one answer.
pub const BLOCKS_PER_ANSWER_MAX: u32 = 256;
/// Longest wait a client may ask for.
pub const WAIT_MAX: Duration = Duration::from_secs(30);

/// Accepts connections until `shutdown` fires.
pub async fn serve<O: OrderingService>(
    listener: TcpListener,
    sequencer: O,
    genesis: Genesis,
    mut shutdown: watch::Receiver<bool>,
) {
    let places = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let genesis = Arc::new(genesis);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "ledger.server.accept failed");
                continue;
            }
        };
        // Answers are small request-response frames: send them at once.
        stream.set_nodelay(true).ok();
        let Ok(place) = Arc::clone(&places).acquire_owned().await else { return };
        let (sequencer, genesis) = (sequencer.clone(), Arc::clone(&genesis));
        tokio::spawn(async move {
            if let Err(error) = connection(stream, &sequencer, &genesis).await {
                tracing::debug!(%peer, %error, "ledger.server.connection closed");
            }
            drop(place);
        });
    }
}

async fn connection<O: OrderingService>(
    mut stream: TcpStream,
    sequencer: &O,
    genesis: &Genesis,
) -> Result<(), FrameError> {
    loop {
        let request: Request =
            match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut stream, REQUEST_BYTES_MAX)).await {
                Ok(Ok(request)) => request,
                Ok(Err(FrameError::Io(error))) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(error)) => {
                    // Tell the peer what was wrong before closing.
                    let _ = write_frame(&mut stream, &Response::Error(error.to_string())).await;
                    return Err(error);
                }
                Err(_) => return Ok(()),
            };
        let response = answer(request, sequencer, genesis).await;
        write_frame(&mut stream, &response).await?;
    }
}

async fn answer<O: OrderingService>(request: Request, sequencer: &O, genesis: &Genesis) -> Response {
    match request {
        Request::Genesis => Response::Genesis(genesis.clone()),
        Request::Status => Response::Status(sequencer.status()),
        Request::Submit(bytes) => Response::Submitted(sequencer.submit(bytes).await),
        Request::Transaction(hash) => match tokio::task::block_in_place(|| sequencer.transaction(&hash)) {
            Ok(status) => Response::Transaction(status),
            Err(error) => Response::Error(error.to_string()),
        },
        Request::Blocks { from, count } => {
            let count = count.min(BLOCKS_PER_ANSWER_MAX) as usize;
            match tokio::task::block_in_place(|| sequencer.finalised_blocks(from, count, 16 << 20)) {
                Ok(blocks) => Response::Blocks(blocks),
                Err(error) => Response::Error(error.to_string()),
            }
        }
        Request::WaitForHeight { height, timeout_ms } => {
            let timeout = Duration::from_millis(u64::from(timeout_ms)).min(WAIT_MAX);
            Response::Status(sequencer.wait_for_height(height, timeout).await)
        }
    }
}
