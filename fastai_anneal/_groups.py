"Per-group learning rates expanded as fastai's `Optimizer.set_hyper` does, and a `Learner`'s group count: one version for `fit.py` and `lr_finder.py`."
from __future__ import annotations
import numpy as np
from fastcore.basics import even_mults
from fastcore.foundation import L
from .schedules import check_float, check_lrs

def n_groups(learn) -> int:
    "Number of param groups `learn.opt` has, or would have, without creating it (mirrors fastai's `Optimizer.__init__`)"
    if learn.opt is not None: return len(learn.opt.param_lists)
    ps = L(learn.splitter(learn.model))
    return len(ps) if len(ps) and isinstance(ps[0], (L, list)) else 1

def group_lrs(name:str, v, n:int=None):
    "`v` as a float or one float per group (`n` of them); a slice expands as `set_hyper` does, or comes back checked while `n` is None"
    if isinstance(v, slice):
        if v.step is not None or v.stop is None: raise ValueError(f"{name} as a slice must be slice(stop) or slice(start, stop), got {v!r}")
        stop = check_float(f"{name}.stop", v.stop)
        start = None if v.start is None else check_float(f"{name}.start", v.start)
        if n is None: return v
        vals = [float(o) for o in L(even_mults(start, stop, n))] if start else [stop/10]*(n-1) + [stop]
    else:
        vals = check_lrs(name, v)
        if np.ndim(vals) == 0: return vals
        vals = vals.tolist()
    if len(vals) == 1: return vals[0]
    if n is not None and len(vals) != n:
        raise ValueError(f"{name} has {len(vals)} values but the optimizer has {n} parameter group(s): give one value, a slice, or {n} values")
    return vals
