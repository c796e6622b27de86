"""Fused Triton kernels for `sss.samplers.apply_rules` on CUDA tensors.

`apply_rules` calls `apply_rules_cuda` by itself when `usable(logits)` holds (CUDA logits of
float32, bfloat16 or float16, Triton importable, ``SSS_SAMPLER_KERNELS`` not set to ``0``);
the torch code in `rules.py` stays the path for the CPU and the reference the GPU tests compare
with. See docs/kernels.md for the stages, the selection method and CUDA-graph capture.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch

from ..batch import SamplerBatch

DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# launch shapes (H200-tuned; see benchmarks/bench_process_logits.py and docs/kernels.md)
STATS_BLOCK = 2048  # elements per program step in the statistics pass
STATS_PROGRAMS = 1024  # aim for about this many (row, chunk) programs in that pass
MAX_CHUNKS = 128  # chunks per row at most (one compiled size for the partials' reduction)
SELECT_BLOCK = 4096  # elements per step of the selection passes (histogram, collect, the one-program fallback)
MASK_BLOCK = 4096  # elements per program of the output pass
SPLIT_ROUNDS = 2  # histogram rounds (after round 0) split over a row's programs before one program finishes it
# elements per tile of the statistics pass's summaries: one block (a tile of 256, held as [8, 256],
# made that pass 2.4x slower on the H200; with levels 8x); at most NT_CAP tiles per row
TILE = STATS_BLOCK
FIRST_CAP_FACTOR = 4  # round 0's candidate buffer: this many times the histogram rounds' buffer


@lru_cache(maxsize=1)
def _triton():
    """The kernel module, or None where Triton cannot be imported."""
    try:
        from . import triton_rules
    except Exception:  # noqa: BLE001 -- no Triton (CPU installs): the torch path serves
        return None
    return triton_rules


def enabled() -> bool:
    """False when ``SSS_SAMPLER_KERNELS=0`` (force the torch path, e.g. to compare)."""
    return os.environ.get("SSS_SAMPLER_KERNELS", "1") != "0"


def usable(logits: torch.Tensor) -> bool:
    return (
        logits.is_cuda
        and logits.dtype in DTYPES
        and logits.dim() == 2
        and logits.numel() > 0
        and enabled()
        and _triton() is not None
    )


def apply_rules_cuda(
    logits: torch.Tensor,
    batch: SamplerBatch,
    *,
    bins: int | None = None,
    cap: int | None = None,
    tile: int | None = None,
) -> torch.Tensor:
    """`apply_rules` by the kernels: float32 [B, V] output, no host synchronisation.

    ``bins`` / ``cap`` (powers of two) override the selection's histogram size and candidate
    buffer: small values make tests walk the refinement rounds that large rows rarely need;
    ``tile`` (a power of two up to 2048) the statistics pass's summary tiles, so that short test
    rows have enough tiles for round 0's bounds.
    """
    k = _triton()
    bins = bins or k.NB
    cap = cap or k.CAP
    rows, vocab = logits.shape
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    facts = batch.host_facts()
    uses = batch.uses
    dev = logits.device
    has_edt = "edt" in uses
    has_bins = bool(uses & {"calibrated_topk", "confidence_bin"})
    select = facts.top_p_count > 0 or facts.rank_k > 1

    # round 0 of a selection needs tile summaries from the statistics pass: maxima (1), plus the
    # level masses when a row has top_p (2); 0 when tiles that fit NT_CAP would exceed a block
    tile = tile or TILE
    while triton.cdiv(vocab, tile) > k.NT_CAP:
        tile *= 2
    summary = 0 if not select or tile > STATS_BLOCK else 2 if facts.top_p_count > 0 else 1
    if summary == 0:
        tile = STATS_BLOCK  # a block is one tile: no summaries
    n_tiles = triton.cdiv(vocab, tile)
    tiles_pow2 = max(16, 1 << (n_tiles - 1).bit_length())  # the per-row rules' block over the tiles
    first_cap = cap * FIRST_CAP_FACTOR
    n_blocks = triton.cdiv(vocab, STATS_BLOCK)
    chunks = max(1, min(n_blocks, MAX_CHUNKS, triton.cdiv(STATS_PROGRAMS, rows)))
    chunk = triton.cdiv(n_blocks, chunks) * STATS_BLOCK
    chunks = triton.cdiv(vocab, chunk)
    fp, ip, bp, ks_stride = _packed_params(batch, k)
    n_parts = 2 if has_edt else 1
    # scratch, in few allocations (each costs host time): float32 partials (max, sum, sum*shift)
    # per pass, then threshold and temperature per row; int32 +inf counts per pass, then the +inf
    # flag per row; with selection, its float / int partials, the top_p targets, the scaled max,
    # the candidate buffers, per kind a window [max, lo] per row (round 0's bound, then the
    # histogram rounds' windows), the tile maxima and level masses, the float64 normaliser and
    # int64 k, and a zeroed block per kind (round 0's counters, a histogram per round)
    rc = rows * chunks
    n_lev = rows * k.N_LEVELS * n_tiles if summary == 2 else 1
    sel_sizes = [7 * rc, rows, rows, rows * first_cap, 2 * rows, 2 * rows, rows * n_tiles, n_lev]
    f_sizes = [3 * rc] * n_parts + [2 * rows] + (sel_sizes if select else [])
    i_sizes = [rc] * n_parts + [rows] + ([2 * rc] if select else [])
    f_views = _carve(torch.float32, f_sizes, dev)
    i_views = _carve(torch.int32, i_sizes, dev)
    parts, res = f_views[:n_parts], f_views[n_parts]
    counts, flag = i_views[:n_parts], i_views[n_parts]
    if select:
        sel_pf, sel_p, sel_mx, cand, win_k, win_p, tmax, lev = f_views[n_parts + 1 :]
        sel_pi = i_views[n_parts + 1]
        sel_s, sel_k = _carve(torch.float64, [rows, rows], dev)
        sel_k = sel_k.view(torch.int64)
        count0 = -(-rows // 4) * 4  # round 0's candidate counter per row (aligned)
        block = -(-rows * (bins + 1) // 4) * 4  # histogram and counter per row, per round (aligned)
        per_kind = count0 + max(1, SPLIT_ROUNDS) * block  # (room for the most rounds)
        zeroed = torch.zeros(2 * per_kind, dtype=torch.int32, device=dev)
    else:
        sel_pf = sel_p = sel_mx = cand = sel_pi = sel_s = sel_k = zeroed = res  # unused
        win_k = win_p = tmax = lev = res
    grid = (rows, chunks)
    stride = logits.stride(0)
    _launch(
        k._partial_stats,
        grid,
        logits,
        stride,
        vocab,
        chunk,
        fp,
        bp,
        parts[0],
        counts[0],
        rows,
        chunks,
        int(has_edt),
        tmax,
        lev,
        n_tiles,
        BLOCK=STATS_BLOCK,
        TILE=tile,
        SUMMARY=summary,
        num_warps=8,
    )
    if has_edt:
        _launch(
            k._edt_stats,
            grid,
            logits,
            stride,
            vocab,
            chunk,
            fp,
            bp,
            parts[0],
            counts[0],
            parts[1],
            counts[1],
            rows,
            chunks,
            tmax,
            lev,
            n_tiles,
            CB=MAX_CHUNKS,
            BLOCK=STATS_BLOCK,
            TILE=tile,
            SUMMARY=summary,
            num_warps=8,
        )
    _launch(
        k._finish_rows,
        (rows,),
        vocab,
        parts[-1],
        counts[-1],
        parts[0],
        counts[0],
        rows,
        chunks,
        fp,
        ip,
        bp,
        ks_stride,
        res,
        flag,
        sel_k,
        sel_p,
        sel_mx,
        sel_s,
        win_k,
        win_p,
        tmax,
        lev,
        n_tiles,
        int(has_edt),
        int(has_bins),
        CB=MAX_CHUNKS,
        SELECT=select,
        BOUNDS=summary,
        NTC=tiles_pow2,
        num_warps=8 if summary == 2 else 4,
    )
    if select:
        kinds = ([False] if facts.rank_k > 1 else []) + ([True] if facts.top_p_count > 0 else [])
        for n, is_p in enumerate(kinds):
            zk = zeroed[n * per_kind : (n + 1) * per_kind]
            win = win_p if is_p else win_k
            # round 0: the candidates above the tile-summary bound (`_finish_rows` set it)
            _launch(
                k._sel_first,
                grid,
                logits,
                stride,
                vocab,
                chunk,
                res,
                sel_k,
                sel_p,
                win,
                tmax,
                n_tiles,
                zk,
                cand,
                rows,
                IS_P=is_p,
                TILE=tile,
                TPC=max(1, 1 << (chunk // tile - 1).bit_length()),
                CAPN=first_cap,
                num_warps=8,
            )
            _launch(
                k._sel_first_resolve,
                (rows,),
                res,
                sel_k,
                sel_p,
                sel_mx,
                sel_s,
                win,
                zk,
                cand,
                rows,
                IS_P=is_p,
                CAPN=first_cap,
                num_warps=8,
            )
            # histogram rounds for the rows round 0 left (no bound, or more candidates than fit);
            # one when round 0 has bounds for every row's k or top_p (each launch costs the host
            # 20-40 us, more than a no-op round costs the GPU), else SPLIT_ROUNDS
            bounded = summary == 2 if is_p else summary > 0 and facts.rank_k <= n_tiles
            rounds = 1 if bounded else SPLIT_ROUNDS
            for rnd in range(rounds):
                zi = zk[count0 + rnd * block : count0 + (rnd + 1) * block]
                # the three selection kernels take the same arguments
                args = (logits, stride, vocab, chunk, res, flag, sel_k, sel_p, sel_mx, sel_s, win, zi, sel_pf)
                args += (sel_pi, cand, rows, chunks, int(rnd == rounds - 1))
                consts = dict(IS_P=is_p, CB=MAX_CHUNKS, BLOCK=SELECT_BLOCK, NBINS=bins, CAPN=cap)
                _launch(k._sel_hist, grid, *args, **consts, num_warps=8)
                _launch(k._sel_collect, grid, *args, **consts, num_warps=8)
                _launch(k._sel_resolve, (rows,), *args, **consts, num_warps=16 if cap >= 4096 else 8)
    out = torch.empty((rows, vocab), dtype=torch.float32, device=dev)
    _launch(
        k._mask,
        (rows, triton.cdiv(vocab, MASK_BLOCK)),
        logits,
        stride,
        out,
        out.stride(0),
        vocab,
        res,
        flag,
        rows,
        BLOCK=MASK_BLOCK,
        num_warps=8,
    )
    return out


def _carve(dtype: torch.dtype, sizes: list[int], dev: torch.device) -> list[torch.Tensor]:
    """Views of one fresh buffer of `sizes` elements each, every one starting 16-byte aligned.

    Triton specialises kernels on whether each pointer is 16-byte aligned; unaligned views
    (offsets that depend on B and V) would compile a new variant per shape.
    """
    per = 16 // torch.empty((), dtype=dtype).element_size()
    starts, total = [], 0
    for n in sizes:
        starts.append(total)
        total += -(-n // per) * per
    buf = torch.empty(total, dtype=dtype, device=dev)
    return [buf[a : a + n] for a, n in zip(starts, sizes)]


# Triton's generic launch binds and specialises every argument on each call (tens of us of host
# time per launch); a variant launched before is called directly. Its key is what Triton
# specialises on here: the kernel, the constexprs, the tensors' dtypes and 16-byte alignment.
_COMPILED: dict[tuple, object] = {}


def _launch(kernel, grid, *args, num_warps, **constexprs):
    key = (
        kernel,
        num_warps,
        *constexprs.items(),
        *((a.dtype, a.data_ptr() % 16 == 0) for a in args if isinstance(a, torch.Tensor)),
    )
    compiled = _COMPILED.get(key)
    if compiled is None:
        _COMPILED[key] = kernel[grid](*args, **constexprs, num_warps=num_warps)
    else:
        compiled[(grid + (1, 1))[:3]](*args, *constexprs.values())


def _packed_params(batch: SamplerBatch, k) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The batch's columns as three [n, B] blocks (float32, int64 + the ks, bool) and the ks' row stride.

    `SamplerBatch.from_specs` already lays the columns out so (views of one buffer), which is
    checked here by address alone (no device work); a batch built another way is packed by copies.
    """
    rows = batch.rows
    f = [getattr(batch, name) for name in k.F_COLUMNS]
    i = [getattr(batch, name) for name in k.I_COLUMNS]
    b = [getattr(batch, name) for name in k.B_COLUMNS]
    ks = batch.calibrated_topk
    width = ks.shape[1] if ks.dim() == 2 else 1

    def laid_out(cols, size):
        base = cols[0].data_ptr()
        return all(c.is_contiguous() and c.data_ptr() == base + n * rows * size for n, c in enumerate(cols))

    fp = f[0] if laid_out(f, 4) and f[0].dtype == torch.float32 else torch.stack(f).to(torch.float32)
    if laid_out(i + [ks], 8) and ks.is_contiguous() and ks.dtype == torch.int64:
        ip = i[0]
    else:
        ip = torch.cat([torch.stack(i).to(torch.int64).flatten(), ks.to(torch.int64).contiguous().flatten()])
    bp = b[0] if laid_out(b, 1) and b[0].dtype == torch.bool else torch.stack(b).to(torch.bool)
    return fp, ip, bp, width


class triton:  # noqa: N801 -- a tiny stand-in so this module imports without Triton
    @staticmethod
    def cdiv(a: int, b: int) -> int:
        return -(-a // b)
