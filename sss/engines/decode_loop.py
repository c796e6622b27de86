"""The decode loop shared by the HF and dummy engines: prefix reuse, continuous batching,
seeded per-request draws, stop handling and per-token traces.

A `Backend` owns the model and its KV memory; the loop owns the schedule. Each call:

1. Requests are grouped (`Request.group`, e.g. one lm-eval task). The longest token prefix
   common to a group's prompts (the few-shot exemplars) is encoded once (`encode_prefix`).
2. Identical prompts (the repeats of one question) are one *prompt*: its suffix after the
   prefix is prefilled once, into one slot, then copied to a slot per repeat; every repeat
   draws its own first token from the same logits.
3. Active rows decode together, one token per step. A row that stops (EOS, a stop string,
   its token budget) leaves at once and a waiting prompt takes the free slots, within
   `max_rows` and the slot length the backend allocated.
4. Each row draws with its own seed at its own step (`sss.samplers.draw`), so its text does
   not depend on the batch it shares or on the batch size.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Protocol
from collections.abc import Hashable, Sequence

import torch
from tqdm import tqdm

from sss.samplers import SamplerBatch, apply_rules
from sss.samplers.draw import draw

from .base import Generation, Request, cut_at_stop
from .trace import TraceBuilder, step_trace


class Backend(Protocol):
    """What the loop needs of a model. Slots are rows 0..n-1 of the backend's KV memory."""

    device: torch.device
    eos_ids: frozenset[int]
    context_length: int | None

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def allocate(self, rows: int, slot_len: int) -> None: ...
    def encode_prefix(self, key: Hashable, ids: Sequence[int]) -> None: ...
    def drop_prefix(self, key: Hashable) -> None: ...
    def prefill(self, slot: int, prefix: Hashable, ids: Sequence[int]) -> torch.Tensor: ...
    def copy_slot(self, src: int, dst: int, length: int) -> None: ...
    def decode_step(
        self, tokens: torch.Tensor, prefixes: Sequence[Hashable], lengths: Sequence[int]
    ) -> torch.Tensor: ...


@dataclass
class _Prompt:
    ids: list[int]  # the whole prompt
    prefix: Hashable  # the group's prefix key
    prefix_len: int
    requests: list[int]  # indices into the call's requests, one row each


@dataclass
class _Row:
    request: int
    prefix: Hashable
    prefix_len: int
    length: int  # suffix tokens in the slot (prompt suffix + generated)
    step: int = 0
    generated: list[int] = field(default_factory=list)
    text: str = ""
    trace: TraceBuilder | None = None


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix shared by every sequence."""
    first, n = seqs[0], min(len(s) for s in seqs)
    for other in seqs[1:]:
        i = 0
        while i < n and other[i] == first[i]:
            i += 1
        n = i
    return n


def run(
    backend: Backend,
    requests: Sequence[Request],
    max_rows: int,
    max_kv_tokens: int,
    trace_top_k: int | None = None,
    progress: bool = True,
    desc: str = "generating",
) -> list[Generation]:
    if not requests:
        return []
    for r in requests:
        if r.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {r.max_new_tokens}")

    # -- 1, 2: prompts, grouped, with their shared prefixes --------------------------------
    prompts: OrderedDict[tuple, _Prompt] = OrderedDict()
    token_cache: dict[str, list[int]] = {}
    for index, r in enumerate(requests):
        ids = token_cache.get(r.prompt)
        if ids is None:
            ids = token_cache[r.prompt] = backend.encode(r.prompt)
            if not ids:
                raise ValueError("an empty prompt cannot be generated from (it has no tokens)")
            limit = backend.context_length
            if limit is not None and len(ids) >= limit:
                raise ValueError(
                    f"a prompt of {len(ids)} tokens does not fit the model's context of "
                    f"{limit} tokens (it must leave room for at least one new token)"
                )
        key = (r.group, r.prompt)
        if key not in prompts:
            prompts[key] = _Prompt(ids=ids, prefix=None, prefix_len=0, requests=[])
        prompts[key].requests.append(index)

    groups: OrderedDict[Hashable, list[_Prompt]] = OrderedDict()
    for (group, _), prompt in prompts.items():
        groups.setdefault(group, []).append(prompt)
    prefix_users: dict[Hashable, int] = {}
    for n, (group, members) in enumerate(groups.items()):
        # at least one token of each prompt is left to prefill: its logits start the generation
        length = min(common_prefix([p.ids for p in members]), min(len(p.ids) for p in members) - 1)
        # a shared prefix is worth its own pass only when something shares it
        if length < 16 or sum(len(p.requests) for p in members) < 2:
            length = 0
        for p in members:
            p.prefix, p.prefix_len = ((n, group) if length else None), length
        if length:
            prefix_users[(n, group)] = sum(len(p.requests) for p in members)

    # -- KV memory: slots long enough for any prompt suffix plus its generation ------------
    slot_len = max(
        len(p.ids) - p.prefix_len + max(requests[i].max_new_tokens for i in p.requests) for p in prompts.values()
    )
    if backend.context_length is not None:
        slot_len = min(slot_len, backend.context_length)
    context = backend.context_length
    rows = max(1, min(max_rows, len(requests), max_kv_tokens // max(slot_len, 1)))
    backend.allocate(rows, slot_len)

    waiting = deque(prompts.values())
    active: list[_Row] = []
    results: list[Generation | None] = [None] * len(requests)
    encoded: set[Hashable] = set()
    batch: SamplerBatch | None = None
    batch_requests: list[int] | None = None
    bar = tqdm(total=len(requests), desc=desc, disable=not progress, unit="sample")
    started, tokens_out = time.perf_counter(), 0

    def finish(row: _Row, reason: str) -> None:
        nonlocal tokens_out
        r = requests[row.request]
        cut = cut_at_stop(row.text, r.stop)
        results[row.request] = Generation(
            text=row.text if cut is None else row.text[:cut],
            new_tokens=len(row.generated),
            stopped=reason,
            trace=row.trace.build() if row.trace is not None else None,
        )
        tokens_out += len(row.generated)
        if row.prefix is not None:
            prefix_users[row.prefix] -= 1
            if prefix_users[row.prefix] == 0:
                backend.drop_prefix(row.prefix)
        bar.update(1)
        bar.set_postfix_str(f"{tokens_out / max(time.perf_counter() - started, 1e-9):.1f} tok/s", refresh=False)

    def accept(rows_now: list[_Row], logits: torch.Tensor) -> list[_Row]:
        """Rules, draws and bookkeeping for one step of `rows_now` (logits [n, V]); returns the
        rows still running."""
        nonlocal batch, batch_requests
        ids = [row.request for row in rows_now]
        if ids != batch_requests:
            batch = SamplerBatch.from_specs([requests[i].spec for i in ids], device=logits.device)
            batch_requests = ids
        ruled = apply_rules(logits, batch)
        seeds = torch.tensor([requests[i].seed for i in ids], dtype=torch.int64, device=logits.device)
        steps = torch.tensor([row.step for row in rows_now], dtype=torch.int64, device=logits.device)
        chosen = draw(ruled, seeds, steps)
        traced = step_trace(logits, ruled, chosen, trace_top_k) if trace_top_k is not None else None
        still = []
        for n, (row, token) in enumerate(zip(rows_now, chosen.tolist())):
            r = requests[row.request]
            row.generated.append(token)
            row.step += 1
            row.length += 1
            row.text = backend.decode(row.generated)
            if row.trace is not None:
                row.trace.add(token, len(row.text), traced, n)
            if token in backend.eos_ids or cut_at_stop(row.text, r.stop) is not None:
                finish(row, "stop")
            elif (
                row.step >= r.max_new_tokens
                or row.length >= slot_len
                or (context is not None and row.prefix_len + row.length >= context)
            ):
                finish(row, "length")
            else:
                still.append(row)
        return still

    while waiting or active:
        # -- 3: admit waiting prompts while slots are free ---------------------------------
        while waiting and len(active) < rows:
            prompt = waiting.popleft()
            if prompt.prefix is not None and prompt.prefix not in encoded:
                backend.encode_prefix(prompt.prefix, prompt.ids[: prompt.prefix_len])
                encoded.add(prompt.prefix)
            free = rows - len(active)
            members = prompt.requests
            if len(members) > free:  # the other repeats wait for free slots (and a prefill of their own)
                waiting.appendleft(_Prompt(prompt.ids, prompt.prefix, prompt.prefix_len, members[free:]))
                members = members[:free]
            first = len(active)
            suffix = prompt.ids[prompt.prefix_len :]
            logits = backend.prefill(first, prompt.prefix, suffix)
            new_rows = []
            for k, index in enumerate(members):
                if k:
                    backend.copy_slot(first, first + k, len(suffix))
                new_rows.append(
                    _Row(
                        request=index,
                        prefix=prompt.prefix,
                        prefix_len=prompt.prefix_len,
                        length=len(suffix),
                        trace=TraceBuilder(trace_top_k) if trace_top_k is not None else None,
                    )
                )
            kept = set(map(id, accept(new_rows, logits.unsqueeze(0).expand(len(new_rows), -1).contiguous())))
            # rows that ended at their first token leave; the others move down into place
            for k, row in enumerate(new_rows):
                if id(row) in kept:
                    if len(active) != first + k:
                        backend.copy_slot(first + k, len(active), row.length)
                    active.append(row)

        if not active:
            continue
        # -- one decode step for every active row ------------------------------------------
        tokens = torch.tensor([row.generated[-1] for row in active], dtype=torch.int64, device=backend.device)
        logits = backend.decode_step(tokens, [row.prefix for row in active], [row.length - 1 for row in active])
        still = accept(active, logits)
        if len(still) != len(active):
            # keep slots 0..n-1 dense: every surviving row moves down to its new index
            survivors = set(map(id, still))
            new_active = []
            for slot, row in enumerate(active):
                if id(row) in survivors:
                    if slot != len(new_active):
                        backend.copy_slot(slot, len(new_active), row.length)
                    new_active.append(row)
            active = new_active
    bar.close()
    return results  # type: ignore[return-value]
