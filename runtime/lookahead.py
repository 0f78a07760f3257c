"""airbench's lookahead: every few steps the weights are pulled to a moving average of themselves.

Every ``every`` optimizer steps, the average moves towards the live weights (``ema += (1 - d) * (w - ema)``)
and the live weights are set to it, with a decay ``d = 0.95**every * progress**3`` that grows from 0
(the average just follows) to about 0.77 at the end of the schedule's phase; on the phase's last step
the weights become the average (unless the phase is shorter than ``every``: then there is none). Every floating-point tensor of the state dict takes part, BatchNorm's
running statistics too, as in airbench94. The decay comes from the step count alone, so a step costs
two fused device ops and no host sync; the average is the only state a resume needs.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

BASE = 0.95  # decay per step at the end of a phase (airbench94's alpha_schedule: 0.95**5 at every = 5)


class Lookahead:
    def __init__(self, model: nn.Module, every: int, position: Callable[[int], tuple[int, int]]):
        """``position(step)``: (steps done in the schedule's phase, its length), see schedule.phase_steps."""
        state = model.state_dict(keep_vars=True)
        self.names = [k for k, v in state.items() if v.is_floating_point()]
        self.live = [state[k].data for k in self.names]  # the model's own storage, written in place
        self.ema = [t.detach().clone() for t in self.live]
        self.every, self.position = every, position

    @torch.no_grad()
    def step(self, step: int) -> None:
        """After optimizer step number ``step`` of the run (1-based)."""
        done, total = self.position(step)
        if done % self.every == 0:
            decay = BASE ** self.every * (done / total) ** 3
            torch._foreach_lerp_(self.ema, self.live, 1 - decay)
            torch._foreach_copy_(self.live, self.ema)
        elif done == total and done > self.every:  # the phase ends between two updates: the weights are the average's
            torch._foreach_copy_(self.live, self.ema)
        # A phase shorter than ``every`` (a 1-epoch run on a small set) took no average: the average
        # would be the phase's starting weights, so its training stays instead.

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.ema))

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, t in zip(self.names, self.ema):
                t.copy_(state[name])
