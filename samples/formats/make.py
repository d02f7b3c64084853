"""Writes the format samples from samples/flights/flights.csv with independent tools: Python's
gzip module, and DuckDB (pinned in infra/readers.lock) for zstd NDJSON, the JSON array and
Parquet. Run from the repository root:

    infra/.venv-readers/bin/python samples/formats/make.py
"""

import gzip
import pathlib

import duckdb

root = pathlib.Path(__file__).resolve().parent
source = root.parent / "flights" / "flights.csv"

(root / "csv-gzip").mkdir(exist_ok=True)
with gzip.GzipFile(root / "csv-gzip" / "flights.csv.gz", "wb", mtime=0) as packed:
    packed.write(source.read_bytes())

# The values a CSV read gives with NULL_VALUES=["NA"] and INFER_TYPES=true: dates and times
# stay text, numbers are numbers, NA is null.
table = f"""read_csv('{source}', nullstr = 'NA', header = true,
    types = {{'date': 'VARCHAR', 'scheduled': 'VARCHAR', 'carrier': 'VARCHAR',
              'origin': 'VARCHAR', 'dest': 'VARCHAR', 'fare': 'DOUBLE'}})"""
for folder, name, options in [
    ("ndjson-zstd", "flights.ndjson.zst", "FORMAT json, COMPRESSION zstd"),
    ("json-array", "flights.json", "FORMAT json, ARRAY true"),
    ("parquet", "flights.parquet", "FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 16"),
]:
    (root / folder).mkdir(exist_ok=True)
    duckdb.sql(f"COPY (SELECT * FROM {table}) TO '{root / folder / name}' ({options})")
