"""The layers of DESIGN.md, enforced over the import graph (ast, no import-linter needed): each module imports only
modules of lower layers; `_checks.py` imports no sibling, `schedules.py` only `_checks.py`; the library never imports
`cli.py`; `metrics.py`/`optimizer.py` import no `fit`/`lr_finder`. And every line of the package stays under 140 characters."""
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).parents[1]/'fastai_anneal'
LAYERS = [  # bottom to top; a module may import only from layers below its own
    {'_checks'},
    {'schedules'},
    {'registry', '_groups', '_multi_tensor'},
    {'snapshot', 'optimizer', 'metrics', 'plots', 'data', 'plateau'},
    {'fit', 'lr_finder'},
    {'tune'},  # the lr tuner: trials of a registered variant, inside a snapshot
    {'cli'},
]
LAYER = {m: i for i,ms in enumerate(LAYERS) for m in ms}
ENTRY = {'__init__', 'all'}  # re-exports, above everything

def sibling_imports(path:Path) -> set:
    "Modules of the package that `path` imports (relative or absolute), at any depth of its code"
    res = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1 and mod: res.add(mod.split('.')[0])
            elif node.level == 1: res |= {a.name for a in node.names}
            elif mod.startswith('fastai_anneal.'): res.add(mod.split('.')[1])
            elif mod == 'fastai_anneal': res |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            res |= {a.name.split('.')[1] for a in node.names if a.name.startswith('fastai_anneal.')}
    return res - {'__init__'}

GRAPH = {p.stem: sibling_imports(p) for p in sorted(PKG.glob('*.py'))}

def test_every_module_has_a_layer(): assert set(GRAPH) - ENTRY <= set(LAYER), set(GRAPH) - ENTRY - set(LAYER)

@pytest.mark.parametrize('mod', sorted(set(GRAPH) - ENTRY))
def test_imports_point_down(mod):
    up = {m for m in GRAPH[mod] if LAYER[m] >= LAYER[mod]}
    assert not up, f"{mod}.py (layer {LAYER[mod]}) imports {sorted(up)} from its own layer or above"

def test_the_issue_contracts():
    assert GRAPH['_checks'] == set() and GRAPH['schedules'] <= {'_checks'}
    assert not any('cli' in deps for m,deps in GRAPH.items() if m != 'cli')
    for m in ('metrics', 'optimizer', 'plateau'): assert not GRAPH[m] & {'fit', 'lr_finder', 'tune', 'cli'}
    for m in ('metrics', 'data', 'plots'): assert 'schedules' not in GRAPH[m]  # they check arguments through _checks

def test_the_graph_sees_imports():
    "The check itself: it finds the imports it must judge"
    assert GRAPH['fit'] >= {'_checks', 'registry'} and GRAPH['cli'] >= {'registry', 'fit'} and GRAPH['all'] >= {'fit', 'registry'}

@pytest.mark.parametrize('path', sorted(PKG.glob('*.py')), ids=lambda p: p.name)
def test_lines_under_140_characters(path):
    long = [(i, len(l)) for i,l in enumerate(path.read_text().splitlines(), 1) if len(l) >= 140]
    assert not long, f"{path.name}: lines (number, length) of 140 characters or more: {long}"

def test_every_public_name_is_documented_and_typed():
    "Every function and class a module exports has a docstring, and every parameter of its signature a type hint (its docments)"
    import importlib, inspect
    from fastai.learner import Learner
    import fastai_anneal.all  # noqa: F401, the Learner patches
    def untyped(f):
        return [k for k,p in inspect.signature(f).parameters.items() if k not in ('self', 'cls')
                and p.annotation is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    nodoc,bare = [],{}
    for m in sorted(set(GRAPH) - ENTRY):
        mod = importlib.import_module(f'fastai_anneal.{m}')
        for n in getattr(mod, '__all__', []):
            o = getattr(mod, n)
            if not (inspect.isfunction(o) or inspect.isclass(o)): continue
            if not (o.__doc__ or '').strip(): nodoc.append(f'{m}.{n}')
            f = o.__init__ if inspect.isclass(o) else o
            if f is object.__init__ or not (inspect.isfunction(f) or inspect.ismethod(f)): continue
            if (miss := untyped(f)): bare[f'{m}.{n}'] = miss
    for n in ('lr_find', 'lr_tune', 'fit_tuned', 'fit_cos_anneal', 'fine_tune_anneal'):
        if (miss := untyped(getattr(Learner, n))): bare[f'Learner.{n}'] = miss
    assert not nodoc and not bare, (nodoc, bare)
