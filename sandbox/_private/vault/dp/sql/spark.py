"""The Spark runner: the same compiled plan on a Spark session, for datasets registered with ``engine: spark``.

pyspark is imported here only, when such a dataset is first used; a vault without Spark datasets never imports it.
The session is the vault process's driver: it sends SQL to the cluster and collects per-cell statistics (a few
thousand numbers at most); noise, the ledger and the tokens stay in the vault process.

Configuration (environment of the vault process):

- ``SANDBOX_SPARK_MASTER``: the cluster (``spark://host:7077``, ``yarn``, ``k8s://...``); default ``local[2]``;
- ``SANDBOX_SPARK_CONF``: a JSON object of further Spark settings (e.g. ``{"spark.executor.memory": "8g"}``).

Registered files must be readable by the executors at the same path (shared storage, HDFS or object storage
mounted at that path). Row order: ``_metadata.row_index`` of a Parquet file (its position in the file, as DuckDB's
``file_row_number``); for CSV, ``monotonically_increasing_id()`` of a single-partition read.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from sandbox._private.shared.errors import SchemaError
from sandbox._private.shared.schema import TableSchema

from .dialect import SPARK
from .runner import typed_select

__all__ = ["SparkRunner", "spark_runner"]

_LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.default.parallelism": "2",
}


class SparkRunner:
    """A Spark session for the vault process, and the temporary views of the tables it answers."""

    dialect = SPARK

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # pyspark 4.x warns that it does not yet fully support pandas 3; the vault hands it Parquet and Arrow
            warnings.filterwarnings(
                "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
            )
            from pyspark.sql import SparkSession

            self._start(SparkSession)

    def _start(self, session: Any) -> None:
        SparkSession = session
        master = os.environ.get("SANDBOX_SPARK_MASTER", "local[2]")
        builder = SparkSession.builder.master(master).appName("sandbox-vault")
        conf = dict(_LOCAL_CONF) if master.startswith("local") else {"spark.ui.enabled": "false"}
        extra = os.environ.get("SANDBOX_SPARK_CONF")
        if extra:
            try:
                loaded = json.loads(extra)
            except ValueError:
                raise SchemaError("SANDBOX_SPARK_CONF is not a JSON object of Spark settings.") from None
            if not isinstance(loaded, dict):
                raise SchemaError('SANDBOX_SPARK_CONF must be a JSON object, e.g. {"spark.executor.memory": "8g"}.')
            conf.update({str(k): str(v) for k, v in loaded.items()})
        for k, v in conf.items():
            builder = builder.config(k, v)
        self.spark = builder.getOrCreate()
        self.spark.sparkContext.setLogLevel("ERROR")
        self._lock = threading.Lock()
        self._views: dict[str, str] = {}
        self._raw: dict[str, str] = {}

    def _read(self, key: str, path: Path | None, frame: pa.Table | None) -> Any:
        from pyspark.sql import functions as F

        if frame is not None:
            rn = pa.array(range(frame.num_rows), type=pa.int64())
            return self.spark.createDataFrame(frame.append_column("_rn", rn))
        assert path is not None
        if path.suffix.lower() == ".parquet":
            df = self.spark.read.parquet(str(path))
            return df.select("*", F.col("_metadata.row_index").alias("_rn"))
        df = self.spark.read.option("header", True).csv(str(path)).coalesce(1)
        return df.withColumn("_rn", F.monotonically_increasing_id())

    def _raw_view(self, key: str, path: Path | None, frame: pa.Table | None) -> str:
        with self._lock:
            if key not in self._raw:
                name = f"raw_{key}"
                try:
                    self._read(key, path, frame).createOrReplaceTempView(name)
                except Exception as exc:  # pyspark raises its own exception classes per version
                    raise SchemaError(
                        f"Cannot read {str(path)!r} on Spark: {type(exc).__name__}. Check that the executors can read "
                        "the file at this path."
                    ) from None
                self._raw[key] = name
            return self._raw[key]

    def columns(self, key: str, path: Path | None, frame: pa.Table | None) -> dict[str, str]:
        raw = self._raw_view(key, path, frame)
        fields = self.spark.table(raw).schema.fields
        return {f.name: f.dataType.simpleString().upper() for f in fields if f.name != "_rn"}

    def raw_source(self, key: str, path: Path | None, frame: pa.Table | None) -> str:
        return self._raw_view(key, path, frame)

    def source(self, key: str, schema: TableSchema, path: Path | None, frame: pa.Table | None) -> str:
        raw = self._raw_view(key, path, frame)
        with self._lock:
            if key not in self._views:
                cols = self.columns_of(raw)
                name = f"src_{key}"
                sel = ", ".join(typed_select(SPARK, schema, cols))
                self.spark.sql(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {sel}, _rn FROM {raw}")
                self._views[key] = name
            return self._views[key]

    def columns_of(self, raw: str) -> dict[str, str]:
        return {f.name: f.dataType.simpleString().upper() for f in self.spark.table(raw).schema.fields}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def arrow(self, sql: str) -> pa.Table:
        df = self.spark.sql(sql)
        to_arrow = getattr(df, "toArrow", None)
        if callable(to_arrow):
            return to_arrow()
        return pa.Table.from_pandas(df.toPandas(), preserve_index=False)

    def forget(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                for view in (self._views.pop(key, None), self._raw.pop(key, None)):
                    if view:
                        self.spark.catalog.dropTempView(view)


_SPARK: SparkRunner | None = None
_LOCK = threading.Lock()


def spark_runner() -> SparkRunner:
    """Return the vault process's Spark runner (the session starts on first use)."""
    global _SPARK
    with _LOCK:
        if _SPARK is None:
            try:
                _SPARK = SparkRunner()
            except ImportError:
                raise SchemaError(
                    "This dataset is registered with engine 'spark', but pyspark is not installed in the vault's "
                    "environment; install it with pip install 'dutch-analysis-sandbox[spark]' (and Java 17)."
                ) from None
        return _SPARK
