"""The run layer under every pipeline: configs, run folders (lock, fingerprint, resume, finish),
provenance, the seed/grid runner (local processes or Ray), summaries and CLI helpers."""

from lookright.runs.folder import RunFolder, finished_runs, fingerprint
from lookright.runs.runner import RunSpec, expand_grid, run_local

__all__ = ["RunFolder", "RunSpec", "expand_grid", "finished_runs", "fingerprint", "run_local"]
