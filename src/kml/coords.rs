//! The `<coordinates>` tokenizer: text in, `(longitude, latitude, altitude)` tuples out.
//!
//! It is fed the element's character data in chunks of any size (a single element can be
//! hundreds of megabytes, so it is never held whole) and keeps only the components of the
//! tuple it is in the middle of. The rules are those Google Earth and libkml apply to KML found
//! in the wild:
//!
//! - tuples are separated by XML whitespace (space, tab, CR, LF), but whitespace next to a
//!   comma is ignored, so `1, 2, 3` is one tuple;
//! - empty components after the second are dropped (`1,2,` has no altitude);
//! - a tuple of more than three components is read as consecutive triples (`1,2,3,4,5,6`);
//! - numbers are copied verbatim, never parsed to floats and re-printed;
//! - a tuple that has an empty longitude or latitude, a component that is not a number, or a
//!   lone value is skipped with a warning that names where it starts.

use std::ops::Range;

use super::{Error, Tuple};

/// A number as KML writers produce them: `[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?`.
/// `NaN`, `Inf` and hexadecimal floats are not numbers here.
pub fn is_number(s: &[u8]) -> bool {
    number_end(s, 0) == Some(s.len())
}

/// Where the number that starts at `s[i]` ends: the first byte the grammar of [`is_number`]
/// cannot take next. `None` if no number starts there, or the grammar needs a byte it did not
/// get (`1e`, `+`), so the caller need not tell an unfinished number from a finished one.
#[inline(always)]
fn number_end(s: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: usize| skip_digits(s, i);
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    i = digits(i);
    let mut any_digit = i > int_start;
    if s.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        i = digits(frac_start);
        any_digit |= i > frac_start;
    }
    if !any_digit {
        return None;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        i = digits(i);
        if i == exp_start {
            return None;
        }
    }
    Some(i)
}

/// The first index at or after `i` that is not an ASCII digit (or `s.len()`). Eight bytes are
/// looked at a time: a byte-by-byte loop was an eighth of the reader's instructions, since nearly
/// every byte of a `<coordinates>` element is a digit.
#[inline(always)]
fn skip_digits(s: &[u8], mut i: usize) -> usize {
    const LOW_NIBBLES: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(bytes) = s.get(i..i + 8) {
        let word = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
        // Per byte, nonzero unless it is a digit: its high nibble is not 3, or its low nibble
        // is 10 or more. Neither sum carries into the next byte.
        let other =
            ((word & HIGH_NIBBLES) ^ ZEROS) | (((word & LOW_NIBBLES) + SIXES) & HIGH_NIBBLES);
        let flagged = (((other & LOW7) + LOW7) | other) & HIGH;
        if flagged != 0 {
            return i + (flagged.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// A slice that [`is_number`] or [`number_end`] accepted (or an empty one) as `&str`.
fn ascii(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    // SAFETY: is_number, number_end and quick_tuple accept ASCII bytes only, and ASCII is
    // valid UTF-8.
    // Checking it again with `str::from_utf8` cost 5% of a whole conversion.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// XML whitespace (production S). NBSP and other Unicode spaces are not separators.
#[inline]
pub fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The longest component kept. Real numbers are a few dozen bytes; anything longer is not a
/// coordinate, and capping it keeps memory bounded on a hostile element.
const MAX_COMPONENT: usize = 256;

/// Where the number at `chunk[i..]` ends, if it is followed by a byte `stop` accepts and is no
/// longer than [`MAX_COMPONENT`] (the general path warns about a longer one).
#[inline(always)]
fn component_end(chunk: &[u8], i: usize, stop: impl Fn(u8) -> bool) -> Option<usize> {
    let end = number_end(chunk, i)?;
    (end - i <= MAX_COMPONENT && chunk.get(end).is_some_and(|&b| stop(b))).then_some(end)
}

/// A tuple taken straight from a chunk: where its components are, and where the token after
/// it starts.
struct Plain {
    lon: Range<usize>,
    lat: Range<usize>,
    alt: Range<usize>,
    next: usize,
}

/// One ordinary tuple, `lon,lat[,alt]`, at `chunk[start..]`, taken only if the chunk alone
/// proves that [`Tokenizer`]'s general path would emit exactly it and nothing else: every
/// component is a number short enough to keep, and after the last one comes white space and
/// then, still inside the chunk, a byte that is not a comma (a comma would carry the tuple on).
#[inline(always)]
fn plain_tuple(chunk: &[u8], start: usize) -> Option<Plain> {
    let lon_end = component_end(chunk, start, |b| b == b',')?;
    let lat_end = component_end(chunk, lon_end + 1, |b| b == b',' || is_xml_space(b))?;
    let alt = if chunk[lat_end] == b',' {
        lat_end + 1..component_end(chunk, lat_end + 1, is_xml_space)?
    } else {
        lat_end..lat_end
    };
    let mut next = alt.end + 1;
    while next < chunk.len() && is_xml_space(chunk[next]) {
        next += 1;
    }
    match chunk.get(next) {
        Some(&b) if b != b',' => Some(Plain {
            lon: start..lon_end,
            lat: lon_end + 1..lat_end,
            alt,
            next,
        }),
        _ => None,
    }
}

/// Whether `n`, a number [`is_number`] accepts or empty, is in shortest text: no `+`, and its
/// digits (after a `-`) start with no `.` and no `0` that another digit follows, and it ends
/// with no `.`.
#[inline(always)]
fn shortest(n: &[u8]) -> bool {
    let body = match n {
        [b'+', ..] => return false,
        [b'-', rest @ ..] => rest,
        _ => n,
    };
    !matches!(body, [b'0', b'0'..=b'9', ..] | [b'.', ..]) && n.last() != Some(&b'.')
}

/// How many bytes [`quick_tuple`] classifies at once: room for the usual tuple
/// (`-31.184311,18.602629,1219.4 `) and the byte after its separator.
const WINDOW: usize = 32;
const _: () = assert!(WINDOW == Tuple::PADDED);

/// One bit per byte of a [`WINDOW`], bit `k` for byte `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Classes {
    digits: u32,
    dots: u32,
    minus: u32,
    zeros: u32,
}

/// [`Classes`] a byte at a time: the reference for [`classify`], and its stand-in where SSE2 is
/// not there to use.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_bytes(window: &[u8; WINDOW]) -> Classes {
    let mut c = Classes {
        digits: 0,
        dots: 0,
        minus: 0,
        zeros: 0,
    };
    for (k, &b) in window.iter().enumerate() {
        c.digits |= u32::from(b.is_ascii_digit()) << k;
        c.dots |= u32::from(b == b'.') << k;
        c.minus |= u32::from(b == b'-') << k;
        c.zeros |= u32::from(b == b'0') << k;
    }
    c
}

/// [`Classes`] sixteen bytes at a time: a load, five compares and four mask moves, where a
/// byte-by-byte loop takes several instructions per byte. SSE2 is part of every x86_64, so
/// this needs no runtime check.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify(window: &[u8; WINDOW]) -> Classes {
    let (d0, p0, m0, z0) = classify16(&window[..16]);
    let (d1, p1, m1, z1) = classify16(&window[16..]);
    Classes {
        digits: d0 | d1 << 16,
        dots: p0 | p1 << 16,
        minus: m0 | m1 << 16,
        zeros: z0 | z1 << 16,
    }
}

/// Digit, dot, minus and zero masks of `bytes[..16]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify16(bytes: &[u8]) -> (u32, u32, u32, u32) {
    use std::arch::x86_64::*;
    assert!(bytes.len() >= 16);
    // SAFETY: SSE2 is enabled on every x86_64 target, and the unaligned load reads the 16
    // bytes just checked to be there.
    unsafe {
        let v = _mm_loadu_si128(bytes.as_ptr().cast());
        // `b + 0x50` takes '0'..='9' to 0x80..=0x89 and nothing else there: the smallest ten
        // signed bytes, so one signed compare finds the digits.
        let shifted = _mm_add_epi8(v, _mm_set1_epi8(0x50));
        let digits = _mm_cmplt_epi8(shifted, _mm_set1_epi8(-118));
        let dots = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8));
        let minus = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'-' as i8));
        let zeros = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'0' as i8));
        (
            _mm_movemask_epi8(digits) as u32,
            _mm_movemask_epi8(dots) as u32,
            _mm_movemask_epi8(minus) as u32,
            _mm_movemask_epi8(zeros) as u32,
        )
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn classify(window: &[u8; WINDOW]) -> Classes {
    classify_bytes(window)
}

/// Zero if every run of digits, '.' and '-' that starts inside `span` (the low bits of a
/// window) is `-?digits?(.digits?)?` with a digit somewhere, which is [`is_number`] for such
/// runs; otherwise bits near the faults. A mask rather than a bool, so that callers test all
/// their conditions with one branch. The masks are [`Classes`] widened so that a carry out of
/// the window stays visible.
#[inline(always)]
fn non_numbers(digits: u64, dots: u64, minus: u64, span: u64) -> u64 {
    let numeric = digits | dots | minus;
    let firsts = numeric & !(numeric << 1) & span;
    // A '-' only first.
    let inner_minus = minus & span & !firsts;
    // A digit: adding each run's first bit carries through the run's leading '-' and '.'
    // bytes and stops on its first digit, or, if it has none, on the byte after the run (at
    // most one past `span`).
    let no_digit = ((dots | minus) + firsts) & !numeric & (span | span.wrapping_add(1));
    // One '.' at most: adding one past each '.' carries through the digits after it and stops
    // on the next byte that is not a digit, a second '.' if the run has one.
    let own_dots = dots & span;
    let two_dots = (digits + (own_dots << 1)) & own_dots;
    inner_minus | no_digit | two_dots
}

/// A tuple [`quick_tuple`] took: its components, the whole tuple when it is already in
/// shortest text (see [`TupleOut::tuple`]; empty otherwise), and where the token after it
/// starts.
struct Quick<'a> {
    /// The window the tuple starts, its text included.
    window: &'a [u8; WINDOW],
    lon: &'a [u8],
    lat: &'a [u8],
    alt: &'a [u8],
    text: &'a [u8],
    next: usize,
}

/// [`plain_tuple`] for the tuples nearly every file is made of: numbers of digits, at most one
/// `.` and a leading `-`, and the whole tuple and the byte after its separator inside one
/// [`WINDOW`] of the chunk. It tells the bytes apart all at once and checks every component
/// with a few whole-mask operations instead of walking the number grammar byte by byte;
/// whatever it declines (exponents, `+`, long tuples, the end of a chunk, anything odd) goes
/// to [`plain_tuple`], so it may decline anything, but whatever it takes, [`plain_tuple`]
/// would have taken the same way.
#[inline(always)]
fn quick_tuple(chunk: &[u8], start: usize) -> Option<Quick<'_>> {
    let window: &[u8; WINDOW] = chunk.get(start..start + WINDOW)?.try_into().ok()?;
    let c = classify(window);
    let (digits, dots, minus) = (u64::from(c.digits), u64::from(c.dots), u64::from(c.minus));
    let zeros = u64::from(c.zeros);
    let numeric = digits | dots | minus;
    // Every byte that ends a component. Bits past the window are set: a component reaching
    // them is not known to end there, and its end (32) is no byte of the window.
    let ends = !numeric;
    let lon_end = ends.trailing_zeros() as usize;
    let rest = ends & (ends - 1);
    let lat_end = rest.trailing_zeros() as usize;
    if window.get(lon_end) != Some(&b',') {
        return None;
    }
    let (alt_start, end) = match window.get(lat_end)? {
        b',' => (lat_end + 1, (rest & (rest - 1)).trailing_zeros() as usize),
        _ => (lat_end, lat_end),
    };
    if !is_xml_space(*window.get(end)?) {
        return None;
    }
    // The tuple is the numeric runs before `end`, one per component, each ended by one byte
    // of `ends`, so none may be empty (no end byte right after another, or first), and each
    // must be a number.
    let tuple = (1u64 << end) - 1;
    let empty = ends & ((ends << 1) | 1) & (tuple | 1 << end);
    if empty | non_numbers(digits, dots, minus, tuple) != 0 {
        return None;
    }
    // The usual single space before a number: the next token starts right there and is no
    // comma, so the tuple cannot go on.
    let mut next = end + 1;
    if numeric >> next & 1 == 0 {
        next += start;
        while next < chunk.len() && is_xml_space(chunk[next]) {
            next += 1;
        }
        if chunk.get(next).is_none_or(|&b| b == b',') {
            return None;
        }
    } else {
        next += start;
    }
    // Shortest text, told from the masks at hand: no component's digits (after its '-') start
    // with '.' or with a '0' that another digit follows, and none ends with '.'. A '+' or an
    // exponent never gets here.
    let firsts = numeric & !(numeric << 1) & tuple;
    let lasts = numeric & !(numeric >> 1) & tuple;
    let bodies = (firsts & !minus) | ((firsts & minus) << 1);
    let longer = (dots & (bodies | lasts)) | (zeros & bodies & (digits >> 1));
    Some(Quick {
        window,
        lon: &window[..lon_end],
        lat: window.get(lon_end + 1..lat_end)?,
        alt: window.get(alt_start..end)?,
        text: if longer == 0 { &window[..end] } else { &[] },
        next,
    })
}

/// The values of a `<gx:coord>` (`lon lat [alt]`), when they are two or three numbers of the
/// kind [`quick_tuple`] takes and the text is shorter than two [`WINDOW`]s (high-precision
/// writers put up to 50 bytes in one): what splitting it at white space and checking each
/// word with [`is_number`] would find, for a fraction of the instructions. `None` leaves the
/// text to those.
pub fn quick_words(text: &str) -> Option<(&str, &str, &str)> {
    let bytes = text.as_bytes();
    // Padding with spaces adds nothing but white space after the last word.
    let mut window = [b' '; 2 * WINDOW];
    window.get_mut(..bytes.len())?.copy_from_slice(bytes);
    words_in(text, &window)
}

/// [`quick_words`] of `text`, which is `bytes[..text.len()]` (the bytes after it are
/// ignored): where `bytes` reaches two windows, the text is looked at where it lies, without
/// the copy into a padded window, whose loads had to wait for its stores.
#[inline(always)]
pub fn quick_words_in<'a>(text: &'a str, bytes: &[u8]) -> Option<(&'a str, &'a str, &'a str)> {
    debug_assert!(bytes.starts_with(text.as_bytes()));
    match bytes.first_chunk::<{ 2 * WINDOW }>() {
        Some(window) => words_in(text, window),
        None => quick_words(text),
    }
}

/// [`quick_words`] of `text`, which `window` starts with; its bytes past the text count as
/// white space.
#[inline(always)]
fn words_in<'a>(text: &'a str, window: &[u8; 2 * WINDOW]) -> Option<(&'a str, &'a str, &'a str)> {
    let len = text.len();
    if len >= 2 * WINDOW {
        return None;
    }
    let (low, high) = window.split_at(WINDOW);
    let low = classify(low.try_into().ok()?);
    // Only a text reaching into the second half needs it classified.
    let high = if len > WINDOW {
        classify(high.try_into().ok()?)
    } else {
        Classes {
            digits: 0,
            dots: 0,
            minus: 0,
            zeros: 0,
        }
    };
    // Every bit past the text is cleared, as for white space, so every word ends inside the
    // window.
    let text_bits = (1u64 << len) - 1;
    let wide = |low: u32, high: u32| (u64::from(low) | u64::from(high) << WINDOW) & text_bits;
    let digits = wide(low.digits, high.digits);
    let dots = wide(low.dots, high.dots);
    let minus = wide(low.minus, high.minus);
    let numeric = digits | dots | minus;
    let mut between = !numeric & text_bits;
    while between != 0 {
        if !is_xml_space(window[between.trailing_zeros() as usize]) {
            return None;
        }
        between &= between - 1;
    }
    // No run reaches the last byte, so no sum in `non_numbers` carries out of the mask.
    if non_numbers(digits, dots, minus, u64::MAX) != 0 {
        return None;
    }
    let ends = !numeric;
    let word = |firsts: u64| {
        let start = firsts.trailing_zeros() as usize;
        let end = (ends & (u64::MAX << start)).trailing_zeros() as usize;
        text.get(start..end)
    };
    let firsts = numeric & !(numeric << 1);
    let second = firsts & firsts.wrapping_sub(1);
    let third = second & second.wrapping_sub(1);
    if second == 0 || third & third.wrapping_sub(1) != 0 {
        return None;
    }
    let alt = if third == 0 { Some("") } else { word(third) };
    Some((word(firsts)?, word(second)?, alt?))
}

/// How many tuples [`quick_tuples`] hands over at once.
const RUN: usize = 32;

/// Hand every tuple [`quick_tuple`] takes from `chunk[i..]`, in order and in runs of up to
/// [`RUN`], to `out`: where the first one it does not take starts.
#[inline(always)]
fn quick_tuples(chunk: &[u8], mut i: usize, out: &mut impl TupleOut) -> Result<usize, Error> {
    let mut run = [Tuple::default(); RUN];
    let mut n = 0;
    while let Some(quick) = quick_tuple(chunk, i) {
        run[n] = Tuple {
            longitude: ascii(quick.lon),
            latitude: ascii(quick.lat),
            altitude: ascii(quick.alt),
            text: ascii(quick.text),
            padded: if quick.text.is_empty() {
                &[]
            } else {
                quick.window
            },
        };
        n += 1;
        i = quick.next;
        if n == RUN {
            out.tuples(&run)?;
            n = 0;
        }
    }
    if n > 0 {
        out.tuples(&run[..n])?;
    }
    Ok(i)
}

/// Receives the tokenizer's results.
pub trait TupleOut {
    /// A valid tuple; `alt` is empty for two-value tuples. `text` is the tuple as written,
    /// `lon,lat` or `lon,lat,alt`, when it is exactly that and every number is in its shortest
    /// text (no `+`, no leading zeros, no `.` first or last; see [`super::Vertex::tuple`]);
    /// empty when the tokenizer did not see it so (it need not look).
    fn tuple(&mut self, lon: &str, lat: &str, alt: &str, text: &str) -> Result<(), Error>;
    /// Consecutive valid tuples: the same as a [`TupleOut::tuple`] call for each.
    fn tuples(&mut self, run: &[Tuple<'_>]) -> Result<(), Error> {
        for t in run {
            self.tuple(t.longitude, t.latitude, t.altitude, t.text)?;
        }
        Ok(())
    }
    /// A tuple that was skipped: `at` is the input offset where its token starts.
    fn skipped(&mut self, at: u64, why: String) -> Result<(), Error>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between tuples, in whitespace.
    Gap,
    /// Inside a component.
    Component,
    /// After a comma, skipping whitespace: the tuple goes on.
    AfterComma,
    /// Whitespace after a component: the tuple goes on only if a comma comes next.
    SpaceAfterComponent,
}

/// An incremental tokenizer for one `<coordinates>` element at a time.
pub struct Tokenizer {
    state: State,
    /// Component bytes of the triple being assembled; cleared when a triple starts.
    scratch: Vec<u8>,
    /// Where the component being read starts in `scratch`.
    component_start: usize,
    /// The components of the current triple, as ranges of `scratch`.
    slots: [(usize, usize); 3],
    filled: usize,
    /// Components of the current token committed so far (across triples).
    committed: usize,
    /// Empty components seen after the second one; dropped if nothing follows them.
    pending_empty: usize,
    /// Offset where the current token starts.
    token_start: u64,
    /// The component being read was longer than [`MAX_COMPONENT`] (and was cut).
    component_too_long: bool,
    /// Which slots of the current triple hold a cut component.
    slot_too_long: [bool; 3],
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokenizer {
    pub fn new() -> Self {
        Tokenizer {
            state: State::Gap,
            scratch: Vec::with_capacity(4 * MAX_COMPONENT),
            component_start: 0,
            slots: [(0, 0); 3],
            filled: 0,
            committed: 0,
            pending_empty: 0,
            token_start: 0,
            component_too_long: false,
            slot_too_long: [false; 3],
        }
    }

    /// Tokenize the next piece of the element's text; `offset` is where `chunk` starts in the
    /// input.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        offset: u64,
        out: &mut impl TupleOut,
    ) -> Result<(), Error> {
        let len = chunk.len();
        let mut i = 0;
        while i < len {
            match self.state {
                State::Gap => {
                    while i < len && is_xml_space(chunk[i]) {
                        i += 1;
                    }
                    if i == len {
                        break;
                    }
                    // The general path below copies every byte into `scratch` and scans it
                    // twice; nearly every tuple in real files is plain enough to be taken
                    // straight from the chunk, and most of those are quick ones, which leave
                    // `i` on the start of the next token.
                    i = quick_tuples(chunk, i, out)?;
                    self.token_start = offset + i as u64;
                    // Whatever this cannot prove is left, untouched, to the general path.
                    if let Some(plain) = plain_tuple(chunk, i) {
                        let (lon, lat, alt) = (
                            &chunk[plain.lon],
                            &chunk[plain.lat],
                            &chunk[plain.alt.clone()],
                        );
                        // Tuples too long for a quick one are common too (many decimals).
                        let text = if shortest(lon) && shortest(lat) && shortest(alt) {
                            &chunk[i..plain.alt.end]
                        } else {
                            &[]
                        };
                        out.tuple(ascii(lon), ascii(lat), ascii(alt), ascii(text))?;
                        i = plain.next;
                        continue;
                    }
                    if chunk[i] == b',' {
                        self.commit(0, 0, out)?;
                        self.state = State::AfterComma;
                        i += 1;
                    } else {
                        self.begin_component();
                        self.state = State::Component;
                    }
                }
                State::Component => {
                    let start = i;
                    while i < len && chunk[i] != b',' && !is_xml_space(chunk[i]) {
                        i += 1;
                    }
                    self.append(&chunk[start..i]);
                    if i == len {
                        break;
                    }
                    let (s, e) = (self.component_start, self.scratch.len());
                    self.commit(s, e, out)?;
                    self.state = if chunk[i] == b',' {
                        State::AfterComma
                    } else {
                        State::SpaceAfterComponent
                    };
                    i += 1;
                }
                State::AfterComma => {
                    while i < len && is_xml_space(chunk[i]) {
                        i += 1;
                    }
                    if i == len {
                        break;
                    }
                    if chunk[i] == b',' {
                        let at = self.scratch.len();
                        self.commit(at, at, out)?;
                        i += 1;
                    } else {
                        self.begin_component();
                        self.state = State::Component;
                    }
                }
                State::SpaceAfterComponent => {
                    while i < len && is_xml_space(chunk[i]) {
                        i += 1;
                    }
                    if i == len {
                        break;
                    }
                    if chunk[i] == b',' {
                        self.state = State::AfterComma;
                        i += 1;
                    } else {
                        self.end_token(out)?;
                        self.state = State::Gap;
                    }
                }
            }
        }
        Ok(())
    }

    /// Take the tuples that [`quick_tuple`] takes from `chunk[start..]` (after white space)
    /// where they lie, between tuples only: how far they reach (`start` if there are none).
    /// What they cover is digits, `.`, `-`, commas and white space, so the reader need not
    /// look for the end of the text or an unusual byte in it first.
    #[inline(always)]
    pub fn quick_run(
        &mut self,
        chunk: &[u8],
        start: usize,
        out: &mut impl TupleOut,
    ) -> Result<usize, Error> {
        if self.state != State::Gap {
            return Ok(start);
        }
        let mut i = start;
        while i < chunk.len() && is_xml_space(chunk[i]) {
            i += 1;
        }
        let reached = quick_tuples(chunk, i, out)?;
        Ok(if reached == i { start } else { reached })
    }

    /// The element ended: finish the last tuple and get ready for the next element.
    pub fn finish(&mut self, out: &mut impl TupleOut) -> Result<(), Error> {
        match self.state {
            State::Gap => {}
            State::Component => {
                let (s, e) = (self.component_start, self.scratch.len());
                self.commit(s, e, out)?;
                self.end_token(out)?;
            }
            State::AfterComma => {
                let at = self.scratch.len();
                self.commit(at, at, out)?;
                self.end_token(out)?;
            }
            State::SpaceAfterComponent => self.end_token(out)?,
        }
        self.state = State::Gap;
        Ok(())
    }

    fn begin_component(&mut self) {
        if self.filled == 0 {
            self.scratch.clear();
        }
        self.component_start = self.scratch.len();
        self.component_too_long = false;
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_COMPONENT.saturating_sub(self.scratch.len() - self.component_start);
        if bytes.len() > room {
            self.component_too_long = true;
        }
        self.scratch
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// A component ended (possibly empty).
    fn commit(&mut self, start: usize, end: usize, out: &mut impl TupleOut) -> Result<(), Error> {
        if start == end && self.committed + self.pending_empty >= 2 {
            self.pending_empty += 1;
            return Ok(());
        }
        // Empty components followed by a real one are kept: `1,2,,4` is `(1,2,) (4)`.
        while self.pending_empty > 0 {
            self.pending_empty -= 1;
            self.put(start, start, false, out)?;
        }
        let too_long = start != end && self.component_too_long;
        self.put(start, end, too_long, out)
    }

    fn put(
        &mut self,
        start: usize,
        end: usize,
        too_long: bool,
        out: &mut impl TupleOut,
    ) -> Result<(), Error> {
        self.slots[self.filled] = (start, end);
        self.slot_too_long[self.filled] = too_long;
        self.filled += 1;
        self.committed += 1;
        if self.filled == 3 {
            self.filled = 0;
            self.emit(3, out)?;
        }
        Ok(())
    }

    fn end_token(&mut self, out: &mut impl TupleOut) -> Result<(), Error> {
        self.pending_empty = 0;
        match self.filled {
            1 if self.committed == 1 => {
                let value = self.slot_text(0).into_owned();
                out.skipped(self.token_start, format!("tuple {value:?} has no comma"))?;
            }
            1 => {
                let value = self.slot_text(0).into_owned();
                out.skipped(
                    self.token_start,
                    format!("value {value:?} left over after the last full triple"),
                )?;
            }
            2 => self.emit(2, out)?,
            _ => {}
        }
        self.filled = 0;
        self.committed = 0;
        Ok(())
    }

    fn slot(&self, i: usize) -> &[u8] {
        let (s, e) = self.slots[i];
        &self.scratch[s..e]
    }

    fn slot_text(&self, i: usize) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.slot(i))
    }

    fn emit(&mut self, n: usize, out: &mut impl TupleOut) -> Result<(), Error> {
        let lon = self.slot(0);
        let lat = self.slot(1);
        let alt: &[u8] = if n == 3 { self.slot(2) } else { b"" };
        let problem = if self.slot_too_long[..n].contains(&true) {
            Some("a value is too long to be a number")
        } else if lon.is_empty() || lat.is_empty() {
            Some("longitude or latitude is empty")
        } else if !is_number(lon) || !is_number(lat) || !(alt.is_empty() || is_number(alt)) {
            Some("not a number")
        } else {
            None
        };
        match problem {
            None => out.tuple(ascii(lon), ascii(lat), ascii(alt), ""),
            Some(why) => {
                let tuple: Vec<_> = (0..n).map(|i| self.slot_text(i)).collect();
                let tuple = tuple.join(",");
                out.skipped(self.token_start, format!("tuple {tuple:?} skipped: {why}"))
            }
        }
    }
}

/// The reference model the integration tests check the reader against, here to check the
/// tokenizer's pieces against directly.
#[cfg(test)]
#[path = "../../tests/model/mod.rs"]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Collect {
        tuples: Vec<String>,
        skipped: Vec<(u64, String)>,
        /// Tuples handed on with their text (how many is up to the chunking).
        shortest: usize,
    }

    impl PartialEq for Collect {
        fn eq(&self, other: &Self) -> bool {
            (&self.tuples, &self.skipped) == (&other.tuples, &other.skipped)
        }
    }

    /// Whether `n` (a number or empty) is in shortest text, as the module comment of the CSV
    /// writer's numbers spells it out: the reference for [`shortest`] and the masks of
    /// [`quick_tuple`].
    fn shortest_text(n: &str) -> bool {
        let body = n.strip_prefix('-').unwrap_or(n).as_bytes();
        !n.starts_with('+')
            && !matches!(body, [b'0', b'0'..=b'9', ..] | [b'.', ..])
            && !n.ends_with('.')
    }

    impl TupleOut for Collect {
        fn tuple(&mut self, lon: &str, lat: &str, alt: &str, text: &str) -> Result<(), Error> {
            if !text.is_empty() {
                let written = [lon, lat, alt][..if alt.is_empty() { 2 } else { 3 }].join(",");
                assert_eq!(text, written, "the tuple's text is its components");
                assert!(
                    [lon, lat, alt].iter().all(|n| shortest_text(n)),
                    "{text:?} is not in shortest text"
                );
                self.shortest += 1;
            }
            self.tuples.push(format!("{lon}|{lat}|{alt}"));
            Ok(())
        }
        fn skipped(&mut self, at: u64, why: String) -> Result<(), Error> {
            self.skipped.push((at, why));
            Ok(())
        }
    }

    /// Tokenize `text` fed in pieces of `chunk` bytes.
    fn run(text: &str, chunk: usize) -> Collect {
        let mut out = Collect::default();
        let mut t = Tokenizer::new();
        let bytes = text.as_bytes();
        for (n, piece) in bytes.chunks(chunk.max(1)).enumerate() {
            t.feed(piece, (n * chunk) as u64, &mut out).unwrap();
        }
        t.finish(&mut out).unwrap();
        out
    }

    /// Tokenize `text` cut at `cuts` (ascending offsets; out-of-range ones are ignored).
    fn run_cut(text: &[u8], cuts: &[usize]) -> Collect {
        let mut out = Collect::default();
        let mut t = Tokenizer::new();
        let mut from = 0;
        for &to in cuts.iter().chain([&text.len()]) {
            if to >= from && to <= text.len() {
                t.feed(&text[from..to], from as u64, &mut out).unwrap();
                from = to;
            }
        }
        t.finish(&mut out).unwrap();
        out
    }

    /// Everything the tokenizer reports for `text` fed whole, after checking that it reports
    /// the same fed a byte at a time (too little for a plain tuple, so the general path does
    /// it all) and cut in two anywhere.
    fn same_however_cut(text: &[u8]) -> Collect {
        let whole = run_cut(text, &[]);
        let bytes: Vec<usize> = (1..text.len()).collect();
        let shown = String::from_utf8_lossy(text);
        assert_eq!(run_cut(text, &bytes), whole, "byte by byte on {shown:?}");
        for cut in 0..=text.len() {
            assert_eq!(run_cut(text, &[cut]), whole, "cut at {cut} on {shown:?}");
        }
        whole
    }

    fn tuples(text: &str) -> Vec<String> {
        let whole = run(text, text.len().max(1)).tuples;
        for chunk in 1..8 {
            assert_eq!(
                run(text, chunk).tuples,
                whole,
                "chunk size {chunk} on {text:?}"
            );
        }
        whole
    }

    #[test]
    fn numbers() {
        for ok in [
            "1", "-1", "+008.50", "1.", ".5", "7.76E-1", "3e5", "-0.0e+10",
        ] {
            assert!(is_number(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "+",
            "1e",
            "1.2.3",
            "NaN",
            "inf",
            "0x10",
            "1,",
            " 1",
            "7.76166643845E",
        ] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn digits_are_skipped_eight_at_a_time_and_one_at_a_time_alike() {
        for len in 0..20 {
            for at in 0..=len {
                for stop in 0..=255u8 {
                    let mut text = vec![b'7'; len];
                    if at < len {
                        text[at] = stop;
                    }
                    let plain = text.iter().take_while(|b| b.is_ascii_digit()).count();
                    assert_eq!(skip_digits(&text, 0), plain, "{text:?}");
                    let from = at.min(3);
                    assert_eq!(skip_digits(&text, from), plain.max(from), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn bytes_are_classified_sixteen_at_a_time_and_one_at_a_time_alike() {
        for b in 0..=255u8 {
            for at in 0..WINDOW {
                for background in [b'7', b'0', b'.', b'-', b',', b' ', 0x80, 0xFF] {
                    let mut window = [background; WINDOW];
                    window[at] = b;
                    assert_eq!(classify(&window), classify_bytes(&window), "{window:?}");
                }
            }
        }
    }

    /// What [`quick_tuple`] takes at `text[0..]`, checked against [`plain_tuple`], which must
    /// take the same.
    fn quick_agrees(text: &[u8]) -> Option<(String, String, String, usize)> {
        let quick = quick_tuple(text, 0)?;
        let shown = String::from_utf8_lossy(text);
        let plain = plain_tuple(text, 0)
            .unwrap_or_else(|| panic!("quick took what plain does not: {shown:?}"));
        let piece = |r: Range<usize>| String::from_utf8_lossy(&text[r]).into_owned();
        let taken = (
            piece(plain.lon),
            piece(plain.lat),
            piece(plain.alt),
            plain.next,
        );
        let quick = (
            String::from_utf8_lossy(quick.lon).into_owned(),
            String::from_utf8_lossy(quick.lat).into_owned(),
            String::from_utf8_lossy(quick.alt).into_owned(),
            quick.next,
        );
        assert_eq!(quick, taken, "{shown:?}");
        Some(quick)
    }

    #[test]
    fn quick_tuples_are_the_usual_ones() {
        let taken = |text: &str| {
            let padded = format!("{text:<40}");
            quick_agrees(padded.as_bytes()).map(|t| format!("{}|{}|{}|{}", t.0, t.1, t.2, t.3))
        };
        assert_eq!(
            taken("-31.184311,18.602629,1219.4 5").as_deref(),
            Some("-31.184311|18.602629|1219.4|28")
        );
        assert_eq!(
            taken("136.567041,-37.109410,0.0\n\t\t\t\t1").as_deref(),
            Some("136.567041|-37.109410|0.0|30")
        );
        assert_eq!(taken("1,2 3").as_deref(), Some("1|2||4"));
        // The next token may start past the window.
        assert_eq!(
            taken("12345678901234567890,1234567890  1").as_deref(),
            Some("12345678901234567890|1234567890||33")
        );
        assert_eq!(taken("-.5,5.,-0 x").as_deref(), Some("-.5|5.|-0|10"));
        // Left to plain_tuple (or the general path), which knows them.
        for other in [
            "1e5,2 3",
            "+1,2 3",
            "1,2,3,4 5",
            "1,2 ,3 4",
            "1, 2 3",
            "1,2, 3",
            "1,,2 3",
            ",1,2 3",
            "-,1 2",
            "1,. 2",
            "1.2.3,4 5",
            "1,2-3 4",
            "--1,2 3",
            "1,2\u{a0}3 4",
            "1,2 ,",
            "1,2",
            "12345678901234567890,12345678901 1",
        ] {
            assert_eq!(taken(other), None, "{other:?}");
        }
        // Too near the end of the chunk to see the whole window.
        assert!(quick_tuple(b"1,2 3", 0).is_none());
    }

    #[test]
    fn quick_tuples_are_plain_ones_on_every_short_text() {
        // Every text of up to 7 bytes, followed by each kind of byte and then padding, so
        // that the tuple, its end and the next token all fall at every place they can.
        every_text(b"1.-, \n", 7, |text| {
            for tail in [&b" 5"[..], b",", b"x", b"\t\t,", b"-", b"."] {
                let mut padded = text.to_vec();
                padded.extend_from_slice(tail);
                padded.resize(WINDOW + 4, b' ');
                quick_agrees(&padded);
                padded.resize(WINDOW + 4, b'9');
                quick_agrees(&padded);
            }
        });
    }

    /// What [`quick_words`] takes from `text`, checked against splitting it at white space
    /// and [`is_number`] on each word, which must find the same.
    fn quick_words_agree(text: &str) -> Option<(&str, &str, &str)> {
        let quick = quick_words(text)?;
        let words: Vec<&str> = text
            .split(|c: char| c.is_ascii() && is_xml_space(c as u8))
            .filter(|w| !w.is_empty())
            .collect();
        assert!(matches!(words.len(), 2 | 3), "{text:?}");
        assert!(words.iter().all(|w| is_number(w.as_bytes())), "{text:?}");
        let alt = words.get(2).copied().unwrap_or("");
        assert_eq!(quick, (words[0], words[1], alt), "{text:?}");
        Some(quick)
    }

    #[test]
    fn quick_words_are_the_usual_ones() {
        assert_eq!(
            quick_words_agree("136.428519 -37.109410 1715.3"),
            Some(("136.428519", "-37.109410", "1715.3"))
        );
        assert_eq!(quick_words_agree("\n\t-.5\r\n5. "), Some(("-.5", "5.", "")));
        let widest = "13.6867145612587 52.2900937146710 43.49073612345678901234567890";
        assert_eq!(widest.len(), 2 * WINDOW - 1);
        assert!(quick_words_agree(widest).is_some());
        let one_window = "12345678901 1234567890 123456789";
        assert_eq!(one_window.len(), WINDOW);
        assert!(quick_words_agree(one_window).is_some());
        assert!(quick_words_agree(&format!(" {one_window}")).is_some());
        for other in [
            "",
            " ",
            "1",
            " 1 ",
            "1 2 3 4",
            "1e5 2",
            "+1 2",
            "1,2",
            "1 2x",
            "1 -",
            "1 .",
            "1 2.3.4",
            "1 2-3",
            "1\u{a0}2 3",
            "13.6867145612587 52.2900937146710 43.490736123456789012345678901",
            "13.6867145612587 52.2900937146710 43.49073612345678901234567890 ",
        ] {
            assert_eq!(quick_words_agree(other), None, "{other:?}");
        }
    }

    #[test]
    fn quick_words_are_plain_ones_on_every_short_text() {
        every_text(b"1.- \nx", 7, |text| {
            quick_words_agree(std::str::from_utf8(text).unwrap());
        });
    }

    #[test]
    fn plain_tuples() {
        assert_eq!(tuples("1,2,3 4,5,6"), ["1|2|3", "4|5|6"]);
        assert_eq!(tuples("\n\t 1,2\r\n  4,5 \n"), ["1|2|", "4|5|"]);
        assert_eq!(tuples(""), Vec::<String>::new());
        assert_eq!(tuples("  \n "), Vec::<String>::new());
    }

    #[test]
    fn space_next_to_commas_joins() {
        assert_eq!(tuples("1, 2, 3  4 ,5"), ["1|2|3", "4|5|"]);
        assert_eq!(tuples("-118.0,  -118.0,50.0"), ["-118.0|-118.0|50.0"]);
        assert_eq!(tuples("1 ,\n\n 2"), ["1|2|"]);
    }

    #[test]
    fn trailing_commas_and_rechunking() {
        assert_eq!(tuples("1,2, 3,4,"), ["1|2|3"]);
        assert_eq!(tuples("1,2, 3 4,5,"), ["1|2|3", "4|5|"]);
        assert_eq!(tuples("1,2,3,"), ["1|2|3"]);
        assert_eq!(tuples("1,2,3,,"), ["1|2|3"]);
        assert_eq!(tuples("1,2,3,4,5,6"), ["1|2|3", "4|5|6"]);
        assert_eq!(tuples("1,2,3,4,5"), ["1|2|3", "4|5|"]);
        assert_eq!(tuples("1,2,,4"), ["1|2|"]);
        assert_eq!(tuples("1,2,3,4"), ["1|2|3"]);
    }

    #[test]
    fn bad_tuples_are_skipped_with_their_offset() {
        let out = run(",5 1,2 no,no 170.1 x,5 7,8,y 9,9", 1000);
        assert_eq!(out.tuples, ["1|2|", "9|9|"]);
        let at: Vec<u64> = out.skipped.iter().map(|s| s.0).collect();
        assert_eq!(at, [0, 7, 13, 19, 23]);
    }

    #[test]
    fn verbatim_and_non_ascii() {
        assert_eq!(tuples("+008.50,1e-3,0010"), ["+008.50|1e-3|0010"]);
        // NBSP is not a separator: the tuple is not numeric.
        let out = run("1,2\u{a0}3,4", 3);
        assert!(out.tuples.is_empty());
        assert_eq!(out.skipped.len(), 1);
    }

    #[test]
    fn a_too_long_value_spoils_only_its_own_triple() {
        // See: the "too long" mark used to last until the end of the whole token.
        let long = "9".repeat(300);
        assert_eq!(
            tuples(&format!("1,2,3,{long},5,6,7,8,9 10,11")),
            ["1|2|3", "7|8|9", "10|11|"]
        );
        // Nor may it leak onto the triple that empty components complete before it.
        assert_eq!(tuples(&format!("1,2,,{long},5,6")), ["1|2|"]);
    }

    #[test]
    fn huge_component_is_bounded() {
        let text = format!("1,{} 3,4", "9".repeat(100_000));
        let out = run(&text, 4096);
        assert_eq!(out.tuples, ["3|4|"]);
        assert_eq!(out.skipped.len(), 1);
    }

    /// Call `check` with every text of at most `max_len` bytes from `alphabet`.
    fn every_text(alphabet: &[u8], max_len: usize, mut check: impl FnMut(&[u8])) {
        let mut digits: Vec<usize> = Vec::new();
        loop {
            let text: Vec<u8> = digits.iter().map(|&d| alphabet[d]).collect();
            check(&text);
            // Count on in base `alphabet.len()`; one digit more once all of them wrap.
            let mut k = 0;
            while k < digits.len() && digits[k] + 1 == alphabet.len() {
                digits[k] = 0;
                k += 1;
            }
            if k < digits.len() {
                digits[k] += 1;
            } else if k < max_len {
                digits.push(0);
            } else {
                return;
            }
        }
    }

    #[test]
    fn is_number_matches_the_reference_model() {
        every_text(b"0.+-eEx", 6, |text| {
            let shown = String::from_utf8_lossy(text);
            assert_eq!(is_number(text), model::is_number(&shown), "{shown:?}");
        });
    }

    #[test]
    fn plain_tuples_are_only_taken_when_the_chunk_proves_where_they_end() {
        fn taken(text: &str) -> Option<(&str, &str, &str, usize)> {
            let p = plain_tuple(text.as_bytes(), 0)?;
            Some((&text[p.lon], &text[p.lat], &text[p.alt], p.next))
        }
        assert_eq!(taken("1,2 3"), Some(("1", "2", "", 4)));
        assert_eq!(
            taken("-1.5e+3,+.5E-2,7. \n\t8"),
            Some(("-1.5e+3", "+.5E-2", "7.", 20))
        );
        // Cannot tell whether a comma comes next: the next chunk may start with one.
        for open in ["1,2", "1,2 ", "1,2,3", "1,2,3\n\t", "1,2,", "1,2,3,"] {
            assert_eq!(taken(open), None, "{open:?}");
        }
        // White space next to a comma, a fourth value, empty or bad components: all left to
        // the general path.
        for unusual in [
            "1,2 ,3 x",
            "1,2, 3 x",
            "1 ,2 x",
            "1, 2 x",
            "1,2,3 ,4 x",
            "1,2,3,4 x",
            "1,,2 x",
            ",1,2 x",
            "1,2,,3 x",
            "1e,2 x",
            "1,2x 3",
            "1,2,3x 4",
            "1,2\u{a0}3 4",
            "x,1 2",
            "1.2.3,4 5",
            "1,-, 5",
            ". ,1 5",
        ] {
            assert_eq!(taken(unusual), None, "{unusual:?}");
        }
        let longest = "9".repeat(MAX_COMPONENT);
        assert!(taken(&format!("{longest},1 x")).is_some());
        assert!(taken(&format!("1,{longest},2 x")).is_some());
        assert_eq!(taken(&format!("1,2,9{longest} x")), None);
    }

    #[test]
    fn plain_and_general_paths_agree_at_chunk_boundaries() {
        let long = "9".repeat(MAX_COMPONENT);
        let too_long = "9".repeat(MAX_COMPONENT + 1);
        let cases = [
            "1,2 ,3 4,5 6,7",
            "1,2\n\t,3 7,8 9,9",
            "1,2,3,4 5,6 7,8",
            "1,2,3,4,5,6 7,8 ",
            "1,2,3 ,4 5,6 x",
            "1,2,3, 4 5,6 x,y",
            "-1.5e+3,+.5E-2,7. 8,9 \r\n",
            "1,2 x 3,4 1e5,2E-3,-0 ",
            "1,2",
            "1,2,3",
            "1,2 3,4",
            "1,2,3\n",
            "1e,2 3,4 5,6",
            "1,2e 3,4 5,6",
            "1,,2 3,4 5,6",
            ",1,2 3,4 5,6",
            "1 ,2 3,4 5,6",
            "1,2,3x 4,5 6,7",
            "1,2\u{a0}3 4,5 6,7",
            "1,2,,4 5,6 7,8",
            "1,2,3,, 5,6 7,8",
            "1 2,3 4,5 6",
            &format!("{long},1 2,3 4,{long},5 6,7"),
            &format!("{too_long},1 2,3 4,{too_long},5 6,7"),
        ];
        for text in cases {
            same_however_cut(text.as_bytes());
        }
        let out = same_however_cut(b"1,2 ,3 4,5,6,7 8,9 x,1 .,2 3,4");
        assert_eq!(out.tuples, ["1|2|3", "4|5|6", "8|9|", "3|4|"]);
        assert_eq!(
            out.skipped,
            [
                (7, "value \"7\" left over after the last full triple".into()),
                (19, "tuple \"x,1\" skipped: not a number".into()),
                (23, "tuple \".,2\" skipped: not a number".into()),
            ]
        );
    }

    #[test]
    fn every_short_text_is_the_same_however_cut() {
        // Long enough for a plain tuple followed by the start of another one.
        every_text(b"1-e, x", 7, |text| {
            let bytes: Vec<usize> = (1..text.len()).collect();
            let shown = String::from_utf8_lossy(text);
            assert_eq!(run_cut(text, &bytes), run_cut(text, &[]), "{shown:?}");
        });
    }

    proptest::proptest! {
        #[test]
        fn quick_tuples_are_plain_ones_on_any_text(
            text in proptest::collection::vec(
                proptest::sample::select(b"0123456789.-,  \t\n\r+eEx".to_vec()),
                0..48,
            ),
        ) {
            quick_agrees(&text);
        }

        #[test]
        fn quick_words_are_plain_ones_on_any_text(
            text in proptest::collection::vec(
                proptest::sample::select(b"0123456789.-,  \t\n\r+eEx".to_vec()),
                0..70,
            ),
        ) {
            quick_words_agree(std::str::from_utf8(&text).unwrap());
        }

        #[test]
        fn quick_words_are_plain_ones_on_long_words(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "13.6867145612587", "-52.290093714671", "43.490736", "0", "-.5", "5.", " ",
                    " ", " ", "\t", "\n ", "-", ".", "1e5", "x",
                ]),
                0..9,
            ),
        ) {
            quick_words_agree(&pieces.concat());
        }

        #[test]
        fn plain_and_general_paths_agree_on_any_text(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "1", "-2.5", "+.5", "3e5", "7.E-1", "12.75", ",", ",", ",", " ", " ", "\n",
                    "\t ", "x", ".", "e", "+", ",,",
                ]),
                0..60,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let text = pieces.concat();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let whole = run_cut(text.as_bytes(), &[]);
            let bytes: Vec<usize> = (1..text.len()).collect();
            proptest::prop_assert_eq!(&run_cut(text.as_bytes(), &bytes), &whole, "{:?}", text);
            proptest::prop_assert_eq!(&run_cut(text.as_bytes(), &cuts), &whole, "{:?}", text);
            let rows: Vec<String> = model::tuples(&text).iter().map(|r| r.join("|")).collect();
            proptest::prop_assert_eq!(&whole.tuples, &rows, "{:?}", text);
        }
    }
}
