//! What a CSV's columns are: the fixed columns, the ExtendedData fields, `--columns`, the
//! dialect. Decided before the first row, apart from how rows are written.

use std::collections::HashSet;
use std::fmt;

use super::Numbers;

/// The header row of the default CSV (one row per vertex), in order.
pub const COLUMNS: [&str; 10] = [
    "feature",
    "name",
    "geometry",
    "part",
    "ring",
    "vertex",
    "longitude",
    "latitude",
    "altitude",
    "when",
];

/// The standard columns of `--rows features`.
pub const FEATURE_COLUMNS: [&str; 3] = ["feature", "name", "wkt"];

/// The descriptive columns `--attributes` adds after the standard ones (then one per
/// ExtendedData field).
pub const ATTRIBUTE_COLUMNS: [&str; 6] = [
    "folder",
    "description",
    "timestamp",
    "begin",
    "end",
    "style",
];

/// The leading column of a merged CSV.
pub const SOURCE_COLUMN: &str = "source";

/// UTF-8 byte order mark, for spreadsheets that guess the encoding otherwise.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What one row stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowKind {
    /// One row per vertex.
    #[default]
    Vertices,
    /// One row per feature, its geometry as WKT.
    Features,
}

/// How fields and rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    /// Write the header row.
    pub header: bool,
    /// Start the file with a UTF-8 byte order mark.
    pub bom: bool,
    /// Put `'` before text fields that a spreadsheet would run as a formula.
    pub formula_guard: bool,
    /// How coordinates are written.
    pub numbers: Numbers,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            delimiter: b',',
            header: true,
            bom: false,
            formula_guard: false,
            numbers: Numbers::Canonical,
        }
    }
}

/// One column of an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Source,
    Feature,
    Name,
    Geometry,
    Part,
    Ring,
    Vertex,
    Longitude,
    Latitude,
    Altitude,
    When,
    Wkt,
    Folder,
    Description,
    Timestamp,
    Begin,
    End,
    Style,
    /// The ExtendedData field of this name.
    Data(String),
}

/// Every fixed (non-ExtendedData) column, with its header name.
const FIXED: [(&str, Column); 18] = [
    ("source", Column::Source),
    ("feature", Column::Feature),
    ("name", Column::Name),
    ("geometry", Column::Geometry),
    ("part", Column::Part),
    ("ring", Column::Ring),
    ("vertex", Column::Vertex),
    ("longitude", Column::Longitude),
    ("latitude", Column::Latitude),
    ("altitude", Column::Altitude),
    ("when", Column::When),
    ("wkt", Column::Wkt),
    ("folder", Column::Folder),
    ("description", Column::Description),
    ("timestamp", Column::Timestamp),
    ("begin", Column::Begin),
    ("end", Column::End),
    ("style", Column::Style),
];

/// The prefix of an ExtendedData field whose name is that of a standard column.
pub const DATA_PREFIX: &str = "data.";

impl Column {
    fn fixed(name: &str) -> Option<Column> {
        FIXED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.clone())
    }

    /// The header of this column.
    pub fn header(&self) -> String {
        match self {
            Column::Data(field) => data_header(field),
            fixed => FIXED
                .iter()
                .find(|(_, c)| c == fixed)
                .map(|(n, _)| (*n).to_owned())
                .unwrap_or_default(),
        }
    }

    /// Whether the formula guard applies: to text, never to the numbers and ordinals.
    pub(super) fn is_text(&self) -> bool {
        !matches!(
            self,
            Column::Longitude
                | Column::Latitude
                | Column::Altitude
                | Column::Feature
                | Column::Part
                | Column::Vertex
        )
    }

    fn is_attribute(&self) -> bool {
        matches!(
            self,
            Column::Folder
                | Column::Description
                | Column::Timestamp
                | Column::Begin
                | Column::End
                | Column::Style
                | Column::Data(_)
        )
    }
}

/// The header of ExtendedData field `field` taken alone: its name, with `data.` in front when
/// that name is taken by a standard column (so `name` becomes `data.name`), and `data.unnamed`
/// for a field without a name. [`field_headers`] makes the headers of several fields unique.
pub fn data_header(field: &str) -> String {
    if field.is_empty() {
        format!("{DATA_PREFIX}unnamed")
    } else if Column::fixed(field).is_some() {
        format!("{DATA_PREFIX}{field}")
    } else {
        field.to_owned()
    }
}

/// The headers of the ExtendedData `fields` (in first-seen order), every one non-empty and
/// different from the others and from every standard column, so that a CSV loads into a
/// table: each is [`data_header`], and one already taken by an earlier field gets `_2`, `_3`,
/// … (the first free), so the fields `name` and `data.name` are `data.name` and
/// `data.name_2`, in the order they were first seen.
pub fn field_headers(fields: &[String]) -> Vec<String> {
    // Most files have no ExtendedData; the set of standard names below costs an allocation
    // per name (a hundredth of converting a 50 KB file).
    if fields.is_empty() {
        return Vec::new();
    }
    let mut taken: HashSet<String> = FIXED.iter().map(|(n, _)| (*n).to_owned()).collect();
    fields
        .iter()
        .map(|field| {
            let base = data_header(field);
            let mut header = base.clone();
            let mut n = 1;
            while taken.contains(&header) {
                n += 1;
                header = format!("{base}_{n}");
            }
            taken.insert(header.clone());
            header
        })
        .collect()
}

/// What the command line asks the CSV to look like, before any input is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub rows: RowKind,
    /// `--attributes`: the descriptive columns and one column per ExtendedData field.
    pub attributes: bool,
    /// A leading `source` column (merged CSVs).
    pub source: bool,
    /// `--columns`: the columns to write, in order, as the user named them.
    pub select: Option<Vec<String>>,
}

/// A `--columns` name that the output does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownColumns {
    pub unknown: Vec<String>,
    pub available: Vec<String>,
    /// ExtendedData fields could be named too, if `--attributes` were given.
    pub hint_attributes: bool,
}

impl fmt::Display for UnknownColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.unknown.len() == 1 { "" } else { "s" };
        write!(
            f,
            "unknown column{plural} {} in --columns; available: {}",
            self.unknown.join(", "),
            self.available.join(", ")
        )?;
        for name in &self.unknown {
            let needs = match Column::fixed(name) {
                Some(Column::Source) => "--merge",
                Some(Column::Wkt) => "--rows features",
                Some(_) => "--rows vertices",
                None => continue,
            };
            write!(f, "; {name} exists with {needs}")?;
        }
        if self.hint_attributes {
            f.write_str(" (ExtendedData fields become columns with --attributes)")?;
        }
        Ok(())
    }
}

impl Shape {
    /// Whether the reader must collect each feature's descriptive fields.
    pub fn reads_attributes(&self) -> bool {
        self.attributes
            || self.select.as_ref().is_some_and(|names| {
                names
                    .iter()
                    .any(|n| Column::fixed(n).is_some_and(|c| c.is_attribute()))
            })
    }

    /// Whether the columns depend on the ExtendedData fields found in the input, so that a
    /// first pass must collect their names.
    pub fn needs_fields(&self) -> bool {
        self.attributes && self.select.is_none()
    }

    /// Whether `--columns` names ExtendedData fields, which only a first pass can confirm.
    pub fn selects_fields(&self) -> bool {
        self.attributes
            && self
                .select
                .as_ref()
                .is_some_and(|names| names.iter().any(|n| self.fixed_column(n).is_none()))
    }

    /// The fixed columns this output can have, in their default order.
    pub fn fixed_columns(&self) -> Vec<Column> {
        let mut columns = Vec::new();
        if self.source {
            columns.push(Column::Source);
        }
        let standard: &[&str] = match self.rows {
            RowKind::Vertices => &COLUMNS,
            RowKind::Features => &FEATURE_COLUMNS,
        };
        columns.extend(standard.iter().filter_map(|n| Column::fixed(n)));
        if self.attributes || self.select.is_some() {
            columns.extend(ATTRIBUTE_COLUMNS.iter().filter_map(|n| Column::fixed(n)));
        }
        columns
    }

    fn fixed_column(&self, name: &str) -> Option<Column> {
        let column = Column::fixed(name)?;
        self.fixed_columns().contains(&column).then_some(column)
    }

    /// Check `--columns` before any input is read. Without `--attributes` every name must be a
    /// fixed column. With it, any other name may be an ExtendedData field, except the name of
    /// a fixed column this output lacks (`wkt` with vertex rows): such a field is written
    /// `data.NAME`, so that name can never be a column here.
    pub fn check(&self) -> Result<(), UnknownColumns> {
        let Some(select) = &self.select else {
            return Ok(());
        };
        let unknown: Vec<String> = select
            .iter()
            .filter(|n| {
                self.fixed_column(n).is_none() && (!self.attributes || Column::fixed(n).is_some())
            })
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(UnknownColumns {
            unknown,
            available: self.fixed_columns().iter().map(Column::header).collect(),
            hint_attributes: !self.attributes,
        })
    }

    /// The `--columns` names that are neither a fixed column nor one of the ExtendedData
    /// `fields` (the union of those of the inputs read). Not an error: fields are only known
    /// from the inputs a run reads, and an input that is skipped, or that lacks the field, must
    /// not change what the command line means. Such a column is written empty.
    pub fn fields_not_found(&self, fields: &[String]) -> Vec<String> {
        let Some(select) = &self.select else {
            return Vec::new();
        };
        let mut missing: Vec<String> = Vec::new();
        let headers = field_headers(fields);
        for name in select {
            if self.fixed_column(name).is_none()
                && !headers.contains(name)
                && !missing.contains(name)
            {
                missing.push(name.clone());
            }
        }
        missing
    }

    /// The columns of an output whose input(s) have the ExtendedData `fields` (names in
    /// first-seen order). Names in `--columns` are assumed checked.
    pub fn layout(&self, fields: &[String]) -> Layout {
        let headers = field_headers(fields);
        match &self.select {
            Some(select) => Layout {
                columns: select
                    .iter()
                    .map(|name| {
                        self.fixed_column(name).unwrap_or_else(|| {
                            let field = headers
                                .iter()
                                .position(|h| h == name)
                                .map_or_else(|| field_of_header(name), |i| fields[i].clone());
                            Column::Data(field)
                        })
                    })
                    .collect(),
                // As the user named them.
                headers: select.clone(),
            },
            None => {
                let mut columns = self.fixed_columns();
                let mut names: Vec<String> = columns.iter().map(Column::header).collect();
                if self.attributes {
                    columns.extend(fields.iter().cloned().map(Column::Data));
                    names.extend(headers);
                }
                Layout {
                    columns,
                    headers: names,
                }
            }
        }
    }
}

/// The field a header names: `data.name` is the field `name`.
fn field_of_header(header: &str) -> String {
    match header.strip_prefix(DATA_PREFIX) {
        Some(rest) if Column::fixed(rest).is_some() => rest.to_owned(),
        _ => header.to_owned(),
    }
}

/// The ExtendedData field names of several inputs, in first-seen order. Each name is looked
/// up in a hash set: a batch can have hundreds of thousands of distinct names.
#[derive(Debug, Default)]
pub struct FieldUnion {
    order: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl FieldUnion {
    /// Add the names of `more` not seen yet, in their order.
    pub fn add(&mut self, more: &[String]) {
        for field in more {
            if !self.seen.contains(field) {
                self.seen.insert(field.clone());
                self.order.push(field.clone());
            }
        }
    }

    pub fn into_fields(self) -> Vec<String> {
        self.order
    }
}

/// From this many ExtendedData fields on, a CSV gets a warning: each field is a column of
/// every row, and fields that few features have (a distinct name per Placemark) can turn a
/// few megabytes of KML into hundreds of megabytes of mostly empty columns.
pub const MANY_FIELDS: usize = 1000;

/// The warning for a CSV with `fields` ExtendedData columns, if they are that many.
pub fn many_fields_warning(fields: usize) -> Option<String> {
    (fields >= MANY_FIELDS).then(|| {
        format!(
            "{fields} ExtendedData fields make {fields} columns in every row: the CSV may be \
             far larger than the KML; name the fields wanted with --columns"
        )
    })
}

/// The columns of one output, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub columns: Vec<Column>,
    /// The header of each column.
    headers: Vec<String>,
}

impl Layout {
    pub fn headers(&self) -> Vec<String> {
        self.headers.clone()
    }

    /// Whether any column is an ExtendedData field or a descriptive column.
    pub fn has_attributes(&self) -> bool {
        self.columns.iter().any(Column::is_attribute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `<Data>` without a name gave an empty header, and the fields `name` and `data.name`
    /// two `data.name` columns. See: issue 13, item 5.
    #[test]
    fn every_field_header_is_named_and_unique() {
        let fields: Vec<String> = [
            "name",
            "data.name",
            "",
            "speed",
            "speed",
            "data.unnamed",
            "when",
        ]
        .iter()
        .map(|f| f.to_string())
        .collect();
        assert_eq!(
            field_headers(&fields),
            [
                "data.name",
                "data.name_2",
                "data.unnamed",
                "speed",
                "speed_2",
                "data.unnamed_2",
                "data.when"
            ]
        );
        let shape = Shape {
            attributes: true,
            ..Shape::default()
        };
        let headers = shape.layout(&fields).headers();
        let mut unique = headers.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), headers.len(), "{headers:?}");
        // `--columns` names them by these headers.
        let select = Shape {
            attributes: true,
            select: Some(vec!["data.name_2".into(), "data.name".into()]),
            ..Shape::default()
        };
        assert_eq!(
            select.layout(&fields).columns,
            [
                Column::Data("data.name".into()),
                Column::Data("name".into())
            ]
        );
    }

    #[test]
    fn unknown_columns_list_the_available_ones() {
        let shape = Shape {
            select: Some(vec!["latitude".into(), "wkt".into(), "speed".into()]),
            ..Shape::default()
        };
        let e = shape.check().unwrap_err();
        assert_eq!(e.unknown, ["wkt", "speed"]);
        let message = e.to_string();
        assert!(
            message.contains("available: feature, name, geometry"),
            "{message}"
        );
        assert!(message.contains("--attributes"), "{message}");
        assert!(
            message.contains("wkt exists with --rows features"),
            "{message}"
        );

        let shape = Shape {
            attributes: true,
            select: Some(vec!["speed".into(), "nope".into(), "nope".into()]),
            ..Shape::default()
        };
        assert!(shape.check().is_ok());
        assert_eq!(shape.fields_not_found(&["speed".to_owned()]), ["nope"]);
    }

    /// See: issue 13. With `--attributes` a name may be an ExtendedData field, but never one
    /// of the fixed columns another kind of output has: those are refused before any input is
    /// read, as without `--attributes`.
    #[test]
    fn fixed_column_names_are_checked_up_front_with_attributes() {
        let shape = Shape {
            attributes: true,
            select: Some(vec!["name".into(), "wkt".into(), "speed".into()]),
            ..Shape::default()
        };
        let e = shape.check().unwrap_err();
        assert_eq!(e.unknown, ["wkt"]);
        let message = e.to_string();
        assert!(
            message.contains("wkt exists with --rows features"),
            "{message}"
        );
        assert!(!message.contains("with --attributes"), "{message}");
    }

    #[test]
    fn union_keeps_first_seen_order() {
        let mut union = FieldUnion::default();
        union.add(&["a".to_owned(), "b".to_owned()]);
        union.add(&["c".to_owned(), "a".to_owned(), "d".to_owned()]);
        assert_eq!(union.into_fields(), ["a", "b", "c", "d"]);
    }
}
