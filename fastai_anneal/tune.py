"Budget-aware learning rate: short trials of the very fit you are about to run pick its peak lr (`Learner.lr_tune`, `lr='auto'`)."
from __future__ import annotations
import inspect, math, time, warnings, weakref
from contextlib import contextmanager
from pathlib import Path
import numpy as np, torch
import matplotlib.pyplot as plt
from fastcore.basics import store_attr, patch
from fastcore.foundation import L
from fastai.learner import Learner, Recorder
from fastai.callback.core import Callback, CancelFitException, CancelTrainException, CancelValidException
from fastai.callback.schedule import ParamScheduler, SuggestionMethod, SchedNo
from fastai.callback.progress import CSVLogger
from ._checks import check_float, check_bool, check_choice, check_lrs, check_int, check_moms, check_cbs, bind_args, group_lrs
from ._groups import n_groups, train_batches, agree as _agree, lower_is_better, LOWER_IS_BETTER
from .registry import VARIANTS
from .snapshot import LearnerSnapshot, run_all, _RecorderKept, _CallbacksKept, _csv_loggers_aside, _is_csv
from .fit import bind_call, prepare_call, held_lrs, fine_tune_phases, fine_tune_run, check_callbacks, _group_lrs, _per_epoch, _launch
# and `Learner.lr_find`, the package's: the range test restores in memory and writes no file
from .lr_finder import _diverged, _moved, MIN_MOVE

# and `Learner.lr_tune`, applied on import
__all__ = ['LRTuneResult', 'TrialScheduler', 'CollapseWatch', 'tune_lr', 'lr_scale_like', 'FASTAI_FITS', 'LOWER_IS_BETTER']

# ---------------------------------------------------------------- one trial
class TrialScheduler(ParamScheduler):
    ("Run `scheds` over exactly `n_steps` training batches (position `iter/n_steps`), then validate once (with `validate`) and stop; "
     "stops at once when the loss diverges")
    # fastai's trackers, loggers and progress callbacks stand aside while a callback named `lr_finder` runs: a trial is a search, not a fit
    @property
    def name(self): return 'lr_finder'
    def __init__(self, scheds:dict, n_steps:int, validate:bool=False, div_thresh:float=4., snap:LearnerSnapshot|None=None):
        if not isinstance(scheds, dict) or not scheds or not all(isinstance(k, str) and callable(f) for k,f in scheds.items()):
            raise TypeError(f"scheds must be a non-empty dict of hyper-parameter name: schedule (a callable of the position), got "
                            f"{scheds!r}")
        n_steps,validate = check_int('n_steps', n_steps),check_bool('validate', validate)
        div_thresh = check_float('div_thresh', div_thresh, 1., inf_ok=True)  # diverged above `div_thresh` x its best (inf: NaN only)
        super().__init__(scheds)
        store_attr('n_steps,validate,div_thresh,snap')  # `snap`: where the trial began (`_moved`: no divergence while the weights stay)
    def before_fit(self):
        super().before_fit()
        self.losses,self.best,self.diverged,self.done,self.last = [],math.inf,False,False,None
    def before_batch(self): self._update_val(min(self.train_iter/self.n_steps, 1.))
    def after_loss(self): self.last = self.learn.loss  # seen even when a callback cancels the fit before `after_batch`
    def after_batch(self):
        super().after_batch()
        loss,smooth = float(self.learn.loss.detach()),float(self.learn.smooth_loss)
        self.losses.append(loss)
        self.best = min(self.best, smooth)
        if not math.isfinite(loss) or (_diverged(smooth, self.best, self.div_thresh) and _moved(smooth, self.snap)):
            self.diverged = True; raise CancelFitException()
        if self.train_iter >= self.n_steps:
            self.done = True
            raise CancelTrainException() if self.validate else CancelFitException()  # the epoch goes on to its validation
    def before_validate(self):
        if not self.done: raise CancelValidException()  # an epoch inside the trial
    def after_validate(self):
        "The validation loss and every metric, by name (the `Recorder` accumulated them)"
        if not (self.done and self.validate): return  # fastai ends a cancelled validation too: nothing was accumulated
        rec = self.learn.recorder
        self.valid = {'valid_loss': rec.loss.value, **{m.name: m.value for m in rec.metrics}}
    def after_epoch(self):
        if self.done: raise CancelFitException()

def _run_phases(learn, phases:list, cbs, wd, validate:bool, reset_opt:bool=False, snap=None) -> tuple:
    ("Run `phases` (a list of `(freeze_to, scheds, n_steps)`) back to back, the last one validated if `validate`; (losses, diverged, "
     "valid). A trial that another callback cancelled on a bad loss (fastai's `TerminateOnNaNCallback`) counts as diverged")
    losses,phases = [],[p for p in phases if p[2] > 0]
    for i,(freeze,scheds,n) in enumerate(phases):
        if freeze is not None: learn.freeze_to(freeze)
        cb = TrialScheduler(scheds, n, validate and i == len(phases)-1, snap=snap)
        with learn.no_logging(), learn.no_bar():  # 4x the epochs `n` batches fill: room for a callback that ends epochs early
            learn.fit(4*math.ceil(n/train_batches(learn)), cbs=L(cb) + L(cbs), wd=wd, reset_opt=reset_opt)
        losses += cb.losses
        if not cb.done and not cb.diverged and (cb.last is None or bool(torch.isfinite(cb.last).all())):
            raise RuntimeError(f"lr='auto': a trial of {n} batches ran out of epochs after {len(cb.losses)}: a callback ends "
                               f"epochs early (fastai's `ShortEpochCallback`?); tune without it, or pass the fit an lr")
        if cb.diverged or not cb.done: return losses,True,None
    return losses,False,getattr(cb, 'valid', None)

def _prefix(phases:list, n:int) -> list:
    "The first `n` batches of `phases` (`(freeze_to, scheds, n_steps)`, uncompressed): each phase's schedules cut where the prefix ends"
    res = []
    for freeze,scheds,k in phases:
        m = min(k, n - sum(p[2] for p in res))
        if m <= 0: break
        res.append((freeze, {h: (lambda pos, f=f, r=m/k: f(pos*r)) for h,f in scheds.items()}, m))
    return res

# ---------------------------------------------------------------- scores
def _check_monitor(learn, monitor:str) -> tuple:
    ("`(lower, has_valid)` for `monitor`, after checking the learner can score it: `lower`, whether lower is better (a name with "
     "'loss' or 'error', fastai's `TrackerCallback` convention, or one of fastai's regression metrics, `LOWER_IS_BETTER`); "
     "`has_valid`, whether rung 1 scores the validation set (else the training loss)")
    names = ['valid_loss'] + [m.name for m in L(learn.metrics)]
    if monitor not in names:
        raise ValueError(f"monitor must be 'valid_loss' or the name of one of the learner's metrics {names[1:]}, got {monitor!r}")
    if not hasattr(learn, 'recorder'):
        raise ValueError("lr='auto' and lr_tune need the learner's Recorder, which records the trials' losses (create the Learner with "
                         "default_cbs=True)")
    has_valid = len(learn.dls.valid) > 0 if learn.dls.valid is not None else False
    if not has_valid and monitor != 'valid_loss': raise ValueError(f"monitor={monitor!r} needs a validation set; the learner has none")
    if has_valid and not getattr(learn.recorder, 'valid_metrics', True):  # the Recorder keeps no validation loss or metric to score
        if monitor != 'valid_loss':
            raise ValueError(f"monitor={monitor!r} needs the validation metrics, which the learner's Recorder does not record "
                             f"(valid_metrics=False); monitor 'valid_loss' scores the training loss then")
        has_valid = False  # rung 1 scores the training loss, as without a validation set
    return lower_is_better(monitor),has_valid

def _vertex(xs, ys) -> float|None:
    "Minimum of the parabola through three points `(xs, ys)` (xs equally spaced), or None when it opens downwards"
    (x0,x1,x2),(a,b,c) = xs,ys
    curv = a - 2*b + c
    if not curv > 0: return None
    return x1 + (x1-x0) * (a-c) / (2*curv)

def _batch_losses(smoothed, beta:float) -> np.ndarray:
    "Each batch's own loss, recovered from a fit's `Recorder.losses` (fastai's `AvgSmoothLoss`: a debiased running mean with `beta`)"
    s = np.asarray(smoothed, dtype=np.float64)
    val = s * (1 - beta**np.arange(1, len(s)+1))
    return (val - beta*np.r_[0., val[:-1]]) / (1 - beta)

# the range test's fall must pass this many standard errors of batch noise (the benchmark's sweeps: real falls 3.6-25, models at
# their floor (pre-fitted) or a flat start at most 1.5; of pure-noise floors that fastai's 2% rule calls a fall, 2-4% still pass)
FALL_SE = 3.

def _range_top(lrs, losses, minimum:float, num_it:int, beta:float=0.98) -> float:
    ("The top candidate from a range test: the lr of its lowest smoothed loss if the loss fell (by 2%, and beyond batch noise), else "
     "(a minimum in the noise of a flat loss) a tenth of its last lr")
    k = max(1, num_it//10)
    fin = [l for l in losses if math.isfinite(l)]
    head = float(np.mean(fin[:k])) if fin else math.nan
    # the fall is measured where the suggestion looks (after the head, fastai's window) and against the batches' own noise: a model
    # already at its floor (pre-fitted) shows single noisy batches below the rest (the head's first debiased points, or a lucky run
    # in the window) while never falling
    tail = np.asarray(losses[k:-5], dtype=np.float64)
    win = tail[np.isfinite(tail)]
    if not (math.isfinite(minimum) and len(win) and win.min() < head - 0.02*abs(head)): return lrs[-1]/10 if lrs else math.nan  # < 0 ok
    raw = _batch_losses(losses, beta)
    m = k + int(np.nanargmin(np.where(np.isfinite(tail), tail, np.nan)))
    a,b = raw[:max(4, k)],raw[max(0, m-5):m+1]  # the first batches, and the last 6 to the lowest smoothed loss
    sigma = math.sqrt(np.mean(np.diff(raw[:m+1])**2)/2)  # batch noise from successive differences: a trend barely counts
    return minimum*10 if a.mean() - b.mean() > FALL_SE*sigma*math.sqrt(1/len(a) + 1/len(b)) else lrs[-1]/10

# ceiling: the trials extend above the range test's top while their best is at the edge (the range test can be off by decades), but
# the pick stays within `ABOVE_TOP` of that top. In 106 tunings of the benchmarks the picks above 2x the top were all past their
# grid's best: a bag of embeddings whose range test never fell and whose 8-batch trials learned nothing below 16x its top picked
# 8.8 (the probe halved it; 95.7% where 0.03 to 0.5 give 99.5-99.9%), plain SGD on wine 6x (+50% of the best validation loss), a
# BatchNorm net 2.4-3.5x on a flat curve (no loss either way)
ABOVE_TOP = 2.

# stability probe: 8% of the fit. It is unstable when the mean training loss of its last window lies above its lowest window by more
# than 5% of that low, by more than 3 standard errors of the difference (batch-to-batch noise), and by more than 10% of the fall from
# the first window to the low: a loss at its floor wanders, a noisy one jumps, a slow starter's barely falls. The noise is the
# windows' mean variance, or for a run that ended above its start their median variance (a collapse's spikes, the very instability,
# had inflated the mean: two held-out runs that collapsed passed). At most 3 halvings
PROBE,RISE,GIVE_BACK,MAX_HALVE = 0.08,0.05,0.1,3
# the probe runs for a pick at least half the range test's `top` (where a short run's loss stopped falling): picks far below it
# were never near the cliff in the benchmark, and the probe costs 8% of the fit. Once a probe was unstable the cliff is known to be
# near, and each halved pick is probed again, wherever it lies (a held-out conv net halved 0.51 -> 0.25, below half its top, and
# unprobed it fell to chance: 34%)
PROBE_NEAR = 0.5
# divergence margin: the pick stays at least this factor below the lowest lr whose trial diverged. A compressed trial spends a few
# dozen batches near its peak, the fit 30x more: an lr one factor-2 step below a trial that diverged sat on the fit's cliff in the
# benchmark (MNIST-1D, 30 epochs: 0.073 next to a diverged 0.147 ended at 84%, 0.037 at 94%)
DIV_MARGIN = 4.

def _windows(losses, w:int) -> np.ndarray:
    "`losses` in consecutive windows of `w` (one row each; a last partial window left out)"
    return np.asarray(losses[:len(losses)//w*w], dtype=np.float64).reshape(-1, w)

def _unstable(losses:list) -> tuple:
    ("Whether a probe's training `losses` climbed back up at its end (see `PROBE`); and the share of its fall given back. A run that "
     "ended above its start after falling is unstable against the typical window's noise: the spikes of a collapse inflate the mean")
    w = max(4, len(losses)//8)
    wins = _windows(losses, w)
    if len(wins) < 2: return False,0.
    m,var = wins.mean(1),wins.var(1, ddof=1)
    lo,start,end = m.min(),m[0],m[-1]
    back = (end - lo)/(start - lo) if start > lo else (math.inf if end > lo else 0.)
    def climbed(v): return bool(end - lo > max(RISE*abs(lo), 3*math.sqrt(2*v/w)) and back > GIVE_BACK)  # se of a difference
    return climbed(var.mean()) or (end > start and climbed(float(np.median(var)))),float(back)

def _best(scores:dict) -> float:
    "The candidate with the lowest score; within 0.1% of it, the largest lr (trials that cannot tell lrs apart have learned nothing yet)"
    lo = min(scores.values())
    if not math.isfinite(lo): return min(scores)
    return max(k for k,v in scores.items() if v <= lo + 1e-3*abs(lo))

# ---------------------------------------------------------------- the result
class LRTuneResult:
    ("The tuned learning rate of one fit and its evidence: every trial's lr, length, rung, score and loss curve, the stability probes "
     "(`probes`: lr, batches, unstable, loss curve), the cost in batches, and the fit's restarts after a collapse (`restarts`: lr, "
     "batch, loss curve; `fit_*(n, 'auto')` only)")
    def __init__(self, lr:float|slice|list, scale:float, trials:list, sweep:dict, top:float, n_steps:int, cost:int, valid_cost:int,
                 monitor:str, rule:str, time_s:float, probes:tuple|list=()):
        store_attr(); self.restarts = []
    @property
    def cost_ratio(self) -> float: "Training batches spent tuning per training batch of the fit"; return self.cost / self.n_steps
    def _watched_fit(self, learn:Learner, launch:callable, cbs, method:str):
        ("Run the fit `launch(lr, extra_cbs)` at this lr, watched by `CollapseWatch` (`Learner.fit_tuned`; `cbs`: the fit's own "
         "callbacks): a fit that collapses starts again from where it began (the learner, its callbacks' state, its CSV logs), at "
         "half the lr")
        w = max(4, round(PROBE*self.n_steps)//8)
        for i in range(MAX_RESTART + 1):
            if i == MAX_RESTART: return launch(self.lr, L())  # the last restart runs unwatched
            watch = CollapseWatch(round(WATCH*self.n_steps), w, max(2*w, round(HOLD*self.n_steps)), _FitState(learn, cbs), True)
            try: launch(self.lr, L(watch))
            except BaseException as e:  # a callback's `after_fit` may fail on the cancelled fit (`SaveModelCallback`: no file yet)
                if watch.fired is None or not isinstance(e, Exception): watch.state = None; raise
            if watch.fired is None: watch.state = None; return
            watch.state.restore(); watch.state = None
            self.restarts.append(dict(lr=self.scale, batch=watch.fired, losses=watch.losses))
            self.cost += watch.fired
            scale = self.scale/2
            learn.logger(f"{method}: the fit at lr {self.scale:.3g} collapsed (its training loss gave back {BACK:.0%} of its fall and "
                         f"stayed there, batch {watch.fired} of {self.n_steps}); restarting from where it began at {scale:.3g}")
            self.lr,self.scale = lr_scale_like(self.lr, scale),scale
            self.rule += f", restarted at half: the fit collapsed at batch {watch.fired}"
    def __repr__(self):
        return (f"LRTuneResult(lr={self.lr!r}, {len(self.trials)} trials, {self.cost} extra training batches "
                f"({self.cost_ratio:.2f}x the fit's {self.n_steps}), rule={self.rule!r})")

    def plot(self, return_fig:bool=False):
        "Left: each rung's score against lr, the tuned lr dashed; right: every trial's training loss per batch"
        fig,(ax,ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for r in sorted({t['rung'] for t in self.trials}):
            ts = sorted((t for t in self.trials if t['rung'] == r), key=lambda t: t['lr'])
            lab = f"rung {r}: {ts[0]['steps']} batches, " + ('train loss' if ts[0]['score_name'] == 'train_loss' else ts[0]['score_name'])
            fin = [t for t in ts if math.isfinite(t['score'])]
            ax.plot([t['lr'] for t in fin], [t['score'] for t in fin], 'o-', label=lab)
            for t in ts:
                if not math.isfinite(t['score']): ax.plot(t['lr'], max((f['score'] for f in fin), default=1), 'x', c='r')
        ax.axvline(self.scale, ls='--', c='k', lw=1, label=f"tuned {self.scale:.3g}")
        ax.set_xscale('log'); ax.set_xlabel('peak lr'); ax.set_ylabel('score'); ax.legend(fontsize=8)
        cmap = plt.get_cmap('viridis')
        lrs = sorted({t['lr'] for t in self.trials})
        for t in self.trials:
            c = cmap(lrs.index(t['lr'])/max(len(lrs)-1, 1))
            ax2.plot(t['losses'], c=c, lw=1.2 if t['rung'] else 0.6, alpha=0.9 if t['rung'] else 0.5)
        ax2.set_xlabel('trial batch'); ax2.set_ylabel('training loss'); ax2.set_title('trials (colour: lr, thick: last rung)', fontsize=9)
        fig.tight_layout()
        return fig if return_fig else None

def lr_scale_like(lr:float|slice|list|None, scale:float) -> float|slice|list:
    "`lr` (a float, a slice, or a list of per-group lrs) scaled so its largest value is `scale`"
    scale = check_float('scale', scale)
    if lr is not None: check_lrs('lr', lr, slice_ok=True)  # each value finite and > 0: their ratios are kept
    if isinstance(lr, slice):
        top = lr.stop if lr.start is None else max(lr.start, lr.stop)  # fastai spreads slice(start, stop) either way round
        return slice(None if lr.start is None else lr.start*scale/top, scale if top == lr.stop else lr.stop*scale/top)
    if isinstance(lr, torch.Tensor): lr = lr.detach().cpu().numpy()  # per-group values, as fastai's `set_hyper` takes them
    if isinstance(lr, (list, tuple, np.ndarray)):
        arr = np.asarray(lr, dtype=np.float64)
        out = (arr * (scale/arr.max())).tolist()
        return type(lr)(out) if isinstance(lr, (list, tuple)) else np.array(out)
    return float(scale)

# ---------------------------------------------------------------- the search
def tune_lr(learn:Learner,
    plan:callable,            # `plan(scale, frac) -> [(freeze_to, scheds, n_steps), ...]`: the fit's phases at `frac` of its length
    n_steps:int,              # Training batches of the fit being tuned
    lr_like:float|slice|list|None=None,  # The fit's lr argument (float, slice, list; None: one value): its per-group ratios are kept
    ratios:list|None=None,    # Per-group lr ratios for the range test (largest 1)
    budget:float=0.25,        # Training batches of the range test and trials, as a fraction of `n_steps` (each stability probe adds 8%)
    monitor:str='valid_loss', # Score of the last rung: 'valid_loss' or a metric name
    cbs:list|None=None,       # The fit's extra callbacks (they run in the trials too)
    wd:float|list|None=None,  # The fit's weight decay
    reset_opt:bool=False,     # The fit's `reset_opt`: the range test, every trial and probe start from a new optimizer
) -> LRTuneResult:
    ("Range test for the scale, successive halving of compressed trials of the fit itself (the lr minimising the last rung's parabola), "
     "then a stability probe: the fit's own first batches, the lr halved while they climb back up")
    start = time.perf_counter()
    if not callable(plan): raise TypeError(f"plan must be a callable plan(scale, frac) -> the fit's phases, got {plan!r}")
    n_steps,budget = check_int('n_steps', n_steps),check_float('budget', budget, 0., 1., hi_open=False)
    reset_opt,cbs,lr_like = check_bool('reset_opt', reset_opt),check_cbs(cbs),_lr_like('lr_like', lr_like)
    if wd is not None: wd = group_lrs('wd', wd, n_groups(learn), zero_ok=True)
    if ratios is not None:
        ratios = np.atleast_1d(check_lrs('ratios', ratios)).astype(np.float64)
        if len(ratios) != n_groups(learn):
            raise ValueError(f"ratios must hold one value per param group ({n_groups(learn)}), got {len(ratios)}")
    lower,has_valid = _check_monitor(learn, monitor)
    # fastai's `CSVLogger` does not stand aside for `lr_finder`: the tuning writes no log, and leaves the last fit's history
    # every callback's state comes back too: a tracker's `run` flag after an interrupt, an EMA or `ActivationStats` the trials fed
    with _csv_loggers_aside(learn), _RecorderKept(learn), _CallbacksKept(learn, cbs, skip=Recorder) as kept, _weights_must_move():
        return _tune(learn, plan, n_steps, lr_like, ratios, budget, monitor, lower, has_valid, L(c for c in L(cbs) if not _is_csv(c)),
                     wd, reset_opt, start, kept)

# the range test, trials and probes call a rise in the loss divergence only once the weights moved this far from where they began
# (relative L2, `lr_finder.MIN_MOVE`): a trained model's batch losses can span two decades at bs 8, and fastai's 4x rule, whose best
# is then one lucky batch, stopped every search at lrs that barely move a weight (1e-13 to 1e-5): "every trial diverged". In the
# benchmark's searches every divergence had moved the weights by 2.2-23x their size; the noise stops of a trained model, 1e-4 to 0.05
TUNE_MIN_MOVE = 1e-2

@contextmanager
def _weights_must_move():
    "`MIN_MOVE` set to `TUNE_MIN_MOVE` for the block (the tuner's searches)"
    tok = MIN_MOVE.set(TUNE_MIN_MOVE)
    try: yield
    finally: MIN_MOVE.reset(tok)

class _wd_as:
    "`learn.wd` set to `wd` (None: left as it is) for the block: fastai's `fit` (the range test's) takes its weight decay from it"
    def __init__(self, learn, wd): self.learn,self.wd = learn,wd
    def __enter__(self):
        self.old = self.learn.wd
        if self.wd is not None: self.learn.wd = self.wd
    def __exit__(self, *exc): self.learn.wd = self.old

MIN_TRIAL = 8  # batches of a rung-0 trial at least (rung 1: 2.5x): shorter ones answer noise
MIN_FIT = 5*MIN_TRIAL  # training batches of the shortest fit `lr='auto'` tunes
SWEEP = (30, 0.04, 100)  # the range test's batches: 4% of the fit, at least 30 (fastai smooths over ~50) and at most 100
TRIALS = 8 + 4*2.5  # the trials in rung-0 lengths: about 8 of rung 0, at most 4 of rung 1, 2.5x longer

def _n_sweep(n:int) -> int: return int(min(SWEEP[2], max(SWEEP[0], round(SWEEP[1]*n))))
def _rung0(n:int, budget:float) -> int:
    "Batches of each rung-0 trial of a fit of `n` batches: what `budget` leaves after the range test, shared by `TRIALS`"
    return int((budget*n - _n_sweep(n)) // TRIALS)

def _shortest_tuned(n:int, budget:float) -> int:
    ("The fewest training batches above `n` whose trials reach `MIN_TRIAL` within `budget` (the short-fit warning's advice: the "
     "range test grows with the fit, so the answer is searched while it grows, and solved once it stays at its longest)")
    longest = math.ceil((SWEEP[2] - 0.5)/SWEEP[1])  # from here on the range test is `SWEEP[2]` batches
    for m in range(n + 1, longest):
        if _rung0(m, budget) >= MIN_TRIAL: return m
    m = max(n + 1, longest, math.floor((SWEEP[2] + MIN_TRIAL*TRIALS) / budget))
    while _rung0(m, budget) < MIN_TRIAL: m += 1  # a step or two: the division's rounding
    return m

class _FromStart(LearnerSnapshot):
    ("A trial or probe starts as the fit would: the callbacks' state as it was before the tuning (`kept`: an EMA model, a tracker's "
     "`best`, not what the range test and the last trial left), and the learner, put back after it")
    def __init__(self, learn, kept): kept.restore(); super().__init__(learn)

def _tune(learn, plan, n_steps, lr_like, ratios, budget, monitor, lower, has_valid, cbs, wd, reset_opt, start, kept) -> LRTuneResult:
    ("`tune_lr`'s search, with the fit's callbacks (its CSV loggers excepted); `kept`: their state before it (`_CallbacksKept`); "
     "`lower`, `has_valid`: `_check_monitor`'s answer")
    # A range test needs points (fastai smooths its loss over ~50 batches) and a trial needs batches to tell lrs apart: below these
    # lengths the tuning answers noise, so a short fit pays more than `budget` (with a warning), and a tiny one is refused.
    n_sweep = _n_sweep(n_steps)
    n_probe = max(1, round(PROBE * n_steps))  # the stability probe (step 6), on top of the budget
    t0 = _rung0(n_steps, budget)  # rung 0: about 8 trials; rung 1: at most 4, 2.5x longer
    if t0 < MIN_TRIAL:
        if n_steps < MIN_FIT:
            raise ValueError(f"lr='auto' needs a fit of at least {MIN_FIT} training batches to run trials, this one has {n_steps}")
        need = _shortest_tuned(n_steps, budget)
        warnings.warn(f"lr='auto': the fit has {n_steps} training batches; tuning within budget={budget} needs {need}. The trials "
                      f"take their minimum length, {MIN_TRIAL} and {round(2.5*MIN_TRIAL)} batches: tuning costs more than the budget")
        t0 = MIN_TRIAL
    t1 = round(2.5*t0)
    ratios = np.ones(1) if ratios is None else np.asarray(ratios, dtype=np.float64)
    # 1. scale: the range test's lr at the lowest smoothed loss (fastai's `minimum` suggestion x10) is the top candidate; when
    # the loss never fell (a model that learns slowly: flat until it diverges), that minimum is noise, and the top is a tenth
    # of the lr where the sweep stopped
    with LearnerSnapshot(learn), learn.no_bar(), learn.added_cbs(cbs), _wd_as(learn, wd), warnings.catch_warnings():  # the fit's cbs, wd
        # a NaN minimum is `_range_top`'s to handle: lr_find's warning would advise arguments (num_it, end_lr) the fit does not take
        warnings.filterwarnings('ignore', message='lr_find: no `minimum` suggestion')
        if reset_opt: learn.create_opt()  # as the fit's `Learner.fit(reset_opt=True)`
        sugg = learn.lr_find(start_lr=list(ratios*1e-7) if len(ratios) > 1 else 1e-7, end_lr=list(ratios*10) if len(ratios) > 1 else 10,
                             num_it=n_sweep, show_plot=False, suggest_funcs=(SuggestionMethod.Minimum,))
        # fastai's Recorder logs the last group's lr: in the units of the largest group (the scale) it is over that group's ratio
        last = float(ratios[-1]) if ratios[-1] > 0 else 1.
        sweep = dict(lrs=[float(np.atleast_1d(v)[-1])/last for v in learn.recorder.lrs], losses=[float(v) for v in learn.recorder.losses])
    top = _range_top(sweep['lrs'], sweep['losses'], float(sugg.minimum)/last, n_sweep, learn.recorder.smooth_loss.beta)
    top = math.exp(_agree([math.log(top) if math.isfinite(top) and top > 0 else math.inf])[0])  # every rank agrees, even on failure
    if not math.isfinite(top): raise RuntimeError(f"lr='auto': the range test from 1e-7 to 10 found no lr at which the loss falls")
    trials,cost,valid_cost = [],len(sweep['lrs']),0

    def trial(scale, steps, rung, score_name):
        nonlocal cost, valid_cost
        with _FromStart(learn, kept) as snap:
            losses,div,valid = _run_phases(learn, plan(scale, steps/n_steps), cbs, wd, score_name != 'train_loss', reset_opt, snap)
            cost += len(losses)
            if div: score = math.inf
            elif score_name == 'train_loss': score = float(np.mean(losses[-max(1, len(losses)//4):]))
            else:
                valid_cost += len(learn.dls.valid)
                v = float(valid[score_name])
                score = (v if lower else -v) if math.isfinite(v) else math.inf
        trials.append(dict(lr=scale, steps=steps, rung=rung, score_name=score_name, score=score, diverged=div, losses=losses))
        return score

    def run_rung(scales, steps, rung, score_name):
        agreed = _agree([trial(s, steps, rung, score_name) for s in scales])  # distributed: the mean over the ranks
        div = _agree([float(t['diverged']) for t in trials[-len(scales):]])   # diverged on any rank: a mean above 0
        for t,v,d in zip(trials[-len(scales):], agreed, div): t['score'],t['diverged'] = v,d > 0
        return dict(zip(scales, agreed))

    # 2. rung 0, scored by the training loss of the last quarter (the same batches for every candidate): a factor-4 grid
    # below the top, extended while the best is at an edge, then the factor-2 neighbours of the best
    s0 = run_rung([top * 4.**-k for k in range(4)], t0, 0, 'train_loss')
    for _ in range(6):  # the best at an edge of the grid: one more candidate beyond it (the range test can be off by decades)
        b = _best(s0)
        if b == min(s0): s0.update(run_rung([b/4], t0, 0, 'train_loss'))
        elif b == max(s0) and math.isfinite(s0[b]): s0.update(run_rung([b*4], t0, 0, 'train_loss'))
        else: break
    if all(not math.isfinite(v) for v in s0.values()):
        raise RuntimeError(f"lr='auto': every trial diverged, from lr {min(s0):.3g} to {max(s0):.3g}; "
                           f"the model or the data may be broken (the range test found its lowest loss at {top:.3g})")
    best = _best(s0)
    s0.update(run_rung([s for s in (best*2, best/2) if s not in s0], t0, 0, 'train_loss'))
    best = _best(s0)
    # 3. rung 1: the best and its factor-2 neighbours, 2.5x longer, scored by `monitor` on the validation set; one more step
    # when the best is at an edge
    name = monitor if has_valid else 'train_loss'
    s1 = run_rung([best/2, best, best*2], t1, 1, name)
    for _ in range(1):
        b = _best(s1)
        if b == min(s1): s1.update(run_rung([b/2], t1, 1, name))
        elif b == max(s1) and math.isfinite(s1[b]): s1.update(run_rung([b*2], t1, 1, name))
    if all(not math.isfinite(v) for v in s1.values()):
        lo,hi = min(s1),max(s1)
        if not any(t['diverged'] for t in trials if t['rung'] == 1):
            raise RuntimeError(f"lr='auto': monitor={name!r} was NaN or infinite after every trial of the last rung (lr {lo:.3g} to "
                               f"{hi:.3g}); monitor 'valid_loss' or a metric that is finite")
        warnings.warn(f"lr='auto': every trial of the last rung ({t1} batches) diverged, from lr {lo:.3g} to {hi:.3g}; the lr is "
                      f"capped below them, untested at that length")
    b = _best(s1)
    scale,rule = b,'best trial'
    if b != min(s1) and b != max(s1):
        xs = [math.log2(b/2), math.log2(b), math.log2(b*2)]
        ys = [s1[b/2], s1[b], s1[b*2]]
        v = _vertex(xs, ys) if all(math.isfinite(y) for y in ys) else None
        if v is not None: scale,rule = 2.**min(max(v, xs[0]), xs[2]),'parabola vertex'
    # 4. margin: no pick within `DIV_MARGIN` of a trial that diverged (scores are agreed over ranks: every rank caps alike)
    div_lrs = [t['lr'] for t in trials if t['diverged']]  # a metric that is NaN is not a divergence
    if div_lrs and scale > min(div_lrs)/DIV_MARGIN:
        scale,rule = min(div_lrs)/DIV_MARGIN,rule + f", capped at 1/{DIV_MARGIN:g} of {min(div_lrs):.3g} (its trial diverged)"
    # 5. ceiling: no pick above `ABOVE_TOP` x the range test's top (the lr of its lowest loss, or a tenth of its last lr when it
    # never fell): trials that barely learn in their few batches rank the largest lr first (see `ABOVE_TOP`)
    if scale > ABOVE_TOP*top:
        scale,rule = ABOVE_TOP*top,rule + f", capped at {ABOVE_TOP:g}x the range test's top {top:.3g}"
    # 6. stability: short trials do not see an lr that the fit itself cannot hold (a schedule without warmup collapses a few
    # percent into training at 2-3x its best lr, while every compressed trial has already annealed). For a pick near the range
    # test's top, the fit's own first `PROBE` of batches, uncompressed, runs at the pick; if its training loss climbs back up at
    # the end (`_unstable`) or diverges, the pick halves and the probe runs again
    probes = []
    while (scale >= PROBE_NEAR*top or probes) and len(probes) <= MAX_HALVE:  # far below the top, no cliff is near (until one was seen)
        with _FromStart(learn, kept) as snap:
            losses,div,_ = _run_phases(learn, _prefix(plan(scale, 1.), n_probe), cbs, wd, False, reset_opt, snap)
        cost += len(losses)
        bad,back = _unstable(losses) if not div else (True, math.inf)
        bad,back = _agree([float(bad), back])  # distributed: one decision (unstable on any rank), the give-back of the ranks' mean
        bad = bad > 0
        probes.append(dict(lr=scale, steps=len(losses), unstable=bad, give_back=back, losses=losses))
        if not bad or len(probes) > MAX_HALVE: break
        scale /= 2
    halved = min(sum(p['unstable'] for p in probes), MAX_HALVE)  # the unstable probes come first; each but a last extra one halved
    if halved:
        back = probes[halved-1]['give_back']
        why = f"gave back {back:.0%} of their fall" if math.isfinite(back) else "ended above their start"
        rule += f", halved {halved}x: the fit's first {n_probe} batches at the lr above {why}"
    return LRTuneResult(lr_scale_like(lr_like, scale), scale, trials, sweep, top, n_steps, cost, valid_cost, monitor, rule,
                        time.perf_counter() - start, probes)

# ---------------------------------------------------------------- the fit, watched
# watchdog: `fit_*(n, 'auto')` watches its first `WATCH` of batches. The fit collapsed when, after a real fall (its lowest window's
# median below the first's by 10% and by 3 standard errors of the typical window), every window of its last `HOLD` (two at least) gave back
# `BACK` of that fall: a catapult climbs for a few dozen batches and falls again, a collapse to chance stays. It then restarts from
# where it began at half the lr, at most `MAX_RESTART` times (the batches it ran count in the cost). Held-out MLPs with Lamb collapsed
# at 7-39% of the fit at 2-12x their best lr, where every trial had looked fine and no probe ran; a fit that collapses is worth
# restarting even half-way
WATCH,HOLD,BACK,MAX_RESTART = 0.5,0.04,0.8,3

class CollapseWatch(Callback):
    ("Cancel the fit when its training loss collapses back towards where it began within its first `watch` batches (see `WATCH`); "
     "`state` (what a restart puts back) is dropped once the watch is over. With `across_fits` it counts the batches of every fit it "
     "joins (the two phases of `fine_tune_anneal`), else each fit starts it afresh")
    order = 95  # after the Recorder: the batch's loss is final
    def __init__(self, watch:int, w:int, hold:int, state:'_FromStart|None'=None, across_fits:bool=False):
        watch,w,hold = check_int('watch', watch, 0),check_int('w', w),check_int('hold', hold, 0)  # batches: watched, a window, held
        across_fits = check_bool('across_fits', across_fits)
        store_attr('watch,w,hold,state,across_fits')
        self._reset()
    def _reset(self): self.losses,self.new,self.fired = [],[],None
    def before_fit(self):
        if not self.across_fits: self._reset()
    def after_batch(self):
        n = len(self.losses) + len(self.new)
        if not self.training or n >= self.watch: return
        self.new.append(self.learn.loss.detach().float().mean()); n += 1
        if n % self.w == 0:
            self.losses += torch.stack(self.new).tolist(); self.new = []  # one device sync per window
            if n >= 2*self.w + self.hold:
                bad = _agree([float(_collapsed(self.losses, self.w, self.hold))])[0] > 0  # distributed: one decision
                if bad: self.fired = n; raise CancelFitException()  # the copy is kept: the fit restarts from it
        if n >= self.watch: self.state = None  # no restart from here on: free the copy
    def after_cancel_fit(self):
        "A loss gone NaN or inf that another callback cancelled on (fastai's `TerminateOnNaNCallback`) is a collapse too"
        n = len(self.losses) + len(self.new)
        if self.fired is None and self.training and self.state is not None and not bool(torch.isfinite(self.learn.loss).all()):
            self.fired = n + 1

class _FitState:
    ("What a fit changes beyond the learner: the learner (`LearnerSnapshot`), each callback's attributes (`_CallbacksKept`: a "
     "tracker's `best` and `wait`, an EMA's tensors) and the files of `CSVLogger`s that append; `restore()` puts them back")
    def __init__(self, learn, cbs):
        self.snap = LearnerSnapshot(learn)
        self.cbs = _CallbacksKept(learn, cbs)  # instances only: a class passed in `cbs` has no state yet
        self.logs = [(p, p.stat().st_size if p.exists() else None) for p in
                     {Path(learn.path)/c.fname for c in [*learn.cbs, *L(cbs)] if isinstance(c, CSVLogger) and c.append}]
    def restore(self):
        run_all(self.snap.restore, self.cbs.restore, self._restore_logs)  # all of it, a second Ctrl-C held
    def _restore_logs(self):
        for p,size in self.logs:
            if size is None: p.unlink(missing_ok=True)
            elif p.exists():
                with open(p, 'r+b') as f: f.truncate(size)

def _collapsed(losses:list, w:int, hold:int) -> bool:
    "Whether `losses` fell for real, then gave back `BACK` of the fall in every window of their last `hold` batches (see `WATCH`)"
    wins = _windows(losses, w)
    wins = np.where(np.isnan(wins), np.inf, wins)  # a NaN loss stands above any fall
    m = np.median(wins, 1)  # a window's level: one spike or overflow in it moves no median
    k = max(2, math.ceil(hold/w))
    head = m[:-k]
    if len(head) < 2 or not np.isfinite(head).all(): return False
    var = wins[:len(head)].var(1, ddof=1)
    var = var[np.isfinite(var)]
    se = 1.25*math.sqrt(2*float(np.median(var))/w) if len(var) else 0.  # of the difference of two window medians, typical noise
    start,lo = head[0],head.min()
    real = start - lo > max(0.1*abs(start), 3*se)
    return bool(real and (m[-k:] >= lo + BACK*(start - lo)).all())

# ---------------------------------------------------------------- the Learner patch
def _trial_scheds(p:dict) -> dict:
    ("The schedules a trial of the prepared fit `p` runs, compressed: with `step='epoch'` they move once per `1/n_epoch` of the trial, "
     "as the fit's; the trials run without the fit's noise (the lr it perturbs is what they choose)")
    return _per_epoch(p['scheds'], p['n_epoch']) if p['step'] == 'epoch' else p['scheds']

def _lr_like(name:str, lr):
    "The lr argument of a tuned call: None or 'auto' (one lr for every group) or a float, slice or list whose ratios are kept"
    if isinstance(lr, str):
        if lr != 'auto': raise ValueError(f"{name} must be a float, a slice, a list or 'auto', got {lr!r}")
        return None
    if lr is not None: check_lrs(name, lr, slice_ok=True)  # each value finite and > 0: only their ratios are kept
    if getattr(lr, 'ndim', None) == 0: lr = float(lr)  # a 0-d array or tensor is the number it holds (fastai's fits take no 0-d array)
    return lr

# fastai's own fits and the name of their lr argument: tuned through the schedules they hand to `Learner.fit`
FASTAI_FITS = {'fit_one_cycle': 'lr_max', 'fit_flat_cos': 'lr', 'fit_sgdr': 'lr_max', 'fit': 'lr'}

# the arguments of fastai's fits that fastai leaves unchecked, and their checks: a bad one would run dozens of trials before failing
_FASTAI_CHECKS = dict(n_epoch=check_int, n_cycles=check_int, cycle_len=check_int, cycle_mult=lambda n, v: check_int(n, v, 2),
    div=check_float, div_final=check_float, pct_start=lambda n, v: check_float(n, v, 0., 1., lo_open=False, hi_open=False),
    moms=lambda n, v: v if v is None else check_moms(n, v), reset_opt=check_bool, start_epoch=lambda n, v: check_int(n, v, 0))
# `cbs`: `check_cbs`, then each callback's own check; `wd`: one value, a slice or one per parameter group, as fastai's `set_hypers`

def _fastai_fit(learn, method:str, call:dict, lr) -> dict:
    "What fastai's `method(**call)`, its lr set to `lr`, hands to `Learner.fit`: `n_epoch`, `scheds`, `wd`, `cbs`, `reset_opt`"
    a = {**call, FASTAI_FITS[method]: lr}
    if method == 'fit':  # a constant lr: fastai's `fit` sets it once, a trial sets it every batch
        return dict(n_epoch=a['n_epoch'], scheds={'lr': SchedNo(lr, lr)}, wd=a.get('wd'), cbs=L(a.get('cbs')),
                    reset_opt=a.get('reset_opt', False))
    got = {}
    def fit(n_epoch, lr=None, wd=None, cbs=None, reset_opt=False, start_epoch=0):
        cbs = L(cbs)
        ours = cbs[0]  # fastai's fits put their `ParamScheduler` first; one the caller passed in `cbs` runs in the trials too
        got.update(n_epoch=n_epoch, scheds=ours.scheds, wd=wd, cbs=L(c for c in cbs if c is not ours), reset_opt=reset_opt)
    with LearnerSnapshot(learn):  # fastai's fits create the optimizer and set its lr before calling `fit`
        learn.fit = fit
        try: getattr(Learner, method)(learn, **a)
        finally: del learn.fit
    return got

def _plan_call(learn, fit:str, args, kwargs) -> dict:
    ("A call of `fit` checked and planned, touching nothing: its lr's form (`lr_like`), batches (`n_steps`), trials (`plan`), the "
     "fit's callbacks, wd and reset_opt, and `launch(lr, watch)`, which runs the fit at `lr` with the callbacks `watch` added")
    fit = check_choice('fit', fit, [*VARIANTS, *FASTAI_FITS])
    v = VARIANTS.get(fit)
    lr_arg = v.lr_arg if v else FASTAI_FITS[fit]
    if v is None:
        call = dict(list(bind_args(fit, inspect.signature(getattr(Learner, fit)), lr_arg, learn, *args, **kwargs).arguments.items())[1:])
        for k,val in call.items():  # the checked value: a whole float of epochs becomes an int (fastai's `range(n_epoch)`)
            if k in _FASTAI_CHECKS: call[k] = _FASTAI_CHECKS[k](k, val)
        if call.get('wd') is not None: call['wd'] = group_lrs('wd', call['wd'], n_groups(learn), zero_ok=True)  # a slice: its values
        check_callbacks(learn, check_cbs(call.get('cbs')))  # a package callback checks itself against the learner, as in our fits
    elif v.two_phase: call = bind_args(fit, inspect.signature(learn.fine_tune_anneal), lr_arg, *args, **kwargs).arguments
    else: call = bind_call(v, learn, *args, **kwargs)
    lr_like = _lr_like(lr_arg, call.get(lr_arg))
    held = held_lrs(v, learn) if lr_like is None and v is not None else None  # a cooldown keeps the groups' ratios
    if held and max(held) > 0: lr_like = held
    for k in (v.fixed_lr_args if v else ()):
        if call.get(k) is not None:
            raise ValueError(f"{k} must be None when {fit} is tuned, got {k}={call[k]!r}: it is an absolute lr, and the trials scale "
                             f"{lr_arg} over decades (with {k}=None it follows {lr_arg}). To set {k}, pass a number as {lr_arg}")
    start_epoch = call.get('start_epoch', call.get('kwargs', {}).get('start_epoch', 0))
    if start_epoch:
        raise ValueError(f"start_epoch must be 0 with {lr_arg}='auto', got {start_epoch!r}: a resumed run must reuse the first run's "
                         f"lr. Pass the number the first run tuned (it is `learn.lr_tune_result.lr` and the run logged it)")
    nb = train_batches(learn)  # this rank's: under `distrib_ctx` the trials and the fit run its share
    if nb == 0: raise ValueError(f"lr='auto' needs training batches: the training set fills none (under distrib_ctx: each rank's share, "
                                 f"batches of {learn.dls.train.bs}, the last one dropped)")
    ratios = _group_lrs(learn, lr_scale_like(lr_like, 1.), lr_arg)  # one per parameter group (largest 1), or raise naming `lr_arg`
    if v is None:
        probe = _fastai_fit(learn, fit, call, lr_scale_like(lr_like, 1e-3))
        n_steps = probe['n_epoch'] * nb
        def plan(scale, frac):
            return [(None, _fastai_fit(learn, fit, call, lr_scale_like(lr_like, scale))['scheds'], max(1, round(frac * n_steps)))]
        def launch(lr, watch): getattr(Learner, fit)(learn, **{**call, lr_arg: lr, 'cbs': L(call.get('cbs')) + watch})
    elif v.two_phase:
        with_lr = lambda lr: {**{k: a for k,a in call.items() if k != 'kwargs'}, lr_arg: lr, **call.get('kwargs', {})}
        phases = fine_tune_phases(learn, **with_lr(lr_scale_like(lr_like, 1e-3)))  # checks every argument, touches nothing
        probe,n_steps = phases[1] or phases[0],sum(p['n_epoch'] for p in phases if p) * nb  # `epochs=0`: the frozen phase only
        def plan(scale, frac):
            phases = fine_tune_phases(learn, **with_lr(lr_scale_like(lr_like, scale)))
            return [(f, _trial_scheds(p), round(frac * p['n_epoch'] * nb)) for f,p in zip((-1, 0), phases) if p]
        def launch(lr, watch): fine_tune_run(learn, *fine_tune_phases(learn, **with_lr(lr)), call.get('freeze_epochs', 1), 0, watch)
    else:
        with_lr = lambda lr: {**call, lr_arg: lr}
        probe = prepare_call(v, learn, with_lr(lr_scale_like(lr_like, 1e-3)))  # checks every argument, touches nothing
        n_steps = probe['n_epoch'] * nb
        def plan(scale, frac):
            return [(None, _trial_scheds(prepare_call(v, learn, with_lr(lr_scale_like(lr_like, scale)))), max(1, round(frac * n_steps)))]
        def launch(lr, watch):
            p = prepare_call(v, learn, with_lr(lr))
            _launch(learn, **{**p, 'cbs': p['cbs'] + watch})
    return dict(fit=fit, lr_arg=lr_arg, lr_like=lr_like, ratios=ratios, n_steps=n_steps, plan=plan, launch=launch, cbs=probe['cbs'],
                wd=probe['wd'], reset_opt=probe['reset_opt'])

# the last tuning of each learner, kept beside it rather than in its `__dict__`: `learn.export()` pickles the learner, and a pickle
# holding an object of this package would not load where only fastai is installed (fastai's `load_learner` then hides the reason)
# (by `id`, with a weak reference to check it: a `Learner` subclass that defines `__eq__` is unhashable)
_TUNED = {}

def _get_tuned(self:Learner) -> LRTuneResult|None:
    e = _TUNED.get(id(self))
    return e[1] if e is not None and e[0]() is self else vars(self).get('lr_tune_result')  # an older pickle held it in its dict

def _set_tuned(self:Learner, res):
    k,e = id(self),_TUNED.get(id(self))
    if e is None or e[0]() is not self: weakref.finalize(self, _TUNED.pop, k, None)  # dropped with the learner
    _TUNED[k] = (weakref.ref(self), res)
Learner.lr_tune_result = property(_get_tuned, _set_tuned, doc="The `LRTuneResult` of the learner's last `lr='auto'` fit (None before)")

def _tune_call(learn, c:dict, budget, monitor, show_plot) -> LRTuneResult:
    "`tune_lr` for the planned call `c` (`_plan_call`), recorded as `learn.lr_tune_result`"
    res = tune_lr(learn, c['plan'], c['n_steps'], c['lr_like'], c['ratios'] if n_groups(learn) > 1 else None, budget, monitor,
                  cbs=c['cbs'], wd=c['wd'], reset_opt=c['reset_opt'])
    learn.lr_tune_result = res
    if show_plot: res.plot()
    return res

def _check_tune_args(learn, budget, monitor, show_plot) -> tuple:
    "`lr_tune`'s own arguments checked (`budget`, `monitor` against the learner), before anything is planned or touched"
    budget,show_plot = check_float('budget', budget, 0., 1., hi_open=False),check_bool('show_plot', show_plot)
    _check_monitor(learn, monitor)
    return budget,show_plot

@patch
def lr_tune(self:Learner,
    *args,                    # The fit's arguments, as you would pass them to `fit` (its lr may be a slice or list: ratios kept)
    fit:str='fit_cos_anneal', # The fit to tune for: a registered variant, or fastai's 'fit_one_cycle', 'fit_flat_cos', 'fit_sgdr', 'fit'
    budget:float=0.25,        # Training batches of the trials (range test included), as a fraction of the fit's; the probe adds 8%
    monitor:str='valid_loss', # What the last rung optimises: 'valid_loss' or a metric's name (minimised for losses, errors, mse...)
    show_plot:bool=False,     # Plot the trials (`LRTuneResult.plot`)
    **kwargs,                 # The fit's keyword arguments
) -> LRTuneResult:
    "The peak lr for `fit(*args, **kwargs)` on this learner, found by short trials of that very fit; the learner comes back bit for bit"
    budget,show_plot = _check_tune_args(self, budget, monitor, show_plot)
    return _tune_call(self, _plan_call(self, fit, args, kwargs), budget, monitor, show_plot)

@patch
def fit_tuned(self:Learner,
    *args,                    # The fit's arguments (its lr: omitted, 'auto', or a slice or list whose ratios are kept)
    fit:str='fit_cos_anneal', # The fit: a registered variant, or fastai's 'fit_one_cycle', 'fit_flat_cos', 'fit_sgdr', 'fit'
    budget:float=0.25,        # Training batches of the trials (range test included), as a fraction of the fit's; the probe adds 8%
    monitor:str='valid_loss', # What the last rung optimises: 'valid_loss' or a metric's name (minimised for losses, errors, mse...)
    show_plot:bool=False,     # Plot the trials (`LRTuneResult.plot`)
    **kwargs,                 # The fit's keyword arguments
) -> LRTuneResult:
    ("`lr_tune`, then `fit` at the tuned lr, watched: a fit that collapses in its first half restarts from where it began at half "
     "the lr. `fit_*(n, 'auto')` is `fit_tuned(n, fit='fit_*')`; fastai's own fits are run by fastai, with the watch added")
    budget,show_plot = _check_tune_args(self, budget, monitor, show_plot)
    c = _plan_call(self, fit, args, kwargs)
    res = _tune_call(self, c, budget, monitor, show_plot)
    self.logger(f"{c['fit']}: {c['lr_arg']} tuned to {res.lr!r} ({len(res.trials)} trials, {res.cost} extra training batches)")
    res._watched_fit(self, c['launch'], c['cbs'], c['fit'])
    return res
