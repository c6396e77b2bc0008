//! The CSV schema and the row writer.
//!
//! A CSV has one row per vertex (the default) or one row per feature (`--rows features`, the
//! geometry as WKT). Which columns it has, and in which order, is decided before its first row:
//! [`Shape`] is what the command line asked for, [`Layout`] the columns of one output once the
//! ExtendedData fields of its input(s) are known.
//!
//! Numbers are never formatted from floats: they are the KML's text, in canonical form unless
//! asked verbatim ([`number`]), and fields are written one by one from borrowed slices:
//! writing a vertex row allocates nothing.

pub mod number;
mod rows;
mod schema;
pub mod wkt;

pub use number::Numbers;
pub(crate) use rows::SequenceKey;
pub use rows::{into_io, write_header, RowWriter, VertexWriter};
pub use schema::{
    data_header, field_headers, many_fields_warning, Column, Dialect, FieldUnion, Layout, RowKind,
    Shape, UnknownColumns, ATTRIBUTE_COLUMNS, BOM, COLUMNS, DATA_PREFIX, FEATURE_COLUMNS,
    MANY_FIELDS, SOURCE_COLUMN,
};
