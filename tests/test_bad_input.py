"""One table of bad calls across the public API (fit variants, metrics, optimizers, LR finder, the command line). Each row must raise a `ValueError`/`TypeError` that names the argument
(and its accepted range), and leave the learner exactly as it was: same weights hash, same optimizer state and hypers,
same frozen state and train/eval mode, and no file written."""
import math
from functools import partial
import numpy as np, pytest, torch
from fastai.basics import *
from fastai.test_utils import synth_dbunch, RegModel
from fastai.callback.progress import CSVLogger
from fastai.callback.tracker import SaveModelCallback, EarlyStoppingCallback
from fastai.callback.schedule import SchedCos
from fastai_anneal.all import *
from fastai_anneal.cli import compare, find_lr, preview, main
from fastai_anneal.tune import CollapseWatch, TrialScheduler, tune_lr
from fastai_anneal.fit import ReplayShuffles
from fastai_anneal.optimizer import AdamAnneal, anneal_lr
from fastai_anneal.plateau import plateau_state
from fastai_anneal.data import check_image_folder
from fastai_anneal._checks import check_int, check_float, check_noise, group_lrs, check_lr_range
from fastai_anneal.metrics import Accuracy
from conftest import mk_learner as _mk_learner, learner_state, assert_restored

def mk_learner(): return _mk_learner(n_train=3, groups=2)

P = lambda: [torch.zeros(3, requires_grad=True)]

class _NeedsArg(Callback):
    "A callback class fastai's `add_cb` cannot create (its `__init__` needs an argument)"
    def __init__(self, x): self.x = x

def _two_args(lrs, losses): return 1e-3  # a suggestion function fastai cannot call: it passes (lrs, losses, num_it)
def _private(lrs, losses, num_it): return 1e-3  # its name cannot name a field of fastai's `SuggestedLRs` (a namedtuple)
def _keyword(lrs, losses, num_it): return 1e-3
_keyword.__name__ = 'class'  # nor can a keyword

class _AccPlateau(AnnealPlateau):
    "A callback class whose own check fails on these learners (they record no accuracy)"
    def __init__(self): super().__init__(monitor='accuracy')
E = (ValueError, TypeError)

_EMPTY = Learner(synth_dbunch(n_train=0), RegModel(), loss_func=MSELossFlat())  # a training set smaller than a batch

BAD = [  # (call on a learner, regex the message must match)
    # ---- fit variants
    (lambda l: l.fit_cos_anneal(0), 'n_epoch must be >= 1'),
    (lambda l: l.fit_cos_anneal(2.5), 'n_epoch must be a whole number'),
    (lambda l: l.fit_cos_anneal('3'), 'n_epoch must be a whole number'),
    (lambda l: l.fit_cos_anneal(2, 0.), r'lr_max must be in \(0, inf\)'),
    (lambda l: l.fit_cos_anneal(2, -1e-3), 'lr_max must be in'),
    (lambda l: l.fit_cos_anneal(2, math.nan), 'lr_max must be a finite number'),
    (lambda l: l.fit_cos_anneal(2, math.inf), 'lr_max must be a finite number'),
    (lambda l: l.fit_cos_anneal(2, slice(0, 1e-2)), r'lr_max.start must be in'),
    (lambda l: l.fit_cos_anneal(2, slice(1e-3, None)), r'lr_max as a slice must be slice\(stop\) or slice\(start, stop\)'),
    (lambda l: l.fit_cos_anneal(2, slice(1e-3, 1e-2, 7)), r'lr_max as a slice must be slice\(stop\) or slice\(start, stop\)'),
    (lambda l: l.fit_cos_anneal(2, anneal='exp', div_final=math.inf), "div_final must be finite with anneal='exp'"),
    (lambda l: l.fit_cos_anneal(2, cbs=[5]), 'cbs must be fastai Callbacks'),
    (lambda l: l.fit_sgdr_anneal(2, 1, reset_opt='no'), 'reset_opt must be True or False'),
    (lambda l: l.fine_tune_anneal(1, cbs='ShowGraph'), 'cbs must be fastai Callbacks'),
    (lambda l: l.fit_cos_anneal(2, [1e-3, 1e-2, 1e-1]), r'lr_max has 3 values but the optimizer has 2 parameter group'),
    (lambda l: l.fit_cos_anneal(2, pct_warmup=1.), r'pct_warmup must be in \[0, 1\)'),
    (lambda l: l.fit_cos_anneal(2, pct_warmup=-0.5), r'pct_warmup must be in \[0, 1\)'),
    (lambda l: l.fit_cos_anneal(2, div_final=0.), 'div_final must be in'),
    (lambda l: l.fit_cos_anneal(2, div_warmup=-1.), 'div_warmup must be in'),
    (lambda l: l.fit_cos_anneal(2, anneal='cosine'), 'anneal must be one of'),
    (lambda l: l.fit_cos_anneal(2, warmup='sqrt'), 'warmup must be one of'),
    (lambda l: l.fit_cos_anneal(2, moms=(0.9, 0.8)), 'moms must be a tuple of 3'),
    (lambda l: l.fit_cos_anneal(2, wd=-0.1), r'wd must be in \[0, inf\)'),
    (lambda l: l.fit_cos_anneal(2, start_epoch=2), r'start_epoch must be in \[0, n_epoch=2\)'),
    # fastai's trackers assert their monitor after `fit` reset the Recorder and the lrs (and `fine_tune` froze the model)
    (lambda l: l.fit_cos_anneal(2, cbs=SaveModelCallback(monitor='accuracy')),
     r"SaveModelCallback: monitor must be one of the recorded values \['train_loss', 'valid_loss'\].*got 'accuracy'"),
    (lambda l: l.fine_tune_anneal(1, cbs=EarlyStoppingCallback(monitor='val_loss')), "EarlyStoppingCallback: monitor must be one of"),
    (lambda l: l.fit_cyclic(2, cbs=SaveModelCallback(every_epoch=True, monitor='acc')), "SaveModelCallback: monitor must be one of"),
    (lambda l: l.fit_cos_anneal(2, cbs=SaveModelCallback(monitor='time')), "got 'time'"),  # fastai's assert passes it, then fails
    # an empty training loader: one message for every fit (some trained nothing and returned, others named an internal argument)
    (lambda l: _EMPTY.fit_cos_anneal(2), 'the fit needs batches: the training DataLoader is empty'),
    (lambda l: _EMPTY.fit_cyclic(2), 'the fit needs batches'),
    (lambda l: _EMPTY.fine_tune_anneal(1), 'the fit needs batches'),
    # a resume keeps the optimizer state its checkpoint holds (review, seventeenth session: it was dropped silently)
    (lambda l: l.fit_cos_anneal(3, start_epoch=1, reset_opt=True), r'reset_opt must be False to resume \(start_epoch=1\)'),
    (lambda l: l.fine_tune_anneal(2, start_epoch=2, reset_opt=True), r'reset_opt must be False to resume \(start_epoch=1\)'),  # phase 2's
    (lambda l: l.fit_cos_anneal(2, start_epoch=-1), 'start_epoch must be >= 0'),
    (lambda l: l.fit_sgdr_anneal(0, 1), 'n_cycles must be >= 1'),
    (lambda l: l.fit_sgdr_anneal(2, 0), 'cycle_len must be >= 1'),
    (lambda l: l.fit_sgdr_anneal(2, 1.5), 'cycle_len must be a whole number'),
    (lambda l: l.fit_sgdr_anneal(2, 1, cycle_mult=0.5), r'cycle_mult must be in \[1, inf\)'),
    (lambda l: l.fit_sgdr_anneal(2, 1, cycle_mult=1.5), 'whole number of epochs, got 2.5'),
    (lambda l: l.fit_sgdr_anneal(2, 1, cycle_decay=0.), r'cycle_decay must be in \(0, inf\)'),
    (lambda l: l.fit_sgdr_anneal(2, 1, pct_warmup=0.5), "pct_warmup must be smaller than the first cycle's share"),
    (lambda l: l.fit_flat_anneal(2, pct_start=1.2), r'pct_start must be in \[0, 1\]'),
    (lambda l: l.fit_flat_anneal(2, pct_start=0.3, pct_warmup=0.5), 'pct_warmup must be <= pct_start'),
    (lambda l: l.fit_flat_anneal(2, 0.), r'lr must be in \(0, inf\)'),
    (lambda l: l.fit_flat_anneal(2, anneal='step'), 'anneal must be one of'),
    (lambda l: l.fine_tune_anneal(0, freeze_epochs=0), r'freeze_epochs\+epochs must be >= 1 \(a phase that trains\)'),
    (lambda l: l.fine_tune_anneal(-1), 'epochs must be >= 0'),
    (lambda l: l.fine_tune_anneal(1, freeze_epochs=-1), 'freeze_epochs must be >= 0'),
    (lambda l: l.fine_tune_anneal(1, base_lr=0.), r'base_lr must be in \(0, inf\)'),
    (lambda l: l.fine_tune_anneal(1, lr_mult=0.5), r'lr_mult must be in \[1, inf\)'),
    (lambda l: l.fine_tune_anneal(1, pct_warmup=1.), r'pct_warmup must be in \[0, 1\)'),
    (lambda l: l.fine_tune_anneal(1, div_warmup=0.), 'div_warmup must be in'),
    (lambda l: l.fine_tune_anneal(1, start_epoch=2), r'start_epoch must be in \[0, freeze_epochs\+epochs=2\)'),
    (lambda l: l.fine_tune_anneal(1, pct_start=0.3), 'unexpected keyword argument'),
    (lambda l: l.fit_cos_anneal(2, lr=1e-3), r"fit_cos_anneal\(\) got an unexpected keyword argument 'lr' \(its learning rate is lr_max\)"),
    (lambda l: l.fit_sgdr_anneal(2, 1, pct_start=0.5), r"fit_sgdr_anneal\(\) got an unexpected keyword argument 'pct_start'$"),
    (lambda l: l.fine_tune_anneal(1, lr=1e-3), r"fine_tune_anneal got unexpected keyword argument\(s\) \['lr'\] \(its learning rate is base_lr\)"),
    (lambda l: l.lr_tune(2, fit='fit_one_cycle', pct_warmup=0.1), r"fit_one_cycle\(\) got an unexpected keyword argument 'pct_warmup'"),
    (lambda l: l.fit_tuned(2, fit='fit_flat_cos', lr_max=0.1), r"fit_flat_cos\(\) got an unexpected keyword argument 'lr_max' \(its learning rate is lr\)"),
    (lambda l: l.fit_cos_anneal(2, step='minute'), "step must be one of 'batch', 'epoch'"),
    (lambda l: l.fit_cos_anneal(2, step=None), "step must be one of 'batch', 'epoch'"),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=(1.5, 0.5)), r'noise_range_t must be None, an epoch in \[0, n_epoch=2\] or a pair'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=(0, 3)), r'noise_range_t must be .* 0 <= lo < hi <= 2, got \(0, 3\)'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=-1), r'noise_range_t must be None, an epoch in \[0, n_epoch=2\]'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=(0, 1, 2)), 'noise_range_t must be None'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t='1'), 'noise_range_t must be None'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=(0, math.nan)), 'noise_range_t must be None'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=0, noise_pct=-0.1), r'noise_pct must be in \(0, 1\]'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=0, noise_pct=1.5), r'noise_pct must be in \(0, 1\]'),
    (lambda l: l.fit_cos_anneal(2, noise_pct=0.), r'noise_pct must be in \(0, 1\]'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=0, noise_std=0.), r'noise_std must be in \(0, inf\)'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=0, noise_type='gaussian'), "noise_type must be one of 'normal', 'uniform'"),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=0, noise_seed=-1), 'noise_seed must be >= 0'),
    (lambda l: l.fit_cos_anneal(2, noise_range_t=0, noise_seed=1.5), 'noise_seed must be an int'),
    (lambda l: l.fit_sgdr_anneal(2, 1, step='epochs'), "step must be one of 'batch', 'epoch'"),
    (lambda l: l.fit_flat_anneal(2, noise_range_t=(0, 2.5)), 'noise_range_t must be None'),
    (lambda l: l.fine_tune_anneal(1, step='iteration'), "step must be one of 'batch', 'epoch'"),
    (lambda l: l.fine_tune_anneal(1, freeze_epochs=1, noise_range_t=3), r'noise_range_t must be None, an epoch in \[0, freeze_epochs\+epochs=2\]'),
    (lambda l: l.fine_tune_anneal(1, noise_range_t=0, noise_type='pink'), 'noise_type must be one of'),
    # ---- values beyond the float range, and schedules they would overflow (review, eighth session): named, nothing touched
    (lambda l: l.fit_sgdr_anneal(3, 1, cycle_decay=1e300), r'cycle_decay\*\*\(n_cycles-1\) must be a finite number'),
    (lambda l: l.fit_sgdr_anneal(3, 1, cycle_mult=1e200), r'cycle_len\*sum\(cycle_mult\*\*i for i < n_cycles\) must be at most 2\*\*53'),
    (lambda l: l.fit_sgdr_anneal(2, 1e308), r'cycle_len must be in \[1, 2\*\*53\]'),
    (lambda l: l.fit_cos_anneal(2, div_final=10**400), r'div_final must be a finite number in \(0, inf\], got 1000'),
    (lambda l: l.fit_flat_anneal(2, lr=10**400), r'lr must be a finite number in \(0, inf\)'),
    (lambda l: l.fit_cos_anneal(1e308), r'n_epoch must be in \[1, 2\*\*53\]'),
    (lambda l: l.fit_cos_anneal(10**400), r'n_epoch must be in \[1, 2\*\*53\]'),
    (lambda l: l.fit_cos_anneal(2, moms=(0.9, 0., 0.9), anneal='exp'), r"moms\[1\] must be in \(0, 1\) with anneal='exp'"),
    (lambda l: l.fine_tune_anneal(1, moms=(0., 0., 0.), anneal='exp'), r"moms\[1\] must be in \(0, 1\) with anneal='exp'"),
    (lambda l: l.fine_tune_anneal(1, base_lr=1e300), r'check base_lr'),
    (lambda l: l.fit_cos_anneal(2, wd=[0.1, -0.1, 0.]), r'wd\[1\] must be in \[0, inf\)'),
    (lambda l: l.fit_cos_anneal(2, wd=[0.1, 0., 0.]), r'wd has 3 values but the optimizer has 2 parameter group'),
    (lambda l: l.fit_step_decay(4, step_size=2, milestones=[1, 2]), 'give step_size or milestones, not both'),
    (lambda l: l.fit_step_decay(4, milestones=[2, 1]), r'milestones must be epochs rising strictly in \[1, n_epoch=4\)'),
    (lambda l: l.fit_step_decay(4, milestones=[1, 1]), r'milestones must be epochs rising strictly'),
    (lambda l: l.fit_step_decay(4, milestones=[0, 2]), r'milestones must be epochs rising strictly in \[1, n_epoch=4\)'),
    (lambda l: l.fit_step_decay(4, milestones=[2, 4]), r'milestones must be epochs rising strictly in \[1, n_epoch=4\)'),
    (lambda l: l.fit_step_decay(4, milestones=[1.5]), r'milestones\[0\] must be an int'),
    (lambda l: l.fit_step_decay(4, milestones=2), 'milestones must be a list of epochs'),
    (lambda l: l.fit_step_decay(4, step_size=0), 'step_size must be >= 1'),
    (lambda l: l.fit_step_decay(4, gamma=0.), r'gamma must be in \(0, 1\]'),
    (lambda l: l.fit_step_decay(4, gamma=-0.1), r'gamma must be in \(0, 1\]'),
    (lambda l: l.fit_step_decay(4, gamma=2.), r'gamma must be in \(0, 1\]'),
    (lambda l: l.fit_step_decay(4, lr=0.), r'lr must be in \(0, inf\)'),
    (lambda l: l.fit_time_decay(3, decay_rate=-0.5), r'decay_rate must be in \[0, inf\)'),
    (lambda l: l.fit_time_decay(3, decay_steps=0), 'decay_steps must be >= 1'),
    (lambda l: l.fit_time_decay(3, decay_steps=2.5), 'decay_steps must be a whole number'),
    (lambda l: l.fit_time_decay(3, staircase='yes'), 'staircase must be True or False'),
    (lambda l: l.fit_cyclic(3, mode='triangle'), "mode must be one of 'triangular', 'triangular2', 'exp_range'"),
    (lambda l: l.fit_cyclic(3, step_size_up=0), 'step_size_up must be >= 1'),
    (lambda l: l.fit_cyclic(3, step_size_down=0), 'step_size_down must be >= 1'),
    (lambda l: l.fit_cyclic(3, 1e-2, base_lr=1e-2), 'base_lr must be below max_lr in every group'),
    (lambda l: l.fit_cyclic(3, 1e-2, base_lr=[1e-3, 1e-3, 1e-3]), 'base_lr has 3 values but max_lr has 2'),
    (lambda l: l.fit_cyclic(3, base_lr=0.), r'base_lr must be in \(0, inf\)'),
    (lambda l: l.fit_cyclic(3, mode='exp_range', gamma=0.), r'gamma must be in \(0, 1\]'),
    (lambda l: l.fit_cyclic(3, base_momentum=1.), r'base_momentum must be in \[0, 1\)'),
    (lambda l: l.fit_cyclic(3, max_momentum=-0.1), r'max_momentum must be in \[0, 1\)'),
    (lambda l: l.fit_cyclic(3, cycle_momentum='no'), 'cycle_momentum must be True or False'),
    (lambda l: l.fit_cyclic(3, n_batch=4), 'unexpected keyword argument'),  # the fit counts the batches itself
    # ---- arguments valid one by one whose schedule is not (checked at 257 points before the fit), and a resume that needs the lr
    (lambda l: l.fit_sgdr_anneal(2, 1, 1e-2, cycle_mult=1, cycle_decay=1e300), r'the lr schedule reaches \[1.0+1e\+298.*float32'),
    (lambda l: l.fit_cos_anneal(2, 1e-2, anneal=lambda s, e, p: s*0 - 1.), r'the lr schedule reaches \[-1.0.*>= 0'),
    (lambda l: l.fit_flat_anneal(2, 1e-2, anneal=lambda s, e, p: s*math.nan), 'the lr schedule reaches'),
    (lambda l: l.fit_cooldown(3, start_epoch=1), 'lr must be given to resume fit_cooldown'),
    # ---- metrics
    (lambda l: Accuracy(top_k=0), 'top_k must be >= 1, got 0'),
    (lambda l: Accuracy(top_k=1.5), 'top_k must be an int'),
    (lambda l: BalancedAccuracy(n_classes=1), 'n_classes must be >= 2'),
    (lambda l: AccuracyMulti(thresh=2.), r'thresh must be in \(0, 1\)'),
    (lambda l: AccuracyMulti(sigmoid='yes'), 'sigmoid must be True or False'),
    (lambda l: Accuracy()(torch.zeros(4, 3), torch.tensor([0, 1, 2])), r'of shape \(4,\) do not match targ of shape \(3,\)'),
    (lambda l: Accuracy()(torch.zeros(4, 3), torch.full((4,), 0.5)), 'targ must hold class indices'),
    # ---- optimizers
    (lambda l: AdamAnneal(P(), lr=-1), r'lr must be in \[0, inf\)'),
    (lambda l: AdamAnneal(P(), anneal_rate=0), r'anneal_rate must be in \(0, 1\]'),
    (lambda l: AdamAnneal(P(), anneal_every=0), 'anneal_every must be >= 1'),
    (lambda l: AdamAnneal(P(), mom=1.), r'mom must be in \[0, 1\)'),
    (lambda l: AdamAnneal(P(), sqr_mom=-0.1), r'sqr_mom must be in \[0, 1\)'),
    (lambda l: AdamAnneal(P(), eps=0), r'eps must be in \(0, inf\)'),
    (lambda l: AdamAnneal(P(), anneal='cos'), 'total_steps .* is required'),
    (lambda l: AdamAnneal(P(), anneal='wobble'), 'anneal must be one of'),
    (lambda l: SGDAnneal(P(), mom=1.5), r'mom must be in \[0, 1\)'),
    (lambda l: AdamAnneal(P(), lr=[1e-3, 1e-2]), 'lr has 2 values but the optimizer has 1 parameter group'),
    (lambda l: AdamAnneal(P(), weight_decay=0.1), r"AdamAnneal got unknown argument\(s\) \['weight_decay'\]"),
    (lambda l: SGDAnneal(P(), wd=[-1.]), r'wd\[0\] must be in \[0, inf\)'),
    (lambda l: SGDAnneal([{'params': P(), 'betas': (0.9, 0.99)}]), 'betas sets mom and sqr_mom, and no stepper .* takes sqr_mom'),
    (lambda l: annealed(Adam, anneal='cos', total_steps=0), 'total_steps must be >= 1'),
    (lambda l: annealed(3), 'opt_func must be a fastai optimizer function'),
    (lambda l: annealed(partial(SGD, mom=1.5)), r'mom must be in \[0, 1\)'),  # fastai's SGD steps with it: weights to -4e8
    (lambda l: annealed(Adam)(P(), sqr_mom=-0.5), r'sqr_mom must be in \[0, 1\)'),
    (lambda l: annealed(Adam)(P(), eps=-1e-8), r'eps must be in \[0, inf\)'),  # 0 passes, as fastai's and torch's take it
    (lambda l: annealed(partial(RMSProp, wd=-1.))(P()), r'wd must be in \[0, inf\)'),
    # ---- AnnealPlateau (the number of groups and the monitored names are checked when a fit starts: tests/test_plateau.py)
    (lambda l: AnnealPlateau(monitor=3), 'monitor must be the name of a recorded value'),
    (lambda l: AnnealPlateau(monitor=''), 'monitor must be the name of a recorded value'),
    (lambda l: AnnealPlateau(mode='up'), "mode must be one of 'min', 'max'"),
    (lambda l: AnnealPlateau(factor=1.), r'factor must be in \(0, 1\)'),
    (lambda l: AnnealPlateau(factor=0), r'factor must be in \(0, 1\)'),
    (lambda l: AnnealPlateau(factor='0.5'), r'factor must be a real number in \(0, 1\)'),
    (lambda l: AnnealPlateau(patience=-1), 'patience must be >= 0'),
    (lambda l: AnnealPlateau(patience=1.5), 'patience must be a whole number'),
    (lambda l: AnnealPlateau(threshold=-1e-4), r'threshold must be in \[0, inf\)'),
    (lambda l: AnnealPlateau(threshold=math.nan), 'threshold must be a finite number'),
    (lambda l: AnnealPlateau(threshold_mode='pct'), "threshold_mode must be one of 'rel', 'abs'"),
    (lambda l: AnnealPlateau(cooldown=-2), 'cooldown must be >= 0'),
    (lambda l: AnnealPlateau(min_lr=-1e-5), r'min_lr must be in \[0, inf\)'),
    (lambda l: AnnealPlateau(min_lr=[1e-5, math.inf]), r'min_lr\[1\] must be a finite number'),
    (lambda l: AnnealPlateau(min_lr=[]), 'min_lr must hold at least one value'),
    (lambda l: AnnealPlateau(eps=-1.), r'eps must be in \[0, inf\)'),
    (lambda l: l.fit_cos_anneal(2, 1e-2, noise_range_t=1, noise_seed=2**64-1), r'noise_seed must be in \[0, 2\*\*62\]'),
    # ---- callback classes: created (and checked) before the fit, not by fastai's `add_cb` after the scheduler joined the learner
    (lambda l: l.fit_cos_anneal(2, 1e-2, cbs=_NeedsArg), 'cbs: the callback class _NeedsArg cannot be created without arguments'),
    (lambda l: l.fine_tune_anneal(1, cbs=_NeedsArg), 'cbs: the callback class _NeedsArg'),
    (lambda l: l.fit_tuned(2, fit='fit_one_cycle', cbs=[_NeedsArg]), 'cbs: the callback class _NeedsArg'),
    (lambda l: l.fit_cos_anneal(2, 1e-2, cbs=_AccPlateau), "monitor must be one of the recorded values"),
    # ---- LR finder
    (lambda l: AnnealLRFinder(start_lr=0), r'start_lr must be in \(0, inf\)'),
    (lambda l: AnnealLRFinder(1e-3, 1e-4), 'end_lr must be greater than start_lr'),
    (lambda l: AnnealLRFinder(num_it=1), 'num_it must be >= 2'),
    (lambda l: AnnealLRFinder(div_thresh=1), r'div_thresh must be in \(1, inf\]'),
    (lambda l: AnnealLRFinder(anneal='zig'), 'anneal must be one of'),
    (lambda l: l.lr_find(start_lr=-1e-7, show_plot=False), r'start_lr must be in \(0, inf\)'),
    (lambda l: l.lr_find(end_lr=1e-8, show_plot=False), 'end_lr must be greater than start_lr'),
    (lambda l: l.lr_find(num_it=1, show_plot=False), 'num_it must be >= 2'),
    (lambda l: l.lr_find(anneal='spiral', show_plot=False), 'anneal must be one of'),
    (lambda l: l.lr_find(start_lr=[1e-7, 1e-6, 1e-5], show_plot=False), 'start_lr'),
    (lambda l: l.lr_find(suggest_funcs=lambda lrs, losses, num_it: 1e-3, show_plot=False), r"suggest_funcs must have names .*'<lambda>'"),
    # ---- the command line's functions (the console script prints these on one line and exits 2: tests/test_cli.py)
    (lambda l: compare(epochs=0), 'epochs must be >= 1, got 0'),
    (lambda l: compare(seeds=0), 'seeds must be >= 1, got 0'),
    (lambda l: compare(schedules='one_cycle,bogus'), 'schedules must be a comma-separated list of one_cycle'),
    (lambda l: compare(data='nope'), "data must be one of 'mnist1d', 'digits' or an image folder"),
    (lambda l: compare(lr='-1'), r'lr must be in \(0, inf\), got -1.0'),
    (lambda l: compare(device='tpu'), "device must be 'auto', 'cpu' or 'cuda'"),
    (lambda l: find_lr(anneal='zig'), 'anneal must be one of'),
    (lambda l: preview('fit_magic'), 'variant must be one of fit_cos_anneal'),
    (lambda l: preview('fit_cos_anneal', pct_warmup=1.5), r'pct_warmup must be in \[0, 1\), got 1.5'),
    (lambda l: preview('fit_sgdr_anneal', cycle_mult=0.5), r'cycle_mult must be in \[1, inf\)'),
    (lambda l: preview('fit_step_decay', milestones=[3, 1]), r'milestones must be epochs rising strictly in \[1, n_epoch=5\)'),
    (lambda l: preview('fit_cyclic', mode='zigzag'), "mode must be one of 'triangular'"),
    (lambda l: preview('fit_cos_anneal', epochs=100_000, n_batch=1_000_000), r'epochs\*n_batch must be <= 10,000,000'),
    (lambda l: schedule_values(cos_anneal_scheds(1e-3), 10**5, 10**3), r'n_epoch\*n_batch must be <= 10,000,000'),
    (lambda l: save_figure(plot_schedule(cos_anneal_scheds(1e-3), 2, 5), 'figure'), 'path must be a file name ending in an image'),
    (lambda l: preview('fit_time_decay', decay_rate=-1.), r'decay_rate must be in \[0, inf\)'),
    (lambda l: plot_lrs({'a': [1e-3, 1e-4]}, n_epoch=-3), 'n_epoch must be >= 1, got -3'),
    (lambda l: plot_lrs({'a': [1e-3, 1e-4]}, n_epoch=0), 'n_epoch must be >= 1, got 0'),
    (lambda l: plot_lrs({'a': [1e-3, 1e-4]}, log='no'), "log must be True or False, got 'no'"),
    (lambda l: plot_lrs({'a': [[[1e-3]], [[1e-4]]]}), r"lrs\['a'\] must be a non-empty list of lrs, one per batch .*got shape \(2, 1, 1\)"),
    (lambda l: plot_history({'a': [[.5, .6], [.5]]}), r"hist\['a'\] must be a non-empty array \(seeds, epochs\), every seed as long"),
    (lambda l: plot_history({'a': [.5, .6]}, legend='yes'), "legend must be True or False"),
    (lambda l: plot_history({'a': [.5, .6]}, dashed='a'), "dashed must be None or a list of schedule names"),
    (lambda l: plot_comparison({'a': [1e-3]}, {'a': [[.5], [.6, .7]]}), r"hist\['a'\] must be a non-empty array"),
    (lambda l: mnist1d_dls(data_seed=2**32), r'data_seed must be in \[0, 4294967295\], got 4294967296'),
    (lambda l: mnist1d_dls(data_seed=-1), 'data_seed must be >= 0, got -1'),
    (lambda l: mnist1d_arrays(seed=2**32), r'seed must be in \[0, 4294967295\], got 4294967296'),
    # ---- 0-d tensors and arrays are the numbers they hold (checked as such)
    (lambda l: l.fit_cos_anneal(2, torch.tensor(math.nan)), 'lr_max must be a finite number'),
    (lambda l: l.fit_cos_anneal(2, torch.tensor(True)), r'lr_max must be a real number in \(0, inf\), got True'),
    (lambda l: l.fit_flat_anneal(2, 1e-3, wd=np.array(-0.1)), r'wd must be in \[0, inf\)'),
    # ---- the package's callbacks, the tuner's search, annealers and suggestion functions: checked before any fit
    (lambda l: l.fit_cos_anneal(1, 1e-3, cbs=CollapseWatch(10, 0, 5)), 'w must be >= 1, got 0'),
    (lambda l: l.fit_cos_anneal(1, 1e-3, cbs=CollapseWatch(-1, 2, 5)), 'watch must be >= 0, got -1'),
    (lambda l: l.fit(1, cbs=TrialScheduler({'lr': SchedCos(1e-3, 0)}, 0)), 'n_steps must be >= 1, got 0'),
    (lambda l: l.fit(1, cbs=TrialScheduler({'lr': SchedCos(1e-3, 0)}, 5, div_thresh=0.5)), r'div_thresh must be in \(1, inf\]'),
    (lambda l: l.fit(1, cbs=TrialScheduler([SchedCos(1e-3, 0)], 5)), 'scheds must be a non-empty dict'),
    (lambda l: l.fit(1, cbs=ReplayShuffles('2')), "start_epoch must be a whole number >= 0, got '2'"),
    (lambda l: tune_lr(l, lambda scale, frac: [], 100, budget=0), r'budget must be in \(0, 1\], got 0.0'),
    (lambda l: tune_lr(l, lambda scale, frac: [], 100, budget=math.nan), r'budget must be a finite number in \(0, 1\]'),
    (lambda l: tune_lr(l, lambda scale, frac: [], 40.5), 'n_steps must be a whole number'),
    (lambda l: AdamAnneal(P(), anneal=lambda s, e, p: math.nan, total_steps=10), r'anneal=.* gave the lr nan .*param group 0'),
    (lambda l: anneal_lr(1e-3, 5, anneal=lambda s, e, p: -s, total_steps=10), r'anneal=.* gave the lr -0.001'),
    (lambda l: l.lr_find(anneal=lambda s, e, p: -1., show_plot=False), r'anneal=.* gives the lr -1.0 at batch 0'),
    (lambda l: l.lr_find(suggest_funcs=(_two_args,), show_plot=False), r'suggest_funcs must take three arguments'),
    (lambda l: preview('fit_cos_anneal', lr_max=1e39), r'the lr schedule reaches 1e\+39 at 0% of training.*check --lr-max'),
    (lambda l: preview('fit_sgdr_anneal', n_cycles=2, cycle_len=1, cycle_decay=1e308, lr_max=10.), r'the lr schedule reaches nan'),
    (lambda l: mnist1d_dls(device='gpu'), "device must be None, a torch.device, an index or a name such as 'cpu'"),
    (lambda l: l.fit_cos_anneal(2, 1e-3, noise_range_t=1, noise_pct=1e-6), r'noise_pct must be at least 0.01 x noise_std'),
    (lambda l: l.lr_find(start_lr=slice(1e-7), end_lr=slice(10.), anneal=lambda s, e, p: -1., show_plot=False), 'gives the lr -1.0'),
    (lambda l: plateau_state(None), 'opt must be an optimizer'),
    (lambda l: AnnealPlateau().step('x'), "value must be a number"),
    (lambda l: check_image_folder(3), 'path must be an image folder path, got int'),
    (lambda l: check_data(''), r"data must be one of 'mnist1d', 'digits' or an image folder, got an empty string"),
    (lambda l: compare(out=' ', epochs=1), 'out must be a folder path'),
    (lambda l: save_figure(plot_schedule(cos_anneal_scheds(1e-3), 2, 5), 'f.png', dpi=10**6), r'dpi must be in \[1, 2400\]'),
    (lambda l: plot_comparison({'a': [1e-3]}, {'b': [[.5]]}), r"lrs and hist must name the same schedules in the same order"),
    (lambda l: compare(out=__file__, epochs=1), r"out must be a folder, but '.*test_bad_input\.py' is a file"),
    (lambda l: plot_lrs({}), 'lrs must be a non-empty dict of schedule name -> values, got dict'),
    (lambda l: mnist1d_dls(device='meta'), "device must hold data: 'meta' holds shapes only"),
    (lambda l: l.lr_find(suggest_funcs=_private, show_plot=False), r"suggest_funcs must have names .*got \['_private'\]"),
    (lambda l: l.lr_find(suggest_funcs=_keyword, show_plot=False), r"suggest_funcs must have names .*got \['class'\]"),
    # an int of 51 digits is cut to 40 characters in the message
    (lambda l: plot_lrs({'a': [1e-3, 1e-4]}, n_epoch=-10**50), r'n_epoch must be >= 1, got -10{35}\.\.\.$'),
]

@pytest.mark.parametrize('trained', [False, True], ids=['fresh', 'trained'])
@pytest.mark.parametrize('call,match', BAD, ids=[f'row{i}' for i in range(len(BAD))])
def test_bad_call_names_the_argument_and_touches_nothing(call, match, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the commands' default output folder is relative: nothing may appear there
    learn = mk_learner()
    if trained:  # Adam moments and step counts exist, and the first group is frozen
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        learn.freeze()
    learn.model.eval()
    before = learner_state(learn)
    with pytest.raises(E, match=match): call(learn)
    assert_restored(before, learner_state(learn))
    assert not any(tmp_path.iterdir())  # no file written


class _NoRunYet(Callback):
    "A callback class whose `__init__` fails for a reason of its own (W&B's without a run): fastai's `add_cb` meets it inside `fit`"
    def __init__(self): raise RuntimeError('no run yet')

@pytest.mark.parametrize('call', [
    lambda l: l.fit_cos_anneal(1, 1e-2, cbs=[CSVLogger(), _NeedsArg]),
    lambda l: l.fine_tune_anneal(1, cbs=[CSVLogger(), _NeedsArg]),
    lambda l: l.fit_cos_anneal(1, 1e-2, cbs=[CSVLogger(), _NoRunYet]),
], ids=['variant', 'fine_tune', 'init_raises'])
def test_a_failed_callback_leaves_none_attached(call, tmp_path, monkeypatch):
    "fastai's `added_cbs` adds the callbacks outside its `try`: one that fails as it joins used to leave those before it (our "
    "scheduler, a CSVLogger) on the learner for good, overriding the lr of every later fit"
    monkeypatch.chdir(tmp_path)
    learn = mk_learner()
    names = [type(c).__name__ for c in learn.cbs]
    with pytest.raises((*E, RuntimeError), match='cbs: the callback class|no run yet'): call(learn)
    assert [type(c).__name__ for c in learn.cbs] == names and learn.opt is None
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr=1e-3)
    assert all(lr == 1e-3 for lr in learn.recorder.lrs)  # no scheduler left behind

def test_a_refused_save_closes_the_figure(tmp_path):
    "`save_figure` promises no figure left open in long loops: a refused path too (a folder, or a name without an image suffix)"
    import matplotlib.pyplot as plt
    n = len(plt.get_fignums())
    for path in (tmp_path, tmp_path/'figure'):
        with pytest.raises(ValueError, match='path must be a file name ending in an image format'): save_figure(plt.figure(), path)
        assert len(plt.get_fignums()) == n
    assert not any(tmp_path.iterdir())

def test_annealed_takes_one_hyper_per_group():
    "fastai's `set_hyper` takes a list, one value per param group: `annealed` checks each, as it checks a single value"
    ps = [[torch.zeros(2, requires_grad=True)], [torch.zeros(2, requires_grad=True)]]
    opt = annealed(partial(Adam, wd=[0., 0.01]))(ps, lr=1e-3)
    assert [h['wd'] for h in opt.hypers] == [0., 0.01]
    with pytest.raises(ValueError, match=r'wd\[1\] must be in \[0, inf\)'): annealed(partial(Adam, wd=[0., -0.01]))

def test_save_figure_takes_an_image_name_under_any_backend(tmp_path, monkeypatch):
    "The formats of every backend count: with the pdf backend the figure's own canvas lists only pdf, and matplotlib writes png"
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import FigureCanvasPdf
    fig = plt.figure(); FigureCanvasPdf(fig)
    assert 'png' not in fig.canvas.get_supported_filetypes()
    assert save_figure(fig, tmp_path/'x.png').exists()

def test_noise_arguments_are_only_bounded_when_noise_is_on():
    "`noise_pct >= 0.01*noise_std` holds only while noise is drawn: with `noise_range_t=None` the other noise arguments stay free"
    learn = mk_learner()
    with learn.no_bar(), learn.no_logging(): learn.fit_cos_anneal(1, 1e-3, noise_std=200.)
    with pytest.raises(ValueError, match='noise_pct must be at least 0.01 x noise_std'): learn.fit_cos_anneal(1, 1e-3, noise_range_t=0,
                                                                                                              noise_std=200.)

@pytest.mark.parametrize('made', [False, True], ids=['opt_func', 'made'])
@pytest.mark.parametrize('method,kw', [('fit_cyclic', dict(step_size_up=2)), ('fit_cos_anneal', dict(moms=(0.95, 0.85, 0.95)))])
def test_a_momentum_schedule_needs_an_optimizer_with_momentum(method, kw, made):
    ("A momentum schedule on a torch optimizer without one (`OptimWrapper(Adagrad)`): refused before the fit, naming `opt_func` and "
     "how to drop it (fastai's KeyError came from the first batch, the optimizer made); an optimizer with momentum or betas runs")
    from fastai.optimizer import OptimWrapper
    learn = _mk_learner(n_train=3, opt_func=partial(OptimWrapper, opt=torch.optim.Adagrad))
    if made: learn.create_opt()
    opt = learn.opt
    with pytest.raises(ValueError, match=r"opt_func: the learner's torch optimizer has no hyper-parameter \['mom'\]"):
        getattr(learn, method)(1, 1e-2, **kw)
    assert learn.opt is opt
    for torch_opt in (torch.optim.SGD, torch.optim.AdamW, torch.optim.RMSprop):
        learn = _mk_learner(n_train=3, opt_func=partial(OptimWrapper, opt=torch_opt))
        with learn.no_bar(), learn.no_logging(): getattr(learn, method)(1, 1e-2, **kw)

@pytest.mark.parametrize('made', [False, True], ids=['opt_func', 'made'])
def test_a_momentum_schedule_fastai_s_sgd_would_ignore_warns(made):
    ("fastai's SGD at mom=0 (its default) builds no momentum step: a momentum schedule would change nothing, where torch's "
     "SGD(momentum=0) under CyclicLR applies it; a warning says so; none with a momentum to schedule or with Adam")
    import warnings
    for opt_func,warns in ((SGD, True), (partial(SGD, mom=0.9), False), (RMSProp, True), (Adam, False)):
        learn = _mk_learner(n_train=3, opt_func=opt_func)
        if made: learn.create_opt()
        with warnings.catch_warnings(record=True) as w, learn.no_bar(), learn.no_logging():
            warnings.simplefilter('always')
            learn.fit_cyclic(1, 1e-2, step_size_up=2)
        assert any('the momentum schedule does nothing here' in str(x.message) for x in w) == warns, (opt_func, made)

def test_the_momentum_checks_say_nothing_they_cannot_tell():
    ("A stepper of the user's own may read `mom` through **kwargs: no warning; an `OptimWrapper` with `hp_map={}` (no mapping: "
     "torch's own names) has no 'mom': refused before the fit, as fastai reads the map")
    import warnings
    from fastai.optimizer import OptimWrapper, Optimizer, sgd_step
    def my_momentum(p, lr, **kwargs):  # reads mom through kwargs
        p.data.add_(p.grad.data, alpha=-lr*(1 + kwargs['mom']))
    learn = _mk_learner(n_train=3, opt_func=lambda params, lr: Optimizer(params, [my_momentum], lr=lr, mom=0.))
    learn.create_opt()
    with warnings.catch_warnings(record=True) as w, learn.no_bar(), learn.no_logging():
        warnings.simplefilter('always')
        learn.fit_cyclic(1, 1e-2, step_size_up=2)
    assert not any('the momentum schedule does nothing here' in str(x.message) for x in w)
    learn = _mk_learner(n_train=3, opt_func=partial(OptimWrapper, opt=torch.optim.SGD, hp_map={}))
    with pytest.raises(ValueError, match=r"opt_func: the learner's torch optimizer has no hyper-parameter \['mom'\]"):
        learn.fit_cyclic(1, 1e-2, step_size_up=2)
    assert learn.opt is None


# ---------------------------------------------------------------- behaviour no test pinned (a mutation audit, twenty-first session)
def test_check_int_upper_bound_is_inclusive():
    assert check_int('n_epoch', 2**53) == 2**53   # 'must be in [1, 2**53]'
    with pytest.raises(ValueError, match=r'n_epoch must be in \[1, 2\*\*53\]'): check_int('n_epoch', 2**53 + 1)

def test_check_float_out_of_range_values_are_value_errors():
    with pytest.raises(ValueError, match=r'div_final must be a finite number in \(0, inf\]'): check_float('div_final', 10**400, inf_ok=True)
    with pytest.raises(ValueError, match=r'div_final must be a finite number in \(0, inf\], got -inf'):
        check_float('div_final', -math.inf, inf_ok=True)

def test_noise_seed_and_range_limits():
    with pytest.raises(ValueError, match=r'noise_seed must be in \[0, 2\*\*62\]'): check_noise(0, 0.67, 1., 'normal', 2**62 + 1, 3)
    with pytest.raises(ValueError, match=r'noise_range_t must be .* 0 <= lo < hi <= 3, got \(1, 1\)'): check_noise((1, 1), 0.67, 1., 'normal', 42, 3)
    # the pct/std floor bounds the redraws of 'normal' noise only: 'uniform' draws once
    assert check_noise(0, 0.001, 1., 'uniform', 42, 3)['pct'] == 0.001

def test_group_lrs_counts():
    assert group_lrs('lr', [1e-3], 2) == 1e-3                               # one value: every group
    assert group_lrs('wd', slice(0., 0.1), 2, zero_ok=True) == [0.01, 0.1]  # start 0: fastai's set_hyper, stop/10 then stop
    with pytest.raises(ValueError, match='lr has 2 values but the optimizer has 3 parameter group'): group_lrs('lr', [1e-3, 1e-2], 3)

def test_sweep_lrs_must_be_above_zero():
    with pytest.raises(ValueError, match=r'anneal=.* gives the lr 0.0 at batch 0'): AnnealLRFinder(anneal=lambda s, e, p: 0.)

def test_integral_arguments_refuse_bools():
    with pytest.raises(TypeError, match='axis must be an int, got True'): Accuracy(axis=True)

def test_lr_range_per_group_must_rise():
    with pytest.raises(ValueError, match=r'end_lr must be greater than start_lr in every group, got end_lr\[0\]=0.001 <= start_lr\[0\]=0.001'):
        check_lr_range([1e-3, 1e-2], [1e-3, 1.])


@pytest.mark.skipif(torch.cuda.is_available(), reason='refused only where torch finds no GPU')
@pytest.mark.parametrize('call', [lambda: mnist1d_dls(device='cuda'), lambda: digits_dls(device='cuda:0'), lambda: compare(device='cuda', epochs=1)])
def test_a_gpu_asked_for_without_one_is_refused(call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"device 'cuda(:0)?' asked for, but torch finds no GPU .*use '?(None|'auto') or 'cpu'"): call()
    assert not any(tmp_path.iterdir())

def test_an_out_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    "The folder's nearest existing parent must be writable (faked: this suite may run as root, whom permissions do not stop)"
    import fastai_anneal._checks as checks
    monkeypatch.setattr(checks.os, 'access', lambda p, mode: Path(p) != tmp_path)
    with pytest.raises(ValueError, match=r"out folder '.*/runs/a' cannot be written: no write permission on '.*'"):
        compare(out=tmp_path/'runs'/'a', epochs=1)
    assert not any(tmp_path.iterdir())

def test_an_annealer_without_a_signature_is_trusted():
    "A builtin that inspect cannot read (`min`) is taken as the annealer f(start, end, pos) it may be"
    test_eq(get_anneal(min), min)
    f = cos_anneal_scheds(1e-2, anneal=min)['lr']
    test_eq(f.fs, [min]); test_eq(f(.5), min(1e-2, 1e-7, .5))

def test_a_callback_class_checked_before_the_fit_leaves_the_rngs_as_they_were():
    ("A callback class that checks itself against the learner is made once for the check and once by fastai's `add_cb`: the check "
     "puts back python's, numpy's and torch's RNGs, so the fit's callback draws what it would without the package")
    class Draws(AnnealPlateau):
        seen = []
        def __init__(self):
            super().__init__()
            Draws.seen.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
    learn = _mk_learner(n_train=3)
    with learn.no_bar(), learn.no_logging(): learn.fit_cos_anneal(1, 1e-3, cbs=Draws)
    assert len(Draws.seen) == 2 and Draws.seen[0] == Draws.seen[1], Draws.seen
