"A fresh interpreter imports the package, applies only its own patches, and shadows no fastai name."
import subprocess, sys, textwrap

def run(code):
    r = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout

def test_fresh_import_and_version():
    out = run("""
        import fastai_anneal, configparser
        cfg = configparser.ConfigParser(delimiters=['=']); cfg.read('settings.ini')
        assert fastai_anneal.__version__ == cfg['DEFAULT']['version'], fastai_anneal.__version__
        from fastai.basics import Learner
        assert not hasattr(Learner, 'fit_cos_anneal')       # importing the package alone patches nothing
        from fastai_anneal.all import *
        for m in ('fit_cos_anneal', 'fit_sgdr_anneal', 'fit_flat_anneal', 'fine_tune_anneal'): assert hasattr(Learner, m), m
        print('ok')
    """)
    assert out.strip() == 'ok'

def test_no_fastai_method_replaced_except_lr_find():
    "issue 10.5: of every fastai class we patch or sit beside, only `Learner.lr_find` changes (`Recorder.plot_lr_find` stays fastai's)"
    run("""
        from fastai.basics import *
        from fastai.callback.all import *
        from fastai.vision.all import *
        from fastai.data.load import DataLoader
        from fastai.distributed import DistributedDL
        classes = [Learner, Recorder, Callback, ParamScheduler, LRFinder, TrackerCallback, SaveModelCallback, Optimizer, OptimWrapper,
                   Metric, AvgMetric, AccumMetric, DataLoader, TfmdDL, DistributedDL, MixedPrecision, GradientAccumulation]
        before = [dict(vars(c)) for c in classes]
        import fastai_anneal.all as fa
        changed = sorted(f'{c.__name__}.{k}' for c,b in zip(classes, before) for k in set(b) | set(vars(c))
                         if vars(c).get(k) is not b.get(k))
        added = {'Learner._orig_lr_find', 'Learner.fit_cos_anneal', 'Learner.fit_sgdr_anneal', 'Learner.fit_flat_anneal',
                 'Learner.fine_tune_anneal', 'Learner.fit_cooldown', 'Learner.lr_tune', 'Learner.fit_tuned', 'Learner.lr_tune_result',
                 'Recorder.plot_lr_sweep', 'Learner.fit_step_decay', 'Learner.fit_time_decay', 'Learner.fit_cyclic'}
        assert set(changed) - added == {'Learner.lr_find'}, changed       # DESIGN: lr_find is the one patch on a fastai name
        assert Recorder.plot_lr_find.__module__ == 'fastai.callback.schedule'
    """)

def test_cli_import_changes_no_process_wide_state():
    "issue 10.6: importing `fastai_anneal.cli` adds no warnings filter and no default callback (fastai's own imports aside)"
    run("""
        import warnings
        import fastai.callback.schedule, fastai.callback.progress   # what the package's fastai imports bring, fastai's doing
        from fastai.learner import defaults
        filters,cbs = list(warnings.filters),list(defaults.callbacks)
        import fastai_anneal.cli
        assert warnings.filters == filters, [f for f in warnings.filters if f not in filters]
        assert defaults.callbacks == cbs, defaults.callbacks
    """)

def test_star_import_shadows_no_fastai_name_with_other_behaviour():
    run("""
        import fastai.vision.all as fv, fastai_anneal.all as fa
        names = set(getattr(fa, '__all__', [n for n in vars(fa) if not n.startswith('_')]))
        clashes = sorted(n for n in names & set(vars(fv)) if getattr(fa, n) is not getattr(fv, n))
        allowed = {'Accuracy', 'BalancedAccuracy'}  # re-implemented on purpose: fastai's arguments and values (tests/test_metrics.py)
        assert set(clashes) <= allowed, clashes
    """)

def test_the_tuner_alone_brings_the_package_finder():
    "`import fastai_anneal.tune` (as `fit`'s error message suggests) patches `lr_find` too: the range test writes no `_tmp.pth`"
    out = run("""
        from fastai.basics import Learner
        import fastai_anneal.tune
        assert Learner.lr_find.__module__ == 'fastai_anneal.lr_finder', Learner.lr_find.__module__
        print('ok')
    """)
    assert out.strip() == 'ok'
