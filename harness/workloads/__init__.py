"""What a run does: the operations, the scenarios and the nemesis that plan them, the
generators that draw them, and one module per capability (its operations, generator
rules and checkers), gathered in :mod:`.capabilities`.

Importing the package imports that table, so every capability's operations are known to
the JSON form (:func:`harness.workloads.operations.from_json`) whichever module a caller
imports first.
"""

from gossipcert.harness.workloads import capabilities as capabilities
