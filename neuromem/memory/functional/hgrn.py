"""Hierarchically gated linear recurrence (Qin et al., NeurIPS 2023, "HGRN").

One HGRU layer, real-valued, on a time-major input x (T, batch, dim):

    f_t = lb + (1 - lb) * sigmoid(x_t W_f)      forget gate with lower bound lb
    c_t = silu(x_t W_c)                          candidate
    h_t = f_t * h_{t-1} + (1 - f_t) * c_t        gated linear recurrence
    o_t = norm(h_t * silu(x_t W_g)) W_o          output gate

The gates depend on x_t only, never on h_{t-1}, so the recurrence is linear in
h and can be evaluated without a per-step Python loop. The lower bounds of a
stack of L layers are a cumulative softmax over the layer axis shifted so the
first layer's bound is 0: lb_l = sum_{k<=l} softmax(P)_k - softmax(P)_0.
They rise with depth by construction, so low layers forget fast (local
features) and high layers hold information for long (global context).

(The paper's recurrence is complex-valued with a learned phase; this is the
real-valued form used by later HGRN implementations.)
"""

from __future__ import annotations

import torch

# Forget gates are clamped from below so that the chunked log-space scan cannot
# overflow: SCAN_CHUNK * log(MIN_FORGET) = 8 * -9.2 = -74 > log(float32 max) = -88.
MIN_FORGET = 1e-4
SCAN_CHUNK = 8


def layer_lower_bounds(bound_logits: torch.Tensor) -> torch.Tensor:
    """bound_logits (layers, dim) -> forget-gate lower bounds (layers, dim) in [0, 1),
    non-decreasing with depth, first layer exactly 0."""
    cumulative = torch.cumsum(torch.softmax(bound_logits, dim=0), dim=0)
    return cumulative - cumulative[:1]


def forget_gate(gate_logits: torch.Tensor, lower_bound: torch.Tensor) -> torch.Tensor:
    """f = lb + (1 - lb) * sigmoid(z), clamped to [MIN_FORGET, 1]."""
    forget = lower_bound + (1.0 - lower_bound) * torch.sigmoid(gate_logits)
    return forget.clamp(min=MIN_FORGET)


def gated_scan_loop(forget: torch.Tensor, drive: torch.Tensor, initial: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: h_t = forget_t * h_{t-1} + drive_t, one step at a time. (T, ...) -> (T, ...)."""
    state = torch.zeros_like(drive[0]) if initial is None else initial
    states = []
    for step in range(drive.shape[0]):
        state = forget[step] * state + drive[step]
        states.append(state)
    return torch.stack(states)


def gated_scan(
    forget: torch.Tensor, drive: torch.Tensor, initial: torch.Tensor | None = None, chunk: int = SCAN_CHUNK
) -> torch.Tensor:
    """h_t = forget_t * h_{t-1} + drive_t for all t, in chunks of `chunk` steps.

    Inside a chunk starting at state h0, with A_t = prod_{s<=t} forget_s:
        h_t = A_t * (h0 + sum_{s<=t} drive_s / A_s)
    computed with a cumulative sum of log forget; only the chunk boundaries
    are sequential. Requires forget >= exp(-74 / chunk) (see MIN_FORGET).
    """
    if forget.shape != drive.shape:
        raise ValueError(f"forget {tuple(forget.shape)} and drive {tuple(drive.shape)} must match")
    state = torch.zeros_like(drive[0]) if initial is None else initial
    log_forget = torch.log(forget)
    chunks = []
    for start in range(0, drive.shape[0], chunk):
        log_decay = torch.cumsum(log_forget[start : start + chunk], dim=0)
        decay = torch.exp(log_decay)
        states = decay * (state + torch.cumsum(drive[start : start + chunk] * torch.exp(-log_decay), dim=0))
        chunks.append(states)
        state = states[-1]
    return torch.cat(chunks)


def hgru_recurrence(
    forget_logits: torch.Tensor,
    candidate_logits: torch.Tensor,
    lower_bound: torch.Tensor,
    initial: torch.Tensor | None = None,
    scan=gated_scan,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The HGRU state sequence from gate pre-activations (T, batch, dim); returns (states, forget gates)."""
    forget = forget_gate(forget_logits, lower_bound)
    candidate = torch.nn.functional.silu(candidate_logits)
    return scan(forget, (1.0 - forget) * candidate, initial), forget
