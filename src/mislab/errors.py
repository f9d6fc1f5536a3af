"""The errors a user sees. Anything a user can fix (a flag, a key of an experiment file, a missing file, a model
the provider does not know) is a `MislabError`: the command line prints its message as one line and exits 2, with
the traceback only under `--debug`. Any other exception is a bug and keeps its traceback.

`FatalError` is the part of the family no sample can get past (a bad key, no route to the provider, a sandbox
provider that cannot start): a job that meets one stops at once, keeping what is finished."""

from __future__ import annotations


class MislabError(Exception):
    """A problem the user can fix; the message says which and what to do."""


class FatalError(MislabError):
    """No sample of a job can get past this: the job stops, keeping what is finished."""


class UnknownStudyError(MislabError, KeyError):
    """No study plug-in of that name is installed (a KeyError too: a name that is not in the registry)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
