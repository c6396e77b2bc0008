//! kml2csv: convert batches of KML/KMZ files to CSV, one row per vertex.
//!
//! The library is split by job so that tests and benchmarks can drive each part without the
//! command line:
//!
//! - [`kml`]: the streaming reader (KML, KMZ, encodings) that reports every vertex to a sink;
//! - [`csv_out`]: the CSV schema and a sink that writes rows;
//! - [`plan`]: inputs (paths and glob patterns) to jobs `{input, output}`;
//! - [`convert`]: one job: read, write a temporary file, make it durable, rename it into place;
//! - [`run`]: the parallel batch, cancellation and the exit status;
//! - [`report`]: everything printed to the user.

pub mod cli;
pub mod config;
pub mod convert;
pub mod csv_out;
pub mod dry_run;
pub mod input;
pub mod json_report;
pub mod kml;
pub mod plan;
pub mod progress;
pub mod report;
pub mod run;
pub mod stream;
pub mod wkt;
