"""Tasks of `bench_autolr.py`: four model families on offline data, plus one held out from the method's design.

Each `make(seed)` returns a fresh fastai `Learner` (seed: weight init and shuffling); `TASKS[name] = (make, epochs, score)`.
- mnist1d:  the MNIST-1D paper's CNN (ReLU, no normalisation), Adam, bs 100, 60 epochs; accuracy
- bn_sgd:   a residual 1-d CNN with BatchNorm on MNIST-1D, SGD momentum 0.9, wd 5e-4, 20 epochs; accuracy
- tabular:  an MLP with LayerNorm and GELU on generated 6-class tabular data (25k rows), Adam, 10 epochs; accuracy
- char_lm:  a 2-layer pre-LN transformer character LM on the Python docs that ship with the interpreter (pydoc_data),
            AdamW wd 0.1, 8 epochs; validation loss
- mnist1d_gru (held out: not run while the method was designed): a GRU on MNIST-1D, Adam, 30 epochs; accuracy
- friedman_mlp (held out, added after the method was fixed): an MLP regressing Friedman #1 (sklearn, noise 0.1), Adam, 12 epochs;
  validation MSE
- mnist1d_mlp (held out, added after the method was fixed): an MLP without normalisation on MNIST-1D, SGD momentum 0.9,
  40 epochs; accuracy
- mnist1d_20ep, tabular_4ep (held out, added after the divergence margin): the first and fourth tasks at other budgets (20
  and 4 epochs, about 800 batches each). The best lr moves with the horizon; these check the tuner follows it.
- digits_cnn (held out, added 2026-12-01 in the fourth session of issue 12, defined before any run): a 2-d CNN with BatchNorm
  and dropout on scikit-learn's bundled 8x8 digits (600 train / 1197 valid images: with all 1400 it reaches 99.5%, no room to
  rank lrs), Adam, bs 32, 40 epochs (19 batches per epoch: every trial spans several epochs); accuracy
- mnist1d_mixup (held out, same date): the first task's CNN trained with fastai's `MixUp` callback (the training loss is on
  mixed targets), 40 epochs; accuracy
- mnist1d_vit (held out, same date): a patch transformer classifier (8 patches of 5 samples, 2 pre-LN layers, mean pool) on
  MNIST-1D, AdamW wd 0.05, 30 epochs; accuracy
"""
import math, numpy as np, torch
from functools import partial
from torch import nn
import torch.nn.functional as F
from fastai.basics import *
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn
from fastai_anneal.data import _array_dls

def _seed(s): set_seed(s, reproducible=True)

# --- 1. MNIST-1D CNN, Adam
def mnist1d(seed):
    _seed(seed)
    return Learner(mnist1d_dls(bs=100, seed=seed), mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), metrics=accuracy)

# --- 2. MNIST-1D residual CNN with BatchNorm, SGD momentum 0.9
class _Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.f = nn.Sequential(nn.Conv1d(c, c, 3, padding=1, bias=False), nn.BatchNorm1d(c), nn.ReLU(),
                               nn.Conv1d(c, c, 3, padding=1, bias=False), nn.BatchNorm1d(c))
    def forward(self, x): return F.relu(x + self.f(x))
def _bn_cnn(c=16):
    return nn.Sequential(nn.Conv1d(1, c, 5, padding=2, bias=False), nn.BatchNorm1d(c), nn.ReLU(), _Res(c), nn.MaxPool1d(2),
                         _Res(c), nn.MaxPool1d(2), _Res(c), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(c, 10))
def bn_sgd(seed):
    _seed(seed)
    return Learner(mnist1d_dls(bs=100, seed=seed), _bn_cnn(), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                   opt_func=partial(SGD, mom=0.9), wd=5e-4)

# --- 3. char-level transformer LM (LayerNorm, AdamW), scored by validation loss
class _CharLM(nn.Module):
    def __init__(self, vocab, d=64, n_layer=2, n_head=4, ctx=64):
        super().__init__()
        self.emb,self.pos = nn.Embedding(vocab, d),nn.Parameter(torch.zeros(ctx, d))
        layer = nn.TransformerEncoderLayer(d, n_head, 4*d, dropout=0., batch_first=True, norm_first=True, activation='gelu')
        self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.ln,self.head = nn.LayerNorm(d),nn.Linear(d, vocab)
        self.register_buffer('mask', torch.triu(torch.full((ctx, ctx), float('-inf')), 1))
        nn.init.normal_(self.pos, std=0.02)
    def forward(self, x):
        T = x.shape[1]
        h = self.emb(x) + self.pos[:T]
        return self.head(self.ln(self.blocks(h, mask=self.mask[:T,:T], is_causal=True)))

_TEXT = None
def _text():
    global _TEXT
    if _TEXT is None:
        import pydoc_data.topics as t
        s = ''.join(t.topics[k] for k in sorted(t.topics))
        chars = sorted(set(s)); idx = {c:i for i,c in enumerate(chars)}
        _TEXT = np.array([idx[c] for c in s], dtype=np.int64),len(chars)
    return _TEXT

def char_lm(seed, ctx=48, n_train=4096, n_valid=1024):
    _seed(seed)
    ids,vocab = _text()
    cut = int(len(ids)*0.9)
    rs = np.random.RandomState(0)  # fixed windows: the same data for every seed
    def windows(lo, hi, n):
        st = rs.randint(lo, hi-ctx-1, n)
        x = np.stack([ids[s:s+ctx] for s in st]); y = np.stack([ids[s+1:s+ctx+1] for s in st])
        return x,y
    x,y = windows(0, cut, n_train); xv,yv = windows(cut, len(ids), n_valid)
    dls = _array_dls(x, y, xv, yv, 64, seed, None)
    return Learner(dls, _CharLM(vocab, ctx=ctx), loss_func=CrossEntropyLossFlat(), opt_func=partial(Adam, wd=0.1))

# --- 4. tabular MLP with LayerNorm, AdamW, on generated data
def tabular(seed):
    from sklearn.datasets import make_classification
    _seed(seed)
    x,y = make_classification(n_samples=30000, n_features=32, n_informative=16, n_redundant=8, n_classes=6, n_clusters_per_class=3,
                              class_sep=1.0, flip_y=0.02, random_state=0)
    x = ((x - x.mean(0))/x.std(0)).astype(np.float32)
    dls = _array_dls(x[:25000], y[:25000].astype(np.int64), x[25000:], y[25000:].astype(np.int64), 128, seed, None)
    blk = lambda i,o: nn.Sequential(nn.Linear(i, o), nn.LayerNorm(o), nn.GELU())
    model = nn.Sequential(blk(32, 256), blk(256, 256), blk(256, 128), nn.Linear(128, 6))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)

# --- held out (not looked at while designing): GRU on MNIST-1D, Adam
class _GRU(nn.Module):
    def __init__(self, h=64):
        super().__init__(); self.gru,self.head = nn.GRU(1, h, batch_first=True),nn.Linear(h, 10)
    def forward(self, x): return self.head(self.gru(x.view(x.shape[0], -1, 1))[0][:, -1])
def mnist1d_gru(seed):
    _seed(seed)
    return Learner(mnist1d_dls(bs=100, seed=seed), _GRU(), loss_func=CrossEntropyLossFlat(), metrics=accuracy)

# --- held out, added 2026-12-01 after the method was fixed: a regression MLP (no normalisation, SiLU) scored by validation MSE
def friedman_mlp(seed):
    from sklearn.datasets import make_friedman1
    _seed(seed)
    x,y = make_friedman1(n_samples=24000, n_features=10, noise=0.1, random_state=0)
    x,y = ((x - x.mean(0))/x.std(0)).astype(np.float32),((y - y.mean())/y.std()).astype(np.float32)[:, None]
    dls = _array_dls(x[:20000], y[:20000], x[20000:], y[20000:], 128, seed, None)
    model = nn.Sequential(nn.Linear(10, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 1))
    return Learner(dls, model, loss_func=MSELossFlat())

# --- held out, added 2026-12-01 after the method was fixed: an MLP without normalisation on MNIST-1D, SGD momentum 0.9
def mnist1d_mlp(seed):
    _seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    return Learner(mnist1d_dls(bs=100, seed=seed), model, loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                   opt_func=partial(SGD, mom=0.9))

# --- held out, added 2026-12-01 (fourth session of issue 12), defined before any run: fastai-style vision, MixUp, a ViT
def digits_cnn(seed):
    from sklearn.datasets import load_digits
    _seed(seed)
    d = load_digits()
    x,y = (d.images[:, None]/16.).astype(np.float32),d.target.astype(np.int64)
    idx = np.random.RandomState(0).permutation(len(x))  # a fixed split: the same data for every seed
    x,y = x[idx],y[idx]
    dls = _array_dls(x[:600], y[:600], x[600:], y[600:], 32, seed, None)
    blk = lambda i,o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())
    model = nn.Sequential(blk(1, 32), blk(32, 32), nn.MaxPool2d(2), blk(32, 64), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.25),
                          nn.Linear(64*4, 10))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)

def mnist1d_mixup(seed):
    from fastai.callback.mixup import MixUp
    _seed(seed)
    return Learner(mnist1d_dls(bs=100, seed=seed), mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=MixUp(0.4))

class _ViT1d(nn.Module):
    def __init__(self, patch=5, d=64, n_layer=2, n_head=4, n_out=10):
        super().__init__()
        self.patch,self.embed,self.pos = patch,nn.Linear(patch, d),nn.Parameter(torch.zeros(40//patch, d))
        layer = nn.TransformerEncoderLayer(d, n_head, 2*d, dropout=0., batch_first=True, norm_first=True, activation='gelu')
        self.blocks = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        self.ln,self.head = nn.LayerNorm(d),nn.Linear(d, n_out)
        nn.init.normal_(self.pos, std=0.02)
    def forward(self, x):
        h = self.embed(x.view(x.shape[0], -1, self.patch)) + self.pos
        return self.head(self.ln(self.blocks(h)).mean(1))
def mnist1d_vit(seed):
    _seed(seed)
    return Learner(mnist1d_dls(bs=100, seed=seed), _ViT1d(), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                   opt_func=partial(Adam, wd=0.05))

# name: (make, epochs, score: 'accuracy' (higher better) | 'valid_loss' (lower better))
TASKS = {'mnist1d': (mnist1d, 60, 'accuracy'), 'bn_sgd': (bn_sgd, 20, 'accuracy'),
         'char_lm': (char_lm, 8, 'valid_loss'), 'tabular': (tabular, 10, 'accuracy'), 'mnist1d_gru': (mnist1d_gru, 30, 'accuracy'),
         'friedman_mlp': (friedman_mlp, 12, 'valid_loss'), 'mnist1d_mlp': (mnist1d_mlp, 40, 'accuracy'),
         'mnist1d_20ep': (mnist1d, 20, 'accuracy'), 'tabular_4ep': (tabular, 4, 'accuracy'),
         'digits_cnn': (digits_cnn, 40, 'accuracy'), 'mnist1d_mixup': (mnist1d_mixup, 40, 'accuracy'),
         'mnist1d_vit': (mnist1d_vit, 30, 'accuracy')}

# variants `name_wu` of every task: the package's fits (cos, flat) with a 5% linear warmup, the reference configuration for
# MNIST-1D's 95% (`fit_cos_anneal(60, 3e-2, pct_warmup=0.05)`: 95.67%). Fastai's recipe and fit_one_cycle take no such argument:
# a variant's are its base task's runs (`BASE`)
FIT_KW = {f'{t}_wu': dict(pct_warmup=0.05) for t in TASKS}
BASE = {f'{t}_wu': t for t in TASKS}
TASKS.update({v: TASKS[t] for v,t in BASE.items()})

def score(learn, kind):
    names = learn.recorder.metric_names[1:-1]
    return float(learn.recorder.values[-1][names.index(kind)])
