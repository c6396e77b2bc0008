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

use super::Error;

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
    let digits = |mut i: usize| {
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
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

/// A slice that [`is_number`] accepted (or an empty one) as `&str`.
fn ascii(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    // SAFETY: is_number accepts ASCII bytes only, and ASCII is valid UTF-8. Checking it again
    // with `str::from_utf8` cost 5% of a whole conversion.
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

/// Receives the tokenizer's results.
pub trait TupleOut {
    /// A valid tuple; `alt` is empty for two-value tuples.
    fn tuple(&mut self, lon: &str, lat: &str, alt: &str) -> Result<(), Error>;
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
                    self.token_start = offset + i as u64;
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
            None => out.tuple(ascii(lon), ascii(lat), ascii(alt)),
            Some(why) => {
                let tuple: Vec<_> = (0..n).map(|i| self.slot_text(i)).collect();
                let tuple = tuple.join(",");
                out.skipped(self.token_start, format!("tuple {tuple:?} skipped: {why}"))
            }
        }
    }
}

/// The reference model the integration tests check the reader against, here to check
/// [`is_number`] against directly.
#[cfg(test)]
#[path = "../../tests/model/mod.rs"]
mod model;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        tuples: Vec<String>,
        skipped: Vec<(u64, String)>,
    }

    impl TupleOut for Collect {
        fn tuple(&mut self, lon: &str, lat: &str, alt: &str) -> Result<(), Error> {
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
}
