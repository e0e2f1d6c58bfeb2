//! The deterministic network simulator: drives the same sans-IO protocol
//! state machines as the daemon over simulated time, links and stores,
//! seeded so a seed reproduces a run bit for bit.
//!
//! Status: arrives after the storage network; today the codec's own tests
//! cover what the simulator will later exercise at network scale.
//!
//! May depend on: every crate of the workspace.
