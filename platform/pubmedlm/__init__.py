"""pubmedlm: biomedical language-model pretraining and BLURB evaluation, tracked and versioned."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pubmedlm")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
