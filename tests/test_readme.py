"""The README's tour runs as written: every call in its Python block, in order, on one learner (the CLI commands above it are
`tests/test_cli.py`'s). The only change is a batch size of 1000 for `mnist1d_dls`, so its 30-epoch fits are 120 batches each."""
import functools, re, warnings
from pathlib import Path
import numpy as np
from fastai.basics import *
from fastai_anneal.all import *

README = Path(__file__).resolve().parents[1]/'README.md'

def tour() -> tuple[str, str]:
    "The README's one Python block, split into its import lines and the rest"
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1, f'README.md should have one ```python block (the tour), found {len(blocks)}'
    lines = blocks[0].splitlines()
    is_import = lambda l: l.startswith(('from ', 'import '))
    return '\n'.join(filter(is_import, lines)), '\n'.join(l for l in lines if not is_import(l))

def test_the_readme_tour_runs_as_written():
    imports, body = tour()
    assert 'fastai_anneal.all' in imports and 'learn.' in body
    ns = {}
    exec(imports, ns)
    ns['mnist1d_dls'] = functools.partial(ns['mnist1d_dls'], bs=1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        exec(compile(body, str(README), 'exec'), ns)
    ours = [str(w.message) for w in caught if 'fastai_anneal' in w.filename]
    # at 120 batches a fit is below the ~700 that `budget=0.25` needs: the trials keep their minimum length and say so
    assert all("tuning within budget=" in m for m in ours), ours
    res, learn = ns['res'], ns['learn']
    assert isinstance(res, LRTuneResult) and res.n_steps == 30*4 and res.cost > 0
    tried = [t['lr'] for t in res.trials]
    assert min(tried) <= res.lr <= max(tried), (res.lr, tried)
    assert learn.opt_func is AdamAnneal and learn.opt is None  # the last line builds a fresh learner, not fitted yet
