"""`AnnealPlateau`: reduce-on-plateau as a factor on whatever lr the schedule sets, so it composes with any fit.

fastai's `ReduceLROnPlateau` divides the optimizer's lr once per epoch, and the `ParamScheduler` of `fit_one_cycle`,
`fit_flat_cos` or any `fit_*_anneal` writes its own value over it at the next batch: the reduction is undone. Here the
plateau logic of torch's `ReduceLROnPlateau` (same arguments, same meaning) moves a factor `scale`, and every training
batch steps at `max(lr*scale, min(lr, min_lr))` of each param group, `lr` being what the schedule (or plain `fit`) set.

Where the state lives between processes: in the optimizer's hypers (first param group, one number per field under keys
`'anneal_plateau_<field>'`: loggers such as fastai's TensorBoard callback write every hyper as a scalar), because
fastai's checkpoints (`learn.save`, `SaveModelCallback(with_opt=True)`) store `opt.state_dict()` = per-param state +
hypers, and `learn.load` gives the hypers back before the resumed fit starts; no fastai name is patched and no file is
written by this module. The per-param state would reach fastai's steppers as arguments, and so would a hyper during a
step: so the keys are written after each epoch's validation (before `SaveModelCallback` saves, and before `after_fit`) and
removed while training batches run, and the fused kernels of `_multi_tensor.py` only read the hypers they name. Outside
a fit with this callback (e.g. a fit without it after loading a checkpoint) the keys are hypers that fastai's steppers take
in their `**kwargs` as they take every hyper they do not use. With `OptimWrapper` (torch optimizers) the keys and the
scaled lr go into torch's `param_groups`, which torch's `state_dict` saves too.

Each fit starts afresh (as fastai's trackers with `reset_on_fit`) unless it is a resume (`start_epoch > 0`, fastai's
`SkipToEpoch`), which continues from the state the loaded checkpoint holds. That decision is taken at the fit's first trained
epoch, not in `before_fit`: `learn.validate()` also sends `before_fit`/`after_fit` to a Learner-level callback, and must leave
a loaded state alone.

After each epoch's validation (so in that epoch's checkpoint) and after a fit, the optimizer holds the lr the run stands at
(the last scheduled lr, scaled), so `fit_cooldown()` goes on from the reduced lr, in memory or from a checkpoint. That holds for
a fit of this package that Ctrl-C or an exception stops, too (fastai's own fits skip `after_fit` then: the lr and the state of
the last epoch's checkpoint are right, the optimizer in memory may hold neither); the next
training phase takes the schedule's lr back, and fastai's fits reset the lr before their first batch, so nothing compounds.
A fit stopped before its first trained batch changed nothing: the state it took out of the optimizer goes back as it was.
"""
from __future__ import annotations
import math, warnings
import torch
from fastcore.basics import store_attr
from fastai.learner import SkipToEpoch
from fastai.callback.core import Callback
from fastai.callback.schedule import ParamScheduler
from fastai.optimizer import Optimizer, OptimWrapper, _BaseOptimizer
from ._checks import check_int, check_float, check_choice, check_lrs
from ._groups import n_groups, recorded as _recorded, lower_is_better

__all__ = ['AnnealPlateau', 'plateau_state']

STATE_KEY = 'anneal_plateau'  # the hyper of the first param group that carries the state through fastai's checkpoints

def _hyper_dicts(opt) -> list:
    "The dicts that hold each param group's hypers and are saved with the optimizer: torch's `param_groups` behind an `OptimWrapper`"
    return opt.opt.param_groups if isinstance(opt, OptimWrapper) else opt.hypers

def plateau_state(opt:Optimizer|None) -> dict|None:
    ("The `AnnealPlateau` state `opt` carries (in its first param group's hypers, one number per key `anneal_plateau_<field>`, "
     "as a checkpoint saves it), or None")
    if not isinstance(opt, (_BaseOptimizer, torch.optim.Optimizer)):
        raise TypeError(f"opt must be an optimizer (a fastai `Optimizer`, an `OptimWrapper` or a torch one), got {type(opt).__name__}: "
                        "a learner has one once it was fitted or `create_opt()` ran")
    h = opt.param_groups[0] if isinstance(opt, torch.optim.Optimizer) else _hyper_dicts(opt)[0]
    if isinstance(h.get(STATE_KEY), dict): return dict(h[STATE_KEY])  # a checkpoint of an earlier version: one dict
    st = {k[len(STATE_KEY)+1:]: v for k,v in h.items() if k.startswith(STATE_KEY + '_')}
    return st or None

def _pop_state(opt) -> dict|None:
    "`plateau_state(opt)`, its keys taken out of every param group"
    st = plateau_state(opt)
    for h in _hyper_dicts(opt):
        for k in [k for k in h if k == STATE_KEY or k.startswith(STATE_KEY + '_')]: del h[k]
    return st

class AnnealPlateau(Callback):
    ("Scale every param group's scheduled lr by a factor that `ReduceLROnPlateau`'s rule (torch: `monitor`, `mode`, `factor`, "
     "`patience`, `threshold`, `threshold_mode`, `cooldown`, `min_lr`, `eps`) lowers when `monitor` stops improving")
    # After the `ParamScheduler` (60): its `before_batch` sets the lr this one scales, and its `after_batch` (as the `Recorder`'s,
    # 50) records the scaled lr before this one puts the schedule's value back.
    # The plateau logic runs in `after_validate`, after the `Recorder` (50) logged the epoch's values and before
    # `SaveModelCallback` (61) saves at `after_epoch`, so an epoch's checkpoint holds the state that epoch produced.
    order,run_valid = ParamScheduler.order + 4,False

    def __init__(self,
        monitor:str='valid_loss',  # 'train_loss', 'valid_loss' or a metric's name (`Recorder.metric_names`), as fastai's TrackerCallback
        mode:str=None,             # 'min' | 'max'; None: 'min' if `monitor` names a loss, an error or a regression metric, else 'max'
        factor:float=0.1,          # Multiplies the scale at each reduction, in (0, 1)
        patience:int=10,           # Epochs without improvement tolerated before a reduction, >= 0
        threshold:float=1e-4,      # Least change that counts as an improvement, >= 0
        threshold_mode:str='rel',  # 'rel': relative to the best value | 'abs': in the monitored unit
        cooldown:int=0,            # Epochs after a reduction during which bad epochs are not counted, >= 0
        min_lr:float|list=0.,      # Floor of the reduced lr, >= 0, one for all groups or one per group; never raises a scheduled lr
        eps:float=1e-8,            # Skip a reduction lowering each lr by <= `eps` (torch's, plain `fit`; a schedule: the scale), >= 0
    ):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of a recorded value such as 'valid_loss', got {monitor!r}")
        if mode is None: mode = 'min' if lower_is_better(monitor) else 'max'
        mode,threshold_mode = check_choice('mode', mode, ('min', 'max')),check_choice('threshold_mode', threshold_mode, ('rel', 'abs'))
        factor,threshold = check_float('factor', factor, 0., 1.),check_float('threshold', threshold, 0., lo_open=False)
        patience,cooldown = check_int('patience', patience, 0),check_int('cooldown', cooldown, 0)
        min_lr = check_lrs('min_lr', min_lr, zero_ok=True)
        min_lr = min_lr.tolist() if hasattr(min_lr, 'tolist') else min_lr
        eps = check_float('eps', eps, 0., lo_open=False)
        store_attr('monitor,mode,factor,patience,threshold,threshold_mode,cooldown,min_lr,eps')
        self._scheduled = False
        self.reset()

    # -------------------------------------------------------- the plateau rule: pure, one monitored value per epoch
    def reset(self):
        "Back to a fresh run: scale 1, no best value yet, no bad epoch, no cooldown"
        self.scale,self.best = 1.,(math.inf if self.mode == 'min' else -math.inf)
        self.num_bad_epochs,self.cooldown_counter,self.epochs = 0,0,0
        self._bases,self._last,self._started,self._trained,self._epoch_bases = None,None,False,False,None

    def is_better(self, v:float) -> bool:
        "Whether `v` improves on `best` by more than `threshold` (relative or absolute, in the direction of `mode`)"
        sign = 1. if self.mode == 'max' else -1.
        bar = self.best * (1. + sign*self.threshold) if self.threshold_mode == 'rel' else self.best + sign*self.threshold
        return v > bar if self.mode == 'max' else v < bar

    def step(self,
        value:float,      # The monitored value of the epoch that just ended
        bases:list=None,  # Each group's lr, constant (the callback: under plain `fit`); None: `eps` applies to the scale
    ) -> float:
        ("Account one epoch's `value` (torch's `ReduceLROnPlateau.step`); returns the new `scale`. A reduction is skipped when it "
         "would lower each group's lr (`lrs(bases)`) by `eps` or less, as torch's: with one group and plain `fit`, torch's lrs")
        try: value = float(value)  # as torch's `ReduceLROnPlateau.step` takes it (a 1-element tensor, a Decimal); NaN is no improvement
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"value must be a number (the epoch's monitored value), got {value!r}") from None
        if self.is_better(value): self.best,self.num_bad_epochs = value,0
        else: self.num_bad_epochs += 1
        if self.cooldown_counter > 0: self.cooldown_counter,self.num_bad_epochs = self.cooldown_counter - 1,0
        if self.num_bad_epochs > self.patience:
            new = self.scale * self.factor
            if bases is None: drops = [self.scale - new]
            else: drops = [a - b for a,b in zip(self.lrs(bases), self.lrs(bases, new))]
            if max(drops) > self.eps: self.scale = new  # several groups share one scale: one whose drop is within eps moves too
            self.cooldown_counter,self.num_bad_epochs = self.cooldown,0
        return self.scale

    def state_dict(self) -> dict:
        "The running state, as plain floats and ints (fastai's `weights_only` loader reads them back)"
        return dict(scale=self.scale, best=self.best, num_bad_epochs=self.num_bad_epochs, cooldown_counter=self.cooldown_counter,
                    epochs=self.epochs)

    def load_state_dict(self, sd:dict):
        "Continue from `state_dict()`'s dict"
        self.scale,self.best = float(sd['scale']),float(sd['best'])
        self.num_bad_epochs,self.cooldown_counter,self.epochs = int(sd['num_bad_epochs']),int(sd['cooldown_counter']),int(sd['epochs'])

    def lrs(self, bases:list, scale:float=None) -> list:
        ("The lr each group steps at when its schedule set `bases`: scaled (by `scale`, None: the current one), floored at `min_lr` "
         "unless the schedule is already below it")
        scale = self.scale if scale is None else scale
        return [max(b*scale, min(b, m)) for b,m in zip(bases, self._min_lrs(len(bases)))]

    def _min_lrs(self, n:int) -> list:
        if not isinstance(self.min_lr, list): return [self.min_lr]*n
        if len(self.min_lr) == 1: return self.min_lr*n
        if len(self.min_lr) != n:
            raise ValueError(f"min_lr has {len(self.min_lr)} values but the optimizer has {n} parameter group(s): give one value or {n}")
        return self.min_lr

    # -------------------------------------------------------- the state in the optimizer's hypers (see the module's docstring)
    def _stash(self, st:dict|None=None):
        "The state `st` (None: this callback's) in the optimizer's hypers, where a checkpoint saves it"
        if getattr(self.learn, 'opt', None) is not None:
            st = self.state_dict() if st is None else st
            _hyper_dicts(self.learn.opt)[0].update({f'{STATE_KEY}_{k}': v for k,v in st.items()})

    def _unstash(self) -> dict|None: return _pop_state(self.learn.opt)

    # -------------------------------------------------------- the callback
    def check_learner(self, learn) -> int:
        ("Raise unless `monitor` is recorded by `learn` and `min_lr` fits its param groups; returns the monitor's index. This "
         "package's fits call it before touching anything; fastai's own fits reach it in `before_fit`, after their `fit` set the lr")
        names = _recorded(learn)
        if self.monitor not in names:
            raise ValueError(f"monitor must be one of the recorded values {names} (fastai's Recorder), got {self.monitor!r}")
        self._min_lrs(len(_hyper_dicts(learn.opt)) if learn.opt is not None else n_groups(learn))
        return names.index(self.monitor)

    def before_fit(self):
        "Stand aside in a range test, a tuning trial or `get_preds`; else check `monitor` and `min_lr` against this learner"
        self.run = not hasattr(self.learn, 'lr_finder') and not hasattr(self.learn, 'gather_preds')  # fastai's TrackerCallback test
        if not self.run: return
        self.idx = self.check_learner(self.learn)
        self._started,self._trained,self._taken = False,False,None
        # a schedule moves the lr (warmups, anneals, restarts): a reduction scales lrs of the rest of the fit that no batch so far
        # bounds, so `eps` applies to the scale; with the lr constant (plain `fit`) it applies to each group's lr, as torch's
        self._scheduled = any(isinstance(c, ParamScheduler) and 'lr' in c.scheds for c in self.learn.cbs)

    def _start(self):
        "At the fit's first trained epoch (`learn.validate()` also sends `before_fit`): start fresh, or resume from the checkpoint"
        saved,skip = self._unstash(),max([cb._skip_to for cb in self.learn.cbs if isinstance(cb, SkipToEpoch)], default=0)
        self.reset()
        self._taken = saved  # what the optimizer held: it goes back as it was if the fit ends before a batch trained
        self._started = True
        if not skip: return
        if self.monitor == 'train_loss':
            warnings.warn("AnnealPlateau: resuming with monitor='train_loss', fastai's smoothed loss, which each fit starts afresh and no "
                          "checkpoint holds: the resumed run sees other values than the uninterrupted one, and may reduce at other "
                          "epochs; monitor 'valid_loss' or a metric to resume exactly")
        if saved is None:
            warnings.warn(f"AnnealPlateau: resuming at epoch {skip}, but the optimizer holds no plateau state (was it saved with_opt=True "
                          "while this callback ran?); the scale starts again at 1")
        else:
            self.load_state_dict(saved)
            if self.epochs != skip:
                warnings.warn(f"AnnealPlateau: the checkpoint's plateau state is from epoch {self.epochs}, the fit resumes at "
                              f"epoch {skip}")

    def before_train(self):
        if not self._started: self._start()
        self._unstash(); self._trained = False  # no stepper sees the state while batches run
        if self._epoch_bases is not None:  # the schedule's lr back (scaled since the last validation): a plain `fit` must not compound
            for h,b in zip(_hyper_dicts(self.opt), self._epoch_bases): h['lr'] = b
            self._epoch_bases = None
    def before_batch(self):
        "Scale what the schedule set for this batch (after `ParamScheduler.before_batch`): recorded on every batch, stepped or not"
        hs = _hyper_dicts(self.learn.opt)
        bases = [h['lr'] for h in hs]
        # per batch, in `__dict__`: `Callback.__setattr__` asks the learner and its model whether each name shadows theirs
        self.__dict__.update(_bases=bases, _last=bases)
        for h,lr in zip(hs, self.lrs(bases)): h['lr'] = lr

    def _put_back(self):
        "The schedule's own lr back in the optimizer: without a scheduler (plain `fit`) the scale must not compound"
        if self._bases is None: return
        for h,b in zip(_hyper_dicts(self.learn.opt), self._bases): h['lr'] = b
        self.__dict__['_bases'] = None

    def after_batch(self): self._put_back()
    # a callback of lower order that cancels the epoch or its training from `after_batch` (fastai's `ShortEpochCallback`) skips this
    # one's `after_batch`: the schedule's lr goes back all the same (plain `fit` would scale it again; the run's end would be unscaled)
    def after_cancel_train(self): self._put_back()
    def after_cancel_epoch(self): self._put_back()
    # and one that cancels the fit mid-batch: before the scheduler's `after_fit` (60) takes timm's noise off the lr it finds
    def after_cancel_fit(self): self._put_back()
    def after_train(self): self._trained = True
    def after_validate(self):
        "One plateau step with the value the `Recorder` logged for this epoch (none for an epoch cancelled or skipped by a resume)"
        if not self._trained: return
        self._trained,rec = False,self.recorder
        if not (getattr(rec, 'cancel_train', False) or getattr(rec, 'cancel_valid', False)):
            self.step(rec.log[1 + self.idx], None if self._scheduled else self._last)
        self.epochs = self.epoch + 1  # epochs of this fit accounted for: a resume checks it against its `start_epoch`
        self._stand()

    def _stand(self):
        ("The state stashed and the optimizer at the lr the run stands at (the last scheduled lr, scaled) until the next training "
         "phase: what an epoch's checkpoint saves, and where `fit_cooldown()` starts, in memory or from that checkpoint")
        self._stash()
        self._epoch_bases = [h['lr'] for h in _hyper_dicts(self.opt)]  # without noise: the scheduler's `after_train` (60) took it off
        for h,lr in zip(_hyper_dicts(self.opt), self.lrs(self._epoch_bases)): h['lr'] = lr

    def after_fit(self):
        "The optimizer left where the run stands (`_stand`): as the last validation left it, or at once for a fit cancelled mid-epoch"
        self._put_back()
        # a stash in place is the last epoch's (or that of the checkpoint `SaveModelCallback` reloaded, 61): its lr is scaled already
        if self._started and plateau_state(self.opt) is None:
            if self._last is not None: self._stand()
            # a fit stopped before its first trained batch (a resume cancelled at once) changed nothing: the checkpoint's state goes back
            elif self._taken is not None: self._stash(self._taken)
        # `_started` of an ended fit must not make an interrupted next one stand
        self._epoch_bases,self._started,self._taken = None,False,None
