"""Loading and checking a party's input table (CSV or Parquet).

Errors name the job key and the file, never a private value (an error's text may reach
the operator's logs; only its type reaches peers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from privfin.config import JobSpec, PartySpec
from privfin.errors import ConfigError, DataError


@dataclass(frozen=True)
class PartyTable:
    """A party's rows: ids (as text), features and, at the active party, the label."""

    ids: np.ndarray  # dtype object (str), unique
    features: pd.DataFrame
    label: np.ndarray | None
    path: Path

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> PartyTable:
        """The table restricted to ``rows`` (indices), in that order."""
        return PartyTable(self.ids[rows], self.features.iloc[rows].reset_index(drop=True),
                          None if self.label is None else self.label[rows], self.path)


def _read(path: Path, id_column: str, key: str, job_file: str) -> pd.DataFrame:
    if not path.is_file():
        raise ConfigError(f"input file not found: {path}", key=key, file=job_file)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pq.read_table(path).to_pandas()
            if id_column in df.columns:
                df[id_column] = df[id_column].astype("string").astype(object)
            return df
        if suffix in (".csv", ".txt", ".gz") or suffix == "":
            return pd.read_csv(path, dtype={id_column: str}, keep_default_na=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}); check its format") from exc
    raise ConfigError(f"unsupported input format {suffix!r} (use .csv or .parquet)", key=key, file=job_file)


def load_party_table(spec: JobSpec, party: str, data_dir: Path, *, check_duplicates: bool = True) -> PartyTable:
    """Load ``party``'s input for ``spec`` from ``data_dir`` and check it."""
    ps: PartySpec = spec.parties[party]
    base = f"parties.{party}"
    path = Path(ps.input) if Path(ps.input).is_absolute() else Path(data_dir) / ps.input
    df = _read(path, ps.id_column, f"{base}.input", spec.file)
    where = f"in {path}"
    if ps.id_column not in df.columns:
        raise ConfigError(f"id column {ps.id_column!r} not found {where}", key=f"{base}.id_column", file=spec.file)
    ids = df[ps.id_column]
    if ids.isna().any():
        raise DataError(f"{int(ids.isna().sum())} empty ids in column {ps.id_column!r} {where}")
    ids = ids.astype(str).to_numpy(dtype=object)
    n_dup = len(ids) - len(pd.unique(ids)) if check_duplicates else 0
    if n_dup:
        raise DataError(f"{n_dup} duplicate ids in column {ps.id_column!r} {where}")
    if len(ids) == 0:
        raise DataError(f"no rows {where}")
    label = None
    if ps.role == "active":
        if ps.label_column not in df.columns:
            raise ConfigError(f"label column {ps.label_column!r} not found {where}", key=f"{base}.label_column",
                              file=spec.file)
        y = df[ps.label_column]
        if y.isna().any():
            raise DataError(f"{int(y.isna().sum())} missing labels in column {ps.label_column!r} {where}")
        if not pd.api.types.is_numeric_dtype(y) or not set(np.unique(y.to_numpy())) <= {0, 1}:
            raise DataError(f"label column {ps.label_column!r} {where} must hold only 0 and 1")
        label = y.to_numpy().astype(np.int8)
    drop = [ps.id_column] + ([ps.label_column] if ps.label_column else [])
    if ps.features is not None:
        missing = [c for c in ps.features if c not in df.columns]
        if missing:
            raise ConfigError(f"feature column {missing[0]!r} not found {where}", key=f"{base}.features",
                              file=spec.file)
        feats = df[list(ps.features)]
    else:
        feats = df.drop(columns=drop)
    for col in feats.columns:
        s = feats[col]
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_string_dtype(s)
                or isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s)):
            raise DataError(f"feature column {col!r} {where} has unsupported type {s.dtype}")
    return PartyTable(ids, feats.reset_index(drop=True), label, path)
