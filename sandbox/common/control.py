"""The /_sandbox/ control API and the request hooks that count requests and inject faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Request, Response, g, jsonify, request

from sandbox.common.counters import RequestCounters
from sandbox.common.faults import Fault, FaultConfig, FaultConfigError, FaultInjector
from sandbox.common.server import add_stop_hook

CONTROL_PREFIX = "/_sandbox"
# Where the fault drawn for the current request is kept between the before- and after-request hooks;
# private to this module: views use drawn_fault() and answer_at_once().
_DRAWN_FAULT = "_sandbox_drawn_fault"

StateFunction = Callable[[], dict[str, Any]]
ResetFunction = Callable[[], None]
ResponseFactory = Callable[[], Response]


def control_blueprint(
    *, state: StateFunction, reset: ResetFunction, faults: FaultInjector, counters: RequestCounters
) -> Blueprint:
    """GET /_sandbox/state, POST /_sandbox/reset and POST /_sandbox/faults around an emulator's callbacks."""
    blueprint = Blueprint("sandbox_control", __name__, url_prefix=CONTROL_PREFIX)

    @blueprint.get("/state")
    def show_state() -> Response:
        return jsonify({**state(), "requests": counters.snapshot(), "faults": faults.config.as_json()})

    @blueprint.post("/reset")
    def reset_everything() -> Response:
        reset()
        counters.reset()
        faults.clear()
        return jsonify({"reset": True})

    @blueprint.post("/faults")
    def set_faults() -> tuple[Response, int] | Response:
        try:
            config = FaultConfig.parse(request.get_json(force=True, silent=True))
        except FaultConfigError as exc:
            return jsonify({"error": str(exc)}), 400
        faults.configure(config)
        return jsonify({"faults": config.as_json()})

    return blueprint


def drawn_fault() -> Fault:
    """The fault drawn for the request being handled (Fault.NONE outside a faultable request).

    ERROR and THROTTLE never reach a view (the hooks answer first), so a view sees NONE or
    TIMEOUT_AFTER_COMMIT.
    """
    fault = g.get(_DRAWN_FAULT, Fault.NONE)
    assert isinstance(fault, Fault)
    return fault


def answer_at_once() -> None:
    """From a view: answer this request without holding it, even if TIMEOUT_AFTER_COMMIT was drawn.

    The fault stands for a write whose answer is lost; a view that knows its request wrote nothing (a
    read, a refused or throttled call) calls this so that only real writes are held.
    """
    g.pop(_DRAWN_FAULT, None)


def _default_error() -> Response:
    response = jsonify({"error": "sandbox injected a server error"})
    response.status_code = 500
    return response


def _is_api_request(api_request: Request) -> bool:
    return not api_request.path.startswith(CONTROL_PREFIX + "/")


@dataclass
class SandboxControls:
    """What install_controls wires into an emulator: its fault injector and request counters."""

    faults: FaultInjector = field(default_factory=FaultInjector)
    counters: RequestCounters = field(default_factory=RequestCounters)


def install_controls(
    app: Flask,
    *,
    state: StateFunction,
    reset: ResetFunction,
    render_throttle: ResponseFactory,
    render_error: ResponseFactory = _default_error,
    faultable: Callable[[Request], bool] = _is_api_request,
) -> SandboxControls:
    """Register the control blueprint plus hooks that count every API request and inject faults.

    Per faultable request: sleep `latency_ms`; then an ERROR or THROTTLE fault answers at once with the
    emulator's own shape (nothing is written); TIMEOUT_AFTER_COMMIT lets the view run (the write happens)
    and then holds the response until reset, new faults, server stop or the hang cap. A view that
    wrote nothing opts out of the hold with `answer_at_once()`.
    """
    controls = SandboxControls()
    app.register_blueprint(
        control_blueprint(state=state, reset=reset, faults=controls.faults, counters=controls.counters)
    )
    add_stop_hook(app, controls.faults.release)

    @app.before_request
    def count_and_inject() -> Response | None:
        if not _is_api_request(request):
            return None
        controls.counters.increment(request.endpoint or "unknown")
        if not faultable(request):
            return None
        controls.faults.delay()
        fault = controls.faults.decide()
        if fault is not Fault.NONE:
            controls.counters.increment(f"fault.{fault.value}")
        if fault is Fault.ERROR:
            return render_error()
        if fault is Fault.THROTTLE:
            return render_throttle()
        setattr(g, _DRAWN_FAULT, fault)
        return None

    @app.after_request
    def hold_after_commit(response: Response) -> Response:
        if drawn_fault() is Fault.TIMEOUT_AFTER_COMMIT:
            controls.faults.hang()
        return response

    return controls
