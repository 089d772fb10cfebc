"""Tracker connections and integrations: the desired-state models and their cross-checks.

``reconciler.config.models`` is imported first so that the two modules can refer to each
other whichever one a caller imports first.
"""

import reconciler.config.models  # noqa: F401  (import order, see above)
