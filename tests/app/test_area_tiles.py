"""The Area page offers what `fetch` does for large areas: it says how the area will be split into tiles."""

from __future__ import annotations

from app_data import new_app

from clay_explore.app import state as S


def test_area_across_a_utm_boundary_says_it_is_fetched_as_tiles_in_one_zone(app_env):
    at = new_app().run()
    at.switch_page("pages/area.py").run()
    for key, value in (("bbox_w", 11.5), ("bbox_s", 47.0), ("bbox_e", 12.3), ("bbox_n", 47.4)):
        at.number_input(key=key).set_value(value)
    at.button(key="bbox_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[S.BBOX] == (11.5, 47.0, 12.3, 47.4)
    assert not at.error, [e.value for e in at.error]
    captions = "\n".join(c.value for c in at.caption)
    assert "split into" in captions and "crosses UTM zones 32, 33" in captions and "EPSG:32632" in captions
