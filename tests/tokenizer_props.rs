//! Property tests of the coordinate tokenizer through the public reader: the rows of any
//! `<coordinates>` text equal those of the reference model (`tests/model`), whatever the white
//! space around commas and between tuples and however the input is cut into reads.

mod model;

use std::io::{self, Read};

use kml2csv::kml::{read_document, ReadOptions, Sink, Vertex, Warning};
use proptest::prelude::*;

/// Hands out its bytes in reads of the sizes given, round and round.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[derive(Default)]
struct Rows(Vec<[String; 3]>);

impl Sink for Rows {
    fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        self.0
            .push([v.longitude.into(), v.latitude.into(), v.altitude.into()]);
        Ok(())
    }
    fn warning(&mut self, _: Warning) {}
}

fn read_rows(document: &str, sizes: Vec<usize>) -> Vec<[String; 3]> {
    let mut rows = Rows::default();
    let input = Chunked {
        data: document.as_bytes(),
        sizes,
        next: 0,
    };
    read_document(input, &mut rows, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{e} reading {document:?}"));
    rows.0
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "1", "-2.5", "+008.50", ".5", "1.", "7.76E-1", "3e5", "-0", "180", "-90.000001",
        ])
        .prop_map(String::from),
        2 => "[+-]?[0-9]{1,12}(\\.[0-9]{0,8})?([eE][+-]?[0-9]{1,3})?",
        1 => Just(String::new()),
        1 => prop::sample::select(vec!["x", "NaN", "1e", "-", ".", "1.2.3", "\u{a0}1", "é", "0x1f", "inf"])
            .prop_map(String::from),
    ]
}

fn space() -> impl Strategy<Value = String> {
    "[ \t\r\n]{1,4}"
}

fn maybe_space() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just(String::new()), 1 => space()]
}

/// Tuples as lists of components, the white space around each comma, and between tuples.
type Layout = (Vec<Vec<String>>, Vec<(String, String)>, Vec<String>);

fn layout() -> impl Strategy<Value = Layout> {
    (
        prop::collection::vec(prop::collection::vec(component(), 1..8), 0..12),
        prop::collection::vec((maybe_space(), maybe_space()), 64),
        prop::collection::vec(space(), 13),
    )
}

/// Render the tuples: `around[k]` goes before and after the k-th comma, `between[t]` before
/// tuple t (and at the end).
fn render(tuples: &[Vec<String>], around: &[(String, String)], between: &[String]) -> String {
    let mut text = String::new();
    let mut comma = 0;
    for (t, parts) in tuples.iter().enumerate() {
        text.push_str(&between[t % between.len()]);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                let (before, after) = &around[comma % around.len()];
                text.push_str(before);
                text.push(',');
                text.push_str(after);
                comma += 1;
            }
            text.push_str(part);
        }
    }
    text.push_str(&between[tuples.len() % between.len()]);
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rows_equal_the_reference_model(
        (tuples, around, between) in layout(),
        sizes in prop::collection::vec(1usize..24, 1..8),
    ) {
        let text = render(&tuples, &around, &between);
        let rows = read_rows(&model::wrap(&text), sizes);
        prop_assert_eq!(rows, model::tuples(&text), "text {:?}", text);
    }

    #[test]
    fn white_space_and_chunk_boundaries_do_not_change_the_tuples(
        (tuples, around, between) in layout(),
        (_, around2, between2) in layout(),
        sizes in prop::collection::vec(1usize..24, 1..8),
        sizes2 in prop::collection::vec(1usize..4096, 1..4),
    ) {
        // Components never hold white space here, so both renderings mean the same tuples.
        let tuples: Vec<Vec<String>> = tuples
            .into_iter()
            .filter(|t| t.iter().all(|c| !c.is_empty()) || t.len() > 1)
            .collect();
        let first = read_rows(&model::wrap(&render(&tuples, &around, &between)), sizes);
        let second = read_rows(&model::wrap(&render(&tuples, &around2, &between2)), sizes2);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn arbitrary_text_never_fails_and_matches_the_model(
        text in "[0-9,.eE+\\- \t\r\nx\u{a0}]{0,200}",
        sizes in prop::collection::vec(1usize..24, 1..8),
    ) {
        let rows = read_rows(&model::wrap(&text), sizes);
        prop_assert_eq!(rows, model::tuples(&text), "text {:?}", text);
    }
}

#[test]
fn reference_model_examples() {
    let t = |s: &str| -> Vec<String> { model::tuples(s).iter().map(|r| r.join("|")).collect() };
    assert_eq!(t("1,2,3 4,5,6"), ["1|2|3", "4|5|6"]);
    assert_eq!(t("1, 2, 3  4 ,5"), ["1|2|3", "4|5|"]);
    assert_eq!(t("1,2, 3,4,"), ["1|2|3"]);
    assert_eq!(t("1,2,3,4,5"), ["1|2|3", "4|5|"]);
    assert_eq!(t("1,2,,4"), ["1|2|"]);
    assert_eq!(t(",5 1,2 no,no 170.1 x,5 7,8,y 9,9"), ["1|2|", "9|9|"]);
}

/// A value too long to be a number spoils its own triple only: the triples after it in the
/// same tuple are judged on their own (R7/R8), as they are when every value is short.
#[test]
fn a_too_long_value_only_spoils_its_own_triple() {
    let long = "9".repeat(300);
    let text = format!("1,2,3,{long},5,6,7,8,9 10,11");
    let rows = read_rows(&model::wrap(&text), vec![4096]);
    assert_eq!(rows, model::tuples(&text));
}
