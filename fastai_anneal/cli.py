"""Console script `fastai-anneal`: `compare` schedules on an embedded dataset, `lr-find`, and `preview` a schedule without training.

Why argparse subcommands around fastcore's `anno_parser`: fastcore's `call_parse` makes one command per function and has
no subcommands. Each command here is a plain function with docments, so `anno_parser` builds its parser (the ecosystem's
help text and `--flag-name` spelling) and a Python caller gets the same function; argparse only adds the dispatch.
"""
import argparse, csv, datetime, inspect, json, math, os, pickle, queue, re, signal, sys, tempfile, time, traceback, warnings
import multiprocessing as mp
from collections.abc import Mapping
from contextlib import closing, contextmanager
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path
import numpy as np, torch
import matplotlib.pyplot as plt
from fastcore.docments import docments
from fastcore.script import anno_parser, CliError
with warnings.catch_warnings():  # scoped, not a process-wide filter: importing this module changes no one's warnings
    # torch 2.15 warns about `torch.jit.script` while fastai imports: noise that would break the one-line error contract
    warnings.filterwarnings('ignore', message=r'.*torch\.jit\.script.* is deprecated', category=FutureWarning)
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.torch_core import set_seed, default_device
    from fastai.callback.schedule import SuggestionMethod
    from fastai.callback.progress import ProgressCallback
from fastcore.basics import noop
from . import fit, lr_finder  # noqa: F401  the `Learner` patches
from .lr_finder import SWEEPS, DEFAULT_SWEEP
from . import tune  # noqa: F401, `Learner.lr_tune`
from .metrics import Accuracy
from .schedules import ANNEALS, WARMUPS, CYCLIC_MODES, get_anneal, sgdr_cycles
from .registry import VARIANTS, Variant, COMPARE_NAMES
from .fit import register_variant, _unregister
from ._checks import check_int, check_lr_or_name, check_device, check_out as _check_out
from .data import check_data, image_roots, get_data
from .plots import schedule_values, plot_schedule, plot_lrs, plot_history, plot_comparison, save_figure, check_size

__all__ = ['UsageError', 'Interrupted', 'sgdr_cycles', 'SCHEDULES', 'DEFAULT_SCHEDULES', 'SUGGESTIONS', 'compare', 'find_lr', 'PREVIEWS',
           'preview', 'PLUGINS', 'main']

class UsageError(ValueError):
    "Bad input to a command: the console script prints it on one line and exits with status 2, before any training"

class Interrupted(KeyboardInterrupt):
    "A command stopped by Ctrl-C, saying what it kept: the console script prints it on one line and exits with status 130"

@contextmanager
def _usage():
    "Turn the argument checks' `ValueError`/`TypeError` and an unusable output folder's `OSError` into `UsageError`"
    try: yield
    except UsageError: raise
    except (ValueError, TypeError, OSError) as e: raise UsageError(str(e)) from None

# ---------------------------------------------------------------- the schedules `compare` runs, each on exactly `N` epochs
def _fit(method:str, epoch_kwargs, lr_arg:str):
    ("`fit(learn, N, lr)` calls `learn.method(**epoch_kwargs(N), lr_arg=lr)`; lr 'auto' tunes it for this call and runs it watched "
     "for a collapse (`Learner.fit_tuned`, fastai's fits too)")
    def fit(learn, n, lr):
        kw = epoch_kwargs(n, len(learn.dls.train))
        if lr == 'auto': learn.fit_tuned(**kw, fit=method)
        else: learn.lr_tune_result = None; getattr(learn, method)(**kw, **{lr_arg: lr})
    return fit

def _n_epoch(n, n_batch=None): return dict(n_epoch=n)
_FASTAI = {  # fastai's own methods, the baselines: name: (fit(learn, N, lr), how it spends the N epochs)
    'one_cycle': (_fit('fit_one_cycle', _n_epoch, 'lr_max'),
                  "fastai fit_one_cycle(N, lr): 25% warmup from lr/25, cosine to lr/1e5; momentum 0.95-0.85-0.95"),
    'flat_cos':  (_fit('fit_flat_cos', _n_epoch, 'lr'), "fastai fit_flat_cos(N, lr): lr for 75% of training, cosine to lr/1e5"),
    'sgdr':      (_fit('fit_sgdr', VARIANTS['fit_sgdr_anneal'].epoch_kwargs, 'lr_max'),  # the cycles of fit_sgdr_anneal's budget
                  "fastai fit_sgdr(*sgdr_cycles(N), lr): cycle_mult=2 cycles filling N epochs, each a cosine from lr to 0"),
}

class _Live(Mapping):
    "A read-only mapping built from the registry each time it is read: a variant registered later (a plugin's) is in it"
    def __init__(self, build): self._build = build
    def __getitem__(self, k): return self._build()[k]
    def __iter__(self): return iter(self._build())
    def __len__(self): return len(self._build())
    def __repr__(self): return repr(self._build())
    def copy(self) -> dict: return self._build()  # a dict, as these names were
    def __or__(self, other): return self._build() | dict(other)
    def __ror__(self, other): return dict(other) | self._build()

def _schedules() -> dict:
    "fastai's baselines, the registry's variants that have a budget, then a constant-lr floor"
    return {**_FASTAI, **{v.name: (_fit(v.method, v.epoch_kwargs, v.lr_arg), v.budget) for v in VARIANTS.values() if v.budget},
            'constant': (_fit('fit', _n_epoch, 'lr'), "fastai fit(N, lr): constant lr")}
SCHEDULES = _Live(_schedules)  # name: (fit(learn, N, lr), how it spends the N epochs)
_NAMED_ONLY = {v.name for v in VARIANTS.values() if not v.in_default_compare}  # run when named: the default run stays short
# the package's own: a plugin's variant runs when named, so the default run stays the one README and BENCHMARKS time
DEFAULT_SCHEDULES = tuple(k for k in SCHEDULES if k != 'constant' and k not in _NAMED_ONLY)

# ---------------------------------------------------------------- argument checks (no side effect)
def _check_schedules(schedules) -> list:
    names = [s.strip() for s in schedules.split(',')] if isinstance(schedules, str) else list(schedules)
    bad = [s for s in names if s not in SCHEDULES]
    if bad or not names: raise ValueError(f"schedules must be a comma-separated list of {', '.join(SCHEDULES)}, got {schedules!r}")
    if len(set(names)) != len(names): raise ValueError(f"schedules must not repeat a name, got {schedules!r}")
    return names

SUGGESTIONS = {'valley': SuggestionMethod.Valley, 'slide': SuggestionMethod.Slide, 'minimum': SuggestionMethod.Minimum,
               'steep': SuggestionMethod.Steep}

def _check_lr(lr):
    "'auto' (each schedule and seed tuned by `Learner.lr_tune`), a suggestion name of `SUGGESTIONS` or a learning rate > 0"
    return check_lr_or_name('lr', lr, ('auto', *SUGGESTIONS), f"'auto', one of {', '.join(map(repr, SUGGESTIONS))}")

def _check_device(device) -> torch.device: return check_device(device, default_device)

def _make_out(out:Path) -> Path:
    "Create `out` and prove it writable, or raise a `ValueError` naming it (root may pass `os.access` where the file system refuses)"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out): pass
    except OSError as e: raise ValueError(f"out must be a folder this process can create and write in, {str(out)!r}: {e.strerror}") from e
    return out

def _new_folders(out:Path) -> list:
    "The folders `_make_out(out)` would create, deepest first"
    return [p for p in (out, *out.absolute().parents) if not p.exists()]

@contextmanager
def _dropped_if_empty(new:list):
    "Remove the `new` folders a command created when it fails or is interrupted before writing in them: no empty output folder"
    try: yield
    except BaseException:
        for p in new:
            if p.is_dir() and not any(p.iterdir()): p.rmdir()
        raise

# ---------------------------------------------------------------- training helpers
@contextmanager
def _threads(data, device):
    ("One torch thread for the embedded datasets on CPU, restored after: their tiny models gain nothing from more, and spin-waiting "
     "threads on shared cores ran 5-20x slower")
    n = torch.get_num_threads()
    if device.type == 'cpu' and not isinstance(data, Path): torch.set_num_threads(1)
    try: yield
    finally: torch.set_num_threads(n)

def _learner(data, seed:int, device, bar:bool=True) -> Learner:
    "A fresh `Learner` for `data` whose weights and shuffling depend on `seed` only; `bar=False` drops the progress bars and epoch tables"
    set_seed(seed)
    dls,model = get_data(data, seed=seed, device=device)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=Accuracy())
    bars = learn.cbs.filter(lambda cb: isinstance(cb, ProgressCallback))  # `bar` decides, whatever `defaults.callbacks` holds
    if bar and not bars: learn.add_cb(ProgressCallback())
    if not bar: learn.remove_cbs(bars); learn.logger = noop
    return learn

def _history(learn) -> dict:
    "Per-epoch `train_loss`, `valid_loss`, `accuracy` of the last fit, from the `Recorder`"
    names = learn.recorder.metric_names[1:-1]
    return {k: [float(v[i]) for v in learn.recorder.values] for i,k in enumerate(names)}

def _suggest(data, device, anneal:str, out:Path):
    "Run `lr_find` once (seed 0) and return fastai's four suggestions; saves `lr_find.png` in `out`"
    learn = _learner(data, 0, device, bar=False)
    sugg = learn.lr_find(anneal=anneal, suggest_funcs=tuple(SUGGESTIONS.values()))
    save_figure(plt.gcf(), out/'lr_find.png')  # the figure `Recorder.plot_lr_sweep` just drew
    return sugg

def _summary(runs:list, names:list) -> list:
    "Per schedule: final valid accuracy mean, spread (sample std, min, max) over seeds, valid loss and time per run"
    res = []
    for nm in names:
        rs = [r for r in runs if r['schedule'] == nm]
        acc = np.array([r['accuracy'] for r in rs])
        res.append(dict(schedule=nm, seeds=len(rs), accuracy_mean=float(acc.mean()),
                        accuracy_std=float(acc.std(ddof=1)) if len(acc) > 1 else 0.,
                        accuracy_min=float(acc.min()), accuracy_max=float(acc.max()),
                        valid_loss_mean=float(np.mean([r['valid_loss'] for r in rs])),
                        time_s_mean=float(np.mean([r['time_s'] for r in rs])),
                        lr_min=float(min(r['lr'] for r in rs)), lr_max=float(max(r['lr'] for r in rs)),
                        tune_cost=float(np.mean([r['time_s']/(r['time_s']-r['tune_s']) for r in rs])),
                        tune_batches=float(np.mean([r['tune_batches'] for r in rs]))))
    return res

def _table(summary:list) -> str:
    "The results table, best mean accuracy marked with `*`"
    best = max(summary, key=lambda s: s['accuracy_mean'])['schedule']
    lr = lambda s: f"{s['lr_min']:.3g}" + (f"-{s['lr_max']:.3g}" if s['lr_max'] != s['lr_min'] else '')
    lines = [f"{'schedule':<13}{'lr':>16}{'accuracy':>9}{'± std':>8}{'min':>8}{'max':>8}{'valid_loss':>12}{'time/run':>10}"
             f"{'tuning':>17}"]
    lines += [f"{s['schedule']:<13}{lr(s):>16}{s['accuracy_mean']:>9.4f}{s['accuracy_std']:>8.4f}{s['accuracy_min']:>8.4f}"
              f"{s['accuracy_max']:>8.4f}{s['valid_loss_mean']:>12.4g}{s['time_s_mean']:>9.1f}s"
              + (f"{s['tune_cost']:>6.2f}x {s['tune_batches']:>4.0f} bat" if s['tune_batches'] else f"{'-':>17}")
              + (' *' if s['schedule'] == best else '') for s in summary]
    return '\n'.join(lines)

def _write_results(out:Path, config:dict, runs:list, summary:list, stem:str='results') -> list:
    "`stem`.csv (a row per run), `stem`.json (config, budgets, runs with per-epoch history, summary)"
    cols = ['schedule', 'seed', 'epochs', 'lr', 'accuracy', 'valid_loss', 'train_loss', 'time_s', 'tune_s', 'tune_batches', 'fit_batches',
            'device']
    with open(out/f'{stem}.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, cols, extrasaction='ignore')
        w.writeheader(); w.writerows(runs)
    doc = dict(config=config, budgets={nm: SCHEDULES[nm][1] for nm in config['schedules']}, summary=summary,
               runs=[{k: v for k,v in r.items() if k != 'lrs'} for r in runs])
    (out/f'{stem}.json').write_text(json.dumps(_json_safe(doc), indent=1, allow_nan=False))
    return [out/f'{stem}.csv', out/f'{stem}.json']

def _json_safe(o):
    "`o` with every float that is not finite (a diverged run's loss) as None: JSON has no NaN, and strict readers refuse Python's"
    if isinstance(o, float): return o if math.isfinite(o) else None
    if isinstance(o, dict): return {k: _json_safe(v) for k,v in o.items()}
    if isinstance(o, (list, tuple)): return [_json_safe(v) for v in o]
    return o

def _write_plots(out:Path, runs:list, names:list, epochs:int, title:str) -> list:
    "schedules.png (recorded lr of seed 0, overlaid), accuracy.png (valid accuracy per epoch), compare.png (both panels)"
    lrs = {nm: next(r['lrs'] for r in runs if r['schedule'] == nm) for nm in names}
    hist = {nm: np.array([r['history']['accuracy'] for r in runs if r['schedule'] == nm]) for nm in names}
    dashed = [nm for nm in names if SCHEDULES[nm][1].startswith('fastai')]  # the baselines: an identical schedule of ours stays visible
    paths = []
    for ax,fname in ((plot_lrs(lrs, n_epoch=epochs, dashed=dashed), 'schedules.png'), (plot_history(hist, dashed=dashed), 'accuracy.png')):
        ax.set_title(title); ax.figure.tight_layout()
        paths.append(save_figure(ax.figure, out/fname))
    return paths + [save_figure(plot_comparison(lrs, hist, title=title, zoom=0.5 if epochs >= 4 else None, dashed=dashed),
                                out/'compare.png')]

_OUTPUTS = ('results.csv', 'results.json', 'schedules.png', 'accuracy.png', 'compare.png', 'lr_find.png',  # what `compare` writes
            'results.partial.csv', 'results.partial.json')  # and an interrupted one beside an earlier run's results

def _check_out_of(out, data) -> Path:
    "`check_out(out)`, refused inside an image-folder `data`: the plots written there would train the next run as images"
    out = _check_out(out)
    if not isinstance(data, Path): return out
    # where images are read (`check_data` walked the folder already), as written (a link inside the folder is followed when its
    # images are listed) and as resolved (`..`, a link to the folder)
    if any(o.is_relative_to(r) for r in image_roots(data) for o,r in ((out.absolute(), r.absolute()), (out.resolve(), r.resolve()))):
        raise ValueError(f"out folder {str(out)!r} is inside the data folder {str(data)!r}, where images are read: its plots would "
                         "become training images of the next run; give an out folder outside it")
    return out

def _left_over(out:Path, ours:set) -> list:
    "The files of `_OUTPUTS` in `out` that this run did not write (`ours`, names): an earlier run's"
    return [f for f in _OUTPUTS if f not in ours and (out/f).exists()]

def _resolve_lr(data, lr, dev, out) -> tuple:
    "`(lr, lr_source)`: a given lr, 'auto' (tuned per run) or a suggestion name (one `lr_find`, seed 0, whose value is used)"
    lr_source = 'given' if not isinstance(lr, str) else 'tuned for each run (Learner.fit_tuned)' if lr == 'auto' else None
    if lr_source is None:
        sugg,name = _suggest(data, dev, DEFAULT_SWEEP, out),lr
        if not np.isfinite(getattr(sugg, name)):
            raise CliError(f"lr_find gave no {name} suggestion (the loss never fell); give --lr a number")
        others = ', '.join(f'{k}={v:.3g}' for k,v in sugg._asdict().items())
        lr,lr_source = float(getattr(sugg, name)),f"lr_find {name}: {others}"
        print(f"lr_find: using the {name} suggestion, lr={lr:.3g} (suggestions: {others}); plot in {out/'lr_find.png'}")
    return lr,lr_source

def _run(data, epochs:int, lr, nm:str, seed:int, dev, bar:bool) -> dict:
    "One run of schedule `nm` on seed `seed`: its result, per-epoch history and recorded lrs"
    fit_fn = SCHEDULES[nm][0]
    learn = _learner(data, seed, dev, bar)
    start = time.perf_counter()
    fit_fn(learn, epochs, lr)
    t = time.perf_counter() - start
    h,tuned = _history(learn),learn.lr_tune_result
    return dict(schedule=nm, seed=seed, epochs=epochs, lr=float(tuned.scale) if tuned else lr, accuracy=h['accuracy'][-1],
                valid_loss=h['valid_loss'][-1], train_loss=h['train_loss'][-1], time_s=t,
                tune_s=tuned.time_s if tuned else 0., tune_batches=tuned.cost if tuned else 0,
                fit_batches=epochs*len(learn.dls.train), history=h, lrs=[float(v) for v in learn.recorder.lrs],
                device=str(learn.dls.device))

_PR_SET_PDEATHSIG = 1  # Linux `prctl` option: a signal for this process when its parent dies

def _die_with_parent(ppid:int):
    "Have the kernel kill this worker if `compare`'s process dies (SIGTERM to its pid, SIGKILL, a timeout), where no `finally` runs"
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError): pass  # not Linux: the check before each run below still stops an orphan
    if os.getppid() != ppid: os._exit(1)  # the parent died before `prctl` took effect

def _pickled_error(e:BaseException) -> bytes:
    ("`(False, e)` pickled, with the worker's traceback as a note; when `e` cannot make the round trip (an exception class whose "
     "`__init__` takes other arguments than its message), a `RuntimeError` with its type, text and traceback instead")
    if hasattr(e, 'add_note'): e.add_note("raised in a compare worker process:\n" + ''.join(traceback.format_exception(e)))
    try:
        msg = pickle.dumps((False, e))
        pickle.loads(msg)
        return msg
    except Exception:
        err = RuntimeError(f"{type(e).__name__}: {e}")
        for n in getattr(e, '__notes__', []): err.add_note(n)
        return pickle.dumps((False, err))

def _worker(tasks, results, ppid:int):
    ("A `compare` worker process: one torch thread, runs from `tasks` until None; each result goes back pickled here, so one that "
     "cannot be pickled is an error the parent raises, not a result lost. Ctrl-C is the parent's to handle: it stops the workers")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # blocked since before the fork: a Ctrl-C then reaches only the parent
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a caller's own SIGTERM handler would keep a stopped worker training
    _die_with_parent(ppid)
    torch.set_num_threads(1)
    for args in iter(tasks.get, None):
        if os.getppid() != ppid: os._exit(1)
        try: msg = pickle.dumps((True, _run(*args, bar=False)))
        except BaseException as e: msg = _pickled_error(e)  # a KeyboardInterrupt raised by the run too: the parent raises it
        results.put(msg)

def _run_parallel(tasks:list, jobs:int):
    ("Yield `_run`'s result for each of `tasks` as `jobs` forked workers finish them; raise a run's error, or say which worker died. "
     "Tasks are handed out a few ahead of the results, so a dead worker is noticed however many runs remain")
    ctx = mp.get_context('fork')  # the workers inherit the registry: a plugin's or a notebook's variants run there too
    todo,results = ctx.SimpleQueue(),ctx.Queue()
    procs,started,left = [ctx.Process(target=_worker, args=(todo, results, os.getpid()), daemon=True) for _ in range(jobs)],[],list(tasks)
    def feed(n:int):
        if not left: return
        for _ in range(min(n, len(left))): todo.put(left.pop(0))
        if not left:  # after the last task, once: each worker stops
            for _ in procs: todo.put(None)
    try:
        # Ctrl-C while forking would run the parent's handler inside fork's hooks, where CPython drops the exception: held back
        # until the workers exist, then raised here as usual
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for p in procs: p.start(); started.append(p)
        finally: signal.pthread_sigmask(signal.SIG_SETMASK, old)
        feed(2*jobs)
        for _ in tasks:
            while True:
                try: msg = results.get(timeout=1); break
                except queue.Empty:
                    dead = [p.exitcode for p in started if p.exitcode not in (None, 0)]
                    if dead:
                        why = ': killed, out of memory?' if dead[0] == -signal.SIGKILL else ''
                        raise RuntimeError(f"a compare worker process died (exit code {dead[0]}{why}); jobs=1 runs in this "
                                           "process") from None
            ok,r = pickle.loads(msg)
            if not ok: raise r
            feed(1)
            yield r
    finally:
        for p in started:
            if p.is_alive(): p.terminate()
        for p in started:
            p.join(5)
            if p.is_alive(): p.kill(); p.join()

def _train_all(data, epochs, lr, names, seeds, dev, bar, runs:list, jobs:int=1) -> list:
    ("A run per schedule and seed at `lr`, each appended to `runs` as it finishes (an interrupt keeps the finished ones); `jobs > 1` "
     "runs them in that many forked processes, a line per finished run instead of the progress bars; `runs` ends in schedule, seed order")
    tasks = [(data, epochs, lr, nm, seed, dev) for nm in names for seed in range(seeds)]
    try:
        if jobs == 1:
            for *a,nm,seed,_ in tasks:
                if bar: print(f"\n{nm}, seed {seed}: {SCHEDULES[nm][1]}", flush=True)
                runs.append(_run(*a, nm, seed, dev, bar))
            return runs
        if bar: print(f"{len(tasks)} runs in {jobs} processes, one torch thread each; a line per finished run:", flush=True)
        with closing(_run_parallel(tasks, jobs)) as done:  # closed on any exit: the workers stop before the error travels on
            for r in done:
                runs.append(r)
                if bar: print(f"[{len(runs)}/{len(tasks)}] {r['schedule']}, seed {r['seed']}: accuracy {r['accuracy']:.4f} at lr "
                              f"{r['lr']:.3g}, {r['time_s']:.1f} s", flush=True)
    finally: runs.sort(key=lambda r: (names.index(r['schedule']), r['seed']))
    return runs

def _config(data, epochs, lr, lr_source, names, seeds, runs, jobs) -> dict:
    "The run's settings and versions, results.json's `config`"
    return dict(data=str(data), epochs=epochs, lr=lr, lr_source=lr_source, schedules=names, seeds=seeds, jobs=jobs,
                device=runs[0]['device'], date=datetime.datetime.now().isoformat(timespec='seconds'), torch=torch.__version__,
                fastai=__import__('fastai').__version__)

MAX_JOBS = 8  # `compare`'s default processes at most: each working one adds about 0.25 GB (its proportional set size)

def _check_jobs(jobs, data, dev, n_runs:int) -> int:
    ("Processes for `compare`'s runs: `jobs`, or if None as many as the CPU has cores for (at most `MAX_JOBS` and the number of runs) "
     "on the embedded datasets, and 1 on a GPU or an image folder, whose runs use the device or many threads themselves")
    serial = (dev.type != 'cpu' or isinstance(data, Path) or sys.platform != 'linux' or 'fork' not in mp.get_all_start_methods()
              or mp.current_process().daemon)  # a daemonic process (a `multiprocessing.Pool` worker) may not have children
    if jobs is None: return 1 if serial else max(1, min(len(os.sched_getaffinity(0)), MAX_JOBS, n_runs))
    jobs = check_int('jobs', jobs)
    if jobs > 1 and serial:
        raise ValueError(f"jobs must be 1 here (runs in parallel need an embedded dataset on the CPU, Linux, and a process that may "
                         f"have children, not a daemonic one), got {jobs}")
    return min(jobs, n_runs)  # no idle workers

def _check_tunable(data, epochs:int, dev):
    "Every run of `compare` spends `epochs` epochs: with `--lr auto` each must be long enough for the tuner's trials"
    nb = len(get_data(data, 0, dev)[0].train)
    if epochs*nb < tune.MIN_FIT:
        raise ValueError(f"epochs must be >= {math.ceil(tune.MIN_FIT/nb)} with --lr auto on this data ({nb} training batches per "
                         f"epoch; the tuner's trials need fits of {tune.MIN_FIT} batches), got {epochs}; or give --lr a number or a "
                         f"suggestion name")

# ---------------------------------------------------------------- commands
def compare(
    data:str='mnist1d',      # 'mnist1d' (the paper's CNN), 'digits' (sklearn 8x8, a small CNN) or an image folder (resnet18, random init)
    epochs:int=30,           # Epochs of every run: each schedule spends exactly this budget
    # 'auto': each schedule and seed at the lr `Learner.lr_tune` picks for it; or one lr_find (seed 0) and its suggestion for
    # every run, fastai's recipe: 'valley', 'slide', 'minimum', 'steep'; or a learning rate
    lr:str='auto',
    schedules:str=','.join(DEFAULT_SCHEDULES),  # Comma-separated names of `SCHEDULES` (`--help` lists them)
    seeds:int=3,             # Runs per schedule, seeds 0..seeds-1 (weight init, shuffling, random split)
    out:Path=Path('runs'),   # Folder for results.csv, results.json, schedules.png, accuracy.png, compare.png
    device:str='auto',       # 'auto' (a GPU when present), 'cpu' or 'cuda'
    bar:bool=True,           # Show fastai's progress bars and epoch tables (`--no-bar`: hide them); a line per run with `jobs` > 1
    # Runs at once, each in its own process with one torch thread (Linux, the embedded datasets on the CPU); default: one per
    # CPU core, at most 8 and the number of runs, and 1 on a GPU or an image folder
    jobs:int=None,
) -> dict:
    "Train the same model once per schedule and seed on the same epoch budget; print a results table, save CSV, JSON and plots"
    with _usage():
        data,epochs,seeds = check_data(data),check_int('epochs', epochs),check_int('seeds', seeds)
        names,lr,dev,out = _check_schedules(schedules),_check_lr(lr),_check_device(device),_check_out_of(out, data)
        jobs = _check_jobs(jobs, data, dev, len(names)*seeds)
        if lr == 'auto': _check_tunable(data, epochs, dev)
        new = _new_folders(out)
        _make_out(out)
    runs,asked = [],lr
    with _dropped_if_empty(new):
        try:
            with _threads(data, dev):
                lr,lr_source = _resolve_lr(data, asked, dev, out)
                _train_all(data, epochs, lr, names, seeds, dev, bar, runs, jobs)
        except KeyboardInterrupt:  # Ctrl-C: the finished runs are kept, marked partial
            msg = f"interrupted after {len(runs)} of {len(names)*seeds} runs"
            if runs:
                done = [nm for nm in names if any(r['schedule'] == nm for r in runs)]
                config = {**_config(data, epochs, lr, lr_source, names, seeds, runs, jobs), 'interrupted': msg}
                kept = (out/'results.json').exists() or (out/'results.csv').exists()  # an earlier run's results are never overwritten
                stem = 'results.partial' if kept else 'results'
                again = (out/f'{stem}.json').exists()  # an earlier interrupted run's partial results (a finished run's are kept)
                files = _write_results(out, config, runs, _summary(runs, done), stem)
                msg += ('; wrote ' + ', '.join(map(str, files)) + ' (partial' + (", beside an earlier run's results" if kept else '')
                        + (", replacing an earlier interrupted run's" if kept and again else '') + ')')
                old = _left_over(out, {p.name for p in files})
                if old: msg += f"; left in {out} from an earlier run, not this one's: {', '.join(old)}"
            raise Interrupted(msg) from None
    summary = _summary(runs, names)
    config = _config(data, epochs, lr, lr_source, names, seeds, runs, jobs)
    lr_txt = 'lr tuned per run' if lr == 'auto' else f"lr {lr:.3g}" + ('' if lr_source == 'given' else f" ({lr_source.split(':')[0]})")
    name = data.resolve().name if isinstance(data, Path) else data  # '.' by its folder's name
    title = f"{name}, {epochs} epoch{'s'*(epochs != 1)}, {lr_txt}, {seeds} seed{'s'*(seeds > 1)}"
    replaced = (out/'results.json').exists()
    files = _write_results(out, config, runs, summary) + _write_plots(out, runs, names, epochs, title)
    print(f"\nFinal valid accuracy over {seeds} seed{'s'*(seeds > 1)} ({title}):\n{_table(summary)}")
    print('Wrote ' + ', '.join(map(str, files)) + (" (replacing an earlier run's)" if replaced else ''))
    ours = {p.name for p in files} | ({'lr_find.png'} if lr_source.startswith('lr_find') else set())
    old = _left_over(out, ours)
    if old: print(f"Left in {out} from an earlier run, not this one's: {', '.join(old)}")
    return dict(config=config, summary=summary, runs=runs)

def find_lr(
    data:str='mnist1d',      # 'mnist1d', 'digits' or an image folder (as `compare`)
    anneal:str=DEFAULT_SWEEP,  # Sweep shape: 'exp' (fastai's), 'cos' (log-space half cosine), 'lin', 'sqrt' or 'poly'
    out:Path=Path('runs'),   # Folder for lr_find.png
    device:str='auto',       # 'auto' (a GPU when present), 'cpu' or 'cuda'
):
    "Run the LR range test on a fresh model (seed 0), print the four fastai suggestions and save the plot"
    with _usage():
        data,dev = check_data(data),_check_device(device)
        out = _check_out_of(out, data)
        get_anneal(anneal, 'anneal', SWEEPS)
        new = _new_folders(out)
        _make_out(out)
    with _dropped_if_empty(new), _threads(data, dev): sugg = _suggest(data, dev, anneal, out)
    print(f"lr_find ({anneal} sweep) on {data}:")
    for k,v in sugg._asdict().items(): print(f"  {k:<8}{v:.3g}")
    print(f"Wrote {out/'lr_find.png'}")
    return sugg

def _previews() -> dict: return {m: v.builder for m,v in VARIANTS.items() if not v.two_phase}
PREVIEWS = _Live(_previews)  # method: its builder, for every one-phase variant

_FROM_PREVIEW = ('n_epoch', 'n_batch')  # builder arguments `preview` fills from its own `epochs` and `n_batch`

def _preview_kwargs(v, kwargs:dict) -> dict:
    "`kwargs` completed with what the builder requires and the fit would take from the `Learner` (lr 1e-3) or its first example"
    req = [k for k,p in v.builder_params.items() if p.default is inspect.Parameter.empty and k not in (*kwargs, *_FROM_PREVIEW)]
    return {**{k: 1e-3 if k == (v.builder_lr or v.lr_arg) else v.examples[0][k] for k in req}, **kwargs}

def preview(
    variant:str,             # A fit variant, one of `PREVIEWS` (`--help` lists them)
    epochs:int=None,         # Epochs (5 if None); a variant counting cycles (fit_sgdr_anneal) takes them from its arguments
    n_batch:int=100,         # Training batches per epoch
    out:Path=Path('runs'),   # Folder for preview_<variant>.png
    **kwargs,                # Arguments of the variant's builder in `schedules.py` (lr_max, pct_warmup, anneal...)
) -> dict:
    "Plot the schedule a fit variant would follow, from its pure builder in `schedules.py`, without training; returns the values per batch"
    with _usage():
        if variant not in PREVIEWS: raise ValueError(f"variant must be one of {', '.join(PREVIEWS)}, got {variant!r}")
        v = VARIANTS[variant]
        kwargs = _preview_kwargs(v, kwargs)
        if v.n_epoch_of is not None:
            if epochs is not None: raise ValueError(f"epochs of {variant} follow from {', '.join(v.epoch_args)}: give those instead")
            epochs = v.n_epoch(**kwargs)
        epochs,n_batch = check_size(5 if epochs is None else epochs, n_batch, ('epochs', 'n_batch'))
        sizes = {k: a for k,a in zip(_FROM_PREVIEW, (epochs, n_batch)) if k in inspect.signature(v.builder).parameters}
        scheds = fit._check_scheds(v.builder(**kwargs, **sizes), '--' + (v.builder_lr or v.lr_arg).replace('_', '-'))  # as the fit would
        out = _make_out(_check_out(out))
    args = ', '.join(f"{k}={v}" for k,v in kwargs.items())
    path = save_figure(plot_schedule(scheds, epochs, n_batch, title=f"{variant}({args})"), out/f'preview_{variant}.png')
    vals = schedule_values(scheds, epochs, n_batch)
    print(f"{variant}({args}): {epochs} epochs x {n_batch} batches")
    print(f"{'epoch':<7}" + ''.join(f"{k + ' (start)':>14}" for k in vals))
    step = max(1, epochs // 20)
    for e in range(0, epochs, step): print(f"{e:<7}" + ''.join(f"{np.ravel(v[e*n_batch])[-1]:>14.4g}" for v in vals.values()))
    print(f"{'end':<7}" + ''.join(f"{np.ravel(v[-1])[-1]:>14.4g}" for v in vals.values()))
    print(f"Wrote {path}")
    return vals

# ---------------------------------------------------------------- the console script
class _Parser(argparse.ArgumentParser):
    "argparse with a one-line error (status 2): the usage is one `--help` away"
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `--lr -1e-3` is a value, as `-0.001` is (argparse's pattern has no exponent): it reaches the check that names the range
        self._negative_number_matcher = re.compile(r'^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$')
    def error(self, message): self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

def _add_builder_args(p, v):
    "One flag per argument of variant `v`'s builder, with its docment as help; unset flags keep the builder's defaults"
    defaults = _preview_kwargs(v, {})
    for k,d in docments(v.builder, full=True, returns=False).items():  # annotations stay strings: `str|callable` cannot be evaluated
        if k in _FROM_PREVIEW: continue  # --epochs and --n-batch
        default = defaults[k] if d.default is inspect.Parameter.empty else d.default
        kw = dict(default=argparse.SUPPRESS, help=f"{d.docment} (default: {default})")
        if k in ('anneal', 'warmup'): kw.update(choices=list(WARMUPS if k == 'warmup' else ANNEALS))
        elif k == 'mode': kw.update(choices=list(CYCLIC_MODES))
        elif k == 'moms': kw.update(type=float, nargs=3, metavar=('START', 'PEAK', 'END'))
        elif d.anno in (list, 'list'): kw.update(type=int, nargs='+', metavar='EPOCH')  # milestones
        else: kw.update(_flag_kwargs(d.anno))  # --staircase / --no-staircase, --step-size-up (int)...
        p.add_argument(f"--{k.replace('_', '-')}", dest=k, **kw)

def _flag_kwargs(anno) -> dict:
    ("How a flag parses a builder argument annotated `anno` (a type, or its source: 'int|None', 'Optional[str]', \"Literal['a', 'b']\"): "
     "an int, a string, one of a literal's strings, --x / --no-x for a bool, else a float")
    src = (anno if isinstance(anno, str) else anno.__name__ if isinstance(anno, type) else str(anno)).replace('typing.', '')
    lit = re.fullmatch(r"\s*Literal\[(.*)\]\s*", src)
    vals = [a or b for a,b in re.findall(r"'([^']*)'|\"([^\"]*)\"", lit[1])] if lit else []
    if vals: return dict(choices=vals)
    parts = {t.strip() for t in re.split(r"[|,\[\]]", src)} - {'', 'None', 'NoneType', 'Optional', 'Union'}
    if parts == {'bool'}: return dict(action=argparse.BooleanOptionalAction)
    t = int if parts == {'int'} else str if parts == {'str'} else float
    return dict(type=t, metavar=f"({t.__name__})")

def _without_hidden(p:argparse.ArgumentParser) -> argparse.ArgumentParser:
    "`p` less fastcore's hidden `--pdb` and `--xtra`, which these commands do not honour: given, they are unrecognized arguments"
    for a in [a for a in p._actions if a.dest in ('pdb', 'xtra')]:
        p._remove_action(a)
        for g in p._action_groups:
            if a in g._group_actions: g._group_actions.remove(a)
        for o in a.option_strings: p._option_string_actions.pop(o, None)
    return p

def _nonempty(type_, s:str):
    "`type_(s)` for a path flag, refusing '' (which `Path` reads as the current folder): argparse names the flag"
    if not s.strip(): raise argparse.ArgumentTypeError("an empty path; give a name or a folder, '.' for the current one")
    return type_(s)

def _parser() -> _Parser:
    "`fastai-anneal` with subcommands compare, lr-find and preview (itself with one subcommand per fit variant)"
    # fastcore's width, epilog kept as written
    fmt = type('_Fmt', (argparse.RawDescriptionHelpFormatter, anno_parser(compare).formatter_class), {})
    top = _Parser(prog='fastai-anneal', formatter_class=fmt,
                  description="Learning-rate annealing for fastai: compare schedules, find an lr, preview a schedule.")
    sub = top.add_subparsers(dest='command', required=True, metavar='COMMAND')
    budgets = "how each schedule spends the N epochs of --epochs:\n" + '\n'.join(f"  {k:<12} {v}" for k,(_,v) in SCHEDULES.items())
    for name,f,epilog in (('compare', compare, budgets), ('lr-find', find_lr, None)):
        p = sub.add_parser(name, parents=[_without_hidden(anno_parser(f))], add_help=False, help=f.__doc__, description=f.__doc__,
                           epilog=epilog, formatter_class=fmt)
        for a in p._actions:  # the choices come from the registry, not from the docment
            if a.dest == 'schedules': a.help = f"Comma-separated, from: {', '.join(SCHEDULES)} (default: {a.default})"
            # '' would be the current folder: a results folder there, or its images trained on as a dataset
            elif a.dest in ('data', 'out'): a.type = partial(_nonempty, a.type)
            elif a.dest == 'anneal': a.choices = list(SWEEPS)  # a function cannot be given on a command line
            elif a.dest == 'bar': a.help = a.help.replace('(default: True)', '(default: shown)')
    p = sub.add_parser('preview', help=preview.__doc__, description=preview.__doc__, formatter_class=fmt)
    variants = p.add_subparsers(dest='variant', required=True, metavar='VARIANT')
    for name,build in PREVIEWS.items():
        _preview_args(variants.add_parser(name, help=build.__doc__, description=build.__doc__, formatter_class=fmt), VARIANTS[name])
    return top

def _preview_args(vp, v) -> argparse.ArgumentParser:
    "The flags of `preview <variant>` on `vp`: its size and folder, then one per argument of `v`'s builder"
    # a variant counting cycles takes no --epochs: given, `preview` says which arguments fix them
    vp.add_argument('--epochs', type=int, **(dict(default=5, metavar='(int)', help="Epochs (default: 5)")
                                             if v.n_epoch_of is None else dict(default=None, help=argparse.SUPPRESS)))
    vp.add_argument('--n-batch', dest='n_batch', type=int, default=100, metavar='(int)', help="Training batches per epoch (default: 100)")
    vp.add_argument('--out', type=partial(_nonempty, Path), default=Path('runs'), metavar='(path)',
                    help="Folder for preview_<variant>.png (default: runs)")
    _add_builder_args(vp, v)
    return vp

COMMANDS = {'compare': compare, 'lr-find': find_lr, 'preview': preview}

def _flag_names(msg:str) -> str:
    "Say `--pct-warmup` where a check says `pct_warmup`: the user typed the flag"
    flags = {k for f in (compare, find_lr, preview, *PREVIEWS.values()) for k in inspect.signature(f).parameters} - {'variant', 'kwargs'}
    flag = lambda m: '--' + m[1].replace('_', '-') if m[1] in flags else m[1]
    def names(part:str, first:bool) -> str:
        part = re.sub(r"\bn_epoch\b", 'epochs', part)  # a variant's `n_epoch` is the command's --epochs
        if first: part = re.sub(r"^(\w+)(?=[\s\[.])", flag, part)
        part = re.sub(r"(?<![-\w])([a-z]\w*)(?=[=*])", flag, part)  # a plain word given a value (`milestones=[3]`, `epochs*...`)
        part = re.sub(r"(\b[a-z]\w*_\w+ or )([a-z]\w*)\b", lambda m: m[1] + flag((None, m[2])), part)  # 'give step_size or milestones'
        return re.sub(r"(?<![-\w])([a-z]\w*_\w+)\b", flag, part)  # further in, only names with an underscore: a plain word is prose
    parts = re.split(r"('[^']*'|\"[^\"]*\")", msg)  # what the user typed comes back quoted (a path, a value): left as it is
    return ''.join(p if i % 2 else names(p, i == 0) for i,p in enumerate(parts))

# ---------------------------------------------------------------- plugins
_DESTS = ('command', 'variant')  # what the parser itself parses into: a builder argument of that name would be read as it
PLUGINS = 'fastai_anneal.variants'  # entry-point group whose entries the console script loads before it parses its arguments

def _variants_of(obj) -> list:
    "What a plugin's entry point gave: a `Variant`, a list or tuple of them, a module, or a function returning None or either"
    if callable(obj) and not isinstance(obj, (Variant, type)): obj = obj()
    vs = list(obj) if isinstance(obj, (list, tuple)) else [] if obj is None or inspect.ismodule(obj) else [obj]
    for v in vs:
        if not isinstance(v, Variant): raise TypeError(f"it gave a {type(v).__name__}, not a Variant")
    return vs

def _check_console(v:Variant):
    "Refuse what the console script cannot offer: a `compare` name of its own, or a builder whose `preview` flags cannot be built"
    if v.budget and v.name in COMPARE_NAMES:
        raise ValueError(f"Variant {v.method!r}: compare already has a schedule named {v.name!r}")
    clash = [k for k in v.builder_params if k in _DESTS]
    if clash: raise ValueError(f"Variant {v.method!r}: builder argument(s) {clash} are the console script's own ({', '.join(_DESTS)})")
    _preview_args(_Parser(prog='check'), v)  # a builder argument named like a flag (--out, --epochs), or a builder without source

_LOADED = {}  # (entry point name, value): the variants it added; each entry point is loaded once per process

def _load_plugins(group:str=PLUGINS) -> list:
    ("Load every entry point of `group`: a module that registers its variants on import, a `Variant`, a list of them, or a function "
     "that registers or returns them. A plugin adds all its variants or none: one that fails is named on stderr and skipped, and "
     "the package's own commands still run")
    loaded = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if (ep.name, ep.value) in _LOADED: loaded.append(ep.name); continue
        before = dict(VARIANTS)
        new = lambda: [v for m,v in VARIANTS.items() if m not in before]  # what this plugin added (a module: as it was imported)
        try:
            given = _variants_of(ep.load())
            for v in [*new(), *given]: _check_console(v)
            for v in given:
                if v.method not in VARIANTS or VARIANTS[v.method] != v: register_variant(v)  # equal: registered as imported
        except Exception as e:
            for v in new(): _unregister(v)
            print(f"fastai-anneal: plugin {ep.name!r} ({ep.value}) skipped: {type(e).__name__}: {e}", file=sys.stderr)
        else: _LOADED[(ep.name, ep.value)] = new(); loaded.append(ep.name)
    return loaded

def main(argv:list=None,  # Command-line arguments; `sys.argv[1:]` if None
) -> int:
    ("Entry point of `fastai-anneal`: parse `argv` (`sys.argv[1:]` if None), run the command; exit status 2 on bad input, 1 on a failed "
     "run, 130 on Ctrl-C")
    # files only: a console script needs no GUI toolkit; a notebook keeps its inline plots
    if 'IPython' not in sys.modules: plt.switch_backend('Agg')
    _load_plugins()  # their variants join `compare --schedules` and `preview`
    top = _parser()
    ns,extra = top.parse_known_args(argv)
    args = vars(ns)
    command = args.pop('command')
    if extra:  # the subcommand's `--help` lists its flags; the top one's does not
        where = ' '.join([top.prog, command, *([args['variant']] if command == 'preview' else [])])
        top.exit(2, f"{where}: error: unrecognized arguments: {' '.join(extra)} (see {where} --help)\n")
    try: COMMANDS[command](**args)
    except UsageError as e:
        print(f"fastai-anneal {command}: error: {_flag_names(str(e))}", file=sys.stderr)
        return 2
    except CliError as e:
        print(f"fastai-anneal {command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C: one line, and what was kept, instead of a traceback
        print(f"fastai-anneal {command}: {e if isinstance(e, Interrupted) else 'interrupted'}", file=sys.stderr)
        return 130
    return 0

if __name__ == '__main__': sys.exit(main())
