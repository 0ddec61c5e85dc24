("Thin `Learner` patches generated from the registry: validate, build the schedules of `schedules.py`, hand them to fastai's "
 "`ParamScheduler`, fit.")
from __future__ import annotations
import inspect, math, warnings
from functools import partial
from types import FunctionType
import numpy as np, torch
from fastcore.basics import patch, patch_to
from fastcore.foundation import L
from fastcore.meta import delegates
from fastai.learner import Learner, SkipToEpoch
from fastai.torch_core import num_distrib
from fastai.callback.core import Callback
from fastai.callback.schedule import ParamScheduler
from fastai.callback.tracker import SaveModelCallback, TrackerCallback
from fastai.optimizer import Optimizer, OptimWrapper, _BaseOptimizer, pytorch_hp_map
import fastai.optimizer as fastai_optimizer
from ._checks import (check_int, check_float, check_bool, check_cbs, check_choice, check_noise, group_lrs, callback_instance, bind_args,
                      lr_hint)
from ._groups import n_groups, n_iter, recorded, train_batches
from .plateau import AnnealPlateau
from .registry import Variant, VARIANTS, _add, _redefined, _REGISTERED, _BUILTIN

__all__ = ['ReplayShuffles', 'register_variant']  # and the `Learner` patches, applied on import

def _group_lrs(learn, lr, name:str) -> np.ndarray:
    ("One lr per param group from a float, a slice (as `Optimizer.set_hyper`) or a list; if None `learn.lr`, or before the first "
     "optimizer the lr of an `opt_func` partial (fastai's `create_opt` sets `learn.lr` from it)")
    n = n_groups(learn)
    if lr is None:
        kw = getattr(learn.opt_func, 'keywords', None) or {}
        lr = kw['lr'] if learn.opt is None and 'lr' in kw else learn.lr
    v = group_lrs(name, lr, n)
    return np.full(n, v) if np.ndim(v) == 0 else np.array(v, dtype=np.float64)

def _prepare(learn, n_epoch, lr, build, wd=None, start_epoch=0, lr_name='lr_max', cbs=None, reset_opt=False, step='batch',
             noise_range_t=None, noise_pct=0.67, noise_std=1., noise_type='normal', noise_seed=42, epoch_offset=0,
             total_epochs=None, epochs_name='n_epoch') -> dict:
    ("Validate one fit call with no side effect (`build(lrs)` makes its schedules); returns what `_launch` needs. The noise counts "
     "epochs of a run of `total_epochs` (`n_epoch` if None) of which this fit is the part after `epoch_offset` (fine_tune's phases)")
    n_epoch = check_int('n_epoch', n_epoch)
    if train_batches(learn) == 0:  # under `distrib_ctx`, each rank's share (every rank computes the same)
        raise ValueError("the fit needs batches: the training DataLoader is empty (fewer items than a batch that drop_last drops?)"
                         + (f"; under distrib_ctx each of the {num_distrib()} ranks' share fills no batch of {learn.dls.train.bs}"
                            if len(learn.dls.train) else ""))
    start_epoch = check_int('start_epoch', start_epoch, 0)
    if start_epoch >= n_epoch: raise ValueError(f"start_epoch must be in [0, n_epoch={n_epoch}), got {start_epoch}")
    reset_opt = check_bool('reset_opt', reset_opt)
    if start_epoch and reset_opt:  # the first run reset it as it started; the checkpoint holds it since
        raise ValueError(f"reset_opt must be False to resume (start_epoch={start_epoch}): it would drop the optimizer state the "
                         "checkpoint holds, which the uninterrupted run kept from its start on")
    if wd is not None: wd = group_lrs('wd', wd, n_groups(learn), zero_ok=True)  # one for all groups, or one per group (`set_hypers`)
    step = check_choice('step', step, ('batch', 'epoch'))
    noise = check_noise(noise_range_t, noise_pct, noise_std, noise_type, noise_seed, n_epoch if total_epochs is None else total_epochs,
                        epochs_name)
    lrs,cbs = _group_lrs(learn, lr, lr_name),check_cbs(cbs)
    check_callbacks(learn, cbs)
    scheds = _check_scheds(build(lrs), lr_name, learn.opt.hypers[0] if isinstance(learn.opt, Optimizer) else None)
    if (names := _wrapped_names(learn)) is not None and (missing := sorted(set(scheds) - names)):  # fastai's KeyError mid-batch
        raise ValueError(f"opt_func: the learner's torch optimizer has no hyper-parameter {missing} (fastai's names), which this fit "
                         f"schedules; fit_cyclic: pass cycle_momentum=False, the others: moms=None")
    warns = [_peak_unreached(scheds['lr'], n_epoch) if step == 'epoch' and 'lr' in scheds else None]
    if 'mom' in scheds and _reads_no_mom(learn):  # fastai's SGD/RMSProp with mom=0 have no momentum step; torch's SGD reads its momentum
        warns.append("the momentum schedule does nothing here: fastai's SGD and RMSProp with mom=0 (their default) build no momentum "
                     "step, where torch's SGD(momentum=0) applies a scheduled momentum; give opt_func=partial(SGD, mom=0.9), or "
                     "cycle_momentum=False (fit_cyclic) / moms=None")
    return dict(n_epoch=n_epoch, scheds=scheds, wd=wd, start_epoch=start_epoch, cbs=cbs,
                reset_opt=reset_opt, step=step, noise=noise and dict(noise, offset=epoch_offset), warn=_joined(*warns))

def _wrapped_names(learn) -> set|None:
    ("fastai's names of the hyper-parameters a learner's `OptimWrapper` sets (its torch optimizer's, `OptimWrapper.bwd_map`), made or "
     "to be made by `opt_func=partial(OptimWrapper, opt=<a torch optimizer class>)`; None for any other optimizer")
    if isinstance(learn.opt, OptimWrapper): return set(learn.opt.bwd_map)
    f = learn.opt_func
    if learn.opt is not None or not (isinstance(f, partial) and f.func is OptimWrapper and isinstance(f.keywords.get('opt'), type)):
        return None
    ps = inspect.signature(f.keywords['opt']).parameters
    if any(p.kind == p.VAR_KEYWORD for p in ps.values()): return None  # hypers it may take are not named
    hp = pytorch_hp_map if f.keywords.get('hp_map') is None else f.keywords['hp_map']  # as `OptimWrapper` reads it ({}: no mapping)
    betas = {hp.get(f'betas__{i}', f'betas__{i}') for i in (0, 1)} if 'betas' in ps else set()  # `OptimWrapper` splits the tuple
    return {hp.get(k, k) for k in ps if k not in ('params', 'betas')} | betas

def _peak_unreached(f, n_epoch:int) -> str|None:
    "A warning when `step='epoch'`, which holds each epoch at the lr schedule `f`'s value at its start, never trains near `f`'s peak"
    top = lambda pos: float(np.max(np.atleast_1d(f(pos))))
    held,peak = max(top(e/n_epoch) for e in range(n_epoch)),max(top(pos) for pos in _CHECK_AT)
    if held >= 0.9*peak: return None
    return (f"step='epoch' holds each epoch at the lr schedule's value at its start: this fit never trains above {held:.3g}, "
            f"{held/peak:.0%} of its peak {peak:.3g} (a warmup shorter than an epoch takes a whole epoch at its start); "
            f"shorten the warmup, fit more epochs, or step='batch'")

def _reads_no_mom(learn) -> bool:
    ("Whether the learner's optimizer, made or to be made, is fastai's plain `Optimizer` with no stepper reading `mom` (`SGD`, "
     "`RMSProp` at mom=0); False when it cannot tell")
    if learn.opt is not None:  # fastai's own steppers name what they read (each takes the rest as **kwargs); another may read `mom`
        fns = [cb.func if isinstance(cb, partial) else cb for cb in learn.opt.cbs]
        return (type(learn.opt) is Optimizer and all(getattr(f, '__module__', None) == 'fastai.optimizer' for f in fns)
                and not any('mom' in inspect.signature(cb).parameters for cb in learn.opt.cbs))
    f,kw = (learn.opt_func.func,learn.opt_func.keywords) if isinstance(learn.opt_func, partial) else (learn.opt_func,{})
    return f in (fastai_optimizer.SGD, fastai_optimizer.RMSProp) and not kw.get('mom', 0.)

def check_callbacks(learn, cbs):
    ("A callback of `cbs` or the learner's that can check itself against the learner (AnnealPlateau's monitor) does it now, untouched; "
     "so does a fastai tracker's monitor (fastai asserts it in `before_fit`, after `fit` reset the Recorder and the lrs)")
    for cb in L(cbs) + L(learn.cbs):  # a class is checked as the instance fastai will create from it
        if hasattr(cb if isinstance(cb, type) else type(cb), 'check_learner'): callback_instance(cb).check_learner(learn)
        elif isinstance(cb, TrackerCallback) and (names := recorded(learn)) and cb.monitor not in names:  # 'time' passes fastai's
            # test, then fails at the first epoch's end: never a recorded value
            raise ValueError(f"{type(cb).__name__}: monitor must be one of the recorded values {names} (fastai's Recorder), got "
                             f"{cb.monitor!r}")

_F32_MAX = float(np.finfo(np.float32).max)

_CHECK_AT = np.linspace(0., 1., 257)[:-1].tolist() + [1. - 1e-9]  # where `_check_scheds` evaluates each schedule

_RANGES = {'lr': (0., np.inf), 'wd': (0., np.inf), 'mom': (0., 1.), 'sqr_mom': (0., 1.), 'eps': (0., np.inf)}  # a schedule's values

def _fine(v:np.ndarray, name:str) -> bool:
    "Whether every value of `v` is finite in float32 and, for a hyper in `_RANGES`, in its range"
    lo,hi = _RANGES.get(name, (-np.inf, np.inf))
    return bool(np.all(np.isfinite(v)) and np.all(np.abs(v) <= _F32_MAX) and np.all(v >= lo) and np.all(v <= hi))

def _bad_at(vals, name:str) -> int|None:
    "Index of the first of `vals` that is not `_fine`; None when all are"
    try:
        if _fine(np.asarray(vals, dtype=np.float64), name): return None  # all at once: one array, one test
    except (TypeError, ValueError): pass  # ragged values (per-group arrays of different sizes): one by one
    return next((i for i,x in enumerate(vals) if not _fine(np.asarray(x, dtype=np.float64), name)), None)

def _check_scheds(scheds:dict, lr_name:str, hypers:dict=None) -> dict:
    ("`scheds` after checking each at 257 points of training: finite within float32 (a hyper of `_RANGES` in its range); a dict of "
     "callables under fastai's names. Arguments each valid alone "
     "can build one that is not (`cycle_decay=1e300`, an `anneal` that returns -1), and the fit would fail, or train, mid-way")
    if not isinstance(scheds, dict) or not scheds or not all(isinstance(k, str) and callable(f) for k,f in scheds.items()):
        raise TypeError(f"a fit variant's builder must return a dict of hyper-parameter name: schedule (a callable of the position "
                        f"in training, 0 to 1), got {str(scheds)[:200]}")
    torch_names = sorted(k for k in scheds if k in pytorch_hp_map and k not in (hypers or {}))  # `hypers`: the optimizer's, if made
    if torch_names:  # fastai's `set_hyper` would add a hyper no stepper reads
        raise ValueError(f"a fit variant's builder named schedules {torch_names} as torch does; fastai's optimizers take "
                         f"{[pytorch_hp_map[k] for k in torch_names]}")
    vals = {n: [f(pos) for pos in _CHECK_AT] for n,f in scheds.items()}
    bad = [(i,n) for n,vs in vals.items() if (i := _bad_at(vs, n)) is not None]
    if bad:
        i,n = min(bad, key=lambda b: b[0])  # the earliest in training, as a fit would meet it
        v,pos = np.asarray(vals[n][i], dtype=np.float64),_CHECK_AT[i]
        lo,hi = _RANGES.get(n, (None, None))
        rng = '' if lo is None else f" and in [{lo:g}, {hi:g}]" if np.isfinite(hi) else f" and >= {lo:g}"
        raise ValueError(f"the {n} schedule reaches {v.tolist()!r} at {pos:.0%} of training; scheduled values must be finite in "
                         f"float32{rng} (check {lr_name}, `anneal` and the decay arguments)")
    return scheds

def _lr_noise(t:int, pct:float=0.67, std:float=1., kind:str='normal', seed:int=42) -> float:
    ("timm's lr noise at time `t`, from a private generator seeded `seed+t`: 'normal' draws `std`*N(0, 1) until it is within `pct`, "
     "'uniform' is U(-`pct`, `pct`); the lr is multiplied by 1+noise")
    g = torch.Generator().manual_seed(seed + t)  # never the global RNGs: a fit with noise draws the same batches as one without
    if kind == 'uniform': return (2*torch.rand(1, generator=g).item() - 1) * pct
    while True:
        v = torch.randn(1, generator=g).item() * std
        if abs(v) < pct: return v

def _per_epoch(scheds:dict, n_epoch:int) -> dict:
    "`scheds` held constant over each of `n_epoch` equal spans of training, at their value at the span's start (`step='epoch'`)"
    return {k: (lambda pos, f=f: f(min(math.floor(pos*n_epoch + 1e-9), n_epoch-1) / n_epoch)) for k,f in scheds.items()}

def _set_hyper(opt, k:str, v):
    ("`opt.set_hyper(k, v)`, written straight into the hypers of a plain fastai `Optimizer` for a float or one value per group "
     "(fastai's builds an `L` on every call, about 6 us); anything else, or an optimizer that overrides it, goes to fastai's")
    t = type(opt)
    if t.set_hyper is _BaseOptimizer.set_hyper and t._set_hyper is Optimizer._set_hyper:
        hs = opt.hypers
        if isinstance(v, float):
            for h in hs: h[k] = v
            return
        if isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == len(hs):
            for h,x in zip(hs, v): h[k] = x
            return
    opt.set_hyper(k, v)

class _ParamScheduler(ParamScheduler):
    ("fastai's `ParamScheduler`, answering only the 4 events it handles (fastai's dispatch of the ~10 others per batch cost 2-3% of a "
     "small model's epoch); `step='epoch'` holds every schedule at its epoch's start, `noise` multiplies the lr by timm's 1+noise")
    _handled = frozenset(('before_fit', 'before_batch', 'after_batch', 'after_train', 'after_fit'))  # the last two: noise off
    def __init__(self, scheds, step:str='batch', noise:dict=None):
        super().__init__(scheds)
        self.per_epoch,self.noise,self._noise_at,self._noisy = step == 'epoch',noise,(None, 0.),False
    def __call__(self, event_name): return super().__call__(event_name) if event_name in self._handled else None
    def _noise_factor(self, l) -> float:
        "1+noise at this batch: `t` counts epochs (`step='epoch'`) or batches of the whole run, as timm's `t_in_epochs` True/False"
        nz = self.noise
        epoch = nz['offset'] + l.epoch
        t,per = (epoch,1) if self.per_epoch else (epoch*l.n_iter + l.iter,l.n_iter)
        if not nz['lo']*per <= t < nz['hi']*per: return 1.
        if self._noise_at[0] != t: self._noise_at = (t, 1. + _lr_noise(t, nz['pct'], nz['std'], nz['type'], nz['seed']))
        return self._noise_at[1]
    # the same work as fastai's, reaching the learner directly: `self.pct_train`/`self.opt` go through `GetAttr` every batch
    def _update_val(self, pct):
        l = self.learn
        f = 1. if self.noise is None else self._noise_factor(l)
        for n,s in self.scheds.items(): _set_hyper(l.opt, n, s(pct) * f if n == 'lr' and f != 1. else s(pct))
        # the batch's position and whether its lr is noisy, in `__dict__`: `Callback.__setattr__` asks the learner (and its model,
        # through two `__getattr__` misses) whether the name shadows one of its attributes, 5-10 us a batch
        self.__dict__.update(_pct=pct, _noisy=f != 1. and 'lr' in self.scheds)
    def _unnoise(self):
        "The last batch's lr without its noise back in the optimizer: where the run stands (`fit_cooldown` starts there)"
        if self._noisy: _set_hyper(self.learn.opt, 'lr', self.scheds['lr'](self._pct))
        self._noisy = False
    def _unnoise_left(self, learn):
        ("`_unnoise` for `learn`, which this callback has left after an exception (Ctrl-C skips `after_fit`): the noise factor divided "
         "out of each group's lr, which may hold more than the schedule gave (`AnnealPlateau`'s scale)")
        if self._noisy: _set_hyper(learn.opt, 'lr', [h['lr'] / self._noise_at[1] for h in learn.opt.hypers])
        self._noisy = False
    # before the validation and `SaveModelCallback`'s `after_epoch` (61): an epoch's checkpoint holds the lr without noise
    def after_train(self): self._unnoise()
    def after_fit(self): super().after_fit(); self._unnoise()  # a fit cancelled mid-epoch skips `after_train`
    def before_fit(self):
        super().before_fit()  # the plateaus of this fit, for `_launch` after an exception (the fit's own are removed by then)
        self.__dict__['plateaus'] = [c for c in self.learn.cbs if isinstance(c, AnnealPlateau)]
    def before_batch(self):
        l = self.learn  # an epoch starts at `pct_train == epoch/n_epoch`, this very float
        self._update_val(l.epoch/l.n_epoch if self.per_epoch else l.pct_train)
    def after_batch(self):
        h = self.learn.opt.hypers[-1]
        for p,rec in self.hps.items(): rec.append(h[p])

class ReplayShuffles(Callback):
    ("Draw the training shuffles of the epochs `SkipToEpoch` skips, so a resumed run sees the batches the uninterrupted run saw; "
     "fastai's trackers and the Recorder's `after_epoch` stand aside on those epochs: fastai still sends it, where "
     "`SaveModelCallback(every_epoch=...)` wrote the checkpoint just loaded over each earlier epoch's, a save-on-best one read an empty "
     "log (an `IndexError`), and the Recorder logged an empty row")
    order = SkipToEpoch.order - 1  # before SkipToEpoch cancels the epoch
    def __init__(self, start_epoch:int): self.start_epoch,self.paused,self.rec = check_int('start_epoch', start_epoch, 0),[],None
    def before_epoch(self):
        if self.epoch < self.start_epoch:
            _replay_shuffles(self.dls.train, 1)
            new = [c for c in self.learn.cbs if isinstance(c, TrackerCallback) and c.run]
            for c in new: c.run = False
            self.paused += new
            # the Recorder (order 50, its `before_epoch` already run) logged each skipped epoch as an empty row (CSVLogger: '0,00:00',
            # the time under train_loss): aside for this epoch's `after_epoch` only, back on after it (this callback runs later)
            self.rec = next((c for c in self.learn.cbs if c.name == 'recorder' and c.run), None)
            if self.rec is not None: self.rec.run = False
        else: self._resume()
    def after_epoch(self):
        if self.rec is not None: self.rec.run,self.rec = True,None
    def _resume(self):
        ("The trackers back on: at the first epoch that trains, or after an exception (`_launch`). A fit that ends (or is cancelled) "
         "in the skipped epochs leaves it to fastai, which sets `run` back after `after_fit` without calling the trackers' own: "
         "a save-on-best one would load a file this fit never wrote")
        for c in self.paused: c.run = True
        if self.rec is not None: self.rec.run,self.rec = True,None
        self.paused = []

def _replay_shuffles(dl, n_epoch:int):
    "Use `dl.rng` as `n_epoch` epochs of `DataLoader.__iter__` would: randomize, then draw the shuffled indices"
    while vars(dl).get('dl') is not None: dl = dl.dl  # a `DistributedDL` shuffles with its inner loader's `rng` (and has no `shuffle`)
    if not getattr(dl, 'shuffle', False): return
    for _ in range(n_epoch): dl.randomize(); dl.get_idxs()

def _launch(learn, n_epoch, scheds, wd, start_epoch, cbs=None, reset_opt=False, step='batch', noise=None, warn:str=None):
    ("The setup every variant shares: the scheduler (stepping, noise), and `fit` with `start_epoch` (which fastai's `fit_flat_cos` "
     "drops); `warn`: a warning `prepare_call` found for this fit, given as it starts (not at each plan of a tuning)")
    # No `create_opt`/`set_hyper('lr', ...)` here: `fit` creates a missing optimizer and resets every lr to `learn.lr`
    # before the first batch, where the scheduler sets the scheduled value.
    if warn: warnings.warn(warn)
    sched,replay = _ParamScheduler(scheds, step, noise),ReplayShuffles(start_epoch) if start_epoch else None
    cbs = L(sched) + L(cbs) + L(replay)
    before = list(learn.cbs)
    try: learn.fit(n_epoch, cbs=cbs, reset_opt=reset_opt, wd=wd, start_epoch=start_epoch)
    except BaseException:  # fastai's `added_cbs` adds the fit's callbacks outside its `try`: one that fails to join leaves the others
        if learn.opt is not None:  # Ctrl-C skips `after_fit`: a cooldown starts where the run stands, and a save holds the plateau
            plateaus = [(c, c.learn) for c in vars(sched).get('plateaus', ()) if c.run]  # a fit's own: removed, `learn` None
            for c,_ in plateaus: c.learn = learn; c.after_cancel_fit()  # the schedule's lr back (with its noise),
            sched._unnoise_left(learn)  # then without the noise,
            for c,held in plateaus: c.after_fit(); c.learn = held  # then scaled, the plateau's state stashed (as after a cancel)
        if replay is not None: replay._resume()  # and the trackers a skipped epoch set aside
        learn.remove_cbs([c for c in learn.cbs if not any(c is b for b in before)])
        raise

# ---------------------------------------------------------------- the patches, one per registered variant
def _fit_args(self:Learner,
    n_epoch:int,              # Number of epochs
    wd:float|list=None,       # Weight decay; one per param group as a list or slice (fastai's `set_hypers`); `self.wd` if None
    cbs:list=None,            # Extra callbacks for this fit
    reset_opt:bool=False,     # Reset the optimizer before fitting
    start_epoch:int=0,        # Resume at this epoch: the lr sequence and the batches continue exactly
    step:str='batch',         # 'batch': every schedule moves each batch (fastai); 'epoch': once per epoch, warmups in epochs (torch, timm)
    noise_range_t:float|tuple=None,  # LR noise (timm's), in epochs: None: off; `t`: from epoch `t` on; `(lo, hi)`: for `lo <= t < hi`
    noise_pct:float=0.67,     # The noise's limit, in (0, 1]: the lr is multiplied by 1+noise with |noise| < `noise_pct`
    noise_std:float=1.,       # Std of 'normal' noise before the limit (timm 1.0 uses it; 'uniform' ignores it, as timm does)
    noise_type:str='normal',  # 'normal' (redrawn until within `noise_pct`) | 'uniform' (in [-noise_pct, noise_pct))
    noise_seed:int=42,        # The noise at time `t` (an epoch with step='epoch', a batch otherwise) is seeded `noise_seed+t`
):
    "The arguments every fit variant adds to its builder's (their docs live here; each variant's method lists them once)"

_FIT_ARGS = [p for k,p in inspect.signature(_fit_args).parameters.items() if k not in ('self', 'n_epoch')]
_NOISE_ARGS = tuple(k for k in inspect.signature(_fit_args).parameters if k.startswith('noise_'))

def fit_signature(v:Variant) -> inspect.Signature:
    "`self`, `v`'s epoch arguments, its lr (None: `learn.lr`), its builder's other arguments, then the fit's own"
    P,own = inspect.Parameter,inspect.signature(_fit_args).parameters
    lr_name = v.builder_lr or v.lr_arg
    pk = lambda p: p.replace(kind=P.POSITIONAL_OR_KEYWORD)  # a builder's keyword-only argument (`*,`, a `partial`'s) too
    ps = [own['self']] + [own[k] if k in own else pk(v.builder_params[k]) for k in v.epoch_args]
    ps.append(P(v.lr_arg, P.POSITIONAL_OR_KEYWORD, default=None, annotation='float|slice|list'))
    ps += [pk(p) for k,p in v.builder_params.items() if k not in (lr_name, *v.epoch_args)] + _FIT_ARGS
    return inspect.Signature(ps)

def bind_call(v:Variant, learn, *args, **kwargs) -> dict:
    "Every argument of a call of `v`'s method (as Python binds it, defaults applied), by name"
    b = bind_args(v.method, fit_signature(v), v.lr_arg, learn, *args, **kwargs)
    b.apply_defaults()
    return {k: a for k,a in b.arguments.items() if k != 'self'}

def held_lrs(v:Variant, learn) -> list|None:
    "The lr each param group holds now, what an lr of None means for `v` when it is a cooldown (`lr_from_opt`); None otherwise"
    return [h['lr'] for h in learn.opt.hypers] if v.lr_from_opt and learn.opt is not None else None

def prepare_call(v:Variant, learn, call:dict) -> dict:
    "Validate a call of a single-phase variant (`bind_call`'s dict) with no side effect; `_launch(learn, **result)` runs it"
    fit_kw = {p.name: call[p.name] for p in _FIT_ARGS}
    lr = call[v.lr_arg]
    if lr is None and v.lr_from_opt and call.get('start_epoch', 0):  # a checkpoint taken mid-decay holds an lr already decayed
        raise ValueError(f"{v.lr_arg} must be given to resume {v.method} (start_epoch={call['start_epoch']!r}): with {v.lr_arg}=None "
                         f"it starts from the lr the optimizer holds, which a checkpoint of this run has already decayed; pass the lr "
                         f"the first run started from")
    if lr is None and v.lr_from_opt and learn.opt is None:
        raise ValueError(f"{v.lr_arg} must be given: with {v.lr_arg}=None {v.method} starts from the lr the optimizer holds, and this "
                         f"learner has no optimizer yet (no fit ran, or none was loaded)")
    if lr is None: lr = held_lrs(v, learn)  # where the run stands
    own = {c.fname for c in learn.cbs if isinstance(c, SaveModelCallback) and c.every_epoch}  # the run's checkpoints, `<fname>_<k>`
    savers = [c for c in L(fit_kw['cbs']) + L(learn.cbs)
              if isinstance(c, SaveModelCallback) and c.every_epoch and c.fname in own | {'model'}]
    if v.lr_from_opt and savers:  # a branch numbers its epochs from 0: its checkpoints would replace the run's, which it branches from
        n,folder = v.n_epoch(**call),learn.path/learn.model_dir
        hit = sorted({f"{c.fname}_{e}.pth" for c in savers for e in range(call.get('start_epoch', 0), n) if e % int(c.every_epoch) == 0
                      and (folder/f"{c.fname}_{e}.pth").exists()})
        if hit:
            raise ValueError(f"cbs: {v.method} numbers its epochs from 0, so SaveModelCallback(every_epoch=...) would write over the "
                             f"run's own checkpoints {', '.join(hit)} in {str(folder)!r}: give the branch its own, e.g. "
                             f"cbs=SaveModelCallback(fname='cool', every_epoch=True), and take the learner's off for it "
                             f"(`with learn.removed_cbs(...)`)")
    nb = n_iter(learn)  # batches per epoch, for the schedules that count them: as the fit's `pct_train` counts them (a rank's share)
    res = _prepare(learn, v.n_epoch(**call), lr, lambda lrs: v.scheds(lrs, n_batch=nb, **call), lr_name=v.lr_arg, **fit_kw)
    return dict(res, warn=_joined(res['warn'], resume_warning(learn, v.method, res['cbs'], res['start_epoch'])))

def _joined(*warns) -> str|None: return ' '.join(w for w in warns if w) or None

def resume_warning(learn, method:str, cbs, start_epoch:int) -> str|None:
    ("What a resumed fit (`start_epoch > 0`) cannot give back: fastai's trackers (save-on-best, early stopping, fastai's "
     "`ReduceLROnPlateau`) start their `best` and `wait` afresh, and no checkpoint holds them; None when there is none")
    if not start_epoch: return None
    ts = [c for c in L(cbs) + L(learn.cbs) if isinstance(c, TrackerCallback) and getattr(c, 'reset_on_fit', True)
          and not (isinstance(c, SaveModelCallback) and c.every_epoch)]
    if not ts: return None
    names = ', '.join(sorted({f"{type(c).__name__}(monitor={c.monitor!r})" for c in ts}))
    return (f"{method}: resuming at epoch {start_epoch}, {names} start(s) afresh: fastai keeps a tracker's best value and patience "
            f"in no checkpoint, so the first epoch trained counts as an improvement (a save-on-best callback writes over the best "
            f"model saved before the interruption) and a patience counts anew. Give a tracker its best value back: "
            f"reset_on_fit=False and `cb.best = <the best value so far>` (fastai restarts the patience count at every fit)")

def _fit_tuned(learn, method:str, lr_arg:str, args, kwargs):
    "`Learner.fit_tuned` for a call of `method` whose `lr_arg` is 'auto': tuned, then fitted and watched for a collapse"
    if not hasattr(learn, 'fit_tuned'):
        raise ValueError(f"{lr_arg}='auto' needs the tuner: import fastai_anneal.all (or fastai_anneal.tune)")
    return learn.fit_tuned(*args, fit=method, **kwargs)

def _fit_method(v:Variant) -> FunctionType:
    "The `Learner` method of `v`: its arguments forwarded by name to the builder, `help` and `docments` showing every one"
    def fit(self, *args, **kwargs):
        call = bind_call(v, self, *args, **kwargs)
        if isinstance(call[v.lr_arg], str): _fit_tuned(self, v.method, v.lr_arg, args, kwargs); return  # 'auto' (others: refused)
        _launch(self, **prepare_call(v, self, call))
    docs = FunctionType(_fit_args.__code__, _fit_args.__globals__, _fit_args.__name__)  # docments follows `__delwrap__`:
    docs.__delwrap__ = v.builder                                                           # method -> common args -> builder
    sig = fit_signature(v)
    fit.__name__,fit.__qualname__,fit.__doc__,fit.__signature__,fit.__delwrap__ = v.method,f'Learner.{v.method}',v.doc,sig,docs
    fit.__annotations__ = {k: p.annotation for k,p in sig.parameters.items() if p.annotation is not inspect.Parameter.empty}
    return fit

# what a `Learner` holds in its own `__dict__` (its arguments, fastai's training state, its default callbacks): a method of that name
# would be hidden on every learner
_LEARNER_ATTRS = frozenset([*inspect.signature(Learner.__init__).parameters, 'opt', 'loss_func', 'path', 'cbs', 'training', 'logger',
    'lock', 'epoch', 'n_epoch', 'iter', 'n_iter', 'train_iter', 'pct_train', 'dl', 'xb', 'yb', 'pred', 'loss', 'loss_grad',
    'smooth_loss', 'final_record', 'recorder', 'progress', 'train_eval', 'cast_to_tensor'])

def _free(v:Variant):
    ("Refuse a variant whose method would replace one `Learner` has (fastai's `fit`, `fit_one_cycle`, `fine_tune`...) or be hidden by "
     "a learner's attribute (`lr`, `dls`...), or whose builder takes an argument the fit adds (`wd`, `cbs`...); this module's own patch "
     "may be made again (`importlib.reload`, IPython's autoreload)")
    if v.method in dir(Learner) and getattr(getattr(Learner, v.method), '__module__', None) != __name__:
        raise ValueError(f"Variant {v.method!r}: method is already a Learner method; give the variant its own name")
    if v.method in _LEARNER_ATTRS:
        raise ValueError(f"Variant {v.method!r}: method is the name of a Learner attribute, which would hide it; give the variant its own "
                         "name")
    clash = [k for k in v.builder_params if k in {'self', *(p.name for p in _FIT_ARGS)}]
    if clash:
        raise ValueError(f"Variant {v.method!r}: builder argument(s) {clash} have the names of the method's own arguments "
                         f"(self, {', '.join(p.name for p in _FIT_ARGS)}); rename them in the builder")

def _patch(v:Variant): _free(v); patch_to(Learner)(_fit_method(v))

for _v in VARIANTS.values():
    if not _v.two_phase: _patch(_v)

def _unregister(v:Variant):
    "Take a variant `register_variant` added out again, with its `Learner` method (the package's own stay)"
    if _REGISTERED.get(v.method) is v and v.method not in {b.method for b in _BUILTIN}:
        del _REGISTERED[v.method]
        if getattr(Learner, v.method, None) is not None: delattr(Learner, v.method)

def register_variant(v:Variant,
    replace:bool=False,  # Put `v` in place of a variant of the same method registered before (a builder fixed); the package's own stay
) -> Variant:
    ("Add `v` at run time: its `Learner` method (checked arguments, `lr='auto'`, `lr_tune(fit=...)`), as the package's own variants "
     "get; the console script offers it when a package's entry point of group `fastai_anneal.variants` gives it (`cli.PLUGINS`). "
     "A variant of the same method whose builder has the same module and name (a notebook cell run again, a module reloaded) takes "
     "the registered one's place")
    if not isinstance(v, Variant): raise TypeError(f"v must be a Variant, got {type(v).__name__}")
    replace = check_bool('replace', replace)
    if v.two_phase:
        raise ValueError(f"Variant {v.method!r}: two_phase variants are written by hand in fit.py; register a one-phase variant")
    old = _REGISTERED.get(v.method)
    mine = old is not None and v.method not in {b.method for b in _BUILTIN}  # registered at run time, not the package's own
    if mine and old == v and getattr(Learner, v.method, None) is not None: return old  # registered already
    _free(v)
    method = _fit_method(v)  # built before anything is registered
    again = mine and (replace or _redefined(old, v))  # its builder defined again: a cell run again, a module reloaded
    _add(v, replace=old if again else None)  # refuses a registered (unless replaced) or reserved name
    patch_to(Learner)(method)
    return v

def fine_tune_phases(learn, epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_warmup=0.1, div_final=1e5, anneal='cos',
                     **kwargs) -> tuple:
    ("`_launch` arguments of `fine_tune_anneal`'s frozen (None when resumed past it or `freeze_epochs=0`) and unfrozen (None when "
     "`epochs=0`) phases; every argument checked")
    passed = ('div_warmup', 'warmup', 'moms', 'wd', 'start_epoch', 'cbs', 'reset_opt', 'step', *_NOISE_ARGS)
    unknown = set(kwargs) - set(passed)
    if unknown:
        raise TypeError(f"fine_tune_anneal got unexpected keyword argument(s) {sorted(unknown)}{lr_hint('base_lr', unknown)}; it "
                        f"passes on {', '.join(passed)}")
    freeze_epochs = check_int('freeze_epochs', freeze_epochs, 0)
    base_lr,lr_mult = check_float('base_lr', base_lr),check_float('lr_mult', lr_mult, 1., lo_open=False)
    epochs,start = check_int('epochs', epochs, 0),check_int('start_epoch', kwargs.get('start_epoch', 0), 0)
    VARIANTS['fine_tune_anneal'].n_epoch_of(epochs, freeze_epochs)  # one phase at least: `epochs=0` trains the head only
    if start >= freeze_epochs + epochs:
        raise ValueError(f"start_epoch must be in [0, freeze_epochs+epochs={freeze_epochs+epochs}), got {start}")
    bkw = {k: kwargs[k] for k in ('div_warmup', 'warmup', 'moms') if k in kwargs}
    build = lambda lrs: VARIANTS['fine_tune_anneal'].scheds(lrs, div_final=div_final, pct_warmup=pct_warmup, anneal=anneal, **bkw)
    # the noise counts the epochs (and batches) of both phases, as `start_epoch` does
    fkw = dict(wd=kwargs.get('wd'), cbs=kwargs.get('cbs'), reset_opt=kwargs.get('reset_opt', False), step=kwargs.get('step', 'batch'),
               total_epochs=freeze_epochs+epochs, epochs_name='freeze_epochs+epochs', lr_name='base_lr',
               **{k: kwargs[k] for k in _NOISE_ARGS if k in kwargs})
    frozen = _prepare(learn, freeze_epochs, slice(base_lr), build, start_epoch=start, **fkw) if start < freeze_epochs else None
    unfrozen = _prepare(learn, epochs, slice(base_lr/2/lr_mult, base_lr/2), build, start_epoch=max(0, start-freeze_epochs),
                        epoch_offset=freeze_epochs, **fkw) if epochs else None  # `epochs=0`: the model is unfrozen, not trained
    return frozen,unfrozen

@patch
@delegates(Learner.fit_cos_anneal, but=['n_epoch', 'lr_max', 'pct_warmup', 'div_final', 'anneal'])
def fine_tune_anneal(self:Learner,
    epochs:int,               # Epochs of the unfrozen phase (0: train the head only, then unfreeze, as fastai's `fine_tune(0)`)
    base_lr:float|str=2e-3,   # Peak lr of the frozen phase (the unfrozen phase peaks at `base_lr/2`); 'auto': tuned for this call
    freeze_epochs:int=1,      # Epochs of the frozen phase (0: skip it)
    lr_mult:float=100,        # Discriminative lrs of the unfrozen phase span `base_lr/2/lr_mult` to `base_lr/2`
    pct_warmup:float=0.1,     # Fraction of each phase spent warming up
    div_final:float=1e5,      # Each phase ends at its peak/`div_final`
    anneal:str|callable='cos',   # Anneal shape of both phases
    **kwargs,
):
    rest = (freeze_epochs, lr_mult, pct_warmup, div_final, anneal)
    if isinstance(base_lr, str):  # 'auto' (lr_tune refuses other strings); both phases watched for a collapse, as one fit
        if (own := sorted({'fit', 'budget', 'monitor', 'show_plot'} & set(kwargs))):  # `fit_tuned`'s options, as the other variants
            raise TypeError(f"fine_tune_anneal() got an unexpected keyword argument {own[0]!r} (tuning options go to "
                            f"learn.fit_tuned(..., fit='fine_tune_anneal'))")
        _fit_tuned(self, 'fine_tune_anneal', 'base_lr', (epochs, base_lr, *rest), kwargs); return
    # validate both phases before freezing, so a bad argument leaves the learner untouched
    frozen,unfrozen = fine_tune_phases(self, epochs, base_lr, *rest, **kwargs)
    fine_tune_run(self, frozen, unfrozen, freeze_epochs, kwargs.get('start_epoch', 0))

def fine_tune_run(learn, frozen, unfrozen, freeze_epochs:int, start:int, watch=()):
    "Run `fine_tune_anneal`'s phases (`fine_tune_phases`), `watch` among the callbacks of both: once it fired, the second does not run"
    # The uninterrupted run clears the optimizer state at each freeze/unfreeze (`Learner.freeze_to` does); a resumed run
    # clears it only at the transitions it replays, so the state loaded from a checkpoint mid-phase survives.
    freeze_epochs,start = int(freeze_epochs),int(start)  # checked by `fine_tune_phases`: a whole float counts as its int (`range`)
    if freeze_epochs and unfrozen and any(isinstance(c, SaveModelCallback) and c.every_epoch for c in L(unfrozen['cbs']) + L(learn.cbs)):
        warnings.warn(f"fine_tune_anneal: SaveModelCallback(every_epoch=...) numbers each phase's epochs from 0, so the unfrozen phase's "
                      f"files overwrite the frozen phase's: its `model_k` is epoch {freeze_epochs}+k of the run (resume from it with "
                      f"start_epoch={freeze_epochs}+k+1)")
    if start and (w := resume_warning(learn, 'fine_tune_anneal', (frozen or unfrozen)['cbs'], start)): warnings.warn(w)
    if learn.opt is None: learn.create_opt()
    if frozen:
        (learn.freeze_to if start == 0 else learn.opt.freeze_to)(-1); _launch(learn, **{**frozen, 'cbs': frozen['cbs'] + L(watch)})
        if any(w.fired is not None for w in L(watch)): return
    elif start: _replay_shuffles(learn.dls.train, freeze_epochs)  # the frozen phase's epochs, skipped without a fit
    (learn.freeze_to if start <= freeze_epochs else learn.opt.freeze_to)(0)  # unfrozen at the end, as fastai's fine_tune(0) leaves it
    if unfrozen: _launch(learn, **{**unfrozen, 'cbs': unfrozen['cbs'] + L(watch)})

Learner.fine_tune_anneal.__doc__ = VARIANTS['fine_tune_anneal'].doc
