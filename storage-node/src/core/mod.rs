//! The node's protocol logic, free of I/O: what it holds, whom it serves,
//! which proposals it accepts. The daemon (`crate::daemon`) feeds it ledger
//! state and network requests and carries out its decisions; the simulator
//! drives the same functions (`repair`, the repair-read gate, `prover`).

#[cfg(test)]
mod fixtures;
pub mod gate;
pub mod holdings;
pub mod keeper;
pub mod limits;
pub mod proposal;
pub mod prover;
pub mod receipts;
pub mod repair;
pub mod retention;
pub mod staging;
pub mod submissions;
