"""KV memory and attention for the HF engine's decode loop, plugged into transformers' attention
interface (`AttentionInterface.register`): the model, its projections and RoPE stay transformers'.

Why not a transformers cache class: `DynamicCache` grows every layer's K/V by concatenation at
each step; `StaticCache` writes one `cache_position` for the whole batch, so rows of different
lengths need padding and a row cannot leave or join mid-generation; the paged cache of
transformers' continuous batching runs its own generation loop (no per-request logits
processors, seeded draws or traces). None shares one prompt prefix across rows at attention
time. What this module adds is exactly that missing piece:

* a shared prefix (the few-shot exemplars) is stored once per group, [Hkv, P, D] per layer,
  and every row attends to it through one batched product (read once per step, not once per
  row: "cascade" attention, merged with the row's own part by log-sum-exp);
* each row owns a slot of a preallocated [rows, Hkv, L, D] buffer per layer, written in place
  at its own position (no growth by concatenation);
* grouped-query attention without materialising repeated K/V: the `rep` query heads that
  share a KV head are folded into the query axis ([B, Hkv, rep*T, D] against [B, Hkv, L, D]).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

ATTENTION_NAME = "sss_slots"
_NEG_INF = float("-inf")


def slot_attention(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, sss_kv: SlotKV | None = None, **kwargs
):
    """transformers attention-interface function: stores the new K/V and attends (see module doc)."""
    if sss_kv is None:
        raise RuntimeError(f"attention '{ATTENTION_NAME}' runs only inside the sss HF engine")
    if kwargs.get("sliding_window") is not None:
        raise NotImplementedError(
            "the sss HF decode loop supports full attention only (use engine.loop=generate for sliding-window models)"
        )
    return sss_kv.attend(module.layer_idx, query, key, value, scaling), None


def register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, slot_attention)


def _partial(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: torch.Tensor | None = None):
    """Unnormalised attention of q [..., M, D] over k, v [..., L, D]: (o, row max, row sum),
    softmax statistics in float32 so that two parts can be merged exactly."""
    s = torch.matmul(q, k.transpose(-1, -2)).float() * scale
    if mask is not None:
        s = s + mask
    m = s.amax(dim=-1, keepdim=True)
    p = torch.exp(s - m)
    return torch.matmul(p.to(v.dtype), v).float(), m, p.sum(dim=-1, keepdim=True)


def _merge(a, b):
    (oa, ma, la), (ob, mb, lb) = a, b
    m = torch.maximum(ma, mb)
    wa, wb = torch.exp(ma - m), torch.exp(mb - m)
    return oa * wa + ob * wb, m, la * wa + lb * wb


class SlotKV:
    """Prefixes and row slots of one model's K/V; `mode` says what the current forward does."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device):
        self.layers, self.kv_heads, self.head_dim = layers, kv_heads, head_dim
        self.dtype, self.device = dtype, device
        self.k = self.v = None
        self.prefixes: dict[Hashable, tuple[list, list, int]] = {}
        self.mode = "decode"

    @property
    def bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * torch.finfo(self.dtype).bits // 8

    def allocate(self, rows: int, slot_len: int) -> None:
        shape = (self.layers, rows, self.kv_heads, slot_len, self.head_dim)
        if self.k is None or self.k.shape[1] < rows or self.k.shape[3] < slot_len:
            self.k = self.v = None  # free the old buffers first
            # zeros, not empty: positions past a row's length are masked (-inf scores), but
            # uninitialised memory can hold NaN, and NaN + -inf or 0 * NaN stays NaN
            self.k = torch.zeros(shape, dtype=self.dtype, device=self.device)
            self.v = torch.zeros(shape, dtype=self.dtype, device=self.device)

    def copy_slot(self, src: int, dst: int, length: int) -> None:
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]

    # -- what the next forward does --------------------------------------------------------
    def begin_prefix(self, key: Hashable, length: int) -> None:
        self.mode, self._key = "prefix", key
        self.prefixes[key] = ([None] * self.layers, [None] * self.layers, length)

    def begin_prefill(self, slot: int, prefix: Hashable, length: int) -> None:
        self.mode, self._slot, self._prefix = "prefill", slot, prefix
        self._causal = torch.full((length, length), _NEG_INF, device=self.device).triu(1)

    def begin_decode(self, prefixes: Sequence[Hashable], positions: Sequence[int]) -> None:
        """Row i writes its new K/V at `positions[i]` of its slot and attends to 0..positions[i]."""
        self.mode = "decode"
        n = len(positions)
        self._rows = torch.arange(n, device=self.device)
        self._pos = torch.tensor(positions, dtype=torch.int64, device=self.device)
        width = max(positions) + 1
        valid = torch.arange(width, device=self.device) <= self._pos.unsqueeze(1)
        self._mask = torch.where(valid, 0.0, _NEG_INF).view(n, 1, 1, width)
        self._width = width
        self._groups = []  # (prefix key, rows or None for all)
        distinct = dict.fromkeys(prefixes)
        for key in distinct:
            if key is None:
                continue
            if len(distinct) == 1:
                self._groups.append((key, None))
            else:
                rows = [i for i, p in enumerate(prefixes) if p == key]
                self._groups.append((key, torch.tensor(rows, device=self.device)))

    def prefix_length(self, key: Hashable) -> int:
        return 0 if key is None else self.prefixes[key][2]

    def drop_prefix(self, key: Hashable) -> None:
        self.prefixes.pop(key, None)

    # -- attention -------------------------------------------------------------------------
    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float):
        b, heads, t, d = q.shape
        hkv = k.shape[1]
        rep = heads // hkv
        qg = q.reshape(b, hkv, rep * t, d)  # the rep query heads of a KV head, folded into the query axis
        if self.mode == "prefix":
            keys, values, _ = self.prefixes[self._key]
            keys[layer], values[layer] = k[0], v[0]
            causal = torch.full((t, t), _NEG_INF, device=q.device).triu(1).repeat(rep, 1)
            parts = _partial(qg, k, v, scale, causal)
        elif self.mode == "prefill":
            self.k[layer, self._slot, :, :t] = k[0]
            self.v[layer, self._slot, :, :t] = v[0]
            parts = _partial(qg, k, v, scale, self._causal.repeat(rep, 1))
            if self._prefix is not None:
                keys, values, _ = self.prefixes[self._prefix]
                parts = _merge(parts, _partial(qg[0], keys[layer], values[layer], scale))
        else:
            self.k[layer, self._rows, :, self._pos] = k[:, :, 0]
            self.v[layer, self._rows, :, self._pos] = v[:, :, 0]
            own_k = self.k[layer, :b, :, : self._width]
            own_v = self.v[layer, :b, :, : self._width]
            parts = _partial(qg, own_k, own_v, scale, self._mask)
            for key, rows in self._groups:
                parts = _merge(parts, self._prefix_part(qg, rows, key, layer, scale, b, hkv, rep, d))
        o, _, total = parts
        out = (o / total).to(q.dtype).view(b, heads, t, d)
        return out.transpose(1, 2)

    def _prefix_part(self, qg, rows, key, layer, scale, b, hkv, rep, d):
        """Every row of a prefix group against the shared prefix in one product: the prefix is
        read once per step, however many rows share it. Rows outside the group get a part
        that contributes nothing (max -inf, sum 0)."""
        keys, values, _ = self.prefixes[key]
        sub = qg if rows is None else qg[rows]
        r = sub.shape[0]
        flat = sub.permute(1, 0, 2, 3).reshape(hkv, r * rep, d)
        o, m, s = _partial(flat, keys[layer], values[layer], scale)
        o, m, s = (x.view(hkv, r, rep, x.shape[-1]).permute(1, 0, 2, 3) for x in (o, m, s))
        if rows is None:
            return o, m, s
        full_o = torch.zeros((b, hkv, rep, d), dtype=o.dtype, device=o.device)
        full_m = torch.full((b, hkv, rep, 1), _NEG_INF, dtype=m.dtype, device=m.device)
        full_s = torch.zeros((b, hkv, rep, 1), dtype=s.dtype, device=s.device)
        full_o[rows], full_m[rows], full_s[rows] = o, m, s
        return full_o, full_m, full_s
