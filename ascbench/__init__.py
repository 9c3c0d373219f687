"""ascbench: a benchmark harness for low-complexity, device-robust acoustic scene classification.

The public API that plugins may depend on is re-exported here as it lands; ``ascbench``
itself never imports a plugin by name.
"""

__version__ = "0.1.0"
