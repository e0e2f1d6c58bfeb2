//! A client of the ledger protocol: one TCP connection, one request at a
//! time (and [`LedgerClient::submit_all`], which opens a few more).

use std::time::Duration;

use strand_contracts::Digest;
use strand_contracts::block::Genesis;
use tokio::net::TcpStream;

use crate::protocol::{
    FRAME_BYTES_MAX, FrameError, Request, Response, Status, TransactionStatus, read_frame, write_frame,
};

/// A request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Cannot reach the service.
    #[error(
        "cannot reach the ledger service at {address}: {source} (is the sequencer running? `strand devnet` starts one)"
    )]
    Connect {
        /// Where.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The service answered with an error.
    #[error("ledger service: {0}")]
    Service(String),
    /// The service answered something else than asked.
    #[error("ledger service answered out of protocol")]
    Unexpected,
    /// No answer in time.
    #[error("the ledger service did not answer within {0:?}")]
    Timeout(Duration),
}

/// A connection to a ledger service. A connection the service closed (it
/// closes idle ones after a minute, and restarts) is opened again once per
/// request: every request is safe to repeat (a resubmitted transaction is
/// admitted again without change). A request whose future was dropped
/// between sending and reading its answer (a `select!` that took another
/// branch) leaves that answer on the connection: the next request opens a
/// fresh one rather than read it as its own.
///
/// Several addresses (a consortium's validators, comma-separated) fail
/// over: a connection that fails or times out is replaced by one to the
/// next address that answers. Every validator serves the same finalised
/// chain, so any of them answers any request.
pub struct LedgerClient {
    stream: TcpStream,
    addresses: Vec<String>,
    /// The address `stream` is connected to.
    current: usize,
    /// A request was sent and its answer not read.
    unread: bool,
}

/// Connections [`LedgerClient::submit_all`] opens at once.
pub const SUBMISSIONS_IN_FLIGHT: usize = 16;

/// Longest a single request may take (waits add their own timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl LedgerClient {
    /// Connects to `addresses` (`host:port`, or several separated by
    /// commas: the first that answers).
    pub async fn connect(addresses: &str) -> Result<Self, ClientError> {
        let addresses: Vec<String> =
            addresses.split(',').map(str::trim).filter(|address| !address.is_empty()).map(str::to_string).collect();
        if addresses.is_empty() {
            return Err(ClientError::Connect {
                address: String::new(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no ledger address given"),
            });
        }
        let (stream, current) = Self::open_from(&addresses, 0).await?;
        Ok(Self { stream, addresses, current, unread: false })
    }

    /// The address this client is connected to now.
    pub fn address(&self) -> &str {
        &self.addresses[self.current]
    }

    /// Opens a connection to the first address that answers, trying each
    /// once starting at `first`.
    async fn open_from(addresses: &[String], first: usize) -> Result<(TcpStream, usize), ClientError> {
        let mut last = None;
        for offset in 0..addresses.len() {
            let index = (first + offset) % addresses.len();
            match Self::open(&addresses[index]).await {
                Ok(stream) => {
                    if offset > 0 {
                        tracing::info!(address = %addresses[index], "ledger.client failed over");
                    }
                    return Ok((stream, index));
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.expect("at least one address"))
    }

    /// Replaces the connection after a failure: the same address first
    /// when `same_first` (a connection the service closed), else the next.
    async fn reopen(&mut self, same_first: bool) -> Result<(), ClientError> {
        let first = if same_first { self.current } else { self.current + 1 };
        let (stream, current) = Self::open_from(&self.addresses, first).await?;
        self.stream = stream;
        self.current = current;
        Ok(())
    }

    async fn open(address: &str) -> Result<TcpStream, ClientError> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|source| ClientError::Connect { address: address.to_string(), source })?;
        stream.set_nodelay(true).ok();
        Ok(stream)
    }

    async fn request(&mut self, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
        if self.unread {
            self.reopen(true).await?;
            self.unread = false;
        }
        match self.exchange(request, timeout).await {
            // The service closed the connection (idle, or restarted): once
            // more on a fresh one (another service's, if this one is gone).
            Err(ClientError::Frame(FrameError::Io(_))) => {
                self.reopen(true).await?;
                self.exchange(request, timeout).await
            }
            // A service that does not answer: once more at the next
            // address, if there is another.
            Err(ClientError::Timeout(elapsed)) if self.addresses.len() > 1 => {
                self.reopen(false).await?;
                self.unread = false;
                match self.exchange(request, timeout).await {
                    Err(ClientError::Timeout(_)) => Err(ClientError::Timeout(elapsed)),
                    other => other,
                }
            }
            other => other,
        }
    }

    async fn exchange(&mut self, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
        self.unread = true;
        let exchange = async {
            write_frame(&mut self.stream, request).await?;
            read_frame::<Response>(&mut self.stream, FRAME_BYTES_MAX).await
        };
        let answer = tokio::time::timeout(timeout, exchange).await;
        // Whatever the outcome, nothing of this exchange is left to read
        // unless it timed out mid-way (then the connection is abandoned).
        self.unread = answer.is_err();
        match answer {
            Ok(Ok(Response::Error(message))) => Err(ClientError::Service(message)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// The chain's genesis.
    pub async fn genesis(&mut self) -> Result<Genesis, ClientError> {
        match self.request(&Request::Genesis, REQUEST_TIMEOUT).await? {
            Response::Genesis(genesis) => Ok(genesis),
            _ => Err(ClientError::Unexpected),
        }
    }

    /// The chain's status.
    pub async fn status(&mut self) -> Result<Status, ClientError> {
        match self.request(&Request::Status, REQUEST_TIMEOUT).await? {
            Response::Status(status) => Ok(status),
            _ => Err(ClientError::Unexpected),
        }
    }

    /// Submits transaction bytes; `Ok(Ok(hash))` once durably queued,
    /// `Ok(Err(reason))` if not admitted.
    pub async fn submit(&mut self, bytes: Vec<u8>) -> Result<Result<Digest, String>, ClientError> {
        match self.request(&Request::Submit(bytes), REQUEST_TIMEOUT).await? {
            Response::Submitted(result) => Ok(result),
            _ => Err(ClientError::Unexpected),
        }
    }

    /// Submits several transactions at once, each on its own short-lived
    /// connection to the same service (at most [`SUBMISSIONS_IN_FLIGHT`] at
    /// a time), so the service admits them together with one durable commit
    /// instead of one commit each. Answers in the order given. A sender's
    /// transactions may arrive out of nonce order: the mempool queues them
    /// and releases them in nonce order.
    pub async fn submit_all(&mut self, transactions: Vec<Vec<u8>>) -> Result<Vec<Result<Digest, String>>, ClientError> {
        use futures::StreamExt as _;
        let address = self.addresses.join(",");
        let answers: Vec<Result<Result<Digest, String>, ClientError>> = futures::stream::iter(transactions)
            .map(|bytes| {
                let address = address.clone();
                async move { LedgerClient::connect(&address).await?.submit(bytes).await }
            })
            .buffered(SUBMISSIONS_IN_FLIGHT)
            .collect()
            .await;
        answers.into_iter().collect()
    }

    /// What became of a transaction.
    pub async fn transaction(&mut self, hash: Digest) -> Result<TransactionStatus, ClientError> {
        match self.request(&Request::Transaction(hash), REQUEST_TIMEOUT).await? {
            Response::Transaction(status) => Ok(status),
            _ => Err(ClientError::Unexpected),
        }
    }

    /// Encoded blocks from `from`.
    pub async fn blocks(&mut self, from: u64, count: u32) -> Result<Vec<Vec<u8>>, ClientError> {
        match self.request(&Request::Blocks { from, count }, REQUEST_TIMEOUT).await? {
            Response::Blocks(blocks) => Ok(blocks),
            _ => Err(ClientError::Unexpected),
        }
    }

    /// Waits until the chain reaches `height` (or `timeout` passes).
    pub async fn wait_for_height(&mut self, height: u64, timeout: Duration) -> Result<Status, ClientError> {
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        match self.request(&Request::WaitForHeight { height, timeout_ms }, timeout + REQUEST_TIMEOUT).await? {
            Response::Status(status) => Ok(status),
            _ => Err(ClientError::Unexpected),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::REQUEST_BYTES_MAX;

    /// A service that answers one request per connection, then closes it
    /// (as the real one does with idle connections).
    async fn one_answer_per_connection() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listener");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            for height in 1u64.. {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let _: Request = read_frame(&mut stream, REQUEST_BYTES_MAX).await.expect("a request");
                let status = Status { chain: Digest([1; 32]), height, head: Digest([2; 32]), epoch: 0, mempool: 0 };
                write_frame(&mut stream, &Response::Status(status)).await.expect("answered");
            }
        });
        address
    }

    #[tokio::test]
    async fn an_answer_left_unread_by_a_dropped_request_is_never_taken_for_the_next() {
        let mut client = LedgerClient::connect(&one_answer_per_connection().await).await.expect("connects");
        // The request is sent, then its future dropped before the answer is read.
        let dropped =
            tokio::time::timeout(Duration::from_millis(1), client.wait_for_height(99, Duration::from_secs(5)));
        let _ = dropped.await;
        // The first connection's answer (height 1) is never read as this one's.
        let status = client.status().await.expect("answered on a fresh connection");
        assert_eq!(status.height, 2);
    }

    #[tokio::test]
    async fn several_addresses_fail_over_to_one_that_answers() {
        // Nothing listens at the first address.
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listener");
        let dead_address = dead.local_addr().expect("address").to_string();
        drop(dead);
        let live = one_answer_per_connection().await;
        let mut client =
            LedgerClient::connect(&format!("{dead_address}, {live}")).await.expect("connects to the second");
        assert_eq!(client.address(), live);
        assert_eq!(client.status().await.expect("answered").height, 1);
        // A service that accepts and never answers: the request times out
        // there and is asked again of the next address.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listener");
        let silent_address = silent.local_addr().expect("address").to_string();
        let mut client = LedgerClient::connect(&format!("{silent_address},{live}")).await.expect("connects");
        assert_eq!(client.address(), silent_address);
        let status = client.request(&Request::Status, Duration::from_millis(300)).await.expect("failed over");
        assert!(matches!(status, Response::Status(_)));
        assert_eq!(client.address(), live);
        drop(silent);
        assert!(LedgerClient::connect(" , ").await.is_err(), "no address at all is an error");
    }

    #[tokio::test]
    async fn a_connection_the_service_closed_is_opened_again() {
        let mut client = LedgerClient::connect(&one_answer_per_connection().await).await.expect("connects");
        assert_eq!(client.status().await.expect("first").height, 1);
        // The service closed that connection; the client opens another.
        assert_eq!(client.status().await.expect("second").height, 2);
        assert_eq!(client.status().await.expect("third").height, 3);
    }
}
