"""A library floor (bench_framework.py, cold start): a baseline that first imports every module an
eco2 function had imported by the same point of its own start (the list in $FLOOR_MODULES, in the
order they finished importing), except eco2's own packages, then serves as the baseline does.

What a function takes over its floor is eco2's own start (its code, what it builds, the checks it
runs); what the floor takes over the baseline is the chosen libraries' import time.
"""

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with open(os.environ["FLOOR_MODULES"]) as listing:
    NAMES = listing.read().split()
UNIMPORTABLE = []
for name in NAMES:
    try:
        importlib.import_module(name)
    except Exception:  # a module that imports only inside its own package's import, say
        UNIMPORTABLE.append(name)
if UNIMPORTABLE:
    print(f"floor: {len(UNIMPORTABLE)} of {len(NAMES)} modules did not import alone", file=sys.stderr)

if os.environ.get("FLOOR_TARGET") == "users_me":
    from users_me import users_me  # noqa: E402, F401 - the target functions-framework serves
else:
    from main import hello  # noqa: E402, F401
