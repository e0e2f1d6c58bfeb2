//! Strand's consortium ledger (work in progress).
