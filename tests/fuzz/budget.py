"""How many cases the fuzzers run: bounded for `make test`, thousands under `make fuzz`.

`make fuzz` sets FUZZ_MAX_EXAMPLES (schemathesis, per operation and phase), FUZZ_PROPERTY_EXAMPLES
(each hypothesis property) and FUZZ_SEED=random; the defaults keep everything in tests/fuzz under
about 40 s in `make test`.
"""

from __future__ import annotations

import os

SCHEMATHESIS_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "50"))
PROPERTY_EXAMPLES = int(os.environ.get("FUZZ_PROPERTY_EXAMPLES", "100"))
# A fixed seed in `make test` (a failure reproduces); "random" under `make fuzz` (new ground each run).
SEED = os.environ.get("FUZZ_SEED", "20261206")
