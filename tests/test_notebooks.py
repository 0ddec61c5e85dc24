"""The notebooks in nbs/ are the documentation and its tests: each one executes without error, and the outputs committed
with it (figures, tables, printed values) are the ones it produces now.

Each notebook is executed once (`tools/run_nbs.py`'s `execute`: a fresh kernel, one thread, inline figures) and both tests
below use that run. What is compared, and what is masked because it legitimately differs between runs, is in
`tools/run_nbs.py` (`compare`, `MASKS`, `LIBRARY_WARNING`); in short: every text output, equal after masking timings,
progress bars, memory addresses and temp paths; images by presence and type only (pixels depend on matplotlib and fonts).
The trained numbers (losses, accuracies, lr suggestions) are seeded and run on one thread: they repeat exactly on one
machine with one set of library versions. A notebook added to nbs/ is picked up with no edit here.
"""
import os, sys
from pathlib import Path
import nbformat, pytest
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent/'tools'))
import run_nbs  # noqa: E402

NOTEBOOKS = run_nbs.notebooks()
FULL = os.environ.get('FASTAI_ANNEAL_FULL') == '1'
_runs = {}

def executed(path):
    "The notebook at `path` executed, once per test session (both tests share the run); the exception if it failed"
    if path not in _runs:
        try: _runs[path] = run_nbs.execute(path)
        except CellExecutionError as e: _runs[path] = e
    return _runs[path]

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path):
    res = executed(path)
    if isinstance(res, Exception): pytest.fail(f'{path.name} raised while executing:\n{res}', pytrace=False)

@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_outputs_current(path):
    if FULL: pytest.skip('FASTAI_ANNEAL_FULL=1 runs the full size; the committed outputs are the default size')
    res = executed(path)
    if isinstance(res, Exception): pytest.skip(f'{path.name} did not execute (test_notebook_executes fails)')
    problems = run_nbs.compare(nbformat.read(path, as_version=4), res, path.name)
    if problems:
        pytest.fail(f'{path.name}: the committed outputs are stale ({len(problems)} cell(s) differ from a fresh run).\n'
                    f'Regenerate them with `{run_nbs.REGENERATE} {path.stem}` and commit the notebook.\n\n'
                    + '\n'.join(problems[:10]), pytrace=False)

def test_masks():
    "What `compare` masks, and that it masks no more: a changed number in a table or a print is still stale"
    m = run_nbs.mask
    test = [('<td>9.925205</td><td>7.377109</td><td>00:00</td>', '<td>9.925205</td><td>7.377109</td><td><time></td>'),
            ('<progress value="3" max="10"></progress> 30.00% [3/10 00:01&lt;00:02]', '<progress bar>'),
            ('one_cycle       0.4170  0.0000       1.417      0.6s *', 'one_cycle       0.4170  0.0000       1.417 <duration> *'),
            (f'Wrote {run_nbs.tempfile.gettempdir()}/tmp7oo6fzlc/results.csv, x', 'Wrote <tmp>, x'),
            ('<function f at 0x7f3a2c1d9e40>', '<function f at 0x<address>>'),
            ('1 seed, 2 epochs, lr 0.01, valley 0.00145', '1 seed, 2 epochs, lr 0.01, valley 0.00145')]
    for text, masked in test: assert m(text) == masked, (text, m(text))
    cell = nbformat.v4.new_code_cell('x', outputs=[
        nbformat.v4.new_output('stream', name='stderr', text='/venv/lib/python3.11/site-packages/torch/jit/_script.py:1491: '
                               'FutureWarning: deprecated.\n  warnings.warn(\n'),
        nbformat.v4.new_output('stream', name='stdout', text='a\n'), nbformat.v4.new_output('stream', name='stdout', text='b\n')])
    outs = run_nbs._outputs(cell)
    assert [(o.name, o.text) for o in outs] == [('stdout', 'a\nb\n')]  # library warning dropped, streams merged
    committed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('print(acc)', outputs=[
        nbformat.v4.new_output('stream', name='stdout', text='acc 0.835\n'),
        nbformat.v4.new_output('display_data', data={'image/png': 'iVBOR', 'text/plain': '<Figure size 600x350 with 1 Axes>'})])])
    now = nbformat.from_dict(run_nbs.copy.deepcopy(committed))
    assert run_nbs.compare(committed, now) == []
    now.cells[0].outputs[1].data['image/png'] = 'other pixels'
    assert run_nbs.compare(committed, now) == []
    now.cells[0].outputs[0].text = 'acc 0.836\n'
    assert 'cell 0' in run_nbs.compare(committed, now, 'nb')[0]
    del now.cells[0].outputs[1]
    assert '2 output(s) committed, 1 produced now' in run_nbs.compare(committed, now, 'nb')[0]

def test_readme_links_every_notebook():
    "The README's Documentation section is the way in: each notebook in nbs/ is linked from it"
    readme = (Path(run_nbs.NBS).parent/'README.md').read_text()
    docs = readme[readme.index('## Documentation'):]
    missing = [p.name for p in sorted(Path(run_nbs.NBS).glob('*.ipynb')) if f'(nbs/{p.name})' not in docs]
    assert not missing, missing
