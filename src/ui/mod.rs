//! What the user sees: the one printer every message goes through, the progress bar, the JSON
//! report, and file names as text.
//!
//! Below the batch, which reports to it as it runs; above the durable output (the JSON report is
//! published like a CSV). Knows nothing of the command line or of how a batch is planned.

pub mod json_report;
pub mod path_text;
pub mod progress;
pub mod report;
