"""When the chip index gets an approximate-nearest-neighbour (ANN) vector index, and how queries use it.

Below :attr:`AnnPolicy.min_rows` rows a flat scan is fast enough and exact, so no index is built. Past it,
:func:`ensure_ann_index` trains an IVF index on the cosine distance (scalar-quantised vectors by default: 8
bits per dimension keeps recall near 1 where PQ codes lose it on clustered embeddings) and scalar BTree
indexes on the bbox columns, so the AOI prefilter stays cheap at millions of rows. Later writes are folded
into the existing index by :meth:`lancedb.table.Table.optimize` (rows not yet indexed are still searched,
exactly); the IVF centroids are retrained only once the table has grown :attr:`AnnPolicy.retrain_growth` times
since the last training. Queries probe :attr:`AnnPolicy.nprobes` partitions and re-rank ``refine_factor x k``
candidates with exact distances (:func:`tune_query`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from lancedb.index import BTree, IvfHnswSq, IvfPq, IvfSq
from lancedb.query import LanceVectorQueryBuilder
from lancedb.table import Table

VECTOR_COLUMN = "vector"
#: scalar columns of the AOI prefilter (``tiles.aoi.bbox_where``): its ``minx``/``miny`` ranges are selective;
#: an index on ``maxx``/``maxy`` would answer ``maxx >= x`` with half the table and slow every AOI query down
BBOX_COLUMNS: tuple[str, ...] = ("minx", "miny")
#: bbox columns indexed by earlier versions, whose indexes are dropped when the vector index is rebuilt
UNINDEXED_BBOX_COLUMNS: tuple[str, ...] = ("maxx", "maxy")


class AnnKind(str, Enum):
    """The vector index types the policy can build."""

    IVF_SQ = "ivf_sq"
    IVF_PQ = "ivf_pq"
    IVF_HNSW_SQ = "ivf_hnsw_sq"


@dataclass(frozen=True)
class AnnPolicy:
    """Thresholds and search parameters of the vector index."""

    #: rows from which a vector index is built: a flat scan of 10k x 512 takes ~15 ms on 2 CPU cores, of 40k
    #: ~80 ms, where IVF-SQ answers 40k in ~7.5 ms at recall 1.0 and builds in ~1.3 s (``bench query``)
    min_rows: int = 10_000
    #: a filter (an AOI) leaving at most this many rows is searched exactly over them, never through the index
    exact_filter_rows: int = 50_000
    kind: AnnKind = AnnKind.IVF_SQ
    #: IVF partitions probed per query
    nprobes: int = 20
    #: candidates per wanted result that are re-ranked with exact distances
    refine_factor: int = 5
    #: rows per IVF partition aimed at when training (``num_partitions = rows / this``, at least 1)
    rows_per_partition: int = 1_000
    #: retrain the IVF centroids once the table holds this many times the rows it was trained on
    retrain_growth: float = 2.0


@dataclass(frozen=True)
class AnnState:
    """What the vector index looks like now."""

    indexed_rows: int
    unindexed_rows: int

    @property
    def exists(self) -> bool:
        """Whether a vector index exists."""
        return self.indexed_rows > 0 or self.unindexed_rows > 0


def vector_index_name(table: Table) -> str | None:
    """Name of the index on :data:`VECTOR_COLUMN`, or None when there is none."""
    return next((ix.name for ix in table.list_indices() if ix.columns == [VECTOR_COLUMN]), None)


def ann_state(table: Table) -> AnnState:
    """Rows covered and not yet covered by the vector index (0, 0 without one)."""
    name = vector_index_name(table)
    stats = table.index_stats(name) if name is not None else None
    if stats is None:
        return AnnState(0, 0)
    return AnnState(stats.num_indexed_rows, stats.num_unindexed_rows)


def index_config(
    kind: AnnKind, num_rows: int, dim: int, rows_per_partition: int
) -> IvfSq | IvfPq | IvfHnswSq:
    """The LanceDB index configuration of ``kind`` for ``num_rows`` vectors of ``dim`` dimensions (cosine)."""
    partitions = max(1, num_rows // rows_per_partition)
    if kind is AnnKind.IVF_PQ:
        # 8 dimensions per sub-vector: 64 bytes per 512-d vector; refine_factor restores the order
        return IvfPq(distance_type="cosine", num_partitions=partitions, num_sub_vectors=max(1, dim // 8))
    if kind is AnnKind.IVF_HNSW_SQ:
        # one HNSW graph per ~1M rows keeps training memory bounded
        return IvfHnswSq(distance_type="cosine", num_partitions=max(1, math.ceil(num_rows / 1_000_000)))
    return IvfSq(distance_type="cosine", num_partitions=partitions)


def ensure_ann_index(table: Table, policy: AnnPolicy = AnnPolicy()) -> str:
    """Build, refresh or leave the vector index as ``policy`` says: ``"none"``, ``"built"`` or ``"updated"``.

    ``"none"``: the table is below ``min_rows`` or its index already covers every row.
    """
    rows = table.count_rows()
    if rows < policy.min_rows:
        return "none"
    state = ann_state(table)
    if state.exists and rows < policy.retrain_growth * state.indexed_rows:
        if state.unindexed_rows == 0:
            return "none"
        table.optimize()  # appends new rows to the vector and scalar indexes without retraining
        return "updated"
    dim = table.schema.field(VECTOR_COLUMN).type.list_size
    table.create_index(
        VECTOR_COLUMN, config=index_config(policy.kind, rows, dim, policy.rows_per_partition), replace=True
    )
    for column in BBOX_COLUMNS:
        table.create_index(column, config=BTree(), replace=True)
    for stale in (ix.name for ix in table.list_indices() if ix.columns[0] in UNINDEXED_BBOX_COLUMNS):
        table.drop_index(stale)
    return "built"


def tune_query(
    query: LanceVectorQueryBuilder, policy: AnnPolicy = AnnPolicy(), candidate_rows: int | None = None
) -> LanceVectorQueryBuilder:
    """Apply the policy's probes and exact re-ranking to a vector query (no effect on a table without index).

    ``candidate_rows``: rows left by the query's prefilter (an AOI), when it has one. The nearest of a few
    thousand chips in an AOI are rarely in the partitions nearest the query, so a filter that leaves no more
    than ``exact_filter_rows`` rows is searched exactly (a flat scan of the filtered rows), not by the index.
    """
    if candidate_rows is not None and candidate_rows <= policy.exact_filter_rows:
        return query.bypass_vector_index()
    query = query.nprobes(policy.nprobes).refine_factor(policy.refine_factor)
    return query.ef(policy.nprobes * 10) if policy.kind is AnnKind.IVF_HNSW_SQ else query
