"The `fastai-anneal` console script, run as a user runs it: in a process of its own, checking its exit status, output and files."
import csv, json, math, os, signal, subprocess, sys
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image

CLI = [sys.executable, '-m', 'fastai_anneal.cli']  # the console script's `main`, without depending on PATH
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'

def run_cli(*args, cwd=None, timeout=300):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout)

def check_png(path):
    path = Path(path)
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
    with Image.open(path) as im:
        im.verify()
        assert im.size[0] >= 200 and im.size[1] >= 150, im.size

def _tree(root): return sorted(str(p.relative_to(root)) for p in Path(root).rglob('*'))

# ---------------------------------------------------------------- bad input: one line on stderr, status 2, nothing written
def _image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.RandomState(seed).randint(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)

BAD = ['unknown schedule', 'unknown data name', 'missing folder', 'empty folder', 'one class', 'epochs < 1', 'epochs not int', 'seeds < 1',
       'lr negative', 'lr word', 'device', 'out under a file', 'out is a file', 'lr-find anneal', 'lr-find data', 'preview pct',
       'preview cycles', 'preview variant', 'unknown command', 'too short to tune', 'lr negative exp', 'preview negative', 'unknown flag',
       'unknown preview flag', 'preview epochs of cycles', 'jobs < 1', 'jobs with a folder', 'empty data', 'empty out', 'empty preview out']

def _bad_cases(root:Path) -> dict:
    "name: (argv, text the error line must contain); the folders they need are made under `root`"
    (root/'empty').mkdir()
    for i in range(3): _image(root/'one_class'/'cats'/f'{i}.png', i)
    for i in range(10): _image(root/'two_classes'/('cats', 'dogs')[i % 2]/f'{i}.png', i)
    (root/'a_file').write_text('not a folder')
    out = root/'out'  # every case points here: it must never be created
    return {
        'unknown schedule':   (['compare', '--schedules', 'one_cycle,warp_speed', '--out', out], 'warp_speed'),
        'unknown data name':  (['compare', '--data', 'mnist', '--out', out], "'mnist1d', 'digits'"),
        'missing folder':     (['compare', '--data', root/'nope', '--out', out], 'does not exist'),
        'empty folder':       (['compare', '--data', root/'empty', '--out', out], 'no image files'),
        'one class':          (['compare', '--data', root/'one_class', '--out', out], 'at least 2 classes'),
        'epochs < 1':         (['compare', '--epochs', '0', '--out', out], '--epochs must be >= 1, got 0'),
        'epochs not int':     (['compare', '--epochs', 'ten', '--out', out], "invalid int value: 'ten'"),
        'seeds < 1':          (['compare', '--seeds', '0', '--out', out], '--seeds must be >= 1'),
        'lr negative':        (['compare', '--lr', '-0.001', '--out', out], '--lr must be in (0, inf), got -0.001'),
        'lr word':            (['compare', '--lr', 'fast', '--out', out], "--lr must be 'auto', one of 'valley'"),
        'device':             (['compare', '--device', 'tpu', '--out', out], "'auto', 'cpu' or 'cuda'"),
        'out under a file':   (['compare', '--out', root/'a_file'/'out'], 'is a file'),
        'out is a file':      (['compare', '--out', root/'a_file'], 'is a file'),
        'lr-find anneal':     (['lr-find', '--anneal', 'spiral', '--out', out], 'spiral'),
        'lr-find data':       (['lr-find', '--data', root/'empty', '--out', out], 'no image files'),
        'preview pct':        (['preview', 'fit_cos_anneal', '--pct-warmup', '1.5', '--out', out], '--pct-warmup must be in [0, 1), got 1.5'),
        'preview cycles':     (['preview', 'fit_sgdr_anneal', '--n-cycles', '0', '--out', out], '--n-cycles must be >= 1'),
        'preview variant':    (['preview', 'fit_warp', '--out', out], "invalid choice: 'fit_warp'"),
        'unknown command':    (['train'], "invalid choice: 'train'"),
        'too short to tune':  (['compare', '--data', 'digits', '--epochs', '1', '--out', out],  # 23 batches: the tuner needs 40
                               '--epochs must be >= 2 with --lr auto on this data (23 training batches per epoch'),
        'lr negative exp':    (['compare', '--lr', '-1e-3', '--out', out], '--lr must be in (0, inf), got -0.001'),  # not a flag
        'preview negative':   (['preview', 'fit_cos_anneal', '--lr-max', '-2E-2', '--out', out], '--lr-max must be in (0, inf), got -0.02'),
        'unknown flag':       (['compare', '--bogus', '1', '--out', out],
                               'fastai-anneal compare: error: unrecognized arguments: --bogus 1 (see fastai-anneal compare --help)'),
        'unknown preview flag': (['preview', 'fit_flat_anneal', '--lr-max', '1', '--out', out],  # fit_flat_anneal's lr is --lr
                                 'unrecognized arguments: --lr-max 1 (see fastai-anneal preview fit_flat_anneal --help)'),
        'preview epochs of cycles': (['preview', 'fit_sgdr_anneal', '--epochs', '3', '--out', out],
                                     '--epochs of fit_sgdr_anneal follow from --n-cycles, --cycle-len: give those instead'),
        'jobs < 1':           (['compare', '--jobs', '0', '--out', out], '--jobs must be >= 1, got 0'),
        'jobs with a folder': (['compare', '--data', root/'two_classes', '--jobs', '2', '--lr', '1e-3', '--out', out],
                               '--jobs must be 1 here (runs in parallel need an embedded dataset on the CPU'),
        # '' is `Path('.')`: `--data "$DATA"` with $DATA unset trained on the current folder's images (review, seventeenth session)
        'empty data':         (['compare', '--data', '', '--out', out], "argument --data: an empty path; give a name or a folder"),
        'empty out':          (['lr-find', '--out', ''], "argument --out: an empty path"),
        'empty preview out':  (['preview', 'fit_cos_anneal', '--out', ' '], "argument --out: an empty path"),
    }

HELP = {
    'top':     (['--help'], ['compare', 'lr-find', 'preview']),
    'compare': (['compare', '--help'], ['--data', '--epochs', '--lr', '--schedules', '--seeds', '--out', '--device', '--no-bar', '--jobs',
                'sgdr_cycles(N)']),
    'lr-find': (['lr-find', '--help'], ['--data', '--anneal', '--out', '--device']),
    'preview': (['preview', '--help'], ['fit_cos_anneal', 'fit_sgdr_anneal', 'fit_flat_anneal']),
    'variant': (['preview', 'fit_flat_anneal', '--help'], ['--epochs', '--lr', '--pct-start', '--anneal', '{cos,lin,exp,sqrt,poly}']),
}

# Each case runs the console script's `main` in a process of its own, forked from one interpreter that imported the CLI once
# (fastai's import is ~4 s of CPU a process: 32 subprocesses were the slowest setup of the suite). The child takes its own
# working directory, `sys.argv`, stdout and stderr, runs `sys.exit(main())` as the console script does, and ends as the
# interpreter would: its non-daemon threads joined, its `atexit` handlers run, a non-int exit code printed. Each child has
# `CASE_TIMEOUT` seconds (then SIGALRM ends it, status -14), and the driver runs in a session of its own that the fixture kills
# if it fails, so no case outlives the test. The cases in `WHOLE` run as real subprocesses: an import that printed anything
# on stderr or stdout would break the one-line contract there.
CASE_TIMEOUT = 120
_FORKED = r"""
import atexit, json, os, signal, sys, threading, traceback
cases,limit = json.loads(sys.stdin.read())
from fastai_anneal import cli
codes = {}
for name,(argv,cwd,out,err) in cases.items():
    pid = os.fork()
    if pid == 0:
        signal.alarm(limit)
        code = 1
        try:
            os.chdir(cwd)
            for fd,path in ((1, out), (2, err)): os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.argv = ['fastai-anneal', *argv]
            try: raise SystemExit(cli.main())
            except SystemExit as e:  # as the interpreter turns it into a status
                code = 0 if e.code is None else e.code
                if not isinstance(code, int): print(code, file=sys.stderr); code = 1
            threading._shutdown(); atexit._run_exitfuncs()
        except BaseException: traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush(); os._exit(code & 0xFF)
    codes[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps(codes))
"""
WHOLE = ('unknown schedule', 'help top')

def run_forked(cases:dict, tmp:Path, cwd:Path) -> dict:
    "`{name: argv}` run as `run_cli` runs them, each in a process forked from one that imported the CLI: `{name: CompletedProcess}`"
    spec = {k: ([str(a) for a in argv], str(cwd), str(tmp/f'{i}.out'), str(tmp/f'{i}.err')) for i,(k,argv) in enumerate(cases.items())}
    p = subprocess.Popen([sys.executable, '-c', _FORKED], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=cwd, start_new_session=True)
    try: out,err = p.communicate(json.dumps([spec, CASE_TIMEOUT]), timeout=CASE_TIMEOUT*len(spec) + 60)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert p.returncode == 0, err[-3000:]
    codes = json.loads(out.splitlines()[-1])
    hung = [f"{k}: {' '.join(spec[k][0])}" for k,c in codes.items() if c == -signal.SIGALRM]
    assert not hung, f"cases still running after {CASE_TIMEOUT} s: {hung}"
    return {k: subprocess.CompletedProcess(CLI + a, codes[k], Path(o).read_text(), Path(e).read_text()) for k,(a,_,o,e) in spec.items()}

@pytest.fixture(scope='module')
def quick_runs(tmp_path_factory):
    "Every bad-input and `--help` case: `{name: (result, expected, root, before)}`"
    root = tmp_path_factory.mktemp('bad')
    cases = _bad_cases(root)
    assert list(cases) == BAD
    cases.update({f'help {k}': v for k,v in HELP.items()})
    cwd = root/'cwd'; cwd.mkdir()
    before = _tree(root)
    whole = WHOLE if hasattr(os, 'fork') else tuple(cases)  # no fork (Windows): every case a subprocess
    forked = {k: argv for k,(argv,_) in cases.items() if k not in whole}
    with ThreadPoolExecutor(4) as ex:
        futs = {k: ex.submit(run_cli, *cases[k][0], cwd=cwd) for k in whole}
        res = run_forked(forked, tmp_path_factory.mktemp('streams'), cwd) if forked else {}
        res.update({k: f.result() for k,f in futs.items()})
    return {k: (res[k], cases[k][1], root, before) for k in cases}

@pytest.mark.parametrize('case', BAD)
def test_bad_input(quick_runs, case):
    r,expected,root,before = quick_runs[case]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert 'Traceback' not in r.stderr and 'Traceback' not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith('fastai-anneal') and 'error' in lines[0], lines[0]
    assert expected in lines[0], lines[0]
    assert r.stdout == ''  # no progress bar: it stopped before any training
    assert _tree(root) == before  # nothing written: no out folder, no models/ in the working directory

@pytest.mark.parametrize('case', HELP)
def test_help(quick_runs, case):
    r,expected,*_ = quick_runs[f'help {case}']
    assert r.returncode == 0 and r.stderr == '', r.stderr
    for e in expected: assert e in r.stdout, (e, r.stdout)

# ---------------------------------------------------------------- the commands
def _table(stdout:str) -> dict:
    "The results table `compare` prints: {schedule: {column: float}}"
    lines = stdout.splitlines()
    i = next(i for i,l in enumerate(lines) if l.startswith('schedule ') and 'accuracy' in l)
    rows = {}
    for l in lines[i+1:]:
        if not l.strip() or l.startswith('Wrote'): break
        nm,lr,acc,std,lo,hi,loss,t,*tuning = l.replace('*', '').split()
        rows[nm] = dict(lr=lr, accuracy=float(acc), std=float(std), min=float(lo), max=float(hi), valid_loss=float(loss),
                        time=float(t.rstrip('s')), tuning=' '.join(tuning))
    return rows

def test_compare(tmp_path):
    "A short `compare` (1 epoch, 2 schedules, 2 seeds, `--lr auto`): the table, results.csv, results.json and the PNGs agree"
    out = tmp_path/'res'
    r = run_cli('compare', '--epochs', 1, '--seeds', 2, '--schedules', 'one_cycle,cos_anneal', '--out', out, '--device', 'cpu', '--jobs', 2,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Traceback' not in r.stderr
    assert '4 runs in 2 processes' in r.stdout and 'train_loss' not in r.stdout  # in parallel: a line per run, no fastai bars
    done = sorted(l.split('] ')[1].split(':')[0] for l in r.stdout.splitlines() if l.startswith('['))
    assert done == ['cos_anneal, seed 0', 'cos_anneal, seed 1', 'one_cycle, seed 0', 'one_cycle, seed 1'], r.stdout
    table = _table(r.stdout)
    assert list(table) == ['one_cycle', 'cos_anneal']
    for row in table.values():
        assert 0 <= row['min'] <= row['accuracy'] <= row['max'] <= 1 and row['std'] >= 0
        assert math.isfinite(row['valid_loss']) and row['valid_loss'] > 0 and row['time'] > 0
    with open(out/'results.csv') as f: runs = list(csv.DictReader(f))
    assert [(d['schedule'], int(d['seed'])) for d in runs] == [('one_cycle', 0), ('one_cycle', 1), ('cos_anneal', 0), ('cos_anneal', 1)]
    res = json.loads((out/'results.json').read_text())
    assert res['config']['lr'] == 'auto' and 'fit_tuned' in res['config']['lr_source']
    for d,j in zip(runs, res['runs']):  # each run tuned its own lr, at a cost the table reports
        assert 1e-7 < float(d['lr']) < 10 and int(d['tune_batches']) > 0 and 0 < float(d['tune_s']) < float(d['time_s'])
        assert int(d['epochs']) == 1
        assert 0 <= float(d['accuracy']) <= 1 and float(d['accuracy']) == pytest.approx(j['accuracy'])
        assert j['history']['accuracy'][-1] == pytest.approx(j['accuracy']) and len(j['history']['valid_loss']) == 1
    for s in res['summary']:
        mine = [(d, j) for d,j in zip(runs, res['runs']) if d['schedule'] == s['schedule']]
        accs = [float(d['accuracy']) for d,_ in mine]
        assert s['accuracy_mean'] == pytest.approx(np.mean(accs)) and s['accuracy_std'] == pytest.approx(np.std(accs, ddof=1))
        assert table[s['schedule']]['accuracy'] == pytest.approx(s['accuracy_mean'], abs=1e-4)
        # each seed is its own run: its weights, shuffles and tuning differ (the same seed twice would repeat every number)
        (d0,j0),(d1,j1) = mine
        assert j0['history']['valid_loss'] != j1['history']['valid_loss'] and d0['train_loss'] != d1['train_loss']
        # the tuning cost: (tuning + fit) / fit time and the extra batches, averaged over the seeds, as the table prints them
        cost = np.mean([float(d['time_s'])/(float(d['time_s']) - float(d['tune_s'])) for d,_ in mine])
        assert cost > 1 and s['tune_cost'] == pytest.approx(cost, rel=1e-4)
        assert s['tune_batches'] == pytest.approx(np.mean([int(d['tune_batches']) for d,_ in mine]))
        assert table[s['schedule']]['tuning'] == f"{s['tune_cost']:.2f}x {s['tune_batches']:.0f} bat"
    assert set(res['budgets']) == {'one_cycle', 'cos_anneal'}
    for nm,row in table.items():
        lrs = [float(d['lr']) for d in runs if d['schedule'] == nm]
        assert row['lr'] == f"{min(lrs):.3g}" + (f"-{max(lrs):.3g}" if max(lrs) != min(lrs) else '') and row['tuning'].endswith('bat')

def test_compare_recipe(tmp_path):
    "`--lr valley`: fastai's recipe, one `lr_find` (seed 0) and its suggestion for every run, no tuning"
    out = tmp_path/'res'
    r = run_cli('compare', '--epochs', 1, '--seeds', 1, '--schedules', 'one_cycle,flat_anneal', '--lr', 'valley', '--out', out,
                '--device', 'cpu', '--jobs', 1, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'epoch' in r.stdout and 'train_loss' in r.stdout and 'processes' not in r.stdout  # one process: fastai's progress output
    res = json.loads((out/'results.json').read_text())
    lr = res['config']['lr']
    assert 'valley' in res['config']['lr_source'] and 1e-7 < lr < 10 and f"lr={lr:.3g}" in r.stdout
    sugg = dict(kv.split('=') for kv in res['config']['lr_source'].split(': ', 1)[1].split(', '))  # every suggestion, to 3 digits
    assert sorted(sugg) == ['minimum', 'slide', 'steep', 'valley'] and f"{lr:.3g}" == sugg['valley']
    assert any(f"{float(v):.3g}" != sugg['valley'] for v in sugg.values())  # the suggestions differ: the lr is the valley's
    assert all(j['lr'] == lr and j['tune_batches'] == 0 for j in res['runs'])
    assert all(row['tuning'] == '-' for row in _table(r.stdout).values())
    for png in ('schedules.png', 'accuracy.png', 'compare.png', 'lr_find.png'): check_png(out/png)
    assert _tree(tmp_path) == sorted(['res'] + [f'res/{f}' for f in ('accuracy.png', 'compare.png', 'lr_find.png', 'results.csv', 'results.json', 'schedules.png')])
    assert 'earlier run' not in r.stdout
    r = run_cli('compare', '--epochs', 1, '--seeds', 1, '--schedules', 'one_cycle', '--lr', '1e-2', '--out', out, '--no-bar', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]  # the same folder again, without lr_find: says what it replaced and what it left
    assert "compare.png (replacing an earlier run's)" in r.stdout
    assert r.stdout.rstrip().endswith(f"Left in {out} from an earlier run, not this one's: lr_find.png")

def test_compare_image_folder(tmp_path):
    "`--data PATH` on a flat folder named as Oxford-IIIT Pets (`<class>_<n>.jpg`), smaller than a batch: resnet18 trains, nothing is downloaded"
    for i in range(12): _image(tmp_path/'pets'/f"{('great_pyrenees', 'Abyssinian')[i % 2]}_{i}.jpg", i)
    r = run_cli('compare', '--data', tmp_path/'pets', '--epochs', 1, '--seeds', 1, '--lr', '1e-3', '--schedules', 'cos_anneal',
                '--out', tmp_path/'res', '--no-bar', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('\n') < 15  # `--no-bar`: the table, not fastai's per-epoch output
    res = json.loads((tmp_path/'res'/'results.json').read_text())
    assert res['config']['data'] == str(tmp_path/'pets') and res['config']['lr'] == 1e-3 and res['config']['lr_source'] == 'given'
    assert len(res['runs']) == 1 and 0 <= res['runs'][0]['accuracy'] <= 1
    check_png(tmp_path/'res'/'compare.png')

@pytest.mark.parametrize('command', ['compare', 'lr-find'])
def test_out_inside_an_image_folder_is_refused(tmp_path, monkeypatch, capsys, command):
    "`--data .` with the default `--out runs`: refused at once, naming `--out`, nothing written (the plots would train the next run)"
    for i in range(12): _image(tmp_path/'pets'/f"{('great_pyrenees', 'Abyssinian')[i % 2]}_{i}.jpg", i)
    monkeypatch.chdir(tmp_path/'pets')
    before = _tree(tmp_path)
    assert _main([command, '--data', '.', '--device', 'cpu']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out folder 'runs' is inside the data folder '.'" in err[0], err
    assert _tree(tmp_path) == before
    assert _main([command, '--data', str(tmp_path/'pets'), '--out', str(tmp_path/'pets'/'sub'/'res'), '--device', 'cpu']) == 2
    (tmp_path/'elsewhere').mkdir(); (tmp_path/'pets'/'link').symlink_to(tmp_path/'elsewhere')  # listing images follows the link
    assert _main([command, '--data', '.', '--out', 'link', '--device', 'cpu']) == 2
    (tmp_path/'pets'/'link').unlink(); (tmp_path/'elsewhere').rmdir()
    assert _tree(tmp_path) == before

def test_out_beside_train_and_valid_is_allowed():
    "A folder of `train/` and `valid/` is read there only: an --out beside them takes no image from the next run, one inside does"
    from fastai_anneal.cli import _check_out_of
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for split in ('train', 'valid'):
            for i in range(4): _image(d/split/('cat', 'dog')[i % 2]/f'{i}.jpg', i)
        assert _check_out_of(d/'runs', d) == d/'runs'
        with pytest.raises(ValueError, match='is inside the data folder'): _check_out_of(d/'train'/'runs', d)
        (d/'link').symlink_to(d/'train')  # a link that resolves into train/: its plots would land among the images too
        with pytest.raises(ValueError, match='is inside the data folder'): _check_out_of(d/'link'/'runs', d)

def test_preview(tmp_path):
    "The issue's `preview` command: the printed lr at each epoch start is the builder's value, the PNG is written"
    from fastai_anneal.schedules import cos_anneal_scheds
    r = run_cli('preview', 'fit_cos_anneal', '--epochs', 5, '--lr-max', '1e-3', '--pct-warmup', '0.1', '--out', tmp_path)
    assert r.returncode == 0 and r.stderr == '', r.stderr
    f = cos_anneal_scheds(1e-3, pct_warmup=0.1)['lr']
    rows = [l.split() for l in r.stdout.splitlines() if l[:1].isdigit() or l.startswith('end')]
    assert [w[0] for w in rows] == ['0', '1', '2', '3', '4', 'end']
    for (e,v),pos in zip(rows, [0, 0.2, 0.4, 0.6, 0.8, 499/500]): assert float(v) == pytest.approx(f(pos), rel=1e-3), (e, v)
    assert float(rows[0][1]) == pytest.approx(1e-3/25)  # the warmup starts at lr_max/div_warmup
    check_png(tmp_path/'preview_fit_cos_anneal.png')

def test_lr_find(tmp_path):
    "The issue's `lr-find --anneal cos`: four suggestions printed, each a positive lr, and the plot saved"
    r = run_cli('lr-find', '--anneal', 'cos', '--out', tmp_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sugg = dict(l.split() for l in r.stdout.splitlines() if l.startswith('  '))
    assert set(sugg) == {'valley', 'slide', 'minimum', 'steep'}
    for v in sugg.values(): assert 1e-7 <= float(v) <= 10
    check_png(tmp_path/'lr_find.png')
    assert _tree(tmp_path) == ['lr_find.png']  # lr_find restores in memory: no models/ folder

# ---------------------------------------------------------------- in-process: the pieces the commands are made of
def test_sgdr_cycles_fill_the_budget():
    from fastai_anneal.cli import sgdr_cycles
    assert [sgdr_cycles(n) for n in (1, 2, 3, 7, 8, 15, 30, 60)] == [(1, 1), (1, 2), (2, 1), (3, 1), (1, 8), (4, 1), (4, 2), (4, 4)]
    for n in range(1, 200):
        c,l = sgdr_cycles(n)
        assert l*(2**c-1) == n  # fastai's `fit_sgdr` epoch count, with cycle_mult=2
        assert all(n % (2**k-1) for k in range(c+1, n.bit_length()+1))  # no layout with more cycles fits
    with pytest.raises(ValueError, match='n_epoch must be >= 1'): sgdr_cycles(0)

def test_compare_budgets_are_equal():
    "Every schedule `compare` runs spends exactly N epochs of the same number of batches"
    from fastai.test_utils import synth_learner
    from fastai_anneal.cli import SCHEDULES
    for n in (1, 3, 4):
        for nm,(fit,_) in SCHEDULES.items():
            learn = synth_learner(n_trn=4)
            with learn.no_bar(), learn.no_logging(): fit(learn, n, 1e-2)
            assert len(learn.recorder.lrs) == n*len(learn.dls.train), (nm, n)
            assert len(learn.recorder.values) == n, (nm, n)

def test_preview_matches_training():
    "`preview` draws what training records: `schedule_values` uses `ParamScheduler`'s positions"
    from fastai.test_utils import synth_learner
    from fastai_anneal.cli import preview, PREVIEWS
    import fastai_anneal.fit  # noqa: F401
    import tempfile
    learn = synth_learner(n_trn=5)
    with learn.no_bar(), learn.no_logging(): learn.fit_flat_anneal(3, 1e-2, pct_warmup=0.2, anneal='sqrt')
    with tempfile.TemporaryDirectory() as d:
        vals = preview('fit_flat_anneal', epochs=3, n_batch=len(learn.dls.train), out=d, lr=1e-2, pct_warmup=0.2, anneal='sqrt')
    np.testing.assert_allclose(vals['lr'], learn.recorder.hps['lr'], rtol=1e-12)
    from fastai_anneal.registry import VARIANTS
    assert set(PREVIEWS) == {m for m,v in VARIANTS.items() if not v.two_phase}

def test_progress_bars_do_not_depend_on_imports(monkeypatch):
    "issue 10.6: a command's learner has fastai's progress bar with `bar=True`, none with `bar=False`, whatever `defaults.callbacks` holds"
    import torch
    from fastai.learner import defaults
    from fastai.callback.progress import ProgressCallback
    from fastai_anneal.cli import _learner
    for cbs in ([c for c in defaults.callbacks if c is not ProgressCallback], list(defaults.callbacks) + [ProgressCallback]):
        monkeypatch.setattr(defaults, 'callbacks', list(dict.fromkeys(cbs)))
        for bar in (True, False):
            learn = _learner('digits', 0, torch.device('cpu'), bar=bar)
            assert len(learn.cbs.filter(lambda cb: isinstance(cb, ProgressCallback))) == bar, (cbs, bar)

def test_console_script_declared():
    "settings.ini declares `fastai-anneal`, and the installed package's entry point resolves to `main`"
    from configparser import ConfigParser
    from importlib.metadata import entry_points
    from fastai_anneal.cli import main
    cfg = ConfigParser(delimiters=['=']); cfg.read(Path(__file__).parents[1]/'settings.ini')
    assert 'fastai-anneal=fastai_anneal.cli:main' in cfg['DEFAULT']['console_scripts'].split()
    (ep,) = [e for e in entry_points(group='console_scripts') if e.name == 'fastai-anneal']
    assert ep.load() is main

def test_preview_list_bool_and_choice_flags(tmp_path, capsys):
    "`--milestones 2 4` is a list of epochs, `--staircase`/`--no-cycle-momentum` are bools, `--mode` a choice; what `preview` draws"
    " is the builder's schedule at the epochs and batches it was given"
    from fastai_anneal.cli import _parser, main, preview
    from fastai_anneal.schedules import step_decay_scheds, time_decay_scheds, cyclic_scheds
    parse = lambda *argv: vars(_parser().parse_args(['preview', *argv]))
    a = parse('fit_step_decay', '--milestones', '2', '4', '--gamma', '0.5')
    assert a['milestones'] == [2, 4] and a['gamma'] == 0.5 and 'step_size' not in a  # unset flags keep the builder's defaults
    assert parse('fit_time_decay', '--staircase')['staircase'] is True and parse('fit_time_decay', '--no-staircase')['staircase'] is False
    a = parse('fit_cyclic', '--no-cycle-momentum', '--mode', 'exp_range', '--step-size-up', '3')
    assert a['cycle_momentum'] is False and a['mode'] == 'exp_range' and a['step_size_up'] == 3
    assert parse('fit_cos_anneal', '--moms', '0.95', '0.85', '0.95')['moms'] == [0.95, 0.85, 0.95]  # a tuple: three floats
    assert main(['preview', 'fit_cos_anneal', '--moms', '0.95', '0.85', '0.95', '--out', str(tmp_path)]) == 0
    assert main(['preview', 'fit_step_decay', '--epochs', '6', '--n-batch', '3', '--milestones', '2', '4', '--out', str(tmp_path)]) == 0
    vals = preview('fit_step_decay', epochs=6, n_batch=3, out=tmp_path, milestones=[2, 4])
    s = step_decay_scheds(6, 3, 1e-3, milestones=[2, 4])['lr']
    np.testing.assert_allclose(vals['lr'], [s(i/18) for i in range(18)], rtol=1e-12)
    np.testing.assert_allclose(vals['lr'][[0, 6, 12]], [1e-3, 1e-4, 1e-5], rtol=1e-12)
    vals = preview('fit_time_decay', epochs=2, n_batch=4, out=tmp_path, staircase=True, decay_steps=3)
    np.testing.assert_allclose(vals['lr'], [time_decay_scheds(2, 4, 1e-3, decay_steps=3, staircase=True)['lr'](i/8) for i in range(8)])
    vals = preview('fit_cyclic', epochs=2, n_batch=4, out=tmp_path, cycle_momentum=False, step_size_up=2)
    assert set(vals) == {'lr'} and vals['lr'][2] == 1e-3 and vals['lr'][0] == 1e-3/4
    capsys.readouterr()
    assert main(['preview', 'fit_step_decay', '--milestones', '3', '1', '--out', str(tmp_path)]) == 2
    assert '--milestones must be epochs rising strictly in [1, --epochs=5)' in capsys.readouterr().err
    with pytest.raises(SystemExit): _parser().parse_args(['preview', 'fit_cyclic', '--mode', 'zigzag'])

def test_hidden_fastcore_flags_are_usage_errors(capsys):
    "fastcore's `anno_parser` adds hidden `--pdb` and `--xtra`; the commands do not honour them, so they are unrecognized, not ignored"
    from fastai_anneal.cli import _parser
    for argv in (['compare', '--pdb'], ['lr-find', '--xtra', 'x']):
        with pytest.raises(SystemExit) as e: _parser().parse_args(argv)
        assert e.value.code == 2 and f'unrecognized arguments: {" ".join(argv[1:])}' in capsys.readouterr().err

def _interrupt_at(monkeypatch, n:int):
    "Ctrl-C when the command builds its `n`-th learner (0: the first)"
    import fastai_anneal.cli as cli
    made,orig = [],cli._learner
    def learner(*args, **kwargs):
        if len(made) == n: raise KeyboardInterrupt
        made.append(1); return orig(*args, **kwargs)
    monkeypatch.setattr(cli, '_learner', learner)

def _main(argv) -> int:
    "`main(argv)`; a Ctrl-C it lets through fails the test instead of stopping pytest"
    from fastai_anneal.cli import main
    try: return main(argv)
    except KeyboardInterrupt: pytest.fail('KeyboardInterrupt escaped main')

def test_compare_interrupted_keeps_the_finished_runs(tmp_path, monkeypatch, capsys):
    "Ctrl-C in the third of four runs: one line, status 130, and results.csv/json of the two finished runs, marked partial"
    _interrupt_at(monkeypatch, 2)
    out = tmp_path/'res'
    argv = ['compare', '--data', 'digits', '--epochs', '1', '--lr', '1e-3', '--seeds', '2', '--schedules', 'constant,cos_anneal',
            '--device', 'cpu', '--no-bar', '--jobs', '1', '--out', str(out)]
    assert _main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('fastai-anneal compare: interrupted after 2 of 4 runs; wrote'), err
    with open(out/'results.csv') as f: rows = [(d['schedule'], d['seed']) for d in csv.DictReader(f)]
    assert rows == [('constant', '0'), ('constant', '1')]
    res = json.loads((out/'results.json').read_text())
    assert res['config']['interrupted'] == 'interrupted after 2 of 4 runs' and [s['schedule'] for s in res['summary']] == ['constant']
    assert _tree(out) == ['results.csv', 'results.json']

def test_compare_interrupted_names_what_it_replaced_and_left(tmp_path, monkeypatch, capsys):
    "Interrupted in a folder of an earlier run: the partial files say they replaced its results, and its plots are named as left"
    _interrupt_at(monkeypatch, 1)
    out = tmp_path/'res'; out.mkdir()
    for f in ('results.json', 'results.csv', 'compare.png', 'accuracy.png'): (out/f).write_text('an earlier run')
    assert _main(['compare', '--data', 'digits', '--epochs', '1', '--lr', '1e-3', '--seeds', '1', '--schedules', 'constant,cos_anneal',
                  '--device', 'cpu', '--no-bar', '--jobs', '1', '--out', str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results.partial.json (partial, beside an earlier run's results); left in" in err[0], err
    assert err[0].endswith("from an earlier run, not this one's: results.csv, results.json, accuracy.png, compare.png"), err
    assert all((out/f).read_text() == 'an earlier run' for f in ('results.json', 'results.csv', 'compare.png', 'accuracy.png'))
    res = json.loads((out/'results.partial.json').read_text())  # the finished run, beside the earlier run's kept results
    assert res['config']['interrupted'] == 'interrupted after 1 of 2 runs' and len(res['runs']) == 1
    monkeypatch.undo(); _interrupt_at(monkeypatch, 1)
    assert _main(['compare', '--data', 'digits', '--epochs', '1', '--lr', '1e-3', '--seeds', '1', '--schedules', 'constant,cos_anneal',
                  '--device', 'cpu', '--no-bar', '--jobs', '1', '--out', str(out)]) == 130  # interrupted again: says what it replaced
    assert "(partial, beside an earlier run's results, replacing an earlier interrupted run's)" in capsys.readouterr().err

def test_compare_jobs_match_one_process(tmp_path):
    "Runs in 2 processes give one process's results to the bit (each run seeds itself), in schedule-then-seed order, `lr='auto'` too"
    import multiprocessing as mp
    from fastai_anneal.cli import compare
    kw = dict(data='mnist1d', epochs=1, schedules='one_cycle,cos_anneal', seeds=2, device='cpu', bar=False)
    res = {j: compare(**kw, jobs=j, out=tmp_path/f'j{j}') for j in (1, 2)}
    strip = lambda r: {k: v for k,v in r.items() if k not in ('time_s', 'tune_s')}
    assert [strip(r) for r in res[2]['runs']] == [strip(r) for r in res[1]['runs']]
    assert [(r['schedule'], r['seed']) for r in res[2]['runs']] == [(s, i) for s in ('one_cycle', 'cos_anneal') for i in (0, 1)]
    assert all(r['tune_batches'] > 0 for r in res[2]['runs']) and res[2]['config']['jobs'] == 2 and not mp.active_children()

def _fail_in_worker(monkeypatch, tmp_path, exc):
    "Seed 1's run raises `exc` once seed 0's run has finished (a marker file says so): deterministic with 2 processes"
    import fastai_anneal.cli as cli
    import time
    orig_learner,orig_history,done = cli._learner,cli._history,tmp_path/'seed0_done'
    def learner(data, seed, *args, **kwargs):
        if seed == 1:
            while not done.exists(): time.sleep(0.05)
            time.sleep(0.5); raise exc
        return orig_learner(data, seed, *args, **kwargs)
    def history(learn):
        done.touch(); return orig_history(learn)
    monkeypatch.setattr(cli, '_learner', learner); monkeypatch.setattr(cli, '_history', history)

def test_compare_jobs_interrupted_keeps_the_finished_runs(tmp_path, monkeypatch, capsys):
    "Ctrl-C reaching a run in a worker: the workers stop, status 130, and the finished run is written, marked partial"
    import multiprocessing as mp
    _fail_in_worker(monkeypatch, tmp_path, KeyboardInterrupt())
    out = tmp_path/'res'
    assert _main(['compare', '--data', 'digits', '--epochs', '1', '--lr', '1e-3', '--seeds', '2', '--schedules', 'constant',
                  '--device', 'cpu', '--no-bar', '--jobs', '2', '--out', str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('fastai-anneal compare: interrupted after 1 of 2 runs; wrote'), err
    with open(out/'results.csv') as f: assert [(d['schedule'], d['seed']) for d in csv.DictReader(f)] == [('constant', '0')]
    assert not mp.active_children()

def test_compare_jobs_error_in_a_worker(tmp_path, monkeypatch):
    "An error in a worker's run is raised by `compare`, as in one process, and no worker is left behind"
    import multiprocessing as mp
    from fastai_anneal.cli import compare
    _fail_in_worker(monkeypatch, tmp_path, RuntimeError('boom in seed 1'))
    with pytest.raises(RuntimeError, match='boom in seed 1') as e:
        compare('digits', epochs=1, lr=1e-3, seeds=2, schedules='constant', device='cpu', bar=False, jobs=2, out=tmp_path/'res')
    if sys.version_info >= (3, 11): assert "in learner\n" in e.value.__notes__[0]  # the worker's traceback, where the error arose
    assert not mp.active_children()

def test_compare_jobs_worker_killed(tmp_path, monkeypatch):
    "A worker killed mid-run (the kernel's OOM killer): `compare` says so instead of waiting forever, and stops the other worker"
    import multiprocessing as mp, os, signal
    import fastai_anneal.cli as cli
    from fastai_anneal.cli import compare
    orig = cli._learner
    def learner(data, seed, *args, **kwargs):
        if seed == 1: os.kill(os.getpid(), signal.SIGKILL)
        return orig(data, seed, *args, **kwargs)
    monkeypatch.setattr(cli, '_learner', learner)
    with pytest.raises(RuntimeError, match=r'a compare worker process died \(exit code -9: killed, out of memory\?\)'):
        compare('digits', epochs=1, lr=1e-3, seeds=3, schedules='constant', device='cpu', bar=False, jobs=2, out=tmp_path/'res')
    assert not mp.active_children()

def test_compare_jobs_unpicklable_error(tmp_path, monkeypatch):
    "An error that cannot be pickled back from a worker is raised as a `RuntimeError` with its text, not lost"
    import fastai_anneal.cli as cli
    from fastai_anneal.cli import compare
    class Odd(Exception):
        def __reduce__(self): raise TypeError('not picklable')
    def learner(*args, **kwargs): raise Odd('odd failure')
    monkeypatch.setattr(cli, '_learner', learner)
    with pytest.raises(RuntimeError, match='Odd: odd failure') as e:
        compare('digits', epochs=1, lr=1e-3, seeds=2, schedules='constant', device='cpu', bar=False, jobs=2, out=tmp_path/'res')
    assert 'raised in a compare worker process' in e.value.__notes__[0] and 'in learner\n' in e.value.__notes__[0]  # its traceback

class _TwoArgError(Exception):
    "An error whose `__init__` takes other arguments than its message: it pickles, but cannot be rebuilt from its args"
    def __init__(self, path, reason): super().__init__(f"{path}: {reason}")

def test_compare_jobs_error_that_cannot_be_rebuilt(tmp_path, monkeypatch):
    "A run's error that pickles but cannot be unpickled still reaches the caller with its text, not as a pickle `TypeError`"
    import fastai_anneal.cli as cli
    from fastai_anneal.cli import compare
    def learner(*args, **kwargs): raise _TwoArgError('/data/x.npy', 'corrupt batch')
    monkeypatch.setattr(cli, '_learner', learner)
    with pytest.raises(RuntimeError, match='_TwoArgError: /data/x.npy: corrupt batch'):
        compare('digits', epochs=1, lr=1e-3, seeds=2, schedules='constant', device='cpu', bar=False, jobs=2, out=tmp_path/'res')

def _in_pool_worker(out):
    from fastai_anneal.cli import compare
    res = compare('digits', epochs=1, lr=1e-3, seeds=2, schedules='constant', device='cpu', bar=False, out=out)
    return res['config']['jobs'],len(res['runs'])

def test_compare_in_a_daemonic_process_runs_serially(tmp_path):
    "Inside a `multiprocessing.Pool` worker (daemonic: no children allowed) the default is one process; `jobs=4` for 2 runs uses 2"
    import multiprocessing as mp
    from fastai_anneal.cli import compare
    with mp.get_context('fork').Pool(1) as pool: assert pool.apply(_in_pool_worker, (tmp_path/'a',)) == (1, 2)
    res = compare('digits', epochs=1, lr=1e-3, seeds=2, schedules='constant', device='cpu', bar=False, jobs=4, out=tmp_path/'b')
    assert res['config']['jobs'] == 2

def _compare_after_first_run(tmp_path, stderr) -> subprocess.Popen:
    ("`compare` of 64 runs in 2 processes, in a session of its own (a terminal's process group), once its first run has finished. "
     "The runs take far longer than the test needs to signal it: on a loaded machine the test's process may read the first line "
     "late, and 8 short runs had all finished by then once (exit 0 instead of the interrupt's 130)")
    p = subprocess.Popen(CLI + ['compare', '--data', 'digits', '--epochs', '3', '--lr', '1e-3', '--seeds', '64', '--schedules', 'constant',
                                '--device', 'cpu', '--jobs', '2', '--out', str(tmp_path/'res')],
                         stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
    for line in p.stdout:
        if line.startswith('[1/64]'): break
    return p

@pytest.mark.parametrize('sig', ['SIGTERM', 'SIGKILL'])
def test_compare_jobs_workers_die_with_the_command(tmp_path, sig):
    "`kill PID` or SIGKILL to the command alone (no `finally` runs): its workers stop too, instead of training for nobody"
    import os, signal, time
    p = _compare_after_first_run(tmp_path, stderr=subprocess.DEVNULL)
    try:
        os.kill(p.pid, getattr(signal, sig)); p.wait(timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try: os.killpg(p.pid, 0)
            except ProcessLookupError: break
            time.sleep(0.2)
        else: pytest.fail('the workers outlived the command')
    finally:
        try: os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError: pass

def test_compare_jobs_ctrl_c(tmp_path):
    "A real Ctrl-C (SIGINT to the terminal's process group) during runs in 2 processes: status 130, one line, nothing left running"
    import os, signal
    p = _compare_after_first_run(tmp_path, stderr=subprocess.PIPE)
    try:
        os.killpg(p.pid, signal.SIGINT)
        _,err = p.communicate(timeout=60)
    finally: p.kill()
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith('fastai-anneal compare: interrupted after '), err
    assert len(err.strip().splitlines()) == 1, err
    with pytest.raises(ProcessLookupError): os.killpg(p.pid, 0)  # no worker outlived the command

@pytest.mark.parametrize('command', ['compare', 'lr-find'])
def test_interrupted_before_any_result_leaves_no_folder(tmp_path, monkeypatch, capsys, command):
    "Ctrl-C before anything is written: one line, status 130, and no empty output folder (nor the parents it created)"
    _interrupt_at(monkeypatch, 0)
    extra = ['--lr', '1e-3', '--seeds', '1', '--schedules', 'constant', '--no-bar'] if command == 'compare' else []
    assert _main([command, '--data', 'digits', '--device', 'cpu', *extra, '--out', str(tmp_path/'a'/'res')]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'fastai-anneal {command}: interrupted'), err
    assert _tree(tmp_path) == []

_PLUGIN = '''
from fastai_anneal.registry import Variant
def poly_scheds(lr, power:float=2.):
    "lr*(1-pos)**power"
    if not isinstance(power, (int, float)) or not power > 0: raise ValueError(f"power must be > 0, got {power!r}")
    return {'lr': lambda pos: lr*(1-pos)**power}
POLY = Variant('fit_poly', poly_scheds, 'lr', doc='Fit with a polynomial decay', fastai='fit', reference='its builder',
               examples=(dict(n_epoch=2, lr=1e-2),), budget="fit_poly(N, lr): lr*(1-pos)**2")
def more(): return [Variant('fit_poly3', poly_scheds, 'lr', doc='Cubic decay', fastai='fit', reference='its builder',
                            examples=(dict(n_epoch=2, lr=1e-2, power=3.),))]
'''

def _plugin_env(tmp_path:Path, entries:str) -> dict:
    "An installed distribution on `PYTHONPATH` whose entry points of group `fastai_anneal.variants` are `entries`"
    import os
    (tmp_path/'poly_plugin.py').write_text(_PLUGIN)
    info = tmp_path/'poly_plugin-0.1.dist-info'; info.mkdir()
    (info/'METADATA').write_text('Metadata-Version: 2.1\nName: poly-plugin\nVersion: 0.1\n')
    (info/'entry_points.txt').write_text(f'[fastai_anneal.variants]\n{entries}\n')
    return {**os.environ, 'PYTHONPATH': os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')])}

def test_plugins_add_variants_to_the_console_script(tmp_path):
    "An installed package's entry points (a `Variant`, a function returning some) join `compare --schedules` and `preview`"
    env = _plugin_env(tmp_path, 'poly = poly_plugin:POLY\nmore = poly_plugin:more')
    run = lambda a: subprocess.run(CLI + [str(x) for x in a], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    calls = [('preview', 'fit_poly3', '--epochs', 2, '--n-batch', 10, '--lr', '1e-2', '--power', 3, '--out', tmp_path),
             ('preview', '--help'), ('compare', '--help'),
             ('compare', '--schedules', 'poly', '--epochs', 1, '--seeds', 1, '--lr', '1e-2', '--out', tmp_path/'res', '--no-bar'),
             ('compare', '--schedules', 'poly3', '--epochs', 1, '--lr', '1e-2', '--out', tmp_path/'res3')]  # no budget: not offered
    with ThreadPoolExecutor(4) as ex: r,help_p,help_c,cmp,no_budget = ex.map(run, calls)  # each process pays fastai's import
    assert r.returncode == 0 and r.stderr == '', r.stderr
    ends = [l.split() for l in r.stdout.splitlines() if l[:1].isdigit()]
    assert [float(w[1]) for w in ends] == pytest.approx([1e-2, 1e-2*0.5**3])  # the builder's own values: epoch 0 and 1 of 2
    check_png(tmp_path/'preview_fit_poly3.png')
    assert 'fit_poly' in help_p.stdout and 'poly' in help_c.stdout
    assert cmp.returncode == 0, cmp.stderr[-3000:]
    res = json.loads((tmp_path/'res'/'results.json').read_text())
    assert res['budgets'] == {'poly': "fit_poly(N, lr): lr*(1-pos)**2"} and 0 <= res['runs'][0]['accuracy'] <= 1
    assert no_budget.returncode == 2 and 'schedules must be a comma-separated list of' in no_budget.stderr

def test_a_broken_plugin_is_named_and_skipped(tmp_path):
    "A plugin that fails to import or gives something else is named on stderr; the package's own commands still run"
    env = _plugin_env(tmp_path, 'gone = no_such_module:X\nodd = poly_plugin:poly_scheds\nclash = fastai_anneal.registry:VARIANTS')
    r = subprocess.run(CLI + ['preview', 'fit_cos_anneal', '--epochs', '2', '--out', str(tmp_path)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 3 and all(l.startswith('fastai-anneal: plugin ') and ' skipped: ' in l for l in lines), r.stderr
    assert "'gone' (no_such_module:X) skipped: ModuleNotFoundError" in lines[1]
    assert "'odd' (poly_plugin:poly_scheds) skipped: TypeError" in lines[2]

_PLUGIN_MORE = '''
from fastai_anneal.registry import Variant
def lin(lr, out:float=0.1):
    "lr to lr*out"
    return {'lr': lambda pos: lr*(1 + (out-1)*pos)}
def ok(lr):
    "lr held"
    return {'lr': lambda pos: lr}
KW = dict(doc='x', fastai='fit', reference='its builder', examples=(dict(n_epoch=2, lr=1e-2),))
BAD_FLAG = Variant('fit_lin_out', lin, 'lr', **KW)  # its `out` is preview's --out
PAIR = [Variant('fit_held_ok', ok, 'lr', **KW), Variant('fit_cos_anneal', ok, 'lr', **KW)]  # the second's name is taken
CONST = Variant('fit_constant', ok, 'lr', budget='fit_constant(N, lr)', **KW)  # compare's own 'constant'
def fresh(): return [Variant('fit_held_fresh', ok, 'lr', **KW)]  # new objects on every call
def half():  # registers one variant itself, then gives something else
    from fastai_anneal.fit import register_variant
    register_variant(Variant('fit_held_half', ok, 'lr', **KW))
    return 'not a variant'
'''

@pytest.fixture
def plugins(tmp_path, monkeypatch):
    "`cli._load_plugins` over the entry points `eps` ({name: 'module:attr'}) of a module on `sys.path`; what they add is taken out after"
    from importlib.metadata import EntryPoint
    from fastai_anneal import cli
    from fastai_anneal.fit import _unregister
    (tmp_path/'more_plugins.py').write_text(_PLUGIN_MORE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, '_LOADED', {})
    def load(eps:dict):
        monkeypatch.setattr(cli, 'entry_points', lambda group: [EntryPoint(k, v, group) for k,v in eps.items()])
        return cli._load_plugins()
    yield load
    for vs in cli._LOADED.values():
        for v in vs: _unregister(v)

def test_a_plugin_adds_all_its_variants_or_none(plugins, capsys):
    "A clash with preview's flags, a taken name, compare's own 'constant': named, skipped, nothing of it left; the rest load"
    from fastai_anneal import cli
    from fastai_anneal.registry import VARIANTS
    before = dict(VARIANTS)
    assert plugins({'flag': 'more_plugins:BAD_FLAG', 'pair': 'more_plugins:PAIR', 'const': 'more_plugins:CONST',
                    'fresh': 'more_plugins:fresh', 'half': 'more_plugins:half'}) == ['fresh']
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and "plugin 'const'" in err[0] and "compare already has a schedule named 'constant'" in err[0]
    assert "plugin 'flag'" in err[1] and 'conflicting option string: --out' in err[1]
    assert "plugin 'half'" in err[2] and 'it gave a str, not a Variant' in err[2]
    assert "plugin 'pair'" in err[3] and "Variant 'fit_cos_anneal': method is already" in err[3]
    from fastai.learner import Learner
    assert set(VARIANTS) - set(before) == {'fit_held_fresh'} and not hasattr(Learner, 'fit_held_ok')
    assert cli._parser().parse_args(['preview', 'fit_held_fresh', '--lr', '1e-2']).variant == 'fit_held_fresh'
    assert plugins({'fresh': 'more_plugins:fresh'}) == ['fresh'] and capsys.readouterr().err == ''  # once per process: no clash

def test_live_mappings_keep_dict_behaviour():
    import pickle
    from fastai_anneal import cli
    assert isinstance(cli.SCHEDULES.copy(), dict) and list(cli.SCHEDULES | {'x': 1})[-1] == 'x' and ({'x': 1} | cli.PREVIEWS)['x'] == 1
    assert list({'x': 1} | cli.PREVIEWS)[0] == 'x'  # a dict's `|`: the left operand's keys first, the right one's values win
    assert ({'fit_cos_anneal': 0} | cli.PREVIEWS)['fit_cos_anneal'] is cli.PREVIEWS['fit_cos_anneal']
    assert list(pickle.loads(pickle.dumps(cli.PREVIEWS))) == list(cli.PREVIEWS)

def test_results_json_is_strict_json(tmp_path):
    "A diverged run's NaN or inf loss is null in results.json: JSON has no NaN (strict readers refused the file), the CSV keeps it"
    from fastai_anneal.cli import _write_results, SCHEDULES
    nm = next(iter(SCHEDULES))
    runs = [dict(schedule=nm, seed=0, epochs=1, lr=1e3, accuracy=0.1, valid_loss=math.nan, train_loss=math.inf, lrs=[1e3])]
    _write_results(tmp_path, dict(schedules=[nm]), runs, [dict(schedule=nm, valid_loss_mean=math.nan, accuracy_mean=0.1)])
    def refuse(c): raise AssertionError(f"{c} in results.json")
    doc = json.loads((tmp_path/'results.json').read_text(), parse_constant=refuse)
    assert doc['runs'][0]['valid_loss'] is None and doc['runs'][0]['train_loss'] is None and doc['runs'][0]['accuracy'] == 0.1
    assert doc['summary'][0]['valid_loss_mean'] is None
    assert 'nan' in (tmp_path/'results.csv').read_text() and 'lrs' not in doc['runs'][0]  # the per-batch lrs: not in the file
    with open(tmp_path/'results.csv') as f: assert next(csv.reader(f)) == ['schedule', 'seed', 'epochs', 'lr', 'accuracy', 'valid_loss',
        'train_loss', 'time_s', 'tune_s', 'tune_batches', 'fit_batches', 'device']

def test_errors_name_flags_inside_the_message():
    "A check's argument names further in the message are the flags the user typed (review, seventeenth session); prose stays"
    from fastai_anneal.cli import _flag_names
    assert _flag_names("give step_size or milestones, not both (got step_size=2, milestones=[1])") == \
        "give --step-size or --milestones, not both (got --step-size=2, --milestones=[1])"
    assert _flag_names("milestones must be epochs rising strictly in [1, n_epoch=4), got [4]") == \
        "--milestones must be epochs rising strictly in [1, --epochs=4), got [4]"
    assert _flag_names("epochs*n_batch must be <= 10,000,000, got 3*4") == "--epochs*--n-batch must be <= 10,000,000, got 3*4"
    assert _flag_names("lr_max must be in (0, inf), a_b_c and not_a_flag stay") == "--lr-max must be in (0, inf), a_b_c and not_a_flag stay"
    assert _flag_names("data folder '/tmp/n_epoch/pct_start' does not exist") == "--data folder '/tmp/n_epoch/pct_start' does not exist"

def test_an_out_folder_that_cannot_be_made_names_out(tmp_path, monkeypatch):
    "An `OSError` making the folder (root passes `os.access` where /proc refuses) is a usage error naming --out, not raw OS text"
    import fastai_anneal.cli as cli
    from pathlib import Path
    def refuse(self, *args, **kwargs): raise PermissionError(1, 'Operation not permitted')
    monkeypatch.setattr(Path, 'mkdir', refuse)
    with pytest.raises(ValueError, match=r"out must be a folder this process can create and write in, '.*x': Operation not permitted"):
        cli._make_out(tmp_path/'x')
    monkeypatch.undo()
    def no_file(*args, **kwargs): raise PermissionError(13, 'Read-only file system')
    monkeypatch.setattr(cli.tempfile, 'TemporaryFile', no_file)  # the folder made, but no file in it (a read-only mount)
    with pytest.raises(ValueError, match=r"out must be a folder this process can create and write in, '.*y': Read-only file system"):
        cli._make_out(tmp_path/'y')

# ---------------------------------------------------------------- from the mutation audit of cli.py (twenty-fifth session)
def _fake_runs(monkeypatch, acc=lambda nm, seed: 0.5, seen=None):
    ("`cli._run` replaced by a run that trains nothing: accuracy `acc(schedule, seed)`, 2 batches per epoch at the lr it was "
     "given; `seen` (a list) gets the lr of each run made in this process")
    import fastai_anneal.cli as cli
    def run(data, epochs, lr, nm, seed, dev, bar):
        if seen is not None: seen.append(lr)
        a = acc(nm, seed)
        h = dict(train_loss=[1.]*epochs, valid_loss=[1.]*epochs, accuracy=[a]*epochs)
        return dict(schedule=nm, seed=seed, epochs=epochs, lr=lr, accuracy=a, valid_loss=1., train_loss=1., time_s=1., tune_s=0.,
                    tune_batches=0, fit_batches=2*epochs, history=h, lrs=[lr]*2*epochs, device='cpu')
    monkeypatch.setattr(cli, '_run', run)

# ---------------------------------------------------------------- the argument checks
def test_the_checks_errors_are_usage_errors():
    "U01, U02: `_usage` turns a check's `TypeError` and an `OSError` (a folder it cannot stat) into the one-line `UsageError`"
    from fastai_anneal.cli import _usage, UsageError
    for e in (TypeError('out must be a folder path'), PermissionError(13, 'Permission denied')):
        with pytest.raises(UsageError, match='out must be a folder path|Permission denied'):
            with _usage(): raise e

def test_schedule_names_are_stripped_checked_and_not_repeated():
    "C01-C03: `--schedules 'one_cycle, cos_anneal'` is two names; an empty list and a repeated name are refused"
    from fastai_anneal.cli import _check_schedules
    assert _check_schedules(' one_cycle , cos_anneal') == ['one_cycle', 'cos_anneal']
    with pytest.raises(ValueError, match='schedules must be a comma-separated list'): _check_schedules([])
    with pytest.raises(ValueError, match="schedules must not repeat a name, got 'constant,constant'"): _check_schedules('constant,constant')

def test_default_jobs(monkeypatch):
    ("J03-J05: without `jobs`, one process per core, at most `MAX_JOBS` (8) and the number of runs; 1 on an image folder or a GPU, "
     "where `jobs=1` is still accepted")
    from fastai_anneal import cli
    cpu = torch.device('cpu')
    monkeypatch.setattr(cli.os, 'sched_getaffinity', lambda pid: set(range(16)))
    assert cli._check_jobs(None, 'digits', cpu, 100) == 8 and cli._check_jobs(None, 'digits', cpu, 3) == 3
    assert cli._check_jobs(None, Path('pets'), cpu, 100) == 1 and cli._check_jobs(None, 'digits', torch.device('cuda'), 100) == 1
    assert cli._check_jobs(1, Path('pets'), cpu, 100) == 1 and cli._check_jobs(1, 'digits', torch.device('cuda'), 100) == 1

def test_jobs_count_the_runs_of_every_schedule(tmp_path, monkeypatch):
    "J10: `--jobs 2` for 2 schedules of 1 seed runs 2 processes (the runs are schedules x seeds, not seeds)"
    from fastai_anneal.cli import compare
    _fake_runs(monkeypatch)
    res = compare('digits', epochs=1, lr=1e-3, seeds=1, schedules='constant,cos_anneal', device='cpu', bar=False, jobs=2, out=tmp_path)
    assert res['config']['jobs'] == 2 and [r['schedule'] for r in res['runs']] == ['constant', 'cos_anneal']

@pytest.mark.parametrize('min_fit,ok', [(46, True), (47, False)])
def test_lr_auto_needs_fits_of_the_tuner_s_minimum(monkeypatch, min_fit, ok):
    "J07: a fit of exactly `tune.MIN_FIT` batches is long enough for `--lr auto` (digits: 2 epochs of 23 batches = 46)"
    from fastai_anneal import cli, tune
    monkeypatch.setattr(tune, 'MIN_FIT', min_fit)
    if ok: cli._check_tunable('digits', 2, torch.device('cpu'))
    else:
        with pytest.raises(ValueError, match='epochs must be >= 3 with --lr auto'): cli._check_tunable('digits', 2, torch.device('cpu'))

# ---------------------------------------------------------------- what a run reports
def test_lr_auto_tunes_the_schedule_s_own_fit(monkeypatch):
    "S01: `--lr auto` tunes and runs each schedule's own method (`fit_tuned(fit=...)`) with the epochs a given lr would run"
    from fastai.learner import Learner
    from fastai.test_utils import synth_learner
    from fastai_anneal.cli import SCHEDULES
    calls = []
    monkeypatch.setattr(Learner, 'fit_tuned', lambda self, *a, **kw: calls.append(kw), raising=False)
    for nm in ('one_cycle', 'sgdr', 'cos_anneal', 'constant'):
        SCHEDULES[nm][0](synth_learner(n_trn=4), 3, 'auto')
    assert [c.pop('fit') for c in calls] == ['fit_one_cycle', 'fit_sgdr', 'fit_cos_anneal', 'fit']
    assert calls[0] == calls[3] == {'n_epoch': 3} and calls[1] == {'n_cycles': 2, 'cycle_len': 1}

def test_a_run_reports_its_last_epoch(tmp_path):
    "R04-R06: a run of 2 epochs reports the last epoch's accuracy and losses, and the batches of both epochs"
    from fastai_anneal.cli import _run
    r = _run('digits', 2, 1e-3, 'constant', 0, torch.device('cpu'), False)
    h = r['history']
    assert len(h['accuracy']) == 2 and h['valid_loss'][0] != h['valid_loss'][1]
    assert (r['accuracy'], r['valid_loss'], r['train_loss']) == (h['accuracy'][-1], h['valid_loss'][-1], h['train_loss'][-1])
    assert r['fit_batches'] == 2*23 == len(r['lrs']) and r['tune_batches'] == 0 and r['lr'] == 1e-3 and r['device'] == 'cpu'

def test_the_summary_and_the_table(tmp_path):
    ("M01, M02, M06, M07, M11, M12: per schedule the mean (not the median) of 3 seeds, the valid loss and time averaged, the seeds "
     "counted per schedule; the best mean accuracy starred")
    from fastai_anneal.cli import _summary, _table
    run = lambda nm, seed, acc, loss, t: dict(schedule=nm, seed=seed, lr=1e-3, accuracy=acc, valid_loss=loss, train_loss=9., time_s=t,
                                               tune_s=0., tune_batches=0)
    runs = [run('a', 0, .1, 1., 1.), run('a', 1, .2, 2., 2.), run('a', 2, .9, 6., 6.), run('b', 0, .3, 1., 1.), run('b', 1, .4, 1., 1.)]
    a,b = _summary(runs, ['a', 'b'])
    assert (a['seeds'], b['seeds']) == (3, 2)
    assert a['accuracy_mean'] == pytest.approx(0.4) and a['valid_loss_mean'] == pytest.approx(3.) and a['time_s_mean'] == pytest.approx(3.)
    assert (a['accuracy_min'], a['accuracy_max'], a['accuracy_std']) == (.1, .9, pytest.approx(np.std([.1, .2, .9], ddof=1)))
    rows = {l.split()[0]: l for l in _table([a, b]).splitlines()[1:]}
    assert rows['a'].endswith(' *') and not rows['b'].endswith('*')  # a's mean 0.4 beats b's 0.35 (a's median, 0.2, would not)
    rows = {l.split()[0]: l for l in _table([b]).splitlines()[1:]}
    assert rows['b'].endswith(' *')

def test_the_outputs_an_earlier_run_left(tmp_path):
    "W05-W07: every file `compare` may write, less this run's, is named as an earlier run's, in `_OUTPUTS` order"
    from fastai_anneal.cli import _left_over, _OUTPUTS
    for f in _OUTPUTS: (tmp_path/f).write_text('x')
    assert _left_over(tmp_path, {'results.csv', 'results.json', 'schedules.png', 'accuracy.png', 'compare.png'}) == \
        ['lr_find.png', 'results.partial.csv', 'results.partial.json']
    (tmp_path/'lr_find.png').unlink()
    assert _left_over(tmp_path, {'results.partial.csv', 'results.partial.json'}) == \
        ['results.csv', 'results.json', 'schedules.png', 'accuracy.png', 'compare.png']

# ---------------------------------------------------------------- the lr of a recipe
Sugg = namedtuple('SuggestedLRs', ['valley', 'slide', 'minimum', 'steep'])

def test_a_suggestion_name_uses_that_suggestion(tmp_path, monkeypatch, capsys):
    "R02: `--lr steep` runs at lr_find's steep suggestion, not the valley's"
    import fastai_anneal.cli as cli
    seen = []
    _fake_runs(monkeypatch, seen=seen)
    monkeypatch.setattr(cli, '_suggest', lambda *a: Sugg(1e-3, 2e-3, 3e-3, 4e-3))
    res = cli.compare('digits', epochs=1, lr='steep', seeds=1, schedules='constant', device='cpu', bar=False, jobs=1, out=tmp_path)
    assert seen == [4e-3] and res['config']['lr'] == 4e-3 and res['config']['lr_source'].startswith('lr_find steep: ')

def test_no_suggestion_is_a_failed_run_not_a_usage_error(tmp_path, monkeypatch, capsys):
    "R01, X01: lr_find giving no valley (NaN) stops `compare` before any run: one line, status 1, nothing trained"
    import fastai_anneal.cli as cli
    seen = []
    _fake_runs(monkeypatch, seen=seen)
    monkeypatch.setattr(cli, '_suggest', lambda *a: Sugg(math.nan, 2e-3, 3e-3, 4e-3))
    assert cli.main(['compare', '--data', 'digits', '--lr', 'valley', '--epochs', '1', '--seeds', '1', '--schedules', 'constant',
                     '--device', 'cpu', '--no-bar', '--jobs', '1', '--out', str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['fastai-anneal compare: lr_find gave no valley suggestion (the loss never fell); give --lr a number'] and seen == []

def test_lr_find_sweeps_the_shape_it_was_given(tmp_path, monkeypatch, capsys):
    "L06: `lr-find --anneal cos` runs a cos sweep (the plot and the suggestions are of the sweep asked for)"
    import matplotlib.pyplot as plt
    from fastai.learner import Learner
    from fastai_anneal.cli import find_lr
    asked = []
    def lr_find(self, anneal, suggest_funcs):
        asked.append(anneal); plt.figure(); return Sugg(1e-3, 2e-3, 3e-3, 4e-3)
    monkeypatch.setattr(Learner, 'lr_find', lr_find)
    find_lr('digits', anneal='cos', out=tmp_path, device='cpu')
    assert asked == ['cos'] and (tmp_path/'lr_find.png').exists()

# ---------------------------------------------------------------- an interrupted run beside an earlier one
def test_an_earlier_csv_alone_is_not_overwritten_by_an_interrupted_run(tmp_path, monkeypatch, capsys):
    "K02: a folder holding only an earlier run's results.csv keeps it: the interrupted run writes results.partial.*"
    import fastai_anneal.cli as cli
    out = tmp_path/'res'; out.mkdir(); (out/'results.csv').write_text('an earlier run')
    made = []
    def run(*args, **kwargs):
        if made: raise KeyboardInterrupt
        made.append(1); return orig(*args, **kwargs)
    _fake_runs(monkeypatch); orig = cli._run; monkeypatch.setattr(cli, '_run', run)
    assert cli.main(['compare', '--data', 'digits', '--epochs', '1', '--lr', '1e-3', '--seeds', '1', '--schedules', 'constant,cos_anneal',
                     '--device', 'cpu', '--no-bar', '--jobs', '1', '--out', str(out)]) == 130
    assert (out/'results.csv').read_text() == 'an earlier run' and (out/'results.partial.csv').exists()
    assert "(partial, beside an earlier run's results)" in capsys.readouterr().err

# ---------------------------------------------------------------- preview
def test_preview_makes_its_folder_and_prints_every_20th_of_the_epochs(tmp_path, capsys):
    "V03, V04: `preview --out` a folder not there yet creates it; 40 epochs print a row every 2 epochs, then the end"
    from fastai_anneal.cli import preview
    preview('fit_cos_anneal', epochs=40, n_batch=2, out=tmp_path/'a'/'b')
    assert (tmp_path/'a'/'b'/'preview_fit_cos_anneal.png').exists()
    rows = [l.split()[0] for l in capsys.readouterr().out.splitlines() if l[:1].isdigit() or l.startswith('end')]
    assert rows == [str(e) for e in range(0, 40, 2)] + ['end']

# ---------------------------------------------------------------- the worker pool
def test_the_pool_feeds_every_task_to_workers_of_one_thread(monkeypatch):
    ("P08, P17: 7 runs in 2 processes: every run comes back (tasks are fed as results arrive), each made in a worker of one torch "
     "thread. A watchdog (SIGALRM) ends a pool that waits for a run it never handed out")
    import fastai_anneal.cli as cli
    monkeypatch.setattr(cli, '_run', lambda i, bar: dict(i=i, threads=torch.get_num_threads(), pid=os.getpid()))
    def hung(*_): raise TimeoutError('the pool waits for runs it never handed out')
    old,n = signal.signal(signal.SIGALRM, hung),torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        signal.alarm(60)
        done = list(cli._run_parallel([(i,) for i in range(7)], 2))
    finally: signal.alarm(0); signal.signal(signal.SIGALRM, old); torch.set_num_threads(n)
    assert sorted(r['i'] for r in done) == list(range(7))
    assert all(r['threads'] == 1 and r['pid'] != os.getpid() for r in done)

def test_threads_are_one_on_the_cpu_for_embedded_data_and_restored():
    "L01, L02: `_threads` sets one torch thread for an embedded dataset on the CPU only, and restores the count after"
    from fastai_anneal.cli import _threads
    n = torch.get_num_threads(); torch.set_num_threads(2)
    try:
        for data,dev,inside in (('digits', 'cpu', 1), (Path('pets'), 'cpu', 2), ('digits', 'cuda', 2)):
            with _threads(data, torch.device(dev)): assert torch.get_num_threads() == inside, (data, dev)
            assert torch.get_num_threads() == 2
    finally: torch.set_num_threads(n)

# ---------------------------------------------------------------- plugins
_MODULE_PLUGIN = '''
from fastai_anneal.registry import Variant
from fastai_anneal.fit import register_variant
def ok(lr):
    "lr held"
    return {'lr': lambda pos: lr}
KW = dict(doc='x', fastai='fit', reference='its builder', examples=(dict(n_epoch=2, lr=1e-2),))
MOD = Variant('fit_held_mod', ok, 'lr', **KW)
register_variant(MOD)  # on import
NAMED_CONSTANT = Variant('fit_constant', ok, 'lr', **KW)  # compare's 'constant', but no budget: preview only
CALLS = []
def registers():  # registers, returns None: called once per process
    CALLS.append(1); register_variant(Variant('fit_held_fn', ok, 'lr', **KW))
class Klass: pass  # a class is not called: it is not a Variant
'''
_MODULE_BAD = '''
from fastai_anneal.registry import Variant
from fastai_anneal.fit import register_variant
def lin(lr, out:float=0.1):
    "lr to lr*out"
    return {'lr': lambda pos: lr*(1 + (out-1)*pos)}
register_variant(Variant('fit_lin_mod', lin, 'lr', doc='x', fastai='fit', reference='its builder', examples=(dict(n_epoch=2, lr=1e-2),)))
'''

def test_a_module_plugin_registers_on_import(plugins, tmp_path, capsys):
    ("G01-G03, G07, G08: a module entry point that registers its variant on import loads (also named again as a `Variant`); a "
     "budget-less variant may take a `compare` name; a module whose variant `preview` cannot offer is skipped, nothing of it left; "
     "a class is not called; a function that registers is run once per process")
    from fastai_anneal.registry import VARIANTS
    (tmp_path/'mod_plugin.py').write_text(_MODULE_PLUGIN); (tmp_path/'mod_bad.py').write_text(_MODULE_BAD)
    eps = {'mod': 'mod_plugin', 'again': 'mod_plugin:MOD', 'const': 'mod_plugin:NAMED_CONSTANT', 'bad': 'mod_bad',
           'fn': 'mod_plugin:registers', 'klass': 'mod_plugin:Klass'}
    assert plugins(eps) == ['again', 'const', 'fn', 'mod']
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "plugin 'bad'" in err[0] and 'conflicting option string: --out' in err[0], err
    assert "plugin 'klass'" in err[1] and 'it gave a type, not a Variant' in err[1], err
    assert {'fit_held_mod', 'fit_constant', 'fit_held_fn'} <= set(VARIANTS) and 'fit_lin_mod' not in VARIANTS
    assert plugins({'fn': 'mod_plugin:registers'}) == ['fn'] and capsys.readouterr().err == ''
    import mod_plugin
    assert mod_plugin.CALLS == [1]  # each entry point is loaded once per process

def test_a_run_s_weights_depend_on_its_seed():
    "L03: `_learner(seed)` seeds the model's initial weights too (not only the shuffle): the same seed twice is the same model"
    from fastai_anneal.cli import _learner
    w = lambda s: torch.cat([p.detach().flatten() for p in _learner('digits', s, torch.device('cpu'), bar=False).model.parameters()])
    assert torch.equal(w(1), w(1)) and not torch.equal(w(0), w(1))

# ---------------------------------------------------------------- worker processes
def test_a_worker_whose_parent_is_gone_exits_at_once():
    "P02: a worker started for a parent that is no longer its parent (it died before `prctl` took effect) exits with status 1"
    from fastai_anneal.cli import _die_with_parent
    pid = os.fork()
    if pid == 0:
        try: _die_with_parent(os.getppid() + 1)  # as if the parent had died: the worker's parent is another process
        finally: os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 1

def _worker_queues(monkeypatch) -> tuple:
    "What a `compare` worker is started with, its runs stubbed (a run gives back its argument): `(cli, fork context, tasks, results)`"
    import multiprocessing as mp
    import fastai_anneal.cli as cli
    monkeypatch.setattr(cli, '_run', lambda i, bar: dict(i=i))
    ctx = mp.get_context('fork')
    return cli,ctx,ctx.SimpleQueue(),ctx.Queue()

def test_a_worker_ignores_ctrl_c(monkeypatch):
    ("P06: a Ctrl-C reaching a worker (the terminal signals the whole process group) is ignored there, even while it waits for a "
     "task: the parent handles it and stops the workers. Sent while the worker's SIGINT is still blocked, as `_run_parallel` forks")
    import queue
    cli,ctx,todo,results = _worker_queues(monkeypatch)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try: p = ctx.Process(target=cli._worker, args=(todo, results, os.getpid()), daemon=True); p.start()
    finally: signal.pthread_sigmask(signal.SIG_SETMASK, old)
    try:
        os.kill(p.pid, signal.SIGINT)
        todo.put((7,))
        got = None
        while got is None and p.is_alive():
            try: got = cli.pickle.loads(results.get(timeout=1))
            except queue.Empty: pass
        assert got == (True, dict(i=7)), p.exitcode  # the worker is still there, and runs what it is given
        todo.put(None); p.join(60)
        assert p.exitcode == 0
    finally:
        if p.is_alive(): p.kill(); p.join()

def test_a_worker_stops_on_sigterm_whatever_handler_the_caller_has(monkeypatch):
    ("P07: a caller's own SIGTERM handler (here one that ignores it) is not a worker's: `terminate()` stops a worker waiting for "
     "its next task, instead of leaving it to the 5 s `kill` that follows")
    cli,ctx,todo,results = _worker_queues(monkeypatch)
    old = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        p = ctx.Process(target=cli._worker, args=(todo, results, os.getpid()), daemon=True); p.start()
        todo.put((1,)); assert cli.pickle.loads(results.get(timeout=60)) == (True, dict(i=1))  # set up, now waiting for a task
        p.terminate(); p.join(30)
        assert p.exitcode == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, old)
        if p.is_alive(): p.kill(); p.join()

def test_no_bar_in_parallel_prints_no_progress_lines(tmp_path, monkeypatch, capsys):
    "P20: `--no-bar` with `--jobs 2`: neither the 'runs in 2 processes' header nor a line per run, only the table and what was written"
    from fastai_anneal.cli import compare
    _fake_runs(monkeypatch)
    compare('digits', epochs=1, lr=1e-3, seeds=2, schedules='constant', device='cpu', bar=False, jobs=2, out=tmp_path)
    out = capsys.readouterr().out
    assert 'processes' not in out and '[1/2]' not in out and 'Final valid accuracy' in out

def test_an_error_terminates_the_other_workers(tmp_path, monkeypatch):
    ("P18: when a run fails, the pool stops a worker still running with SIGTERM at once, not with the SIGKILL that follows its 5 s "
     "`join` (which is for a worker that will not stop): seen in the workers' exit codes, no time measured")
    import time, multiprocessing as mp
    import fastai_anneal.cli as cli
    ctx,made = mp.get_context('fork'),[]
    class Recorded:
        "The fork context, keeping every process it makes"
        def __getattr__(self, k): return getattr(ctx, k)
        def Process(self, *a, **kw): made.append(ctx.Process(*a, **kw)); return made[-1]
    monkeypatch.setattr(cli.mp, 'get_context', lambda method: Recorded())
    started = tmp_path/'started'
    def run(i, bar):
        if i == 1: started.touch(); time.sleep(600)  # a run that goes on
        for _ in range(6000):
            if started.exists(): break
            time.sleep(0.01)
        raise RuntimeError('boom')
    monkeypatch.setattr(cli, '_run', run)
    with pytest.raises(RuntimeError, match='boom'): list(cli._run_parallel([(0,), (1,)], 2))
    codes = [p.exitcode for p in made]
    assert len(made) == 2 and -signal.SIGTERM in codes and -signal.SIGKILL not in codes, codes
