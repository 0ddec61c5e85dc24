"Shared pytest setup."
import inspect, os
import matplotlib
matplotlib.use('Agg')  # plots in tests never open a window
os.environ.setdefault('OMP_NUM_THREADS', '1')

def pytest_pycollect_makeitem(collector, name, obj):
    "Collect only tests defined in the test module itself: `from fastai.basics import *` brings fastcore's `test_eq`, `test_fail`..."
    if inspect.isfunction(obj) and name.startswith('test') and obj.__module__ != collector.obj.__name__: return []
