"The `Learner` patches: recorded schedules equal the builders, exact resume, per-group lrs (bad input: tests/test_bad_input.py)."
import contextlib, warnings
from functools import partial
import numpy as np, pytest, torch
from fastai.basics import *
from fastai.test_utils import synth_dbunch, RegModel, synth_learner
from fastai.callback.tracker import SaveModelCallback, EarlyStoppingCallback
from fastai_anneal.all import *
from fastai_anneal.registry import VARIANTS as REGISTRY, Variant, _REGISTERED
from fastai_anneal.fit import register_variant
from conftest import mk_learner as _mk_learner, quiet_fit, RecordHypers

N_ITER = 5  # batches per epoch of the synthetic data

def mk_learner(**kwargs): return _mk_learner(n_train=N_ITER, **kwargs)


# each variant: (method, args, kwargs, n_epoch, builder of the same schedule given per-group lrs), one per registered example
def _row(v, ex):
    args = tuple(ex[k] for k in v.epoch_args) + ((ex[v.lr_arg],) if v.lr_arg in ex else ())
    build = lambda lrs: v.scheds(lrs, n_batch=N_ITER, **ex)  # the batches per epoch the fit counts (ignored where the builder does not)
    return v.method, args, {k: a for k,a in ex.items() if k not in (*v.epoch_args, v.lr_arg)}, v.n_epoch(**ex), build
VARIANTS = {f'{v.name}{i}': _row(v, ex) for v in REGISTRY.values() if not v.two_phase for i,ex in enumerate(v.examples)}

@pytest.mark.parametrize('name', VARIANTS)
def test_recorded_lr_equals_builder(name):
    method,args,kwargs,n_epoch,build = VARIANTS[name]
    learn = mk_learner()
    quiet_fit(learn, method, *args, **kwargs)
    lr = args[-1] if len(args) > len(REGISTRY[method].epoch_args) else learn.lr
    scheds,n = build(np.array([lr])),n_epoch*N_ITER
    test_eq(len(learn.recorder.hps['lr']), n)
    # fastai's pct_train accumulates 1/n per batch, so positions differ from t/n by a few ulps at most
    np.testing.assert_allclose(learn.recorder.hps['lr'], [scheds['lr'](t/n)[0] for t in range(n)], rtol=1e-9)
    if 'mom' in scheds: np.testing.assert_allclose(learn.recorder.hps['mom'], [scheds['mom'](t/n) for t in range(n)], rtol=1e-9)
    assert 'mom' in scheds or 'mom' not in learn.recorder.hps  # moms=None leaves momentum alone

@pytest.mark.parametrize('name', VARIANTS)
@pytest.mark.parametrize('k', [1, 2])
def test_resume_reproduces_tail_exactly(name, k):
    method,args,kwargs,n_epoch,_ = VARIANTS[name]
    full = mk_learner()
    quiet_fit(full, method, *args, **kwargs)
    resumed = mk_learner()
    quiet_fit(resumed, method, *args, start_epoch=k, **kwargs)
    for hp in full.recorder.hps:  # bit for bit, lr and mom
        test_eq(resumed.recorder.hps[hp], full.recorder.hps[hp][k*N_ITER:])

@pytest.mark.parametrize('lr,expect', [
    (slice(1e-2), [1e-3, 1e-2]), (slice(1e-4, 1e-2), [1e-4, 1e-2]), ([2e-3, 3e-3], [2e-3, 3e-3]), (5e-3, [5e-3, 5e-3])])
def test_per_group_lrs(lr, expect):
    learn,rec = mk_learner(groups=2),RecordHypers()
    quiet_fit(learn, 'fit_cos_anneal', 2, lr, pct_warmup=0.3, cbs=rec)
    scheds,n = cos_anneal_scheds(np.array(expect), pct_warmup=0.3),2*N_ITER
    np.testing.assert_allclose(np.array(rec.lrs), np.stack([scheds['lr'](t/n) for t in range(n)]), rtol=1e-9)
    assert max(rec.lrs, key=lambda v: v[1]) == expect  # the peak reaches each group's lr

def test_fine_tune_anneal_phases():
    learn,rec = mk_learner(groups=2),RecordHypers()
    with learn.no_bar(), learn.no_logging(): learn.fine_tune_anneal(2, base_lr=4e-3, freeze_epochs=1, lr_mult=10, cbs=rec)
    lrs = np.array(rec.lrs)
    test_eq(len(lrs), 3*N_ITER)
    frozen,unfrozen = lrs[:N_ITER],lrs[N_ITER:]
    # frozen: slice(base_lr) puts base_lr/10 on the earlier group; unfrozen: base_lr/2, lr_mult between the groups
    for got,peaks,n in ((frozen, [4e-4, 4e-3], N_ITER), (unfrozen, [2e-4, 2e-3], 2*N_ITER)):
        s = cos_anneal_scheds(np.array(peaks), pct_warmup=0.1)['lr']
        np.testing.assert_allclose(got, np.stack([s(t/n) for t in range(n)]), rtol=1e-9)
    assert not learn.opt.frozen_idx  # unfrozen at the end

def test_fine_tune_anneal_freeze_epochs_zero_and_kwargs():
    learn,rec = mk_learner(groups=2),RecordHypers()
    with learn.no_bar(), learn.no_logging(): learn.fine_tune_anneal(1, freeze_epochs=0, moms=(0.95, 0.85, 0.95), cbs=rec)
    test_eq(len(rec.lrs), N_ITER)
    assert rec.moms[0][0] == 0.95

def test_fine_tune_anneal_zero_epochs_trains_the_head_only():
    "`fine_tune_anneal(0, freeze_epochs=k)`, as fastai's `fine_tune(0, freeze_epochs=k)`: the frozen phase alone, then unfrozen (it was refused)"
    learn,rec = mk_learner(groups=2),RecordHypers()
    with learn.no_bar(), learn.no_logging(): learn.fine_tune_anneal(0, base_lr=4e-3, freeze_epochs=2, cbs=rec)
    s,n = cos_anneal_scheds(np.array([4e-4, 4e-3]), pct_warmup=0.1)['lr'],2*N_ITER
    np.testing.assert_allclose(np.array(rec.lrs), np.stack([s(t/n) for t in range(n)]), rtol=1e-9)
    ref = mk_learner(groups=2)
    with ref.no_bar(), ref.no_logging(): ref.fine_tune(0, freeze_epochs=2)
    assert learn.opt.frozen_idx == ref.opt.frozen_idx == 0  # unfrozen at the end, as fastai leaves it
    res = _mk_learner(n_train=20, groups=2).lr_tune(0, fit="fine_tune_anneal", freeze_epochs=2)  # "auto" tunes the frozen phase
    assert res.n_steps == 40 and res.lr > 0

def test_training_improves_and_plot_sched():
    learn = mk_learner(lr=1e-1)
    xb,yb = learn.dls.one_batch()
    init_loss = learn.loss_func(learn.model(xb), yb)
    quiet_fit(learn, 'fit_cos_anneal', 3, pct_warmup=0.1, moms=(0.95, 0.85, 0.95))
    assert learn.loss_func(learn.model(xb), yb) < init_loss / 2
    import matplotlib; matplotlib.use('Agg')
    learn.recorder.plot_sched()  # needs hps recorded for every key

def test_sgdr_cycle_mult_one_where_fastai_fails():
    learn = mk_learner()
    with pytest.raises(ZeroDivisionError): quiet_fit(learn, 'fit_sgdr', 3, 1, cycle_mult=1)
    quiet_fit(learn, 'fit_sgdr_anneal', 3, 1, cycle_mult=1)
    lrs = learn.recorder.hps['lr']
    test_eq(len(lrs), 3*N_ITER)
    test_eq([lrs[i*N_ITER] for i in range(3)], [learn.lr]*3)  # every restart lands on the epoch's first batch

def test_flat_anneal_honours_start_epoch_where_fastai_does_not():
    fa = mk_learner(); quiet_fit(fa, 'fit_flat_cos', 4, start_epoch=2)
    ours = mk_learner(); quiet_fit(ours, 'fit_flat_anneal', 4, start_epoch=2)
    test_eq(len(fa.recorder.hps['lr']), 4*N_ITER)   # fastai silently reruns from epoch 0
    test_eq(len(ours.recorder.hps['lr']), 2*N_ITER)

def test_cooldown_after_a_noisy_stable_phase_starts_from_the_stable_lr():
    "timm's noise perturbs each batch's lr; after the fit the optimizer holds the schedule's lr, where `fit_cooldown()` starts"
    learn = _mk_learner(n_train=5)
    rec = RecordHypers()
    quiet_fit(learn, 'fit_flat_anneal', 3, 1e-2, pct_start=1., noise_range_t=0, cbs=rec)
    assert rec.lrs[-1][0] != 1e-2  # the last batch ran at a noisy lr
    test_eq([h['lr'] for h in learn.opt.hypers], [1e-2])
    rec = RecordHypers()
    quiet_fit(learn, 'fit_cooldown', 2, cbs=rec)
    test_close(rec.lrs[0], [1e-2])

def test_noisy_epoch_checkpoints_hold_the_schedules_lr(tmp_path):
    "An epoch's checkpoint of a noisy stable run holds the lr without noise: `fit_cooldown()` branched from it starts at the stable lr"
    learn = mk_learner(path=tmp_path)
    quiet_fit(learn, 'fit_flat_anneal', 4, 1e-2, pct_start=1., noise_range_t=0, cbs=SaveModelCallback(every_epoch=True, with_opt=True))
    branch,rec = mk_learner(path=tmp_path),RecordHypers()
    branch.load('model_2', with_opt=True)
    test_eq([h['lr'] for h in branch.opt.hypers], [1e-2])
    quiet_fit(branch, 'fit_cooldown', 1, cbs=rec)
    test_close(rec.lrs[0], [1e-2])

def test_fine_tune_warns_that_phases_share_checkpoint_names(tmp_path):
    "fastai's `SaveModelCallback(every_epoch=True)` numbers each phase from 0: the warning gives the mapping to `start_epoch`"
    learn = mk_learner(groups=2, path=tmp_path)
    with pytest.warns(UserWarning, match=r'its `model_k` is epoch 2\+k of the run \(resume from it with start_epoch=2\+k\+1\)'):
        quiet_fit(learn, 'fine_tune_anneal', 1, freeze_epochs=2, cbs=SaveModelCallback(every_epoch=True, with_opt=True))
    test_eq(sorted(p.name for p in (tmp_path/'models').iterdir()), ['model_0.pth', 'model_1.pth'])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        quiet_fit(mk_learner(groups=2, path=tmp_path), 'fine_tune_anneal', 1, freeze_epochs=0,
                  cbs=SaveModelCallback(every_epoch=True, with_opt=True))

@pytest.mark.parametrize('method', ['fit_cos_anneal', 'fit_flat_anneal', 'fit_sgdr_anneal', 'fit_step_decay'])
def test_weight_decay_per_group(method):
    "`wd` as a list or a slice gives one weight decay per param group, as fastai's `fit_one_cycle(wd=[...])` does"
    for wd,want in (([0.1, 0.], [0.1, 0.]), (slice(0.1), [0.01, 0.1])):
        learn = mk_learner(groups=2)
        quiet_fit(learn, method, *((1, 1) if method == 'fit_sgdr_anneal' else (1,)), wd=wd)
        test_close([h['wd'] for h in learn.opt.hypers], want)
    ref = mk_learner(groups=2)
    quiet_fit(ref, 'fit_one_cycle', 1, wd=[0.1, 0.])
    test_eq([h['wd'] for h in ref.opt.hypers], [0.1, 0.])

@pytest.mark.parametrize('anneal', ['sqrt', 'cos', 'lin'])
@pytest.mark.parametrize('stable,cool,warmup', [(2, 3, 0), (4, 1, 0), (1, 1, 0), (2, 3, 1), (4, 1, 2)])
def test_cooldown_is_the_tail_of_flat_anneal(tmp_path, anneal, stable, cool, warmup):
    "A stable run (`warmup` epochs of warmup first) checkpointed every epoch, loaded at epoch `stable`, then `fit_cooldown(cool)`: the"
    " lrs of the last `cool` epochs of `fit_flat_anneal(stable+cool, pct_start=stable/(stable+cool))`, batch for batch, every group"
    n = stable + cool
    a = mk_learner(groups=2, path=tmp_path)
    quiet_fit(a, 'fit_flat_anneal', 6, slice(1e-3, 1e-2), pct_start=1., pct_warmup=warmup/6,
              cbs=SaveModelCallback(every_epoch=True, with_opt=True))
    a.load(f'model_{stable-1}', with_opt=True)  # after `stable` epochs (the checkpoint of a later epoch than the warmup's last)
    ra,rb = RecordHypers(),RecordHypers()
    quiet_fit(a, 'fit_cooldown', cool, anneal=anneal, cbs=ra)  # lr None: where each group stands
    b = mk_learner(groups=2)
    quiet_fit(b, 'fit_flat_anneal', n, slice(1e-3, 1e-2), pct_start=stable/n, pct_warmup=warmup/n, anneal=anneal, cbs=rb)
    tail = rb.lrs[-cool*N_ITER:]
    assert len(ra.lrs) == len(tail)
    np.testing.assert_allclose(ra.lrs, tail, rtol=1e-9, atol=0)
    assert ra.lrs[0][1] == pytest.approx(1e-2) and ra.lrs[-1][1] < 1e-2 * 0.5

@pytest.mark.parametrize('n', [1, 2, 3])
def test_scheduler_writes_hypers_as_fastais_set_hyper(n):
    "The scheduler's direct write into a plain `Optimizer`'s hypers leaves what fastai's `set_hyper` leaves (values and types)"
    from fastai_anneal.fit import _set_hyper
    ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(n)]
    for v in (1e-3, 0., np.full(n, 2e-3), np.linspace(1e-4, 1e-3, n), [1e-3]*n, slice(1e-4, 1e-2)):
        a,b = Adam([[p] for p in ps], lr=1.),Adam([[p] for p in ps], lr=1.)
        a.set_hyper('lr', v); _set_hyper(b, 'lr', v)
        test_eq([(h['lr'], type(h['lr'])) for h in a.hypers], [(h['lr'], type(h['lr'])) for h in b.hypers])
    # an optimizer whose hypers live elsewhere (torch's, behind `OptimWrapper`) goes through its own `set_hyper`
    w = OptimWrapper(opt=torch.optim.SGD([dict(params=[p]) for p in ps], lr=1.))
    _set_hyper(w, 'lr', np.full(n, 0.5))
    test_eq([g['lr'] for g in w.opt.param_groups], [0.5]*n)
    class Hooked(Optimizer):  # a subclass that acts on every hyper it is given keeps seeing them
        def set_hyper(self, k, v): self.seen = (k, v); super().set_hyper(k, v)
    o = Hooked([[p] for p in ps], [sgd_step], lr=1.)
    _set_hyper(o, 'lr', 0.25)
    test_eq(o.seen, ('lr', 0.25)); test_eq([h['lr'] for h in o.hypers], [0.25]*n)

def test_a_0d_tensor_or_array_lr_is_the_number_it_holds():
    "`fit_*(n, torch.tensor(lr))` (what `x.max()` gives) trains exactly as the float: the checks take a 0-d tensor or array as its number"
    runs = []
    for lr,wd in ((1e-2, 0.01), (torch.tensor(1e-2), np.array(0.01))):
        learn = mk_learner()
        quiet_fit(learn, 'fit_cos_anneal', 1, lr, wd=wd)
        runs.append([p.detach().clone() for p in learn.model.parameters()])
    assert all(torch.equal(a, b) for a,b in zip(*runs))

@pytest.mark.parametrize('call,warns', [(('fit_cos_anneal', 1, 1e-2, dict(pct_warmup=0.1)), True),   # its one epoch at lr/25
                                        (('fine_tune_anneal', 2, 2e-3, {}), True),                   # each phase below its peak
                                        (('fit_cos_anneal', 10, 1e-2, dict(pct_warmup=0.2)), False), # 2 warmup epochs, then the peak
                                        (('fit_cos_anneal', 2, 1e-2, {}), False),                    # torch's CosineAnnealingLR
                                        (('fit_sgdr_anneal', 3, 1, 1e-2, dict(cycle_mult=2)), False)])
def test_epoch_stepping_that_never_reaches_the_peak_warns(call, warns):
    "`step='epoch'` holds an epoch at its start's lr: a warmup shorter than an epoch takes all of it, and the peak is never trained at"
    method,*args,kw = call
    learn = mk_learner()
    with warnings.catch_warnings(record=True) as w, learn.no_bar(), learn.no_logging():
        warnings.simplefilter('always')
        getattr(learn, method)(*args, step='epoch', **kw)
    assert any("step='epoch' holds each epoch at the lr schedule's value" in str(x.message) for x in w) == warns

# ------------------------------------------------------------------ behaviours a mutation audit found unpinned (twenty-second session)
def test_fine_tune_noise_counts_the_epochs_of_both_phases():
    "noise_range_t=(1, 2) with one frozen epoch: the noise is on the unfrozen phase (the run's epoch 1), and not on the frozen one"
    learn,rec = mk_learner(groups=2),RecordHypers()
    quiet_fit(learn, 'fine_tune_anneal', 1, base_lr=4e-3, freeze_epochs=1, noise_range_t=(1, 2), cbs=rec)
    lrs = np.array(rec.lrs)
    frozen = cos_anneal_scheds(np.array([4e-4, 4e-3]), pct_warmup=0.1)['lr']
    unfrozen = cos_anneal_scheds(np.array([2e-5, 2e-3]), pct_warmup=0.1)['lr']
    np.testing.assert_allclose(lrs[:N_ITER], np.stack([frozen(t/N_ITER) for t in range(N_ITER)]), rtol=1e-9)
    ratio = lrs[N_ITER:] / np.stack([unfrozen(t/N_ITER) for t in range(N_ITER)])
    assert np.all(np.abs(ratio - 1) > 1e-6)  # every batch of the unfrozen phase is noisy

# ------------------------------------------------------------------ optimizers wrapped or of one's own, and a builder's hyper names

@contextlib.contextmanager
def registered(method, builder):
    "A run-time variant `method` of `builder(lr)`, taken out again"
    v = register_variant(Variant(method, builder, 'lr', doc='A test variant', fastai='fit', reference='its builder',
                                 examples=(dict(n_epoch=1, lr=1e-2),)))
    try: yield v
    finally: del _REGISTERED[v.method]; delattr(Learner, v.method)

class KwSGD(torch.optim.SGD):
    "A torch optimizer whose momentum comes through **kwargs: which hypers it takes is not in its signature"
    def __init__(self, params, lr=0.1, **kwargs): super().__init__(params, lr=lr, momentum=kwargs.get('momentum', 0.9))

def test_a_torch_optimizer_taking_kwargs_is_not_refused_a_momentum_schedule():
    learn = mk_learner(opt_func=partial(OptimWrapper, opt=KwSGD))
    quiet_fit(learn, 'fit_cyclic', 1, 1e-2)  # cycles the momentum, which KwSGD's param groups hold
    assert len(learn.recorder.hps['mom']) == N_ITER

def test_an_explicit_hp_map_of_none_is_fastais_default_map():
    "`OptimWrapper(hp_map=None)` maps torch's names as fastai does by default"
    learn = mk_learner(opt_func=partial(OptimWrapper, opt=torch.optim.SGD, hp_map=None))
    quiet_fit(learn, 'fit_cyclic', 1, 1e-2)
    assert len(learn.recorder.hps['mom']) == N_ITER

def test_a_builder_may_schedule_torch_adams_second_beta():
    "torch's Adam behind `OptimWrapper` takes `sqr_mom` (its `betas[1]`): a variant scheduling it is not refused"
    with registered('fit_sqr', lambda lr: {'lr': lambda pos: lr, 'sqr_mom': lambda pos: 0.99 - 0.09*pos}):
        learn = mk_learner(opt_func=partial(OptimWrapper, opt=torch.optim.Adam))
        quiet_fit(learn, 'fit_sqr', 1, 1e-2)
        assert learn.opt.opt.param_groups[0]['betas'][1] == pytest.approx(0.99 - 0.09*(N_ITER-1)/N_ITER)

def alpha_step(p, lr, alpha, **kwargs):
    "SGD whose step is scaled by a hyper named as torch names RMSprop's"
    p.data.add_(p.grad.data, alpha=-lr*alpha)

def test_a_hyper_the_optimizer_has_is_not_refused_for_its_torch_like_name():
    "`alpha` is a torch name (RMSprop's), but this fastai `Optimizer` has a hyper `alpha` of its own: scheduling it is fine"
    with registered('fit_alpha', lambda lr: {'lr': lambda pos: lr, 'alpha': lambda pos: 1. - pos/2}):
        learn = mk_learner(opt_func=lambda ps, lr: Optimizer(ps, [alpha_step], lr=lr, alpha=1.))
        learn.create_opt()
        quiet_fit(learn, 'fit_alpha', 1, 1e-2)
        assert learn.opt.hypers[0]['alpha'] == pytest.approx(1. - (N_ITER-1)/N_ITER/2)

def test_epoch_stepping_warns_below_90_percent_of_the_peak():
    "fit_cos_anneal(2, pct_warmup=0.7, step='epoch'): its second epoch holds 73% of the peak (a linear warmup 5/7 done): warned"
    learn = mk_learner()
    with pytest.warns(UserWarning, match=r"never trains above 0\.00726, 73% of its peak 0\.01"):
        quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2, pct_warmup=0.7, step='epoch')

class CancelAt(Callback):
    "Cancels the fit after training batch `k` (fastai then skips `after_train` and runs `after_fit`)"
    order = 70  # after the scheduler recorded the batch
    def __init__(self, k): self.k = k
    def after_batch(self):
        if self.training and self.iter == self.k: raise CancelFitException()

def test_a_noisy_fit_cancelled_mid_epoch_leaves_the_lr_without_noise():
    "A cancelled fit skips `after_train`: `after_fit` still takes the noise out of the lr the optimizer holds (`fit_cooldown` starts there)"
    learn = mk_learner()
    quiet_fit(learn, 'fit_flat_anneal', 2, 1e-2, pct_start=1., noise_range_t=0, cbs=CancelAt(2))
    assert learn.recorder.hps['lr'][-1] != 1e-2  # the last batch ran noisy
    assert [h['lr'] for h in learn.opt.hypers] == [1e-2]

def test_reset_opt_makes_a_new_optimizer():
    learn = mk_learner()
    quiet_fit(learn, 'fit_cos_anneal', 1)
    opt = learn.opt
    quiet_fit(learn, 'fit_cos_anneal', 1, reset_opt=True)
    assert learn.opt is not opt
    opt = learn.opt
    quiet_fit(learn, 'fit_cos_anneal', 1)
    assert learn.opt is opt  # kept without reset_opt

# ------------------------------------------------------------------ a cooldown branch's checkpoints, a resume's warnings
def test_a_resumed_cooldown_does_not_count_checkpoints_of_the_epochs_it_skips(tmp_path):
    "`fit_cooldown(3, lr, start_epoch=1)` with `SaveModelCallback(every_epoch=True)` writes model_1, model_2: a model_0 is no clash"
    learn = mk_learner(path=tmp_path)
    learn.save('model_0')  # the interrupted cooldown's own first checkpoint
    quiet_fit(learn, 'fit_cooldown', 3, 1e-2, start_epoch=1, cbs=SaveModelCallback(every_epoch=True))
    assert sorted(p.name for p in (tmp_path/'models').iterdir()) == ['model_0.pth', 'model_1.pth', 'model_2.pth']

def test_a_cooldown_checks_only_the_epochs_its_saver_writes(tmp_path):
    "`SaveModelCallback(every_epoch=2)` over a 2-epoch cooldown writes model_0 alone: the run's model_1 is not in its way"
    learn = mk_learner(path=tmp_path)
    learn.save('model_1')
    quiet_fit(learn, 'fit_cooldown', 2, 1e-2, cbs=SaveModelCallback(every_epoch=2))
    assert sorted(p.name for p in (tmp_path/'models').iterdir()) == ['model_0.pth', 'model_1.pth']

def test_a_resume_does_not_warn_about_a_tracker_that_keeps_its_best():
    "A tracker with `reset_on_fit=False` keeps its `best` across fits: the resume has nothing to warn about it"
    learn = mk_learner()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        quiet_fit(learn, 'fit_cos_anneal', 3, start_epoch=1, cbs=EarlyStoppingCallback(reset_on_fit=False))
    assert not [x for x in w if 'start(s) afresh' in str(x.message)], [str(x.message) for x in w]
    with pytest.warns(UserWarning, match=r"fit_cos_anneal: resuming at epoch 1, EarlyStoppingCallback\(monitor='valid_loss'\) start\(s\) afresh"):
        quiet_fit(mk_learner(), 'fit_cos_anneal', 3, start_epoch=1, cbs=EarlyStoppingCallback())

def test_fine_tune_anneal_defaults_are_fastais():
    ("`fine_tune_anneal(1)`: one frozen epoch peaking at base_lr=2e-3 (slice: 2e-4 on the earlier group), then base_lr/2 with lr_mult=100 "
     "between the groups (fastai's `fine_tune` defaults), each phase 10% warmup then a cosine to peak/1e5")
    learn,rec = mk_learner(groups=2),RecordHypers()
    with learn.no_bar(), learn.no_logging(): learn.fine_tune_anneal(1, cbs=rec)
    lrs = np.array(rec.lrs)
    assert len(lrs) == 2*N_ITER
    for got,peaks in ((lrs[:N_ITER], [2e-4, 2e-3]), (lrs[N_ITER:], [1e-5, 1e-3])):
        s = cos_anneal_scheds(np.array(peaks), pct_warmup=0.1, div_final=1e5, anneal='cos')['lr']
        np.testing.assert_allclose(got, np.stack([s(t/N_ITER) for t in range(N_ITER)]), rtol=1e-9)

# ---------------------------------------------------------------- `_groups`: what a fit will run (twenty-fourth session's audit)
# kills G003
@pytest.mark.parametrize('drop_last,expect', [(True, 1), (False, 2)])
def test_a_rank_s_share_is_batched_as_its_loader_drops_the_rest(drop_last, expect, monkeypatch):
    "under `DistributedTrainer` (no process group needed to count): 80 items over 3 ranks is 27 each, in batches of 16"
    from fastai.distributed import DistributedTrainer
    from conftest import mk_learner
    from fastai_anneal._groups import train_batches
    learn = mk_learner(n_train=5)  # 80 items, bs 16
    learn.add_cb(DistributedTrainer())
    learn.dls.train.drop_last = drop_last
    monkeypatch.setenv('WORLD_SIZE', '3')
    assert train_batches(learn) == expect

# kills G002
def test_n_groups_counts_the_optimizer_s_groups_once_it_exists():
    "a fit without `reset_opt` steps the optimizer it has: its groups count, whatever the splitter now says"
    from fastai.basics import trainable_params
    from conftest import mk_learner
    from fastai_anneal._groups import n_groups
    learn = mk_learner(n_train=2, groups=2)
    assert n_groups(learn) == 2
    learn.create_opt(); learn.splitter = trainable_params
    assert n_groups(learn) == 2
