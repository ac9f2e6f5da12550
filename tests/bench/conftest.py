from tests.cluster.conftest import homelab, start_engine  # noqa: F401  (the same fixtures)
