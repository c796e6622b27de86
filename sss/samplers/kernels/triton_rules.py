"""Triton kernels for `apply_rules` on CUDA: the same rules as `sss.samplers.rules`, fused.

Stages, each one launch for the whole (possibly mixed) batch:

1. ``_partial_stats``, grid (B, C): each program reads one chunk of a row and writes its
   softmax statistics relative to the chunk's own max: max m, sum of exp(z - m), sum of
   exp(z - m) * (z - m) (for the entropy) and the number of +inf logits (each thread keeps its
   own, combined at the end: `_online_stats`). One read of the logits.
   With top_k rows it also writes each tile's (block's) max and, on top_p rows, copies top_p's
   candidates to a segment per program (below). EDT rows need their temperature from the
   unscaled entropy first, so with EDT in the batch the kernel runs twice: unscaled, then
   (``_edt_stats``) scaled by each EDT row's temperature.
2. ``_finish_rows``, grid (B,): combines the partials into the row max, log-sum-exp and
   entropy, computes every threshold rule, the rank cap k of every rank rule and greedy.
   Writes one threshold and one temperature per row, the selection targets (k for rows with
   1 < k < V, top_p for rows with top_p < 1) and, from the tile maxima, a lower bound on k's cut.
3. Only when a row of the batch has a target, per target kind (k, then top_p): exact selection
   without a sort. Round 0: for k, ``_sel_first`` (grid (B, C)) copies the elements at or above
   the bound, and ``_sel_first_resolve`` (grid (B,)) reads the cut off them; for top_p
   ``_seg_bins`` (grid (B, C)) bins the statistics pass's segments and the resolve reads the cut
   off them. Rows it leaves (no bound, more
   candidates than the buffer, top_p candidates short of top_p's mass) go through up to two
   histogram rounds (``_sel_hist``, then ``_sel_collect``, grid (B, C), whose last program per
   row resolves the round: `_last_arrival`) and, last, one program per row (``_select``). For
   k, when every row has a bound, no histogram round is launched: round 0's resolve finishes
   the rare rows left (ties beyond its buffer, rows holding +inf) by ``_select`` itself.
4. ``_mask``, grid (B, V / block): ``out = where(z / T >= threshold, z / T, -inf)``.

Round 0 of k: k tiles have a max at least the k-th largest tile max, so the k-th largest logit is
at least that. The candidates (every element >= the bound; tiles whose max is below it are not
read) hold the cut: sorted when at most 256, else bisected on the floats' order (the largest
value whose count at or above reaches k).

Round 0 of top_p: each program of the statistics pass copies, without atomics, every finite
element >= max(a running max - WINDOW, a threshold its first block sets so that the segment
fills to about 3/4) into its segment (`_online_stats`); a program whose segment would overflow
gives up. Each segment then holds every element of its chunk >= its final threshold, so the row's
segments hold every element >= lo, the highest of those thresholds. Where their mass reaches
top_p, the cut lies among them: from exact per-bin masses (``_cut_by_bin_masses``: the candidates
binned over [lo, max] with their masses added as integers by atomics, then the cut's bin sorted),
or, where that bin holds too many, ``_select`` over the candidates from that bin's range. The
masses are summed as integers (``FIX_SCALE``), so the cut does not depend on the atomics' order.

Histogram rounds: a count histogram over a value window [lo, hi] of the row (bins are a
monotone function of the logit, so they split the sorted order exactly; programs add theirs with
integer atomics, so the sum does not depend on their order), then one more pass that copies the
few elements of the bin range holding the target into a candidate buffer (slots taken from an
atomic counter) and sums the count / mass of everything above it exactly (per program, then in a
fixed order); the buffer is sorted in registers and the k-th value (or the first value whose
cumulative mass reaches top_p) read off. top_p picks its bin range from lower and upper bounds
on each bin's mass (bin width x count). When the range holds more elements than the buffer
(ties, very dense rows), the window shrinks to the range's [min, max] (for top_p, the half of
it that holds the cut) and ``_select`` repeats both passes in one program per row until the
candidates fit; equal values end the loop (ties are kept by ``>=``).

No host synchronisation: everything the host needs (which stages run, block sizes) comes from
the `SamplerBatch`'s host facts and the shapes.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

from .. import batch

# histogram bins (0: above the window, 1..NB-2: the window, NB-1: below it) and the candidate
# buffer per row; the environment variables are for tuning runs of the benchmark
NB = int(os.environ.get("SSS_KERNEL_BINS", 512))
CAP = int(os.environ.get("SSS_KERNEL_CAP", 4096))  # elements sorted in registers at the end
SMALL = 256
SMALL_CAP = tl.constexpr(SMALL)  # candidate sets this small are sorted in a buffer of this size
# round 0 of k: candidate sets up to this size are bisected in registers, larger ones in blocks of it
MID_CAP = tl.constexpr(int(os.environ.get("SSS_KERNEL_MID", 2048)))
# globals a kernel reads must be constexpr
WINDOW = tl.constexpr(16.0)  # first window: [max - WINDOW, max] in (scaled) logit units
# top_p's candidates in the statistics pass (`_online_stats`): the bins over the window of the
# histogram that narrows it, and how often one block may narrow it before its program gives up
WBINS = tl.constexpr(64)
# the most of the cut's bin that top_p's resolve sorts (more: `_select` over the candidates)
SEG_PICK = tl.constexpr(int(os.environ.get("SSS_KERNEL_SEG_PICK", 256)))  # SSS_KERNEL_SEG_PICK for tuning runs
NT_CAP = 1024  # tiles per row at most (the launcher widens tiles to fit)
MAX_ROUNDS = tl.constexpr(256)  # rounds per target (a guard: each one narrows the window; most rows need 1)
FLOAT_MAX = tl.constexpr(3.4028234663852886e38)
MIN_TEMPERATURE = tl.constexpr(batch.MIN_TEMPERATURE)
# `_select` over round 0's candidate buffer sums masses as integers in units of 2^-46 of the max's
# mass: the buffer's order comes from atomics (it changes from run to run) and float sums depend on
# the order, integer ones do not. Each mass is <= 1 and the buffer holds at most FIXED_MAX_TERMS
# elements (the launcher checks), so the sum stays below 2^62; each term is off by at most 2^-47.
FIX_SCALE = tl.constexpr(2.0**46)
FIXED_MAX_TERMS = 1 << 16
# Per-row parameters arrive packed as SamplerBatch.from_specs lays them out (one [n, B] block per
# dtype, in sss.samplers.batch's column order): float32 columns, int64 columns (then the
# Calibrated-TopK ks, [B, bins]), bool columns (greedy at row, edt_on at B + row).
F_COLUMNS, I_COLUMNS, B_COLUMNS = batch.F32_COLUMNS, batch.I64_COLUMNS, batch.BOOL_COLUMNS
F_TEMPERATURE, F_EDT_N, F_EDT_THETA, F_EDT_T0, F_TOP_P, F_MIN_P, F_EPSILON, F_ETA, F_CAL_LOG_EPS, F_GREEDY_THRESHOLD = (
    tl.constexpr(F_COLUMNS.index(name))
    for name in (
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
)
I_TOP_K, I_CONF_BIN, I_BINS = (tl.constexpr(I_COLUMNS.index(name)) for name in ("top_k", "confidence_bin", "bins"))
I_KS = tl.constexpr(len(I_COLUMNS))  # the ks follow the int64 columns


@triton.jit
def _load_row(ptr, offs, V, posinf):
    """Logits as float32 with NaN -> -inf; in a row holding +inf, +inf -> 0 and the rest -inf."""
    x = tl.load(ptr + offs, mask=offs < V, other=float("-inf")).to(tl.float32)
    x = tl.where(x != x, float("-inf"), x)
    if posinf:
        x = tl.where(x == float("inf"), 0.0, float("-inf"))
    return x


@triton.jit
def _mass_zeros(BLOCK: tl.constexpr, FIXED: tl.constexpr):
    """Per-lane mass accumulators: float32, or (FIXED) int64 units of 1 / FIX_SCALE."""
    if FIXED:
        return tl.zeros([BLOCK], tl.int64)
    else:
        return tl.zeros([BLOCK], tl.float32)


@triton.jit
def _fixed(e):
    """A mass in int64 units of 1 / FIX_SCALE, rounded to the nearest unit."""
    return (e.to(tl.float64) * FIX_SCALE + 0.5).to(tl.int64)


@triton.jit
def _mass_add(acc, e, FIXED: tl.constexpr):
    if FIXED:
        return acc + _fixed(e)
    else:
        return acc + e


@triton.jit
def _mass_sum(acc, FIXED: tl.constexpr):
    """The accumulators' total as float64; FIXED: exact, so independent of the elements' order."""
    if FIXED:
        return tl.sum(acc, axis=0).to(tl.float64) / FIX_SCALE
    else:
        return tl.sum(acc.to(tl.float64), axis=0)


@triton.jit
def _window_bin(v, m, scale, NWB: tl.constexpr):
    """Bin of v in the collection window below m: floor((m - v) * scale), NWB - 1 for v below it."""
    return tl.minimum((m - v) * scale, NWB - 1).to(tl.int32)


@triton.jit
def _calibrate(xf, keep, m, target):
    """The lowest threshold m - j * WINDOW / (WBINS - 1) (j >= 1) at or above which at most
    `target` of the kept elements of xf (all within WINDOW of their max m) lie, from one
    histogram of them; +inf where none is (the first bin alone holds more: ties)."""
    scale = (WBINS - 1) / WINDOW
    h = tl.histogram(tl.where(keep, _window_bin(xf, m, scale, WBINS), WBINS - 1), WBINS)
    wb = tl.arange(0, WBINS)
    nb = tl.sum(((tl.cumsum(h, axis=0) <= target) & (wb < WBINS - 1)).to(tl.int32), axis=0)
    return tl.where(nb > 0, m - nb.to(tl.float32) / scale, float("inf"))


@triton.jit
def _online_stats(
    ptr,
    start,
    stop,
    V,
    t,
    tmax_ptr,
    seg_ptr,
    pth_ptr,
    pcnt_ptr,
    NT,
    KSEG: tl.constexpr,
    BLOCK: tl.constexpr,
    TILE: tl.constexpr,
    SUMMARY: tl.constexpr,
    LANES: tl.constexpr,
):
    """(max, sum exp, sum exp * shift, +inf count) over [start, stop), block by block.

    A block is held as [K, LANES] (K = BLOCK / LANES; LANES = the program's threads, 256): each
    thread holds K elements LANES apart (a warp's load covers 128 contiguous bytes) and keeps its
    own running (max m, sum exp(z - m), sum exp(z - m)(z - m)), updated once per block from the
    max of its K elements, so that the loop reduces nothing across threads; the threads are
    combined once, at the end. Per element that is a max, a subtract, an exp and a few adds. Rows
    at T = 1 skip the division (a correctly rounded division is a dozen instructions). Tiles
    smaller than LANES (tests) take LANES = BLOCK (K = 1: a running state per element).

    SUMMARY is a sum of flags. 1: each tile's max goes to tmax_ptr[tile] (round 0 of top_k bounds
    its cut with them). 2 (top_p rows): the candidates of top_p's cut, copied to this program's
    segment at seg_ptr (KSEG slots): every finite element >= max(tabs, its thread's running max -
    WINDOW, the first block's max - WINDOW), in slots from the threads' exclusive prefix of their
    counts. tabs is set once, from the first block (`_calibrate`), where that block holds more
    than its share of the segment (about 3/4 of KSEG / blocks): then at the threshold that leaves
    it that share. When a block would overflow the segment, the program gives up (threshold +inf:
    its row takes the histogram round). Each thread's threshold never falls and stays at or below
    the program's final one, max(tabs, max - WINDOW), so the segment ends holding every element
    of the chunk at or above that, stored at pth_ptr with the segment's count at pcnt_ptr. No
    atomics: the segment, and so the cut, do not depend on scheduling.

    This pass is bound by instruction issue on the H200 (8 programs per SM, 8 elements per thread
    per block). The earlier form (one running state per program: four reductions across the warps
    per block, and for top_p a count, a scan and the window's max across them, 12 barriers per
    block) took 67 us at B = 256 without top_p and 164 us with its copies (counting alone: 89).
    """
    K: tl.constexpr = BLOCK // LANES
    NTB: tl.constexpr = BLOCK // TILE
    COLLECT: tl.constexpr = SUMMARY >= 2
    # 2-d: Triton 3.6 spread [K, warps, 32]'s K over the warps (its layouts break ties between
    # axes the other way round from 3.9's), and the threads then reduced across warps
    lanes = tl.arange(0, K)[:, None] * LANES + tl.arange(0, LANES)[None, :]
    m = tl.full([LANES], float("-inf"), tl.float32)
    s = tl.zeros([LANES], tl.float32)
    u = tl.zeros([LANES], tl.float32)
    npinf = tl.zeros([LANES], tl.int32)
    nxt = tl.load(ptr + start + lanes, mask=(start + lanes < V) & (start + lanes < stop), other=float("-inf"))
    # top_p's candidates: the threshold and the max the first block sets, the count, an overflow
    tabs = tl.full([], float("-inf"), tl.float32)
    m0 = tl.full([], float("-inf"), tl.float32)
    cnt = tl.zeros([], tl.int32)
    over = tl.zeros([], tl.int32)
    if COLLECT:
        n_blk = tl.maximum(tl.cdiv(tl.minimum(stop, V) - start, BLOCK), 1)
        target = tl.maximum((KSEG // n_blk) * 3 // 4, 1)
        x0 = tl.reshape(nxt.to(tl.float32), [BLOCK])
        x0 = tl.where(x0 != x0, float("-inf"), x0)
        if t != 1.0:
            x0 = tl.math.div_rn(x0, t)
        m0 = tl.max(x0, axis=0)
        keep0 = (x0 > float("-inf")) & (x0 < float("inf")) & (x0 >= m0 - WINDOW)
        if tl.sum(keep0.to(tl.int32), axis=0) > target:
            tabs = _calibrate(x0, keep0, m0, target)
    for off in range(start, stop, BLOCK):
        offs = off + lanes
        # the next block's load goes out before this block's work (2-5% on the H200)
        x = nxt.to(tl.float32)
        o_n = offs + BLOCK
        nxt = tl.load(ptr + o_n, mask=(o_n < V) & (o_n < stop), other=float("-inf"))
        x = tl.where(x != x, float("-inf"), x)
        npinf += tl.sum((x == float("inf")).to(tl.int32), axis=0)
        if t != 1.0:
            x = tl.math.div_rn(x, t)
        bm = tl.max(x, axis=0)  # each thread's max of the block
        m_new = tl.maximum(m, bm)
        ref = tl.where(m_new == float("-inf"), 0.0, m_new)
        d = x - ref[None, :]
        e = tl.exp(d)
        # e == 0 terms are skipped: with logits near the float limit, 0 * inf would be NaN
        bu = tl.sum(tl.where(e > 0, e * d, 0.0), axis=0)
        w = tl.where(m == float("-inf"), 0.0, tl.exp(m - ref))
        u = tl.where(w > 0, w * (u + (m - ref) * s), 0.0) + bu
        s = s * w + tl.sum(e, axis=0)
        m = m_new
        if SUMMARY % 2 == 1:
            tiles = off // TILE + tl.arange(0, NTB)
            if NTB == 1:  # the block (one reduction across the warps)
                tm = tl.zeros([NTB], tl.float32) + tl.max(bm, axis=0)
            elif TILE < LANES:  # (K = 1) NTB tiles along the row
                tm = tl.max(tl.reshape(x, [NTB, TILE]), axis=1)
            else:  # a tile per K // NTB of the K
                tm = tl.max(tl.reshape(tl.max(x, axis=1), [NTB, K // NTB]), axis=1)
            tl.store(tmax_ptr + tiles, tm, mask=tiles < NT)
        if COLLECT:
            # the window below the thread's running max or the first block's, whichever is higher
            # (the program's running max would cost a reduction across the warps per block)
            thr = tl.maximum(tabs, tl.maximum(m, m0) - WINDOW)
            keep = (x > float("-inf")) & (x < float("inf")) & (x >= thr[None, :])
            ki = keep.to(tl.int32)
            kt = tl.sum(ki, axis=0)  # per thread
            n = tl.sum(kt, axis=0)
            over = tl.maximum(over, (cnt + n > KSEG).to(tl.int32))
            if (n > 0) & (over == 0):
                # slots in the block's order: the threads' exclusive prefix, then along each thread's K
                pos = cnt + (tl.cumsum(kt, axis=0) - kt)[None, :] + tl.cumsum(ki, axis=0) - 1
                # stored flat: a 2-d scattered store's layout follows ties between its axes, which
                # Triton 3.6 broke the other way (its layout conversions cost more than the pass)
                tl.store(seg_ptr + tl.reshape(pos, [BLOCK]), tl.reshape(x, [BLOCK]), mask=tl.reshape(keep, [BLOCK]))
                cnt += n
    mx = tl.max(m, axis=0)
    w = tl.where(m == float("-inf"), 0.0, tl.exp(m - mx))
    s_all = tl.sum(s * w, axis=0)
    u_all = tl.sum(tl.where(w > 0, w * (u + (m - mx) * s), 0.0), axis=0)
    if COLLECT:
        tl.store(pth_ptr, tl.where(over != 0, float("inf"), tl.maximum(tabs, mx - WINDOW)))
        tl.store(pcnt_ptr, cnt)
    return mx, s_all, u_all, tl.sum(npinf, axis=0)


@triton.jit
def _stats_of_row(
    ptr,
    start,
    stop,
    V,
    t,
    tmax_row,
    seg_ptr,
    pth_ptr,
    pcnt_ptr,
    NT,
    KSEG: tl.constexpr,
    fp_ptr,
    B,
    row,
    BLOCK: tl.constexpr,
    TILE: tl.constexpr,
    SUMMARY: tl.constexpr,
    LANES: tl.constexpr,
):
    """`_online_stats` collecting top_p's candidates only on rows with top_p < 1, so that a mixed
    batch's other rows skip their cost. Two loops under a branch per program: a branch inside the
    loop took 86 registers against 60 and slowed top_p's own rows (H200, with the level masses
    this collection replaced: 225 against 157-167 us at B = 256)."""
    if SUMMARY >= 2:
        if tl.load(fp_ptr + F_TOP_P * B + row) < 1.0:
            r = _online_stats(
                ptr, start, stop, V, t, tmax_row, seg_ptr, pth_ptr, pcnt_ptr, NT, KSEG, BLOCK, TILE, SUMMARY,
                LANES,
            )  # fmt: skip
        else:
            r = _online_stats(
                ptr, start, stop, V, t, tmax_row, seg_ptr, pth_ptr, pcnt_ptr, NT, KSEG, BLOCK, TILE, SUMMARY - 2,
                LANES,
            )  # fmt: skip
    else:
        r = _online_stats(
            ptr, start, stop, V, t, tmax_row, seg_ptr, pth_ptr, pcnt_ptr, NT, KSEG, BLOCK, TILE, SUMMARY, LANES
        )
    return r


@triton.jit
def _last_arrival(arr_ptr, C):
    """True in the last of a row's C programs to get here, which then finishes the row's work.

    The counter at arr_ptr is zero before and after the launch (the last program resets it). The
    barrier puts every thread's stores before the release of the atomic; the last program reads
    the others' results after its acquire, with ".cg" loads where an SM's L1 may hold the lines
    (results of neighbouring rows share them).

    It saves a launch (host time) where most rows have nothing to do: the histogram round after
    round 0. Where every row works it cost more device time than the launch saved (H200,
    2026-12-02: the statistics pass with its per-row end 67 -> 81 us, round 0 with its resolve
    45 -> 73 us for top_k and 202 -> 266 us for top_p; the waiting program holds its slot and the
    merged kernel needs more registers)."""
    tl.debug_barrier()
    old = tl.atomic_add(arr_ptr, 1, sem="acq_rel", scope="gpu")
    last = old == C - 1
    tl.store(arr_ptr, 0, mask=last)
    return last


@triton.jit(do_not_specialize=["stride_z", "V", "chunk", "B", "C", "has_edt", "NT"])
def _partial_stats(
    z_ptr,
    stride_z,
    V,
    chunk,
    fp_ptr,
    bp_ptr,
    part_ptr,
    pn_ptr,
    B,
    C,
    has_edt,
    tmax_ptr,
    seg_ptr,
    pth_ptr,
    pcnt_ptr,
    NT,
    BLOCK: tl.constexpr,
    TILE: tl.constexpr,
    SUMMARY: tl.constexpr,
    KSEG: tl.constexpr,
    LANES: tl.constexpr,
):
    row = tl.program_id(0)
    c = tl.program_id(1)
    t = tl.load(fp_ptr + F_TEMPERATURE * B + row)
    greedy = tl.load(bp_ptr + row) != 0
    # fixed-temperature rows are scaled now; EDT rows are read unscaled (their T needs H first)
    t = tl.where(greedy | (t < MIN_TEMPERATURE), 1.0, t)
    if has_edt != 0:
        t = tl.where(tl.load(bp_ptr + B + row) != 0, 1.0, t)
    ptr = z_ptr + row.to(tl.int64) * stride_z
    start = c * chunk
    tmax_row = tmax_ptr + row.to(tl.int64) * NT
    o = row * C + c
    seg = seg_ptr + o.to(tl.int64) * KSEG
    mm, ss, uu, nn = _stats_of_row(
        ptr, start, start + chunk, V, t, tmax_row, seg, pth_ptr + o, pcnt_ptr + o, NT, KSEG, fp_ptr, B, row,
        BLOCK, TILE, SUMMARY, LANES,
    )  # fmt: skip
    tl.store(part_ptr + o, mm)
    tl.store(part_ptr + B * C + o, ss)
    tl.store(part_ptr + 2 * B * C + o, uu)
    tl.store(pn_ptr + o, nn)


@triton.jit
def _combine(part_ptr, pn_ptr, row, B, C, CB: tl.constexpr):
    """The row's max M, sum S (float64) of exp(z - M), sum U of exp(z - M) * (z - M), +inf count."""
    cs = tl.arange(0, CB)
    ok = cs < C
    m = tl.load(part_ptr + row * C + cs, mask=ok, other=float("-inf"))
    s = tl.load(part_ptr + B * C + row * C + cs, mask=ok, other=0.0)
    u = tl.load(part_ptr + 2 * B * C + row * C + cs, mask=ok, other=0.0)
    n = tl.load(pn_ptr + row * C + cs, mask=ok, other=0)
    mm = tl.max(m, axis=0)
    w = tl.where(m == float("-inf"), 0.0, tl.exp(m - mm))
    ss = tl.sum(s.to(tl.float64) * w.to(tl.float64), axis=0)
    uu = tl.sum(tl.where(w > 0, w * (u + tl.where(s > 0, (m - mm) * s, 0.0)), 0.0), axis=0)
    return mm, ss, uu, tl.sum(n, axis=0)


@triton.jit
def _or_off(thr):
    return tl.where(thr != thr, float("-inf"), thr)


@triton.jit
def _edt_temperature(h, n, theta, t0):
    """EDT: T = t0 * n ** (theta / H) (theta = 0: T0), capped at the largest float."""
    exponent = tl.where(theta == 0, 0.0, theta / h)
    e64 = exponent.to(tl.float64) * tl.log(n.to(tl.float64))
    p = tl.where((n == 1.0) | (exponent == 0), 1.0, tl.exp(e64).to(tl.float32))
    return tl.minimum(t0 * p, FLOAT_MAX)


@triton.jit
def _row_stats(part_ptr, pn_ptr, row, B, C, CB: tl.constexpr):
    """(M, S, H, posinf) of a row from its partials; a row holding +inf is uniform over its +inf tokens."""
    mm, ss, uu, npinf = _combine(part_ptr, pn_ptr, row, B, C, CB)
    posinf = npinf > 0
    mm = tl.where(posinf, 0.0, mm)
    ss = tl.where(posinf, npinf.to(tl.float64), ss)
    uu = tl.where(posinf, 0.0, uu)
    # float64: for a peaked row log(S) and U / S nearly cancel, and EDT divides by H
    h = (tl.log(ss) - uu.to(tl.float64) / ss).to(tl.float32)
    return mm, ss, h, posinf


@triton.jit(do_not_specialize=["stride_z", "V", "chunk", "B", "C", "NT"])
def _edt_stats(
    z_ptr,
    stride_z,
    V,
    chunk,
    fp_ptr,
    bp_ptr,
    part_ptr,
    pn_ptr,
    qart_ptr,
    qn_ptr,
    B,
    C,
    tmax_ptr,
    seg_ptr,
    pth_ptr,
    pcnt_ptr,
    NT,
    CB: tl.constexpr,
    BLOCK: tl.constexpr,
    TILE: tl.constexpr,
    SUMMARY: tl.constexpr,
    KSEG: tl.constexpr,
    LANES: tl.constexpr,
):
    """Second pass for EDT rows: stats (tile maxima, top_p's candidates) of z / T_edt (other rows
    copy their first-pass partials and keep their summaries)."""
    row = tl.program_id(0)
    c = tl.program_id(1)
    o = row * C + c
    edt = tl.load(bp_ptr + B + row) != 0
    mm = tl.load(part_ptr + o)
    ss = tl.load(part_ptr + B * C + o)
    uu = tl.load(part_ptr + 2 * B * C + o)
    nn = tl.load(pn_ptr + o)
    if edt:
        rm, rs, h, posinf = _row_stats(part_ptr, pn_ptr, row, B, C, CB)
        t = _edt_temperature(
            h,
            tl.load(fp_ptr + F_EDT_N * B + row),
            tl.load(fp_ptr + F_EDT_THETA * B + row),
            tl.load(fp_ptr + F_EDT_T0 * B + row),
        )
        greedy = (tl.load(bp_ptr + row) != 0) | (t < MIN_TEMPERATURE)
        if (not greedy) and (not posinf) and (rm > float("-inf")):
            ptr = z_ptr + row.to(tl.int64) * stride_z
            start = c * chunk
            tmax_row = tmax_ptr + row.to(tl.int64) * NT
            seg = seg_ptr + o.to(tl.int64) * KSEG
            mm, ss, uu, nn = _stats_of_row(
                ptr, start, start + chunk, V, t, tmax_row, seg, pth_ptr + o, pcnt_ptr + o, NT, KSEG, fp_ptr, B,
                row, BLOCK, TILE, SUMMARY, LANES,
            )  # fmt: skip
    tl.store(qart_ptr + o, mm)
    tl.store(qart_ptr + B * C + o, ss)
    tl.store(qart_ptr + 2 * B * C + o, uu)
    tl.store(qn_ptr + o, nn)


@triton.jit
def _bin_of(x, hi2, lo, hi, scale, NBINS: tl.constexpr):
    """Bin of each x: 0 above hi, 1..NBINS-2 over [lo, hi] (descending), NBINS-1 below lo.

    Monotone non-increasing in x, so bins split the sorted order exactly whatever the rounding.
    Halves avoid overflow of hi - lo for extreme windows."""
    f = tl.minimum((hi2 - x * 0.5) * scale, NBINS * 1.0)
    inner = tl.minimum(tl.maximum(f.to(tl.int32) + 1, 1), NBINS - 2)
    return tl.where(x > hi, 0, tl.where(x >= lo, inner, NBINS - 1))


@triton.jit
def _bin_range(h, a_mass, hi, lo, mx, inv_s, target_k, target_p, IS_P: tl.constexpr, NBINS: tl.constexpr):
    """(j_lo, j_hi, j_mid) from a row's histogram `h` over [lo, hi]: the bins that hold the k-th
    largest (one bin) or the top_p cut (from lower / upper bounds of each bin's mass, widened by a
    bin each side). j_mid splits the top_p range in halves (for top_k it is past the range)."""
    bins = tl.arange(0, NBINS)
    if IS_P:
        scale = _scale(hi, lo, NBINS)
        slack = 1e-5 * (tl.abs(hi) + tl.abs(lo)) + 1e-5
        step = 2.0 / tl.maximum(scale, 1e-30)
        jf = bins.to(tl.float32)
        upper_v = tl.minimum(hi - (jf - 1.0) * step + slack, hi)
        lower_v = tl.maximum(hi - jf * step - slack, lo)
        cnt = h.to(tl.float32)
        up_m = tl.where(bins == 0, 0.0, cnt * tl.exp(upper_v - mx))
        up_m = tl.where(bins == NBINS - 1, cnt * tl.exp(lo - mx), up_m)
        low_m = tl.where((bins == 0) | (bins == NBINS - 1), 0.0, cnt * tl.exp(lower_v - mx))
        up_c = a_mass + tl.cumsum(up_m.to(tl.float64), axis=0) * inv_s
        low_c = a_mass + tl.cumsum(low_m.to(tl.float64), axis=0) * inv_s
        j_lo = tl.maximum(tl.sum((up_c < target_p).to(tl.int32), axis=0) - 1, 1)
        j_hi = tl.minimum(tl.sum((low_c < target_p).to(tl.int32), axis=0) + 1, NBINS - 1)
        j_mid = (j_lo + j_hi + 1) // 2
    else:
        cum = tl.cumsum(h, axis=0)
        j_lo = tl.maximum(tl.sum((cum < target_k).to(tl.int32), axis=0), 1)
        j_hi = j_lo
        j_mid = j_hi + 1
    return j_lo, j_hi, j_mid


@triton.jit
def _scale(hi, lo, NBINS: tl.constexpr):
    """Bins per half logit unit over [lo, hi] (halves avoid overflow of hi - lo for extreme windows)."""
    width2 = hi * 0.5 - lo * 0.5
    return tl.where(width2 > 0, (NBINS - 2) / width2, 0.0)


@triton.jit
def _pick(
    cand_ptr,
    n_c,
    nb,
    mb,
    mx,
    inv_s,
    target_k,
    target_p,
    j_hi,
    u_lo,
    l_lo,
    IS_P: tl.constexpr,
    NBINS: tl.constexpr,
    CAPN: tl.constexpr,
):
    """The threshold from the n_c <= CAPN candidates: the k-th largest (nb values lie above them),
    or the first value whose cumulative mass (mb above them) reaches top_p."""
    caps = tl.arange(0, CAPN)
    c = tl.load(cand_ptr + caps, mask=caps < n_c, other=float("-inf"))
    c = tl.sort(c, descending=True)
    if IS_P:
        mass = tl.where(c > float("-inf"), tl.exp(c - mx), 0.0).to(tl.float64) * inv_s
        cum = mb + tl.cumsum(mass, axis=0)
        first = tl.sum((cum < target_p).to(tl.int32), axis=0)
        # not reached: rounding left the total below p (keep all), or slack missed
        missed = tl.where(j_hi == NBINS - 1, float("-inf"), tl.minimum(u_lo, l_lo))
        result = tl.where(first >= n_c, missed, tl.max(tl.where(caps == first, c, float("-inf")), axis=0))
    else:
        result = tl.max(tl.where(caps == target_k - nb - 1, c, float("-inf")), axis=0)
    return result


@triton.jit
def _narrow(u_hi, u_lo, l_hi, l_lo, mb, mu, target_p, IS_P: tl.constexpr):
    """The next window when the range held too many candidates: the half that holds the target."""
    go_up = u_hi > float("-inf")
    if IS_P:
        go_up = go_up & ((mb + mu >= target_p) | (l_hi == float("-inf")))
    return tl.where(go_up, u_hi, l_hi), tl.where(go_up, u_lo, l_lo)


@triton.jit
def _collect(
    ptr,
    start,
    stop,
    V,
    t,
    posinf,
    mx,
    hi,
    lo,
    j_lo,
    j_hi,
    j_mid,
    cand_ptr,
    n_c,
    count_ptr,
    IS_P: tl.constexpr,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
    CAPN: tl.constexpr,
    FIXED: tl.constexpr,
):
    """Copy the finite elements of bins j_lo..j_hi in [start, stop) into the candidate buffer (from
    position n_c, or at positions taken from the counter at count_ptr when given), and return the
    count and (top_p) mass relative to exp(mx) before the range, the mass of its upper half (bins <
    j_mid) and each half's [min, max]. FIXED: masses summed as integers (`FIX_SCALE`)."""
    lanes = tl.arange(0, BLOCK)
    n_c = tl.full([], 0, tl.int32) + n_c
    hi2 = hi * 0.5
    scale = _scale(hi, lo, NBINS)
    cnt_before = tl.zeros([BLOCK], tl.int32)
    mass_before = _mass_zeros(BLOCK, FIXED)
    mass_up = _mass_zeros(BLOCK, FIXED)
    umax = tl.full([BLOCK], float("-inf"), tl.float32)
    umin = tl.full([BLOCK], float("inf"), tl.float32)
    lmax = tl.full([BLOCK], float("-inf"), tl.float32)
    lmin = tl.full([BLOCK], float("inf"), tl.float32)
    for off in range(start, stop, BLOCK):
        offs = off + lanes
        x = _load_row(ptr, offs, V, posinf)
        x = tl.where(offs < stop, x, float("-inf"))
        if t != 1.0:
            x = tl.math.div_rn(x, t)
        b = _bin_of(x, hi2, lo, hi, scale, NBINS)
        before = b < j_lo
        is_c = (b >= j_lo) & (b <= j_hi) & (x > float("-inf"))
        up = is_c & (b < j_mid)
        low = is_c & (b >= j_mid)
        cnt_before += before.to(tl.int32)
        if IS_P:  # top_k needs counts only
            e = tl.exp(x - mx)
            mass_before = _mass_add(mass_before, tl.where(before, e, 0.0), FIXED)
            mass_up = _mass_add(mass_up, tl.where(up, e, 0.0), FIXED)
        umax = tl.maximum(umax, tl.where(up, x, float("-inf")))
        umin = tl.minimum(umin, tl.where(up, x, float("inf")))
        if IS_P:  # top_k's range is all "upper half"
            lmax = tl.maximum(lmax, tl.where(low, x, float("-inf")))
            lmin = tl.minimum(lmin, tl.where(low, x, float("inf")))
        ci = is_c.to(tl.int32)
        n_here = tl.sum(ci, axis=0)
        if n_here > 0:  # most blocks hold no candidate: skip the scan, the atomic and the store
            if count_ptr is not None:
                first = tl.atomic_add(count_ptr, n_here, sem="relaxed")
            else:
                first = n_c
            pos = first + tl.cumsum(ci, axis=0) - 1
            tl.store(cand_ptr + pos, x, mask=is_c & (pos < CAPN))
            n_c = first + n_here
    return (
        tl.sum(cnt_before, axis=0),
        _mass_sum(mass_before, FIXED),
        _mass_sum(mass_up, FIXED),
        tl.max(umax, axis=0),
        tl.min(umin, axis=0),
        tl.max(lmax, axis=0),
        tl.min(lmin, axis=0),
        n_c,
    )


@triton.jit
def _histogram(
    ptr,
    start,
    stop,
    V,
    t,
    posinf,
    mx,
    hi,
    lo,
    IS_P: tl.constexpr,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
    FIXED: tl.constexpr,
):
    """Count histogram of [start, stop) over the window [lo, hi], the number of finite elements and
    (top_p) the mass above the window relative to exp(mx) (FIXED: summed as integers)."""
    lanes = tl.arange(0, BLOCK)
    hi2 = hi * 0.5
    scale = _scale(hi, lo, NBINS)
    hist = tl.zeros([NBINS], tl.int32)
    mass_above = _mass_zeros(BLOCK, FIXED)
    n_fin = tl.zeros([BLOCK], tl.int32)
    for off in range(start, stop, BLOCK):
        offs = off + lanes
        x = _load_row(ptr, offs, V, posinf)
        x = tl.where(offs < stop, x, float("-inf"))
        if t != 1.0:
            x = tl.math.div_rn(x, t)
        b = _bin_of(x, hi2, lo, hi, scale, NBINS)
        hist += tl.histogram(b, NBINS)
        if IS_P:
            mass_above = _mass_add(mass_above, tl.where(b == 0, tl.exp(x - mx), 0.0), FIXED)
        n_fin += (x > float("-inf")).to(tl.int32)
    return hist, _mass_sum(mass_above, FIXED), tl.sum(n_fin, axis=0)


@triton.jit
def _select(
    ptr,
    V,
    t,
    posinf,
    mx,
    ssum,
    target_k,
    target_p,
    IS_P: tl.constexpr,
    cand_ptr,
    hi,
    lo,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
    CAPN: tl.constexpr,
    FIXED: tl.constexpr,
):
    """Exact k-th largest scaled logit (IS_P False) or the top_p cut (IS_P True) of one row, by one
    program, starting from the window [lo, hi]: the fallback of `_round_resolve` for rows whose
    first round left too many candidates (ties, dense rows), and round 0's top_p resolve over its
    candidate buffer (ptr), whose order changes from run to run: FIXED sums its masses exactly."""
    result = float("-inf")
    done = 0
    rounds = 0
    inv_s = 1.0 / ssum  # float64
    while done == 0:
        rounds += 1
        h, m_above, n_finite = _histogram(ptr, 0, V, V, t, posinf, mx, hi, lo, IS_P, BLOCK, NBINS, FIXED)
        j_lo, j_hi, j_mid = _bin_range(h, m_above * inv_s, hi, lo, mx, inv_s, target_k, target_p, IS_P, NBINS)
        if (not IS_P) and (target_k > n_finite):
            done = 1  # fewer finite logits than k: no restriction
        else:
            nb, mb, mu, u_hi, u_lo, l_hi, l_lo, n_c = _collect(
                ptr, 0, V, V, t, posinf, mx, hi, lo, j_lo, j_hi, j_mid, cand_ptr, 0, None,
                IS_P, BLOCK, NBINS, CAPN, FIXED,
            )  # fmt: skip
            if n_c <= CAPN:
                result = _pick(
                    cand_ptr, n_c, nb, mb * inv_s, mx, inv_s, target_k, target_p, j_hi, u_lo, l_lo, IS_P, NBINS, CAPN
                )
                done = 1
            else:
                hi, lo = _narrow(u_hi, u_lo, l_hi, l_lo, mb * inv_s, mu * inv_s, target_p, IS_P)
                if (hi == lo) or (rounds >= MAX_ROUNDS):
                    result = hi  # a tie group holds the target: its value keeps all of it
                    done = 1
    return result


# ---- selection split over C programs per row (grid B x C), finished by each row's last program,
# in up to SPLIT_ROUNDS rounds before one program per row takes over (`_select`). Per row, `sel_*`
# hold what `_finish_rows` decided: the target (k, or top_p; 0 / 1 = none, and set so once the row
# is done), the scaled max, the float64 normaliser and the window of the next round. Workspace per
# round: NBINS + 1 ints per row (histogram and candidate counter, zeroed by `_finish_rows`; rows
# ZS apart) and float / int partials per (row, program). The two kernels take the same arguments
# (the launcher passes one tuple); each reads what it needs.


@triton.jit
def _sel_target(sel_k, sel_p, row, IS_P: tl.constexpr):
    if IS_P:
        active = tl.load(sel_p + row) < 1.0
    else:
        active = tl.load(sel_k + row) > 0
    return active, tl.load(sel_k + row), tl.load(sel_p + row).to(tl.float64)


@triton.jit
def _sel_window(sel_mx, sel_win, row, B):
    return tl.load(sel_mx + row), tl.load(sel_win + row), tl.load(sel_win + B + row)


@triton.jit(do_not_specialize=["stride_z", "V", "chunk", "B", "C", "last", "ZS"])
def _sel_hist(
    z_ptr,
    stride_z,
    V,
    chunk,
    res_ptr,
    flag_ptr,
    sel_k,
    sel_p,
    sel_mx,
    sel_s,
    sel_win,
    zi_ptr,
    ZS,
    pf_ptr,
    pi_ptr,
    cand_ptr,
    arr_ptr,
    B,
    C,
    last,
    IS_P: tl.constexpr,
    CB: tl.constexpr,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
    CAPN: tl.constexpr,
):
    row = tl.program_id(0)
    c = tl.program_id(1)
    active, _, _ = _sel_target(sel_k, sel_p, row, IS_P)
    if active:
        mx, hi, lo = _sel_window(sel_mx, sel_win, row, B)
        t = tl.load(res_ptr + B + row)
        posinf = tl.load(flag_ptr + row) != 0
        start = c * chunk
        h, m_above, n_fin = _histogram(
            z_ptr + row.to(tl.int64) * stride_z, start, start + chunk, V, t, posinf, mx, hi, lo,
            IS_P, BLOCK, NBINS, False,
        )  # fmt: skip
        tl.atomic_add(zi_ptr + row.to(tl.int64) * ZS + tl.arange(0, NBINS), h, sem="relaxed")
        o = row * C + c
        tl.store(pf_ptr + o, m_above.to(tl.float32))
        tl.store(pi_ptr + o, n_fin)


@triton.jit
def _sel_range(
    sel_k,
    sel_p,
    sel_mx,
    sel_s,
    sel_win,
    zi_row,
    pf_ptr,
    pi_ptr,
    row,
    B,
    C,
    IS_P: tl.constexpr,
    CB: tl.constexpr,
    NBINS: tl.constexpr,
):
    """What every program of a row derives alike from the round's histogram (at zi_row)."""
    _, target_k, target_p = _sel_target(sel_k, sel_p, row, IS_P)
    mx, hi, lo = _sel_window(sel_mx, sel_win, row, B)
    inv_s = 1.0 / tl.load(sel_s + row)
    cs = tl.arange(0, CB)
    ok = cs < C
    a_mass = tl.sum(tl.load(pf_ptr + row * C + cs, mask=ok, other=0.0).to(tl.float64), axis=0) * inv_s
    n_finite = tl.sum(tl.load(pi_ptr + row * C + cs, mask=ok, other=0), axis=0)
    h = tl.load(zi_row + tl.arange(0, NBINS))
    j_lo, j_hi, j_mid = _bin_range(h, a_mass, hi, lo, mx, inv_s, target_k, target_p, IS_P, NBINS)
    few = False
    if not IS_P:
        few = target_k > n_finite  # fewer finite logits than k: no restriction
    return target_k, target_p, mx, hi, lo, inv_s, j_lo, j_hi, j_mid, few


@triton.jit(do_not_specialize=["stride_z", "V", "chunk", "B", "C", "last", "ZS"])
def _sel_collect(
    z_ptr,
    stride_z,
    V,
    chunk,
    res_ptr,
    flag_ptr,
    sel_k,
    sel_p,
    sel_mx,
    sel_s,
    sel_win,
    zi_ptr,
    ZS,
    pf_ptr,
    pi_ptr,
    cand_ptr,
    arr_ptr,
    B,
    C,
    last,
    IS_P: tl.constexpr,
    CB: tl.constexpr,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
    CAPN: tl.constexpr,
):
    """The collect pass over this program's chunk; the row's last program then resolves the
    round (`_round_resolve`)."""
    row = tl.program_id(0)
    c = tl.program_id(1)
    active, _, _ = _sel_target(sel_k, sel_p, row, IS_P)
    if active:
        zi_row = zi_ptr + row.to(tl.int64) * ZS
        tk, tp, mx, hi, lo, inv_s, j_lo, j_hi, j_mid, few = _sel_range(
            sel_k, sel_p, sel_mx, sel_s, sel_win, zi_row, pf_ptr, pi_ptr, row, B, C, IS_P, CB, NBINS
        )
        t = tl.load(res_ptr + B + row)
        posinf = tl.load(flag_ptr + row) != 0
        cand = cand_ptr + row.to(tl.int64) * CAPN
        ptr = z_ptr + row.to(tl.int64) * stride_z
        if not few:
            start = c * chunk
            nb, mb, mu, u_hi, u_lo, l_hi, l_lo, n_c = _collect(
                ptr, start, start + chunk, V, t, posinf, mx, hi, lo, j_lo, j_hi, j_mid, cand, 0, zi_row + NBINS,
                IS_P, BLOCK, NBINS, CAPN, False,
            )  # fmt: skip
            o = row * C + c
            n = B * C
            tl.store(pi_ptr + n + o, nb)
            tl.store(pf_ptr + n + o, mb.to(tl.float32))
            tl.store(pf_ptr + 2 * n + o, mu.to(tl.float32))
            tl.store(pf_ptr + 3 * n + o, u_hi)
            tl.store(pf_ptr + 4 * n + o, u_lo)
            tl.store(pf_ptr + 5 * n + o, l_hi)
            tl.store(pf_ptr + 6 * n + o, l_lo)
        if _last_arrival(arr_ptr + row, C):
            _round_resolve(
                ptr, V, t, posinf, res_ptr, sel_k, sel_p, sel_win, zi_row, pf_ptr, pi_ptr, cand, row, B, C, last,
                tk, tp, mx, hi, lo, inv_s, j_hi, few, IS_P, CB, BLOCK, NBINS, CAPN,
            )  # fmt: skip


@triton.jit
def _round_resolve(
    ptr,
    V,
    t,
    posinf,
    res_ptr,
    sel_k,
    sel_p,
    sel_win,
    zi_row,
    pf_ptr,
    pi_ptr,
    cand,
    row,
    B,
    C,
    last,
    target_k,
    target_p,
    mx,
    hi,
    lo,
    inv_s,
    j_hi,
    few,
    IS_P: tl.constexpr,
    CB: tl.constexpr,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
    CAPN: tl.constexpr,
):
    """A histogram round's end for one row: the programs' partials summed in a fixed order, then
    the cut from the candidates when they fit, else the next round's window (or, in the last
    round, `_select`)."""
    result = float("-inf")
    done = True
    if not few:
        cs = tl.arange(0, CB)
        ok = cs < C
        n = B * C
        o = row * C + cs
        # ".cg": written by the row's other programs in this launch (see `_last_arrival`)
        nb = tl.sum(tl.load(pi_ptr + n + o, mask=ok, other=0, cache_modifier=".cg"), axis=0)
        mb = tl.load(pf_ptr + n + o, mask=ok, other=0.0, cache_modifier=".cg")
        mb = tl.sum(mb.to(tl.float64), axis=0) * inv_s
        mu = tl.load(pf_ptr + 2 * n + o, mask=ok, other=0.0, cache_modifier=".cg")
        mu = tl.sum(mu.to(tl.float64), axis=0) * inv_s
        u_hi = tl.max(tl.load(pf_ptr + 3 * n + o, mask=ok, other=float("-inf"), cache_modifier=".cg"), axis=0)
        u_lo = tl.min(tl.load(pf_ptr + 4 * n + o, mask=ok, other=float("inf"), cache_modifier=".cg"), axis=0)
        l_hi = tl.max(tl.load(pf_ptr + 5 * n + o, mask=ok, other=float("-inf"), cache_modifier=".cg"), axis=0)
        l_lo = tl.min(tl.load(pf_ptr + 6 * n + o, mask=ok, other=float("inf"), cache_modifier=".cg"), axis=0)
        n_c = tl.load(zi_row + NBINS, cache_modifier=".cg")
        if (n_c <= SMALL_CAP) & (n_c <= CAPN):  # the usual case: sort a short buffer
            result = _pick(cand, n_c, nb, mb, mx, inv_s, target_k, target_p, j_hi, u_lo, l_lo, IS_P, NBINS, SMALL_CAP)
        elif n_c <= CAPN:
            result = _pick(cand, n_c, nb, mb, mx, inv_s, target_k, target_p, j_hi, u_lo, l_lo, IS_P, NBINS, CAPN)
        else:
            hi, lo = _narrow(u_hi, u_lo, l_hi, l_lo, mb, mu, target_p, IS_P)
            if hi == lo:
                result = hi  # a tie group holds the target: its value keeps all of it
            elif last != 0:
                result = _select(
                    ptr, V, t, posinf, mx, 1.0 / inv_s, target_k, target_p, IS_P, cand, hi, lo,
                    BLOCK, NBINS, CAPN, False,
                )  # fmt: skip
            else:  # another split round over the narrower window
                tl.store(sel_win + row, hi)
                tl.store(sel_win + B + row, lo)
                done = False
    if done:
        tl.store(res_ptr + row, tl.minimum(tl.maximum(tl.load(res_ptr + row), result), mx))
        if IS_P:
            tl.store(sel_p + row, 1.0)
        else:
            tl.store(sel_k + row, 0)


# ---- round 0 of a selection. top_k: the statistics pass left each tile's max; `_finish_rows`
# turned them into a lower bound lo on each row's k-th largest (`_k_bound`), so the cut is among
# the elements >= lo. `_sel_first` (grid B x C) copies those, reading only tiles whose max reaches
# lo; `_sel_first_resolve` (grid B) reads the cut off them when they fit the buffer, and otherwise
# leaves the window [lo, max] to the histogram round (a row without a bound, lo = NaN, gets
# [max - WINDOW, max]). top_p: the statistics pass copied the candidates to its segments, and
# `_sel_first_resolve` reads the cut off them (or leaves [max - WINDOW, max]).


@triton.jit
def _key(x):
    """float32 -> int32 with the same order (-0.0 just below +0.0)."""
    bits = x.to(tl.int32, bitcast=True)
    return tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)


@triton.jit
def _unkey(k):
    return tl.where(k >= 0, k, k ^ 0x7FFFFFFF).to(tl.float32, bitcast=True)


@triton.jit
def _k_bound(tmx, k, NTC: tl.constexpr):
    """A lower bound on a row's k-th largest scaled logit (NaN: none): the k-th largest of its
    tile maxima (k tiles hold an element at least that large)."""
    ts = tl.arange(0, NTC)
    srt = tl.sort(tmx, descending=True)
    kth = tl.max(tl.where(ts == k - 1, srt, float("-inf")), axis=0)
    return tl.where(kth > float("-inf"), kth, float("nan"))


@triton.jit(do_not_specialize=["stride_z", "V", "chunk", "B", "NT", "ZS"])
def _sel_first(
    z_ptr,
    stride_z,
    V,
    chunk,
    res_ptr,
    sel_k,
    sel_p,
    win_ptr,
    tmax_ptr,
    NT,
    cnt_ptr,
    ZS,
    cand_ptr,
    B,
    TILE: tl.constexpr,
    TPC: tl.constexpr,
    CAPN: tl.constexpr,
):
    """Copy the row's scaled logits >= lo (its bound) from this program's chunk into the row's
    candidate buffer (slots from the row's counter), reading only the tiles whose max reaches lo.

    The chunk's (at most TPC) tile maxima are read once up front and the loop runs over the live
    tiles alone: a loop that read each tile's max before deciding waited on that small load every
    step, which cost about as much as reading the whole row."""
    row = tl.program_id(0)
    c = tl.program_id(1)
    active, _, _ = _sel_target(sel_k, sel_p, row, False)  # top_k's targets only
    lo = tl.load(win_ptr + B + row)
    if active & (lo == lo):
        t = tl.load(res_ptr + B + row)
        lanes = tl.arange(0, TILE)
        ptr = z_ptr + row.to(tl.int64) * stride_z
        cand = cand_ptr + row.to(tl.int64) * (CAPN + SMALL_CAP)  # `_sel_first_resolve` uses the tail
        js = tl.arange(0, TPC)
        tix = c * (chunk // TILE) + js
        ok = (js < chunk // TILE) & (tix < NT)
        live = (tl.load(tmax_ptr + row.to(tl.int64) * NT + tix, mask=ok, other=float("-inf")) >= lo) & ok
        rank = tl.cumsum(live.to(tl.int32), axis=0) - 1
        n_live = tl.sum(live.to(tl.int32), axis=0)
        offs = tl.sum(tl.where(live & (rank == 0), tix, 0), axis=0) * TILE + lanes
        nxt = tl.load(ptr + offs, mask=offs < tl.where(n_live > 0, V, 0), other=float("-inf"))
        for i in range(0, n_live):
            # the next live tile's load goes out before this one's atomic and scan
            x = nxt.to(tl.float32)
            o_n = tl.sum(tl.where(live & (rank == i + 1), tix, 0), axis=0) * TILE + lanes
            nxt = tl.load(ptr + o_n, mask=o_n < tl.where(i + 1 < n_live, V, 0), other=float("-inf"))
            x = tl.where(x != x, float("-inf"), x)
            if t != 1.0:
                x = tl.math.div_rn(x, t)
            keep = x >= lo
            ki = keep.to(tl.int32)
            n_here = tl.sum(ki, axis=0)
            slot = tl.atomic_add(cnt_ptr + row.to(tl.int64) * ZS, n_here, sem="relaxed")
            pos = slot + tl.cumsum(ki, axis=0) - 1
            tl.store(cand + pos, x, mask=keep & (pos < CAPN))


@triton.jit
def _bisect_keys(c, ok):
    """Order keys of candidates c (-0.0 taken as +0.0) and the (min, max) key of the valid ones."""
    key = _key(c + 0.0)
    return key, tl.min(tl.where(ok, key, 2147483647), axis=0), tl.max(tl.where(ok, key, -2147483647), axis=0)


@triton.jit
def _pick_bisect(
    cand_ptr, n_c, mx, inv_s, target_k, target_p, IS_P: tl.constexpr, BLK: tl.constexpr, LOOP: tl.constexpr
):
    """The threshold from n_c candidates without sorting them: the largest candidate value v with
    (count of candidates >= v) >= k, or (their mass) >= top_p; bisection on the floats' order, at
    most 32 steps of one masked count / float64 mass sum each. The smallest candidate when the mass
    never gets there. LOOP False: all n_c <= BLK candidates stay in registers; True: each step reads
    them again in blocks of BLK (from L2: the buffer was just written)."""
    lanes = tl.arange(0, BLK)
    if LOOP:
        a = tl.full([], 2147483647, tl.int32)
        b = tl.full([], -2147483647, tl.int32)
        for off in range(0, n_c, BLK):
            ok = off + lanes < n_c
            _, lo_b, hi_b = _bisect_keys(tl.load(cand_ptr + off + lanes, mask=ok, other=0.0), ok)
            a = tl.minimum(a, lo_b)
            b = tl.maximum(b, hi_b)
        a = a.to(tl.int64)
        b = b.to(tl.int64)
    else:
        ok = lanes < n_c
        c = tl.load(cand_ptr + lanes, mask=ok, other=0.0)
        key, a, b = _bisect_keys(c, ok)
        a = a.to(tl.int64)
        b = b.to(tl.int64)
        if IS_P:
            w = tl.where(ok, tl.exp(c - mx), 0.0).to(tl.float64) * inv_s
    while a < b:
        mid = a + (b - a + 1) // 2
        if LOOP:
            if IS_P:
                got = tl.zeros([], tl.float64)
            else:
                got = tl.zeros([], tl.float32)
            for off in range(0, n_c, BLK):
                okb = off + lanes < n_c
                cb = tl.load(cand_ptr + off + lanes, mask=okb, other=0.0)
                above = okb & (_key(cb + 0.0) >= mid.to(tl.int32))
                if IS_P:
                    got += tl.sum(tl.where(above, tl.exp(cb - mx), 0.0).to(tl.float64), axis=0) * inv_s
                else:
                    got += tl.sum(above.to(tl.float32), axis=0)
        else:
            above = ok & (key >= mid.to(tl.int32))
            if IS_P:
                got = tl.sum(tl.where(above, w, 0.0), axis=0)
            else:
                got = tl.sum(above.to(tl.float32), axis=0)
        if IS_P:
            reach = got >= target_p
        else:
            reach = got >= target_k
        a = tl.where(reach, mid, a)
        b = tl.where(reach, b, mid - 1)
    return _unkey(a.to(tl.int32))


@triton.jit
def _cand_block(cand, n_c, off, lanes, lo, pcnt_row, KSEG: tl.constexpr, SEG: tl.constexpr):
    """One block of candidates (-inf where none) and where they are valid: cand[off + lanes] of n_c,
    or (SEG) the slots of the statistics pass's segments (KSEG each, counts at pcnt_row) over
    n_c = C * KSEG slots that hold a value >= lo (the rest of a segment lies below its row's lo)."""
    ok = off + lanes < n_c
    if SEG:
        ok = ok & ((off + lanes) % KSEG < tl.load(pcnt_row + (off + lanes) // KSEG, mask=ok, other=0))
    c = tl.load(cand + off + lanes, mask=ok, other=float("-inf"))
    if SEG:
        ok = ok & (c >= lo)
        c = tl.where(ok, c, float("-inf"))
    return c, ok


@triton.jit
def _bin_masses(c, ok, hi2, lo, mx, scale, hm_ptr, NBINS: tl.constexpr):
    """Bins a block of candidates over [lo, mx]: adds the valid ones' masses (`_fixed`, so that
    the atomics' order does not matter) into hm_ptr's bins; returns the block's count histogram
    (padding and values below lo land in the last bin, "below")."""
    b = _bin_of(c, hi2, lo, mx, scale, NBINS)
    tl.atomic_add(hm_ptr + b, _fixed(tl.exp(c - mx)), mask=ok, sem="relaxed")
    return tl.histogram(b, NBINS)


@triton.jit
def _cut_by_bin_masses(
    cand,
    n_c,
    mx,
    inv_s,
    target_p,
    lo,
    hm_ptr,
    tail,
    pcnt_row,
    KSEG: tl.constexpr,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
    SEG: tl.constexpr,
    PICK: tl.constexpr,
    BINNED: tl.constexpr,
    hc_ptr,
):
    """(cut, w_hi, w_lo, short): top_p's cut from round 0's candidates >= lo (n_c in a buffer, or
    with SEG the segments' n_c slots: `_cand_block`), or NaN where `_select` must take over, from
    the window [w_lo, w_hi] that holds the cut's bin (which holds more than PICK of them); short:
    the candidates' mass falls short of top_p (then the cut returned is lo).

    One pass bins the candidates over [lo, mx] (NBINS bins), counting them and adding each one's
    mass, as an integer (`_fixed`: exact, so the buffer's order does not matter), into its bin
    at hm_ptr with an atomic; the exact cumulative masses name the bin where the cut lies, and a
    second pass copies that bin's candidates (3-164 on the benchmark's rows) to `tail`,
    where `_pick` sorts them and reads the cut off. The count histogram's mass bounds that
    `_select` uses instead (count x each bin's edges) left 600-3,300 candidates in range on
    those rows, so it needed more than one round of both passes.

    BINNED: that first pass ran before, split over the row's segments (`_seg_bins`), and left
    the counts at hc_ptr and the masses at hm_ptr."""
    lanes = tl.arange(0, BLOCK)
    bins = tl.arange(0, NBINS)
    hi2 = mx * 0.5
    scale = _scale(mx, lo, NBINS)
    if BINNED:
        h = tl.load(hc_ptr + bins)
        hm = tl.load(hm_ptr + bins)
    else:
        tl.store(hm_ptr + bins, tl.zeros([NBINS], tl.int64))
        tl.debug_barrier()  # the zeros before any thread's atomics
        h = tl.zeros([NBINS], tl.int32)
        for off in range(0, n_c, BLOCK):
            c, ok = _cand_block(cand, n_c, off, lanes, lo, pcnt_row, KSEG, SEG)
            h += _bin_masses(c, ok, hi2, lo, mx, scale, hm_ptr, NBINS)
        tl.debug_barrier()  # every thread's atomics before the reads (which bypass L1: .cg)
        hm = tl.load(hm_ptr + bins, cache_modifier=".cg")
    cum = tl.cumsum(hm, axis=0).to(tl.float64) / FIX_SCALE * inv_s
    j = tl.sum((cum < target_p).to(tl.int32), axis=0)  # the cut's bin; NBINS: never reached
    n_j = tl.sum(tl.where(bins == j, h, 0), axis=0)
    result = float("nan")
    # the cut's bin j holds (mx - 2j / scale, mx - 2(j - 1) / scale] (`_bin_of`), widened for
    # rounding: the mass above it is below top_p and the mass down to its end reaches it, so
    # `_select` can start there instead of from [lo, mx] (in halves, like `_scale`, so that
    # windows near the float limits do not overflow; scale 0: all candidates equal mx)
    slack = 1e-5 * tl.abs(mx) + 1e-5 * tl.abs(lo) + 1e-5
    half_bin = tl.where(scale > 0, 1.0 / scale, 0.0)
    w_hi = tl.minimum((mx * 0.5 - (j - 1).to(tl.float32) * half_bin) * 2.0 + slack, mx)
    w_lo = tl.maximum((mx * 0.5 - j.to(tl.float32) * half_bin) * 2.0 - slack, lo)
    w_lo = tl.where(j >= NBINS - 2, lo, w_lo)  # the last inner bin reaches down to lo
    if j >= NBINS:
        # the candidates' total is below top_p: from round 0's bound that is rounding (keep them
        # all); from the segments, a window narrowed past the cut (`_sel_first_resolve`)
        result = lo
    elif n_j <= PICK:
        above = tl.sum(tl.where(bins < j, hm, 0), axis=0).to(tl.float64) / FIX_SCALE * inv_s
        n = tl.full([], 0, tl.int32)
        low = float("inf")
        for off in range(0, n_c, BLOCK):
            c, ok = _cand_block(cand, n_c, off, lanes, lo, pcnt_row, KSEG, SEG)
            is_c = ok & (_bin_of(c, hi2, lo, mx, scale, NBINS) == j)
            ci = is_c.to(tl.int32)
            pos = n + tl.cumsum(ci, axis=0) - 1
            tl.store(tail + pos, c, mask=is_c)
            n += tl.sum(ci, axis=0)
            low = tl.minimum(low, tl.min(tl.where(is_c, c, float("inf")), axis=0))
        # the float64 sum over the sorted bin may fall short of the exact one by rounding: then
        # the bin's lowest value (all of it kept, as the exact sums say)
        result = _pick(tail, n_j, 0, above, mx, inv_s, 0, target_p, 0, low, low, True, 2, PICK)
    return result, w_hi, w_lo, j >= NBINS


@triton.jit
def _gather_candidates(seg_row, pcnt_row, C, KSEG: tl.constexpr, lo, cand, BLOCK: tl.constexpr):
    """The number of a row's top_p candidates >= lo in the statistics pass's C segments, copied to
    cand in the segments' order (for `_select`, where the cut's bin holds too many to sort)."""
    lanes = tl.arange(0, BLOCK)
    n = tl.zeros([], tl.int32)
    for off in range(0, C * KSEG, BLOCK):
        v, keep = _cand_block(seg_row, C * KSEG, off, lanes, lo, pcnt_row, KSEG, True)
        ki = keep.to(tl.int32)
        tl.store(cand + n + tl.cumsum(ki, axis=0) - 1, v, mask=keep)
        n += tl.sum(ki, axis=0)
    return n


@triton.jit(do_not_specialize=["B", "C"])
def _seg_bins(
    flag_ptr,
    sel_p,
    sel_mx,
    seg_ptr,
    pth_ptr,
    pcnt_ptr,
    hm_ptr,
    hc_ptr,
    C,
    B,
    CB: tl.constexpr,
    KSEG: tl.constexpr,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
):
    """The first pass of round 0's top_p resolve (`_cut_by_bin_masses`), split over the row's
    segments (grid B x C): each program bins its segment's candidates >= lo over [lo, max],
    adding counts and integer masses into the row's bins (zeroed by `_finish_rows`) with atomics;
    the resolve (SPLIT) then starts from the bins. Integer sums: the order does not matter."""
    row = tl.program_id(0)
    c = tl.program_id(1)
    if (tl.load(sel_p + row) < 1.0) & (tl.load(flag_ptr + row) == 0):
        o = row.to(tl.int64) * C
        cs = tl.arange(0, CB)
        lo = tl.max(tl.load(pth_ptr + o + cs, mask=cs < C, other=float("-inf")), axis=0)
        if lo < float("inf"):
            mx = tl.load(sel_mx + row)
            hi2 = mx * 0.5
            scale = _scale(mx, lo, NBINS)
            seg = seg_ptr + (o + c) * KSEG
            n = tl.load(pcnt_ptr + o + c)
            lanes = tl.arange(0, BLOCK)
            bins = tl.arange(0, NBINS)
            hm = hm_ptr + row.to(tl.int64) * NBINS
            h = tl.zeros([NBINS], tl.int32)
            for off in range(0, n, BLOCK):
                v = tl.load(seg + off + lanes, mask=off + lanes < n, other=float("-inf"))
                h += _bin_masses(v, (off + lanes < n) & (v >= lo), hi2, lo, mx, scale, hm, NBINS)
            tl.atomic_add(hc_ptr + row.to(tl.int64) * NBINS + bins, h, mask=h > 0, sem="relaxed")


@triton.jit(do_not_specialize=["stride_z", "V", "B", "ZS", "C"])
def _sel_first_resolve(
    z_ptr,
    stride_z,
    V,
    res_ptr,
    flag_ptr,
    sel_k,
    sel_p,
    sel_mx,
    sel_s,
    win_ptr,
    cnt_ptr,
    ZS,
    cand_ptr,
    hm_ptr,
    seg_ptr,
    pth_ptr,
    pcnt_ptr,
    hc_ptr,
    C,
    B,
    IS_P: tl.constexpr,
    CAPN: tl.constexpr,
    BLOCK: tl.constexpr,
    NBINS: tl.constexpr,
    ROW_CAP: tl.constexpr,
    LAST: tl.constexpr,
    CB: tl.constexpr,
    KSEG: tl.constexpr,
    SPLIT: tl.constexpr,
):
    """Round 0's cut from the candidates of rows with a bound whose candidates fit the buffer.
    top_k's candidates come from `_sel_first`, top_p's from the statistics pass's segments
    (`_gather_candidates`; a row has a bound where they hold top_p's mass). The other rows go on
    to the histogram round (window [bound, max], or [max - WINDOW, max] without a bound), or with
    LAST (no histogram round follows: the launcher skips it for k when every row has a bound) to
    `_select` over the row here."""
    row = tl.program_id(0)
    active, target_k, target_p = _sel_target(sel_k, sel_p, row, IS_P)
    if active:
        mx = tl.load(sel_mx + row)
        cand = cand_ptr + row.to(tl.int64) * (CAPN + SMALL_CAP)
        ssum = tl.load(sel_s + row)
        inv_s = 1.0 / ssum
        result = float("nan")  # NaN: left to the histogram round
        if IS_P:
            # the segments hold every element >= lo, the highest of their thresholds; the cut's bin
            # from exact per-bin masses, then its few candidates sorted; where that bin holds too
            # many (ties, dense rows), `_select` over the candidates gathered, from that bin's
            # range (bisecting the mass re-read them at each of its 32 steps:
            # benchmarks/bench_top_p_resolve.py). Short of top_p's mass (a window narrowed past
            # the cut, or a program gave up) or holding +inf: the histogram round
            o = row.to(tl.int64) * C
            cs = tl.arange(0, CB)
            lo = tl.max(tl.load(pth_ptr + o + cs, mask=cs < C, other=float("-inf")), axis=0)
            if (lo < float("inf")) & (tl.load(flag_ptr + row) == 0):
                hm = hm_ptr + row.to(tl.int64) * NBINS
                seg = seg_ptr + o * KSEG
                # (the candidate buffer is free: the cut's bin is sorted there, up to SEG_PICK of it)
                result, w_hi, w_lo, short = _cut_by_bin_masses(
                    seg, C * KSEG, mx, inv_s, target_p, lo, hm, cand, pcnt_ptr + o, KSEG, BLOCK, NBINS, True, SEG_PICK,
                    SPLIT, hc_ptr + row.to(tl.int64) * NBINS,
                )  # fmt: skip
                if short:
                    result = float("nan")
                elif result != result:
                    n_c = _gather_candidates(seg, pcnt_ptr + o, C, KSEG, lo, cand, BLOCK)
                    result = _select(
                        cand, n_c, 1.0, False, mx, ssum, target_k, target_p, True, cand + CAPN, w_hi, w_lo,
                        BLOCK, NBINS, SMALL_CAP, True,
                    )  # fmt: skip
                    result = tl.maximum(result, lo)
            if result != result:  # the histogram round starts from [max - WINDOW, max]
                tl.store(win_ptr + B + row, mx - WINDOW)
        else:
            lo = tl.load(win_ptr + B + row)
            n_c = tl.load(cnt_ptr + row.to(tl.int64) * ZS)  # 0 without a bound (`_finish_rows` zeroes it)
            if (lo == lo) & (n_c <= CAPN):
                if n_c <= SMALL_CAP:
                    result = _pick(cand, n_c, 0, 0.0, mx, inv_s, target_k, target_p, 0, lo, lo, False, 2, SMALL_CAP)
                elif n_c <= MID_CAP:
                    result = _pick_bisect(cand, n_c, mx, inv_s, target_k, target_p, False, MID_CAP, False)
                else:
                    result = _pick_bisect(cand, n_c, mx, inv_s, target_k, target_p, False, MID_CAP, True)
            elif LAST:  # rare: rows holding +inf, candidates beyond the buffer (ties)
                t = tl.load(res_ptr + B + row)
                posinf = tl.load(flag_ptr + row) != 0
                start = tl.where(lo == lo, lo, mx - WINDOW)
                result = _select(
                    z_ptr + row.to(tl.int64) * stride_z, V, t, posinf, mx, ssum, target_k, target_p, False, cand, mx,
                    start, BLOCK, NBINS, ROW_CAP, False,
                )  # fmt: skip
            elif lo != lo:  # the histogram round starts from [max - WINDOW, max]
                tl.store(win_ptr + B + row, mx - WINDOW)
        if result == result:
            tl.store(res_ptr + row, tl.minimum(tl.maximum(tl.load(res_ptr + row), result), mx))
            if IS_P:
                tl.store(sel_p + row, 1.0)
            else:
                tl.store(sel_k + row, 0)


@triton.jit(do_not_specialize=["V", "B", "C", "calk_stride", "has_edt", "has_bins", "NT", "ZS"])
def _finish_rows(
    V,
    part_ptr,
    pn_ptr,
    rart_ptr,
    rn_ptr,
    B,
    C,
    fp_ptr,
    ip_ptr,
    bp_ptr,
    calk_stride,
    res_ptr,
    flag_out,
    sel_k,
    sel_p,
    sel_mx,
    sel_s,
    win_k,
    win_p,
    tmax_ptr,
    NT,
    has_edt,
    has_bins,
    zsel_ptr,
    ZS,
    rbm_ptr,
    rbc_ptr,
    CB: tl.constexpr,
    SELECT: tl.constexpr,
    BOUNDS: tl.constexpr,
    NTC: tl.constexpr,
    ZP: tl.constexpr,
    RB: tl.constexpr,
):
    row = tl.program_id(0)
    mx, ssum, h, posinf = _row_stats(part_ptr, pn_ptr, row, B, C, CB)
    t = tl.load(fp_ptr + F_TEMPERATURE * B + row)
    greedy = (tl.load(bp_ptr + row) != 0) | (t < MIN_TEMPERATURE)
    if has_edt != 0:
        if tl.load(bp_ptr + B + row) != 0:
            # has_edt 1: part.. hold the partials of z / T for EDT rows and T comes from the
            # unscaled ones (rart..), by the same arithmetic as in _edt_stats. has_edt 2: no
            # rule of the batch needs z / T's normaliser (the launcher skipped _edt_stats), so
            # part.. are unscaled and only the max is scaled (division is monotone: the max of
            # z / T is max(z) / T, exactly)
            h0 = h
            if has_edt == 1:
                _, _, h0, _ = _row_stats(rart_ptr, rn_ptr, row, B, C, CB)
            t = _edt_temperature(
                h0,
                tl.load(fp_ptr + F_EDT_N * B + row),
                tl.load(fp_ptr + F_EDT_THETA * B + row),
                tl.load(fp_ptr + F_EDT_T0 * B + row),
            )
            greedy = (tl.load(bp_ptr + row) != 0) | (t < MIN_TEMPERATURE)
            if (has_edt == 2) & (not greedy) & (not posinf):
                mx = tl.math.div_rn(mx, t)
    t = tl.where(greedy, 1.0, t)
    all_neginf = mx == float("-inf")
    t = tl.where(all_neginf, 1.0, t)
    mf = tl.where(all_neginf, 0.0, mx)
    lse = tl.log(ssum.to(tl.float32)) + mf
    # ---- threshold rules, in scaled-logit units
    # each rule's threshold (an unused rule's is -inf; a NaN one, from an all -inf row, too)
    thr = _or_off(tl.log(tl.load(fp_ptr + F_MIN_P * B + row)) + mx)
    thr = tl.maximum(thr, _or_off(tl.log(tl.load(fp_ptr + F_EPSILON * B + row)) + lse))
    log_eta = tl.log(tl.load(fp_ptr + F_ETA * B + row))
    eta_thr = tl.where(log_eta == float("-inf"), float("-inf"), tl.minimum(log_eta, 0.5 * log_eta - h) + lse)
    thr = tl.maximum(thr, _or_off(eta_thr))
    thr = tl.maximum(thr, _or_off(tl.load(fp_ptr + F_CAL_LOG_EPS * B + row) + lse))
    p_max = tl.exp(mx - lse)
    # ---- rank caps
    tk = tl.load(ip_ptr + I_TOP_K * B + row)
    k = tl.where(tk > 0, tl.minimum(tk, V), V).to(tl.int64)
    if has_bins != 0:
        nbin = tl.load(ip_ptr + I_BINS * B + row)
        m_bin = tl.math.ceil(p_max.to(tl.float64) * nbin.to(tl.float64)).to(tl.int64)
        m_bin = tl.minimum(tl.maximum(m_bin, 1), nbin)
        kb = tl.load(ip_ptr + I_KS * B + row * calk_stride + (m_bin - 1))
        k = tl.where(kb > 0, tl.minimum(k, kb), k)
        cb = tl.load(ip_ptr + I_CONF_BIN * B + row)
        k = tl.where((cb > 0) & (m_bin != cb), 1, k)
    k = tl.where(p_max < tl.load(fp_ptr + F_GREEDY_THRESHOLD * B + row), 1, k)
    k = tl.where(greedy, 1, k)
    thr = tl.where(k == 1, tl.maximum(thr, mx), thr)
    if SELECT:
        # the selections run next, split over programs (_sel_first, _sel_hist, _sel_collect);
        # their counters and histograms for this row start at zero (no memset launch)
        zs = tl.arange(0, ZP)
        tl.store(zsel_ptr + row.to(tl.int64) * ZS + zs, 0, mask=zs < ZS)
        if RB > 0:  # `_seg_bins`'s bins for round 0's top_p resolve
            rb = tl.arange(0, RB)
            tl.store(rbm_ptr + row.to(tl.int64) * RB + rb, tl.zeros([RB], tl.int64))
            tl.store(rbc_ptr + row.to(tl.int64) * RB + rb, tl.zeros([RB], tl.int32))
        top_p = tl.load(fp_ptr + F_TOP_P * B + row)
        need_k = (k > 1) & (k < V) & (not all_neginf)
        need_p = (top_p < 1.0) & (not all_neginf) & (thr < mx)
        tl.store(sel_k + row, tl.where(need_k, k, 0))
        tl.store(sel_p + row, tl.where(need_p, top_p, 1.0))
        tl.store(sel_mx + row, mx)
        tl.store(sel_s + row, ssum)
        # round 0's window [lo, max] for k: lo from the tile maxima (NaN: no bound); top_p's
        # comes from the statistics pass's candidates (`_sel_first_resolve`)
        lo_k = float("nan")
        if BOUNDS > 0:
            if (not posinf) & (mx > float("-inf")) & (mx < float("inf")) & need_k & (k <= NT):
                ts = tl.arange(0, NTC)
                tmx = tl.load(tmax_ptr + row.to(tl.int64) * NT + ts, mask=ts < NT, other=float("-inf"))
                lo_k = _k_bound(tmx, k, NTC)
        tl.store(win_k + row, mx)
        tl.store(win_k + B + row, lo_k)
        tl.store(win_p + row, mx)
        tl.store(win_p + B + row, float("nan"))
    # the argmax is always kept
    thr = tl.minimum(thr, mx)
    tl.store(res_ptr + row, thr)
    tl.store(res_ptr + B + row, t)
    tl.store(flag_out + row, posinf.to(tl.int32))


@triton.jit(do_not_specialize=["stride_z", "stride_o", "V", "B"])
def _mask(z_ptr, stride_z, out_ptr, stride_o, V, res_ptr, flag_ptr, B, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    thr = tl.load(res_ptr + row)
    t = tl.load(res_ptr + B + row)
    posinf = tl.load(flag_ptr + row) != 0
    x = _load_row(z_ptr + row.to(tl.int64) * stride_z, offs, V, posinf)
    if t != 1.0:
        x = tl.math.div_rn(x, t)
    out = tl.where(x >= thr, x, float("-inf"))
    tl.store(out_ptr + row.to(tl.int64) * stride_o + offs, out, mask=offs < V)
