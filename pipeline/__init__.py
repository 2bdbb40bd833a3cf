"""The Dagster code location of the crypto4h platform (see docs/pipeline.md).

`engine` is imported here, when the code location loads, on purpose. Without an installed project
(`make venv` installs it editable), `pipeline` and `engine` are found through the code location's
`working_directory`, and Dagster puts that directory on `sys.path` only *while* it imports the module
(it restores `sys.path` afterwards). The assets import engine submodules lazily, at run time, in the
multiprocess executor's step subprocesses; with the `engine` package already in `sys.modules` those
imports resolve through `engine.__path__` and cannot fail with "No module named 'engine'".
(Appending to `sys.path` here would not survive: Dagster replaces the whole list after the import.)
"""

import engine  # noqa: F401 - see the docstring
