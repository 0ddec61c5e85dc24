"""One entry per fit variant: it drives the `Learner` patches (`fit.py`), the console script's `compare` and `preview`
choices (`cli.py`), the parametrised tests and the README's table. Adding a schedule is a builder in `schedules.py`
and one `Variant(...)` in `_BUILTIN` below; a user's own variant goes through `register_variant` (`fit.py`) at run time."""
from __future__ import annotations
import inspect
from dataclasses import dataclass
from types import MappingProxyType
from .schedules import (cos_anneal_scheds, sgdr_anneal_scheds, sgdr_n_epoch, sgdr_cycles, flat_anneal_scheds, cooldown_scheds,
                        step_decay_scheds, time_decay_scheds, cyclic_scheds)
from ._checks import check_int

__all__ = ['Variant', 'VARIANTS', 'RESERVED', 'COMPARE_NAMES', 'markdown_table']

def _params(f) -> dict: return dict(inspect.signature(f).parameters)

@dataclass(frozen=True)
class Variant:
    "A fit variant: its schedule builder, the `Learner` method it becomes, and what it is compared and checked against"
    method:str               # The `Learner` method, e.g. 'fit_cos_anneal'
    builder:callable         # Its builder in `schedules.py`: keyword arguments -> {'lr': f(pos), ...}, every argument checked
    lr_arg:str               # Name of the method's learning-rate argument ('lr_max', 'lr', 'base_lr'); `learn.lr` when None
    doc:str                  # One-line description: the method's docstring
    fastai:str               # fastai's nearest method
    reference:str            # The implementation(s) it is exact against, 1e-6 relative at every step
    examples:tuple           # Small calls (keyword arguments) the tests run on every variant; the first fills `preview`'s required ones
    budget:str=None          # How `fastai-anneal compare` spends N epochs with it; None: `compare` does not offer it
    epoch_args:tuple=('n_epoch',)  # The method's leading arguments, which fix the length of training
    n_epoch_of:callable=None # Epochs from the arguments (e.g. `sgdr_n_epoch`); None: `n_epoch` is an argument
    # `(n, n_batch) -> {argument: value}` spending exactly `n` epochs of `n_batch` batches (None: unknown) sensibly (`compare`): the
    # epoch arguments, and any other the budget needs (cyclic's step sizes); None: `{'n_epoch': n}`
    for_epochs:callable=None
    builder_lr:str=None      # The builder's lr argument where it differs from `lr_arg`
    two_phase:bool=False     # Written by hand in `fit.py` (fine_tune_anneal: a frozen then an unfrozen `fit_cos_anneal`)
    lr_from_opt:bool=False   # An lr of None means the lr each param group holds now (a cooldown), not `learn.lr`
    in_default_compare:bool=True  # `compare` runs it without `--schedules` (False: only when named, keeping the default run short)
    fixed_lr_args:tuple=()   # Other arguments that are absolute lrs (cyclic's `base_lr`): `lr_tune` scales `lr_arg` alone, so refuses them

    def __post_init__(self):
        "Every field checked, each error naming the variant and the field: a bad entry fails here, not at the fit or the import"
        m = self.method
        if not isinstance(m, str) or not m.isidentifier() or m.startswith('_'):
            raise ValueError(f"Variant method must be a public identifier (the Learner method's name), got {m!r}")
        def bad(field, what, exc=ValueError): raise exc(f"Variant {m!r}: {field} {what}, got {getattr(self, field)!r}")
        if not callable(self.builder): bad('builder', "must be a schedule builder (keyword arguments -> {'lr': f(pos), ...})", TypeError)
        try: params = _params(self.builder)
        except (TypeError, ValueError): bad('builder', 'must have an inspectable signature', TypeError)
        for f in ('lr_arg', 'doc', 'fastai', 'reference'):
            if not isinstance(getattr(self, f), str) or not getattr(self, f): bad(f, 'must be a non-empty string', TypeError)
        if len(self.doc.splitlines()) != 1: bad('doc', 'must be one line (the method\'s docstring)')
        lr = self.builder_lr or self.lr_arg
        if lr not in params:
            bad('builder_lr' if self.builder_lr else 'lr_arg', f"must name the builder's lr argument, one of {list(params)}")
        for f in ('examples', 'epoch_args', 'fixed_lr_args'):
            if not isinstance(getattr(self, f), tuple): bad(f, 'must be a tuple', TypeError)
        if not all(isinstance(e, dict) for e in self.examples): bad('examples', 'must hold dicts of keyword arguments', TypeError)
        if not self.epoch_args: bad('epoch_args', 'must name the arguments that fix the length of training')
        if not self.two_phase:  # a two-phase variant's arguments are its hand-written method's
            P = inspect.Parameter
            odd = [k for k,p in params.items() if p.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD, P.POSITIONAL_ONLY)]
            if odd: bad('builder', f"must take named arguments only (its method forwards each by name), not {odd}")
            bare = [k for k,p in params.items() if p.default is P.empty and k not in (lr, 'n_batch', *self.epoch_args)]
            if bare: bad('builder', f"must give a default to every argument but the lr and the epoch arguments (the method's "
                                    f"signature follows the lr, which defaults to None), not to {bare}")
            unknown = [k for k in (*self.epoch_args, *self.fixed_lr_args) if k != 'n_epoch' and k not in params]
            if unknown: bad('epoch_args' if set(unknown) & set(self.epoch_args) else 'fixed_lr_args',
                            f"must be 'n_epoch' or arguments of the builder {list(params)} (unknown: {unknown})")
            if self.n_epoch_of is None and 'n_epoch' not in self.epoch_args:
                bad('epoch_args', "must include 'n_epoch' when n_epoch_of is None (the epochs are then that argument)")
            need = [k for k,p in params.items() if p.default is P.empty and k not in (lr, 'n_batch', 'n_epoch')]
            if need and not (self.examples and all(k in self.examples[0] for k in need)):
                bad('examples', f"must start with a call that gives the builder's argument(s) {need} (`preview` takes them from it)")
        for f in ('n_epoch_of', 'for_epochs'):
            if getattr(self, f) is not None and not callable(getattr(self, f)): bad(f, 'must be None or callable', TypeError)
        if self.budget is not None and not isinstance(self.budget, str): bad('budget', 'must be None or a string', TypeError)
        for f in ('two_phase', 'lr_from_opt', 'in_default_compare'):
            if not isinstance(getattr(self, f), bool): bad(f, 'must be True or False', TypeError)

    @property
    def name(self) -> str: return self.method.removeprefix('fit_')  # the name `compare --schedules` takes
    @property
    def builder_params(self) -> dict:
        "The builder's arguments a call can give: all but `n_batch`, which the fit fills from `len(learn.dls.train)`"
        return {k: p for k,p in _params(self.builder).items() if k != 'n_batch'}
    @property
    def takes_n_batch(self) -> bool: return 'n_batch' in _params(self.builder)  # its schedule counts batches

    def builder_kwargs(self, kwargs:dict) -> dict:
        "The builder's arguments among `kwargs`, its lr excepted"
        lr = self.builder_lr or self.lr_arg
        return {k: v for k,v in kwargs.items() if k in self.builder_params and k != lr}

    def scheds(self, lr, /, n_batch:int=None, **kwargs) -> dict:
        "The schedules of a call with `lr` (a float, or an array: one per param group), `n_batch` batches per epoch and other `kwargs`"
        nb = {'n_batch': n_batch} if self.takes_n_batch else {}
        return self.builder(**{self.builder_lr or self.lr_arg: lr}, **nb, **self.builder_kwargs(kwargs))

    def n_epoch(self, **kwargs) -> int:
        "Epochs a call with `kwargs` trains (every phase, for a two-phase variant), unset builder arguments at their defaults"
        if self.n_epoch_of is None: return check_int('n_epoch', kwargs.get('n_epoch'))
        kw = {k: p.default for k,p in self.builder_params.items() if p.default is not inspect.Parameter.empty} | kwargs
        return self.n_epoch_of(**{k: kw[k] for k in _params(self.n_epoch_of) if k in kw})

    def epoch_kwargs(self, n:int, n_batch:int=None) -> dict:
        "The `epoch_args` (and what else the budget needs) that spend exactly `n` epochs of `n_batch` batches (None: unknown)"
        return self.for_epochs(n, n_batch) if self.for_epochs else {'n_epoch': check_int('n_epoch', n)}

def _fine_tune_epochs(epochs, freeze_epochs) -> int:
    "Epochs of both phases; fastai's `fine_tune(0, freeze_epochs=k)` trains the head only, and `freeze_epochs=0` skips the frozen phase"
    n = check_int('freeze_epochs', freeze_epochs, 0) + check_int('epochs', epochs, 0)
    if n < 1:
        raise ValueError(f"freeze_epochs+epochs must be >= 1 (a phase that trains), got freeze_epochs={freeze_epochs}, epochs={epochs}")
    return n
def _sgdr_epochs(n, n_batch=None): return dict(zip(('n_cycles', 'cycle_len'), sgdr_cycles(n)))
def _cyclic_epochs(n, n_batch=None):
    "`n` epochs of two whole cycles (a quarter of the batches per step) when `n_batch` is known; torch's step sizes otherwise"
    n = check_int('n_epoch', n)
    return dict(n_epoch=n) if n_batch is None else dict(n_epoch=n, step_size_up=max(1, round(n * check_int('n_batch', n_batch) / 4)))

# the package's own `Learner` methods that are not variants (`tune.py` patches them after the variants): no variant may take them
RESERVED = ('lr_tune', 'fit_tuned', 'lr_tune_result')
COMPARE_NAMES = ('one_cycle', 'flat_cos', 'sgdr', 'constant')  # `fastai-anneal compare`'s own schedules (cli.py): fastai's and a floor

_REGISTERED = {}
VARIANTS = MappingProxyType(_REGISTERED)  # read-only: `register_variant` (fit.py) adds a variant and its `Learner` method together

def _origin(f) -> tuple:
    "Where callable `f` is defined, `(module, qualified name)`, through `functools.partial` and bound methods"
    while hasattr(f, 'func') or hasattr(f, '__func__'): f = getattr(f, 'func', None) or f.__func__
    return getattr(f, '__module__', None),getattr(f, '__qualname__', type(f).__qualname__)

def _redefined(a:Variant, b:Variant) -> bool:
    ("Whether `b` is `a` defined again: the same method and a builder of the same module and name (a notebook cell run again, a "
     "module reloaded), whatever else changed")
    return a.method == b.method and _origin(a.builder) == _origin(b.builder)

def _add(v:Variant, replace:Variant=None):
    "Put `v` (a `Variant`) in the registry, refusing a method name already taken (by a variant but `replace`, or `RESERVED`)"
    if (v.method in _REGISTERED and _REGISTERED[v.method] is not replace) or v.method in RESERVED:
        taken = 'registered' if v.method in _REGISTERED else 'a method of the package'
        raise ValueError(f"Variant {v.method!r}: method is already {taken}; give the variant its own name")
    if v.budget and v.name in COMPARE_NAMES:  # `compare --schedules <name>` would run the other, or it would replace fastai's baseline
        raise ValueError(f"Variant {v.method!r}: `fastai-anneal compare` already has a schedule named {v.name!r}; give the variant its "
                         f"own name, or budget=None")
    _REGISTERED[v.method] = v

_BUILTIN = (
    Variant('fit_cos_anneal', cos_anneal_scheds, 'lr_max',
        doc="Fit `self.model` for `n_epoch` with optional warmup then cosine annealing to `lr_max/div_final` (SGDR without restarts, "
            "arXiv 1608.03983)",
        fastai='fit_one_cycle',
        reference="torch `CosineAnnealingLR` (one param group, or `div_final=inf`: `eta_min` is one floor for every group); "
                  "transformers cosine with warmup and a min lr rate",
        budget="fit_cos_anneal(N, lr): one cosine from lr to lr/1e5, no warmup",
        examples=(dict(n_epoch=4, lr_max=1e-2, pct_warmup=0.2),
                  dict(n_epoch=3, lr_max=1e-2, moms=(0.95, 0.85, 0.95), anneal='sqrt', pct_warmup=0.1, warmup='cos'))),
    Variant('fit_sgdr_anneal', sgdr_anneal_scheds, 'lr_max',
        doc="Fit `self.model` with `n_cycles` warm restarts, growing by `cycle_mult` and decaying by `cycle_decay` "
            "(SGDR, arXiv 1608.03983)",
        fastai='fit_sgdr',
        reference="timm `CosineLRScheduler`; torch `CosineAnnealingWarmRestarts` for a whole `cycle_mult` and `cycle_decay=1` (both: "
                  "one param group or `div_final=inf`, and `pct_warmup=0`: ours is a prefix of the first cycle, not timm's `warmup_t`)",
        budget="fit_sgdr_anneal(*sgdr_cycles(N), lr): sgdr's cycles, each a cosine from lr to lr/1e5",
        epoch_args=('n_cycles', 'cycle_len'), n_epoch_of=sgdr_n_epoch, for_epochs=_sgdr_epochs,
        examples=(dict(n_cycles=3, cycle_len=1, cycle_decay=0.5), dict(n_cycles=4, cycle_len=1, lr_max=3e-3, cycle_mult=1,
                                                                       pct_warmup=0.1))),
    Variant('fit_flat_anneal', flat_anneal_scheds, 'lr',
        doc="Fit `self.model` with warmup, a stable `lr`, then a decay from `pct_start` (WSD, Hägele et al., arXiv 2405.18392)",
        fastai='fit_flat_cos', reference="transformers `get_wsd_schedule` (cosine, linear, 1-sqrt)",
        budget="fit_flat_anneal(N, lr): lr for 75% of training, cosine to lr/1e5",
        examples=(dict(n_epoch=4, lr=1e-2, pct_start=0.5, pct_warmup=0.1, anneal='sqrt'),)),
    Variant('fit_cooldown', cooldown_scheds, 'lr', lr_from_opt=True,
        doc="Decay every param group's lr from `lr` (the lr it holds now if None) to `lr/div_final` over `n_epoch`: the cooldown of a "
            "warmup-stable-decay run, branched from any checkpoint of its stable phase (Hägele et al., arXiv 2405.18392)",
        fastai='fit_flat_cos', reference="the decay phase of `fit_flat_anneal` (its tail's lrs, batch for batch)",
        examples=(dict(n_epoch=3, lr=1e-2), dict(n_epoch=4, lr=1e-2, anneal='cos', div_final=100.))),
    Variant('fine_tune_anneal', cos_anneal_scheds, 'base_lr', builder_lr='lr_max', two_phase=True,
        doc="`Learner.fine_tune` with both phases warmed up and annealed by `fit_cos_anneal` instead of 1cycle; `start_epoch` counts "
            "the epochs of both phases",
        fastai='fine_tune', reference="its two `fit_cos_anneal` phases",
        epoch_args=('epochs',), n_epoch_of=_fine_tune_epochs,
        examples=(dict(epochs=2, freeze_epochs=1, lr_mult=10), dict(epochs=3, freeze_epochs=0))),
    Variant('fit_step_decay', step_decay_scheds, 'lr', in_default_compare=False,
        doc="Fit `self.model` for `n_epoch`, the lr multiplied by `gamma` every `step_size` epochs or at each of `milestones`, once per "
            "epoch (step decay)",
        fastai='fit', reference="torch `StepLR` / `MultiStepLR` stepped once per epoch",
        budget="fit_step_decay(N, lr): lr, x0.1 at epochs N//2 and 3N//4 (torch MultiStepLR)",
        examples=(dict(n_epoch=4, lr=1e-2, step_size=2, gamma=0.5), dict(n_epoch=3, milestones=[1, 2], gamma=0.3))),
    Variant('fit_time_decay', time_decay_scheds, 'lr', in_default_compare=False,
        doc="Fit `self.model` for `n_epoch` with the lr `lr/(1+decay_rate*t/decay_steps)` at batch `t` (time-based decay)",
        fastai='fit', reference="Keras `InverseTimeDecay` (its published formula, staircase included)",
        budget="fit_time_decay(N, lr): lr/(1+t/n_batch), t the batch count (Keras InverseTimeDecay)",
        examples=(dict(n_epoch=3, lr=1e-2, decay_rate=0.5), dict(n_epoch=4, decay_rate=2., decay_steps=3, staircase=True))),
    Variant('fit_cyclic', cyclic_scheds, 'max_lr', in_default_compare=False, for_epochs=_cyclic_epochs, fixed_lr_args=('base_lr',),
        doc="Fit `self.model` for `n_epoch` with the lr cycling between `base_lr` and `max_lr`, momentum inversely (cyclical learning "
            "rates, arXiv 1506.01186)",
        fastai='fit_one_cycle', reference="torch `CyclicLR` (lr and momentum; triangular, triangular2, exp_range)",
        budget="fit_cyclic(N, lr, step_size_up=N*n_batch/4): two triangles from lr/4 to lr and back, momentum 0.9-0.8",
        examples=(dict(n_epoch=3, max_lr=1e-2, step_size_up=3, step_size_down=4, mode='triangular2'),
                  dict(n_epoch=4, max_lr=1e-2, base_lr=1e-3, step_size_up=2, mode='exp_range', gamma=0.9, cycle_momentum=False))),
)
for _v in _BUILTIN: _add(_v)

def markdown_table() -> str:
    "The README's table of variants: `python -c 'from fastai_anneal.registry import *; print(markdown_table())'`"
    rows = [f"| `{v.method}` | `{v.fastai}` | {v.reference} |" for v in VARIANTS.values()]
    return '\n'.join(["| method | fastai's nearest | exact against (1e-6 relative, every step) |", '|---|---|---|', *rows])
