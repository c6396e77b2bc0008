//! The CSVs load into what users load them into: pandas, DuckDB, sqlite3, PostgreSQL and GDAL,
//! with numbers typed as numbers and every header a usable column name (issue 13, item 5).
//!
//! Each test runs its consumer when it is installed. Outside CI a missing one is reported as
//! `SKIPPED` on stderr; under `CI=true` it is a failure, and `.ci/run` installs them all.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::Command;

use common::TestEnv;

/// Numbers as KML writers put them (`+008.5155383`, `.5`, `-000.5`, `9.`), and ExtendedData
/// fields whose headers used to clash (`name` and `data.name`) or be empty (no name).
const ODD_KML: &str = r#"<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<Placemark><name>odd numbers</name>
<ExtendedData><Data name="name"><value>n1</value></Data><Data name="data.name"><value>n2</value></Data><Data><value>anon</value></Data><Data name="speed"><value>12.5</value></Data></ExtendedData>
<LineString><coordinates>+008.5155383,+047.25,0010 .5,-000.5 -122.0,37.5,-.5 9.,10.,+1</coordinates></LineString></Placemark>
</Document></kml>"#;

/// The longitudes of `ODD_KML`, in numeric order.
const ODD_SORTED: [f64; 4] = [-122.0, 0.5, 8.5155383, 9.0];

/// Whether `tool` can run; if not, says so, and fails under CI.
fn have(tool: &str, probe: &[&str]) -> bool {
    let found = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let message = format!("{tool} is not installed (.ci/run installs it)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
    }
    found
}

fn python_has(module: &str) -> bool {
    have("python3", &["-c", &format!("import {module}")])
}

/// The bundled fixtures and `ODD_KML` converted into `out/` (one row per vertex) and, with
/// `--attributes`, into `attributes/`.
fn converted() -> TestEnv {
    let env = TestEnv::new();
    env.write("odd.kml", ODD_KML);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let pattern = format!("{}/*.km[lz]", fixtures.display());
    let run = env.run(&[&pattern, "odd.kml", "--out", "out", "-q"]);
    assert_eq!(run.code, Some(0), "{run}");
    let run = env.run(&[&pattern, "odd.kml", "--out", "attributes", "-a", "-q"]);
    assert_eq!(run.code, Some(0), "{run}");
    env
}

fn output(env: &TestEnv, command: &mut Command) -> String {
    let out = command.current_dir(env.root()).output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pandas_reads_numbers_as_floats_and_every_header_as_its_own_column() {
    if !python_has("pandas") {
        return;
    }
    let env = converted();
    let script = r#"
import glob, sys
import pandas as pd
for folder in ("out", "attributes"):
    for path in sorted(glob.glob(folder + "/**/*.csv", recursive=True)):
        frame = pd.read_csv(path)
        for c in frame.columns:
            # pandas names an empty header "Unnamed: N" and a repeated one "x.1".
            assert not c.startswith("Unnamed") and c not in ("",), (path, list(frame.columns))
        assert len(set(frame.columns)) == len(frame.columns), (path, list(frame.columns))
        if len(frame):
            for c in ("longitude", "latitude"):
                assert frame[c].dtype.kind == "f" or frame[c].dtype.kind == "i", (path, c, frame[c].dtype)
odd = pd.read_csv("attributes/odd.csv")
assert list(odd.columns[-4:]) == ["data.name", "data.name_2", "data.unnamed", "speed"], list(odd.columns)
print(",".join(str(x) for x in sorted(odd["longitude"])))
"#;
    let sorted = output(&env, Command::new("python3").args(["-c", script]));
    assert_eq!(sorted.trim(), "-122.0,0.5,8.5155383,9.0");
}

/// The README's DuckDB recipe, `read_csv_auto('out/**/*.csv', union_by_name = true)` over
/// several files: `+008.5` made the longitude text.
#[test]
fn duckdb_reads_a_folder_of_csvs_with_numeric_coordinates() {
    if !python_has("duckdb") {
        return;
    }
    let env = converted();
    let script = r#"
import duckdb
rel = duckdb.sql("SELECT typeof(longitude) AS t, typeof(latitude) AS u, count(*) AS n FROM read_csv_auto('out/**/*.csv', union_by_name = true) GROUP BY ALL")
rows = rel.fetchall()
assert len(rows) == 1 and rows[0][0] == "DOUBLE" and rows[0][1] == "DOUBLE", rows
odd = duckdb.sql("SELECT longitude FROM read_csv_auto('out/**/*.csv', union_by_name = true, filename = true) WHERE filename LIKE '%odd.csv' ORDER BY longitude").fetchall()
print(",".join(str(r[0]) for r in odd))
cols = [c[0] for c in duckdb.sql("DESCRIBE SELECT * FROM read_csv_auto('attributes/odd.csv')").fetchall()]
assert len(cols) == len(set(cols)) and "" not in cols, cols
"#;
    let sorted = output(&env, Command::new("python3").args(["-c", script]));
    let got: Vec<f64> = sorted
        .trim()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(got, ODD_SORTED);
}

/// The README's sqlite3 recipe, as written: numbers land as REAL and sort as numbers.
#[test]
fn sqlite_imports_the_csv_and_sorts_longitudes_numerically() {
    if !have("sqlite3", &["-version"]) {
        return;
    }
    let env = converted();
    let sorted = output(
        &env,
        Command::new("sqlite3").args([
            ":memory:",
            "CREATE TABLE points (feature INTEGER, name TEXT, geometry TEXT, part INTEGER, \
             ring TEXT, vertex INTEGER, longitude REAL, latitude REAL, altitude REAL, \"when\" TEXT);",
            ".import --csv --skip 1 out/odd.csv points",
            "SELECT count(*) FROM points WHERE typeof(longitude) <> 'real' OR typeof(latitude) <> 'real';",
            "SELECT group_concat(longitude) FROM (SELECT longitude FROM points ORDER BY longitude);",
        ]),
    );
    let lines: Vec<&str> = sorted.lines().collect();
    assert_eq!(lines, ["0", "-122.0,0.5,8.5155383,9.0"]);
}

/// The README's PostgreSQL recipe, on a throw-away server listening on 127.0.0.1 only.
#[test]
fn postgresql_copies_the_merged_csv_with_when_and_end_quoted() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consumers/postgres.sh");
    let available = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        let message = "PostgreSQL (initdb, pg_ctl, psql) is not installed (.ci/run installs it)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
        return;
    }
    let env = converted();
    let out = output(
        &env,
        Command::new("bash")
            .arg(&script)
            .env("KML2CSV", env!("CARGO_BIN_EXE_kml2csv")),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last().copied(), Some("-122|0.5|8.5155383|9"), "{out}");
}

/// The README's ogr2ogr recipe: a layer in EPSG:4326, numbers typed as numbers.
#[test]
fn gdal_loads_features_with_a_crs_and_numeric_columns() {
    if !have("ogr2ogr", &["--version"]) {
        return;
    }
    let env = converted();
    let run = env.run(&[
        "odd.kml",
        "--rows",
        "features",
        "--attributes",
        "--out",
        "wkt",
    ]);
    assert_eq!(run.code, Some(0), "{run}");
    output(
        &env,
        Command::new("ogr2ogr").args([
            "-f",
            "GPKG",
            "odd.gpkg",
            "wkt/odd.csv",
            "-a_srs",
            "EPSG:4326",
            "-oo",
            "AUTODETECT_TYPE=YES",
            "-oo",
            "GEOM_POSSIBLE_NAMES=wkt",
            "-oo",
            "KEEP_GEOM_COLUMNS=NO",
        ]),
    );
    let info = output(
        &env,
        Command::new("ogrinfo").args(["-so", "odd.gpkg", "odd"]),
    );
    assert!(
        info.contains("EPSG\",4326") || info.contains("EPSG:4326"),
        "{info}"
    );
    assert!(info.contains("Feature Count: 1"), "{info}");
    assert!(
        info.contains("Extent: (-122.000000, -0.500000) - (9.000000, 47.250000)"),
        "{info}"
    );
    assert!(info.contains("speed: Real"), "{info}");
    // And the vertex rows: longitude and latitude are numbers.
    let info = output(
        &env,
        Command::new("ogrinfo").args(["-so", "-oo", "AUTODETECT_TYPE=YES", "out/odd.csv", "odd"]),
    );
    assert!(info.contains("longitude: Real"), "{info}");
    assert!(info.contains("latitude: Real"), "{info}");
}
