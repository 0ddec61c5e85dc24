"""`AnnealPlateau`: its scale equals torch's `ReduceLROnPlateau` fed the same values; it composes with every registered variant and
fastai's fits (the recorded lr is the lr the optimizer used); its state resumes exactly through fastai's checkpoints; it stands
aside in range tests and tuning trials."""
import math, warnings
from decimal import Decimal
import numpy as np, pytest, torch
from fastai.basics import *
from fastai.callback.schedule import SchedNo, SchedCos, ParamScheduler
from fastai.callback.tracker import SaveModelCallback, ReduceLROnPlateau as FastaiReduceLROnPlateau
from fastai.optimizer import Optimizer, sgd_step
from fastai_anneal.all import *
from fastai_anneal.plateau import STATE_KEY, plateau_state
from fastai_anneal.registry import VARIANTS
from fastai_anneal.tune import TrialScheduler
from fastai.callback.training import GradientAccumulation
from conftest import mk_learner, quiet_fit, RecordHypers, CountSteps, learner_state, assert_restored
from test_resume import Interrupt, SaveEveryEpoch

def torch_plateau(lrs=(1.,), **kwargs):
    "torch's `ReduceLROnPlateau` on a dummy SGD with one param group per lr in `lrs`"
    opt = torch.optim.SGD([dict(params=[torch.zeros(1, requires_grad=True)], lr=lr) for lr in lrs], lr=1.)
    return opt,torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)

# ---------------------------------------------------------------- the rule, against torch
def sequence(rng, n=40):
    "A noisy walk with flat stretches and exact repeats: improvements, plateaus and ties"
    steps = rng.choice([-1., 0., 0., 1., 0.3, -0.3, -0.01], size=n) * rng.uniform(0.5, 2., size=n)
    return np.round(5. + steps.cumsum(), 3)

@pytest.mark.parametrize('mode', ['min', 'max'])
@pytest.mark.parametrize('threshold_mode', ['rel', 'abs'])
@pytest.mark.parametrize('patience,cooldown,threshold,factor,eps',
                         [(0, 0, 1e-4, 0.1, 1e-8), (2, 0, 0.05, 0.5, 1e-8), (1, 2, 0., 0.5, 1e-8), (3, 1, 0.2, 0.7, 0.05),
                          (0, 3, 1e-3, 0.2, 0.)])
def test_scale_equals_torch(mode, threshold_mode, patience, cooldown, threshold, factor, eps):
    "After every value of many random sequences: scale = torch's lr on an lr of 1.0, and the same best, bad epochs and cooldown"
    kw = dict(mode=mode, threshold_mode=threshold_mode, patience=patience, cooldown=cooldown, threshold=threshold, factor=factor, eps=eps)
    rng,reduced = np.random.default_rng(0),0
    for _ in range(20):
        cb,(opt,ref) = AnnealPlateau(**kw),torch_plateau(**kw)
        for v in sequence(rng):
            cb.step(v); ref.step(v)
            test_close(cb.scale, opt.param_groups[0]['lr'], eps=1e-12)
            test_eq((cb.best, cb.num_bad_epochs, cb.cooldown_counter), (ref.best, ref.num_bad_epochs, ref.cooldown_counter))
        reduced += cb.scale < 1
    assert reduced >= 10  # the sequences do trigger reductions

def test_mode_given_wins():
    test_eq(AnnealPlateau('mae', mode='max').mode, 'max')
    test_eq(AnnealPlateau('accuracy', mode='min').mode, 'min')

# ---------------------------------------------------------------- composing with the schedules
class Monitored(Callback):
    "The monitored value of every epoch the `Recorder` logged, one list per fit"
    order = 70
    def __init__(self, key='valid_loss'): self.key,self.fits = key,[]
    def before_fit(self): self.fits.append([])
    def after_epoch(self):
        if self.recorder.values[-1]: self.fits[-1].append(self.recorder.values[-1][list(self.recorder.metric_names[1:]).index(self.key)])

def torch_scales(fits, **kwargs) -> list:
    "The scale of every epoch: torch's lr on 1.0 before that epoch's value, a fresh scheduler per fit (the callback resets per fit)"
    res = []
    for vals in fits:
        opt,ref = torch_plateau(**kwargs)
        for v in vals: res.append(opt.param_groups[0]['lr']); ref.step(v)
    return res

PLATEAU = dict(patience=0, factor=0.5, threshold=0.3, cooldown=1)  # reductions from the second epoch on
FITS = {**{m: (m, tuple(v.examples[0][k] for k in v.epoch_args), {k: a for k,a in v.examples[0].items() if k not in v.epoch_args})
           for m,v in VARIANTS.items()},
        'fine_tune_anneal': ('fine_tune_anneal', (3,), dict(freeze_epochs=1, lr_mult=10)),  # a phase long enough to see a reduction
        'fit_one_cycle': ('fit_one_cycle', (3, 1e-2), {}), 'fit_flat_cos': ('fit_flat_cos', (3, 1e-2), {}),
        'fit_sgdr': ('fit_sgdr', (2, 1, 1e-2), {}), 'fit': ('fit', (4, 1e-2), {})}

@pytest.mark.parametrize('name', FITS)
def test_composes_with_every_fit(name):
    "lr of every group at every batch = max(schedule's lr * torch's scale, min(schedule's lr, min_lr)); recorded = used"
    method,args,kwargs = FITS[name]
    ref,rec_ref = mk_learner(groups=2),RecordHypers()
    quiet_fit(ref, method, *args, **kwargs, cbs=rec_ref)  # the schedule alone: it does not depend on the weights
    learn,rec,mon = mk_learner(groups=2),RecordHypers(),Monitored()
    min_lr = [3e-4, 1e-3]
    quiet_fit(learn, method, *args, **kwargs, cbs=[AnnealPlateau(min_lr=min_lr, **PLATEAU), rec, mon])
    n = len(learn.dls.train)
    scales = np.repeat(torch_scales(mon.fits, **PLATEAU), n)
    base = np.array(rec_ref.lrs)
    test_eq(len(scales), len(base))
    assert scales.min() < 1  # the plateau did reduce
    want = np.maximum(base * scales[:, None], np.minimum(base, min_lr))
    np.testing.assert_allclose(rec.lrs, want, rtol=1e-6)
    last = want[-n*len(mon.fits[-1]):, -1]  # fastai's Recorder keeps the last group of the last fit
    np.testing.assert_allclose(learn.recorder.lrs, last, rtol=1e-6)
    if method != 'fit': np.testing.assert_allclose(learn.recorder.hps['lr'], last, rtol=1e-6)
    opt,tref = torch_plateau(**PLATEAU)  # after the fit the optimizer holds where the run stands: the last scheduled lr, scaled by
    for v in mon.fits[-1]: tref.step(v)   # the factor the last epoch left (torch's lr after its last step)
    end = np.maximum(base[-1] * opt.param_groups[0]['lr'], np.minimum(base[-1], min_lr))
    np.testing.assert_allclose([h['lr'] for h in learn.opt.hypers], end, rtol=1e-6)

BAD_EPOCHS = dict(patience=0, threshold=10., threshold_mode='abs')  # every epoch after the first is bad: a reduction due at each

@pytest.mark.parametrize('min_lr', [0., 3e-8])
def test_plain_fit_lrs_are_torchs_where_eps_binds(min_lr):
    "plain `fit` at an lr the reductions take within `eps` (torch compares it with each lr's drop): every epoch's lr is torch's"
    kw = dict(**BAD_EPOCHS, factor=0.1, eps=1e-8, min_lr=min_lr)
    learn,rec,mon = mk_learner(n_train=2),RecordHypers(),Monitored()
    quiet_fit(learn, 'fit', 7, 1e-6, cbs=[AnnealPlateau(**kw), rec, mon])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-6)
    ref,want = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw),[]
    for v in mon.fits[0]: want.append(opt.param_groups[0]['lr']); ref.step(v)
    assert min(want) > 1e-9  # the 1e-8 -> 1e-9 drop is within eps: torch holds the lr
    np.testing.assert_allclose(np.array(rec.lrs)[::2, 0], want, rtol=1e-9)

class Scales(Callback):
    "The plateau's scale after every epoch"
    order = 90
    def __init__(self, plateau): self.plateau,self.scales = plateau,[]
    def after_epoch(self): self.scales.append(self.plateau.scale)

@pytest.mark.parametrize('n_train,lr_max,kw', [(100, 1e-4, {}), (5, 1e-2, dict(min_lr=1e-3, eps=0.))], ids=['tiny_end', 'floor'])
def test_eps_on_the_scale_under_a_schedule(n_train, lr_max, kw):
    ("A schedule moves the lr: a warm restart's cycle ends near lr_max/div_final (or below `min_lr`), but the reduction due there "
     "scales the next cycle, which starts again at lr_max. Under a schedule `eps` applies to the scale: every reduction is taken")
    plateau = AnnealPlateau(factor=0.1, **BAD_EPOCHS, **kw)
    rec = Scales(plateau)
    quiet_fit(mk_learner(n_train=n_train, lr=lr_max), 'fit_sgdr_anneal', 2, 2, lr_max=lr_max, cbs=[plateau, rec])  # cycles: 0-1, 2-5
    test_close(rec.scales, [1., 0.1, 0.01, 1e-3, 1e-4, 1e-5], eps=1e-12)

def test_eps_on_the_scale_within_long_cycles():
    "Cycles of 4 epochs: a reduction due inside a cycle, where the lr has annealed to 15% of its peak, scales the cycle's next peak"
    plateau = AnnealPlateau(factor=0.5, eps=1e-4, **BAD_EPOCHS)
    rec = Scales(plateau)
    quiet_fit(mk_learner(n_train=5, lr=1e-3), 'fit_sgdr_anneal', 2, 4, lr_max=1e-3, cycle_mult=1, cbs=[plateau, rec])
    test_close(rec.scales, 0.5**np.arange(8), eps=1e-12)

def test_lr_noise_changes_no_decision():
    "With timm's lr noise on, the same reductions as without (the noise never reaches the plateau's rule)"
    def scales(**noise):
        plateau = AnnealPlateau(factor=0.5, eps=0.4, **BAD_EPOCHS)  # the scale's drops: 0.5 (taken), then 0.25 (<= eps: skipped)
        rec = Scales(plateau)
        quiet_fit(mk_learner(n_train=4, lr=1e-3), 'fit_step_decay', 4, lr=1e-3, step_size=1, gamma=1., cbs=[plateau, rec], **noise)
        return rec.scales
    test_eq(scales(), [1., 0.5, 0.5, 0.5])
    for seed in range(3): test_eq(scales(noise_range_t=0, noise_pct=0.5, noise_seed=seed), [1., 0.5, 0.5, 0.5])

class LrAt(Callback):
    "The first group's lr at `before_batch` of every training batch, at `order` (before the plateau: the schedule's; after: scaled)"
    def __init__(self, order): self.order,self.lrs = order,[]
    def before_batch(self):
        if self.training: self.lrs.append((self.epoch, self.opt.hypers[0]['lr']))

@pytest.mark.parametrize('exc', [CancelTrainException, CancelEpochException], ids=['train', 'epoch'])
@pytest.mark.parametrize('method', ['fit', 'fit_flat_anneal'])
def test_epochs_cancelled_from_after_batch(method, exc):
    ("A callback that ends an epoch's training, or the whole epoch, from `after_batch` before this one's (fastai's "
     "`ShortEpochCallback`): the schedule's lr goes back all the same: plain `fit` does not scale it again (it would compound over "
     "the cancelled epochs), and the fit ends at its last lr, scaled")
    class Short(Callback):
        def after_batch(self):
            if self.training and self.epoch >= 2 and self.iter >= 1: raise exc
    plateau,learn = AnnealPlateau(factor=0.5, **BAD_EPOCHS),mk_learner(n_train=4)
    sched,used = LrAt(AnnealPlateau.order - 1),LrAt(AnnealPlateau.order + 1)
    quiet_fit(learn, method, 5, 1e-2, cbs=[plateau, sched, used, Short()])
    test_eq(plateau.scale, 0.5)  # one reduction, at the end of epoch 1: a cancelled epoch's value is not accounted
    assert len(used.lrs) == 2*4 + 3*2  # epochs 2-4 cancelled after their second batch
    if method == 'fit': assert all(lr == 1e-2 for _,lr in sched.lrs)  # the constant lr, never scaled twice
    for (e,lr),(_,base) in zip(used.lrs, sched.lrs): test_close(lr, base*(0.5 if e >= 2 else 1.), eps=1e-15)
    test_close(learn.opt.hypers[0]['lr'], sched.lrs[-1][1]*0.5, eps=1e-15)  # where the run stands: the last lr, scaled

def test_cooldown_goes_on_from_the_reduced_lr():
    "After a stable run the plateau reduced, the optimizer holds the reduced lr: `fit_cooldown()` decays from there, not from 1e-2"
    learn = mk_learner()
    quiet_fit(learn, 'fit_flat_anneal', 4, 1e-2, pct_start=1., cbs=AnnealPlateau(**PLATEAU))
    held = [h['lr'] for h in learn.opt.hypers]
    assert held[0] < 1e-2
    rec = RecordHypers()
    quiet_fit(learn, 'fit_cooldown', 2, cbs=rec)
    test_close(rec.lrs[0], held)

def test_cooldown_from_an_epoch_checkpoint_goes_on_from_the_reduced_lr(tmp_path):
    "An epoch's checkpoint holds the lr the run stands at (scaled): `fit_cooldown()` from it starts where it does in memory"
    run = mk_learner(path=tmp_path)
    quiet_fit(run, 'fit_flat_anneal', 4, 1e-2, pct_start=1., cbs=[AnnealPlateau(**PLATEAU), SaveModelCallback(every_epoch=True, with_opt=True)])
    a,b = RecordHypers(),RecordHypers()
    quiet_fit(run, 'fit_cooldown', 1, cbs=a)
    branch = mk_learner(path=tmp_path)
    branch.load('model_3', with_opt=True)  # the same point of the run: the end of its last epoch
    assert plateau_state(branch.opt)['scale'] < 1
    quiet_fit(branch, 'fit_cooldown', 1, cbs=b)
    assert a.lrs[0][0] < 1e-2
    test_close(b.lrs[0], a.lrs[0])

@pytest.mark.parametrize('checkpoint', [False, True], ids=['in_memory', 'checkpoint'])
def test_noisy_fit_ends_at_the_schedules_lr(tmp_path, checkpoint):
    "With timm's noise and a plateau that never reduces, the lr held after the fit (or in an epoch's checkpoint) is the schedule's"
    learn = mk_learner(path=tmp_path)
    cbs = [AnnealPlateau(patience=1000), SaveModelCallback(every_epoch=True, with_opt=True)]
    rec = RecordHypers()
    quiet_fit(learn, 'fit_flat_anneal', 3, 1e-2, pct_start=1., noise_range_t=0, cbs=cbs + [rec])
    assert rec.lrs[-1][0] != 1e-2  # the last batch ran at a noisy lr
    if checkpoint: learn = mk_learner(path=tmp_path); learn.load('model_2', with_opt=True)
    test_close([h['lr'] for h in learn.opt.hypers], [1e-2])

class StopAt(Callback):
    "Raise `exc` in `after_pred` of epoch 2's first training or validation batch (where a Ctrl-C mostly lands: mid-batch)"
    order = 90
    def __init__(self, exc, training): self.exc,self.tr = exc,training
    def after_pred(self):
        if self.epoch == 2 and self.training == self.tr: raise self.exc

@pytest.mark.parametrize('level', ['fit', 'learner'])
@pytest.mark.parametrize('noise', [False, True], ids=['no_noise', 'noise'])
@pytest.mark.parametrize('training', [True, False], ids=['training', 'validation'])
@pytest.mark.parametrize('exc', [CancelFitException, KeyboardInterrupt], ids=['cancel', 'ctrl_c'])
def test_a_fit_stopped_mid_epoch_stands_where_the_run_stands(exc, training, noise, level):
    ("Cancelled or Ctrl-C'd mid-batch, in training or validation, with or without timm's noise, the plateau a fit argument or the "
     "learner's: the optimizer holds the last scheduled lr, scaled and without noise, and the plateau's state, so `fit_cooldown()` "
     "and a checkpoint go on from the reduced lr (Ctrl-C skips fastai's `after_fit`: `_launch` stands the plateau; a cancel mid-batch "
     "puts the noisy lr back before the scheduler takes the noise off)")
    learn,cb = mk_learner(),AnnealPlateau(factor=0.5, **BAD_EPOCHS)  # epoch 0 sets the best, epoch 1 reduces, epoch 2 is stopped
    if level == 'learner': learn.add_cb(cb)
    noise = dict(noise_range_t=0, noise_pct=0.5, noise_seed=3) if noise else {}
    cbs = [StopAt(exc, training)] + ([cb] if level == 'fit' else [])
    try: quiet_fit(learn, 'fit_flat_anneal', 4, 1e-2, pct_start=1., cbs=cbs, **noise)
    except KeyboardInterrupt: assert exc is KeyboardInterrupt
    test_eq(cb.scale, 0.5)
    test_close([h['lr'] for h in learn.opt.hypers], [5e-3], eps=1e-12)
    test_eq(plateau_state(learn.opt), cb.state_dict())
    if level == 'learner': learn.remove_cb(cb)
    rec = RecordHypers()
    quiet_fit(learn, 'fit_cooldown', 1, cbs=rec)
    test_close(rec.lrs[0], [5e-3], eps=1e-12)

class StopFirstBatch(Callback):
    "Raise `exc` at the fit's first training batch, before the scheduler (60) and the plateau (64) see it"
    order = 0
    def __init__(self, exc): self.exc = exc
    def before_batch(self):
        if self.training: raise self.exc

@pytest.mark.parametrize('exc', [CancelFitException, KeyboardInterrupt], ids=['cancel', 'ctrl_c'])
def test_a_resume_stopped_before_its_first_batch_keeps_the_checkpoints_state(tmp_path, exc):
    ("A resumed fit that trains nothing (cancelled or Ctrl-C'd at its first batch) leaves the optimizer holding the checkpoint's "
     "plateau state: a save after it resumes at the reduced scale, not at 1 (P087: the state taken out at the first epoch was lost)")
    run = mk_learner(path=tmp_path)
    quiet_fit(run, 'fit_flat_anneal', 4, 1e-2, pct_start=1., cbs=[AnnealPlateau(factor=0.5, **BAD_EPOCHS),
                                                                   SaveModelCallback(every_epoch=True, with_opt=True)])
    learn = mk_learner(path=tmp_path)
    learn.load('model_1', with_opt=True)
    saved = plateau_state(learn.opt)
    test_eq((saved['scale'], saved['epochs']), (0.5, 2))
    cb = AnnealPlateau(factor=0.5, **BAD_EPOCHS)
    try: quiet_fit(learn, 'fit_flat_anneal', 4, 1e-2, pct_start=1., start_epoch=2, cbs=[cb, StopFirstBatch(exc)])
    except KeyboardInterrupt: assert exc is KeyboardInterrupt
    assert cb._started is False and not learn.recorder.lrs  # no batch trained
    test_eq(plateau_state(learn.opt), saved)

def test_plain_fit_does_not_compound_the_held_lr():
    "Between epochs the optimizer holds the scaled lr (for a checkpoint): a plain `fit` takes its lr back before the next epoch trains"
    learn,rec = mk_learner(),RecordHypers()
    quiet_fit(learn, 'fit', 4, 1e-2, cbs=[AnnealPlateau(patience=0, threshold=10., threshold_mode='abs', factor=0.5), rec])
    per_epoch = [rec.lrs[i][0] for i in range(0, len(rec.lrs), len(learn.dls.train))]
    test_close(per_epoch, [1e-2, 1e-2, 5e-3, 2.5e-3])  # the first epoch sets the best; each later one reduces
    test_close([h['lr'] for h in learn.opt.hypers], [1.25e-3])

def test_gradient_accumulation():
    "Batches that accumulate without a step record the scaled lr too: the lr sequence is per batch, as the schedule's"
    ref,rec_ref = mk_learner(),RecordHypers()
    quiet_fit(ref, 'fit_flat_anneal', 4, 1e-2, cbs=rec_ref)
    learn,rec,mon,steps = mk_learner(),RecordHypers(),Monitored(),CountSteps()
    quiet_fit(learn, 'fit_flat_anneal', 4, 1e-2, cbs=[GradientAccumulation(n_acc=2*16), AnnealPlateau(**PLATEAU), rec, mon, steps])
    want = np.array(rec_ref.lrs) * np.repeat(torch_scales(mon.fits, **PLATEAU), len(learn.dls.train))[:, None]
    np.testing.assert_allclose(rec.lrs, want, rtol=1e-6)
    assert want.min() < 0.3e-2 and steps.n < len(want)

def test_plain_fit_exact_against_torch():
    "Without a schedule the scale never compounds: each epoch runs at torch's lr for that epoch, `min_lr` per group included"
    learn,rec,mon = mk_learner(groups=2),RecordHypers(),Monitored()
    kw = dict(PLATEAU, min_lr=[4e-4, 1e-3])
    quiet_fit(learn, 'fit', 6, [1e-3, 1e-2], cbs=[AnnealPlateau(**kw), rec, mon])
    opt,ref = torch_plateau([1e-3, 1e-2], **kw)
    want = []
    for v in mon.fits[0]: want += [[g['lr'] for g in opt.param_groups]]*len(learn.dls.train); ref.step(v)
    np.testing.assert_allclose(rec.lrs, want, rtol=1e-6)
    assert np.array(want)[-1, 0] == 4e-4  # the floor was reached

def spy_opt(seen):
    "fastai's SGD with a first stepper that records the lr and the hyper names each step hands it"
    def spy(p, lr, **kwargs): seen.append((lr, any(k.startswith(STATE_KEY) for k in kwargs)))
    return lambda params, lr: Optimizer(params, [spy, sgd_step], lr=lr)

def test_recorded_lr_is_the_lr_used_and_the_state_never_reaches_a_stepper(tmp_path):
    seen = []
    learn = mk_learner(opt_func=spy_opt(seen), path=tmp_path)
    quiet_fit(learn, 'fit_flat_anneal', 4, 1e-2, cbs=[AnnealPlateau(**PLATEAU), SaveModelCallback(every_epoch=True, with_opt=True)])
    used = [lr for lr,_ in seen[::2]]  # RegModel: two params in one group, the stepper runs once for each
    np.testing.assert_allclose(used, learn.recorder.lrs, rtol=1e-12)
    np.testing.assert_allclose(used, learn.recorder.hps['lr'], rtol=1e-12)
    assert min(used) < 0.3e-2 and not any(k for _,k in seen)
    assert plateau_state(learn.opt) is not None  # ...but the checkpoints and the optimizer after the fit hold it
    for h in learn.opt.hypers:  # as numbers: loggers (fastai's TensorBoard callback) write every hyper as a scalar
        for k,v in h.items(): assert isinstance(v, (int, float)), (k, v)

def test_fastais_reduce_lr_on_plateau_is_undone_ours_is_not():
    base,fa,ours = mk_learner(),mk_learner(),mk_learner()
    quiet_fit(base, 'fit_flat_anneal', 4, 1e-2)
    quiet_fit(fa, 'fit_flat_anneal', 4, 1e-2, cbs=FastaiReduceLROnPlateau(patience=0, min_delta=10.))
    quiet_fit(ours, 'fit_flat_anneal', 4, 1e-2, cbs=AnnealPlateau(patience=0, threshold=10., threshold_mode='abs'))
    test_eq(fa.recorder.hps['lr'], base.recorder.hps['lr'])  # fastai's reductions are overwritten at the next batch
    scales = np.array(ours.recorder.hps['lr']) / np.array(base.recorder.hps['lr'])
    test_close(scales, np.repeat([1, 1, .1, .01], 5), eps=1e-12)  # the first epoch improves on no value: reductions from the second

def test_monitor_a_metric():
    learn,mon = mk_learner(metrics=mae),Monitored('mae')
    cb = AnnealPlateau('mae', mode='min', patience=0, threshold=0.1)
    quiet_fit(learn, 'fit_cos_anneal', 4, 1e-2, cbs=[cb, mon])
    opt,ref = torch_plateau(mode='min', patience=0, threshold=0.1)
    for v in mon.fits[0]: ref.step(v)
    test_close(cb.scale, opt.param_groups[0]['lr'], eps=1e-12)

# ---------------------------------------------------------------- resume through fastai's checkpoints
def sgd(params, lr): return SGD(params, lr, mom=0.9)
def adam_anneal(params, lr): return AdamAnneal(params, lr, anneal_rate=0.9, anneal_every=4, impl='stepper')
def torch_sgd(params, lr): return OptimWrapper(params, torch.optim.SGD, lr=lr)  # the state goes into torch's param_groups
RESUME = [(m, Adam, k) for m in VARIANTS for k in ([0, 2] if m == 'fine_tune_anneal' else [1])] + \
         [('fit_flat_anneal', sgd, 2), ('fit_flat_anneal', adam_anneal, 2), ('fit_flat_anneal', torch_sgd, 1),
          ('fit_one_cycle', AdamAnneal, 1)]

@pytest.mark.parametrize('method,opt_func,k', RESUME, ids=[f'{m}-{o.__name__}-{k}' for m,o,k in RESUME])
def test_resume_is_exact(method, opt_func, k, tmp_path):
    "A new process loads epoch k's checkpoint and resumes: the same lrs, batch for batch, and the same plateau state at the end"
    _,args,kwargs = FITS.get(method, (method, (4, 1e-2), {}))
    if method == 'fit_one_cycle': args = (4, 1e-2)
    save,fname = (SaveEveryEpoch,'epoch_{}') if method == 'fine_tune_anneal' else (partial(SaveModelCallback, every_epoch=True,
                                                                                            with_opt=True),'model_{}')
    mk = lambda p: mk_learner(n_train=4, opt_func=opt_func, path=tmp_path/p, model_dir='models')
    kw = dict(PLATEAU, threshold=0.9)  # every epoch after the first is bad: reductions and cooldowns alternate
    full,rec_full,cb_full = mk('full'),RecordHypers(),AnnealPlateau(**kw)
    quiet_fit(full, method, *args, **kwargs, cbs=[save(), rec_full, cb_full])
    dying = mk('run')
    quiet_fit(dying, method, *args, **kwargs, cbs=[save(), Interrupt(k+1), AnnealPlateau(**kw)])
    resumed,rec,cb = mk('run'),RecordHypers(),AnnealPlateau(**kw)
    resumed.load(fname.format(k), with_opt=True)
    saved = plateau_state(resumed.opt)
    if k: assert saved['scale'] < 1  # a state worth resuming (fine_tune's k=0: its frozen phase's)
    quiet_fit(resumed, method, *args, **kwargs, start_epoch=k+1, cbs=[rec, cb])
    test_eq(rec.hps, rec_full.hps[(k+1)*4:])
    test_eq(cb.state_dict(), cb_full.state_dict())

def test_validate_before_resuming_keeps_the_state(tmp_path):
    "`learn.validate()` sends `before_fit`/`after_fit` to a Learner-level callback: the checkpoint's state must survive it"
    kw = dict(PLATEAU, threshold=0.9)
    full,cb_full = mk_learner(path=tmp_path, model_dir='models'),AnnealPlateau(**kw)
    quiet_fit(full, 'fit_flat_anneal', 4, 1e-2, cbs=[cb_full, SaveModelCallback(every_epoch=True, with_opt=True)])
    cb = AnnealPlateau(**kw)
    resumed = mk_learner(path=tmp_path, model_dir='models', cbs=cb)
    resumed.load('model_1', with_opt=True)
    with resumed.no_bar(): resumed.validate()
    quiet_fit(resumed, 'fit_flat_anneal', 4, 1e-2, start_epoch=2)
    test_eq(resumed.recorder.hps['lr'], full.recorder.hps['lr'][10:])
    test_eq(cb.state_dict(), cb_full.state_dict())

@pytest.mark.parametrize('opt_func', [Adam, sgd, AdamAnneal, partial(AdamAnneal, impl='stepper')])
def test_a_fit_without_the_callback_after_loading_its_checkpoint(opt_func, tmp_path):
    "The state is then a hyper no stepper and no fused kernel reads: training goes on as without it"
    mk = lambda: mk_learner(opt_func=opt_func, path=tmp_path, model_dir='models')
    learn = mk()
    quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2, cbs=AnnealPlateau(**PLATEAU))
    learn.save('x', with_opt=True)
    a,b = mk(),mk()
    a.load('x', with_opt=True); b.load('x', with_opt=True)
    assert plateau_state(a.opt) is not None
    for k in [k for k in b.opt.hypers[0] if k.startswith(STATE_KEY)]: del b.opt.hypers[0][k]
    quiet_fit(a, 'fit_cos_anneal', 1, 1e-3); quiet_fit(b, 'fit_cos_anneal', 1, 1e-3)
    for p,q in zip(a.model.parameters(), b.model.parameters()): test_eq(p, q)

def test_resume_from_a_checkpoint_holding_the_state_as_one_dict(tmp_path):
    "Checkpoints of the first version hold the state as one dict under `STATE_KEY`: a resume still reads it"
    kw = dict(PLATEAU, threshold=0.9)
    full,cb_full = mk_learner(path=tmp_path, model_dir='models'),AnnealPlateau(**kw)
    quiet_fit(full, 'fit_flat_anneal', 4, 1e-2, cbs=[cb_full, SaveModelCallback(every_epoch=True, with_opt=True)])
    resumed,cb = mk_learner(path=tmp_path, model_dir='models'),AnnealPlateau(**kw)
    resumed.load('model_1', with_opt=True)
    h = resumed.opt.hypers[0]
    old = {k[len(STATE_KEY)+1:]: h.pop(k) for k in [k for k in h if k.startswith(STATE_KEY + '_')]}
    h[STATE_KEY] = old
    quiet_fit(resumed, 'fit_flat_anneal', 4, 1e-2, start_epoch=2, cbs=cb)
    test_eq(resumed.recorder.hps['lr'], full.recorder.hps['lr'][10:])
    test_eq(cb.state_dict(), cb_full.state_dict())
    assert STATE_KEY not in resumed.opt.hypers[0] and plateau_state(resumed.opt) == cb.state_dict()

def test_resume_without_a_saved_state_warns(tmp_path):
    learn = mk_learner(path=tmp_path, model_dir='models')
    quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2, cbs=SaveModelCallback(every_epoch=True, with_opt=True))
    learn = mk_learner(path=tmp_path, model_dir='models')
    learn.load('model_0', with_opt=True)
    cb = AnnealPlateau(**PLATEAU)
    with pytest.warns(UserWarning, match='holds no plateau state'):
        quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2, start_epoch=1, cbs=cb)
    test_eq(cb.epochs, 2)

def test_resume_on_the_training_loss_warns(tmp_path):
    "fastai's `train_loss` is smoothed afresh in each fit and no checkpoint holds it: a resume cannot see the values the run saw"
    kw = dict(PLATEAU, monitor='train_loss')
    learn = mk_learner(path=tmp_path, model_dir='models')
    quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2, cbs=[AnnealPlateau(**kw), SaveModelCallback(every_epoch=True, with_opt=True)])
    learn = mk_learner(path=tmp_path, model_dir='models')
    learn.load('model_0', with_opt=True)
    with pytest.warns(UserWarning, match="resuming with monitor='train_loss'"):
        quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2, start_epoch=1, cbs=AnnealPlateau(**kw))

def test_each_fit_starts_fresh():
    "As fastai's trackers (`reset_on_fit`): a new fit that is not a resume starts at scale 1, even from an optimizer holding a state"
    learn,cb = mk_learner(),AnnealPlateau(**PLATEAU)
    quiet_fit(learn, 'fit_flat_anneal', 3, 1e-2, cbs=cb)
    assert cb.scale < 1
    quiet_fit(learn, 'fit_flat_anneal', 1, 1e-2, cbs=cb)
    test_eq(learn.recorder.hps['lr'][0], 1e-2)

# ---------------------------------------------------------------- standing aside, files, bad calls at fit time
def test_stands_aside_in_lr_find_and_tuning_trials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cb = AnnealPlateau(patience=0, threshold=10., threshold_mode='abs')
    learn = mk_learner(cbs=cb, path=tmp_path)
    learn.lr_find(num_it=10, show_plot=False)
    quiet_fit(learn, 'fit', 3, cbs=TrialScheduler({'lr': SchedNo(1e-3, 1e-3)}, 12))
    test_eq((cb.scale, cb.epochs), (1., 0))
    assert plateau_state(learn.opt) is None
    quiet_fit(learn, 'fit_cos_anneal', 3, 1e-2)  # a Learner-level callback works in the fits
    test_close(cb.scale, 0.01); test_eq(cb.epochs, 3)
    assert not any(tmp_path.rglob('*'))  # and writes no file

@pytest.mark.parametrize('method', [m for m,v in VARIANTS.items() if not v.two_phase] + ['fine_tune_anneal'])
def test_unknown_monitor_and_min_lr_groups_raise_before_the_fit_touches_anything(method):
    "This package's fits ask the callback before `Learner.fit` creates the optimizer or sets its lr (fit_cooldown reads that lr)"
    learn = mk_learner(groups=2)
    quiet_fit(learn, 'fit_flat_anneal', 1, 3e-3, pct_start=1.)  # an optimizer holding a stable lr that a cooldown would start from
    before = learner_state(learn)
    ex = VARIANTS[method].examples[0]
    for cb,msg in ((AnnealPlateau('accuracy'), r"monitor must be one of the recorded values \['train_loss', 'valid_loss'\]"),
                   (AnnealPlateau(min_lr=[0., 1e-5, 1e-4]), 'min_lr has 3 values but the optimizer has 2 parameter group')):
        with pytest.raises(ValueError, match=msg): quiet_fit(learn, method, **ex, cbs=cb)
        assert_restored(before, learner_state(learn))
        learn.add_cb(cb)  # attached to the learner: the same check
        with pytest.raises(ValueError, match=msg): quiet_fit(learn, method, **ex)
        learn.remove_cb(cb)
        assert_restored(before, learner_state(learn))

def test_fastai_fits_raise_at_before_fit():
    "fastai's own fits reach the check in `before_fit`, as fastai's trackers do"
    with pytest.raises(ValueError, match='monitor must be one of the recorded values'):
        quiet_fit(mk_learner(), 'fit_one_cycle', 1, cbs=AnnealPlateau('accuracy'))

@pytest.mark.parametrize('train_metrics,valid_metrics', [(False, True), (True, True), (True, False), (False, False)])
def test_recorded_names_known_before_the_first_fit(train_metrics, valid_metrics):
    "The names the monitor is checked against are the `Recorder`'s own once it has fitted"
    from fastai_anneal.plateau import _recorded
    learn = mk_learner(metrics=[mse, rmse])
    learn.recorder.train_metrics,learn.recorder.valid_metrics = train_metrics,valid_metrics
    before = _recorded(learn)
    quiet_fit(learn, 'fit', 1, 1e-3)
    test_eq(before, [n for n in learn.recorder.metric_names[1:] if n != 'time'])

@pytest.mark.parametrize('monitor,mode', [('valid_loss', 'min'), ('_rmse', 'min'), ('mae', 'min'), ('valid_mse', 'min'),
                                          ('_exp_rmspe', 'min'), ('perplexity', 'min'), ('error_rate', 'min'), ('accuracy', 'max'),
                                          ('r2_score', 'max'), ('valid_accuracy', 'max')])
def test_mode_follows_what_the_monitored_value_is(monitor, mode):
    "`mode=None` minimises losses, errors and fastai's regression metrics (`_rmse`, `mae`: torch's default 'min'), maximises the rest"
    assert AnnealPlateau(monitor=monitor).mode == mode

# ---------------------------------------------------------------- the rule, against torch
def test_step_takes_a_tensor_or_a_decimal_as_a_float():
    ("As torch's `step` (`float(metrics)`): a 1-element tensor, a Decimal or a numpy scalar is accounted as a float, and the state "
     "stays plain numbers (caught: `value = float(value)` -> `value = value`)")
    cb,(opt,ref) = AnnealPlateau(patience=0, factor=0.5),torch_plateau(patience=0, factor=0.5)
    for v in (torch.tensor([2.]), Decimal('1.5'), np.float32(3.), torch.tensor(1.), Decimal('4')):
        cb.step(v); ref.step(v)
        test_close(cb.scale, opt.param_groups[0]['lr'], eps=1e-12)
        test_eq((cb.best, cb.num_bad_epochs, cb.cooldown_counter), (ref.best, ref.num_bad_epochs, ref.cooldown_counter))
    for k,v in cb.state_dict().items(): assert type(v) in (int, float), (k, v)

@pytest.mark.parametrize('v', [torch.tensor([1., 2.]), torch.tensor([1+2j]), torch.empty(1, device='meta')],
                         ids=['two_values', 'complex', 'meta'])
def test_step_refuses_a_tensor_that_is_no_number(v):
    ("float() raises ValueError (two values) or RuntimeError (a complex or a meta tensor): both are the same TypeError naming `value` "
     "(caught: RuntimeError dropped from the except; also caught: ValueError dropped)")
    with pytest.raises(TypeError, match='value must be a number'): AnnealPlateau().step(v)

def test_a_nan_epoch_is_a_bad_epoch_as_torchs():
    "A NaN monitored value is no improvement: it counts as a bad epoch and never becomes `best` (caught: NaN counted as an improvement)"
    kw = dict(patience=1, factor=0.5)
    cb,(opt,ref) = AnnealPlateau(**kw),torch_plateau(**kw)
    for v in [1., math.nan, math.nan, 0.5, math.nan, math.nan]:
        cb.step(v); ref.step(v)
        test_close(cb.scale, opt.param_groups[0]['lr'], eps=1e-12)
        test_eq((cb.best, cb.num_bad_epochs, cb.cooldown_counter), (ref.best, ref.num_bad_epochs, ref.cooldown_counter))
    test_eq(cb.scale, 0.25)

def test_a_drop_of_exactly_eps_is_skipped_as_torchs():
    "torch takes a reduction only when it lowers the lr by more than `eps` (caught: `max(drops) > eps` -> `>=`)"
    kw = dict(factor=0.5, eps=0.5, **BAD_EPOCHS)
    cb,(opt,ref) = AnnealPlateau(**kw),torch_plateau(**kw)
    for v in (1., 2., 3.):
        cb.step(v); ref.step(v)
        test_eq(cb.scale, opt.param_groups[0]['lr'])
    test_eq(cb.scale, 1.)  # 1 - 0.5 is not > 0.5
    cb2 = AnnealPlateau(**kw)  # the same with plain `fit`'s constant lrs: the drop of the lr 1.0 is 0.5
    for v in (1., 2., 3.): cb2.step(v, [1.])
    test_eq(cb2.scale, 1.)

def test_one_scale_moves_when_any_groups_drop_exceeds_eps():
    ("Plain `fit` with two groups: the groups share one scale, and a reduction that lowers one group's lr by more than `eps` is "
     "taken even where the other group's drop is within `eps` (caught: `max(drops)` -> `min(drops)`)")
    cb = AnnealPlateau(factor=0.1, eps=1e-8, **BAD_EPOCHS)
    for v in (1., 2.): cb.step(v, [1e-8, 1e-2])  # drops 9e-9 (<= eps) and 9e-3
    test_close(cb.scale, 0.1, eps=1e-15)

# ---------------------------------------------------------------- min_lr per group
def test_a_min_lr_list_of_one_value_is_one_floor_for_every_group():
    "`min_lr=[m]` on two groups is `min_lr=m` (caught: a one-value list is not broadcast, and the fit is refused)"
    def lrs(min_lr):
        learn,rec = mk_learner(groups=2),RecordHypers()
        quiet_fit(learn, 'fit', 6, [1e-3, 1e-2], cbs=[AnnealPlateau(min_lr=min_lr, **PLATEAU), rec])
        return np.array(rec.lrs)
    a,b = lrs([4e-4]),lrs(4e-4)
    np.testing.assert_array_equal(a, b)
    assert a[-1, 0] == 4e-4  # the floor was reached

def test_fewer_min_lrs_than_groups_are_refused():
    ("Two values for three groups: refused, as three for two are (caught: `len(min_lr) != n` -> `>`, the third group would be left "
     "out of `lrs`, so not scaled)")
    cb = AnnealPlateau(min_lr=[1e-4, 1e-3])
    test_eq(len(cb.lrs([1e-2, 1e-2])), 2)
    with pytest.raises(ValueError, match='min_lr has 2 values but the optimizer has 3 parameter group'): cb.lrs([1e-2]*3)

# ---------------------------------------------------------------- what counts as a schedule
def test_a_momentum_only_scheduler_leaves_eps_on_each_groups_lr():
    ("Plain `fit` with a `ParamScheduler` that schedules the momentum only: the lr is still constant, so `eps` applies to each "
     "group's lr as torch's (caught: any ParamScheduler taken for an lr schedule, `eps` then applies to the scale)")
    kw = dict(**BAD_EPOCHS, factor=0.1, eps=1e-8)
    learn,rec,mon = mk_learner(n_train=2),RecordHypers(),Monitored()
    quiet_fit(learn, 'fit', 7, 1e-6, cbs=[AnnealPlateau(**kw), ParamScheduler({'mom': SchedCos(0.95, 0.85)}), rec, mon])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-6)
    ref,want = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw),[]
    for v in mon.fits[0]: want.append(opt.param_groups[0]['lr']); ref.step(v)
    assert min(want) > 1e-9  # the 1e-8 -> 1e-9 drop is within eps: torch holds the lr
    np.testing.assert_allclose(np.array(rec.lrs)[::2, 0], want, rtol=1e-9)

# ---------------------------------------------------------------- the state in the optimizer
def test_plateau_state_reads_a_torch_optimizer():
    ("`plateau_state` takes a torch optimizer (its signature says so): a fresh one holds no state; behind an `OptimWrapper`, the "
     "torch optimizer carries the same state as the wrapper (caught: torch optimizers refused; also caught: read through `.hypers`)")
    test_eq(plateau_state(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.)), None)
    learn = mk_learner(opt_func=torch_sgd)
    quiet_fit(learn, 'fit_flat_anneal', 3, 1e-2, cbs=AnnealPlateau(**PLATEAU))
    st = plateau_state(learn.opt.opt)
    assert st is not None and st['scale'] < 1
    test_eq(st, plateau_state(learn.opt))

# ---------------------------------------------------------------- resume
RESUME_KW = dict(patience=1, factor=0.5, threshold=10., threshold_mode='abs')  # e0 best; e1 bad 1; e2 bad 2: reduce; e3 bad 1; e4: reduce

def _run_and_resume(tmp_path, k, start=None):
    ("A 5-epoch run saving every epoch; a new learner loads epoch k's checkpoint and resumes at `start` (None: k+1). Returns both "
     "runs, their callbacks and the plateau's warnings")
    full,cb_full = mk_learner(path=tmp_path, model_dir='models'),AnnealPlateau(**RESUME_KW)
    quiet_fit(full, 'fit_flat_anneal', 5, 1e-2, cbs=[cb_full, SaveModelCallback(every_epoch=True, with_opt=True)])
    resumed,cb = mk_learner(path=tmp_path, model_dir='models'),AnnealPlateau(**RESUME_KW)
    resumed.load(f'model_{k}', with_opt=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        quiet_fit(resumed, 'fit_flat_anneal', 5, 1e-2, start_epoch=k+1 if start is None else start, cbs=cb)
    return full,cb_full,resumed,cb,[str(o.message) for o in w if 'AnnealPlateau' in str(o.message)]

def test_resume_in_the_middle_of_the_patience_is_exact(tmp_path):
    ("A checkpoint taken with one bad epoch counted (patience 1): the resumed run reduces at the same epoch as the uninterrupted "
     "one (caught: `num_bad_epochs` not loaded)")
    full,cb_full,resumed,cb,_ = _run_and_resume(tmp_path, 1)
    test_eq(resumed.recorder.hps['lr'], full.recorder.hps['lr'][10:])
    test_eq(cb.state_dict(), cb_full.state_dict())
    test_close(cb.scale, 0.25)

def test_resume_from_the_matching_checkpoint_does_not_warn(tmp_path):
    ("Epoch k's checkpoint resumed at k+1 is the expected case: no warning about the state's epoch (caught: `epochs` not loaded, "
     "every exact resume warns that the checkpoint's state is from epoch 0)")
    *_,warned = _run_and_resume(tmp_path, 2)
    test_eq(warned, [])

# ---------------------------------------------------------------- standing aside in get_preds
def test_get_preds_inside_a_fit_does_not_restart_the_plateau():
    ("A callback that calls `learn.get_preds()` after each epoch (fastai sends `before_fit`/`after_fit` to the learner's callbacks "
     "then, with `gather_preds` set): the plateau stands aside, as fastai's trackers do, and its decisions are those of the run "
     "without it (caught: the `gather_preds` test dropped, the plateau restarts at every epoch)")
    class Preds(Callback):
        order = 90
        def after_epoch(self):
            if not hasattr(self.learn, 'gather_preds'): self.learn.get_preds()
    class FitScales(Scales):
        def after_epoch(self):
            if not hasattr(self.learn, 'gather_preds'): super().after_epoch()  # the fit's epochs, not get_preds'
    def scales(*extra):
        plateau = AnnealPlateau(factor=0.5, **BAD_EPOCHS)
        rec = FitScales(plateau)
        quiet_fit(mk_learner(n_train=3), 'fit', 4, 1e-2, cbs=[plateau, rec, *extra])
        return rec.scales
    test_eq(scales(), [1., 0.5, 0.25, 0.125])
    test_eq(scales(Preds()), [1., 0.5, 0.25, 0.125])

@pytest.mark.parametrize('k,start', [(3, 2), (0, 3)], ids=['later_checkpoint', 'earlier_checkpoint'])
def test_resume_from_another_epochs_checkpoint_warns(tmp_path, k, start):
    ("A checkpoint of epoch k resumed at another epoch than k+1, later or earlier: warned (caught: `epochs != skip` -> `<`, a "
     "checkpoint from a later epoch is not warned about)")
    *_,warned = _run_and_resume(tmp_path, k, start)
    test_eq(len(warned), 1)
    assert f"plateau state is from epoch {k+1}, the fit resumes at epoch {start}" in warned[0], warned

# ---------------------------------------------------------------- cancelled epochs and validations
def test_an_epoch_whose_validation_is_cancelled_is_not_accounted():
    ("fastai's Recorder logs no validation values for an epoch whose validation is cancelled (`CancelValidException`): the plateau "
     "takes no step for it (caught: the `cancel_valid` test dropped, the step reads past the end of the log)")
    class NoValid(Callback):
        def before_validate(self):
            if self.epoch == 1: raise CancelValidException
    plateau = AnnealPlateau(factor=0.5, **BAD_EPOCHS)
    rec = Scales(plateau)
    quiet_fit(mk_learner(n_train=3), 'fit_flat_anneal', 4, 1e-2, pct_start=1., cbs=[plateau, rec, NoValid()])
    test_eq(rec.scales, [1., 1., 0.5, 0.25])  # epoch 0 sets the best, epoch 1 is not accounted, 2 and 3 reduce
    test_eq(plateau.epochs, 4)

def test_a_fit_cancelled_from_after_batch_stands_at_the_lr_scaled_once():
    ("A callback of lower order that cancels the fit (`CancelFitException`) from `after_batch` skips this one's `after_batch`: "
     "`after_fit` puts the schedule's lr back before it stands, so the optimizer holds the lr scaled once, and the state "
     "(caught: no `_put_back` in `after_fit`, the held lr is scaled twice)")
    class Stop(Callback):
        def after_batch(self):
            if self.training and self.epoch == 2 and self.iter == 1: raise CancelFitException
    plateau,learn = AnnealPlateau(factor=0.5, **BAD_EPOCHS),mk_learner(n_train=4)
    quiet_fit(learn, 'fit', 5, 1e-2, cbs=[plateau, Stop()])
    test_eq(plateau.scale, 0.5)
    test_close(learn.opt.hypers[0]['lr'], 5e-3, eps=1e-15)
    test_eq(plateau_state(learn.opt), plateau.state_dict())

def test_validate_after_loading_a_checkpoint_without_a_state_leaves_the_optimizer(tmp_path):
    ("A Learner-level callback whose fit reduced; then a checkpoint saved before that fit (no plateau state) is loaded and "
     "validated: `validate()` sends `after_fit`, which must not stand the loaded optimizer at the old fit's scale "
     "(caught: `self._started and` dropped from `after_fit`'s test)")
    learn = mk_learner(path=tmp_path, model_dir='models')
    quiet_fit(learn, 'fit_flat_anneal', 1, 1e-2, pct_start=1.)
    learn.save('before', with_opt=True)
    cb = AnnealPlateau(factor=0.5, **BAD_EPOCHS)
    learn.add_cb(cb)
    quiet_fit(learn, 'fit_flat_anneal', 3, 1e-2, pct_start=1.)
    assert cb.scale < 1
    learn.load('before', with_opt=True)
    assert plateau_state(learn.opt) is None
    lrs = [h['lr'] for h in learn.opt.hypers]
    with learn.no_bar(): learn.validate()
    test_eq([h['lr'] for h in learn.opt.hypers], lrs)
    assert plateau_state(learn.opt) is None
