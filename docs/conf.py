"""Sphinx configuration for sklearn-vhp.

Build with ``tox -e docs`` or, in an environment with the ``docs`` extra::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The gallery (``examples/plot_*.py``) is executed during the build at small
sizes (``SKLEARN_VHP_EXAMPLE_EPOCHS``, below); skip it with
``-D plot_gallery=0``.
"""

import os
import re
import sys
from datetime import date

sys.path.insert(0, os.path.abspath(".."))
import sklearn_vhp  # noqa: E402

project = "sklearn-vhp"
author = "sklearn-vhp developers"
copyright = f"{date.today().year}, {author}"
release = sklearn_vhp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
html_static_path = ["_static"]
exclude_patterns = [
    "_build",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
    "auto_examples/*.pickle",
    # Markdown files that are *included* by benchmarks.md, not pages of their own.
    "performance_notes.md",
    "interpolation_notes.md",
    "reliability_notes.md",
    "benchmarks/*.md",
]

# -- autodoc / autosummary / numpydoc ---------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Type specifications go through numpydoc's cross-referencing (as in
# scikit-learn's docs): names become ``:obj:`` roles, which also keeps names
# such as ``n_features_in_`` in shapes from being read as reStructuredText
# references; the words below stay plain text.
numpydoc_xref_param_type = True
numpydoc_xref_ignore = {
    "of",
    "shape",
    "or",
    "and",
    "default",
    "optional",
    "instance",
    "object",
    "type",
    "str",
    "int",
    "float",
    "dict",
    "list",
    "tuple",
    "None",
    "True",
    "False",
}
# numpydoc's default aliases for these words are intersphinx ``:ref:`` and
# ``:term:`` roles, which warn when the inventories are not loaded: keep the
# words as plain text (intersphinx below restores the links when enabled).
numpydoc_xref_aliases = {
    word: word
    for word in (
        "bool",
        "boolean",
        "iterable",
        "sequence",
        "generator",
        "array-like",
        "array_like",
        "scalar",
    )
}


_SKLEARN_REF = re.compile(r":(?:ref|term):`([^`<]*?)\s*(?:<[^`>]*>)?`")


def _plain_sklearn_refs(app, what, name, obj, options, lines):
    """Turn scikit-learn's ``:ref:``/``:term:`` roles into plain text.

    Methods inherited from scikit-learn (``set_output``, ``get_params``, ...)
    bring docstrings whose roles point into scikit-learn's own user guide;
    here those labels do not exist and each would be a warning.
    """
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn.") or module == "sklearn":
        lines[:] = [_SKLEARN_REF.sub(r"\1", line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _plain_sklearn_refs)


# -- MyST (the markdown notes) ----------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# -- matplotlib plot directive ----------------------------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

# -- intersphinx -------------------------------------------------------------
# Off by default: the docs must build offline with warnings as errors, and an
# unreachable inventory is an (unsuppressible) warning. Online, set
# SKLEARN_VHP_DOCS_INTERSPHINX=1 to link to the Python, NumPy, scikit-learn,
# PyTorch and joblib docs.
if os.environ.get("SKLEARN_VHP_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "torch": ("https://docs.pytorch.org/docs/stable/", None),
        "joblib": ("https://joblib.readthedocs.io/en/stable/", None),
    }
    numpydoc_xref_aliases = {}

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "sklearn-vhp"
html_theme_options = {
    "github_url": "https://github.com/sklearn-vhp/sklearn-vhp",
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_sidebars = {"install": [], "quickstart": []}

# -- sphinx-gallery ----------------------------------------------------------
# Gallery examples run at small sizes so that the docs build in minutes; run
# an example by hand (python examples/plot_*.py) for the full-size version.
os.environ.setdefault("SKLEARN_VHP_EXAMPLE_EPOCHS", "8")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("sklearn_vhp",),
    # Backreferences feed the "Gallery examples" of every API page.
    "backreferences_dir": "gen_modules/backreferences",
    "matplotlib_animations": False,
    "capture_repr": ("_repr_html_", "__repr__"),
    "show_memory": False,
    "remove_config_comments": True,
}
