"`AnnealLRFinder` and `Learner.lr_find`: fastai parity bit for bit, in-memory restore after every way a sweep can end, RNGs, per-group lrs, bad input, degenerate suggestions."
import inspect, math, os, random, re, signal, warnings
from functools import partial
from pathlib import Path
import numpy as np, pytest, torch
import matplotlib.pyplot as plt
from torch import nn
from fastai.basics import *
import copy  # after the star import: fastai exports shutil's `copy`
from types import SimpleNamespace
from fastai.learner import AvgSmoothLoss
from fastai.callback.schedule import LRFinder, SchedExp, SuggestionMethod, sched_exp, valley, slide, minimum, steep
from fastai.optimizer import OptimWrapper, ranger
from fastai.test_utils import synth_learner
from fastai_anneal.all import *
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn
from fastai_anneal.optimizer import AdamAnneal
from fastai_anneal.snapshot import LearnerSnapshot
from conftest import RecordHypers, learner_state, assert_restored, bitwise_equal, DrawsRNGs, ctrl_c_at_tensor, mk_learner, quiet_fit

FUNCS = (SuggestionMethod.Valley, SuggestionMethod.Slide, SuggestionMethod.Minimum, SuggestionMethod.Steep)
fastai_lr_find = Learner._orig_lr_find  # fastcore's `patch` keeps the method it replaced

@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    "A learner's default `path` is the working directory: a file a sweep wrote would land in `tmp_path`, never in the repository"
    monkeypatch.chdir(tmp_path)
    yield
    plt.close('all')

# ------------------------------------------------------------------ helpers
def _net():
    "Conv + BatchNorm (buffers) + Dropout (RNG) + Linear: every kind of state a sweep can change"
    return nn.Sequential(nn.Conv1d(1, 4, 5, stride=2), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(4*18, 10))

def _splitter(m): return [params(m[:2]), params(m[2:])]

def _learner(seed=0, bs=400, **kw):
    "MNIST-1D, 10 batches per epoch of 400, two param groups"
    set_seed(seed)
    kw = {'loss_func': CrossEntropyLossFlat(), 'splitter': _splitter, **kw}
    return Learner(mnist1d_dls(bs=bs, seed=seed), _net(), **kw)

def _pretrain(learn, n=3):
    "A few batches so that Adam's moments and step counts exist"
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=_StopAt(n))

class _StopAt(Callback):
    ("Raises `exc` in `after_batch` of training batch `n`; `order` 55: after the Recorder (50) logged the batch, before the finder "
     "(60) did")
    def __init__(self, n, exc=CancelFitException, order=0): store_attr()
    def after_batch(self):
        if self.train_iter >= self.n: raise self.exc()

def _cos(n=100, s=1e-7, e=10.): return [SWEEPS['cos'](s, e, i/(n-1)) for i in range(n)]
def _curve(lr): return 2.5 - np.tanh(np.log10(lr) + 3.) + 0.5*np.exp(2.*(np.log10(lr) + 0.5))  # falls around 1e-3, blows up near 1

class _Fault(Callback):
    "Raise `exc` at `event` of sweep batch `at`"
    order = 55
    def __init__(self, event, at, exc, seen=None): store_attr(); self.i = -1
    def _maybe(self, event):
        if self.seen is not None: self.seen.append((self.i, event))  # outside the callback: a restore gives callbacks their state back
        if event == self.event and self.i == self.at: raise self.exc
    def before_batch(self): self.i += 1; self._maybe('before_batch')
    def after_pred(self):   self._maybe('after_pred')
    def after_loss(self):   self._maybe('after_loss')
    def before_step(self):  self._maybe('before_step')
    def after_step(self):   self._maybe('after_step')
    def after_batch(self):  self._maybe('after_batch')

class _NanLoss:
    "Cross-entropy that turns NaN from call `at` on (when armed)"
    def __init__(self, at): self.at,self.calls,self.armed = at,0,False
    def __call__(self, pred, targ):
        loss = nn.functional.cross_entropy(pred, targ)
        if self.armed:
            self.calls += 1
            if self.calls > self.at: return loss * float('nan')
        return loss
    def activation(self, x): return x.softmax(-1)
    def decodes(self, x): return x.argmax(-1)

# ------------------------------------------------------------------ parity with fastai
def _both(mk, **kw):
    "Run fastai's lr_find and ours on identical learners under the same seed"
    res = []
    for f in (fastai_lr_find, Learner.lr_find):
        learn = mk()
        set_seed(1)
        with learn.no_bar(): res.append((f(learn, show_plot=False, **kw), learn))
    return res

@pytest.mark.parametrize('kw', [{}, {'suggest_funcs': FUNCS}])
def test_lr_find_bit_identical_to_fastai_synth(kw):
    (sf,lf),(so,lo) = _both(lambda: (set_seed(0), synth_learner())[1], **kw)
    test_eq(lo.recorder.lrs, lf.recorder.lrs)
    test_eq(torch.stack(lo.recorder.losses), torch.stack(lf.recorder.losses))
    test_eq(type(so).__name__, 'SuggestedLRs'); test_eq(so._fields, sf._fields); test_eq(tuple(so), tuple(sf))
    test_eq(lo.model.a, lf.model.a); test_eq(lo.model.b, lf.model.b)

def test_lr_find_bit_identical_to_fastai_mnist1d_adam():
    mk = lambda: Learner(mnist1d_dls(), mnist1d_cnn(), loss_func=CrossEntropyLossFlat())
    (sf,lf),(so,lo) = _both(lambda: (set_seed(0), mk())[1], suggest_funcs=FUNCS)
    assert len(lo.recorder.lrs) > 50
    test_eq(lo.recorder.lrs, lf.recorder.lrs)
    test_eq(torch.stack(lo.recorder.losses), torch.stack(lf.recorder.losses))
    test_eq(tuple(so), tuple(sf)); test_eq(so._fields, ('valley', 'slide', 'minimum', 'steep'))
    for a,b in zip(lo.model.state_dict().values(), lf.model.state_dict().values()): test_eq(a, b)

@pytest.mark.parametrize('at', [25, 37])
def test_nan_mid_sweep_suggestions_equal_fastai(at):
    "A loss that turns NaN before the smoothed loss passes 4x its best: fastai sweeps on, ours stops there; the suggestions are the same"
    def mk():
        learn = _learner(loss_func=_NanLoss(at)); learn.loss_func.armed = True
        return learn
    (sf,lf),(so,lo) = _both(mk, end_lr=0.1, num_it=40, suggest_funcs=FUNCS)
    test_eq(len(lf.recorder.lrs), 40); test_eq(len(lo.recorder.lrs), at + 1)  # 25: cut at the NaN; 37: 5 points before `num_it`
    test_eq(tuple(so), tuple(sf))

def test_callback_exp_matches_fastai_lrfinder():
    res = []
    for cb in (LRFinder(num_it=100), AnnealLRFinder(num_it=100, anneal='exp')):
        set_seed(0); learn = synth_learner()
        with learn.no_logging(), learn.no_bar(): learn.fit(20, cbs=cb)
        res.append(learn.recorder)
    test_eq(res[1].lrs, res[0].lrs)
    test_eq(res[1].lrs, [SchedExp(1e-7, 10)(i/100) for i in range_of(res[1].lrs)])
    test_eq(torch.stack(res[1].losses), torch.stack(res[0].losses))

# ------------------------------------------------------------------ sweep shapes
@pytest.mark.parametrize('anneal', ['cos', 'exp', 'lin', 'sqrt', 'poly', 'fn'])
def test_recorded_lrs_follow_the_sweep(anneal):
    s,e,n = 1e-6, 1., 40
    ref = {'cos': lambda p: s*(e/s)**((1-math.cos(math.pi*p))/2), 'exp': lambda p: s*(e/s)**p, 'lin': lambda p: s + p*(e-s),
           'sqrt': lambda p: s*(e/s)**math.sqrt(p), 'poly': lambda p: s*(e/s)**(1-(1-p)**2), 'fn': lambda p: s + p*p*(e-s)}[anneal]
    learn = _learner()
    with learn.no_bar(): learn.lr_find(s, e, num_it=n, stop_div=False, show_plot=False, anneal=(lambda a,b,p: a + p*p*(b-a)) if anneal == 'fn' else anneal)
    test_eq(len(learn.recorder.lrs), n)
    test_close(learn.recorder.lrs, [ref(i/n) for i in range(n)], eps=1e-12 * e)
    assert SWEEPS['exp'] is sched_exp

def test_cos_sweep_dwells_at_both_ends():
    "log(lr) on a half cosine: a third of the batches in each outer sixth of the log range, vs a sixth for 'exp'"
    s,e,n = 1e-7, 10., 300
    lo,hi = s*(e/s)**(1/6), s*(e/s)**(5/6)
    for anneal,share in (('cos', 0.27), ('exp', 1/6)):
        lrs = np.array([AnnealLRFinder(s, e, n, anneal=anneal).scheds['lr'](i/n) for i in range(n)])
        test_close((lrs < lo).mean(), share, eps=0.01); test_close((lrs > hi).mean(), share, eps=0.01)

# ------------------------------------------------------------------ restore: complete, diverged, NaN, exception, interrupt
SCENARIOS = [('complete', None), ('diverge', None), ('nan', 4)] + \
            [('error', (ev, i)) for ev,i in [('before_batch', 0), ('after_loss', 3), ('before_step', 5), ('after_step', 7)]] + \
            [('interrupt', (ev, i)) for ev,i in [('after_pred', 0), ('after_step', 2), ('after_batch', 9), ('mid_step', 4)]]

def _boom_state(): return {'armed': False, 'calls': 0, 'at': 0, 'per_step': 0}

def _mid_step_opt(boom):
    "Adam whose step raises KeyboardInterrupt at the 3rd param of step `boom['at']` (when armed): some params stepped, some not"
    def _boom(p, **kwargs):
        if boom['armed']:
            boom['calls'] += 1
            if boom['calls'] == boom['at'] * boom['per_step'] + 3: raise KeyboardInterrupt
    def opt_func(ps, **kw):
        o = Adam(ps, **kw); o.cbs.append(_boom); return o
    return opt_func

@pytest.mark.parametrize('config', ['fresh', 'trained', 'frozen_eval'])
@pytest.mark.parametrize('scenario,arg', SCENARIOS, ids=[f"{s}-{a}" for s,a in SCENARIOS])
def test_restore_bit_identical(config, scenario, arg):
    boom,nan_loss = _boom_state(),_NanLoss(arg if scenario == 'nan' else 0)
    learn = _learner(loss_func=nan_loss, opt_func=_mid_step_opt(boom), cbs=DrawsRNGs())  # the sweep draws from every global RNG
    if config != 'fresh':
        if config == 'frozen_eval': learn.freeze()
        _pretrain(learn)
        learn.model[1].eval()  # a BatchNorm kept in eval mode: fit's `model.train()` must not stick
        learn.model[0].weight.grad = torch.randn_like(learn.model[0].weight)
        learn.lr = 3e-3
    if config == 'frozen_eval': learn.model.eval()
    before = learner_state(learn)
    kw = dict(start_lr=1e-3, end_lr=1e5, num_it=12, show_plot=False) if scenario == 'diverge' else dict(start_lr=1e-5, end_lr=1e-1, num_it=12, show_plot=False)
    if scenario in ('error', 'interrupt') and arg[0] == 'mid_step':
        n = sum(p.requires_grad or (learn.opt is not None and learn.opt.state[p].get('force_train', False)) for p in learn.model.parameters())
        boom.update(armed=True, at=arg[1], per_step=n if learn.opt is not None else 6)
    elif scenario in ('error', 'interrupt'): learn.add_cb(_Fault(arg[0], arg[1], RuntimeError('boom') if scenario == 'error' else KeyboardInterrupt()))
    nan_loss.armed = scenario == 'nan'
    with learn.no_bar(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if scenario == 'error':
            with pytest.raises(RuntimeError, match='boom'): learn.lr_find(**kw)
        elif scenario == 'interrupt':
            with pytest.raises(KeyboardInterrupt): learn.lr_find(**kw)
        else: learn.lr_find(**kw)
    if scenario == 'diverge': assert len(learn.recorder.lrs) < 12
    if scenario == 'nan': test_eq(len(learn.recorder.lrs), arg + 1)  # stopped at the first NaN
    nan_loss.armed = boom['armed'] = False
    assert_restored(before, learner_state(learn))
    if config == 'fresh': assert learn.opt is None  # as before: the next fit creates a fresh optimizer

def test_callback_attached_outside_fit_snapshots_when_the_sweep_starts():
    "`Learner(cbs=...)` or `add_cb`, then weights loaded or a freeze: the sweep gives back that state, not the one at attach time"
    learn = _learner(cbs=AnnealLRFinder(1e-5, 1., 10))
    with torch.no_grad():
        for p in learn.model.parameters(): p.mul_(0.5)  # a checkpoint loaded after the callback was attached
    before = learner_state(learn)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    after = learner_state(learn)  # `fit` created the optimizer before the sweep started: it stays, as after fastai's `LRFinder`
    for k in ('tensors', 'grads', 'rg', 'modes', 'rng'): assert bitwise_equal(before[k], after[k]), k
    learn = _learner()
    learn.add_cb(AnnealLRFinder(1e-5, 1., 10)); learn.freeze()  # creates the optimizer, freezes the first group
    before = learner_state(learn)
    for _ in range(2):  # a callback kept across fits snapshots at each
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        assert_restored(before, learner_state(learn))
    assert learn.opt is not None and learn.opt.frozen_idx == 1

class _CancelBeforeFit(Callback):
    "A user's 'nothing to do' guard: cancels every fit in `before_fit`, before the Recorder's (order 50) and the finder's"
    order = 10
    def before_fit(self): raise CancelFitException()

@pytest.mark.parametrize('order', [10, 55])  # 55: after the Recorder's `before_fit` (50) reset its history, before the finder's (60)
@pytest.mark.parametrize('fitted', [False, True])
def test_no_sweep_when_a_callback_cancels_before_fit(fitted, order):
    "No sweep ran: a clear error, not the last fit's Recorder read as a sweep (or a crash on a fresh learner); the learner is as it was"
    learn = _learner()
    if fitted:
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    rec = {k: getattr(learn.recorder, k) for k in ('lrs', 'losses', 'values') if k in vars(learn.recorder)}
    before = learner_state(learn)
    cb = _CancelBeforeFit(); cb.order = order
    learn.add_cb(cb)
    with learn.no_bar(), pytest.raises(RuntimeError, match='no sweep ran.*before_fit'): learn.lr_find(num_it=10)
    assert_restored(before, learner_state(learn))
    test_eq({k: getattr(learn.recorder, k) for k in ('lrs', 'losses', 'values') if k in vars(learn.recorder)}, rec)
    test_eq(plt.get_fignums(), [])  # nothing plotted

FULL = os.environ.get('FASTAI_ANNEAL_FULL') == '1'

@pytest.mark.slow
@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
def test_interrupt_at_any_batch(exc):
    "Every event of every batch of a 12-batch sweep with FASTAI_ANNEAL_FULL=1, three batches otherwise; one learner throughout"
    learn = _learner()
    learn.freeze(); _pretrain(learn)
    before,history = learner_state(learn),learn.recorder.values
    for event in ('before_batch', 'after_pred', 'after_loss', 'before_step', 'after_step', 'after_batch'):
        for i in (range(12) if FULL else (1, 6, 11)):
            seen = []
            fault = _Fault(event, i, exc('boom'), seen)
            with learn.no_bar(), learn.added_cbs(fault), pytest.raises(exc): learn.lr_find(1e-5, 1e-1, num_it=12, show_plot=False)
            test_eq(seen[-1], (i, event))                       # the sweep reached batch `i`...
            test_eq(sum(e == 'after_step' for _,e in seen), i + (event in ('after_step', 'after_batch')))  # ...stepping `i` times before it
            test_is(learn.recorder.values, history)             # the Recorder holds the last fit's history again, not the half sweep
            assert_restored(before, learner_state(learn))

def test_callback_alone_restores_after_interrupt():
    "`fit(cbs=AnnealLRFinder())` restores when `fit` detaches the callback, however `fit` ends (fastai's only on `after_fit`)"
    learn = _learner()
    _pretrain(learn)
    before = learner_state(learn)
    with learn.no_bar(), pytest.raises(KeyboardInterrupt): learn.fit(3, cbs=[AnnealLRFinder(1e-5, 1., 20), _Fault('after_step', 6, KeyboardInterrupt())])
    assert_restored(before, learner_state(learn))
    with learn.no_bar(): learn.fit(3, cbs=AnnealLRFinder(1e-5, 1., 20))
    assert_restored(before, learner_state(learn))
    test_eq(len(learn.recorder.lrs), 20)

def test_callback_alone_restores_the_optimizers_own_hypers():
    "issue 10.3: `fit(cbs=AnnealLRFinder())` gives back the optimizer's own lr and wd, not the `learn.lr`/`learn.wd` `fit` resets them to"
    learn = _learner(lr=1e-2, wd=0.1)
    _pretrain(learn)
    learn.opt.set_hyper('lr', 4.3e-4); learn.opt.set_hyper('wd', 3e-3)
    before = learner_state(learn)
    cb = AnnealLRFinder(1e-5, 1., 20)
    for _ in range(2):  # the same finder passed to a second fit: the same again
        with learn.no_bar(): learn.fit(3, cbs=cb)
        test_eq([(h['lr'], h['wd']) for h in learn.opt.hypers], [(4.3e-4, 3e-3)]*2)
        assert_restored(before, learner_state(learn))
    with learn.no_bar(): learn.lr_find(1e-5, 1., num_it=20, show_plot=False)  # the same through `lr_find`
    assert_restored(before, learner_state(learn))

def test_one_default_sweep():
    "issue 10.4: `AnnealLRFinder` and `lr_find` share one default sweep, fastai's exponential one"
    for f in (AnnealLRFinder, Learner.lr_find): test_eq(inspect.signature(f).parameters['anneal'].default, 'exp')
    learn = _learner()
    with learn.no_bar(): learn.fit(3, cbs=AnnealLRFinder(1e-6, 1., num_it=20, stop_div=False))
    test_close(learn.recorder.lrs, [sched_exp(1e-6, 1., i/20) for i in range(20)], eps=1e-15)

@pytest.mark.parametrize('opt', ['ranger', 'torch_adamw', 'clock'])
def test_restore_other_optimizers(opt):
    "Lookahead (a fastai optimizer wrapping another), `OptimWrapper` over torch's AdamW, and one whose clock lives in an attribute, `state` and `hypers`"
    class _Clock(Optimizer):
        def step(self, closure=None):
            super().step(); self.ticks = getattr(self, 'ticks', 0) + 1
            for h in self.hypers: h['anneal_step'] = h.get('anneal_step', 0) + 1
    def clock(ps, lr): return _Clock(ps, [partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step], lr=lr, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.)
    opt_func = {'ranger': ranger, 'torch_adamw': partial(OptimWrapper, opt=torch.optim.AdamW), 'clock': clock}[opt]
    learn = _learner(opt_func=opt_func)
    _pretrain(learn, 7)  # past Lookahead's k=6: its slow weights exist
    inner = learn.opt.opt if opt != 'clock' else None
    before = learner_state(learn)
    sd = copy.deepcopy(learn.opt.state_dict())
    with learn.no_bar(), pytest.raises(KeyboardInterrupt): learn.fit(1, cbs=[AnnealLRFinder(1e-5, 1., 10), _Fault('after_batch', 5, KeyboardInterrupt())])
    assert_restored(before, learner_state(learn))
    with learn.no_bar(): learn.lr_find(1e-5, 1., num_it=10, show_plot=False)
    assert_restored(before, learner_state(learn))
    assert bitwise_equal(sd, learn.opt.state_dict())
    if inner is not None: assert learn.opt.opt is inner  # the wrapped optimizer object itself, not a copy
    if opt == 'clock': test_eq(learn.opt.ticks, 7)

def test_restore_adam_anneal():
    "issue 5's `AdamAnneal` keeps its clock in `hypers['anneal_step']`: the sweep's steps must not advance it"
    learn = _learner(opt_func=AdamAnneal)
    _pretrain(learn)
    steps,before = list(learn.opt.anneal_steps),learner_state(learn)
    with learn.no_bar(): learn.lr_find(1e-5, 1., num_it=10, show_plot=False)
    assert_restored(before, learner_state(learn))
    test_eq(learn.opt.anneal_steps, steps)

def test_unwritable_path_and_no_file_written(tmp_path):
    "fastai saves a temp model in `path/model_dir`; we write nothing, so a path that cannot be created works"
    blocker = tmp_path/'a_file'
    blocker.write_text('x')
    learn = _learner(path=blocker/'cannot_exist')
    with pytest.raises(OSError): (learn.path/learn.model_dir).mkdir(parents=True, exist_ok=True)  # the path really is unwritable
    before = learner_state(learn)
    with learn.no_bar(): res = learn.lr_find(num_it=20, show_plot=False)
    assert res.valley > 0
    assert_restored(before, learner_state(learn))
    test_eq(sorted(p.name for p in tmp_path.iterdir()), ['a_file'])

# ------------------------------------------------------------------ RNGs (fastai issue 3295)
def _fit_after(with_lr_find):
    learn = _learner(seed=3, cbs=DrawsRNGs())  # shuffled batches, Dropout and a callback drawing from python's, numpy's, torch's RNGs
    with learn.no_bar(), learn.no_logging():
        if with_lr_find: learn.lr_find(num_it=15, show_plot=False)
        learn.fit(1, lr=1e-2)
    return [v.clone() for v in learn.model.state_dict().values()] + [torch.tensor([random.random(), np.random.rand()]), torch.rand(3)]

def test_fit_after_lr_find_equals_fit_without():
    for a,b in zip(_fit_after(True), _fit_after(False)): test_eq(a, b)

def test_snapshot_restores_wrapped_and_torch_loader_rngs():
    "a `DistributedDL` shuffles with its inner loader's `rng`; a torch `DataLoader` with its `generator`"
    from fastai.distributed import DistributedDL
    import torch.utils.data as tud
    learn = _learner()
    g = torch.Generator().manual_seed(0)
    inner = learn.dls.train
    learn.dls = DataLoaders(DistributedDL(inner, rank=0, world_size=1), tud.DataLoader(list(range(8)), shuffle=True, generator=g))
    st_inner,st_g = inner.rng.getstate(),g.get_state()
    with LearnerSnapshot(learn):
        inner.randomize(); torch.rand(3, generator=g)
        assert inner.rng.getstate() != st_inner and not torch.equal(g.get_state(), st_g)
    test_eq(inner.rng.getstate(), st_inner); test_eq(g.get_state(), st_g)

def test_snapshot_restores_a_samplers_generator():
    "A torch `DataLoader` may shuffle with its sampler's own generator (`RandomSampler(ds, generator=g)`): it comes back too"
    import torch.utils.data as tud
    learn = _learner()
    g = torch.Generator().manual_seed(0)
    data = list(range(8))
    learn.dls = DataLoaders(tud.DataLoader(data, sampler=tud.RandomSampler(data, generator=g), batch_size=2), learn.dls.valid)
    st = g.get_state()
    with LearnerSnapshot(learn): list(learn.dls.train)
    test_eq(g.get_state(), st)

def test_divergence_rule_for_losses_below_zero():
    "fastai's rule (above 4x the best) for a positive best; a loss that goes negative diverges once it rises 3|best| above its best"
    from fastai_anneal.lr_finder import _diverged
    assert not _diverged(3.9, 1.) and _diverged(4.1, 1.) and _diverged(float('nan'), 1.) and _diverged(float('inf'), -1.)
    assert not _diverged(-1.9, -2.) and not _diverged(3.9, -2.) and _diverged(4.1, -2.)
    assert not _diverged(4., 1.) and not _diverged(4., -2.)  # at exactly the limit: not yet (fastai's `>`)
    lrs = np.geomspace(1e-5, 1., 60)**1.2  # uneven in log(lr)
    raw = np.r_[np.linspace(-1., -3., 50), np.full(10, 20.)]  # a Gaussian NLL that falls below zero, then breaks
    got,_ = even_log_sweep(lrs, raw)
    assert 40 < len(got) < 60  # cut where it broke, not at the first point (every negative loss is above 4x a negative best)

# ------------------------------------------------------------------ per-group lrs
@pytest.mark.parametrize('start,end,ref_start,ref_end', [
    ([1e-6, 1e-5], [1e-2, 1.], [1e-6, 1e-5], [1e-2, 1.]),
    (np.array([1e-6, 1e-5]), 1., [1e-6, 1e-5], [1., 1.]),
    (slice(1e-6, 1e-4), slice(1e-2, 1.), [1e-6, 1e-4], [1e-2, 1.]),
    (slice(1e-5), 1., [1e-6, 1e-5], [1., 1.]),
    ([1e-6], 1., [1e-6, 1e-6], [1., 1.]),
    (1e-6, slice(1e-2, 1.), [1e-6, 1e-6], [1e-2, 1.])])  # a slice at the end only: resolved when the sweep starts
def test_per_group_lrs(start, end, ref_start, ref_end):
    learn,rec = _learner(),RecordHypers()
    learn.add_cb(rec)
    with learn.no_bar(): learn.lr_find(start, end, num_it=12, stop_div=False, show_plot=False, anneal='cos')
    cos = SWEEPS['cos']
    test_close(np.array(rec.lrs), np.array([[cos(s, e, i/12) for s,e in zip(ref_start, ref_end)] for i in range(12)]), eps=1e-15)
    test_eq(learn.recorder.lrs, [l[-1] for l in rec.lrs])

def test_slice_on_a_single_group():
    "as fastai's `set_hyper`: with one group, `slice(start, stop)` and `slice(stop)` mean `stop`"
    learn = Learner(mnist1d_dls(), mnist1d_cnn(), loss_func=CrossEntropyLossFlat())
    with learn.no_bar(): learn.lr_find(slice(1e-6, 1e-5), slice(1.), num_it=10, show_plot=False, anneal='exp')
    test_close(learn.recorder.lrs, [sched_exp(1e-5, 1., i/10) for i in range(10)], eps=1e-15)

def test_fastai_lrfinder_cannot_do_per_group():
    "Why per-group lrs are a feature: fastai's `LRFinder` builds a list of schedulers that `ParamScheduler` cannot call"
    learn = _learner()
    with learn.no_bar(), pytest.raises(TypeError): learn.fit(1, cbs=LRFinder([1e-6, 1e-5], [1e-2, 1.]))

# ------------------------------------------------------------------ bad input, before anything runs
BAD = [(dict(start_lr=0.), ValueError, 'start_lr'), (dict(start_lr=-1e-3), ValueError, 'start_lr'),
       (dict(start_lr=float('nan')), ValueError, 'start_lr'), (dict(start_lr='1e-7'), TypeError, 'start_lr'),
       (dict(end_lr=1e-7), ValueError, 'end_lr must be greater than start_lr'), (dict(start_lr=1., end_lr=0.5), ValueError, 'end_lr'),
       (dict(end_lr=float('inf')), ValueError, 'end_lr'), (dict(num_it=1), ValueError, 'num_it must be >= 2'),
       (dict(num_it=0), ValueError, 'num_it'), (dict(num_it=2.5), TypeError, 'num_it'),
       (dict(div_thresh=1.), ValueError, 'div_thresh'), (dict(div_thresh=0.5), ValueError, 'div_thresh'),
       (dict(anneal='cosine'), ValueError, "anneal must be one of 'exp', 'cos', 'lin', 'sqrt', 'poly'"),
       (dict(anneal=3), TypeError, 'anneal'), (dict(anneal=lambda a, b: a), TypeError, 'anneal must accept three arguments'),
       (dict(start_lr=[1e-7]*3), ValueError, 'start_lr has 3 values but the optimizer has 2'),
       (dict(start_lr=[1e-7, 1e-6], end_lr=[1., 2., 3.]), ValueError, 'start_lr has 2 values but end_lr has 3'),
       (dict(start_lr=[1e-7, 1e-1], end_lr=[1., 1e-2]), ValueError, r'end_lr\[1\]'),
       (dict(start_lr=slice(1e-7, 1e-6, 2)), ValueError, 'start_lr as a slice'), (dict(end_lr=slice(1e-3, None)), ValueError, 'end_lr as a slice'),
       (dict(start_lr=[]), ValueError, 'start_lr'), (dict(stop_div='yes'), TypeError, 'stop_div'),
       (dict(show_plot=None), TypeError, 'show_plot'), (dict(suggest_funcs=(valley, 'steep')), TypeError, 'suggest_funcs'),
       (dict(suggest_funcs=(valley, partial(valley))), ValueError, 'suggest_funcs must have distinct names')]

# ids without memory addresses: every pytest-xdist worker must collect the same ones
@pytest.mark.parametrize('kw,exc,msg', BAD, ids=[re.sub(r' at 0x[0-9a-f]+', '', f"{list(k)[0]}={list(k.values())[0]!r}")[:40] for k,_,_ in BAD])
def test_bad_input_rejected_before_anything_runs(kw, exc, msg):
    learn = _learner()
    before = learner_state(learn)
    with pytest.raises(exc, match=msg): learn.lr_find(**kw)
    assert_restored(before, learner_state(learn))
    assert learn.opt is None and not hasattr(learn.recorder, 'lrs')
    cb_kw = {k: v for k,v in kw.items() if k in ('start_lr', 'end_lr', 'num_it', 'stop_div', 'anneal', 'div_thresh')}
    if cb_kw and 'has 3 values but the optimizer' not in msg:
        with pytest.raises(exc, match=msg): AnnealLRFinder(**cb_kw)

def test_callback_group_count_checked_before_the_optimizer_exists():
    learn = _learner()
    with pytest.raises(ValueError, match='optimizer has 2 parameter group'): learn.fit(1, cbs=AnnealLRFinder([1e-7]*3, 1.))
    assert learn.opt is None

def test_empty_training_set_rejected():
    learn = _learner()
    learn.dls.train.n = 0
    with pytest.raises(ValueError, match='training DataLoader is empty'): learn.lr_find()

# ------------------------------------------------------------------ suggestions on degenerate losses
def _sweep(n, s=1e-7, e=10.):
    lrs = [s*(e/s)**(i/n) for i in range(n)]
    losses = [torch.tensor(2. - math.sin(math.pi*i/n)) for i in range(n)]  # one clean valley
    return lrs,losses

def test_suggestions_equal_fastai_functions_on_clean_losses():
    lrs,losses = _sweep(100)
    res,pnts = suggest_lrs(lrs, losses, 100, FUNCS)
    lt,ls = tensor(lrs[10:-5]),tensor(losses[10:-5])
    test_eq(tuple(res), tuple(f(lt, ls, 100)[0] for f in FUNCS))
    test_eq(len(pnts), 4)

def test_suggestions_need_one_loss_per_lr():
    "100 lrs and 50 losses gave a confident valley from misaligned points"
    lrs,losses = _sweep(100)
    with pytest.raises(ValueError, match='lrs and losses must have one value per sweep batch each, got 100 lrs and 50 losses'):
        suggest_lrs(lrs, losses[:50], 100, FUNCS)

@pytest.mark.parametrize('case', ['empty', 'short_run', 'one_point', 'all_nan', 'nan_early', 'inf_early', 'few_for_slide', 'inf_late'])
def test_suggestions_never_crash(case):
    lrs,losses = _sweep(100)
    nan = torch.tensor(float('nan'))
    if case == 'empty': lrs,losses = [],[]
    elif case == 'short_run': lrs,losses = lrs[:12],losses[:12]  # diverged at batch 12 of 100: nothing left after [10:-5]
    elif case == 'one_point': lrs,losses = lrs[:16],losses[:16]
    elif case == 'all_nan': losses = [nan]*100
    elif case == 'nan_early': losses = losses[:10] + [nan]*90
    elif case == 'inf_early': losses = losses[:10] + [torch.tensor(float('inf'))] + losses[11:]
    elif case == 'inf_late': losses = losses[:60] + [torch.tensor(float('inf'))] + losses[61:]
    elif case == 'few_for_slide': lrs,losses = lrs[:30],losses[:30]  # 15 points: slide needs 16
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        res,pnts = suggest_lrs(lrs, losses, 100, FUNCS)
    test_eq(res._fields, ('valley', 'slide', 'minimum', 'steep'))
    msgs = [str(o.message) for o in w]
    for nm,v in zip(res._fields, res):
        if math.isnan(v): assert any(f'no `{nm}` suggestion' in m for m in msgs), (nm, msgs)
        else: assert v > 0
    nans = [nm for nm,v in zip(res._fields, res) if math.isnan(v)]
    expected = {'empty': 4, 'short_run': 4, 'all_nan': 4, 'nan_early': 4, 'inf_early': 4, 'one_point': 2, 'few_for_slide': 1, 'inf_late': 0}[case]
    test_eq(len(nans), expected)
    if case == 'inf_late': test_eq(tuple(res), tuple(f(tensor(lrs[10:60]), tensor(losses[10:60]), 100)[0] for f in FUNCS))  # cut before the inf
    if case == 'one_point': test_eq(nans, ['slide', 'steep'])
    if case == 'few_for_slide': test_eq(nans, ['slide'])

def test_lr_find_on_a_run_that_diverges_at_once():
    "fastai's lr_find raises IndexError here; ours warns and returns NaN"
    learn = _learner()
    with learn.no_bar(), pytest.warns(UserWarning, match='no `valley` suggestion'): res = learn.lr_find(start_lr=1e2, end_lr=1e6, show_plot=True)
    assert math.isnan(res.valley) and len(learn.recorder.lrs) < 15

def test_no_suggestion_funcs_returns_none():
    learn = _learner()
    with learn.no_bar(): test_eq(learn.lr_find(num_it=10, suggest_funcs=None, show_plot=False), None)
    plt.close('all')
    with learn.no_bar(): test_eq(learn.lr_find(num_it=10, suggest_funcs=None), None)
    test_eq(len(plt.get_fignums()), 1)  # the sweep is still plotted, without suggestions

# ------------------------------------------------------------------ plot
def test_plot_marks_suggestions_and_shows_sweep():
    "issue 10.5: `Recorder.plot_lr_find` stays fastai's; `plot_lr_sweep` takes its arguments, adds the sweep, returns None unless asked"
    fa = inspect.signature(Recorder.plot_lr_find).parameters
    assert Recorder.plot_lr_find.__module__ == 'fastai.callback.schedule'
    ours = inspect.signature(Recorder.plot_lr_sweep).parameters
    for k,p in fa.items():
        if k != 'return_fig': assert k in ours and ours[k].default == p.default, k  # fastai's arguments and defaults...
    test_eq(ours['return_fig'].default, False)  # ...but no figure back by default: a cell's last line would display it twice
    learn = _learner()
    with learn.no_bar(): learn.lr_find(num_it=40, anneal='cos', show_plot=False)
    test_eq(learn.recorder.plot_lr_sweep(), None)
    fig = learn.recorder.plot_lr_sweep(suggestions=[(1e-3, 2.), (float('nan'), float('nan'))], nms=['valley', 'steep'], return_fig=True)
    ax,sweep = fig.axes
    test_eq(list(sweep.lines[0].get_ydata()), learn.recorder.lrs)  # the sweep as run
    test_eq(len(sweep.lines), 2)  # + the valley; the NaN suggestion is not drawn
    test_eq(sweep.get_yscale(), 'log')
    test_eq([t.get_text() for t in ax.get_legend().get_texts()], ['valley', 'steep: none'])
    test_eq(len(ax.lines), 3)  # loss curve, valley, the legend entry of the NaN suggestion (no data)
    test_eq(len(learn.recorder.plot_lr_sweep(show_sweep=False, return_fig=True).axes), 1)
    test_eq(list(learn.recorder.plot_lr_sweep(skip_end=0, return_fig=True).axes[0].lines[0].get_xdata()), learn.recorder.lrs)  # every point

def test_sweep_panel_lines_at_the_suggested_lrs():
    "fastai's `minimum` marks the loss minimum's lr and suggests a tenth of it: the sweep panel's line is at the suggestion"
    learn = _learner()
    with learn.no_bar(): res = learn.lr_find(end_lr=1., num_it=40, suggest_funcs=FUNCS)
    lines = plt.figure(plt.get_fignums()[-1]).axes[1].lines[1:]  # lines[0] is the sweep
    test_eq([float(l.get_ydata()[0]) for l in lines], [float(v) for v in res if math.isfinite(v)])
    with pytest.raises(ValueError, match=r'values must have one lr per suggestion \(1\), got 2'):
        learn.recorder.plot_lr_sweep(suggestions=[(1e-2, 2.)], nms=['minimum'], values=[1e-3, 1e-2])

def test_lr_find_shows_the_sweep_and_returns_only_suggestions():
    "`lr_find(show_plot=True)` draws one figure, with the sweep panel, and returns the suggestions (as fastai, no figure)"
    learn = _learner()
    with learn.no_bar(): res = learn.lr_find(num_it=30)
    test_eq(type(res).__name__, 'SuggestedLRs')
    test_eq(plt.get_fignums(), [1])
    test_eq(len(plt.figure(1).axes), 2)

def test_uneven_sweeps_resample_their_raw_losses():
    ("With each batch's loss, an uneven sweep is averaged onto even log(lr) points and smoothed there as fastai smooths the 'exp' "
     "sweep: the same curve gives the same suggestions; a loss spike ends the curve; the finder records the raw losses")
    from fastai_anneal.lr_finder import even_log_sweep, SWEEPS, _smooth
    from fastai.callback.schedule import SuggestionMethod as SM
    pos,funcs = np.arange(100)/99,(SM.Valley, SM.Minimum, SM.Steep, SM.Slide)
    lrs = {k: [SWEEPS[k](1e-7, 10, p) for p in pos] for k in ('exp', 'cos')}
    raw = {k: [_curve(lr) for lr in v] for k,v in lrs.items()}
    exp,_ = suggest_lrs(lrs['exp'], list(_smooth(np.array(raw['exp']), 0.98)), 100, funcs)  # what fastai's Recorder records
    cos,_ = suggest_lrs(lrs['cos'], [0.]*100, 100, funcs, raw_losses=raw['cos'])             # the smoothed losses are not used
    for k in exp._fields:  # one log step of the sweep is a factor 10**(8/99) = 1.2
        assert abs(math.log10(getattr(cos, k)) - math.log10(getattr(exp, k))) < 0.25, (k, exp, cos)
    g,sm = even_log_sweep(lrs['cos'], raw['cos'], div_thresh=math.inf)
    steps = torch.diff(torch.log(g.double()))
    assert len(g) == 100 and torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-4)
    i = int(np.argmin([abs(math.log(lr/1e-2)) for lr in lrs['cos']]))
    broke = raw['cos'][:i] + [10*v for v in raw['cos'][i:i+3]] + raw['cos'][i+3:]  # from the batch nearest 1e-2, the model broke
    g2,_ = even_log_sweep(lrs['cos'], broke)
    assert lrs['cos'][i-1] < float(g2[-1]) < lrs['cos'][i+1] and len(g2) < 100  # ended at the break's second batch
    clean = len(even_log_sweep(lrs['cos'], raw['cos'])[0])
    test_eq(clean, 99)  # the curve itself stays above 4x its best at its very end: cut there
    one = raw['cos'][:i] + [10*raw['cos'][i]] + raw['cos'][i+1:]  # one batch alone is noise, not a break
    assert len(even_log_sweep(lrs['cos'], one)[0]) >= clean  # not cut there (its bump in the smoothed curve may lift the end's best)
    g3,_ = even_log_sweep(lrs['cos'], raw['cos'][:40] + [float('nan')]*60)
    assert float(g3[-1]) == pytest.approx(lrs['cos'][39], rel=1e-5)  # cut at the first NaN
    rng = np.random.default_rng(0)
    for _ in range(20):  # a flat, noisy curve (batches of 16 heavy-tailed losses around 0.2), a lucky first batch: never cut
        flat = list(rng.exponential(0.2, (100, 16)).mean(1)); flat[0] = 0.01
        test_eq(len(even_log_sweep(lrs['cos'], flat)[0]), 100)
    assert len(even_log_sweep(lrs['cos'], [-v for v in raw['cos']])[0]) == 100  # no best above 0: no cut
    test_eq(len(even_log_sweep(lrs['cos'][:2], raw['cos'][:2])[0]), 2)
    with pytest.raises(ValueError, match=r"raw_losses must have one loss per lr \(100\), got 99"):
        suggest_lrs(lrs['cos'], [0.]*100, 100, funcs, raw_losses=raw['cos'][:99])
    with pytest.raises(ValueError, match="beta"): suggest_lrs(lrs['cos'], [0.]*100, 100, funcs, raw_losses=raw['cos'], beta=1.)
    with pytest.raises(ValueError, match="div_thresh"): even_log_sweep(lrs['cos'], raw['cos'], div_thresh=0.5)
    for bad in (lrs['cos'][::-1], lrs['cos'][:1]*2 + lrs['cos'][2:], [-1.] + lrs['cos'][1:], lrs['cos'][:-1] + [math.inf]):
        with pytest.raises(ValueError, match="lrs must be finite, positive and strictly increasing"): even_log_sweep(bad, raw['cos'])
    # fastai's 'exp' sweep is used as recorded, whatever else is passed
    test_eq(suggest_lrs(lrs['exp'], list(_smooth(np.array(raw['exp']), 0.98)), 100, funcs, raw_losses=[0.]*100, beta=0.5)[0], exp)
    with pytest.warns(UserWarning, match="do not increase"):  # a sweep that goes back and forth: its points as recorded
        res,_ = suggest_lrs(lrs['cos'][:50] + lrs['cos'][:50], [2.]*100, 100, funcs, raw_losses=[2.]*100)
    for down in (lrs['exp'][::-1], lrs['cos'][::-1]):  # a sweep that falls, evenly in log(lr) or not: fastai's functions read it rising
        with pytest.warns(UserWarning, match="do not increase"): suggest_lrs(down, raw['exp'], 100, funcs)

def test_lr_find_resamples_an_uneven_sweep_from_its_batches(monkeypatch):
    "`lr_find` resamples an uneven sweep from its batch losses (no cut when `stop_div=False`), and plots the resampled curve"
    import fastai_anneal.lr_finder as lf
    seen = []
    def spy(lrs, raw_losses, beta, div_thresh):
        seen.append(dict(raw_losses=raw_losses, beta=beta, div_thresh=div_thresh)); return even_log_sweep(lrs, raw_losses, beta, div_thresh)
    monkeypatch.setattr(lf, 'even_log_sweep', spy)
    learn = _learner()
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False)
    test_eq(seen, [])  # fastai's sweep: as recorded
    with learn.no_bar(): learn.lr_find(num_it=30, anneal='cos', show_plot=False)
    test_eq(len(seen[-1]['raw_losses']), 30); test_eq(seen[-1]['div_thresh'], 4.); test_eq(seen[-1]['beta'], 0.98)
    assert all(math.isfinite(v) for v in seen[-1]['raw_losses'])
    with learn.no_bar(): learn.lr_find(num_it=30, anneal='cos', show_plot=False, stop_div=False)
    test_eq(seen[-1]['div_thresh'], math.inf)
    learn.recorder.smooth_loss.beta = 0.9  # the Recorder's smoothing and the call's threshold reach the resampling
    with learn.no_bar(): learn.lr_find(num_it=30, anneal='cos', show_plot=False, div_thresh=3.)
    test_eq((seen[-1]['beta'], seen[-1]['div_thresh']), (0.9, 3.))
    plt.close('all')
    with learn.no_bar(): learn.lr_find(num_it=30, anneal='cos')
    labels = [l.get_label() for l in plt.figure(plt.get_fignums()[-1]).axes[0].get_lines()]
    assert 'recorded' in labels and 'resampled (suggestions)' in labels

def test_uneven_sweeps_are_resampled_in_log_lr():
    "A 'cos' sweep's points are uneven in log(lr); its suggestions are computed on even log points and agree with the 'exp' sweep's"
    from fastai_anneal.lr_finder import even_log_points, SWEEPS
    from fastai.callback.schedule import SuggestionMethod as SM
    pos = np.arange(100)/99
    sugg = {}
    for name in ('exp', 'cos'):
        lrs = [SWEEPS[name](1e-7, 10, p) for p in pos]
        res,_ = suggest_lrs(lrs, [torch.tensor(_curve(lr)) for lr in lrs], 100, (SM.Valley, SM.Minimum, SM.Steep))
        sugg[name] = res
    for k in ('valley', 'minimum', 'steep'):  # one log step of the 100-point sweep is a factor 10**(8/99) = 1.2
        assert abs(math.log10(getattr(sugg['cos'], k)) - math.log10(getattr(sugg['exp'], k))) < 0.25, (k, sugg)
    lrs = torch.tensor([SWEEPS['exp'](1e-7, 10, p) for p in pos])
    losses = torch.rand(100)
    a,b = even_log_points(lrs, losses)
    assert a is lrs and b is losses  # fastai's sweep: untouched, so the default suggestions stay bit for bit fastai's
    a,b = even_log_points(torch.tensor([SWEEPS['cos'](1e-7, 10, p) for p in pos]), losses)
    steps = torch.diff(torch.log(a.double()))
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-4) and len(a) == 100
    near = lrs.clone(); near[50:] *= 1.01  # one log step 5% longer than the others: not fastai's sweep, resampled
    a,_ = even_log_points(near, losses)
    assert a is not near and torch.allclose(torch.diff(torch.log(a.double())), torch.diff(torch.log(lrs.double())).mean().expand(99), rtol=1e-3)
    a,b = even_log_points(torch.tensor([1e-3, 1e-2, 1.]), torch.tensor([3., 2., 1.]))  # three uneven points: resampled too
    test_close(a, torch.tensor([1e-3, 10**-1.5, 1.]), eps=1e-6); test_close(b, torch.tensor([3., 1.75, 1.]), eps=1e-6)

def test_raw_losses_only_for_an_uneven_sweep():
    "The finder keeps each batch's loss for an uneven sweep (its suggestions resample them); fastai's even 'exp' sweep needs none: None"
    learn = _learner()
    for anneal,n in (('exp', None), ('cos', 20)):
        cb = AnnealLRFinder(num_it=20, anneal=anneal)
        assert cb.raw_losses is None and not cb.swept
        with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=cb)
        assert cb.swept and (cb.raw_losses is None if n is None else 2 <= len(cb.raw_losses) <= n), cb.raw_losses  # fewer: diverged

# ---------------------------------------------------------------- what a sweep changes besides the values (nineteenth session's review)
def _learner_with(model, **kw):
    "`model` on MNIST-1D (10 batches of 400), one param group"
    set_seed(0)
    return Learner(mnist1d_dls(bs=400), model, loss_func=CrossEntropyLossFlat(), **kw)

class _HalfIO(Callback):
    "The batch in fp16 and the predictions back in fp32, as fastai's `NonNativeMixedPrecision` does (it asserts a GPU)"
    order = 10
    def before_batch(self): self.learn.xb = tuple(x.half() for x in self.xb)
    def after_pred(self): self.learn.pred = self.pred.float()

@pytest.mark.parametrize('search', ['lr_find', 'lr_tune'])
def test_interrupted_with_a_model_converted_for_the_fit(search):
    ("fastai's `ModelToHalf` converts the model to fp16 for the fit and back in `after_fit`, which an interrupt skips: the restore "
     "copied fp32 values into fp16 storage, then failed on the fp32 grads, and that error replaced the user's KeyboardInterrupt "
     "and left the grads, modes, optimizer and RNGs as the sweep left them")
    from fastai.callback.fp16 import ModelToHalf
    learn = _learner_with(nn.Sequential(nn.Flatten(), nn.Linear(40, 16), nn.ReLU(), nn.Linear(16, 10)), cbs=[ModelToHalf(), _HalfIO()])
    _pretrain(learn)
    learn.model[1].weight.grad = torch.randn_like(learn.model[1].weight)
    before = learner_state(learn)
    learn.add_cb(_Fault('after_batch', 3, KeyboardInterrupt()))
    with learn.no_bar(), learn.no_logging(), pytest.raises(KeyboardInterrupt):
        learn.lr_find(num_it=10, show_plot=False) if search == 'lr_find' else learn.lr_tune(4)
    assert next(learn.model.parameters()).dtype == torch.float32
    assert_restored(before, learner_state(learn))

def test_interrupted_sweep_gives_the_recorder_back():
    "An interrupted `lr_find` leaves the last fit's history in the Recorder (it held the half sweep), as `lr_tune` does"
    learn = _learner()
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    values,lrs = learn.recorder.values,learn.recorder.lrs
    learn.add_cb(_Fault('after_batch', 3, KeyboardInterrupt()))
    with learn.no_bar(), learn.no_logging(), pytest.raises(KeyboardInterrupt): learn.lr_find(num_it=10, show_plot=False)
    assert learn.recorder.values is values and learn.recorder.lrs is lrs and len(values) == 1

class _FillsBuffers(nn.Module):
    "A buffer registered as None and filled by a training forward, and one registered by the forward itself"
    def __init__(self):
        super().__init__(); self.lin = nn.Linear(40, 10); self.register_buffer('seen', None)
    def forward(self, x):
        if self.training:
            self.seen = x.detach().mean(0)
            if not hasattr(self, 'extra'): self.register_buffer('extra', torch.ones(1))
        return self.lin(x.flatten(1))

def test_buffers_a_sweep_adds_are_taken_back():
    "A buffer the sweep filled where it was None, or registered, is taken back: the model's `state_dict` keys are as before"
    learn = _learner_with(_FillsBuffers())
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=5, show_plot=False)
    assert learn.model.seen is None and 'extra' not in learn.model._buffers
    learn.lr_tune(4)
    assert learn.model.seen is None and list(learn.model.state_dict()) == ['lin.weight', 'lin.bias']

class _SyncBN(Callback):
    ("As fastai's `DistributedTrainer(sync_bn=True)`, at every fit: torch's `convert_sync_batchnorm` replaces each BatchNorm child "
     "with a new `SyncBatchNorm` sharing its tensors, and nothing puts the old one back (its forward is BatchNorm's: the CPU)")
    def before_fit(self): nn.SyncBatchNorm.convert_sync_batchnorm(self.learn.model)

class _WrapsForward(Callback):
    ("As accelerate's mixed precision under fastai's `DistributedTrainer`, at every fit: the model's `forward` wrapped once more "
     "(`_original_forward` kept), never unwrapped")
    def before_fit(self):
        m = self.learn.model
        m._original_forward,inner = m.forward,m.forward
        m.forward = lambda *a, **kw: inner(*a, **kw)

def _bn_net(): return nn.Sequential(nn.Flatten(), nn.Linear(40, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))

@pytest.mark.parametrize('search', ['lr_find', 'lr_tune'])
def test_children_a_fit_replaces_come_back(monkeypatch, search):
    ("Under `distrib_ctx` (fastai's `sync_bn=True`) every fit replaces each BatchNorm by a new `SyncBatchNorm`: the modes came back "
     "on the modules the search replaced, so the model's BatchNorm stayed in training mode after it (found in a 2-process run)")
    monkeypatch.setattr(nn.SyncBatchNorm, 'forward', nn.modules.batchnorm._BatchNorm.forward)  # SyncBatchNorm needs a GPU to train
    learn = _learner_with(_bn_net(), cbs=_SyncBN())
    _pretrain(learn)
    learn.model.eval()
    bn,before = learn.model[2],learner_state(learn)
    assert isinstance(bn, nn.SyncBatchNorm)
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=10, show_plot=False) if search == 'lr_find' else learn.lr_tune(4)
    assert learn.model[2] is bn and not bn.training
    assert_restored(before, learner_state(learn))

@pytest.mark.parametrize('search', ['lr_find', 'lr_tune', 'auto'])
def test_a_forward_wrapped_for_each_fit_comes_back(search):
    ("accelerate wraps the model's `forward` in autocast at every fit under fastai's `distrib_ctx(mixed_precision=...)`: a search "
     "of dozens of fits nested it once per fit (a RecursionError after about 19 tunings); now it leaves the `forward` it found, "
     "and `fit_*(n, 'auto')` wraps it once, as the fit")
    learn = _learner_with(_bn_net(), cbs=_WrapsForward())
    assert 'forward' not in vars(learn.model)
    with learn.no_bar(), learn.no_logging():
        if search == 'lr_find': learn.lr_find(num_it=10, show_plot=False)
        elif search == 'lr_tune': learn.lr_tune(4)
        else: learn.fit_cos_anneal(4, 'auto')
    if search != 'auto': assert 'forward' not in vars(learn.model) and '_original_forward' not in vars(learn.model)
    else: assert learn.model._original_forward == type(learn.model).forward.__get__(learn.model)  # one wrapper: the fit's
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    f = vars(learn.model)['forward']
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=10, show_plot=False)
    assert vars(learn.model)['forward'] is f

class _LazyHead(nn.Module):
    "A head and a scale built on the first forward over plain `None`s, a common hand-written lazy pattern"
    def __init__(self):
        super().__init__(); self.body = nn.Sequential(nn.Flatten(), nn.Linear(40, 16), nn.ReLU()); self.head = self.scale = None
    def forward(self, x):
        h = self.body(x)
        if self.head is None: self.head,self.scale = nn.Linear(h.shape[-1], 10),nn.Parameter(torch.ones(1))
        return self.head(h) * self.scale

@pytest.mark.parametrize('search', ['lr_find', 'lr_tune'])
def test_a_child_built_on_the_first_forward_comes_back_as_it_was(search):
    ("A child (or parameter) built on the first forward over a plain `None` leaves the plain attribute for a registered one: once "
     "the restore took the children back, the model had no `head` at all and every later forward raised AttributeError")
    learn = _learner_with(_LazyHead())
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=10, show_plot=False) if search == 'lr_find' else learn.lr_tune(4)
    assert learn.model.head is None and learn.model.scale is None and list(learn.model.state_dict()) == ['body.1.weight', 'body.1.bias']
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)  # builds them, as the first fit would have
    assert isinstance(learn.model.head, nn.Linear)

class _WrapsAChild(Callback):
    "Wraps the model's second module for the fit and unwraps it in its own `after_fit`, after the finder's (order 60)"
    order = 70
    def before_fit(self): self.learn.model[1] = nn.Sequential(self.learn.model[1])
    def after_fit(self): self.learn.model[1] = self.learn.model[1][0]

def test_a_finder_fit_attached_restores_after_every_after_fit():
    ("`fit(cbs=AnnealLRFinder())` restored in its own `after_fit`, so a later callback that undoes in its `after_fit` what it did to "
     "the model found the model already put back and failed; the finder `fit` attached restores as `fit` detaches it")
    learn = _learner_with(nn.Sequential(nn.Flatten(), nn.Linear(40, 10)))
    lin,before = learn.model[1],learner_state(learn)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[AnnealLRFinder(num_it=10), _WrapsAChild()])
    assert learn.model[1] is lin
    assert_restored(before, learner_state(learn))

def test_a_lazy_module_not_sized_yet_is_refused_with_what_to_do():
    "A lazy module's parameters cannot be copied before a first batch sizes them: a clear error, the learner untouched"
    learn = _learner_with(nn.Sequential(nn.Flatten(), nn.LazyLinear(10)))
    for f in (lambda: learn.lr_find(show_plot=False), lambda: learn.lr_tune(4), lambda: learn.fit_cos_anneal(4, 'auto')):
        with pytest.raises(ValueError, match=r"lazy module whose parameters are not sized yet \(LazyLinear.weight\): run one batch"): f()
    assert learn.opt is None
    learn.model(learn.dls.one_batch()[0])
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=5, show_plot=False)

def test_a_second_interrupt_during_the_restore_leaves_no_part_undone(monkeypatch):
    ("A Ctrl-C while the snapshot puts the weights back (a user pressing it twice) is held until the restore ends, then reaches the "
     "caller: the params' flags and grads, the optimizer, the modes, the RNGs and the Recorder all come back (the restore stopped "
     "where the signal landed)")
    learn = _learner()
    _pretrain(learn)
    learn.model[0].weight.grad = torch.randn_like(learn.model[0].weight)
    before,history = learner_state(learn),learn.recorder.values
    fault = _Fault('after_step', 3, RuntimeError('first'))
    with learn.no_bar(), learn.no_logging(), learn.added_cbs(fault), pytest.raises(KeyboardInterrupt):
        with monkeypatch.context() as m:
            n = ctrl_c_at_tensor(m, 2)  # the signal lands while the second tensor is put back
            learn.lr_find(num_it=10, show_plot=False)
    assert len(n) > 2  # the copies went on after the signal
    test_is(learn.recorder.values, history)
    assert_restored(before, learner_state(learn))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

def test_a_ctrl_c_as_the_finders_restore_begins_loses_nothing(monkeypatch):
    ("`fit(cbs=AnnealLRFinder())` ending: a Ctrl-C after the finder took its snapshot off itself and before the snapshot's restore "
     "held the signal lost the restore for good (the learner kept the sweep's weights). The hold now covers both")
    learn = _learner()
    _pretrain(learn)
    before,orig = learner_state(learn),LearnerSnapshot.restore
    def ctrl_c_first(self, *a, **kw): signal.raise_signal(signal.SIGINT); return orig(self, *a, **kw)
    monkeypatch.setattr(LearnerSnapshot, 'restore', ctrl_c_first)
    with learn.no_bar(), learn.no_logging(), pytest.raises(KeyboardInterrupt): learn.fit(1, cbs=AnnealLRFinder(num_it=10))
    monkeypatch.undo()
    assert_restored(before, learner_state(learn))
    assert not any(isinstance(c, AnnealLRFinder) for c in learn.cbs) and not hasattr(learn, 'lr_finder')
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

@pytest.mark.parametrize('part', ['_restore_swaps', 'cbs'])
def test_an_error_in_lr_finds_cleanup_leaves_no_part_undone(monkeypatch, part):
    ("After an interrupt `lr_find` puts back what callbacks swapped, the callbacks' state and the Recorder: an error in one of them "
     "(a second interrupt) leaves the others done and reaches the caller")
    from fastai_anneal.snapshot import _CallbacksKept
    learn = _learner()
    _pretrain(learn)
    history,fault = learn.recorder.values,_Fault('after_step', 3, KeyboardInterrupt('first'))
    def again(self): raise KeyboardInterrupt('again')
    if part == 'cbs': monkeypatch.setattr(_CallbacksKept, 'restore', again)
    else: monkeypatch.setattr(LearnerSnapshot, part, again)
    with learn.no_bar(), learn.no_logging(), learn.added_cbs(fault), pytest.raises(KeyboardInterrupt, match='again'):
        learn.lr_find(num_it=10, show_plot=False)
    monkeypatch.undo()
    test_is(learn.recorder.values, history)
    test_eq(fault.i, 3 if part == 'cbs' else -1)  # the callbacks' state came back unless its own restore failed

@pytest.mark.parametrize('ends', ['well', 'on_error'])
def test_a_finder_whose_restore_fails_leaves_the_learner(monkeypatch, ends):
    ("`fit(cbs=AnnealLRFinder())` whose restore raises (an error, a second Ctrl-C): fastai's `remove_cbs` stops at the raise, and "
     "the finder stayed on the learner, so its next `fit` ran a range test and threw its training away. A fit that ends well gets "
     "the restore's error, the finder detached; one that ends on its own error keeps it, the restore's noted on it and warned, "
     "and fastai detaches every callback of the fit")
    learn = _learner()
    _pretrain(learn)
    monkeypatch.setattr(LearnerSnapshot, '_restore_rest', lambda self: _raise(RuntimeError('restore failed')))
    cbs = [AnnealLRFinder(num_it=10), _Fault('after_step', 3, RuntimeError('the fit failed'))]
    if ends == 'well': cbs = cbs[:1]
    with learn.no_bar(), learn.no_logging(), pytest.raises(RuntimeError) as err:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            learn.fit(1, cbs=cbs)
    monkeypatch.undo()
    if ends == 'well': assert str(err.value).endswith('restore failed')  # fastai names the event it came from
    else:
        assert str(err.value).endswith('the fit failed')
        assert "restoring the learner also failed: RuntimeError('restore failed')" in err.value.__notes__[0]
        assert any('restoring the learner failed' in str(x.message) for x in w)
    assert not any(isinstance(c, (AnnealLRFinder, _Fault)) for c in learn.cbs) and not hasattr(learn, 'lr_finder')
    assert cbs[0].learn is None  # detached, as fastai's `remove_cb` leaves a callback
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    test_eq(learn.recorder.lrs, [1e-3]*len(learn.dls.train))

def _raise(e): raise e

def test_an_error_at_one_tensor_leaves_the_others_restored(monkeypatch):
    "A restore that fails at one tensor (or param) goes on with the others, then raises that error"
    learn = _learner()
    _pretrain(learn)
    before = learner_state(learn)
    first = learn.model[0].weight
    orig = LearnerSnapshot._restore_tensor
    def fails_at_first(m, kind, n, t, c):
        if t is first: raise RuntimeError('this tensor')
        orig(m, kind, n, t, c)
    monkeypatch.setattr(LearnerSnapshot, '_restore_tensor', staticmethod(fails_at_first))
    with learn.no_bar(), learn.no_logging(), pytest.raises(RuntimeError, match='this tensor'): learn.lr_find(num_it=10, show_plot=False)
    monkeypatch.undo()
    after = learner_state(learn)
    test_eq({k for k,v in after['tensors'].items() if not torch.equal(v, before['tensors'][k])}, {'0.weight'})  # the sweep's, left
    after['tensors']['0.weight'] = before['tensors']['0.weight']
    assert_restored(before, after)  # the rest as it was

def test_a_held_ctrl_c_is_delivered_even_when_the_block_raised():
    ("`sigint_held` delivers a Ctrl-C it held when the block ends, also on an error (the error is its context): a restore that "
     "failed did not lose the user's interrupt to code that catches `Exception`. Nested, the inner hands it to the outer")
    from fastai_anneal.snapshot import sigint_held
    with pytest.raises(KeyboardInterrupt) as err:
        with sigint_held():
            signal.raise_signal(signal.SIGINT)
            raise RuntimeError('the restore failed')
    assert isinstance(err.value.__context__, RuntimeError)
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_held():
            with sigint_held(): signal.raise_signal(signal.SIGINT); seen.append('inner')
            seen.append('outer')  # the inner block's exit gave it to the outer hold
    test_eq(seen, ['inner', 'outer'])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

def test_a_failed_restore_keeps_no_copies_alive(monkeypatch):
    "The error of a failed restore, kept by a caller (a notebook keeps the last one), holds at most the copy it failed on"
    import gc, weakref
    learn = _learner()
    _pretrain(learn)
    snap = LearnerSnapshot(learn)
    refs = [weakref.ref(c) for *_,c in snap.tensors]
    assert len(refs) > 3
    monkeypatch.setattr(LearnerSnapshot, '_restore_tensor', staticmethod(lambda *a: _raise(RuntimeError('every tensor'))))
    try: snap.restore()
    except RuntimeError as e: kept = e
    assert f'and {len(refs)-1} more error(s) while restoring' in kept.__notes__[0], kept.__notes__
    gc.collect()
    assert sum(r() is not None for r in refs) <= 1, sum(r() is not None for r in refs)

# ------------------------------------------------------------------ from the mutation audit of lr_finder.py (twenty-fifth session)
def _mlp_learner(**kw):
    "MNIST-1D (10 batches of 400) and a small MLP: its loss diverges within a sweep from 1e-3 to 1e4"
    set_seed(0)
    return Learner(mnist1d_dls(bs=400), nn.Sequential(nn.Flatten(), nn.Linear(40, 16), nn.ReLU(), nn.Linear(16, 10)),
                   **{'loss_func': CrossEntropyLossFlat(), **kw})

# ------------------------------------------------------------------ the sweep's check (S07, S09, S10)
def test_a_custom_sweep_is_checked_at_every_batch_it_runs():
    "A bad lr at the sweep's last batch, or at one batch mid-sweep, is refused before anything runs; pos=1, which no batch runs, is not tried"
    learn = mk_learner()
    last = lambda s, e, p: -1. if p > 0.985 else s*(e/s)**p  # num_it=100: batch 99 only (pos 0.99)
    mid = lambda s, e, p: -1. if 0.305 < p < 0.315 else s*(e/s)**p  # batch 31 only
    for f,i in ((last, 99), (mid, 31)):
        with pytest.raises(ValueError, match=f'gives the lr -1.0 at batch {i} of the sweep'): learn.lr_find(anneal=f, show_plot=False)
    assert learn.opt is None
    zero_at_end = lambda s, e, p: 0. if p >= 1 else s*(e/s)**p  # 0 only at pos 1: the sweep stops one batch before
    quiet_fit(learn, 'lr_find', num_it=20, anneal=zero_at_end, show_plot=False, suggest_funcs=None)
    test_eq(len(learn.recorder.lrs), 20)

# ------------------------------------------------------------------ where the sweep stops (C02, B07, B08)
def test_div_thresh_and_stop_div_set_where_the_sweep_stops():
    ("The sweep stops at the first batch whose smoothed loss passes `div_thresh` times its best so far (2, fastai's 4), inf: only at "
     "NaN/inf; `stop_div=False` runs every batch, as fastai's `lr_find(stop_div=False)`")
    n = {}
    for d in (2., 4., math.inf):
        learn = _mlp_learner()
        quiet_fit(learn, 'lr_find', 1e-3, 1e4, num_it=40, div_thresh=d, show_plot=False, suggest_funcs=None)
        losses = [float(x) for x in learn.recorder.losses]
        best = np.minimum.accumulate(losses)
        over = [i for i,(l,b) in enumerate(zip(losses, best)) if not math.isfinite(l) or l > d*b]
        test_eq(len(losses), over[0] + 1 if over else 40)
        n[d] = len(losses)
    assert n[2.] < n[4.] < n[math.inf] == 40
    for f in ('_orig_lr_find', 'lr_find'):  # fastai's, ours
        learn = _mlp_learner()
        quiet_fit(learn, f, 1e-3, 1e4, num_it=40, stop_div=False, show_plot=False)
        test_eq(len(learn.recorder.lrs), 40)

# ------------------------------------------------------------------ no Recorder (A14, F02)
def test_without_a_recorder_the_finder_says_so():
    "A learner made with `default_cbs=False` has no Recorder: `lr_find` and `fit(cbs=AnnealLRFinder())` say so before a batch runs"
    learn = mk_learner(default_cbs=False)
    with pytest.raises(ValueError, match=r"lr_find needs the learner's Recorder"): learn.lr_find(show_plot=False)
    assert learn.opt is None
    with pytest.raises(ValueError, match=r"AnnealLRFinder needs the learner's Recorder"): learn.fit(1, cbs=AnnealLRFinder(num_it=10))

# ------------------------------------------------------------------ lr_find's output (F07, F17, F18)
def test_lr_find_prints_nothing():
    "As fastai's, `lr_find` logs no epoch table, also for a sweep longer than an epoch (30 batches, 10 per epoch)"
    import contextlib, io
    learn = _mlp_learner()
    out = io.StringIO()
    with learn.no_bar(), contextlib.redirect_stdout(out): learn.lr_find(num_it=30, show_plot=False)
    test_eq(out.getvalue(), '')

def test_a_sweep_that_goes_back_and_forth_suggests_from_its_points():
    "A custom sweep whose lr rises then falls cannot be resampled in log(lr): `lr_find` warns and suggests from its points as recorded"
    tri = lambda s, e, p: s*(e/s)**(1 - abs(2*p - 1))
    learn = _mlp_learner()
    with learn.no_bar(), pytest.warns(UserWarning, match='do not increase'): res = learn.lr_find(1e-5, 1., num_it=30, anneal=tri, show_plot=False)
    test_eq(len(learn.recorder.lrs), 30)
    test_eq(tuple(res), tuple(suggest_lrs(learn.recorder.lrs, learn.recorder.losses, 30)[0]))

def test_a_sweep_cancelled_between_the_recorder_and_the_finder_suggests():
    "An uneven sweep another callback cancels after the Recorder logged a batch the finder did not: suggestions from the batches both have"
    learn = _mlp_learner()
    with learn.no_bar(), learn.added_cbs(_StopAt(20, order=55)): res = learn.lr_find(1e-5, 1., num_it=30, anneal='cos', show_plot=False)
    test_eq(len(learn.recorder.lrs), 20)  # the finder saw 19
    assert res.valley > 0

# ------------------------------------------------------------------ suggestions (G05, G06, G01, E16, G07, G13, G15)
def test_suggest_lrs_resamples_with_its_beta_and_div_thresh():
    ("`suggest_lrs(..., raw_losses, beta, div_thresh)` suggests from `even_log_sweep` with that beta (0: no smoothing) and threshold: "
     "a loss 3x its best for 10 batches ends the curve there at 2, not at 4, where what follows (a lower loss) is suggested from")
    lrs = _cos()
    raw = [_curve(lr)*(1. if i < 60 else 3. if i < 70 else 0.3) for i,lr in enumerate(lrs)]
    for beta,d in ((0.5, 2.), (0.5, 4.), (0.98, 4.), (0., 4.)):
        g,sm = even_log_sweep(lrs, raw, beta, d)
        ours,_ = suggest_lrs(lrs, [0.]*100, 100, FUNCS, raw_losses=raw, beta=beta, div_thresh=d)
        test_eq(tuple(ours), tuple(suggest_lrs(g, sm, 100, FUNCS)[0]))
    assert len(even_log_sweep(lrs, raw, 0.5, 2.)[0]) < 70 and len(even_log_sweep(lrs, raw, 0.5, 4.)[0]) == 100

def test_each_batch_counts_at_its_nearest_even_point():
    ("Resampling averages each batch onto the nearest of the even log(lr) points: a loss linear in log(lr), unsmoothed (beta=0), comes "
     "back within half a step of the line at every point; an even sweep comes back as it is, smoothed as fastai's Recorder smooths")
    lrs = _cos()
    g,sm = even_log_sweep(lrs, list(np.log(lrs)), beta=0., div_thresh=math.inf)
    lg = np.log(g.double().numpy())
    step = (lg[-1] - lg[0])/99
    assert np.abs(sm.double().numpy() - lg).max() <= 0.5*step + 1e-5
    exp = [SWEEPS['exp'](1e-7, 10., i/100) for i in range(100)]
    g,sm = even_log_sweep(exp, [_curve(lr) for lr in exp], div_thresh=math.inf)
    test_close(g.double(), tensor(exp).double(), eps=1e-6*10.)
    avg,ref = AvgSmoothLoss(0.98),[]  # fastai's Recorder smoothing, fed the same losses
    avg.reset()
    for lr in exp: avg.accumulate(SimpleNamespace(loss=tensor(float(_curve(lr))))); ref.append(float(avg.value))
    test_close(sm, tensor(ref), eps=1e-5)

def test_an_uneven_sweep_without_raw_losses_ends_at_its_first_nan():
    "The smoothed losses of an uneven sweep, NaN from point 60 on: resampled from the 60 finite points, as if the sweep had stopped there"
    lrs = _cos()
    losses = [float(_curve(lr)) for lr in lrs[:60]] + [float('nan')]*40
    test_eq(tuple(suggest_lrs(lrs, losses, 100, FUNCS)[0]), tuple(suggest_lrs(lrs[:60], losses[:60], 100, FUNCS)[0]))

def test_a_sweep_shorter_than_the_points_left_out_suggests_nothing():
    ("fastai leaves out the first `num_it//10` points and the last 5: a 10-batch sweep that stopped after 4 has none left, so every "
     "suggestion is NaN with a warning, not one computed from the 2 points in between")
    lrs = [1e-7*(1e8)**(i/10) for i in range(4)]
    with pytest.warns(UserWarning, match='no `valley` suggestion'): res,_ = suggest_lrs(lrs, [2., 1.9, 1.5, 1.2], 10, FUNCS)
    assert all(math.isnan(v) for v in res)

def nan_rule(lrs, losses, num_it): return float('nan'), (float('nan'), float('nan'))
def inf_rule(lrs, losses, num_it): return float('inf'), (float('inf'), 1.)

def test_a_suggestion_function_that_returns_no_number_gives_nan_and_a_warning():
    "A suggestion function (a user's) that returns NaN or inf: NaN and a warning naming it, as for one that fails"
    lrs,losses = _sweep(100)
    with pytest.warns(UserWarning) as w: res,pnts = suggest_lrs(lrs, losses, 100, (valley, nan_rule, inf_rule))
    assert res.valley > 0 and math.isnan(res.nan_rule) and math.isnan(res.inf_rule)
    msgs = [str(x.message) for x in w]
    assert any('no `nan_rule` suggestion' in m for m in msgs) and any('no `inf_rule` suggestion' in m for m in msgs)

# ------------------------------------------------------------------ attaching (A01)
def test_a_finder_with_the_wrong_group_count_is_refused_when_attached():
    "`add_cb(AnnealLRFinder(...))` with 3 per-group lrs on a 2-group learner is refused at once, as `lr_find` refuses it, not at the next fit"
    learn = mk_learner(groups=2)
    cb = AnnealLRFinder([1e-7]*3, 1.)
    with pytest.raises(ValueError, match='start_lr has 3 values but the optimizer has 2'): learn.add_cb(cb)
    assert cb not in learn.cbs and not hasattr(learn, 'lr_finder')

def test_a_finder_kept_on_the_learner_snapshots_afresh_after_an_interrupted_sweep():
    ("A finder attached outside `fit` (`add_cb`) whose sweep was interrupted: the next sweep gives back the learner as that sweep "
     "found it (weights loaded since), not as the interrupted one found it")
    learn = mk_learner()
    learn.add_cb(AnnealLRFinder(1e-5, 1., 10))
    with learn.no_bar(), learn.no_logging(), learn.added_cbs(_StopAt(3, KeyboardInterrupt, order=55)), pytest.raises(KeyboardInterrupt): learn.fit(3)
    with torch.no_grad():
        for p in learn.model.parameters(): p.mul_(0.5)  # the user moves on: a checkpoint loaded
    before = learner_state(learn)
    quiet_fit(learn, 'fit', 3)
    after = learner_state(learn)
    for k in ('tensors', 'grads', 'rg', 'modes'): assert bitwise_equal(before[k], after[k]), k

class _Estimator:
    "A user's scikit-learn style wrapper: its own `fit` builds a learner with a finder attached (`Learner(cbs=...)`) and runs the sweep"
    def fit(self):
        self.learn = mk_learner(cbs=AnnealLRFinder(1e-5, 1., 10))
        self.before = learner_state(self.learn)
        quiet_fit(self.learn, 'fit', 3)
        return self

def test_a_finder_attached_within_another_objects_fit_restores_after_its_sweep():
    "Only the learner's own `fit` on the call stack makes the finder's attachment a fit's: one attached within another `fit` restores as usual"
    est = _Estimator().fit()
    after = learner_state(est.learn)
    for k in ('tensors', 'grads', 'rg', 'modes'): assert bitwise_equal(est.before[k], after[k]), k

# ------------------------------------------------------------------ what the finder records, when it stops (B04, B15)
class _BatchLosses(Callback):
    "Each training batch's loss as the batch computed it"
    def __init__(self): self.losses = []
    def after_batch(self):
        if self.training: self.losses.append(float(self.learn.loss.detach()))

def test_an_uneven_sweep_keeps_each_batchs_own_loss():
    "`raw_losses` holds each batch's own loss (`learn.loss`), not the Recorder's smoothed one: the resampling smooths once, as fastai's Recorder does"
    learn,cb,rec = _mlp_learner(),AnnealLRFinder(num_it=20, anneal='cos'),_BatchLosses()
    quiet_fit(learn, 'fit', 2, cbs=[cb, rec])
    test_eq(len(cb.raw_losses), len(learn.recorder.lrs))
    test_eq(cb.raw_losses, rec.losses)

class _NanAfter:
    "Cross-entropy that turns NaN after `n` calls"
    def __init__(self, n): self.n,self.calls = n,0
    def __call__(self, pred, targ):
        self.calls += 1
        return nn.functional.cross_entropy(pred, targ) * (float('nan') if self.calls > self.n else 1.)

def test_a_nan_loss_stops_the_sweep_whatever_min_move():
    "Under the tuner's `MIN_MOVE` (a rise is divergence only once the weights moved that much), a NaN loss still stops the sweep at once"
    from fastai_anneal.lr_finder import MIN_MOVE
    learn = _mlp_learner(loss_func=_NanAfter(5))
    tok = MIN_MOVE.set(10.)  # a move the weights never make
    try: quiet_fit(learn, 'lr_find', 1e-6, 1e-4, num_it=20, show_plot=False, suggest_funcs=None)
    finally: MIN_MOVE.reset(tok)
    test_eq(len(learn.recorder.losses), 6)
    assert math.isnan(learn.recorder.losses[-1])

# ------------------------------------------------------------------ where a resampled sweep is cut (E20, E21, E22)
def test_a_resampled_sweeps_best_counts_from_its_first_tenth():
    ("The cut compares each point with the smoothed best from the first tenth on (at least 3 points in): a lucky batch before that "
     "sets no best, a low within the second tenth does. An even sweep (each batch its own point), unsmoothed (beta=0)")
    ev = lambda n: [SWEEPS['exp'](1e-7, 10., i/n) for i in range(n)]
    lucky = [0.01] + [0.2]*99  # the first batch: 20x lower than the rest
    test_eq(len(even_log_sweep(ev(100), lucky, beta=0.)[0]), 100)
    short = [0.2, 0.2, 0.01] + [0.2]*17  # 20 points: the first tenth is 2 points, the best counts from the 4th on
    test_eq(len(even_log_sweep(ev(20), short, beta=0.)[0]), 20)
    low = [0.15]*10 + [0.05]*10 + [0.3]*80  # a low from point 10 on, then 6x it: cut at the rise's second point
    test_eq(len(even_log_sweep(ev(100), low, beta=0.)[0]), 21)
