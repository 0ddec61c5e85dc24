"""`LearnerSnapshot` gives back what `lr_find`, `lr_tune` and `lr='auto'` change, kind by kind: optimizers built or changed in place,
loaders' generators, a Ctrl-C held through a restore, loss modules, buffers, swapped models and loaders, hooks kept for good,
resized tensors, `moved()`, and the state callbacks hold. (The end-to-end checks are in test_lr_finder.py, test_tune.py and
test_fastai_compat.py; each test here pins a change to snapshot.py that those let through, found by a mutation audit.)"""
import copy, threading, warnings
import numpy as np, pytest, torch
from torch import nn
from fastai.learner import Learner
from fastai.callback.core import Callback
from fastai.callback.hook import hook_outputs
from fastai.optimizer import OptimWrapper, Optimizer, sgd_step
from fastai.data.core import DataLoaders
import torch.utils.data as tud
from fastai.losses import MSELossFlat
from fastai.test_utils import synth_dbunch, RegModel
from fastcore.foundation import L
import fastai_anneal.all  # noqa: F401, the Learner patches
from fastai_anneal.snapshot import LearnerSnapshot
from conftest import mk_learner, quiet_fit, learner_state, assert_restored, bitwise_equal


# ------------------------------------------------------------------ optimizers
def test_lr_find_gives_back_a_built_optimizer_given_as_opt_func():
    ("A built `OptimWrapper` given as `opt_func` is the optimizer `create_opt` reuses: on a learner without one yet, the sweep "
     "steps it, and it comes back (its torch optimizer's state and lr) with `learn.opt` None again")
    set_seed_model = RegModel()
    torch.manual_seed(0)
    wrapper = OptimWrapper(opt=torch.optim.AdamW(set_seed_model.parameters(), lr=1e-3))
    learn = Learner(synth_dbunch(n_train=5, n_valid=1), set_seed_model, loss_func=MSELossFlat(), opt_func=wrapper)
    before = copy.deepcopy(wrapper.opt.state_dict())
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert learn.opt is None
    assert bitwise_equal(before, wrapper.opt.state_dict())


def test_the_snapshot_gives_back_param_lists_changed_in_place():
    ("A callback that puts a master copy in place of a param inside `opt.param_lists` (not by replacing the attribute) "
     "and never undoes it (an interrupt): the optimizer steps the model's param again after the restore")
    learn = mk_learner()
    quiet_fit(learn, 'fit', 1, 1e-3)
    p = learn.opt.param_lists[0][0]
    snap = LearnerSnapshot(learn)
    learn.opt.param_lists[0][0] = nn.Parameter(p.detach().clone())
    snap.restore()
    assert learn.opt.param_lists[0][0] is p


class _Unpicklable:
    "An attribute `copy.deepcopy` refuses"
    def __deepcopy__(self, memo): raise TypeError('cannot copy this')


def test_an_optimizer_attribute_that_cannot_be_copied_is_warned_about():
    "An optimizer attribute the snapshot cannot deep-copy is named in a warning (it will not be restored)"
    learn = mk_learner()
    quiet_fit(learn, 'fit', 1, 1e-3)
    learn.opt.handle = _Unpicklable()
    with pytest.warns(UserWarning, match=r"LearnerSnapshot: optimizer attribute\(s\) \['handle'\] of .* cannot be deep-copied"):
        snap = LearnerSnapshot(learn)
    snap.restore()


class _Clock(Optimizer):
    "An optimizer whose first step adds an attribute (a step counter kept outside `state` and `hypers`)"
    def step(self, closure=None): super().step(); self.ticks = getattr(self, 'ticks', 0) + 1


def test_an_attribute_the_sweep_adds_to_the_optimizer_is_taken_back():
    "An optimizer created but never stepped: the counter its first step adds is gone after the sweep, as the sweep never was"
    learn = mk_learner(opt_func=lambda ps, lr: _Clock(ps, [sgd_step], lr=lr))
    learn.create_opt()
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert not hasattr(learn.opt, 'ticks')


# ------------------------------------------------------------------ loaders' generators
LOADERS = {  # a torch DataLoader whose shuffle draws from `g`, where the snapshot must find it
    'unbatched': lambda data, g: tud.DataLoader(data, sampler=tud.RandomSampler(data, generator=g), batch_size=None),  # no batch sampler
    'batch_sampler': lambda data, g: tud.DataLoader(data, batch_sampler=tud.BatchSampler(tud.RandomSampler(data, generator=g), 2, False)),
}

@pytest.mark.parametrize('kind', LOADERS)
def test_the_snapshot_restores_a_samplers_generator(kind):
    ("The generator of a torch `DataLoader`'s random sampler comes back: that of its `sampler` when it batches nothing "
     "(`batch_size=None`), that of its batch sampler's sampler (its own `sampler` is then another, sequential one)")
    learn,g,data = mk_learner(),torch.Generator().manual_seed(0),list(range(8))
    learn.dls = DataLoaders(LOADERS[kind](data, g), learn.dls.valid)
    st = g.get_state()
    with LearnerSnapshot(learn): list(learn.dls.train)
    assert torch.equal(g.get_state(), st)


# ------------------------------------------------------------------ Ctrl-C held
def test_a_restore_off_the_main_thread_runs():
    "Python takes signals in the main thread only (`signal.signal` raises elsewhere): a restore in a worker thread still runs"
    learn = mk_learner()
    w = [p.detach().clone() for p in learn.model.parameters()]
    snap = LearnerSnapshot(learn)
    with torch.no_grad():
        for p in learn.model.parameters(): p.add_(1.)
    errs = []
    def work():
        try: snap.restore()
        except BaseException as e: errs.append(e)
    t = threading.Thread(target=work); t.start(); t.join()
    assert not errs, errs
    assert all(torch.equal(a, p) for a,p in zip(w, learn.model.parameters()))


def test_a_held_ctrl_c_under_the_default_action_ends_the_process():
    ("Where SIGINT has the OS's default action (`SIG_DFL`: no Python handler), a Ctrl-C held during a restore is raised again "
     "after it, and ends the process as it would have")
    import subprocess, sys, signal
    code = ("import signal; signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
            "from fastai_anneal.snapshot import sigint_held\n"
            "with sigint_held(): signal.raise_signal(signal.SIGINT); print('held', flush=True)\n"
            "print('survived', flush=True)\n")
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert p.stdout.split() == ['held'] and p.returncode == -signal.SIGINT, (p.returncode, p.stdout, p.stderr[-500:])


def test_run_all_holds_a_ctrl_c_between_and_inside_its_parts():
    "A Ctrl-C inside a part of `run_all` that has no hold of its own is held until every part is done, then raised"
    import signal
    from fastai_anneal.snapshot import run_all
    done = []
    def part(): signal.raise_signal(signal.SIGINT); done.append('part')
    with pytest.raises(KeyboardInterrupt): run_all(part, lambda: done.append('next'))
    assert done == ['part', 'next']


# ------------------------------------------------------------------ the learner's modules, loss and objects
class _CountingMSE(nn.Module):
    "An MSE that counts the batches it saw in a buffer (a loss that keeps statistics: a running scale, a step count)"
    def __init__(self): super().__init__(); self.register_buffer('seen', torch.zeros(()))
    def forward(self, pred, targ):
        if self.training: self.seen += 1
        return ((pred - targ)**2).mean()


def test_a_loss_modules_buffers_and_mode_come_back():
    "A loss that is a module: its buffers (no parameter the optimizer would list) come back after the sweep"
    torch.manual_seed(0)
    learn = Learner(synth_dbunch(n_train=5, n_valid=1), RegModel(), loss_func=_CountingMSE())
    quiet_fit(learn, 'fit', 1, 1e-3)
    seen = learn.loss_func.seen.clone()
    assert seen > 0
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert torch.equal(learn.loss_func.seen, seen)


class _ReRegisters(nn.Module):
    ("Keeps a non-persistent cache buffer; its training forward deletes it and registers a new one (persistent, by the default): the "
     "state_dict gains a key")
    def __init__(self):
        super().__init__(); self.lin = nn.Linear(1, 1); self.register_buffer('cache', torch.zeros(1), persistent=False)
    def forward(self, x):
        if self.training: del self.cache; self.register_buffer('cache', x.detach().mean().reshape(1))
        return self.lin(x[:, None])[:, 0]


def test_a_buffers_persistence_comes_back():
    "The set of non-persistent buffers comes back with the buffers: the model's `state_dict` keys are the ones it had"
    learn = Learner(synth_dbunch(n_train=5, n_valid=1), _ReRegisters(), loss_func=MSELossFlat())
    keys = list(learn.model.state_dict())
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert list(learn.model.state_dict()) == keys and 'cache' in learn.model._non_persistent_buffers_set


class _StopTraining(Callback):
    "Raises at a training batch of every fit"
    def __init__(self, exc): self.exc = exc
    def after_batch(self):
        if self.training and self.train_iter == 3: raise self.exc


def test_an_interrupted_sweep_gives_back_learn_training():
    "`learn.training` (what a callback reads outside a fit) comes back after a sweep interrupted in training"
    learn = mk_learner()
    quiet_fit(learn, 'fit', 1, 1e-3)
    assert learn.training is False
    with learn.no_bar(), learn.added_cbs(_StopTraining(KeyboardInterrupt())), pytest.raises(KeyboardInterrupt):
        learn.lr_find(num_it=10, show_plot=False)
    assert learn.training is False


class _WrapForTheFit(nn.Module):
    def __init__(self, m): super().__init__(); self.inner = m
    def forward(self, x): return self.inner(x)


class _SwapModel(Callback):
    "Wraps the model for the fit and unwraps it in `after_fit` (a compile or DDP wrapper), which an exception skips"
    def before_fit(self): self.learn.model = _WrapForTheFit(self.learn.model)
    def after_fit(self): self.learn.model = self.learn.model.inner


@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
def test_an_interrupted_search_gives_back_a_swapped_model(entry):
    "A model object a callback swaps for its fit comes back after an exception skipped its `after_fit`"
    learn = mk_learner(n_train=20, cbs=_SwapModel())
    model = learn.model
    learn.add_cb(_StopTraining(RuntimeError('boom')))
    with learn.no_bar(), pytest.raises(RuntimeError, match='boom'):
        learn.lr_find(num_it=10, show_plot=False) if entry == 'lr_find' else learn.lr_tune(10, fit='fit_cos_anneal')
    assert learn.model is model


class _SwapLoaders(Callback):
    "As fastai's `DistributedTrainer`: the learner's loaders replaced by wrappers for the fit (a new list), put back in `after_fit`"
    def before_fit(self): self.old = self.dls.loaders; self.learn.dls.loaders = list(self.old)  # a new list (of wrappers)
    def after_fit(self): self.learn.dls.loaders = self.old


@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
def test_an_interrupted_search_gives_back_the_loaders(entry):
    "The loaders list a callback swaps for its fit comes back after an exception skipped its `after_fit`"
    learn = mk_learner(n_train=20, cbs=_SwapLoaders())
    loaders = learn.dls.loaders
    learn.add_cb(_StopTraining(RuntimeError('boom')))
    with learn.no_bar(), pytest.raises(RuntimeError, match='boom'):
        learn.lr_find(num_it=10, show_plot=False) if entry == 'lr_find' else learn.lr_tune(10, fit='fit_cos_anneal')
    assert learn.dls.loaders is loaders


class _HookOnce(Callback):
    "Hooks the model's output at its first fit, for good (a feature extractor, a distillation target): no structure changes"
    def __init__(self): self.hooks = None
    def before_fit(self):
        if self.hooks is None: self.hooks = hook_outputs([self.learn.model], detach=True)


def test_a_sweep_that_ends_well_keeps_the_hooks_a_callback_put_on_for_good():
    ("A sweep that ends well and changes no module's structure keeps the hooks its callbacks put on, as after their own fit: "
     "the callback's `hooks` (which `lr_find` does not take back) still get the outputs")
    learn = mk_learner(cbs=(cb := _HookOnce()))
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert cb.hooks is not None and len(learn.model._forward_hooks) == 1
    xb,_ = learn.dls.one_batch()
    out = learn.model(xb).detach()
    assert torch.equal(cb.hooks.stored[0], out)
    cb.hooks.remove()


class _ResizesStats(nn.Module):
    "A buffer whose storage the training forward replaces with one of another shape (`.data =`), keeping the tensor object"
    def __init__(self): super().__init__(); self.lin = nn.Linear(1, 1); self.register_buffer('stats', torch.arange(3.))
    def forward(self, x):
        if self.training: self.stats.data = x.detach()[:5].clone()
        return self.lin(x[:, None])[:, 0]


def test_a_tensor_whose_shape_a_sweep_changed_comes_back():
    "A tensor whose storage a fit replaced with one of another shape (same dtype) comes back, shape and values"
    learn = Learner(synth_dbunch(n_train=5, n_valid=1), _ResizesStats(), loss_func=MSELossFlat())
    stats = learn.model.stats
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert learn.model.stats is stats and torch.equal(stats, torch.arange(3.))


# ------------------------------------------------------------------ moved()
def test_moved_counts_a_parameter_only_the_optimizer_holds():
    "A parameter only the optimizer trains (no module holds it): copied, restored, and counted by `moved()`"
    learn = mk_learner()
    extra = nn.Parameter(torch.ones(3))
    learn.splitter = lambda m: [[*m.parameters(), extra]]
    learn.create_opt()
    snap = LearnerSnapshot(learn)
    with torch.no_grad(): extra.mul_(2.)
    assert snap.moved() > 0
    snap.restore()
    assert torch.equal(extra.detach(), torch.ones(3))


def test_moved_from_all_zero_weights_is_infinite():
    "From all-zero weights any move is infinitely far relative to their size (0 only when nothing moved)"
    learn = mk_learner()
    with torch.no_grad():
        for p in learn.model.parameters(): p.zero_()
    snap = LearnerSnapshot(learn)
    assert snap.moved() == 0.
    with torch.no_grad(): learn.model.a.add_(1.)
    assert snap.moved() == float('inf')
    snap.restore()


# ------------------------------------------------------------------ callbacks' state (`_CallbacksKept`)
class _InPlaceStats(Callback):
    "Plain state updated in place at every training batch: a numpy histogram, a tuple and a namedtuple of tensors"
    def __init__(self):
        from collections import namedtuple
        self.hist,self.pair = np.zeros(3),(torch.zeros(2), torch.zeros(2))
        self.nt = namedtuple('Moments', 'mean sqr')(torch.zeros(2), torch.zeros(2))
    def after_batch(self):
        if not self.training: return
        self.hist += 1
        self.pair[0].add_(1.); self.nt.mean.add_(1.)


@pytest.mark.parametrize('attr', ['hist', 'pair', 'nt'])
def test_tuning_gives_back_arrays_and_tuples_a_callback_updates_in_place(attr):
    "A numpy array, a tuple or a namedtuple: a callback's state updated in place comes back after `lr_tune`"
    learn = mk_learner(n_train=20, cbs=(cb := _InPlaceStats()))
    before = copy.deepcopy(getattr(cb, attr))
    learn.lr_tune(10, fit='fit_cos_anneal')
    assert bitwise_equal(list(before) if attr != 'hist' else before, list(getattr(cb, attr)) if attr != 'hist' else getattr(cb, attr))
    assert type(getattr(cb, attr)) is type(before)


class _TensorsIn(Callback):
    "An EMA of the weights kept as tensors in an `L` and in a dict beside a count (not a module): fed every training batch"
    def before_fit(self):
        if not hasattr(self, 'shadow'):
            self.shadow = L(p.detach().clone() for p in self.learn.model.parameters())
            self.state = {'w': self.learn.model.a.detach().clone(), 'n': 0}
    def after_batch(self):
        if not self.training: return
        with torch.no_grad():
            for s,p in zip(self.shadow, self.learn.model.parameters()): s.mul_(0.9).add_(p, alpha=0.1)
            self.state['w'].mul_(0.9).add_(self.learn.model.a, alpha=0.1)


@pytest.mark.parametrize('attr', ['shadow', 'state'])
def test_lr_find_gives_back_tensors_a_callback_holds_in_an_L_or_a_mixed_dict(attr):
    "Tensors in an `L`, or in a dict beside a number: the sweep's updates to them are undone, as for a plain list"
    learn = mk_learner(n_train=20, cbs=(cb := _TensorsIn()))
    quiet_fit(learn, 'fit', 1, 1e-3)
    before = copy.deepcopy(list(getattr(cb, attr)) if attr == 'shadow' else cb.state)
    with learn.no_bar(): learn.lr_find(end_lr=100, num_it=30, show_plot=False)
    assert bitwise_equal(before, list(getattr(cb, attr)) if attr == 'shadow' else cb.state)


class _EMAIn(Callback):
    "An EMA model kept in a dict or a list (several EMAs, a teacher list), fed every training batch"
    def __init__(self, model, how):
        ema = copy.deepcopy(model)
        self.emas = {'slow': ema} if how == 'dict' else [ema]
    @property
    def ema(self): return self.emas['slow'] if isinstance(self.emas, dict) else self.emas[0]
    def after_batch(self):
        if not self.training: return
        with torch.no_grad():
            for e,p in zip(self.ema.parameters(), self.learn.model.parameters()): e.mul_(0.9).add_(p, alpha=0.1)


@pytest.mark.parametrize('how', ['dict', 'list'])
@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
def test_a_search_gives_back_a_module_a_callback_holds_in_a_dict_or_list(entry, how):
    "the EMA module comes back, bit for bit, wherever the callback keeps it"
    learn = mk_learner(n_train=20)
    cb = _EMAIn(learn.model, how); learn.add_cb(cb)
    quiet_fit(learn, 'fit', 1, 1e-3)
    before = copy.deepcopy(cb.ema.state_dict())
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False) if entry == 'lr_find' else learn.lr_tune(10, fit='fit_cos_anneal')
    assert all(torch.equal(v, before[k]) for k,v in cb.ema.state_dict().items())


class _LazyEMAAttr(Callback):
    "Makes its EMA model in `before_fit` when it has none, with no attribute set before (`hasattr`, not `is None`)"
    def before_fit(self):
        if not hasattr(self, 'ema'): self.ema = copy.deepcopy(self.learn.model)
    def after_batch(self):
        with torch.no_grad():
            for e,p in zip(self.ema.parameters(), self.learn.model.parameters()): e.mul_(0.5).add_(p, alpha=0.5)


def test_a_sweep_takes_back_a_module_attribute_a_callback_added():
    "An EMA model the sweep made where the callback had no attribute at all: gone after the sweep, the next fit makes its own"
    learn = mk_learner(n_train=20, cbs=(cb := _LazyEMAAttr()))
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False)
    assert not hasattr(cb, 'ema')


class _UnfreezeAtFit(Callback):
    "Unfreezes the learner as a fit starts (a gradual-unfreezing callback's first step)"
    def before_fit(self): self.learn.unfreeze()


def test_a_sweep_gives_back_a_frozen_learners_frozen_idx():
    ("A callback unfreezes the learner for the sweep: it comes back frozen, `frozen_idx` too (not only `requires_grad`: "
     "`freeze_to`, `unfreeze` and the fine-tune fits read it)")
    learn = mk_learner(groups=2, cbs=_UnfreezeAtFit())
    learn.freeze()
    before = learner_state(learn)
    assert before['frozen'] == 1
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert_restored(before, learner_state(learn))



def test_a_language_model_loaders_chunks_come_back_with_its_order():
    ("The chunks an `LMDataLoader` derives from its documents' order come back with the order: between epochs "
     "(`create_item`, `dl.chunks`) the loader reads the order it shows, not the sweep's last shuffle")
    from fastai.text.data import LMDataLoader
    from fastai.data.core import DataLoaders as DLs
    from fastai.torch_core import set_seed
    from fastai.losses import CrossEntropyLossFlat
    docs = [torch.arange(i, i + 9 + i % 7) % 40 for i in range(80)]
    set_seed(0)
    dls = DLs(LMDataLoader(docs, bs=4, seq_len=6, shuffle=True), LMDataLoader(docs[:16], bs=4, seq_len=6))
    learn = Learner(dls, nn.Sequential(nn.Embedding(40, 8), nn.Linear(8, 40)), loss_func=CrossEntropyLossFlat())
    dl = learn.dls.train
    cum = dl.chunks.cumlens.copy()
    with learn.no_bar(): learn.lr_find(num_it=30, show_plot=False)
    assert np.array_equal(dl.chunks.cumlens, cum)


class _SharesParamList(Callback):
    "Keeps a list of the model's own params, shared with another object it holds (a grad-clipping helper's view of them)"
    def before_fit(self):
        if not hasattr(self, 'ps'):
            from types import SimpleNamespace
            self.ps = list(self.learn.model.parameters()); self.helper = SimpleNamespace(ps=self.ps)


def test_lr_find_leaves_a_callbacks_list_of_the_learners_own_params_in_place():
    ("A list that holds only the learner's own tensors is not the callback's state to copy back: after the sweep it is the "
     "object the callback shares with its helper, not a copy")
    learn = mk_learner(n_train=20, cbs=(cb := _SharesParamList()))
    quiet_fit(learn, 'fit', 1, 1e-3)
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert cb.ps is cb.helper.ps


def test_tuning_a_fresh_learner_leaves_its_recorder_without_a_history():
    ("A learner that never fitted has a Recorder without `lrs`, `losses`, `values`...: after `lr_tune` it still has none "
     "(not the last trial's, which `plot_loss` would show as a fit)")
    learn = mk_learner(n_train=20)
    hist = ('lrs', 'iters', 'losses', 'values', 'hps', 'metric_names', 'log')
    keys,mine = {k for k in hist if hasattr(learn.recorder, k)},{k: hasattr(learn, k) for k in ('final_record', 'smooth_loss')}
    learn.lr_tune(10, fit='fit_cos_anneal')
    assert {k for k in hist if hasattr(learn.recorder, k)} == keys and not hasattr(learn.recorder, 'lrs')
    assert {k: hasattr(learn, k) for k in ('final_record', 'smooth_loss')} == mine  # nor the learner's `final_record`


class _TrainsItsTeacher(Callback):
    "Holds a teacher in eval mode and puts it in training mode for its fit (its BatchNorm statistics adapt), never back"
    def __init__(self, model): self.teacher = copy.deepcopy(model).eval()
    def before_fit(self): self.teacher.train()


def test_a_sweep_gives_back_the_mode_of_a_module_a_callback_holds():
    "A module a callback holds comes back in its mode too (the existing test's EMA model is never switched)"
    learn = mk_learner(n_train=20)
    cb = _TrainsItsTeacher(learn.model); learn.add_cb(cb)
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert not cb.teacher.training


# ------------------------------------------------------------------ the 29 snapshot mutants the last audit did not run (twenty-fourth session)
class _SetsTheLearnersLr(Callback):
    "Sets `learn.lr`, the lr fastai's fits default to, for its fit (a warm start picked by a callback), and leaves it there"
    def before_fit(self): self.learn.lr = 0.5


@pytest.mark.parametrize('entry', ['lr_find', 'lr_tune'])
def test_a_search_gives_back_the_learners_lr(entry):
    "`learn.lr` as it was before the search, whatever a callback set it to for a sweep or a trial (S45: `lr` left out of the copy)"
    learn = mk_learner(n_train=20)
    learn.lr = 3e-3
    learn.add_cb(_SetsTheLearnersLr())
    with learn.no_bar():
        if entry == 'lr_find': learn.lr_find(num_it=10, show_plot=False)
        else: learn.lr_tune(2, fit='fit_cos_anneal')
    assert learn.lr == 3e-3
