//! Arrow columns and Parquet files in exactly the types lerobot 0.4.4 writes (checked against
//! a dataset it wrote): vectors as `fixed_size_list<float>[n]`, scalars as plain columns,
//! images as `struct<bytes: binary, path: string>`, and the `huggingface` schema metadata
//! that `datasets` reads the features from.

use arrow_array::builder::{BinaryBuilder, FixedSizeListBuilder, Float32Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The kind of a data column.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `float32` feature of shape [n] (n > 1 or named vector).
    F32Vec(usize),
    /// `float32` scalar (shape [1]).
    F32,
    /// `int64` scalar (shape [1]).
    I64,
    /// `image`: PNG bytes.
    Image,
    /// lerobot 0.6's `language_persistent` (`true`: rows carry a timestamp) or
    /// `language_events` column: a list of language rows per frame.
    Language(bool),
}

/// One row of a lerobot 0.6 language column (`lerobot/datasets/language.py`).
#[derive(Clone, Debug, PartialEq)]
pub struct LangRow {
    pub role: String,
    pub content: Option<String>,
    pub style: Option<String>,
    /// Persistent rows only: when the state became active (s from the episode start).
    pub timestamp: f32,
    pub camera: Option<String>,
}

/// Values of one column for the rows buffered.
#[derive(Clone, Debug)]
pub enum Column {
    F32Vec(usize, Vec<f32>),
    F32(Vec<f32>),
    I64(Vec<i64>),
    Image(Vec<Vec<u8>>),
    Language(bool, Vec<Vec<LangRow>>),
}

impl Column {
    pub fn new(kind: &Kind) -> Self {
        match kind {
            Kind::F32Vec(n) => Column::F32Vec(*n, Vec::new()),
            Kind::F32 => Column::F32(Vec::new()),
            Kind::I64 => Column::I64(Vec::new()),
            Kind::Image => Column::Image(Vec::new()),
            Kind::Language(p) => Column::Language(*p, Vec::new()),
        }
    }
    fn clear(&mut self) {
        match self {
            Column::F32Vec(_, v) => v.clear(),
            Column::F32(v) => v.clear(),
            Column::I64(v) => v.clear(),
            Column::Image(v) => v.clear(),
            Column::Language(_, v) => v.clear(),
        }
    }
}

/// The struct of a language row, field for field as `language_persistent_row_arrow_type`
/// (with `timestamp`) or `language_event_row_arrow_type` declares it; `tool_calls` items as
/// strings (lerobot's fallback when pyarrow has no JSON type).
fn language_fields(persistent: bool) -> Fields {
    let mut f = vec![
        Field::new("role", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, true),
        Field::new("style", DataType::Utf8, true),
    ];
    if persistent {
        f.push(Field::new("timestamp", DataType::Float32, false));
    }
    f.push(Field::new("camera", DataType::Utf8, true));
    f.push(Field::new(
        "tool_calls",
        DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
        true,
    ));
    Fields::from(f)
}

fn language_type(persistent: bool) -> DataType {
    DataType::List(Arc::new(Field::new(
        "element",
        DataType::Struct(language_fields(persistent)),
        true,
    )))
}

/// A language column from its rows' lists.
fn language_array(persistent: bool, frames: &[Vec<LangRow>]) -> anyhow::Result<ArrayRef> {
    let rows: Vec<&LangRow> = frames.iter().flatten().collect();
    let mut offsets = vec![0i32];
    for f in frames {
        offsets.push(offsets.last().copied().unwrap_or(0) + f.len() as i32);
    }
    let strs = |g: &dyn Fn(&LangRow) -> Option<&str>| -> ArrayRef {
        Arc::new(arrow_array::StringArray::from_iter(
            rows.iter().map(|r| g(r)),
        ))
    };
    let mut cols: Vec<ArrayRef> = vec![
        strs(&|r| Some(r.role.as_str())),
        strs(&|r| r.content.as_deref()),
        strs(&|r| r.style.as_deref()),
    ];
    if persistent {
        cols.push(Arc::new(arrow_array::Float32Array::from_iter_values(
            rows.iter().map(|r| r.timestamp),
        )));
    }
    cols.push(strs(&|r| r.camera.as_deref()));
    // tool_calls: null for every row (no tool calls)
    let tool_item = Arc::new(Field::new("element", DataType::Utf8, true));
    cols.push(Arc::new(arrow_array::ListArray::try_new(
        tool_item,
        arrow_buffer::OffsetBuffer::new(vec![0i32; rows.len() + 1].into()),
        Arc::new(arrow_array::StringArray::from(Vec::<String>::new())),
        Some(arrow_buffer::NullBuffer::new_null(rows.len())),
    )?));
    let st = StructArray::try_new(language_fields(persistent), cols, None)?;
    Ok(Arc::new(arrow_array::ListArray::try_new(
        Arc::new(Field::new(
            "element",
            DataType::Struct(language_fields(persistent)),
            true,
        )),
        arrow_buffer::OffsetBuffer::new(offsets.into()),
        Arc::new(st),
        None,
    )?))
}

fn element() -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Float32, true))
}

fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ])
}

pub fn data_type(kind: &Kind) -> DataType {
    match kind {
        Kind::F32Vec(n) => DataType::FixedSizeList(element(), *n as i32),
        Kind::F32 => DataType::Float32,
        Kind::I64 => DataType::Int64,
        Kind::Image => DataType::Struct(image_fields()),
        Kind::Language(p) => language_type(*p),
    }
}

/// The `datasets` feature description of a column (for the `huggingface` metadata).
fn hf_feature(kind: &Kind) -> Value {
    match kind {
        Kind::F32Vec(n) => {
            json!({"feature": {"dtype": "float32", "_type": "Value"}, "length": n, "_type": "List"})
        }
        Kind::F32 => json!({"dtype": "float32", "_type": "Value"}),
        Kind::I64 => json!({"dtype": "int64", "_type": "Value"}),
        Kind::Image => json!({"_type": "Image"}),
        Kind::Language(persistent) => {
            let v = |t: &str| json!({"dtype": t, "_type": "Value"});
            let mut row = serde_json::Map::new();
            row.insert("role".into(), v("string"));
            row.insert("content".into(), v("string"));
            row.insert("style".into(), v("string"));
            if *persistent {
                row.insert("timestamp".into(), v("float32"));
            }
            row.insert("camera".into(), v("string"));
            row.insert(
                "tool_calls".into(),
                json!({"feature": v("string"), "_type": "List"}),
            );
            json!({"feature": row, "_type": "List"})
        }
    }
}

/// Rows of the data table being collected, column by column.
pub struct Rows {
    pub names: Vec<String>,
    pub kinds: Vec<Kind>,
    pub cols: Vec<Column>,
    pub len: usize,
    /// Bytes of image data buffered (to bound row groups).
    pub image_bytes: usize,
}

impl Rows {
    pub fn new(spec: &[(String, Kind)]) -> Self {
        Rows {
            names: spec.iter().map(|s| s.0.clone()).collect(),
            kinds: spec.iter().map(|s| s.1.clone()).collect(),
            cols: spec.iter().map(|s| Column::new(&s.1)).collect(),
            len: 0,
            image_bytes: 0,
        }
    }

    pub fn schema(&self) -> Arc<Schema> {
        let fields: Vec<Field> = self
            .names
            .iter()
            .zip(&self.kinds)
            .map(|(n, k)| Field::new(n, data_type(k), true))
            .collect();
        let mut feats = serde_json::Map::new();
        for (n, k) in self.names.iter().zip(&self.kinds) {
            feats.insert(n.clone(), hf_feature(k));
        }
        let hf = json!({"info": {"features": feats}}).to_string();
        Arc::new(Schema::new_with_metadata(
            fields,
            HashMap::from([("huggingface".to_string(), hf)]),
        ))
    }

    fn take_batch(&mut self) -> anyhow::Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.cols.len());
        for c in &self.cols {
            let a: ArrayRef = match c {
                Column::F32Vec(n, v) => {
                    let mut b = FixedSizeListBuilder::new(
                        Float32Builder::with_capacity(v.len()),
                        *n as i32,
                    )
                    .with_field(element());
                    for row in v.chunks_exact(*n) {
                        b.values().append_slice(row);
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
                Column::F32(v) => Arc::new(arrow_array::Float32Array::from(v.clone())),
                Column::I64(v) => Arc::new(arrow_array::Int64Array::from(v.clone())),
                Column::Image(v) => {
                    let mut bytes = BinaryBuilder::with_capacity(v.len(), self.image_bytes);
                    let mut path = StringBuilder::new();
                    for img in v {
                        bytes.append_value(img);
                        path.append_null();
                    }
                    Arc::new(StructArray::new(
                        image_fields(),
                        vec![Arc::new(bytes.finish()), Arc::new(path.finish())],
                        None,
                    ))
                }
                Column::Language(p, v) => language_array(*p, v)?,
            };
            arrays.push(a);
        }
        let batch = RecordBatch::try_new(self.schema(), arrays)?;
        for c in &mut self.cols {
            c.clear();
        }
        self.len = 0;
        self.image_bytes = 0;
        Ok(batch)
    }
}

/// One data parquet file being written, a row group per flush.
pub struct DataFile {
    writer: ArrowWriter<File>,
    pub path: PathBuf,
    pub rows: usize,
}

impl DataFile {
    pub fn create(path: &Path, schema: Arc<Schema>) -> anyhow::Result<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
        }
        let f = File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(None)
            .build();
        let writer = ArrowWriter::try_new(f, schema, Some(props))?;
        Ok(DataFile {
            writer,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    /// Write the buffered rows as one row group.
    pub fn write(&mut self, rows: &mut Rows) -> anyhow::Result<()> {
        if rows.len == 0 {
            return Ok(());
        }
        let n = rows.len;
        let batch = rows.take_batch()?;
        self.writer
            .write(&batch)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        self.writer
            .flush()
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        self.rows += n;
        Ok(())
    }

    /// Bytes written so far (row groups flushed).
    pub fn bytes(&self) -> usize {
        self.writer.bytes_written()
    }

    pub fn close(self) -> anyhow::Result<()> {
        self.writer
            .close()
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        Ok(())
    }
}

/// Write a whole small table (episodes, tasks) to a parquet file.
pub fn write_table(path: &Path, batch: &RecordBatch) -> anyhow::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
    }
    let f = File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w = ArrowWriter::try_new(f, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(())
}

/// `meta/tasks.parquet`: a pandas DataFrame indexed by the task string with a `task_index`
/// column. The pandas metadata is what makes the index come back as strings.
pub fn tasks_batch(tasks: &[String]) -> anyhow::Result<RecordBatch> {
    let pandas = json!({
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": null},
            {"name": null, "field_name": "__index_level_0__", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": null}],
        "attributes": {},
        "creator": {"library": "demotape", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.2.3"
    });
    let schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("task_index", DataType::Int64, true),
            // lerobot's tasks.parquet indexes by `string`, not `large_string`
            Field::new("__index_level_0__", DataType::Utf8, true),
        ],
        HashMap::from([("pandas".to_string(), pandas.to_string())]),
    ));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(arrow_array::Int64Array::from_iter_values(
                0..tasks.len() as i64,
            )),
            Arc::new(arrow_array::StringArray::from_iter_values(tasks)),
        ],
    )?)
}

/// A column of a small table, by value.
pub enum Cell {
    I64(Vec<i64>),
    F64(Vec<f64>),
    Str(Vec<String>),
    StrList(Vec<Vec<String>>),
    /// One nested numeric array per row, `depth` lists deep (a stats entry: `[n]`, or an
    /// image's `[3][1][1]`), of int64 or double leaves.
    Nested {
        rows: Vec<serde_json::Value>,
        depth: usize,
        int: bool,
    },
}

/// The child field name of list columns, as pyarrow writes lists to parquet (and lerobot's
/// files have them).
const LIST_ITEM: &str = "element";

/// A (nested) list array from JSON arrays, `depth` levels down to numbers.
fn nested(rows: &[&serde_json::Value], depth: usize, int: bool) -> anyhow::Result<ArrayRef> {
    if depth == 0 {
        return Ok(if int {
            let v: Vec<i64> = rows
                .iter()
                .map(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
                .collect::<Option<_>>()
                .ok_or_else(|| anyhow::anyhow!("a statistic is not a number"))?;
            Arc::new(arrow_array::Int64Array::from(v))
        } else {
            let v: Vec<f64> = rows
                .iter()
                .map(|x| x.as_f64())
                .collect::<Option<_>>()
                .ok_or_else(|| anyhow::anyhow!("a statistic is not a number"))?;
            Arc::new(arrow_array::Float64Array::from(v))
        });
    }
    let mut offsets = vec![0i32];
    let mut children = Vec::new();
    for r in rows {
        let a = r
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("a statistic is not an array"))?;
        children.extend(a.iter());
        offsets.push(children.len() as i32);
    }
    let child = nested(&children, depth - 1, int)?;
    let field = Arc::new(Field::new(LIST_ITEM, child.data_type().clone(), true));
    Ok(Arc::new(arrow_array::ListArray::try_new(
        field,
        arrow_buffer::OffsetBuffer::new(offsets.into()),
        child,
        None,
    )?))
}

/// A record batch from named columns.
pub fn table(cols: Vec<(String, Cell)>) -> anyhow::Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, c) in cols {
        let (dt, a): (DataType, ArrayRef) = match c {
            Cell::I64(v) => (DataType::Int64, Arc::new(arrow_array::Int64Array::from(v))),
            Cell::F64(v) => (
                DataType::Float64,
                Arc::new(arrow_array::Float64Array::from(v)),
            ),
            Cell::Str(v) => (
                DataType::Utf8,
                Arc::new(arrow_array::StringArray::from_iter_values(v)),
            ),
            Cell::StrList(v) => {
                let mut b = arrow_array::builder::ListBuilder::new(StringBuilder::new())
                    .with_field(Field::new(LIST_ITEM, DataType::Utf8, true));
                for row in v {
                    for s in row {
                        b.values().append_value(s);
                    }
                    b.append(true);
                }
                let a = b.finish();
                (a.data_type().clone(), Arc::new(a))
            }
            Cell::Nested { rows, depth, int } => {
                let refs: Vec<&serde_json::Value> = rows.iter().collect();
                let a = nested(&refs, depth, int)?;
                (a.data_type().clone(), a)
            }
        };
        fields.push(Field::new(name, dt, true));
        arrays.push(a);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}
