"""`step='epoch'` and timm's lr noise, options of every fit variant: exact against torch's per-epoch schedulers and timm's noise at
every batch, the global RNGs untouched, and exact on resume (the registry-driven resume and bad-input tables run them too)."""
import math, random
import numpy as np, pytest, torch
from torch.optim.lr_scheduler import CosineAnnealingLR, CosineAnnealingWarmRestarts, LinearLR, SequentialLR
from timm.scheduler import CosineLRScheduler
from fastai.basics import *
from fastai_anneal.all import *
from fastai_anneal.registry import VARIANTS
from conftest import mk_learner as _mk_learner, quiet_fit, RecordHypers

N_ITER = 3  # batches per epoch

def mk_learner(**kwargs): return _mk_learner(n_train=N_ITER, **kwargs)

def torch_lrs(make, n_epoch:int, lr:float) -> list:
    "The lr of each epoch from torch's scheduler `make(opt)` stepped once per epoch, repeated for each batch of the epoch"
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched,res = make(opt),[]
    for _ in range(n_epoch):
        res += [opt.param_groups[0]['lr']] * N_ITER
        opt.step(); sched.step()
    return res

def fit_lrs(method, *args, groups=1, **kwargs) -> np.ndarray:
    "The lr of every group at every batch, as fastai's `Recorder` sees the last group (`learn.recorder.hps['lr']`) and each group"
    learn,rec = mk_learner(groups=groups),RecordHypers()
    quiet_fit(learn, method, *args, cbs=rec, **kwargs)
    lrs = np.array(rec.lrs)
    np.testing.assert_array_equal(learn.recorder.hps['lr'], lrs[:, -1])
    return lrs

def close(ours, ref): np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=0)

# ---------------------------------------------------------------- step='epoch' against torch
@pytest.mark.parametrize('n,div_final', [(5, 1e5), (8, 10.), (3, math.inf)])
def test_cos_anneal_per_epoch_is_torch_cosine(n, div_final):
    lr = 1e-2
    ours = fit_lrs('fit_cos_anneal', n, lr, div_final=div_final, step='epoch')[:, 0]
    close(ours, torch_lrs(lambda o: CosineAnnealingLR(o, T_max=n, eta_min=0. if math.isinf(div_final) else lr/div_final), n, lr))
    assert len(set(ours[:N_ITER])) == 1  # constant within an epoch

@pytest.mark.parametrize('n,pct_warmup,k', [(10, 0.2, 2), (5, 0.2, 1), (6, 0.5, 3)])
def test_warmup_counts_in_epochs(n, pct_warmup, k):
    "`pct_warmup*n_epoch = k` whole epochs: torch's `SequentialLR([LinearLR, CosineAnnealingLR(T_max=n-k)], milestones=[k])`"
    lr,div_warmup = 1e-2,25.
    ours = fit_lrs('fit_cos_anneal', n, lr, pct_warmup=pct_warmup, div_warmup=div_warmup, step='epoch')[:, 0]
    ref = torch_lrs(lambda o: SequentialLR(o, [LinearLR(o, start_factor=1/div_warmup, end_factor=1., total_iters=k),
                                              CosineAnnealingLR(o, T_max=n-k, eta_min=lr/1e5)], milestones=[k]), n, lr)
    close(ours, ref)

def test_partial_warmup_epoch_is_sampled_at_epoch_starts():
    "A warmup of 0.4 epochs (0.1 of 4) fills the first epoch at the warmup's start: each epoch takes the batch schedule's first value"
    ours = fit_lrs('fit_cos_anneal', 4, 1e-2, pct_warmup=0.1, step='epoch')[::N_ITER, 0]
    s = cos_anneal_scheds(np.array([1e-2]), pct_warmup=0.1)['lr']
    close(ours, [s(e/4)[0] for e in range(4)])
    assert ours[0] == pytest.approx(1e-2/25)

# ---------------------------------------------------------------- two param groups against the references, every batch
LRS2 = [1e-3, 1e-2]

def ref_lrs(make, n:int) -> np.ndarray:
    "Each group's lr at each of `n` updates from the reference scheduler `make(opt)` on an optimizer with the groups `LRS2`"
    opt = torch.optim.SGD([dict(params=[torch.zeros(1, requires_grad=True)], lr=lr) for lr in LRS2])
    sched,res = make(opt),[]
    for _ in range(n):
        res.append([g['lr'] for g in opt.param_groups])
        opt.step(); sched.step()
    return np.array(res)

def test_two_groups_cos_anneal_to_zero_is_torch_cosine():
    "`div_final=inf`: both groups anneal to 0, torch's `CosineAnnealingLR(eta_min=0)` on the same two groups, every batch"
    n = 6*N_ITER
    close(fit_lrs('fit_cos_anneal', 6, LRS2, div_final=math.inf, groups=2), ref_lrs(lambda o: CosineAnnealingLR(o, T_max=n), n))

def test_two_groups_cos_anneal_floor_is_per_group_as_transformers():
    ("A finite `div_final` is each group's own floor, `lr/div_final`: transformers' `min_lr_rate`, with warmup; torch's `eta_min` "
     "is one floor for every group, which the registry's reference says")
    from transformers import get_cosine_with_min_lr_schedule_with_warmup
    n,w = 8*N_ITER,6
    ours = fit_lrs('fit_cos_anneal', 8, LRS2, div_final=10., pct_warmup=w/n, div_warmup=math.inf, groups=2)
    close(ours, ref_lrs(lambda o: get_cosine_with_min_lr_schedule_with_warmup(o, w, n, min_lr_rate=0.1), n))
    assert ours[-1] == pytest.approx(np.array(LRS2)/10, rel=0.1) and ours[-1, 1]/ours[-1, 0] == pytest.approx(10)  # no shared eta_min

def test_two_groups_sgdr_is_timm():
    "Warm restarts with `div_final=inf`: timm's `CosineLRScheduler` per update on the same two groups (growing, decaying cycles)"
    ours = fit_lrs('fit_sgdr_anneal', 3, 1, LRS2, cycle_mult=2, cycle_decay=0.5, div_final=math.inf, groups=2)
    n = 7*N_ITER
    def timm(o):
        s = CosineLRScheduler(o, t_initial=N_ITER, lr_min=0., cycle_mul=2, cycle_decay=0.5, cycle_limit=3, t_in_epochs=False)
        return type('Stepped', (), dict(step=lambda self, t=[0]: (t.__setitem__(0, t[0]+1), s.step_update(t[0]))))()
    close(ours, ref_lrs(timm, n))

@pytest.mark.parametrize('n_cycles,cycle_len,cycle_mult', [(3, 1, 2), (3, 2, 1), (2, 2, 2)])
def test_sgdr_per_epoch_is_torch_warm_restarts(n_cycles, cycle_len, cycle_mult):
    lr = 1e-2
    n = sgdr_n_epoch(n_cycles, cycle_len, cycle_mult)
    ours = fit_lrs('fit_sgdr_anneal', n_cycles, cycle_len, lr, cycle_mult=cycle_mult, step='epoch')[:, 0]
    close(ours, torch_lrs(lambda o: CosineAnnealingWarmRestarts(o, T_0=cycle_len, T_mult=cycle_mult, eta_min=lr/1e5), n, lr))

@pytest.mark.parametrize('method', [m for m,v in VARIANTS.items() if not v.two_phase])
def test_every_variant_per_epoch_is_its_schedule_at_epoch_starts(method):
    "Every hyper (lr and mom) holds the batch schedule's value at its epoch's first batch, every group"
    v = VARIANTS[method]
    ex = v.examples[-1]
    n = v.n_epoch(**ex)
    learn,rec = mk_learner(groups=2),RecordHypers()
    quiet_fit(learn, method, **ex, step='epoch', cbs=rec)
    lr = ex.get(v.lr_arg, learn.lr)
    scheds = v.scheds(np.array([lr, lr]), n_batch=N_ITER, **ex)
    close(np.array(rec.lrs), [scheds['lr'](b//N_ITER/n) for b in range(n*N_ITER)])
    if 'mom' in scheds: close(np.array(rec.moms)[:, 0], [scheds['mom'](b//N_ITER/n) for b in range(n*N_ITER)])

def test_fine_tune_anneal_passes_step_on():
    learn,rec = mk_learner(groups=2),RecordHypers()
    with learn.no_bar(), learn.no_logging(): learn.fine_tune_anneal(4, 1e-2, freeze_epochs=1, pct_warmup=0.25, step='epoch', cbs=rec)
    lrs = np.array(rec.lrs)[:, 1]
    test_eq(len(lrs), 5*N_ITER)
    # the unfrozen phase: one warmup epoch from base_lr/2/25, then torch's cosine over 3 epochs
    ref = torch_lrs(lambda o: SequentialLR(o, [LinearLR(o, start_factor=1/25, total_iters=1), CosineAnnealingLR(o, T_max=3, eta_min=5e-8)],
                                           milestones=[1]), 4, 5e-3)
    close(lrs[N_ITER:], ref)
    assert all(len(set(lrs[e*N_ITER:(e+1)*N_ITER])) == 1 for e in range(5))

# ---------------------------------------------------------------- lr noise against timm
def timm_lrs(n_epoch:int, lr:float, step:str, groups:int=1, **noise) -> np.ndarray:
    ("timm's `CosineLRScheduler` over `n_epoch`: per epoch (`step(epoch)` before each) or per update (`t_in_epochs=False`, "
     "`step_update(t)` before each), one lr per batch; the noise range in epochs becomes updates as timm's `scheduler_factory` does")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True) for _ in range(groups)], lr=lr)
    per = 1 if step == 'epoch' else N_ITER
    rng = noise.pop('noise_range_t')
    rng = [v*per for v in rng] if isinstance(rng, tuple) else rng*per
    kind = noise.pop('noise_type', 'normal')
    s = CosineLRScheduler(opt, t_initial=n_epoch*per, lr_min=lr/1e5, t_in_epochs=step == 'epoch', noise_range_t=rng, **noise)
    s.noise_type = kind  # timm's `CosineLRScheduler` does not pass `noise_type` on to its base `Scheduler`, which reads it
    res = []
    for t in range(n_epoch*per):
        s.step(t) if step == 'epoch' else s.step_update(t)
        res += [opt.param_groups[0]['lr']] * (N_ITER//per)
    return np.array(res)

NOISES = [dict(noise_range_t=(1, 4)), dict(noise_range_t=2, noise_pct=0.3, noise_seed=7),
          dict(noise_range_t=(0.5, 3.5), noise_type='uniform', noise_pct=0.5, noise_seed=3),
          dict(noise_range_t=0, noise_type='uniform'), dict(noise_range_t=(0, 5), noise_std=0.4, noise_pct=0.5, noise_seed=0)]

@pytest.mark.parametrize('step', ['epoch', 'batch'])
@pytest.mark.parametrize('noise', NOISES, ids=range(len(NOISES)))
def test_noise_is_timm_noise(step, noise):
    ours = fit_lrs('fit_cos_anneal', 5, 1e-2, step=step, **noise)[:, 0]
    ref = timm_lrs(5, 1e-2, step, **noise)
    close(ours, ref)
    assert not np.allclose(ours, fit_lrs('fit_cos_anneal', 5, 1e-2, step=step)[:, 0], rtol=1e-3)  # the noise is there

def test_noise_std_matters_for_normal_only():
    "timm's 'normal' noise scales its draw by `noise_std` (its 'uniform' noise ignores it): same for ours"
    kw = dict(noise_range_t=0, noise_pct=1.)
    for kind,same in (('uniform', True), ('normal', False)):
        a,b = [fit_lrs('fit_cos_anneal', 4, 1e-2, noise_type=kind, noise_std=s, **kw) for s in (1., 0.1)]
        assert np.array_equal(a, b) == same

def test_noise_is_one_factor_for_every_group_and_the_lr_only():
    kw = dict(moms=(0.95, 0.85, 0.95), step='batch')
    learn,rec = mk_learner(groups=2),RecordHypers()
    quiet_fit(learn, 'fit_cos_anneal', 4, slice(1e-3, 1e-2), noise_range_t=1, cbs=rec, **kw)
    plain,rec0 = mk_learner(groups=2),RecordHypers()
    quiet_fit(plain, 'fit_cos_anneal', 4, slice(1e-3, 1e-2), cbs=rec0, **kw)
    f = np.array(rec.lrs) / np.array(rec0.lrs)
    np.testing.assert_allclose(f[:, 0], f[:, 1], rtol=1e-12)
    assert np.all(f[:N_ITER] == 1) and np.all(f[N_ITER:] != 1) and np.all(np.abs(f - 1) < 0.67)
    test_eq(rec.moms, rec0.moms)

def test_noise_never_draws_from_the_global_rngs():
    "The same fit with and without noise leaves python's, numpy's and torch's RNGs (and the data order) in the same state"
    def run(**kw):
        learn = mk_learner()
        quiet_fit(learn, 'fit_cos_anneal', 4, 1e-2, **kw)
        return random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state(), learn.dls.train.rng.getstate(), learn.model.a
    a,b = run(),run(noise_range_t=0, noise_type='normal')
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2]) and a[3] == b[3]
    assert not torch.equal(a[4], b[4])  # the noise did change the training

@pytest.mark.parametrize('method', list(VARIANTS))
@pytest.mark.parametrize('step', ['epoch', 'batch'])
def test_resume_with_noise_is_the_tail(method, step):
    "`start_epoch=k` replays the uninterrupted run's noised lrs from epoch k on, bit for bit (fine_tune: counted across its phases)"
    v = VARIANTS[method]
    ex = v.examples[0]
    kw = dict(ex, step=step, noise_range_t=1, noise_type='uniform')
    full,rec = mk_learner(),RecordHypers()
    quiet_fit(full, method, **kw, cbs=rec)
    resumed,rec2 = mk_learner(),RecordHypers()
    quiet_fit(resumed, method, **kw, start_epoch=2, cbs=rec2)
    test_eq(rec2.hps, rec.hps[2*N_ITER:])
