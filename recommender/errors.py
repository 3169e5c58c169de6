"""Every exception the library raises on purpose, under one base class.

The command line maps each class to an exit code (see :mod:`recommender.cli`);
library callers catch :class:`RecommenderError` to handle them all.
"""

from __future__ import annotations


class RecommenderError(Exception):
    """Base class of every error raised on purpose by recommender."""


class PageError(RecommenderError):
    """A page that cannot be loaded: its file, the line where known, and what is wrong.

    Parameters
    ----------
    path : str
        The page's path, relative to the site root.
    problem : str
        A short category (for example ``"invalid YAML"``), stable enough to group by.
    detail : str
        A sentence for a person: what is wrong and, where it helps, how to fix it.
    line : int or None
        1-based line number in the file, where it is known.
    """

    def __init__(self, path: str, problem: str, detail: str, line: int | None = None):
        self.path = path
        self.problem = problem
        self.detail = detail
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.problem}: {self.detail}"

    def __reduce__(self):  # keep the fields when sent between processes
        return (type(self), (self.path, self.problem, self.detail, self.line))


class SiteNotFoundError(RecommenderError):
    """The site root does not exist or is not a folder."""


class ConfigError(RecommenderError, ValueError):
    """A setting that cannot be used: a bad model parameter or settings file.

    It is a :class:`ValueError` too, as scikit-learn raises for bad parameters.
    """


class ModelFileError(RecommenderError):
    """A saved model that cannot be loaded, or was saved with other library versions."""


class ExportError(RecommenderError):
    """Links that cannot be written back into the pages (say, a target url that is no page)."""


class UnsafeFileError(RecommenderError):
    """A file not read or written: outside the site, not a regular file, too big, read-only."""


class LockedError(RecommenderError):
    """Another run holds the site's lock (see :class:`recommender.files.SiteLock`)."""


class RemovalRefusedError(RecommenderError):
    """A rewrite refused because it would leave too many pages with fewer links than today.

    Attributes
    ----------
    pages : int
        Pages that would be left with fewer links.
    share : float
        Their share of the pages.
    """

    def __init__(self, message: str, pages: int = 0, share: float = 0.0):
        self.pages, self.share = pages, share
        super().__init__(message)


class RewriteCheckError(RecommenderError, ValueError):
    """A page's new text does not read back as meant; the page is not written."""
