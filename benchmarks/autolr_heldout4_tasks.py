"""Fourth held-out task set for `lr='auto'` (`bench_autolr_sweep.py`), written by a reviewer (a helper agent) asked for tasks the
method had never seen; every task was defined (this file written in full) before its first run and not changed afterwards.
None shares a model/optimizer/data/loss setting with benchmarks/autolr_tasks.py, autolr_sweep_tasks.py or autolr_heldout3_tasks.py.
Offline: scikit-learn generated data, MNIST-1D made locally (`mnist1d_dls`), generated bracket strings, sequences and ratings.
`TASKS[name](seed)` returns a fresh fastai `Learner` (seed: weights and shuffling; the data and its split are fixed).

1. hastie_bn_sgdm:  MLP 10-256-256-256-2 with post-activation BatchNorm (Linear -> ReLU -> BatchNorm1d) on make_hastie_10_2
                    (10 Gaussian features, class = squared norm above the chi-square median; 10000 train / 2000 valid); fastai SGD
                    momentum 0.9, wd 1e-4; bs 64 (157 batches/epoch); accuracy
2. dyck_attn:       2-layer post-LN transformer encoder (torch `nn.TransformerEncoderLayer`, d 64, 4 heads, ff 128, no dropout,
                    learned positions, CLS token) classifying generated length-20 strings over two bracket types as balanced or not
                    (negatives: a balanced string with one bracket's type changed, two adjacent tokens swapped, or one bracket
                    flipped open/close; 7000 train / 1500 valid); torch AdamW (betas 0.9/0.98, weight_decay 0.1) via fastai
                    `OptimWrapper`; bs 32 (219 batches/epoch); accuracy
3. collab_mf:       fastai `EmbeddingDotBias` (32 factors, biases, y_range (0, 5.5)) on generated ratings (800 users x 500 items,
                    rank-6 preferences + user/item biases + noise, popularity-skewed sampling, 50000 train / 10000 valid); fastai
                    Adam wd 0.1 (the fastai collab recipe); bs 128 (391 batches/epoch); valid_loss (MSE)
4. adding_gru:      GRU (hidden 48, last state -> linear) on the adding problem (length 30, channels value/marker, one marker in
                    each half, target = sum of the two marked values - 1; 9000 train / 1500 valid); fastai Adam with fastai
                    `GradientClip(1.0)`; bs 32 (282 batches/epoch); valid_loss (MSE)
5. swissroll_huber: tanh MLP 3-128-128-128-1 regressing the roll coordinate t of make_swiss_roll (noise 1.0, standardised x and t;
                    10000 train / 2000 valid) with a Huber loss (delta 0.5); fastai QHAdam (its defaults); bs 32 (313
                    batches/epoch); valid_loss (Huber)
6. m1d_ranger:      dilated 1-D CNN (TCN-like: 4 convs of 32 channels, dilations 1/2/4/8, LeakyReLU, no norm, concat max+avg pool,
                    dropout 0.1) on MNIST-1D; fastai `ranger` (RAdam + Lookahead, its defaults: wd 0.01); bs 32 (125
                    batches/epoch); accuracy
"""
import os
os.environ.setdefault('OMP_NUM_THREADS', '1')
import math, numpy as np, torch
from functools import partial
from torch import nn
import torch.nn.functional as F
torch.set_num_threads(1)
from fastai.basics import *
from fastai.callback.training import GradientClip
from fastai.collab import EmbeddingDotBias
from fastai.layers import AdaptiveConcatPool1d
from fastai_anneal.data import mnist1d_dls, _array_dls


from autolr_sweep_tasks import _seed, _std  # the first held-out set's seeding and standardisation


# 1. MLP with post-activation BatchNorm on make_hastie_10_2, SGD momentum
def hastie_bn_sgdm(seed):
    from sklearn.datasets import make_hastie_10_2
    x, y = make_hastie_10_2(n_samples=12000, random_state=4)
    n = 10000; x = _std(x, n); y = (y > 0).astype(np.int64)
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 64, seed, None)
    blk = lambda i, o: [nn.Linear(i, o), nn.ReLU(), nn.BatchNorm1d(o)]
    model = nn.Sequential(*blk(10, 256), *blk(256, 256), *blk(256, 256), nn.Linear(256, 2))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=partial(SGD, mom=0.9, wd=1e-4))


# 2. post-LN transformer encoder on balanced/unbalanced bracket strings (Dyck-2), torch AdamW
_PAIRS = {1: 2, 3: 4}  # tokens: 0 CLS, 1 '(', 2 ')', 3 '[', 4 ']'
def _balanced(s):
    st = []
    for t in s:
        if t in _PAIRS: st.append(t)
        elif not st or _PAIRS[st.pop()] != t: return False
    return not st
def _dyck(rs, L):
    s, st = [], []
    for i in range(L):
        if not st or (len(st) < L - i and rs.rand() < 0.5): o = (1, 3)[rs.randint(2)]; st.append(o); s.append(o)
        else: s.append(_PAIRS[st.pop()])
    return s
def _brackets(n, rs, L=20):
    x = np.zeros((n, L + 1), np.int64); y = rs.randint(0, 2, n)
    for k in range(n):
        s = _dyck(rs, L)
        while y[k] == 0:
            c = list(s); kind = rs.randint(3); j = rs.randint(L)
            if kind == 0: c[j] = {1: 3, 3: 1, 2: 4, 4: 2}[c[j]]                      # a bracket's type changed
            elif kind == 1: j = min(j, L - 2); c[j], c[j + 1] = c[j + 1], c[j]       # two adjacent tokens swapped
            else: c[j] = {1: 2, 2: 1, 3: 4, 4: 3}[c[j]]                              # one bracket flipped open/close
            if not _balanced(c): s = c; break
        x[k, 1:] = s
    return x, y.astype(np.int64)
class _DyckEnc(nn.Module):
    def __init__(self, d=64, L=21):
        super().__init__()
        self.emb, self.pos = nn.Embedding(5, d), nn.Parameter(torch.randn(L, d) * 0.02)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 128, dropout=0., batch_first=True), 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)
    def forward(self, x): return self.head(self.enc(self.emb(x) + self.pos)[:, 0])
def dyck_attn(seed):
    rs = np.random.RandomState(11); x, y = _brackets(8500, rs); n = 7000
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 32, seed, None)
    opt = partial(OptimWrapper, opt=torch.optim.AdamW, betas=(0.9, 0.98), weight_decay=0.1)
    return Learner(dls, _DyckEnc(), loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=opt)


# 3. matrix factorisation with biases (fastai EmbeddingDotBias) on generated ratings, Adam wd 0.1
_MF = None
def _ratings():
    global _MF
    if _MF is None:
        rs = np.random.RandomState(8); U, I, k, n = 800, 500, 6, 60000
        pu, qi = rs.normal(0, 1, (U, k)), rs.normal(0, 1, (I, k))
        bu, bi = rs.normal(0, 0.4, U), rs.normal(0, 0.5, I)
        pop = lambda m: (lambda w: w / w.sum())(1. / (rs.permutation(m) + 10.) ** 0.8)
        u, i = rs.choice(U, n, p=pop(U)), rs.choice(I, n, p=pop(I))
        r = 3.2 + bu[u] + bi[i] + 0.9 * (pu[u] * qi[i]).sum(1) / math.sqrt(k) + rs.normal(0, 0.6, n)
        _MF = np.stack([u, i], 1).astype(np.int64), np.clip(r, 0.5, 5.).astype(np.float32)
    return _MF
def collab_mf(seed):
    x, y = _ratings(); n = 50000
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 128, seed, None)
    return Learner(dls, EmbeddingDotBias(32, 800, 500, y_range=(0, 5.5)), loss_func=MSELossFlat(), opt_func=partial(Adam, wd=0.1))


# 4. GRU on the adding problem, Adam with gradient clipping
def _adding(n, rs, L=30):
    x = np.zeros((n, L, 2), np.float32); x[:, :, 0] = rs.rand(n, L)
    a, b = rs.randint(0, L // 2, n), rs.randint(L // 2, L, n)
    x[np.arange(n), a, 1] = 1.; x[np.arange(n), b, 1] = 1.
    y = (x[np.arange(n), a, 0] + x[np.arange(n), b, 0] - 1.).astype(np.float32)[:, None]
    return x, y
class _GRUReg(nn.Module):
    def __init__(self, h=48): super().__init__(); self.rnn, self.head = nn.GRU(2, h, batch_first=True), nn.Linear(h, 1)
    def forward(self, x): return self.head(self.rnn(x)[0][:, -1])
def adding_gru(seed):
    rs = np.random.RandomState(13); x, y = _adding(10500, rs); n = 9000
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 32, seed, None)
    return Learner(dls, _GRUReg(), loss_func=MSELossFlat(), cbs=GradientClip(1.0))


# 5. tanh MLP regressing the swiss roll's coordinate, Huber loss, QHAdam
def swissroll_huber(seed):
    from sklearn.datasets import make_swiss_roll
    x, t = make_swiss_roll(n_samples=12000, noise=1.0, random_state=6)
    n = 10000; x = _std(x, n); y = _std(t[:, None], n)
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 32, seed, None)
    model = nn.Sequential(nn.Linear(3, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 1))
    return Learner(dls, model, loss_func=BaseLoss(nn.HuberLoss, delta=0.5, floatify=True, is_2d=False), opt_func=QHAdam)


# 6. dilated 1-D CNN on MNIST-1D, ranger
def m1d_ranger(seed):
    _seed(seed)
    convs = [m for d, i in zip((1, 2, 4, 8), (1, 32, 32, 32)) for m in (nn.Conv1d(i, 32, 3, dilation=d, padding=d), nn.LeakyReLU(0.1))]
    model = nn.Sequential(*convs, AdaptiveConcatPool1d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, 10))
    return Learner(mnist1d_dls(bs=32, seed=seed), model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=ranger)


TASKS = dict(hastie_bn_sgdm=hastie_bn_sgdm, dyck_attn=dyck_attn, collab_mf=collab_mf, adding_gru=adding_gru,
             swissroll_huber=swissroll_huber, m1d_ranger=m1d_ranger)
