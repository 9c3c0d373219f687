"""The ``ascbench`` command line.

Importing it sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy: libgomp reads it
once, when torch loads, and its default lets idle worker threads spin for a while before they
sleep. Alone on a machine that costs little; beside another job on the same cores the spinning
threads take the cores from the threads that have work, and a run slows far more than the share
of the machine it lost (docs/experiments/shared-machine.md measures both policies).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
