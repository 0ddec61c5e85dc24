"""Step decay, time-based decay and cyclical learning rates, exact against their references at every batch of a fit (the lr and
momentum fastai's optimizer held, every param group): torch `StepLR`/`MultiStepLR` stepped once per epoch, Keras' published
`InverseTimeDecay` formula, torch `CyclicLR`. Bad input: tests/test_bad_input.py and the registry's tables."""
import math
import numpy as np, pytest, torch
from fastai.basics import *
from fastai_anneal.all import *
from fastai_anneal.schedules import StepDecay, TimeDecay, Cyclic
from conftest import mk_learner, quiet_fit, RecordHypers

RTOL = 1e-6  # the bar: 1e-6 relative at every batch
N_BATCH = 5  # batches per epoch of the synthetic data
LRS = [1e-3, 1e-2]  # two param groups, as `slice(1e-3, 1e-2)` gives them

def _fit(method, n_epoch, n_batch=N_BATCH, **kwargs) -> RecordHypers:
    "Fit a 2-group learner with `method`; the lr and mom of every group at every training batch"
    learn,rec = mk_learner(n_train=n_batch, groups=2, opt_func=partial(SGD, mom=0.9)),RecordHypers()
    quiet_fit(learn, method, n_epoch, slice(*LRS), cbs=rec, **kwargs)
    assert len(rec.hps) == n_epoch * n_batch
    return rec

def _torch(sched_cls, n_steps:int, every:int=1, lrs=LRS, **kwargs) -> tuple:
    "lr and momentum of every group at steps 0..n_steps-1 of torch `sched_cls` on an SGD with momentum, stepped every `every` steps"
    opt = torch.optim.SGD([{'params': [torch.zeros(1, requires_grad=True)], 'lr': lr} for lr in lrs], lr=lrs[0], momentum=0.9)
    sched,lr,mom = sched_cls(opt, **kwargs),[],[]
    for t in range(n_steps):
        lr.append([g['lr'] for g in opt.param_groups]); mom.append([g['momentum'] for g in opt.param_groups])
        opt.step()
        if (t+1) % every == 0: sched.step()
    return np.array(lr),np.array(mom)

# ---------------------------------------------------------------- step decay: torch StepLR / MultiStepLR, once per epoch
@pytest.mark.parametrize('n_epoch,kw,ref', [
    (6, dict(step_size=2, gamma=0.5), (torch.optim.lr_scheduler.StepLR, dict(step_size=2, gamma=0.5))),
    (5, dict(step_size=1), (torch.optim.lr_scheduler.StepLR, dict(step_size=1, gamma=0.1))),
    (7, dict(milestones=[2, 3, 6], gamma=0.3), (torch.optim.lr_scheduler.MultiStepLR, dict(milestones=[2, 3, 6], gamma=0.3))),
    (8, {}, (torch.optim.lr_scheduler.MultiStepLR, dict(milestones=[4, 6], gamma=0.1))),  # the default: 50% and 75%
])
def test_step_decay_matches_torch_per_epoch(n_epoch, kw, ref):
    rec = _fit('fit_step_decay', n_epoch, **kw)
    lr,_ = _torch(ref[0], n_epoch*N_BATCH, every=N_BATCH, **ref[1])
    np.testing.assert_allclose(rec.lrs, lr, rtol=RTOL)
    for e in range(n_epoch): assert len({tuple(v) for v in rec.lrs[e*N_BATCH:(e+1)*N_BATCH]}) == 1  # constant within an epoch

def test_step_decay_defaults():
    "Neither `step_size` nor `milestones`: x0.1 at epochs `n_epoch//2` and `3*n_epoch//4`; one epoch: a constant lr"
    assert step_decay_scheds(8, 1, 1.)['lr'].milestones == (4, 6) and step_decay_scheds(2, 1, 1.)['lr'].milestones == (1,)
    assert step_decay_scheds(1, 1, 1.)['lr'].milestones == ()
    r = repr(step_decay_scheds(4, 3, 1., step_size=2)['lr'])
    assert r == 'StepDecay(n_epoch=4, n_batch=3, lr=1.0, gamma=0.1, step_size=2, milestones=())'

# ---------------------------------------------------------------- time decay: Keras' InverseTimeDecay, its published formula
def keras_inverse_time_decay(initial_learning_rate, decay_steps, decay_rate, staircase, step):
    """The reference, as Keras documents `keras.optimizers.schedules.InverseTimeDecay`
    (https://keras.io/api/optimizers/learning_rate_schedules/inverse_time_decay/; Keras is not a dependency):
    `initial_learning_rate / (1 + decay_rate * step / decay_step)`, and with `staircase=True`
    `initial_learning_rate / (1 + decay_rate * floor(step / decay_step))`"""
    return initial_learning_rate / (1 + decay_rate * (math.floor(step / decay_steps) if staircase else step / decay_steps))

@pytest.mark.parametrize('n_epoch,n_batch,kw', [
    (3, 5, dict(decay_rate=0.5, decay_steps=3)), (4, 7, dict(decay_rate=2., decay_steps=4, staircase=True)),
    (3, 5, {}), (2, 6, dict(decay_rate=0.)), (3, 4, dict(decay_rate=1., staircase=True))])
def test_time_decay_matches_keras_formula(n_epoch, n_batch, kw):
    rec = _fit('fit_time_decay', n_epoch, n_batch, **kw)
    steps = kw.get('decay_steps', n_batch)  # None: one epoch of batches
    ref = [[keras_inverse_time_decay(lr, steps, kw.get('decay_rate', 1.), kw.get('staircase', False), t) for lr in LRS]
           for t in range(n_epoch*n_batch)]
    np.testing.assert_allclose(rec.lrs, ref, rtol=RTOL)

# ---------------------------------------------------------------- cyclical learning rates: torch CyclicLR, lr and momentum
CYCLIC = [dict(step_size_up=3), dict(step_size_up=2, step_size_down=5, mode='triangular2'),
          dict(step_size_up=4, step_size_down=1, mode='exp_range', gamma=0.97),
          dict(step_size_up=3, mode='triangular2', base_lr=[1e-4, 2e-3], base_momentum=0.85, max_momentum=0.95),
          dict(step_size_up=2, mode='exp_range', gamma=0.9, cycle_momentum=False)]

@pytest.mark.parametrize('kw', CYCLIC, ids=[f"{k.get('mode', 'triangular')}{i}" for i,k in enumerate(CYCLIC)])
def test_cyclic_matches_torch_cyclic_lr(kw):
    n_epoch = 4
    rec = _fit('fit_cyclic', n_epoch, **kw)
    base = kw.get('base_lr', [lr/4 for lr in LRS])  # base_lr None: max_lr/4
    tkw = {k: v for k,v in kw.items() if k != 'base_lr'}
    lr,mom = _torch(torch.optim.lr_scheduler.CyclicLR, n_epoch*N_BATCH, base_lr=base, max_lr=LRS, **tkw)
    np.testing.assert_allclose(rec.lrs, lr, rtol=RTOL)
    if kw.get('cycle_momentum', True): np.testing.assert_allclose(rec.moms, mom, rtol=RTOL)
    else: assert all(m == [0.9, 0.9] for m in rec.moms)  # momentum left as the optimizer holds it

def test_cyclic_tuned_max_lr_keeps_base_lr_relative():
    "`max_lr` is the lr the tuner picks; `base_lr=None` follows it (a quarter), so a tuned call keeps the cycle's shape"
    s = cyclic_scheds(2, 4, np.array(LRS), step_size_up=2)['lr']
    np.testing.assert_allclose(s(0.), np.array(LRS)/4)
    np.testing.assert_allclose(s(2/8), LRS)
    assert 'Cyclic(' in repr(s) and "mode='triangular'" in repr(s)

# ---------------------------------------------------------------- pos -> step, at every batch of a real fit
class CheckSteps(Callback):
    "At every training batch: the step each schedule reads from fastai's `pct_train` is the batch count of the fit"
    def __init__(self, sched): self.sched,self.seen,self.int_off = sched,0,0
    def before_batch(self):
        if not self.training: return
        t = self.epoch*self.n_iter + self.iter
        assert self.sched.step(self.pct_train) == t
        self.seen,self.int_off = self.seen + 1,self.int_off + (int(self.pct_train * self.n_epoch * self.n_iter) != t)

@pytest.mark.parametrize('n_epoch,n_batch', [(7, 13), (11, 3), (3, 29)])
def test_position_maps_to_the_batch_count(n_epoch, n_batch):
    "fastai's `pct_train` adds 1/total per batch, so `pos*total` drifts by ulps from a whole number: `round`, not `int`, lands on it"
    learn = mk_learner(n_train=n_batch)
    cb = CheckSteps(TimeDecay(1., n_epoch, n_batch, 1., 1))
    quiet_fit(learn, 'fit_time_decay', n_epoch, cbs=cb)
    assert cb.seen == n_epoch*n_batch
    assert cb.int_off > 0  # the hazard is real: `int(pos*total)` would fall a step short at some batches of these fits

@pytest.mark.parametrize('sched', [StepDecay(1., 3, 4, 0.5, step_size=1), TimeDecay(1., 3, 4, 1., 2), Cyclic(1., 2., 3, 4, 2, 3)],
                         ids=['step', 'time', 'cyclic'])
def test_resumed_positions_continue_the_count(sched):
    "A resume starts epoch `e` at `pct_train = e/n_epoch` exactly: the step there is `e*n_batch`"
    for e in range(3): assert sched.step(e/3) == e*4
