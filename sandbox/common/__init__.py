"""Pieces every sandbox emulator shares; `sandbox/` imports nothing from the rest of the project.

- `ThreadedServer(app, host="127.0.0.1", port=0).start()` serves a Flask app from a background thread;
  `.url` / `.port` report the bound address (port 0 picks a free one); `.stop()` releases requests held
  by faults, shuts down and closes the socket. Also a context manager.
- `install_controls(app, state=..., reset=..., render_throttle=..., render_error=..., faultable=...)`
  adds `GET /_sandbox/state` (`{**state(), "requests": {...}, "faults": {...}}`), `POST /_sandbox/reset`
  (calls `reset()`, clears counters and faults) and `POST /_sandbox/faults` (body validated by
  `FaultConfig.parse`, 400 `{"error": ...}` otherwise), plus before/after-request hooks that count every
  API request by Flask endpoint name and inject faults: latency, then ERROR → `render_error()` (5xx),
  THROTTLE → `render_throttle()` (the vendor's own throttle shape), TIMEOUT_AFTER_COMMIT → the view runs
  (the write is stored) and the response is held until reset/new faults/stop (the duplicate-maker).
  Returns `SandboxControls(faults: FaultInjector, counters: RequestCounters)`; an emulator may add its
  own counts with `controls.counters.increment("customerCreate")`.
- Per request, from a view: `drawn_fault()` is the fault drawn for it (NONE or TIMEOUT_AFTER_COMMIT by
  then); `answer_at_once()` opts it out of the timeout-after-commit hold when it wrote nothing.
- `control_blueprint(...)`, `FaultInjector`, `FaultConfig`, `Fault`: the same parts, separately.
- `RecordStore(id_field="id", unique={"email": key_fn}, multi={...})`: thread-safe records with
  sequential string ids and dict indexes (O(1) `get`, `find`, `find_all`); `insert` / `update` raise
  `DuplicateKeyError(index, key, existing_id)`; `update(id, change)` applies `change(record)` atomically.
- `StoreFiles(directory)`: opt-in persistence; every RecordStore created inside `files.scope("shopify")`
  is restored from `<directory>/shopify.json` and saved back after changes and on `files.close()`.
- `RollingWindowLimiter(limit, window_seconds).hit(key) -> Verdict(allowed, limit, remaining,
  retry_after_seconds)`: the request-count limits of Smaregi and HubSpot.
"""

from sandbox.common.control import (
    SandboxControls,
    answer_at_once,
    control_blueprint,
    drawn_fault,
    install_controls,
)
from sandbox.common.counters import RequestCounters
from sandbox.common.faults import Fault, FaultConfig, FaultConfigError, FaultInjector
from sandbox.common.persistence import StoreFiles
from sandbox.common.ratelimit import RollingWindowLimiter, Verdict
from sandbox.common.server import ThreadedServer, add_stop_hook
from sandbox.common.store import DuplicateKeyError, Record, RecordStore

__all__ = [
    "DuplicateKeyError",
    "Fault",
    "FaultConfig",
    "FaultConfigError",
    "FaultInjector",
    "Record",
    "RecordStore",
    "RequestCounters",
    "RollingWindowLimiter",
    "SandboxControls",
    "StoreFiles",
    "ThreadedServer",
    "Verdict",
    "add_stop_hook",
    "answer_at_once",
    "control_blueprint",
    "drawn_fault",
    "install_controls",
]
