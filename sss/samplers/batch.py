"""Per-row sampler parameters packed into tensors, built once per batch layout.

Engines hold a `SamplerBatch` and rebuild it only when the rows change; the hot
path (`apply_rules`) then runs batched tensor ops with no per-row Python.
A rule that no row enables is skipped entirely (its name is not in `uses`).

Building is cheap too, because `process_logits` builds a batch on every call:

* the per-spec work (which rules are on, the column values, host-side facts) is done
  once per distinct `SamplerSpec` and cached (specs are frozen, so the cache can never
  go stale);
* a batch is one host buffer (int64, float32 and bool blocks side by side) moved to
  the device with a single pinned, non-blocking copy; the public columns are views
  of it. The old build made one `torch.tensor(..., device=cuda)` per column, and
  each pageable copy synchronised the host with the GPU (16 syncs per call);
* `BatchFacts` records on the host what the batch already decides (which rows have
  top_p, the largest rank cap any row can have, whether any rule can truncate),
  so `apply_rules` need not read those back from the device.
"""

from __future__ import annotations

import math
import struct
import weakref
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress
from typing import NamedTuple
from collections.abc import Sequence

import torch

from .spec import SamplerSpec

_OFF = 0.0

# An EDT temperature below this is treated as T = 0 (greedy): at such a
# temperature the scaled logits overflow long before the distribution differs
# from the argmax in any way a float32 sampler could see. (rules.py re-exports it.)
MIN_TEMPERATURE = 1e-5

# Column layout of the packed buffer (one row per batch row); the CUDA kernels index it by these
# names (sss/samplers/kernels/triton_rules.py).
F32_COLUMNS = (
    "temperature",
    "edt_n",
    "edt_theta",
    "edt_t0",
    "top_p",
    "min_p",
    "epsilon",
    "eta",
    "calibrated_log_eps",
    "greedy_threshold",
)
I64_COLUMNS = ("top_k", "confidence_bin", "bins")  # then the calibrated_topk ks
BOOL_COLUMNS = ("greedy", "edt_on")


@dataclass(frozen=True)
class BatchFacts:
    """What the host knows about a batch when it is built, so the hot path needs no device reads.

    ``*_rows`` are device int64 row indices, or None when the rule concerns every row
    (then no row gather is needed) or no row (then ``*_count`` is 0).
    """

    top_p_count: int  # rows with top_p < 1 (as float32, like the column)
    top_p_rows: torch.Tensor | None
    rank_k: int  # largest finite rank cap > 1 any row can get (0: none)
    rank_count: int  # rows whose cap can lie strictly between 1 and V
    rank_rows: torch.Tensor | None
    rank_possible: bool  # some row may get a rank cap < V (greedy, top-k, bins, EDT, ...)
    truncates: bool  # some row may drop a token at all


@dataclass
class SamplerBatch:
    rows: int
    temperature: torch.Tensor  # [B] float32, 1.0 where unused
    greedy: torch.Tensor  # [B] bool: T == 0 or greedy
    edt_on: torch.Tensor  # [B] bool
    edt_n: torch.Tensor  # [B] float32
    edt_theta: torch.Tensor  # [B] float32
    edt_t0: torch.Tensor  # [B] float32
    top_k: torch.Tensor  # [B] int64, 0 = off
    top_p: torch.Tensor  # [B] float32, 1.0 = off
    min_p: torch.Tensor  # [B] float32, 0 = off
    epsilon: torch.Tensor  # [B] float32, 0 = off
    eta: torch.Tensor  # [B] float32, 0 = off
    calibrated_log_eps: torch.Tensor  # [B] float32, natural log of the equivalent epsilon; -inf = off
    greedy_threshold: torch.Tensor  # [B] float32, 0 = off
    calibrated_topk: torch.Tensor  # [B, max bins] int64, 0 = off
    confidence_bin: torch.Tensor  # [B] int64, 0 = off
    bins: torch.Tensor  # [B] int64
    uses: frozenset[str]  # names of the rules at least one row enables
    facts: BatchFacts | None = None  # host-side facts; derived (with device reads) if None

    def host_facts(self) -> BatchFacts:
        """`facts`, derived from the tensors (reading them back once) for a batch built by hand."""
        if self.facts is None:
            self.facts = _facts_from_tensors(self)
        return self.facts

    @classmethod
    def from_specs(cls, specs: Sequence[SamplerSpec], device: torch.device | str = "cpu") -> SamplerBatch:
        if not isinstance(device, torch.device):
            device = torch.device(device)
        specs = list(specs)
        rows = len(specs)

        # Distinct spec objects, by identity and at C speed (usually one object for every
        # row); each one's row is cached, so equal-but-distinct specs are cheap as well.
        distinct = dict(zip(map(id, specs), specs))
        table = [_row_of(s) for s in distinct.values()]
        if len(table) == 1:
            index = None
        else:
            position = {key: n for n, key in enumerate(distinct)}
            index = list(map(position.__getitem__, map(id, specs)))

        def row_indices(flags: list[bool]) -> list[int] | None:
            """Rows whose flag is set; None when every row's is (then no row gather is needed)."""
            if all(flags):
                return None
            return [] if not any(flags) else list(compress(range(rows), map(flags.__getitem__, index)))

        top_p_rows = row_indices([r.top_p_on for r in table])
        partial = [r.rank_bound is not None and r.rank_bound > 1 for r in table]
        rank_rows = row_indices(partial)
        max_bins = max((r.bins for r in table), default=1)
        ks = [r.ks_bytes(max_bins) for r in table]

        # One host buffer for one copy, column-major (each [B] column contiguous, as
        # torch.tensor(list) made it: CPU kernels choose vectorised or scalar code by layout,
        # and those can differ in the last bit). int64 first, then float32, then bool, so
        # that each block starts at an offset its dtype can be viewed at.
        if index is None:  # one spec for every row: a column is its value repeated
            (r,) = table
            blob = b"".join(
                [
                    *(v * rows for v in r.int_bytes),
                    ks[0] * rows,
                    *(v * rows for v in r.f32_bytes),
                    *(v * rows for v in r.flag_bytes),
                ]
            )
            data = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
        elif rows == 0:
            data = torch.empty(0, dtype=torch.uint8)
        else:  # the distinct specs' rows as small tables, gathered (and transposed) by torch
            idx = torch.tensor(index, dtype=torch.int64)

            def gather(row_bytes: list[bytes], dtype: torch.dtype, width: int, by_column: bool = True):
                t = torch.frombuffer(bytearray(b"".join(row_bytes)), dtype=dtype).view(len(row_bytes), width)
                t = t.t().index_select(1, idx) if by_column else t.index_select(0, idx)
                return t.reshape(-1).view(torch.uint8)

            tails = [
                torch.tensor(picked, dtype=torch.int64).view(torch.uint8)
                for picked in (top_p_rows, rank_rows)
                if picked
            ]
            data = torch.cat(
                [
                    gather([b"".join(r.int_bytes) for r in table], torch.int64, len(I64_COLUMNS)),
                    gather(ks, torch.int64, max_bins, by_column=False),
                    *tails,
                    gather([b"".join(r.f32_bytes) for r in table], torch.float32, len(F32_COLUMNS)),
                    gather([b"".join(r.flag_bytes) for r in table], torch.uint8, len(BOOL_COLUMNS)),
                ]
            )
        if device.type == "cuda":
            # pinned + non_blocking: an asynchronous copy, no host sync (a pageable copy syncs)
            data = data.pin_memory().to(device, non_blocking=True)
        elif device.type != "cpu":
            data = data.to(device)

        n_int = len(I64_COLUMNS) * rows
        n_ks = rows * max_bins
        n_tp = len(top_p_rows or ())
        n_rank = len(rank_rows or ())
        n_all = n_int + n_ks + n_tp + n_rank
        n_f32 = len(F32_COLUMNS) * rows
        int_cols, ks_dev, tp_dev, rank_dev = (
            data[: 8 * n_all].view(torch.int64).split_with_sizes([n_int, n_ks, n_tp, n_rank])
        )
        f32_cols = data[8 * n_all : 8 * n_all + 4 * n_f32].view(torch.float32)
        flag_cols = data[8 * n_all + 4 * n_f32 :].view(torch.bool)

        facts = BatchFacts(
            top_p_count=rows if top_p_rows is None else n_tp,
            top_p_rows=tp_dev if n_tp else None,
            rank_k=max((r.rank_bound for r, p in zip(table, partial) if p), default=0),
            rank_count=rows if rank_rows is None else n_rank,
            rank_rows=rank_dev if n_rank else None,
            rank_possible=any(r.rank_possible for r in table),
            truncates=any(r.truncates for r in table),
        )
        col = dict(zip(I64_COLUMNS, int_cols.view(len(I64_COLUMNS), rows).unbind(0)))
        col.update(zip(F32_COLUMNS, f32_cols.view(len(F32_COLUMNS), rows).unbind(0)))
        col.update(zip(BOOL_COLUMNS, flag_cols.view(len(BOOL_COLUMNS), rows).unbind(0)))
        return cls(
            rows=rows,
            calibrated_topk=ks_dev.view(rows, max_bins),
            uses=frozenset().union(*(r.uses for r in table)),
            facts=facts,
            **col,
        )


class _Row(NamedTuple):
    """One spec's contribution to a batch: its column values as bytes, and host-side facts."""

    int_bytes: tuple[bytes, ...]  # one native int64 per I64_COLUMNS entry
    f32_bytes: tuple[bytes, ...]  # one native float32 per F32_COLUMNS entry
    flag_bytes: tuple[bytes, ...]  # one bool byte per BOOL_COLUMNS entry
    ks: tuple[int, ...]  # calibrated_topk (bin 1 first), () when off
    bins: int
    uses: frozenset[str]
    top_p_on: bool  # top_p < 1 once rounded to float32 (the column's dtype)
    rank_bound: int | None  # largest rank cap this row can get; None: V (no cap)
    rank_possible: bool
    truncates: bool

    def ks_bytes(self, width: int) -> bytes:
        """The calibrated_topk row padded with 0 (off) to `width` bins."""
        return _int64_bytes(self.ks + (0,) * (width - len(self.ks)))


def _row_of(spec: SamplerSpec) -> _Row:
    """The spec's row, cached per spec object (and, for a new object, per spec value).

    `SamplerSpec` is a frozen dataclass, so the row (a pure function of its fields) can
    never go stale. The cache is keyed by the object's id, with a weak reference that
    drops the entry when the spec dies: a lookup is one dict access, where hashing a
    spec (for a cache by value) builds a tuple of all its fields.
    """
    key = id(spec)
    hit = _ROWS.get(key)
    if hit is not None and hit[0]() is spec:
        return hit[1]
    try:
        row = _build_row_cached(spec)
    except TypeError:  # unhashable (a field of a type that is not): build without the value cache
        row = _build_row(spec)
    try:
        ref = weakref.ref(spec, lambda _, key=key: _ROWS.pop(key, None))
    except TypeError:  # a spec type without weak references: the cache by value still serves
        return row
    _ROWS[key] = (ref, row)
    return row


_ROWS: dict[int, tuple[weakref.ref, _Row]] = {}


@lru_cache(maxsize=4096)
def _build_row_cached(spec: SamplerSpec) -> _Row:
    return _build_row(spec)


def _int64_bytes(values: Sequence[int]) -> bytes:
    return struct.pack(f"={len(values)}q", *values)


def _build_row(s: SamplerSpec) -> _Row:
    greedy = s.is_greedy
    edt = s.edt
    log_eps = _log_or_off(s.calibrated_epsilon.epsilon if s.calibrated_epsilon else 0.0)
    # torch rounds to float32 exactly as a float32 column of torch.tensor(list) does
    # (struct would raise on a finite value above the float32 range instead of giving inf)
    f32 = torch.tensor(
        [
            1.0 if greedy else s.temperature,
            edt.n if edt else 1.0,
            edt.theta if edt else 0.0,
            edt.t0 if edt else 1.0,
            1.0 if s.top_p is None else s.top_p,
            s.min_p or _OFF,
            s.epsilon or _OFF,
            s.eta or _OFF,
            log_eps,
            s.greedy_threshold or _OFF,
        ],
        dtype=torch.float32,
    )
    assert len(f32) == len(F32_COLUMNS)
    temperature, top_p = f32[0].item(), f32[4].item()  # as the float32 columns hold them
    ks = tuple(s.calibrated_topk) if s.calibrated_topk else ()
    uses = set(s.enabled())
    if greedy:
        uses.add("greedy")

    # Rank caps (rules.rank_caps): top_k and Calibrated-TopK bound k; confidence_bin,
    # Greedy-Threshold and greedy only ever set k = 1. So a row's k is 1, V, or at most this bound.
    bounds = [b for b in (s.top_k or None, max(ks) if ks else None) if b is not None]
    rank_bound = 1 if greedy else (min(bounds) if bounds else None)
    # Conservative (True when unsure): it only decides whether the cheap [B] rank ops run.
    may_turn_greedy = edt is not None or temperature < 2 * MIN_TEMPERATURE
    rank_possible = (
        greedy or rank_bound is not None or may_turn_greedy or bool(s.confidence_bin) or bool(s.greedy_threshold)
    )
    top_p_on = top_p < 1.0
    truncates = rank_possible or top_p_on or bool(s.min_p) or bool(s.epsilon) or bool(s.eta) or log_eps > -math.inf
    raw = bytes(f32.view(torch.uint8).tolist())
    return _Row(
        int_bytes=tuple(_int64_bytes((v,)) for v in (s.top_k or 0, s.confidence_bin or 0, s.bins)),
        f32_bytes=tuple(raw[i : i + 4] for i in range(0, len(raw), 4)),
        flag_bytes=(bytes((greedy,)), bytes((edt is not None,))),
        ks=ks,
        bins=s.bins,
        uses=frozenset(uses),
        top_p_on=top_p_on,
        rank_bound=rank_bound,
        rank_possible=rank_possible,
        truncates=truncates,
    )


def _facts_from_tensors(batch: SamplerBatch) -> BatchFacts:
    """Host facts of a batch that was built without `from_specs` (reads the columns back once)."""
    greedy = batch.greedy.cpu()
    top_k = batch.top_k.cpu()
    ks_max = batch.calibrated_topk.cpu().amax(dim=1) if batch.calibrated_topk.numel() else torch.zeros_like(top_k)
    big = torch.iinfo(torch.int64).max
    bound = torch.where(top_k > 0, top_k, big)
    bound = torch.where(ks_max > 0, torch.minimum(bound, ks_max), bound)
    bound = torch.where(greedy, 1, bound)
    partial = (bound > 1) & (bound < big)
    rows = batch.rows

    def pick(mask: torch.Tensor) -> tuple[int, torch.Tensor | None]:
        count = int(mask.sum())
        if count in (0, rows):
            return count, None
        return count, mask.nonzero().flatten().to(batch.top_k.device)

    top_p_on = batch.top_p.cpu() < 1.0
    top_p_count, top_p_rows = pick(top_p_on)
    rank_count, rank_rows = pick(partial)
    rank_possible = bool(
        greedy.any()
        or (bound < big).any()
        or batch.edt_on.cpu().any()
        or (batch.temperature.cpu() < 2 * MIN_TEMPERATURE).any()
        or (batch.confidence_bin.cpu() > 0).any()
        or (batch.greedy_threshold.cpu() > 0).any()
    )
    truncates = bool(
        rank_possible
        or top_p_on.any()
        or (batch.min_p.cpu() > 0).any()
        or (batch.epsilon.cpu() > 0).any()
        or (batch.eta.cpu() > 0).any()
        or (batch.calibrated_log_eps.cpu() > -math.inf).any()
    )
    return BatchFacts(
        top_p_count=top_p_count,
        top_p_rows=top_p_rows,
        rank_k=int(bound[partial].max()) if rank_count else 0,
        rank_count=rank_count,
        rank_rows=rank_rows,
        rank_possible=rank_possible,
        truncates=truncates,
    )


def _log_or_off(eps: float) -> float:
    return math.log(eps) if eps > 0 else -math.inf
