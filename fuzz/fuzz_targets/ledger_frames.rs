//! The ledger service's wire frames read from a hostile stream never panic:
//! a request under the server's limit, a response under the client's, and
//! frames one after another on the same stream until one fails. Whatever a
//! frame decodes to re-encodes, with `write_frame`, to exactly the bytes it
//! was read from (borsh is canonical), and the transactions, blocks and
//! genesis it carries are decoded as their readers would.
#![no_main]

use std::io::Cursor;

use borsh::{BorshDeserialize, BorshSerialize};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use strand_contracts::{Block, Replica, Transaction};
use strand_ledger_service::protocol::{FRAME_BYTES_MAX, REQUEST_BYTES_MAX, Request, Response, read_frame, write_frame};

/// Reads one `T` from `bytes` at `cursor`'s position under `limit`; if it
/// decodes, checks that writing it back gives the bytes just consumed.
fn read_one<T: BorshDeserialize + BorshSerialize>(cursor: &mut Cursor<&[u8]>, limit: usize) -> Option<T> {
    let start = cursor.position() as usize;
    let message = block_on(read_frame::<T>(cursor, limit)).ok()?;
    let end = cursor.position() as usize;
    let mut written = Vec::new();
    block_on(write_frame(&mut written, &message)).expect("writing a frame into a Vec cannot fail");
    assert_eq!(written, cursor.get_ref()[start..end], "a decoded frame re-encodes to other bytes");
    Some(message)
}

/// Decodes what a request carries as the server would.
fn inspect_request(request: &Request) {
    if let Request::Submit(bytes) = request
        && let Ok(transaction) = Transaction::from_bytes(bytes)
    {
        assert_eq!(&transaction.to_bytes(), bytes, "a decoded transaction re-encodes to other bytes");
        let _ = transaction.signature_valid();
    }
}

/// Decodes what a response carries as a client or follower would.
fn inspect_response(response: &Response) {
    match response {
        Response::Genesis(genesis) => {
            // A follower starts its replica from the genesis it is served.
            let replica = Replica::new(genesis);
            assert_eq!(replica.height(), 0);
        }
        Response::Blocks(blocks) => {
            for bytes in blocks {
                if let Ok(block) = Block::from_bytes(bytes) {
                    assert_eq!(&block.to_bytes(), bytes, "a decoded block re-encodes to other bytes");
                    let _ = block.header.hash();
                }
            }
        }
        _ => {}
    }
}

fuzz_target!(|bytes: &[u8]| {
    // The bytes as a connection to the server (requests) and as one to a
    // client (responses): frames in a row until one fails (each consumes at
    // least its 6-byte header, so the loops end).
    let mut requests = Cursor::new(bytes);
    while let Some(request) = read_one::<Request>(&mut requests, REQUEST_BYTES_MAX) {
        inspect_request(&request);
    }
    let mut responses = Cursor::new(bytes);
    while let Some(response) = read_one::<Response>(&mut responses, FRAME_BYTES_MAX) {
        inspect_response(&response);
    }
});
