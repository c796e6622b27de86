"""Fused Triton kernels for `sss.samplers.apply_rules` on CUDA tensors.

`apply_rules` calls `apply_rules_cuda` by itself when `usable(logits)` holds (CUDA logits of
float32, bfloat16 or float16, Triton importable, ``SSS_SAMPLER_KERNELS`` not set to ``0``);
the torch code in `rules.py` stays the path for the CPU and the reference the GPU tests compare
with. See docs/kernels.md for the stages, the selection method and CUDA-graph capture.
"""

from __future__ import annotations

import operator
import os
import weakref
from functools import lru_cache

import torch

from ..batch import SamplerBatch

DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# launch shapes (H200-tuned; see benchmarks/bench_process_logits.py and docs/kernels.md)
# elements per program step in the statistics pass (and so per tile); SSS_KERNEL_STATS_BLOCK for tuning runs
STATS_BLOCK = int(os.environ.get("SSS_KERNEL_STATS_BLOCK", 2048))
STATS_WARPS = 8  # warps per program of the statistics pass
STATS_PROGRAMS = 1024  # aim for about this many (row, chunk) programs in that pass
MAX_CHUNKS = 128  # chunks per row at most (one compiled size for the partials' reduction)
SELECT_BLOCK = 4096  # elements per step of the selection passes (histogram, collect, the one-program fallback)
MASK_BLOCK = 4096  # elements per program of the output pass
SPLIT_ROUNDS = 2  # histogram rounds (after round 0) split over a row's programs before one program finishes it
# elements per tile of the statistics pass's maxima (at most NT_CAP tiles per row), one block by
# default (a tile of 256, held as [8, 256], made that pass 2.4x slower on the H200); the level
# masses are per block. SSS_KERNEL_TILE for tuning runs
TILE = int(os.environ.get("SSS_KERNEL_TILE", STATS_BLOCK))
# rules that need the normaliser (log-sum-exp, p_max, entropy) of z / T: with EDT rows, their
# temperature comes from the unscaled entropy, and these rules then need a second read
SCALED_STATS_RULES = frozenset(
    {"top_p", "epsilon", "eta", "calibrated_epsilon", "greedy_threshold", "confidence_bin", "calibrated_topk"}
)
# round 0's resolve of top_p: elements per step and bins of its histogram over the candidates
# (H200, B = 256, rows of ~4k-11k candidates: 2,048 / 256 took 64 us, 2,048 / 512 87 us, 1,024 /
# 512 84 us; benchmarks/bench_top_p_resolve.py); SSS_KERNEL_RESOLVE_* for tuning runs
RESOLVE_BLOCK = int(os.environ.get("SSS_KERNEL_RESOLVE_BLOCK", 2048))
RESOLVE_BINS = int(os.environ.get("SSS_KERNEL_RESOLVE_BINS", 256))
# top_p's round 0 resolve with its first pass split over the row's segments (`_seg_bins`, one more
# launch; H200, B = 256: 82 against 90 us, B = 1: 33 against 55); SSS_KERNEL_SPLIT_RESOLVE=0 for comparisons
SPLIT_RESOLVE = os.environ.get("SSS_KERNEL_SPLIT_RESOLVE", "1") == "1"
# `_seg_bins`: elements per step and warps; SSS_KERNEL_SEG_BINS_* for tuning runs
# (H200, B = 256: a block of 1,024 took 33 against 37 us, not yet through the GPU tests)
SEG_BINS_BLOCK = int(os.environ.get("SSS_KERNEL_SEG_BINS_BLOCK", 2048))
SEG_BINS_WARPS = int(os.environ.get("SSS_KERNEL_SEG_BINS_WARPS", 4))
# top_p's round 0 resolve: warps per row's program (16: no faster). It holds 255 registers a
# thread, so 8 warps fit one program per SM; with more top_p rows than SMs 4 warps took 32 against
# 44 us (H200, B = 256; the benchmark's mixed batch, few top_p rows: 34 against 27), not yet
# through the GPU tests. SSS_KERNEL_RESOLVE_WARPS for tuning runs
RESOLVE_WARPS = int(os.environ.get("SSS_KERNEL_RESOLVE_WARPS", 8))
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

    A call that launched directly (CUDA, no launch hooks, not capturing) leaves its launches as a
    plan for the batch; the next call with the same batch and logits layout replays it
    (`_LaunchPlan`), skipping the host work in between.
    """
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    dev = logits.device
    stream = _stream(dev)
    capturing = dev.type == "cuda" and torch.cuda.is_current_stream_capturing()
    plan_key = None
    if stream is not None and not capturing and PLANS:
        plan_key = (logits.shape, logits.dtype, logits.stride(0), logits.data_ptr() % 16 == 0, dev, stream)
        plan_key += (bins, cap, tile)
        plan = _plan_for(batch, plan_key)
        if plan is not None and _no_launch_hooks():  # hooks (profilers) see Triton's own launches
            return plan.replay(logits, stream)
    k = _triton()
    bins = bins or k.NB
    cap = cap or k.CAP
    rows, vocab = logits.shape
    facts = batch.host_facts()
    uses = batch.uses
    has_edt = "edt" in uses
    has_bins = bool(uses & {"calibrated_topk", "confidence_bin"})
    select = facts.top_p_count > 0 or facts.rank_k > 1
    # EDT's second read (stats of z / T) only where a rule needs z / T's normaliser or the tile
    # summaries of z / T; otherwise the per-row stage scales the max alone
    edt_pass = has_edt and bool(select or uses & SCALED_STATS_RULES)

    # the statistics pass's summaries (a sum of flags): 1, each tile's max, for round 0 of top_k
    # (not when the tiles that fit NT_CAP would exceed a block); 2, top_p's candidates
    tile = tile or TILE
    while triton.cdiv(vocab, tile) > k.NT_CAP:
        tile *= 2
    k_tiles = facts.rank_k > 1 and tile <= STATS_BLOCK
    summary = int(k_tiles) + 2 * int(facts.top_p_count > 0)
    if not k_tiles:
        tile = STATS_BLOCK  # a block is one tile: no maxima
    n_tiles = triton.cdiv(vocab, tile)
    tiles_pow2 = max(16, 1 << (n_tiles - 1).bit_length())  # `_finish_rows`'s block over the tiles
    first_cap = cap * FIRST_CAP_FACTOR
    if first_cap > k.FIXED_MAX_TERMS:  # its top_p masses are summed as int64 (triton_rules.FIX_SCALE)
        raise ValueError(
            f"candidate buffer of {cap} (SSS_KERNEL_CAP or cap=): round 0's buffer of {first_cap} exceeds "
            f"{k.FIXED_MAX_TERMS}, the most whose integer mass sums fit int64"
        )
    n_blocks = triton.cdiv(vocab, STATS_BLOCK)
    chunks = max(1, min(n_blocks, MAX_CHUNKS, triton.cdiv(STATS_PROGRAMS, rows)))
    chunk = triton.cdiv(n_blocks, chunks) * STATS_BLOCK
    chunks = triton.cdiv(vocab, chunk)
    # top_p's candidates: a segment per (row, chunk) program of the statistics pass, their share of
    # round 0's buffer but at least 1/64 of it (many short chunks at small B), all of a row's
    # together within the integer mass sums' range; round 0's resolve reads them in place (and
    # gathers them into the candidate buffer only where `_select` must take over)
    kseg = max(first_cap // chunks, first_cap // 64, 1)
    kseg = 1 << (min(kseg, k.FIXED_MAX_TERMS // chunks).bit_length() - 1)  # a power of two: slot // KSEG is a shift
    p_cap = max(first_cap, chunks * kseg)
    # the statistics pass's block as [K, lanes]: a thread per lane, each with its own running
    # stats; tiles smaller than the lanes (tests) take a row of the whole block
    stats_lanes = STATS_WARPS * 32 if tile >= STATS_WARPS * 32 else STATS_BLOCK
    fp, ip, bp, ks_stride = _packed_params(batch, k)
    n_parts = 2 if edt_pass else 1
    hb = -(-(bins + 1) // 4) * 4  # a histogram and its candidate counter, 16-byte aligned
    zs = 8 + 2 * SPLIT_ROUNDS * hb  # ints per row: round 0's counter per kind (at 0 and 4), the histograms
    # scratch: float32 partials (max, sum, sum*shift) per pass, then threshold and temperature per
    # row; int32 +inf counts per pass, then the +inf flag per row; with selection, its float / int
    # partials, the top_p targets, the scaled max, the candidate buffers, per kind a window
    # [max, lo] per row (round 0's bound, then the histogram rounds' windows), the tile maxima,
    # top_p's segments and their thresholds and counts, the counters and histograms (zs per row,
    # zeroed by `_finish_rows`), the float64 normaliser, int64 k and top_p resolve's per-bin masses
    rc = rows * chunks
    has_p = facts.top_p_count > 0
    n_seg, n_pth = (rc * kseg, rc) if has_p else (1, 1)
    cand_cap = p_cap if has_p else first_cap
    sel_sizes = [7 * rc, rows, rows, rows * (cand_cap + k.SMALL), 2 * rows, 2 * rows, rows * n_tiles, n_seg, n_pth]
    f_sizes = (3 * rc,) * n_parts + (2 * rows,) + (tuple(sel_sizes) if select else ())
    split = has_p and SPLIT_RESOLVE
    resolve_bins = min(bins, RESOLVE_BINS)  # tests' small bins reach the narrowing rounds
    n_bin_cnt = rows * resolve_bins if split else 1  # `_seg_bins`'s counts
    i_sizes = (rc,) * n_parts + (rows,) + ((2 * rc, rows * zs, n_pth, n_bin_cnt) if select else ())
    # float64: the normaliser, k (int64), top_p's per-bin masses in round 0's resolve (int64)
    n_bin_mass = rows * resolve_bins if has_p else 1
    d_sizes = (rows, rows, n_bin_mass) if select else ()
    f_views, i_views, d_views = _workspace(dev, stream, capturing, (f_sizes, i_sizes, d_sizes))
    parts, res = f_views[:n_parts], f_views[n_parts]
    counts, flag = i_views[:n_parts], i_views[n_parts]
    if select:
        sel_pf, sel_p, sel_mx, cand, win_k, win_p, tmax, seg, pth = f_views[n_parts + 1 :]
        sel_pi, zsel, pcnt, bin_cnt = i_views[n_parts + 1 :]
        sel_s, sel_k, bin_mass = d_views
        sel_k = sel_k.view(torch.int64)
        bin_mass = bin_mass.view(torch.int64)
    else:
        sel_pf = sel_p = sel_mx = cand = sel_pi = sel_s = sel_k = zsel = bin_mass = res  # unused
        win_k = win_p = tmax = seg = pth = res
        pcnt = bin_cnt = flag
    out = torch.empty((rows, vocab), dtype=torch.float32, device=dev)
    # the device (a compiled kernel is loaded per device) and what Triton specialises on among the
    # tensors that do not come from the workspace (whose views are all 16-byte aligned, of fixed
    # dtypes): their dtype and 16-byte alignment
    sig = (dev, *((t.dtype, t.data_ptr() % 16 == 0) for t in (logits, fp, ip, bp)))
    # a plan only for a batch whose columns the kernels read in place (`SamplerBatch.from_specs`'s
    # layout): packed copies would not see later writes to the batch's tensors
    in_place = fp is getattr(batch, k.F_COLUMNS[0]) and ip is getattr(batch, k.I_COLUMNS[0])
    in_place = in_place and bp is getattr(batch, k.B_COLUMNS[0])
    launch = _Launcher(sig, stream, record=plan_key is not None and in_place)
    grid = (rows, chunks)
    stride = logits.stride(0)
    launch(
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
        seg,
        pth,
        pcnt,
        n_tiles,
        BLOCK=STATS_BLOCK,
        TILE=tile,
        SUMMARY=summary,
        KSEG=kseg,
        LANES=stats_lanes,
        num_warps=STATS_WARPS,
    )
    if edt_pass:
        launch(
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
            seg,
            pth,
            pcnt,
            n_tiles,
            CB=MAX_CHUNKS,
            BLOCK=STATS_BLOCK,
            TILE=tile,
            SUMMARY=summary,
            KSEG=kseg,
            LANES=stats_lanes,
            num_warps=STATS_WARPS,
        )
    launch(
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
        n_tiles,
        0 if not has_edt else 1 if edt_pass else 2,
        int(has_bins),
        zsel,
        zs,
        bin_mass,
        bin_cnt,
        CB=MAX_CHUNKS,
        SELECT=select,
        BOUNDS=int(k_tiles),
        NTC=tiles_pow2,
        ZP=1 << (zs - 1).bit_length(),
        RB=resolve_bins if split else 0,
        num_warps=4,
    )
    if select:
        arrive = _arrivals(dev, stream, capturing, rows)
        kinds = ([False] if facts.rank_k > 1 else []) + ([True] if facts.top_p_count > 0 else [])
        for n, is_p in enumerate(kinds):
            win = win_p if is_p else win_k
            # round 0: for k, the candidates above the tile-maxima bound (`_finish_rows` set it);
            # for top_p, those the statistics pass copied to its segments
            zk = zsel[4 * n :]
            if not is_p:
                launch(
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
                    zs,
                    cand,
                    rows,
                    TILE=tile,
                    TPC=max(1, 1 << (chunk // tile - 1).bit_length()),
                    CAPN=first_cap,
                    num_warps=8,
                )
            # histogram rounds for the rows round 0 leaves (no bound, or more candidates than fit):
            # none for k when every row has a bound (round 0's resolve finishes the rare rest by
            # one program per row: each launch costs more host time than that); one for top_p
            # (rows whose candidates fell short of top_p's mass, or held +inf; its last program
            # per row finishes them); else SPLIT_ROUNDS. Each round's resolve runs in the collect
            # pass's last program per row
            if is_p:
                rounds = 1
            else:
                rounds = 0 if k_tiles and facts.rank_k <= n_tiles else SPLIT_ROUNDS
            if is_p and split:
                launch(
                    k._seg_bins,
                    grid,
                    flag,
                    sel_p,
                    sel_mx,
                    seg,
                    pth,
                    pcnt,
                    bin_mass,
                    bin_cnt,
                    chunks,
                    rows,
                    CB=MAX_CHUNKS,
                    KSEG=kseg,
                    BLOCK=min(SEG_BINS_BLOCK, kseg),
                    NBINS=resolve_bins,
                    num_warps=SEG_BINS_WARPS,
                )
            launch(
                k._sel_first_resolve,
                (rows,),
                logits,
                stride,
                vocab,
                res,
                flag,
                sel_k,
                sel_p,
                sel_mx,
                sel_s,
                win,
                zk,
                zs,
                cand,
                bin_mass,
                seg,
                pth,
                pcnt,
                bin_cnt,
                chunks,
                rows,
                IS_P=is_p,
                CAPN=p_cap if is_p else first_cap,
                BLOCK=RESOLVE_BLOCK,
                NBINS=resolve_bins,
                ROW_CAP=cap,
                LAST=rounds == 0,
                CB=MAX_CHUNKS,
                KSEG=kseg if is_p else 1,
                SPLIT=is_p and split,
                num_warps=RESOLVE_WARPS if is_p else 8,
            )
            for rnd in range(rounds):
                zi = zsel[8 + (n * SPLIT_ROUNDS + rnd) * hb :]
                # the two kernels take the same arguments
                args = (logits, stride, vocab, chunk, res, flag, sel_k, sel_p, sel_mx, sel_s, win, zi, zs, sel_pf)
                args += (sel_pi, cand, arrive[n * SPLIT_ROUNDS + rnd], rows, chunks, int(rnd == rounds - 1))
                consts = dict(IS_P=is_p, CB=MAX_CHUNKS, BLOCK=SELECT_BLOCK, NBINS=bins, CAPN=cap)
                launch(k._sel_hist, grid, *args, **consts, num_warps=8)
                launch(k._sel_collect, grid, *args, **consts, num_warps=8)
    launch(
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
    if launch.record is not None:
        _keep_plan(batch, plan_key, _LaunchPlan(batch, logits, out, launch.record))
    return out


def _stream(dev: torch.device) -> int | None:
    """The current raw CUDA stream of `dev` (None for CPU tensors: Triton's interpreter)."""
    if dev.type != "cuda":
        return None
    return torch._C._cuda_getCurrentRawStream(dev.index if dev.index is not None else torch.cuda.current_device())


# Scratch per (device, stream, sizes): the views of one float32, one int32 and one float64 buffer,
# each view 16-byte aligned (Triton specialises kernels on pointer alignment; unaligned views, at
# offsets that depend on B and V, would compile a variant per shape). Kept between calls, since
# each allocation and view costs host time (a few us); per stream, as calls on two streams may
# overlap; a few sizes at most (a decode loop's batch size changes now and then). Every call
# writes what it reads (`_finish_rows` zeroes the counters), so nothing carries over.
WORKSPACES = 4
_WORKSPACE: dict[tuple, tuple] = {}


def _workspace(dev: torch.device, stream: int | None, capturing: bool, sizes: tuple) -> tuple:
    """Views for `sizes` (float32, int32, float64 sizes); a CUDA graph's capture gets fresh ones
    (the graph owns what its capture allocates)."""
    key = None if capturing else (dev, stream, sizes)
    views = _WORKSPACE.pop(key, None) if key else None
    if views is None:
        views = tuple(_carve(dtype, n, dev) for dtype, n in zip(_SCRATCH_DTYPES, sizes))
        if key is None:
            return views
        while len(_WORKSPACE) >= WORKSPACES:
            _WORKSPACE.pop(next(iter(_WORKSPACE)))  # the least recently used
    _WORKSPACE[key] = views  # (re)inserted last: most recently used
    return views


_SCRATCH_DTYPES = (torch.float32, torch.int32, torch.float64)


def _carve(dtype: torch.dtype, sizes: tuple, dev: torch.device) -> list[torch.Tensor]:
    """Views of one fresh buffer of `sizes` elements each, every one starting 16-byte aligned."""
    if not sizes:
        return []
    per = 16 // dtype.itemsize
    starts, total = [], 0
    for n in sizes:
        starts.append(total)
        total += -(-n // per) * per
    buf = torch.empty(total, dtype=dtype, device=dev)
    return [buf[a : a + n] for a, n in zip(starts, sizes)]


# Per (device, stream): the arrival counters of `_last_arrival` (one per row and histogram round),
# zero between launches (each launch's last program per row resets its counter), so allocated and
# zeroed once. Per stream, so that calls on two streams do not share counters.
ARRIVAL_SLOTS = 2 * SPLIT_ROUNDS  # per kind (k, top_p) and histogram round
_ARRIVALS: dict[tuple, list[torch.Tensor]] = {}


def _arrivals(dev: torch.device, stream: int | None, capturing: bool, rows: int) -> list[torch.Tensor]:
    if capturing:  # the graph's own, zeroed by a memset node at each replay
        return list(torch.zeros((ARRIVAL_SLOTS, rows), dtype=torch.int32, device=dev).unbind(0))
    key = (dev, stream)
    slots = _ARRIVALS.get(key)
    if slots is None or slots[0].numel() < rows:
        width = -(-rows // 64) * 64  # 16-byte aligned rows
        if len(_ARRIVALS) >= 16 and key not in _ARRIVALS:
            _ARRIVALS.pop(next(iter(_ARRIVALS)))  # streams come and go (captures); keep a few
        slots = list(torch.zeros((ARRIVAL_SLOTS, width), dtype=torch.int32, device=dev).unbind(0))
        _ARRIVALS[key] = slots
    return slots


# A kernel variant launched before is launched through Triton's launcher directly: the generic
# `kernel[grid](...)` binds and specialises every argument on each call, and even a compiled
# kernel's `[grid](...)` looks up the device and stream per launch; together tens of us of host
# time per launch (H200 machine, 2026-12-02: 35 / 18 / 14 us for 25 arguments). The key is what
# Triton specialises on here: the kernel, the constexprs and warps, and `sig` (the device, the
# caller's tensors' dtypes and alignment; the workspace's views are aligned and of fixed dtypes).
_COMPILED: dict[tuple, tuple] = {}


class _Launcher:
    """Launches kernels; with ``record``, also lists each launch in `record` (for `_LaunchPlan`),
    which becomes None where a launch did not go through the direct path."""

    __slots__ = ("sig", "stream", "direct", "record")

    def __init__(self, sig: tuple, stream: int | None, record: bool = False):
        self.sig, self.stream = sig, stream
        self.direct = stream is not None and _no_launch_hooks()
        self.record = [] if record and self.direct else None

    def __call__(self, kernel, grid, *args, num_warps, **constexprs):
        key = (kernel, num_warps, self.sig, *constexprs.items())
        hit = _COMPILED.get(key) if self.direct else None
        if hit is not None:
            run, function, metadata, _ = hit
            g = grid + (1, 1)
            run(g[0], g[1], g[2], self.stream, function, metadata, None, None, None, *args, *constexprs.values())
        else:
            compiled = kernel[grid](*args, **constexprs, num_warps=num_warps)
            if compiled is not None and self.stream is not None:  # None: Triton's interpreter
                hit = _COMPILED[key] = (compiled.run, compiled.function, compiled.packed_metadata, compiled)
        if self.record is not None:
            if hit is None:
                self.record = None
            else:
                self.record.append((hit, grid + (1, 1), args + tuple(constexprs.values())))


# Per batch (by identity; at most PLAN_BATCHES batches, PLAN_SHAPES logits layouts each): the
# launches of its last call, replayed by the next call with the same logits layout. In a decode
# loop the engines keep one `SamplerBatch` while the rows stay the same, so every step after the
# first skips the host work of `apply_rules_cuda` (the stage choice, the workspace, the packed
# columns' checks, the launch keys) and passes pointers as integers. A plan holds the tensors its
# launches point to (its workspace among them), so it keeps that scratch alive.
PLAN_BATCHES = 8
PLAN_SHAPES = 2
PLANS = os.environ.get("SSS_KERNEL_PLANS", "1") != "0"  # 0: no plans (to compare)
_PLANS: dict[int, tuple] = {}


class _LaunchPlan:
    __slots__ = ("columns", "steps", "shape", "device", "hold")

    def __init__(self, batch: SamplerBatch, logits: torch.Tensor, out: torch.Tensor, record: list):
        self.columns = _columns(batch)
        self.shape, self.device = out.shape, out.device
        self.steps = []
        for (run, function, metadata, _), grid, args in record:
            flat, slots = [], []
            for n, a in enumerate(args):
                if a is logits or a is out:  # this call's: filled in at each replay
                    slots.append((n, a is out))
                    flat.append(0)
                else:
                    flat.append(a.data_ptr() if isinstance(a, torch.Tensor) else a)
            self.steps.append((run, grid, function, metadata, flat, tuple(slots)))
        held = (a for *_, args in record for a in args if isinstance(a, torch.Tensor))
        self.hold = [a for a in held if a is not logits and a is not out]

    def valid(self, batch: SamplerBatch) -> bool:
        """Whether the batch still holds the tensors, rules and facts the plan was made from."""
        now = _columns(batch)
        return all(map(operator.is_, now, self.columns))

    def replay(self, logits: torch.Tensor, stream: int) -> torch.Tensor:
        out = torch.empty(self.shape, dtype=torch.float32, device=self.device)
        ptrs = (logits.data_ptr(), out.data_ptr())
        for run, g, function, metadata, args, slots in self.steps:
            for n, is_out in slots:
                args[n] = ptrs[is_out]
            run(g[0], g[1], g[2], stream, function, metadata, None, None, None, *args)
        return out


def _columns(batch: SamplerBatch) -> tuple:
    """What a plan depends on in the batch, by identity: its column tensors, rules and host facts."""
    k = _triton()
    names = (*k.F_COLUMNS, *k.I_COLUMNS, *k.B_COLUMNS, "calibrated_topk", "uses", "facts")
    return tuple(getattr(batch, name) for name in names)


def _plan_for(batch: SamplerBatch, key: tuple) -> _LaunchPlan | None:
    entry = _PLANS.get(id(batch))
    if entry is None or entry[0]() is not batch:
        return None
    plan = entry[1].get(key)
    return plan if plan is not None and plan.valid(batch) else None


def _keep_plan(batch: SamplerBatch, key: tuple, plan: _LaunchPlan) -> None:
    ident = id(batch)
    entry = _PLANS.get(ident)
    if entry is None or entry[0]() is not batch:

        def forget(ref, ident=ident):  # the batch is gone: so are its plans (and their scratch)
            if _PLANS.get(ident, (None,))[0] is ref:
                del _PLANS[ident]

        entry = (weakref.ref(batch, forget), {})
        _PLANS.pop(ident, None)
        while len(_PLANS) >= PLAN_BATCHES:
            _PLANS.pop(next(iter(_PLANS)))
        _PLANS[ident] = entry
    plans = entry[1]
    plans.pop(key, None)
    while len(plans) >= PLAN_SHAPES:
        plans.pop(next(iter(plans)))
    plans[key] = plan


def _no_launch_hooks() -> bool:
    """Launch hooks (profilers such as Proton) need Triton's own launch path. Triton >= 3.5 holds
    them in chains (an empty chain: none), earlier versions as a callable or None."""
    runtime = getattr(_triton_knobs(), "runtime", None)
    hooks = (getattr(runtime, "launch_enter_hook", None), getattr(runtime, "launch_exit_hook", None))
    return all(h is None or (isinstance(getattr(h, "calls", None), list) and not h.calls) for h in hooks)


@lru_cache(maxsize=1)
def _triton_knobs():
    try:
        from triton import knobs
    except ImportError:  # older Triton: no hooks to honour
        return None
    return knobs


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
