"An optimizer that anneals its own learning rate: fastai's `Optimizer` and steppers (fused/foreach kernels in `_multi_tensor.py`)."
from __future__ import annotations
import copy, inspect
from collections.abc import Iterable
from functools import partial
import numpy as np, torch
from fastcore.basics import store_attr
from fastcore.foundation import L
from fastcore.meta import delegates
from fastai.optimizer import (Optimizer, Lookahead, weight_decay, l2_reg, average_grad, average_sqr_grad, step_stat,
                              adam_step, sgd_step, momentum_step, rms_prop_step, pytorch_hp_map, _update)
from .schedules import get_anneal
from ._checks import check_int, check_float, check_pct, check_bool, check_choice, check_lrs, finite_from
from . import _multi_tensor

__all__ = ['ANNEAL_IMPLS', 'anneal_lr', 'AnnealOptimizer', 'SGDAnneal', 'RMSPropAnneal', 'AdamAnneal', 'annealed']

ANNEAL_IMPLS = ('auto', 'fused', 'foreach', 'stepper')
_MOMENTS = ('grad_avg', 'sqr_avg')  # the state fastai's Adam/SGD/RMSProp steppers keep, one tensor of the param's shape each

# ---------------------------------------------------------------- the pure part: lr at clock `t`
def _check_anneal(anneal='exp', anneal_rate=None, anneal_every=None, total_steps=None, lr_min=0.) -> dict:
    "Validated annealing settings; `fn` is None for the staircase 'exp', whose `anneal_rate`/`anneal_every` default to 0.9999 and 1"
    fn = None if isinstance(anneal, str) and anneal == 'exp' else get_anneal(anneal)
    if fn is not None:  # a shaped anneal runs over `total_steps`: a decay rate would be silently ignored
        given = [f'{k}={v!r}' for k,v in (('anneal_rate', anneal_rate), ('anneal_every', anneal_every)) if v is not None]
        if given: raise ValueError(f"{' and '.join(given)} applies to anneal='exp' only; anneal={anneal!r} goes from lr to lr_min over "
                                   "total_steps: leave anneal_rate and anneal_every as None")
    else:
        anneal_rate = check_float('anneal_rate', 0.9999 if anneal_rate is None else anneal_rate, 0., 1., lo_open=True, hi_open=False)
        anneal_every = check_int('anneal_every', 1 if anneal_every is None else anneal_every, 1)
    if fn is None and total_steps is not None:
        raise ValueError(f"total_steps applies to shaped anneals ('cos', 'lin', 'sqrt', 'poly' or a function); "
                         f"anneal='exp' decays by anneal_rate every anneal_every steps instead, got total_steps={total_steps!r}")
    if fn is not None:
        if total_steps is None:
            raise ValueError(f"total_steps (the number of optimizer steps to anneal over, >= 1) is required with anneal={anneal!r}, got "
                             "None")
        total_steps = check_int('total_steps', total_steps, 1)
    lr_min = check_float('lr_min', lr_min, 0., lo_open=False)
    return dict(anneal=anneal, fn=fn, anneal_rate=anneal_rate, anneal_every=anneal_every, total_steps=total_steps, lr_min=lr_min)

def _lr_at(lr, t, fn, anneal_rate, anneal_every, total_steps, lr_min, **kwargs):
    floor = min(lr, lr_min)  # a floor never raises an lr set below it (e.g. by a warmup)
    if fn is None: return max(lr * anneal_rate ** (t // anneal_every), floor)
    return fn(lr, floor, min(t / total_steps, 1.))

def _bad_lr(lr, base, where:str, anneal):
    ("Raise for `lr`, annealed from the group's `base` lr and not a finite number >= 0 (`finite_from`), naming the culprit and `where` "
     "(its callers test first: the message is built only for a bad lr)")
    if not finite_from(base):  # a scheduler (or a hand) set the group's lr itself to this
        raise ValueError(f"the lr of {where} is {base!r}; an lr must be a finite number >= 0")
    raise ValueError(f"anneal={anneal!r} gave the lr {lr!r} from the lr {base!r} ({where}); an annealer must give a finite lr >= 0")

def _check_shape(cfg:dict, lrs:list):
    ("A shaped anneal (`cfg` from `_check_anneal`) tried from each group's lr in `lrs` (above 0) over its `total_steps`: finite lrs "
     ">= 0, or raise. An annealer that fails on the placeholder lr a fit will replace (fastai's `SchedExp` at 0) is left to `step`")
    if cfg['fn'] is None: return
    for i,lr in enumerate(lrs):
        if not finite_from(lr, strict=True): continue
        for pos in np.linspace(0., 1., 65).tolist():
            try: v = cfg['fn'](lr, min(lr, cfg['lr_min']), pos)
            except Exception: break  # checked again, with the lr it steps at, before any step
            if not finite_from(v): _bad_lr(v, lr, f"param group {i} at {pos:.0%} of total_steps", cfg['anneal'])

def anneal_lr(lr:float,       # Learning rate of the group (the hyper `lr`, as a `ParamScheduler` set it)
    t:int,                    # Anneal clock: optimizer steps this group has taken
    anneal:str|callable='exp',  # 'exp' (staircase `anneal_rate**(t//anneal_every)`) | 'cos' | 'lin' | 'sqrt' | 'poly' | f(start, end, pos)
    anneal_rate:float=None,   # 'exp' only: factor applied every `anneal_every` steps, in (0, 1] (None: 0.9999)
    anneal_every:int=None,    # 'exp' only: steps between two decays (None: 1; `len(dls.train)`: once per epoch)
    total_steps:int=None,     # Shaped anneals: steps from `lr` to `lr_min`; the lr stays at `lr_min` afterwards
    lr_min:float=0.,          # Floor of the annealed lr (never raises an lr that is already below it)
) -> float:
    "The lr the steppers see at clock `t`: `lr*anneal_rate**(t//anneal_every)` for 'exp', else `anneal(lr, lr_min, t/total_steps)`"
    lr,t = check_float('lr', lr, 0., lo_open=False),check_int('t', t, 0)
    res = _lr_at(lr, t, **_check_anneal(anneal, anneal_rate, anneal_every, total_steps, lr_min))
    if not finite_from(res): _bad_lr(res, lr, f"t {t}", anneal)
    return res

# ---------------------------------------------------------------- argument checks of the factories
def _check_lr(lr):
    "`lr` as fastai's `Optimizer` takes it (a float, a slice or one per group), every value finite and >= 0"
    lr = check_lrs('lr', lr, zero_ok=True, slice_ok=True)
    return lr.tolist() if isinstance(lr, np.ndarray) else lr

_HYPER_CHECKS = {'mom': check_pct, 'sqr_mom': check_pct, 'eps': check_float, 'wd': partial(check_float, lo=0., lo_open=False)}

def _check_hypers(hypers:dict, per_group:bool=True, eps_zero_ok:bool=False) -> dict:
    ("Each hyper-parameter through its check (unknown names pass unchecked); `per_group`: a list or tuple holds one value per group; "
     "`eps_zero_ok`: an optimizer `annealed` wraps may take eps=0 (fastai's `radam_step` does), ours divide by it")
    checks = {**_HYPER_CHECKS, 'eps': partial(check_float, lo=0., lo_open=False)} if eps_zero_ok else _HYPER_CHECKS
    def check(k, v):
        if k == 'lr': return _check_lr(v)
        if k not in checks: return v
        if per_group and isinstance(v, slice):  # `set_hyper` spreads it over the groups, as for the lr (a start of 0 is no start)
            if v.step is not None or v.stop is None:
                raise ValueError(f"{k} as a slice must be slice(stop) or slice(start, stop), got {v!r}")
            return slice(checks[k](f'{k}.start', v.start) if v.start else None, checks[k](f'{k}.stop', v.stop))
        if per_group and isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim == 1: v = v.tolist()
        if per_group and isinstance(v, (list, tuple, L)): return [checks[k](f'{k}[{i}]', x) for i,x in enumerate(v)]  # as `set_hyper`
        return checks[k](k, v)
    return {k: check(k, v) for k,v in hypers.items()}

def _check_lengths(hypers:dict, n:int):
    ("Refuse a per-group list whose length is neither 1 nor `n`, the number of groups: fastai's `set_hyper` asserts it (a bare "
     "AssertionError), or drops the extra values under `python -O`")
    for k,v in hypers.items():
        if isinstance(v, (list, tuple, L)) and len(v) not in (1, n):
            raise ValueError(f"{k} has {len(v)} values but the optimizer has {n} parameter group(s): give one value, a slice, "
                             f"or {n} value(s)")

_ANNEAL_ARGS = ('anneal', 'anneal_rate', 'anneal_every', 'total_steps', 'lr_min', 'impl')
# the mark `freeze_to` leaves on a param it froze: a frozen group keeps its anneal clock (a `train_bn` norm in it steps) after
# `create_opt` forgets `frozen_idx`; on the param, so `learn.export()` pickles it with the model
FROZEN = '_fastai_anneal_frozen'
_TORCH_NAMES = "(torch's momentum is mom, betas=(b1, b2) is mom=b1, sqr_mom=b2, alpha is sqr_mom, weight_decay is wd)"

def _check_kwargs(name:str, takes:str, kwargs:dict):
    "A factory takes its own hypers and the anneal settings only, as fastai's `Adam`/`SGD` do: refuse others (torch's names, typos)"
    bad = sorted(set(kwargs) - set(_ANNEAL_ARGS))
    if bad: raise TypeError(f"{name} got unknown argument(s) {bad}; it takes {takes} and the anneal settings {', '.join(_ANNEAL_ARGS)} "
                            f"{_TORCH_NAMES}")

def _stepper_args(cbs) -> set:
    "The names fastai steppers read: their named parameters and their `defaults`"
    res = set()
    for cb in cbs:
        res |= set(getattr(cb, 'defaults', {})) | set(getattr(getattr(cb, 'func', cb), 'defaults', {}))
        try: res |= {k for k,v in inspect.signature(cb).parameters.items() if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)}
        except (TypeError, ValueError): pass  # a callable without a signature: nothing known
    return res

def _group_moms(params) -> tuple:
    "`(params, the momentums its torch-style group dicts set)`: 'momentum', 'mom' or betas[0]; a generator is made a list"
    if isinstance(params, torch.Tensor): return params,[]
    params,moms = list(params),[]
    for g in params:
        if not isinstance(g, dict): continue
        for k,v in g.items():
            if pytorch_hp_map.get(k, k) == 'mom': moms.append(v)
            elif k == 'betas' and isinstance(v, (tuple, list)) and len(v) == 2: moms.append(v[0])
    return params,moms

def _any_mom(mom, group_moms) -> bool:
    "Whether the default `mom` (one value or one per group) or a param group asks for momentum"
    return any(m != 0 for m in [*(mom if isinstance(mom, (list, tuple)) else [mom]), *group_moms])

def _check_impl(impl): return check_choice('impl', impl, ANNEAL_IMPLS)

# ---------------------------------------------------------------- torch-style param groups
def _split_groups(params, names) -> tuple:
    ("`(param_lists, per-group hyper overrides)` from what torch users pass: tensors, or dicts with 'params' and hypers in torch or "
     "fastai names")
    params = _as_list(params)
    if not any(isinstance(o, dict) for o in params): return _fastai_params(params),None
    if not all(isinstance(o, dict) for o in params): raise TypeError("params must be all tensors or all param-group dicts, got a mix")
    lists,overrides = [],[]
    for i,g in enumerate(params):
        if 'params' not in g: raise ValueError(f"param group {i} must have a 'params' key, got keys {sorted(g)}")
        ps = g['params']
        ps = [ps] if isinstance(ps, torch.Tensor) else list(ps)
        if not ps: raise ValueError(f"param group {i} holds no parameters")
        hp = {}
        for k,v in g.items():
            if k == 'params': continue
            if k == 'betas':
                if 'sqr_mom' not in names:
                    raise ValueError(f"param group {i}: betas sets mom and sqr_mom, and no stepper of this optimizer takes sqr_mom; "
                                     "give momentum (or mom) instead")
                if not isinstance(v, (tuple, list)) or len(v) != 2:
                    raise TypeError(f"param group {i}: betas must be a pair (mom, sqr_mom), got {v!r}")
                hp.update(mom=v[0], sqr_mom=v[1])
                continue
            name = pytorch_hp_map.get(k, k)
            if name not in names:
                raise ValueError(f"param group {i}: unknown hyper-parameter {k!r}; this optimizer takes "
                                 f"{', '.join(map(repr, sorted(names)))} (or torch's names for them)")
            hp[name] = v
        if 'lr' in hp: hp['lr'] = check_float(f'param group {i} lr', hp['lr'], 0., lo_open=False)
        lists.append(ps); overrides.append(_check_hypers(hp, per_group=False))
    return _fastai_params(lists),overrides

def _as_list(params) -> list:
    "`params` as a non-empty list: a tensor is one; a module (not its parameters) or a non-iterable raises"
    if isinstance(params, torch.Tensor): return [params]
    if isinstance(params, torch.nn.Module) or not hasattr(params, '__iter__'):
        raise TypeError(f"params must be tensors (e.g. model.parameters()), groups of them or param-group dicts, got a "
                        f"{type(params).__name__}")
    params = list(params)
    if not params: raise ValueError("params must hold at least one tensor or param group, got none")
    return params

def _fastai_params(params:list) -> list:
    ("`params` (tensors, or groups of them: lists, tuples, `L`s, generators) as fastai's `Optimizer` reads them, tensors or a list of "
     "lists; raises on anything else, or on a tensor in two places (it would step twice, as torch refuses)")
    groups = [not isinstance(o, torch.Tensor) for o in params]
    if any(groups) and not all(groups): raise TypeError("params must be all tensors or all param groups (lists of tensors), got a mix")
    bad = next((o for o in params if isinstance(o, torch.nn.Module) or (all(groups) and not hasattr(o, '__iter__'))), None)
    if bad is not None: raise TypeError(f"params must be tensors (e.g. model.parameters()) or groups of them, got a {type(bad).__name__}")
    res = [list(o) for o in params] if all(groups) else params
    seen = {}
    for i,pg in enumerate(res if all(groups) else [res]):
        for p in pg:
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"params must be tensors (e.g. model.parameters()) or groups of them, got a {type(p).__name__}"
                                + (f" in param group {i}" if all(groups) else ""))
            if id(p) in seen:
                raise ValueError(f"a param of shape {tuple(p.shape)} is in param group {seen[id(p)]} and in param group {i}: "
                                 "it would step twice; give each param one group")
            seen[id(p)] = i
    return res

# ---------------------------------------------------------------- the optimizer
class AnnealOptimizer(Optimizer):
    "fastai `Optimizer` whose steppers see `lr` x an anneal factor that follows each param group's own step clock"
    def __init__(self,
        params:Iterable,          # Tensors (e.g. `model.parameters()`), lists of tensors (one per group) or torch-style group dicts
        cbs:list,                 # fastai steppers, e.g. `[weight_decay, average_grad, momentum_step]`
        anneal:str|callable='exp',  # 'exp' | 'cos' | 'lin' | 'sqrt' | 'poly' | f(start, end, pos): see `anneal_lr`
        anneal_rate:float=None,   # 'exp' only: factor applied every `anneal_every` steps, in (0, 1] (None: 0.9999)
        anneal_every:int=None,    # 'exp' only: steps between two decays (None: 1; `len(dls.train)`: once per epoch)
        total_steps:int=None,     # Shaped anneals: steps from `lr` to `lr_min`
        lr_min:float=0.,          # Floor of the annealed lr
        impl:str='auto',          # 'auto' (fastest on the device) | 'fused' | 'foreach' | 'stepper' (the per-parameter reference)
        **defaults                # Hyper-parameters (`lr`, `mom`, `wd`...), as fastai's `Optimizer`
    ):
        store_attr(impl=_check_impl(impl))
        cbs = list(L(cbs))  # one stepper, as fastai takes it, or a list
        if not cbs or not all(callable(cb) for cb in cbs):
            raise TypeError(f"cbs must be one fastai stepper or a list of them (e.g. [weight_decay, sgd_step]), got {cbs!r}")
        self.anneal_cfg = _check_anneal(anneal, anneal_rate, anneal_every, total_steps, lr_min)
        torch_names = sorted(k for k in defaults if (k in pytorch_hp_map or k == 'betas') and k not in _stepper_args(cbs))
        if torch_names: raise TypeError(f"AnnealOptimizer got torch's hyper name(s) {torch_names}; give fastai's names {_TORCH_NAMES}")
        if 'lr' not in defaults: raise TypeError("AnnealOptimizer needs lr= (the lr it anneals)")
        if 'anneal_step' in defaults:
            raise TypeError("anneal_step is the optimizer's own clock; it starts at 0 (set_hyper('anneal_step', n) sets it after)")
        defaults = _check_hypers(defaults)
        names = set(defaults) | {k for cb in cbs for k in {**getattr(cb, 'defaults', {}), **getattr(getattr(cb, 'func', cb), 'defaults',
                                                                                                    {})}}
        param_lists,overrides = _split_groups(params, names)
        _check_lengths(defaults, len(param_lists) if isinstance(param_lists[0], (list, tuple, L)) else 1)  # flat tensors: one group
        super().__init__(param_lists, cbs, anneal_step=0, **defaults)
        for h,o in zip(self.hypers, overrides or []): h.update(o)
        self._set_fast()
        _check_shape(self.anneal_cfg, [h['lr'] for h in self.hypers])

    def _set_fast(self):
        self.fast_kind = _multi_tensor.fast_kind(self.cbs)
        if self.impl not in ('fused', 'foreach'): return
        if self.fast_kind is None:
            raise ValueError(f"impl={self.impl!r} needs fastai's Adam or SGD steppers; these steppers run with impl='auto' or 'stepper'")
        for i,pg in enumerate(self.param_lists):  # dtypes are known now; sparse grads only at `step`
            p = next((p for p in pg if p.is_complex() or not p.is_floating_point()), None)
            if p is not None: raise ValueError(f"impl={self.impl!r} takes real floating-point params only, got a {p.dtype} param in "
                                               f"param group {i}; use impl='auto' or 'stepper'")

    @classmethod
    @delegates(__init__)
    def from_optimizer(cls,
        opt:Optimizer,            # A plain fastai `Optimizer`, e.g. what `RAdam(params, lr)` returns
        impl:str='auto',          # 'auto' | 'fused' | 'foreach' | 'stepper'
        **kwargs                  # The anneal settings of `AnnealOptimizer`
    ) -> AnnealOptimizer:
        "An `AnnealOptimizer` taking over `opt`'s params, steppers, state and hypers"
        if type(opt) is not Optimizer:
            raise TypeError(f"opt must be a plain fastai Optimizer (built from steppers), got {type(opt).__name__}")
        bad = set(kwargs) - set(inspect.signature(cls.from_optimizer).parameters)
        if bad: raise TypeError(f"from_optimizer got unknown argument(s) {sorted(bad)}; it takes the anneal settings of AnnealOptimizer")
        cfg,impl = _check_anneal(**kwargs),_check_impl(impl)
        res = cls.__new__(cls)
        res.__dict__.update(opt.__dict__)
        res.impl,res.anneal_cfg = impl,cfg
        res._set_fast()
        _check_shape(cfg, [h['lr'] for h in res.hypers])
        for h in res.hypers: h.setdefault('anneal_step', 0)
        return res

    # -------------------------------------------------------- the clock and the lr it gives
    def _frozen_idx(self): return getattr(getattr(self, '_outer', None) or self, 'frozen_idx', 0)  # a Lookahead freezes itself, not us
    def _frozen(self, i:int, pg) -> bool:
        ("Group `i` is frozen: below `frozen_idx`, or every param but the `force_train` ones (the norms `train_bn` keeps training) "
         "was frozen by `freeze_to` (`FROZEN`, on the param) and still is. The mark survives what resets `frozen_idx` to 0, "
         "`create_opt` (`learn.export()`, `fit(reset_opt=True)`, `load_learner`), and a param a user froze by hand is not one")
        if i < self._frozen_idx(): return True
        st,frozen = self.state,False
        for p in pg:  # an unfrozen group answers at its first trainable param
            if not p.requires_grad and p.__dict__.get(FROZEN, False): frozen = True
            elif not (p in st and st[p].get('force_train', False)): return False
        return frozen
    def _set_require_grad(self, rg:bool, p, pg, state:dict, h):
        "fastai's (`freeze_to` calls it for every param), and the param marked `FROZEN` when it freezes it"
        super()._set_require_grad(rg, p, pg, state, h)
        if p.requires_grad: p.__dict__.pop(FROZEN, None)
        else: p.__dict__[FROZEN] = True
    def _group_lr(self, hyper): return _lr_at(hyper['lr'], hyper.get('anneal_step', 0), **self.anneal_cfg)

    @property
    def anneal_steps(self) -> list:
        "The anneal clock of each param group: the steps it took while unfrozen"
        return [h.get('anneal_step', 0) for h in self.hypers]
    @property
    def anneal_lrs(self) -> list:
        "The lr each group's steppers will see at the next step"
        return [self._group_lr(h) for h in self.hypers]
    @property
    def anneal_factors(self) -> list:
        "`anneal_lrs` / hyper `lr`, per group (1 where the lr is 0)"
        return [self._group_lr(h) / h['lr'] if h['lr'] else 1. for h in self.hypers]

    # -------------------------------------------------------- stepping
    def zero_grad(self, set_to_none:bool=False):
        "Zero the gradients as fastai does, or drop them as torch's `set_to_none=True` does"
        for pg in self.param_lists:
            for p in pg:
                if p.grad is None: continue
                if set_to_none: p.grad = None
                else: p.grad.detach_(); p.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        "One step of every group that has gradients, at its annealed lr; advances the clock of each unfrozen group that stepped"
        loss = None
        if closure is not None:
            with torch.enable_grad(): loss = closure()
        todo = [(i, [p for p in pg if p.grad is not None], hyper) for i,(pg,hyper) in enumerate(zip(self.param_lists, self.hypers))]
        # every group's state, path and annealed lr first: a raise changes nothing
        todo = [(i, ps, hyper, self._path(self._state_fits(ps, i), i), self._checked_lr(hyper, i)) for i,ps,hyper in todo if ps]
        for i,ps,hyper,where,lr in todo:
            self._step_group(ps, {**hyper, 'lr': lr}, where)
            if not self._frozen(i, self.param_lists[i]): hyper['anneal_step'] = hyper.get('anneal_step', 0) + 1
        return loss

    def _state_fits(self, ps, i:int) -> list:
        ("`ps`, or raise when the moments fastai's steppers keep (`grad_avg`, `sqr_avg`) have another shape than their param: torch's "
         "fused kernels would walk them as raw memory past their end. Checked when group `i`'s shapes or the state dict changed since "
         "the last check (a param resized through `.data`, `load_state_dict`): about 0.6 us a param, a full check 1 us")
        shapes,seen = [(id(p), p.shape) for p in ps],self.__dict__.get('_fits')  # which params, and their shapes
        if seen is not None and seen[0] is self.state and seen[1].get(i) == shapes: return ps
        state = self.state
        for j,p in enumerate(ps):
            st = state.get(p)
            if st is None: continue
            for k in _MOMENTS:
                v = st.get(k)
                if isinstance(v, torch.Tensor) and v.shape != p.shape:
                    raise ValueError(f"param group {i}, param {j}: its optimizer state {k!r} has shape {tuple(v.shape)} and the param "
                                     f"{tuple(p.shape)}: the state was made for another param (a state dict saved with the params in "
                                     "another order, or a param resized through .data); call clear_state() or load the matching state")
        if seen is None or seen[0] is not self.state: seen = self.__dict__['_fits'] = (self.state, {})
        seen[1][i] = shapes
        return ps

    def load_state_dict(self, sd:dict):
        ("Load `sd` (from `state_dict`) as fastai does, after checking its groups, params and moments against this optimizer's (a "
         "mismatch raises and leaves the optimizer as it was); the hypers are copied, so two optimizers never share an anneal clock")
        self._check_sd(sd)
        super().load_state_dict({**sd, 'hypers': copy.deepcopy(sd['hypers'])})
        self.__dict__.pop('_fits', None)  # `_state_fits`'s memo held the state dict just replaced

    def _check_sd(self, sd:dict):
        "Raise unless `sd` is a fastai optimizer state dict for this optimizer's groups, params and moment shapes"
        if not isinstance(sd, dict) or not {'hypers', 'state'} <= set(sd):
            got = ("torch's format ('param_groups'): load it into a torch optimizer" if isinstance(sd, dict) and 'param_groups' in sd
                   else f"keys {sorted(sd)}" if isinstance(sd, dict) else f"a {type(sd).__name__}")
            raise TypeError(f"sd must be a fastai optimizer state dict, with 'hypers' and 'state', got {got}")
        ps = [p for pg in self.param_lists for p in pg]
        if len(sd['hypers']) != len(self.param_lists) or len(sd['state']) != len(ps):
            raise ValueError(f"sd has {len(sd['hypers'])} param group(s) and {len(sd['state'])} param state(s); this optimizer has "
                             f"{len(self.param_lists)} and {len(ps)}")
        for j,(p,st) in enumerate(zip(ps, sd['state'])):
            v = next((st[k] for k in _MOMENTS if isinstance(st, dict) and isinstance(st.get(k), torch.Tensor)
                      and st[k].shape != p.shape), None)
            if v is not None: raise ValueError(f"sd's state of param {j} has a moment of shape {tuple(v.shape)}, the param "
                                               f"{tuple(p.shape)}: it was saved for other params (or in another order)")

    def _checked_lr(self, hyper, i:int):
        "Group `i`'s annealed lr, or raise when it is not finite and >= 0 (a custom `anneal` that returns NaN or a negative lr)"
        t = hyper.get('anneal_step', 0)
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:  # `set_hyper` or a loaded state set it
            raise ValueError(f"param group {i}: anneal_step (its anneal clock) must be an int >= 0, got {t!r}; "
                             "set_hyper('anneal_step', 0) restarts it")
        lr = self._group_lr(hyper)
        if not finite_from(lr):
            _bad_lr(lr, hyper['lr'], f"param group {i} at anneal step {hyper.get('anneal_step', 0)}", self.anneal_cfg['anneal'])
        return lr

    def _path(self, ps, i:int=None) -> str:
        where = '' if i is None else f' in param group {i}'
        try: res = _multi_tensor.path(self.fast_kind, self.impl, ps, where=where)  # the fast paths scan for sparse grads themselves
        except RuntimeError: self._sparse_refused(ps, i, where); raise
        if res == 'stepper': self._sparse_refused(ps, i, where)
        return res

    def _sparse_refused(self, ps, i, where:str):
        "Raise, before any group steps, on a sparse grad this optimizer's steppers cannot take: they would fail after changing params"
        if not any(p.grad is not None and p.grad.is_sparse for p in ps): return
        hyper,fs = self.hypers[0 if i is None else i],[_multi_tensor._fn(cb)[0] for cb in self.cbs]  # a `partial` too
        why = 'average_sqr_grad' if average_sqr_grad in fs else 'l2_reg' if l2_reg in fs and hyper.get('wd', 0) != 0 else None
        if why is not None:
            raise RuntimeError(f"got a sparse grad{where}: this optimizer's `{why}` stepper cannot take one (it would fail after "
                               f"changing the params); SGDAnneal with decouple_wd=True takes sparse grads, or use dense ones")

    def _step_group(self, ps, hyper, where:str=None):
        if _multi_tensor.step(self.fast_kind, self.impl, ps, hyper, self.state, where): return
        for p in ps:  # fastai's steppers, one parameter at a time: the reference
            state = self.state[p]
            for cb in self.cbs: state = _update(state, cb(p, **{**state, **hyper}))
            self.state[p] = state

# ---------------------------------------------------------------- factories (fastai's argument names and defaults)
@delegates(AnnealOptimizer.__init__)
def SGDAnneal(params:Iterable, # Model parameters, lists of them (groups) or torch-style group dicts
    lr:float|slice=1e-3,      # Learning rate before annealing
    mom:float=0.,             # Momentum, in [0, 1)
    wd:float=0.,              # Weight decay, >= 0
    decouple_wd:bool=True,    # True weight decay (`p*(1-lr*wd)`) or L2 regularization
    **kwargs) -> AnnealOptimizer:
    "fastai's `SGD` whose lr anneals with each step; fused/foreach kernels by default"
    _check_kwargs('SGDAnneal', 'lr, mom, wd, decouple_wd', kwargs)
    lr,decouple_wd,(mom,wd) = _check_lr(lr),check_bool('decouple_wd', decouple_wd),_check_hypers(dict(mom=mom, wd=wd)).values()
    params,group_moms = _group_moms(params)  # a group's momentum needs the momentum steppers (at mom=0 they are `sgd_step`)
    cbs = [weight_decay if decouple_wd else l2_reg] + ([average_grad, momentum_step] if _any_mom(mom, group_moms) else [sgd_step])
    return AnnealOptimizer(params, cbs, lr=lr, mom=mom, wd=wd, **kwargs)

@delegates(AnnealOptimizer.__init__)
def RMSPropAnneal(params:Iterable, # Model parameters, lists of them (groups) or torch-style group dicts
    lr:float|slice=1e-3,      # Learning rate before annealing
    mom:float=0.,             # Momentum of the gradient average, in [0, 1)
    sqr_mom:float=0.99,       # Momentum of the squared-gradient average, in [0, 1)
    eps:float=1e-8,           # Added to the denominator, > 0
    wd:float=0.,              # Weight decay, >= 0
    decouple_wd:bool=True,    # True weight decay or L2 regularization
    **kwargs) -> AnnealOptimizer:
    "fastai's `RMSProp` whose lr anneals with each step (steppers only)"
    _check_kwargs('RMSPropAnneal', 'lr, mom, sqr_mom, eps, wd, decouple_wd', kwargs)
    lr,decouple_wd = _check_lr(lr),check_bool('decouple_wd', decouple_wd)
    h = _check_hypers(dict(mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd))
    params,group_moms = _group_moms(params)  # a group's momentum needs `average_grad` (at mom=0 it passes the grad through)
    cbs = [weight_decay if decouple_wd else l2_reg] + ([average_grad] if _any_mom(h['mom'], group_moms) else []) + [average_sqr_grad,
                                                                                                                 rms_prop_step]
    return AnnealOptimizer(params, cbs, lr=lr, **h, **kwargs)

@delegates(AnnealOptimizer.__init__)
def AdamAnneal(params:Iterable, # Model parameters, lists of them (groups) or torch-style group dicts
    lr:float|slice=1e-3,      # Learning rate before annealing
    mom:float=0.9,            # β1, in [0, 1)
    sqr_mom:float=0.99,       # β2, in [0, 1)
    eps:float=1e-5,           # Added after the square root of the debiased squared average, > 0
    wd:float=0.01,            # Weight decay, >= 0
    decouple_wd:bool=True,    # True weight decay (AdamW) or L2 regularization (Adam)
    **kwargs) -> AnnealOptimizer:
    "fastai's `Adam` whose lr anneals with each step (as `lr*anneal_rate**i`); torch's fused kernels by default"
    _check_kwargs('AdamAnneal', 'lr, mom, sqr_mom, eps, wd, decouple_wd', kwargs)
    lr,decouple_wd = _check_lr(lr),check_bool('decouple_wd', decouple_wd)
    h = _check_hypers(dict(mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd))
    cbs = [weight_decay if decouple_wd else l2_reg, partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step]
    return AnnealOptimizer(params, cbs, lr=lr, **h, **kwargs)

# ---------------------------------------------------------------- any fastai optimizer function
def _annealed_opt(params, lr=1e-3, *, opt_func, anneal_kwargs, **kwargs):
    "`opt_func(params, lr, **kwargs)` turned into an annealing optimizer; anneal settings in `kwargs` override `anneal_kwargs`"
    anneal_kwargs = {**anneal_kwargs, **{k: kwargs.pop(k) for k in list(kwargs) if k in anneal_kwargs}}
    # before opt_func sees the params
    _check_anneal(**{k: v for k,v in anneal_kwargs.items() if k != 'impl'}); _check_impl(anneal_kwargs['impl'])
    params = _as_list(params)
    if any(isinstance(o, dict) for o in params):
        raise TypeError("annealed takes fastai-style params (tensors, or lists of them per group); for torch-style group dicts use "
                        "AdamAnneal, SGDAnneal or RMSPropAnneal")
    params,lr,kwargs = _fastai_params(params),_check_lr(lr),_check_hypers(kwargs, eps_zero_ok=True)
    _check_lengths({k: v for k,v in {'lr': lr, **kwargs}.items() if k == 'lr' or k in _HYPER_CHECKS},  # its own arguments are its own
                   len(params) if isinstance(params[0], list) else 1)
    # building it touches no param: its hypers are checked as it set them
    opt = opt_func(params, lr=lr, **kwargs)
    for h in getattr(getattr(opt, 'opt', opt), 'hypers', []):  # what it was given, a `partial`'s, its defaults
        _check_hypers({k: v for k,v in h.items() if k != 'lr'}, per_group=False, eps_zero_ok=True)
    if isinstance(opt, AnnealOptimizer) or isinstance(getattr(opt, 'opt', None), AnnealOptimizer):
        raise TypeError(f"{getattr(opt_func, '__name__', opt_func)!r} already anneals its lr; pass it directly, not through annealed")
    if isinstance(opt, Lookahead):
        opt.opt = AnnealOptimizer.from_optimizer(opt.opt, **anneal_kwargs)
        opt.opt._outer = opt
        opt._set_require_grad = opt.opt._set_require_grad  # its `freeze_to` marks what it freezes, as ours does
        opt.load_state_dict = partial(_lookahead_load, opt)  # fastai's takes `count` and `slow_weights` before the inner check
        return opt
    if type(opt) is not Optimizer:
        raise TypeError("annealed needs an opt_func returning a fastai Optimizer (SGD, RMSProp, Adam, RAdam, QHAdam, Lamb, ranger...), "
                        f"got {type(opt).__name__}")
    return AnnealOptimizer.from_optimizer(opt, **anneal_kwargs)

def _lookahead_load(la:Lookahead, sd:dict):
    ("fastai's `Lookahead.load_state_dict` once `sd` is checked whole (it sets `count` and `slow_weights`, popped from the caller's "
     "dict, before its inner optimizer checks the rest): a mismatch raises, and leaves the optimizer and `sd` as they were")
    if not isinstance(sd, dict) or not {'count', 'slow_weights'} <= set(sd):
        raise TypeError(f"sd must be a Lookahead state dict (ranger's), with 'count' and 'slow_weights', got "
                        f"{f'keys {sorted(sd)}' if isinstance(sd, dict) else f'a {type(sd).__name__}'}")
    la.opt._check_sd({k: v for k,v in sd.items() if k not in ('count', 'slow_weights')})
    sw,ps = sd['slow_weights'],[p for pg in la.param_lists for p in pg]
    if sw is not None and [tuple(w.shape) for pg in sw for w in pg] != [tuple(p.shape) for p in ps]:
        raise ValueError("sd's slow weights were saved for other params (or in another order)")
    Lookahead.load_state_dict(la, dict(sd))

def annealed(
    opt_func:callable,  # A fastai optimizer function: `SGD`, `RMSProp`, `Adam`, `RAdam`, `QHAdam`, `Lamb`, `ranger`, a `partial` of one...
    anneal:str|callable='exp',   # 'exp' | 'cos' | 'lin' | 'sqrt' | 'poly' | f(start, end, pos): see `anneal_lr`
    anneal_rate:float=None,      # 'exp' only: factor applied every `anneal_every` steps, in (0, 1] (None: 0.9999)
    anneal_every:int=None,       # 'exp' only: steps between two decays (None: 1)
    total_steps:int=None,        # Shaped anneals: steps from `lr` to `lr_min`
    lr_min:float=0.,             # Floor of the annealed lr
    impl:str='auto',             # 'auto' | 'fused' | 'foreach' (fastai's Adam and SGD steppers only) | 'stepper'
) -> partial:
    "An `opt_func` for `Learner`: `opt_func`'s optimizer whose steppers see the annealed lr (Adam and SGD steppers get the fast path)"
    if not callable(opt_func) or (isinstance(opt_func, type) and issubclass(opt_func, torch.optim.Optimizer)):
        raise TypeError(f"opt_func must be a fastai optimizer function such as Adam or ranger, got {opt_func!r}")
    _check_anneal(anneal, anneal_rate, anneal_every, total_steps, lr_min)
    keywords = getattr(opt_func, 'keywords', None) or {}
    _check_hypers({k: v for k,v in keywords.items() if k != 'lr'}, eps_zero_ok=True)  # `partial(SGD, mom=1.5)`: now
    kw = dict(anneal=anneal, anneal_rate=anneal_rate, anneal_every=anneal_every, total_steps=total_steps, lr_min=lr_min,
              impl=_check_impl(impl))
    # `partial(Adam, lr=0.1)`: its lr stays the default, where fastai's `Learner.create_opt` reads it too (`learn.lr`)
    lr = {'lr': _check_lr(keywords['lr'])} if 'lr' in keywords else {}
    return partial(_annealed_opt, opt_func=opt_func, anneal_kwargs=kw, **lr)
