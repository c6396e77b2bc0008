//! Issue 4 as a user sees it: attributes, feature rows as WKT, one merged CSV, pipes, progress
//! and reports, make semantics, CSV dialects and shell integration. Real binary, real files.
//!
//! Tests that check attribute values or feature rows need the reader to fill
//! `Vertex::attributes` and call `Sink::feature`; until it does they fail, by design: they pin
//! the specification (issue 4), not the reader of the day.

mod common;
use common::StartRetrying;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::{points_kml, Run, TestEnv, HEADER, POINT_KML, POINT_ROW};

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "{run}");
}

fn assert_stderr_has(run: &Run, text: &str) {
    assert!(run.stderr.contains(text), "stderr lacks {text:?}\n{run}");
}

/// Run with `stdin` as standard input.
fn run_with_stdin(env: &TestEnv, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = env
        .command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn_retrying()
        .expect("start kml2csv");
    let mut pipe = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    common::run_of(output)
}

/// Parse CSV text into rows of fields.
fn records(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// The value of `column` in every data row.
fn column(text: &str, column: &str) -> Vec<String> {
    let rows = records(text);
    let index = rows[0]
        .iter()
        .position(|c| c == column)
        .unwrap_or_else(|| panic!("no column {column} in {:?}", rows[0]));
    rows[1..].iter().map(|r| r[index].clone()).collect()
}

/// Features with every kind of descriptive field: nested folders, description, TimeStamp,
/// TimeSpan, styleUrl, ExtendedData as `Data` and as `SchemaData`, a field named like a standard
/// column, and fields only some features have.
const ATTRIBUTES_KML: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2">
<Document><name>Trips</name>
  <Folder><name>2024</name>
    <Placemark>
      <name>Start</name>
      <description>The beginning</description>
      <TimeStamp><when>2024-05-01T10:00:00Z</when></TimeStamp>
      <styleUrl>#red</styleUrl>
      <ExtendedData>
        <Data name="speed"><value>12.5</value></Data>
        <Data name="name"><value>clashing</value></Data>
      </ExtendedData>
      <Point><coordinates>1,2,3</coordinates></Point>
    </Placemark>
  </Folder>
  <Placemark>
    <name>Leg</name>
    <TimeSpan><begin>2024-05-01</begin><end>2024-05-02</end></TimeSpan>
    <ExtendedData>
      <SchemaData schemaUrl="#s"><SimpleData name="driver">Ann</SimpleData></SchemaData>
      <Data name="speed"><value>80</value></Data>
    </ExtendedData>
    <LineString><coordinates>4,5 6,7</coordinates></LineString>
  </Placemark>
</Document>
</kml>
"##;

// ---------------------------------------------------------------------------------------------
// 1. Attributes and --columns

#[test]
fn attributes_add_descriptive_and_extended_data_columns() {
    let env = TestEnv::new();
    env.write("trips.kml", ATTRIBUTES_KML);
    let run = env.run(&["--attributes", "trips.kml"]);
    assert_code(&run, 0);
    let csv = env.read("trips.csv");
    assert_eq!(
        records(&csv)[0].join(","),
        "feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when,\
         folder,description,timestamp,begin,end,style,speed,data.name,driver",
        "{csv}"
    );
    assert_eq!(column(&csv, "folder"), ["Trips/2024", "Trips", "Trips"]);
    assert_eq!(column(&csv, "description"), ["The beginning", "", ""]);
    assert_eq!(column(&csv, "timestamp"), ["2024-05-01T10:00:00Z", "", ""]);
    assert_eq!(column(&csv, "begin"), ["", "2024-05-01", "2024-05-01"]);
    assert_eq!(column(&csv, "end"), ["", "2024-05-02", "2024-05-02"]);
    assert_eq!(column(&csv, "style"), ["#red", "", ""]);
    assert_eq!(column(&csv, "speed"), ["12.5", "80", "80"]);
    assert_eq!(column(&csv, "data.name"), ["clashing", "", ""]);
    assert_eq!(column(&csv, "driver"), ["", "Ann", "Ann"]);
    assert_eq!(column(&csv, "name"), ["Start", "Leg", "Leg"]);
}

#[test]
fn attributes_without_extended_data_still_have_the_descriptive_columns() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["-a", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(
        env.read("a.csv").lines().next().unwrap(),
        "feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when,\
         folder,description,timestamp,begin,end,style"
    );
}

#[test]
fn columns_select_and_order_the_standard_columns() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["--columns", "latitude,longitude,name", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.read("a.csv"), "latitude,longitude,name\n2,1,A\n");
}

#[test]
fn columns_can_name_extended_data_fields() {
    let env = TestEnv::new();
    env.write("trips.kml", ATTRIBUTES_KML);
    let run = env.run(&["-a", "--columns", "name,driver,speed,folder", "trips.kml"]);
    assert_code(&run, 0);
    assert_eq!(
        env.read("trips.csv"),
        "name,driver,speed,folder\nStart,,12.5,Trips/2024\nLeg,Ann,80,Trips\nLeg,Ann,80,Trips\n"
    );
}

#[test]
fn an_unknown_column_is_a_usage_error_listing_the_available_ones() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["--columns", "name,lat", "a.kml"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "unknown column lat");
    assert_stderr_has(&run, "available: feature, name, geometry");
    assert!(env.files_ending(".csv").is_empty(), "{run}");

    // With --attributes, a fixed column this output lacks is still refused up front.
    env.write("trips.kml", ATTRIBUTES_KML);
    let run = env.run(&["-a", "--columns", "name,wkt", "trips.kml"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "unknown column wkt");
    assert_stderr_has(&run, "wkt exists with --rows features");
    assert!(env.files_ending(".csv").is_empty(), "{run}");
}

/// A name that is no field of any input read is a warning that lists the fields found, and
/// its column is empty: fields are only known from what a run reads.
#[test]
fn a_column_no_input_has_is_a_warning_and_written_empty() {
    let env = TestEnv::new();
    env.write("trips.kml", ATTRIBUTES_KML);
    let run = env.run(&["-a", "--columns", "name,nope", "trips.kml"]);
    assert_code(&run, 0);
    assert_stderr_has(
        &run,
        "warning: --columns nope: no ExtendedData field of that name in the 1 input read",
    );
    assert_stderr_has(&run, "available: feature, name, geometry");
    assert_stderr_has(&run, "style, speed, data.name, driver");
    assert_eq!(env.read("trips.csv"), "name,nope\nStart,\nLeg,\nLeg,\n");
}

/// See: issue 13. `-a --columns` naming an ExtendedData field, run again when the CSV exists
/// (the input is skipped, or up to date, so its fields are not read): still status 0, no
/// warning, the CSV untouched.
#[test]
fn columns_naming_a_field_work_when_the_input_is_skipped_or_up_to_date() {
    let env = TestEnv::new();
    env.write("trips.kml", ATTRIBUTES_KML);
    let args = ["trips.kml", "-a", "--columns", "name,speed"];
    let run = env.run(&args);
    assert_code(&run, 0);
    let csv = env.read("trips.csv");
    assert!(csv.starts_with("name,speed\nStart,12.5\n"), "{csv}");
    for extra in [None, Some("--update")] {
        let mut again = args.to_vec();
        again.extend(extra);
        let run = env.run(&again);
        assert_code(&run, 0);
        assert!(!run.stderr.contains("warning:"), "{run}");
        assert_stderr_has(&run, "0 converted, 1 skipped, 0 failed");
        assert_eq!(env.read("trips.csv"), csv);
    }
    // Merged, with the merged CSV up to date.
    let merged = [
        "trips.kml",
        "-a",
        "--columns",
        "name,speed",
        "--merge",
        "all.csv",
    ];
    assert_code(&env.run(&merged), 0);
    let run = env.run(&[&merged[..], &["--update"]].concat());
    assert_code(&run, 0);
    assert!(!run.stderr.contains("warning:"), "{run}");
}

// ---------------------------------------------------------------------------------------------
// 2. One row per feature, WKT

const FEATURES_KML: &str = r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<Placemark><name>point</name><Point><coordinates>+008.50,47.25,410</coordinates></Point></Placemark>
<Placemark><name>holes</name><Polygon>
  <outerBoundaryIs><LinearRing><coordinates>0,0 10,0 10,10 0,10 0,0</coordinates></LinearRing></outerBoundaryIs>
  <innerBoundaryIs><LinearRing><coordinates>1,1 2,1 2,2 1,1</coordinates></LinearRing></innerBoundaryIs>
</Polygon></Placemark>
<Placemark><name>two lines</name><MultiGeometry>
  <LineString><coordinates>0,0 1,1</coordinates></LineString>
  <LineString><coordinates>2,2 3,3</coordinates></LineString>
</MultiGeometry></Placemark>
<Placemark><name>mixed</name><MultiGeometry>
  <Point><coordinates>5,5</coordinates></Point>
  <LineString><coordinates>0,0 1,1</coordinates></LineString>
</MultiGeometry></Placemark>
<Placemark><name>nothing</name></Placemark>
<Placemark><name>track</name><gx:Track xmlns:gx="http://www.google.com/kml/ext/2.2">
  <when>2024-01-01T00:00:00Z</when><when>2024-01-01T00:01:00Z</when>
  <gx:coord>1 2 3</gx:coord><gx:coord>4 5 6</gx:coord>
</gx:Track></Placemark>
</Document></kml>
"#;

#[test]
fn feature_rows_have_wkt_that_a_wkt_parser_reads_back() {
    use wkt::types::Dimension;
    use wkt::Wkt;

    let env = TestEnv::new();
    env.write("f.kml", FEATURES_KML);
    let run = env.run(&["--rows", "features", "f.kml"]);
    assert_code(&run, 0);
    let csv = env.read("f.csv");
    let rows = records(&csv);
    assert_eq!(rows[0], ["feature", "name", "wkt"]);
    assert_eq!(
        column(&csv, "name"),
        ["point", "holes", "two lines", "mixed", "nothing", "track"]
    );
    assert_eq!(column(&csv, "feature"), ["0", "1", "2", "3", "4", "5"]);
    let wkt = column(&csv, "wkt");
    // Numbers in canonical text (`+008.50` in the KML).
    assert_eq!(wkt[0], "POINT Z (8.50 47.25 410)");
    assert_eq!(wkt[4], "", "a feature without coordinates");

    let parse = |text: &str| -> Wkt<f64> { text.parse().unwrap_or_else(|e| panic!("{text}: {e}")) };
    match parse(&wkt[0]) {
        Wkt::Point(p) => {
            assert_eq!(p.dimension(), Dimension::XYZ);
            let c = p.coord().unwrap();
            assert_eq!((c.x, c.y, c.z), (8.5, 47.25, Some(410.0)));
        }
        other => panic!("{other:?}"),
    }
    match parse(&wkt[1]) {
        Wkt::Polygon(p) => {
            assert_eq!(p.rings().len(), 2, "an outer ring and a hole");
            assert_eq!(p.rings()[1].coords().len(), 4);
        }
        other => panic!("{other:?}"),
    }
    match parse(&wkt[2]) {
        Wkt::MultiLineString(m) => assert_eq!(m.line_strings().len(), 2),
        other => panic!("{other:?}"),
    }
    match parse(&wkt[3]) {
        Wkt::GeometryCollection(g) => assert_eq!(g.geometries().len(), 2),
        other => panic!("{other:?}"),
    }
    match parse(&wkt[5]) {
        Wkt::LineString(l) => {
            assert_eq!(l.dimension(), Dimension::XYZ);
            assert_eq!(l.coords().len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

/// Features of every shape the WKT writer knows, as the reader would hand them over.
fn every_shape() -> Vec<Vec<kml2csv::kml::Part>> {
    use kml2csv::kml::{Part, Ring};
    let part = |geometry: &str, ring, tuples: &[[&str; 3]]| Part {
        geometry: geometry.into(),
        ring,
        tuples: tuples.iter().map(|t| t.map(str::to_owned)).collect(),
    };
    let square = [
        ["0", "0", ""],
        ["4", "0", ""],
        ["4", "4", ""],
        ["0", "4", ""],
    ];
    let hole = [["1", "1", "2"], ["2", "1", ""], ["2", "2", ""]];
    vec![
        vec![part("Point", Ring::None, &[["+008.50", "1e-3", ""]])],
        vec![part("Model", Ring::None, &[["1", "2", "3"]])],
        vec![part("LinearRing", Ring::None, &square)],
        vec![
            part("Polygon", Ring::Outer, &square),
            part("Polygon", Ring::Inner, &hole),
        ],
        vec![
            part("Polygon", Ring::Outer, &square),
            part("Polygon", Ring::Outer, &square),
        ],
        vec![
            part("Point", Ring::None, &[["1", "2", ""]]),
            part("Point", Ring::None, &[["3", "4", "5"]]),
        ],
        vec![
            part("Point", Ring::None, &[["1", "2", "7"]]),
            part("Polygon", Ring::Outer, &square),
            part("Track", Ring::None, &square),
        ],
        vec![part("LatLonQuad", Ring::None, &square)],
    ]
}

fn wkt_of(parts: &[kml2csv::kml::Part]) -> String {
    let mut text = Vec::new();
    let geometry = kml2csv::kml::Geometry::from_parts(parts).unwrap();
    kml2csv::csv::wkt::write(&geometry, &mut text).unwrap();
    String::from_utf8(text).unwrap()
}

#[test]
fn wkt_of_every_shape_parses() {
    for parts in every_shape() {
        let text = wkt_of(&parts);
        let parsed: Result<wkt::Wkt<f64>, _> = text.parse();
        assert!(parsed.is_ok(), "{text}: {:?}", parsed.err());
    }
}

fn has_ogr2ogr() -> bool {
    let found = std::process::Command::new("ogr2ogr")
        .arg("--version")
        .output_retrying()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: ogr2ogr is not installed");
    }
    found
}

/// Load `csv` (with a `wkt` column) with ogr2ogr; its geometries as WKT, one per row.
fn ogr2ogr_geometries(env: &TestEnv, csv: &str) -> Vec<String> {
    let out = std::process::Command::new("ogr2ogr")
        .current_dir(env.root())
        .args(["-f", "CSV", "/vsistdout/", csv])
        .args([
            "-oo",
            "GEOM_POSSIBLE_NAMES=wkt",
            "-oo",
            "KEEP_GEOM_COLUMNS=NO",
        ])
        .args(["-lco", "GEOMETRY=AS_WKT"])
        .output_retrying()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    column(&String::from_utf8(out.stdout).unwrap(), "WKT")
}

#[test]
fn wkt_of_every_shape_loads_with_ogr2ogr() {
    if !has_ogr2ogr() {
        return;
    }
    let env = TestEnv::new();
    let mut csv = String::from("id,wkt\n");
    for (i, parts) in every_shape().iter().enumerate() {
        csv.push_str(&format!("{i},\"{}\"\n", wkt_of(parts)));
    }
    env.write("shapes.csv", &csv);
    let loaded = ogr2ogr_geometries(&env, "shapes.csv");
    assert_eq!(loaded.len(), every_shape().len());
    for (geometry, parts) in loaded.iter().zip(every_shape()) {
        assert!(!geometry.is_empty(), "ogr2ogr rejected {}", wkt_of(&parts));
    }
}

#[test]
fn feature_rows_load_with_ogr2ogr_when_it_is_installed() {
    if !has_ogr2ogr() {
        return;
    }
    let env = TestEnv::new();
    env.write("f.kml", FEATURES_KML);
    let run = env.run(&["--rows", "features", "f.kml"]);
    assert_code(&run, 0);
    let loaded = ogr2ogr_geometries(&env, "f.csv");
    assert_eq!(loaded.len(), 6, "{loaded:?}");
    for (i, kind) in [
        "POINT Z",
        "POLYGON",
        "MULTILINESTRING",
        "GEOMETRYCOLLECTION",
        "",
        "LINESTRING Z",
    ]
    .iter()
    .enumerate()
    {
        assert!(loaded[i].starts_with(kind), "{i}: {kind} in {loaded:?}");
    }
}

#[test]
fn feature_rows_can_carry_attributes() {
    let env = TestEnv::new();
    env.write("trips.kml", ATTRIBUTES_KML);
    let run = env.run(&["--rows", "features", "-a", "trips.kml"]);
    assert_code(&run, 0);
    let csv = env.read("trips.csv");
    assert_eq!(
        records(&csv)[0].join(","),
        "feature,name,wkt,folder,description,timestamp,begin,end,style,speed,data.name,driver"
    );
    assert_eq!(
        column(&csv, "wkt"),
        ["POINT Z (1 2 3)", "LINESTRING (4 5, 6 7)"]
    );
    assert_eq!(column(&csv, "speed"), ["12.5", "80"]);
}

#[test]
fn vertex_only_columns_do_not_exist_in_feature_rows() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["--rows", "features", "--columns", "name,longitude", "a.kml"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "unknown column longitude");
    assert_stderr_has(&run, "available: feature, name, wkt");
}

// ---------------------------------------------------------------------------------------------
// 3. One merged CSV

#[test]
fn merge_writes_one_csv_with_a_source_column_in_sorted_order() {
    let env = TestEnv::new();
    env.write("in/b.kml", points_kml("b", 2));
    env.write("in/a.kml", POINT_KML);
    env.write("in/c.kml", points_kml("c", 1));
    let run = env.run(&["--merge", "out/all.csv", "in/c.kml", "in/*.kml"]);
    assert_code(&run, 0);
    let csv = env.read("out/all.csv");
    assert!(csv.starts_with(&format!("source,{HEADER}")), "{csv}");
    assert_eq!(
        column(&csv, "source"),
        ["in/a.kml", "in/b.kml", "in/b.kml", "in/c.kml"]
    );
    assert_eq!(column(&csv, "name"), ["A", "b-0", "b-1", "c-0"]);
    assert_eq!(
        env.files_ending(".csv"),
        ["out/all.csv"],
        "no per-file CSVs"
    );
    assert!(env.temporaries().is_empty(), "{:?}", env.files());
    assert_stderr_has(&run, "3 converted, 0 skipped, 0 failed; 4 rows");
}

#[test]
fn merge_is_all_or_nothing_and_skips_an_existing_file_unless_forced() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("broken.kml", "<kml><Placemark>");
    let run = env.run(&["--merge", "all.csv", "a.kml", "broken.kml"]);
    assert_code(&run, 1);
    assert_stderr_has(&run, "all.csv: not written: 1 of 2 inputs failed");
    assert!(!env.exists("all.csv"));
    assert!(env.temporaries().is_empty(), "{:?}", env.files());

    let run = env.run(&["--merge", "all.csv", "a.kml"]);
    assert_code(&run, 0);
    let first = env.read("all.csv");
    env.write("all.csv", "keep me\n");
    let run = env.run(&["-v", "--merge", "all.csv", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.read("all.csv"), "keep me\n");
    let run = env.run(&["--force", "--merge", "all.csv", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.read("all.csv"), first);
}

#[test]
fn merge_follows_update_and_dry_run() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", points_kml("b", 1));
    let now = SystemTime::now();
    set_mtime(&env.path("a.kml"), now - Duration::from_secs(120));
    set_mtime(&env.path("b.kml"), now - Duration::from_secs(120));

    let run = env.run(&["-n", "--merge", "all.csv", "b.kml", "a.kml", "gone.kml"]);
    assert_code(&run, 1);
    // The system words "not found" (ENOENT, ERROR_FILE_NOT_FOUND: both 2) its own way.
    let not_found = std::io::Error::from_raw_os_error(2);
    assert_eq!(
        run.stdout,
        format!(
            "convert a.kml -> all.csv\n\
             convert b.kml -> all.csv\n\
             refuse  gone.kml: cannot read: {not_found}\n\
             refuse  all.csv: not written, 1 input would fail\n"
        )
    );
    assert!(!env.exists("all.csv"));

    // Made with --update, which records its inputs (see: issue 17, item 7).
    let run = env.run(&["-u", "--merge", "all.csv", "a.kml", "b.kml"]);
    assert_code(&run, 0);
    let run = env.run(&["-n", "-u", "--merge", "all.csv", "a.kml", "b.kml"]);
    assert_code(&run, 0);
    assert!(
        run.stdout.contains("skip    a.kml -> all.csv (up to date)"),
        "{run}"
    );
    let run = env.run(&["-u", "--merge", "all.csv", "a.kml", "b.kml"]);
    assert_stderr_has(&run, "0 converted, 2 skipped");

    env.write("b.kml", points_kml("changed", 1));
    set_mtime(&env.path("all.csv"), now - Duration::from_secs(60));
    let run = env.run(&["-u", "--merge", "all.csv", "a.kml", "b.kml"]);
    assert_code(&run, 0);
    assert_stderr_has(&run, "2 converted, 0 skipped");
    assert!(env.read("all.csv").contains("b.kml,0,changed-0,"));
}

#[test]
fn merge_to_stdout_and_the_header_is_the_union_of_all_inputs() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("trips.kml", ATTRIBUTES_KML);
    let run = env.run(&["--merge", "-", "--attributes", "trips.kml", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(run.stderr, "", "no summary when the CSV goes to stdout");
    let header = run.stdout.lines().next().unwrap();
    assert_eq!(
        header,
        "source,feature,name,geometry,part,ring,vertex,longitude,latitude,altitude,when,\
         folder,description,timestamp,begin,end,style,speed,data.name,driver"
    );
    assert_eq!(
        column(&run.stdout, "source"),
        ["a.kml", "trips.kml", "trips.kml", "trips.kml"]
    );
    assert_eq!(column(&run.stdout, "speed"), ["", "12.5", "80", "80"]);
}

// ---------------------------------------------------------------------------------------------
// 4. Pipes

#[test]
fn stdin_kml_is_converted_to_stdout() {
    let env = TestEnv::new();
    let run = run_with_stdin(&env, &["-"], POINT_KML.as_bytes());
    assert_code(&run, 0);
    assert_eq!(run.stdout, format!("{HEADER}{POINT_ROW}"));
    assert!(env.files().is_empty(), "{:?}", env.files());
}

#[test]
fn stdin_kmz_is_converted_too() {
    let env = TestEnv::new();
    let kmz =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kmz/deflated.kmz")).unwrap();
    let run = run_with_stdin(&env, &["-"], &kmz);
    assert_code(&run, 0);
    let expected = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected/kmz__deflated.kmz.csv"),
    )
    .unwrap();
    assert_eq!(run.stdout, expected);
}

#[test]
fn stdin_with_attributes_is_read_twice_and_can_be_merged() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = run_with_stdin(
        &env,
        &[
            "--merge",
            "-",
            "-a",
            "--columns",
            "source,name,speed",
            "-",
            "a.kml",
        ],
        ATTRIBUTES_KML.as_bytes(),
    );
    assert_code(&run, 0);
    assert_eq!(
        run.stdout,
        "source,name,speed\n-,Start,12.5\n-,Leg,80\n-,Leg,80\na.kml,A,\n"
    );
}

/// A named pipe (what `<(zcat x.kml.gz)` gives) can be read only once, but `--attributes` reads
/// its input twice: it is copied first.
#[cfg(unix)]
#[test]
fn a_named_pipe_with_attributes_is_read_twice() {
    let env = TestEnv::new();
    for args in [&["-a", "--out", "out"][..], &["-a", "--merge", "all.csv"]] {
        let fifo = env.path("trips.kml");
        let _ = fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status_retrying();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: mkfifo failed");
            return;
        }
        let writer = std::thread::spawn(move || {
            // Blocks until kml2csv opens the pipe.
            fs::write(&fifo, ATTRIBUTES_KML).unwrap();
        });
        // Reading the pipe a second time would wait forever for a writer: give up after 30 s.
        let mut child = env
            .command()
            .args(args)
            .arg("trips.kml")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_retrying()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("kml2csv {args:?} is stuck reading the pipe twice");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let run = common::run_of(child.wait_with_output().unwrap());
        writer.join().unwrap();
        assert_code(&run, 0);
    }
    let csv = env.read("out/trips.csv");
    assert_eq!(column(&csv, "speed"), ["12.5", "80", "80"]);
    let csv = env.read("all.csv");
    assert_eq!(column(&csv, "driver"), ["", "Ann", "Ann"]);
}

#[test]
fn out_dash_writes_one_input_to_stdout_and_refuses_several() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", POINT_KML);
    let run = env.run(&["a.kml", "--out", "-"]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, format!("{HEADER}{POINT_ROW}"));
    assert!(env.files_ending(".csv").is_empty());

    let run = env.run(&["*.kml", "--out", "-"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "2 inputs");
    assert_stderr_has(&run, "--merge -");
    assert_eq!(run.stdout, "");

    let run = env.run(&["-", "a.kml"]);
    assert_code(&run, 2);
    assert_stderr_has(&run, "--merge");
}

#[test]
fn stdin_named_twice_or_with_out_dir_is_a_usage_error() {
    let env = TestEnv::new();
    let run = run_with_stdin(&env, &["-", "-"], POINT_KML.as_bytes());
    assert_code(&run, 2);
    assert_stderr_has(&run, "only once");
    let run = run_with_stdin(&env, &["-", "--out", "dir"], POINT_KML.as_bytes());
    assert_code(&run, 2);
    assert_stderr_has(&run, "standard output");
    assert!(env.files().is_empty());
}

#[test]
fn feature_rows_merge_too() {
    let env = TestEnv::new();
    env.write("b.kml", POINT_KML);
    env.write("a.kml", points_kml("a", 2));
    let run = env.run(&["--rows", "features", "--merge", "-", "b.kml", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(
        run.stdout,
        "source,feature,name,wkt\n\
         a.kml,0,a-0,POINT Z (0.5 -0.25 2)\n\
         a.kml,1,a-1,POINT Z (1.5 -1.25 2)\n\
         b.kml,0,A,POINT Z (1 2 3)\n"
    );
}

#[test]
fn a_closed_pipe_ends_quietly_with_status_0() {
    let env = TestEnv::new();
    env.write("big.kml", points_kml("p", 50_000));
    for args in [&["big.kml", "--out", "-"][..], &["--merge", "-", "big.kml"]] {
        let mut child = env
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_retrying()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout); // like `| head -c 100`
        let run = common::run_of(child.wait_with_output().unwrap());
        assert_code(&run, 0);
        assert_eq!(run.stderr, "", "{run}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Progress, reports, colour

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let env = TestEnv::new();
    for i in 0..5 {
        env.write(&format!("in/{i}.kml"), points_kml("p", 2000));
    }
    let run = env.run(&["in"]);
    assert_code(&run, 0);
    assert!(!run.stderr.contains('\r'), "{run:?}");
    assert!(!run.stderr.contains('\x1b'), "{run:?}");
    assert!(!run.stderr.contains("ETA"), "{run}");
    assert_eq!(run.lines().len(), 1, "only the summary\n{run}");
}

/// On a terminal (a pseudo-terminal from util-linux `script`) the bar is drawn, and `--quiet`
/// still hides it.
#[cfg(unix)]
#[test]
fn progress_bar_on_a_terminal_unless_quiet() {
    let util_linux = std::process::Command::new("script")
        .arg("--version")
        .output_retrying()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("util-linux"));
    if !util_linux {
        eprintln!("skipped: util-linux script is not installed");
        return;
    }
    let env = TestEnv::new();
    env.write("a.kml", points_kml("p", 20_000));
    let in_terminal = |args: &str| {
        let out = std::process::Command::new("script")
            .current_dir(env.root())
            .args([
                "-qec",
                &format!("{} {args}", env!("CARGO_BIN_EXE_kml2csv")),
                "/dev/null",
            ])
            .output_retrying()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = in_terminal("-f a.kml");
    assert!(
        shown.contains("0/1 files") && shown.contains("ETA"),
        "{shown:?}"
    );
    let shown = in_terminal("-f -q a.kml");
    assert!(!shown.contains("ETA"), "{shown:?}");
}

#[test]
fn report_json_has_every_input_and_the_totals() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", POINT_KML);
    env.write("b.csv", "old");
    env.write("bad.kml", "<kml><Placemark>");
    env.write(
        "w.kml",
        r#"<kml><Placemark><LineString><coordinates>1,2 x,y 3,4</coordinates></LineString></Placemark></kml>"#,
    );
    let run = env.run(&[
        "--report",
        "reports/run.json",
        "a.kml",
        "b.kml",
        "bad.kml",
        "w.kml",
    ]);
    assert_code(&run, 1);
    let report: serde_json::Value = serde_json::from_str(&env.read("reports/run.json")).unwrap();
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["totals"]["inputs"], 4);
    assert_eq!(report["totals"]["converted"], 2);
    assert_eq!(report["totals"]["skipped"], 1);
    assert_eq!(report["totals"]["failed"], 1);
    let inputs = report["inputs"].as_array().unwrap();
    let by_name = |name: &str| {
        inputs
            .iter()
            .find(|i| i["input"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    assert_eq!(by_name("a.kml")["status"], "converted");
    assert_eq!(by_name("a.kml")["output"], "a.csv");
    assert_eq!(by_name("a.kml")["rows"], 1);
    assert_eq!(by_name("a.kml")["bytes"], POINT_KML.len());
    assert!(by_name("a.kml")["duration_seconds"].is_number());
    assert_eq!(by_name("b.kml")["status"], "skipped");
    assert_eq!(by_name("bad.kml")["status"], "failed");
    assert!(by_name("bad.kml")["error"]["message"].is_string());
    let warning = &by_name("w.kml")["warnings"][0];
    assert!(
        warning["line"].is_number() && warning["column"].is_number(),
        "{warning}"
    );
    assert_eq!(by_name("w.kml")["warnings_total"], 1);
    assert!(env.temporaries().is_empty());
}

#[test]
fn report_dash_goes_to_stdout() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["-q", "--report", "-", "a.kml"]);
    assert_code(&run, 0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["inputs"][0]["status"], "converted");
    assert_eq!(report["outcome"], "success");
    // Not when the CSV goes there too.
    let run = env.run(&["--report", "-", "--out", "-", "a.kml"]);
    assert_code(&run, 2);
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let env = TestEnv::new();
    let run = env.run(&["missing.kml"]);
    assert!(!run.stderr.contains('\x1b'), "auto, not a terminal\n{run}");
    let run = env.run(&["--color", "always", "missing.kml"]);
    assert!(run.stderr.contains("\x1b[31m"), "{run:?}");
    let run = env.run(&["--color", "never", "missing.kml"]);
    assert!(!run.stderr.contains('\x1b'), "{run:?}");
    let run = env
        .command()
        .args(["--color", "auto", "missing.kml"])
        .env("NO_COLOR", "1")
        .output_retrying()
        .unwrap();
    assert!(!String::from_utf8_lossy(&run.stderr).contains('\x1b'));
}

// ---------------------------------------------------------------------------------------------
// 6. Make semantics

fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[test]
fn update_reconverts_older_outputs_and_skips_up_to_date_ones() {
    let env = TestEnv::new();
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    env.write("old.kml", POINT_KML);
    env.write("old.csv", "stale\n");
    set_mtime(&env.path("old.kml"), now);
    set_mtime(&env.path("old.csv"), now - hour);
    env.write("fresh.kml", POINT_KML);
    env.write("fresh.csv", "fresh\n");
    set_mtime(&env.path("fresh.kml"), now - hour);
    set_mtime(&env.path("fresh.csv"), now);

    // --dry-run says so and writes nothing.
    let run = env.run(&["--update", "--dry-run", "old.kml", "fresh.kml", "new.kml"]);
    assert_code(&run, 1);
    assert!(
        run.stdout
            .contains("convert old.kml -> old.csv (the input is newer"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("skip    fresh.kml -> fresh.csv (up to date)"),
        "{run}"
    );
    assert!(run.stdout.contains("refuse  new.kml: "), "{run}");
    assert_stderr_has(&run, "nothing was written");
    assert_eq!(env.read("old.csv"), "stale\n");
    assert!(env.temporaries().is_empty());

    let run = env.run(&["--update", "-v", "old.kml", "fresh.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.read("old.csv"), format!("{HEADER}{POINT_ROW}"));
    assert_eq!(env.read("fresh.csv"), "fresh\n");
    assert_stderr_has(&run, "fresh.kml: skipped, fresh.csv is up to date");

    let run = env.run(&["--update", "--force", "fresh.kml"]);
    assert_code(&run, 0);
    assert_eq!(env.read("fresh.csv"), format!("{HEADER}{POINT_ROW}"));
}

#[test]
fn dry_run_lists_conversions_skips_and_refusals() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    env.write("b.kml", POINT_KML);
    env.write("b.csv", "old");
    env.write("c.kml", POINT_KML);
    env.write("c.csv/x", "");
    let run = env.run(&["-n", "a.kml", "b.kml", "c.kml"]);
    assert_code(&run, 1);
    assert_eq!(
        run.stdout,
        "convert a.kml -> a.csv (no CSV yet)\n\
         skip    b.kml -> b.csv (already exists; --force overwrites it, --update if it is older than the input)\n\
         refuse  c.kml: output c.csv is a directory; refusing to replace it\n"
    );
    assert_stderr_has(
        &run,
        "dry run: 1 to convert, 1 to skip, 1 refused; nothing was written",
    );
    assert!(!env.exists("a.csv"));
}

// ---------------------------------------------------------------------------------------------
// 7. CSV dialects

#[test]
fn delimiter_tsv_no_header_and_bom() {
    let env = TestEnv::new();
    env.write("a.kml", POINT_KML);
    let run = env.run(&["--delimiter", ";", "--out", "-", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(
        run.stdout,
        format!(
            "{}{}",
            HEADER.replace(',', ";"),
            POINT_ROW.replace(',', ";")
        )
    );

    let run = env.run(&["--tsv", "--no-header", "--out", "-", "a.kml"]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, POINT_ROW.replace(',', "\t"));

    let run = env.run(&["--bom", "a.kml"]);
    assert_code(&run, 0);
    let bytes = fs::read(env.path("a.csv")).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBFfeature,name,"), "{bytes:?}");

    let run = env.run(&["--tsv", "--delimiter", ";", "a.kml"]);
    assert_code(&run, 2);
    let run = env.run(&["--delimiter", ";;", "a.kml"]);
    assert_code(&run, 2);
}

#[test]
fn formula_guard_quotes_formulas_but_never_numbers() {
    let env = TestEnv::new();
    env.write(
        "f.kml",
        r#"<kml><Placemark><name>=SUM(A1:A9)</name><Point><coordinates>-12.5,-3,-4</coordinates></Point></Placemark>
<Placemark><name>@cmd</name><Point><coordinates>1,2</coordinates></Point></Placemark>
<Placemark><name>plain -1</name><Point><coordinates>1,2</coordinates></Point></Placemark></kml>"#,
    );
    let run = env.run(&["--formula-guard", "--no-header", "--out", "-", "f.kml"]);
    assert_code(&run, 0);
    assert_eq!(
        run.stdout,
        "0,'=SUM(A1:A9),Point,0,,0,-12.5,-3,-4,\n\
         1,'@cmd,Point,0,,0,1,2,,\n\
         2,plain -1,Point,0,,0,1,2,,\n"
    );
    // Off by default: the CSV keeps the text as it is.
    let run = env.run(&["--no-header", "--out", "-", "f.kml"]);
    assert!(run.stdout.starts_with("0,=SUM(A1:A9),"), "{run}");
}

// ---------------------------------------------------------------------------------------------
// 8. Shell integration

#[test]
fn completions_for_every_shell() {
    let env = TestEnv::new();
    for (shell, marker) in [
        ("bash", "_kml2csv()"),
        ("zsh", "#compdef kml2csv"),
        ("fish", "complete -c kml2csv"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let run = env.run(&["completions", shell]);
        assert_code(&run, 0);
        assert!(run.stdout.contains(marker), "{shell}\n{run}");
        assert!(run.stdout.contains("attributes"), "{shell}\n{run}");
    }
    let run = env.run(&["completions", "tcsh"]);
    assert_code(&run, 2);
}

#[test]
fn man_page() {
    let env = TestEnv::new();
    let run = env.run(&["man"]);
    assert_code(&run, 0);
    assert!(run.stdout.contains(".TH kml2csv 1"), "{run}");
    assert!(run.stdout.contains("merge"), "{run}");
    assert!(env.files().is_empty());
}

#[test]
fn inputs_named_like_the_subcommands_still_convert() {
    let env = TestEnv::new();
    env.write("completions", POINT_KML);
    env.write("man", POINT_KML);
    let run = env.run(&["./completions", "man"]);
    assert_code(&run, 0);
    assert_eq!(env.files_ending(".csv"), ["completions.csv", "man.csv"]);
    // As the first word, they are the commands.
    let run = env.run(&["man"]);
    assert!(
        run.stdout.starts_with(".ie") || run.stdout.contains(".TH"),
        "{run}"
    );
}

#[test]
fn every_new_flag_is_in_the_help() {
    let env = TestEnv::new();
    let run = env.run(&["--help"]);
    assert_code(&run, 0);
    for flag in [
        "--attributes",
        "--columns",
        "--rows",
        "--merge",
        "--out",
        "--report",
        "--color",
        "--update",
        "--force",
        "--dry-run",
        "--delimiter",
        "--tsv",
        "--no-header",
        "--bom",
        "--formula-guard",
        "completions",
        "man",
    ] {
        assert!(run.stdout.contains(flag), "{flag}\n{run}");
    }
}

/// See: issue 17 (3): the WKT of a feature too large to hold (its geometry goes to a
/// temporary file) is streamed into the row; the row must be what a small feature's would be,
/// quoted or not as the delimiter asks, alone or among other columns.
#[test]
fn a_feature_too_large_for_memory_is_written_as_the_same_wkt() {
    let env = TestEnv::new();
    let tuples = 150_000;
    let mut kml = String::from(r#"<kml><Placemark><LineString><coordinates>"#);
    let mut wkt = String::from("LINESTRING Z (");
    for i in 0..tuples {
        kml.push_str(&format!("+{}.25,-{}.5,{} ", i % 180, i % 90, i));
        if i > 0 {
            wkt.push_str(", ");
        }
        wkt.push_str(&format!("{}.25 -{}.5 {}", i % 180, i % 90, i));
    }
    wkt.push(')');
    kml.push_str(r#"</coordinates></LineString><name>big "one"</name>"#);
    kml.push_str(r#"<ExtendedData><Data name="k"><value>v</value></Data></ExtendedData>"#);
    kml.push_str("</Placemark></kml>");
    env.write("big.kml", &kml);

    let run = env.run(&["big.kml", "--rows", "features", "--out", "-"]);
    assert_code(&run, 0);
    assert_eq!(
        run.stdout,
        format!("feature,name,wkt\n0,\"big \"\"one\"\"\",\"{wkt}\"\n")
    );
    let run = env.run(&[
        "big.kml", "--rows", "features", "-a", "-d", ";", "--out", "-",
    ]);
    assert_code(&run, 0);
    assert_eq!(
        run.stdout,
        format!(
            "feature;name;wkt;folder;description;timestamp;begin;end;style;k\n\
             0;\"big \"\"one\"\"\";{wkt};;;;;;;v\n"
        )
    );
    let run = env.run(&[
        "big.kml",
        "--rows",
        "features",
        "--columns",
        "wkt,wkt",
        "--out",
        "-",
    ]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, format!("wkt,wkt\n\"{wkt}\",\"{wkt}\"\n"));
    let run = env.run(&[
        "big.kml",
        "--rows",
        "features",
        "--columns",
        "wkt",
        "--out",
        "-",
    ]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, format!("wkt\n\"{wkt}\"\n"));
}

/// See: one-column CSVs are now assembled like the others; an empty field must still be
/// written `""` so that its row is not an empty line.
#[test]
fn a_one_column_csv_keeps_its_empty_rows() {
    let env = TestEnv::new();
    env.write(
        "a.kml",
        r#"<kml><Document><Placemark><name>x</name></Placemark><Placemark><Point><coordinates>1,2</coordinates></Point></Placemark></Document></kml>"#,
    );
    let run = env.run(&[
        "a.kml",
        "--rows",
        "features",
        "--columns",
        "wkt",
        "--out",
        "-",
    ]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, "wkt\n\"\"\nPOINT (1 2)\n");
    let run = env.run(&["a.kml", "--columns", "altitude", "--out", "-"]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, "altitude\n\"\"\n");
}

/// See: issue 17 (7): `--merge --update` compared dates only, so it never took in a new input
/// whose date is old (copied with its date, unpacked from an archive) and kept the rows of a
/// deleted one. A merged CSV is now up to date only when its exact set of inputs, in the same
/// versions, is what it was made of.
#[test]
fn a_merged_csv_is_up_to_date_only_for_the_same_inputs() {
    let env = TestEnv::new();
    env.write("in/a.kml", points_kml("a", 1));
    env.write("in/b.kml", points_kml("b", 1));
    let args = ["in/*.kml", "--merge", "all.csv", "--update"];
    let sources = |env: &TestEnv| column(&env.read("all.csv"), "source");
    assert_code(&env.run(&args), 0);
    assert_eq!(sources(&env), ["in/a.kml", "in/b.kml"]);
    assert!(env.exists(".all.csv.kml2csv-inputs"), "{:?}", env.files());
    let run = env.run(&args);
    assert_code(&run, 0);
    assert_stderr_has(&run, "0 converted, 2 skipped");

    // A new input dated long before the merged CSV.
    env.write("in/c.kml", points_kml("c", 1));
    set_mtime(
        &env.path("in/c.kml"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
    );
    assert_code(&env.run(&args), 0);
    assert_eq!(sources(&env), ["in/a.kml", "in/b.kml", "in/c.kml"]);
    // An input deleted.
    fs::remove_file(env.path("in/b.kml")).unwrap();
    assert_code(&env.run(&args), 0);
    assert_eq!(sources(&env), ["in/a.kml", "in/c.kml"]);
    // An input replaced by an older version of the same size.
    env.write("in/a.kml", points_kml("z", 1));
    set_mtime(
        &env.path("in/a.kml"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
    );
    assert_code(&env.run(&args), 0);
    assert!(env.read("all.csv").contains("z-0"));
    let run = env.run(&args);
    assert_stderr_has(&run, "0 converted, 2 skipped");
    // A run without --update that writes the CSV drops the record it no longer matches.
    assert_code(&env.run(&["in/a.kml", "--merge", "all.csv", "--force"]), 0);
    assert!(!env.exists(".all.csv.kml2csv-inputs"), "{:?}", env.files());
}

/// See: issue 17 (7): a KML rewritten while it was converted gave a CSV of neither version,
/// dated after the new one, which `--update` then took as up to date for ever. A file that
/// changes while it is read is read again, and fails (writing nothing) if it keeps changing.
#[test]
fn a_file_that_changes_while_it_is_read_is_not_converted_from_a_mix() {
    let env = TestEnv::new();
    let path = env.write("busy.kml", common::long_line_kml(300_000));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let toucher = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let file = fs::OpenOptions::new().append(true).open(&path).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A writer still at work: the file grows and its date moves.
                n += 1;
                (&file).write_all(b" ").unwrap();
                file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(n))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let run = env.run(&["busy.kml"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    toucher.join().unwrap();
    assert_code(&run, 1);
    assert_stderr_has(
        &run,
        "busy.kml: the file changed while it was read, 3 times in a row",
    );
    assert!(!env.exists("busy.csv"), "{:?}", env.files());
    // Once the writer is done, it converts.
    assert_code(&env.run(&["busy.kml", "--update"]), 0);
    assert!(env.exists("busy.csv"));
}
