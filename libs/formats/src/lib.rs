//! busline's file formats, shared by the stops that read and write them: compressions told by
//! name and by magic bytes, table schemas (declared or inferred) that refuse what does not fit,
//! and Parquet rows to and from JSON passengers. No AWS SDK, no busline types.

pub mod compression;
mod exact;
pub mod parquet_in;
pub mod parquet_out;
pub mod schema;

pub use compression::{Compression, Encoder, MAGIC_LEN, PARQUET_MAGIC};
pub use parquet_in::{Columns, parquet_records, row_to_record};
pub use parquet_out::{ParquetCodec, write_parquet};
pub use schema::{Cell, Column, ColumnType, TableSchema};
