"lr='auto' and `Learner.lr_tune`: the tuner runs trials of the requested fit and gives the learner back bit for bit."
import math, warnings
import numpy as np, pytest, torch
from fastai.basics import *
from fastai.callback.schedule import SchedCos, SchedNo, ParamScheduler
from fastai.callback.tracker import SaveModelCallback, EarlyStoppingCallback, TerminateOnNaNCallback
from fastai.callback.progress import CSVLogger
from fastai.test_utils import synth_dbunch, RegModel
from fastai_anneal.all import *
import copy  # after the star import: fastai exports shutil's `copy`
from fastai_anneal.registry import VARIANTS
import fastai_anneal.tune as tune
from fastai_anneal.tune import _vertex, _agree, lr_scale_like, TrialScheduler, _trial_scheds, _unstable, _prefix, _collapsed
from fastai_anneal.tune import _shortest_tuned, _rung0, MIN_TRIAL
from fastai_anneal.fit import bind_call, prepare_call
from conftest import mk_learner, quiet_fit, RecordHypers, learner_state, assert_restored, bitwise_equal, DrawsRNGs, ctrl_c_at_tensor

N_TRAIN = 100  # batches per epoch: 10 epochs = 1000 batches, enough for the default budget

def _learner(seed=0, **kw): return mk_learner(n_train=N_TRAIN, seed=seed, **kw)

# ---------------------------------------------------------------- pieces
def test_vertex():
    f = lambda x: 3*(x-0.3)**2 + 1
    assert _vertex([-1, 0, 1], [f(-1), f(0), f(1)]) == pytest.approx(0.3)
    assert _vertex([-1, 0, 1], [1, 2, 1]) is None  # opens downwards: no minimum
    assert _vertex([-1, 0, 1], [1, 1, 1]) is None

def test_scale_like():
    assert lr_scale_like(None, 0.1) == 0.1 and lr_scale_like(3e-3, 0.1) == 0.1
    s = lr_scale_like(slice(1e-5, 1e-3), 1e-2)
    assert s.stop == 1e-2 and s.start == pytest.approx(1e-4)
    assert lr_scale_like(slice(1e-3), 1e-2) == slice(None, 1e-2)
    assert lr_scale_like([1e-4, 1e-3], 1e-2) == pytest.approx([1e-3, 1e-2])
    assert lr_scale_like(torch.tensor([1e-4, 1e-3]), 1e-2) == pytest.approx([1e-3, 1e-2])  # per-group values as a tensor
    # the type kept, the largest value scaled wherever it is, and the scale itself to the bit (the s24 audit's S02, S04, S05)
    assert lr_scale_like(slice(1e-4, 1e-2), 1e-4).stop == 1e-4  # 1e-2*1e-4/1e-2 is not
    assert lr_scale_like((1e-3, 1e-2), 0.1) == pytest.approx((0.01, 0.1)) and isinstance(lr_scale_like((1e-3, 1e-2), 0.1), tuple)
    arr = lr_scale_like(np.array([1e-3, 1e-2]), 0.1)
    assert isinstance(arr, np.ndarray) and arr == pytest.approx([0.01, 0.1])
    assert lr_scale_like([1e-2, 1e-4], 1.) == pytest.approx([1., 0.01])

def test_agree_without_a_group(): assert _agree([1., math.inf]) == [1., math.inf]

def test_trial_stops_and_stands_for_lr_finder():
    "A trial runs exactly `n_steps` batches, is named `lr_finder` (fastai's trackers stand aside) and stops on a diverging loss"
    learn = _learner()
    cb = TrialScheduler({'lr': SchedCos(1e-2, 1e-4)}, 7)
    assert cb.name == 'lr_finder'
    quiet_fit(learn, 'fit', 3, cbs=cb)
    assert len(cb.losses) == 7 and not cb.diverged
    cb = TrialScheduler({'lr': SchedNo(1e4, 1e4)}, 60)
    quiet_fit(learn, 'fit', 3, cbs=cb)
    assert cb.diverged and len(cb.losses) < 60

def test_unstable_needs_a_real_climb():
    "The probe flags a loss that climbs back up at its end; not one at its floor, a noisy one, a slow starter or a steady fall"
    rng = np.random.RandomState(0)
    t = np.arange(128)
    fall_rise = np.where(t < 64, 2.3 - 0.5*t/64, 1.8 + 0.3*(t-64)/64) + 0.02*rng.randn(128)  # the collapse short trials miss
    assert _unstable(fall_rise)[0] and _unstable(fall_rise)[1] > 0.5
    assert not _unstable(2.3*np.exp(-t/20) + 0.02*rng.randn(128))[0]                     # a steady fall
    floor = np.where(t < 16, 1 - t/16, 0.) + 0.01 + 0.005*rng.rand(128)                    # at a floor of 0.01: +-50% is noise
    assert not _unstable(floor)[0]
    assert not _unstable(20 + 5*rng.randn(128))[0]                                         # batch noise 25% of the loss
    assert not _unstable(2.30 - 0.001*t/128 + 0.002*rng.randn(128))[0]                    # a slow starter barely moves
    assert _unstable(np.r_[np.full(64, 2.3), np.linspace(2.3, 3.5, 64)])[0]                # never fell, then climbed
    assert _unstable([1., 2.]) == (False, 0.)                                              # too short to tell

def _smoothed(raw, beta=0.98):
    "fastai's `Recorder.losses` for batch losses `raw` (a debiased running mean)"
    val,out = 0.,[]
    for i,x in enumerate(raw, 1): val = beta*val + (1-beta)*x; out.append(val/(1-beta**i))
    return out

def test_range_top_ignores_noise_at_a_floor():
    ("A model at its floor (pre-fitted) never falls in a range test, yet a noisy head or a lucky run of batches puts the window's "
     "minimum 2% below the head: that is no fall, and the top is a tenth of where the sweep stopped (it was the noise minimum's lr, "
     "10^4 too low); a real fall, even a late and noisy one, keeps fastai's minimum. Each batch's loss comes back from the smoothed curve")
    k = 3
    def top(raw):
        lrs,sm = list(np.geomspace(1e-7, 1., len(raw))),_smoothed(raw); m = k + int(np.argmin(sm[k:-5]))
        return tune._range_top(lrs, sm, lrs[m]/10, len(raw)),min(sm[k:-5]) < 0.98*np.mean(sm[:k])
    end = [0.06, 0.1, 0.3, 1., 3.]  # diverging
    rng = np.random.RandomState(0)
    raw = np.r_[0.056, 0.058, 0.054, 0.05 + 0.01*rng.randn(22), end]
    assert tune._batch_losses(_smoothed(raw), 0.98) == pytest.approx(raw, abs=1e-9)
    assert top(raw) == (pytest.approx(0.1), True)  # fastai's 2% rule alone calls it a fall
    falls = [top(np.r_[0.05 + 0.01*np.random.RandomState(s).randn(27), end]) for s in range(100)]
    assert sum(f for _,f in falls) > 50 and sum(t < 0.1 for t,_ in falls) <= 5  # pure noise: 2% calls most a fall, this rule 5 at most
    late = np.r_[2.6 + 0.1*rng.randn(18), 2.4, 2.3, 2.25, 2.2, 2.25, 2.3, 2.5, 2.8, 3., 3.5, 4., 5., 6.]  # 2.6 -> 2.2, sd 0.1
    t,_ = top(late); sm = _smoothed(late)
    assert t == pytest.approx(np.geomspace(1e-7, 1., len(late))[k + int(np.argmin(sm[k:-5]))]) and t < 0.05  # not 0.1, the flat answer

def test_unstable_sees_a_spiky_collapse():
    ("A run that falls, then collapses with spikes to above its start (a conv net at chance, an embedding model gone chaotic) is "
     "unstable: its spikes no longer pass for batch noise; heavy-tailed noise on a flat or falling loss is still no climb")
    rng = np.random.RandomState(0)
    fall = 1.1 - 0.4*np.arange(20)/20 + 0.01*rng.randn(20)
    to_chance = np.r_[fall, [1.14, 2.22, 1.6, 1.47, 1.34, 1.42], 1.12 + 0.03*rng.randn(24)]  # falls to 0.7, spikes, sits at ln 3
    chaos = np.r_[1.7 + 0.1*rng.randn(8), 0.3*rng.rand(12), np.abs(2*rng.standard_cauchy(40)).clip(0, 15)]
    for l in (to_chance, chaos):
        assert _unstable(l)[0] and _unstable(l)[1] > 1
        w = max(4, len(l)//8); m = l[:len(l)//w*w].reshape(-1, w)
        assert m.mean(1)[-1] - m.mean(1).min() < 3*np.sqrt(2*m.var(1, ddof=1).mean()/w)  # the mean variance alone called it noise
    t2 = [_unstable(1 + 0.3*np.random.RandomState(s).standard_t(2, 100))[0] for s in range(100)]
    falling = [_unstable(np.exp(-np.arange(100)/30) + 0.2 + 0.05*np.random.RandomState(s).standard_t(2, 100))[0] for s in range(100)]
    assert sum(t2) <= 12 and sum(falling) <= 2

def test_prefix_is_the_uncompressed_start():
    "The probe runs the first batches of the fit's own phases, at the positions the fit has there"
    f = lambda pos: 1 - pos
    phases = [(-1, {'lr': f}, 40), (0, {'lr': f, 'mom': f}, 60)]
    one = _prefix(phases, 30)
    test_eq([(fz, n) for fz,_,n in one], [(-1, 30)])
    test_close([one[0][1]['lr'](i/30) for i in range(30)], [f(i/40) for i in range(30)])
    two = _prefix(phases, 70)
    test_eq([(fz, n) for fz,_,n in two], [(-1, 40), (0, 30)])
    test_close([two[1][1]['mom'](i/30) for i in range(30)], [f(i/60) for i in range(30)])
    test_eq(len(_prefix(phases, 500)), 2)

def test_an_unstable_probe_halves_the_pick(monkeypatch):
    "When the fit's own first batches climb back up at the pick, the pick halves (at most 3 times) and the cost counts the probes"
    learn = _learner()
    monkeypatch.setattr(tune, 'PROBE_NEAR', 0.)  # probe whatever the pick
    ref = learn.lr_tune(10, fit='fit_cos_anneal')
    test_eq(len(ref.probes), 1); assert not ref.probes[0]['unstable']
    assert ref.probes[0]['steps'] == round(tune.PROBE * ref.n_steps)
    calls = []
    def unstable(losses): calls.append(len(losses)); return (len(calls) <= 2, 0.5)
    monkeypatch.setattr(tune, '_unstable', unstable)
    before = learner_state(learn)
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    assert_restored(before, learner_state(learn))
    assert res.scale == pytest.approx(ref.scale/4) and len(res.probes) == 3 and 'halved 2x' in res.rule
    test_eq([p['lr'] for p in res.probes], [ref.scale, ref.scale/2, ref.scale/4])
    test_eq(res.cost, ref.cost + 2*ref.probes[0]['steps'])
    calls.clear(); monkeypatch.setattr(tune, '_unstable', lambda losses: (True, 1.))
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    assert res.scale == pytest.approx(ref.scale/2**tune.MAX_HALVE) and len(res.probes) == tune.MAX_HALVE + 1
    monkeypatch.setattr(tune, 'PROBE_NEAR', 0.75*ref.scale/ref.top)  # halved, the pick falls below where a first probe runs: the
    res = learn.lr_tune(10, fit='fit_cos_anneal')                         # cliff seen, each halved pick is probed again all the same
    test_eq((res.scale, len(res.probes)), (ref.scale/2**tune.MAX_HALVE, tune.MAX_HALVE + 1))
    calls.clear(); monkeypatch.setattr(tune, '_unstable', lambda losses: (not calls.append(1) and len(calls) == 1, 0.5))
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    test_eq((res.scale, len(res.probes), res.cost), (ref.scale/2, 2, ref.cost + ref.probes[0]['steps']))
    assert 'halved 1x' in res.rule
    monkeypatch.setattr(tune, 'PROBE_NEAR', math.inf)  # a pick far below the range test's top: no probe, no cost
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    test_eq((res.scale, len(res.probes), res.cost), (ref.scale, 0, ref.cost - ref.probes[0]['steps']))

def test_no_pick_near_a_diverged_trial(monkeypatch):
    "The pick stays `DIV_MARGIN` below the lowest lr whose trial diverged (the fit spends far longer near its peak than a trial)"
    learn = _learner()
    monkeypatch.setattr(tune, 'PROBE_NEAR', math.inf)  # the margin alone: no probe, no ceiling
    monkeypatch.setattr(tune, 'ABOVE_TOP', math.inf)
    ref = learn.lr_tune(10, fit='fit_cos_anneal')
    assert 'capped' not in ref.rule and not any(t['diverged'] for t in ref.trials)
    run,cliff = tune._run_phases,0.7*ref.scale  # the synthetic task picks the largest lr its trials reach
    def run_phases(learn, phases, cbs, wd, validate, reset_opt=False, snap=None):  # `fit_cos_anneal` has no warmup: trials start at their peak
        if float(np.max(np.atleast_1d(phases[0][1]['lr'](0.)))) > cliff: return [float('nan')],True,None
        return run(learn, phases, cbs, wd, validate, reset_opt, snap)
    monkeypatch.setattr(tune, '_run_phases', run_phases)
    before = learner_state(learn)
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    assert_restored(before, learner_state(learn))
    div = min(t['lr'] for t in res.trials if t['diverged'])
    assert div > cliff and res.scale == pytest.approx(div/tune.DIV_MARGIN) and f"capped at 1/4 of {div:.3g}" in res.rule
    assert all(not t['diverged'] for t in res.trials if t['lr'] <= cliff)

def test_the_pick_stays_below_the_ceiling(monkeypatch):
    ("The trials may extend above the range test's top, but the pick stays within `ABOVE_TOP` of it: the synthetic task's trials "
     "rank the largest lr they reach first (as short trials that barely learn do)")
    monkeypatch.setattr(tune, 'PROBE_NEAR', math.inf)  # no probe
    res = _learner().lr_tune(10, fit='fit_cos_anneal')
    monkeypatch.setattr(tune, 'ABOVE_TOP', math.inf)
    free = _learner().lr_tune(10, fit='fit_cos_anneal')
    assert max(t['lr'] for t in res.trials) > 2*res.top and free.scale > 2*free.top  # the trials went above, and would pick there
    assert res.scale == pytest.approx(2*res.top) and "capped at 2x the range test's top" in res.rule

# ---------------------------------------------------------------- the tuner
def test_lr_tune_restores_and_reports():
    learn = _learner(cbs=DrawsRNGs())  # the trials draw from every global RNG
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-3)  # an optimizer with state, hypers and a moved data order
    learn.model.eval()
    before = learner_state(learn)
    res = learn.lr_tune(10, fit='fit_cos_anneal', pct_warmup=0.1)
    assert_restored(before, learner_state(learn))
    assert isinstance(res.lr, float) and res.lr == res.scale and 1e-6 < res.lr < 10
    assert res.n_steps == 10*N_TRAIN and 0 < res.cost <= (0.3 + tune.PROBE*len(res.probes))*res.n_steps  # the probe is on top
    assert {t['rung'] for t in res.trials} == {0, 1} and all(len(t['losses']) <= t['steps'] for t in res.trials)
    assert res.rule in ('parabola vertex', 'best trial') and res.top > 0
    fig = res.plot(return_fig=True)
    assert len(fig.axes) == 2

@pytest.mark.parametrize('stepping', [{}, dict(step='epoch', noise_range_t=(2, 8), noise_type='uniform')], ids=['batch', 'epoch_noise'])
@pytest.mark.parametrize('method', [m for m,v in VARIANTS.items()])
def test_auto_equals_two_steps(method, stepping):
    "`fit_*(..., 'auto')` is `lr = learn.lr_tune(...).lr; fit_*(..., lr)` on the same seed: same lrs at every batch, same weights"
    v = VARIANTS[method]
    args = {**v.epoch_kwargs(10)} if method != 'fine_tune_anneal' else dict(epochs=8, freeze_epochs=2)
    args.update(stepping)
    a,b = _learner(groups=2),_learner(groups=2)
    ra,rb = RecordHypers(),RecordHypers()
    quiet_fit(a, method, **{**args, v.lr_arg: 'auto'}, cbs=ra)
    lr = b.lr_tune(**args, fit=method).lr
    assert lr == a.lr_tune_result.lr
    quiet_fit(b, method, **{**args, v.lr_arg: lr}, cbs=rb)
    assert ra.hps == rb.hps  # the fit's callbacks ran in the trials too, and got their state back (test_range_test_runs_with_...)
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))

def test_collapsed_needs_a_fall_given_back_and_held():
    "The watchdog's rule: a real fall, then every window of the last `hold` batches back near the start; not a catapult or a plateau"
    rng = np.random.RandomState(0)
    fall = 2.3*np.exp(-np.arange(100)/20) + 0.2 + 0.02*rng.randn(100)
    assert not _collapsed(fall, 10, 40)                                                       # a steady fall
    assert _collapsed(np.r_[fall, 2.3 + 0.02*rng.randn(40)], 10, 40)                          # back to chance and held
    assert not _collapsed(np.r_[fall, 2.3 + 0.02*rng.randn(30)], 10, 40)                      # not held for `hold` yet
    assert _collapsed(np.r_[fall, np.full(40, np.nan)], 10, 40)                               # NaN after the fall
    catapult = np.r_[fall[:30], np.linspace(0.6, 3., 10), np.linspace(3., 0.5, 20), fall[60:]]
    assert not _collapsed(catapult, 10, 40)                                                   # climbs, falls again
    assert not _collapsed(2.302 + 0.003*rng.randn(200), 10, 40)                               # a plateau at chance never fell
    assert not _collapsed(np.r_[2.30 - 0.05*np.arange(10)/10, 2.25 + 0.02*rng.randn(90), 2.3 + 0.02*rng.randn(40)], 10, 40)  # 2%
    for spike in (np.inf, 1e6):  # one overflow or spike in the first window neither turns the watch off nor moves its start
        l = np.r_[fall, 2.3 + 0.02*rng.randn(40)]; l[3] = spike
        assert _collapsed(l, 10, 40)

class _FakeCollapse(Callback):
    "From batch `at` on, while the lr is above `thr`, the recorded training loss jumps 1000 up, or to NaN (gradients untouched)"
    def __init__(self, thr, at=100, nan=False): self.thr,self.at,self.nan = thr,at,nan
    def after_loss(self):
        if self.training and self.train_iter > self.at and self.opt.hypers[0]['lr'] > self.thr:
            self.learn.loss = self.learn.loss + (math.nan if self.nan else 1e3)

def test_a_collapsed_fit_restarts_at_half_the_lr():
    ("`fit_*(n, 'auto')` watches its first `WATCH` of batches: a fit whose loss collapses back (trials, probe and range test are "
     "shorter than 100 batches and never see it) starts again from where it began, at half the lr: bit for bit that fit")
    ref = _learner().lr_tune(10, fit='fit_cos_anneal')
    a,b = _learner(),_learner()
    logs = []
    a.logger = lambda *x: logs.append(str(x[0]))
    with a.no_bar(): a.fit_cos_anneal(10, 'auto', cbs=_FakeCollapse(0.75*ref.scale))  # logged, not quiet
    res = a.lr_tune_result
    assert res.scale == pytest.approx(ref.scale/2) and len(res.restarts) == 1 and 'restarted at half' in res.rule
    assert 100 < res.restarts[0]['batch'] <= 100 + 2*round(tune.HOLD*res.n_steps) and any('collapsed' in l for l in logs)
    b.lr_tune(10, fit='fit_cos_anneal', cbs=_FakeCollapse(0.75*ref.scale))
    quiet_fit(b, 'fit_cos_anneal', 10, ref.scale/2, cbs=_FakeCollapse(0.75*ref.scale))
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))
    c = _learner()
    quiet_fit(c, 'fit_cos_anneal', 10, 'auto', cbs=_FakeCollapse(0.))  # collapses at every lr: restarted 3 times, then unwatched
    r = c.lr_tune_result
    assert len(r.restarts) == tune.MAX_RESTART and r.scale == pytest.approx(ref.scale/2**tune.MAX_RESTART)
    test_eq(r.cost, ref.cost + sum(x['batch'] for x in r.restarts))  # the batches each collapsed fit ran count in the cost

def test_a_restart_puts_back_callbacks_and_logs(tmp_path):
    ("A restart starts from where the fit began for the fit's callbacks too: a tracker that keeps its best across fits, a "
     "`SaveModelCallback` whose file the collapsed epoch 0 never wrote (its `after_fit` load failed), a `CSVLogger` that appends; "
     "and a NaN that `TerminateOnNaNCallback` cancels on is a collapse: each relaunch is bit for bit the plain fit at half the lr")
    big = lambda: mk_learner(n_train=300)  # epochs of 300 batches: the collapse is caught inside epoch 0, after the probe's 96
    ref = big().lr_tune(4, fit='fit_cos_anneal')
    def mk(): return L(EarlyStoppingCallback(patience=2, reset_on_fit=False), SaveModelCallback(fname='m', reset_on_fit=False),
                       CSVLogger(append=True))
    out = {}
    for kind in ('auto', 'plain'):
        learn = big(); learn.path = tmp_path/kind; learn.path.mkdir()
        (learn.path/'history.csv').write_text('earlier run\n')
        cbs = mk() + _FakeCollapse(0.75*ref.scale, at=110)  # caught inside epoch 0: nothing saved yet
        if kind == 'auto': quiet_fit(learn, 'fit_cos_anneal', 4, 'auto', cbs=cbs)
        else: learn.lr_tune(4, fit='fit_cos_anneal', cbs=cbs); quiet_fit(learn, 'fit_cos_anneal', 4, ref.scale/2, cbs=cbs)
        rows = (learn.path/'history.csv').read_text().splitlines()
        out[kind] = learn,'\n'.join(r.rsplit(',', 1)[0] for r in rows),cbs[0].best  # the last column is the epoch's time
    (a,csv_a,best_a),(b,csv_b,best_b) = out['auto'],out['plain']
    assert len(a.lr_tune_result.restarts) == 1 and a.lr_tune_result.scale == pytest.approx(ref.scale/2)
    assert a.lr_tune_result.restarts[0]['batch'] < 300  # in epoch 0
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))
    assert csv_a == csv_b and csv_a.startswith('earlier run\n') and csv_a.count('epoch') == 1 and best_a == best_b
    ref = _learner().lr_tune(10, fit='fit_cos_anneal')
    nan = lambda: [TerminateOnNaNCallback(), _FakeCollapse(0.75*ref.scale, nan=True)]
    c,d = _learner(),_learner()
    quiet_fit(c, 'fit_cos_anneal', 10, 'auto', cbs=nan())
    assert len(c.lr_tune_result.restarts) == 1 and c.lr_tune_result.restarts[0]['batch'] == 102  # cancelled on batch 101's NaN
    d.lr_tune(10, fit='fit_cos_anneal', cbs=nan()); quiet_fit(d, 'fit_cos_anneal', 10, ref.scale/2, cbs=nan())  # the same
    assert all(torch.equal(p, q) for p,q in zip(c.model.parameters(), d.model.parameters()))

def test_trials_step_per_epoch_without_noise():
    "With step='epoch' a trial holds each lr over its share of one of the fit's epochs; the fit's noise stays out of the trials"
    learn = _learner()
    v = VARIANTS['fit_cos_anneal']
    prep = prepare_call(v, learn, bind_call(v, learn, 4, 1e-2, step='epoch', noise_range_t=0))
    cb = TrialScheduler(_trial_scheds(prep), 20)
    quiet_fit(learn, 'fit', 1, cbs=cb)
    s = cos_anneal_scheds(np.array([1e-2]))['lr']
    np.testing.assert_allclose(cb.hps['lr'], [s(b//5/4)[0] for b in range(20)], rtol=1e-12)  # no noise factor either
    a,b = _learner(),_learner()
    test_eq(a.lr_tune(10, step='batch', noise_range_t=0).lr, b.lr_tune(10).lr)

def test_group_ratios_kept():
    "A slice or a list sets the per-group ratios; the tuner scales them as a whole"
    learn = _learner(groups=2)
    res = learn.lr_tune(10, slice(1e-4, 1e-2), fit='fit_cos_anneal')
    assert isinstance(res.lr, slice) and res.lr.stop == res.scale and res.lr.start/res.lr.stop == pytest.approx(1e-2)
    res = learn.lr_tune(10, [1e-3, 4e-3], fit='fit_cos_anneal')
    assert res.lr[1] == res.scale and res.lr[0]/res.lr[1] == pytest.approx(0.25)

def test_a_tuned_cooldown_keeps_the_ratios_the_optimizer_holds():
    "`fit_cooldown(n, 'auto')` after a discriminative stable run: the tuner scales the groups' lrs as a whole, as lr=None keeps them"
    learn = _learner(groups=2)
    quiet_fit(learn, 'fit_flat_anneal', 1, slice(1e-3, 1e-2), pct_start=1.)
    before = [h['lr'] for h in learn.opt.hypers]
    res = learn.lr_tune(4, fit='fit_cooldown')
    assert res.lr[1] == res.scale and res.lr[0]/res.lr[1] == pytest.approx(before[0]/before[1], rel=1e-9)
    quiet_fit(learn, 'fit_cooldown', 4, 'auto')
    after = [h['lr'] for h in learn.opt.hypers]  # the end of the cooldown: each group's start over div_final
    assert after[0]/after[1] == pytest.approx(before[0]/before[1], rel=1e-9)

def test_the_range_test_s_top_does_not_depend_on_the_groups_order():
    "fastai's Recorder logs the last group's lr: the range test's top is read in the largest group's units, whatever the groups' order"
    first = _learner(groups=2)  # groups [a], [b]: a at lr, b at lr/100
    rev = _learner(groups=2)
    rev.splitter = lambda m: [[m.b], [m.a]]  # the same per-parameter lrs, the groups the other way round
    ra,rb = first.lr_tune(10, lr_max=[1., 0.01]),rev.lr_tune(10, lr_max=[0.01, 1.])
    assert ra.top == pytest.approx(rb.top, rel=1e-6) and ra.scale == pytest.approx(rb.scale, rel=1e-6)
    assert ra.sweep['lrs'][-1] == pytest.approx(rb.sweep['lrs'][-1], rel=1e-9)

def test_monitor_metric():
    "A metric scores the last rung; fastai's regression metrics are minimised (their names say neither loss nor error)"
    learn = _learner(metrics=[mae, rmse, R2Score()])
    res = learn.lr_tune(10, fit='fit_flat_anneal', monitor='mae')
    r1 = [t for t in res.trials if t['rung'] == 1]
    assert all(t['score_name'] == 'mae' for t in r1) and all(t['score'] > 0 for t in r1)  # the mae itself: minimised
    assert tune._check_monitor(learn, '_rmse')[0] and not tune._check_monitor(learn, 'r2_score')[0]

@pytest.mark.parametrize('metric', [mse, rmse, mae, msle, exp_rmspe, Perplexity(), BrierScore(), error_rate])
def test_fastai_s_lower_is_better_metrics_are_minimised(metric):
    "Every fastai metric where lower is better, by the name fastai gives it (`exp_rmspe` is '_exp_rmspe'): minimised by the tuner"
    from fastai.learner import mk_metric
    learn = _learner(metrics=[metric])
    assert tune._check_monitor(learn, mk_metric(metric).name)[0]

def test_a_trial_cut_short_by_another_callback_diverged():
    "fastai's `TerminateOnNaNCallback` cancels a trial before the trial sees the NaN: that trial counts as diverged"
    from fastai.callback.tracker import TerminateOnNaNCallback
    ref = _learner().lr_tune(10, fit='fit_cos_anneal')
    cliff = 0.7*ref.scale
    class NanAbove(Callback):
        order = 1
        def after_loss(self):
            if self.training and self.opt.hypers[-1]['lr'] > cliff: self.learn.loss = self.learn.loss * float('nan')
    learn = _learner(cbs=[NanAbove(), TerminateOnNaNCallback()])
    before = learner_state(learn)
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    assert_restored(before, learner_state(learn))
    div = [t['lr'] for t in res.trials if t['diverged']]
    assert div and min(div) > cliff and res.scale <= min(div)/tune.DIV_MARGIN and 'capped' in res.rule

def test_a_loss_below_zero():
    "A loss below zero (a Gaussian NLL): fastai's 4x rule would call every batch after the first a divergence; the tuner runs as usual"
    class Shifted(Module):
        def forward(self, out, y): return F.mse_loss(out.view(-1), y.view(-1)) - 100.  # below zero from the first batch
    learn = _learner()
    learn.loss_func = Shifted()
    before = learner_state(learn)
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    assert_restored(before, learner_state(learn))
    assert len(res.sweep['lrs']) > 20 and max(t['losses'][0] for t in res.trials) < 0  # a range test, trials all below zero
    assert not any(t['diverged'] for t in res.trials if t['lr'] <= res.scale) and 1e-4 < res.scale < 10

def test_range_test_runs_with_the_fits_callbacks_and_wd():
    "The range test (the scale of every trial) runs with the fit's `cbs` and `wd`, as the trials do; the learner's `wd` comes back"
    seen = []  # outside the callback: the tuner gives each callback its state back
    class Spy(Callback):
        def before_batch(self):
            if self.training and self.iter == 0: seen.append((type(getattr(self.learn, 'lr_finder', None)).__name__,
                                                              self.opt.hypers[0]['wd']))
    spy,learn = Spy(),_learner()
    wd = learn.wd
    learn.lr_tune(10, fit='fit_cos_anneal', cbs=spy, wd=0.3)
    assert seen[0] == ('AnnealLRFinder', 0.3) and all(w == 0.3 for _,w in seen) and learn.wd == wd and spy not in learn.cbs

def test_epochs_a_callback_shortens():
    "A callback that ends epochs early: trials run more epochs to fill their batches; when they cannot, a clear error, not 'diverged'"
    from fastai.callback.training import ShortEpochCallback
    res = _learner().lr_tune(10, fit='fit_cos_anneal', cbs=ShortEpochCallback(pct=0.5))
    assert not any(t['diverged'] for t in res.trials if t['lr'] <= res.scale) and not any(p['unstable'] for p in res.probes)
    learn = _learner()
    before = learner_state(learn)
    with pytest.raises(RuntimeError, match='ran out of epochs'): learn.lr_tune(10, fit='fit_cos_anneal', cbs=ShortEpochCallback(0.01))
    assert_restored(before, learner_state(learn))

def nan_metric(inp, targ): return torch.tensor(float('nan'))

def test_a_nan_metric_is_not_a_divergence():
    "A monitored metric that is NaN after every trial of the last rung: a clear error naming it, not an lr capped as if trials diverged"
    learn = _learner(metrics=[nan_metric])
    with pytest.raises(RuntimeError, match="monitor='nan_metric' was NaN or infinite after every trial"):
        learn.lr_tune(10, fit='fit_cos_anneal', monitor='nan_metric')

def test_every_trial_of_the_last_rung_diverging_warns(monkeypatch):
    "Short trials fine, every longer one diverged: the lr is capped below them, with a warning that no trial of that length held it"
    run = tune._run_phases
    def run_phases(learn, phases, cbs, wd, validate, reset_opt=False, snap=None):
        return ([float('nan')],True,None) if validate else run(learn, phases, cbs, wd, validate, reset_opt, snap)
    monkeypatch.setattr(tune, '_run_phases', run_phases)
    with pytest.warns(UserWarning, match='every trial of the last rung'): res = _learner().lr_tune(10, fit='fit_cos_anneal')
    r1 = [t['lr'] for t in res.trials if t['rung'] == 1]
    assert res.scale <= min(r1)/tune.DIV_MARGIN

def test_csv_logger_stands_aside(tmp_path):
    "fastai's `CSVLogger` writes in every fit, the range test's and the trials' included: the tuning takes it off, then puts it back"
    from fastai.callback.progress import CSVLogger
    learn = _learner(path=tmp_path, cbs=CSVLogger(append=True))
    order = [type(c).__name__ for c in learn.cbs]
    learn.lr_tune(10, fit='fit_cos_anneal')
    assert not any(tmp_path.iterdir()) and [type(c).__name__ for c in learn.cbs] == order and learn.csv_logger.learn is learn
    learn.add_cb(_Boom(KeyboardInterrupt(), 3))
    with pytest.raises(KeyboardInterrupt): learn.lr_tune(10, fit='fit_cos_anneal')
    learn.remove_cb(_Boom)
    assert not any(tmp_path.iterdir()) and learn.csv_logger.learn is learn
    with pytest.warns(UserWarning, match='costs more than the budget'): quiet_fit(learn, 'fit_cos_anneal', 3, 'auto')
    test_eq(len(learn.csv_logger.read_log()), 3)  # the fit's epochs only

class _Noop(Callback): "A callback after the `CSVLogger` in the learner's list"

def test_the_callback_list_comes_back_as_it_was(tmp_path):
    ("The same callback objects in the same order: fastai's `no_bar` (the trials') puts a new `ProgressCallback` last, after a "
     "`CSVLogger` that was not, and its logger, which does not chain, left every later log with its header only")
    learn = _learner(path=tmp_path, cbs=[CSVLogger(), _Noop()])
    cbs,progress = list(learn.cbs),learn.progress
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # a short fit's "tuning costs more than the budget"
        learn.lr_tune(10, fit='fit_cos_anneal')
    assert len(learn.cbs) == len(cbs) and all(a is b for a,b in zip(learn.cbs, cbs))
    assert learn.progress is progress and progress.learn is learn
    with learn.no_logging(): learn.fit(2, 1e-3)  # with the progress bar: the callback the order broke
    test_eq(len(learn.csv_logger.read_log()), 2)

def test_an_export_after_tuning_holds_nothing_of_the_package(tmp_path):
    ("`learn.lr_tune_result` is kept beside the learner, not in it: `learn.export()` after `lr='auto'` loads where only fastai is "
     "installed (the pickle held an `LRTuneResult`, and fastai's `load_learner` hid the missing module)")
    import cloudpickle
    learn = _learner(path=tmp_path)
    assert learn.lr_tune_result is None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = learn.lr_tune(10, fit='fit_cos_anneal')
    assert learn.lr_tune_result is res and 'lr_tune_result' not in vars(learn)
    pickled = cloudpickle.dumps(learn)  # what `export` pickles (its loaders emptied first: these torch ones have no `new_empty`)
    assert b'fastai_anneal' not in pickled and b'RegModel' in pickled
    class Comparable(Learner):  # unhashable: `__eq__` without `__hash__`
        def __eq__(self, o): return self is o
    other = Comparable(learn.dls, learn.model, loss_func=learn.loss_func)
    assert other.lr_tune_result is None
    other.lr_tune_result = res
    assert other.lr_tune_result is res and learn.lr_tune_result is res

def test_callback_classes_are_created_by_fastai_only():
    "A class in `cbs` is checked by its signature, not made: one instance per fit, and the tuning's RNGs are untouched by it"
    made = []
    class Counted(Callback):
        def __init__(self): made.append(torch.rand(1))  # an `__init__` that draws
    learn = _learner()
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-3, cbs=Counted)
    assert len(made) == 1
    made.clear(); state = torch.get_rng_state()
    with learn.no_bar(): res = learn.lr_tune(10, fit='fit_cos_anneal', cbs=Counted)
    assert len(made) == len(res.trials) + len(res.probes) + 1  # one per trial, probe and the range test
    assert torch.equal(torch.get_rng_state(), state)

def test_recorder_keeps_the_last_fit():
    "The range test, trials and probes are fits: the `Recorder` comes back with the last fit's history (what `plot_loss` reads)"
    learn = _learner()
    quiet_fit(learn, 'fit_cos_anneal', 3, 1e-2)
    rec = learn.recorder
    before = {k: copy.deepcopy(getattr(rec, k)) for k in ('values', 'losses', 'lrs', 'iters', 'hps', 'metric_names', 'log')}
    sl,fr = learn.smooth_loss.clone(),list(learn.final_record)
    with learn.no_bar(): learn.lr_tune(10, fit='fit_cos_anneal')
    for k,v in before.items(): assert bitwise_equal(getattr(rec, k), v), k
    assert bitwise_equal(learn.smooth_loss, sl) and bitwise_equal(list(learn.final_record), fr)
    test_eq(rec.smooth_loss.value, sl)
    learn.add_cb(_Boom(KeyboardInterrupt(), 3))
    with learn.no_bar(), pytest.raises(KeyboardInterrupt): learn.lr_tune(10, fit='fit_cos_anneal')
    learn.remove_cb(_Boom)
    for k,v in before.items(): assert bitwise_equal(getattr(rec, k), v), k

def test_reset_opt_in_the_trials():
    "`reset_opt=True`: the range test, every trial and the fit start from a new optimizer (no state from an earlier fit)"
    seen = []  # outside the callback: the tuner gives each callback its state back
    class FirstState(Callback):
        def before_batch(self):
            if self.training and self.iter == 0 and self.epoch == 0: seen.append(len(self.opt.state))
    learn = _learner()
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-3)
    learn.add_cb(FirstState())
    quiet_fit(learn, 'fit_cos_anneal', 10, 'auto', reset_opt=True)
    assert len(seen) > 5 and set(seen) == {0}
    seen.clear(); learn.lr_tune(10, fit='fit_cos_anneal')
    assert min(seen) > 0  # without it, every trial goes on from the optimizer's state, as the fit would

def test_tracker_callbacks_stand_aside(tmp_path):
    "SaveModelCallback and EarlyStoppingCallback on the learner: no file written while tuning, and the fit then uses them"
    learn = _learner(path=tmp_path, cbs=[SaveModelCallback(fname='best'), EarlyStoppingCallback(patience=100)])
    learn.lr_tune(10, fit='fit_cos_anneal')
    assert not any(tmp_path.rglob('*.pth'))
    quiet_fit(learn, 'fit_cos_anneal', 10, 'auto')
    assert (tmp_path/'models'/'best.pth').exists()

# ---------------------------------------------------------------- bad input and faults
def test_auto_refuses_a_resume():
    learn = _learner()
    before = learner_state(learn)
    with pytest.raises(ValueError, match=r"start_epoch.*'auto'|'auto'.*start_epoch"): learn.fit_cos_anneal(10, 'auto', start_epoch=3)
    assert_restored(before, learner_state(learn))

@pytest.mark.parametrize('kw,match', [(dict(fit='fit_nope'), 'fit must be one of'), (dict(budget=0.), 'budget'), (dict(budget=2.), 'budget'),
    (dict(monitor='accuracy'), 'monitor'), (dict(pct_warmup=1.5), 'pct_warmup'), (dict(show_plot='yes'), 'show_plot'),
    (dict(lr_max=[-1e-3, -1e-2]), r'lr_max\[0\] must be in \(0, inf\)'), (dict(lr_max=slice(-1e-4, 1e-2)), 'lr_max.start'),
    (dict(lr_max=[1e-3, math.inf]), r'lr_max\[1\] must be a finite'), (dict(lr_max='fast'), "lr_max must be a float.*'auto'"),
    (dict(fit='fit_cyclic', max_lr='auto', base_lr=1e-5), 'base_lr must be None when fit_cyclic is tuned'),
    (dict(fit='fit_one_cycle', wd=-1.), r'wd must be in \[0, inf\)'),
    (dict(fit='fit_one_cycle', wd=[[0.1], [0.2]]), 'wd must be a number or a flat list'),
    (dict(fit='fit_one_cycle', cbs=['x']), 'cbs must be fastai'),
    (dict(fit='fit_one_cycle', div=0), r'div must be in \(0, inf\)'), (dict(fit='fit_one_cycle', pct_start=3.), 'pct_start'),
    (dict(fit='fit_one_cycle', moms=(0.9,)), 'moms must be a tuple of 3'), (dict(fit='fit_flat_cos', div_final=-1), 'div_final'),
    (dict(fit='fit', reset_opt='no'), 'reset_opt')])
def test_bad_tune_args(kw, match):
    "Every bad argument raises, naming it, before any fit runs (fastai's own fits leave these unchecked)"
    learn = _learner()
    calls = []
    learn.add_cb(type('Spy', (Callback,), {'before_fit': lambda self: calls.append(1)})())
    before = learner_state(learn)
    with pytest.raises((ValueError, TypeError), match=match): learn.lr_tune(10, **kw)
    assert_restored(before, learner_state(learn))
    assert calls == []

@pytest.mark.parametrize('wd,want', [([0., 0.1], [0., 0.1]), (slice(0.01, 0.1), [0.01, 0.1])])
def test_fastai_fit_takes_a_per_group_wd(wd, want):
    "A per-group `wd` (a list or a slice), which fastai's fits take, reaches every trial of fastai's `fit_one_cycle` per group"
    learn = mk_learner(n_train=N_TRAIN, groups=2)
    seen = []
    spy = type('Spy', (Callback,), {'after_batch': lambda self: seen.append([h['wd'] for h in self.opt.hypers])})()
    learn.lr_tune(10, fit='fit_one_cycle', wd=wd, cbs=spy)
    assert seen and all(test_close(w, want) is None for w in seen)

def test_fastai_fit_refuses_a_wd_per_group_of_another_length():
    learn = mk_learner(n_train=N_TRAIN, groups=2)
    with pytest.raises(ValueError, match='wd has 3 values but the optimizer has 2 parameter group'):
        learn.lr_tune(10, fit='fit_one_cycle', wd=[0., 0.1, 0.2])

@pytest.mark.parametrize('n_cycles,cycle_len,cycle_mult,match', [(0, 2, 2, 'n_cycles'), (2, 0, 2, 'cycle_len'), (2, 2, 1, 'cycle_mult')])
def test_bad_sgdr_args(n_cycles, cycle_len, cycle_mult, match):
    with pytest.raises(ValueError, match=match): _learner().lr_tune(n_cycles, cycle_len, fit='fit_sgdr', cycle_mult=cycle_mult)

def test_reversed_slice_scales_as_a_whole():
    "fastai spreads `slice(start, stop)` either way round: its largest end becomes the tuned lr"
    test_eq(lr_scale_like(slice(1e-2, 1e-4), 0.5), slice(0.5, 0.005))
    test_eq(lr_scale_like(slice(1e-4, 1e-2), 0.5), slice(0.005, 0.5))

def test_bad_args_checked_before_tuning():
    "A bad argument of the fit raises before any trial runs"
    learn = _learner()
    calls = []
    learn.add_cb(type('Spy', (Callback,), {'before_fit': lambda self: calls.append(1)})())
    with pytest.raises(ValueError, match='div_final'): learn.fit_cos_anneal(10, 'auto', div_final=-1)
    assert calls == []

def test_too_small_a_fit():
    learn = mk_learner(n_train=2)
    with pytest.raises(ValueError, match="at least .* training batches"): learn.fit_cos_anneal(3, 'auto')
    learn = mk_learner(n_train=10)
    with pytest.warns(UserWarning, match=r'budget=0.25 needs 696\. .* costs more than the budget'): learn.lr_tune(10, fit='fit_cos_anneal')
    with pytest.warns(UserWarning, match=r'budget=0.1 needs 2400\. '): learn.lr_tune(10, fit='fit_cos_anneal', budget=0.1)

def test_the_short_fit_warning_names_the_shortest_fit_it_tunes():
    ("The length the warning advises is the first above the fit whose trials reach their minimum within the budget: the range test "
     "grows with the fit (30 to 100 batches), so at budget=0.1 the first answer (2140) warned again, with 2300, then 2360")
    for budget in (1., 0.3, 0.25, 0.1, 0.05, 0.041, 0.04, 0.01):
        for n in (40, 700, 1740, 3000):
            if _rung0(n, budget) >= MIN_TRIAL: continue
            need = _shortest_tuned(n, budget)
            assert _rung0(need, budget) >= MIN_TRIAL and not any(_rung0(m, budget) >= MIN_TRIAL for m in range(n+1, need)), (budget, n)
    test_eq([_shortest_tuned(40, b) for b in (0.25, 0.1, 0.05)], [696, 2400, 4880])
    test_eq(_shortest_tuned(40, 1e-6), 244_000_000)  # solved, not searched, once the range test stays at 100

class _Boom(Callback):
    "Raise `exc` at the `at`-th training batch of a trial"
    def __init__(self, exc, at): self.exc,self.at,self.n = exc,at,0
    def after_batch(self):
        if isinstance(getattr(self.learn, 'lr_finder', None), TrialScheduler):
            self.n += 1
            if self.n == self.at: raise self.exc

@pytest.mark.parametrize('exc', [RuntimeError('boom'), KeyboardInterrupt()])
@pytest.mark.parametrize('at', [1, 25])
def test_interrupted_tuning_restores(exc, at, tmp_path):
    learn = _learner(path=tmp_path)
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-3)
    before = learner_state(learn)
    learn.add_cb(_Boom(exc, at))
    with pytest.raises(type(exc)): quiet_fit(learn, 'fit_cos_anneal', 10, 'auto')
    learn.remove_cb(_Boom)
    assert_restored(before, learner_state(learn))
    assert not any(tmp_path.iterdir())

class _NanInTrials(Callback):
    "Every trial's loss is NaN (the range test's is not)"
    order = 1
    def after_loss(self):
        if isinstance(getattr(self.learn, 'lr_finder', None), TrialScheduler): self.learn.loss = self.learn.loss * float('nan')

def test_every_trial_diverging():
    learn = _learner()
    learn.add_cb(_NanInTrials())
    with pytest.raises(RuntimeError, match=r"every trial diverged, from lr \S+ to \S+"): learn.lr_tune(10, fit='fit_cos_anneal')

def test_a_callers_param_scheduler_runs_in_fastai_fits_trials():
    "fastai's fits put their own `ParamScheduler` first; one the caller passes in `cbs` is not theirs, and the trials keep it"
    learn = _learner()
    mine = ParamScheduler({'wd': SchedNo(0.5, 0.5)})
    got = tune._fastai_fit(learn, 'fit_one_cycle', dict(n_epoch=2, cbs=[mine]), 1e-3)
    assert set(got['scheds']) == {'lr', 'mom'} and list(got['cbs']) == [mine] and got['reset_opt'] is False

@pytest.mark.parametrize('method,args,n_epoch', [('fit_one_cycle', (10,), 10), ('fit_flat_cos', (10,), 10), ('fit_sgdr', (2, 3), 9),
                                                 ('fit', (10,), 10)])
def test_fastai_fits(method, args, n_epoch):
    "fastai's own fits are tuned through the schedules they hand to `fit`; the learner comes back as it was"
    learn = _learner()
    before = learner_state(learn)
    res = learn.lr_tune(*args, fit=method)
    assert_restored(before, learner_state(learn))
    assert res.n_steps == n_epoch*N_TRAIN and learn.opt is None

_FASTAI_CALLS = [('fit_one_cycle', (10,), 'lr_max'), ('fit_flat_cos', (10,), 'lr'), ('fit_sgdr', (2, 3), 'lr_max')]

@pytest.mark.parametrize('method,args,lr_arg', _FASTAI_CALLS)
def test_fit_tuned_runs_fastai_fits(method, args, lr_arg):
    ("`fit_tuned(..., fit='fit_one_cycle')` is `lr_tune` then fastai's own `fit_one_cycle(n, lr)` on the same seed (fastai's methods "
     "are not patched); its `budget` is `lr_tune`'s")
    a,b = _learner(),_learner()
    with a.no_bar(), a.no_logging(): res = a.fit_tuned(*args, fit=method, budget=0.3)
    assert res is a.lr_tune_result and res.restarts == [] and res.cost > 0.28*res.n_steps
    lr = b.lr_tune(*args, fit=method, budget=0.3).lr
    assert lr == res.lr
    with b.no_bar(), b.no_logging(): getattr(b, method)(*args, lr)
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))

def test_a_collapse_caught_at_the_watchs_last_batch_restarts():
    ("The watch checks its last window before it lets go of what a restart puts back: a collapse first seen at batch `WATCH*n` "
     "(a multiple of the window) restarts the fit (it raised `AttributeError` on the dropped copy, the learner left collapsed)")
    ref = _learner().lr_tune(10, fit='fit_cos_anneal')
    n = ref.n_steps; w = max(4, round(tune.PROBE*n)//8); hold = max(2*w, round(tune.HOLD*n))
    watch = round(tune.WATCH*n)
    assert watch % w == 0 and hold == 4*w
    fake = lambda: _FakeCollapse(0.3*ref.scale, at=watch - hold - 1)  # collapsed from batch watch-hold on: seen at batch `watch`
    a,b = _learner(),_learner()
    with a.no_bar(), a.no_logging(): res = a.fit_tuned(10, fit='fit_cos_anneal', cbs=fake())
    assert [r['batch'] for r in res.restarts] == [watch] and res.scale == pytest.approx(ref.scale/2)
    b.lr_tune(10, fit='fit_cos_anneal', cbs=fake()); quiet_fit(b, 'fit_cos_anneal', 10, ref.scale/2, cbs=fake())
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))

def test_a_restart_puts_back_a_callbacks_list():
    "A callback that appends to a list in place (the tests' `RecordHypers`) sees the restarted fit only, not the collapsed one"
    ref = _learner().lr_tune(10, fit='fit_cos_anneal')
    a,b = _learner(),_learner()
    ra,rb = RecordHypers(),RecordHypers()
    with a.no_bar(), a.no_logging(): res = a.fit_tuned(10, fit='fit_cos_anneal', cbs=[ra, _FakeCollapse(0.75*ref.scale)])
    assert len(res.restarts) == 1
    b.lr_tune(10, fit='fit_cos_anneal', cbs=[rb, _FakeCollapse(0.75*ref.scale)])
    quiet_fit(b, 'fit_cos_anneal', 10, ref.scale/2, cbs=[rb, _FakeCollapse(0.75*ref.scale)])
    assert ra.hps == rb.hps

def test_a_watch_starts_afresh_each_fit_unless_told():
    "A `CollapseWatch` of one's own judges each fit alone; `across_fits` (fine_tune_anneal's phases) keeps counting"
    for across in (False, True):
        cw = CollapseWatch(100, 10, 40, across_fits=across)
        cw.losses,cw.fired = [2.3]*50,50
        cw.before_fit()
        assert (cw.losses,cw.fired) == (([2.3]*50, 50) if across else ([], None))

def test_a_collapsed_fastai_fit_restarts():
    "fastai's `fit_one_cycle` run by `fit_tuned` is watched as the package's fits are: a collapse past its warmup restarts it at half"
    ref = _learner().lr_tune(10, fit='fit_one_cycle')
    a,b = _learner(),_learner()
    with a.no_bar(), a.no_logging(): res = a.fit_tuned(10, fit='fit_one_cycle', cbs=_FakeCollapse(0.75*ref.scale))
    assert len(res.restarts) == 1 and res.scale == pytest.approx(ref.scale/2) and 'restarted at half' in res.rule
    b.lr_tune(10, fit='fit_one_cycle', cbs=_FakeCollapse(0.75*ref.scale))
    quiet_fit(b, 'fit_one_cycle', 10, ref.scale/2, cbs=_FakeCollapse(0.75*ref.scale))
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))

def test_fastai_fits_take_whole_float_epochs():
    "fastai's fits take the checked epoch counts (3.0 -> 3), as the package's do, rather than failing in `range` after the tuning"
    learn = _learner()
    assert learn.lr_tune(2., 3., fit='fit_sgdr').n_steps == 9*N_TRAIN
    a,b = _learner(),_learner()
    with a.no_bar(), a.no_logging(): a.fit_tuned(10., fit='fit_one_cycle')
    with b.no_bar(), b.no_logging(): b.fit_tuned(10, fit='fit_one_cycle')
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))

@pytest.mark.parametrize('kw,match', [(dict(fit='fit_one_cycle', lr_max='bogus'), r"lr_max must be a float, a slice, a list or 'auto'"),
                                      (dict(fit='fit_one_cycle', lr_max=[1e-3, 1e-2, 1e-1]), r"lr_max"),
                                      (dict(fit='fit_flat_cos', cbs=AnnealPlateau(monitor='bogus')), r"monitor"),
                                      (dict(fit='fit_one_cycle', start_epoch=2), r"start_epoch must be 0 with lr_max='auto'"),
                                      (dict(fit='fit_one_cycle', pct_start=2.), r"pct_start"),
                                      (dict(fit='fit_one_cycle', budget=0.), r"budget"),
                                      (dict(fit='fit_bogus'), r"fit must be one of")])
def test_fit_tuned_bad_input(kw, match):
    "A bad call of `fit_tuned` raises before anything is touched, for fastai's fits as for the package's (their callbacks' checks too)"
    learn = _learner(groups=2)
    before = learner_state(learn)
    with pytest.raises(ValueError, match=match): learn.fit_tuned(10, **kw)
    assert_restored(before, learner_state(learn))

class _FakeCollapsePhase(Callback):
    ("From batch `at` of a phase on, while the model is frozen (or unfrozen) and the head's lr is above `thr`, the recorded "
     "training loss jumps 1000 up: later than any trial or probe reaches")
    def __init__(self, thr, frozen, at): self.thr,self.frozen,self.at = thr,frozen,at
    def after_loss(self):
        if (self.training and self.train_iter > self.at and (self.opt.frozen_idx > 0) == self.frozen
            and self.opt.hypers[-1]['lr'] > self.thr):
            self.learn.loss = self.learn.loss + 1e3

@pytest.mark.parametrize('frozen,thr,at', [(True, 0.6, 100), (False, 0.4, 50)], ids=['frozen_phase', 'unfrozen_phase'])
def test_a_collapsed_fine_tune_restarts(frozen, thr, at):
    ("`fine_tune_anneal(base_lr='auto')` watches its two phases as one fit: a collapse in either restarts both from where the "
     "first began, at half the lr (the unfrozen phase's head peaks at `base_lr/2`); bit for bit that fine-tune")
    kw = dict(freeze_epochs=3)  # 300 batches, then 800
    ref = _learner(groups=2).lr_tune(8, fit='fine_tune_anneal', **kw)
    a,b = _learner(groups=2),_learner(groups=2)
    quiet_fit(a, 'fine_tune_anneal', 8, 'auto', cbs=_FakeCollapsePhase(thr*ref.scale, frozen, at), **kw)
    res = a.lr_tune_result
    assert len(res.restarts) == 1 and res.scale == pytest.approx(ref.scale/2)
    assert (res.restarts[0]['batch'] <= 300) == frozen  # the frozen phase is the first 300 batches
    b.lr_tune(8, fit='fine_tune_anneal', cbs=_FakeCollapsePhase(thr*ref.scale, frozen, at), **kw)
    quiet_fit(b, 'fine_tune_anneal', 8, ref.scale/2, cbs=_FakeCollapsePhase(thr*ref.scale, frozen, at), **kw)
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))

def test_a_range_test_that_diverges_at_once_warns_in_the_tuners_terms():
    "A sweep that diverges within a few batches leaves `minimum` NaN, which the tuner handles: no advice about lr_find's arguments"
    set_seed(0)
    x = torch.randn(400, 8) * 1e8  # inputs so large that plain SGD diverges at the sweep's first lrs
    y = (x[:, 0] > 0).long()
    dls = DataLoaders(DataLoader(list(zip(x[:320], y[:320])), bs=16, shuffle=True), DataLoader(list(zip(x[320:], y[320:])), bs=40))
    learn = Learner(dls, nn.Linear(8, 2), loss_func=CrossEntropyLossFlat(), opt_func=SGD)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter('always')
        with learn.no_bar(), learn.no_logging(): res = learn.lr_tune(10, fit='fit_cos_anneal')
    assert math.isfinite(res.lr) and res.lr > 0
    assert not [w for w in got if 'lr_find: no' in str(w.message)]

# ---------------------------------------------------------------- the restore contract: callbacks, a loss's parameters, samplers
class _BoomAt(Callback):
    "Raise `exc` at the 3rd batch of the range test ('range'), a trial ('trial') or `lr_find`'s sweep ('find')"
    def __init__(self, exc, where): self.exc,self.where,self.n = exc,where,0
    def after_batch(self):
        f = getattr(self.learn, 'lr_finder', None)
        if isinstance(f, TrialScheduler if self.where == 'trial' else AnnealLRFinder):
            self.n += 1
            if self.n == 3: raise self.exc

@pytest.mark.parametrize('exc', [RuntimeError('boom'), KeyboardInterrupt()])
@pytest.mark.parametrize('where', ['range', 'trial', 'find'])
def test_an_interrupt_leaves_the_trackers_running(exc, where, tmp_path):
    "Trackers stand aside (`run=False`) for a search and fastai puts them back only in `after_fit`: an interrupt must not leave them off"
    trackers = [SaveModelCallback(fname='best'), EarlyStoppingCallback(patience=1), AnnealPlateau(patience=0)]
    learn = _learner(path=tmp_path, cbs=trackers)
    learn.add_cb(_BoomAt(exc, where))
    with pytest.raises(type(exc)):
        if where == 'find': learn.lr_find(show_plot=False)
        else: quiet_fit(learn, 'fit_cos_anneal', 10, 'auto')
    learn.remove_cb(_BoomAt)
    assert all(c.run for c in trackers)
    quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2)
    assert (tmp_path/'models'/'best.pth').exists()  # the next fit saves its best model

class _LearnedVarMSE(nn.Module):
    "MSE weighted by a learnable log-variance: a loss with a parameter the optimizer trains"
    def __init__(self): super().__init__(); self.log_var = nn.Parameter(torch.zeros(1))
    def forward(self, pred, targ): return ((pred - targ)**2).mean() * torch.exp(-self.log_var) + self.log_var

def test_tuning_restores_a_parameter_outside_the_model():
    learn = _learner()
    learn.loss_func = loss = _LearnedVarMSE()
    learn.splitter = lambda m: [*m.parameters(), loss.log_var]
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-2)
    p = loss.log_var
    before = p.detach().clone(),{k: v.clone() for k,v in learn.opt.state[p].items() if isinstance(v, torch.Tensor)}
    learn.lr_tune(10, fit='fit_cos_anneal')
    assert torch.equal(p.detach(), before[0])  # the trials trained it
    after = {k: v for k,v in learn.opt.state[p].items() if isinstance(v, torch.Tensor)}  # its state, under the parameter itself
    assert after.keys() == before[1].keys() and all(torch.equal(after[k], v) for k,v in before[1].items())

class _OwnRngBatches(torch.utils.data.Sampler):
    "Batches from the sampler's own numpy Generator (a class-balanced or bucketing sampler does this)"
    def __init__(self, n, bs): self.n,self.bs,self.rng = n,bs,np.random.default_rng(0)
    def __len__(self): return self.n//self.bs
    def __iter__(self):
        idx = self.rng.permutation(self.n)
        for i in range(len(self)): yield idx[i*self.bs:(i+1)*self.bs].tolist()

def test_tuning_restores_a_samplers_own_rng():
    "`lr_tune` then `fit` trains on the batches `fit` alone sees"
    def learner():
        set_seed(0, reproducible=True)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1600, 1, generator=g); ds = torch.utils.data.TensorDataset(x, 2*x + 1)
        dls = DataLoaders(torch.utils.data.DataLoader(ds, batch_sampler=_OwnRngBatches(1600, 16)),
                          torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:32], 2*x[:32] + 1), batch_size=16))
        return Learner(dls, nn.Linear(1, 1), loss_func=MSELossFlat())
    a,b = learner(),learner()
    quiet_fit(a, 'fit_cos_anneal', 2, 1e-2)
    b.lr_tune(10, fit='fit_cos_anneal'); quiet_fit(b, 'fit_cos_anneal', 2, 1e-2)
    assert all(torch.equal(p, q) for p,q in zip(a.model.parameters(), b.model.parameters()))

class _WeightEMA(Callback):
    "An EMA of the weights kept across fits, updated in place; its steps in a fastcore `L`"
    order = 90
    def __init__(self, beta=0.9): self.beta,self.ema,self.steps = beta,None,L()
    def before_fit(self):
        if self.ema is None: self.ema = {n: p.detach().clone() for n,p in self.learn.model.named_parameters()}
    def after_step(self):
        for n,p in self.learn.model.named_parameters(): self.ema[n].lerp_(p.detach(), 1 - self.beta)
        self.steps.append(self.train_iter)

def test_tuning_gives_back_the_callbacks_state():
    "The trials feed the callbacks (`ActivationStats`, an EMA): they come back as the last fit left them"
    from fastai.callback.hook import ActivationStats
    learn = _learner(cbs=ActivationStats(with_hist=False))
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-2)
    stats = copy.deepcopy(learn.activation_stats.stats)
    ema = _WeightEMA()
    learn.lr_tune(10, fit='fit_cos_anneal', cbs=ema)
    assert learn.activation_stats.stats == stats
    assert ema.ema is None and len(ema.steps) == 0  # the fit starts the EMA, not a trial

def test_objects_a_callback_holds_stay_shared():
    ("Only plain state is copied: a distillation teacher (it could double the GPU memory), the data, and hooks still on the model "
     "stay the objects they were, so the hooks keep feeding the callback and `remove()` takes them off")
    from fastai.callback.hook import hook_outputs
    class Holder(Callback):
        def __init__(self, m, ds, tfms): self.teacher,self.pair,self.ds,self.tfms,self.hooks = m,[m],ds,tfms,None
        def before_fit(self):
            if self.hooks is None: self.hooks = hook_outputs([self.learn.model], detach=True)  # kept across fits
    teacher,learn = nn.Linear(1, 1),_learner()
    cb = Holder(teacher, learn.dls.train.dataset, learn.dls.train.after_batch)
    learn.add_cb(cb); quiet_fit(learn, 'fit', 1)
    hooks = cb.hooks
    learn.lr_tune(10, fit='fit_cos_anneal')
    assert cb.teacher is teacher and cb.pair[0] is teacher and cb.ds is learn.dls.train.dataset and cb.tfms is learn.dls.train.after_batch
    assert cb.hooks is hooks
    xb,_ = learn.dls.one_batch()
    out = learn.model(xb).detach()
    assert torch.equal(cb.hooks.stored[0], out)  # the hook still feeds the callback
    cb.hooks.remove()
    assert len(learn.model._forward_hooks) == 0

def test_a_system_random_sampler_is_left_alone():
    "The OS's randomness has no state to save: a sampler drawing from `random.SystemRandom` does not stop the tuning"
    import random as pyrandom
    learn = _learner()
    learn.dls.train.sys_rng = pyrandom.SystemRandom()
    assert learn.lr_tune(10, fit='fit_cos_anneal').lr > 0

def test_a_restart_puts_back_tensors_and_Ls_a_callback_updates_in_place():
    "A collapsed fit's updates to an EMA's tensors and an `L` are undone: bit for bit the fit at half the lr"
    ref = _learner().lr_tune(10, fit='fit_cos_anneal')
    a,b = _learner(),_learner()
    ea,eb = _WeightEMA(),_WeightEMA()
    quiet_fit(a, 'fit_cos_anneal', 10, 'auto', cbs=[ea, _FakeCollapse(0.75*ref.scale)])
    assert len(a.lr_tune_result.restarts) == 1
    b.lr_tune(10, fit='fit_cos_anneal', cbs=[eb, _FakeCollapse(0.75*ref.scale)])
    quiet_fit(b, 'fit_cos_anneal', 10, ref.scale/2, cbs=[eb, _FakeCollapse(0.75*ref.scale)])
    assert list(ea.steps) == list(eb.steps) and all(torch.equal(ea.ema[k], eb.ema[k]) for k in eb.ema)

class _SwapParams(Callback):
    "Swaps the optimizer's params for copies in `before_fit` and back in `after_fit`, as fastai's fp32 masters (`to_non_native_fp16`)"
    def before_fit(self):
        self.old = self.opt.param_lists
        self.opt.param_lists = L(L(nn.Parameter(p.detach().clone()) for p in g) for g in self.old)
    def after_fit(self): self.opt.param_lists = self.old

def test_an_interrupt_puts_back_params_a_callback_swapped():
    "An interrupt skips `after_fit`: the optimizer must not be left stepping the copies"
    learn = _learner(cbs=_SwapParams())
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-3)
    before = [list(g) for g in learn.opt.param_lists]
    learn.add_cb(_BoomAt(KeyboardInterrupt(), 'trial'))
    with pytest.raises(KeyboardInterrupt): quiet_fit(learn, 'fit_cos_anneal', 10, 'auto')
    assert [[p is q for p,q in zip(g, h)] for g,h in zip(learn.opt.param_lists, before)] == [[True]*len(g) for g in before]

def _blobs_learner(seed:int) -> Learner:
    "Two overlapping 2-d classes (97.5% at best), bs 8, trained: batch losses of 0.004 to 0.5, the noise of a fitted model"
    g = torch.Generator().manual_seed(0)
    def blobs(n):
        y = torch.randint(0, 2, (n,), generator=g)
        return list(zip(torch.randn(n, 2, generator=g)*1.2 + (y[:, None]*2-1)*1.5, y))
    train,valid = blobs(800),blobs(200)
    set_seed(seed)
    learn = Learner(DataLoaders(DataLoader(train, bs=8, shuffle=True), DataLoader(valid, bs=64)),
                    nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2)), loss_func=CrossEntropyLossFlat())
    with learn.no_bar(), learn.no_logging(): learn.fit_cos_anneal(2, 1e-2)
    return learn

def test_a_trained_models_noisy_losses_are_not_divergence():
    ("Continuing a trained model whose batch losses span decades: fastai's 4x rule, its best a lucky batch, stopped the range test "
     "and every trial at lrs that move no weight, and the tuner raised 'every trial diverged'. A rise counts once the weights moved")
    picks = []
    for seed in (3, 4, 7):  # the fastai rule raised on seeds 3-6 and picked 1.1e-5 on seed 7
        learn = _blobs_learner(seed)
        with learn.no_bar(), learn.no_logging(): res = learn.lr_tune(2)
        picks.append(res.lr)
        assert all(not t['diverged'] or t['lr'] > 1e-3 for t in res.trials), [(t['lr'], t['diverged']) for t in res.trials]
    assert min(picks) > 3e-4 and max(picks) < 0.1, picks  # the lrs a continued fit of this model takes, not 1e-5 or an error
    learn = _blobs_learner(3)  # fastai's lr_find keeps fastai's rule: its sweep stops on the noise, as fastai's does
    with learn.no_bar(), learn.no_logging(): learn.lr_find(show_plot=False)
    assert len(learn.recorder.lrs) < 20 and max(learn.recorder.lrs) < 1e-4

def test_snapshot_measures_how_far_the_weights_moved():
    learn = mk_learner()
    snap = LearnerSnapshot(learn)
    assert snap.moved() == 0.
    w = [p.detach().clone() for p in learn.model.parameters()]
    with torch.no_grad():
        for p in learn.model.parameters(): p.mul_(1.1)
    assert snap.moved() == pytest.approx(0.1)
    snap.restore()
    assert snap.moved() == 0. and all(torch.equal(a, p) for a,p in zip(w, learn.model.parameters()))

@pytest.mark.parametrize('method,lr_kw', [('fit_cos_anneal', 'lr_max'), ('fine_tune_anneal', 'base_lr')])
@pytest.mark.parametrize('opt', [dict(budget=0.5), dict(monitor='valid_loss'), dict(show_plot=True), dict(fit='fit_one_cycle')])
def test_fit_tuned_s_options_are_not_a_fit_s(method, lr_kw, opt):
    "`fit_*(n, 'auto')` leaves `lr_tune`'s options at their defaults, fine_tune_anneal too: given, a TypeError naming them, nothing run"
    learn = _learner()
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{next(iter(opt))}'"):
        getattr(learn, method)(2, **{lr_kw: 'auto'}, **opt)
    assert learn.opt is None and getattr(learn, 'lr_tune_result', None) is None

def test_where_the_last_fit_stood_comes_back():
    "`epoch`, `n_epoch`, `iter`, `n_iter`, `train_iter`, `pct_train` (what a `start_epoch` reads) come back after lr_find and lr_tune"
    keys = ('epoch', 'n_epoch', 'iter', 'n_iter', 'train_iter', 'pct_train')
    learn = _learner()
    where = lambda: {k: vars(learn).get(k, 'absent') for k in keys}
    fresh = where()
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=5, show_plot=False)
    assert where() == fresh and fresh['epoch'] == 'absent'  # a learner that never fitted gets none
    quiet_fit(learn, 'fit_cos_anneal', 2, 1e-2)
    before = where()
    assert before['epoch'] == 1 and before['pct_train'] == pytest.approx(1.)
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=5, show_plot=False)
    assert where() == before
    learn.lr_tune(10, fit='fit_cos_anneal')
    assert where() == before

def test_a_recorder_without_validation_metrics():
    ("`Recorder(valid_metrics=False)` keeps no validation loss: rung 1 scores the training loss (every trial scored the last fit's "
     "stale validation loss, and the largest lr won the tie); a metric to monitor is refused, naming the setting")
    learn = _learner(metrics=[mae])
    quiet_fit(learn, 'fit_cos_anneal', 1, 1e-2)
    learn.recorder.valid_metrics = False
    fresh = _learner(metrics=[mae])
    fresh.recorder.valid_metrics = False
    fresh.lr_tune(40, fit='fit_cos_anneal')  # trials of several epochs: fastai ends each cancelled validation (it crashed there)
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    r1 = [t for t in res.trials if t['rung'] == 1]
    assert all(t['score_name'] == 'train_loss' for t in r1) and len({t['score'] for t in r1}) == len(r1)
    with pytest.raises(ValueError, match=r"monitor='mae' needs the validation metrics, which the learner's Recorder does not record"):
        learn.lr_tune(10, fit='fit_cos_anneal', monitor='mae')

def test_without_a_recorder_the_tuner_says_so():
    learn = _learner(default_cbs=False)
    plan = lambda scale, frac: []
    for f in (lambda: learn.lr_tune(10), lambda: learn.fit_cos_anneal(10, 'auto'), lambda: tune_lr(learn, plan, 100)):
        with pytest.raises(ValueError, match=r"lr='auto' and lr_tune need the learner's Recorder"): f()  # tune_lr: AttributeError
    assert learn.opt is None

@pytest.mark.parametrize('lr', [np.array(1e-3), torch.tensor(1e-3)], ids=['numpy', 'torch'])
def test_a_0d_lr_is_the_number_it_holds(lr):
    "A 0-d array lr tunes as a float for fastai's fits too (fastai's `set_hyper` failed on it, naming no argument)"
    res = _learner().lr_tune(10, lr, fit='fit_one_cycle')
    assert isinstance(res.lr, float) and res.lr == res.scale

class _OwnNoise(Callback):
    "Input noise from the callback's own generators, as hand-written augmentation callbacks draw it"
    def __init__(self): self.g,self.npg = torch.Generator().manual_seed(0),np.random.default_rng(0)
    def before_batch(self):
        if self.training:
            self.learn.xb = (self.xb[0] + 0.01*torch.randn(self.xb[0].shape, generator=self.g) + 0.01*float(self.npg.normal()),)

def test_a_callback_s_own_generators_come_back():
    "A callback's torch and numpy generators are put back after lr_find and lr_tune (in place), so the fit after them is the same"
    def state(cb): return cb.g.get_state(), copy.deepcopy(cb.npg.bit_generator.state)
    cb = _OwnNoise()
    learn = _learner(cbs=cb)
    g,npg = cb.g,cb.npg
    before = state(cb)
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=5, show_plot=False)
    learn.lr_tune(10, fit='fit_cos_anneal')
    after = state(cb)
    assert cb.g is g and cb.npg is npg and torch.equal(after[0], before[0]) and after[1] == before[1]

def test_the_public_pieces_check_their_arguments():
    "`tune_lr` and `lr_scale_like` name a bad argument before anything runs (a negative wd trained every trial; 'fast' was ignored)"
    learn = _learner()
    plan = lambda scale, frac: []
    for kw,msg in ((dict(wd=-1.), 'wd'), (dict(cbs='x'), 'cbs must be fastai Callbacks'), (dict(lr_like='fast'), 'lr_like'),
                   (dict(ratios=[1., 0.5]), r'ratios must hold one value per param group \(1\), got 2'), (dict(ratios=[0.]), 'ratios'),
                   (dict(monitor='nope'), 'monitor must be')):
        with pytest.raises((ValueError, TypeError), match=msg): tune_lr(learn, plan, 100, **kw)
    for lr,scale,msg in (('fast', 1., 'lr must be'), (1e-3, -1., 'scale'), ([0., 0.], 1., r'lr\[0\] must be')):
        with pytest.raises((ValueError, TypeError), match=msg): lr_scale_like(lr, scale)
    assert learn.opt is None

class _TagsParams(Callback):
    "Sets an attribute on every param at each fit, as libraries mark params (and as `freeze_to` marks those it froze)"
    def before_fit(self):
        for p in self.learn.model.parameters(): p._tagged = getattr(p, '_tagged', 0) + 1

def test_params_own_attributes_come_back():
    ("A param's attributes come back after `lr_find` and `lr_tune` (the mark `AnnealOptimizer.freeze_to` leaves on what it froze: a "
     "trial of fine-tuning froze the body, and a restored unfrozen learner kept the mark)")
    learn = _learner(groups=2, opt_func=partial(AdamAnneal, anneal_rate=0.9), cbs=_TagsParams())
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=5, show_plot=False)
    learn.lr_tune(0, fit='fine_tune_anneal', freeze_epochs=2)
    assert all(vars(p) == {} for p in learn.model.parameters()) and all(p.requires_grad for p in learn.model.parameters())
    learn.freeze()
    marked = {id(p) for p in learn.model.parameters() if vars(p)}
    assert marked and learn.lr_tune(0, fit='fine_tune_anneal', freeze_epochs=2)
    assert {id(p) for p in learn.model.parameters() if vars(p)} == marked

def test_a_second_ctrl_c_during_a_restart_restore_leaves_the_callbacks_restored(monkeypatch):
    ("A collapsed fit's restart puts back the learner, its callbacks' state and its CSV logs (`_FitState`): a Ctrl-C while the "
     "weights are copied back is held until all three are done (it stopped after the learner, a tracker's `best` left as the fit left it)")
    learn = mk_learner()
    tracker = SaveModelCallback(fname='m')
    learn.add_cb(tracker)
    tracker.best = 1.0
    state = tune._FitState(learn, None)
    tracker.best = 0.1  # what a fit leaves
    n = ctrl_c_at_tensor(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt): state.restore()
    assert len(n) > 1 and tracker.best == 1.0

# ---------------------------------------------------------------- what a mutation audit of tune.py found unpinned (twenty-fourth session)
# `kills <id>`: the audit's mutant(s) of tune.py that the test fails on (each checked)

# kills T02
def test_a_trial_refuses_an_empty_dict_of_schedules():
    "A trial with no schedule would run at whatever lr the optimizer holds: refused, as a list is"
    with pytest.raises(TypeError, match='scheds must be a non-empty dict'): TrialScheduler({}, 5)

class _ValidOffset(Callback):
    "Adds 100 to the loss of every validation batch (before the Recorder reads it): the validation loss stands far above the training loss"
    order = 1
    def after_loss(self):
        if not self.training: self.learn.loss = self.learn.loss + 100.

# kills T14
def test_the_last_rung_scores_the_validation_loss():
    "monitor='valid_loss' scores each last-rung trial by the loss on the validation set, not by the training loss"
    res = _learner().lr_tune(10, fit='fit_cos_anneal', cbs=_ValidOffset())
    r1 = [t for t in res.trials if t['rung'] == 1 and not t['diverged']]
    assert r1 and all(t['score_name'] == 'valid_loss' and t['score'] > 100 for t in r1)
    assert all(t['score'] < 100 for t in res.trials if t['rung'] == 0 and not t['diverged'])  # rung 0: the training loss

# kills T12, TU19
def test_only_the_end_of_a_scored_trial_validates():
    ("A trial longer than an epoch skips the validation of the epochs inside it: the validation batches the tuning runs are those "
     "`valid_cost` counts, one validation set per trial of the last rung that did not diverge")
    seen = []  # outside the callback: the tuner gives each callback its state back
    spy = type('Spy', (Callback,), {'after_batch': lambda self: seen.append(1) if not self.training else None})()
    learn = mk_learner(n_train=5)  # epochs of 5 batches: every trial spans epochs
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # a short fit's "tuning costs more than the budget"
        res = learn.lr_tune(10, fit='fit_cos_anneal', cbs=spy)
    scored = [t for t in res.trials if t['rung'] == 1 and not t['diverged']]
    assert scored and res.valid_cost == len(scored)*len(learn.dls.valid) == len(seen)

# kills R01
def test_a_frozen_phase_too_short_for_a_trial_is_left_out():
    ("fine_tune_anneal with one frozen epoch of 5 batches before 200 unfrozen ones: a short trial's share of the frozen phase rounds "
     "to 0 batches, and that trial runs the unfrozen phase only (a trial of 0 batches raised)")
    learn = mk_learner(n_train=5, groups=2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = learn.lr_tune(40, fit='fine_tune_anneal')
    assert res.n_steps == 205 and res.lr > 0 and min(t['steps'] for t in res.trials) == tune.MIN_TRIAL

# kills TU15, TU17, TU50, R10 (cost); PC11 (phases' freezing); TU04, TU09 (trial lengths); TU18 (rung-0 score); TU58 (time_s)
def test_the_cost_counts_every_training_batch_the_tuning_ran():
    ("`cost` is every training batch of the range test, the trials (both phases of a fine-tune's, a diverged one's up to where it "
     "stopped) and the probes; rung 0 scores the mean training loss of a trial's last quarter; the trials' lengths fit the budget")
    seen = []  # outside the callback: the tuner gives each callback its state back
    def record(self):  # each training batch: whether a trial ran it, and frozen
        if self.training: seen.append((isinstance(getattr(self.learn, 'lr_finder', None), TrialScheduler), self.opt.frozen_idx > 0))
    spy = type('Spy', (Callback,), {'after_batch': record})()
    learn = mk_learner(n_train=N_TRAIN, groups=2)
    res = learn.lr_tune(8, fit='fine_tune_anneal', freeze_epochs=2, cbs=spy)  # 1000 batches: 200 frozen, 800 not
    assert res.cost == len(seen) == len(res.sweep['lrs']) + sum(len(t['losses']) for t in res.trials) + sum(p['steps'] for p in res.probes)
    assert any(t['diverged'] for t in res.trials) and all(len(t['losses']) == t['steps'] for t in res.trials if not t['diverged'])
    assert {frozen for trial,frozen in seen if trial} == {True, False}  # a trial runs both phases, the first frozen
    t0 = int((0.25*1000 - 40) // (8 + 4*2.5))  # the budget less the range test's 40 batches: about 8 trials of rung 0, 4 of rung 1 2.5x longer
    assert {t['steps'] for t in res.trials if t['rung'] == 0} == {t0} and {t['steps'] for t in res.trials if t['rung'] == 1} == {round(2.5*t0)}
    for t in res.trials:
        if t['rung'] == 0 and not t['diverged']: assert t['score'] == pytest.approx(np.mean(t['losses'][-(len(t['losses'])//4):]))
    assert res.time_s > 0

class _Stub(Exception): "Raised by a stub (of `_range_top`, `tune_lr`): the call got where the test looks, past every check"

# kills TU01 (the suite: only test_distributed's sizes test), TU02, TU10
@pytest.mark.parametrize('epochs,n_sweep', [(5, 30), (10, 40), (15, 60), (30, 100)])
def test_the_range_test_sweeps_4_percent_of_the_fit(epochs, n_sweep, monkeypatch):
    "The range test runs from 1e-7 to 10 over 4% of the fit's batches, 30 at least (fastai smooths over ~50), 100 at most"
    got = {}
    def stop(lrs, *a, **k): got['lrs'] = lrs; raise _Stub()
    monkeypatch.setattr(tune, '_range_top', stop)
    with warnings.catch_warnings(), pytest.raises(_Stub):
        warnings.simplefilter('ignore')
        _learner().lr_tune(epochs, fit='fit_cos_anneal')
    lrs = got['lrs']
    assert len(lrs) == n_sweep and lrs[0] == pytest.approx(1e-7) and lrs[1]/lrs[0] == pytest.approx((10/1e-7)**(1/n_sweep))  # to 10

# ---------------------------------------------------------------- the search on known scores (no training but the range test)
def _known_scores(monkeypatch, rung0, rung1, top=1., monitor='valid_loss', probe=None):
    ("The search on known scores: the range test's top is `top`, a rung-0 trial at lr `lr` scores `rung0(lr)`, a rung-1 trial "
     "`rung1(lr)` (its `monitor`), a probe's loss is flat at `probe(lr)` (default `rung0`); inf: the trial or probe diverged, NaN: "
     "the monitored metric of a rung-1 trial is NaN")
    monkeypatch.setattr(tune, '_range_top', lambda *a, **k: top)
    probe = probe or rung0
    def run_phases(learn, phases, cbs, wd, validate, reset_opt=False, snap=None):
        lr,n = phases[0][1]['lr'](0.),sum(p[2] for p in phases)
        s = (rung1 if validate else rung0 if n != round(tune.PROBE*1000) else probe)(lr)
        if validate and math.isnan(s): return [1.]*n,False,{monitor: s}  # a metric gone NaN: the trial itself went well
        if not math.isfinite(s): return [math.nan],True,None
        return ([1.]*n,False,{monitor: s}) if validate else ([s]*n,False,None)
    monkeypatch.setattr(tune, '_run_phases', run_phases)

def _plan(n:int=1000):
    "A fit of `n` batches at a constant lr: `plan(scale, frac)` for `tune_lr`"
    return lambda scale, frac: [(None, {'lr': lambda pos, s=scale: s}, max(1, round(frac*n)))]

def _search(learn=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return tune_lr(learn or _learner(), _plan(), 1000, **kw)

def _at(lr, best): return math.log2(lr/best)**2  # a score whose minimum is at `best`, a parabola in log2(lr)

_A0 = [1, 1/4, 1/16, 1/64, 1/8, 1/32]  # rung 0 when its best is 1/16: the factor-4 grid below the top, then the best's factor-2 neighbours
_B = 4.**-9/2  # rung 0's best when the lowest lr always wins: the grid extended 6 times downwards, then its lower neighbour
_SCENARIOS = {  # rung 0's scores, rung 1's, then the lrs each rung tries (in order), the pick and the rule
    'interior':     (lambda lr: _at(lr, 0.05), lambda lr: _at(lr, 0.07) + 1, _A0, [1/32, 1/16, 1/8], 0.07, 'parabola vertex'),
    'lowest_wins':  (lambda lr: lr, lambda lr: lr, [4.**-k for k in range(10)] + [2*4.**-9, _B], [_B/2, _B, 2*_B, _B/4], _B/4, 'best trial'),
    'rung1_higher': (lambda lr: _at(lr, 0.05), lambda lr: _at(lr, 0.2), _A0, [1/32, 1/16, 1/8, 1/4], 1/4, 'best trial'),
    'diverged_neighbour': (lambda lr: _at(lr, 0.05), lambda lr: math.inf if lr > 0.1 else _at(lr, 0.07) + 1, _A0, [1/32, 1/16, 1/8],
                           1/32, 'best trial, capped at 1/4 of 0.125 (its trial diverged)'),
    'within_tolerance': (lambda lr: _at(lr, 0.05), lambda lr: {1/32: 1., 1/16: 1.0005, 1/8: 1.0015}.get(lr, 2.), _A0, [1/32, 1/16, 1/8],
                         1/32, 'parabola vertex'),
}

# kills TU25, TU26, TU27, TU28, TU31, TU35, TU37, TU40, TU41, TU42, BE02
@pytest.mark.parametrize('case', list(_SCENARIOS))
def test_the_search_on_known_scores(case, monkeypatch):
    ("Rung 0: a factor-4 grid below the range test's top, extended (6 times at most) while its best is at an edge, then the best's "
     "factor-2 neighbours; rung 1: the best and its neighbours, one more step at an edge; the pick: the vertex of rung 1's parabola "
     "(kept within its three lrs, and only through finite scores), else the best trial, capped below a trial that diverged")
    r0,r1,lrs0,lrs1,scale,rule = _SCENARIOS[case]
    _known_scores(monkeypatch, r0, r1)
    res = _search()
    assert [t['lr'] for t in res.trials if t['rung'] == 0] == pytest.approx(lrs0, rel=1e-12)
    assert [t['lr'] for t in res.trials if t['rung'] == 1] == pytest.approx(lrs1, rel=1e-12)
    assert res.scale == pytest.approx(scale, rel=1e-9) and res.rule == rule and res.probes == []  # far below the top: no probe

# kills BE01
def test_every_trial_diverging_first_tries_lower_lrs(monkeypatch):
    "When every rung-0 trial diverges the grid goes down 6 more factors of 4 before the tuner gives up, naming the lrs it tried"
    _known_scores(monkeypatch, lambda lr: math.inf, lambda lr: math.inf)
    with pytest.raises(RuntimeError, match=r"every trial diverged, from lr 3.81e-06 to 1;"): _search()

# kills TU20
def test_a_metric_where_higher_is_better_is_maximised(monkeypatch):
    "monitor='r2_score': rung 1 scores minus the metric, and the pick is where the metric peaks"
    _known_scores(monkeypatch, lambda lr: _at(lr, 0.05), lambda lr: 1 - _at(lr, 0.07)/100, monitor='r2_score')
    res = _search(_learner(metrics=[R2Score()]), monitor='r2_score')
    r1 = [t for t in res.trials if t['rung'] == 1]
    assert all(t['score'] == pytest.approx(-(1 - _at(t['lr'], 0.07)/100)) for t in r1)
    assert res.scale == pytest.approx(0.07) and res.rule == 'parabola vertex'

# kills TU05, TU06 (the suite: test_fit's fine-tune of 40 batches), TU07, TU08
def test_a_short_fit_runs_trials_of_the_minimum_length(monkeypatch):
    ("A fit too short for trials of 8 batches within the budget: the trials take 8 and 20 batches, with a warning saying how long a "
     "fit tunes within the budget; 40 batches are the least `lr='auto'` tunes")
    _known_scores(monkeypatch, lambda lr: _at(lr, 0.05), lambda lr: _at(lr, 0.07) + 1)
    for n in (40, 695):  # 695: (0.25*695 - 30) // 18 = 7 batches a trial
        with pytest.warns(UserWarning, match=f"the fit has {n} training batches; tuning within budget=0.25 needs 696"):
            res = tune_lr(_learner(), _plan(n), n)
        assert {t['steps'] for t in res.trials if t['rung'] == 0} == {8} and {t['steps'] for t in res.trials if t['rung'] == 1} == {20}
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter('always')
        tune_lr(_learner(), _plan(696), 696)  # the fit the warning asks for: no warning
    assert not [w for w in got if 'costs more than the budget' in str(w.message)]
    with pytest.raises(ValueError, match='needs a fit of at least 40 training batches to run trials, this one has 39'):
        tune_lr(_learner(), _plan(39), 39)

# kills TU14
def test_a_range_test_that_finds_no_lr_stops_the_tuning(monkeypatch):
    _known_scores(monkeypatch, lambda lr: _at(lr, 0.05), lambda lr: _at(lr, 0.07) + 1, top=math.nan)
    with pytest.raises(RuntimeError, match='the range test from 1e-7 to 10 found no lr at which the loss falls'): _search()

# kills TU49
def test_the_probe_runs_the_fits_own_first_batches(monkeypatch):
    "The stability probe runs the first 8% of the fit's batches at the positions the fit has there, not the whole schedule compressed"
    _known_scores(monkeypatch, lambda lr: _at(lr, 0.05), lambda lr: _at(lr, 0.07) + 1, top=0.1)  # the pick 0.07 is near the top
    run,ends = tune._run_phases,[]
    def spy(learn, phases, *a, **k):
        if sum(p[2] for p in phases) == round(tune.PROBE*1000): ends.append(phases[0][1]['lr'](1.))  # the lr at the probe's end
        return run(learn, phases, *a, **k)
    monkeypatch.setattr(tune, '_run_phases', spy)
    plan = lambda scale, frac: [(None, {'lr': lambda pos, s=scale: s*(1 - pos)}, round(frac*1000))]  # a linear decay over the fit
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = tune_lr(_learner(), plan, 1000)
    assert len(res.probes) == 1 and ends == [pytest.approx(res.scale*(1 - tune.PROBE))]

# kills TU51, TU54, TU55, TU56
def test_the_rule_says_how_often_the_probe_halved_the_pick(monkeypatch):
    ("A probe that diverges is unstable (its loss ended above its start); the rule counts the halvings (3 at most, though a 4th "
     "probe may be unstable too) and quotes the give-back of the last probe that halved")
    _known_scores(monkeypatch, lambda lr: _at(lr, 0.05), lambda lr: _at(lr, 0.07) + 1, top=0.1,
                  probe=lambda lr: math.inf if lr > 0.05 else 1.)
    res = _search()
    assert [p['lr'] for p in res.probes] == pytest.approx([0.07, 0.035]) and [p['unstable'] for p in res.probes] == [True, False]
    assert res.scale == pytest.approx(0.035) and res.rule.endswith(', halved 1x: the fit\'s first 80 batches at the lr above ended above their start')
    _known_scores(monkeypatch, lambda lr: _at(lr, 0.05), lambda lr: _at(lr, 0.07) + 1, top=0.1)  # every probe's loss flat
    backs = iter([0.5, 0.7, 0.9, 0.95])
    monkeypatch.setattr(tune, '_unstable', lambda losses: (True, next(backs)))
    res = _search()
    assert len(res.probes) == 4 and res.scale == pytest.approx(0.07/8)
    assert res.rule.endswith(", halved 3x: the fit's first 80 batches at the lr above gave back 90% of their fall")

# ---------------------------------------------------------------- the range test's fall and the probe's climb, at their thresholds
# kills RT01, RT02, RT06, RT07
def test_the_range_test_s_fall_at_its_thresholds():
    ("A fall counts when the window after the first tenth of the sweep drops 2% of the head's |loss| below it (1% does not, nor half "
     "a percent of a loss below zero) and beyond the batch noise measured from the first 4 batches at least")
    end = [3., 5., 8., 13., 20.]  # diverging
    lrs = list(np.geomspace(1e-7, 1., 30))
    def top(raw):
        sm = _smoothed(raw); m = 3 + int(np.argmin(sm[3:-5]))  # fastai's minimum, after the first tenth and before the last 5
        return tune._range_top(lrs, sm, lrs[m]/10, 30),lrs[m]
    flat = lrs[-1]/10
    assert top(np.r_[np.full(3, 1.), np.full(22, 0.99), end])[0] == flat                 # 1% below, noiseless: no fall
    assert top(np.r_[np.full(3, -100.), np.full(22, -100.5), -np.array(end)])[0] == flat  # 0.5% below a negative head
    for seed in (3, 5):  # one batch at 1, then 0.95 with noise 0.01: a fall, its lowest loss the top
        t,at_min = top(np.r_[1., 0.95 + 0.01*np.random.RandomState(seed).randn(24), end])
        assert t == pytest.approx(at_min) and t != flat

# kills U01, U03, U04
def test_the_probe_s_climb_at_its_thresholds():
    ("A probe is unstable when its last window climbs 5% of |its low| above it, gives back 10% of its fall, and passes the windows' "
     "noise (windows of 4 batches at least)")
    assert not _unstable([2, 1.5, 1, .8, .7, .6, .6, .6, .6, .6, .6, .6, .6, .6, 2, 2])[0]  # 16 batches, windows of 4: two spikes are noise
    assert not _unstable(np.r_[np.full(8, -90.), np.full(48, -100.), np.full(8, -98.)])[0]  # 2% of a low below zero
    assert not _unstable(np.r_[np.full(8, 10.), np.full(48, 1.), np.full(8, 1.5)])[0]       # 50% above its low, 5.6% of its fall
    assert _unstable(np.r_[np.full(8, 10.), np.full(48, 1.), np.full(8, 2.)])[0]            # 11% of its fall

# ---------------------------------------------------------------- the result, and the fit it watches
def _result(lr=0.1, n_steps=1000, trials=()):
    "An `LRTuneResult` as the search would leave it: `lr` (its largest value the scale), 250 batches spent"
    scale = lr.stop if isinstance(lr, slice) else lr
    return tune.LRTuneResult(lr, scale, list(trials), {}, 1., n_steps, 250, 0, 'valid_loss', 'best trial', 0.5)

# kills L03, L09, L12, L02, L04 (and L10, L11)
def test_a_fit_that_collapses_every_time_restarts_three_times_then_runs_unwatched():
    ("Each collapse restarts the fit at half the lr (a slice keeps its ratios), counting the batches it ran; after `MAX_RESTART` "
     "restarts the fit runs once more, unwatched. The watch: the first half of the fit, windows of 1/8 of the probe's batches")
    learn,logs = _learner(),[]
    learn.logger = logs.append
    res,calls = _result(slice(1e-3, 0.1)),[]
    def launch(lr, watch):  # as if every watched fit collapsed at batch 50
        calls.append((lr.start, lr.stop, [(w.watch, w.w, w.hold) for w in watch]))
        for w in watch: w.fired = 50
    res._watched_fit(learn, launch, None, 'fit_cos_anneal')
    watched = [(500, 10, 40)]  # WATCH*1000; PROBE*1000//8; max(2*10, HOLD*1000)
    assert [c[2] for c in calls] == [watched]*3 + [[]]
    assert [c[:2] for c in calls] == [pytest.approx((1e-3/2**i, 0.1/2**i)) for i in range(4)]
    assert res.lr.stop == res.scale == pytest.approx(0.1/8) and res.lr.start == pytest.approx(1e-3/8)
    assert [r['lr'] for r in res.restarts] == pytest.approx([0.1, 0.05, 0.025]) and [r['batch'] for r in res.restarts] == [50]*3
    assert res.cost == 250 + 3*50 and len(logs) == 3 and all('collapsed' in l for l in logs)

# kills L07
def test_an_error_in_the_watched_fit_is_raised():
    "A fit that fails (not a collapse) raises its error: no restart, nothing swallowed"
    res = _result()
    def launch(lr, watch): raise RuntimeError('boom')
    with pytest.raises(RuntimeError, match='boom'): res._watched_fit(_learner(), launch, None, 'fit_cos_anneal')
    assert res.restarts == [] and res.scale == 0.1

class _CancelAt(Callback):
    "Cancels the fit at training batch `at`, its loss made `loss` first (None: left as it is)"
    def __init__(self, at, loss=None): self.at,self.loss = at,loss
    def after_loss(self):
        if self.training and self.train_iter == self.at:
            if self.loss is not None: self.learn.loss = self.learn.loss*0 + self.loss
            raise CancelFitException()

# kills CW05, CW07
@pytest.mark.parametrize('at,loss,fired', [(30, None, None), (30, math.nan, 31), (60, math.nan, None)],
                         ids=['finite_cancel', 'nan_in_the_watch', 'nan_after_the_watch'])
def test_only_a_bad_loss_within_the_watch_is_a_collapse(at, loss, fired):
    ("A fit another callback cancels is a collapse only when its loss went NaN or inf within the watched batches: an early stop on a "
     "finite loss, or a NaN once the watch is over, restarts nothing")
    learn = _learner()
    watch = CollapseWatch(40, 10, 10, tune._FitState(learn, None))
    quiet_fit(learn, 'fit', 1, 1e-3, cbs=[watch, _CancelAt(at, loss)])
    assert watch.fired == fired and (watch.state is None) == (at >= 40)

# kills FS02
def test_a_restart_removes_the_log_a_collapsed_fit_started(tmp_path):
    "An appending `CSVLogger` whose file did not exist before the fit: the restart removes the file the collapsed fit wrote"
    learn = _learner(path=tmp_path, cbs=CSVLogger(append=True))
    log = tmp_path/'history.csv'
    state = tune._FitState(learn, None)
    log.write_text('epoch,train_loss\n0,1.0\n')  # what the collapsed fit wrote
    state.restore()
    assert not log.exists()

# kills L01, L16
def test_the_result_s_repr():
    assert repr(_result()) == "LRTuneResult(lr=0.1, 0 trials, 250 extra training batches (0.25x the fit's 1000), rule='best trial')"
    assert _result().cost_ratio == 0.25

_TRIALS = [dict(lr=lr, steps=s, rung=r, score_name=n, score=v, diverged=not math.isfinite(v), losses=[1., 0.5])
           for lr,s,r,n,v in [(0.01, 8, 0, 'train_loss', 1.), (0.1, 8, 0, 'train_loss', 0.5), (1., 8, 0, 'train_loss', math.inf),
                              (0.05, 20, 1, 'valid_loss', 0.4), (0.1, 20, 1, 'valid_loss', 0.3), (0.2, 20, 1, 'valid_loss', 0.35)]]

# kills PL01, PL02, PL03
def test_the_plot_shows_each_rung_the_diverged_trials_and_the_pick():
    fig = _result(0.08, trials=_TRIALS).plot(return_fig=True)
    ax,ax2 = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ['rung 0: 8 batches, train loss', 'rung 1: 20 batches, valid_loss', 'tuned 0.08']
    crosses = [l for l in ax.lines if l.get_marker() == 'x']
    assert [(list(l.get_xdata()), list(l.get_ydata())) for l in crosses] == [([1.], [1.])]  # at rung 0's worst finite score
    assert [list(l.get_xdata()) for l in ax.lines if l.get_linestyle() == '--'] == [[0.08, 0.08]]
    assert len(ax2.lines) == len(_TRIALS)
    plt.close(fig)

def _stub_tune_lr(monkeypatch):
    "`tune_lr` replaced: it records its arguments and raises `_Stub`"
    got = {}
    def stub(learn, plan, n_steps, lr_like, ratios, budget, monitor, **kw): got.update(kw, budget=budget, n_steps=n_steps); raise _Stub()
    monkeypatch.setattr(tune, 'tune_lr', stub)
    return got

# kills CT01, FC01, FC02 (lr_tune); TL02 (tune_lr)
@pytest.mark.parametrize('kw', [dict(budget=1.), dict(fit='fit_one_cycle', pct_start=0.), dict(fit='fit_one_cycle', pct_start=1.),
                                dict(fit='fit_one_cycle', start_epoch=0), dict(fit='fit_sgdr', n_cycles=2, cycle_len=1, cycle_mult=2)],
                         ids=['budget_1', 'pct_start_0', 'pct_start_1', 'start_epoch_0', 'cycle_mult_2'])
def test_the_bounds_of_the_arguments_are_accepted(kw, monkeypatch):
    "The values at the edge of each range `lr_tune` checks pass its checks (the tuning itself stubbed out)"
    _stub_tune_lr(monkeypatch)
    args = () if kw.get('fit') == 'fit_sgdr' else (10,)
    with pytest.raises(_Stub): _learner().lr_tune(*args, **kw)

# pins `tune_lr`'s own bound (its mutant TL02 was killed by test_bad_input; this names the behaviour)
def test_tune_lr_takes_the_whole_fit_as_budget(monkeypatch):
    got = {}
    monkeypatch.setattr(tune, '_tune', lambda learn, plan, n_steps, lr_like, ratios, budget, *a: got.update(budget=budget))
    tune_lr(_learner(), _plan(), 1000, budget=1.)
    assert got == {'budget': 1.}

# kills FF01, FF02, FF05
@pytest.mark.parametrize('fit', ['fit', 'fit_one_cycle', 'fit_flat_cos'])
def test_fastai_fits_hand_their_wd_and_reset_opt_to_the_trials(fit, monkeypatch):
    got = _stub_tune_lr(monkeypatch)
    with pytest.raises(_Stub): _learner().lr_tune(10, fit=fit, wd=0.3, reset_opt=True)
    assert list(np.atleast_1d(got['wd'])) == [0.3] and got['reset_opt'] is True and got['n_steps'] == 10*N_TRAIN

# kills PL05
def test_show_plot_plots_the_result(monkeypatch):
    res,shown = _result(),[]
    monkeypatch.setattr(tune, 'tune_lr', lambda *a, **k: res)
    monkeypatch.setattr(tune.LRTuneResult, 'plot', lambda self, return_fig=False: shown.append(self))
    learn = _learner()
    assert learn.lr_tune(10, show_plot=True) is res and shown == [res]
    assert learn.lr_tune(10) is res and shown == [res]

# kills FT01
def test_fit_tuned_logs_the_tuned_lr(monkeypatch):
    "`fit_tuned` says what it tuned before it fits"
    res,logs = _result(),[]
    monkeypatch.setattr(tune, 'tune_lr', lambda *a, **k: res)
    monkeypatch.setattr(tune.LRTuneResult, '_watched_fit', lambda self, *a: None)
    learn = _learner()
    learn.logger = logs.append
    assert learn.fit_tuned(10) is res
    assert logs == ["fit_cos_anneal: lr_max tuned to 0.1 (0 trials, 250 extra training batches)"]

# kills BE02, BE03
def test_best_takes_the_largest_lr_within_a_tenth_of_a_percent():
    assert tune._best({0.1: 1.0, 0.2: 1.0009, 0.4: 1.002}) == 0.2
    assert tune._best({0.1: -1.0, 0.2: -0.9991, 0.4: -0.99}) == 0.2  # of |the lowest score|
    assert tune._best({0.1: math.inf, 0.2: math.inf}) == 0.1

def _no_valid_learner(**kw):
    set_seed(0, reproducible=True)
    return Learner(synth_dbunch(n_train=N_TRAIN, n_valid=0), RegModel(), loss_func=MSELossFlat(), **kw)

# kills C03, C04, C05, TU33
def test_without_a_validation_set_rung_1_scores_the_training_loss():
    "A learner without validation batches: rung 1 scores the training loss; monitoring a metric is refused, naming the reason"
    learn = _no_valid_learner(metrics=[mae])
    res = learn.lr_tune(10, fit='fit_cos_anneal')
    assert {t['score_name'] for t in res.trials} == {'train_loss'} and res.valid_cost == 0
    with pytest.raises(ValueError, match="monitor='mae' needs a validation set; the learner has none"):
        learn.lr_tune(10, fit='fit_cos_anneal', monitor='mae')

# kills PC07 in one process (the suite kills it only in test_distributed's multi-process run)
def test_a_fit_without_training_batches_is_refused():
    with pytest.raises(ValueError, match="lr='auto' needs training batches"): mk_learner(n_train=0).lr_tune(10)

# kills TL01
def test_tune_lr_refuses_a_plan_that_is_not_callable():
    "Named before anything runs (it failed after the range test, on calling an int)"
    learn = _learner()
    with pytest.raises(TypeError, match=r'plan must be a callable plan\(scale, frac\)'): tune_lr(learn, 5, 1000)
    assert learn.opt is None

# kills TL10
def test_the_range_test_takes_the_learners_wd_when_the_fit_gives_none():
    "A fit without its own `wd` takes the learner's (fastai's `fit`): so does the range test, as the trials do"
    seen = []  # outside the callback: the tuner gives each callback its state back
    class Spy(Callback):
        def before_batch(self):
            if self.training and self.iter == 0: seen.append((type(getattr(self.learn, 'lr_finder', None)).__name__, self.opt.hypers[0]['wd']))
    learn = _learner(wd=0.3)
    learn.lr_tune(10, fit='fit_cos_anneal', cbs=Spy())
    assert seen[0] == ('AnnealLRFinder', 0.3) and all(w == 0.3 for _,w in seen) and learn.wd == 0.3

# kills TU21
def test_a_nan_metric_scores_inf_without_diverging(monkeypatch):
    "A rung-1 trial whose metric is NaN scores inf (never the pick) and is no divergence: nothing is capped below it"
    _known_scores(monkeypatch, lambda lr: _at(lr, 0.05), lambda lr: math.nan if lr > 0.1 else _at(lr, 0.07) + 1)
    res = _search()
    nan = [t for t in res.trials if t['rung'] == 1 and t['lr'] > 0.1]
    assert len(nan) == 1 and nan[0]['score'] == math.inf and not nan[0]['diverged']
    assert res.scale == 1/16 and res.rule == 'best trial'  # its neighbour's score is not finite: no parabola, and no cap

# kills TU38
def test_a_nan_metric_on_every_last_trial_is_an_error_whatever_rung_0_did(monkeypatch):
    "Rung 0 had trials that diverged (at the top), rung 1's metric is NaN on every trial: the error names the metric"
    _known_scores(monkeypatch, lambda lr: math.inf if lr >= 1 else _at(lr, 0.05), lambda lr: math.nan)
    with pytest.raises(RuntimeError, match="monitor='valid_loss' was NaN or infinite after every trial of the last rung"): _search()

# kills TU45
def test_the_pick_is_capped_at_twice_the_range_test_s_top(monkeypatch):
    "Rung 1's vertex at 3.5x the range test's top: the pick is 2x the top, whatever lies between 2x and more"
    _known_scores(monkeypatch, lambda lr: _at(lr, 0.05), lambda lr: _at(lr, 0.07) + 1, top=0.02)
    res = _search()
    assert res.scale == pytest.approx(0.04) and res.rule == "parabola vertex, capped at 2x the range test's top 0.02"
    assert [p['lr'] for p in res.probes] == [pytest.approx(0.04)]  # the capped pick is probed, and holds

# kills CW02
def test_the_watch_counts_training_batches_only():
    "The watch's batches are the fit's training batches: a validation batch neither counts nor joins a window"
    learn = _learner()
    watch = CollapseWatch(500, 10, 10)
    quiet_fit(learn, 'fit', 2, 1e-3, cbs=watch)
    assert len(watch.losses) + len(watch.new) == 2*N_TRAIN and watch.fired is None

# kills PC01
@pytest.mark.parametrize('wd', [np.array(0.1), torch.tensor(0.1)], ids=['numpy', 'torch'])
def test_a_0d_wd_reaches_fastai_s_fit_as_the_number_it_holds(wd, monkeypatch):
    "`fit_tuned(..., fit='fit_one_cycle', wd=<0-d array>)`: fastai's fit after the tuning takes the number (it failed on `len()`)"
    res = _result(1e-2)
    monkeypatch.setattr(tune, 'tune_lr', lambda *a, **k: res)  # the tuning's outcome: the fit is what this test runs
    learn = mk_learner(n_train=20, groups=2)
    with learn.no_bar(), learn.no_logging(): learn.fit_tuned(2, fit='fit_one_cycle', wd=wd)
    assert [h['wd'] for h in learn.opt.hypers] == pytest.approx([0.1, 0.1])

# kills TC01
def test_the_range_test_keeps_the_groups_lr_ratios():
    "With discriminative lrs the range test sweeps every group at the fit's ratios (the largest from 1e-7), as the trials run them"
    seen = []  # outside the callback: the tuner gives each callback its state back
    class Spy(Callback):
        order = 99  # after the sweep set the batch's lrs
        def before_batch(self):
            if self.training and self.iter == 0 and type(getattr(self.learn, 'lr_finder', None)).__name__ == 'AnnealLRFinder':
                seen.append([h['lr'] for h in self.opt.hypers])
    _learner(groups=2).lr_tune(10, lr_max=[1., 0.01], cbs=Spy())
    assert seen == [pytest.approx([1e-7, 1e-9])]
