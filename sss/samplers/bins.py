"""Confidence bins over p_max: one convention for decoding and calibration grids alike.

``n`` equal-width bins, bin ``m`` (1-based) = ((m-1)/n, m/n]; p_max = 0 falls in bin 1.
The paper's decoding code used left-closed bins while its grids used right-closed
ones; here both sides call this one function.
"""

from __future__ import annotations

import torch


def confidence_bin(p_max: torch.Tensor, bins: torch.Tensor | int) -> torch.Tensor:
    """1-based bin index of each p_max (float tensor) for `bins` equal-width bins."""
    n = torch.as_tensor(bins, device=p_max.device)
    scaled = torch.ceil(p_max.to(torch.float64) * n.to(torch.float64)).to(torch.int64)
    return torch.minimum(torch.clamp(scaled, min=1), n.to(torch.int64))
