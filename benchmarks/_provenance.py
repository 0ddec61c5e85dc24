"""What made a cached benchmark row: the date, the package's commit (`+dirty` with uncommitted changes), torch and fastai.

A cache mixes rows made on different days by different code; the reports print what their rows were made with, so a table
never silently joins rows of two methods. Rows cached before this existed say nothing, and are counted as such.
"""
import datetime, functools, subprocess
from collections import Counter
from pathlib import Path

@functools.lru_cache(None)
def made() -> dict:
    "This process's provenance, computed once"
    import torch, fastai
    root = Path(__file__).resolve().parent.parent
    def git(*args):
        try: return subprocess.run(['git', *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError): return ''
    commit = git('rev-parse', '--short', 'HEAD') or None
    if commit and git('status', '--porcelain', '--', 'fastai_anneal', 'benchmarks'): commit += '+dirty'
    return dict(date=datetime.date.today().isoformat(), commit=commit, torch=torch.__version__, fastai=fastai.__version__)

def stamp(row:dict) -> dict:
    "`row` with this process's provenance under 'made'"
    return {**row, 'made': made()}

def summary(rows:list) -> str:
    "One line: how many rows each (commit, torch, date) made, and how many say nothing"
    c = Counter((r['made'].get('commit'), r['made'].get('torch'), r['made'].get('date')) if 'made' in r else None for r in rows)
    parts = [f"{n} rows by {cm or '?'} (torch {t}, {d})" for k,n in c.items() if k for cm,t,d in [k]]
    if c.get(None): parts.append(f"{c[None]} rows with no record (cached before rows were stamped)")
    return 'cached rows: ' + '; '.join(parts)
