"""Independent readers for the format tests (tests/formats.rs), run with the pinned
infra/.venv-readers. Each command prints one JSON document on stdout.

  read.py parquet FILE...          pyarrow: {"schema": [[name, type, nullable]], "rows": [...]}
  read.py dataset DIR              pyarrow dataset with Hive partitions: the same, rows sorted
  read.py duckdb SQL               DuckDB: the query's rows as objects ([] for COPY)
  read.py write-typed-parquet FILE pyarrow writes a Parquet file of typed columns (see below)
"""

import datetime
import decimal
import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def plain(value):
    """A Python value as JSON can hold it; decimals and times as their text."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def table_json(table, sort=False):
    rows = [plain(row) for row in table.to_pylist()]
    if sort:
        rows.sort(key=lambda row: json.dumps(row, sort_keys=True))
    schema = [[f.name, str(f.type), f.nullable] for f in table.schema]
    return {"schema": schema, "rows": rows}


def write_typed_parquet(path):
    """Columns of the types a data lake holds, with nulls, in two row groups."""
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "small": pa.array([7, None, -3], pa.int32()),
            "ratio": pa.array([0.25, None, 1e-7], pa.float64()),
            "price": pa.array([decimal.Decimal("12.50"), decimal.Decimal("-0.07"), None], pa.decimal128(10, 2)),
            "name": pa.array(["Red", None, "Ünïcode"], pa.string()),
            "day": pa.array([datetime.date(2024, 1, 5), None, datetime.date(1969, 12, 31)], pa.date32()),
            "at_utc": pa.array([datetime.datetime(2024, 1, 5, 6, 15, 0, 123456), None, datetime.datetime(2024, 1, 6)], pa.timestamp("us", tz="UTC")),
            "at_local": pa.array([datetime.datetime(2024, 1, 5, 6, 15), None, None], pa.timestamp("ms")),
            "flag": pa.array([True, False, None], pa.bool_()),
            "tags": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
            "point": pa.array([{"x": 1, "y": 2}, None, {"x": 3, "y": None}], pa.struct([("x", pa.int64()), ("y", pa.int64())])),
        }
    )
    pq.write_table(table, path, row_group_size=2, compression="zstd")


def main():
    command, *args = sys.argv[1:]
    if command == "parquet":
        tables = [pq.read_table(path) for path in args]
        print(json.dumps(table_json(pa.concat_tables(tables))))
    elif command == "dataset":
        dataset = ds.dataset(args[0], format="parquet", partitioning="hive")
        print(json.dumps(table_json(dataset.to_table(), sort=True)))
    elif command == "duckdb":
        relation = duckdb.sql(args[0])
        # A statement such as COPY gives no relation: no rows.
        rows = [] if relation is None else [dict(zip(relation.columns, row)) for row in relation.fetchall()]
        print(json.dumps(plain(rows)))
    elif command == "write-typed-parquet":
        write_typed_parquet(args[0])
        print(json.dumps({"written": args[0]}))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
