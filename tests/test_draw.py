"""Seeded per-row draws: right distribution, reproducible, independent of the batch."""

from __future__ import annotations

import torch

from sss.samplers.draw import draw, uniforms

NEG_INF = float("-inf")


def test_frequencies_match_softmax():
    probs = torch.tensor([0.45, 0.25, 0.2, 0.1, 0.0])
    logits = torch.log(probs).unsqueeze(0).expand(40_000, -1)
    tokens = draw(logits, torch.arange(40_000), step=3)
    freq = torch.bincount(tokens, minlength=5).double() / 40_000
    # 4 standard errors of a binomial proportion at n = 40k is < 0.01
    assert torch.allclose(freq, probs.double(), atol=0.01), freq
    assert freq[4] == 0  # a -inf token is never drawn


def test_same_seed_same_step_same_token_and_steps_differ():
    logits = torch.randn(64, 1000)
    seeds = torch.arange(64) * 7919
    a, b = draw(logits, seeds, 5), draw(logits, seeds, 5)
    assert torch.equal(a, b)
    assert (draw(logits, seeds, 6) != a).any()
    assert (draw(logits, seeds + 1, 5) != a).any()


def test_a_row_does_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    logits = torch.randn(32, 500)
    seeds = torch.randint(0, 2**62, (32,))
    together = draw(logits, seeds, 11)
    alone = torch.stack([draw(logits[i : i + 1], seeds[i : i + 1], 11)[0] for i in range(32)])
    reversed_batch = draw(logits.flip(0), seeds.flip(0), 11).flip(0)
    assert torch.equal(together, alone)
    assert torch.equal(together, reversed_batch)


def test_one_kept_token_is_always_drawn():
    logits = torch.full((16, 50), NEG_INF)
    logits[torch.arange(16), torch.arange(16) * 3] = 0.3
    assert torch.equal(draw(logits, torch.arange(16), 0), torch.arange(16) * 3)


def test_uniforms_are_in_the_open_interval_and_spread():
    u = uniforms(torch.arange(100_000), 0)
    assert (u > 0).all() and (u < 1).all()
    hist = torch.histc(u.float(), bins=10, min=0, max=1) / 100_000
    assert torch.allclose(hist, torch.full((10,), 0.1), atol=0.01)
