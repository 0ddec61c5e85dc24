"Learning-rate annealing for fastai v2: `from fastai_anneal.all import *` applies the patches."
__version__ = "0.1.0"
