"Thin `Learner` patches: validate, build the schedules of `schedules.py`, hand them to fastai's `ParamScheduler`, fit."
from __future__ import annotations
import numpy as np
from fastcore.basics import patch
from fastcore.foundation import L
from fastcore.meta import delegates
from fastai.learner import Learner, SkipToEpoch
from fastai.callback.core import Callback
from fastai.callback.schedule import ParamScheduler
from ._groups import n_groups, group_lrs
from .schedules import (check_int, check_float, check_bool, cos_anneal_scheds, sgdr_n_epoch, sgdr_anneal_scheds,
                        flat_anneal_scheds)

__all__ = ['ReplayShuffles']  # and the `Learner` patches, applied on import

def _group_lrs(learn, lr, name:str) -> np.ndarray:
    "One lr per param group from a float, a slice (as `Optimizer.set_hyper`) or a list; `learn.lr` if None"
    n = n_groups(learn)
    v = group_lrs(name, learn.lr if lr is None else lr, n)
    return np.full(n, v) if np.ndim(v) == 0 else np.array(v, dtype=np.float64)

def _check_cbs(cbs):
    "`cbs` as a list of `Callback`s (instances or classes, as `Learner.add_cbs` takes them), or raise naming `cbs`"
    cbs = L(cbs)
    bad = [c for c in cbs if not (isinstance(c, Callback) or (isinstance(c, type) and issubclass(c, Callback)))]
    if bad: raise TypeError(f"cbs must be fastai Callbacks (instances or classes), got {bad[0]!r}")
    return cbs

def _prepare(learn, n_epoch, lr, build, wd=None, start_epoch=0, lr_name='lr_max', cbs=None, reset_opt=False) -> dict:
    "Validate one fit call with no side effect; returns what `_launch` needs"
    n_epoch = check_int('n_epoch', n_epoch)
    start_epoch = check_int('start_epoch', start_epoch, 0)
    if start_epoch >= n_epoch: raise ValueError(f"start_epoch must be in [0, n_epoch={n_epoch}), got {start_epoch}")
    if wd is not None: wd = check_float('wd', wd, 0., lo_open=False)
    lrs = _group_lrs(learn, lr, lr_name)
    return dict(n_epoch=n_epoch, scheds=build(lrs), wd=wd, start_epoch=start_epoch, cbs=_check_cbs(cbs),
                reset_opt=check_bool('reset_opt', reset_opt))

class _ParamScheduler(ParamScheduler):
    "fastai's `ParamScheduler`, answering only the 4 events it handles: fastai's dispatch of the ~10 others per batch cost 2-3% of a small model's epoch"
    _handled = frozenset(('before_fit', 'before_batch', 'after_batch', 'after_fit'))
    def __call__(self, event_name): return super().__call__(event_name) if event_name in self._handled else None
    # the same work as fastai's, reaching the learner directly: `self.pct_train`/`self.opt` go through `GetAttr` every batch
    def _update_val(self, pct):
        for n,f in self.scheds.items(): self.learn.opt.set_hyper(n, f(pct))
    def before_batch(self): self._update_val(self.learn.pct_train)
    def after_batch(self):
        h = self.learn.opt.hypers[-1]
        for p,rec in self.hps.items(): rec.append(h[p])

class ReplayShuffles(Callback):
    "Draw the training shuffles of the epochs `SkipToEpoch` skips, so a resumed run sees the batches the uninterrupted run saw"
    order = SkipToEpoch.order - 1  # before SkipToEpoch cancels the epoch
    def __init__(self, start_epoch:int): self.start_epoch = start_epoch
    def before_epoch(self):
        if self.epoch < self.start_epoch: _replay_shuffles(self.dls.train, 1)

def _replay_shuffles(dl, n_epoch:int):
    "Use `dl.rng` as `n_epoch` epochs of `DataLoader.__iter__` would: randomize, then draw the shuffled indices"
    while vars(dl).get('dl') is not None: dl = dl.dl  # a `DistributedDL` shuffles with its inner loader's `rng` (and has no `shuffle`)
    if not getattr(dl, 'shuffle', False): return
    for _ in range(n_epoch): dl.randomize(); dl.get_idxs()

def _launch(learn, n_epoch, scheds, wd, start_epoch, cbs=None, reset_opt=False):
    "The setup every variant shares: the scheduler, and `fit` with `start_epoch` (which fastai's `fit_flat_cos` drops)"
    # No `create_opt`/`set_hyper('lr', ...)` here: `fit` creates a missing optimizer and resets every lr to `learn.lr`
    # before the first batch, where the scheduler sets the scheduled value.
    cbs = _ParamScheduler(scheds) + L(cbs) + (L(ReplayShuffles(start_epoch)) if start_epoch else L())
    learn.fit(n_epoch, cbs=cbs, reset_opt=reset_opt, wd=wd, start_epoch=start_epoch)

@patch
def fit_cos_anneal(self:Learner,
    n_epoch:int,              # Number of epochs
    lr_max:float|slice|list=None,  # Peak learning rate (per group with a slice or list); `self.lr` if None
    div_final:float=1e5,      # Final lr is `lr_max/div_final` (inf: anneal to 0)
    pct_warmup:float=0.,      # Fraction of training spent warming up to `lr_max`
    div_warmup:float=25.,     # Warmup starts at `lr_max/div_warmup` (inf: from 0)
    warmup:str|callable='lin',   # Warmup shape: 'lin' | 'cos' | f(start, end, pos)
    anneal:str|callable='cos',   # Anneal shape: 'cos' | 'lin' | 'exp' | 'sqrt' | 'poly' | f(start, end, pos)
    moms:tuple=None,          # `(hi, lo, hi)`: momentum mirrors the lr, lowest at the peak; None leaves it alone
    wd:float=None,            # Weight decay; `self.wd` if None
    cbs=None,                 # Extra callbacks for this fit
    reset_opt:bool=False,     # Reset the optimizer before fitting
    start_epoch:int=0,        # Resume at this epoch (the lr sequence continues exactly)
):
    "Fit `self.model` for `n_epoch` with optional warmup then cosine annealing to `lr_max/div_final` (SGDR without restarts, arXiv 1608.03983)"
    build = lambda lrs: cos_anneal_scheds(lrs, div_final, pct_warmup, div_warmup, warmup, anneal, moms)
    _launch(self, **_prepare(self, n_epoch, lr_max, build, wd, start_epoch, cbs=cbs, reset_opt=reset_opt))

@patch
def fit_sgdr_anneal(self:Learner,
    n_cycles:int,             # Number of cycles
    cycle_len:int,            # Epochs in the first cycle
    lr_max:float|slice|list=None,  # Peak lr of the first cycle (per group with a slice or list); `self.lr` if None
    cycle_mult:float=2,       # Cycle `i` lasts `cycle_len*cycle_mult**i` epochs (1: equal cycles)
    cycle_decay:float=1.,     # Cycle `i` peaks at `lr_max*cycle_decay**i`
    div_final:float=1e5,      # Every cycle ends at `lr_max/div_final`
    pct_warmup:float=0.,      # Fraction of all training spent warming up, a prefix of the first cycle
    div_warmup:float=25.,     # Warmup starts at `lr_max/div_warmup`
    warmup:str|callable='lin',   # Warmup shape
    anneal:str|callable='cos',   # Anneal shape of every cycle
    wd:float=None,            # Weight decay; `self.wd` if None
    cbs=None,                 # Extra callbacks for this fit
    reset_opt:bool=False,     # Reset the optimizer before fitting
    start_epoch:int=0,        # Resume at this epoch
):
    "Fit `self.model` with `n_cycles` warm restarts, growing by `cycle_mult` and decaying by `cycle_decay` (SGDR, arXiv 1608.03983)"
    n_epoch = sgdr_n_epoch(n_cycles, cycle_len, cycle_mult)
    build = lambda lrs: sgdr_anneal_scheds(n_cycles, cycle_len, lrs, cycle_mult, cycle_decay, div_final, pct_warmup, div_warmup, warmup, anneal)
    _launch(self, **_prepare(self, n_epoch, lr_max, build, wd, start_epoch, cbs=cbs, reset_opt=reset_opt))

@patch
def fit_flat_anneal(self:Learner,
    n_epoch:int,              # Number of epochs
    lr:float|slice|list=None, # Stable learning rate (per group with a slice or list); `self.lr` if None
    div_final:float=1e5,      # Final lr is `lr/div_final` (inf: decay to 0)
    pct_start:float=0.75,     # Fraction of training before the decay starts (warmup included)
    pct_warmup:float=0.,      # Fraction of training spent warming up to `lr`
    anneal:str|callable='cos',   # Decay shape: 'cos' | 'lin' | 'sqrt' (1-sqrt cooldown) | 'exp' | 'poly' | f
    warmup:str|callable='lin',   # Warmup shape
    div_warmup:float=None,    # Warmup starts at `lr/div_warmup`; None: at `lr/div_final`, as transformers' WSD
    wd:float=None,            # Weight decay; `self.wd` if None
    cbs=None,                 # Extra callbacks for this fit
    reset_opt:bool=False,     # Reset the optimizer before fitting
    start_epoch:int=0,        # Resume at this epoch (fastai's `fit_flat_cos` ignores it; this one doesn't)
):
    "Fit `self.model` with warmup, a stable `lr`, then a decay from `pct_start` (WSD, Hägele et al., arXiv 2405.18392)"
    build = lambda lrs: flat_anneal_scheds(lrs, div_final, pct_start, pct_warmup, anneal, warmup, div_warmup)
    _launch(self, **_prepare(self, n_epoch, lr, build, wd, start_epoch, 'lr', cbs, reset_opt))

@patch
@delegates(Learner.fit_cos_anneal, but=['n_epoch', 'lr_max', 'pct_warmup', 'div_final', 'anneal'])
def fine_tune_anneal(self:Learner,
    epochs:int,               # Epochs of the unfrozen phase
    base_lr:float=2e-3,       # Peak lr of the frozen phase; the unfrozen phase peaks at `base_lr/2` on the last group
    freeze_epochs:int=1,      # Epochs of the frozen phase (0: skip it)
    lr_mult:float=100,        # Discriminative lrs of the unfrozen phase span `base_lr/2/lr_mult` to `base_lr/2`
    pct_warmup:float=0.1,     # Fraction of each phase spent warming up
    div_final:float=1e5,      # Each phase ends at its peak/`div_final`
    anneal:str|callable='cos',   # Anneal shape of both phases
    **kwargs,
):
    "`Learner.fine_tune` with both phases warmed up and annealed by `fit_cos_anneal` instead of 1cycle; `start_epoch` counts the epochs of both phases"
    unknown = set(kwargs) - {'div_warmup', 'warmup', 'moms', 'wd', 'start_epoch', 'cbs', 'reset_opt'}
    if unknown: raise TypeError(f"fine_tune_anneal got unexpected keyword argument(s) {sorted(unknown)}; it passes on div_warmup, warmup, moms, wd, start_epoch, cbs, reset_opt")
    freeze_epochs = check_int('freeze_epochs', freeze_epochs, 0)
    base_lr,lr_mult = check_float('base_lr', base_lr),check_float('lr_mult', lr_mult, 1., lo_open=False)
    epochs,start = check_int('epochs', epochs),check_int('start_epoch', kwargs.get('start_epoch', 0), 0)
    if start >= freeze_epochs + epochs: raise ValueError(f"start_epoch must be in [0, freeze_epochs+epochs={freeze_epochs+epochs}), got {start}")
    bkw = {k: kwargs[k] for k in ('div_warmup', 'warmup', 'moms') if k in kwargs}
    build = lambda lrs: cos_anneal_scheds(lrs, div_final, pct_warmup, anneal=anneal, **bkw)
    # validate both phases before freezing, so a bad argument leaves the learner untouched
    fkw = dict(wd=kwargs.get('wd'), cbs=kwargs.get('cbs'), reset_opt=kwargs.get('reset_opt', False))
    frozen = _prepare(self, freeze_epochs, slice(base_lr), build, start_epoch=start, **fkw) if start < freeze_epochs else None
    unfrozen = _prepare(self, epochs, slice(base_lr/2/lr_mult, base_lr/2), build, start_epoch=max(0, start-freeze_epochs), **fkw)
    # The uninterrupted run clears the optimizer state at each freeze/unfreeze (`Learner.freeze_to` does); a resumed run
    # clears it only at the transitions it replays, so the state loaded from a checkpoint mid-phase survives.
    if self.opt is None: self.create_opt()
    if frozen: (self.freeze_to if start == 0 else self.opt.freeze_to)(-1); _launch(self, **frozen)
    elif start: _replay_shuffles(self.dls.train, freeze_epochs)  # the frozen phase's epochs, skipped without a fit
    (self.freeze_to if start <= freeze_epochs else self.opt.freeze_to)(0)
    _launch(self, **unfrozen)
