"""Fitting on a workspace of one chip fails with a message that says how to get more chips."""

from __future__ import annotations

import pandas as pd
import pytest

from clay_explore.core.errors import WorkspaceError
from clay_explore.research.splits import blocked_split


def test_fit_on_one_chip_says_how_to_get_more():
    with pytest.raises(WorkspaceError) as err:
        blocked_split(pd.DataFrame({"lat": [45.0], "lon": [7.0]}))
    msg = str(err.value)
    assert "the workspace has 1" in msg
    assert "--chip-size" in msg and "--stride" in msg and "larger area" in msg
