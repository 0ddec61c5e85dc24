"An optimizer that anneals its own learning rate: fastai's `Optimizer` and steppers, plus a fused/foreach fast path for Adam and SGD."
from __future__ import annotations
import inspect
from collections import defaultdict
from functools import partial
import numpy as np, torch
from fastcore.basics import store_attr
from fastcore.meta import delegates
from fastai.optimizer import (Optimizer, Lookahead, weight_decay, l2_reg, average_grad, average_sqr_grad, step_stat, debias,
                              adam_step, sgd_step, momentum_step, rms_prop_step, pytorch_hp_map, _update)
from .schedules import get_anneal, check_int, check_float, check_bool

__all__ = ['ANNEAL_IMPLS', 'anneal_lr', 'AnnealOptimizer', 'SGDAnneal', 'RMSPropAnneal', 'AdamAnneal', 'annealed']

ANNEAL_IMPLS = ('auto', 'fused', 'foreach', 'stepper')

# ---------------------------------------------------------------- the pure part: lr at clock `t`
def _check_anneal(anneal='exp', anneal_rate=0.9999, anneal_every=1, total_steps=None, lr_min=0.) -> dict:
    "Validated annealing settings; `fn` is None for the staircase 'exp'"
    fn = None if isinstance(anneal, str) and anneal == 'exp' else get_anneal(anneal)
    anneal_rate = check_float('anneal_rate', anneal_rate, 0., 1., lo_open=True, hi_open=False)
    anneal_every = check_int('anneal_every', anneal_every, 1)
    if fn is None and total_steps is not None:
        raise ValueError(f"total_steps applies to shaped anneals ('cos', 'lin', 'sqrt', 'poly' or a function); "
                         f"anneal='exp' decays by anneal_rate every anneal_every steps instead, got total_steps={total_steps!r}")
    if fn is not None:
        if total_steps is None: raise ValueError(f"total_steps (the number of optimizer steps to anneal over, >= 1) is required with anneal={anneal!r}, got None")
        total_steps = check_int('total_steps', total_steps, 1)
    lr_min = check_float('lr_min', lr_min, 0., lo_open=False)
    return dict(anneal=anneal, fn=fn, anneal_rate=anneal_rate, anneal_every=anneal_every, total_steps=total_steps, lr_min=lr_min)

def _lr_at(lr, t, fn, anneal_rate, anneal_every, total_steps, lr_min, **kwargs):
    floor = min(lr, lr_min)  # a floor never raises an lr set below it (e.g. by a warmup)
    if fn is None: return max(lr * anneal_rate ** (t // anneal_every), floor)
    return fn(lr, floor, min(t / total_steps, 1.))

def anneal_lr(lr:float,       # Learning rate of the group (the hyper `lr`, as a `ParamScheduler` set it)
    t:int,                    # Anneal clock: optimizer steps this group has taken
    anneal:str|callable='exp',  # 'exp' (staircase `anneal_rate**(t//anneal_every)`) | 'cos' | 'lin' | 'sqrt' | 'poly' | f(start, end, pos)
    anneal_rate:float=0.9999, # 'exp': factor applied every `anneal_every` steps, in (0, 1]
    anneal_every:int=1,       # 'exp': steps between two decays (`len(dls.train)`: once per epoch)
    total_steps:int=None,     # Shaped anneals: steps from `lr` to `lr_min`; the lr stays at `lr_min` afterwards
    lr_min:float=0.,          # Floor of the annealed lr (never raises an lr that is already below it)
) -> float:
    "The lr the steppers see at clock `t`: `lr*anneal_rate**(t//anneal_every)` for 'exp', else `anneal(lr, lr_min, t/total_steps)`"
    check_float('lr', lr, 0., lo_open=False)
    return _lr_at(lr, check_int('t', t, 0), **_check_anneal(anneal, anneal_rate, anneal_every, total_steps, lr_min))

# ---------------------------------------------------------------- argument checks of the factories
def _check_lr(lr):
    "`lr` as fastai's `Optimizer` takes it (a float, a slice or one per group), every value finite and >= 0"
    if isinstance(lr, slice):
        if lr.step is not None: raise ValueError(f"lr as a slice takes start and stop only, got {lr!r}")
        return slice(None if lr.start is None else check_float('lr.start', lr.start, 0., lo_open=False), check_float('lr.stop', lr.stop, 0., lo_open=False))
    if isinstance(lr, (list, tuple, np.ndarray)):
        if len(lr) == 0: raise ValueError("lr must hold at least one learning rate, got an empty sequence")
        return [check_float(f'lr[{i}]', v, 0., lo_open=False) for i,v in enumerate(np.asarray(lr, dtype=object).ravel())]
    return check_float('lr', lr, 0., lo_open=False)

def _check_mom(name, v): return check_float(name, v, 0., 1., lo_open=False)
_HYPER_CHECKS = {'lr': _check_lr, 'mom': partial(_check_mom, 'mom'), 'sqr_mom': partial(_check_mom, 'sqr_mom'),
                 'eps': partial(check_float, 'eps'), 'wd': partial(check_float, 'wd', lo=0., lo_open=False)}

def _check_hypers(**hypers) -> dict:
    "Each hyper-parameter through its check (unknown names pass unchecked)"
    return {k: _HYPER_CHECKS[k](v) if k in _HYPER_CHECKS else v for k,v in hypers.items()}

def _check_impl(impl):
    if impl not in ANNEAL_IMPLS: raise ValueError(f"impl must be one of {', '.join(map(repr, ANNEAL_IMPLS))}, got {impl!r}")
    return impl

# ---------------------------------------------------------------- torch-style param groups
def _split_groups(params, names) -> tuple:
    "`(param_lists, per-group hyper overrides)` from what torch users pass: tensors, or dicts with 'params' and hypers in torch or fastai names"
    if isinstance(params, torch.Tensor): params = [params]
    params = list(params)
    if not params: raise ValueError("params must hold at least one tensor or param group, got none")
    if not any(isinstance(o, dict) for o in params): return params,None
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
                if not isinstance(v, (tuple, list)) or len(v) != 2: raise TypeError(f"param group {i}: betas must be a pair (mom, sqr_mom), got {v!r}")
                hp.update(mom=v[0], sqr_mom=v[1])
                continue
            name = pytorch_hp_map.get(k, k)
            if name not in names: raise ValueError(f"param group {i}: unknown hyper-parameter {k!r}; this optimizer takes {', '.join(map(repr, sorted(names)))} (or torch's names for them)")
            hp[name] = v
        if 'lr' in hp: hp['lr'] = check_float(f'param group {i} lr', hp['lr'], 0., lo_open=False)
        lists.append(ps); overrides.append(_check_hypers(**hp))
    return lists,overrides

# ---------------------------------------------------------------- which fast path a list of steppers allows
def _fn(cb): return (cb.func, cb.keywords) if isinstance(cb, partial) else (cb, {})

def _fast_kind(cbs) -> tuple|None:
    "`('adam'|'sgd', decouple_wd, with_momentum)` when `cbs` are exactly fastai's Adam or SGD steppers, else None"
    fs = [_fn(cb) for cb in cbs]
    if len(fs) < 2 or fs[0][0] not in (weight_decay, l2_reg) or fs[0][1]: return None
    decouple,rest = fs[0][0] is weight_decay,fs[1:]
    if rest == [(average_grad, {'dampening': True}), (average_sqr_grad, {}), (step_stat, {}), (adam_step, {})]: return 'adam',decouple,True
    if rest == [(sgd_step, {})]: return 'sgd',decouple,False
    if rest in ([(average_grad, {}), (momentum_step, {})], [(average_grad, {'dampening': False}), (momentum_step, {})]): return 'sgd',decouple,True
    return None

def _devices(kind):
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices, _get_foreach_kernels_supported_devices
        return _get_fused_kernels_supported_devices() if kind == 'fused' else _get_foreach_kernels_supported_devices()
    except ImportError: return ['cuda'] if kind == 'foreach' else []

_FUSED_DEVICES,_FOREACH_DEVICES = _devices('fused'),_devices('foreach')
_HAS_FUSED = all(hasattr(torch, f) for f in ('_fused_adamw_', '_fused_adam_', '_fused_sgd_'))

# ---------------------------------------------------------------- the optimizer
class AnnealOptimizer(Optimizer):
    "fastai `Optimizer` whose steppers see `lr` x an anneal factor that follows each param group's own step clock"
    def __init__(self,
        params,                   # Tensors (e.g. `model.parameters()`), lists of tensors (one per group) or torch-style group dicts
        cbs:list,                 # fastai steppers, e.g. `[weight_decay, average_grad, momentum_step]`
        anneal:str|callable='exp',  # 'exp' | 'cos' | 'lin' | 'sqrt' | 'poly' | f(start, end, pos): see `anneal_lr`
        anneal_rate:float=0.9999, # 'exp': factor applied every `anneal_every` steps, in (0, 1]
        anneal_every:int=1,       # 'exp': steps between two decays (`len(dls.train)`: once per epoch)
        total_steps:int=None,     # Shaped anneals: steps from `lr` to `lr_min`
        lr_min:float=0.,          # Floor of the annealed lr
        impl:str='auto',          # 'auto' (fastest on the device) | 'fused' | 'foreach' | 'stepper' (the per-parameter reference)
        **defaults                # Hyper-parameters (`lr`, `mom`, `wd`...), as fastai's `Optimizer`
    ):
        store_attr(impl=_check_impl(impl))
        self.anneal_cfg = _check_anneal(anneal, anneal_rate, anneal_every, total_steps, lr_min)
        defaults = _check_hypers(**defaults)
        names = set(defaults) | {k for cb in cbs for k in {**getattr(cb, 'defaults', {}), **getattr(_fn(cb)[0], 'defaults', {})}}
        param_lists,overrides = _split_groups(params, names)
        super().__init__(param_lists, cbs, anneal_step=0, **defaults)
        for h,o in zip(self.hypers, overrides or []): h.update(o)
        self._set_fast()

    def _set_fast(self):
        self.fast_kind = _fast_kind(self.cbs)
        if self.impl in ('fused', 'foreach') and self.fast_kind is None:
            raise ValueError(f"impl={self.impl!r} needs fastai's Adam or SGD steppers; these steppers run with impl='auto' or 'stepper'")

    @classmethod
    @delegates(__init__)
    def from_optimizer(cls,
        opt:Optimizer,            # A plain fastai `Optimizer`, e.g. what `RAdam(params, lr)` returns
        impl:str='auto',          # 'auto' | 'fused' | 'foreach' | 'stepper'
        **kwargs                  # The anneal settings of `AnnealOptimizer`
    ) -> AnnealOptimizer:
        "An `AnnealOptimizer` taking over `opt`'s params, steppers, state and hypers"
        if type(opt) is not Optimizer: raise TypeError(f"opt must be a plain fastai Optimizer (built from steppers), got {type(opt).__name__}")
        bad = set(kwargs) - set(inspect.signature(cls.from_optimizer).parameters)
        if bad: raise TypeError(f"from_optimizer got unknown argument(s) {sorted(bad)}; it takes the anneal settings of AnnealOptimizer")
        cfg,impl = _check_anneal(**kwargs),_check_impl(impl)
        res = cls.__new__(cls)
        res.__dict__.update(opt.__dict__)
        res.impl,res.anneal_cfg = impl,cfg
        res._set_fast()
        for h in res.hypers: h.setdefault('anneal_step', 0)
        return res

    # -------------------------------------------------------- the clock and the lr it gives
    def _frozen_idx(self): return getattr(getattr(self, '_outer', None) or self, 'frozen_idx', 0)  # a Lookahead freezes itself, not us
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
        frozen = self._frozen_idx()
        for i,(pg,hyper) in enumerate(zip(self.param_lists, self.hypers)):
            ps = [p for p in pg if p.grad is not None]
            if not ps: continue
            self._step_group(ps, {**hyper, 'lr': self._group_lr(hyper)})
            if i >= frozen: hyper['anneal_step'] = hyper.get('anneal_step', 0) + 1
        return loss

    def _path(self, ps) -> str:
        if self.fast_kind is None or self.impl == 'stepper': return 'stepper'
        if any(p.grad.is_sparse or p.is_complex() or not p.is_floating_point() for p in ps):
            if self.impl != 'auto': raise RuntimeError(f"impl={self.impl!r} takes dense real floating-point params only; use impl='stepper'")
            return 'stepper'
        dev = ps[0].device.type
        if self.impl == 'fused':
            if not _HAS_FUSED or dev not in _FUSED_DEVICES: raise RuntimeError(f"impl='fused': this torch has no fused kernels on {dev!r}; use impl='auto' or 'foreach'")
            return 'fused'
        if self.impl == 'foreach': return 'foreach'
        return 'fused' if _HAS_FUSED and dev in _FUSED_DEVICES else 'foreach' if dev in _FOREACH_DEVICES else 'stepper'

    def _step_group(self, ps, hyper):
        path = self._path(ps)
        if path == 'stepper':
            for p in ps:
                state = self.state[p]
                for cb in self.cbs: state = _update(state, cb(p, **{**state, **hyper}))
                self.state[p] = state
        elif self.fast_kind[0] == 'adam': self._adam_fast(ps, hyper, path == 'fused')
        else: self._sgd_fast(ps, hyper, path == 'fused')

    def _buckets(self, ps, wd, new_state):
        "Params with their grads and state, bucketed by (device, dtype, weight decay on): the unit of one kernel call"
        res = defaultdict(lambda: defaultdict(list))
        for p in ps:
            st = self.state[p]
            new_state(p, st)
            b = res[(p.device, p.dtype, wd != 0 and st.get('do_wd', True))]
            b['p'].append(p); b['g'].append(p.grad); b['st'].append(st)
        return res

    def _wd(self, b, lr, wd, do_wd):
        "fastai's `weight_decay` (`p*(1-lr*wd)`) or `l2_reg` (`grad += wd*p`, in place as fastai does)"
        if not do_wd: return
        if self.fast_kind[1]: torch._foreach_mul_(b['p'], 1 - lr*wd)
        else: torch._foreach_add_(b['g'], b['p'], alpha=wd)

    def _adam_fast(self, ps, h, fused):
        "fastai's Adam (`weight_decay|l2_reg`, `average_grad(dampening=True)`, `average_sqr_grad`, `step_stat`, `adam_step`) over many tensors at once"
        lr,mom,sqr_mom,eps,wd = h['lr'],h['mom'],h['sqr_mom'],h['eps'],h['wd']
        def new_state(p, st):
            if st.get('grad_avg') is None: st['grad_avg'] = torch.zeros_like(p.grad)
            if st.get('sqr_avg')  is None: st['sqr_avg']  = torch.zeros_like(p.grad)
            st['step'] = st.get('step', 0) + 1
        for (dev,_,do_wd),b in self._buckets(ps, wd, new_state).items():
            avgs,sqrs,steps = [s['grad_avg'] for s in b['st']],[s['sqr_avg'] for s in b['st']],[s['step'] for s in b['st']]
            if fused:
                if not self.fast_kind[1]: self._wd(b, lr, wd, do_wd)  # L2 goes into the grads, as fastai's `l2_reg`
                ts = {s: torch.tensor(float(s), device=dev) for s in set(steps)}  # the kernel reads (never writes) its step tensors
                kernel = torch._fused_adamw_ if self.fast_kind[1] else torch._fused_adam_
                kernel(b['p'], b['g'], avgs, sqrs, [], [ts[s] for s in steps], lr=lr, beta1=mom, beta2=sqr_mom,
                       weight_decay=wd if do_wd and self.fast_kind[1] else 0., eps=eps, amsgrad=False, maximize=False)
                continue
            self._wd(b, lr, wd, do_wd)
            torch._foreach_mul_(avgs, mom); torch._foreach_add_(avgs, b['g'], alpha=1-mom)
            torch._foreach_mul_(sqrs, sqr_mom); torch._foreach_addcmul_(sqrs, b['g'], b['g'], value=1-sqr_mom)
            denom = torch._foreach_div(sqrs, [debias(sqr_mom, 1-sqr_mom, s) for s in steps])
            torch._foreach_sqrt_(denom); torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(b['p'], avgs, denom, [-lr / debias(mom, 1-mom, s) for s in steps])

    def _sgd_fast(self, ps, h, fused):
        "fastai's SGD (`weight_decay|l2_reg`, then `sgd_step` or `average_grad` + `momentum_step`) over many tensors at once"
        lr,wd,with_mom = h['lr'],h['wd'],self.fast_kind[2]
        mom = h.get('mom', 0.)
        def new_state(p, st):
            if with_mom and st.get('grad_avg') is None: st['grad_avg'] = torch.zeros_like(p.grad)
        for (_,_,do_wd),b in self._buckets(ps, wd, new_state).items():
            self._wd(b, lr, wd, do_wd)
            if not with_mom:
                if fused: torch._fused_sgd_(b['p'], b['g'], [], weight_decay=0., momentum=0., lr=lr, dampening=0., nesterov=False, maximize=False, is_first_step=False)
                else: torch._foreach_add_(b['p'], b['g'], alpha=-lr)
                continue
            bufs = [s['grad_avg'] for s in b['st']]
            if fused and mom != 0:  # the kernel refuses buffers at momentum 0, where fastai's `average_grad` still sets them to the grad
                torch._fused_sgd_(b['p'], b['g'], bufs, weight_decay=0., momentum=mom, lr=lr, dampening=0., nesterov=False, maximize=False, is_first_step=False)
            else:
                torch._foreach_mul_(bufs, mom); torch._foreach_add_(bufs, b['g'])
                torch._foreach_add_(b['p'], bufs, alpha=-lr)

# ---------------------------------------------------------------- factories (fastai's argument names and defaults)
@delegates(AnnealOptimizer.__init__)
def SGDAnneal(params,         # Model parameters, lists of them (groups) or torch-style group dicts
    lr:float|slice=1e-3,      # Learning rate before annealing
    mom:float=0.,             # Momentum, in [0, 1)
    wd:float=0.,              # Weight decay, >= 0
    decouple_wd:bool=True,    # True weight decay (`p*(1-lr*wd)`) or L2 regularization
    **kwargs) -> AnnealOptimizer:
    "fastai's `SGD` whose lr anneals with each step; fused/foreach kernels by default"
    lr,mom,wd,decouple_wd = _check_lr(lr),_check_mom('mom', mom),_check_hypers(wd=wd)['wd'],check_bool('decouple_wd', decouple_wd)
    cbs = [weight_decay if decouple_wd else l2_reg] + ([average_grad, momentum_step] if mom != 0 else [sgd_step])
    return AnnealOptimizer(params, cbs, lr=lr, mom=mom, wd=wd, **kwargs)

@delegates(AnnealOptimizer.__init__)
def RMSPropAnneal(params,     # Model parameters, lists of them (groups) or torch-style group dicts
    lr:float|slice=1e-3,      # Learning rate before annealing
    mom:float=0.,             # Momentum of the gradient average, in [0, 1)
    sqr_mom:float=0.99,       # Momentum of the squared-gradient average, in [0, 1)
    eps:float=1e-8,           # Added to the denominator, > 0
    wd:float=0.,              # Weight decay, >= 0
    decouple_wd:bool=True,    # True weight decay or L2 regularization
    **kwargs) -> AnnealOptimizer:
    "fastai's `RMSProp` whose lr anneals with each step (steppers only)"
    lr,decouple_wd = _check_lr(lr),check_bool('decouple_wd', decouple_wd)
    h = _check_hypers(mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)
    cbs = [weight_decay if decouple_wd else l2_reg] + ([average_sqr_grad] if h['mom'] == 0 else [average_grad, average_sqr_grad]) + [rms_prop_step]
    return AnnealOptimizer(params, cbs, lr=lr, **h, **kwargs)

@delegates(AnnealOptimizer.__init__)
def AdamAnneal(params,        # Model parameters, lists of them (groups) or torch-style group dicts
    lr:float|slice=1e-3,      # Learning rate before annealing
    mom:float=0.9,            # β1, in [0, 1)
    sqr_mom:float=0.99,       # β2, in [0, 1)
    eps:float=1e-5,           # Added after the square root of the debiased squared average, > 0
    wd:float=0.01,            # Weight decay, >= 0
    decouple_wd:bool=True,    # True weight decay (AdamW) or L2 regularization (Adam)
    **kwargs) -> AnnealOptimizer:
    "fastai's `Adam` whose lr anneals with each step (as `lr*anneal_rate**i`); torch's fused kernels by default"
    lr,decouple_wd = _check_lr(lr),check_bool('decouple_wd', decouple_wd)
    h = _check_hypers(mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd)
    cbs = [weight_decay if decouple_wd else l2_reg, partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step]
    return AnnealOptimizer(params, cbs, lr=lr, **h, **kwargs)

# ---------------------------------------------------------------- any fastai optimizer function
def _annealed_opt(params, lr=1e-3, *, opt_func, anneal_kwargs, **kwargs):
    "`opt_func(params, lr, **kwargs)` turned into an annealing optimizer; anneal settings in `kwargs` override `anneal_kwargs`"
    anneal_kwargs = {**anneal_kwargs, **{k: kwargs.pop(k) for k in list(kwargs) if k in anneal_kwargs}}
    _check_anneal(**{k: v for k,v in anneal_kwargs.items() if k != 'impl'}); _check_impl(anneal_kwargs['impl'])  # before opt_func sees the params
    opt = opt_func(params, lr=_check_lr(lr), **kwargs)
    if isinstance(opt, AnnealOptimizer) or isinstance(getattr(opt, 'opt', None), AnnealOptimizer):
        raise TypeError(f"{getattr(opt_func, '__name__', opt_func)!r} already anneals its lr; pass it directly, not through annealed")
    if isinstance(opt, Lookahead):
        opt.opt = AnnealOptimizer.from_optimizer(opt.opt, **anneal_kwargs)
        opt.opt._outer = opt
        return opt
    if type(opt) is not Optimizer: raise TypeError(f"annealed needs an opt_func returning a fastai Optimizer (SGD, RMSProp, Adam, RAdam, QHAdam, Lamb, ranger...), got {type(opt).__name__}")
    return AnnealOptimizer.from_optimizer(opt, **anneal_kwargs)

def annealed(opt_func:callable,  # A fastai optimizer function: `SGD`, `RMSProp`, `Adam`, `RAdam`, `QHAdam`, `Lamb`, `ranger`, a `partial` of one...
    anneal:str|callable='exp',   # 'exp' | 'cos' | 'lin' | 'sqrt' | 'poly' | f(start, end, pos): see `anneal_lr`
    anneal_rate:float=0.9999,    # 'exp': factor applied every `anneal_every` steps, in (0, 1]
    anneal_every:int=1,          # 'exp': steps between two decays
    total_steps:int=None,        # Shaped anneals: steps from `lr` to `lr_min`
    lr_min:float=0.,             # Floor of the annealed lr
    impl:str='auto',             # 'auto' | 'fused' | 'foreach' (fastai's Adam and SGD steppers only) | 'stepper'
) -> partial:
    "An `opt_func` for `Learner`: `opt_func`'s optimizer whose steppers see the annealed lr (Adam and SGD steppers get the fast path)"
    if not callable(opt_func) or (isinstance(opt_func, type) and issubclass(opt_func, torch.optim.Optimizer)):
        raise TypeError(f"opt_func must be a fastai optimizer function such as Adam or ranger, got {opt_func!r}")
    _check_anneal(anneal, anneal_rate, anneal_every, total_steps, lr_min)
    kw = dict(anneal=anneal, anneal_rate=anneal_rate, anneal_every=anneal_every, total_steps=total_steps, lr_min=lr_min, impl=_check_impl(impl))
    return partial(_annealed_opt, opt_func=opt_func, anneal_kwargs=kw)
