"Pure annealing shapes and schedule builders: `pos` in [0, 1] → value. No `Learner`, no torch state."
from __future__ import annotations
import math
from bisect import bisect_right
import numpy as np
from fastai.callback.schedule import sched_lin, sched_cos, sched_exp  # reused: identical formulas keep fastai parity
from ._checks import (INT_MAX, check_annealer, check_int, check_integral, check_float, check_pct, check_lrs, check_moms, check_bool,
                      check_choice)

__all__ = ['sched_sqrt', 'sched_poly', 'ANNEALS', 'WARMUPS', 'get_anneal', 'Phases', 'cos_anneal_scheds',
           'sgdr_n_epoch', 'sgdr_cycles', 'sgdr_anneal_scheds', 'flat_anneal_scheds', 'cooldown_scheds',
           'CYCLIC_MODES', 'step_decay_scheds', 'time_decay_scheds', 'cyclic_scheds']

# ---------------------------------------------------------------- shapes
def sched_sqrt(start:float, end:float, pos:float) -> float:
    "1-sqrt cooldown from `start` to `end` (Hägele et al. 2024, arXiv 2405.18392)"
    return end + (start-end) * (1 - math.sqrt(pos))

def sched_poly(start:float, end:float, pos:float, power:float=2.) -> float:
    "Polynomial decay of `power` from `start` to `end`: `end + (start-end)*(1-pos)**power` (transformers' convention)"
    return end + (start-end) * (1-pos) ** power

ANNEALS = {'cos': sched_cos, 'lin': sched_lin, 'exp': sched_exp, 'sqrt': sched_sqrt, 'poly': sched_poly}
WARMUPS = {'lin': sched_lin, 'cos': sched_cos}

def get_anneal(anneal:str|callable, name:str='anneal', names:dict=ANNEALS) -> callable:
    "Resolve `anneal` (a name in `names` or any annealer `f(start, end, pos)`) to a function, or raise naming `name`"
    if not isinstance(anneal, str): return check_annealer(name, anneal, names)
    if anneal in names: return names[anneal]
    raise ValueError(f"{name} must be one of {', '.join(map(repr, names))} or a function f(start, end, pos), got {anneal!r}")

# ---------------------------------------------------------------- phase combiner
class Phases:
    "Piecewise schedule: phase `i` anneals `fs[i]` from `starts[i]` to `ends[i]` between positions `bounds[i]` and `bounds[i+1]`"
    def __init__(self, bounds:list, fs:list, starts:list, ends:list):
        # Boundaries, not widths: builders pass exact positions such as `epoch/n_epoch`, the very float fastai's
        # `pct_train` takes at an epoch start, so a restart lands on its first batch (a cumsum of widths drifts by an ulp).
        if not len(fs) == len(starts) == len(ends):
            raise ValueError(f"fs, starts and ends must hold one entry per phase, got {len(fs)}, {len(starts)} and {len(ends)} entries")
        fs = [get_anneal(f, f"fs[{i}]") for i,f in enumerate(fs)]  # a name ('cos') or an annealer f(start, end, pos)
        b = [check_float(f"bounds[{i}]", v, 0., 1., lo_open=False, hi_open=False) for i,v in enumerate(bounds)]
        if len(b) != len(fs)+1 or b[0] != 0 or b[-1] != 1 or any(x > y for x,y in zip(b, b[1:])):
            raise ValueError(f"bounds must rise from 0 to 1 with one more entry than fs ({len(fs)+1}), got {bounds!r}")
        keep = [i for i in range(len(fs)) if b[i+1] > b[i]]  # zero-length phases never run
        self.fs,self.starts,self.ends = [fs[i] for i in keep],[starts[i] for i in keep],[ends[i] for i in keep]
        self.lo,self.width = tuple(b[i] for i in keep),tuple(b[i+1]-b[i] for i in keep)
        self.n = len(keep)

    @classmethod
    def from_pcts(cls, pcts, fs, starts, ends):
        "`Phases` from each phase's share of training, as fastai's `combine_scheds` (`pcts` must sum to 1 within 1e-9)"
        pcts = [check_float(f"pcts[{i}]", v, 0., 1., lo_open=False, hi_open=False) for i,v in enumerate(pcts)]
        if len(pcts) != len(fs): raise ValueError(f"pcts must hold one share per phase ({len(fs)}, as fs), got {len(pcts)}")
        if abs(math.fsum(pcts) - 1) > 1e-9: raise ValueError(f"pcts must sum to 1 (within 1e-9), got {math.fsum(pcts)!r}")
        return cls([0.] + [min(math.fsum(pcts[:i+1]), 1.) for i in range(len(pcts)-1)] + [1.], fs, starts, ends)

    def __call__(self, pos:float):
        i = bisect_right(self.lo, pos, 1, self.n) - 1  # a join belongs to the phase it starts
        p = (pos - self.lo[i]) / self.width[i]
        if p <= 0: return self.starts[i]
        if p >= 1: return self.ends[i]
        return self.fs[i](self.starts[i], self.ends[i], p)

    def __repr__(self): return f"Phases(lo={self.lo}, fs={[getattr(f, '__name__', f) for f in self.fs]})"

def _phase_list(*phases):
    "`Phases` from `(upto, f, start, end)` tuples: each phase runs from the previous one's `upto` (0 for the first)"
    ups = [0.] + [p[0] for p in phases[:-1]] + [1.]
    return Phases(ups, *list(zip(*phases))[1:])

def _floor(lr, div_final):
    "Final value `lr/div_final`; `div_final=inf` anneals to 0 (torch's `eta_min=0`)"
    return lr * 0. if math.isinf(div_final) else lr / div_final

def _check_common(lr_max, div_final, pct_warmup, div_warmup, warmup, anneal, lr_name:str='lr_max'):
    res = (check_lrs(lr_name, lr_max), check_float('div_final', div_final, inf_ok=True), check_pct('pct_warmup', pct_warmup),
           check_float('div_warmup', div_warmup, inf_ok=True), get_anneal(warmup, 'warmup', WARMUPS), get_anneal(anneal))
    if res[5] is sched_exp and math.isinf(res[1]):  # start*(0/start)**pos is 0 from the first step on: a silent lr of 0
        raise ValueError("div_final must be finite with anneal='exp' (an exponential never reaches 0), got inf")
    return res

# ---------------------------------------------------------------- builders, one per fit variant
def cos_anneal_scheds(
    lr_max:float|np.ndarray,  # Peak learning rate; one per param group as an array (the fit: a slice or list; `learn.lr` if None)
    div_final:float=1e5,     # Final lr is `lr_max/div_final`, per group (inf: anneal to 0)
    pct_warmup:float=0.,     # Fraction of training spent warming up to `lr_max`
    div_warmup:float=25.,    # Warmup starts at `lr_max/div_warmup` (inf: from 0)
    warmup:str|callable='lin',  # Warmup shape: 'lin' | 'cos' | f(start, end, pos)
    anneal:str|callable='cos',  # Anneal shape: 'cos' | 'lin' | 'exp' | 'sqrt' | 'poly' | f(start, end, pos)
    moms:tuple=None,         # `(hi, lo, hi)`: momentum mirrors the lr, lowest at the peak; None leaves it alone
) -> dict:
    ("Schedules for `Learner.fit_cos_anneal`: optional warmup then one anneal from `lr_max` to `lr_max/div_final` (Loshchilov & Hutter, "
     "arXiv 1608.03983)")
    lr_max,div_final,pct_warmup,div_warmup,fw,fa = _check_common(lr_max, div_final, pct_warmup, div_warmup, warmup, anneal)
    lr_lo,lr_end = _floor(lr_max, div_warmup),_floor(lr_max, div_final)
    scheds = {'lr': _phase_list((pct_warmup, fw, lr_lo, lr_max), (1., fa, lr_max, lr_end))}
    if moms is not None:
        hi,lo,end = check_moms('moms', moms)
        if fa is sched_exp and lo == 0:  # lo*(end/lo)**pos
            raise ValueError("moms[1] must be in (0, 1) with anneal='exp' (an exponential cannot start from 0), got 0.0")
        scheds['mom'] = _phase_list((pct_warmup, fw, hi, lo), (1., fa, lo, end))
    return scheds

def _cycle_ends(n_cycles:int, cycle_len:int, cycle_mult:float) -> list:
    ("Epochs at the end of each cycle, `math.fsum(cycle_len*cycle_mult**j for j <= i)` for every `i` in one pass (Shewchuk's exact "
     "partials, as `fsum` keeps them): the same floats as a `fsum` per cycle, in linear time")
    partials,res = [],[]
    for i in range(n_cycles):
        x,k = float(cycle_len * cycle_mult**i),0  # each term a float, as `fsum` converts it
        for y in partials:
            if abs(x) < abs(y): x,y = y,x
            hi = x + y
            lo = y - (hi - x)
            if lo: partials[k] = lo; k += 1
            x = hi
        partials[k:] = [x]
        res.append(math.fsum(partials))
    return res

def sgdr_n_epoch(n_cycles:int, cycle_len:int, cycle_mult:float=2) -> int:
    "Total epochs of `n_cycles` warm-restart cycles, cycle `i` lasting `cycle_len*cycle_mult**i` epochs"
    n_cycles,cycle_len = check_int('n_cycles', n_cycles),check_int('cycle_len', cycle_len)
    cycle_mult = check_float('cycle_mult', cycle_mult, 1., lo_open=False)
    try:  # equal cycles: an exact product (10**9 cycles in no time); else a geometric bound first, then the exact sum
        if cycle_mult == 1: total = cycle_len * n_cycles
        else:
            est = cycle_len * (cycle_mult**n_cycles - 1) / (cycle_mult - 1)
            total = est if est > 2*INT_MAX else math.fsum(cycle_len * cycle_mult**i for i in range(n_cycles))
    except OverflowError: total = math.inf  # cycle_mult**i beyond the float range
    if total > INT_MAX:
        raise ValueError(f"cycle_len*sum(cycle_mult**i for i < n_cycles) must be at most 2**53 epochs, got {total:g} "
                         f"(n_cycles={n_cycles}, cycle_len={cycle_len}, cycle_mult={cycle_mult})")
    if abs(total - round(total)) > 1e-9:
        raise ValueError(f"cycle_len*sum(cycle_mult**i for i < n_cycles) must be a whole number of epochs, got {total!r} "
                         f"(n_cycles={n_cycles}, cycle_len={cycle_len}, cycle_mult={cycle_mult})")
    return int(round(total))

def sgdr_cycles(n_epoch:int,  # The epoch budget to fill
) -> tuple:
    ("`(n_cycles, cycle_len)` of SGDR with `cycle_mult=2` filling exactly `n_epoch` epochs with the most cycles (30 -> 4 cycles: 2, 4, 8,"
     " 16)")
    n_epoch = check_int('n_epoch', n_epoch)
    return max((n, n_epoch//(2**n-1)) for n in range(1, n_epoch.bit_length()+1) if n_epoch % (2**n-1) == 0)

def sgdr_anneal_scheds(n_cycles:int,  # Number of cycles (restarts + 1)
    cycle_len:int,           # Epochs in the first cycle
    lr_max:float|np.ndarray, # Peak lr of the first cycle; one per param group as an array (the fit: a slice or list; `learn.lr` if None)
    cycle_mult:float=2,      # Cycle `i` lasts `cycle_len*cycle_mult**i` epochs (1: equal cycles)
    cycle_decay:float=1.,    # Cycle `i` peaks at `lr_max*cycle_decay**i`
    div_final:float=1e5,     # Every cycle ends at `lr_max/div_final`, per group (timm's `lr_min` is one floor for all groups)
    pct_warmup:float=0.,     # Fraction of all training spent warming up, a prefix of the first cycle
    div_warmup:float=25.,    # Warmup starts at `lr_max/div_warmup` (inf: from 0)
    warmup:str|callable='lin',  # Warmup shape
    anneal:str|callable='cos',  # Anneal shape of every cycle
) -> dict:
    "Schedules for `Learner.fit_sgdr_anneal`: warm restarts with growing cycles and decaying peaks (SGDR, arXiv 1608.03983)"
    n_epoch = sgdr_n_epoch(n_cycles, cycle_len, cycle_mult)
    cycle_decay = check_float('cycle_decay', cycle_decay)
    try: cycle_decay**(int(n_cycles)-1)
    except OverflowError:  # the last cycle's peak, lr_max*cycle_decay**(n_cycles-1), beyond the float range
        raise ValueError(f"cycle_decay**(n_cycles-1) must be a finite number, got cycle_decay={cycle_decay!r}, "
                         f"n_cycles={n_cycles}") from None
    lr_max,div_final,pct_warmup,div_warmup,fw,fa = _check_common(lr_max, div_final, pct_warmup, div_warmup, warmup, anneal)
    # epoch/n_epoch, exactly as fastai's pct_train
    ends = [e / n_epoch for e in _cycle_ends(int(n_cycles), cycle_len, cycle_mult)]
    if pct_warmup >= ends[0]:
        raise ValueError(f"pct_warmup must be smaller than the first cycle's share of training ({ends[0]:g}), got {pct_warmup!r}")
    lr_end = _floor(lr_max, div_final)
    phases = [(pct_warmup, fw, _floor(lr_max, div_warmup), lr_max), (ends[0], fa, lr_max, lr_end)]
    phases += [(up, fa, lr_max*cycle_decay**i, lr_end) for i,up in enumerate(ends) if i > 0]
    return {'lr': _phase_list(*phases)}

def flat_anneal_scheds(
    lr:float|np.ndarray,     # Stable learning rate; one per param group as an array (the fit: a slice or list; `learn.lr` if None)
    div_final:float=1e5,     # Final lr is `lr/div_final` (inf: decay to 0)
    pct_start:float=0.75,    # Fraction of training before the decay starts (warmup included); 1: no decay (cool down later)
    pct_warmup:float=0.,     # Fraction of training spent warming up to `lr`
    anneal:str|callable='cos',  # Decay shape: 'cos' | 'lin' | 'sqrt' (1-sqrt cooldown) | 'exp' | 'poly' | f
    warmup:str|callable='lin',  # Warmup shape
    div_warmup:float=None,   # Warmup starts at `lr/div_warmup`; None: at `lr/div_final`, as transformers' WSD
) -> dict:
    "Schedules for `Learner.fit_flat_anneal`: warmup, stable, decay (WSD; Hägele et al., arXiv 2405.18392)"
    pct_start = check_float('pct_start', pct_start, 0., 1., lo_open=False, hi_open=False)
    lr,div_final,pct_warmup,div_warmup,fw,fa = _check_common(lr, div_final, pct_warmup, div_final if div_warmup is None else div_warmup,
                                                             warmup, anneal, 'lr')
    if pct_warmup > pct_start:
        raise ValueError(f"pct_warmup must be <= pct_start ({pct_start!r}): the warmup happens before the decay, got {pct_warmup!r}")
    return {'lr': _phase_list((pct_warmup, fw, _floor(lr, div_warmup), lr), (pct_start, sched_lin, lr, lr),
                              (1., fa, lr, _floor(lr, div_final)))}

def cooldown_scheds(
    lr:float|np.ndarray,     # Where the decay starts; one per param group as an array (the fit: the lr each group holds now if None)
    div_final:float=1e5,     # Final lr is `lr/div_final` (inf: decay to 0)
    anneal:str|callable='sqrt',  # Decay shape: 'sqrt' (1-sqrt cooldown) | 'cos' | 'lin' | 'exp' | 'poly' | f
) -> dict:
    ("Schedules for `Learner.fit_cooldown`: one decay from `lr` to `lr/div_final`, the last phase of `flat_anneal_scheds` on its own "
     "(Hägele et al., arXiv 2405.18392: cooldowns branched from a stable run's checkpoints serve many budgets)")
    lr,div_final,_,_,_,fa = _check_common(lr, div_final, 0., 1., 'lin', anneal, 'lr')
    return {'lr': _phase_list((1., fa, lr, _floor(lr, div_final)))}

# ---------------------------------------------------------------- classic schedules, counting optimizer steps or epochs
class _Steps:
    "Base of the schedules that count steps: `step(pos)` is the optimizer step `round(pos*n_epoch*n_batch)` at fastai's `pct_train`"
    def __init__(self, n_epoch:int, n_batch:int): self.n_epoch,self.n_batch = check_int('n_epoch', n_epoch),check_int('n_batch', n_batch)
    # round, not int: `pct_train` accumulates 1/total per batch and can fall an ulp short of a whole step
    def step(self, pos:float) -> int: return int(round(pos * self.n_epoch * self.n_batch))
    def __repr__(self):
        args = ', '.join(f"{k}={v!r}" for k,v in vars(self).items() if not k.startswith('_'))
        return f"{type(self).__name__}({args})"

class StepDecay(_Steps):
    "`lr` times `gamma` at every `step_size`-th epoch, or at each of `milestones` (epochs), constant within an epoch"
    def __init__(self, lr, n_epoch, n_batch, gamma, step_size=None, milestones=()):
        super().__init__(n_epoch, n_batch)
        self.lr,self.gamma,self.step_size,self.milestones = lr,gamma,step_size,tuple(milestones)
    def __call__(self, pos:float):
        epoch = self.step(pos) // self.n_batch
        return self.lr * self.gamma ** (epoch // self.step_size if self.step_size else bisect_right(self.milestones, epoch))

class TimeDecay(_Steps):
    "`lr/(1 + decay_rate*t/decay_steps)` at optimizer step `t`, the ratio floored with `staircase` (Keras' `InverseTimeDecay`)"
    def __init__(self, lr, n_epoch, n_batch, decay_rate, decay_steps, staircase=False):
        super().__init__(n_epoch, n_batch)
        self.lr,self.decay_rate,self.decay_steps,self.staircase = lr,decay_rate,decay_steps,staircase
    def __call__(self, pos:float):
        r = self.step(pos) / self.decay_steps
        return self.lr / (1 + self.decay_rate * (math.floor(r) if self.staircase else r))

CYCLIC_MODES = ('triangular', 'triangular2', 'exp_range')

class Cyclic(_Steps):
    ("From `start` towards `peak` in `step_size_up` steps and back in `step_size_down`, the amplitude scaled by `mode` (Smith, "
     "arXiv 1506.01186)")
    def __init__(self, start, peak, n_epoch, n_batch, step_size_up, step_size_down, mode='triangular', gamma=1.):
        super().__init__(n_epoch, n_batch)
        self.start,self.peak,self.step_size_up,self.step_size_down,self.mode,self.gamma = start,peak,step_size_up,step_size_down,mode,gamma
    def __call__(self, pos:float):
        t,size = self.step(pos),self.step_size_up + self.step_size_down
        cycle,x = 1 + t // size,(t % size) / size
        ratio = self.step_size_up / size
        frac = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        scale = 1. if self.mode == 'triangular' else 1 / 2. ** (cycle - 1) if self.mode == 'triangular2' else self.gamma ** t
        return self.start + (self.peak - self.start) * frac * scale

def _check_gamma(gamma) -> float: return check_float('gamma', gamma, 0., 1., hi_open=False)

def step_decay_scheds(n_epoch:int,  # Epochs of training: the default milestones, and which `milestones` can happen
    n_batch:int,             # Training batches per epoch (the fit: `len(learn.dls.train)`)
    lr:float|np.ndarray,     # Initial learning rate; one per param group as an array (the fit: a slice or list; `learn.lr` if None)
    step_size:int=None,      # Multiply by `gamma` every `step_size` epochs (torch `StepLR`); give it or `milestones`, not both
    milestones:list=None,    # Multiply by `gamma` at these epochs, rising in [1, n_epoch) (torch `MultiStepLR`); both None: at 50% and 75%
    gamma:float=0.1,         # Factor at each step, in (0, 1]
) -> dict:
    ("Schedules for `Learner.fit_step_decay`: step decay once per epoch, torch's `StepLR` (`step_size`) or `MultiStepLR` (`milestones`; "
     "by default at `n_epoch//2` and `3*n_epoch//4`, the ResNet convention)")
    n_epoch,lr,gamma = check_int('n_epoch', n_epoch),check_lrs('lr', lr),_check_gamma(gamma)
    if step_size is not None and milestones is not None:
        raise ValueError(f"give step_size or milestones, not both (got step_size={step_size!r}, milestones={milestones!r})")
    if step_size is not None: return {'lr': StepDecay(lr, n_epoch, n_batch, gamma, step_size=check_int('step_size', step_size))}
    if milestones is None: milestones = sorted({m for m in (n_epoch//2, 3*n_epoch//4) if m >= 1})
    if not isinstance(milestones, (list, tuple)):
        raise TypeError(f"milestones must be a list of epochs rising in [1, n_epoch={n_epoch}), got {milestones!r}")
    ms = [check_integral(f"milestones[{i}]", m) for i,m in enumerate(milestones)]
    if any(not 1 <= m < n_epoch for m in ms) or any(a >= b for a,b in zip(ms, ms[1:])):
        raise ValueError(f"milestones must be epochs rising strictly in [1, n_epoch={n_epoch}), got {milestones!r}")
    return {'lr': StepDecay(lr, n_epoch, n_batch, gamma, milestones=ms)}

def time_decay_scheds(n_epoch:int,  # Epochs of training
    n_batch:int,             # Training batches per epoch (the fit: `len(learn.dls.train)`)
    lr:float|np.ndarray,     # Initial learning rate; one per param group as an array (the fit: a slice or list; `learn.lr` if None)
    decay_rate:float=1.,     # The lr is `lr/(1+decay_rate)` after `decay_steps` steps; >= 0 (0: constant)
    decay_steps:int=None,    # Optimizer steps (batches) per unit of decay; None: one epoch (`n_batch`)
    staircase:bool=False,    # Floor `t/decay_steps`: the lr changes once every `decay_steps` steps
) -> dict:
    "Schedules for `Learner.fit_time_decay`: `lr/(1+decay_rate*t/decay_steps)` at optimizer step `t`, Keras' `InverseTimeDecay`"
    n_epoch,n_batch,lr = check_int('n_epoch', n_epoch),check_int('n_batch', n_batch),check_lrs('lr', lr)
    decay_rate = check_float('decay_rate', decay_rate, 0., lo_open=False)
    decay_steps = n_batch if decay_steps is None else check_int('decay_steps', decay_steps)
    return {'lr': TimeDecay(lr, n_epoch, n_batch, decay_rate, decay_steps, check_bool('staircase', staircase))}

def cyclic_scheds(n_epoch:int,  # Epochs of training
    n_batch:int,             # Training batches per epoch (the fit: `len(learn.dls.train)`)
    max_lr:float|np.ndarray, # Top of the cycle; one per param group as an array (the fit: a slice or list; `learn.lr` if None)
    base_lr:float|list=None, # Bottom of the cycle, where it starts, below `max_lr` (one per group as a list); None: `max_lr/4`
    step_size_up:int=2000,   # Optimizer steps (batches) from `base_lr` up to `max_lr`
    step_size_down:int=None, # Steps back down to `base_lr`; None: `step_size_up`
    mode:str='triangular',   # 'triangular' | 'triangular2' (amplitude halved each cycle) | 'exp_range' (scaled by `gamma**t`)
    gamma:float=1.,          # Amplitude factor per step of 'exp_range', in (0, 1]
    cycle_momentum:bool=True,  # Cycle momentum (fastai's `mom`) inversely, from `max_momentum` down to `base_momentum` at `max_lr`
    base_momentum:float=0.8, # Momentum at `max_lr`
    max_momentum:float=0.9,  # Momentum at `base_lr`
) -> dict:
    "Schedules for `Learner.fit_cyclic`: cyclical learning rates (Smith, arXiv 1506.01186) as torch's `CyclicLR`, counted in batches"
    n_epoch,n_batch,max_lr = check_int('n_epoch', n_epoch),check_int('n_batch', n_batch),check_lrs('max_lr', max_lr)
    base_lr = max_lr / 4 if base_lr is None else check_lrs('base_lr', base_lr)
    if np.ndim(base_lr) and np.ndim(max_lr) and np.size(base_lr) != np.size(max_lr):
        raise ValueError(f"base_lr has {np.size(base_lr)} values but max_lr has {np.size(max_lr)}: give one value, or one per group")
    if np.any(np.asarray(base_lr) >= np.asarray(max_lr)):
        raise ValueError(f"base_lr must be below max_lr in every group, got base_lr={base_lr!r}, max_lr={max_lr!r}")
    up = check_int('step_size_up', step_size_up)
    down = up if step_size_down is None else check_int('step_size_down', step_size_down)
    mode,gamma = check_choice('mode', mode, CYCLIC_MODES),_check_gamma(gamma)
    scheds = {'lr': Cyclic(base_lr, max_lr, n_epoch, n_batch, up, down, mode, gamma)}
    if check_bool('cycle_momentum', cycle_momentum):
        lo,hi = check_pct('base_momentum', base_momentum),check_pct('max_momentum', max_momentum)
        scheds['mom'] = Cyclic(hi, lo, n_epoch, n_batch, up, down, mode, gamma)
    return scheds
