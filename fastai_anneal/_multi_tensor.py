"""fastai's Adam and SGD steppers re-implemented over many tensors at once with torch's fused/foreach kernels (speed only).

`step` is the one entry point: it runs a step the steppers would run, bit for bit (foreach) or to 1e-6 (fused, fp32), or
answers False so the caller runs the steppers. torch's private kernels are probed once, at import, by feature.
"""
from __future__ import annotations
from collections import defaultdict, namedtuple
from functools import partial
import torch
from fastai.optimizer import weight_decay, l2_reg, average_grad, average_sqr_grad, step_stat, debias, adam_step, sgd_step, momentum_step
from ._checks import _number

__all__ = []

# ---------------------------------------------------------------- what this torch offers, probed once
Kernels = namedtuple('Kernels', 'fused foreach_devices fused_devices')

def probe() -> Kernels:
    "Which kernels this torch has: the fused Adam/AdamW/SGD ops, and the devices its (private) helpers list for fused and foreach"
    fused = all(hasattr(torch, f) for f in ('_fused_adamw_', '_fused_adam_', '_fused_sgd_'))
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices, _get_foreach_kernels_supported_devices
        return Kernels(fused, list(_get_foreach_kernels_supported_devices()), list(_get_fused_kernels_supported_devices()))
    except ImportError: return Kernels(False, ['cuda'], [])  # an older torch: foreach on CUDA only, no fused kernels

KERNELS = probe()

# ---------------------------------------------------------------- which fast path a list of steppers allows
def _fn(cb): return (cb.func, cb.keywords) if isinstance(cb, partial) else (cb, {})

def fast_kind(cbs) -> tuple|None:
    "`('adam'|'sgd', decouple_wd, with_momentum)` when `cbs` are exactly fastai's Adam or SGD steppers, else None"
    fs = [_fn(cb) for cb in cbs]
    if len(fs) < 2 or fs[0][0] not in (weight_decay, l2_reg) or fs[0][1]: return None
    decouple,rest = fs[0][0] is weight_decay,fs[1:]
    if rest == [(average_grad, {'dampening': True}), (average_sqr_grad, {}), (step_stat, {}), (adam_step, {})]: return 'adam',decouple,True
    if rest == [(sgd_step, {})]: return 'sgd',decouple,False
    if rest in ([(average_grad, {}), (momentum_step, {})], [(average_grad, {'dampening': False}), (momentum_step, {})]):
        return 'sgd',decouple,True
    return None

def unsupported(p) -> str|None:
    "What keeps param `p` off the fast paths (a sparse grad, a complex or integer dtype), or None"
    if p.is_complex() or not p.is_floating_point(): return f'a {p.dtype} param'
    if p.grad is not None and p.grad.is_sparse: return 'a sparse grad'
    return None

def path(kind, impl:str, ps, kernels:Kernels=None, where:str='') -> str:
    "'fused', 'foreach' or 'stepper' for params `ps` of one group (`where`: its name in errors); raises where a forced `impl` cannot run"
    k = kernels or KERNELS
    if kind is None or impl == 'stepper': return 'stepper'
    bad = next((b for b in map(unsupported, ps) if b is not None), None)
    if bad is not None:
        if impl != 'auto':
            raise RuntimeError(f"impl={impl!r} takes dense real floating-point params only, got {bad}{where}; use impl='stepper'")
        return 'stepper'
    dev = ps[0].device.type
    if impl == 'fused':
        if not k.fused or dev not in k.fused_devices:
            raise RuntimeError(f"impl='fused': this torch has no fused kernels on {dev!r}{where}; use impl='auto' or 'foreach'")
        return 'fused'
    if impl == 'foreach': return 'foreach'
    return 'fused' if k.fused and dev in k.fused_devices else 'foreach' if dev in k.foreach_devices else 'stepper'

def step(kind, impl:str, ps, hyper:dict, state, where:str=None) -> bool:
    "One step of params `ps` (one group, `hyper` with the annealed lr) on the fast path `where` (`path`'s answer); False: run the steppers"
    where = where or path(kind, impl, ps)
    if where == 'stepper': return False
    (_adam if kind[0] == 'adam' else _sgd)(kind, ps, hyper, state, where == 'fused')
    return True

# ---------------------------------------------------------------- the kernels
def _layout(t) -> tuple:
    "`t`'s strides, size-1 dims left out (they never move in memory)"
    return tuple(st for st,sz in zip(t.stride(), t.shape) if sz != 1)

def _dense(t) -> bool:
    "`t` fills its memory with no gap and no overlap: contiguous up to an order of its dims"
    n = 1
    for st,sz in sorted((st, sz) for st,sz in zip(t.stride(), t.shape) if sz != 1):
        if st != n: return t.numel() == 0
        n *= sz
    return True

def fusable(p, st:dict) -> bool:
    "The fused kernels walk param, grad and state as raw memory in lock-step: all dense, on one device, one dtype, one layout"
    ts,n = [p.grad, *(v for v in st.values() if isinstance(v, torch.Tensor))],p.numel()
    if not all(t.device == p.device and t.dtype == p.dtype and t.numel() == n for t in ts): return False  # numel: no walk past an end
    if p.is_contiguous() and all(t.is_contiguous() for t in ts): return True  # the usual case, checked quickly
    lay = _layout(p)
    return _dense(p) and all(_layout(t) == lay for t in ts)

def _buckets(ps, wd, state, new_state):
    ("Params with their grads and state, bucketed by (device, dtype, weight decay on, `fusable`): the unit of one kernel call; a param "
     "whose grad or state was made in another layout or dtype (`to_channelslast`, a cast model, a loaded checkpoint) goes to foreach")
    res = defaultdict(lambda: defaultdict(list))
    for p in ps:
        st = state[p]
        new_state(p, st)
        b = res[(p.device, p.dtype, wd != 0 and st.get('do_wd', True), fusable(p, st))]
        b['p'].append(p); b['g'].append(p.grad); b['st'].append(st)
    return res

_HALF = (torch.float16, torch.bfloat16)

def _mul_(ts:list, s:float):
    ("`t.mul_(s)` for each of `ts`: torch's foreach multiply rounds half-precision tensors otherwise than `Tensor.mul_`, so fp16/bf16 "
     "ones go one by one to stay bit for bit the steppers' (a bucket's state may mix dtypes: buffers made before a cast)")
    half = [t for t in ts if t.dtype in _HALF]
    for t in half: t.mul_(s)
    if len(half) < len(ts): torch._foreach_mul_([t for t in ts if t.dtype not in _HALF] if half else ts, s)

def _wd(kind, b, lr, wd, do_wd):
    "fastai's `weight_decay` (`p*(1-lr*wd)`) or `l2_reg` (`grad += wd*p`, in place as fastai does)"
    if not do_wd: return
    if kind[1]: _mul_(b['p'], 1 - lr*wd)
    else: torch._foreach_add_(b['g'], b['p'], alpha=wd)

def _adam(kind, ps, h, state, fused):
    "fastai's Adam (`weight_decay|l2_reg`, `average_grad(dampening=True)`, `average_sqr_grad`, `step_stat`, `adam_step`)"
    lr,mom,sqr_mom,eps,wd = (_number(h[k]) for k in ('lr', 'mom', 'sqr_mom', 'eps', 'wd'))  # a 0-d tensor too
    def new_state(p, st):
        if st.get('grad_avg') is None: st['grad_avg'] = torch.zeros_like(p.grad)
        if st.get('sqr_avg')  is None: st['sqr_avg']  = torch.zeros_like(p.grad)
        st['step'] = st.get('step', 0) + 1
    for (dev,_,do_wd,fuse),b in _buckets(ps, wd, state, new_state).items():
        avgs,sqrs,steps = [s['grad_avg'] for s in b['st']],[s['sqr_avg'] for s in b['st']],[s['step'] for s in b['st']]
        if fused and fuse:
            if not kind[1]: _wd(kind, b, lr, wd, do_wd)  # L2 goes into the grads, as fastai's `l2_reg`
            ts = {s: torch.tensor(float(s), device=dev) for s in set(steps)}  # the kernel reads (never writes) its step tensors
            kernel = torch._fused_adamw_ if kind[1] else torch._fused_adam_
            kernel(b['p'], b['g'], avgs, sqrs, [], [ts[s] for s in steps], lr=lr, beta1=mom, beta2=sqr_mom,
                   weight_decay=wd if do_wd and kind[1] else 0., eps=eps, amsgrad=False, maximize=False)
            continue
        _wd(kind, b, lr, wd, do_wd)
        _mul_(avgs, mom); torch._foreach_add_(avgs, b['g'], alpha=1-mom)
        _mul_(sqrs, sqr_mom); torch._foreach_addcmul_(sqrs, b['g'], b['g'], value=1-sqr_mom)
        denom = torch._foreach_div(sqrs, [debias(sqr_mom, 1-sqr_mom, s) for s in steps])
        torch._foreach_sqrt_(denom); torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(b['p'], avgs, denom, [-lr / debias(mom, 1-mom, s) for s in steps])

def _sgd(kind, ps, h, state, fused):
    "fastai's SGD (`weight_decay|l2_reg`, then `sgd_step` or `average_grad` + `momentum_step`)"
    lr,wd,with_mom = _number(h['lr']),_number(h['wd']),kind[2]  # a 0-d tensor too, as the steppers take it
    mom = _number(h.get('mom', 0.))
    def new_state(p, st):
        if with_mom and st.get('grad_avg') is None: st['grad_avg'] = torch.zeros_like(p.grad)
    sgd_kw = dict(weight_decay=0., lr=lr, dampening=0., nesterov=False, maximize=False, is_first_step=False)
    for (_,_,do_wd,fuse),b in _buckets(ps, wd, state, new_state).items():
        fused_here = fused and fuse
        _wd(kind, b, lr, wd, do_wd)
        if not with_mom:
            if fused_here: torch._fused_sgd_(b['p'], b['g'], [], momentum=0., **sgd_kw)
            else: torch._foreach_add_(b['p'], b['g'], alpha=-lr)
            continue
        bufs = [s['grad_avg'] for s in b['st']]
        if fused_here and mom != 0:  # the kernel refuses buffers at momentum 0, where fastai's `average_grad` still sets them to the grad
            torch._fused_sgd_(b['p'], b['g'], bufs, momentum=mom, **sgd_kw)
        else:
            _mul_(bufs, mom); torch._foreach_add_(bufs, b['g'])
            torch._foreach_add_(b['p'], bufs, alpha=-lr)
