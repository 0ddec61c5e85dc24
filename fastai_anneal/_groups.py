"A `Learner`'s param-group count, without creating its optimizer: one version for `fit.py` and `lr_finder.py`."
from fastcore.foundation import L

def n_groups(learn) -> int:
    "Number of param groups `learn.opt` has, or would have, without creating it (mirrors fastai's `Optimizer.__init__`)"
    if learn.opt is not None: return len(learn.opt.param_lists)
    ps = L(learn.splitter(learn.model))
    return len(ps) if len(ps) and isinstance(ps[0], (L, list)) else 1
