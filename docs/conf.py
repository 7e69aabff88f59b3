"""Sphinx configuration for sklearn-vhp."""

import os
import sys
from datetime import date

sys.path.insert(0, os.path.abspath(".."))
import sklearn_vhp  # noqa: E402

project = "sklearn-vhp"
author = "sklearn-vhp developers"
copyright = f"{date.today().year}, {author}"
release = sklearn_vhp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "pydata_sphinx_theme"
html_title = "sklearn-vhp"
# Gallery examples run at small sizes so that the docs build in minutes.
os.environ.setdefault("SKLEARN_VHP_EXAMPLE_EPOCHS", "8")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
}
