"Streaming metrics: exact against torchmetrics, scikit-learn and fastai; simulated `DistributedDL` sharding; bad input."
import inspect, math, warnings
from functools import partial
from types import SimpleNamespace
import numpy as np, pytest, torch
from torch import nn
from torch.utils.data import TensorDataset
from hypothesis import given, settings, strategies as st
from sklearn.metrics import balanced_accuracy_score
from torchmetrics.classification import MulticlassAccuracy, MulticlassRecall, MultilabelAccuracy
import fastai.metrics as fm
from fastai.learner import Learner, AvgMetric
from fastai.data.core import DataLoaders, TfmdDL
from fastai.distributed import DistributedDL
from fastai_anneal.metrics import Accuracy, BalancedAccuracy, AccuracyMulti
import fastai_anneal.metrics as mod

def _stream(metric, pred, targ, bs=16):
    "`metric` fed `pred`/`targ` in batches of `bs` (the last one uneven), then its value"
    metric.reset()
    for i in range(0, len(targ), bs): metric.accum_values(pred[i:i+bs], targ[i:i+bs])
    return metric.value

def _close(a, b, eps=1e-12): assert abs(float(a) - float(b)) <= eps, (a, b)

@pytest.fixture
def mc():
    g = torch.Generator().manual_seed(0)
    return torch.randn(203, 7, generator=g),torch.randint(0, 7, (203,), generator=g)

# ---------------------------------------------------------------- accuracy
@pytest.mark.parametrize('top_k', [1, 3])
@pytest.mark.parametrize('ignore_index', [None, 2])
def test_accuracy_matches_torchmetrics_and_exact_count(mc, top_k, ignore_index):
    pred,targ = mc
    ours = _stream(Accuracy(top_k=top_k, ignore_index=ignore_index), pred, targ)
    tm = MulticlassAccuracy(7, top_k=top_k, average='micro', ignore_index=ignore_index)(pred, targ)
    _close(ours, tm, 1e-7)  # torchmetrics divides in float32
    keep = targ != ignore_index if ignore_index is not None else torch.ones_like(targ, dtype=torch.bool)
    hits = (pred.topk(top_k, 1).indices == targ[:, None]).any(1) & keep
    assert ours == int(hits.sum()) / int(keep.sum())  # the exact fraction of two counts, bit for bit

def test_accuracy_segmentation_axis1():
    g = torch.Generator().manual_seed(1)
    pred,targ = torch.randn(9, 4, 5, 6, generator=g),torch.randint(0, 4, (9, 5, 6), generator=g)
    targ[torch.rand(targ.shape, generator=g) < 0.1] = 255
    for k in (1, 2):
        ours = _stream(Accuracy(axis=1, top_k=k, ignore_index=255), pred, targ, bs=4)
        _close(ours, MulticlassAccuracy(4, top_k=k, average='micro', ignore_index=255, multidim_average='global')(pred, targ), 1e-7)
    keep = targ != 255
    assert _stream(Accuracy(axis=1, ignore_index=255), pred, targ, bs=4) == int(((pred.argmax(1) == targ) & keep).sum()) / int(keep.sum())

def test_accuracy_on_label_indices_and_naive_batch_mean(mc):
    pred,targ = mc
    labels = pred.argmax(1)
    exact = int((labels == targ).sum()) / len(targ)
    assert _stream(Accuracy(), labels, targ) == exact == _stream(Accuracy(), pred, targ)
    # the seed's naive metric: the mean of per-batch means over-weights the uneven last batch (203 = 12*16 + 11)
    naive = np.mean([(labels[i:i+16] == targ[i:i+16]).float().mean().item() for i in range(0, 203, 16)])
    assert abs(naive - exact) > 1e-3

def test_accuracy_names_and_empty_value():
    assert [Accuracy().name, Accuracy(top_k=5).name] == ['accuracy', 'top_5_accuracy']
    assert Accuracy().value is None and BalancedAccuracy().value is None and AccuracyMulti().value is None
    a = Accuracy(ignore_index=0)
    assert a(torch.randn(3, 4), torch.zeros(3, dtype=torch.long)) is None  # every target ignored: nothing counted
    a.name = 'acc'
    assert a.name == 'acc'

# ---------------------------------------------------------------- balanced accuracy
@pytest.mark.parametrize('adjusted', [False, True])
def test_balanced_accuracy_matches_sklearn_and_torchmetrics(mc, adjusted):
    pred,targ = mc
    ours = _stream(BalancedAccuracy(adjusted=adjusted), pred, targ)
    assert ours == balanced_accuracy_score(targ, pred.argmax(1), adjusted=adjusted)  # same float64 steps: bit for bit
    if not adjusted: _close(ours, MulticlassRecall(7, average='macro')(pred, targ), 1e-7)

def test_balanced_accuracy_absent_classes_weights_and_growth(mc):
    pred,targ = mc
    targ = targ.clamp(max=4)  # classes 5 and 6 are predicted but never targets: sklearn leaves them out
    w = torch.rand(len(targ), generator=torch.Generator().manual_seed(2)).numpy()
    labels = pred.argmax(1)
    assert _stream(BalancedAccuracy(), pred, targ) == balanced_accuracy_score(targ, labels)
    for adjusted in (False, True):  # weighted: float sums in another order than sklearn's, so within 1e-12
        ref = balanced_accuracy_score(targ, labels, sample_weight=w, adjusted=adjusted)
        _close(_stream(BalancedAccuracy(sample_weight=w, adjusted=adjusted), pred, targ), ref)
        # class indices, with the matrix grown as new labels arrive, or sized up front by `n_classes`
        _close(_stream(BalancedAccuracy(sample_weight=w, adjusted=adjusted), labels, targ), ref)
        _close(_stream(BalancedAccuracy(sample_weight=w, adjusted=adjusted, n_classes=7), labels, targ), ref)
    m = BalancedAccuracy()
    _stream(m, labels, targ)
    assert m._state['cm'].numel() == 2*7 + 2  # O(C): grew to the largest label seen, not to the sample count

def test_balanced_accuracy_state_is_linear_in_classes():
    "ImageNet-21k's 21,841 classes: two counts per class (176 kB), not a confusion matrix (3.8 GB); still sklearn's value"
    g,C = torch.Generator().manual_seed(5),21_841
    targ = torch.randint(0, C, (3000,), generator=g)
    pred = torch.where(torch.rand(3000, generator=g) < 0.6, targ, torch.randint(0, C, (3000,), generator=g))
    for m in (BalancedAccuracy(n_classes=C), BalancedAccuracy()):  # sized up front, or grown to the largest index seen
        _stream(m, pred, targ, bs=256)
        assert m._state['cm'].numel() <= 2*C + 2
        assert m.value == balanced_accuracy_score(targ, pred)

def test_balanced_accuracy_segmentation_ignore_index_and_weights():
    g = torch.Generator().manual_seed(3)
    pred,targ = torch.randn(6, 3, 4, 4, generator=g),torch.randint(0, 3, (6, 4, 4), generator=g)
    w = torch.rand(targ.numel(), generator=g)
    _close(_stream(BalancedAccuracy(axis=1, sample_weight=w), pred, targ, bs=4),
           balanced_accuracy_score(targ.flatten(), pred.argmax(1).flatten(), sample_weight=w))
    targ[0, 0] = 255
    keep = targ.flatten() != 255
    assert _stream(BalancedAccuracy(axis=1, ignore_index=255), pred, targ, bs=4) == \
           balanced_accuracy_score(targ.flatten()[keep], pred.argmax(1).flatten()[keep])

@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(2, 6), st.integers(1, 9), st.booleans(), st.integers(0, 10**6))
def test_balanced_accuracy_any_batching(n, n_cls, bs, adjusted, seed):
    g = torch.Generator().manual_seed(seed)
    pred,targ = torch.randn(n, n_cls, generator=g),torch.randint(0, n_cls, (n,), generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ref = balanced_accuracy_score(targ, pred.argmax(1), adjusted=adjusted)
    ours = _stream(BalancedAccuracy(adjusted=adjusted), pred, targ, bs)
    # a single class in the targets with `adjusted`: sklearn divides by 1 - 1/1 and returns nan or -inf; so do we
    assert ours == ref or math.isnan(ours) and math.isnan(ref)

# ---------------------------------------------------------------- multi-label
@pytest.mark.parametrize('thresh,sigmoid', [(0.5, True), (0.3, True), (0.2, False)])
def test_accuracy_multi_matches_fastai_and_torchmetrics(thresh, sigmoid):
    g = torch.Generator().manual_seed(4)
    pred,targ = torch.randn(45, 5, generator=g),(torch.rand(45, 5, generator=g) < 0.4).float()
    ours = _stream(AccuracyMulti(thresh=thresh, sigmoid=sigmoid), pred, targ, bs=8)
    probs = pred.sigmoid() if sigmoid else pred
    assert ours == int(((probs > thresh) == targ.bool()).sum()) / targ.numel()
    _close(ours, fm.accuracy_multi(pred, targ, thresh=thresh, sigmoid=sigmoid), 1e-7)
    if sigmoid: _close(ours, MultilabelAccuracy(5, threshold=thresh, average='micro')(probs, targ.long()), 1e-7)
    assert AccuracyMulti().name == 'accuracy_multi'

# ---------------------------------------------------------------- through a real Learner.validate, next to fastai's own
def _learner(x, y, model, loss, metrics, bs=8):
    ds = TensorDataset(x, y)
    return Learner(DataLoaders(TfmdDL(ds, bs=bs, device='cpu'), TfmdDL(ds, bs=bs, device='cpu')), model, loss_func=loss, metrics=metrics)

def test_learner_validate_against_fastai():
    torch.manual_seed(5)
    x,y = torch.randn(61, 6),torch.randint(0, 5, (61,))
    w = np.random.default_rng(0).random(61)
    mets = [Accuracy(), fm.accuracy, Accuracy(top_k=3), AvgMetric(partial(fm.top_k_accuracy, k=3)),
            BalancedAccuracy(), fm.BalancedAccuracy(), BalancedAccuracy(adjusted=True, sample_weight=w),
            fm.BalancedAccuracy(adjusted=True, sample_weight=w)]
    learn = _learner(x, y, nn.Linear(6, 5), nn.CrossEntropyLoss(), mets)
    with learn.no_bar(), learn.no_logging(): vals = learn.validate()[1:]
    for ours,theirs in zip(vals[0::2], vals[1::2]): _close(ours, theirs, 1e-6)  # fastai's AvgMetric averages float32 batch means
    assert vals[4] == vals[5]; _close(vals[6], vals[7])  # same confusion matrix and float64 steps as sklearn's
    assert learn.recorder.metric_names[3:5] == ['accuracy', 'accuracy']
    assert learn.recorder.metric_names[7] == 'balanced_accuracy_score'  # fastai's name: `monitor=` keeps working

def test_learner_validate_multilabel_against_fastai():
    torch.manual_seed(6)
    x,y = torch.randn(29, 6),(torch.rand(29, 4) < 0.5).float()
    learn = _learner(x, y, nn.Linear(6, 4), nn.BCEWithLogitsLoss(), [AccuracyMulti(thresh=0.4), partial(fm.accuracy_multi, thresh=0.4)])
    with learn.no_bar(), learn.no_logging(): ours,theirs = learn.validate()[1:]
    _close(ours, theirs, 1e-6)

def test_balanced_accuracy_keeps_fastai_signature():
    ours,theirs = inspect.signature(BalancedAccuracy).parameters,inspect.signature(fm.BalancedAccuracy).parameters
    for k,p in theirs.items(): assert ours[k].default == p.default and list(ours).index(k) == list(theirs).index(k)

# ---------------------------------------------------------------- DistributedDL padding, simulated in one process
class _SoloDDL(DistributedDL):
    "A `DistributedDL` for rank `rank` of a pretend world, without a process group (fastai's tests override the same hook)"
    def _broadcast(self, t, rank): return t

@pytest.mark.parametrize('world_size,n,bs', [(2, 37, 8), (3, 10, 3), (4, 2, 2)])
def test_distributed_padding_is_left_out(world_size, n, bs):
    g = torch.Generator().manual_seed(n)
    x,y = torch.randn(n, 5, generator=g),torch.randint(0, 5, (n,), generator=g)
    w = torch.rand(n, generator=g)
    dl = TfmdDL(TensorDataset(x, y), bs=bs, device='cpu')
    single = [Accuracy(), BalancedAccuracy(sample_weight=w)]
    for m in single: _stream(m, x, y, bs)
    shards = []
    for r in range(world_size):
        ms,ddl = [Accuracy(), BalancedAccuracy(sample_weight=w)],_SoloDDL(dl, rank=r, world_size=world_size)
        for m in ms: m.reset()
        for xb,yb in ddl:
            learn = SimpleNamespace(pred=xb, yb=(yb,), y=yb, dl=ddl)
            for m in ms: m.accumulate(learn)
        assert all(m._sharded for m in ms)
        shards.append(ms)
    assert ddl.n_padded > n or n % world_size == 0
    # what `value` all-reduces: the per-rank counts sum to the single-process counts, weights aligned to epoch order
    acc = [sum(s[0]._state[k] for s in shards) for k in ('hits', 'total')]
    assert [int(a) for a in acc] == [int(single[0]._state['hits']), n]
    assert torch.equal(sum(s[1]._state['cm'] for s in shards), single[1]._state['cm'])
    assert torch.allclose(sum(s[1]._state['wcm'] for s in shards), single[1]._state['wcm'], rtol=0, atol=1e-12)

# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize('make,exc,msg', [
    (lambda: Accuracy(top_k=0), ValueError, 'top_k'), (lambda: Accuracy(top_k=2.5), TypeError, 'top_k'),
    (lambda: Accuracy(top_k='5'), TypeError, 'top_k'), (lambda: Accuracy(top_k=True), TypeError, 'top_k'),
    (lambda: Accuracy(axis=None), TypeError, 'axis'), (lambda: Accuracy(axis=1.0), TypeError, 'axis'),
    (lambda: Accuracy(ignore_index=0.5), TypeError, 'ignore_index'),
    (lambda: BalancedAccuracy(n_classes=1), ValueError, 'n_classes'), (lambda: BalancedAccuracy(adjusted='yes'), TypeError, 'adjusted'),
    (lambda: BalancedAccuracy(sample_weight=[[1., 2.]]), ValueError, 'sample_weight'),
    (lambda: BalancedAccuracy(sample_weight=[1., float('nan')]), ValueError, 'sample_weight'),
    (lambda: BalancedAccuracy(sample_weight=['a']), TypeError, 'sample_weight'),
    (lambda: AccuracyMulti(thresh=1.5), ValueError, r'thresh must be in \(0, 1\)'), (lambda: AccuracyMulti(thresh=0), ValueError, 'thresh'),
    (lambda: AccuracyMulti(thresh=float('nan'), sigmoid=False), ValueError, 'thresh'), (lambda: AccuracyMulti(thresh='0.5'), TypeError, 'thresh'),
    (lambda: AccuracyMulti(sigmoid=2), TypeError, 'sigmoid'),
])
def test_bad_constructor_args(make, exc, msg):
    with pytest.raises(exc, match=msg): make()

def test_good_constructor_args():
    assert AccuracyMulti(thresh=-2, sigmoid=False).thresh == -2.  # raw scores: any finite threshold
    assert Accuracy(top_k=np.int64(3)).top_k == 3 and BalancedAccuracy(adjusted=np.bool_(True)).adjusted is True

P,T = torch.randn(4, 3),torch.tensor([0, 1, 2, 1])
@pytest.mark.parametrize('metric,pred,targ,exc,msg', [
    (Accuracy(), P, T[:3], ValueError, r'shape \(4, 3\).*targ of shape \(3,\)'),
    (Accuracy(), torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), ValueError, 'axis=-1'),
    (Accuracy(), P, T.float(), TypeError, r'integer dtype\), got torch.float32'),
    (Accuracy(), P, torch.tensor([0, 1, 3, 1]), ValueError, r'\[0, 3\).*got values in \[0, 3\]'),
    (Accuracy(), P, torch.tensor([0, -1, 2, 1]), ValueError, r'got values in \[-1, 2\]'),
    (Accuracy(top_k=4), P, T, ValueError, 'top_k=4 is larger than the number of classes C=3'),
    (Accuracy(top_k=2), T, T, ValueError, 'top_k=2 needs class scores'),
    (Accuracy(axis=2), P, T, ValueError, 'axis=2 is out of range'),
    (Accuracy(), torch.randn(4, 1), T, ValueError, '1 class'),
    (Accuracy(), P.bool(), T, TypeError, 'torch.bool'),
    (Accuracy(), P.numpy(), T, TypeError, 'tensors'),
    (BalancedAccuracy(), P, torch.tensor([0, 1, 5, 1]), ValueError, r'1 targets or predicted class indices were outside \[0, 3\)'),
    (BalancedAccuracy(n_classes=3), torch.tensor([0, 1, 4, 1]), T, ValueError, r'outside \[0, 3\)'),
    (BalancedAccuracy(n_classes=4), P, T, ValueError, 'pred has 3 classes along axis=-1 but n_classes=4'),
    (BalancedAccuracy(), P, T[:, None, None].expand(4, 2, 1), ValueError, 'do not match'),
    (BalancedAccuracy(sample_weight=[1., 2., 3.]), P, T, ValueError, 'sample_weight has 3 entries'),
    (BalancedAccuracy(sample_weight=[1.]*5), P, T, ValueError, 'sample_weight has 5 entries but 4 targets'),
    (BalancedAccuracy(), torch.tensor([0, 1, 1]), torch.tensor([0, 1, 7_000_000]), ValueError,  # a stray label: no 112 MB of counts
     'n_classes is None and a class index of 7000000 was seen: BalancedAccuracy infers at most 1000000 classes'),
    (AccuracyMulti(), P, P.round(), ValueError, '0/1 labels'),
    (AccuracyMulti(), P, torch.ones(4, 2), ValueError, 'do not match'),
    (AccuracyMulti(), (P > 0).long(), (P > 0).long(), TypeError, 'float scores'),
])
def test_bad_batches(metric, pred, targ, exc, msg):
    with pytest.raises(exc, match=msg): metric(pred, targ)

def test_a_rejected_weighted_batch_changes_nothing():
    "The batch that overruns `sample_weight` is refused before the metric's position moves: the earlier batches' value stands"
    m = BalancedAccuracy(sample_weight=[1.]*4); m.reset()
    m.accum_values(P[:3], T[:3])
    with pytest.raises(ValueError, match='sample_weight has 4 entries but targets 3 to 4 were seen'): m.accum_values(P[:2], T[:2])
    assert m._pos == 3
    m.accum_values(P[3:], T[3:])
    assert math.isclose(float(m.value), float(BalancedAccuracy(sample_weight=[1.]*4)(P, T)))

def test_class_count_must_not_change():
    m = Accuracy()
    m.accum_values(P, T)
    with pytest.raises(ValueError, match='pred has 4 classes but earlier batches had 3'): m.accum_values(torch.randn(2, 4), T[:2])

def test_public_names():
    assert sorted(mod.__all__) == ['Accuracy', 'AccuracyMulti', 'BalancedAccuracy']
    assert not set(mod.__all__) & (set(fm.__all__) - {'BalancedAccuracy'})  # the one shared name keeps fastai's value (tests above)

@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_multilabel_half_precision_is_exact(dtype):
    "Small positive logits in fp16/bf16: the sigmoid runs in float32, where they stay above 0.5 (bf16 rounded them to exactly 0.5)"
    pred,targ = torch.tensor([[1e-3, 2e-3, 3e-3, -4e-3]]).to(dtype),torch.tensor([[1, 1, 1, 0]])
    assert AccuracyMulti()(pred, targ) == 1.
    g = torch.Generator().manual_seed(0)
    pred,targ = (torch.randn(500, 8, generator=g)*0.02).to(dtype),torch.randint(0, 2, (500, 8), generator=g)
    exact = ((pred.float().sigmoid() > 0.5) == targ.bool()).sum().item() / targ.numel()
    assert AccuracyMulti()(pred, targ) == pytest.approx(exact, abs=0)

@pytest.mark.parametrize('make,msg', [
    (lambda: Accuracy(ignore_index=2**70), r'ignore_index must be None or an int in \[-2\*\*63, 2\*\*63\)'),
    (lambda: BalancedAccuracy(ignore_index=-2**64), r'ignore_index must be None or an int in \[-2\*\*63, 2\*\*63\)'),
    (lambda: BalancedAccuracy(n_classes=2**40), r'n_classes must be in \[2, 100000000\]'),
    (lambda: BalancedAccuracy(sample_weight=[]), 'sample_weight must hold one weight per target'),
])
def test_constructor_ranges(make, msg):
    "Arguments a batch could not use are refused by the constructor, naming them and their range"
    with pytest.raises(ValueError, match=msg): make()

@pytest.mark.parametrize('make,exc,msg', [
    (lambda: Accuracy(top_k=2.5), TypeError, r'top_k must be an int >= 1, got 2.5'),  # the type errors named no range
    (lambda: BalancedAccuracy(n_classes=2.5), TypeError, r'n_classes must be None or an int in \[2, 100000000\], got 2.5'),
    (lambda: BalancedAccuracy(sample_weight=np.array([1+5j, 2, 3])), TypeError, 'sample_weight must be a 1-D array of real numbers'),
    (lambda: BalancedAccuracy(sample_weight=torch.tensor([1+5j, 2, 3])), TypeError, 'sample_weight must be a 1-D array of real'),
])
def test_constructor_types(make, exc, msg):
    "A complex weight was accepted with its imaginary part dropped (numpy only warns); every type error states the accepted range"
    with pytest.raises(exc, match=msg): make()

def test_weights_are_a_copy_and_take_half_precision():
    ("`sample_weight` is copied once checked (a view of the caller's buffer let NaN written later make `value` None), and bf16 "
     "weights are taken (numpy has no bf16: they were refused as 'not real numbers')")
    pred,targ = torch.tensor([[2., 1.], [0., 3.], [4., 0.], [1., 2.]]),torch.tensor([0, 0, 1, 1])
    w = np.array([1., 2., 1., 3.])
    m = BalancedAccuracy(sample_weight=w)
    w[:] = np.nan
    ref = balanced_accuracy_score(targ, pred.argmax(1), sample_weight=[1., 2., 1., 3.])
    assert m(pred, targ) == pytest.approx(ref)
    assert BalancedAccuracy(sample_weight=torch.tensor([1., 2., 1., 3.], dtype=torch.bfloat16))(pred, targ) == pytest.approx(ref)

@pytest.mark.parametrize('dtype', [torch.uint16, torch.uint32, torch.uint64])
def test_multilabel_wide_unsigned_targets(dtype):
    "0/1 targets held as uint16/32/64 score as fastai's `accuracy_multi` (torch compares none of them with bool: it crashed half-counted)"
    g = torch.Generator().manual_seed(0)
    pred,targ = torch.randn(8, 4, generator=g),torch.randint(0, 2, (8, 4), generator=g)
    assert AccuracyMulti()(pred, targ.to(dtype)) == pytest.approx(fm.accuracy_multi(pred, targ).item(), abs=1e-7)
    with pytest.raises(ValueError, match='targ must hold 0/1 labels, got 1 other values'):
        AccuracyMulti()(pred, torch.where(torch.arange(32).view(8, 4) == 5, 2, targ).to(dtype))

def test_weights_that_require_grad_and_fastais_learn_argument():
    "`sample_weight` may require grad (it is only read); `accum_values` takes fastai's `learn` argument and ignores it"
    w = torch.tensor([1., 2., 1., 3.], requires_grad=True)
    pred,targ = torch.tensor([[2., 1.], [0., 3.], [4., 0.], [1., 2.]]),torch.tensor([0, 0, 1, 1])
    m,ref = BalancedAccuracy(sample_weight=w),BalancedAccuracy(sample_weight=w.detach())
    m.reset(); m.accum_values(pred, targ, None)
    assert m.value == ref(pred, targ) == pytest.approx(balanced_accuracy_score(targ, pred.argmax(1), sample_weight=w.detach()))


# ---------------------------------------------------------------- behaviour no test pinned (a mutation audit, twenty-first session)
_P3,_T3 = torch.tensor([[2., 1., 0.], [0., 3., 1.], [0., 1., 4.], [5., 0., 1.]]),torch.tensor([0, 1, 2, 1])  # 3 of 4 right

def test_ignore_index_bounds_are_int64s():
    assert Accuracy(ignore_index=-2**63).ignore_index == -2**63 and Accuracy(ignore_index=2**63-1).ignore_index == 2**63-1
    with pytest.raises(ValueError, match=r'ignore_index must be None or an int in \[-2\*\*63, 2\*\*63\)'): Accuracy(ignore_index=2**63)

def test_targets_differing_by_unit_dims_only():
    assert Accuracy()(_P3, _T3[:, None]) == 0.75                # (N, 1) targets, as fastai's flatten_check takes them
    with pytest.raises(ValueError, match='do not match targ of shape'): Accuracy()(_P3, _T3.view(2, 2))  # same size, other shape

def test_axis_and_top_k_at_their_limits():
    assert Accuracy(axis=-2)(_P3.T, _T3) == 0.75                # axis=-ndim is the first dim
    assert Accuracy(top_k=3)(_P3, _T3) == 1.                    # top_k=C: every target is a hit
    assert Accuracy(top_k=2).name == 'top_2_accuracy'

def test_call_is_one_batch_and_value_follows_new_batches():
    m = Accuracy()
    assert m(_P3, _T3) == 0.75 and m(_P3[:1], _T3[:1]) == 1.        # `__call__` resets: the second call is its batch alone
    m.reset()
    assert m.value is None                                   # read before any batch (a Recorder, a callback)...
    m.accum_values(_P3[:1], _T3[:1])
    assert m.value == 1.                                     # ...is not kept once batches arrive
    m.accum_values(_P3[3:], _T3[3:])
    assert m.value == 0.5

class _SoloDDL(DistributedDL):
    def _broadcast(self, t, rank): return t

def test_a_batch_wholly_of_padding_counts_nothing():
    "n=5 over 4 ranks of 2: rank 3 holds padded positions 6 and 7 only, one batch of 2 that must count nothing"
    x,y = torch.randn(5, 3),torch.randint(0, 3, (5,))
    ddl,m = _SoloDDL(TfmdDL(TensorDataset(x, y), bs=2, device='cpu'), rank=3, world_size=4),Accuracy()
    m.reset()
    for xb,yb in ddl: m.accumulate(SimpleNamespace(pred=xb, yb=(yb,), y=yb, dl=ddl))
    assert m._state is None or int(m._state['total']) == 0

def test_float64_tensor_weights_are_copied():
    "A float64 CPU tensor needs no conversion, so only `copy=True` keeps the caller's later writes out"
    pred,targ = torch.tensor([[2., 1.], [0., 3.], [4., 0.], [1., 2.]]),torch.tensor([0, 0, 1, 1])
    w = torch.tensor([1., 2., 1., 3.], dtype=torch.float64)
    m = BalancedAccuracy(sample_weight=w)
    w[:] = float('nan')
    assert m(pred, targ) == pytest.approx(0.5*(1/3) + 0.5*(3/4))   # sklearn's weighted recalls, 1/3 and 3/4

def test_growing_counts_keep_the_out_of_range_and_ignored_bins():
    m = BalancedAccuracy(); m.reset()
    m.accum_values(torch.tensor([0]), torch.tensor([-1]))   # a bad target while the counts cover one class
    m.accum_values(torch.tensor([3]), torch.tensor([3]))    # the counts grow to 4 classes
    with pytest.raises(ValueError, match=r'1 targets or predicted class indices were outside \[0, 4\)'): m.value
    m = BalancedAccuracy(ignore_index=255, sample_weight=[1., 1., 1.]); m.reset()
    m.accum_values(torch.tensor([0, 0]), torch.tensor([0, 255]))
    m.accum_values(torch.tensor([2]), torch.tensor([2]))
    assert m.value == 1.                                     # 3 targets seen (one ignored), as sample_weight has

def test_ignored_targets_do_not_size_the_counts():
    m = BalancedAccuracy(ignore_index=2_000_000)
    assert m(torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, 2_000_000, 1])) == 0.75  # class indices: recalls 1 and 1/2
    assert m._state['cm'].numel() == 2*3 + 2

def test_inferred_class_limit_is_inclusive():
    assert BalancedAccuracy()(torch.tensor([0, 999_999]), torch.tensor([0, 999_999])) == 1.   # 10**6 classes: the most inferred

@pytest.mark.parametrize('pred,targ', [(_P3, torch.tensor([0, -1, 2, 1])), (torch.tensor([0, 1, 3, 1]), _T3)])
def test_balanced_accuracy_refuses_negative_targets_and_predictions_at_n_classes(pred, targ):
    with pytest.raises(ValueError, match=r'1 targets or predicted class indices were outside \[0, 3\)'): BalancedAccuracy(n_classes=3)(pred, targ)

def test_sharded_segmentation_weights_follow_the_pixels():
    "Sharded (N, C, H) segmentation: a batch at sample position `pos` reads the weights from pixel `pos*H` on, as one process does"
    g = torch.Generator().manual_seed(0)
    x,y = torch.randn(10, 3, 2, generator=g),torch.randint(0, 3, (10, 2), generator=g)
    w = torch.rand(20, generator=g)
    single = BalancedAccuracy(axis=1, sample_weight=w); single.reset()
    for i in range(0, 10, 3): single.accum_values(x[i:i+3], y[i:i+3])
    dl,wcm = TfmdDL(TensorDataset(x, y), bs=3, device='cpu'),0
    for r in range(2):
        m,ddl = BalancedAccuracy(axis=1, sample_weight=w),_SoloDDL(dl, rank=r, world_size=2)
        m.reset()
        for xb,yb in ddl: m.accumulate(SimpleNamespace(pred=xb, yb=(yb,), y=yb, dl=ddl))
        wcm = wcm + m._state['wcm']
    assert torch.allclose(wcm, single._state['wcm'], rtol=0, atol=1e-12)

def test_empty_results_are_none():
    assert BalancedAccuracy(ignore_index=0)(_P3, torch.zeros(4, dtype=torch.long)) is None   # every target ignored: no recall, no nan
    assert AccuracyMulti()(torch.zeros(0, 3), torch.zeros(0, 3)) is None                     # no label counted: None, not 0

def test_multilabel_threshold_is_strict_and_complex_targets_refused():
    "fastai's accuracy_multi predicts `pred > thresh`: a score exactly at the threshold is a 0"
    assert AccuracyMulti(thresh=0.5, sigmoid=False)(torch.tensor([[0.5, 0.7]]), torch.tensor([[0, 1]])) == 1.
    assert AccuracyMulti()(torch.tensor([[0., 1.]]), torch.tensor([[0, 1]])) == 1.            # sigmoid(0) is exactly 0.5
    with pytest.raises(TypeError, match='targ must hold 0/1 labels, got torch.complex64'):
        AccuracyMulti()(torch.randn(2, 2), torch.ones(2, 2, dtype=torch.complex64))
