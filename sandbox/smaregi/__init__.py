"""Smaregi Platform API emulator: token endpoint and POS customers (members), default port 8012.

`create_app(SmaregiSettings(...))` builds the Flask app; serve it with `sandbox.common.ThreadedServer`.
"""

from sandbox.smaregi.app import SmaregiSettings, create_app

__all__ = ["SmaregiSettings", "create_app"]
