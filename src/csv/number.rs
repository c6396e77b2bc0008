//! Coordinates as the CSV writes them: canonical decimal text, or exactly as in the KML.
//!
//! KML writers put `+008.5155383` or `.5` in coordinates. Kept as they are, such numbers make
//! DuckDB's `read_csv_auto` over several files disagree on a column's type and sqlite sort them
//! as text. Canonical text drops only what carries no value: a leading `+`, leading zeros
//! (`008.50` → `8.50`, `-000.5` → `-0.5`), a point with no digit after it at the end (`5.` →
//! `5`); it adds the zero a leading point lacks (`.5` → `0.5`). The digits themselves, trailing
//! zeros (they say how precise the value is), a `-` (also of `-0`) and any exponent are kept as
//! written: nothing is rounded or converted through a float.

/// How coordinates are written (`--numbers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Numbers {
    /// Canonical decimal text (see the module comment).
    #[default]
    Canonical,
    /// Exactly as in the KML.
    Verbatim,
}

/// Whether `n`, a number the reader accepted (or empty), differs from its canonical text. Only
/// its first bytes and its last are looked at: this is asked for every coordinate.
#[inline(always)]
pub fn needs_canonical(n: &[u8]) -> bool {
    let body = match n {
        [b'+', ..] => return true,
        [b'-', rest @ ..] => rest,
        _ => n,
    };
    matches!(body, [b'0', b'0'..=b'9', ..] | [b'.', ..]) || n.last() == Some(&b'.')
}

/// Append the canonical text of `n`, a number the reader accepted, to `out`.
pub fn push_canonical(out: &mut Vec<u8>, n: &[u8]) {
    let digits_end = |s: &[u8]| {
        s.iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(s.len())
    };
    let rest = match n {
        [b'-', rest @ ..] => {
            out.push(b'-');
            rest
        }
        [b'+', rest @ ..] => rest,
        _ => n,
    };
    let (int, tail) = rest.split_at(digits_end(rest));
    match int.iter().position(|&b| b != b'0') {
        Some(first) => out.extend_from_slice(&int[first..]),
        None => out.push(b'0'),
    }
    let (fraction, exponent) = match tail {
        [b'.', after @ ..] => tail.split_at(1 + digits_end(after)),
        _ => (&tail[..0], tail),
    };
    // A point with digits after it stays; a lone one goes.
    if fraction.len() > 1 {
        out.extend_from_slice(fraction);
    }
    out.extend_from_slice(exponent);
}

/// Append `n` to `out` as `numbers` asks.
#[inline(always)]
pub fn push(out: &mut Vec<u8>, n: &[u8], numbers: Numbers) {
    if numbers == Numbers::Canonical && needs_canonical(n) {
        push_canonical(out, n);
    } else {
        out.extend_from_slice(n);
    }
}

/// `n` as `numbers` asks: `n` itself, or its canonical text in `scratch`.
#[inline(always)]
pub fn text<'a>(n: &'a [u8], numbers: Numbers, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if numbers == Numbers::Canonical && needs_canonical(n) {
        scratch.clear();
        push_canonical(scratch, n);
        scratch
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(n: &str) -> String {
        String::from_utf8(text(n.as_bytes(), Numbers::Canonical, &mut Vec::new()).to_vec()).unwrap()
    }

    #[test]
    fn what_canonical_text_changes() {
        for (written, canonical_text) in [
            ("+008.5155383", "8.5155383"),
            ("008.50", "8.50"),
            ("-000.5", "-0.5"),
            ("-0.50", "-0.50"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("+.5e3", "0.5e3"),
            ("5.", "5"),
            ("-05.", "-5"),
            ("000", "0"),
            ("-0", "-0"),
            ("+0.0", "0.0"),
            ("00012e+05", "12e+05"),
            ("1E-7", "1E-7"),
            ("0.000", "0.000"),
            ("47.3", "47.3"),
            ("-122", "-122"),
            ("", ""),
        ] {
            assert_eq!(canonical(written), canonical_text, "{written}");
        }
    }

    #[test]
    fn the_quick_check_agrees_with_the_rewrite() {
        let samples = [
            "+1", "-1", "1", "0", "00", "0.1", "00.1", ".1", "-.1", "1.", "-0", "+0", "01e5",
            "1e05", "0e0", "-0.0", "10.", "9", "-09",
        ];
        for n in samples {
            let mut rewritten = Vec::new();
            push_canonical(&mut rewritten, n.as_bytes());
            assert_eq!(
                needs_canonical(n.as_bytes()),
                rewritten != n.as_bytes(),
                "{n}"
            );
        }
    }

    #[test]
    fn verbatim_keeps_every_byte() {
        let mut out = Vec::new();
        push(&mut out, b"+008.50", Numbers::Verbatim);
        assert_eq!(out, b"+008.50");
    }
}
