"""Held-out tasks for `bench_autolr_sweep.py`: twelve small task families written on 2026-12-01 by a reviewer asked to break
`lr='auto'` (none shares a model, optimizer or dataset setting with `autolr_tasks.py`). Offline: scikit-learn's bundled and generated
datasets, MNIST-1D made locally, generated sequences and documents. `TASKS[name](seed)` returns a fresh fastai `Learner` (seed:
weights and shuffling; the data split is fixed)."""
import os
os.environ.setdefault('OMP_NUM_THREADS', '1')
import math, numpy as np, torch
from functools import partial
from torch import nn
import torch.nn.functional as F
torch.set_num_threads(1)
from fastai.basics import *
from fastai.metrics import accuracy_multi
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn, _array_dls


def _seed(s): set_seed(s, reproducible=True)
def _std(x, n_tr):
    m, s = x[:n_tr].mean(0), x[:n_tr].std(0) + 1e-8
    return ((x - m) / s).astype(np.float32)
def _perm(n): return np.random.RandomState(0).permutation(n)  # fixed split for every seed


# 1. breast cancer, 50/50 split, MLP, RMSProp, bs 8 (36 batches/epoch)
def bc_rmsprop(seed):
    from sklearn.datasets import load_breast_cancer
    d = load_breast_cancer(); i = _perm(len(d.target)); x, y = d.data[i], d.target[i].astype(np.int64)
    n = 285; x = _std(x, n)
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 8, seed, None)
    model = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=RMSProp)


# 2. wine, 100 train / 78 valid, tanh MLP, plain SGD (no momentum), bs 8 (13 batches/epoch)
def wine_sgd(seed):
    from sklearn.datasets import load_wine
    d = load_wine(); i = _perm(len(d.target)); x, y = d.data[i], d.target[i].astype(np.int64)
    n = 100; x = _std(x, n)
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 8, seed, None)
    model = nn.Sequential(nn.Linear(13, 32), nn.Tanh(), nn.Linear(32, 3))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=partial(SGD, mom=0.))


# 3. digits as flat 64-d vectors, MLP, Lamb, bs 16 (75 batches/epoch)
def digits_mlp_lamb(seed):
    from sklearn.datasets import load_digits
    d = load_digits(); i = _perm(len(d.target)); x, y = (d.data[i] / 16.).astype(np.float32), d.target[i].astype(np.int64)
    n = 1200
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 16, seed, None)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=Lamb)


# 4. diabetes regression (standardised y), MLP, Adam with high decoupled wd 0.3, bs 16 (19 batches/epoch); valid MSE
def diabetes_adamw(seed):
    from sklearn.datasets import load_diabetes
    d = load_diabetes(); i = _perm(len(d.target)); x, y = d.data[i], d.target[i]
    n = 300; x = _std(x, n); y = ((y - y[:n].mean()) / y[:n].std()).astype(np.float32)[:, None]
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 16, seed, None)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    return Learner(dls, model, loss_func=MSELossFlat(), opt_func=partial(Adam, wd=0.3))


# 5. multi-label (10 labels), MLP, BCEWithLogitsLossFlat, Adam, bs 64 (94 batches/epoch)
def multilabel(seed):
    from sklearn.datasets import make_multilabel_classification
    x, y = make_multilabel_classification(n_samples=8000, n_features=40, n_classes=10, n_labels=3, random_state=0)
    n = 6000; x = _std(np.log1p(x), n); y = y.astype(np.float32)
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 64, seed, None)
    model = nn.Sequential(nn.Linear(40, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    return Learner(dls, model, loss_func=BCEWithLogitsLossFlat(), metrics=accuracy_multi)


# 6. imbalanced 3-class (88/9/3 %), MLP with BatchNorm, Adam, bs 256 (47 batches/epoch)
def imbalanced_bn(seed):
    from sklearn.datasets import make_classification
    x, y = make_classification(n_samples=15000, n_features=20, n_informative=8, n_redundant=4, n_classes=3, weights=[0.88, 0.09, 0.03],
                               class_sep=0.8, flip_y=0.01, random_state=0)
    n = 12000; x = _std(x, n); y = y.astype(np.int64)
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 256, seed, None)
    blk = lambda i, o: nn.Sequential(nn.Linear(i, o, bias=False), nn.BatchNorm1d(o), nn.ReLU())
    model = nn.Sequential(blk(20, 128), blk(128, 128), nn.Linear(128, 3))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=[accuracy, BalancedAccuracy()])


# 7. temporal-order sequences (length 30, noise; class = order/sign of two bumps), LSTM h=32, Adam, bs 32 (188 batches/epoch)
def _order_data(n, rs):
    x = rs.normal(0, 0.6, (n, 30)).astype(np.float32); y = rs.randint(0, 4, n)
    for k in range(n):
        t1, t2 = sorted(rs.choice(np.arange(2, 28), 2, replace=False))
        s1, s2 = {0: (1, -1), 1: (-1, 1), 2: (1, 1), 3: (-1, -1)}[y[k]]
        x[k, t1] += 2 * s1; x[k, t2] += 2 * s2
    return x, y.astype(np.int64)
class _LSTM(nn.Module):
    def __init__(self, h=32): super().__init__(); self.rnn, self.head = nn.LSTM(1, h, batch_first=True), nn.Linear(h, 4)
    def forward(self, x): return self.head(self.rnn(x[..., None])[0][:, -1])
def seq_lstm(seed):
    rs = np.random.RandomState(0); x, y = _order_data(7500, rs); n = 6000
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 32, seed, None)
    return Learner(dls, _LSTM(), loss_func=CrossEntropyLossFlat(), metrics=accuracy)


# 8. DNA-like one-hot sequences (length 64): motif A / motif B (1 mutation allowed) / neither; conv1d no BN, SGD mom 0.9, bs 64
def _motif_data(n, rs):
    L = 64; seq = rs.randint(0, 4, (n, L)); y = rs.randint(0, 3, n)
    motifs = [np.array([0, 1, 2, 3, 0, 2, 1]), np.array([3, 3, 0, 1, 1, 2, 0])]
    for k in range(n):
        if y[k] < 2:
            m = motifs[y[k]].copy(); j = rs.randint(7); m[j] = rs.randint(4)
            p = rs.randint(0, L - 7); seq[k, p:p + 7] = m
    x = np.eye(4, dtype=np.float32)[seq].transpose(0, 2, 1).copy()
    return x, y.astype(np.int64)
def motif_conv_sgdm(seed):
    rs = np.random.RandomState(0); x, y = _motif_data(10000, rs); n = 8000
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 64, seed, None)
    model = nn.Sequential(nn.Conv1d(4, 32, 7, padding=3), nn.ReLU(), nn.Conv1d(32, 32, 5, padding=2), nn.ReLU(),
                          nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, 3))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=partial(SGD, mom=0.9))


# 9. bag of tokens: synthetic 5-topic documents (vocab 2000, 40 tokens), mean-pooled embedding + MLP, RAdam, bs 32 (250 batches/epoch)
def _docs(n, rs, V=2000, T=40, C=5):
    bg = 1. / np.arange(1, V + 1) ** 1.1; bg /= bg.sum()
    topics = []
    for c in range(C):
        w = np.zeros(V); ids = rs.choice(np.arange(50, V), 150, replace=False); w[ids] = 1. / np.arange(1, 151) ** 0.8; topics.append(w / w.sum())
    y = rs.randint(0, C, n); x = np.empty((n, T), dtype=np.int64)
    for k in range(n):
        m = rs.rand(T) < 0.25
        x[k] = np.where(m, rs.choice(V, T, p=topics[y[k]]), rs.choice(V, T, p=bg))
    return x, y.astype(np.int64)
class _Bag(nn.Module):
    def __init__(self, V=2000, d=32): super().__init__(); self.emb = nn.Embedding(V, d); self.head = nn.Sequential(nn.ReLU(), nn.Linear(d, 5))
    def forward(self, x): return self.head(self.emb(x).mean(1))
def bag_emb_radam(seed):
    rs = np.random.RandomState(0); x, y = _docs(10000, rs); n = 8000
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 32, seed, None)
    return Learner(dls, _Bag(), loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=RAdam)


# 10. large batch: 5-class tabular, 20000 train, bs 1024 (20 batches/epoch), ReLU MLP no norm, Adam
def tab_bigbs(seed):
    from sklearn.datasets import make_classification
    x, y = make_classification(n_samples=24000, n_features=30, n_informative=15, n_redundant=5, n_classes=5, n_clusters_per_class=2,
                               class_sep=0.8, flip_y=0.01, random_state=1)
    n = 20000; x = _std(x, n); y = y.astype(np.int64)
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 1024, seed, None)
    model = nn.Sequential(nn.Linear(30, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 5))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy)


# 11. MNIST-1D paper CNN, RMSProp, bs 16 (250 batches/epoch), very short horizon
def mnist1d_rmsprop(seed):
    _seed(seed)
    return Learner(mnist1d_dls(bs=16, seed=seed), mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), metrics=accuracy, opt_func=RMSProp)


# 12. sparse linear regression (make_regression, 50 features, 10 informative, noise), MLP, SGD mom 0.9 no norm, bs 32; valid MSE
def sparse_reg_sgdm(seed):
    from sklearn.datasets import make_regression
    x, y = make_regression(n_samples=10000, n_features=50, n_informative=10, noise=20., random_state=0)
    n = 8000; x = _std(x, n); y = ((y - y[:n].mean()) / y[:n].std()).astype(np.float32)[:, None]
    _seed(seed)
    dls = _array_dls(x[:n], y[:n], x[n:], y[n:], 32, seed, None)
    model = nn.Sequential(nn.Linear(50, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    return Learner(dls, model, loss_func=MSELossFlat(), opt_func=partial(SGD, mom=0.9))


TASKS = dict(bc_rmsprop=bc_rmsprop, wine_sgd=wine_sgd, digits_mlp_lamb=digits_mlp_lamb, diabetes_adamw=diabetes_adamw,
             multilabel=multilabel, imbalanced_bn=imbalanced_bn, seq_lstm=seq_lstm, motif_conv_sgdm=motif_conv_sgdm,
             bag_emb_radam=bag_emb_radam, tab_bigbs=tab_bigbs, mnist1d_rmsprop=mnist1d_rmsprop, sparse_reg_sgdm=sparse_reg_sgdm)
