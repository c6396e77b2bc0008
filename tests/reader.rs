//! The streaming reader through its public API: which vertex gets which feature, name,
//! geometry, part, ring and timestamp; errors and warnings with their positions.

use std::io::{self, Cursor};

use kml2csv::kml::{self, ErrorKind, ReadOptions, Sink, Vertex, Warning};

#[derive(Default)]
struct Rows {
    rows: Vec<String>,
    warnings: Vec<Warning>,
}

impl Sink for Rows {
    fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        let feature = v.feature.map(|f| f.to_string()).unwrap_or_default();
        self.rows.push(format!(
            "{feature}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            v.name,
            v.geometry,
            v.part,
            v.ring.as_str(),
            v.vertex,
            v.longitude,
            v.latitude,
            v.altitude,
            v.when
        ));
        Ok(())
    }

    fn warning(&mut self, warning: Warning) {
        self.warnings.push(warning);
    }
}

fn read_with(doc: &[u8], options: &ReadOptions) -> Result<Rows, kml::Error> {
    let mut rows = Rows::default();
    kml::read(Cursor::new(doc), &mut rows, options)?;
    Ok(rows)
}

fn rows(doc: &str) -> Vec<String> {
    read_with(doc.as_bytes(), &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .rows
}

fn error(doc: &[u8]) -> kml::Error {
    match read_with(doc, &ReadOptions::default()) {
        Ok(r) => panic!("accepted: {:?}", r.rows),
        Err(e) => e,
    }
}

#[test]
fn features_names_and_parts() {
    let doc = r#"<?xml version="1.0"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>Doc</name>
  <Folder><name>Folder</name>
    <Placemark><name>no geometry</name></Placemark>
    <Placemark>
      <ExtendedData><Data name="name"><value>not me</value></Data></ExtendedData>
      <MultiGeometry>
        <Point><coordinates>1,2</coordinates></Point>
        <LineString><coordinates>3,4,5 6,7,8</coordinates></LineString>
      </MultiGeometry>
      <name> late
 name </name>
    </Placemark>
    <Placemark><Polygon>
      <outerBoundaryIs><LinearRing><coordinates>0,0 1,0 1,1 0,0</coordinates></LinearRing></outerBoundaryIs>
      <innerBoundaryIs><LinearRing><coordinates>.1,.1 .2,.1 .1,.1</coordinates></LinearRing>
                       <LinearRing><coordinates>.5,.5 .6,.5 .5,.5</coordinates></LinearRing></innerBoundaryIs>
    </Polygon></Placemark>
  </Folder>
</Document></kml>"#;
    assert_eq!(
        rows(doc),
        [
            "1|late\n name|Point|0||0|1|2||",
            "1|late\n name|LineString|1||0|3|4|5|",
            "1|late\n name|LineString|1||1|6|7|8|",
            "2||Polygon|0|outer|0|0|0||",
            "2||Polygon|0|outer|1|1|0||",
            "2||Polygon|0|outer|2|1|1||",
            "2||Polygon|0|outer|3|0|0||",
            "2||Polygon|1|inner|0|.1|.1||",
            "2||Polygon|1|inner|1|.2|.1||",
            "2||Polygon|1|inner|2|.1|.1||",
            "2||Polygon|2|inner|0|.5|.5||",
            "2||Polygon|2|inner|1|.6|.5||",
            "2||Polygon|2|inner|2|.5|.5||",
        ]
    );
}

#[test]
fn tracks_pair_whens_in_either_order() {
    let doc = r#"<kml xmlns:gx="http://www.google.com/kml/ext/2.2"><Placemark><name>t</name>
      <gx:MultiTrack>
        <gx:Track><when>t1</when><when>t2</when><gx:coord>1 2 3</gx:coord><gx:coord>4 5 6</gx:coord></gx:Track>
        <gx:Track><gx:coord>7 8</gx:coord><when>t3</when><gx:coord>9 10</gx:coord><when>t4</when><gx:coord>11 12</gx:coord></gx:Track>
      </gx:MultiTrack></Placemark></kml>"#;
    let mut options = ReadOptions::default();
    let got = read_with(doc.as_bytes(), &options).unwrap();
    assert_eq!(
        got.rows,
        [
            "0|t|Track|0||0|1|2|3|t1",
            "0|t|Track|0||1|4|5|6|t2",
            "0|t|Track|1||0|7|8||t3",
            "0|t|Track|1||1|9|10||t4",
            "0|t|Track|1||2|11|12||",
        ]
    );
    assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
    options.strict = true;
    let err = read_with(doc.as_bytes(), &options).err().unwrap();
    assert!(matches!(err.kind, ErrorKind::Strict(_)), "{err}");
}

#[test]
fn other_holders_of_coordinates() {
    let doc = r#"<kml xmlns:gx="http://www.google.com/kml/ext/2.2">
      <GroundOverlay><name>g</name><LatLonBox><north>9</north><south>8</south></LatLonBox>
        <gx:LatLonQuad><coordinates>1,2 3,4 5,6 7,8</coordinates></gx:LatLonQuad></GroundOverlay>
      <Placemark><LookAt><longitude>50</longitude><latitude>60</latitude></LookAt>
        <Model><Location><latitude>2.5</latitude><longitude> 1.5 </longitude><altitude>3</altitude><longitude>9</longitude></Location></Model>
        <coordinates>10,20</coordinates></Placemark>
      <NetworkLinkControl><Update><Change><Point><coordinates>30,40</coordinates></Point></Change></Update></NetworkLinkControl>
    </kml>"#;
    assert_eq!(
        rows(doc),
        [
            "0|g|LatLonQuad|0||0|1|2||",
            "0|g|LatLonQuad|0||1|3|4||",
            "0|g|LatLonQuad|0||2|5|6||",
            "0|g|LatLonQuad|0||3|7|8||",
            "1||Model|0||0|1.5|2.5|3|",
            "1||Placemark|1||0|10|20||",
            "||Point|0||0|30|40||",
        ]
    );
}

#[test]
fn prefixes_namespaces_and_bare_roots() {
    let prefixed = r#"<kml:kml xmlns:kml="http://www.opengis.net/kml/2.2"><kml:Placemark><kml:name>p</kml:name>
        <kml:Point><kml:coordinates>1,2</kml:coordinates></kml:Point></kml:Placemark></kml:kml>"#;
    assert_eq!(rows(prefixed), ["0|p|Point|0||0|1|2||"]);
    let bare = "<LineString><coordinates>1,2 3,4</coordinates></LineString>";
    assert_eq!(
        rows(bare),
        ["||LineString|0||0|1|2||", "||LineString|0||1|3|4||"]
    );
}

#[test]
fn text_is_the_whole_character_data() {
    let doc = "<Placemark><name>A &amp; <![CDATA[<B>]]> &#x43;</name><Point><coordinates>1,<!-- c -->2&#32;3,<![CDATA[4]]></coordinates></Point></Placemark>";
    assert_eq!(
        rows(doc),
        [
            "0|A & <B> C|Point|0||0|1|2||",
            "0|A & <B> C|Point|0||1|3|4||"
        ]
    );
}

#[test]
fn rows_held_for_a_late_name_are_bounded_and_in_order() {
    // Far more held-back rows than the in-memory limit of the queue.
    let n = 300_000;
    let mut doc = String::from("<Placemark><LineString><coordinates>");
    for i in 0..n {
        doc.push_str(&format!("{i}.5,-{i}.25,{i} "));
    }
    doc.push_str("</coordinates></LineString><name>late</name></Placemark>");
    let got = rows(&doc);
    assert_eq!(got.len(), n);
    for (i, row) in got.iter().enumerate().step_by(9973) {
        assert_eq!(row, &format!("0|late|LineString|0||{i}|{i}.5|-{i}.25|{i}|"));
    }
}

#[test]
fn skipped_tuples_warn_with_their_position() {
    let doc = "<Placemark>\n<LineString><coordinates>1,2\n  no,no 3,4\n 5</coordinates></LineString></Placemark>";
    let got = read_with(doc.as_bytes(), &ReadOptions::default()).unwrap();
    assert_eq!(got.rows.len(), 2);
    let at: Vec<String> = got
        .warnings
        .iter()
        .map(|w| w.position.unwrap().to_string())
        .collect();
    assert_eq!(at, ["3:3", "4:2"]);
    let strict = ReadOptions {
        strict: true,
        ..ReadOptions::default()
    };
    let err = read_with(doc.as_bytes(), &strict).err().unwrap();
    assert_eq!(err.position.unwrap().to_string(), "3:3");
}

#[test]
fn malformed_documents_fail_with_a_position() {
    let cases: &[(&[u8], &str)] = &[
        (b"<kml>\n<Placemark>\n<name>x</name>", "3:15"),
        (b"<kml></kml>\n<junk/>", "2:1"),
        (b"<kml></kml>junk", "1:12"),
        (b"<kml>\n  <name>&nbsp;</name></kml>", "2:9"),
        (b"<kml><a></b></kml>", "1:9"),
        (b"<kml><name>\xff</name></kml>", "1:12"),
        (b"<kml><name>a\x01</name></kml>", "1:13"),
    ];
    for (doc, position) in cases {
        let err = error(doc);
        assert_eq!(
            err.position.map(|p| p.to_string()).as_deref(),
            Some(*position),
            "{} for {:?}",
            err,
            String::from_utf8_lossy(doc)
        );
    }
    for empty in [&b""[..], b"   \n", b"not xml at all"] {
        assert!(matches!(error(empty).kind, ErrorKind::Xml(_)));
    }
}

#[test]
fn entities_are_never_expanded_or_fetched() {
    let external = br#"<!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<kml><Placemark><name>a&x;b</name><Point><coordinates>1,2</coordinates></Point></Placemark></kml>"#;
    let got = read_with(external, &ReadOptions::default()).unwrap();
    assert_eq!(got.rows, ["0|ab|Point|0||0|1|2||"]);
    assert_eq!(got.warnings.len(), 1);
    let laughs = br#"<!DOCTYPE kml [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">]><kml><name>&b;</name></kml>"#;
    assert!(error(laughs)
        .to_string()
        .contains("does not expand DTD entities"));
}

#[test]
fn encodings_are_decoded_to_utf8() {
    let utf16: Vec<u8> = "\u{feff}<Placemark><name>Zürich</name><Point><coordinates>8.5,47.4</coordinates></Point></Placemark>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(
        read_with(&utf16, &ReadOptions::default()).unwrap().rows,
        ["0|Zürich|Point|0||0|8.5|47.4||"]
    );
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><Placemark><name>東京</name><Point><coordinates>139.7,35.7</coordinates></Point></Placemark>");
    assert_eq!(
        read_with(&sjis, &ReadOptions::default()).unwrap().rows,
        ["0|東京|Point|0||0|139.7|35.7||"]
    );
}

#[test]
fn cancel_stops_even_where_there_are_no_vertices() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    // A long comment: no vertex, no write, but the reader still notices.
    let doc = format!("<kml><!--{}--></kml>", "x".repeat(1 << 20));
    let options = ReadOptions {
        cancel: Some(Arc::new(AtomicBool::new(true))),
        ..ReadOptions::default()
    };
    let err = read_with(doc.as_bytes(), &options).err().unwrap();
    assert!(matches!(err.kind, ErrorKind::Cancelled), "{err}");
}

#[test]
fn warnings_are_counted_but_only_the_first_kept() {
    let mut doc = String::from("<Placemark><LineString><coordinates>");
    for _ in 0..10_000 {
        doc.push_str("x,y ");
    }
    doc.push_str("</coordinates></LineString></Placemark>");
    let mut writer = kml2csv::csv::VertexWriter::new(Vec::new()).unwrap();
    let summary = kml::read(
        Cursor::new(doc.as_bytes()),
        &mut writer,
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(summary.warnings, 10_000);
    assert_eq!(writer.warnings().total(), 10_000);
    assert_eq!(writer.warnings().kept().len(), kml::Warnings::KEPT);
}

/// Collects what the attribute and feature options add.
type FeatureSeen = (u64, String, Option<kml::Attributes>, Vec<kml::Part>);

#[derive(Default)]
struct Features {
    vertex_attributes: Vec<(String, Option<kml::Attributes>)>,
    features: Vec<FeatureSeen>,
}

impl Sink for Features {
    fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        let id = format!(
            "{}:{}:{}",
            v.feature.map(|f| f as i64).unwrap_or(-1),
            v.part,
            v.vertex
        );
        self.vertex_attributes.push((id, v.attributes.cloned()));
        Ok(())
    }

    fn warning(&mut self, _: Warning) {}

    fn feature(&mut self, f: &kml::Feature<'_>) -> io::Result<()> {
        self.features.push((
            f.ordinal,
            f.name.to_string(),
            f.attributes.cloned(),
            f.geometry.to_parts()?,
        ));
        Ok(())
    }
}

const ATTRIBUTED: &str = r##"<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>Trips</name>
  <Folder><name>2024</name><Folder>
    <Placemark>
      <Point><coordinates>1,2</coordinates></Point>
      <name>A</name>
      <description><![CDATA[<b>bold</b>]]> &amp; more</description>
      <TimeStamp><when>2024-05-01</when></TimeStamp>
      <styleUrl>#red</styleUrl>
      <ExtendedData>
        <Data name="speed"><displayName>Speed</displayName><value>12</value></Data>
        <Data name="empty"/>
        <Data name="speed"><value>ignored duplicate</value></Data>
        <SchemaData schemaUrl="#s"><SimpleData name="name">not the name</SimpleData></SchemaData>
      </ExtendedData>
    </Placemark>
  </Folder></Folder>
  <Placemark><name>B</name><TimeSpan><begin>2020</begin><end>2021</end></TimeSpan>
    <MultiGeometry><Point><coordinates>5,6,7</coordinates></Point>
      <Polygon><outerBoundaryIs><LinearRing><coordinates>0,0 1,0 1,1 0,0</coordinates></LinearRing></outerBoundaryIs>
        <innerBoundaryIs><LinearRing><coordinates>.1,.1 .2,.1 .1,.1</coordinates></LinearRing></innerBoundaryIs></Polygon>
    </MultiGeometry></Placemark>
  <Placemark><name>no geometry</name></Placemark>
</Document></kml>"##;

#[test]
fn attributes_of_a_feature_reach_all_its_vertices() {
    let options = ReadOptions {
        attributes: true,
        ..ReadOptions::default()
    };
    let mut got = Features::default();
    kml::read(Cursor::new(ATTRIBUTED.as_bytes()), &mut got, &options).unwrap();
    let a = got.vertex_attributes[0].1.clone().expect("attributes");
    assert_eq!(got.vertex_attributes[0].0, "0:0:0");
    assert_eq!(a.folder, "Trips/2024");
    assert_eq!(a.description, "<b>bold</b> & more");
    assert_eq!(a.timestamp, "2024-05-01");
    assert_eq!(a.style, "#red");
    assert_eq!(
        a.data,
        [
            ("speed".to_string(), "12".to_string()),
            ("empty".to_string(), String::new()),
            ("name".to_string(), "not the name".to_string()),
        ]
    );
    let b = got.vertex_attributes[1].1.clone().expect("attributes");
    assert_eq!(
        (b.folder.as_str(), b.begin.as_str(), b.end.as_str()),
        ("Trips", "2020", "2021")
    );
    assert!(b.data.is_empty());
    // Without the option nothing is collected.
    let mut plain = Features::default();
    kml::read(
        Cursor::new(ATTRIBUTED.as_bytes()),
        &mut plain,
        &ReadOptions::default(),
    )
    .unwrap();
    assert!(plain.vertex_attributes.iter().all(|(_, a)| a.is_none()));
    assert!(plain.features.is_empty());
}

#[test]
fn whole_features_come_with_their_parts() {
    let options = ReadOptions {
        features: true,
        ..ReadOptions::default()
    };
    let mut got = Features::default();
    kml::read(Cursor::new(ATTRIBUTED.as_bytes()), &mut got, &options).unwrap();
    type Shape<'a> = (u64, &'a str, Vec<(&'a str, &'a str, usize)>);
    let summary: Vec<Shape<'_>> = got
        .features
        .iter()
        .map(|(ordinal, name, attributes, parts)| {
            assert!(attributes.is_none());
            let parts = parts
                .iter()
                .map(|p| (p.geometry.as_str(), p.ring.as_str(), p.tuples.len()))
                .collect();
            (*ordinal, name.as_str(), parts)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "A", vec![("Point", "", 1)]),
            (
                1,
                "B",
                vec![
                    ("Point", "", 1),
                    ("Polygon", "outer", 4),
                    ("Polygon", "inner", 3)
                ]
            ),
            (2, "no geometry", vec![]),
        ]
    );
    assert_eq!(
        got.features[1].3[0].tuples[0],
        ["5", "6", "7"].map(String::from)
    );
    // The vertex rows are still reported, in document order.
    assert_eq!(got.vertex_attributes.len(), 9);
}

/// A reader that hands out at most `step` bytes at a time, so that every delimiter
/// (`<![CDATA[`, `]]>`, `-->`, a tuple) ends up split between two reads somewhere.
struct Trickle<'a> {
    rest: &'a [u8],
    step: usize,
}

impl io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.rest.len().min(out.len()).min(self.step);
        out[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// `doc` read 1 to 11 bytes at a time gives `whole`, its rows read in one go.
fn same_rows_in_small_reads(doc: &str, whole: &[String]) {
    for step in 1..12 {
        let mut got = Rows::default();
        kml::read_document(
            Trickle {
                rest: doc.as_bytes(),
                step,
            },
            &mut got,
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(got.rows, whole, "step {step}");
    }
}

#[test]
fn comments_and_cdata_split_across_reads() {
    let doc = "<kml><!-- a - comment -- with-dashes? no --><Placemark><name>x<!--c-->y<![CDATA[ & <z> ]]]]></name>\
        <description><![CDATA[<p>big</p>]]></description><LineString><coordinates>1,<![CDATA[2 3]]>,4<!-- - -->5,6</coordinates></LineString></Placemark></kml>";
    let doc = doc.replace("-- with-dashes? no ", " with-dashes? no ");
    let whole = rows(&doc);
    // "1," + "2 3" + ",4" + "5,6": the comment joins "4" and "5".
    assert_eq!(
        whole,
        [
            "0|xy & <z> ]]|LineString|0||0|1|2||",
            "0|xy & <z> ]]|LineString|0||1|3|45|6|",
        ]
    );
    same_rows_in_small_reads(&doc, &whole);
}

/// A piece of text ends where the buffer does, which may be inside a character: a name or a
/// time that straddles two reads must still come out whole.
#[test]
fn multibyte_text_split_across_reads() {
    // The first KiB is read in one go (to detect the encoding): the text comes after it.
    let doc = format!(
        "<kml><!--{}--><Placemark><name>Zürich € 😀 Ærø</name><Point><coordinates>8.5,47.4</coordinates></Point></Placemark>\
        <Placemark><name>東京<![CDATA[タワー]]>ü</name><gx:Track><when>2024-01-01T00:00:00Z ✓</when><gx:coord>1 2</gx:coord></gx:Track></Placemark></kml>",
        " ".repeat(1100)
    );
    let whole = rows(&doc);
    assert_eq!(
        whole,
        [
            "0|Zürich € 😀 Ærø|Point|0||0|8.5|47.4||",
            "1|東京タワーü|Track|0||0|1|2||2024-01-01T00:00:00Z ✓",
        ]
    );
    same_rows_in_small_reads(&doc, &whole);
}

#[test]
fn comment_rules() {
    assert!(error(b"<kml><!-- a -- b --></kml>")
        .to_string()
        .contains("'--'"));
    assert!(error(b"<kml><!-- never closed </kml>")
        .to_string()
        .contains("unclosed comment"));
    assert!(error(b"<kml><name><![CDATA[ never closed </name></kml>")
        .to_string()
        .contains("unclosed CDATA"));
    assert!(error(b"<![CDATA[x]]><kml/>")
        .to_string()
        .contains("CDATA outside"));
    assert_eq!(
        rows("<!-- before --><Point><!----><coordinates>1,2</coordinates></Point><!-- after -->"),
        ["||Point|0||0|1|2||"]
    );
}

#[test]
fn deep_nesting_is_bounded_not_a_crash() {
    // See: every open element costs memory, so depth is capped.
    let ok = format!(
        "<kml>{}{}</kml>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert_eq!(rows(&ok), Vec::<String>::new());
    let deep = "<a>".repeat(300_000);
    assert!(error(deep.as_bytes())
        .to_string()
        .contains("nested too deeply"));
}

#[test]
fn one_huge_tag_fails_instead_of_being_held() {
    // See: quick-xml reads a whole tag into memory; a 1 GB tag must not be.
    let name = "a".repeat(20 << 20);
    let err = error(format!("<kml><{name}/></kml>").as_bytes());
    assert!(
        err.to_string().contains("markup longer than 16 MiB"),
        "{err}"
    );
    // Its start is 16 MiB behind: the message gives the byte offset instead of a line.
    assert!(err.to_string().contains("at byte 5 of the text"), "{err}");
    let attribute = format!("<kml><Placemark id=\"{}\"/></kml>", "x".repeat(20 << 20));
    assert!(error(attribute.as_bytes())
        .to_string()
        .contains("markup longer"));
    // Below the limit all is well.
    let fine = format!("<kml><Placemark id=\"{}\"/></kml>", "x".repeat(1 << 20));
    assert_eq!(rows(&fine), Vec::<String>::new());
}

#[test]
fn tags_are_read_whole_across_reads_and_quoted_gt() {
    // See: tags are read by the reader itself, not quick-xml; a `>` in an attribute value
    // does not end a tag, and a tag may arrive in any number of reads.
    let doc = "<kml xmlns:gx='x'><Placemark id=\"a>b\" note='c\">d'><name>n</name>\
        <gx:Track><when>t</when><gx:coord>1 2 3</gx:coord></gx:Track >\
        <LineString\n\tid='x/>'><coordinates>1,2 3,4</coordinates\n></LineString><Point/><Point /></Placemark></kml\t>";
    let whole = rows(doc);
    assert_eq!(
        whole,
        [
            "0|n|Track|0||0|1|2|3|t",
            "0|n|LineString|1||0|1|2||",
            "0|n|LineString|1||1|3|4||",
        ]
    );
    same_rows_in_small_reads(doc, &whole);
}

#[test]
fn tag_errors_name_what_is_wrong_and_where() {
    let cases: &[(&[u8], &str, &str)] = &[
        (
            b"<kml><a>\n </kml>",
            "expected `</a>`, but `</kml>` was found",
            "2:2",
        ),
        (
            b"<kml:kml></kml>",
            "expected `</kml:kml>`, but `</kml>` was found",
            "1:10",
        ),
        (
            b"<kml></kml></kml>",
            "close tag `</kml>` does not match any open tag",
            "1:12",
        ),
        (b"<kml><a b='c", "`'` not found before end of input", "1:6"),
        (
            b"<kml><a b=\"c>",
            "`\"` not found before end of input",
            "1:6",
        ),
        (b"<kml><a b", "`>` not found before end of input", "1:6"),
        (b"<kml><a b='1' b='2'/></kml>", "bad attribute", "1:6"),
        (
            b"<kml><a b='1' bb='2' b='3'/></kml>",
            "position 15: duplicated attribute, previous declaration at position 2",
            "1:6",
        ),
        // Past the few names compared in place, quick-xml's own check.
        (
            b"<kml><a a='' b='' c='' d='' e='' f='' g='' h='' i='' j='' c=''/></kml>",
            "position 52: duplicated attribute, previous declaration at position 12",
            "1:6",
        ),
        (
            b"<kml><a a='' b='' c='' d='' e='' f='' g='' h='' i='' j='' k=x/></kml>",
            "attribute value must be enclosed",
            "1:6",
        ),
        (b"<kml><a\xff/></kml>", "invalid UTF-8", "1:8"),
    ];
    for (doc, message, position) in cases {
        let err = error(doc);
        assert!(err.to_string().contains(message), "{err}");
        assert_eq!(
            err.position.map(|p| p.to_string()).as_deref(),
            Some(*position),
            "{err}"
        );
    }
    // A tag longer than the reader's buffer is still one tag.
    let long = format!(
        "<kml><Placemark id=\"{}\"></Placemark></kml>",
        "x>".repeat(200_000)
    );
    assert_eq!(rows(&long), Vec::<String>::new());
}

/// See: issue 17 (7b): a Model/Location without a latitude (or longitude) was written with
/// an empty one, and as the WKT `POINT (8.5 )` that PostGIS and ogr2ogr reject. It is skipped
/// with a warning, like a tuple without one.
#[test]
fn a_model_location_without_a_latitude_is_skipped_with_a_warning() {
    let doc = r#"<kml><Placemark><name>m</name>
      <Model><Location><longitude>8.5</longitude><altitude>3</altitude></Location></Model>
      <Model><Location><latitude>47</latitude></Location></Model>
      <Model><Location><longitude>1</longitude><latitude>2</latitude></Location></Model>
    </Placemark></kml>"#;
    let sink = read_with(doc.as_bytes(), &ReadOptions::default()).unwrap();
    assert_eq!(sink.rows, ["0|m|Model|0||0|1|2||"]);
    let warnings: Vec<String> = sink.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            r#"2:83: Model Location "8.5","","3" skipped: no latitude"#,
            r#"3:58: Model Location "","47","" skipped: no longitude"#,
        ]
    );
}

/// See: issue 17 (10): a file with CR-only line endings (old Mac) had every warning and
/// error on line 1, at huge columns.
#[test]
fn positions_in_a_file_with_cr_only_line_endings() {
    let doc = "<kml>\r<Placemark>\r<LineString><coordinates>1,2 x,3</coordinates></LineString>\r</Placemark>\r</kml>\r";
    let sink = read_with(doc.as_bytes(), &ReadOptions::default()).unwrap();
    let warnings: Vec<String> = sink.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings, [r#"3:30: tuple "x,3" skipped: not a number"#]);
    let err = error(b"<kml>\r\r<Placemark>\r</kml>");
    assert_eq!(
        err.position,
        Some(kml::Position { line: 4, column: 1 }),
        "{err}"
    );
}

/// The rows of `doc`, or its error with its position, read in reads of `step` bytes (0: in
/// one go).
fn outcome(doc: &[u8], step: usize) -> String {
    let mut got = Rows::default();
    let result = if step == 0 {
        kml::read_document(doc, &mut got, &ReadOptions::default())
    } else {
        kml::read_document(
            Trickle { rest: doc, step },
            &mut got,
            &ReadOptions::default(),
        )
    };
    match result {
        Ok(_) => got.rows.join("\n"),
        // In small reads the reader may no longer hold the line of a position: all these
        // are on line 1, where the column is the offset plus one.
        Err(e) => match e.to_string().rsplit_once(" (at byte ") {
            Some((message, offset)) => {
                let offset: u64 = offset.trim_end_matches(" of the text)").parse().unwrap();
                format!("error 1:{}: {message}", offset + 1)
            }
            None => format!("error {e}"),
        },
    }
}

/// Tags and texts that lie whole in the buffer are read where they are, the others in
/// pieces: a byte the reader must refuse (a control character, broken UTF-8, a stray `<` or
/// `&`, a quote) gives the same error at the same position either way, wherever it is.
#[test]
fn bad_bytes_fail_alike_in_place_and_in_small_reads() {
    // The first KiB is read in one go (to detect the encoding): the document comes after it,
    // on one line, so that a position the reader gives as an offset compares too.
    let doc = format!(
        "<kml><!--{}--><Placemark id=\"p>1\" note='Zürich'><name>abcdefghijklmnopqrstuvwxyz</name>\
        <gx:Track><when>2024-01-01T00:00:00Z</when><gx:coord>1 2 3</gx:coord></gx:Track>\
        <LineString><coordinates> \t1,2 3,4 5,6 7,8 9,10 11,12\t</coordinates></LineString>\
        </Placemark></kml>",
        " ".repeat(1100)
    );
    let from = doc.find("<Placemark").unwrap();
    assert!(outcome(doc.as_bytes(), 0).contains("|abcdefghijklmnopqrstuvwxyz|"));
    for at in from..doc.len() {
        // The text holds no multi-byte character: where a read ends inside a broken one,
        // its error is placed after the byte that completes it.
        for bad in [0x01, 0x1F, 0xFF, 0x80, b'<', b'&', b'"', b' ', b'>'] {
            let mut bytes = doc.clone().into_bytes();
            bytes[at] = bad;
            let whole = outcome(&bytes, 0);
            for step in [1, 2, 3, 7, 16] {
                assert_eq!(
                    outcome(&bytes, step),
                    whole,
                    "{bad:#x} at {at}, step {step}"
                );
            }
        }
    }
}

/// Holds the reader to its word on [`Vertex::sequence`]: every vertex handed over with the
/// same non-zero number has the same feature, name, geometry, part and ring.
#[derive(Default)]
struct SequenceWords {
    seen: std::collections::HashMap<u64, String>,
    vouched: usize,
    rows: usize,
}

impl Sink for SequenceWords {
    fn vertex(&mut self, v: &Vertex<'_>) -> io::Result<()> {
        self.rows += 1;
        if v.sequence != 0 {
            self.vouched += 1;
            let what = format!(
                "{:?}|{}|{}|{}|{}",
                v.feature,
                v.name,
                v.geometry,
                v.part,
                v.ring.as_str()
            );
            let first = self.seen.entry(v.sequence).or_insert_with(|| what.clone());
            assert_eq!(*first, what, "sequence {} stands for two", v.sequence);
        }
        Ok(())
    }

    fn warning(&mut self, _: Warning) {}
}

fn sequence_words(doc: &[u8]) -> SequenceWords {
    let mut words = SequenceWords::default();
    // A file that fails half way is held to it for what it handed over.
    let _ = kml::read(Cursor::new(doc), &mut words, &ReadOptions::default());
    words
}

#[test]
fn a_sequence_number_stands_for_one_feature_name_geometry_part_and_ring() {
    let tricky = [
        // A name set twice, once in the middle of a track, and one after the geometry.
        r#"<kml xmlns:gx="http://www.google.com/kml/ext/2.2"><Document>
        <Placemark><name>a</name><LineString><coordinates>1,2 3,4 5,6</coordinates></LineString>
          <name>b</name><LineString><coordinates>1,2 3,4 5,6</coordinates></LineString></Placemark>
        <Placemark><gx:Track><when>t1</when><gx:coord>1 2 3</gx:coord><when>t2</when>
          <gx:coord>4 5 6</gx:coord></gx:Track><name>late</name></Placemark>
        <Placemark><name>c</name><gx:Track><when>t1</when><when>t2</when><when>t3</when>
          <gx:coord>1 2 3</gx:coord><name>d</name><gx:coord>4 5 6</gx:coord><gx:coord>7 8 9</gx:coord>
          </gx:Track></Placemark></Document></kml>"#,
        // Features in features, polygons' rings, stray coordinates and a Model's Location.
        r#"<kml><Folder><Placemark><name>outer</name><MultiGeometry>
          <Polygon><outerBoundaryIs><LinearRing><coordinates>0,0 1,0 1,1 0,0</coordinates></LinearRing></outerBoundaryIs>
          <innerBoundaryIs><LinearRing><coordinates>0,0 1,0 1,1 0,0</coordinates></LinearRing></innerBoundaryIs></Polygon>
          <Point><coordinates>5,5</coordinates></Point>
          <Placemark><name>inner</name><Point><coordinates>6,6</coordinates></Point></Placemark>
          <LineString><coordinates>7,7 8,8 9,9</coordinates></LineString></MultiGeometry>
          <Model><Location><longitude>1</longitude><latitude>2</latitude></Location></Model>
          <Model><Location><longitude>3</longitude><latitude>4</latitude></Location></Model>
          <Region><coordinates>1,1 2,2</coordinates></Region></Placemark>
          <LineString><coordinates>1,1 2,2 3,3</coordinates></LineString></Folder></kml>"#,
    ];
    let mut vouched = 0;
    for doc in tricky {
        let words = sequence_words(doc.as_bytes());
        assert!(words.rows > 10, "{doc}");
        vouched += words.vouched;
    }
    // The usual rows get a number: the contract is not kept by never giving one.
    assert!(vouched > 10, "{vouched}");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut folders = vec![fixtures];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "kml" || e == "kmz") {
                sequence_words(&std::fs::read(&path).unwrap());
            }
        }
    }
}

/// Everything a reading of `doc` gives (rows, warnings and the error, with positions), read
/// in reads of `step` bytes (0: in one go).
fn everything(doc: &[u8], step: usize, options: &ReadOptions) -> String {
    let mut got = Rows::default();
    let result = if step == 0 {
        kml::read_document(doc, &mut got, options)
    } else {
        kml::read_document(Trickle { rest: doc, step }, &mut got, options)
    };
    let mut all = got.rows;
    all.extend(got.warnings.iter().map(|w| format!("warning {w}")));
    if let Err(e) = result {
        all.push(format!("error {e}"));
    }
    all.join("\n")
}

/// `small`, [`everything`] of a reading in small reads, is `whole`, the same in one go, but
/// for the positions of warnings: in small reads the reader may no longer hold the line.
fn assert_alike(small: &str, whole: &str, what: &str) {
    let (small, whole): (Vec<_>, Vec<_>) = (small.lines().collect(), whole.lines().collect());
    let alike = small.len() == whole.len()
        && small.iter().zip(&whole).all(|(s, w)| {
            s == w
                || s.strip_prefix("warning ").is_some_and(|message| {
                    w.strip_prefix("warning ")
                        .and_then(|w| w.split_once(": "))
                        .is_some_and(|(_, m)| m == message)
                })
        });
    assert!(
        alike,
        "{what}:\n{}\n---\n{}",
        small.join("\n"),
        whole.join("\n")
    );
}

/// A gx:Track's `<when>` and `<gx:coord>` with plain text lying whole in the buffer are read
/// at once; in reads too small to hold one (which the first KiB, read in one go to detect the
/// encoding, is not) they go tag by tag and text by text. Both give the same rows, warnings
/// and errors, at the same positions, whatever the text holds.
#[test]
fn track_children_read_whole_or_tag_by_tag_alike() {
    let texts = [
        // The usual ones, 2D and 3D, and in shortest text or not.
        ("2024-01-01T00:00:00Z", "1.5 -2.25 30"),
        ("2024-01-01T00:00:05.250+02:00", "-122.0843 37.4220"),
        ("t", "0.50 -00.5 .5"),
        // White space around and inside, with CRs.
        (" \n\t2024-01-01T00:00:10Z\r\n ", "\r\n  1 2 3\r\n"),
        ("\r2024\r01", "1\r2\r3"),
        ("2024\r\n01", "1 2\r\n"),
        // Empty, odd and wrong coordinates, which warn.
        ("", ""),
        ("  ", "  "),
        ("x", "1"),
        ("x", "1 2 3 4"),
        ("x", "a b c"),
        ("x", "1 2 c"),
        ("x", "1e5 2E-3 +3"),
        ("x", "1,2,3"),
        ("x", "--1 2 3"),
        // Past the window of two times 32 bytes the quick look takes.
        (
            "2024-01-01T00:00:00.123456789012345678901234567890Z",
            "1.123456789012345678 2.123456789012345678 3.1234567890123456",
        ),
        (
            "y",
            "1.1234567890123456789 2.12345678901234567890 3.123456789012345678901",
        ),
        // References, CDATA, comments and markup the quick read leaves to the tags.
        ("a&amp;b", "1 2 &#51;"),
        ("<![CDATA[2024]]>", "<![CDATA[1 2 3]]>"),
        ("20<!-- c -->24", "1 <!-- c -->2 3"),
        ("é", "1 2 3\u{a0}"),
    ];
    let mut elements = String::new();
    for (when, coord) in texts {
        elements.push_str(&format!(
            "<when>{when}</when>\n<gx:coord>{coord}</gx:coord>\n"
        ));
    }
    // One `<when>` too many at the end, and a gx:coord before its `<when>`.
    let tracks = [
        format!("<gx:Track>{elements}<when>last</when></gx:Track>"),
        "<gx:Track><gx:coord>1 2 3</gx:coord><when>t1</when><gx:coord>4 5 6</gx:coord><when>t2</when></gx:Track>".into(),
        // The same children spelt otherwise, or not where a track takes them.
        "<gx:Track><when >t</when ><gx:coord >1 2 3</gx:coord ><kml:when>u</kml:when><coord>4 5 6</coord></gx:Track>".into(),
        "<Folder><when>t</when><gx:coord>1 2 3</gx:coord></Folder>".into(),
        "<gx:Track><gx:Track><when>t</when><gx:coord>1 2 3</gx:coord></gx:Track></gx:Track>".into(),
        "<gx:Track><ExtendedData><Data name=\"d\"><value><when>t</when></value></Data></ExtendedData><when>u</when><gx:coord>1 2 3</gx:coord></gx:Track>".into(),
    ];
    let options = [
        ReadOptions::default(),
        ReadOptions {
            attributes: true,
            ..ReadOptions::default()
        },
        ReadOptions {
            strict: true,
            ..ReadOptions::default()
        },
    ];
    for track in &tracks {
        let doc = format!(
            "<kml xmlns:gx=\"http://www.google.com/kml/ext/2.2\"><!--{}--><Placemark><name>p</name>\
             {track}<ExtendedData><Data name=\"d\"><value>v</value></Data></ExtendedData>\
             </Placemark></kml>",
            " ".repeat(1100)
        );
        for options in &options {
            let whole = everything(doc.as_bytes(), 0, options);
            assert!(
                whole.contains("|Track|") || !track.contains("gx:Track"),
                "{whole}"
            );
            for step in [1, 5, 9] {
                let small = everything(doc.as_bytes(), step, options);
                assert_alike(&small, &whole, &format!("{track}, step {step}"));
            }
        }
    }
}

/// The tuples of a `<coordinates>` text lying whole in the buffer are taken where they are,
/// between tuples only: markup may break the text anywhere, even inside a number, and the
/// tuple goes on after it as it does when the text comes in small reads.
#[test]
fn coordinates_broken_by_markup_read_in_place_or_in_pieces() {
    let text = "\n 1,2 3,4<!-- c -->5,6 7,8 9,10 11,12 13,14 15,16 17,1<!---->8 19,20 21,22 \
                23,24<!-- c -->,25 26,27 2&#56;,29 30,31 32,33 34,35 36,37,38<![CDATA[ 39,40 \
                41,]]>42 43,44 45,46 47,48 49,50 51,52 53,54 55<![CDATA[]]>,56 57,58 59,60 \
                61,62 63,64 65<b/>66 67,68 69,70 71,72 73,74 75,76 77,78 79,8<i>0 81,82 83,84 \
                85,86 87,88</i> 89,90 91,92 93,94 95,96 97,98 99,100\n";
    let doc = format!(
        "<kml><!--{}--><Placemark><name>p</name><LineString><coordinates>{text}</coordinates>\
         </LineString></Placemark></kml>",
        " ".repeat(1100)
    );
    let whole = everything(doc.as_bytes(), 0, &ReadOptions::default());
    assert!(whole.contains("|17|18|"), "{whole}");
    for step in [1, 5, 9, 31] {
        let small = everything(doc.as_bytes(), step, &ReadOptions::default());
        assert_alike(&small, &whole, &format!("step {step}"));
    }
}
