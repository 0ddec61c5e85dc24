"""Streaming accuracy metrics for fastai: they keep counts, not predictions, and stay exact under distributed training.

Why counts: fastai's `AvgMetric(accuracy)` averages per-batch means (inexact by float rounding, and inexact under
DDP), and its `AccumMetric`s (`BalancedAccuracy`) store every prediction of the epoch. Here each metric keeps a few
int64 tensors on the prediction's device (two counts per class for balanced accuracy: O(C), whatever the number of
samples), updated without any host sync, and `value` divides once.

Distributed training (`learn.distrib_ctx()`): fastai's `DistributedDL` pads the index list to a multiple of the
world size by repeating its first indices, then gives rank `r` the slice `[r*n_padded//ws, (r+1)*n_padded//ws)`.
So a sample is padding exactly when its position in that padded list is `>= dl.n`. `DistributedDL.after_batch`
has already advanced `dl.i` past the batch when the metric sees it, so the batch starts at global position
`dl.rank*dl.n_padded//dl.world_size + dl.i - bs` and only its first `dl.n - start` samples (clipped to [0, bs])
are real. `accumulate` drops the rest (a host-side slice: no sync), marks the counts as sharded, and `value`
all-reduces them (sum) over the process group. Every rank must therefore read `value` (the `Recorder` does), and
the result is cached until the next batch. Counts fed by `accum_values`/`__call__` are never reduced.
"""
from __future__ import annotations
import sys
import numpy as np, torch
import torch.distributed as dist
from fastai.learner import Metric
from fastai.torch_core import find_bs
from ._checks import check_integral, check_int, check_float, check_bool

__all__ = ['Accuracy', 'BalancedAccuracy', 'AccuracyMulti']

# ---------------------------------------------------------------- input checks (host-side: shapes and dtypes only)
def _plain(t):
    "`t` detached, as a plain `torch.Tensor`: fastai's `TensorBase` subclasses route every op through a slow `__torch_function__`"
    if not isinstance(t, torch.Tensor): return t
    if type(t) is not torch.Tensor: t = t.as_subclass(torch.Tensor)
    return t.detach() if t.requires_grad else t

def _check_index(name:str, v) -> int|None:
    "`v` None or an int a class-index tensor (int64) can hold"
    v = check_integral(name, v, none_ok=True)
    if v is not None and not -2**63 <= v < 2**63: raise ValueError(f"{name} must be None or an int in [-2**63, 2**63), got {v}")
    return v

def _is_int_dtype(t): return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)
def _core(shape): return [s for s in shape if s != 1]

def _check_same_shape(pred_shape, targ, what):
    "`targ` reshaped to `pred_shape`; they may differ only by size-1 dimensions, as in `flatten_check`"
    if targ.shape == pred_shape: return targ
    if _core(pred_shape) != _core(targ.shape):
        raise ValueError(f"{what} of shape {tuple(pred_shape)} do not match targ of shape {tuple(targ.shape)}")
    return targ.reshape(pred_shape)

def _class_preds(pred, targ, axis:int, k:int=1, n_classes=None):
    "Top-`k` class indices of `pred` (moved to the last dim when `k>1`), `targ` in the same shape, and the class count"
    if not isinstance(pred, torch.Tensor) or not isinstance(targ, torch.Tensor):
        raise TypeError(f"pred and targ must be tensors, got {type(pred).__name__} and {type(targ).__name__}")
    if not _is_int_dtype(targ):
        raise TypeError(f"targ must hold class indices (an integer dtype), got {targ.dtype}; one-hot or soft targets need `AccuracyMulti` "
                        "or an argmax first")
    if _is_int_dtype(pred):
        if k != 1: raise ValueError(f"top_k={k} needs class scores of shape (..., C), got class indices of shape {tuple(pred.shape)}")
        return pred.long(), _check_same_shape(pred.shape, targ, 'predicted class indices').long(), n_classes
    if not pred.is_floating_point():
        raise TypeError(f"pred must hold class scores (a float dtype) or class indices (an integer dtype), got {pred.dtype}")
    if not -pred.ndim <= axis < pred.ndim: raise ValueError(f"axis={axis} is out of range for pred of shape {tuple(pred.shape)}")
    n_cls = pred.shape[axis]
    if n_cls < 2:
        raise ValueError(f"pred of shape {tuple(pred.shape)} has {n_cls} class along axis={axis}; multi-label or single-logit outputs "
                         "need `AccuracyMulti`")
    if n_classes is not None and n_cls != n_classes:
        raise ValueError(f"pred has {n_cls} classes along axis={axis} but n_classes={n_classes}")
    if k > n_cls: raise ValueError(f"top_k={k} is larger than the number of classes C={n_cls} of pred of shape {tuple(pred.shape)}")
    shape = pred.shape[:axis % pred.ndim] + pred.shape[axis % pred.ndim + 1:]
    targ = _check_same_shape(shape, targ, f'predictions (pred of shape {tuple(pred.shape)} reduced along axis={axis})').long()
    if k == 1: return pred.argmax(axis), targ, n_cls
    return pred.topk(k, dim=axis).indices.movedim(axis, -1), targ, n_cls

def _real_samples(dl, bs:int) -> tuple:
    "Global position of the current batch of `dl` and how many of its first `bs` samples are real, if `dl` is a `DistributedDL`"
    # a dl can only be a `DistributedDL` once fastai.distributed is loaded, so don't import it (it imports accelerate)
    ddl = getattr(sys.modules.get('fastai.distributed'), 'DistributedDL', None)
    if ddl is None or not isinstance(dl, ddl) or not all(hasattr(dl, o) for o in ('i', 'n', 'n_padded')): return None, bs
    start = dl.rank*dl.n_padded//dl.world_size + dl.i - bs
    return start, max(0, min(bs, dl.n - start))

def _distributed(): return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

def _all_reduce(t, op=None):
    "A reduced copy of `t` over the default process group"
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op is None else op)
    return t

# ---------------------------------------------------------------- base
class _CountMetric(Metric):
    "Base of the streaming metrics: `accumulate` drops `DistributedDL` padding, `value` all-reduces the counts"
    def reset(self):
        "Forget every count"
        self._state,self._sharded,self._pos,self._synced = None,False,0,None

    def accumulate(self, learn):
        "Count `learn.pred` against `learn.y`, leaving out the samples a `DistributedDL` repeats as padding"
        pred,targ = learn.pred,learn.y
        bs = find_bs(learn.yb)
        pos,n = _real_samples(getattr(learn, 'dl', None), bs)
        if pos is not None: self._sharded = True
        if n != bs: pred,targ = pred[:n],targ[:n]
        self._update(_plain(pred), _plain(targ), pos)

    def accum_values(self, preds, targs, learn=None):
        "Count a batch of `preds` against `targs` (no distributed reduction: the caller owns the sharding); `learn` as fastai's, unused"
        self._update(_plain(preds), _plain(targs), None)

    def __call__(self, preds, targs):
        "The metric on one batch of `preds` and `targs`, as fastai's `AccumMetric.__call__`"
        self.reset()
        self.accum_values(preds, targs)
        return self.value

    def _state_or_new(self, device):
        if self._state is None: self._state = self._new_state(device)
        self._synced = None
        return self._state

    @property
    def value(self):
        "The metric over every accumulated sample (summed over ranks for sharded batches); `None` before any"
        if self._synced is None:
            st = self._state
            if st is not None and self._sharded and _distributed(): st = self._reduce(st)
            self._synced = (st,)
        return None if self._synced[0] is None else self._compute(self._synced[0])

    @property
    def name(self): return self._name
    @name.setter
    def name(self, value): self._name = value

# ---------------------------------------------------------------- accuracy
class Accuracy(_CountMetric):
    "Exact streaming accuracy: fraction of targets in the `top_k` classes of `pred` along `axis`, skipping `ignore_index`"
    def __init__(self,
        axis:int=-1,             # Class dimension of the scores (1 for (N, C, H, W) segmentation outputs)
        top_k:int=1,             # Count a hit when the target is among the `top_k` highest scores
        ignore_index:int=None,   # Target value left out of both counts (e.g. 255 or -100 in segmentation)
    ):
        self.axis,self.top_k = check_integral('axis', axis),check_integral('top_k', top_k, 1)
        self.ignore_index = _check_index('ignore_index', ignore_index)
        self._name = 'accuracy' if self.top_k == 1 else f'top_{self.top_k}_accuracy'
        self.reset()

    def _new_state(self, device):
        z = lambda v: torch.tensor(v, dtype=torch.int64, device=device)
        # lo/hi: range of the counted targets, checked in `value` so that `accumulate` never syncs
        return dict(hits=z(0), total=z(0), lo=z(torch.iinfo(torch.int64).max), hi=z(torch.iinfo(torch.int64).min), n_classes=None)

    def _update(self, pred, targ, pos):
        pred,targ,n_cls = _class_preds(pred, targ, self.axis, self.top_k)
        st = self._state_or_new(targ.device)
        if st['n_classes'] is None: st['n_classes'] = n_cls
        elif n_cls != st['n_classes']: raise ValueError(f"pred has {n_cls} classes but earlier batches had {st['n_classes']}")
        if targ.numel() == 0: return
        # top-k indices are distinct, so a row matches at most once: summing the matches counts the hits
        hit = pred == (targ if self.top_k == 1 else targ.unsqueeze(-1))
        if self.ignore_index is None:
            st['hits'].add_(hit.sum()); st['total'].add_(targ.numel())
        else:
            keep = targ != self.ignore_index
            st['hits'].add_((hit & (keep if self.top_k == 1 else keep.unsqueeze(-1))).sum()); st['total'].add_(keep.sum())
            targ = targ.masked_fill(~keep, 0)
        lo,hi = targ.aminmax()
        torch.minimum(st['lo'], lo, out=st['lo']); torch.maximum(st['hi'], hi, out=st['hi'])

    def _reduce(self, st):
        return dict(st, hits=_all_reduce(st['hits']), total=_all_reduce(st['total']),
                    lo=_all_reduce(st['lo'], dist.ReduceOp.MIN), hi=_all_reduce(st['hi'], dist.ReduceOp.MAX))

    def _compute(self, st):
        total = int(st['total'])
        if total == 0: return None
        lo,hi = int(st['lo']),int(st['hi'])
        n_cls = st['n_classes']
        if lo < 0 or (n_cls is not None and hi >= n_cls):
            raise ValueError(f"targ must hold class indices in [0, {n_cls if n_cls is not None else 'C'}) (or "
                             f"ignore_index={self.ignore_index}), got values in [{lo}, {hi}]")
        return int(st['hits']) / total

# ---------------------------------------------------------------- balanced accuracy
MAX_INFERRED_CLASSES = 1_000_000  # `BalancedAccuracy` without `n_classes`: the most classes it infers from the indices it sees (16 MB)
MAX_CLASSES = 100_000_000  # `BalancedAccuracy(n_classes=...)` at most: its counts then take 1.6 GB

class BalancedAccuracy(_CountMetric):
    "Exact streaming balanced accuracy (macro recall over the classes present in the targets), as fastai's `BalancedAccuracy`"
    def __init__(self,
        axis:int=-1,             # Class dimension of the scores (1 for (N, C, H, W) segmentation outputs)
        sample_weight:torch.Tensor|np.ndarray|None=None,  # One weight per target, in epoch order (fastai's/sklearn's `sample_weight`)
        adjusted:bool=False,     # Rescale so chance scores 0 and perfect scores 1 (sklearn's `adjusted`)
        n_classes:int=None,      # Number of classes; needed only to avoid a host sync when `pred` holds class indices
        ignore_index:int=None,   # Target value left out of the confusion matrix
    ):
        self.axis,self.adjusted = check_integral('axis', axis),check_bool('adjusted', adjusted)
        self.n_classes = check_integral('n_classes', n_classes, 2, none_ok=True, hi=MAX_CLASSES)
        self.ignore_index = _check_index('ignore_index', ignore_index)
        self.sample_weight = None if sample_weight is None else self._check_weights(sample_weight)
        self._name = 'balanced_accuracy_score'  # fastai's name, so `monitor='balanced_accuracy_score'` keeps working
        self.reset()

    @staticmethod
    def _check_weights(w):
        bad = TypeError(f"sample_weight must be a 1-D array of real numbers, got {type(w).__name__}")
        if isinstance(w, torch.Tensor):  # through torch: numpy has no bfloat16
            if w.is_complex(): raise bad  # numpy's cast drops the imaginary part with a warning only
            w = w.detach().to('cpu', torch.float64, copy=True)  # a copy: the caller's buffer changed later is not what was checked
        else:
            try: a = np.asarray(w)
            except (TypeError, ValueError): raise bad from None
            if np.iscomplexobj(a): raise bad
            try: w = torch.tensor(np.array(a, dtype=np.float64))  # copied
            except (TypeError, ValueError): raise bad from None
        if w.ndim != 1: raise ValueError(f"sample_weight must be 1-D (one weight per target), got shape {tuple(w.shape)}")
        if len(w) == 0: raise ValueError("sample_weight must hold one weight per target of the validation set, got an empty array")
        if not torch.isfinite(w).all(): raise ValueError("sample_weight must hold finite numbers, got NaN or inf")
        return w

    def _new_state(self, device):
        st = dict(n_classes=self.n_classes or 0, weights=None)
        st['cm'],st['wcm'] = self._counts(st['n_classes'], device, torch.int64),None
        if self.sample_weight is not None:
            st['weights'] = self.sample_weight.to(device)
            st['wcm'] = self._counts(st['n_classes'], device, torch.float64)
        return st

    # per class, at `2*targ + hit`: its targets missed, then hit; two bins after them: out-of-range indices, ignored targets.
    # O(C): the diagonal and the row sums are all that balanced accuracy reads of the confusion matrix
    @staticmethod
    def _counts(n, device, dtype): return torch.zeros(2*n+2, dtype=dtype, device=device)
    @staticmethod
    def _grow(cm, n0, n1):
        new = BalancedAccuracy._counts(n1, cm.device, cm.dtype)
        new[:2*n0],new[-2:] = cm[:2*n0],cm[-2:]
        return new

    def _resize(self, st, n):
        if n <= st['n_classes']: return
        st['cm'] = self._grow(st['cm'], st['n_classes'], n)
        if st['wcm'] is not None: st['wcm'] = self._grow(st['wcm'], st['n_classes'], n)
        st['n_classes'] = n

    def _update(self, pred, targ, pos):
        pred,targ,n_cls = _class_preds(pred, targ, self.axis, 1, self.n_classes)
        st = self._state_or_new(targ.device)
        per_sample = targ[0].numel() if targ.ndim and len(targ) else 1
        p,t = pred.reshape(-1),targ.reshape(-1)
        start = self._pos if pos is None else pos*per_sample
        end = start + len(t)
        if len(t) and st['weights'] is not None and end > len(st['weights']):  # checked before the state changes
            raise ValueError(f"sample_weight has {len(st['weights'])} entries but targets {start} to {end-1} were seen")
        keep = None if self.ignore_index is None else t != self.ignore_index
        if n_cls is None and len(t):  # class indices of unknown range: one host sync to grow the counts
            n_cls = int(torch.maximum(t.max() if keep is None else t.masked_fill(~keep, -1).max(), p.max())) + 1
            if n_cls > MAX_INFERRED_CLASSES:  # a stray label must not allocate gigabytes
                raise ValueError(f"n_classes is None and a class index of {n_cls-1} was seen: BalancedAccuracy infers at most "
                                 f"{MAX_INFERRED_CLASSES} classes; pass n_classes")
        self._pos = end
        if n_cls is not None: self._resize(st, n_cls)
        if len(t) == 0: return
        n = st['n_classes']
        bad = (t < 0) | (t >= n) | (p < 0) | (p >= n)
        if keep is not None: bad &= keep
        code = (2*t + (t == p)).masked_fill_(bad, 2*n)
        if keep is not None: code.masked_fill_(~keep, 2*n+1)
        st['cm'].index_add_(0, code, torch.ones(1, dtype=torch.int64, device=code.device).expand(len(code)))
        if st['wcm'] is not None: st['wcm'].index_add_(0, code, st['weights'][start:self._pos])

    def _reduce(self, st):
        n = int(_all_reduce(torch.tensor(st['n_classes'], device=st['cm'].device), dist.ReduceOp.MAX))
        st = dict(st); self._resize(st, n)
        return dict(st, cm=_all_reduce(st['cm']), wcm=None if st['wcm'] is None else _all_reduce(st['wcm']))

    def _compute(self, st):
        n,cm = st['n_classes'],st['cm'].cpu()
        if cm[2*n]:
            raise ValueError(f"{int(cm[2*n])} targets or predicted class indices were outside [0, {n}) (ignore_index={self.ignore_index})")
        seen = int(cm[:2*n].sum() + cm[2*n+1])
        if self.sample_weight is not None and seen != len(self.sample_weight):
            raise ValueError(f"sample_weight has {len(self.sample_weight)} entries but {seen} targets were seen")
        m = (cm if st['wcm'] is None else st['wcm'].cpu())[:2*n].view(n, 2).numpy()
        # sklearn's `diag(C) / C.sum(1)`, then its mean: exact integers without weights, so the value is sklearn's to the last bit
        with np.errstate(divide='ignore', invalid='ignore'):
            recall = m[:, 1] / m.sum(1)
            recall = recall[~np.isnan(recall)]  # classes absent from the targets: 0/0, dropped as sklearn does
            if len(recall) == 0: return None
            score = recall.mean()
            if self.adjusted:  # with a single class, sklearn's 0/0 or x/0 gives nan or -inf: so does this
                chance = 1 / len(recall)
                score = (score - chance) / (1 - chance)
        return float(score)

# ---------------------------------------------------------------- multi-label accuracy
class AccuracyMulti(_CountMetric):
    ("Exact streaming multi-label accuracy: fraction of labels where `pred > thresh` (after `sigmoid`) equals `targ`, as fastai's "
     "`accuracy_multi`")
    def __init__(self,
        thresh:float=0.5,     # Threshold on the probabilities (on the raw scores if `sigmoid=False`)
        sigmoid:bool=True,    # Apply a sigmoid to `pred` first
    ):
        self.sigmoid = check_bool('sigmoid', sigmoid)
        self.thresh = check_float('thresh', thresh, 0., 1.) if self.sigmoid else check_float('thresh', thresh, -np.inf, np.inf)
        self._name = 'accuracy_multi'
        self.reset()

    def _new_state(self, device):
        z = lambda: torch.zeros((), dtype=torch.int64, device=device)
        return dict(hits=z(), total=z(), non_binary=z())

    def _update(self, pred, targ, pos):
        if not isinstance(pred, torch.Tensor) or not isinstance(targ, torch.Tensor):
            raise TypeError(f"pred and targ must be tensors, got {type(pred).__name__} and {type(targ).__name__}")
        if pred.is_complex() or (self.sigmoid and not pred.is_floating_point()):
            raise TypeError(f"pred must hold {'float scores' if self.sigmoid else 'real numbers'}, got {pred.dtype}")
        if targ.is_complex(): raise TypeError(f"targ must hold 0/1 labels, got {targ.dtype}")
        targ = _check_same_shape(pred.shape, targ, 'predictions')
        st = self._state_or_new(targ.device)
        if self.sigmoid: pred = (pred.float() if pred.dtype in (torch.float16, torch.bfloat16) else pred).sigmoid()  # fp16 rounds
        tb = targ.bool()  # small logits to exactly 0.5
        # before the counts change; torch compares no uint16/32/64 tensor with a bool one (a crash with the batch half counted)
        wide = targ.dtype in (torch.uint16, torch.uint32, torch.uint64)
        other = None if targ.dtype == torch.bool else ((targ.long() if wide else targ) != tb).sum()
        st['hits'].add_(((pred > self.thresh) == tb).sum()); st['total'].add_(targ.numel())
        if other is not None: st['non_binary'].add_(other)

    def _reduce(self, st): return {k:_all_reduce(v) for k,v in st.items()}

    def _compute(self, st):
        if st['non_binary']: raise ValueError(f"targ must hold 0/1 labels, got {int(st['non_binary'])} other values")
        total = int(st['total'])
        return int(st['hits']) / total if total else None
