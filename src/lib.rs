//! kml2csv: convert batches of KML/KMZ files to CSV, one row per vertex.
//!
//! The library is split by job so that tests and benchmarks can drive each part without the
//! command line:
//!
//! - [`kml`]: the streaming reader (KML, KMZ, encodings) that reports every vertex to a sink;
//! - [`csv_out`]: the CSV schema and a sink that writes rows;
//! - [`plan`]: inputs (paths and glob patterns) to jobs `{input, output}`;
//! - [`convert`]: one job: read, write a temporary file;
//! - [`commit`]: make finished temporaries durable in groups, then rename them into place;
//! - [`run`]: the parallel batch, cancellation and the exit status;
//! - [`shard`]: `--shard K/N`, the stable partition of a batch across machines;
//! - [`report`]: everything printed to the user.

pub mod cli;
pub mod commit;
pub mod config;
pub mod convert;
pub mod csv_out;
pub mod kml;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod run;
pub mod shard;
