"""The seed systems of the benchmark, registered as an ordinary plugin package.

ascbench finds this package through the ``ascbench.systems`` entry point declared in
``pyproject.toml``, exactly as it finds third-party plugins; each module is one system.
"""
