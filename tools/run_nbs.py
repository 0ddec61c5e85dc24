"""Execute the notebooks in `nbs/` and write their outputs in place, or check that the committed outputs are current.

    python tools/run_nbs.py                      # every notebook in nbs/
    python tools/run_nbs.py 02_lr_finder 05      # the notebooks whose names start with these
    python tools/run_nbs.py --check [names...]   # execute, compare with the committed outputs, write nothing

`tests/test_notebooks.py` executes the notebooks with the same `execute` and compares with the same `compare`.
"""
import argparse, copy, os, re, sys, tempfile, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
REGENERATE = 'python tools/run_nbs.py'
CELL_TIMEOUT = 900  # seconds; the longest cell (nbs/03's optimizer comparison) takes about a minute on 2 busy cores

def notebooks(names=()):
    "The notebooks of `nbs/` (sorted), or those whose file name starts with one of `names`"
    nbs = sorted(NBS.glob('*.ipynb'))
    if not names: return nbs
    found = [p for p in nbs if any(p.name.startswith(Path(n).name) for n in names)]
    missing = [n for n in names if not any(p.name.startswith(Path(n).name) for p in nbs)]
    if missing: raise SystemExit(f"no notebook in nbs/ starts with {', '.join(missing)}")
    return found

def kernel_env():
    "The environment the notebooks run in, the same for the test and for regeneration"
    env = dict(os.environ)
    env['MPLBACKEND'] = 'module://matplotlib_inline.backend_inline'  # figures as outputs: Agg (CI's setting) shows none
    env['OMP_NUM_THREADS'] = '1'  # the float results, hence the printed losses, can depend on the thread count
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    return env

def execute(path):
    "Execute the notebook at `path` in a fresh kernel (cwd `nbs/`); return it, cleaned. Raises `CellExecutionError` on an error"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name='python3', record_timing=False,
                   resources={'metadata': {'path': str(Path(path).parent)}}).execute(env=kernel_env())
    return clean(nb)

# A warning raised inside an installed package (torch, tqdm, sklearn...): its text and line number depend on the installed
# versions, and the path on the machine. Such warnings are neither documentation nor this package's behaviour.
LIBRARY_WARNING = re.compile(r"^\S*/(site|dist)-packages/\S+:\d+: \w*Warning: .*\n(  .*\n)?", re.M)

def _outputs(cell):
    "`cell`'s outputs without library warnings, consecutive streams merged (where the kernel splits them depends on when it flushes)"
    res = []
    for o in copy.deepcopy(cell.outputs):
        if o.output_type == 'stream':
            if o.name == 'stderr': o.text = LIBRARY_WARNING.sub('', o.text)
            if not o.text: continue
            if res and res[-1].output_type == 'stream' and res[-1].name == o.name:
                res[-1].text += o.text; continue
        res.append(o)
    return res

def clean(nb):
    "Drop what changes on every run and is not content: execution counts, timings, kernel and widget metadata"
    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k in ('kernelspec', 'language_info')})
    if 'language_info' in nb.metadata: nb.metadata.language_info = {'name': 'python'}  # the executing Python's version
    for c in nb.cells:
        for k in ('execution', 'ExecuteTime'): c.metadata.pop(k, None)
        if c.cell_type != 'code': continue
        c.execution_count = None
        c.outputs = _outputs(c)
        for o in c.outputs:
            if 'execution_count' in o: o.execution_count = None
    return nb

# What legitimately differs between two runs of the same notebook, replaced before comparing text outputs.
# Everything else (losses, accuracies, suggestions, tables) is seeded and reproducible on one machine with one thread.
MASKS = [
    (re.compile(r"<progress[^>]*>\s*</progress>\s*[\d.]+% \[[^\]]*\]"), '<progress bar>'),  # fastprogress: how far it drew
    (re.compile(r"<progress[^>]*>\s*</progress>"), '<progress bar>'),
    (re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?\b"), '<time>'),                    # fastai's `time` column (00:01)
    (re.compile(r" *\b\d+(\.\d+)? ?(s|ms|min)\b(?!/)"), ' <duration>'),        # `compare`'s time/run column (0.6s)
    (re.compile(r"\b0x[0-9a-fA-F]{4,}\b"), '0x<address>'),                    # object reprs
    (re.compile(re.escape(tempfile.gettempdir()) + r"/[^\s'\"<>),]+"), '<tmp>'),  # mkdtemp/TemporaryDirectory paths
    (re.compile(re.escape(str(ROOT)) + '/'), '<repo>/'),
]

def mask(text):
    for pat, repl in MASKS: text = pat.sub(repl, text)
    return text

def comparable(output):
    "What of one output must be equal between runs: text after `mask`, and the mime types of images (pixels vary)"
    if output.output_type == 'stream': return ('stream', output.name, mask(output.text))
    if output.output_type == 'error': return ('error', output.ename, mask(output.evalue))
    data = {k: ('<image>' if k.startswith('image/') else mask(v if isinstance(v, str) else str(v)))
            for k, v in sorted(output.get('data', {}).items())}
    return (output.output_type, data)

def compare(committed, executed, name='notebook'):
    "Differences between the committed outputs and a fresh run's, one message per cell; empty when current"
    problems = []
    if len(committed.cells) != len(executed.cells): return [f'{name}: {len(committed.cells)} cells, executed {len(executed.cells)}']
    for i, (a, b) in enumerate(zip(committed.cells, executed.cells)):
        if a.cell_type != 'code': continue
        first = a.source.strip().splitlines()[0][:70] if a.source.strip() else ''
        where = f'{name} cell {i} ({first!r})'
        ca, cb = [comparable(o) for o in _outputs(a)], [comparable(o) for o in _outputs(b)]
        if ca == cb: continue
        if len(ca) != len(cb):
            problems.append(f'{where}: {len(ca)} output(s) committed, {len(cb)} produced now'); continue
        for j, (oa, ob) in enumerate(zip(ca, cb)):
            if oa != ob: problems.append(f'{where}, output {j}:\n  committed: {_short(oa)}\n  now:       {_short(ob)}')
    return problems

def _short(o, n=400):
    s = repr(o)
    return s if len(s) <= n else s[:n] + '...'

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('names', nargs='*', help='notebook names or prefixes (default: all of nbs/)')
    ap.add_argument('--check', action='store_true', help='compare with the committed outputs, write nothing')
    args = ap.parse_args(argv)
    if os.environ.get('FASTAI_ANNEAL_FULL', '0') != '0' and not args.check:
        raise SystemExit('FASTAI_ANNEAL_FULL is set: the committed outputs are those of the default (CI) size; unset it')
    stale, problems_all = [], []
    for path in notebooks(args.names):
        start = time.time()
        nb = execute(path)
        took = time.time() - start
        if args.check:
            problems = compare(nbformat.read(path, as_version=4), nb, path.name)
            problems_all += problems
            if problems: stale.append(path.stem)
            print(f"{path.name}: {'stale' if problems else 'current'} ({took:.0f} s)", flush=True)
        else:
            nbformat.write(nb, path)
            print(f'{path.name}: written ({took:.0f} s)', flush=True)
    if stale:
        print('\n'.join(problems_all))
        print(f"regenerate with: {REGENERATE} {' '.join(stale)}")
        return 1
    return 0

if __name__ == '__main__': sys.exit(main())
