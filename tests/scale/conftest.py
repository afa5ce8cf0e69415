"""Fixtures of the scale-out suite (tests/scale/, `make test-scale`): the integration suite's own.

tests/integration/conftest.py (the PostgreSQL cluster `pg`, the clean database `db`, the `gateway`
factory, `notes`, the failure reports) is loaded here under another module name and its fixtures and
hooks re-exported, so both suites start the same real parts in the same way; tests/integration is put
on sys.path so `helpers` and `test_proxy` (the proxy renderers) import as they do there.
"""

import importlib.util
import sys
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(INTEGRATION))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_spec = importlib.util.spec_from_file_location("pollgate_integration_conftest", INTEGRATION / "conftest.py")
_ic = importlib.util.module_from_spec(_spec)
sys.modules["pollgate_integration_conftest"] = _ic
_spec.loader.exec_module(_ic)

pg = _ic.pg
db = _ic.db
gateway = _ic.gateway
notes = _ic.notes
pytest_runtest_makereport = _ic.pytest_runtest_makereport
pytest_configure = _ic.pytest_configure
pytest_terminal_summary = _ic.pytest_terminal_summary
Gateway = _ic.Gateway
