"""The LR range test with an annealing-shaped sweep, restored in memory (`snapshot.py`): `AnnealLRFinder`,
`Learner.lr_find` (fastai's call and results; `num_it` < 2 refused), crash-free suggestions."""
from __future__ import annotations
import collections, contextvars, math, sys, warnings
import numpy as np
from functools import partial
import torch
import matplotlib.pyplot as plt
from fastcore.basics import patch, store_attr
from fastai.torch_core import tensor, Tensor, num_distrib
from fastai.learner import Learner, Recorder
from fastai.callback.core import CancelFitException, CancelValidException
from fastai.callback.schedule import ParamScheduler, SuggestionMethod, sched_exp, sched_lin, sched_cos
from .schedules import get_anneal, sched_sqrt, sched_poly
from ._checks import check_int, check_float, check_bool, check_lr_range, check_suggest_funcs, finite_from
from ._groups import n_groups as _n_groups, train_batches, agree, agree_len
from .snapshot import LearnerSnapshot, run_all, sigint_held, _csv_loggers_aside, _RecorderKept, _CallbacksKept

__all__ = ['LogSweep', 'SWEEPS', 'DEFAULT_SWEEP', 'LearnerSnapshot', 'AnnealLRFinder', 'even_log_points', 'even_log_sweep', 'suggest_lrs']

# ---------------------------------------------------------------- sweep shapes
class LogSweep:
    "Sweep moving log(lr) from log(`start`) to log(`end`) along annealer `f`'s progress: `start*(end/start)**f(0, 1, pos)`"
    def __init__(self, f:callable): self.f = f  # An annealer f(start, end, pos) such as `sched_cos`: its progress f(0, 1, pos) is used
    def __call__(self, start, end, pos): return sched_exp(start, end, self.f(0., 1., pos))
    def __repr__(self): return f"LogSweep({getattr(self.f, '__name__', self.f)})"

# The range test's vocabulary. 'exp' is fastai's LRFinder (log-linear) and 'lin' Smith's linear range test (arXiv 1506.01186);
# 'cos', 'sqrt' and 'poly' move log(lr), not lr, along the fit shapes: a linear-space cosine from 1e-7 to 10 would spend
# almost every batch above 1e-2. So the sweep's 'cos' is lr(pos) = start*(end/start)**((1-cos(pi*pos))/2).
SWEEPS = {'exp': sched_exp, 'cos': LogSweep(sched_cos), 'lin': sched_lin, 'sqrt': LogSweep(sched_sqrt), 'poly': LogSweep(sched_poly)}
DEFAULT_SWEEP = 'exp'  # the one default of `AnnealLRFinder` and `lr_find`: fastai's sweep, so fastai's suggestions stay bit for bit
# (BENCHMARKS.md, 10 seeds: the resampled 'cos' sweep gives the better valley and steep, 'exp' the better minimum and slide)

class _Sweep:
    "The lr schedule handed to `ParamScheduler`: `f(start, end, pos)`, one value per param group when `start` is a list"
    def __init__(self, f, start, end): store_attr()
    def __call__(self, pos):
        # a user's annealer need not broadcast
        if isinstance(self.start, list): return [self.f(s, e, pos) for s,e in zip(self.start, self.end)]
        return self.f(self.start, self.end, pos)

def _check_sweep(sweep:_Sweep, num_it:int, anneal) -> _Sweep:
    ("`sweep` after trying it at its first and last batch and 255 between (of `num_it`): every lr finite and > 0, or raise naming "
     "`anneal` (a custom annealer)")
    for i in sorted({round(x) for x in np.linspace(0, num_it - 1, min(num_it, 257))}):
        for lr in np.atleast_1d(np.asarray(sweep(i/num_it), dtype=object)).tolist():
            if not finite_from(lr, strict=True):
                raise ValueError(f"anneal={anneal!r} gives the lr {lr!r} at batch {i} of the sweep's {num_it}; a sweep's lrs must be "
                                 "finite and > 0")
    return sweep

# ---------------------------------------------------------------- the callback
class AnnealLRFinder(ParamScheduler):
    ("LR range test sweeping from `start_lr` to `end_lr` along `anneal` over `num_it` batches; stops when the smoothed loss passes "
     "`div_thresh` times its best or is NaN/inf, then restores the learner in memory")
    def __init__(self,
        start_lr:float|list|slice=1e-7,  # First lr of the sweep (one per param group with a list, array or slice)
        end_lr:float|list|slice=10,      # Last lr of the sweep, greater than `start_lr` in every group
        num_it:int=100,                  # Batches in the sweep (fastai silently raises fewer than 6 to 6; this runs what you ask, >= 2)
        stop_div:bool=True,              # Stop on divergence: smoothed loss > `div_thresh` * best, or NaN/inf
        # 'exp' (fastai's) | 'cos' (log(lr) on a half cosine) | 'lin' (Smith's) | 'sqrt' | 'poly' | f(start, end, pos)
        anneal:str|callable=DEFAULT_SWEEP,
        div_thresh:float=4.,             # Divergence threshold (fastai hard-codes 4); inf: stop only on NaN/inf
    ):
        "The sweep's 'cos' is log-space, lr(pos)=start*(end/start)**((1-cos(pi*pos))/2), unlike the fit vocabulary's linear-space 'cos'"
        # `swept`: a sweep started; `raw_losses`: each batch's loss of an uneven sweep (None for fastai's even 'exp': not needed)
        self.__dict__.update(_snapshot=None, _own_snapshot=False, _fresh=False, _at_detach=False, swept=False, raw_losses=None)
        self.start_lr,self.end_lr = check_lr_range(start_lr, end_lr)
        self.num_it,self.stop_div = check_int('num_it', num_it, 2),check_bool('stop_div', stop_div)
        self.anneal = get_anneal(anneal, 'anneal', SWEEPS)
        self.div_thresh = check_float('div_thresh', div_thresh, 1., inf_ok=True)
        slices = isinstance(self.start_lr, slice) or isinstance(self.end_lr, slice)
        # slices need the group count: `before_fit`
        super().__init__({'lr': None if slices else _check_sweep(_Sweep(self.anneal, self.start_lr, self.end_lr), self.num_it, anneal)})

    def _range(self, n): return check_lr_range(self.start_lr, self.end_lr, n)

    # fastai's tracker, `ShowGraphCallback`, W&B and TensorBoard callbacks stand aside during a sweep when the learner
    # has an attribute `lr_finder`: `add_cb` names it after the callback, so this one answers to fastai's name.
    @property
    def name(self): return 'lr_finder'

    # fastai sets `cb.learn` when `fit` adds the callback, before it creates the optimizer and resets its hypers to
    # `learn.lr`/`learn.wd`, and back to None in a `finally` when `fit` ends, however it ends: the places to check the
    # group count and snapshot the learner as it was, and to restore after an interrupt. `Learner(cbs=...)` and `add_cb` set it
    # too, long before a fit: such a callback snapshots in `before_fit`, as fastai's `LRFinder` saves the model there.
    @property
    def learn(self): return self.__dict__.get('_learner')
    @learn.setter
    def learn(self, learn):
        if learn is not None:
            self._range(_n_groups(learn))
            if self._snapshot is None and _in_fit(learn):
                self.__dict__.update(_snapshot=LearnerSnapshot(learn), _own_snapshot=True, _fresh=True, _at_detach=True)
        elif (old := self.learn) is not None:
            inflight = sys.exc_info()[1]  # an error the fit ends on: fastai removes its callbacks in a `finally`
            try: self.restore()
            except BaseException as e:  # fastai's `remove_cb(s)` stops at a raise: the finder and the fit's later callbacks stay
                if inflight is None or not isinstance(e, Exception):  # alone, or a Ctrl-C: it goes on
                    self.__dict__['_learner'] = None  # detach, or the learner's next fit would be a sweep
                    if vars(old).get(self.name) is self: delattr(old, self.name)
                    if self in old.cbs: old.cbs.remove(self)
                    raise
                # else the fit's own error goes on, and fastai's `remove_cbs` detaches every callback
                inflight.add_note(f"AnnealLRFinder: restoring the learner also failed: {e!r}")
                warnings.warn(f"AnnealLRFinder: restoring the learner failed ({e!r}) while the fit ended on {inflight!r}")
        self.__dict__['_learner'] = learn

    def restore(self):
        "Restore the learner to its state before the sweep (after `fit`, an exception or an interrupt); a no-op once done"
        with sigint_held():  # a Ctrl-C after the snapshot is taken off the finder and before its restore holds would lose it
            snap,self.__dict__['_snapshot'] = self.__dict__.get('_snapshot'),None
            if snap is not None: snap.restore()

    def before_fit(self):
        ("Resolve the per-group lrs; snapshot the learner in memory unless this fit's `add_cb` or `lr_find` did (a callback kept "
         "across fits, or attached outside `fit`, snapshots here)")
        if not hasattr(self.learn, 'recorder'):
            raise ValueError("AnnealLRFinder needs the learner's Recorder (create the Learner with default_cbs=True)")
        self.scheds = {'lr': _check_sweep(_Sweep(self.anneal, *self._range(len(self.opt.param_lists))), self.num_it, self.anneal)}
        # an own snapshot not taken as this fit attached the callback is an interrupted sweep's: the learner moved on since
        if self._snapshot is None or (self._own_snapshot and not self._fresh):
            self.__dict__.update(_snapshot=LearnerSnapshot(self.learn), _own_snapshot=True, _at_detach=False)
        self.__dict__['_fresh'] = False
        super().before_fit()
        keep = self.anneal is not sched_exp  # fastai's sweep is even in log(lr): its suggestions need no batch losses
        self.best_loss,self.raw_losses,self.swept = float('inf'),[] if keep else None,True

    def before_batch(self): self._update_val(self.train_iter/self.num_it)

    def after_batch(self):
        "Record the batch's loss (`raw_losses`, an uneven sweep's); stop at `num_it` batches or, with `stop_div`, on divergence"
        super().after_batch()
        if self.raw_losses is not None: self.raw_losses.append(float(self.learn.loss.detach().mean()))  # resampled for suggestions
        loss = float(self.smooth_loss)  # one tensor op, then floats: fastai's three tensor compares decide the same (4*x is exact)
        if loss < self.best_loss: self.best_loss = loss
        if self.stop_div and _diverged(loss, self.best_loss, self.div_thresh) and _moved(loss, self._snapshot): raise CancelFitException()
        if self.train_iter >= self.num_it: raise CancelFitException()

    def before_validate(self): raise CancelValidException()

    def after_fit(self):
        ("Hand the lrs to the recorder and, as fastai's `LRFinder`, restore at the end of `fit` a snapshot this callback took; one "
         "`fit` attached restores as `fit` detaches it, after every callback's `after_fit` (one of a later order may undo there "
         "what it did to the model in `before_fit`)")
        super().after_fit()
        if self._own_snapshot and not self._at_detach: self.restore()

def _in_fit(learn) -> bool:
    "Whether `learn.fit` is on the call stack: `fit` attaching its `cbs`, not `Learner(cbs=...)` or `learn.add_cb` before a fit"
    f = sys._getframe(1)
    for _ in range(30):  # fit -> added_cbs -> add_cbs -> ... -> the `learn` setter: a few frames
        if f is None: return False
        if f.f_code.co_name == 'fit' and f.f_locals.get('self') is learn: return True
        f = f.f_back
    return False

def _div_limit(best:float, div_thresh:float) -> float:
    ("The loss above which a run has diverged: `div_thresh` times the `best` so far (fastai's rule); for a `best` <= 0 (a loss that "
     "can go negative, such as a Gaussian NLL), `best` plus `div_thresh`-1 times `abs(best)`")
    return div_thresh*best if best > 0 else best + (div_thresh-1)*abs(best)

# the tuner's searches (`lr='auto'`) count a rise as divergence only once the weights moved this much (relative L2 distance from where the
# search began): the batch losses of a trained model can span decades, and fastai's rule then stops a sweep whose weights have not
# moved (its best is a lucky batch). 0: fastai's rule, as `lr_find` applies it
MIN_MOVE = contextvars.ContextVar('MIN_MOVE', default=0.)

def _moved(loss:float, snap) -> bool:
    "Whether a rise in `loss` can be the weights' doing: a loss that is NaN/inf always, else they moved `MIN_MOVE` from `snap`'s copy"
    m = MIN_MOVE.get()
    return not m or not math.isfinite(loss) or snap is None or snap.moved() > m

def _diverged(loss:float, best:float, div_thresh:float=4.) -> bool:
    "Whether a smoothed `loss` is NaN/inf or above `_div_limit`"
    return not math.isfinite(loss) or loss > _div_limit(best, div_thresh)

# ---------------------------------------------------------------- suggestions
def _name(f): return f.func.__name__ if isinstance(f, partial) else getattr(f, '__name__', type(f).__name__)

def _check_suggest_funcs(suggest_funcs): return check_suggest_funcs(suggest_funcs, _name)

def _even_in_log(lrs:Tensor) -> bool:
    "Whether `lrs` are evenly spaced in log(lr) up to float32 rounding (fastai's 'exp' sweep), or too few to tell"
    if len(lrs) < 3: return True
    steps = torch.diff(torch.log(lrs.double()))
    return bool((steps - steps.mean()).abs().max() <= 1e-3 * steps.mean().abs())

def even_log_points(lrs:Tensor, losses:Tensor) -> tuple:
    ("`(lrs, losses)` resampled (linear interpolation in log(lr)) onto as many points evenly spaced in log(lr): fastai's suggestion "
     "rules count points as log-lr steps. A sweep already even (fastai's 'exp') comes back as it is")
    if _even_in_log(lrs): return lrs,losses
    lg = torch.log(lrs.double())
    grid = torch.linspace(float(lg[0]), float(lg[-1]), len(lg), dtype=torch.float64)
    vals = np.interp(grid.numpy(), lg.numpy(), losses.double().numpy())
    return torch.exp(grid).to(lrs.dtype),torch.from_numpy(vals).to(losses.dtype)

def _smooth(vals:np.ndarray, beta:float) -> np.ndarray:
    "`vals` smoothed as fastai's `Recorder` smooths the loss: an exponential moving average with weight `beta`, debiased"
    out,m = np.empty(len(vals)),0.
    for i,v in enumerate(vals):
        m = beta*m + (1-beta)*v
        out[i] = m/(1-beta**(i+1))
    return out

def _increasing(lrs:np.ndarray) -> bool: return bool(np.all(np.isfinite(lrs)) and np.all(lrs > 0) and np.all(np.diff(lrs) > 0))

def even_log_sweep(lrs:list, raw_losses:list, beta:float=0.98, div_thresh:float=4.) -> tuple:
    ("An uneven sweep (`lrs`, each batch's `raw_losses`) as fastai's 'exp' sweep would record it: the raw losses averaged onto as many "
     "points evenly spaced in log(lr), smoothed over those points with `beta`, and cut before the first point where the median of "
     "the last three passes `div_thresh` times the smoothed best so far (counted from the first tenth on; `_diverged`'s rule); "
     "`(lrs, smoothed losses)` tensors, ending before the first non-finite loss (fewer than 3 points come back as they are, smoothed)")
    beta,div_thresh = check_float('beta', beta, 0., 1., lo_open=False),check_float('div_thresh', div_thresh, 1., inf_ok=True)
    lrs,raw = np.asarray([float(v) for v in lrs], dtype=np.float64),np.asarray([float(v) for v in raw_losses], dtype=np.float64)
    if len(raw) != len(lrs): raise ValueError(f"raw_losses must have one loss per lr ({len(lrs)}), got {len(raw)}")
    if not _increasing(lrs): raise ValueError("lrs must be finite, positive and strictly increasing (a sweep's lr per batch)")
    bad = np.nonzero(~np.isfinite(raw))[0]
    if len(bad): lrs,raw = lrs[:bad[0]],raw[:bad[0]]
    if len(lrs) < 3: return tensor(lrs).float(),tensor(_smooth(raw, beta)).float()
    lg = np.log(lrs)
    grid = np.linspace(lg[0], lg[-1], len(lg))
    # each batch counts at its nearest grid point; a point no batch reached (where the sweep runs fastest) is interpolated
    idx = np.clip(np.rint((lg - lg[0]) / (grid[1] - grid[0])).astype(int), 0, len(grid)-1)
    n = np.bincount(idx, minlength=len(grid))
    vals = np.interp(grid, grid[n > 0], np.bincount(idx, raw, len(grid))[n > 0] / n[n > 0])
    sm = _smooth(vals, beta)
    # a loss that stays far above the best so far means the model broke; what the sweep records after that is the broken model's,
    # not the lr's. The 'exp' sweep stops there through its smoothed loss; resampled, the smoothing restarts, so the cut looks at
    # the points themselves, through a median of three: one noisy batch (a small batch, a low loss) is not a break
    med = np.median(np.stack([vals, np.r_[vals[:1], vals[:-1]], np.r_[vals[:1], vals[:1], vals[:-2]]]), 0)
    # the best so far counts from the first tenth on (the part fastai's rules leave out): the first smoothed points are single
    # batches, and a lucky one would set a best that ordinary batches pass 4x
    best = np.minimum.accumulate(np.where(np.arange(len(sm)) >= max(3, len(sm)//10), sm, np.inf))
    lim = np.array([_div_limit(b, div_thresh) for b in best])  # `_diverged`'s rule, for losses below zero too; div_thresh inf: never
    spike = np.nonzero(np.isfinite(best) & (med > lim))[0]
    cut = spike[0] if len(spike) else len(grid)
    return tensor(np.exp(grid[:cut])).float(),tensor(sm[:cut]).float()

def suggest_lrs(lrs:list,   # lr of every sweep batch (`Recorder.lrs`)
    losses:list,            # Smoothed loss of every sweep batch (`Recorder.losses`)
    num_it:int,             # Sweep length asked for: as fastai, the first `num_it//10` points and the last 5 (`num_it` past a NaN) cut
    suggest_funcs:tuple|callable=(SuggestionMethod.Valley,),  # fastai suggestion functions `f(lrs, losses, num_it) -> (lr, (lr, loss))`
    raw_losses:list=None,   # Each batch's loss, unsmoothed (`AnnealLRFinder.raw_losses`): an uneven sweep is resampled from these
                            # (under distrib_ctx, this rank's own: `lr_find` averages the ranks' first, for one suggestion)
    beta:float=0.98,        # The `Recorder`'s smoothing, applied to a resampled sweep
    div_thresh:float=4.,    # A resampled sweep ends where its loss stays above `div_thresh` times the smoothed best (inf: never)
) -> tuple:
    ("`(SuggestedLRs, points)` as fastai's `lr_find` computes them, but a method with too few finite points gives NaN and a warning, "
     "never an exception. An uneven sweep is first resampled evenly in log(lr): from `raw_losses` when given (`even_log_sweep`), "
     "else its smoothed losses are interpolated; an even one ('exp') is used as recorded")
    num_it,funcs = check_int('num_it', num_it, 1),_check_suggest_funcs(suggest_funcs)
    beta,div_thresh = check_float('beta', beta, 0., 1., lo_open=False),check_float('div_thresh', div_thresh, 1., inf_ok=True)
    lrs,losses = tensor(list(lrs)),tensor(list(losses))
    if len(lrs) != len(losses):
        raise ValueError(f"lrs and losses must have one value per sweep batch each, got {len(lrs)} lrs and {len(losses)} losses")
    if len(lrs) > 1 and not _increasing(lrs.double().numpy()):  # whatever the spacing: one that falls evenly in log(lr) too
        warnings.warn("suggest_lrs: the sweep's lrs do not increase batch after batch; its points are used as recorded, not resampled")
    elif not _even_in_log(lrs):  # a 'cos' (or 'lin', 'sqrt'...) sweep: its finite points resampled evenly in log(lr), then cut
        if raw_losses is not None: lrs,losses = even_log_sweep(lrs, raw_losses, beta, div_thresh)
        else:
            bad = torch.nonzero(~torch.isfinite(losses.view(-1)))
            if len(bad): lrs,losses = lrs[:bad.min()],losses[:bad.min()]
            lrs,losses = even_log_points(lrs, losses)
    # as fastai, the first tenth and the last 5 points are left out. A sweep that stopped at its first NaN (fastai's sweeps on past a
    # NaN: NaN > 4*best is False) ends where fastai's cut does: at the NaN, or 5 points before `num_it` when that comes first
    nan = torch.nonzero(torch.isnan(losses.view(-1)))
    end = min(int(nan.min()), num_it-5) if len(nan) and int(nan.min()) == len(losses)-1 else len(losses)-5
    lrs,losses = lrs[num_it//10:max(end, 0)],losses[num_it//10:max(end, 0)]
    bad = torch.nonzero(~torch.isfinite(losses.view(-1)))
    if len(bad): lrs,losses = lrs[:bad.min()],losses[:bad.min()]  # fastai cuts at the first NaN; an inf breaks the slope too
    res,pnts = [],[]
    for f in funcs:
        try:
            lr,pnt = f(lrs, losses, num_it)
            if not math.isfinite(float(lr)): raise ValueError(f"it returned {lr!r}")
        except (IndexError, ValueError, RuntimeError, ZeroDivisionError) as e:
            warnings.warn(f"lr_find: no `{_name(f)}` suggestion, it is NaN: {len(losses)} finite loss(es) between iteration {num_it//10} "
                          f"and the last 5 are too few ({type(e).__name__}: {e}). Try a larger num_it, a smaller end_lr or stop_div=False")
            lr,pnt = float('nan'),(float('nan'), float('nan'))
        res.append(lr); pnts.append(pnt)
    return collections.namedtuple('SuggestedLRs', [_name(f) for f in funcs])(*res),pnts

# ---------------------------------------------------------------- plot and the Learner patch
def _finite(v):
    try: return math.isfinite(float(v))
    except (TypeError, ValueError): return False

# Not `Recorder.plot_lr_find`: that name stays fastai's (it returns None); this one adds the sweep panel and returns the figure on request.
@patch
def plot_lr_sweep(self:Recorder,
    skip_end:int=5,          # Leave out the last `skip_end` points of the loss curve (fastai's)
    return_fig:bool=False,   # Return the figure; False (the default): a bare call as a cell's last line displays it once
    suggestions:list=None,   # `(lr, loss)` points to mark, as `lr_find` passes them; NaN ones are listed as none
    nms:list=None,           # Their names, for the legend
    show_sweep:bool=True,    # Add a panel with the lr of every iteration: the sweep's shape
    resampled:tuple=None,    # `(lrs, losses)` of an uneven sweep resampled evenly in log(lr) (`even_log_sweep`): drawn dashed
    values:list=None,        # The suggested lrs, one per point, for the sweep panel's lines (default: the points' lrs)
    **kwargs,                # Accepted and ignored, as fastai's
):
    ("Plot loss against lr of the last LR range test, marking `suggestions`; with `show_sweep`, a side panel draws the sweep's lr per "
     "iteration")
    skip_end,show_sweep = check_int('skip_end', skip_end, 0),check_bool('show_sweep', show_sweep) and len(self.lrs) > 0
    if values is not None and len(values) != len(suggestions or []):
        raise ValueError(f"values must have one lr per suggestion ({len(suggestions or [])}), got {len(values)}")
    lrs    = self.lrs    if skip_end==0 else self.lrs   [:-skip_end]
    losses = self.losses if skip_end==0 else self.losses[:-skip_end]
    if show_sweep: fig,(ax,ax_sweep) = plt.subplots(1, 2, figsize=(8.5, 4), gridspec_kw={'width_ratios': [3, 1]})
    else: fig,ax = plt.subplots(1,1)
    ax.plot(lrs, losses, label='recorded' if resampled is not None else None)
    if resampled is not None:
        ax.plot(*[np.asarray(v, dtype=np.float64) for v in resampled], '--', c='gray', lw=1, label='resampled (suggestions)')
    ax.set_ylabel("Loss")
    ax.set_xlabel("Learning Rate")
    ax.set_xscale('log')
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color'][1:]
    if suggestions:
        for (val, idx), nm, color in zip(suggestions, nms, colors):
            if _finite(val): ax.plot(val, idx, 'o', label=nm, c=color)
            else: ax.plot([], [], 'o', label=f'{nm}: none', c=color, alpha=0.3)
    if suggestions or resampled is not None: ax.legend(loc='best')
    if show_sweep:
        ax_sweep.plot(range(len(self.lrs)), self.lrs)
        ax_sweep.set_yscale('log'); ax_sweep.set_xlabel('Iteration'); ax_sweep.set_title('Sweep: lr per iteration', fontsize=9)
        # fastai's `minimum` marks its point at the loss minimum's lr and suggests a tenth of it: a line is drawn at the suggestion
        vals = [v for v,_ in suggestions or []] if values is None else list(values)
        for val, color in zip(vals, colors):
            if _finite(val): ax_sweep.axhline(float(val), c=color, lw=0.8, ls='--')
        fig.tight_layout()
    return fig if return_fig else None

@patch
def lr_find(self:Learner,
    start_lr:float|list|slice=1e-7,  # First lr of the sweep (one per param group with a list, array or slice)
    end_lr:float|list|slice=10,      # Last lr of the sweep
    num_it:int=100,                  # Batches in the sweep (>= 2; fastai raises fewer than 6 to 6)
    stop_div:bool=True,              # Stop when the smoothed loss passes `div_thresh` times its best, or is NaN/inf
    show_plot:bool=True,             # Plot loss against lr with the suggestions and the sweep
    # fastai suggestion functions (valley, slide, minimum, steep) or your own; None: no suggestion
    suggest_funcs:tuple|callable=(SuggestionMethod.Valley,),
    # Sweep shape: 'exp' (fastai's, bit for bit) | 'cos' (log-space half cosine) | 'lin' | 'sqrt' | 'poly' | f
    anneal:str|callable=DEFAULT_SWEEP,
    div_thresh:float=4.,             # Divergence threshold (fastai's 4); with `stop_div`, it also ends a resampled uneven sweep
):
    ("Launch a mock training to find a good learning rate and return suggestions based on `suggest_funcs` as a named tuple; the learner "
     "comes back bit for bit, even after an exception")
    cb = AnnealLRFinder(start_lr, end_lr, num_it, stop_div, anneal, div_thresh)
    show_plot,suggest_funcs = check_bool('show_plot', show_plot),_check_suggest_funcs(suggest_funcs)
    cb._range(_n_groups(self))
    if not hasattr(self, 'recorder'): raise ValueError("lr_find needs the learner's Recorder (create the Learner with default_cbs=True)")
    if len(self.dls.train) == 0: raise ValueError("lr_find needs batches: the training DataLoader is empty")
    nb = train_batches(self)  # this rank's (`distrib_ctx`: its share)
    if nb == 0: raise ValueError(f"lr_find needs batches: under distrib_ctx each of the {num_distrib()} ranks' share of the training "
                                 f"set fills no batch of {self.dls.train.bs} (the loader drops the last one)")
    n_epoch = cb.num_it//nb + 1  # fastai's count, of the batches this rank runs
    snap = cb.__dict__['_snapshot'] = LearnerSnapshot(self)  # before `fit` creates the optimizer and sets its lr: what comes back
    kept = _RecorderKept(self); kept.__enter__()  # the last fit's history, put back if no sweep runs
    # after an exception the other callbacks' state comes back too: fastai's trackers stand aside for the sweep (`run=False`) and
    # only their `after_fit`, which an exception skips, puts them back. A sweep that ends leaves their plain state as it left it, as
    # fastai's, but not the modules and tensors they hold: an EMA the sweep fed (up to its divergence) comes back as it was
    cbs_kept = _CallbacksKept(self, skip=Recorder)
    try:
        with self.no_logging(), _csv_loggers_aside(self): self.fit(n_epoch, cbs=cb)  # the last fit's CSV log stays as it is
    except BaseException:  # what callbacks swapped, their state, and the Recorder's history of the last fit (it held the half sweep)
        run_all(partial(snap.restore, swapped=True), cbs_kept.restore, partial(kept.__exit__, None, None, None)); raise
    finally: cb.restore()
    cbs_kept.restore_held()
    if not cb.swept:  # the finder's `before_fit` never ran: the Recorder holds the last fit's points, or none
        kept.__exit__(None, None, None)
        raise RuntimeError("lr_find: no sweep ran, a callback cancelled the fit (CancelFitException) before the range test started, "
                           "in `before_fit`; the learner is as it was")
    if suggest_funcs is None:
        if show_plot: self.recorder.plot_lr_sweep()
        return None
    lrs,losses,even = self.recorder.lrs,self.recorder.losses,None
    if cb.raw_losses and not _even_in_log(tensor(list(lrs))) and _increasing(np.asarray(lrs, dtype=np.float64)):  # uneven ('exp': as is)
        n = agree_len(min(len(lrs), len(cb.raw_losses)))  # a callback that cancels between the Recorder and the finder: one batch out
        raw = agree(cb.raw_losses[:n])  # distributed: each rank's batches differ; their mean is one curve, one suggestion for all
        even = lrs,losses = even_log_sweep(lrs[:n], raw, self.recorder.smooth_loss.beta,
                                           cb.div_thresh if cb.stop_div else math.inf)  # even: `suggest_lrs` takes it as it is
    sugg,pnts = suggest_lrs(lrs, losses, cb.num_it, suggest_funcs)
    if show_plot: self.recorder.plot_lr_sweep(suggestions=pnts, nms=list(sugg._fields), resampled=even, values=list(sugg))
    return sugg
