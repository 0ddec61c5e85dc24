"""fastai keeps its promises with `fastai_anneal.all` imported. Our own tests of what fastai's notebooks check for the parts
this package patches or sits beside: 14_callback.schedule (schedulers, fits, resume, LR finder), 17_callback.tracker
(trackers stand aside during a sweep, and work next to every fit variant), 13b_metrics (names and values of the metrics
we re-implement), 18a_callback.training (gradient accumulation, BnFreeze), 18_callback.fp16 (its CPU-runnable parts) and
12_optimizer (state_dict, freeze). Where a promise needs a GPU or a package we do not install, a skip says so. W&B's
callback is not run: it needs a W&B run (an account and network); it tests `hasattr(learn, 'lr_finder')` as
`ShowGraphCallback` does, which is covered."""
import math
from functools import partial
from types import SimpleNamespace
import numpy as np, pytest, torch
from torch import nn
import fastai.callback.schedule as fa_schedule
from fastai.basics import *
import copy  # after the star import: fastai exports shutil's `copy`
from fastai.callback.schedule import LRFinder, SchedCos, SchedExp, SuggestionMethod, combined_cos
from fastai.callback.tracker import TrackerCallback, SaveModelCallback, EarlyStoppingCallback, ReduceLROnPlateau
from fastai.callback.progress import ShowGraphCallback, CSVLogger
from fastai.callback.training import GradientAccumulation, BnFreeze
from fastai.callback.fp16 import MixedPrecision
import fastai.metrics as fa_metrics
from fastai.test_utils import synth_learner
from fastai_anneal.all import *
from fastai_anneal.optimizer import AdamAnneal, SGDAnneal
from fastai_anneal.registry import VARIANTS as REGISTRY
from fastai.test_utils import synth_dbunch
from conftest import mk_learner, quiet_fit, RecordHypers, CountSteps, synth_splitter, learner_state, assert_restored, bitwise_equal

FUNCS = (SuggestionMethod.Valley, SuggestionMethod.Slide, SuggestionMethod.Minimum, SuggestionMethod.Steep)
fastai_lr_find = Learner._orig_lr_find  # fastcore's `patch` keeps the method it replaced
N_ITER = 5

@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close('all')

# ------------------------------------------------------------------ 14_callback.schedule
def test_schedule_names_stay_fastai():
    "The star import rebinds none of fastai's schedule API (annealers, `combine_scheds`, `ParamScheduler`, `LRFinder`, the suggestions)"
    import fastai_anneal.all as fa
    for n in fa_schedule.__all__:
        if n in vars(fa): assert getattr(fa, n) is getattr(fa_schedule, n), n
    for n in ('fit_one_cycle', 'fit_flat_cos', 'fit_sgdr', 'fine_tune', 'fit'):
        assert getattr(Learner, n).__module__.startswith('fastai.'), n

def test_fit_one_cycle_lrs_and_moms():
    "`fit_one_cycle`: lr warms up from lr_max/25 to lr_max over 25% of the batches, cosine to lr_max/1e5; momentum mirrors it (0.95, 0.85)"
    learn = mk_learner(n_train=N_ITER)
    quiet_fit(learn, 'fit_one_cycle', 2, 1e-2)
    n = 2*N_ITER
    for i,(lr,mom) in enumerate(zip(learn.recorder.hps['lr'], learn.recorder.hps['mom'])):
        p = i/n
        lr_ref = 1e-2/25 + (1e-2 - 1e-2/25)*(1 - math.cos(math.pi*p/0.25))/2 if p < 0.25 else \
                 1e-2 + (1e-7 - 1e-2)*(1 - math.cos(math.pi*(p - 0.25)/0.75))/2
        mom_ref = 0.95 + (0.85 - 0.95)*(1 - math.cos(math.pi*p/0.25))/2 if p < 0.25 else \
                  0.85 + (0.95 - 0.85)*(1 - math.cos(math.pi*(p - 0.25)/0.75))/2
        assert lr == pytest.approx(lr_ref, rel=1e-6) and mom == pytest.approx(mom_ref, rel=1e-6), i

def test_fit_one_cycle_per_group_and_training_improves():
    "A slice spreads lr_max over the groups (last group highest); a one-cycle fit lowers the loss"
    learn,rec = mk_learner(n_train=N_ITER, groups=2),RecordHypers()
    xb,yb = learn.dls.one_batch()
    before = float(learn.loss_func(learn.model(xb), yb).detach())
    quiet_fit(learn, 'fit_one_cycle', 2, slice(1e-3, 1e-2), cbs=rec)
    for lo,hi in rec.lrs: assert hi == pytest.approx(10*lo, rel=1e-9)  # the same one-cycle, scaled per group
    assert 0.98e-2 < max(hi for _,hi in rec.lrs) <= 1e-2
    assert float(learn.loss_func(learn.model(xb), yb).detach()) < before

def test_fit_flat_cos_and_fine_tune_shapes():
    "`fit_flat_cos` holds lr for 75% then cosines to lr/1e5; `fine_tune` trains one epoch frozen, then a one-cycle at base_lr/2"
    learn = mk_learner(n_train=N_ITER)
    quiet_fit(learn, 'fit_flat_cos', 2, 1e-3)
    lrs,n = learn.recorder.hps['lr'],2*N_ITER
    assert all(lr == pytest.approx(1e-3) for lr in lrs[:int(0.75*n)])
    assert lrs[-1] < 1e-3/2 and lrs == sorted(lrs, reverse=True)
    learn,steps = mk_learner(n_train=N_ITER, groups=2),CountSteps()
    quiet_fit(learn, 'fine_tune', 1, base_lr=2e-3, cbs=steps)
    test_eq((steps.n, steps.frozen), (2*N_ITER, N_ITER))  # one frozen epoch, one unfrozen
    assert 0.9e-3 < max(learn.recorder.hps['lr']) <= 1e-3  # the unfrozen one-cycle peaks at base_lr/2
    test_eq(learn.opt.frozen_idx, 0)

def test_fit_sgdr_cycles():
    "`fit_sgdr(3, 1)` runs 1+2+4 epochs, each a cosine from `learn.lr` to 0 (a cycle's first batch can fall on the previous one's end)"
    learn = mk_learner(n_train=N_ITER)
    quiet_fit(learn, 'fit_sgdr', 3, 1)
    test_eq(learn.n_epoch, 7)
    lrs = learn.recorder.lrs
    for start,length in ((0, 1), (1, 2), (3, 4)):
        n = length*N_ITER
        for k in range(1, n):  # rel 1e-5: pct_train sums 1/n
            assert lrs[start*N_ITER + k] == pytest.approx(learn.lr*(1 + math.cos(math.pi*k/n))/2, rel=1e-5)

class _Die(Callback):
    def __init__(self, epoch): self.at = epoch
    def before_epoch(self):
        if self.epoch == self.at: raise CancelFitException()

def test_resume_fit_one_cycle_from_checkpoint(tmp_path):
    "A fit resumed with `start_epoch` from a `SaveModelCallback(with_opt=True)` checkpoint continues the full run's lr sequence"
    full = mk_learner(n_train=N_ITER, path=tmp_path/'full')
    quiet_fit(full, 'fit_one_cycle', 4)
    dying = mk_learner(n_train=N_ITER, path=tmp_path/'run')
    quiet_fit(dying, 'fit_one_cycle', 4, cbs=[SaveModelCallback(with_opt=True, fname='ckpt', every_epoch=True), _Die(2)])
    resumed = mk_learner(n_train=N_ITER, path=tmp_path/'run').load('ckpt_1', with_opt=True)
    quiet_fit(resumed, 'fit_one_cycle', 4, start_epoch=2)
    test_eq(resumed.recorder.hps['lr'], full.recorder.hps['lr'][2*N_ITER:])

def test_lrfinder_callback_still_fastais(tmp_path):
    "fastai's own `LRFinder`: exponential sweep from 1e-7 to 10, no validation, weights back afterwards, nothing left in `path`"
    learn = synth_learner(path=tmp_path)
    init = [p.detach().clone() for p in learn.model.parameters()]
    with learn.no_logging(), learn.no_bar(): learn.fit(20, cbs=LRFinder(num_it=100))
    lrs = learn.recorder.lrs
    assert 6 <= len(lrs) <= 100 and len(lrs) == len(learn.recorder.losses)
    for i,lr in enumerate(lrs): assert lr == pytest.approx(1e-7*1e8**(i/100), rel=1e-9)
    if len(lrs) < 100: assert learn.recorder.losses[-1] > 4*min(learn.recorder.losses)  # stopped on divergence
    test_eq([len(v) for v in learn.recorder.values], [1]*len(learn.recorder.values))  # train loss only
    for p,q in zip(learn.model.parameters(), init): test_eq(p, q)
    test_eq([p.name for p in tmp_path.rglob('*.pth')], [])

def test_lr_find_suggestions_equal_fastais(tmp_path):
    "Our `lr_find` returns fastai's named tuple of the four suggestions, all positive, equal to fastai's, and the weights come back"
    res = []
    for f in (fastai_lr_find, Learner.lr_find):
        set_seed(0); learn = synth_learner(path=tmp_path)
        before = [p.detach().clone() for p in learn.model.parameters()]
        set_seed(1)
        with learn.no_bar(): res.append(f(learn, suggest_funcs=FUNCS, show_plot=False))
        for p,q in zip(learn.model.parameters(), before): test_eq(p, q)
    test_eq(res[1]._fields, ('valley', 'slide', 'minimum', 'steep'))
    test_eq(tuple(res[1]), tuple(res[0]))
    assert all(v > 0 for v in res[1])

# ------------------------------------------------------------------ 17_callback.tracker
def _metric(out, targ): return F.mse_loss(out, targ)

STANDING_ASIDE = {
    'TrackerCallback': lambda: TrackerCallback(monitor='_metric'),
    'SaveModelCallback': lambda: SaveModelCallback(),
    'EarlyStoppingCallback': lambda: EarlyStoppingCallback(patience=0),
    'ReduceLROnPlateau': lambda: ReduceLROnPlateau(patience=0),
    'ShowGraphCallback': lambda: ShowGraphCallback(),
    'CSVLogger': lambda: CSVLogger(),
}

@pytest.mark.parametrize('name', STANDING_ASIDE)
def test_lr_find_with_a_tracker_callback(name, tmp_path):
    "issue 10.1: with a tracker, `ShowGraphCallback` or `CSVLogger`, `lr_find` gives fastai's suggestions, saves no model, keeps it"
    res,files = [],[]
    for f,d in ((fastai_lr_find, tmp_path/'fastai'), (Learner.lr_find, tmp_path/'ours')):
        cb = STANDING_ASIDE[name]()
        d.mkdir()  # `CSVLogger` writes into `path`; fastai expects it to exist
        set_seed(0); learn = synth_learner(n_trn=2, path=d, cbs=cb, metrics=_metric)
        set_seed(1)
        res.append(f(learn, num_it=30, suggest_funcs=FUNCS, show_plot=False))
        assert cb in learn.cbs and getattr(learn, cb.name) is cb
        assert not hasattr(learn, 'lr_finder')  # the finder is gone with the fit
        if isinstance(cb, TrackerCallback): assert not hasattr(cb, 'new_best') and cb.run  # never compared a value, and runs next time
        files.append({str(p.relative_to(d)) for p in d.rglob('*') if p.is_file()})
    test_eq(tuple(res[1]), tuple(res[0]))
    assert files[1] == set()  # fastai's leaves an empty models/ behind, and its CSVLogger writes the sweep as a log: ours, nothing
    assert files[0] <= {'history.csv'}

@pytest.mark.parametrize('append', [False, True])
def test_lr_find_keeps_the_last_fits_csv_log(append, tmp_path):
    "`CSVLogger` does not stand aside for fastai's finder: fit, then `lr_find`, used to overwrite `history.csv` (or append the sweep)"
    learn = synth_learner(n_trn=2, path=tmp_path, cbs=CSVLogger(append=append), metrics=_metric)
    with learn.no_bar(), learn.no_logging(): learn.fit_cos_anneal(2, 1e-2)
    before = (tmp_path/'history.csv').read_text()
    order = [type(c).__name__ for c in learn.cbs]
    learn.lr_find(num_it=20, show_plot=False)
    test_eq((tmp_path/'history.csv').read_text(), before)
    assert [type(c).__name__ for c in learn.cbs] == order and learn.csv_logger.learn is learn
    with learn.no_bar(), learn.no_logging(): learn.fit_cos_anneal(1, 1e-2)  # and it logs the next fit as before
    after = (tmp_path/'history.csv').read_text().splitlines()
    test_eq(after[:-2] if append else [], before.splitlines() if append else [])  # the next fit's header and epoch, appended
    test_eq(len(after), len(before.splitlines()) + 2 if append else 2)

class _Wrap(nn.Module):
    "What `torch.compile` returns, in spirit: a new module sharing the parameters"
    def __init__(self, m): super().__init__(); self.inner = m
    def forward(self, x): return self.inner(x)

class _WrapModel(Callback):
    "Wraps the learner's model for good in `before_fit` unless it is wrapped already (a compile callback)"
    def __init__(self): self.n = 0
    def before_fit(self):
        if not isinstance(self.learn.model, _Wrap): self.learn.model,self.n = _Wrap(self.learn.model),self.n + 1

@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
def test_a_search_that_ends_well_keeps_a_model_a_callback_wrapped(entry):
    ("Only an exception makes the snapshot put back the model object: a callback's wrapper, meant to stay, stays (wrapped once). The "
     "tuner gives callbacks their own state back (`n`; `lr_find` only after an exception, as its sweep is fastai's mock training), so "
     "a callback that wraps for good tests the model, as this one does, not a flag of its own")
    cb = _WrapModel()
    learn = mk_learner(n_train=100, cbs=cb)
    with learn.no_bar(): learn.lr_find(num_it=20, show_plot=False) if entry == 'lr_find' else learn.lr_tune(10, fit='fit_cos_anneal')
    assert isinstance(learn.model, _Wrap) and not isinstance(learn.model.inner, _Wrap) and cb.n == (1 if entry == 'lr_find' else 0)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert not isinstance(learn.model.inner, _Wrap)

class _EMAModel(Callback):
    ("A weight EMA kept as a module of its own (as timm's `ModelEmaV2`), fed after every training batch; `log.starts`: its step count "
     "at each fit's start (an object the callback shares, not state of its own)")
    def __init__(self, model, log:SimpleNamespace):
        self.ema,self.log = copy.deepcopy(model).eval(),log
        self.ema.register_buffer('steps', torch.zeros(()))
    def before_fit(self): self.log.starts.append(float(self.ema.steps))
    def after_batch(self):
        if not self.training: return
        with torch.no_grad():
            self.ema.steps += 1
            for e,p in zip(self.ema.parameters(), self.learn.model.parameters()): e.data.mul_(0.9).add_(p.data, alpha=0.1)  # as timm's
            # (through `.data`: torch's version counter does not see it)

@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
def test_a_search_gives_back_the_module_a_callback_holds(entry):
    ("An EMA model a callback keeps: the range test and the trials feed it (up to the sweep's divergence); it comes back bit for bit, "
     "its mode too, and every trial and probe of the tuner starts from it as it was, as the fit will")
    log = SimpleNamespace(starts=[])
    learn = mk_learner(n_train=100)
    cb = _EMAModel(learn.model, log); learn.add_cb(cb)
    cb.teacher = copy.deepcopy(learn.model).requires_grad_(False)  # frozen, with what cannot be copied or written: left alone
    cb.teacher.register_buffer('shape_only', torch.empty(3, device='meta'))
    with torch.inference_mode(): cb.teacher.register_buffer('stats', torch.ones(2))
    quiet_fit(learn, 'fit', 1, 1e-3)  # 100 steps in
    before,teacher = copy.deepcopy(cb.ema.state_dict()),[p.clone() for p in cb.teacher.parameters()]
    starts = log.starts = []
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False) if entry == 'lr_find' else learn.lr_tune(10, fit='fit_cos_anneal')
    for k,v in cb.ema.state_dict().items(): assert torch.equal(v, before[k]), k
    assert not cb.ema.training and all(torch.equal(p, q) for p,q in zip(cb.teacher.parameters(), teacher))
    assert len(starts) >= (1 if entry == 'lr_find' else 10) and set(starts) == {100.}, starts

def test_a_sweep_that_ends_well_takes_back_a_module_a_callback_made():
    "An EMA model a callback makes in `before_fit` when it has none: the sweep made and fed one; the next fit makes its own again"
    class LazyEMA(Callback):
        def __init__(self): self.ema = None
        def before_fit(self):
            if self.ema is None: self.ema = copy.deepcopy(self.learn.model)
        def after_batch(self):
            with torch.no_grad():
                for e,p in zip(self.ema.parameters(), self.learn.model.parameters()): e.mul_(0.5).add_(p, alpha=0.5)
    learn = mk_learner(n_train=100, cbs=(cb := LazyEMA()))
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False)
    assert cb.ema is None

def test_an_interrupted_sweep_takes_off_the_hooks_a_callback_put_on(tmp_path):
    "fastai's `ActivationStats` hooks every layer in `before_fit` and unhooks in `after_fit`, which an exception can skip"
    from fastai.callback.hook import ActivationStats
    class Stop(Callback):
        order = 99
        def after_batch(self):
            if self.train_iter == 3: raise RuntimeError('boom')
    learn = mk_learner(n_train=4, cbs=ActivationStats(modules=None, every=None))
    n = sum(len(m._forward_hooks) for m in learn.model.modules())
    learn.add_cb(Stop())
    with learn.no_bar(), pytest.raises(RuntimeError): learn.lr_find(num_it=20, show_plot=False)
    assert sum(len(m._forward_hooks) for m in learn.model.modules()) == n

@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
@pytest.mark.parametrize('exc', [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_search_gives_back_a_swapped_loss(entry, exc):
    "fastai's `MixUp` swaps `loss_func` for its fit and puts it back in `after_train`, which an exception can skip: the snapshot does"
    from fastai.callback.mixup import MixUp
    class Stop(Callback):
        def __init__(self): self.n = 0
        def after_loss(self):
            if self.training:
                self.n += 1
                if self.n == 5: raise exc('boom')
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 6, generator=g); y = (x @ torch.randn(6, 3, generator=g)).argmax(1)  # 3 classes: MixUp swaps the loss
    dls = DataLoaders.from_dsets(list(zip(x[:256], y[:256])), list(zip(x[256:], y[256:])), bs=16, device='cpu')
    learn = Learner(dls, nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)), loss_func=CrossEntropyLossFlat(), cbs=MixUp())
    lf,model = learn.loss_func,learn.model
    learn.add_cb(Stop())
    with learn.no_bar(), pytest.raises(exc):
        learn.lr_find(show_plot=False) if entry == 'lr_find' else learn.lr_tune(10, fit='fit_cos_anneal')
    learn.remove_cb(Stop)
    assert learn.loss_func is lf and learn.model is model
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)  # MixUp's loss outside its fit: a dtype error

class _BNNet(nn.Module):
    def __init__(self): super().__init__(); self.lin,self.bn,self.out = nn.Linear(1, 8),nn.BatchNorm1d(8),nn.Linear(8, 1)
    def forward(self, x): return self.out(self.bn(self.lin(x)))

def _scripted_learner() -> Learner:
    "fastai's synthetic regression (20 batches) with a `torch.jit.script` model holding a BatchNorm: the same weights every call"
    set_seed(0, reproducible=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch deprecates `torch.jit.script`, still in use
        return Learner(synth_dbunch(n_train=20, n_valid=1), torch.jit.script(_BNNet()), loss_func=MSELossFlat())

@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
def test_a_search_gives_back_a_scripted_model(entry):
    ("A `torch.jit.script` model's lists of parameters and children are views that give their keys as a list, and its modules' "
     "train/eval modes live in C++ (not in their attributes): a search ran and gave it back, its BatchNorm left in eval mode too")
    learn = _scripted_learner()
    quiet_fit(learn, 'fit', 1, 1e-3)
    learn.model.train(); learn.model.bn.eval()  # mixed modes, as a frozen BatchNorm leaves them
    before = learner_state(learn)
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False) if entry == 'lr_find' else learn.lr_tune(2, fit='fit_cos_anneal')
    assert_restored(before, learner_state(learn))
    assert not learn.model.bn.training and learn.model.lin.training

def test_auto_on_a_scripted_model_equals_tuning_then_fitting():
    "`fit_cos_anneal(n, 'auto')` on a scripted model: the same weights as the tuned lr passed to the same fit"
    res = []
    for two_steps in (False, True):
        learn = _scripted_learner()
        lr = learn.lr_tune(2, fit='fit_cos_anneal').lr if two_steps else 'auto'
        quiet_fit(learn, 'fit_cos_anneal', 2, lr)
        res.append([p.detach().clone() for p in learn.model.parameters()])
    assert all(torch.equal(a, b) for a,b in zip(*res))

def _pruned_net() -> nn.Module:
    "An MLP for fastai's synthetic regression, its first weight and last bias pruned: each a plain tensor a forward pre-hook computes"
    import torch.nn.utils.prune as prune
    m = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))
    prune.l1_unstructured(m[0], 'weight', amount=0.5); prune.random_unstructured(m[2], 'bias', amount=0.5)
    return m

class _Counts(nn.Module):
    "Keeps a plain Python step counter that scales its output (a warmup inside the model) and a `Dropout` whose `p` a callback sets"
    def __init__(self): super().__init__(); self.lin,self.drop,self.n = nn.Linear(1, 1),nn.Dropout(0.),0
    def forward(self, x):
        if self.training: self.n += 1
        return self.drop(self.lin(x)) * min(self.n/50, 1.)

class _AnnealDropout(Callback):
    def before_batch(self): self.learn.model.drop.p = 0.5*self.pct_train

@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
@pytest.mark.parametrize('model', ['pruned', 'counts'])
def test_a_search_gives_back_a_modules_plain_state(entry, model):
    ("A module's plain attributes a search replaces come back: the `weight` and `bias` torch's `prune` (or the old `weight_norm`, fastai's "
     "`NormType.Weight`) computes in a forward pre-hook, a step counter, a `Dropout.p` a callback anneals. And a pruned bias, by which "
     "fastai keys an optimizer state (`m.bias`, a computed tensor), no longer keeps the optimizer's state from coming back: the next "
     "fit equals the same fit without the search")
    res = []
    for search in (True, False):
        set_seed(0, reproducible=True)
        net = _pruned_net() if model == 'pruned' else _Counts()
        learn = Learner(synth_dbunch(n_train=20, n_valid=1), net, loss_func=MSELossFlat(), cbs=_AnnealDropout() if model == 'counts' else None)
        quiet_fit(learn, 'fit', 1, 1e-3)
        read = lambda: [learn.model[0].weight.clone(), learn.model[2].bias.clone()] if model == 'pruned' else [learn.model.n, learn.model.drop.p]
        before,plain = learner_state(learn),read()
        if search:
            with learn.no_bar(), warnings.catch_warnings():
                warnings.filterwarnings('error', message='LearnerSnapshot')  # ours, when an optimizer attribute cannot be copied
                learn.lr_find(num_it=30, show_plot=False) if entry == 'lr_find' else learn.lr_tune(2, fit='fit_cos_anneal')
            assert_restored(before, learner_state(learn))
            assert bitwise_equal(plain, read())
        quiet_fit(learn, 'fit_cos_anneal', 1, 1e-2)
        res.append([p.detach().clone() for p in learn.model.parameters()])
    assert all(torch.equal(a, b) for a,b in zip(*res))

class _PruneOnce(Callback):
    "Prunes the first layer at its first fit, for good (a parameter renamed, a mask buffer, a pre-hook and a plain `weight`)"
    def before_fit(self):
        import torch.nn.utils.prune as prune
        if not prune.is_pruned(self.learn.model): prune.l1_unstructured(self.learn.model[0], 'weight', amount=0.5)

class _WeightNormOnce(Callback):
    "Re-parametrises the first layer's weight at its first fit, for good: torch swaps the module's class for a `ParametrizedLinear`"
    def before_fit(self):
        from torch.nn.utils import parametrize, parametrizations
        if not parametrize.is_parametrized(self.learn.model[0]): parametrizations.weight_norm(self.learn.model[0])

@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
@pytest.mark.parametrize('once', [_PruneOnce, _WeightNormOnce])
def test_a_search_gives_back_a_module_a_callback_changed_whole(entry, once):
    ("A module whose structure a search changed comes back whole: its parameters and buffers, and with them its hooks, plain "
     "attributes and class (half of it, the pruning hook without its mask or the parametrized class without its parametrization, "
     "failed the next forward). The callback changes it again at the next fit")
    set_seed(0, reproducible=True)
    learn = Learner(synth_dbunch(n_train=20, n_valid=1), nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1)),
                    loss_func=MSELossFlat(), cbs=once())
    m,w = learn.model[0],learn.model[0].weight
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False) if entry == 'lr_find' else learn.lr_tune(2, fit='fit_cos_anneal')
    assert type(m) is nn.Linear and m.weight is w and list(m._parameters) == ['weight', 'bias'] and not m._buffers
    assert not m._modules and not m._forward_pre_hooks and 'weight' not in vars(m)
    quiet_fit(learn, 'fit', 1, 1e-3)
    if once is _PruneOnce: assert 'weight_mask' in m._buffers and (m.weight == 0).sum() == 8
    else: assert type(m) is not nn.Linear and 'parametrizations' in m._modules

def test_the_snapshot_gives_back_a_hook_whole():
    ("A hook registered `with_kwargs` lives in two of the module's dicts: when its structure comes back the hook comes back in both "
     "(in one only, the next forward called it without its kwargs)")
    m = nn.Sequential(nn.Linear(1, 4), nn.Linear(4, 1))
    seen = []
    h = m[0].register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs), with_kwargs=True, always_call=True)
    learn = Learner(synth_dbunch(n_train=2, n_valid=1), m, loss_func=MSELossFlat())
    snap = LearnerSnapshot(learn)
    h.remove(); m[0].register_buffer('mask', torch.ones(4, 1))  # as a search that took the hook off and changed the structure
    snap.restore()
    assert all(h.id in d for d in (m[0]._forward_hooks, m[0]._forward_hooks_with_kwargs, m[0]._forward_hooks_always_called))
    m(torch.ones(2, 1)); test_eq(seen, [{}])

class _EMAByList(Callback):
    "An EMA model updated through a list of its parameters, kept beside it: the list must stay the model's parameters"
    def __init__(self, model): self.ema = copy.deepcopy(model); self.ps = list(self.ema.parameters())
    def after_batch(self):
        if not self.training: return
        with torch.no_grad():
            for e,p in zip(self.ps, self.learn.model.parameters()): e.mul_(0.5).add_(p, alpha=0.5)

@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
def test_a_search_keeps_a_callbacks_list_of_its_modules_tensors(entry):
    "The EMA model comes back in place, and the callback's list of its parameters still holds them: the EMA follows the next fit"
    learn = mk_learner(n_train=20)
    cb = _EMAByList(learn.model); learn.add_cb(cb)
    before = [p.clone() for p in cb.ema.parameters()]
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False) if entry == 'lr_find' else learn.lr_tune(2, fit='fit_cos_anneal')
    assert all(a is b for a,b in zip(cb.ps, cb.ema.parameters())) and all(torch.equal(a, b) for a,b in zip(cb.ema.parameters(), before))
    quiet_fit(learn, 'fit', 1, 1e-3)
    assert not all(torch.equal(a, b) for a,b in zip(cb.ema.parameters(), before))

class _TensorEMA(Callback):
    "A weight EMA kept as a list of tensors, updated in place, and its step count as a tensor replaced at each step"
    def before_fit(self):
        if not hasattr(self, 'shadow'): self.shadow,self.steps = [p.detach().clone() for p in self.learn.model.parameters()],torch.zeros(())
    def after_batch(self):
        if not self.training: return
        with torch.no_grad():
            for s,p in zip(self.shadow, self.learn.model.parameters()): s.mul_(0.9).add_(p, alpha=0.1)
        self.steps = self.steps + 1

def test_lr_find_gives_back_the_tensors_a_callback_holds():
    ("An EMA a callback keeps as tensors (not as a module) comes back after a sweep that ends well, as `lr_tune` gives it back: the "
     "sweep fed it weights up to its divergence. The callback's other plain state stays as the sweep left it, as fastai's")
    learn = mk_learner(n_train=20, cbs=(cb := _TensorEMA()))
    quiet_fit(learn, 'fit', 1, 1e-3)
    shadow,steps = [s.clone() for s in cb.shadow],cb.steps.clone()
    with learn.no_bar(): learn.lr_find(end_lr=100, num_it=30, show_plot=False)
    assert all(torch.equal(a, b) for a,b in zip(cb.shadow, shadow)) and torch.equal(cb.steps, steps)

def test_lr_find_with_tensorboard(tmp_path):
    "issue 10.1: `TensorBoardCallback` stands aside during the sweep too: no event file is written"
    pytest.importorskip('tensorboard', reason='needs the tensorboard package, not a dev requirement')
    from fastai.callback.tensorboard import TensorBoardCallback
    learn = synth_learner(n_trn=2, path=tmp_path, cbs=TensorBoardCallback(log_dir=tmp_path/'runs', trace_model=False))
    with learn.no_bar(): assert learn.lr_find(num_it=30, show_plot=False).valley > 0
    test_eq([p for p in tmp_path.rglob('*') if p.is_file()], [])

# every registered variant at an lr of 1e-7 for 6 epochs: its first example, lengthened (those counting epochs by `n_epoch`)
VARIANTS = {**{v.name: (m, (), {**v.examples[0], 'n_epoch': 6, v.lr_arg: 1e-7}) for m,v in REGISTRY.items() if v.epoch_args == ('n_epoch',)},
            'sgdr_anneal': ('fit_sgdr_anneal', (2, 3, 1e-7), dict(cycle_mult=1)),
            'fine_tune_anneal': ('fine_tune_anneal', (6,), dict(base_lr=1e-7, freeze_epochs=1))}

def test_every_registered_variant_is_checked_here(): test_eq({m for m,*_ in VARIANTS.values()}, set(REGISTRY))

@pytest.mark.parametrize('name', VARIANTS)
def test_fit_variants_with_save_model_and_early_stopping(name, tmp_path):
    "issue 10.1: next to every fit variant, `SaveModelCallback` saves the best model and `EarlyStoppingCallback` stops a run that stalls"
    method,args,kwargs = VARIANTS[name]
    cbs = [SaveModelCallback(fname='best'), EarlyStoppingCallback(min_delta=0.1, patience=2)]
    learn = mk_learner(n_train=2, groups=2, path=tmp_path, cbs=cbs)
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)  # a sweep first, with the trackers attached
    assert not (tmp_path/'models').exists()
    quiet_fit(learn, method, *args, **kwargs)
    test_eq(len(learn.recorder.values), 3)  # an lr of 1e-7 moves the loss by far less than min_delta: stopped after 1+patience epochs
    assert (tmp_path/'models'/'best.pth').exists()

@pytest.mark.parametrize('name', VARIANTS)
def test_fit_variants_with_reduce_lr_on_plateau(name):
    "`ReduceLROnPlateau` next to a fit variant: it divides the lr at a plateau, the variant's schedule sets every batch's lr as without it"
    method,args,kwargs = VARIANTS[name]
    recs = []
    for cbs in ([], [ReduceLROnPlateau(min_delta=0.1, patience=1)]):
        learn,rec = mk_learner(n_train=2, groups=2),RecordHypers()
        quiet_fit(learn, method, *args, cbs=cbs + [rec], **kwargs)
        recs.append(rec.hps)
    test_eq(recs[1], recs[0])

def test_tracker_keeps_its_best_across_fit_variants():
    "`reset_on_fit=False` keeps a tracker's best value over several fits, ours included"
    tracker = TrackerCallback(reset_on_fit=False)
    learn = mk_learner(n_train=2, cbs=tracker)
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-2)
    first = tracker.best
    quiet_fit(learn, 'fit_flat_anneal', 1, 1e-9)
    assert tracker.best <= first

# ------------------------------------------------------------------ 13b_metrics
def _classif_learner(metrics, seed=0):
    g = torch.Generator().manual_seed(seed)
    x,y = torch.randn(50, 6, generator=g),torch.randint(0, 4, (50,), generator=g)
    ds = list(zip(x, y))
    dls = DataLoaders(TfmdDL(ds, bs=8, device='cpu'), TfmdDL(ds, bs=8, device='cpu'))
    torch.manual_seed(seed)
    return Learner(dls, nn.Linear(6, 4), loss_func=CrossEntropyLossFlat(), metrics=metrics)

def test_metrics_share_fastais_names_and_values():
    "`Accuracy()`, `BalancedAccuracy()` (the star import puts it in place of fastai's) and `AccuracyMulti()`: fastai's names and values"
    import fastai_anneal.all as fa
    assert BalancedAccuracy is fa.BalancedAccuracy and BalancedAccuracy is not fa_metrics.BalancedAccuracy
    ours = [Accuracy(), BalancedAccuracy(), BalancedAccuracy(adjusted=True)]
    theirs = [fa_metrics.accuracy, fa_metrics.BalancedAccuracy(), fa_metrics.BalancedAccuracy(adjusted=True)]
    res = []
    for ms in (ours, theirs):
        learn = _classif_learner(ms)
        with learn.no_bar(), learn.no_logging(): res.append((list(learn.metrics.attrgot('name')), [float(v) for v in learn.validate()[1:]]))
    test_eq(res[0][0], res[1][0])
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-6)  # fastai's accuracy averages in float32
    preds,targs = torch.randn(20, 5),(torch.rand(20, 5) > 0.5).float()
    m = AccuracyMulti(); m.reset()
    m.accumulate(SimpleNamespace(pred=preds, y=targs, yb=(targs,)))  # what a `Learner` holds after a batch
    test_eq(m.name, fa_metrics.accuracy_multi.__name__)
    assert float(m.value) == pytest.approx(float(fa_metrics.accuracy_multi(preds, targs)), rel=1e-6)

def test_metric_monitored_by_tracker(tmp_path):
    "A tracker monitors our metric by fastai's name, `balanced_accuracy_score`, comparing with `np.greater`"
    tracker = SaveModelCallback(monitor='balanced_accuracy_score', fname='b')
    learn = _classif_learner([BalancedAccuracy()])
    learn.path = tmp_path
    quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2, cbs=tracker)
    test_eq(tracker.comp, np.greater)
    test_eq(tracker.best, max(v[2] for v in learn.recorder.values))
    assert (tmp_path/'models'/'b.pth').exists()

# ------------------------------------------------------------------ 18a_callback.training
def test_gradient_accumulation_no_step_until_n_acc(tmp_path):
    "With `n_acc` larger than the epoch, `GradientAccumulation` never steps: the weights stay, while the schedule moves every batch"
    learn,steps,rec = mk_learner(n_train=N_ITER),CountSteps(),RecordHypers()
    before = [p.detach().clone() for p in learn.model.parameters()]
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-2, cbs=[GradientAccumulation(n_acc=1000), steps, rec])
    test_eq(steps.n, 0)
    for p,q in zip(learn.model.parameters(), before): test_eq(p, q)
    test_eq(len(rec.hps), N_ITER)

def test_gradient_accumulation_equals_the_bigger_batch():
    "Accumulating 2 batches of 16 steps as one batch of 32 would (SGD): the gradient is the mean over `n_acc` samples"
    x,y = torch.randn(64, 1),torch.randn(64, 1)
    def go(bs, cbs):
        set_seed(0)
        dls = DataLoaders(TfmdDL(list(zip(x, y)), bs=bs, device='cpu'), TfmdDL(list(zip(x, y)), bs=bs, device='cpu'))
        learn = Learner(dls, nn.Linear(1, 1), loss_func=MSELossFlat(), opt_func=partial(SGDAnneal, anneal_rate=1.), lr=0.1)
        quiet_fit(learn, 'fit_flat_anneal', 1, 0.1, pct_start=0.9, cbs=cbs)  # the steps all fall in the flat part
        return [p.detach().clone() for p in learn.model.parameters()]
    a,b = go(16, [GradientAccumulation(n_acc=32)]),go(32, [])
    for p,q in zip(a, b): torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)

class _BnStats(Callback):
    "The first batchnorm's running mean after every epoch, across fits"
    def __init__(self): self.means = []
    def after_epoch(self): self.means.append(self.model[1].running_mean.clone())

def test_bn_freeze_keeps_running_stats_in_the_frozen_phase():
    "`BnFreeze` with `train_bn=False`: in `fine_tune_anneal`'s frozen epoch the body's batchnorm statistics stay; unfrozen, they move"
    set_seed(0)
    model = nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    learn = Learner(mk_learner(n_train=N_ITER).dls, model, loss_func=MSELossFlat(), train_bn=False,
                    splitter=lambda m: [params(m[:2]), params(m[2:])])
    init,stats = model[1].running_mean.clone(),_BnStats()
    quiet_fit(learn, 'fine_tune_anneal', 1, freeze_epochs=1, cbs=[BnFreeze(), stats])
    test_eq(len(stats.means), 2)
    test_eq(stats.means[0], init)
    assert not torch.equal(stats.means[1], init)

# ------------------------------------------------------------------ 18_callback.fp16 (CPU parts)
def test_to_fp16_and_back_around_a_fit_variant():
    "`to_fp16` adds one `MixedPrecision`, a fit variant runs with it, `to_fp32` removes it and the weights are fp32"
    learn = mk_learner(n_train=N_ITER).to_fp16()
    test_eq(len(learn.cbs.filter(lambda c: isinstance(c, MixedPrecision))), 1)
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-2)
    learn.to_fp32()
    test_eq(len(learn.cbs.filter(lambda c: isinstance(c, MixedPrecision))), 0)
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA: fastai autocasts to fp16 and scales the loss on CUDA only')
def test_fp16_on_cuda_fit_variant_runs():
    "A fit variant under fastai's fp16 on a GPU: it runs, the weights stay fp32 and fastai autocasts to fp16 (not run here: no GPU)"
    learn = synth_learner(cuda=True).to_fp16()
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-2)
    assert learn.model.a.dtype == torch.float32 and learn.mixed_precision.autocast.fast_dtype == torch.float16

# ------------------------------------------------------------------ 12_optimizer
def _two_groups():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    return m,[list(m[0].parameters()), list(m[1].parameters())]

def _steps(opt, m, n=3):
    for _ in range(n):
        m(torch.randn(5, 3)).sum().backward(); opt.step(); opt.zero_grad()

def test_optimizer_freeze_like_fastais():
    "`freeze`, `freeze_to` and `unfreeze` on `AdamAnneal` set `requires_grad` per group as fastai's `Adam` does"
    got = []
    for f in (Adam, AdamAnneal):
        m,groups = _two_groups()
        opt = f(groups, lr=1e-2)
        flags = []
        for op in (opt.freeze, partial(opt.freeze_to, 0), partial(opt.freeze_to, -1), opt.unfreeze):
            op(); flags.append(([p.requires_grad for p in m.parameters()], opt.frozen_idx))
        got.append(flags)
    test_eq(got[1], got[0])
    test_eq(got[1][0], ([False]*2 + [True]*2, 1))

@pytest.mark.parametrize('f', [AdamAnneal, SGDAnneal], ids=['adam', 'sgd'])
def test_optimizer_state_dict_round_trip(f):
    "`state_dict`/`load_state_dict` carry the state and hypers: a fresh optimizer loaded from one continues bit for bit"
    m,groups = _two_groups()
    opt = f(groups, lr=1e-2, mom=0.9)
    _steps(opt, m)
    sd = copy.deepcopy(opt.state_dict())  # `state_dict` hands out the live tensors
    test_eq(set(sd), {'state', 'hypers'})
    m2 = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    m2.load_state_dict(m.state_dict())
    opt2 = f([list(m2[0].parameters()), list(m2[1].parameters())], lr=1., mom=0.9)  # mom picks the steppers; the values come from `sd`
    opt2.load_state_dict(sd)
    test_eq(opt2.hypers, opt.hypers)
    torch.manual_seed(1); _steps(opt, m, 2)
    torch.manual_seed(1); _steps(opt2, m2, 2)
    for p,q in zip(m.parameters(), m2.parameters()): test_eq(p, q)

def test_optimizer_load_state_dict_rejects_other_groups():
    ("As fastai's, loading the state of an optimizer with another group structure raises, with the counts (fastai's bare assert is "
     "gone under `python -O`); fastai's `Learner.load` catches it and warns")
    m,groups = _two_groups()
    opt = AdamAnneal(groups, lr=1e-2); _steps(opt, m)
    other = AdamAnneal([list(m.parameters())], lr=1e-2)
    with pytest.raises(ValueError, match=r'sd has 2 param group\(s\) and \d+ param state\(s\); this optimizer has 1 and'):
        other.load_state_dict(opt.state_dict())

def _lm_learner(seed:int=0):
    "A tiny next-token model on fastai's `LMDataLoader`, which shuffles its documents in place (`ReindexCollection.shuffle`)"
    from fastai.text.data import LMDataLoader
    docs = [torch.arange(i, i + 9 + i % 7) % 40 for i in range(80)]
    set_seed(seed)
    dls = DataLoaders(LMDataLoader(docs, bs=4, seq_len=6, shuffle=True), LMDataLoader(docs[:16], bs=4, seq_len=6))
    model = nn.Sequential(nn.Embedding(40, 8), nn.Linear(8, 40))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat())

@pytest.mark.parametrize('search', ['lr_find', 'lr_tune'])
def test_a_language_model_loader_gets_its_order_back(search):
    "The documents' order of an `LMDataLoader` comes back after a search: the fit after it sees the batches of the fit alone"
    def fit(search=None):
        learn = _lm_learner()
        with learn.no_bar(), learn.no_logging():
            order = list(learn.dls.train.items.idxs)
            if search == 'lr_find': learn.lr_find(num_it=30, show_plot=False)
            if search == 'lr_tune': learn.lr_tune(3, fit='fit_cos_anneal')
            assert list(learn.dls.train.items.idxs) == order and learn.dls.train.lens.idxs is learn.dls.train.items.idxs
            learn.fit_cos_anneal(2, 1e-2)
        return torch.cat([p.detach().flatten() for p in learn.model.parameters()])
    assert torch.equal(fit(search), fit())
