"""Exact resume through fastai's own checkpoints (`SaveModelCallback(every_epoch=True, with_opt=True)`, `learn.load`),
faults inside a fit, and how the schedule advances under mixed precision and gradient accumulation."""
import contextlib
from pathlib import Path
import numpy as np, pytest, torch
from fastai.basics import *
from fastai.callback.tracker import SaveModelCallback, EarlyStoppingCallback
from fastai.callback.training import GradientAccumulation
from fastai.callback.fp16 import MixedPrecision
from fastai.callback.schedule import ParamScheduler
from fastai.test_utils import synth_dbunch, RegModel
from fastai_anneal.all import *
from fastai_anneal.registry import VARIANTS as REGISTRY
from fastai_anneal.optimizer import AdamAnneal
from conftest import mk_learner as _mk_learner, quiet_fit as _quiet_fit, RecordHypers, CountSteps

N_ITER = 4

def mk_learner(path, opt_func=Adam, seed=0):
    "The same learner, data order included, each time: what a restarted process rebuilds"
    return _mk_learner(n_train=N_ITER, opt_func=opt_func, seed=seed, path=path, model_dir='models')

class Interrupt(Callback):
    "The machine dies at the start of epoch `epoch`, counted across fits (fine_tune_anneal runs two)"
    order = 0
    def __init__(self, epoch): self.at,self.n = epoch,0
    def before_epoch(self):
        if self.n == self.at: raise CancelFitException()
        self.n += 1

class SaveEveryEpoch(Callback):
    "`learn.save(f'epoch_{n}', with_opt=True)` after every epoch, `n` counted across fits: `SaveModelCallback` numbers epochs per fit, so fine_tune's two phases would overwrite each other's files"
    order = SaveModelCallback.order
    def __init__(self): self.n = 0
    def after_epoch(self): self.learn.save(f'epoch_{self.n}', with_opt=True); self.n += 1

class FailAtBatch(Callback):
    "Raise `exc` in the middle of training batch `n`"
    order = 65
    def __init__(self, n, exc): self.n,self.exc,self.i = n,exc,0
    def after_loss(self):
        if self.training:
            self.i += 1
            if self.i == self.n: raise self.exc('boom')

VARIANTS = {f'{v.name}{i}': (v.method, tuple(ex[k] for k in v.epoch_args), {k: a for k,a in ex.items() if k not in v.epoch_args})
            for v in REGISTRY.values() for i,ex in enumerate(v.examples)}  # every registered variant, each of its examples

def fit_quiet(learn, method, args, kwargs): _quiet_fit(learn, method, *args, **kwargs)

STEPPING = {'batch': {}, 'epoch': dict(step='epoch'), 'epoch_noise': dict(step='epoch', noise_range_t=1, noise_type='uniform'),
            'batch_noise': dict(noise_range_t=1)}  # fastai's per-batch schedules, torch's per-epoch stepping, timm's lr noise

@pytest.mark.parametrize('name', VARIANTS)
@pytest.mark.parametrize('k', [0, 1])  # k=0 resumes fine_tune in its unfrozen phase, k=1 inside it
@pytest.mark.parametrize('stepping', STEPPING)
def test_resume_from_checkpoint_is_exact(name, k, stepping, tmp_path):
    method,args,kwargs = VARIANTS[name]
    kwargs = {**kwargs, **STEPPING[stepping]}
    save,fname = (SaveEveryEpoch,'epoch_{}') if method == 'fine_tune_anneal' else (partial(SaveModelCallback, every_epoch=True, with_opt=True),'model_{}')
    full,rec_full = mk_learner(tmp_path/'full'),RecordHypers()
    fit_quiet(full, method, args, dict(kwargs, cbs=[save(), rec_full]))
    dying = mk_learner(tmp_path/'run')
    fit_quiet(dying, method, args, dict(kwargs, cbs=[save(), Interrupt(k+1)]))
    resumed,rec = mk_learner(tmp_path/'run'),RecordHypers()  # a new process: same construction, then fastai's loader
    resumed.load(fname.format(k), with_opt=True)
    fit_quiet(resumed, method, args, dict(kwargs, start_epoch=k+1, cbs=rec))
    test_eq(rec.hps, rec_full.hps[(k+1)*N_ITER:])  # the lr/mom sequence of every group, bit for bit
    for a,b in zip(full.model.parameters(), resumed.model.parameters()):  # same batches (ReplayShuffles), same weights
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)

@pytest.mark.parametrize('k', [0, 1])  # resumed where the unfrozen phase starts (0) or inside it (1): the frozen phase is replayed
def test_fine_tune_resumes_with_whole_float_epochs(k, tmp_path):
    "`freeze_epochs=1.0` (a whole float, accepted everywhere) resumes as `freeze_epochs=1` does: it was passed on unconverted to `range`"
    res = []
    for fe in (1, 1.0):
        dying = mk_learner(tmp_path/f'run{fe!r}')
        fit_quiet(dying, 'fine_tune_anneal', (2,), dict(base_lr=1e-2, freeze_epochs=fe, cbs=[SaveEveryEpoch(), Interrupt(k+1)]))
        resumed = mk_learner(tmp_path/f'run{fe!r}')
        resumed.load(f'epoch_{k}', with_opt=True)
        fit_quiet(resumed, 'fine_tune_anneal', (2,), dict(base_lr=1e-2, freeze_epochs=fe, start_epoch=float(k+1)))
        res.append([p.detach().clone() for p in resumed.model.parameters()])
    for a,b in zip(*res): test_eq(a, b)

def test_plain_fastai_resume_sees_other_batches(tmp_path):
    "Why `ReplayShuffles` exists: `SkipToEpoch` skips epochs without drawing their shuffles, so fastai's own resume trains on other batches"
    full = mk_learner(tmp_path/'full')
    fit_quiet(full, 'fit_one_cycle', (3,), dict(cbs=SaveModelCallback(every_epoch=True, with_opt=True)))
    resumed = mk_learner(tmp_path/'full')
    resumed.load('model_0', with_opt=True)
    fit_quiet(resumed, 'fit_one_cycle', (3,), dict(start_epoch=1))
    test_eq(resumed.recorder.hps['lr'], full.recorder.hps['lr'][N_ITER:])  # same lrs...
    assert not all(torch.allclose(a, b, rtol=1e-6, atol=1e-7) for a,b in zip(full.model.parameters(), resumed.model.parameters()))  # ...other weights

# ------------------------------------------------------------------ faults mid-epoch
@pytest.mark.parametrize('name', VARIANTS)
@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
def test_fault_mid_epoch_leaves_a_usable_learner(name, exc, tmp_path):
    method,args,kwargs = VARIANTS[name]
    learn = mk_learner(tmp_path)
    with pytest.raises(exc): fit_quiet(learn, method, args, dict(kwargs, cbs=FailAtBatch(N_ITER+2, exc)))
    assert not any(isinstance(cb, (ParamScheduler, FailAtBatch, ReplayShuffles)) for cb in learn.cbs)  # nothing stale
    # the next call schedules from scratch: its recorded lrs are its own builder's, from the first batch
    fit_quiet(learn, 'fit_cos_anneal', (2, 3e-3), {})
    s = cos_anneal_scheds(np.array([3e-3]))['lr']
    np.testing.assert_allclose(learn.recorder.hps['lr'], [s(t/(2*N_ITER))[0] for t in range(2*N_ITER)], rtol=1e-9)
    test_eq(set(learn.recorder.hps), {'lr'})  # no half-set momentum schedule left over

# ------------------------------------------------------------------ mixed precision, gradient accumulation
@pytest.mark.parametrize('name', VARIANTS)
@pytest.mark.parametrize('amp', ['fp16', 'bf16'])
def test_mixed_precision_keeps_the_schedule(name, amp, tmp_path):
    "fastai's `MixedPrecision` autocasts on CUDA only; on CPU it runs in fp32. Either way the schedule is per batch, as in fp32"
    method,args,kwargs = VARIANTS[name]
    ref,rec_ref = mk_learner(tmp_path),RecordHypers(); fit_quiet(ref, method, args, dict(kwargs, cbs=rec_ref))
    learn,rec = mk_learner(tmp_path),RecordHypers()
    learn.to_fp16() if amp == 'fp16' else learn.to_bf16()
    fit_quiet(learn, method, args, dict(kwargs, cbs=rec))
    test_eq(rec.hps, rec_ref.hps)

@pytest.mark.parametrize('name', VARIANTS)
def test_gradient_accumulation_advances_the_schedule_per_batch(name, tmp_path):
    "The schedule moves every batch (fastai's convention); the optimizer steps every `n_acc` samples"
    method,args,kwargs = VARIANTS[name]
    ref,rec_ref = mk_learner(tmp_path),RecordHypers(); fit_quiet(ref, method, args, dict(kwargs, cbs=rec_ref))
    learn,steps,rec = mk_learner(tmp_path),CountSteps(),RecordHypers()
    fit_quiet(learn, method, args, dict(kwargs, cbs=[GradientAccumulation(n_acc=2*16), steps, rec]))  # 2 batches of 16
    test_eq(rec.hps, rec_ref.hps)
    test_eq(steps.n, len(rec_ref.hps)//2)

# ------------------------------------------------------------------ AdamAnneal: its clock resumes and skips with the steps
def adam_anneal(): return partial(AdamAnneal, anneal_rate=0.8, anneal_every=N_ITER, impl='stepper')

@pytest.mark.parametrize('k', [0, 2])
def test_adam_anneal_resumes_exactly(k, tmp_path):
    "The anneal clock lives in the optimizer's hypers, so fastai's `with_opt=True` checkpoint carries it"
    kw = dict(pct_warmup=0.2)
    full,rec_full = mk_learner(tmp_path/'full', opt_func=adam_anneal()),RecordHypers()
    fit_quiet(full, 'fit_cos_anneal', (4,), dict(kw, cbs=[SaveModelCallback(every_epoch=True, with_opt=True), rec_full]))
    resumed,rec = mk_learner(tmp_path/'full', opt_func=adam_anneal()),RecordHypers()
    resumed.load(f'model_{k}', with_opt=True)
    test_eq(resumed.opt.anneal_steps, [(k+1)*N_ITER])  # the clock came back with the checkpoint
    fit_quiet(resumed, 'fit_cos_anneal', (4,), dict(kw, start_epoch=k+1, cbs=rec))
    test_eq(rec.hps, rec_full.hps[(k+1)*N_ITER:])
    test_eq(resumed.opt.anneal_steps, full.opt.anneal_steps)
    test_eq(resumed.opt.anneal_lrs, full.opt.anneal_lrs)
    for a,b in zip(full.model.parameters(), resumed.model.parameters()): torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)

class SkipSteps(Callback):
    "What `MixedPrecision` does when fp16 gradients overflow: `CancelStepException` in `before_step`"
    order = 15
    def __init__(self, skip): self.skip,self.i = set(skip),-1
    def before_step(self):
        self.i += 1
        if self.i in self.skip: raise CancelStepException()

def test_skipped_fp16_step_holds_the_anneal_clock(tmp_path):
    "A skipped step leaves the weights and AdamAnneal's clock alone; the lr schedule still advances (fastai: per batch)"
    ref,rec_ref = mk_learner(tmp_path, opt_func=adam_anneal()),RecordHypers()
    fit_quiet(ref, 'fit_cos_anneal', (2,), dict(cbs=rec_ref))
    learn,rec = mk_learner(tmp_path, opt_func=adam_anneal()),RecordHypers()
    fit_quiet(learn, 'fit_cos_anneal', (2,), dict(cbs=[SkipSteps({1, 2, 5}), rec]))
    test_eq(rec.hps, rec_ref.hps)                     # the schedule moved every batch
    test_eq(learn.opt.anneal_steps, [2*N_ITER - 3])   # the clock counts the steps taken
    test_eq(ref.opt.anneal_steps, [2*N_ITER])
    assert learn.opt.anneal_factors[0] == pytest.approx(0.8 ** ((2*N_ITER - 3)//N_ITER))

def test_a_resumed_fit_leaves_the_skipped_epochs_checkpoints_alone(tmp_path):
    ("fastai sends `after_epoch` to the epochs `start_epoch` skips: `SaveModelCallback(every_epoch=True)` wrote the checkpoint just "
     "loaded over every earlier one, and a save-on-best one read an empty log. The package's fits set trackers aside there")
    learn = mk_learner(tmp_path)
    _quiet_fit(learn, 'fit_cos_anneal', 4, 1e-2, cbs=SaveModelCallback(every_epoch=True, with_opt=True))
    models = tmp_path/'models'
    saved = {f.name: f.read_bytes() for f in models.glob('model_*.pth')}
    assert sorted(saved) == [f'model_{i}.pth' for i in range(4)]
    learn = mk_learner(tmp_path)
    learn.load('model_1', with_opt=True)
    best = SaveModelCallback(fname='best')  # save-on-best: an IndexError in the first skipped epoch before
    _quiet_fit(learn, 'fit_cos_anneal', 4, 1e-2, start_epoch=2, cbs=[SaveModelCallback(every_epoch=True, with_opt=True), best])
    assert all((models/n).read_bytes() == b for n,b in saved.items() if n in ('model_0.pth', 'model_1.pth'))  # untouched
    assert (models/'best.pth').exists() and best.run  # it ran on the epochs that ran, and stands ready for the next fit

def test_a_cooldown_branch_refuses_to_overwrite_the_runs_checkpoints(tmp_path):
    ("`fit_cooldown` numbers its epochs from 0: a learner-level `SaveModelCallback(every_epoch=...)` would write over model_0...; "
     "refused before anything runs, the checkpoints untouched; a branch with its own name runs")
    learn = mk_learner(tmp_path)
    with pytest.raises(ValueError, match='lr must be given: with lr=None fit_cooldown starts from the lr the optimizer holds'):
        learn.fit_cooldown(2)  # no optimizer holds an lr yet: `learn.lr` was taken silently
    learn.add_cb(SaveModelCallback(every_epoch=True, with_opt=True))
    _quiet_fit(learn, 'fit_flat_anneal', 3, 1e-2, pct_start=1.)
    models = tmp_path/'models'
    saved = {f.name: f.read_bytes() for f in models.glob('*.pth')}
    assert sorted(saved) == ['model_0.pth', 'model_1.pth', 'model_2.pth']
    learn.load('model_2', with_opt=True)
    w = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match=r"cbs: fit_cooldown numbers its epochs from 0, so SaveModelCallback\(every_epoch=...\) would "
                                         r"write over the run's own checkpoints model_0.pth, model_1.pth in"):
        _quiet_fit(learn, 'fit_cooldown', 2)
    assert {f.name: f.read_bytes() for f in models.glob('*.pth')} == saved
    assert all(torch.equal(a, b) for a,b in zip(w, learn.model.parameters()))
    with learn.removed_cbs(learn.cbs.filter(lambda c: isinstance(c, SaveModelCallback))):
        _quiet_fit(learn, 'fit_cooldown', 2, cbs=SaveModelCallback(fname='cool', every_epoch=True))
    assert {f.name: f.read_bytes() for f in models.glob('model_*.pth')} == saved and (models/'cool_1.pth').exists()

def test_ctrl_c_in_a_noisy_run_leaves_the_lr_without_noise(tmp_path):
    "An interrupt skips `after_fit`, where the noise came off: the optimizer held the noisy lr, and `fit_cooldown` started there"
    learn = mk_learner(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        _quiet_fit(learn, 'fit_flat_anneal', 3, 1e-2, pct_start=1., noise_range_t=0, cbs=FailAtBatch(5, KeyboardInterrupt))
    assert [h['lr'] for h in learn.opt.hypers] == [1e-2]

class _Raise(Callback):
    "Raise `exc` at the start of epoch `epoch` (one a resume skips: `SkipToEpoch` comes later)"
    order = 0
    def __init__(self, epoch, exc): self.at,self.exc = epoch,exc
    def before_epoch(self):
        if self.epoch == self.at: raise self.exc

@pytest.mark.parametrize('exc', [KeyboardInterrupt, CancelFitException], ids=['interrupt', 'cancel'])
def test_a_resume_stopped_in_a_skipped_epoch_leaves_the_trackers_as_they_were(exc, tmp_path):
    ("Ctrl-C skips fastai's `after_fit`, where a tracker set aside would come back on: it is put back on, or the next fit saved "
     "nothing. A cancel runs `after_fit`: the set-aside save-on-best tracker must not load a file this fit never wrote")
    learn = mk_learner(tmp_path)
    _quiet_fit(learn, 'fit_cos_anneal', 3, 1e-2, cbs=SaveModelCallback(every_epoch=True, with_opt=True))
    learn = mk_learner(tmp_path)
    learn.load('model_1', with_opt=True)
    (tmp_path/'models'/'stale.pth').write_bytes((tmp_path/'models'/'model_0.pth').read_bytes())  # a first run's best
    best = SaveModelCallback(fname='stale', with_opt=True)
    before = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(exc) if exc is KeyboardInterrupt else contextlib.nullcontext():
        _quiet_fit(learn, 'fit_cos_anneal', 3, 1e-2, start_epoch=2, cbs=[best, _Raise(1, exc)])
    assert best.run
    assert all(torch.equal(p, q) for p,q in zip(learn.model.parameters(), before))  # nothing trained, nothing loaded

def test_a_resume_says_what_fastais_trackers_lose(tmp_path):
    ("Resumed with a save-on-best tracker, a fit warns that its best starts afresh (review, seventeenth session: the first resumed "
     "epoch wrote over the best model); fastai's own way back, reset_on_fit=False and the best value, keeps the file")
    learn = mk_learner(tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fit_cos_anneal(2, 1e-2, cbs=SaveModelCallback(every_epoch=True, with_opt=True))
    learn.load('model_0', with_opt=True)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        learn.fit_cos_anneal(2, 1e-2, start_epoch=1, cbs=SaveModelCallback(monitor='valid_loss', fname='best'))
        learn.fine_tune_anneal(1, 1e-2, start_epoch=1, cbs=EarlyStoppingCallback(patience=1))
        learn.fit_cos_anneal(2, 1e-2, start_epoch=1, cbs=SaveModelCallback(every_epoch=True))  # tracks nothing: no warning
    msgs = [str(x.message) for x in w if 'start(s) afresh' in str(x.message)]
    assert len(msgs) == 2, msgs
    assert msgs[0].startswith("fit_cos_anneal: resuming at epoch 1, SaveModelCallback(monitor='valid_loss') start(s) afresh")
    assert msgs[1].startswith("fine_tune_anneal: resuming at epoch 1, EarlyStoppingCallback(monitor='valid_loss')")
    best = tmp_path/'models'/'best.pth'
    saved = best.read_bytes()  # the first resumed fit's
    cb = SaveModelCallback(monitor='valid_loss', fname='best', reset_on_fit=False)
    cb.best = -1.  # below any MSE: no epoch beats it, the best file stays
    learn.load('model_0', with_opt=True)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit_cos_anneal(2, 1e-2, start_epoch=1, cbs=cb)
    assert cb.best == -1. and best.read_bytes() == saved

def test_a_resume_logs_only_the_epochs_it_trains(tmp_path):
    ("fastai's Recorder still ends each epoch `SkipToEpoch` skips: it logged an empty row per skipped epoch (CSVLogger: '0,00:00', "
     "the time under train_loss) and an empty `values` entry; the resumed fit's log holds the epochs it trained, numbered as run")
    from fastai.callback.progress import CSVLogger
    learn = mk_learner(tmp_path)
    _quiet_fit(learn, 'fit_cos_anneal', 4, 1e-2, cbs=SaveModelCallback(every_epoch=True, with_opt=True))
    full = learn.recorder.values
    learn = mk_learner(tmp_path)
    learn.load('model_1', with_opt=True)
    with learn.no_bar(): learn.fit_cos_anneal(4, 1e-2, start_epoch=2, cbs=CSVLogger(fname='resumed.csv'))
    rows = (tmp_path/'resumed.csv').read_text().splitlines()
    assert rows[0] == 'epoch,train_loss,valid_loss,time' and [r.split(',')[0] for r in rows[1:]] == ['2', '3'], rows
    assert len(learn.recorder.values) == 2 and [v[1] for v in learn.recorder.values] == pytest.approx([v[1] for v in full[2:]], rel=1e-6)
    assert learn.recorder.run

def test_fine_tune_resumed_inside_its_frozen_phase_is_exact(tmp_path):
    "freeze_epochs=2, resumed at epoch 1: the optimizer state the checkpoint holds survives the (replayed) freeze, as the run kept it"
    kw = dict(base_lr=1e-2, freeze_epochs=2)
    full = _mk_learner(n_train=N_ITER, groups=2, path=tmp_path/'full')
    _quiet_fit(full, 'fine_tune_anneal', 1, **kw)
    dying = _mk_learner(n_train=N_ITER, groups=2, path=tmp_path/'run')
    _quiet_fit(dying, 'fine_tune_anneal', 1, cbs=[SaveEveryEpoch(), Interrupt(1)], **kw)
    resumed = _mk_learner(n_train=N_ITER, groups=2, path=tmp_path/'run')
    resumed.load('epoch_0', with_opt=True)
    _quiet_fit(resumed, 'fine_tune_anneal', 1, start_epoch=1, **kw)
    for a,b in zip(full.model.parameters(), resumed.model.parameters()): torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
