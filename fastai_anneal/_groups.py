"What a `Learner`'s fit will run, without running it (param groups, batches per epoch, recorded values), and one decision for every rank."
import math, re, sys
import torch
from fastcore.foundation import L
from fastai.torch_core import num_distrib

def n_groups(learn) -> int:
    ("Number of param groups `learn.opt` has, or would have, without creating it (fastai's `Optimizer.__init__` counts lists; this "
     "package's optimizers take tuples and generators as groups too)")
    if learn.opt is not None: return len(learn.opt.param_lists)
    ps = L(learn.splitter(learn.model))
    return len(ps) if len(ps) and not isinstance(ps[0], torch.Tensor) else 1

def _sharded(learn):
    "fastai's distributed module when `learn` fits under its `DistributedTrainer` (which shards the loaders as a fit starts), else None"
    d = sys.modules.get('fastai.distributed')  # not imported: no `DistributedTrainer` can exist
    if d is None or isinstance(learn.dls.train, d.DistributedDL) or not any(isinstance(c, d.DistributedTrainer) for c in learn.cbs):
        return None
    return d

def n_iter(learn) -> int:
    ("Training batches per epoch as a fit of `learn` counts them (fastai's `n_iter`, the denominator of `pct_train` that schedules "
     "read): under `DistributedTrainer` the `DistributedDL`'s length, `ceil(len(dl)/world)`")
    return len(learn.dls.train) if _sharded(learn) is None else math.ceil(len(learn.dls.train) / num_distrib())

def train_batches(learn) -> int:
    ("Training batches per epoch a fit of `learn` runs on this process: under `DistributedTrainer` each rank's share of the items "
     "(padded to a multiple of the world size), batched as the loader batches; `n_iter` counts one more when a share does not fill "
     "whole batches and the loader drops the rest")
    dl = learn.dls.train
    if _sharded(learn) is None: return len(dl)
    n,bs = (getattr(dl, 'n', None),getattr(dl, 'bs', None)) if hasattr(dl, 'bs') else (len(dl.dataset),dl.batch_size)
    if not n or not bs: return n_iter(learn)
    m = math.ceil(n / num_distrib())
    return m//bs if dl.drop_last else math.ceil(m/bs)

def recorded(learn) -> list:
    "The values the learner's `Recorder` logs each epoch (its `metric_names` but 'epoch' and 'time'), known before its first fit"
    rec = learn.cbs.filter(lambda c: c.name == 'recorder')
    if not rec: return []
    rec,ms = rec[0],[m.name for m in learn.metrics]
    if rec.train_metrics and rec.valid_metrics: return [f'{p}_{n}' for p in ('train', 'valid') for n in ['loss'] + ms]
    return ['train_loss'] + (['valid_loss'] + ms if rec.valid_metrics else ms)  # how `Recorder.before_fit` names them

# fastai's metrics where lower is better whose names say neither 'loss' nor 'error' (its trackers would maximise them), as fastai names
# them less a leading '_' (`rmse` is `AccumMetric(_rmse)`, named '_rmse')
LOWER_IS_BETTER = ('mae', 'mse', 'rmse', 'msle', 'exp_rmspe', 'perplexity')

def lower_is_better(name:str) -> bool:
    ("Whether lower is better for the recorded value `name`: it says 'loss' or 'error' (fastai's `TrackerCallback` rule) or is one of "
     "fastai's regression metrics (`LOWER_IS_BETTER`), a 'train_'/'valid_' prefix and leading '_' aside")
    return 'loss' in name or 'error' in name or re.sub(r'^(train_|valid_)', '', name).lstrip('_') in LOWER_IS_BETTER

def _distributed() -> bool: return torch.distributed.is_available() and torch.distributed.is_initialized()
def _device() -> str: return 'cuda' if torch.distributed.get_backend() == 'nccl' else 'cpu'  # where the backend reduces

def agree(vals:list) -> list:
    ("The mean of `vals` over the ranks of a distributed run (every rank then takes the same decisions; a value that is not finite on "
     "some rank is inf); `vals` unchanged otherwise. Every rank must pass as many values")
    if not _distributed(): return vals
    t = torch.tensor(vals, dtype=torch.float64, device=_device())
    finite = torch.isfinite(t)
    t = torch.where(finite, t, torch.zeros_like(t))
    torch.distributed.all_reduce(t); n = finite.double(); torch.distributed.all_reduce(n)
    return [v/k if k == torch.distributed.get_world_size() else math.inf for v,k in zip(t.tolist(), n.tolist())]

def agree_len(n:int) -> int:
    "The smallest `n` over the ranks of a distributed run (`n` otherwise): how many values every rank can `agree` on"
    if not _distributed(): return n
    t = torch.tensor([n], dtype=torch.int64, device=_device())
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t.item())
