//! Strand client library.
