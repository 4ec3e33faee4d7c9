//! The one `Range` form the server understands: a single byte range (RFC 9110 §14.1.2).

use std::fmt;
use std::ops::Range;

/// A single byte range from a `Range: bytes=…` request header.
///
/// Multi-range requests (`bytes=0-1,5-6`) and malformed headers parse to `None`, and the server then ignores the
/// header and answers 200 with the whole body, which RFC 9110 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteRange {
    /// `bytes=N-`: from offset N to the end.
    From(u64),
    /// `bytes=N-M`: offsets N through M, inclusive.
    Span(u64, u64),
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses the value of a `Range` header; `None` when it is not a single, well-formed byte range.
    pub fn parse(header: &str) -> Option<ByteRange> {
        let (unit, spec) = header.trim().split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return None;
        }
        let (first, last) = spec.trim().split_once('-')?;
        match (digits(first.trim()), digits(last.trim())) {
            (Some(Some(first)), Some(None)) => Some(ByteRange::From(first)),
            (Some(Some(first)), Some(Some(last))) if last >= first => {
                Some(ByteRange::Span(first, last))
            }
            (Some(None), Some(Some(len))) => Some(ByteRange::Suffix(len)),
            _ => None,
        }
    }

    /// The half-open interval of a `len`-byte body this range selects, or `None` when it is unsatisfiable (416).
    pub fn resolve(self, len: u64) -> Option<Range<u64>> {
        match self {
            ByteRange::From(first) => (first < len).then_some(first..len),
            ByteRange::Span(first, last) => {
                (first < len).then(|| first..last.saturating_add(1).min(len))
            }
            ByteRange::Suffix(n) => (n > 0 && len > 0).then(|| len - n.min(len)..len),
        }
    }
}

impl fmt::Display for ByteRange {
    /// The header value, e.g. `bytes=100-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ByteRange::From(first) => write!(f, "bytes={first}-"),
            ByteRange::Span(first, last) => write!(f, "bytes={first}-{last}"),
            ByteRange::Suffix(n) => write!(f, "bytes=-{n}"),
        }
    }
}

/// `Some(None)` for an empty position, `Some(Some(n))` for a number, `None` for anything else (signs, spaces, hex).
fn digits(s: &str) -> Option<Option<u64>> {
    if s.is_empty() {
        Some(None)
    } else if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok().map(Some)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{self, From, Span, Suffix};

    #[test]
    fn parses_the_three_single_range_forms() {
        assert_eq!(ByteRange::parse("bytes=100-"), Some(From(100)));
        assert_eq!(ByteRange::parse("bytes=5-9"), Some(Span(5, 9)));
        assert_eq!(ByteRange::parse("bytes=-20"), Some(Suffix(20)));
        assert_eq!(ByteRange::parse(" Bytes = 0 - 0 "), Some(Span(0, 0)));
    }

    #[test]
    fn rejects_what_it_does_not_serve() {
        for header in [
            "bytes=0-1,4-5",
            "bytes=9-5",
            "bytes=-",
            "items=0-1",
            "bytes=+1-",
            "bytes=0x1-",
            "bytes 0-1",
        ] {
            assert_eq!(ByteRange::parse(header), None, "{header}");
        }
    }

    #[test]
    fn resolves_against_the_body_length() {
        assert_eq!(From(3).resolve(10), Some(3..10));
        assert_eq!(From(10).resolve(10), None);
        assert_eq!(Span(2, 4).resolve(10), Some(2..5));
        assert_eq!(Span(8, u64::MAX).resolve(10), Some(8..10));
        assert_eq!(Span(10, 12).resolve(10), None);
        assert_eq!(Suffix(3).resolve(10), Some(7..10));
        assert_eq!(Suffix(30).resolve(10), Some(0..10));
        assert_eq!(Suffix(0).resolve(10), None);
        assert_eq!(From(0).resolve(0), None);
    }

    #[test]
    fn displays_as_the_header_value() {
        for header in ["bytes=100-", "bytes=5-9", "bytes=-20"] {
            assert_eq!(
                ByteRange::parse(header).map(|r| r.to_string()).as_deref(),
                Some(header)
            );
        }
    }
}
