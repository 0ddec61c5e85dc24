"""The registry drives everything: each registered variant is a complete `Learner` method, a `compare` and `preview`
choice with its help, a row of the README's table, and rejects generic bad calls before touching the learner.
(The exactness, resume and fault tables of test_fit.py and test_resume.py are built from it too.)"""
import argparse, contextlib, io, math
from pathlib import Path
import numpy as np, pytest, torch
from fastai.basics import *
from fastai.test_utils import synth_dbunch, RegModel
from fastcore.docments import docments
from fastai_anneal.all import *
from fastai_anneal.registry import VARIANTS, markdown_table
from fastai_anneal.fit import bind_call, prepare_call
from fastai_anneal import cli
from conftest import learner_state, assert_restored, mk_learner, RecordHypers

ONE_PHASE = [m for m,v in VARIANTS.items() if not v.two_phase]

@pytest.mark.parametrize('method', VARIANTS)
def test_variant_is_a_complete_learner_method(method):
    v = VARIANTS[method]
    f = getattr(Learner, method)
    sig = inspect.signature(f)
    assert f.__doc__ == v.doc and len(v.doc.splitlines()) == 1
    assert list(sig.parameters)[1:1+len(v.epoch_args)] == list(v.epoch_args) and v.lr_arg in sig.parameters
    assert {'wd', 'cbs', 'reset_opt', 'start_epoch'} <= set(sig.parameters)
    assert set(v.builder_params) - {v.builder_lr or v.lr_arg} <= set(sig.parameters)  # every builder argument reaches the method
    docs = docments(f)
    assert all(docs[k] for k in sig.parameters if k != 'self'), [k for k in sig.parameters if not docs[k]]
    assert v.fastai in dir(Learner)  # fastai's nearest method exists

@pytest.mark.parametrize('method', ONE_PHASE)
def test_arguments_go_to_the_builder_by_name(method):
    "A positional call binds as the signature says, and its schedules are the builder's called by keyword"
    v,learn = VARIANTS[method],_learner()
    ex = v.examples[0]
    names = list(inspect.signature(getattr(Learner, method)).parameters)[1:]
    call = bind_call(v, learn, *[ex.get(k, inspect.signature(getattr(Learner, method)).parameters[k].default) for k in names])
    assert {k: call[k] for k in ex} == ex
    prep = prepare_call(v, learn, call)
    test_eq(prep['n_epoch'], v.n_epoch(**call))
    lr = np.array([learn.lr if ex.get(v.lr_arg) is None else ex[v.lr_arg]])
    nb = {'n_batch': len(learn.dls.train)} if v.takes_n_batch else {}  # the fit fills it
    ref = v.builder(**{v.lr_arg: lr}, **nb, **{k: a for k,a in ex.items() if k in v.builder_params and k != v.lr_arg})
    for k in ref: test_eq([ref[k](p) for p in (0., .3, .9)], [prep['scheds'][k](p) for p in (0., .3, .9)])
    assert learn.opt is None  # validation has no side effect

def test_compare_and_preview_choices_come_from_the_registry():
    assert [k for k in cli.SCHEDULES if k not in ('one_cycle', 'flat_cos', 'sgdr', 'constant')] == [v.name for v in VARIANTS.values() if v.budget]
    named_only = {v.name for v in VARIANTS.values() if not v.in_default_compare}
    assert named_only >= {'step_decay', 'time_decay', 'cyclic'}  # offered, but the default run stays what it was (< 3 minutes)
    assert named_only <= set(cli.SCHEDULES)  # offered: `compare --schedules` takes them (the s24 audit's R059: no budget)
    assert set(cli.DEFAULT_SCHEDULES) == set(cli.SCHEDULES) - {'constant'} - named_only
    assert list(cli.PREVIEWS) == ONE_PHASE

def _help(*argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit): cli.main([*argv, '--help'])
    return out.getvalue()

def test_cli_help_lists_every_variant():
    compare_help,preview_help = _help('compare'),_help('preview')
    for v in VARIANTS.values():
        if v.budget: assert v.name in compare_help.split('Comma-separated, from:')[1].split('--seeds')[0] and v.budget in compare_help
        if not v.two_phase:
            assert v.method in preview_help
            h = _help('preview', v.method)
            for k in set(v.builder_params) - {'n_epoch'}: assert f"--{k.replace('_', '-')}" in h  # n_epoch: preview's --epochs

def test_readme_table_lists_every_variant():
    "The README's table is `markdown_table()`: a variant registered and not listed fails here"
    readme = (Path(__file__).parents[1]/'README.md').read_text()
    assert markdown_table() in readme, f"README.md's table of variants is stale; replace it with:\n{markdown_table()}"

# ---------------------------------------------------------------- generic bad calls, for every registered variant
def _splitter(m): return [[m.a], [m.b]]

def _learner():
    set_seed(0, reproducible=True)
    return Learner(synth_dbunch(n_train=3, n_valid=1), RegModel(), loss_func=MSELossFlat(), opt_func=Adam, lr=1e-2, splitter=_splitter)

def _bad_calls(v):
    "`(kwargs, message)` that every variant must reject: each starts from its first example"
    ex,first = v.examples[0],v.epoch_args[0]
    n = v.n_epoch(**bind_call(v, _learner(), **ex)) if not v.two_phase else v.n_epoch(**{'freeze_epochs': 1, **ex})
    # fine_tune_anneal(0) trains the frozen phase only, as fastai's fine_tune(0): -1 is its bad count
    rows = [({first: -1 if v.two_phase else 0}, f'{first} must be >= '), ({first: 2.5}, f'{first} must be a whole number'),
            ({v.lr_arg: 0.}, rf'{v.lr_arg} must be in \(0, inf\)'), ({v.lr_arg: math.nan}, f'{v.lr_arg} must be a finite number'),
            ({'start_epoch': n}, r'start_epoch must be in \[0, '), ({'start_epoch': -1}, 'start_epoch must be >= 0'),
            ({'wd': -0.1}, r'wd must be in \[0, inf\)'), ({'cbs': [5]}, 'cbs must be fastai Callbacks'),
            ({'reset_opt': 'no'}, 'reset_opt must be True or False'), ({'no_such_argument': 1}, 'unexpected keyword argument'),
            ({'step': 'minute'}, "step must be one of 'batch', 'epoch'"),
            ({'noise_range_t': n+1}, r'noise_range_t must be None, an epoch'),
            ({'noise_range_t': (1, 0)}, r'0 <= lo < hi <= '), ({'noise_range_t': 0, 'noise_pct': -0.5}, r'noise_pct must be in \(0, 1\]'),
            ({'noise_range_t': 0, 'noise_type': 'pink'}, 'noise_type must be one of'), ({'noise_std': -1.}, r'noise_std must be in'),
            ({'noise_seed': -1}, 'noise_seed must be >= 0')]
    params = inspect.signature(getattr(Learner, v.method)).parameters
    if 'anneal' in params: rows.append(({'anneal': 'cosine'}, 'anneal must be one of'))
    if 'pct_warmup' in params: rows.append(({'pct_warmup': 1.}, r'pct_warmup must be in \[0, 1\)'))
    if not v.two_phase: rows.append(({v.lr_arg: [1e-3]*3}, f'{v.lr_arg} has 3 values but the optimizer has 2 parameter group'))
    return [({**ex, **kw}, m) for kw,m in rows]

BAD = [(m, kw, msg) for m,v in VARIANTS.items() for kw,msg in _bad_calls(v)]

@pytest.mark.parametrize('trained', [False, True], ids=['fresh', 'trained'])
@pytest.mark.parametrize('method,kwargs,match', BAD, ids=[f'{m}-{i}' for i,(m,_,_) in enumerate(BAD)])
def test_every_variant_rejects_bad_calls_untouched(method, kwargs, match, trained):
    learn = _learner()
    if trained:
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        learn.freeze()
    before = learner_state(learn)
    with pytest.raises((ValueError, TypeError), match=match): getattr(learn, method)(**kwargs)
    assert_restored(before, learner_state(learn))

# ---------------------------------------------------------------- registering a variant: checked, and at run time
from fastai_anneal.registry import Variant, RESERVED, COMPARE_NAMES, _REGISTERED
from fastai_anneal.schedules import cooldown_scheds

def _poly_scheds(lr, power:float=2.):
    "A user's schedule: `lr*(1-pos)**power`"
    if not isinstance(power, (int, float)) or not power > 0: raise ValueError(f"power must be > 0, got {power!r}")
    return {'lr': lambda pos: lr*(1-pos)**power}

def _variant(method='fit_poly', builder=_poly_scheds, lr_arg='lr', **kw):
    return Variant(method, builder, lr_arg, **{**dict(doc='Fit with a polynomial decay', fastai='fit', reference='its builder',
                                                     examples=(dict(n_epoch=2, lr=1e-2),)), **kw})

@pytest.mark.parametrize('kw,exc,msg', [
    (dict(method='fit poly'), ValueError, "Variant method must be a public identifier"),
    (dict(method='_fit_poly'), ValueError, "Variant method must be a public identifier"),
    (dict(builder='cos'), TypeError, "Variant 'fit_poly': builder must be a schedule builder"),
    (dict(lr_arg='lr_max'), ValueError, "Variant 'fit_poly': lr_arg must name the builder's lr argument, one of ['lr', 'power']"),
    (dict(builder_lr='peak'), ValueError, "Variant 'fit_poly': builder_lr must name the builder's lr argument"),
    (dict(epoch_args=('n_epochs',)), ValueError, "Variant 'fit_poly': epoch_args must be 'n_epoch' or arguments of the builder"),
    (dict(epoch_args='n_epoch'), TypeError, "Variant 'fit_poly': epoch_args must be a tuple"),
    (dict(epoch_args=('power',)), ValueError, "epoch_args must include 'n_epoch' when n_epoch_of is None"),
    (dict(fixed_lr_args=('base_lr',)), ValueError, "Variant 'fit_poly': fixed_lr_args must be 'n_epoch' or arguments of the builder"),
    (dict(examples=[dict(n_epoch=2)]), TypeError, "Variant 'fit_poly': examples must be a tuple"),
    (dict(examples=('n_epoch=2',)), TypeError, "Variant 'fit_poly': examples must hold dicts"),
    (dict(doc='two\nlines'), ValueError, "Variant 'fit_poly': doc must be one line"),
    (dict(fastai=None), TypeError, "Variant 'fit_poly': fastai must be a non-empty string"),
    (dict(n_epoch_of=3), TypeError, "Variant 'fit_poly': n_epoch_of must be None or callable"),
    (dict(lr_from_opt='yes'), TypeError, "Variant 'fit_poly': lr_from_opt must be True or False"),
    (dict(builder=lambda lr, warm, power=2.: {}), ValueError, "builder must give a default to every argument but the lr and the epoch"),
    (dict(builder=lambda lr, **kw: {}), ValueError, "Variant 'fit_poly': builder must take named arguments only"),
    # an argument of its own that fixes the length: `preview` (and every command of the console script) takes it from the first example
    (dict(builder=lambda lr, n_cycles: {}, epoch_args=('n_cycles',), n_epoch_of=lambda n_cycles: n_cycles, examples=()), ValueError,
     "Variant 'fit_poly': examples must start with a call that gives the builder's argument(s) ['n_cycles']"),
    # and a later example that gives it is not enough: `preview` takes the first
    (dict(builder=lambda lr, n_cycles: {}, epoch_args=('n_cycles',), n_epoch_of=lambda n_cycles: n_cycles,
          examples=(dict(lr=1e-2), dict(n_cycles=2))), ValueError,
     "Variant 'fit_poly': examples must start with a call that gives the builder's argument(s) ['n_cycles']"),
    (dict(reference=None), TypeError, "Variant 'fit_poly': reference must be a non-empty string"),
    (dict(fastai=''), TypeError, "Variant 'fit_poly': fastai must be a non-empty string"),
    (dict(fixed_lr_args='base_lr'), TypeError, "Variant 'fit_poly': fixed_lr_args must be a tuple"),
    (dict(epoch_args=()), ValueError, "Variant 'fit_poly': epoch_args must name the arguments that fix the length"),
    (dict(for_epochs=3), TypeError, "Variant 'fit_poly': for_epochs must be None or callable"),
    (dict(budget=3), TypeError, "Variant 'fit_poly': budget must be None or a string"),
    (dict(in_default_compare='yes'), TypeError, "Variant 'fit_poly': in_default_compare must be True or False"),
])
def test_a_bad_variant_is_refused_naming_the_field(kw, exc, msg):
    with pytest.raises(exc) as e: _variant(**kw)
    assert msg in str(e.value), str(e.value)

@pytest.mark.parametrize('method', ['fit', 'fit_one_cycle', 'fine_tune', 'lr_find', *RESERVED, 'fit_cos_anneal'])
def test_register_refuses_a_name_taken(method):
    "fastai's methods, the package's own and a registered variant stay what they are"
    before = (dict(_REGISTERED), getattr(Learner, method, None))
    with pytest.raises(ValueError, match=rf"Variant '{method}': method is already"): register_variant(_variant(method))
    assert (dict(_REGISTERED), getattr(Learner, method, None)) == before

def test_register_refuses_other_things():
    with pytest.raises(TypeError, match='v must be a Variant, got dict'): register_variant(dict(method='fit_poly'))
    with pytest.raises(ValueError, match='two_phase variants are written by hand'): register_variant(_variant(two_phase=True))
    with pytest.raises(TypeError, match="'mappingproxy' object does not support item assignment"): VARIANTS['fit_poly'] = _variant()
    # a method a learner's own attribute would hide, and a builder argument the fit adds itself (inspect's "duplicate parameter name")
    for name in ('lr', 'dls', 'model', 'recorder'):
        with pytest.raises(ValueError, match=f"Variant '{name}': method is the name of a Learner attribute"): register_variant(_variant(name))
    for k in ('step', 'self'):  # `self`: inspect's "duplicate parameter name" before
        with pytest.raises(ValueError, match=rf"Variant 'fit_poly': builder argument\(s\) \['{k}'\] have the names of the method's own"):
            register_variant(_variant(builder=eval(f"lambda lr, {k}=2: _poly_scheds(lr)", {'_poly_scheds': _poly_scheds})))
    # a budgeted variant named like one of compare's own schedules would be shadowed by it, or replace fastai's baseline
    from fastai_anneal.cli import _FASTAI
    assert set(COMPARE_NAMES) == {*_FASTAI, 'constant'}
    for name in COMPARE_NAMES:  # `fit_constant`, or `one_cycle` itself (`fit_one_cycle` is fastai's method)
        m = f'fit_{name}' if name == 'constant' else name
        with pytest.raises(ValueError, match=f"Variant '{m}': `fastai-anneal compare` already has a schedule named '{name}'"):
            register_variant(_variant(m, budget='mine'))
        assert m not in VARIANTS and not hasattr(Learner, m)
    assert 'fit_poly' not in VARIANTS and not hasattr(Learner, 'fit_poly') and 'lr' not in VARIANTS

@pytest.fixture
def poly_variant():
    v = register_variant(_variant())
    yield v
    del _REGISTERED[v.method]; delattr(Learner, v.method)

def test_a_variant_registered_at_run_time_is_a_complete_method(poly_variant):
    "A method with the builder's arguments and docs, its checks before touching the learner, and lr='auto'"
    assert VARIANTS['fit_poly'] is poly_variant and Learner.fit_poly.__doc__ == 'Fit with a polynomial decay'
    assert list(inspect.signature(Learner.fit_poly).parameters)[:4] == ['self', 'n_epoch', 'lr', 'power']
    learn = _learner()
    with pytest.raises(ValueError, match='power must be > 0'): learn.fit_poly(2, 1e-2, power=-1.)
    assert learn.opt is None
    with learn.no_bar(), learn.no_logging(): learn.fit_poly(2, 1e-2, power=1., cbs=(rec := RecordHypers()))
    n = 2*len(learn.dls.train)
    np.testing.assert_allclose([b[0] for b in rec.lrs], [1e-2*(1 - i/n) for i in range(n)], rtol=1e-12)  # fastai's pct_train
    learn = mk_learner(n_train=100)
    with learn.no_bar(), learn.no_logging(): learn.fit_poly(10, 'auto', power=3.)
    assert 1e-7 < learn.lr_tune_result.lr < 10 and learn.lr_tune_result.trials

@pytest.mark.parametrize('out,exc,msg', [
    ([lambda pos: 1e-2], TypeError, "a fit variant's builder must return a dict of hyper-parameter name: schedule"),
    ({'lr': 1e-2}, TypeError, "a fit variant's builder must return a dict"),
    ({'lr': lambda pos: 1e-2, 'momentum': lambda pos: 0.5}, ValueError, "named schedules ['momentum'] as torch does; fastai's optimizers "
                                                                        "take ['mom']"),
    ({'lr': lambda pos: 1e-2, 'wd': lambda pos: -0.1}, ValueError, 'the wd schedule reaches -0.1 at 0% of training; scheduled values '
                                                                  'must be finite in float32 and >= 0'),
    ({'lr': lambda pos: 1e-2, 'mom': lambda pos: 0.9 + pos}, ValueError, 'the mom schedule reaches 1.0015625 at 10% of training; '
                                                                        'scheduled values must be finite in float32 and in [0, 1]'),
])
def test_what_a_builder_returns_is_checked_before_the_fit(out, exc, msg):
    ("A builder's output that fastai would fail on mid-fit, or would take silently (a torch name is a new hyper no stepper reads, "
     "a negative wd, a momentum above 1), is refused naming the fault, the learner untouched (review, seventeenth session)")
    v = register_variant(_variant('fit_odd', builder=lambda lr: out))
    try:
        learn = _learner(); before = learner_state(learn)
        with pytest.raises(exc) as e: learn.fit_odd(2, 1e-2)
        assert msg in str(e.value), str(e.value)
        assert_restored(before, learner_state(learn))
    finally: del _REGISTERED[v.method]; delattr(Learner, v.method)

def test_reloading_the_module_patches_again():
    "IPython's autoreload re-runs `fit.py`: the package's own methods are made again (in a fresh process: a reload replaces classes)"
    import subprocess, sys
    code = ("import importlib, fastai_anneal.all, fastai_anneal.fit as f; from fastai.learner import Learner; importlib.reload(f); "
            "assert Learner.fit_cos_anneal.__module__ == 'fastai_anneal.fit' != Learner.fit_one_cycle.__module__; print('ok')")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith('ok'), out.stderr[-2000:]

def test_a_variant_registered_at_run_time_joins_the_commands():
    "`cli.SCHEDULES` and `cli.PREVIEWS` read the registry when used: `compare(schedules=...)` and `preview` from Python offer it"
    from fastai_anneal import cli
    v = register_variant(_variant(budget='fit_poly(N, lr): lr*(1-pos)**2'))
    try:
        assert cli.PREVIEWS['fit_poly'] is v.builder and cli.SCHEDULES['poly'][1] == v.budget
        assert cli._check_schedules('cos_anneal,poly') == ['cos_anneal', 'poly'] and 'poly' not in cli.DEFAULT_SCHEDULES
    finally: del _REGISTERED[v.method]; delattr(Learner, v.method)
    assert 'fit_poly' not in cli.PREVIEWS and 'poly' not in cli.SCHEDULES

def test_registering_again_changes_nothing_and_replace_puts_a_new_one_in_place():
    ("A notebook cell run twice, a module reloaded: the same builder (module and name) defined again replaces the variant; "
     "another builder for that method takes `replace=True`")
    v = register_variant(_variant())
    try:
        assert register_variant(_variant()) is v and VARIANTS['fit_poly'] is v  # equal: nothing changes
        ns = {'__name__': _poly_scheds.__module__}  # the cell that defines the builder run again: a new function, the same name
        exec("def _poly_scheds(lr, power:float=2.):\n    return {'lr': lambda pos: lr*(1-pos)**power}", ns)
        assert ns['_poly_scheds'] is not _poly_scheds and ns['_poly_scheds'].__qualname__ == _poly_scheds.__qualname__
        v = register_variant(_variant(builder=ns['_poly_scheds'], doc='Fit with a polynomial decay, edited'))  # and its doc edited
        assert VARIANTS['fit_poly'] is v and v.builder is ns['_poly_scheds'] and Learner.fit_poly.__doc__ == v.doc
        v = register_variant(_variant(builder=partial(_poly_scheds, power=2.)))  # the same function, through a partial
        assert VARIANTS['fit_poly'] is v
        w = _variant(builder=lambda lr, power=3.: _poly_scheds(lr, power))
        with pytest.raises(ValueError, match="Variant 'fit_poly': method is already registered"): register_variant(w)
        assert VARIANTS['fit_poly'] is v
        with pytest.raises(TypeError, match="replace must be True or False"): register_variant(w, replace='yes')
        assert register_variant(w, replace=True) is w and VARIANTS['fit_poly'] is w
        assert list(inspect.signature(Learner.fit_poly).parameters)[3:4] == ['power'] and Learner.fit_poly.__doc__ == w.doc
        with pytest.raises(ValueError, match="Variant 'fit_cos_anneal': method is already registered"):
            register_variant(_variant('fit_cos_anneal'), replace=True)  # the package's own stay
    finally: del _REGISTERED['fit_poly']; delattr(Learner, 'fit_poly')

def test_preview_flags_follow_a_plugin_builder_s_annotations(tmp_path):
    "A str argument parses as a string and an optional int as an int (every other annotation a float, as before)"
    from fastai_anneal import cli
    import typing
    annos = (str, 'str', int, 'int|None', 'Optional[int]', int|None, typing.Optional[str], typing.Union[int, None], float, 'float|None',
             'str|callable', 'int|float')  # an int flag only where every type is int
    assert [cli._flag_kwargs(a)['type'] for a in annos] == [str, str, int, int, int, int, str, int, float, float, float, float]
    assert cli._flag_kwargs(typing.Literal['lin', 'cos']) == cli._flag_kwargs("Literal['lin', \"cos\"]") == dict(choices=['lin', 'cos'])
    for a in (bool, 'bool|None', typing.Optional[bool]): assert cli._flag_kwargs(a) == dict(action=argparse.BooleanOptionalAction)
    # a builder whose lr argument has a name of its own (`builder_lr`): `preview` gives it 1e-3, as it gives `lr_arg`
    assert cli._preview_kwargs(_variant(builder=lambda peak, power=2.: {}, builder_lr='peak'), {}) == {'peak': 1e-3}
    seen = {}
    def shaped(lr, shape:str='lin', every:int|None=None):
        "Linear or cosine decay, `every` steps a staircase"
        seen.update(shape=shape, every=every); return {'lr': lambda pos: lr*(1-pos)}
    v = register_variant(_variant('fit_shaped', shaped))
    try:
        assert cli.main(['preview', 'fit_shaped', '--shape', 'cos', '--every', '3', '--out', str(tmp_path)]) == 0
        assert seen == dict(shape='cos', every=3) and type(seen['every']) is int
        for k in ('command', 'variant'):  # the parser's own destinations: refused as a plugin, not read as the argument
            with pytest.raises(ValueError, match=rf"builder argument\(s\) \['{k}'\] are the console script's own"):
                cli._check_console(_variant('fit_x', eval(f"lambda lr, {k}=1: {{}}")))
    finally: del _REGISTERED['fit_shaped']; delattr(Learner, 'fit_shaped')

# ------------------------------------------------------------------ behaviours a mutation audit found unpinned (twenty-second session)
def test_a_builder_without_a_signature_is_a_type_error_naming_the_field():
    "`inspect.signature` raises ValueError for some callables (a builtin type): the Variant says which field, as a TypeError"
    with pytest.raises(TypeError, match="Variant 'fit_poly': builder must have an inspectable signature"): _variant(builder=dict)

def _positional_lr(lr, /, power:float=2.): return {'lr': lambda pos: lr*(1-pos)**power}

def test_a_builder_with_a_positional_only_lr_is_refused():
    "The method forwards every argument by name: a positional-only lr would fail at the fit, so the Variant refuses it"
    with pytest.raises(ValueError, match=r"Variant 'fit_poly': builder must take named arguments only .* not \['lr'\]"):
        _variant(builder=_positional_lr)

def test_the_first_example_must_give_every_argument_preview_needs():
    "Two arguments of its own fix the length: a first example giving only one of them is refused, naming both"
    with pytest.raises(ValueError, match=r"examples must start with a call that gives the builder's argument\(s\) \['n_cycles', 'cycle_len'\]"):
        _variant(builder=lambda lr, n_cycles, cycle_len: {}, epoch_args=('n_cycles', 'cycle_len'),
                 n_epoch_of=lambda n_cycles, cycle_len: n_cycles*cycle_len, examples=(dict(n_cycles=2),))

def test_n_epoch_of_a_call_without_n_epoch_is_refused():
    "`Variant.n_epoch` of a call that does not give `n_epoch` (and has no `n_epoch_of`) is refused, not taken as 1 epoch"
    from fastai_anneal.registry import VARIANTS
    with pytest.raises((TypeError, ValueError), match='n_epoch'): VARIANTS['fit_cos_anneal'].n_epoch(lr_max=1e-2)
    assert VARIANTS['fit_cos_anneal'].n_epoch(n_epoch=3, lr_max=1e-2) == 3

def test_a_builder_taking_n_epoch_needs_no_example_giving_it():
    ("`n_epoch` is the method's own argument (preview gives its epochs): a builder that requires it is accepted with examples that "
     "leave it out (R020: 'n_epoch' dropped from what the first example need not give)")
    v = _variant(builder=lambda lr, n_epoch, power=2.: {}, examples=(dict(lr=1e-2),))
    assert v.n_epoch(n_epoch=3) == 3

def test_n_epoch_takes_the_builders_defaults():
    ("The epochs of a call that leaves an epoch argument out are counted at the builder's default (what the fit runs), not at "
     "`n_epoch_of`'s own (R033: only the call's arguments passed to `n_epoch_of`)")
    v = _variant(builder=lambda lr, n_cycles, cycle_len=2: {}, epoch_args=('n_cycles', 'cycle_len'),
                 n_epoch_of=lambda n_cycles, cycle_len=1: n_cycles*cycle_len, examples=(dict(n_cycles=2),))
    assert v.n_epoch(n_cycles=3) == 6
    assert v.n_epoch(n_cycles=3, cycle_len=1) == 3

# ------------------------------------------------------------------ the last registry mutants left unclassified (twenty-fourth session)
@pytest.mark.parametrize('n,n_batch', [(4, 10), (3, 5), (1, 1), (2, 3), (60, 40)])
def test_compare_runs_fit_cyclic_as_two_whole_cycles(n, n_batch):
    ("`compare`'s budget for `fit_cyclic`: the step size nearest a quarter of the run's batches, at least one batch, so the lr goes "
     "up and down twice (R040: an eighth, R041: a step of 0, R042: truncated, R058: torch's default 2000)")
    kw = VARIANTS['fit_cyclic'].epoch_kwargs(n, n_batch)
    assert set(kw) == {'n_epoch', 'step_size_up'} and kw['n_epoch'] == n and kw['step_size_up'] >= 1
    assert abs(4*kw['step_size_up'] - n*n_batch) <= 2 or kw['step_size_up'] == 1  # within half a batch per step of the quarter
    assert VARIANTS['fit_cyclic'].epoch_kwargs(n) == {'n_epoch': n}  # batches unknown: torch's step sizes

def test_compare_s_fit_cyclic_peaks_twice():
    "What `compare --schedules cyclic` runs: 4 epochs of 4 batches, the lr at its top after batches 4 and 12 and back at its base at 8"
    from fastai.test_utils import synth_learner
    learn = synth_learner(n_trn=4)
    assert len(learn.dls.train) == 4
    with learn.no_bar(), learn.no_logging(): cli.SCHEDULES['cyclic'][0](learn, 4, 1e-2)
    lrs = np.array(learn.recorder.lrs)
    assert len(lrs) == 16 and [i for i in range(1, 15) if lrs[i] > max(lrs[i-1], lrs[i+1])] == [4, 12]
    np.testing.assert_allclose(lrs[[0, 8]], 1e-2/4)
    np.testing.assert_allclose(lrs[[4, 12]], 1e-2)

def test_a_budget_s_epochs_and_batches_are_checked():
    ("`epoch_kwargs` refuses a count that is not a positive whole number, naming it, for a variant with and without its own budget "
     "(R035: unchecked; R043: 0 batches taken as unknown)")
    for n in (0, 2.5):
        with pytest.raises((TypeError, ValueError), match='n_epoch must be'): VARIANTS['fit_cos_anneal'].epoch_kwargs(n)
        with pytest.raises((TypeError, ValueError), match='n_epoch must be'): VARIANTS['fit_cyclic'].epoch_kwargs(n, 10)
    with pytest.raises(ValueError, match='n_batch must be >= 1, got 0'): VARIANTS['fit_cyclic'].epoch_kwargs(3, 0)

def test_a_compare_name_is_free_for_a_variant_compare_does_not_run():
    "`budget=None` keeps a variant out of `compare`, so it may share a name with one of compare's own schedules (R052)"
    with pytest.raises(ValueError, match="compare` already has a schedule named 'constant'"):
        register_variant(_variant('fit_constant', budget='fit_constant(N, lr)'))
    v = register_variant(_variant('fit_constant'))
    try: assert VARIANTS['fit_constant'] is v and 'constant' in COMPARE_NAMES and cli.SCHEDULES['constant'][1].startswith('fastai')
    finally: del _REGISTERED['fit_constant']; delattr(Learner, 'fit_constant')

def test_a_builder_of_the_same_name_defined_elsewhere_is_another_builder():
    ("Only the same module and qualified name count as a builder defined again: one of that name from another module, or nested in "
     "a function, is refused as another (R047: by name; R048: module ignored)")
    v = register_variant(_variant())
    try:
        ns = {'__name__': 'a_users_module'}
        exec("def _poly_scheds(lr, power:float=2.):\n    return {'lr': lambda pos: lr*(1-pos)**power}", ns)
        def nest():
            def _poly_scheds(lr, power:float=2.): return {'lr': lambda pos: lr*(1-pos)**power}
            return _poly_scheds
        for other in (ns['_poly_scheds'], nest()):
            assert other.__name__ == _poly_scheds.__name__
            with pytest.raises(ValueError, match="Variant 'fit_poly': method is already registered"): register_variant(_variant(builder=other))
            assert VARIANTS['fit_poly'] is v
    finally: del _REGISTERED['fit_poly']; delattr(Learner, 'fit_poly')

def test_the_tuner_s_names_are_reserved_before_it_patches_them():
    ("With only `fastai_anneal.fit` imported, `lr_tune`, `fit_tuned` and `lr_tune_result` are not yet `Learner`'s: the registry "
     "refuses them itself, as the package's (R044, R050, R051)")
    import subprocess, sys
    code = ("from fastai.learner import Learner\nimport fastai_anneal.fit as f\nfrom fastai_anneal.registry import Variant\n"
            "from fastai_anneal.schedules import cooldown_scheds\n"
            "for m in ('lr_tune', 'fit_tuned', 'lr_tune_result'):\n    assert not hasattr(Learner, m), m\n"
            "    try: f.register_variant(Variant(m, cooldown_scheds, 'lr', doc='d', fastai='fit', reference='r', "
            "examples=(dict(n_epoch=2, lr=1e-2),)))\n"
            "    except ValueError as e: print(e)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"Variant {m!r}: method is already a method of the package; give the variant its own name"
                                       for m in ('lr_tune', 'fit_tuned', 'lr_tune_result')]
