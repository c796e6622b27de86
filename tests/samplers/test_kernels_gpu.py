"""The Triton kernels (`sss.samplers.kernels`) against the torch path, on a CUDA GPU.

Kept sets must equal the torch path's for every rule, a stack and a mixed batch, on random,
peaked, tied, sparse-finite and adversarial rows, B from 1 to 1,024, V from 1 to 262,144,
float32 / bfloat16 / float16. Tolerances (both sides compute in float32, in different orders):

* a row may differ only at its boundary: the lowest kept logits of the two sides are within
  1e-4 relative of each other (a threshold rule's log-sum-exp or an EDT temperature a few ulps
  apart), or, in a row with top_p, the smaller kept set already holds at least top_p - 1e-5 of
  the float64 probability mass (the cut sits within float rounding of top_p);
* kept values agree to 1e-6 relative; with EDT to 1e-2: its temperature n ** (theta / H)
  multiplies the relative rounding error of the entropy H (~1e-7 on either side) by
  theta * |log n| / H, which is large for the peaked rows (H -> 0).

One divergence is checked rather than compared: logits near the float32 limit divided by a
temperature < 1 overflow to +inf; the torch path returns such a row all -inf, the kernels keep
the overflowed tokens (as for +inf logits).

Skipped without CUDA or Triton; `scripts/gpu-tests.sh` runs this file on a GPU machine.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

import pytest
import torch

from sss.samplers import EDT, CalibratedEpsilon, SamplerBatch, SamplerSpec, apply_rules, kernels, rules

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or kernels._triton() is None,
    reason="needs a CUDA GPU and Triton (the kernels' path); scripts/gpu-tests.sh runs it on one",
)

SPECS = {
    "none": SamplerSpec(),
    "temperature": SamplerSpec(temperature=0.7),
    "greedy": SamplerSpec(temperature=0.0),
    "top_k=1": SamplerSpec(top_k=1),
    "top_k=20": SamplerSpec(top_k=20),
    "top_k=3000": SamplerSpec(top_k=3000),
    "top_p=0.9": SamplerSpec(top_p=0.9),
    "top_p=0.5,T=1.5": SamplerSpec(top_p=0.5, temperature=1.5),
    "top_p=0.999": SamplerSpec(top_p=0.999),
    "min_p": SamplerSpec(min_p=0.1),
    "epsilon": SamplerSpec(epsilon=0.0005),
    "eta": SamplerSpec(eta=0.001),
    "edt": SamplerSpec(edt=EDT(n=0.8, theta=1.0, t0=1.0)),
    "edt_n2": SamplerSpec(edt=EDT(n=2.0, theta=1.0, t0=0.7)),
    "greedy_threshold": SamplerSpec(greedy_threshold=0.3),
    "calibrated_topk": SamplerSpec(calibrated_topk=(1, 1, 2, 2, 3, 3, 4, 5, 6, 8)),
    "calibrated_epsilon": SamplerSpec(calibrated_epsilon=CalibratedEpsilon(a=-0.506, b=0.795, c=0.05)),
    "confidence_bin": SamplerSpec(confidence_bin=5),
    "stack:min_p+greedy_threshold": SamplerSpec(min_p=0.1, greedy_threshold=0.3),
    "stack:all": SamplerSpec(
        temperature=1.3,
        top_k=40,
        top_p=0.8,
        min_p=0.001,
        epsilon=1e-6,
        eta=1e-5,
        greedy_threshold=0.05,
        calibrated_topk=(50,) * 10,
        confidence_bin=2,
    ),
    "stack:edt+top_p+eta": SamplerSpec(edt=EDT(), top_p=0.7, eta=0.001),
}
KINDS = ("random", "peaked", "tied", "sparse", "adversarial")
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@contextmanager
def torch_path():
    old = os.environ.get("SSS_SAMPLER_KERNELS")
    os.environ["SSS_SAMPLER_KERNELS"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["SSS_SAMPLER_KERNELS"]
        else:
            os.environ["SSS_SAMPLER_KERNELS"] = old


def make_rows(kind: str, rows: int, vocab: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, vocab, generator=g) * 3
    if kind == "peaked":  # one token per row raised so that p_max spreads over (0, 1)
        q = (torch.arange(rows, dtype=torch.float64) + 0.5) / rows
        tok = torch.randint(0, vocab, (rows,), generator=g)
        r = torch.arange(rows)
        z[r, tok] = -math.inf
        rest = torch.logsumexp(z.double(), dim=-1)
        z[r, tok] = (torch.log(q) - torch.log1p(-q) + rest).float()
        z[r, tok] = torch.where(torch.isfinite(z[r, tok]), z[r, tok], 0.0)
    elif kind == "tied":  # few distinct values: every boundary is a tie
        z = torch.randint(0, 5, (rows, vocab), generator=g).float() * 1.5
    elif kind == "sparse":  # mostly -inf (a grammar mask), some rows with a single finite token
        z[torch.rand(rows, vocab, generator=g) < 0.97] = -math.inf
        z[::3, :] = -math.inf
        z[::3, 0] = 1.0
    elif kind == "adversarial":
        pick = torch.arange(rows) % 8
        z[pick == 0] = float("nan")
        z[pick == 1, : max(1, vocab // 3)] = math.inf
        z[pick == 2] = -math.inf
        z[pick == 3, ::2] = float("nan")
        z[pick == 4] = torch.sign(z[pick == 4]) * 1e30
        z[pick == 5] = torch.sort(z[pick == 5], dim=-1).values * 1e-3  # tiny spread, sorted
        z[pick == 6] = 3e38 * torch.sign(z[pick == 6])
        z[pick == 7, 1:] = -math.inf
    return z


def scaled_reference(z: torch.Tensor, batch: SamplerBatch) -> torch.Tensor:
    """float64 scaled logits (sanitized, divided by each row's temperature as the torch path sets it)."""
    zf, _ = rules.sanitize_with_max(z.float())
    t = rules.temperatures(zf, batch).to(torch.float64)
    greedy = batch.greedy | (t < rules.MIN_TEMPERATURE)
    t = torch.where(greedy, 1.0, t)
    return zf.double() / t.unsqueeze(1)


def compare(z: torch.Tensor, specs: list[SamplerSpec], label: str) -> int:
    """Kernel path vs torch path on one batch; returns how many rows differed within tolerance."""
    batch = SamplerBatch.from_specs(specs, device=z.device)
    assert kernels.usable(z)
    out = apply_rules(z, batch)
    with torch_path():
        ref = apply_rules(z, batch)
    assert out.dtype == ref.dtype == torch.float32 and out.shape == ref.shape
    kk, kr = out > -math.inf, ref > -math.inf
    assert not torch.isnan(out).any(), label
    # Logits near the float32 limit divided by T < 1 overflow to +inf. The torch path then gets a
    # NaN threshold (log(0) + inf for an unused rule) and returns the row all -inf; the kernels
    # keep the overflowed tokens (as for +inf logits). Such rows are checked for that, not compared.
    # (EDT rows too: their temperature is the torch path's, from the row's entropy)
    zf = z.float()
    t = rules.temperatures(rules.sanitize_with_max(zf)[0], batch)
    t = torch.where(batch.greedy | (t < rules.MIN_TEMPERATURE), 1.0, t).unsqueeze(1)
    overflow = (torch.isfinite(zf) & torch.isinf(zf / t)).any(dim=1)
    if overflow.any():
        assert (kk[overflow].sum(dim=1) >= 1).all(), label
        keep = ~overflow
        z, out, ref, kk, kr = z[keep], out[keep], ref[keep], kk[keep], kr[keep]
        specs = [s for s, k in zip(specs, keep.tolist()) if k]
        batch = SamplerBatch.from_specs(specs, device=z.device)
    both = kk & kr
    edt = any(s.edt is not None for s in specs)
    rtol = 1e-2 if edt else 1e-6
    assert torch.allclose(out[both], ref[both], rtol=rtol, atol=1e-30), label
    bad = (kk != kr).any(dim=1).nonzero().flatten().tolist()
    if not bad:
        return 0
    zs = scaled_reference(z, batch)
    for r in bad:
        lo_k = out[r][kk[r]].min().item() if kk[r].any() else -math.inf
        lo_r = ref[r][kr[r]].min().item() if kr[r].any() else -math.inf
        near = math.isfinite(lo_k) and math.isfinite(lo_r) and abs(lo_k - lo_r) <= 1e-4 * (1 + abs(lo_r))
        p = specs[r].top_p
        if not near and p is not None:
            srt = torch.sort(zs[r], descending=True).values
            mass = torch.softmax(srt, dim=0).cumsum(0)
            n_small = int(min(kk[r].sum(), kr[r].sum()))
            near = n_small >= 1 and mass[n_small - 1].item() >= p - 1e-5
        assert near, (
            f"{label} row {r} ({specs[r].enabled()}): kernel keeps {int(kk[r].sum())}, "
            f"torch {int(kr[r].sum())}; lowest kept {lo_k} vs {lo_r}"
        )
    return len(bad)


SMALL = [(1, 1), (5, 1), (3, 7), (33, 1000)]
# the large shapes take one dtype per kind (rotating), to keep the device time short
LARGE = [((64, 32000), KINDS[i], DTYPES[i % 3]) for i in range(len(KINDS))] + [
    ((1024, 4096), KINDS[i], DTYPES[(i + 1) % 3]) for i in range(len(KINDS))
]
CASES = [(shape, kind, dtype) for shape in SMALL for kind in KINDS for dtype in DTYPES] + LARGE


@pytest.mark.parametrize(
    ("shape", "kind", "dtype"), CASES, ids=[f"B{s[0]}xV{s[1]}-{k}-{str(d).split('.')[-1]}" for s, k, d in CASES]
)
def test_every_rule_matches_torch(shape, kind, dtype):
    rows, vocab = shape
    z = make_rows(kind, rows, vocab, seed=rows * 7919 + vocab).to("cuda", dtype)
    tolerated = 0
    for name, spec in SPECS.items():
        tolerated += compare(z, [spec] * rows, f"{name} {kind} {dtype} {shape}")
    mixed = list(SPECS.values())
    tolerated += compare(z, [mixed[i % len(mixed)] for i in range(rows)], f"mixed {kind} {dtype} {shape}")
    assert tolerated <= max(2, rows * len(SPECS) // 200), f"{tolerated} boundary rows"


@pytest.mark.parametrize(
    "shape", [(1, 151936), (64, 151936), (2, 262144), (7, 262143)], ids=lambda s: f"B{s[0]}xV{s[1]}"
)
@pytest.mark.parametrize("kind", ["random", "peaked", "tied", "adversarial"])
def test_large_vocab(shape, kind):
    rows, vocab = shape
    dtype = DTYPES[(vocab + len(kind)) % 3]
    z = make_rows(kind, rows, vocab, seed=vocab + rows).to("cuda", dtype)
    for name in (
        "top_k=20",
        "top_k=3000",
        "top_p=0.9",
        "top_p=0.999",
        "min_p",
        "eta",
        "edt",
        "calibrated_topk",
        "stack:all",
    ):
        compare(z, [SPECS[name]] * rows, f"{name} {kind} {shape}")
    mixed = list(SPECS.values())
    compare(z, [mixed[i % len(mixed)] for i in range(rows)], f"mixed {kind} {shape}")


@pytest.mark.parametrize(
    "kw",
    [{"bins": 16, "cap": 16}, {"tile": 16}, {"bins": 16, "tile": 16}, {"bins": 16, "cap": 16, "tile": 16}],
    ids=lambda d: str(d),
)
def test_selection_rounds_with_small_buffers(kw):
    """Tiny histograms and candidate buffers force the histogram round and the one-program
    fallback on most rows; 16-element tiles give round 0 bounds for k up to 312 (with 16 bins,
    round 0's top_p resolve narrows its histogram over the candidates in several rounds; with
    the small buffers too, round 0 overflows, and for k the resolve's own `_select` over the row
    takes those rows)."""
    for kind in KINDS:
        z = make_rows(kind, 40, 5000, seed=11).cuda()
        for name in ("top_k=20", "top_k=3000", "top_p=0.9", "top_p=0.999", "stack:all"):
            batch = SamplerBatch.from_specs([SPECS[name]] * 40, device="cuda")
            out = kernels.apply_rules_cuda(z, batch, **kw)
            with torch_path():
                ref = apply_rules(z, batch)
            kk, kr = out > -math.inf, ref > -math.inf
            diff = (kk != kr).any(dim=1)
            if "top_p" not in name:
                assert not diff.any(), (name, kind, diff.nonzero().flatten().tolist())
            else:
                assert int(diff.sum()) <= 2, (name, kind)


def test_no_host_sync_and_graph_capture():
    """Steady state: no host<->device sync; the launches (selection included) replay from a CUDA graph."""
    z = make_rows("peaked", 8, 32000, seed=3).cuda()
    batch = SamplerBatch.from_specs([SPECS["stack:all"], SPECS["top_p=0.9"]] * 4, device="cuda")
    expected = apply_rules(z, batch)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        apply_rules(z, batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    static = z.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        apply_rules(static, batch)  # warm-up (compiles) outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = apply_rules(static, batch)
    new = make_rows("random", 8, 32000, seed=4).cuda()
    static.copy_(new)
    graph.replay()
    torch.cuda.synchronize()
    with torch_path():
        want = apply_rules(new, batch)
    assert torch.equal(captured > -math.inf, want > -math.inf)
    assert torch.equal(apply_rules(z, batch) > -math.inf, expected > -math.inf)


def test_repeated_calls_reuse_scratch_and_counters_without_carrying_state():
    """The launcher keeps its scratch and the histogram round's per-row counters between calls
    (docs/kernels.md, "Host time per call"); a call must not see what the one before left. Batches
    of one shape alternate (so they share the workspace), with small buffers so that the histogram
    rounds and their last-program resolves run on most rows, and each result must equal the
    torch path's and the same call's earlier result bit for bit."""
    z = make_rows("random", 40, 5000, seed=21).cuda()
    y = make_rows("tied", 40, 5000, seed=22).cuda()
    batches = [
        SamplerBatch.from_specs([SPECS[name]] * 40, device="cuda")
        for name in ("top_p=0.999", "top_k=3000", "stack:all", "top_p=0.9")
    ]
    first = {}
    for rnd in range(3):
        for n, batch in enumerate(batches):
            for x_name, x in (("z", z), ("y", y)):
                out = kernels.apply_rules_cuda(x, batch, bins=16, cap=16, tile=16)
                key = (n, x_name)
                if key not in first:
                    with torch_path():
                        ref = apply_rules(x, batch)
                    diff = ((out > -math.inf) != (ref > -math.inf)).any(dim=1)
                    allowed = 0 if n == 1 else 2  # top_p: cuts within float rounding (see compare)
                    assert int(diff.sum()) <= allowed, (n, x_name, diff.nonzero().flatten().tolist())
                    first[key] = out
                else:
                    assert torch.equal(out, first[key]), (rnd, n, x_name)


def test_launch_plans_follow_the_logits_and_the_batch():
    """A call leaves its launches as a plan for the batch and the next call with the same logits
    layout replays it (docs/kernels.md, "Host time per call"). Replays must take each call's
    logits and output, see in-place writes to the batch's columns, give way to a new plan when
    a column tensor is replaced or the shape changes, and go with the batch."""
    import gc

    specs = [SPECS["top_p=0.9"], SPECS["top_k=20"], SPECS["min_p"], SPECS["stack:all"]] * 4
    batch = SamplerBatch.from_specs(specs, device="cuda")

    def check(z, batch, label):
        out = apply_rules(z, batch)
        with torch_path():
            ref = apply_rules(z, batch)
        diff = ((out > -math.inf) != (ref > -math.inf)).any(dim=1)
        assert int(diff.sum()) <= 1, (label, diff.nonzero().flatten().tolist())  # top_p rounding

    for step in range(3):  # new logits each step: the first call makes the plan, the others replay it
        check(make_rows("random", 16, 50000, seed=40 + step).cuda(), batch, f"step {step}")
        if step == 0:
            (entry,) = [e for e in kernels._PLANS.values() if e[0]() is batch]
            (plan,) = entry[1].values()
        assert list(entry[1].values()) == [plan]  # replayed, not made again
    batch.min_p.fill_(0.3)  # in place: the replay reads it
    check(make_rows("peaked", 16, 50000, seed=50).cuda(), batch, "min_p written in place")
    assert list(entry[1].values()) == [plan]
    batch.min_p = torch.full_like(batch.min_p, 0.05)  # a new tensor: the plan no longer holds
    check(make_rows("peaked", 16, 50000, seed=51).cuda(), batch, "min_p replaced")
    check(make_rows("random", 16, 4000, seed=52).cuda(), batch, "another vocabulary")
    del batch, entry, plan
    gc.collect()
    assert all(e[0]() is not None for e in kernels._PLANS.values())  # dead batches leave no plans
