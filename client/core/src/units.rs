//! Parsing of sizes (`1MiB`, `4096`) and byte ranges (`A..B`) on the command
//! line.

use std::ops::Range;

/// A size or range the user typed that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    /// Not a size.
    #[error("'{0}' is not a size: use bytes or a unit, e.g. 4096, 64KiB, 1MiB, 2GiB")]
    Size(String),
    /// Not a range.
    #[error("'{0}' is not a byte range: use START..END, START.. or ..END (END exclusive), e.g. 0..1MiB")]
    Range(String),
}

/// Parses `4096`, `64KiB`, `1MiB`, `2GiB`, `1TiB` (also `K`/`M`/`G`/`T`,
/// `KB`/`MB`/... as binary units, which is what storage people mean here).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(text.to_string());
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    number.checked_mul(1 << shift).ok_or_else(bad)
}

/// Parses `A..B`, `A..` and `..B` into a range, with `length` as the default
/// end (the file length, known once the index is open).
pub fn parse_range(text: &str, length: u64) -> Result<Range<u64>, UnitError> {
    let bad = || UnitError::Range(text.to_string());
    let (start, end) = text.split_once("..").ok_or_else(bad)?;
    let start = if start.trim().is_empty() { 0 } else { parse_size(start).map_err(|_| bad())? };
    let end = if end.trim().is_empty() { length } else { parse_size(end).map_err(|_| bad())? };
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("10..20", 100), Ok(10..20));
        assert_eq!(parse_range("10..", 100), Ok(10..100));
        assert_eq!(parse_range("..1KiB", 5000), Ok(0..1024));
        assert!(parse_range("10-20", 100).is_err());
    }
}
